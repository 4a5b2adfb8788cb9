"""Text of the 巡查 (patrol) page."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "page_patrol": ("巡查", "Patrols"),
    "pat_community": ("社区", "Community"),
    "pat_all_communities": ("全部社区", "All communities"),
    "pat_day": ("日期", "Day"),
    "pat_day_help": (
        "默认为库中最后一天有巡查轨迹的日期。",
        "Default: the latest day with patrol tracks in the store.",
    ),
    "pat_prev_day": ("◀ 前一天", "◀ Previous"),
    "pat_next_day": ("后一天 ▶", "Next ▶"),
    "pat_span": ("范围", "Span"),
    "pat_span_day": ("当天", "That day"),
    "pat_span_week": ("一周（截至当天的7天）", "Week (7 days to that day)"),
    "pat_worker": ("网格员（轨迹回放）", "Worker (track replay)"),
    "pat_all_workers": ("不回放", "No replay"),
    "pat_color": ("网格着色", "Colour grids by"),
    "pat_color_rule": ("一日两巡", "Two-patrol rule"),
    "pat_color_buildings": ("楼栋覆盖率", "Buildings passed"),
    "pat_color_roads": ("道路覆盖率", "Streets walked"),
    "pat_window": ("未巡到楼栋", "Buildings not passed"),
    "pat_window_option": ("{days}天以上未巡到", "not passed in {days} days"),
    "pat_rule_line": (
        "规则：每个网格每天至少{n}次巡查，两次开始时间相隔≥{gap}小时，每次在网格内（含边界外"
        "{tol}米）≥{inside}分钟；楼栋距轨迹≤{bld}米算巡到，道路距轨迹≤{road}米算走过；"
        "精度差于{acc}米或速度超过{speed}公里/小时的定位点剔除，间隔超过{gap_min}分钟另起一次巡查。",
        "Rule: each grid needs {n} patrols a day starting ≥ {gap} h apart, each ≥ {inside} min "
        "inside the grid (or within {tol} m of it); a building ≤ {bld} m from a track is passed, "
        "a street ≤ {road} m is walked; fixes worse than {acc} m or faster than {speed} km/h are "
        "dropped; a gap over {gap_min} min starts a new patrol.",
    ),
    "pat_no_tracks": (
        "{day}（{scope}）没有巡查轨迹。请换一天（最后一天有轨迹的日期是 {latest}），"
        "或确认巡查数据已导入（`python -m loaders`）。",
        "No patrol tracks on {day} ({scope}). Pick another day (the latest with tracks is "
        "{latest}) or check that patrol data was loaded (`python -m loaders`).",
    ),
    "pat_go_latest": ("跳到 {day}", "Go to {day}"),
    "pat_no_fixes_at_all": (
        "该街道还没有任何巡查轨迹数据。请先导入巡查定位数据（`python -m loaders`）。",
        "This street has no patrol tracks at all. Load patrol GPS data first "
        "(`python -m loaders`).",
    ),
    "pat_week_partial": (
        "本周有 {n} 天没有轨迹（{days}）。",
        "{n} day(s) of the week have no tracks ({days}).",
    ),
    "pat_failed": (
        "计算巡查覆盖失败：{error}。请换一个街道或日期后重试。",
        "Computing patrol coverage failed: {error}. Try another street or day.",
    ),
    "pat_metric_met": ("达标网格", "Grids meeting the rule"),
    "pat_metric_met_week": ("达标网格·工作日", "Grid-workdays meeting the rule"),
    "pat_metric_patrols": ("计入的巡查次数", "Counted patrols"),
    "pat_metric_buildings": ("楼栋覆盖率", "Buildings passed"),
    "pat_metric_km": ("巡查里程（公里）", "Distance walked (km)"),
    "pat_met": ("达标", "Met"),
    "pat_not_met": ("未达标", "Not met"),
    "pat_no_data": ("无数据", "No data"),
    "pat_share_0": ("低于50%", "below 50 %"),
    "pat_share_1": ("50%–80%", "50–80 %"),
    "pat_share_2": ("80%–95%", "80–95 %"),
    "pat_share_3": ("95%及以上", "95 % or more"),
    "pat_legend_rule": ("一日两巡", "Two-patrol rule"),
    "pat_legend_rule_week": ("一周达标天数占比", "Share of days met"),
    "pat_legend_buildings": ("楼栋覆盖率", "Buildings passed"),
    "pat_legend_roads": ("道路覆盖率", "Streets walked"),
    "pat_layer_grids": ("网格", "Grids"),
    "pat_layer_track": ("巡查轨迹", "Track"),
    "pat_layer_gaps": ("信号中断", "Signal lost"),
    "pat_layer_dropped": ("剔除的定位点", "Dropped fixes"),
    "pat_layer_unvisited": ("未巡到楼栋", "Buildings not passed"),
    "pat_grids_title": ("各网格巡查情况", "Patrols by grid"),
    "pat_grids_caption": (
        "最差的排在前面。巡查次数只计本网格网格员、在网格内≥{inside}分钟的巡查；"
        "时长为本网格网格员在网格内的分钟数。",
        "Worst first. Patrols: by the grid's own workers with ≥ {inside} min inside; "
        "minutes: time the grid's own workers spent inside it.",
    ),
    "pat_grids_caption_week": (
        "一周合计，只计工作日（休息日不考核）；覆盖率为各工作日的日均值。",
        "Totals over the week's working days (rest days are not assessed); shares are the "
        "mean of the daily shares.",
    ),
    "pat_matrix_title": (
        "一日两巡逐日达标（✓ 达标，✗ 未达标，休 休息日）",
        "Rule met day by day (✓ met, ✗ not, 休 rest day)",
    ),
    "pat_matrix_tab": ("逐日达标", "Day by day"),
    "pat_workers_title": ("各网格员巡查情况", "Patrols by worker"),
    "pat_workers_caption": (
        "巡查次数含所有巡查（不论在哪个网格）；剔除点为精度差或跳点。",
        "Patrols: all of them, wherever walked; dropped: poor accuracy or jumps.",
    ),
    "pat_replay_title": ("轨迹回放", "Track replay"),
    "pat_replay_pick": (
        "在左侧选择一名网格员即可回放其当天轨迹。",
        "Pick a worker in the sidebar to replay their track of the day.",
    ),
    "pat_replay_week": (
        "轨迹回放显示所选日期（{day}）当天的轨迹。",
        "The replay shows the chosen day ({day}).",
    ),
    "pat_replay_none": (
        "{name} 在 {day} 没有定位点。请换一天或换一名网格员。",
        "{name} has no fixes on {day}. Pick another day or worker.",
    ),
    "pat_replay_until": ("回放到", "Replay up to"),
    "pat_replay_caption": (
        "{name}：{fixes} 个定位点，保留 {kept} 个，分为 {sessions} 次巡查；"
        "实线为轨迹（颜色区分各次巡查），虚线为信号中断（超过{step}秒无定位，路线未知）。",
        "{name}: {fixes} fixes, {kept} kept, in {sessions} sessions; solid lines are the "
        "track (a colour per session), dashed lines signal lost (no fix for over {step} s).",
    ),
    "pat_dropped_title": ("剔除的定位点及原因", "Dropped fixes and why"),
    "pat_dropped_none": ("没有剔除的定位点。", "No fix was dropped."),
    "pat_unvisited_title": ("长期未巡到的楼栋", "Buildings not passed for a while"),
    "pat_unvisited_caption": (
        "截至 {day}，{n} 栋楼连续{days}天以上无轨迹经过（距轨迹>{bld}米）。",
        "As of {day}, {n} buildings were not passed (no track within {bld} m) in {days} days.",
    ),
    "pat_unvisited_none": (
        "截至 {day}，所有楼栋近{days}天内都有巡查经过。",
        "As of {day}, every building was passed in the last {days} days.",
    ),
    "pat_download_grids": ("下载网格表（CSV）", "Download the grid table (CSV)"),
    "pat_download_workers": ("下载网格员表（CSV）", "Download the worker table (CSV)"),
    "pat_download_unvisited": ("下载未巡到楼栋（CSV）", "Download buildings not passed (CSV)"),
    "pat_col_grid": ("网格", "Grid"),
    "pat_col_code": ("网格编码", "Grid code"),
    "pat_col_rule": ("一日两巡", "Two patrols"),
    "pat_col_days_met": ("达标天数", "Days met"),
    "pat_col_patrols": ("计入巡查次数", "Counted patrols"),
    "pat_col_minutes": ("网格内分钟", "Minutes inside"),
    "pat_col_bld_share": ("楼栋覆盖率", "Buildings passed"),
    "pat_col_road_share": ("道路覆盖率", "Streets walked"),
    "pat_col_worker": ("网格员", "Worker"),
    "pat_col_worker_code": ("编号", "Code"),
    "pat_col_own_grids": ("负责网格", "Own grids"),
    "pat_col_patrols_all": ("巡查次数", "Patrols"),
    "pat_col_km": ("里程（公里）", "Distance (km)"),
    "pat_col_own_minutes": ("本网格内分钟", "Minutes in own grid"),
    "pat_col_dropped": ("剔除点", "Dropped fixes"),
    "pat_col_session": ("巡查", "Session"),
    "pat_col_start": ("开始", "Start"),
    "pat_col_end": ("结束", "End"),
    "pat_col_fixes": ("保留点数", "Kept fixes"),
    "pat_col_gaps": ("信号中断次数", "Signal losses"),
    "pat_col_time": ("时间", "Time"),
    "pat_col_accuracy": ("精度（米）", "Accuracy (m)"),
    "pat_col_why": ("剔除原因", "Why dropped"),
    "pat_col_building": ("楼栋编码", "Building"),
    "pat_col_address": ("地址", "Address"),
    "pat_col_last_passed": ("最近经过", "Last passed"),
    "pat_col_label": ("情况", "Status"),
    "pat_loading": ("正在计算巡查覆盖（每天约1–2秒）……", "Computing coverage (1–2 s a day)…"),
}
