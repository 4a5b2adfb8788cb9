"""Text shared by every page: app frame, layers, database errors."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "app_title": ("网格一张图", "Grid One-Map"),
    "page_overview": ("一张图", "Overview map"),
    "street": ("街道", "Street"),
    "all_streets": ("全部街道", "All streets"),
    "layer_streets": ("街道边界", "Street boundaries"),
    "layer_communities": ("社区边界", "Community boundaries"),
    "layer_grids": ("网格", "Grids"),
    "layer_buildings": ("楼栋", "Buildings"),
    "layer_incidents": ("事件", "Incidents"),
    "grid_code": ("网格编码", "Grid code"),
    "grid_name": ("网格名称", "Grid name"),
    "community": ("所属社区", "Community"),
    "households": ("户数", "Households"),
    "worker": ("网格员", "Grid worker"),
    "buildings": ("楼栋数", "Buildings"),
    "address": ("地址", "Address"),
    "floors": ("层数", "Floors"),
    "category": ("类别", "Category"),
    "status": ("状态", "Status"),
    "reported_at": ("上报时间", "Reported"),
    "title": ("事件", "Incident"),
    "summary": (
        "{streets} 个街道 · {grids} 个网格 · {buildings} 栋楼 · {incidents} 件事件",
        "{streets} streets · {grids} grids · {buildings} buildings · {incidents} incidents",
    ),
    "empty_store": (
        "数据库中还没有数据。可运行 `python -m loaders demo` 载入演示数据。",
        "The store holds no data yet. Run `python -m loaders demo` to load the demo.",
    ),
    "db_down": (
        "无法连接数据库。请确认数据库已启动（内置数据库：`python -m store local start`），"
        "恢复后点击“重试”。\n\n详情：{error}",
        "Cannot reach the database. Check that it runs (the embedded one: `python -m store "
        "local start`), then click Retry.\n\nDetails: {error}",
    ),
    "retry": ("重试", "Retry"),
    "db_retrying": (
        "每 {seconds} 秒自动重新连接一次，数据库恢复后页面会自动刷新。",
        "Reconnecting every {seconds} s; the page comes back by itself when the database does.",
    ),
}
