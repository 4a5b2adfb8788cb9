"""Text of the 事件 (incidents) page."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "page_incidents": ("事件", "Incidents"),
    "inc_street": ("街道", "Street"),
    "inc_community": ("社区", "Community"),
    "inc_all_communities": ("全部社区", "All communities"),
    "inc_period": ("时段", "Period"),
    "inc_preset_month": ("本月", "This month"),
    "inc_preset_last_month": ("上月", "Last month"),
    "inc_preset_quarter": ("本季度", "This quarter"),
    "inc_preset_year": ("本年", "This year"),
    "inc_preset_custom": ("自定义", "Custom"),
    "inc_range": ("起止日期", "From – to"),
    "inc_period_help": (
        "“本月”等按库中最新事件日期（{latest}）截止，不是今天。",
        "“This month” etc. end on the latest incident day in the store ({latest}), not today.",
    ),
    "inc_pick_end": ("请再选择结束日期。", "Now pick the end date."),
    "inc_category": ("事件类别", "Incident category"),
    "inc_all_categories": ("全部类别", "All categories"),
    "inc_category_note": (
        "指标卡、层级办结、趋势、类别图和超期清单只算所选类别；各单元指标表为全部类别。",
        "The cards, tiers, trend, category chart and overdue list cover the chosen category "
        "only; the table by unit covers every category.",
    ),
    "inc_cards_of_category": (
        "以下指标只含“{category}”类事件（重复发生率不按类别计算）。",
        "The figures below are of “{category}” incidents only (no repeat rate by category).",
    ),
    "inc_scope": (
        "{unit} · {start} 至 {end}（对比上期 {pstart} 至 {pend}）",
        "{unit} · {start} to {end} (compared with {pstart} to {pend})",
    ),
    "inc_bad_param": (
        "链接参数 {name}={value} 无效，已改用 {used}。",
        "The link's parameter {name}={value} is not valid; {used} is used instead.",
    ),
    "inc_default": ("默认值", "the default"),
    "inc_no_data_unit": (
        "{unit}还没有任何事件数据。请改选其他街道或社区，或用 `python -m loaders load "
        "incidents 文件` 载入事件。",
        "{unit} has no incidents at all. Choose another street or community, or load "
        "incidents with `python -m loaders load incidents FILE`.",
    ),
    "inc_no_data_period": (
        "{unit}在 {start} 至 {end} 没有上报、到期或办结的事件。"
        "请把时段改为“本年”或更长的自定义时段。",
        "{unit} has no incident reported, due or closed from {start} to {end}. Choose "
        "“This year” or a longer custom period.",
    ),
    "inc_query_failed": (
        "无法计算指标：{error}。请检查时段和街道后重试。",
        "The figures could not be computed: {error}. Check the period and street and retry.",
    ),
    # cards
    "inc_card_closure_rate": ("办结率", "Closure rate"),
    "inc_card_on_time_rate": ("按期办结率", "On-time closure rate"),
    "inc_card_open_overdue": ("超期未办结", "Open and overdue"),
    "inc_card_mean_hours": ("平均办理时长", "Mean handling time"),
    "inc_def_closure_rate": (
        "本期上报且已办结 {num} ÷ 本期上报 {den}",
        "reported and closed {num} ÷ reported {den}",
    ),
    "inc_def_on_time_rate": (
        "期限内办结 {num} ÷ 本期到期 {den}（期限含批准的延期）",
        "closed by the deadline {num} ÷ due in the period {den} (approved extensions count)",
    ),
    "inc_def_open_overdue": (
        "截至期末仍未办结且已过期限的事件（不论何时上报）",
        "open and past the deadline at the period's end (whenever reported)",
    ),
    "inc_def_mean_hours": (
        "本期办结的 {den} 件，从上报到办结的平均小时数（中位数 {median}）",
        "mean hours from report to closure of the {den} closed in the period (median {median})",
    ),
    "inc_def_mean_hours_only": (
        "本期办结的 {den} 件，从上报到办结的平均小时数",
        "mean hours from report to closure of the {den} closed in the period",
    ),
    "inc_hours": ("{v} 小时", "{v} h"),
    "inc_pp": ("{v} 个百分点", "{v} pp"),
    "inc_vs_prev": ("与上期比", "vs previous period"),
    "inc_all_figures": ("全部指标与上期对比", "Every figure against the previous period"),
    "inc_col_figure": ("指标", "Figure"),
    "inc_col_current": ("本期", "This period"),
    "inc_col_previous": ("上期", "Previous"),
    "inc_col_change": ("变化", "Change"),
    # trend
    "inc_trend": ("上报趋势", "Reports over time"),
    "inc_bin": ("按", "By"),
    "inc_bin_week": ("周", "Week"),
    "inc_bin_month": ("月", "Month"),
    "inc_binword_week": ("周", "week"),
    "inc_binword_month": ("月", "month"),
    "inc_trend_caption": (
        "每{bin}上报的事件数（按大类堆叠），共 {n} 件；首尾两段可能不完整。",
        "Incidents reported per {bin} (stacked by category), {n} in all; the first and last "
        "bars may be partial.",
    ),
    "inc_col_bin": ("起始日", "Starting"),
    "inc_col_reported": ("上报数", "Reported"),
    # categories
    "inc_categories": ("事件类别", "Categories"),
    "inc_col_category": ("类别", "Category"),
    "inc_col_subcategory": ("小类", "Subcategory"),
    "inc_col_prev_reported": ("上期上报", "Previous"),
    "inc_no_category_rows": (
        "所选类别本期没有事件。",
        "No incident of this category in the period.",
    ),
    # tiers
    "inc_tiers": (
        "层级办结（小事不出网格）",
        "Where cases closed (small matters stay in the grid)",
    ),
    "inc_card_grid_share": ("小事不出网格率", "Closed within the grid"),
    "inc_card_street_share": ("大事不出街道率", "Closed within the street"),
    "inc_def_grid_share": (
        "网格层级办结 {num} ÷ 本期办结 {den}",
        "closed at grid tier {num} ÷ closed in the period {den}",
    ),
    "inc_def_street_share": (
        "网格、社区、街道层级办结 {num} ÷ 本期办结 {den}",
        "closed at grid, community or street tier {num} ÷ closed in the period {den}",
    ),
    "inc_col_tier": ("办结层级", "Tier"),
    "inc_col_closed": ("办结数", "Closed"),
    "inc_col_share": ("占比", "Share"),
    "inc_no_closed": ("本期没有办结的事件。", "No case closed in the period."),
    # units
    "inc_units": ("各单元指标", "Figures by unit"),
    "inc_by": ("单元", "Units"),
    "inc_by_street": ("街道", "Streets"),
    "inc_by_community": ("社区", "Communities"),
    "inc_by_grid": ("网格", "Grids"),
    "inc_col_unit": ("单元", "Unit"),
    "inc_col_code": ("编码", "Code"),
    "inc_no_unit": ("（不在任何网格内）", "(outside every grid)"),
    "inc_col_on_time_change": ("按期办结率变化", "On-time rate change"),
    # overdue
    "inc_overdue": ("超期未办结清单", "Open and overdue"),
    "inc_overdue_caption": (
        "截至 {as_of} 共 {n} 件，显示超期最久的 {shown} 件；点编号在一张图上查看。",
        "{n} as of {as_of}, the {shown} most overdue shown; click a code to see it on the map.",
    ),
    "inc_no_overdue": ("没有超期未办结的事件。", "No open case is past its deadline."),
    "inc_col_incident": ("事件编号", "Incident"),
    "inc_col_grid": ("网格", "Grid"),
    "inc_col_reported_at": ("上报时间", "Reported"),
    "inc_col_deadline": ("办理期限", "Deadline"),
    "inc_col_status": ("状态", "Status"),
    "inc_col_days": ("超期天数", "Days overdue"),
    "inc_download": ("下载（CSV）", "Download (CSV)"),
}
