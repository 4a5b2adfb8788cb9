"""Text of the download buttons every page shares (``dashboard.downloads``)."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "dl_xlsx": ("下载 Excel（带水印）", "Download Excel (watermarked)"),
    "dl_help": (
        "下载将以您的名义记入审计日志（时间、条件、行数、文件指纹）。",
        "Each download is recorded in the audit log under your name (time, filters, rows, "
        "the file's fingerprint).",
    ),
    "dl_xlsx_help": (
        "Excel 文件的文档属性和打印页眉页脚带有水印：{line}",
        "The Excel file carries the watermark in its properties and printed header and "
        "footer: {line}",
    ),
}
