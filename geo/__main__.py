"""``python -m geo <analysis> … --out FILE``: the analyses of :mod:`geo` from the command
line, for an analyst or a scheduled job. Every command writes one file (``.geojson``,
``.csv`` or ``.parquet``, by its extension) and prints a short summary, Chinese first.

Every file carries a watermark (``--user``, default the operating-system user, and the
time) where the format has room for it, and is recorded in the audit log with its SHA-256
(:func:`geo.output.write_audited`), as ``python -m loaders export`` does.

The figures are those the dashboard shows: both call the same functions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection

from geo.output import OutputError, check_output, write_audited
from geo.period import as_instant
from store.db import check_connection, make_engine, resolve_url
from store.errors import StoreError
from store.settings import get_settings
from store.watermark import for_command, os_user

Command = Callable[[Connection, argparse.Namespace], tuple[pd.DataFrame, list[str]]]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"不是日期（如 2026-11-01）/ not a date, e.g. 2026-11-01: {text!r}"
        ) from None


def _dates(text: str) -> list[dt.date]:
    """A comma-separated list of days (``2026-11-19,2026-11-20``)."""
    return [_date(part.strip()) for part in text.split(",") if part.strip()]


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"应为 0 到 1 之间的比例（如 0.8）/ a share between 0 and 1, e.g. 0.8: {text!r}"
        )
    return value


def _common(p: argparse.ArgumentParser, *, period: bool = True) -> None:
    p.add_argument("--street", help="街道编码（12位）；不填为全区 / street code; all if omitted")
    if period:
        p.add_argument(
            "--from",
            dest="start",
            type=_date,
            help="起始日期（含）/ first day, included (YYYY-MM-DD, Beijing time)",
        )
        p.add_argument(
            "--to",
            dest="end",
            type=_date,
            help="结束日期（不含）/ end day, excluded (YYYY-MM-DD)",
        )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="输出文件 .geojson / .csv / .parquet / output file (format by extension)",
    )
    p.add_argument(
        "--user",
        help="水印和审计日志中的用户（默认为运行本命令的系统用户）/ the user named in the "
        "watermark (GeoJSON, Parquet; not CSV) and the audit log (default: the OS user "
        f"running this, now {os_user()!r})",
    )


def _hotspots(conn: Connection, args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    from geo.hotspots import hotspots

    result = hotspots(
        conn,
        street=args.street,
        start=as_instant(args.start),
        end=as_instant(args.end),
        category=args.category,
        unit=args.unit,
        resolution=None if args.resolution == 0 else args.resolution,
        weights=args.weights,
        band_m=args.band_m,
        permutations=args.permutations,
        fdr=not args.no_fdr,
    )
    p = result.params
    units = result.units
    if args.under_patrolled is not None:
        return _under_patrolled(conn, args, units)
    lines = [
        f"Gi* {p.unit}{'' if p.resolution is None else f' (H3 res {p.resolution})'}: "
        f"{p.n_units:,} 个单元 units, {p.n_incidents:,} 起事件 incidents, "
        f"{p.n_outside:,} 起在单元外 outside",
        f"热点 hot (99/95/90 %): {(units.bin == 3).sum()}/{(units.bin == 2).sum()}/"
        f"{(units.bin == 1).sum()} · 冷点 cold: {(units.bin < 0).sum()}"
        f" · {'FDR' if p.fdr else 'no FDR'} · p {p.p_values}",
    ]
    lines += [f"  ! {n.zh} / {n.en}" for n in p.notes]
    return units, lines


def _under_patrolled(
    conn: Connection, args: argparse.Namespace, units: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """Hot units where fewer than the threshold's share of buildings was passed in the
    last ``--coverage-days`` days of the period (热点但巡查不足)."""
    from geo.coverage import coverage_by_unit, last_passed, under_patrolled

    as_of = (args.end or dt.date.today() + dt.timedelta(days=1)) - dt.timedelta(days=1)
    buildings = last_passed(conn, as_of, days=args.coverage_days, street=args.street)
    cover = coverage_by_unit(units, buildings)
    listed = under_patrolled(units, cover, args.under_patrolled)
    return listed, [
        f"热点但巡查不足 hot but under-patrolled (楼栋覆盖 building coverage < "
        f"{args.under_patrolled:.0%}, {args.coverage_days} 天 days to {as_of}): "
        f"{len(listed):,} / {(units['bin'] > 0).sum():,} hot units"
    ]


def _density(conn: Connection, args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    from geo.kde import kde

    result = kde(
        conn,
        street=args.street,
        start=as_instant(args.start),
        end=as_instant(args.end),
        category=args.category,
        resolution=args.resolution,
        bandwidth_m=args.bandwidth_m,
    )
    p = result.params
    return result.cells, [
        f"核密度 KDE ({p.kernel}): 带宽 bandwidth {p.bandwidth_m:,.0f} m ({p.bandwidth_rule}), "
        f"H3 res {p.resolution}, {p.n_cells:,} cells, {p.n_incidents:,} incidents"
    ]


def _emerging(conn: Connection, args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    from geo.emerging import emerging

    if args.start is None or args.end is None:
        raise ValueError("emerging 需要 --from 和 --to / emerging needs --from and --to")
    result = emerging(
        conn,
        street=args.street,
        start=as_instant(args.start),
        end=as_instant(args.end),
        bin=args.bin,
        unit=args.unit,
        resolution=args.resolution,
        category=args.category,
        alpha=args.alpha,
    )
    units = result.units
    p = result.params
    found = units[units.pattern != 0]
    lines = [
        f"时空热点 emerging ({p.unit}, {p.n_bins} × {p.bin}): {len(units):,} units, "
        f"{len(found):,} 有模式 with a pattern"
    ]
    for (zh, en), n in found.groupby(["label_zh", "label_en"]).size().items():
        lines.append(f"  {zh} / {en}: {n}")
    lines += [f"  ! {n.zh} / {n.en}" for n in p.notes]
    return units, lines


def _repeats(conn: Connection, args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    from geo.repeats import repeat_locations

    # "as of 20 November" includes that day: the window ends at the next midnight
    as_of = args.as_of or dt.date.today()
    result = repeat_locations(
        conn,
        street=args.street,
        as_of=as_instant(as_of + dt.timedelta(days=1)),
        days=args.days,
        radius_m=args.radius_m,
        min_count=args.min_count,
        category=args.category,
    )
    locs = result.locations
    return locs, [
        f"重复发生地点 repeat locations (≥ {args.min_count} 起同类事件、{args.radius_m:g} m 内、"
        f"{args.days} 天 / same subcategory within {args.radius_m:g} m in {args.days} days "
        f"to {as_of}): {len(locs):,}"
    ]


def _days(args: argparse.Namespace) -> list[dt.date]:
    """The days of ``--from`` … ``--to`` (excluded); one day when ``--to`` is left out."""
    if args.start is None:
        raise ValueError("需要 --from 日期 / give --from DATE")
    end = args.end or args.start + dt.timedelta(days=1)
    if end <= args.start:
        raise ValueError("--to 须晚于 --from / --to must be after --from")
    return [args.start + dt.timedelta(days=k) for k in range((end - args.start).days)]


def _coverage(conn: Connection, args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    from geo.coverage import coverage_day, unvisited_buildings

    days = _days(args)
    if args.by == "unvisited":
        as_of = days[-1]
        frame = unvisited_buildings(conn, as_of, street=args.street)
        counts = ", ".join(
            f"{d} 天 days: {int(frame[f'not_passed_{d}d'].sum()):,}" for d in (7, 14, 30)
        )
        return frame, [f"未巡到的楼栋 buildings not passed, as of {as_of}: {counts}"]
    frames = []
    for day in days:
        result = coverage_day(conn, day, street=args.street)
        part = result.grid_day if args.by == "grid" else result.worker_day
        frames.append(part.assign(day=day))
    frame = pd.concat(frames, ignore_index=True)
    lines = [f"巡查覆盖 patrol coverage by {args.by}, {days[0]} … {days[-1]}: {len(frame):,} rows"]
    if args.by == "grid":
        work = frame[frame["workday"]]
        met = work["rule_met"].mean() if len(work) else float("nan")
        lines.append(f"  一日两巡达标率 two-patrol rule met on working days: {met:.1%}")
    return frame, lines


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _kpis(conn: Connection, args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    from geo.kpis import kpis, kpis_by_unit

    if args.start is None or args.end is None:
        raise ValueError("kpis 需要 --from 和 --to / kpis needs --from and --to")
    unit = args.unit or args.street
    if args.by:
        by = kpis_by_unit(conn, args.by, args.start, args.end, within=unit)
        prev = by.previous.add_prefix("previous_") if by.previous is not None else None
        frame = by.current if prev is None else by.current.join(prev.drop(columns="previous_name"))
        frame = frame.reset_index()
        return frame, [
            f"事件指标 KPIs by {args.by}, {by.period.start} … {by.period.end}: {len(frame):,} units"
        ]
    report = kpis(conn, unit=unit, start=args.start, end=args.end)
    f = report.figures
    lines = [
        f"{report.name or '全部 all'} ({report.level}) {args.start} … {args.end}: "
        f"上报 reported {f.reported:,} · 办结率 closure {_pct(f.closure_rate)} · "
        f"按期办结率 on time {_pct(f.on_time_rate)} · 超期未办 open overdue {f.open_overdue:,}"
    ]
    table = {
        "figures": lambda: report.comparison(args.lang),
        "categories": lambda: report.categories,
        "overdue": lambda: report.overdue,
        "late-majors": lambda: report.late_majors,
    }[args.table]()
    return table, lines


def _assess(conn: Connection, args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    from geo.assess import assess

    frame = assess(
        conn,
        street=args.street,
        month=args.month,
        patrol_share=None if args.no_patrols else "compute",
        lang=args.lang,
    )
    lines = [f"网格员考核 worker assessment {args.month}: {len(frame):,} workers"]
    for label, n in frame["grade_label"].value_counts().items():
        lines.append(f"  {label}: {n} ({n / len(frame):.0%})")
    return frame, lines


def _coverage_store(conn: Connection, args: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    """Compute and store the building coverage of each day of the period that is not
    stored yet (geo.coverage_store), for the briefing and the 30-day lists."""
    import time
    from zoneinfo import ZoneInfo

    from geo import coverage_store
    from store.briefing_sql import freshness

    if args.street:
        raise ValueError(
            "覆盖率按全区存储，请去掉 --street / coverage is stored for the whole "
            "district: leave out --street"
        )
    if args.days is not None:
        if args.start is not None or args.end is not None:
            raise ValueError("--days 与 --from/--to 只能选一种 / give either --days or --from/--to")
        return _coverage_store_days(conn, args.days)
    last = freshness(conn).last_patrol_fix
    if last is None and (args.start is None or args.end is None):
        raise ValueError("没有巡查定位点；请先载入轨迹 / no patrol fixes: load tracks first")
    tz = ZoneInfo(get_settings().timezone)
    end = args.end or (last.astimezone(tz).date() + dt.timedelta(days=1))  # type: ignore[union-attr]
    start = args.start or end - dt.timedelta(days=30)
    if end <= start:
        raise ValueError(f"结束日期须晚于起始日期 / the end ({end}) must come after the start")
    rows = []
    for k in range((end - start).days):
        day = start + dt.timedelta(days=k)
        t0 = time.perf_counter()
        written = bool(coverage_store.fill(conn, [day]))
        rows.append({"day": day, "computed": written, "seconds": time.perf_counter() - t0})
    frame = pd.DataFrame(rows)
    return frame, [
        f"已存储覆盖率 stored coverage {start} … {end - dt.timedelta(days=1)}: "
        f"{int(frame['computed'].sum())} 天新算 days computed, "
        f"{int((~frame['computed']).sum())} 天已有 days already stored"
    ]


def _coverage_store_days(conn: Connection, days: list[dt.date]) -> tuple[pd.DataFrame, list[str]]:
    """``coverage-store --days``: compute the given days that are not stored (the step
    ``python -m loaders load patrols`` runs after a load, with the days
    :func:`store.coverage_store_sql.days_to_restore` names)."""
    from geo import coverage_store

    written = set(coverage_store.fill(conn, days))
    frame = pd.DataFrame(
        {"day": sorted(set(days)), "computed": [d in written for d in sorted(set(days))]}
    )
    done = sorted(written)
    return frame, [
        f"已重新计算巡查覆盖 / stored coverage recomputed for {len(done)} day(s): "
        + ", ".join(str(d) for d in done)
    ]


COMMANDS: dict[str, Command] = {
    "hotspots": _hotspots,
    "density": _density,
    "emerging": _emerging,
    "repeats": _repeats,
    "coverage": _coverage,
    "coverage-store": _coverage_store,
    "kpis": _kpis,
    "assess": _assess,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m geo",
        description="网格一张图 分析 / Grid One-Map analytics: 热点、密度 / hotspots, density",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "hotspots",
        help="Getis-Ord Gi* 热点/冷点 / hot and cold spots",
        description="Gi* 热点分析（与 ArcGIS 优化热点分析同法，FDR 校正）/ Getis-Ord Gi* hot "
        "spots classed at 99/95/90 % confidence as in ArcGIS's Optimized Hot Spot Analysis",
    )
    _common(p)
    p.add_argument("--category", help="事件类型编码（03 或 0302）/ category code")
    p.add_argument(
        "--unit", choices=("grid", "hex"), default="grid", help="网格或六边形 / grids or H3"
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=9,
        help="H3 分辨率，0 为自动 / H3 resolution (default 9; 0 = chosen for the area)",
    )
    p.add_argument(
        "--weights",
        choices=("contiguity", "distance"),
        default="contiguity",
        help="邻接或距离带 / contiguity (queen) or distance band",
    )
    p.add_argument("--band-m", type=float, help="距离带（米）/ distance band in metres")
    p.add_argument(
        "--permutations",
        type=int,
        default=0,
        help="置换次数，0 为解析 p 值 / permutations (0 = analytic p-values)",
    )
    p.add_argument("--no-fdr", action="store_true", help="不做 FDR 校正 / no FDR correction")
    p.add_argument(
        "--under-patrolled",
        type=_share,
        metavar="SHARE",
        help="只输出楼栋巡查覆盖率低于该比例的热点（如 0.8）/ write only hot units whose "
        "building coverage is below SHARE, e.g. 0.8",
    )
    p.add_argument(
        "--coverage-days",
        type=int,
        default=7,
        help="覆盖率回看天数 / days of tracks for the coverage (7, ending the day before --to)",
    )

    p = sub.add_parser(
        "density",
        help="核密度 / kernel density",
        description="事件核密度（四次核，六边形输出）/ incident kernel density on H3 cells",
    )
    _common(p)
    p.add_argument("--category", help="事件类型编码 / category code")
    p.add_argument("--resolution", type=int, help="H3 分辨率 / H3 resolution (default: auto)")
    p.add_argument("--bandwidth-m", type=float, help="带宽（米）/ bandwidth in metres")

    p = sub.add_parser(
        "emerging",
        help="时空热点趋势 / emerging hot spots",
        description="按周或月分箱的 Gi* 与 Mann-Kendall 趋势，分类同 ArcGIS 时空热点分析 / "
        "Gi* per weekly or monthly bin with a Mann-Kendall trend, patterns as in ArcGIS's "
        "Emerging Hot Spot Analysis (new, consecutive, intensifying, persistent, …)",
    )
    _common(p)
    p.add_argument("--category", help="事件类型编码 / category code")
    p.add_argument("--bin", choices=("month", "week"), default="month", help="分箱 / bin size")
    p.add_argument("--unit", choices=("grid", "hex"), default="grid", help="网格或六边形")
    p.add_argument("--resolution", type=int, help="H3 分辨率 / H3 resolution (default: auto)")
    p.add_argument(
        "--alpha",
        type=float,
        default=0.10,
        choices=(0.10, 0.05, 0.01),
        help="显著性水平 / significance of bins and trends",
    )

    p = sub.add_parser(
        "repeats",
        help="重复发生地点 / repeat locations",
        description="同一小类事件在半径内、时间窗内反复发生的地点 / places where incidents of "
        "one subcategory recur within a radius and a time window",
    )
    _common(p, period=False)
    p.add_argument(
        "--as-of", type=_date, help="截至日期（含当日）/ up to and including this day (today)"
    )
    p.add_argument("--days", type=int, default=90, help="时间窗（天）/ window in days (90)")
    p.add_argument("--radius-m", type=float, default=30.0, help="半径（米）/ radius (30 m)")
    p.add_argument("--min-count", type=int, default=3, help="最少起数 / minimum incidents (3)")
    p.add_argument("--category", help="事件类型编码 / category code")

    p = sub.add_parser(
        "coverage",
        help="巡查覆盖与一日两巡 / patrol coverage and the two-patrol rule",
        description="按网格或网格员逐日统计巡查覆盖（一日两巡、楼栋覆盖率、道路覆盖率），或列出 "
        "7/14/30 天未巡到的楼栋 / patrol coverage per grid or worker and day, or the "
        "buildings not passed in 7/14/30 days (as of the last day)",
    )
    _common(p)
    p.add_argument(
        "--by",
        choices=("grid", "worker", "unvisited"),
        default="grid",
        help="按网格、网格员，或未巡楼栋 / per grid, per worker, or unvisited buildings",
    )

    p = sub.add_parser(
        "coverage-store",
        help="预先计算并存储楼栋巡查覆盖 / compute and store building coverage per day",
        description="逐日计算全区楼栋巡查覆盖并存入数据库（已存且未变的日期跳过），简报与"
        "30天未巡楼栋直接读取；轨迹改动时该日自动作废 / compute each day's building coverage "
        "of the whole district and store it (days stored and unchanged are skipped); the "
        "briefing and the 30-day lists read it. A day is dropped by itself when its tracks "
        "change. Default period: the 30 days up to the latest fix.",
    )
    _common(p)
    p.add_argument(
        "--days",
        type=_dates,
        help="只计算这些未存储的日期（逗号分隔；载入轨迹后由导入程序调用）/ compute only "
        "these days where not stored (comma-separated; what `python -m loaders load "
        "patrols` runs after a load)",
    )

    p = sub.add_parser(
        "kpis",
        help="事件指标（办结率、按期办结率…）/ incident KPIs",
        description="任一辖区、任一时段的事件指标及与上期对比 / incident KPIs of any "
        "jurisdiction and period, with the change against the previous period",
    )
    _common(p)
    p.add_argument(
        "--unit", help="辖区编码：区、街道、社区或网格 / district, street, community or grid"
    )
    p.add_argument(
        "--by",
        choices=("street", "community", "grid"),
        help="逐个下级单元一张表 / one row per street, community or grid",
    )
    p.add_argument(
        "--table",
        choices=("figures", "categories", "overdue", "late-majors"),
        default="figures",
        help="输出哪张表 / which table to write (without --by)",
    )
    p.add_argument("--lang", choices=("zh", "en"), default="zh", help="标签语言 / labels")

    p = sub.add_parser(
        "assess",
        help="网格员月度考核 / monthly worker assessment",
        description="定额、一日两巡、按期办结与返工，星级与等次（好≤20%，较好≤30%）/ quotas, "
        "two-patrol compliance, on-time closure and rework; stars and capped grades",
    )
    _common(p, period=False)
    p.add_argument("--month", required=True, help="月份 / month, e.g. 2026-10")
    p.add_argument(
        "--no-patrols",
        action="store_true",
        help="不从轨迹计算一日两巡（更快）/ leave two-patrol compliance out (faster)",
    )
    p.add_argument("--lang", choices=("zh", "en"), default="zh", help="标签语言 / labels")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one analysis; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        check_output(args.out)
    except OutputError as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    settings = get_settings()
    engine = make_engine(resolve_url(settings))
    try:
        check_connection(engine)
        with engine.connect() as conn:
            watermark = for_command(conn, args.user)  # a bad --user before the analysis
            frame, lines = COMMANDS[args.command](conn, args)
        done = write_audited(
            engine,
            frame,
            args.out,
            watermark=watermark,
            detail={"via": "cli", "kind": f"geo {args.command}", "filters": _filters(args)},
        )
    except (StoreError, OutputError, ValueError) as exc:
        print(f"错误 / error: {exc}\n未写出文件 / nothing was written", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print("\n".join(lines))
    print(done.summary())
    return 0


def _filters(args: argparse.Namespace) -> dict[str, object]:
    """The command's arguments as the audit row records them (given ones only, dates as
    ISO text), less the output path and the user (recorded on their own)."""
    return {
        k: v.isoformat() if isinstance(v, dt.date) else v
        for k, v in sorted(vars(args).items())
        if k not in ("command", "out", "user") and v is not None
    }


if __name__ == "__main__":
    sys.exit(main())
