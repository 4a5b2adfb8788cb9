"""Command line of the loaders: ``python -m loaders <command>``.

Commands
--------
demo    generate the demo street (or district) and write it into the store
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from store.db import check_connection, make_engine, resolve_url
from store.errors import StoreError
from store.migrate import upgrade
from store.settings import get_settings


def _parser() -> argparse.ArgumentParser:
    settings = get_settings()
    p = argparse.ArgumentParser(
        prog="python -m loaders", description="数据导入 / Getting data into Grid One-Map."
    )
    sub = p.add_subparsers(dest="command", required=True)
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


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
    except StoreError as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
