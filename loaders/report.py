"""What a load did: rows read, inserted, updated, unchanged, rejected, repaired — with every
rejected row named by file, line, field and reason."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RowProblem:
    """One rejected (or repaired) row: where it is and what is wrong with it.

    ``line`` is the line a person sees: for CSV and spreadsheets the header is line 1 and
    the first data row line 2; for vector files it is the feature number (1-based)."""

    file: str
    line: int
    field: str | None
    value: str | None
    reason: str


@dataclass
class LoadReport:
    """The outcome of loading one file."""

    kind: str
    file: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    repaired: list[RowProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """A one-screen summary, Chinese first."""
        head = f"{self.file} → {self.kind}" + (
            "（试运行，未写入 / dry run, nothing written）" if self.dry_run else ""
        )
        lines = [
            head,
            f"  读取 read {self.rows_read:,} · 新增 inserted {self.inserted:,} · "
            f"更新 updated {self.updated:,} · 未变 unchanged {self.unchanged:,} · "
            f"拒绝 rejected {len(self.rejected):,} · 修复 repaired {len(self.repaired):,} · "
            f"重复 duplicates {self.duplicates:,}"
            f"  ({self.seconds:.1f} s)",
        ]
        lines += [f"  ! {w}" for w in self.warnings[:8]]
        for p in self.rejected[:10]:
            where = f"第{p.line}行 line {p.line}" + (f", {p.field}" if p.field else "")
            lines.append(f"  ✗ {where}: {p.reason}")
        if len(self.rejected) > 10:
            lines.append(
                f"  … 另有 {len(self.rejected) - 10} 行被拒绝 / more rejected rows: "
                "see the report file (--report)"
            )
        for p in self.repaired[:5]:
            lines.append(f"  ~ 第{p.line}行 line {p.line}: {p.reason}")
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        """Write the report as JSON (``.json``) or as CSV of the problem rows (else)."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            path.write_text(
                json.dumps(asdict(self), ensure_ascii=False, indent=1), encoding="utf-8"
            )
            return
        with path.open("w", newline="", encoding="utf-8-sig") as fh:
            out = csv.writer(fh)
            out.writerow(["outcome", "file", "line", "field", "value", "reason"])
            for outcome, problems in (("rejected", self.rejected), ("repaired", self.repaired)):
                for p in problems:
                    out.writerow([outcome, p.file, p.line, p.field or "", p.value or "", p.reason])
