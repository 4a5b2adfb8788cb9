"""Text of the 考核 (assessment) page."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "page_assess": ("考核", "Assessment"),
    # filters
    "as_month": ("考核月份", "Month"),
    "as_month_help": (
        "默认为库中最近一个完整月份。",
        "Default: the latest complete month in the store.",
    ),
    "as_month_option": ("{year}年{month}月", "{year}-{month:02d}"),
    "as_month_partial": (
        "{year}年{month}月（数据截至{day}日）",
        "{year}-{month:02d} (data up to day {day})",
    ),
    "as_community": ("社区", "Community"),
    "as_all_communities": ("全部社区", "All communities"),
    "as_community_help": (
        "只显示该社区的网格员和网格；排名和等次名额仍按整个街道计算。",
        "Shows only this community's workers and grids; ranks and grade caps stay those of "
        "the whole street.",
    ),
    "as_patrols": ("一日两巡是否计入得分", "Two-patrol compliance in the score"),
    "as_patrols_auto": ("自动", "Automatic"),
    "as_patrols_on": ("计入", "Included"),
    "as_patrols_off": ("不计入", "Left out"),
    "as_patrols_help": (
        "自动：本月每个工作日都有巡查轨迹时才按轨迹计算一日两巡；轨迹不全时不计入，"
        "以免把未导入轨迹当作未巡查。",
        "Automatic: computed from the GPS tracks only when every working day of the month "
        "has tracks; otherwise left out, so that tracks not yet loaded do not count as "
        "patrols missed.",
    ),
    # notes on the data
    "as_summary": (
        "{street} · {month} · 参加考核网格员 {n} 人",
        "{street} · {month} · {n} grid workers assessed",
    ),
    "as_patrols_in": (
        "一日两巡按巡查轨迹计算（本月 {days} 个工作日均有轨迹）。",
        "Two-patrol compliance is computed from the GPS tracks ({days} working days, all "
        "with tracks).",
    ),
    "as_patrols_forced": (
        "一日两巡按巡查轨迹计算，但本月 {workdays} 个工作日中只有 {days} 天有轨迹，"
        "其余工作日一律计为未达标。",
        "Two-patrol compliance is computed from the GPS tracks, but only {days} of the "
        "month's {workdays} working days have tracks; the others all count as not met.",
    ),
    "as_patrols_partial": (
        "本月 {workdays} 个工作日中只有 {days} 天有巡查轨迹，一日两巡暂不计入得分，"
        "其余各项权重按比例放大。导入全月轨迹后会自动计入；也可在左侧选择“计入”"
        "（缺轨迹的工作日计为未达标）。",
        "Only {days} of the month's {workdays} working days have GPS tracks, so two-patrol "
        "compliance is left out of the score and the other weights are scaled up. It is "
        "included once the month's tracks are loaded; or choose “Included” on the left "
        "(days without tracks then count as not met).",
    ),
    "as_patrols_none": (
        "本月没有巡查轨迹，一日两巡不计入得分，其余各项权重按比例放大。",
        "There are no GPS tracks for this month: two-patrol compliance is left out of the "
        "score and the other weights are scaled up.",
    ),
    "as_patrols_left_out": (
        "已选择一日两巡不计入得分，其余各项权重按比例放大。",
        "Two-patrol compliance is left out of the score, as chosen; the other weights are "
        "scaled up.",
    ),
    "as_no_workers": (
        "{month}没有在岗网格员（没有网格员负责网格）。请换一个月份或街道。",
        "No grid worker answered for a grid in {month}. Choose another month or street.",
    ),
    "as_no_community_workers": (
        "所选社区在{month}没有网格员。请选择“全部社区”或其他社区。",
        "The chosen community had no grid worker in {month}. Choose all communities or "
        "another one.",
    ),
    "as_no_months": (
        "库中还没有事件，无法确定考核月份。请先导入事件数据（`python -m loaders`）。",
        "The store holds no incidents, so there is no month to assess. Load incidents first "
        "(`python -m loaders`).",
    ),
    "as_failed": (
        "考核无法计算：{error}。请换一个月份；若问题仍在，请检查数据导入。",
        "The assessment could not be computed: {error}. Choose another month; if it "
        "persists, check the loaded data.",
    ),
    "as_bad_worker": (
        "链接中的网格员 {value} 不在本月的名单中，已改为显示第一名。",
        "The link's worker {value} is not assessed this month; the first one is shown.",
    ),
    # grade distribution
    "as_dist_title": ("等次分布", "Grades"),
    "as_dist_count": ("{n} 人", "{n} workers"),
    "as_dist_cap": (
        "上限 {cap_pct} × {total} 人 = {cap} 人",
        "cap {cap_pct} × {total} = {cap}",
    ),
    "as_dist_rest": ("其余网格员", "everyone else"),
    "as_dist_note": (
        "名额按全街道 {total} 人计算，向下取整；名额是上限，不必用满。",
        "Caps are of the street's {total} workers, rounded down; a cap is a ceiling, not a "
        "quota to fill.",
    ),
    "as_stars_title": ("星级分布", "Stars"),
    "as_stars_axis": ("星级", "Stars"),
    "as_stars_tick": ("{n}星", "{n}★"),
    "as_workers_axis": ("人数", "Workers"),
    # formula
    "as_formula_title": ("评分办法（按当前设置生成）", "How the score works (from the settings)"),
    "as_formula_score": (
        "综合得分 = 1 + 4 × ({terms}) ÷ ({weights})",
        "score = 1 + 4 × ({terms}) ÷ ({weights})",
    ),
    "as_formula_renorm": (
        "各项得分率在 0～1 之间。某项没有数值时（本月网格无到期事件、一日两巡不计入等）"
        "该项不计，分母只加计入项的权重，相当于其余权重按比例放大。",
        "Each share lies in 0–1. A component without a value (no case due in the grid, "
        "two-patrol compliance left out, …) is left out and its weight dropped from the "
        "divisor: the other weights are scaled up.",
    ),
    "as_formula_stars": (
        "星级 = 综合得分四舍五入取整（{lo}～{hi} 星）。",
        "Stars = the score rounded half up ({lo}–{hi}).",
    ),
    "as_formula_good": (
        "好：至少 {stars} 星{late}，人数不超过 {cap_pct}（向下取整）。",
        "Good: at least {stars} stars{late}, at most {cap_pct} of the workers (rounded down).",
    ),
    "as_formula_late": (
        "，且当月没有重大事件超过 {hours} 小时才上报",
        ", and no major incident reported more than {hours} h after it occurred that month",
    ),
    "as_formula_fair": (
        "较好：至少 {stars} 星，人数不超过 {cap_pct}（向下取整）。",
        "Fairly good: at least {stars} stars, at most {cap_pct} of the workers (rounded down).",
    ),
    "as_formula_average": (
        "一般：其余网格员。",
        "Average: everyone else.",
    ),
    "as_formula_ties": (
        "排名：按综合得分（保留 {dec} 位小数）从高到低，同分时上报事件多者在前；两者都相同"
        "的网格员等次相同，名额不够时整组都不评该等次。",
        "Ranking: by score ({dec} decimals), highest first; between equal scores, more "
        "incidents reported first. Workers equal on both always get the same grade; a group "
        "that does not fit in a cap misses that grade as a whole.",
    ),
    "as_comp_incident_quota": ("事件上报", "incident quota"),
    "as_comp_log_quota": ("民情日志", "work logs"),
    "as_comp_two_patrol": ("一日两巡", "two patrols"),
    "as_comp_on_time": ("按期办结", "on-time closure"),
    "as_comp_no_rework": ("无返工", "no rework"),
    "as_def_incident_quota": (
        "事件上报 = [min(1, 矛盾纠纷数 ÷ {disputes}) + min(1, 安全隐患数 ÷ {hazards})] ÷ 2"
        "（每月至少上报矛盾纠纷 {disputes} 件、安全隐患 {hazards} 件）",
        "incident quota = [min(1, disputes ÷ {disputes}) + min(1, hazards ÷ {hazards})] ÷ 2 "
        "(at least {disputes} disputes and {hazards} hazards reported a month)",
    ),
    "as_def_log_quota": (
        "民情日志 = 日志达标周数 ÷ 考核周数（社区网格每周 {urban} 篇，村网格每周 {village} 篇；"
        "节假日所在周按工作日数折算，向上取整）",
        "work logs = weeks at quota ÷ weeks assessed ({urban} a week in a community grid, "
        "{village} in a village grid; weeks with holidays scaled to their working days, "
        "rounded up)",
    ),
    "as_def_two_patrol": (
        "一日两巡 = 达标工作日 ÷ 工作日（每天至少巡查 {n} 次，两次开始相隔至少 {gap} 小时，"
        "每次在网格内至少 {inside} 分钟）",
        "two patrols = working days met ÷ working days (at least {n} patrols a day, starting "
        "at least {gap} h apart, each at least {inside} min inside the grid)",
    ),
    "as_def_on_time": (
        "按期办结 = 网格内本月到期事件中按期办结的比例",
        "on-time closure = share of the cases due in the grid this month closed by their deadline",
    ),
    "as_def_no_rework": (
        "无返工 = 1 − 网格内本月上报事件的返工率",
        "no rework = 1 − rework rate of the incidents reported in the grid this month",
    ),
    # worker ranking
    "as_rank_title": ("网格员排名", "Grid workers, ranked"),
    "as_rank_caption": (
        "共 {n} 人。同分且上报事件数相同者名次相同。“—”表示没有数据（不计分）。"
        "按期办结、返工为该网格员所负责网格本月的数据。",
        "{n} workers. Workers tied on score and incidents reported share a rank. “—”: no "
        "data (left out of the score). On time and rework are of the worker's grids this "
        "month.",
    ),
    "as_col_rank": ("排名", "Rank"),
    "as_col_name": ("姓名", "Name"),
    "as_col_grids": ("负责网格", "Grids"),
    "as_col_stars": ("星级", "Stars"),
    "as_col_score": ("得分", "Score"),
    "as_col_grade": ("等次", "Grade"),
    "as_col_incidents": ("矛盾纠纷 · 安全隐患（件/定额）", "Disputes · hazards (got/quota)"),
    "as_col_logs": ("民情日志（篇/应写 · 达标周）", "Logs (got/required · weeks met)"),
    "as_col_patrol": ("一日两巡", "Two patrols"),
    "as_col_on_time": ("按期办结", "On time"),
    "as_col_rework": ("返工", "Rework"),
    "as_download_workers": ("下载网格员考核表（CSV）", "Download the worker table (CSV)"),
    "as_download_grids": ("下载网格排名（CSV）", "Download the grid ranking (CSV)"),
    # worker detail
    "as_detail_title": ("网格员得分说明", "Why a worker got their stars"),
    "as_detail_pick": ("选择网格员", "Grid worker"),
    "as_detail_head": (
        "{name}（{code}）：第 {rank} 名，{stars} 星，得分 {score}，等次 {grade}",
        "{name} ({code}): rank {rank}, {stars} stars, score {score}, grade {grade}",
    ),
    "as_detail_total": (
        "得分 = 1 + {points} = {score}，四舍五入为 {stars} 星。",
        "Score = 1 + {points} = {score}, rounded to {stars} stars.",
    ),
    "as_detail_no_score": (
        "没有任何可计分项，无法评星，等次为一般。",
        "No component has a value: no stars, graded average.",
    ),
    "as_dcol_part": ("计分项", "Component"),
    "as_dcol_figures": ("本月数据", "This month"),
    "as_dcol_value": ("得分率", "Share"),
    "as_dcol_weight": ("权重", "Weight"),
    "as_dcol_norm": ("占得分比重", "Part of the score"),
    "as_dcol_points": ("得分", "Points"),
    "as_not_counted": ("不计", "left out"),
    "as_fig_incident": (
        "矛盾纠纷 {disputes}/{dq} 件，安全隐患 {hazards}/{hq} 件",
        "disputes {disputes}/{dq}, hazards {hazards}/{hq}",
    ),
    "as_fig_logs": (
        "日志 {logs}/{need} 篇，达标 {met}/{weeks} 周",
        "logs {logs}/{need}, {met}/{weeks} weeks at quota",
    ),
    "as_fig_patrol": ("达标工作日占 {share}", "{share} of working days met"),
    "as_fig_patrol_none": ("无轨迹数据或未计入", "no tracks, or left out"),
    "as_fig_on_time": (
        "到期 {due} 件，按期办结 {ok} 件",
        "{due} cases due, {ok} closed on time",
    ),
    "as_fig_rework": (
        "上报 {reported} 件，返工 {reworked} 件",
        "{reported} reported, {reworked} reworked",
    ),
    "as_why_good": (
        "评为好：达到 {stars} 星，排名在好等次名额（{cap} 人）之内。",
        "Graded good: {stars} stars or more, ranked within the cap for good ({cap}).",
    ),
    "as_why_fair": (
        "评为较好：达到 {stars} 星，排名在较好等次名额（{cap} 人）之内。",
        "Graded fairly good: {stars} stars or more, ranked within the cap for fairly good ({cap}).",
    ),
    "as_why_not_good_stars": (
        "不能评好：不足 {stars} 星。",
        "Not good: fewer than {stars} stars.",
    ),
    "as_why_not_good_late": (
        "不能评好：当月有 {n} 件重大事件超过 {hours} 小时才上报。",
        "Not good: {n} major incident(s) reported more than {hours} h late this month.",
    ),
    "as_why_not_good_cap": (
        "未评为好：好等次名额（{cap} 人）已由排名更前的网格员占满，或同分同组人数超出剩余名额。",
        "Not good: the cap for good ({cap}) was filled by workers ranked higher, or this "
        "worker's tied group did not fit in what was left.",
    ),
    "as_why_not_fair_stars": (
        "不能评较好：不足 {stars} 星。",
        "Not fairly good: fewer than {stars} stars.",
    ),
    "as_why_not_fair_cap": (
        "未评为较好：较好等次名额（{cap} 人）已满，或同分同组人数超出剩余名额。",
        "Not fairly good: the cap for fairly good ({cap}) was filled, or this worker's tied "
        "group did not fit in what was left.",
    ),
    "as_on_map": ("在一张图上查看 {grid}", "Show {grid} on the overview map"),
    # grid ranking
    "as_grid_title": ("网格排名", "Grids, ranked"),
    "as_grid_caption": (
        "按网格员得分排序（一个网格本月有多名网格员时取平均分），同分时按按期办结率；"
        "事件指标为本月该网格的数据。",
        "Ordered by the grid worker's score (the mean when a grid had several), then by "
        "on-time closure; incident figures are the grid's for the month.",
    ),
    "as_gcol_grid": ("网格", "Grid"),
    "as_gcol_code": ("网格编码", "Grid code"),
    "as_gcol_workers": ("网格员", "Workers"),
    "as_gcol_reported": ("上报事件", "Reported"),
    "as_gcol_closure": ("办结率", "Closure rate"),
    "as_gcol_on_time": ("按期办结率", "On-time rate"),
    "as_gcol_rework": ("返工率", "Rework rate"),
    "as_gcol_overdue": ("超期未办结", "Open overdue"),
}
