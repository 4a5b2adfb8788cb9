"""Every SQL statement of the incident KPIs and the worker assessment (``geo.kpis``,
``geo.assess``), as ``sqlalchemy.text`` with bound parameters; nothing here is built from
input.

The state of an incident *as of* an instant ``T`` is the state after every transition
logged strictly before ``T`` (periods are half-open, ``[start, end)``, and the default ``T``
is ``end``). The incident row's derived columns (``status``, ``tier``, ``closed_at``,
``extended_due_at``) are that state whenever ``status_at < T``; only the few incidents with
a later step (reported near the end, reopened, still moving) are looked up in the
transition log, through its ``(incident_id, at)`` index. So a briefing on a past period
shows the figures as they stood then, and re-running it later gives the same numbers.

Jurisdiction filters are optional parameters (``None`` = no filter, ``:p IS NULL OR …``);
the unit an incident is grouped under is chosen by the ``:level`` parameter in a ``CASE``.
"""

from __future__ import annotations

from sqlalchemy import text

from store.kpi_summary import REGULAR as REGULAR_I

# --- KPIs ----------------------------------------------------------------------------------
#
# Parameters of KPI_FIGURES
#   level           'all' | 'district' | 'street' | 'community' | 'grid': the grouping unit
#   district, street, community, grid
#                   optional filters (street and grid use their indexes)
#   start, upto, as_of                 the period [start, upto) and its as-of instant
#   prev_start, prev_upto, prev_as_of  the same for the previous period
#   with_previous   whether to compute the previous period at all
#   major_severity, max_delay_s        the 4-hour rule
#   repeat_m, repeat_days              the repeat rule
#   with_repeats    whether to compute repeats (the costly part at district scale)
#   steps_by_scan   find rework/return steps by one scan of the log rather than an index
#                   probe per incident (chosen by geo.kpis from the size of the query)
#
# Cohorts, per period (see geo/kpis.py for the definitions in words):
#   in_r       reported in [start, upto)
#   due_in     deadline in force as of T in [start, upto)           (upto <= T)
#   closed_in  closed as of T, the standing closure in [start, upto)
#   overdue    open as of T, reported before T, deadline in force before T
# The candidate filter below is a superset of their union that needs no log lookup.

#: An incident's state as of T, from ``lg`` (its stored row, ``stale`` when a step came at
#: or after T, ``last_step`` and ``ext_due`` read from the log before T): one definition for
#: the statement over the incidents and the summary's correction of the incidents open
#: across T, so the two paths cannot drift apart.
_STATE_AS_OF_T = """\
               CASE WHEN lg.stale THEN COALESCE((lg.last_step).to_status, 'reported')
                    ELSE lg.status END AS s_status,
               CASE WHEN lg.stale THEN COALESCE((lg.last_step).tier, 'grid')
                    ELSE lg.tier END AS s_tier,
               CASE WHEN lg.stale
                    THEN CASE WHEN (lg.last_step).to_status = 'closed'
                              THEN (lg.last_step).at END
                    ELSE lg.closed_at END AS s_closed_at,
               COALESCE(CASE WHEN lg.stale THEN lg.ext_due ELSE lg.extended_due_at END,
                        lg.due_at) AS deadline,
               (CASE WHEN lg.stale THEN lg.ext_due ELSE lg.extended_due_at END) IS NOT NULL
                   AS s_extended,
"""

KPI_FIGURES = text(
    f"""
    WITH p AS (
        SELECT v.period, v.t0, v.t1, v.as_of
          FROM (VALUES
                  (0, CAST(:start AS timestamptz), CAST(:upto AS timestamptz),
                      CAST(:as_of AS timestamptz)),
                  (1, CAST(:prev_start AS timestamptz), CAST(:prev_upto AS timestamptz),
                      CAST(:prev_as_of AS timestamptz))
               ) AS v (period, t0, t1, as_of)
         WHERE v.period = 0 OR CAST(:with_previous AS boolean)
    ), cand AS (
        -- group keys in the C collation: codes are digits, and sorting them by the
        -- database's locale rules would cost more than the rest of the aggregation
        SELECT p.period, p.t0, p.t1, p.as_of,
               i.id, i.category_code COLLATE "C" AS category_code, i.severity,
               i.occurred_at, i.reported_at, i.due_at,
               i.geom, i.status, i.tier, i.closed_at, i.extended_due_at,
               CASE CAST(:level AS text)
                   WHEN 'street' THEN i.street_code
                   WHEN 'community' THEN left(i.grid_code, 12)
                   WHEN 'grid' THEN i.grid_code
                   WHEN 'district' THEN left(i.street_code, 6) || '000000'
                   ELSE ''
               END COLLATE "C" AS unit,
               (i.status_at IS NULL OR i.status_at >= p.as_of) AS stale,
               (i.reported_at >= p.t0 AND i.reported_at < p.t1) AS in_r
          FROM p
          JOIN incident i
            ON i.reported_at < p.as_of
           AND (i.reported_at >= p.t0 OR i.due_at >= p.t0 OR i.extended_due_at >= p.t0
                OR i.closed_at >= p.t0 OR i.status IS DISTINCT FROM 'closed'
                OR i.status_at IS NULL OR i.status_at >= p.as_of)
         WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
           AND (CAST(:grid AS text) IS NULL OR i.grid_code = :grid)
           AND (CAST(:district AS text) IS NULL
                OR left(i.street_code, 6) = left(CAST(:district AS text), 6))
           AND (CAST(:community AS text) IS NULL OR left(i.grid_code, 12) = :community)
    ), box AS (
        -- for one street, community or grid: the area its incidents (and their neighbours)
        -- lie in, so that repeats are looked for there only
        SELECT ST_Expand(ST_Extent(i.geom),
                         :repeat_m / (111319.0 * cos(radians(54.0))) * 1.01) AS b
          FROM incident i
         WHERE CAST(:with_repeats AS boolean)
           AND COALESCE(:street, :grid) IS NOT NULL
           AND (CAST(:street AS text) IS NULL OR i.street_code = :street)
           AND (CAST(:grid AS text) IS NULL OR i.grid_code = :grid)
           AND (CAST(:community AS text) IS NULL OR left(i.grid_code, 12) = :community)
           AND i.reported_at >= (SELECT min(p.t0) FROM p)
           AND i.reported_at < (SELECT max(p.t1) FROM p)
    ), win AS (
        -- Repeats, once for both periods: every incident of the window reported_at in
        -- [first start − window, last end), clustered per subcategory by DBSCAN with eps =
        -- the largest span in degrees of repeat_m metres anywhere in China (≤ 54°N) and
        -- minpoints 2, so any two incidents within repeat_m of each other share a cluster.
        -- Pairs are then looked for inside clusters only (PostGIS builds its own spatial
        -- index for DBSCAN; probing the incident table's GiST index once per incident
        -- costs ~10× more at district scale), and the ellipsoid distance decides.
        SELECT i.id, i.category_code, i.reported_at, i.geom,
               ST_ClusterDBSCAN(i.geom, :repeat_m / (111319.0 * cos(radians(54.0))) * 1.01, 2)
                   OVER (PARTITION BY i.category_code) AS k
          FROM incident i
         WHERE CAST(:with_repeats AS boolean)
           AND i.reported_at >= (SELECT min(p.t0) FROM p) - make_interval(days => :repeat_days)
           AND i.reported_at < (SELECT max(p.t1) FROM p)
           AND (NOT EXISTS (SELECT 1 FROM box WHERE box.b IS NOT NULL)
                OR i.geom && (SELECT box.b FROM box))
    ), cl AS (
        SELECT * FROM win WHERE win.k IS NOT NULL
    ), rep AS (
        SELECT DISTINCT a.id
          FROM cl a
          JOIN cl b ON b.category_code = a.category_code AND b.k = a.k
         WHERE b.reported_at < a.reported_at
           AND b.reported_at >= a.reported_at - make_interval(days => :repeat_days)
           AND ST_DWithin(CAST(a.geom AS geography), CAST(b.geom AS geography), :repeat_m)
    ), steps_scan AS (
        -- the same steps for every incident at once, by one scan of the log: cheaper than
        -- an index probe per incident when the incidents are many (a district, all units)
        SELECT t.incident_id,
               min(t.at) FILTER (WHERE t.to_status = 'reworked') AS reworked_at,
               min(t.at) FILTER (WHERE t.to_status = 'returned') AS returned_at
          FROM incident_transition t
         WHERE CAST(:steps_by_scan AS boolean) AND t.to_status IN ('reworked', 'returned')
         GROUP BY t.incident_id
    ), lg AS (
        -- from the log: the last step before T and the extension in force then, only for
        -- the incidents that moved after T (CASE skips the subqueries for the others);
        -- the steps of the reported ones from the (incident_id, at, to_status) index alone
        SELECT c.*,
               CASE WHEN c.stale THEN (
                   SELECT t FROM incident_transition t
                    WHERE t.incident_id = c.id AND t.at < c.as_of
                    ORDER BY t.at DESC, t.id DESC
                    LIMIT 1) END AS last_step,
               CASE WHEN c.stale THEN (
                   SELECT t.new_due_at FROM incident_transition t
                    WHERE t.incident_id = c.id AND t.at < c.as_of
                      AND t.to_status = 'extended'
                    ORDER BY t.at DESC, t.id DESC
                    LIMIT 1) END AS ext_due,
               CASE WHEN c.in_r AND NOT CAST(:steps_by_scan AS boolean) THEN (
                   SELECT ARRAY[bool_or(t.to_status = 'reworked'),
                                bool_or(t.to_status = 'returned')]
                     FROM incident_transition t
                    WHERE t.incident_id = c.id AND t.at < c.as_of)
                    WHEN c.in_r THEN ARRAY[COALESCE(sc.reworked_at < c.as_of, false),
                                           COALESCE(sc.returned_at < c.as_of, false)]
               END AS steps
          FROM cand c
          LEFT JOIN steps_scan sc ON sc.incident_id = c.id
        OFFSET 0  -- evaluate each subquery once, not once per field taken from it
    ), st AS (
        SELECT lg.*,
{_STATE_AS_OF_T}               lg.steps[1] AS reworked,
               lg.steps[2] AS returned
          FROM lg
    ), f AS (
        SELECT st.period, st.unit, st.category_code, st.in_r, st.s_tier, st.s_extended,
               st.s_status = 'closed' AS closed_now,
               st.s_status = 'feedback' AS awaiting_review,
               (st.deadline >= st.t0 AND st.deadline < st.t1) AS due_in,
               (st.s_closed_at IS NOT NULL AND st.s_closed_at <= st.deadline) AS on_time,
               (st.s_closed_at >= st.t0 AND st.s_closed_at < st.t1) AS closed_in,
               (st.s_status <> 'closed' AND st.deadline < st.as_of) AS overdue,
               CAST(EXTRACT(EPOCH FROM st.s_closed_at - st.reported_at) AS double precision)
                   / 3600.0 AS hours,
               st.severity >= :major_severity AS major,
               EXTRACT(EPOCH FROM st.reported_at - st.occurred_at) <= :max_delay_s
                   AS reported_in_time,
               st.reworked, st.returned,
               rep.id IS NOT NULL AS repeat
          FROM st
          LEFT JOIN rep ON rep.id = st.id
    )
    SELECT f.period, f.unit,
           CASE WHEN GROUPING(f.category_code) = 0 THEN f.category_code END AS category_code,
           count(*) FILTER (WHERE f.in_r) AS reported,
           count(*) FILTER (WHERE f.in_r AND f.closed_now) AS reported_closed,
           count(*) FILTER (WHERE f.in_r AND f.awaiting_review) AS awaiting_review,
           count(*) FILTER (WHERE f.due_in) AS due,
           count(*) FILTER (WHERE f.due_in AND f.on_time) AS due_on_time,
           count(*) FILTER (WHERE f.overdue) AS open_overdue,
           count(*) FILTER (WHERE f.closed_in) AS closed,
           avg(f.hours) FILTER (WHERE f.closed_in) AS mean_hours,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY f.hours) FILTER (WHERE f.closed_in)
               AS median_hours,
           count(*) FILTER (WHERE f.closed_in AND f.s_tier = 'grid') AS closed_grid,
           count(*) FILTER (WHERE f.closed_in AND f.s_tier = 'community') AS closed_community,
           count(*) FILTER (WHERE f.closed_in AND f.s_tier = 'street') AS closed_street,
           count(*) FILTER (WHERE f.closed_in AND f.s_tier = 'department')
               AS closed_department,
           count(*) FILTER (WHERE f.in_r AND f.reworked) AS reworked,
           count(*) FILTER (WHERE f.in_r AND f.s_extended) AS extended,
           count(*) FILTER (WHERE f.in_r AND f.returned) AS returned,
           count(*) FILTER (WHERE f.in_r AND f.major) AS major,
           count(*) FILTER (WHERE f.in_r AND f.major AND f.reported_in_time) AS major_in_time,
           count(*) FILTER (WHERE f.in_r AND f.repeat) AS repeats
      FROM f
     GROUP BY GROUPING SETS ((f.period, f.unit), (f.period, f.unit, f.category_code))
    """  # noqa: S608 (constants only; every value is a bound parameter)
)

# Units of a level, with names, so that a unit without incidents still gets a row of zeros.
# Grids: those valid at some time in [start, end).
KPI_UNITS = text(
    """
    SELECT a.code AS unit, a.name
      FROM admin_unit a
     WHERE a.level = :level AND :level IN ('district', 'street', 'community')
       AND (CAST(:street AS text) IS NULL OR left(a.code, 9) = left(CAST(:street AS text), 9))
       AND (CAST(:district AS text) IS NULL OR left(a.code, 6) = left(CAST(:district AS text), 6))
    UNION ALL
    SELECT g.code, g.name
      FROM grid g
     WHERE :level = 'grid'
       AND g.valid_from < CAST(:end_date AS date)
       AND (g.valid_to IS NULL OR g.valid_to > CAST(:start_date AS date))
       AND (CAST(:street AS text) IS NULL OR g.street_code = :street)
       AND (CAST(:district AS text) IS NULL
            OR left(g.street_code, 6) = left(CAST(:district AS text), 6))
    ORDER BY 1
    """
)

# Name of one unit (admin unit or grid); no row when the code is unknown.
UNIT_NAME = text(
    """
    SELECT name FROM admin_unit WHERE code = :code
    UNION ALL
    SELECT name FROM grid WHERE code = :code
    """
)

CATEGORIES = text("SELECT code, parent_code, name_zh, name_en FROM incident_category ORDER BY code")

# The two lists of one period: incidents open and past their deadline as of T, and major
# incidents reported in [start, upto) later than the 4-hour rule allows. Same as-of state
# logic and filters as KPI_FIGURES (one period only).
KPI_LISTS = text(
    """
    WITH cand AS (
        SELECT i.id, i.code, i.category_code, i.severity, i.occurred_at, i.reported_at,
               i.due_at, i.grid_code, i.street_code, i.status, i.tier, i.extended_due_at,
               (i.status_at IS NULL OR i.status_at >= :as_of) AS stale,
               (i.reported_at >= :start AND i.reported_at < :upto
                AND i.severity >= :major_severity
                AND EXTRACT(EPOCH FROM i.reported_at - i.occurred_at) > :max_delay_s)
                   AS late_major
          FROM incident i
         WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
           AND (CAST(:grid AS text) IS NULL OR i.grid_code = :grid)
           AND (CAST(:district AS text) IS NULL
                OR left(i.street_code, 6) = left(CAST(:district AS text), 6))
           AND (CAST(:community AS text) IS NULL OR left(i.grid_code, 12) = :community)
           AND i.reported_at < :as_of
           AND (i.status IS DISTINCT FROM 'closed' OR i.status_at IS NULL
                OR i.status_at >= :as_of
                OR (i.reported_at >= :start AND i.severity >= :major_severity))
    ), st AS (
        SELECT c.*,
               CASE WHEN c.stale THEN COALESCE(l.to_status, 'reported') ELSE c.status END
                   AS s_status,
               CASE WHEN c.stale THEN COALESCE(l.tier, 'grid') ELSE c.tier END AS s_tier,
               COALESCE(CASE WHEN c.stale THEN e.new_due_at ELSE c.extended_due_at END,
                        c.due_at) AS deadline
          FROM cand c
          LEFT JOIN LATERAL (
                SELECT t.to_status, t.tier
                  FROM incident_transition t
                 WHERE c.stale AND t.incident_id = c.id AND t.at < :as_of
                 ORDER BY t.at DESC, t.id DESC
                 LIMIT 1) l ON true
          LEFT JOIN LATERAL (
                SELECT t.new_due_at
                  FROM incident_transition t
                 WHERE c.stale AND t.incident_id = c.id AND t.at < :as_of
                   AND t.to_status = 'extended'
                 ORDER BY t.at DESC, t.id DESC
                 LIMIT 1) e ON true
    )
    SELECT st.code, st.category_code, cat.name_zh AS category_zh, cat.name_en AS category_en,
           st.grid_code, st.street_code, st.severity, st.occurred_at, st.reported_at,
           st.deadline, st.s_status AS status, st.s_tier AS tier,
           (st.s_status <> 'closed' AND st.deadline < :as_of) AS overdue,
           st.late_major,
           CAST(EXTRACT(EPOCH FROM CAST(:as_of AS timestamptz) - st.deadline)
                AS double precision) / 86400.0 AS days_overdue,
           CAST(EXTRACT(EPOCH FROM st.reported_at - st.occurred_at) AS double precision)
               / 3600.0 AS delay_hours
      FROM st
      JOIN incident_category cat ON cat.code = st.category_code
     WHERE (st.s_status <> 'closed' AND st.deadline < :as_of) OR st.late_major
     ORDER BY st.deadline, st.code
    """
)

# The current value of ``jit`` and a transaction-local setting of it. JIT compilation of
# KPI_FIGURES costs ~0.7 s (its seq scan alone passes jit_above_cost) while the statement runs
# in about as long interpreted, so geo.kpis turns it off around that one statement.
JIT_GET = text("SELECT current_setting('jit')")
JIT_SET = text("SELECT set_config('jit', :value, true)")

# --- worker assessment -------------------------------------------------------------------
#
# A month [m0, m1) (local midnights as timestamptz) and its dates [d0, d1).

# Grid workers active in the month, with the grids they served in it (their grid_worker
# assignments overlapping the month, or the grids naming them as responsible worker).
ASSESS_WORKERS = text(
    """
    WITH w AS (
        SELECT s.id, s.code, s.name, s.street_code
          FROM staff s
         WHERE s.role = 'grid_worker'
           AND s.active_from < :d1 AND (s.active_to IS NULL OR s.active_to >= :d0)
           AND (CAST(:street AS text) IS NULL OR s.street_code = :street)
    ), served AS (
        SELECT a.staff_id, a.grid_code
          FROM staff_assignment a
         WHERE a.role = 'grid_worker'
           AND a.valid_from < :d1 AND (a.valid_to IS NULL OR a.valid_to >= :d0)
        UNION
        SELECT g.worker_id, g.code
          FROM grid g
         WHERE g.worker_id IS NOT NULL
           AND g.valid_from < :d1 AND (g.valid_to IS NULL OR g.valid_to > :d0)
    )
    SELECT w.id AS worker_id, w.code AS worker_code, w.name AS worker_name, w.street_code,
           g.code AS grid_code, g.kind AS grid_kind
      FROM w
      LEFT JOIN served sv ON sv.staff_id = w.id
      LEFT JOIN grid g ON g.code = sv.grid_code
     ORDER BY w.code, g.code
    """
)

# Incidents each worker reported in the month, by top-level category, and how many of
# their major reports broke the 4-hour rule.
ASSESS_REPORTS = text(
    """
    SELECT i.reporter_id AS worker_id,
           count(*) AS reported,
           count(*) FILTER (WHERE left(i.category_code, 2) = :dispute) AS disputes,
           count(*) FILTER (WHERE left(i.category_code, 2) = :hazard) AS hazards,
           count(*) FILTER (
               WHERE i.severity >= :major_severity
                 AND EXTRACT(EPOCH FROM i.reported_at - i.occurred_at) > :max_delay_s)
               AS late_majors
      FROM incident i
     WHERE i.reporter_id IS NOT NULL
       AND i.reported_at >= :m0 AND i.reported_at < :m1
       AND (CAST(:street AS text) IS NULL OR i.street_code = :street)
     GROUP BY i.reporter_id
    """
)

# Work logs per worker and ISO week (Monday start) over the dates [w0, w1).
ASSESS_LOGS = text(
    """
    SELECT l.worker_id, CAST(date_trunc('week', l.log_date) AS date) AS week,
           count(*) AS logs
      FROM work_log l
     WHERE l.log_date >= :w0 AND l.log_date < :w1
       AND (CAST(:street AS text) IS NULL OR l.street_code = :street)
     GROUP BY l.worker_id, week
    """
)

# --- KPIs from the per street and day sums (migration 0004, store.kpi_summary) -------------
#
# Same output as KPI_FIGURES (period, unit, category_code, counts, mean_hours,
# median_hours) for a level of street, district or all, when each period's start, its end
# (upto) and its as-of instant T are local midnights of the sums' day. Parameters as for
# KPI_FIGURES plus d0, d1, t_day (and prev_d0, prev_d1, prev_t_day): the local dates of
# start, upto and T. Sums are taken over the days; the incidents "open across T"
# (reported_at < T <= status_at, by the span index) and the irregular ones (partial index)
# are taken out with their current state and put back with their state as of T, read from
# the log exactly as KPI_FIGURES does.

_SUMMARY_UNIT = """CASE CAST(:level AS text)
                   WHEN 'street' THEN {s}
                   WHEN 'district' THEN left({s}, 6) || '000000'
                   ELSE ''
               END COLLATE "C\""""

KPI_SUMMARY_FIGURES = text(
    f"""
    WITH p AS (
        SELECT v.period, v.t0, v.t1, v.as_of, v.d0, v.d1, v.t_day
          FROM (VALUES
                  (0, CAST(:start AS timestamptz), CAST(:upto AS timestamptz),
                      CAST(:as_of AS timestamptz), CAST(:d0 AS date), CAST(:d1 AS date),
                      CAST(:t_day AS date)),
                  (1, CAST(:prev_start AS timestamptz), CAST(:prev_upto AS timestamptz),
                      CAST(:prev_as_of AS timestamptz), CAST(:prev_d0 AS date),
                      CAST(:prev_d1 AS date), CAST(:prev_t_day AS date))
               ) AS v (period, t0, t1, as_of, d0, d1, t_day)
         WHERE v.period = 0 OR CAST(:with_previous AS boolean)
    ), sums AS (
        SELECT p.period, {_SUMMARY_UNIT.format(s="s.street_code")} AS unit,
               sum(s.reported) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS reported,
               sum(s.major) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS major,
               sum(s.major_in_time) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1)
                   AS major_in_time,
               sum(s.repeats) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS repeats,
               sum(s.reported_closed) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1)
                   AS reported_closed,
               sum(s.awaiting_review) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1)
                   AS awaiting_review,
               sum(s.extended) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS extended,
               sum(s.reworked) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS reworked,
               sum(s.returned) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS returned,
               sum(s.due) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS due,
               sum(s.due_on_time) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS due_on_time,
               sum(s.due_open) FILTER (WHERE s.day < p.t_day) AS open_overdue,
               sum(s.closed) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS closed,
               sum(s.closed_grid) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1) AS closed_grid,
               sum(s.closed_community) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1)
                   AS closed_community,
               sum(s.closed_street) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1)
                   AS closed_street,
               sum(s.closed_department) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1)
                   AS closed_department,
               sum(s.closed_seconds) FILTER (WHERE s.day >= p.d0 AND s.day < p.d1)
                   AS closed_seconds
          FROM p
          JOIN kpi_street_day s ON s.day < greatest(p.d1, p.t_day)
         WHERE (CAST(:street AS text) IS NULL OR s.street_code = :street)
           AND (CAST(:district AS text) IS NULL
                OR left(s.street_code, 6) = left(CAST(:district AS text), 6))
         GROUP BY 1, 2
    ), irregular AS MATERIALIZED (
        -- from the partial index alone (the planner would otherwise scan by reported_at)
        SELECT i.id FROM incident i
         WHERE i.status_at IS NULL OR i.status_at < i.reported_at OR i.due_at < i.reported_at
            OR i.extended_due_at < i.reported_at OR i.closed_at < i.reported_at
            OR i.closed_at <> i.status_at
    ), x AS (
        -- the incidents whose state as of T may differ from their stored one
        SELECT p.period, p.t0, p.t1, p.as_of, i.*, {REGULAR_I} AS regular,
               {_SUMMARY_UNIT.format(s="i.street_code")} AS unit
          FROM p
          JOIN incident i
            ON tstzrange(i.reported_at, greatest(i.status_at, i.reported_at), '(]') @> p.as_of
         WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
           AND (CAST(:district AS text) IS NULL
                OR left(i.street_code, 6) = left(CAST(:district AS text), 6))
        UNION ALL
        SELECT p.period, p.t0, p.t1, p.as_of, i.*, false, {_SUMMARY_UNIT.format(s="i.street_code")}
          FROM p
          JOIN irregular ir ON true
          JOIN incident i ON i.id = ir.id AND i.reported_at < p.as_of
           AND NOT tstzrange(i.reported_at, greatest(i.status_at, i.reported_at), '(]')
                   @> p.as_of
         WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
           AND (CAST(:district AS text) IS NULL
                OR left(i.street_code, 6) = left(CAST(:district AS text), 6))
    ), lg AS (
        SELECT x.*,
               (x.status_at IS NULL OR x.status_at >= x.as_of) AS stale,
               CASE WHEN x.status_at IS NULL OR x.status_at >= x.as_of THEN (
                   SELECT t FROM incident_transition t
                    WHERE t.incident_id = x.id AND t.at < x.as_of
                    ORDER BY t.at DESC, t.id DESC
                    LIMIT 1) END AS last_step,
               CASE WHEN x.status_at IS NULL OR x.status_at >= x.as_of THEN (
                   SELECT t.new_due_at FROM incident_transition t
                    WHERE t.incident_id = x.id AND t.at < x.as_of
                      AND t.to_status = 'extended'
                    ORDER BY t.at DESC, t.id DESC
                    LIMIT 1) END AS ext_due,
               (SELECT ARRAY[COALESCE(bool_or(t.to_status = 'reworked'
                                              AND t.at < x.as_of), false),
                             COALESCE(bool_or(t.to_status = 'returned'
                                              AND t.at < x.as_of), false),
                             COALESCE(bool_or(t.to_status = 'reworked'), false),
                             COALESCE(bool_or(t.to_status = 'returned'), false)]
                  FROM incident_transition t
                 WHERE t.incident_id = x.id) AS steps
          FROM x
        OFFSET 0
    ), st AS (
        SELECT lg.*,
{_STATE_AS_OF_T}               COALESCE(lg.extended_due_at, lg.due_at) AS c_deadline,
               (lg.reported_at >= lg.t0 AND lg.reported_at < lg.t1) AS in_r
          FROM lg
    ), f AS (
        -- +1 for the state as of T, −1 for the stored state counted in the sums
        SELECT st.period, st.unit,
               st.in_r AND st.s_status = 'closed' AS a_reported_closed,
               st.in_r AND st.s_status = 'feedback' AS a_awaiting_review,
               st.in_r AND st.s_extended AS a_extended,
               st.in_r AND st.steps[1] AS a_reworked,
               st.in_r AND st.steps[2] AS a_returned,
               (st.deadline >= st.t0 AND st.deadline < st.t1) AS a_due,
               (st.deadline >= st.t0 AND st.deadline < st.t1
                AND st.s_closed_at IS NOT NULL AND st.s_closed_at <= st.deadline) AS a_on_time,
               (st.s_status <> 'closed' AND st.deadline < st.as_of) AS a_overdue,
               (st.s_closed_at >= st.t0 AND st.s_closed_at < st.t1) AS a_closed,
               st.s_tier,
               CAST(EXTRACT(EPOCH FROM st.s_closed_at - st.reported_at) AS double precision)
                   / 3600.0 AS a_hours,
               EXTRACT(EPOCH FROM st.s_closed_at - st.reported_at) AS a_seconds,
               st.regular AND st.in_r AND st.status = 'closed' AS c_reported_closed,
               st.regular AND st.in_r AND st.status = 'feedback' AS c_awaiting_review,
               st.regular AND st.in_r AND st.extended_due_at IS NOT NULL AS c_extended,
               st.regular AND st.in_r AND st.steps[3] AS c_reworked,
               st.regular AND st.in_r AND st.steps[4] AS c_returned,
               st.regular AND st.c_deadline >= st.t0 AND st.c_deadline < st.t1 AS c_due,
               st.regular AND st.c_deadline >= st.t0 AND st.c_deadline < st.t1
                   AND st.closed_at <= st.c_deadline AS c_on_time,
               st.regular AND st.status <> 'closed' AND st.c_deadline < st.as_of AS c_overdue,
               st.regular AND st.closed_at >= st.t0 AND st.closed_at < st.t1 AS c_closed,
               st.tier AS c_tier,
               EXTRACT(EPOCH FROM st.closed_at - st.reported_at) AS c_seconds
          FROM st
    ), fix AS (
        SELECT f.period, f.unit,
               count(*) FILTER (WHERE f.a_reported_closed)
                 - count(*) FILTER (WHERE f.c_reported_closed) AS reported_closed,
               count(*) FILTER (WHERE f.a_awaiting_review)
                 - count(*) FILTER (WHERE f.c_awaiting_review) AS awaiting_review,
               count(*) FILTER (WHERE f.a_extended)
                 - count(*) FILTER (WHERE f.c_extended) AS extended,
               count(*) FILTER (WHERE f.a_reworked)
                 - count(*) FILTER (WHERE f.c_reworked) AS reworked,
               count(*) FILTER (WHERE f.a_returned)
                 - count(*) FILTER (WHERE f.c_returned) AS returned,
               count(*) FILTER (WHERE f.a_due) - count(*) FILTER (WHERE f.c_due) AS due,
               count(*) FILTER (WHERE f.a_on_time)
                 - count(*) FILTER (WHERE f.c_on_time) AS due_on_time,
               count(*) FILTER (WHERE f.a_overdue)
                 - count(*) FILTER (WHERE f.c_overdue) AS open_overdue,
               count(*) FILTER (WHERE f.a_closed)
                 - count(*) FILTER (WHERE f.c_closed) AS closed,
               count(*) FILTER (WHERE f.a_closed AND f.s_tier = 'grid')
                 - count(*) FILTER (WHERE f.c_closed AND f.c_tier = 'grid') AS closed_grid,
               count(*) FILTER (WHERE f.a_closed AND f.s_tier = 'community')
                 - count(*) FILTER (WHERE f.c_closed AND f.c_tier = 'community')
                   AS closed_community,
               count(*) FILTER (WHERE f.a_closed AND f.s_tier = 'street')
                 - count(*) FILTER (WHERE f.c_closed AND f.c_tier = 'street') AS closed_street,
               count(*) FILTER (WHERE f.a_closed AND f.s_tier = 'department')
                 - count(*) FILTER (WHERE f.c_closed AND f.c_tier = 'department')
                   AS closed_department,
               COALESCE(sum(f.a_seconds) FILTER (WHERE f.a_closed), 0)
                 - COALESCE(sum(f.c_seconds) FILTER (WHERE f.c_closed), 0) AS closed_seconds,
               count(*) FILTER (WHERE f.c_closed) AS stored_closed,
               array_agg(f.a_hours) FILTER (WHERE f.a_closed) AS fix_hours
          FROM f
         GROUP BY 1, 2
    ), tot AS (
        SELECT COALESCE(s.period, x.period) AS period, COALESCE(s.unit, x.unit) AS unit,
               COALESCE(s.reported, 0) AS reported,
               COALESCE(s.reported_closed, 0) + COALESCE(x.reported_closed, 0)
                   AS reported_closed,
               COALESCE(s.awaiting_review, 0) + COALESCE(x.awaiting_review, 0)
                   AS awaiting_review,
               COALESCE(s.due, 0) + COALESCE(x.due, 0) AS due,
               COALESCE(s.due_on_time, 0) + COALESCE(x.due_on_time, 0) AS due_on_time,
               COALESCE(s.open_overdue, 0) + COALESCE(x.open_overdue, 0) AS open_overdue,
               COALESCE(s.closed, 0) + COALESCE(x.closed, 0) AS closed,
               COALESCE(s.closed_seconds, 0) + COALESCE(x.closed_seconds, 0) AS closed_seconds,
               COALESCE(s.closed_grid, 0) + COALESCE(x.closed_grid, 0) AS closed_grid,
               COALESCE(s.closed_community, 0) + COALESCE(x.closed_community, 0)
                   AS closed_community,
               COALESCE(s.closed_street, 0) + COALESCE(x.closed_street, 0) AS closed_street,
               COALESCE(s.closed_department, 0) + COALESCE(x.closed_department, 0)
                   AS closed_department,
               COALESCE(s.reworked, 0) + COALESCE(x.reworked, 0) AS reworked,
               COALESCE(s.extended, 0) + COALESCE(x.extended, 0) AS extended,
               COALESCE(s.returned, 0) + COALESCE(x.returned, 0) AS returned,
               COALESCE(s.major, 0) AS major,
               COALESCE(s.major_in_time, 0) AS major_in_time,
               COALESCE(s.repeats, 0) AS repeats,
               COALESCE(x.stored_closed, 0) AS stored_closed,
               x.fix_hours
          FROM sums s
          FULL JOIN fix x ON x.period = s.period AND x.unit = s.unit
    )
    SELECT tot.period, tot.unit, CAST(NULL AS text) AS category_code,
           tot.reported, tot.reported_closed, tot.awaiting_review, tot.due, tot.due_on_time,
           tot.open_overdue, tot.closed,
           CASE WHEN tot.closed > 0
                THEN CAST(tot.closed_seconds AS double precision) / tot.closed / 3600.0
           END AS mean_hours,
           CAST(NULL AS double precision) AS median_hours,
           tot.closed_grid, tot.closed_community, tot.closed_street, tot.closed_department,
           tot.reworked, tot.extended, tot.returned, tot.major, tot.major_in_time,
           tot.repeats, tot.stored_closed, tot.fix_hours
      FROM tot
    UNION ALL
    SELECT c.period, {_SUMMARY_UNIT.format(s="c.street_code")}, c.category_code COLLATE "C",
           sum(c.reported), 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
           NULL
      FROM (
            -- whole months from the month rows, the days before and after from day rows
            SELECT p.period, m.street_code, m.category_code, m.reported
              FROM p
              JOIN kpi_street_month_category m
                ON m.month >= p.d0 AND CAST(m.month + interval '1 month' AS date) <= p.d1
            UNION ALL
            SELECT e.period, d.street_code, d.category_code, d.reported
              FROM (SELECT p.period, p.d0 AS lo, LEAST(p.d1, pm.first_month) AS hi
                      FROM p, LATERAL (SELECT CAST(date_trunc('month', p.d0 - 1)
                                                   + interval '1 month' AS date)
                                           AS first_month) pm
                    UNION ALL
                    SELECT p.period,
                           GREATEST(pm.first_month, CAST(date_trunc('month', p.d1) AS date)),
                           p.d1
                      FROM p, LATERAL (SELECT CAST(date_trunc('month', p.d0 - 1)
                                                   + interval '1 month' AS date)
                                           AS first_month) pm
                   ) e
              JOIN kpi_street_day_category d ON d.day >= e.lo AND d.day < e.hi
           ) c
     WHERE (CAST(:street AS text) IS NULL OR c.street_code = :street)
       AND (CAST(:district AS text) IS NULL
            OR left(c.street_code, 6) = left(CAST(:district AS text), 6))
     GROUP BY 1, 2, 3
    """  # noqa: S608
)

# The packed hours of the closures stored for each day of both periods (big-endian float8,
# see migration 0004), per period and unit: the median is taken from them in geo.kpis.
KPI_SUMMARY_HOURS = text(
    f"""
    WITH p AS (
        SELECT v.period, v.d0, v.d1
          FROM (VALUES (0, CAST(:d0 AS date), CAST(:d1 AS date)),
                       (1, CAST(:prev_d0 AS date), CAST(:prev_d1 AS date))) AS v (period, d0, d1)
         WHERE v.period = 0 OR CAST(:with_previous AS boolean)
    )
    SELECT p.period, {_SUMMARY_UNIT.format(s="s.street_code")} AS unit, s.closed_hours
      FROM p
      JOIN kpi_street_day s ON s.day >= p.d0 AND s.day < p.d1
     WHERE s.closed > 0
       AND (CAST(:street AS text) IS NULL OR s.street_code = :street)
       AND (CAST(:district AS text) IS NULL
            OR left(s.street_code, 6) = left(CAST(:district AS text), 6))
    """  # noqa: S608
)
