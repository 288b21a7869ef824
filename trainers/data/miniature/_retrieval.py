"""Generators of the retrieval tasks: BUCC and Tatoeba (translation pairs, row-aligned)."""

from __future__ import annotations

import random

from ._lexicon import ATTRS, N_VALUES
from ._render import Fact, Row, _people, _render


def _retrieval_rows(rng: random.Random, lang: str, n: int, n_facts: int) -> list[Row]:
    """Translation pairs: row i's source (``lang``) is the translation of row i's target (English)."""
    rows: list[Row] = []
    seen: set[str] = set()
    while len(rows) < n:
        people = _people(rng, n_facts)
        facts = [
            Fact(
                p, attr, rng.randrange(N_VALUES[attr]), int(rng.random() < 0.3), rng.choice(("full", "first"))
            )
            for p, attr in zip(people, rng.sample(ATTRS, n_facts), strict=True)
        ]
        target = _render("en", facts)
        if target in seen:
            continue
        seen.add(target)
        rows.append(
            {
                "source_sentence": _render(lang, facts),
                "target_sentence": target,
                "source_lang": lang,
                "target_lang": "en",
            }
        )
    return rows


def gen_bucc(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """BUCC: source_sentence, target_sentence (English), source_lang, target_lang; two-fact sentences."""
    return _retrieval_rows(rng, lang, n, 2)


def gen_tatoeba(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """Tatoeba: source_sentence, target_sentence (English), source_lang, target_lang; one-fact sentences."""
    return _retrieval_rows(rng, lang, n, 1)
