"""The generator registry: task name -> how the miniature generates that task's files, and their version.

A registry task without an entry here is allowed: it runs on the hub, local or XTREME data, and asking for it
on the miniature is a one-line error before any compute (``check_miniature_tasks``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from trainers.config import ConfigError

from ._classification import (
    gen_anli,
    gen_mnli,
    gen_pawsx,
    gen_pawsx_tt,
    gen_qqp,
    gen_sst2,
    gen_xnli,
    gen_xnli_tt,
)
from ._masked_lm import gen_mlm_multilingual
from ._multiple_choice import gen_commonsenseqa, gen_copa, gen_cosmosqa, gen_hellaswag, gen_siqa, gen_xcopa
from ._render import Row
from ._retrieval import gen_bucc, gen_tatoeba
from ._span_qa import gen_mlqa, gen_squad_v1, gen_squad_v2, gen_tydiqa, gen_xquad
from ._tagging import gen_ccg, gen_panx, gen_udpos

Generator = Callable[[random.Random, str, str, int], list[Row]]
"""``(rng, language, split, n)`` -> ``n`` rows in the hub's schema of the task."""


@dataclass(frozen=True)
class MiniatureGenerator:
    """How the miniature generates one task, and the version of what it generates."""

    generate: Generator
    """The generator function (one per task family, in the module of its task type)."""
    version: str = "1"
    """Bump when this task's rows change (its generator, or the lexicon it reads): only this task's files are
    generated again, and only intermediate checkpoints trained on this task are invalidated."""
    parallel: bool = False
    """Every language draws the same content: the evaluation sets are translations of one another."""


GENERATORS: dict[str, MiniatureGenerator] = {
    "xnli": MiniatureGenerator(gen_xnli, parallel=True),
    "pawsx": MiniatureGenerator(gen_pawsx, parallel=True),
    "udpos": MiniatureGenerator(gen_udpos),
    "panx": MiniatureGenerator(gen_panx),
    "xquad": MiniatureGenerator(gen_xquad, parallel=True),
    "mlqa": MiniatureGenerator(gen_mlqa, parallel=True),
    "tydiqa": MiniatureGenerator(gen_tydiqa),
    "bucc": MiniatureGenerator(gen_bucc),
    "tatoeba": MiniatureGenerator(gen_tatoeba),
    "mnli": MiniatureGenerator(gen_mnli),
    "anli": MiniatureGenerator(gen_anli),
    "qqp": MiniatureGenerator(gen_qqp),
    "sst2": MiniatureGenerator(gen_sst2),
    "squad_v1": MiniatureGenerator(gen_squad_v1),
    "squad_v2": MiniatureGenerator(gen_squad_v2),
    "hellaswag": MiniatureGenerator(gen_hellaswag),
    "cosmosqa": MiniatureGenerator(gen_cosmosqa),
    "commonsenseqa": MiniatureGenerator(gen_commonsenseqa),
    "ccg": MiniatureGenerator(gen_ccg),
    "mlm_multilingual": MiniatureGenerator(gen_mlm_multilingual),
    "xcopa": MiniatureGenerator(gen_xcopa, parallel=True),
    "copa": MiniatureGenerator(gen_copa),
    "siqa": MiniatureGenerator(gen_siqa),
    "xnli_tt": MiniatureGenerator(gen_xnli_tt, parallel=True),
    "pawsx_tt": MiniatureGenerator(gen_pawsx_tt, parallel=True),
}
"""Task name -> its generator. Adding a task to the miniature is one entry here (and its generator)."""


class NoMiniatureError(ConfigError):
    """A task asked for on the miniature that has no miniature generator (a ``UserError``: one line)."""


def miniature_version(task: str) -> str | None:
    """The version of ``task``'s miniature files; ``None`` when the miniature does not generate it."""
    generator = GENERATORS.get(task)
    return None if generator is None else generator.version


def check_miniature_tasks(tasks: Iterable[str]) -> None:
    """Every task of ``tasks`` has a miniature generator; else one line naming those that do not."""
    missing = sorted({task for task in tasks if task not in GENERATORS})
    if missing:
        names = ", ".join(missing)
        raise NoMiniatureError(
            f"data.source=miniature: no miniature generator for task(s) {names}; use data.source=local, hub or "
            f"xtreme for them (the miniature generates {', '.join(sorted(GENERATORS))})"
        )
