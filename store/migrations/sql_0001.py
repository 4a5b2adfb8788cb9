"""Hand-written SQL of migration 0001: what SQLAlchemy models cannot say.

* The incident workflow: ``incident_transition`` is append-only; each INSERT statement is
  checked as a whole against ``workflow_rule``, the tier rules and time order, and the
  incident's derived columns are updated from it. Writing derived columns directly fails.
* Monthly partitions of ``patrol_fix``, created on demand.
* ``incident_status_mismatch``: incidents whose stored status disagrees with their log
  (always empty; the tests and ``python -m store check`` look at it).
"""

UPGRADE = r"""
CREATE FUNCTION incident_refuse_derived() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER incident_derived_on_insert BEFORE INSERT ON incident FOR EACH ROW
  WHEN (NEW.status IS NOT NULL OR NEW.tier IS NOT NULL OR NEW.status_at IS NOT NULL
        OR NEW.closed_at IS NOT NULL OR NEW.extended_due_at IS NOT NULL)
  EXECUTE FUNCTION incident_refuse_derived();

CREATE TRIGGER incident_derived_on_update BEFORE UPDATE ON incident FOR EACH ROW
  WHEN ((OLD.status, OLD.tier, OLD.status_at, OLD.closed_at, OLD.extended_due_at)
        IS DISTINCT FROM (NEW.status, NEW.tier, NEW.status_at, NEW.closed_at, NEW.extended_due_at))
  EXECUTE FUNCTION incident_refuse_derived();

CREATE FUNCTION incident_transition_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND pg_trigger_depth() > 1 THEN
    RETURN OLD;  -- removed together with its incident (ON DELETE CASCADE)
  END IF;
  RAISE EXCEPTION 'incident_transition is append-only: % refused', TG_OP
    USING ERRCODE = 'check_violation',
          HINT = 'record a correction as a new transition (reworked, reopened, returned)';
END $$;

CREATE TRIGGER incident_transition_append_only BEFORE UPDATE OR DELETE ON incident_transition
  FOR EACH ROW EXECUTE FUNCTION incident_transition_append_only();

CREATE FUNCTION incident_transition_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('gridone.allow_truncate', true) IS DISTINCT FROM 'on' THEN
    RAISE EXCEPTION 'incident_transition is append-only: TRUNCATE refused'
      USING ERRCODE = 'check_violation',
            HINT = 'to empty a whole store on purpose: SET LOCAL gridone.allow_truncate = on';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER incident_transition_refuse_truncate BEFORE TRUNCATE ON incident_transition
  FOR EACH STATEMENT EXECUTE FUNCTION incident_transition_refuse_truncate();

CREATE FUNCTION incident_transition_apply() RETURNS trigger LANGUAGE plpgsql AS $$
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
END $$;

CREATE TRIGGER incident_transition_apply AFTER INSERT ON incident_transition
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION incident_transition_apply();

CREATE VIEW incident_status_mismatch AS
SELECT i.id, i.code, i.status, l.to_status AS log_status, i.tier, l.tier AS log_tier,
       i.status_at, l.at AS log_at
  FROM incident i
  LEFT JOIN LATERAL (
    SELECT t.to_status, t.tier, t.at FROM incident_transition t
     WHERE t.incident_id = i.id ORDER BY t.at DESC, t.id DESC LIMIT 1) l ON true
 WHERE (i.status, i.tier, i.status_at) IS DISTINCT FROM (l.to_status, l.tier, l.at)
    OR (i.status IS NOT DISTINCT FROM 'closed') <> (i.closed_at IS NOT NULL);

CREATE FUNCTION ensure_patrol_fix_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  m date := date_trunc('month', from_ts AT TIME ZONE 'UTC')::date;
  created integer := 0;
  part text;
BEGIN
  IF to_ts < from_ts THEN
    RAISE EXCEPTION 'ensure_patrol_fix_partitions: to (%) before from (%)', to_ts, from_ts;
  END IF;
  WHILE m <= (to_ts AT TIME ZONE 'UTC')::date LOOP
    part := format('patrol_fix_%s', to_char(m, 'YYYY_MM'));
    IF to_regclass(part) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF patrol_fix FOR VALUES FROM (%L) TO (%L)',
                     part, m::timestamp AT TIME ZONE 'UTC',
                     (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
      created := created + 1;
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
  RETURN created;
END $$;

COMMENT ON FUNCTION ensure_patrol_fix_partitions(timestamptz, timestamptz) IS
  'Creates the monthly (UTC) partitions of patrol_fix covering [from_ts, to_ts]; returns how many were new.';
"""

DOWNGRADE = r"""
DROP VIEW IF EXISTS incident_status_mismatch;
DROP TRIGGER IF EXISTS incident_transition_apply ON incident_transition;
DROP TRIGGER IF EXISTS incident_transition_refuse_truncate ON incident_transition;
DROP TRIGGER IF EXISTS incident_transition_append_only ON incident_transition;
DROP TRIGGER IF EXISTS incident_derived_on_update ON incident;
DROP TRIGGER IF EXISTS incident_derived_on_insert ON incident;
DROP FUNCTION IF EXISTS incident_transition_apply();
DROP FUNCTION IF EXISTS incident_transition_append_only();
DROP FUNCTION IF EXISTS incident_transition_refuse_truncate();
DROP FUNCTION IF EXISTS incident_refuse_derived();
DROP FUNCTION IF EXISTS ensure_patrol_fix_partitions(timestamptz, timestamptz);
"""
