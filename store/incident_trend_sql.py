"""SQL of the incident trend (``geo.trend``): incidents reported per local week or month,
per top-level category, for one jurisdiction and period, as ``sqlalchemy.text`` with bound
parameters; nothing here is built from input.

The jurisdiction filters are those of ``store.kpi_sql.KPI_FIGURES`` (each ``None`` = no
filter), so the bins of a period add up to its ``reported`` figure there.
"""

from __future__ import annotations

from sqlalchemy import text

# Parameters
#   bin             'week' (ISO weeks, Monday start) or 'month'
#   tz              the local time zone the bins are cut in
#   start, upto     the period [start, upto) as instants
#   district, street, community, grid   optional jurisdiction filters
#   category        optional category prefix: "03" (top level) or "0302" (subcategory)
INCIDENT_TREND = text(
    """
    SELECT CAST(date_trunc(CAST(:bin AS text), i.reported_at AT TIME ZONE CAST(:tz AS text))
                AS date) AS bin_start,
           left(i.category_code, 2) AS category_code,
           count(*) AS reported
      FROM incident i
     WHERE i.reported_at >= :start AND i.reported_at < :upto
       AND (CAST(:street AS text) IS NULL OR i.street_code = :street)
       AND (CAST(:grid AS text) IS NULL OR i.grid_code = :grid)
       AND (CAST(:district AS text) IS NULL
            OR left(i.street_code, 6) = left(CAST(:district AS text), 6))
       AND (CAST(:community AS text) IS NULL OR left(i.grid_code, 12) = :community)
       AND (CAST(:category AS text) IS NULL
            OR left(i.category_code, length(CAST(:category AS text))) = :category)
     GROUP BY 1, 2
     ORDER BY 1, 2
    """
)
