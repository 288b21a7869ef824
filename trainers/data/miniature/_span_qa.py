"""Generators of the extractive QA tasks: SQuAD v1.1 and 2.0, XQuAD, MLQA and TyDiQA (gold passage)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from trainers.tasks.xtreme import TYDIQA_NAMES

from ._lexicon import ATTRS
from ._render import Fact, Person, Row, _describe, _detok, _fact_toks, _hex_id, _people, _question


def _qa_example(
    rng: random.Random,
    n_people: tuple[int, int],
    n_facts: tuple[int, int],
    unanswerable: float,
    reworded: float,
) -> tuple[list[Fact], Person, str, int | None, int]:
    """A paragraph about a few people, and a question about one fact (index into the facts, or ``None``
    when the paragraph does not say)."""
    people = _people(rng, rng.randint(*n_people) + 1)
    stranger, people = people[-1], people[:-1]
    per_person = [rng.sample(ATTRS, rng.randint(*n_facts)) for _ in people]
    facts = _describe(rng, people, per_person)
    variant = int(rng.random() < reworded)
    if rng.random() < unanswerable:
        person = rng.choice(people)
        missing = [a for a in ATTRS if all(f.attr != a for f in facts if f.person == person)]
        if rng.random() < 0.3:
            return facts, stranger, rng.choice(ATTRS), None, variant
        stated_elsewhere = [a for a in missing if any(f.attr == a for f in facts)]
        return facts, person, rng.choice(stated_elsewhere or missing), None, variant
    index = rng.randrange(len(facts))
    return facts, facts[index].person, facts[index].attr, index, variant


def _qa_rows(
    rng: random.Random,
    lang: str,
    n: int,
    ids: Callable[[int], str],
    n_people: tuple[int, int] = (1, 3),
    n_facts: tuple[int, int] = (2, 3),
    unanswerable: float = 0.0,
    reworded: float = 0.4,
) -> list[Row]:
    rows = []
    for i in range(n):
        facts, person, attr, index, variant = _qa_example(rng, n_people, n_facts, unanswerable, reworded)
        sentences = [
            _detok(_fact_toks(lang, f, mark="answer" if j == index else None)) for j, f in enumerate(facts)
        ]
        context, offset = "", 0
        answers: dict[str, list[Any]] = {"text": [], "answer_start": []}
        for text, spans in sentences:
            offset = len(context) + (1 if context else 0)
            context = f"{context} {text}" if context else text
            if "answer" in spans:
                start, end = spans["answer"]
                answers = {"text": [text[start:end]], "answer_start": [offset + start]}
        question = _question(lang, person, attr, variant, "full" if rng.random() < 0.5 else "first")
        title = f"{facts[0].person.first} {facts[0].person.last}"
        rows.append(
            {"id": ids(i), "title": title, "context": context, "question": question, "answers": answers}
        )
    return rows


def gen_squad_v1(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """SQuAD v1.1: id, title, context, question, answers{text, answer_start}."""
    return _qa_rows(rng, lang, n, lambda i: _hex_id("squad", split, i))


def gen_squad_v2(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """SQuAD 2.0: as SQuAD v1.1, a third unanswerable (empty answer lists)."""
    return _qa_rows(rng, lang, n, lambda i: _hex_id("squad_v2", split, i), unanswerable=1 / 3)


def gen_xquad(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """XQuAD: id, context, question, answers; parallel across languages (same ids)."""
    rows = _qa_rows(rng, lang, n, lambda i: _hex_id("xquad", split, i))
    return [{k: v for k, v in row.items() if k != "title"} for row in rows]


def gen_mlqa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """MLQA: id, title, context, question, answers; parallel across languages, two to three people."""
    return _qa_rows(rng, lang, n, lambda i: _hex_id("mlqa", split, i), n_people=(2, 3))


def gen_tydiqa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """TyDiQA gold passage: ids prefixed by the language name, longer passages, reworded questions."""
    prefix = TYDIQA_NAMES[lang]
    return _qa_rows(
        rng,
        lang,
        n,
        lambda i: f"{prefix}-{int(_hex_id('tydiqa', split, lang, i)[:15], 16)}-{i}",
        n_people=(1, 2),
        n_facts=(3, 4),
        reworded=0.6,
    )
