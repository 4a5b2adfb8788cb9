"""What a load did: rows read, inserted, updated, unchanged, rejected, repaired — with every
rejected row named by file, line, field and reason."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath

#: What the number of a problem counts, by unit: (Chinese, English) with ``{n}``.
UNITS = {
    "line": ("第{n}行", "line {n}"),
    "row": ("第{n}行", "row {n}"),
    "feature": ("第{n}个要素", "feature {n}"),
    "record": ("第{n}条", "record {n}"),
}
_PLURAL = {"line": "行 lines", "row": "行 rows", "feature": "要素 features", "record": "条 records"}
#: The unit of a file by its extension, when the reader did not say (``.json`` may be
#: GeoJSON or Open311: "record" fits both).
_UNIT_OF_SUFFIX = {
    ".xlsx": "row",
    ".xlsm": "row",
    ".json": "record",
    **dict.fromkeys((".geojson", ".gpkg", ".shp", ".zip", ".kml", ".kmz", ".gpx"), "feature"),
}


def unit_of(file: str) -> str:
    """The unit (:data:`UNITS`) a file's problems are counted in, from its name."""
    return _UNIT_OF_SUFFIX.get(PurePath(file).suffix.lower(), "line")


@dataclass(frozen=True)
class RowProblem:
    """One rejected (or repaired) row: where it is and what is wrong with it.

    ``line`` is the number a person looks the row up by, counted in ``unit``
    (:data:`UNITS`): for CSV the physical line of the file (the header is line 1), for
    spreadsheets the sheet's row (the header is row 1), for vector files the feature
    number and for Open311 the request number (1-based). ``unit`` is given by the reader;
    left empty it follows from the file's extension (:func:`unit_of`)."""

    file: str
    line: int
    field: str | None
    value: str | None
    reason: str
    unit: str = ""

    def __post_init__(self) -> None:
        if not self.unit:
            object.__setattr__(self, "unit", unit_of(self.file))

    @property
    def where(self) -> str:
        """``第3个要素 feature 3``: the place in Chinese and English."""
        zh, en = UNITS.get(self.unit, UNITS["line"])
        return f"{zh.format(n=self.line)} {en.format(n=self.line)}"


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
    #: Rows stored but worth a look (a point outside every grid): kept, listed.
    flagged: list[RowProblem] = field(default_factory=list)
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
            where = p.where + (f", {p.field}" if p.field else "")
            lines.append(f"  ✗ {where}: {p.reason}")
        if len(self.rejected) > 10:
            lines.append(
                f"  … 另有 {len(self.rejected) - 10} 行被拒绝 / more rejected rows: "
                "see the report file (--report)"
            )
        for p in self.repaired[:5]:
            lines.append(f"  ~ {p.where}: {p.reason}")
        if self.flagged:
            shown = ", ".join(str(p.line) for p in self.flagged[:12])
            more = " …" if len(self.flagged) > 12 else ""
            lines.append(
                f"  ? {len(self.flagged):,} 行已导入但需核对 / rows stored but flagged "
                f"({self.flagged[0].reason}): {_PLURAL.get(self.flagged[0].unit, '行 lines')} "
                f"{shown}{more}"
            )
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
            out.writerow(["outcome", "file", "unit", "line", "field", "value", "reason"])
            for outcome, problems in (
                ("rejected", self.rejected),
                ("repaired", self.repaired),
                ("flagged", self.flagged),
            ):
                for p in problems:
                    out.writerow(
                        [outcome, p.file, p.unit, p.line, p.field or "", p.value or "", p.reason]
                    )
