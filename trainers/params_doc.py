"""The README's tables of trainer parameters, generated from the declarations
(:mod:`trainers.params`), so the docs cannot drift from the code.

    python -m trainers.params_doc                     # print the tables
    python -m trainers.params_doc --write README.md   # replace them between the markers
    python -m trainers.params_doc --check README.md   # exit 1 if the README's differ

The shared parts (data, model, ...) get one table each; each trainer lists its parts, what it
changes in them (another default, fewer choices, only some of a part's params) and a table of
its own params.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from .data import DATA
from .framework import LOOP, OPTIMIZER, RUNTIME, SCHEDULE
from .models import MODEL
from .params import Param, Table, Trainer
from .partition import PARTITION

BEGIN = "<!-- trainer-params:begin: made by `python -m trainers.params_doc --write README.md` -->"
END = "<!-- trainer-params:end -->"
SHARED = (DATA, MODEL, OPTIMIZER, SCHEDULE, LOOP, RUNTIME, PARTITION)
TRAINERS = ("baseline", "easgd", "daso", "oialr", "ab", "mac", "auxnet", "ddg", "fr")


def trainers() -> list[Trainer]:
    """The registered trainers, in the README's order."""
    return [importlib.import_module(f"trainers.{name}").train for name in TRAINERS]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _default(p: Param) -> str:
    return p.derived if p.default is None else f"`{_value(p.default)}`"


def _range(p: Param) -> str:
    if p.kind == "choice":
        shown = ", ".join(_value(c) for c in p.choices)
        return shown + (f", or a {'/'.join(p.suffixes)} file" if p.suffixes else "")
    return p.range_text().removeprefix("in ") or "—"


def _name(p: Param) -> str:
    return f"`{p.name}`" + (f", `{p.name}I`" if p.indexed else "")


def table(params: tuple[Param, ...] | list[Param]) -> list[str]:
    """A markdown table: name, type, default, range, what it does."""
    rows = ["| param | type | default | range | what |", "|---|---|---|---|---|"]
    for p in params:
        doc = p.doc.replace("|", "\\|")
        rows.append(f"| {_name(p)} | {p.kind} | {_default(p)} | {_range(p)} | {doc} |")
    return rows


def _part_line(part: Table, shared: Table) -> str:
    if part.names == shared.names:
        return part.title
    return f"{part.title} (only {', '.join(f'`{n}`' for n in part.names)})"


def trainer_section(trainer: Trainer) -> list[str]:
    """A trainer's parts, its changes to them and its own params."""
    shared = {t.title: t for t in SHARED}
    parts = [p for p in trainer.parts if p.title in shared]
    own = [p for part in trainer.parts if part.title not in shared for p in part.params]
    changed = [p for part in parts for p in part.params if p != shared[part.title][p.name]]
    lines = [f"#### `{trainer.name}`", ""]
    lines.append("Parts: " + ", ".join(_part_line(p, shared[p.title]) for p in parts) + ".")
    lines.append(f"Returns: {', '.join(f'`{m}`' for m in trainer.metrics)}.")
    if changed:
        lines += ["", "Different here:", "", *table(changed)]
    if own:
        lines += ["", "Its own:", "", *table(own)]
    return [*lines, ""]


def render() -> str:
    """The generated block, markers included."""
    lines = [
        BEGIN,
        "### Trainer parameters",
        "",
        "Each trainer takes the params of its parts and its own, nothing else: `propagate "
        "validate` and `pg.search` refuse a search that names another (with the closest name), "
        "a constant of the wrong type or out of range, a searched range that leaves the allowed "
        "one, or a choice that is not allowed, before any work. `I` in a name stands for a layer "
        "or group number (1, 2, ...).",
        "",
    ]
    for part in SHARED:
        lines += [f"#### Part: {part.title}", "", *table(part.params), ""]
    for trainer in trainers():
        lines += trainer_section(trainer)
    return "\n".join([*lines, END]) + "\n"


def replaced(text: str, block: str) -> str:
    """``text`` with the block between the markers (markers included) replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {BEGIN!r} ... {END!r} are missing")
    return text[:start] + block + text[end + len(END) :].removeprefix("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.params_doc", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="README", help="replace the tables in it")
    group.add_argument("--check", type=Path, metavar="README", help="exit 1 if they differ")
    args = parser.parse_args(argv)
    block = render()
    if args.write:
        args.write.write_text(replaced(args.write.read_text(encoding="utf-8"), block))
    elif args.check:
        text = args.check.read_text(encoding="utf-8")
        if replaced(text, block) != text:
            print(f"{args.check}: the trainer tables are out of date; run {BEGIN[5:-4]}")
            return 1
    else:
        sys.stdout.write(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
