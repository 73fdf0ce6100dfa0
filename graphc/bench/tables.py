"""A sweep's rows as a table a newcomer can read: CSV, Markdown and printed text.

Derived columns (per row of :func:`graphc.bench.remat.sweep_remat`):

- saved vs store-all = 1 − planned arena / store-all arena;
- extra compute = recompute FLOPs / forward FLOPs (one forward pass = 100 %);
- step time overhead = median over pairs of runs of (step time / store-all step
  time) − 1, the two run alternately in the same process.

Memory is in MB (10^6 bytes). The frontier target, :func:`reduction_at_overhead`,
is the largest store-all / planned arena among points within a time overhead.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Row = Mapping[str, Any]

TIME_OVERHEAD_TARGET = 12.0
"""Percent of measured step time, MONeT's figure for ResNet-50 (3× less memory for +12 % time)."""


def _ok(row: Row) -> bool:
    return row["planned_bytes"] is not None


def saved_percent(row: Row) -> float:
    return 100 * (1 - row["planned_bytes"] / row["store_all_bytes"]) if _ok(row) and row["store_all_bytes"] else math.nan


def extra_compute_percent(row: Row) -> float:
    return 100 * row["recompute_flops"] / row["forward_flops"] if _ok(row) and row["forward_flops"] else math.nan


def time_overhead_percent(row: Row) -> float:
    return 100 * (row["time_ratio"] - 1) if _ok(row) else math.nan


def _mb(nbytes: int | None) -> float:
    return math.nan if nbytes is None else nbytes / 1e6


COLUMNS: list[tuple[str, Callable[[Row], Any], str]] = [
    ("graph", lambda r: r["graph"], "{}"),
    ("policy", lambda r: "store-all" if r["policy"] == "none" else r["policy"], "{}"),
    ("memory budget (MB)", lambda r: _mb(r["budget_bytes"]), "{:.4g}"),
    ("planned arena (MB)", lambda r: _mb(r["planned_bytes"]), "{:.4g}"),
    ("saved vs store-all (%)", saved_percent, "{:.1f}"),
    ("recompute FLOPs", lambda r: r["recompute_flops"], "{:,d}"),
    ("extra compute (% of a forward)", extra_compute_percent, "{:.1f}"),
    ("step time (ms)", lambda r: 1e3 * r["step_seconds"], "{:.2f}"),
    ("store-all step time (ms)", lambda r: 1e3 * r["store_all_step_seconds"], "{:.2f}"),
    ("step time overhead (%)", time_overhead_percent, "{:+.1f}"),
    ("compile time (s)", lambda r: r["compile_seconds"], "{:.2f}"),
    ("solve time (s)", lambda r: r["solve_seconds"], "{:.2f}"),
    ("status", lambda r: r["status"], "{}"),
]
"""(header, value of a row, how Markdown and the printed table show it)."""

MEASURED = ("step time (ms)", "store-all step time (ms)", "step time overhead (%)", "compile time (s)",
            "solve time (s)")
"""The columns that are measured times: everything else is the same on every run of a sweep."""


def table(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The rows as {header: value}, in :data:`COLUMNS`' order."""
    return [{header: value(row) for header, value, _ in COLUMNS} for row in rows]


def _shown(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def write_csv(rows: Sequence[Row], path: Path) -> Path:
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=[header for header, _, _ in COLUMNS])
        writer.writeheader()
        for line in table(rows):
            writer.writerow({k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
                             for k, v in line.items()})
    return path


def markdown(rows: Sequence[Row]) -> str:
    headers = [header for header, _, _ in COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" if h in ("graph", "policy", "status") else "--:"
                                                             for h in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_shown(value(row), fmt) for _, value, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def text(rows: Sequence[Row]) -> str:
    """The table aligned in columns for a terminal."""
    cells = [[header for header, _, _ in COLUMNS]] + [[_shown(value(row), fmt) for _, value, fmt in COLUMNS]
                                                     for row in rows]
    widths = [max(len(line[k]) for line in cells) for k in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) if k < 2 or k == len(COLUMNS) - 1 else c.rjust(w)
                               for k, (c, w) in enumerate(zip(line, widths))).rstrip() for line in cells)


def reduction_at_overhead(rows: Sequence[Row], graph: str, limit: float = TIME_OVERHEAD_TARGET) -> Row | None:
    """The point of ``graph`` with the smallest planned arena among those whose measured step
    time overhead is at most ``limit`` percent (store-all itself qualifies), or None. The
    ratio is compared with 1 + limit / 100, so that a point at exactly the limit counts."""
    within = [r for r in rows if r["graph"] == graph and _ok(r) and r["time_ratio"] <= 1 + limit / 100]
    return min(within, key=lambda r: (r["planned_bytes"], time_overhead_percent(r)), default=None)


def frontier_target(rows: Sequence[Row], graph: str, limit: float = TIME_OVERHEAD_TARGET) -> str:
    """``graph``'s memory reduction (store-all arena / chosen arena) at ≤ ``limit`` % measured time."""
    best = reduction_at_overhead(rows, graph, limit)
    if best is None:
        return f"{graph}: no point within {limit:g} % measured step-time overhead"
    return (f"{graph}: memory reduction at <= {limit:g} % measured step-time overhead: "
            f"{best['store_all_bytes'] / best['planned_bytes']:.2f}x (store-all {_mb(best['store_all_bytes']):.4g} MB "
            f"-> {_mb(best['planned_bytes']):.4g} MB, {best['policy']}, {time_overhead_percent(best):+.1f} % time, "
            f"+{extra_compute_percent(best):.1f} % compute)")
