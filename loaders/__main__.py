"""Command line of the loaders: ``python -m loaders <command>``.

Commands
--------
load    load one file of one kind (streets, communities, grids, workers, buildings, incidents…)
export  write one kind from the store to a file that loads back unchanged
demo    generate the demo street (or district) and write it into the store
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loaders.kinds import KINDS
from loaders.sniff import InputError
from store import coverage_store_sql
from store.db import check_connection, make_engine, resolve_url
from store.errors import StoreError
from store.migrate import upgrade
from store.settings import PROJECT_ROOT, get_settings


def _parser() -> argparse.ArgumentParser:
    settings = get_settings()
    p = argparse.ArgumentParser(
        prog="python -m loaders", description="数据导入 / Getting data into Grid One-Map."
    )
    sub = p.add_subparsers(dest="command", required=True)
    load = sub.add_parser(
        "load",
        help="导入一个文件 / load one file",
        description=(
            "导入一个文件（GeoJSON、GeoPackage、Shapefile、KML、CSV、XLSX、GPX、Open311）。"
            "整个文件在一个事务中写入：失败则数据库不变；重复导入同一文件不会改变数据。 "
            "Load one file (GeoJSON, GeoPackage, Shapefile, KML, CSV, XLSX, GPX, Open311) in one "
            "transaction: on failure the store is unchanged; loading the same file again "
            "changes nothing."
        ),
        epilog=_kinds_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("kind", choices=list(KINDS), help="数据类型 / kind of data")
    load.add_argument("path", type=Path, help="文件 / the file")
    load.add_argument(
        "--crs",
        help="坐标系：EPSG编码、gcj02、bd09 / CRS: EPSG code, gcj02, bd09 "
        "(default: the file's own, else EPSG:4326)",
    )
    load.add_argument(
        "--encoding", help="文本编码，如 gbk / text encoding, e.g. gbk (default: detected)"
    )
    load.add_argument(
        "--mapping",
        type=Path,
        help="列名映射文件（JSON/TOML）/ column mapping file: canonical field → header",
    )
    load.add_argument("--dry-run", action="store_true", help="只检查不写入 / check only")
    load.add_argument(
        "--strict",
        action="store_true",
        help="有一行错误即整个文件不导入 / refuse the whole file on the first bad row",
    )
    load.add_argument("--report", type=Path, help="报告文件（.json 或 .csv）/ report file")
    _export_parser(sub)
    demo = sub.add_parser(
        "demo",
        help="生成演示数据 / generate and load the demo data",
        description=(
            "生成确定性的演示街道（或区）并写入数据库；植入的真值写到 .local/demo/。 "
            "Generate the deterministic demo street (or district) and write it to the store; "
            "the planted truth goes to .local/demo/."
        ),
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=settings.demo_seed,
        help="随机种子 / seed (same seed, same data)",
    )
    demo.add_argument(
        "--scale",
        choices=["street", "district"],
        default=settings.demo_scale,
        help="规模 / street: 9 communities, 41 grids; district: 12 streets",
    )
    group = demo.add_mutually_exclusive_group()
    group.add_argument(
        "--replace", action="store_true", help="清空已有数据后写入 / empty the store first"
    )
    group.add_argument(
        "--if-empty",
        action="store_true",
        help="仅在数据库为空时写入 / load only into an empty store",
    )
    demo.add_argument(
        "--truth", type=Path, default=None, help="真值JSON路径 / where to write the planted truth"
    )
    return p


def _demo(args: argparse.Namespace) -> int:
    from loaders.demo import generate
    from loaders.demo.load import StoreNotEmptyError, store_is_empty, write_demo

    engine = make_engine(resolve_url(get_settings()))
    check_connection(engine)
    upgrade(engine)
    if args.if_empty:
        with engine.connect() as conn:
            if not store_is_empty(conn):
                print("数据库已有数据，保持不变 / the store already holds data; left as it is")
                return 0
    t0 = time.perf_counter()
    print(f"生成演示数据 / generating the {args.scale} demo (seed {args.seed}) …", flush=True)
    data = generate(args.seed, args.scale)
    t1 = time.perf_counter()
    print(f"  generated in {t1 - t0:.1f} s; writing …", flush=True)
    try:
        counts = write_demo(engine, data, replace=args.replace, truth_path=args.truth)
    except StoreNotEmptyError as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    print(f"  written in {time.perf_counter() - t1:.1f} s")
    for table, n in counts.items():
        print(f"  {table:<24}{n:>10,}")
    return 0


def _kinds_help() -> str:
    lines = ["数据类型 / kinds:"]
    for kind in KINDS.values():
        lines.append(f"  {kind.name:<12} {kind.help_zh}")
        lines.append(f"  {'':<12} {kind.help_en}")
    return "\n".join(lines)


def _load(args: argparse.Namespace) -> int:
    from loaders.engine import LoadRejectedError, Options, load_file, print_progress

    settings = get_settings()
    engine = make_engine(resolve_url(settings))
    check_connection(engine)
    upgrade(engine)
    options = Options(
        crs=args.crs,
        encoding=args.encoding,
        mapping=args.mapping,
        dry_run=args.dry_run,
        strict=args.strict,
        timezone=settings.timezone,
        progress=print_progress,
    )
    hook = args.kind == "patrols" and not args.dry_run
    if hook:  # the post-load hook of patrols: what the stored coverage held before
        with engine.connect() as conn:
            stored = coverage_store_sql.all_days(conn)
    try:
        try:
            report = load_file(engine, args.kind, args.path, options)
        finally:
            if sys.stderr.isatty():
                print(file=sys.stderr)  # end the progress line
    except LoadRejectedError as exc:
        print(f"错误 / error: {exc}\n整个文件未导入 / nothing was loaded", file=sys.stderr)
        if args.report:
            exc.report.write(args.report)
        return 2
    except InputError as exc:
        print(f"错误 / error: {exc}\n整个文件未导入 / nothing was loaded", file=sys.stderr)
        return 2
    print(report.summary())
    if args.report:
        report.write(args.report)
    if hook and (report.inserted or report.updated):
        with engine.connect() as conn:
            days = coverage_store_sql.days_to_restore(conn, stored, settings.timezone)
        if days:
            _refresh_coverage(days)
    return 1 if report.rejected else 0


#: The step that computes stored patrol coverage again after a patrol load. It is
#: analytics (:mod:`geo.coverage_store`), and layers run one way (loaders → store → geo),
#: so the loader runs it as its own command rather than importing :mod:`geo`.
COVERAGE_COMMAND = ("-m", "geo", "coverage-store")


def _refresh_coverage(days: list[dt.date]) -> bool:
    """Run ``python -m geo coverage-store --days …`` for the days a patrol load left to
    compute; print what it did. On failure the days stay unstored (pages then compute
    them live, so no figure is wrong, only slower) and the message names the command to
    run. Returns whether it succeeded."""
    listed = ",".join(str(d) for d in days)
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [
                sys.executable,
                *COVERAGE_COMMAND,
                "--days",
                listed,
                "--out",
                str(Path(tmp) / "days.csv"),
            ],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            check=False,
        )
    done = [line for line in run.stdout.splitlines() if "stored coverage recomputed" in line]
    if run.returncode == 0:
        if done and not done[0].rstrip().endswith("day(s):"):
            print(done[0])
        return True
    print(
        "警告 / warning: 巡查覆盖未能重新计算，这些日期暂按实时计算 / stored coverage was not "
        f"recomputed; pages compute these days live until you run: python -m geo "
        f"coverage-store --days {listed} --out days.csv\n{run.stderr.strip()[-2000:]}",
        file=sys.stderr,
    )
    return False


def _export_parser(sub: argparse._SubParsersAction) -> None:
    from loaders.export import FORMATS, filters_help
    from store.watermark import os_user

    export = sub.add_parser(
        "export",
        help="导出一类数据 / export one kind to a file",
        description=(
            "把一类数据导出为文件，列名即导入时的标准字段名，导出的文件可直接再导入且数据不变。"
            "GeoJSON 用 EPSG:4326；GeoPackage 用 EPSG:4490；CSV（UTF-8 带 BOM）和 XLSX 用经度/纬度"
            "列（面为 WKT 列）；Open311 GeoReport v2 仅用于事件。 "
            "Export one kind under the loader's canonical field names, so the file loads back "
            "unchanged. GeoJSON in EPSG:4326; GeoPackage in EPSG:4490; CSV (UTF-8 with BOM) "
            "and XLSX with lon/lat columns (WKT for polygons); Open311 GeoReport v2 for "
            "incidents only. Times are written in local time with their offset. "
            "特殊人群数据不导出（仅按网格汇总显示）。"
            "每次导出都带水印（用户、时间）并记入审计日志。 "
            "Special-group figures are never exported (they are shown per grid only). Every "
            "export carries a watermark (user, time) where the format has a place for it "
            "(GeoJSON, GeoPackage, XLSX; not CSV or Open311) and is recorded in the audit log "
            "with the file's SHA-256. "
            "网格员手机号隐去中间四位（138****1234），仅当 --user 是区级用户时完整导出，"
            "或该行是 --user 本人的记录。 "
            "Worker phone numbers are masked (138****1234) unless --user is a district-role "
            "dashboard user, or the row is that user's own record (app_user.staff_code); a "
            "file with masked numbers does not load back."
        ),
        epilog=filters_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("kind", choices=list(KINDS), help="数据类型 / kind of data")
    export.add_argument("path", type=Path, help="输出文件 / the file to write")
    export.add_argument(
        "--format",
        choices=FORMATS,
        help="格式 / format (default: from the extension: .geojson .gpkg .csv .xlsx)",
    )
    export.add_argument(
        "--crs",
        help="坐标系：EPSG编码、gcj02、bd09（后两者仅 csv/xlsx）/ CRS: EPSG code, or gcj02/bd09 "
        "for csv/xlsx (default: 4326; gpkg 4490)",
    )
    export.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="筛选条件，可重复（=、!=、>=、<=、>、<）/ filter, repeatable, AND-ed "
        "(=, !=, >=, <=, >, <), e.g. --where street_code=370214001000 "
        "--where reported_at>=2026-03-01",
    )
    export.add_argument(
        "--user",
        help="水印和审计日志中的用户（默认为运行本命令的系统用户）；区级用户可得完整手机号 / "
        "the user named in the watermark and the audit log (default: the OS user running "
        f"this, now {os_user()!r}); a district-role dashboard user gets phone numbers in full",
    )


def _export(args: argparse.Namespace) -> int:
    from loaders.export import export_kind
    from store.watermark import for_command

    settings = get_settings()
    engine = make_engine(resolve_url(settings))
    check_connection(engine)
    upgrade(engine)
    try:
        with engine.connect() as conn:
            watermark = for_command(conn, args.user)
        done = export_kind(
            engine,
            args.kind,
            args.path,
            fmt=args.format,
            crs=args.crs,
            where=args.where,
            tz=settings.timezone,
            watermark=watermark,
            via="cli",
        )
    except InputError as exc:
        print(f"错误 / error: {exc}\n未写出文件 / nothing was written", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(done.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "load":
            return _load(args)
        if args.command == "export":
            return _export(args)
    except StoreError as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
