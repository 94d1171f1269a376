"""Cells and tables of the read-side commands: values, parameters, durations and rates."""

from __future__ import annotations

from typing import Any

INACTIVE = object()  # a conditional parameter that did not apply to a configuration


def format_param(value: Any) -> str:
    """A parameter value for a table: floats to 6 significant digits, ``-`` if inactive."""
    if value is INACTIVE:
        return "-"
    if isinstance(value, float):
        return format_value(value)
    return str(value)


def format_value(x: float) -> str:
    """A metric value: 6 significant digits."""
    return f"{x:.6g}"


def format_duration(seconds: float) -> str:
    """Seconds in words: ``3.25 s``, ``42.0 s``, ``12 min 05 s``, ``3 h 20 min``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def format_rate(n: int, seconds: float) -> str:
    """``n`` evaluations in ``seconds`` as a rate (per hour too when below one per second)."""
    if n == 0 or seconds <= 0:
        return "-"
    rate = n / seconds
    per_hour = f" ({rate * 3600:.3g} per hour)" if rate < 1 else ""
    shown = f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"
    return f"{shown} evaluations/s{per_hour}"


def table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Aligned columns: numbers right-aligned, text left-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    right = [all(numeric(row[j]) for row in rows) for j in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(w) if r else cell.ljust(w)
            for cell, w, r in zip(row, widths, right, strict=True)
        ]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def numeric(cell: str) -> bool:
    """Whether a cell reads as a number, possibly with a unit ("3.2 s"), or is empty ("-")."""
    if cell == "-":
        return True
    try:
        float(cell.split(" ", 1)[0])
    except ValueError:
        return False
    return True
