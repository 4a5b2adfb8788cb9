"""Hand-written SQL of migration 0003: facts of each incident kept on its row, for the KPIs.

* ``reworked_at``, ``returned_at``, ``extended_at``: the time of the incident's first
  ``reworked``, ``returned`` and ``extended`` step. Appended steps are in time order, so
  "had such a step before T" is exactly ``<column> < T`` — the as-of semantics of
  ``geo.kpis`` without reading the log. Kept by the transition trigger
  (``incident_transition_apply``, replaced here with three more assignments).
* ``repeat_of``: the id of the earlier incident of the same subcategory within 30 m
  (geodesic, on the ellipsoid) reported in the 90 days before (``earlier.reported_at`` in
  ``[reported_at − 90 days, reported_at)``), the latest such; ties by the lowest id. NULL:
  not a repeat. The rule is fixed here (``store.models.REPEAT_RADIUS_M`` /
  ``REPEAT_WINDOW_DAYS``); ``geo.kpis`` computes other radii or windows on the fly.

  Kept by triggers on ``incident`` whatever writes it (the demo writer's COPY, the loaders'
  INSERT … SELECT … ON CONFLICT, a single INSERT), including incidents written out of time
  order:

  - AFTER INSERT, per statement, with the inserted rows as a transition table: their own
    ``repeat_of`` and that of the later incidents they are now the nearest earlier one of.
  - AFTER UPDATE OF place, time or category, per row (status changes from the transition
    trigger do not fire it): the row, the later incidents near its new place, and those
    that pointed at it.
  - AFTER DELETE, per statement: the incidents that pointed at a deleted one.

  ``incident_repeat_refresh`` does the work in one of two ways. For a few rows, index
  probes on ``ix_incident_geom``. For many (≥ 5,000 sources) or when that index is absent
  (a bulk load runs with secondary indexes dropped, ``store.write.deferred_indexes``), a
  hash join on grid cells of 0.0005° (≥ 30 m anywhere in China up to 54°N, so a pair
  within 30 m lies in the same or a neighbouring cell), then the ellipsoid distance; when
  every incident is a source (a load into an empty table, the backfill) the search for
  later incidents is skipped.

  Measured on the district demo (1,000,000 incidents, 2 shared cores): the bulk way over
  all of them 32 s (what a 1M-row COPY into an empty table pays; the whole upgrade with
  its backfill took 45 s); 50,000 new rows into the full table 10 s; index probes ~0.9 ms
  a row, so a row-level trigger would add ~15 minutes to a 1M-row load. Hence a
  statement-level trigger with a transition table.

  Limits: the UPDATE trigger works row by row (~1 ms a row), fine for corrections and
  reloads, slow for moving a million incidents at once; and writers are not serialised
  against each other: two transactions writing neighbouring incidents at the same moment
  do not see each other's rows (READ COMMITTED), so the later one's ``repeat_of`` can miss
  the other until either is written again.

* The derived-column guards of migration 0001 cover the new columns: writing them directly
  is refused.
"""

# The 0001 body of incident_transition_apply() up to its final UPDATE (the checks), shared
# by the upgrade (new UPDATE) and the downgrade (0001's UPDATE).
_APPLY_CHECKS = r"""
DECLARE
  bad record;
  tiers CONSTANT text[] := ARRAY['grid', 'community', 'street', 'department'];
BEGIN
  -- Serialise appends per incident: a concurrent transaction appending to the same incident
  -- waits here, then (READ COMMITTED: each statement below takes a new snapshot) checks its
  -- steps against the status the other one committed. Ordered by id: no deadlock.
  PERFORM 1 FROM incident
   WHERE id IN (SELECT DISTINCT incident_id FROM new_rows) ORDER BY id FOR UPDATE;

  SELECT * INTO bad FROM (
    SELECT st.*,
      CASE
        WHEN st.from_at IS NOT NULL AND st.at < st.from_at THEN
          format('out of order: %s is earlier than the step before it (%s)', st.at, st.from_at)
        WHEN NOT EXISTS (SELECT 1 FROM workflow_rule r
                         WHERE r.from_status IS NOT DISTINCT FROM st.from_status
                           AND r.to_status = st.to_status) THEN
          format('%s -> %s is not an allowed step', coalesce(st.from_status, '(start)'), st.to_status)
        WHEN st.from_tier IS NOT NULL AND st.to_status = 'escalated'
             AND array_position(tiers, st.tier) <= array_position(tiers, st.from_tier) THEN
          format('escalated must move the case up a tier (grid < community < street < department), not %s -> %s',
                 st.from_tier, st.tier)
        WHEN st.from_tier IS NOT NULL AND st.to_status = 'returned'
             AND array_position(tiers, st.tier) > array_position(tiers, st.from_tier) THEN
          format('returned cannot move the case up (%s -> %s); use escalated', st.from_tier, st.tier)
        WHEN st.from_tier IS NOT NULL AND st.to_status NOT IN ('escalated', 'returned')
             AND st.tier <> st.from_tier THEN
          format('%s keeps the tier (%s), got %s; change tiers with escalated or returned',
                 st.to_status, st.from_tier, st.tier)
        WHEN (st.grid_code, st.street_code) IS DISTINCT FROM (st.inc_grid, st.inc_street) THEN
          format('grid/street code %s/%s differ from the incident''s %s/%s',
                 st.grid_code, st.street_code, st.inc_grid, st.inc_street)
      END AS reason
    FROM (
      SELECT s.*, i.code, i.grid_code AS inc_grid, i.street_code AS inc_street,
             CASE WHEN s.rn = 1 THEN i.status ELSE s.lag_status END AS from_status,
             CASE WHEN s.rn = 1 THEN i.tier ELSE s.lag_tier END AS from_tier,
             CASE WHEN s.rn = 1 THEN i.status_at ELSE s.lag_at END AS from_at
      FROM (
        SELECT n.id, n.incident_id, n.at, n.to_status, n.tier, n.grid_code, n.street_code,
               row_number() OVER w AS rn,
               lag(n.to_status) OVER w AS lag_status,
               lag(n.tier) OVER w AS lag_tier,
               lag(n.at) OVER w AS lag_at
        FROM new_rows n
        WINDOW w AS (PARTITION BY n.incident_id ORDER BY n.at, n.id)
      ) s JOIN incident i ON i.id = s.incident_id
    ) st
  ) checked
  WHERE reason IS NOT NULL
  ORDER BY incident_id, rn
  LIMIT 1;

  IF FOUND THEN
    RAISE EXCEPTION 'incident % (id %): transition to % at %: %',
        bad.code, bad.incident_id, bad.to_status, bad.at, bad.reason
      USING ERRCODE = 'check_violation',
            HINT = 'transitions are appended in time order and must follow the workflow; '
                   'see store/vocab.py WORKFLOW';
  END IF;
"""

_APPLY_UPDATE_0003 = r"""
  UPDATE incident i
     SET status = l.to_status,
         tier = l.tier,
         status_at = l.at,
         closed_at = CASE WHEN l.to_status = 'closed' THEN l.at END,
         extended_due_at = COALESCE(e.new_due_at, i.extended_due_at),
         -- first step of each kind (LEAST ignores NULLs)
         reworked_at = LEAST(i.reworked_at, k.reworked_at),
         returned_at = LEAST(i.returned_at, k.returned_at),
         extended_at = LEAST(i.extended_at, k.extended_at)
    FROM (SELECT DISTINCT ON (incident_id) incident_id, to_status, tier, at
            FROM new_rows ORDER BY incident_id, at DESC, id DESC) l
    LEFT JOIN (SELECT DISTINCT ON (incident_id) incident_id, new_due_at
                 FROM new_rows WHERE to_status = 'extended'
                ORDER BY incident_id, at DESC, id DESC) e USING (incident_id)
    LEFT JOIN (SELECT incident_id,
                      min(at) FILTER (WHERE to_status = 'reworked') AS reworked_at,
                      min(at) FILTER (WHERE to_status = 'returned') AS returned_at,
                      min(at) FILTER (WHERE to_status = 'extended') AS extended_at
                 FROM new_rows WHERE to_status IN ('reworked', 'returned', 'extended')
                GROUP BY incident_id) k USING (incident_id)
   WHERE i.id = l.incident_id;
  RETURN NULL;
END
"""

_APPLY_UPDATE_0001 = r"""
  UPDATE incident i
     SET status = l.to_status,
         tier = l.tier,
         status_at = l.at,
         closed_at = CASE WHEN l.to_status = 'closed' THEN l.at END,
         extended_due_at = COALESCE(e.new_due_at, i.extended_due_at)
    FROM (SELECT DISTINCT ON (incident_id) incident_id, to_status, tier, at
            FROM new_rows ORDER BY incident_id, at DESC, id DESC) l
    LEFT JOIN (SELECT DISTINCT ON (incident_id) incident_id, new_due_at
                 FROM new_rows WHERE to_status = 'extended'
                ORDER BY incident_id, at DESC, id DESC) e USING (incident_id)
   WHERE i.id = l.incident_id;
  RETURN NULL;
END
"""


def _apply(body_end: str) -> str:
    return (
        "CREATE OR REPLACE FUNCTION incident_transition_apply() RETURNS trigger "
        "LANGUAGE plpgsql AS $$" + _APPLY_CHECKS + body_end + "$$;\n"
    )


# Backfill of the step columns from the log (run before the guards cover them).
BACKFILL_STEPS = r"""
UPDATE incident i
   SET reworked_at = k.reworked_at, returned_at = k.returned_at, extended_at = k.extended_at
  FROM (SELECT incident_id,
               min(at) FILTER (WHERE to_status = 'reworked') AS reworked_at,
               min(at) FILTER (WHERE to_status = 'returned') AS returned_at,
               min(at) FILTER (WHERE to_status = 'extended') AS extended_at
          FROM incident_transition
         WHERE to_status IN ('reworked', 'returned', 'extended')
         GROUP BY incident_id) k
 WHERE i.id = k.incident_id;
"""

BACKFILL_REPEATS = (
    "SELECT incident_repeat_refresh(ARRAY(SELECT id FROM incident), CAST('{}' AS bigint[]));"
)

FUNCTIONS = r"""
CREATE FUNCTION incident_repeat_refresh(sources bigint[], extra bigint[],
                                        force_bulk boolean DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
-- Recompute repeat_of of the incidents `sources`, of the later incidents within the rule
-- of any of them (each source may now be their nearest earlier one), and of `extra`.
-- Returns the number of rows whose repeat_of changed. force_bulk: NULL chooses the way
-- (index probes for fewer than 5,000 sources when the spatial index exists), true/false
-- forces it (the tests check both).
DECLARE
  targets bigint[];
  changed integer;
  -- 30 m in degrees of longitude at 54°N (the most anywhere in China), with 1 % to spare:
  -- a box of this half-width around a point holds every point within 30 m of it
  eps CONSTANT double precision := 30 / (111319.0 * cos(radians(54.0))) * 1.01;
  -- cells of the bulk path: at least eps wide, so pairs lie in neighbouring cells
  cell CONSTANT double precision := 0.0005;
  bulk boolean := COALESCE(force_bulk, cardinality(sources) >= 5000
                                        OR to_regclass('ix_incident_geom') IS NULL);
BEGIN
  IF cardinality(sources) = 0 AND cardinality(extra) = 0 THEN
    RETURN 0;
  END IF;
  IF bulk AND (SELECT count(*) FROM incident) = cardinality(sources) THEN
    -- every incident is a source (a load into an empty table, the backfill): no others
    targets := ARRAY(SELECT unnest(sources) UNION SELECT unnest(extra));
  ELSIF bulk THEN
    WITH s AS (
      SELECT i.id, i.category_code, i.reported_at, i.geom,
             CAST(floor(ST_X(i.geom) / cell) AS integer) + o.dx AS cx,
             CAST(floor(ST_Y(i.geom) / cell) AS integer) + o.dy AS cy
        FROM incident i
        JOIN unnest(sources) AS u (id) ON u.id = i.id
       CROSS JOIN (VALUES (-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1),
                          (1, -1), (1, 0), (1, 1)) AS o (dx, dy)
    ), later AS (
      SELECT x.id
        FROM incident x
        JOIN s ON s.category_code = x.category_code
              AND s.cx = CAST(floor(ST_X(x.geom) / cell) AS integer)
              AND s.cy = CAST(floor(ST_Y(x.geom) / cell) AS integer)
       WHERE x.reported_at > s.reported_at
         AND x.reported_at <= s.reported_at + interval '90 days'
         AND x.reported_at > (SELECT min(reported_at) FROM s)
         AND x.reported_at <= (SELECT max(reported_at) FROM s) + interval '90 days'
         AND ST_DWithin(CAST(x.geom AS geography), CAST(s.geom AS geography), 30)
    )
    SELECT array_agg(DISTINCT id) INTO targets
      FROM (SELECT unnest(sources) AS id UNION ALL SELECT id FROM later
            UNION ALL SELECT unnest(extra)) AS a;
  ELSE
    SELECT array_agg(DISTINCT id) INTO targets FROM (
      SELECT unnest(sources) AS id
      UNION ALL
      SELECT x.id
        FROM incident s
        JOIN unnest(sources) AS u (id) ON u.id = s.id
        JOIN LATERAL (
             SELECT c.id FROM (
                  SELECT b.id, b.category_code, b.reported_at, b.geom FROM incident b
                   WHERE b.geom && ST_Expand(s.geom, eps) OFFSET 0) c
              WHERE c.category_code = s.category_code
                AND c.reported_at > s.reported_at
                AND c.reported_at <= s.reported_at + interval '90 days'
                AND ST_DWithin(CAST(c.geom AS geography), CAST(s.geom AS geography), 30)
             ) x ON true
      UNION ALL
      SELECT unnest(extra)) AS a;
  END IF;

  IF bulk THEN
    WITH t AS (
      SELECT i.id, i.category_code, i.reported_at, i.geom, i.repeat_of,
             CAST(floor(ST_X(i.geom) / cell) AS integer) AS cx,
             CAST(floor(ST_Y(i.geom) / cell) AS integer) AS cy
        FROM incident i
        JOIN unnest(targets) AS u (id) ON u.id = i.id
    ), t9 AS (
      SELECT t.id, t.category_code, t.reported_at, t.geom, t.cx + o.dx AS cx, t.cy + o.dy AS cy
        FROM t CROSS JOIN (VALUES (-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1),
                                  (1, -1), (1, 0), (1, 1)) AS o (dx, dy)
    ), best AS (
      SELECT DISTINCT ON (t9.id) t9.id, b.id AS rep
        FROM t9
        JOIN incident b
          ON b.category_code = t9.category_code
         AND CAST(floor(ST_X(b.geom) / cell) AS integer) = t9.cx
         AND CAST(floor(ST_Y(b.geom) / cell) AS integer) = t9.cy
       WHERE b.reported_at < t9.reported_at
         AND b.reported_at >= t9.reported_at - interval '90 days'
         AND b.reported_at >= (SELECT min(reported_at) FROM t) - interval '90 days'
         AND b.reported_at < (SELECT max(reported_at) FROM t)
         AND ST_DWithin(CAST(b.geom AS geography), CAST(t9.geom AS geography), 30)
       ORDER BY t9.id, b.reported_at DESC, b.id
    )
    UPDATE incident i SET repeat_of = best.rep
      FROM t LEFT JOIN best ON best.id = t.id
     WHERE i.id = t.id AND i.repeat_of IS DISTINCT FROM best.rep;
  ELSE
    UPDATE incident i SET repeat_of = r.rep
      FROM (SELECT t.id, t.repeat_of,
                   (SELECT c.id FROM (
                         SELECT b.id, b.category_code, b.reported_at, b.geom FROM incident b
                          WHERE b.geom && ST_Expand(t.geom, eps) OFFSET 0) c
                     WHERE c.category_code = t.category_code
                       AND c.reported_at < t.reported_at
                       AND c.reported_at >= t.reported_at - interval '90 days'
                       AND ST_DWithin(CAST(c.geom AS geography), CAST(t.geom AS geography), 30)
                     ORDER BY c.reported_at DESC, c.id
                     LIMIT 1) AS rep
              FROM incident t JOIN unnest(targets) AS u (id) ON u.id = t.id) r
     WHERE i.id = r.id AND i.repeat_of IS DISTINCT FROM r.rep;
  END IF;
  GET DIAGNOSTICS changed = ROW_COUNT;
  RETURN changed;
END $$;

COMMENT ON FUNCTION incident_repeat_refresh(bigint[], bigint[], boolean) IS
  'Recomputes incident.repeat_of (same subcategory, within 30 m, reported in the 90 days before; the latest) for the given incidents, the later ones near them, and extra.';

CREATE FUNCTION incident_repeat_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM incident_repeat_refresh(ARRAY(SELECT id FROM inserted_incidents),
                                  CAST('{}' AS bigint[]));
  RETURN NULL;
END $$;

CREATE FUNCTION incident_repeat_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM incident_repeat_refresh(
      ARRAY[NEW.id],
      ARRAY(SELECT i.id FROM incident i WHERE i.repeat_of = NEW.id));
  RETURN NULL;
END $$;

CREATE FUNCTION incident_repeat_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM incident_repeat_refresh(
      CAST('{}' AS bigint[]),
      ARRAY(SELECT i.id FROM incident i
             WHERE i.repeat_of IN (SELECT d.id FROM deleted_incidents d)));
  RETURN NULL;
END $$;
"""

# The guards of 0001, covering the new columns too.
_GUARDS_0003 = r"""
CREATE OR REPLACE FUNCTION incident_refuse_derived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    RAISE EXCEPTION 'incident %: status, tier, status_at, closed_at, extended_due_at, reworked_at, returned_at and extended_at are derived from incident_transition, repeat_of from the incidents before it', NEW.code
      USING ERRCODE = 'check_violation',
            HINT = 'insert the incident without them, then append its transitions (reported, registered, ...)';
  END IF;
  IF pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'incident %: status and tier change only by appending to incident_transition (and repeat_of only with the incidents themselves)', NEW.code
      USING ERRCODE = 'check_violation',
            HINT = 'insert a row into incident_transition instead of updating the incident';
  END IF;
  RETURN NEW;
END $$;

DROP TRIGGER incident_derived_on_insert ON incident;
DROP TRIGGER incident_derived_on_update ON incident;

CREATE TRIGGER incident_derived_on_insert BEFORE INSERT ON incident FOR EACH ROW
  WHEN (NEW.status IS NOT NULL OR NEW.tier IS NOT NULL OR NEW.status_at IS NOT NULL
        OR NEW.closed_at IS NOT NULL OR NEW.extended_due_at IS NOT NULL
        OR NEW.reworked_at IS NOT NULL OR NEW.returned_at IS NOT NULL
        OR NEW.extended_at IS NOT NULL OR NEW.repeat_of IS NOT NULL)
  EXECUTE FUNCTION incident_refuse_derived();

CREATE TRIGGER incident_derived_on_update BEFORE UPDATE ON incident FOR EACH ROW
  WHEN ((OLD.status, OLD.tier, OLD.status_at, OLD.closed_at, OLD.extended_due_at,
         OLD.reworked_at, OLD.returned_at, OLD.extended_at, OLD.repeat_of)
        IS DISTINCT FROM (NEW.status, NEW.tier, NEW.status_at, NEW.closed_at,
                          NEW.extended_due_at, NEW.reworked_at, NEW.returned_at,
                          NEW.extended_at, NEW.repeat_of))
  EXECUTE FUNCTION incident_refuse_derived();
"""

_GUARDS_0001 = r"""
CREATE OR REPLACE FUNCTION incident_refuse_derived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    RAISE EXCEPTION 'incident %: status, tier, status_at, closed_at and extended_due_at are derived from incident_transition', NEW.code
      USING ERRCODE = 'check_violation',
            HINT = 'insert the incident without them, then append its transitions (reported, registered, ...)';
  END IF;
  IF pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'incident %: status and tier change only by appending to incident_transition', NEW.code
      USING ERRCODE = 'check_violation',
            HINT = 'insert a row into incident_transition instead of updating the incident';
  END IF;
  RETURN NEW;
END $$;

DROP TRIGGER incident_derived_on_insert ON incident;
DROP TRIGGER incident_derived_on_update ON incident;

CREATE TRIGGER incident_derived_on_insert BEFORE INSERT ON incident FOR EACH ROW
  WHEN (NEW.status IS NOT NULL OR NEW.tier IS NOT NULL OR NEW.status_at IS NOT NULL
        OR NEW.closed_at IS NOT NULL OR NEW.extended_due_at IS NOT NULL)
  EXECUTE FUNCTION incident_refuse_derived();

CREATE TRIGGER incident_derived_on_update BEFORE UPDATE ON incident FOR EACH ROW
  WHEN ((OLD.status, OLD.tier, OLD.status_at, OLD.closed_at, OLD.extended_due_at)
        IS DISTINCT FROM (NEW.status, NEW.tier, NEW.status_at, NEW.closed_at, NEW.extended_due_at))
  EXECUTE FUNCTION incident_refuse_derived();
"""

TRIGGERS = r"""
CREATE TRIGGER incident_repeat_after_insert AFTER INSERT ON incident
  REFERENCING NEW TABLE AS inserted_incidents
  FOR EACH STATEMENT EXECUTE FUNCTION incident_repeat_after_insert();

CREATE TRIGGER incident_repeat_after_update AFTER UPDATE OF category_code, reported_at, geom
  ON incident FOR EACH ROW
  WHEN ((OLD.category_code, OLD.reported_at, OLD.geom)
        IS DISTINCT FROM (NEW.category_code, NEW.reported_at, NEW.geom))
  EXECUTE FUNCTION incident_repeat_after_update();

CREATE TRIGGER incident_repeat_after_delete AFTER DELETE ON incident
  REFERENCING OLD TABLE AS deleted_incidents
  FOR EACH STATEMENT EXECUTE FUNCTION incident_repeat_after_delete();
"""

#: After the columns exist: new trigger bodies, backfill, then guards and triggers (the
#: backfill writes the columns directly, which the extended guards would refuse).
UPGRADE = (
    _apply(_APPLY_UPDATE_0003)
    + FUNCTIONS
    + BACKFILL_STEPS
    + BACKFILL_REPEATS
    + _GUARDS_0003
    + TRIGGERS
)

#: Before the columns are dropped.
DOWNGRADE = (
    r"""
DROP TRIGGER IF EXISTS incident_repeat_after_insert ON incident;
DROP TRIGGER IF EXISTS incident_repeat_after_update ON incident;
DROP TRIGGER IF EXISTS incident_repeat_after_delete ON incident;
DROP FUNCTION IF EXISTS incident_repeat_after_insert();
DROP FUNCTION IF EXISTS incident_repeat_after_update();
DROP FUNCTION IF EXISTS incident_repeat_after_delete();
DROP FUNCTION IF EXISTS incident_repeat_refresh(bigint[], bigint[], boolean);
"""
    + _GUARDS_0001
    + _apply(_APPLY_UPDATE_0001)
)
