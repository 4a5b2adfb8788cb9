"""``python -m dashboard.briefing --street CODE|--district --from DATE --to DATE --out FILE``:
the briefing as a PDF or a Word file (by the extension), for a scheduled job or a script.

Dates as in ``python -m geo``: local days, ``--to`` excluded. The file carries a watermark
(``--user``, default the OS user, and the time) and is recorded in the audit log before it
is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboard.briefing import EmptyPeriodError, build_audited
from geo.__main__ import _date
from store.db import check_connection, make_engine, resolve_url
from store.errors import StoreError
from store.settings import get_settings
from store.watermark import for_command, os_user

SUFFIXES = (".pdf", ".docx")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard.briefing",
        description="生成辖区工作简报（PDF 或 Word）/ make the briefing of a jurisdiction "
        "and period as a PDF or Word file",
    )
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--street", help="街道编码（12位）/ street code")
    scope.add_argument("--district", action="store_true", help="全区 / the whole district")
    parser.add_argument(
        "--from",
        dest="start",
        type=_date,
        required=True,
        help="起始日期（含）/ first day, included (YYYY-MM-DD, local time)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        type=_date,
        required=True,
        help="结束日期（不含）/ end day, excluded (YYYY-MM-DD)",
    )
    parser.add_argument("--out", type=Path, required=True, help="输出文件 .pdf / .docx")
    parser.add_argument(
        "--lang", choices=("zh", "en"), help="语言 / language (default GRIDONE_LANGUAGE)"
    )
    parser.add_argument(
        "--user",
        help="水印和审计日志中的用户（默认为运行本命令的系统用户）/ the user named in the "
        f"watermark and the audit log (default: the OS user running this, now {os_user()!r}); "
        "a dashboard login is shown with its display name",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Make one briefing; return the process exit code."""
    args = _parser().parse_args(argv)
    suffix = args.out.suffix.lower()
    if suffix not in SUFFIXES:
        print(
            f"错误 / error: 输出文件须为 .pdf 或 .docx / --out must end in .pdf or .docx: "
            f"{args.out}",
            file=sys.stderr,
        )
        return 2
    if not args.out.parent.is_dir():
        print(f"错误 / error: 目录不存在 / no such folder: {args.out.parent}", file=sys.stderr)
        return 2
    settings = get_settings()
    engine = make_engine(resolve_url(settings))
    try:
        check_connection(engine)
        with engine.connect() as conn:
            watermark = for_command(conn, args.user)
        made = build_audited(  # recorded in the audit log before the file exists
            engine,
            street=args.street,
            start=args.start,
            end=args.end,
            watermark=watermark,
            via="cli",
            lang=args.lang or settings.language,
            pdf=suffix == ".pdf",
            docx=suffix == ".docx",
            out=str(args.out.resolve()),
        )
    except EmptyPeriodError:
        print(
            f"错误 / error: 该辖区在 {args.start} 至 {args.end}（不含）没有上报事件 / no "
            "incident reported in this jurisdiction and period: widen the period",
            file=sys.stderr,
        )
        return 2
    except (StoreError, ValueError) as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    body = made.pdf if suffix == ".pdf" else made.docx
    assert body is not None
    args.out.write_bytes(body)
    s = made.seconds
    print(
        f"已写入 written: {args.out} ({len(body) / 1024:,.0f} KB) · {made.data.name} "
        f"{args.start} … {args.end}（不含 excluded） · {s['total']:.1f} s\n"
        f"水印 watermark: {watermark.line('zh')} · 已记入审计日志 recorded in the audit log"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
