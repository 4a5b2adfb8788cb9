"""Text of the 热点 (hotspots) page."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "page_hotspots": ("热点", "Hotspots"),
    "hs_method": ("分析方法", "Method"),
    "method_density": ("密度", "Density"),
    "method_grid": ("Gi* 网格", "Gi* on grids"),
    "method_hex": ("Gi* 六边形", "Gi* on hexagons"),
    "method_emerging": ("时空趋势", "Emerging trends"),
    "help_method_density": (
        "核密度：事件越多、越集中的地方颜色越深；只看多少，不判断是否显著。",
        "Kernel density: the more and the closer the incidents, the darker; no significance test.",
    ),
    "help_method_grid": (
        "找出事件数连同周边网格一起明显偏多（热点）或偏少（冷点）的网格，便于落实到网格员。",
        "Finds grids whose incidents, with their neighbours', are significantly many (hot) or "
        "few (cold); easy to hand to grid workers.",
    ),
    "help_method_hex": (
        "同上，但用大小相同的六边形，不受网格划分影响，能找出更小的聚集区。",
        "As on grids, but on equal hexagons: independent of how grids are drawn, finds "
        "smaller clusters.",
    ),
    "help_method_emerging": (
        "按周或按月逐段分析，判断热点是新出现的、持续的、在加剧还是在减弱。",
        "Analyses week by week or month by month: is a hot spot new, persistent, intensifying "
        "or diminishing?",
    ),
    "street_help": ("分析哪个街道的事件。", "Which street's incidents to analyse."),
    "hs_period": ("时段", "Period"),
    "help_period": (
        "默认为库中最新事件日期之前的90天（含当天）。",
        "Default: the 90 days up to the latest incident in the store.",
    ),
    "pick_end": ("请再选择时段的结束日期。", "Now pick the end date of the period."),
    "hs_category": ("事件类别", "Incident category"),
    "all_categories": ("全部类别", "All categories"),
    "help_category": (
        "只分析所选类别的事件；选大类即包含其下所有小类。",
        "Analyse only this category; a top-level category includes all its subcategories.",
    ),
    "hs_unit": ("分析单元", "Units"),
    "unit_grid": ("网格", "Grids"),
    "unit_hex": ("六边形", "Hexagons"),
    "help_unit": (
        "网格便于落实到人；六边形大小一致，便于相互比较。",
        "Grids map to the people responsible; hexagons are all the same size, easy to compare.",
    ),
    "hs_resolution": ("六边形大小", "Hexagon size"),
    "res_auto": ("自动", "Auto"),
    "res_option": ("{res}级（每个约{area} km²）", "level {res} (≈ {area} km² each)"),
    "help_resolution": (
        "自动：按街道面积和事件数选择，使每个六边形平均有2起以上事件。",
        "Auto: chosen from the area and the number of incidents, about 2 or more incidents a "
        "hexagon on average.",
    ),
    "hs_fdr": ("剔除偶然热点（FDR校正）", "Remove chance hot spots (FDR)"),
    "help_fdr": (
        "同时检验很多单元时总有几个碰巧显著，开启后可剔除这类假热点；建议保持开启。",
        "Testing many units at once makes a few look significant by chance; this removes "
        "them. Leave it on.",
    ),
    "hs_bin": ("时间段", "Time step"),
    "bin_week": ("按周", "Weekly"),
    "bin_month": ("按月", "Monthly"),
    "help_bin": (
        "每周或每月为一段；至少需要3段，10段以上时趋势判断更可靠。",
        "One week or one month per step; at least 3 steps, trends are reliable from about 10.",
    ),
    "bad_param": (
        "链接参数 {name}={value} 无效或不在您的辖区内，已改用 {used}。",
        "The link's parameter {name}={value} is not valid or not in your jurisdiction; {used} "
        "is used instead.",
    ),
    "default_value": ("默认值", "the default"),
    "emerging_too_short": (
        "时空趋势分析至少需要{min}个完整的{bin}，所选时段只有{n}个。请延长时段，或把时间段改为按周。",
        "Emerging trends need at least {min} whole {bin}s; the period holds {n}. Choose a "
        "longer period or weekly steps.",
    ),
    "bin_word_week": ("周", "week"),
    "bin_word_month": ("月", "month"),
    "no_incidents": (
        "所选时段和类别内没有事件。请扩大时段，或改选类别。",
        "No incidents in this period and category. Widen the period or choose another category.",
    ),
    "analysis_failed": (
        "无法完成分析：{error}。请调整时段、类别或分析单元后重试。",
        "The analysis could not be run: {error}. Change the period, category or units and try "
        "again.",
    ),
    "fdr_on": ("已剔除偶然热点（FDR）", "FDR-corrected"),
    "fdr_off": ("未做FDR校正", "no FDR correction"),
    "unit_desc_grid": ("网格", "grids"),
    "unit_desc_hex": (
        "六边形（{res}级，每个约{area} km²）",
        "hexagons (level {res}, ≈ {area} km²)",
    ),
    "result_gi": (
        "{unit} {n_units} 个 · 事件 {n_incidents} 起 · {fdr}",
        "{n_units} {unit} · {n_incidents} incidents · {fdr}",
    ),
    "result_emerging": (
        "{unit} {n_units} 个 · {n_bins} 个时间段（{bin}） · 事件 {n_incidents} 起 · {fdr}",
        "{n_units} {unit} · {n_bins} steps ({bin}) · {n_incidents} incidents · {fdr}",
    ),
    "result_density": (
        "{unit} {n_cells} 个 · 事件 {n_incidents} 起 · 四次核，搜索半径 {band} 米（{rule}）",
        "{n_cells} {unit} · {n_incidents} incidents · quartic kernel, radius {band} m ({rule})",
    ),
    "rule_silverman-spatial": ("按ArcGIS默认规则自动确定", "ArcGIS's default rule"),
    "rule_given": ("指定", "given"),
    "layer_hotspots": ("热点分析", "Hot spots"),
    "layer_density": ("核密度", "Kernel density"),
    "layer_emerging": ("时空趋势模式", "Emerging patterns"),
    "layer_grid_outlines": ("网格边界", "Grid boundaries"),
    "legend_hotspots": ("热点与冷点（Gi*）", "Hot and cold spots (Gi*)"),
    "legend_density": ("核密度（起/km²）", "Density (incidents/km²)"),
    "legend_emerging": ("时空趋势模式", "Emerging pattern"),
    "density_zero": ("0（附近无事件）", "0 (none nearby)"),
    "ranked_hot": ("热点排名", "Hot spots, ranked"),
    "ranked_emerging": ("呈热点模式的单元", "Units with a hot-spot pattern"),
    "ranked_density": ("密度最高的六边形", "Densest hexagons"),
    "ranked_caption": (
        "共 {n} 个，显示前 {shown} 个；完整列表可下载。",
        "{n} in all, the first {shown} shown; download the full list.",
    ),
    "no_hot": ("本次分析没有发现显著热点。", "No significant hot spot in this analysis."),
    "no_emerging_hot": (
        "没有单元呈热点模式。",
        "No unit shows a hot-spot pattern.",
    ),
    "download_csv": ("下载完整列表（CSV）", "Download the full list (CSV)"),
    "under_title": ("热点但巡查不足", "Hot but under-patrolled"),
    "hs_patrol_days": ("巡查统计天数", "Patrol look-back"),
    "patrol_days_option": ("近{days}天", "last {days} days"),
    "help_patrol_days": (
        "统计时段最后一天及之前这些天内，网格员轨迹经过（50米内）的楼栋。",
        "Buildings a grid worker's track passed (within 50 m) in these days up to the "
        "period's last day.",
    ),
    "hs_patrol_min": ("覆盖率低于", "Coverage below"),
    "help_patrol_min": (
        "热点单元内被巡查经过的楼栋比例低于此值，即列为巡查不足。",
        "A hot unit whose share of buildings passed is below this is listed as under-patrolled.",
    ),
    "under_caption": (
        "热点单元中，近{days}天（截至{end}）巡查经过的楼栋不足{min}%的单元。",
        "Hot units where patrols passed fewer than {min}% of the buildings in the {days} days "
        "up to {end}.",
    ),
    "under_none": (
        "所有热点单元近{days}天的巡查覆盖率均不低于{min}%。",
        "Every hot unit had at least {min}% of its buildings passed in the last {days} days.",
    ),
    "under_no_tracks": (
        "近{days}天（截至{end}）没有巡查轨迹，无法判断巡查是否不足。请载入巡查数据，或把时段结束日期改到有轨迹的日期。",
        "No patrol tracks in the {days} days up to {end}: coverage cannot be judged. Load "
        "patrol data or end the period on a day with tracks.",
    ),
    "under_no_hot": (
        "没有显著热点，无需核对巡查。",
        "No significant hot spot, so no patrol check.",
    ),
    "col_coverage": ("巡查覆盖率（%）", "Patrol coverage (%)"),
    "col_patrol": ("情况", "Finding"),
    "col_rank": ("排名", "Rank"),
    "col_unit": ("单元", "Unit"),
    "col_code": ("编码", "Code"),
    "col_grid": ("所在网格", "Grid"),
    "outside_grids": ("（不在网格内）", "(outside every grid)"),
    "col_count": ("事件数", "Incidents"),
    "col_z": ("z值", "z-score"),
    "col_class": ("等级", "Class"),
    "col_pattern": ("模式", "Pattern"),
    "col_last_z": ("最近一段z值", "Final-step z"),
    "col_density": ("密度（起/km²）", "Density (per km²)"),
}
