"""The retrieval table of a search: each retrieval target's scores on the base and on every intermediate checkpoint.

A retrieval target (BUCC, Tatoeba) is evaluated, not searched (``search/retrieval_eval.py``): rows are the
encoders (the base first, then each intermediate configuration), columns its languages, the average
(``zero_shot_avg``) and the gain over the base. ``xstilts select`` prints it (and logs it in ``ranking.md``),
``xstilts report`` puts it in ``summary.md``. Nothing is selected from it: it has no dev metric, and reading
the best row off test scores would be selecting on test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from search.results import RetrievalEvaluation, SearchResults
from trainers import keys


@dataclass(frozen=True)
class RetrievalTable:
    """One retrieval target's completed evaluations."""

    target: str
    rows: list[RetrievalEvaluation]
    """Completed evaluations, the base first."""
    unfinished: int = 0
    """Evaluations that failed or have not ended (``xstilts search --resume`` repeats them)."""

    @property
    def languages(self) -> list[str]:
        """Every language any row scored, English first."""
        langs = {lang for row in self.rows for lang in row.languages}
        return sorted(langs, key=lambda lang: (lang != "en", lang))

    @property
    def base(self) -> RetrievalEvaluation | None:
        """The base encoder's evaluation, if it completed."""
        return next((row for row in self.rows if row.is_base), None)

    def gain(self, row: RetrievalEvaluation) -> float | None:
        """``row``'s average minus the base's (None for the base itself, or without either)."""
        base = self.base
        if base is None or row.is_base or base.average is None or row.average is None:
            return None
        return row.average - base.average


def retrieval_tables(found: SearchResults) -> dict[str, RetrievalTable]:
    """Target -> its table, for every target that has retrieval evaluations, in the search's target order."""
    order = {target: i for i, target in enumerate(found.targets)}
    targets = sorted({e.target for e in found.retrieval}, key=lambda t: (order.get(t, len(order)), t))
    tables = {}
    for target in targets:
        mine = [e for e in found.retrieval if e.target == target]
        done = [e for e in mine if e.status == keys.COMPLETED]
        tables[target] = RetrievalTable(target, done, len(mine) - len(done))
    return tables


def _cells(table: RetrievalTable, row: RetrievalEvaluation) -> list[str]:
    scores = row.languages
    return [
        row.label,
        *(_fmt(scores.get(lang)) for lang in table.languages),
        _fmt(row.average),
        _fmt(table.gain(row), signed=True) if not row.is_base else "",
    ]


def _header(table: RetrievalTable) -> list[str]:
    return ["encoder", *table.languages, "avg", "gain"]


def _caption(table: RetrievalTable) -> str:
    note = (
        f"; {table.unfinished} evaluation(s) failed or unfinished (xstilts search --resume repeats them)"
        if table.unfinished
        else ""
    )
    return (
        f"{table.target}: evaluated on the base encoder and on each intermediate checkpoint of the search "
        f"({keys.ZERO_SHOT}/<lang>, {keys.ZERO_SHOT_AVG}; gain over the base){note}"
    )


def table_lines(table: RetrievalTable) -> list[str]:
    """The table as aligned text (the CLI's)."""
    grid = [_header(table), *(_cells(table, row) for row in table.rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    lines = [_caption(table)]
    for line in grid:
        first = line[0].ljust(widths[0])
        rest = "  ".join(cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True))
        lines.append(f"  {first}  {rest}".rstrip())
    if not table.rows:
        lines.append("  (no completed evaluation)")
    return lines


def table_markdown(tables: Sequence[RetrievalTable]) -> list[str]:
    """The tables as Markdown (report's summary.md)."""
    if not tables:
        return []
    lines = [
        "## Retrieval targets",
        "",
        "Retrieval targets are evaluated, not searched: once on the base encoder and once on each intermediate "
        "checkpoint the search's trials used. They have no dev metric, so nothing is selected from them; the "
        "scores are test scores.",
    ]
    for table in tables:
        header = _header(table)
        lines += ["", f"{_caption(table)}:", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|---|" + "---:|" * (len(header) - 1))
        lines += ["| " + " | ".join(_cells(table, row)) + " |" for row in table.rows]
    return lines


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


__all__ = ["RetrievalTable", "retrieval_tables", "table_lines", "table_markdown"]
