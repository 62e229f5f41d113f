"""The results table: rows, their ratios and goals, printed and saved as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    figure: str
    ours: float | None
    peer: float | None = None
    unit: str = "s"
    peer_name: str = ""
    limit: float | None = None  # the goal: a ratio (relative) or a value in `unit` (absolute)
    relative: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.peer:
            return None
        return self.ours / self.peer

    @property
    def goal(self) -> str:
        if self.limit is None:
            return ""
        return f"≤ {self.limit:g}x" if self.relative else f"≤ {self.limit:g} {self.unit}"

    @property
    def met(self) -> bool | None:
        if self.limit is None:
            return None
        value = self.ratio if self.relative else self.ours
        return None if value is None else value <= self.limit

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ratio": self.ratio, "goal": self.goal, "met": self.met}


def from_mapping(row: Mapping[str, object]) -> Row:
    """A row given as a dict by another module (unknown keys are kept in the note)."""
    known = set(Row.__dataclass_fields__)
    extra = {k: v for k, v in row.items() if k not in known}
    fields = {k: v for k, v in row.items() if k in known}
    if extra:
        fields["note"] = " ".join([str(fields.get("note", "")), *(f"{k}={v}" for k, v in extra.items())])
    return Row(**fields)  # type: ignore[arg-type]


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    if unit in ("µs", "ms"):
        return f"{value:.1f} {unit}"
    if unit == "MB":
        return f"{value:.2f} MB"
    return f"{value:.3g} {unit}".rstrip()


def render(rows: list[Row]) -> str:
    header = ["figure", "ours", "peer", "ratio", "goal", "met?"]
    lines = [header]
    for r in rows:
        peer = _value(r.peer, r.unit) + (f" ({r.peer_name})" if r.peer_name and r.peer is not None else "")
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "—"
        met = {True: "yes", False: "NO", None: ""}[r.met]
        lines.append([r.figure, _value(r.ours, r.unit), peer, ratio, r.goal, met])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    notes = [f"  {r.figure}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["", "notes:", *notes] if notes else []))


def save(rows: list[Row], path: Path, context: Mapping[str, object]) -> None:
    path.write_text(
        json.dumps({"context": dict(context), "rows": [r.as_dict() for r in rows]}, indent=2) + "\n"
    )
