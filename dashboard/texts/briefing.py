"""Text of the 简报 (briefing) page and of the briefing documents (PDF, DOCX)."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "page_briefing": ("简报", "Briefing"),
    # --- the page
    "br_scope": ("辖区", "Jurisdiction"),
    "br_whole_district": ("全区（{name}）", "Whole district ({name})"),
    "br_scope_help": (
        "选一个街道，或全区（按街道汇总）。",
        "One street, or the whole district (a row per street).",
    ),
    "br_period": ("统计时段", "Period"),
    "br_period_help": (
        "含首尾两天；默认为库中最新事件所在月的1日至该日。与上期（等长的前一时段）对比。",
        "Both days included; default: the 1st of the latest incident's month to that day. "
        "Compared with the previous period of equal length.",
    ),
    "br_pick_end": ("请再选择时段的结束日期。", "Now pick the end date of the period."),
    "br_build": ("生成简报", "Make the briefing"),
    "br_building": (
        "正在生成简报（统计、热点、巡查覆盖、地图）…",
        "Making the briefing (figures, hot spots, patrol coverage, maps)…",
    ),
    "br_ready": (
        "简报已生成（用时 {seconds:.1f} 秒）：{name}，{period}。",
        "Briefing ready ({seconds:.1f} s): {name}, {period}.",
    ),
    "br_watermark": (
        "文件带有水印并已记入审计日志：{line}",
        "The files carry a watermark and are recorded in the audit log: {line}",
    ),
    "br_download_pdf": ("下载 PDF（A4，可直接打印）", "Download PDF (A4, ready to print)"),
    "br_download_docx": ("下载 Word 文档（可编辑）", "Download Word (editable)"),
    "br_empty_period": (
        "所选辖区在 {period} 没有上报事件，无法生成简报。请扩大时段，或改选辖区。",
        "No incident was reported in this jurisdiction in {period}: nothing to brief. Widen "
        "the period or choose another jurisdiction.",
    ),
    "br_failed": (
        "无法生成简报：{error}。请调整时段或辖区后重试。",
        "The briefing could not be made: {error}. Change the period or jurisdiction and try again.",
    ),
    "br_intro": (
        "一键生成所选辖区和时段的工作简报：主要指标及与上期对比、三张专题图、热点、巡查不足、"
        "超期未办结、分单元统计、数据来源与时效。",
        "One click makes the briefing of the chosen jurisdiction and period: key figures "
        "with the change on the previous period, three maps, hot spots, under-patrolled "
        "places, overdue cases, a table per unit, data sources and freshness.",
    ),
    # --- the document
    "br_title": ("{name}网格化服务管理工作简报", "{name}: grid governance briefing"),
    "br_meta_scope": ("辖区：{name}", "Jurisdiction: {name}"),
    "br_meta_period": (
        "统计时段：{start} 至 {end}（上期：{prev_start} 至 {prev_end}）",
        "Period: {start} to {end} (previous: {prev_start} to {prev_end})",
    ),
    "br_meta_generated": ("生成时间：{at}", "Generated: {at}"),
    "br_meta_fresh": (
        "数据截至：最新事件 {incident}；最新巡查轨迹 {patrol}",
        "Data up to: latest incident {incident}; latest patrol fix {patrol}",
    ),
    "br_none": ("无", "none"),
    "br_sec_figures": ("一、主要指标", "1. Key figures"),
    "br_col_figure": ("指标", "Figure"),
    "br_col_current": ("本期", "This period"),
    "br_col_previous": ("上期", "Previous"),
    "br_col_change": ("变化", "Change"),
    "br_pp": ("{value:+.1f}个百分点", "{value:+.1f} pp"),
    "br_sec_maps": ("二、专题图", "2. Maps"),
    "br_map_indicator": (
        "图1  每千户事件数（按网格，自然断点分级）",
        "Map 1  Incidents per 1,000 households (grids, natural breaks)",
    ),
    "br_map_hotspots": (
        "图2  事件热点与冷点（Gi*，H3 六边形，FDR 校正）",
        "Map 2  Hot and cold spots of incidents (Gi*, H3 hexagons, FDR)",
    ),
    "br_map_coverage": (
        "图3  近{days}天楼栋巡查覆盖率（按网格，截至 {as_of}）",
        "Map 3  Buildings passed by patrols in the last {days} days (grids, to {as_of})",
    ),
    "br_legend_rate": ("每千户事件数", "Incidents per 1,000 households"),
    "br_legend_coverage": ("楼栋巡查覆盖率", "Buildings passed"),
    "br_no_households": ("无户数数据", "no household data"),
    "br_no_buildings": ("无楼栋", "no buildings"),
    "br_no_tracks_map": ("该时段无巡查轨迹", "no patrol tracks in the window"),
    "br_sec_hotspots": ("三、事件热点（前{n}名）", "3. Top {n} hot spots"),
    "br_hot_summary": (
        "{unit} {n_units} 个，事件 {n_incidents} 起，{fdr}；显著热点 {n_hot} 个。",
        "{n_units} {unit}, {n_incidents} incidents, {fdr}; {n_hot} significant hot spots.",
    ),
    "br_sec_under": ("四、热点但巡查不足", "4. Hot but under-patrolled"),
    "br_under_caption": (
        "热点单元中，近{days}天（截至{as_of}）巡查经过的楼栋不足{min}%的，共 {n} 个。",
        "Hot units where patrols passed fewer than {min}% of the buildings in the {days} days "
        "to {as_of}: {n}.",
    ),
    "br_coverage_total": (
        "近{days}天全辖区楼栋巡查覆盖率：{share}（{passed} / {total} 栋）。",
        "Buildings passed by patrols in the last {days} days: {share} ({passed} of {total}).",
    ),
    "br_sec_overdue": ("五、超期未办结事件", "5. Open and overdue cases"),
    "br_overdue_caption": (
        "截至 {as_of}，超期未办结 {n} 件{shown}。",
        "As of {as_of}: {n} open past their deadline{shown}.",
    ),
    "br_shown_first": ("，列出超期最久的 {k} 件", "; the {k} most overdue listed"),
    "br_col_incident": ("事件编号", "Incident"),
    "br_col_category": ("类别", "Category"),
    "br_col_grid": ("网格", "Grid"),
    "br_col_reported": ("上报时间", "Reported"),
    "br_col_deadline": ("办理期限", "Deadline"),
    "br_col_days_overdue": ("超期天数", "Days overdue"),
    "br_sec_units_community": ("六、各社区情况", "6. By community"),
    "br_sec_units_street": ("六、各街道情况", "6. By street"),
    "br_col_unit": ("名称", "Name"),
    "br_unit_none": ("（不在任何单元内）", "(in no unit)"),
    "br_sec_sources": ("七、数据来源与时效", "7. Data sources and freshness"),
    "br_col_kind": ("类型", "Kind"),
    "br_col_source": ("来源", "Source"),
    "br_col_loaded": ("载入时间", "Loaded"),
    "br_col_rows": ("行数", "Rows"),
    "br_sources_note": (
        "本简报全部数字由系统分析模块（geo/）按统一口径从库中数据计算，与各页面一致；"
        "办结率等口径见 geo/kpis.py。",
        "Every figure here is computed by the analysis modules (geo/) from the store, as on "
        "the dashboard's pages; definitions in geo/kpis.py.",
    ),
    "br_footer": ("第 {page} 页", "Page {page}"),
}
