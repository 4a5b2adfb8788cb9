"""Every threshold of the analytics (KPIs, worker assessment, the two-patrol rule), in one
typed, documented place.

These are policy figures from the assessment rules (考核办法) the documents quote, not
deployment configuration: they do not come from the environment (``store.settings`` holds
that) but from :class:`AnalyticsSettings`, whose defaults are the documented rules. A
caller with different local rules builds its own object and passes it explicitly
(``kpis(..., settings=AnalyticsSettings(repeat=RepeatRule(radius_m=50)))``); nothing reads a
module global. ``tests/test_kpis.py`` fails when a field has no help text.

Why not a field of :class:`store.settings.Settings`: that object is read from environment
variables and each one must appear in the README's configuration table; and ``store/``
imports nothing of ``geo/`` (layers are one-way). The analytics thresholds are a property
of the analytics, so they live beside them.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReportingRule(_Frozen):
    """The 4-hour rule: major incidents are reported within 4 hours of occurring
    (重大矛盾纠纷、安全隐患事发4小时之内上报)."""

    major_severity: int = Field(
        default=3,
        ge=1,
        le=4,
        description=(
            "Lowest severity (1 一般, 2 较大, 3 重大, 4 特别重大) the rule applies to; "
            "store.vocab.MAJOR_SEVERITY is the same figure."
        ),
    )
    max_delay_h: float = Field(
        default=4.0,
        gt=0,
        description=(
            "Longest allowed time from occurrence to report, hours: reported_at − "
            "occurred_at ≤ this is compliant."
        ),
    )


class RepeatRule(_Frozen):
    """When an incident counts as a repeat (重复发生): an earlier incident of the same
    subcategory close by and recently."""

    radius_m: float = Field(
        default=30.0,
        gt=0,
        le=1000,
        description="Distance in metres (on the CGCS2000 ellipsoid) within which an earlier "
        "incident of the same subcategory makes this one a repeat.",
    )
    window_days: int = Field(
        default=90,
        ge=1,
        description="How far back the earlier incident may have been reported, days "
        "(reported_at − window ≤ earlier.reported_at < reported_at).",
    )


class TwoPatrolRule(_Frozen):
    """ "一日两巡": the daily patrol rule a grid meets on a day (computed by
    ``geo.coverage``; the assessment takes its result as a share of days)."""

    patrols_per_day: int = Field(
        default=2, ge=1, description="Patrols a grid needs on a day to meet the rule."
    )
    min_gap_h: float = Field(
        default=3.0,
        ge=0,
        description="Least time between the starts of two counted patrols of one day, hours "
        "(a morning and an afternoon round, not one walk split in two).",
    )
    min_inside_min: float = Field(
        default=15.0,
        ge=0,
        description="Least time a patrol spends inside the grid to count for it, minutes.",
    )


class Quotas(_Frozen):
    """Monthly work quotas of a grid worker (网格员工作量化指标)."""

    dispute_category: str = Field(
        default="01",
        pattern=r"^\d{2}$",
        description="Top-level incident category of disputes (矛盾纠纷) in "
        "data/incident_categories.csv.",
    )
    hazard_category: str = Field(
        default="02",
        pattern=r"^\d{2}$",
        description="Top-level incident category of safety hazards (安全隐患) in "
        "data/incident_categories.csv.",
    )
    disputes_per_month: int = Field(
        default=2, ge=0, description="Disputes a worker reports in a month, at least."
    )
    hazards_per_month: int = Field(
        default=2, ge=0, description="Safety hazards a worker reports in a month, at least."
    )
    urban_logs_per_week: int = Field(
        default=5,
        ge=0,
        description="Work logs (民情日志 / 工作日志, either kind) a week in a community (urban) "
        "grid; special grids count as urban.",
    )
    village_logs_per_week: int = Field(
        default=2,
        ge=0,
        description="Work logs a week in a village grid. A worker serving several grids has "
        "the village quota only when all of them are village grids.",
    )
    workdays_per_week: int = Field(
        default=5,
        ge=1,
        le=7,
        description="Working days of a normal week. A week with fewer working days (public "
        "holidays) needs ceil(quota × working days / this) logs, never more than the quota.",
    )


class StarWeights(_Frozen):
    """Weights of the 1–5 star score's components (each a share in [0, 1]).

    score = 1 + 4 × Σ wᵢ·xᵢ / Σ wᵢ over the components that have a value (a worker whose
    grid had no case due is scored on the others; two-patrol compliance counts only once
    ``geo.coverage`` supplies it)."""

    incident_quota: float = Field(
        default=0.25,
        ge=0,
        description="Dispute and hazard quota: mean of min(1, reported / quota) of the two.",
    )
    log_quota: float = Field(
        default=0.15, ge=0, description="Work logs: share of the month's weeks at quota."
    )
    two_patrol: float = Field(
        default=0.25, ge=0, description="Two-patrol rule: share of the month's days met."
    )
    on_time: float = Field(
        default=0.25,
        ge=0,
        description="On-time closure rate (按期办结率) of the incidents due in the worker's grid.",
    )
    no_rework: float = Field(
        default=0.10,
        ge=0,
        description="1 − rework rate of the incidents reported in the worker's grid.",
    )

    @model_validator(mode="after")
    def _some_weight(self) -> StarWeights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one star weight must be positive")
        return self


class Grades(_Frozen):
    """Grades 好 / 较好 / 一般 (good / fairly good / average) with their caps."""

    good_cap: float = Field(
        default=0.20,
        ge=0,
        le=1,
        description="Largest share of workers graded 好 (good): floor(share × workers).",
    )
    fairly_good_cap: float = Field(
        default=0.30,
        ge=0,
        le=1,
        description="Largest share of workers graded 较好 (fairly good): floor(share × workers).",
    )
    good_min_stars: int = Field(
        default=4,
        ge=1,
        le=5,
        description="Least stars for 好 (四星等次以上): the cap is a ceiling, not a quota to fill.",
    )
    fairly_good_min_stars: int = Field(
        default=3, ge=1, le=5, description="Least stars for 较好 (三星等次以上, fairly good)."
    )
    late_major_bars_good: bool = Field(
        default=True,
        description="A worker who reported a major incident later than the 4-hour rule in "
        "the period cannot be graded 好 (上报不及时的网格员不得评为好).",
    )
    score_decimals: int = Field(
        default=2,
        ge=0,
        le=6,
        description="Scores are compared rounded to this many decimals: workers whose shown "
        "scores are equal are tied and always get the same grade.",
    )

    @model_validator(mode="after")
    def _caps_fit(self) -> Grades:
        if self.good_cap + self.fairly_good_cap > 1:
            raise ValueError("good_cap + fairly_good_cap must not exceed 1")
        if self.good_min_stars < self.fairly_good_min_stars:
            raise ValueError("good_min_stars must be at least fairly_good_min_stars")
        return self


class CoverageParams(_Frozen):
    """Track cleaning and coverage parameters of :mod:`geo.coverage` (its module
    docstring explains them), with the two-patrol rule they apply (field ``rule``)."""

    max_accuracy_m: float = Field(
        default=50.0,
        gt=0,
        description="Fixes whose reported accuracy is worse (larger) than this, metres, are "
        "dropped. Fixes without an accuracy are kept.",
    )
    max_speed_kmh: float = Field(
        default=15.0,
        gt=0,
        description="A fix reached from the previous kept fix faster than this, km/h, is an "
        "impossible jump on foot and dropped.",
    )
    session_gap_min: float = Field(
        default=20.0,
        gt=0,
        description="A gap longer than this between kept fixes, minutes, ends a session; "
        "the next fix starts a new one.",
    )
    min_session_fixes: int = Field(
        default=2, ge=1, description="Kept fixes a session needs to count as a patrol."
    )
    max_step_s: float = Field(
        default=120.0,
        gt=0,
        description="Steps between consecutive kept fixes longer than this, seconds, are not "
        "drawn as track (the signal was lost; the way walked is unknown). They still count "
        "for time and distance.",
    )
    grid_tolerance_m: float = Field(
        default=20.0,
        ge=0,
        description="A fix this close to a grid's polygon, metres, counts as inside it "
        "(boundary roads: half the fixes fall on the other side).",
    )
    building_radius_m: float = Field(
        default=50.0, gt=0, description="A building this close to a track, metres, is passed."
    )
    road_radius_m: float = Field(
        default=20.0,
        gt=0,
        description="A road piece whose midpoint is this close to a track, metres, is walked.",
    )
    road_sample_m: float = Field(
        default=5.0, gt=0, description="Longest road piece for street-length coverage, metres."
    )
    road_grid_tolerance_m: float = Field(
        default=1.0,
        ge=0,
        description="A road piece belongs to every grid this close to its midpoint, metres "
        "(a boundary road belongs to both grids).",
    )
    rule: TwoPatrolRule = Field(
        default_factory=TwoPatrolRule,
        description="The two-patrol rule (一日两巡).",
    )


class AnalyticsSettings(_Frozen):
    """All analytics thresholds. Defaults are the rules the source documents quote: the
    4-hour rule, two patrols a day, 2 disputes + 2 hazards a month, 5 / 2 logs a week,
    good ≤ 20 % (four stars or more) and fairly good ≤ 30 % (three stars or more); and the
    project's choices: repeats within 30 m and 90 days, patrols 3 h apart with 15 min
    inside, the star weights."""

    reporting: ReportingRule = Field(
        default_factory=ReportingRule, description="The 4-hour reporting rule for majors."
    )
    repeat: RepeatRule = Field(
        default_factory=RepeatRule, description="What makes an incident a repeat."
    )
    two_patrol: TwoPatrolRule = Field(
        default_factory=TwoPatrolRule, description="The daily two-patrol rule (一日两巡)."
    )
    quotas: Quotas = Field(default_factory=Quotas, description="A worker's monthly quotas.")
    stars: StarWeights = Field(
        default_factory=StarWeights, description="Weights of the 1–5 star score."
    )
    grades: Grades = Field(default_factory=Grades, description="Grade caps and thresholds.")
    coverage: CoverageParams = Field(
        default_factory=CoverageParams,
        description="GPS track cleaning and patrol coverage (radii, speeds, gaps).",
    )


@lru_cache(maxsize=1)
def default_settings() -> AnalyticsSettings:
    """The documented defaults (one immutable object shared by every caller)."""
    return AnalyticsSettings()
