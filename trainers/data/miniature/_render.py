"""Rendering: facts about people become tokens (with POS, NER and a mark for QA answers), then text."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any, NamedTuple

from ._lexicon import (
    AGES,
    ATTRS,
    CITIES,
    DETERMINERS,
    FACT_TEMPLATES,
    FEMALE_NAMES,
    FOODS,
    INSTRUMENTS,
    JOBS,
    LAST_NAMES,
    MALE_NAMES,
    N_VALUES,
    ORGS,
    PETS,
    PRONOUNS,
    QUESTION_TEMPLATES,
    VALUE_NER,
)

Row = dict[str, Any]
"""One generated row, in the hub's schema of its task."""


class Person(NamedTuple):
    first: str
    last: str
    female: bool


class Fact(NamedTuple):
    person: Person
    attr: str
    value: int
    kind: int = 0
    """0: plain statement, 1: restatement, 2: negation."""
    ref: str = "full"
    """How the person is named: ``full``, ``first`` or ``pron``."""


class Tok(NamedTuple):
    text: str
    pos: str | None = None
    """Universal POS of slot fillers; ``None`` for template words (looked up in ``WORD_POS``)."""
    ner: str = "O"
    mark: str | None = None
    """Marks the tokens of a QA answer."""


def _rng(seed: int, *key: str) -> random.Random:
    digest = hashlib.sha256("/".join((str(seed), *key)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _hex_id(*key: object) -> str:
    return hashlib.md5("/".join(map(str, key)).encode()).hexdigest()[:24]


def _people(rng: random.Random, k: int) -> list[Person]:
    """``k`` people with distinct first and last names."""
    females = [rng.random() < 0.5 for _ in range(k)]
    firsts = rng.sample(FEMALE_NAMES, k)
    males = rng.sample(MALE_NAMES, k)
    lasts = rng.sample(LAST_NAMES, k)
    return [
        Person(f if fem else m, last, fem)
        for f, m, last, fem in zip(firsts, males, lasts, females, strict=True)
    ]


def _entity(text: str, label: str, mark: str | None = None) -> list[Tok]:
    """A named entity's tokens: proper nouns tagged B-/I-``label``."""
    return [Tok(w, "PROPN", ("B-" if i == 0 else "I-") + label, mark) for i, w in enumerate(text.split())]


def _person_toks(person: Person, lang: str, ref: str, case: str = "nom") -> list[Tok]:
    if ref == "pron":
        return [Tok(PRONOUNS[lang][case][person.female])]
    name = person.first if ref == "first" else f"{person.first} {person.last}"
    return _entity(name, "PER")


def _value_toks(attr: str, value: int, lang: str, female: bool, mark: str | None = None) -> list[Tok]:
    if attr in ("city", "org"):
        return _entity((CITIES if attr == "city" else ORGS)[value], VALUE_NER[attr], mark=mark)
    if attr == "age":
        return [Tok(str(AGES[value]), "NUM", "O", mark)]
    if attr == "job":
        job = JOBS[value]
        article = "an" if job["en"][0] in "aeiou" else "a"
        text = f"{article} {job['en']}" if lang == "en" else job[lang][female]
    else:
        text = {"pet": PETS, "instrument": INSTRUMENTS, "food": FOODS}[attr][value][lang]
    return [Tok(w, "DET" if w in DETERMINERS[lang] else "NOUN", "O", mark) for w in text.split()]


def _fill(template: str, slots: dict[str, list[Tok]], start: bool = True) -> list[Tok]:
    """Template words become tokens, ``{X}`` the slot's tokens; the first letter is capitalised at a start."""
    toks: list[Tok] = []
    for word in template.split():
        if word.startswith("{") and word.endswith("}"):
            toks.extend(slots[word[1:-1]])
        else:
            toks.append(Tok(word))
    if start and toks:
        first = toks[0]
        toks[0] = first._replace(text=first.text[:1].upper() + first.text[1:])
    return toks


def _fact_toks(lang: str, fact: Fact, start: bool = True, mark: str | None = None) -> list[Tok]:
    template = FACT_TEMPLATES[lang][fact.attr][fact.kind]
    if template is None:
        raise ValueError(f"no negation template for {fact.attr!r} in {lang!r}")
    slots = {
        "P": _person_toks(fact.person, lang, fact.ref),
        "P:dat": _person_toks(fact.person, lang, fact.ref, "dat"),
        "V": _value_toks(fact.attr, fact.value, lang, fact.person.female, mark),
    }
    return _fill(template, slots, start)


def _question(lang: str, person: Person, attr: str, variant: int, ref: str = "full") -> str:
    slots = {"P": _person_toks(person, lang, ref), "P:dat": _person_toks(person, lang, ref, "dat")}
    return _detok(_fill(QUESTION_TEMPLATES[lang][attr][variant], slots))[0]


NO_SPACE_BEFORE = {".", ",", "?", "!", ")"}
NO_SPACE_AFTER = {"(", "¿", "¡"}


def _detok(toks: Sequence[Tok]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Text of ``toks`` with natural spacing, and the character span of each mark."""
    text = ""
    spans: dict[str, tuple[int, int]] = {}
    previous = ""
    for tok in toks:
        if text and tok.text not in NO_SPACE_BEFORE and previous not in NO_SPACE_AFTER:
            text += " "
        start = len(text)
        text += tok.text
        if tok.mark is not None:
            begin = spans.get(tok.mark, (start, start))[0]
            spans[tok.mark] = (begin, len(text))
        previous = tok.text
    return text, spans


def _render(lang: str, facts: Sequence[Fact]) -> str:
    return " ".join(_detok(_fact_toks(lang, fact))[0] for fact in facts)


def _describe(
    rng: random.Random, people: Sequence[Person], attrs_per_person: Sequence[Sequence[str]]
) -> list[Fact]:
    """Facts about each person in turn (full name first, then first name or pronoun); a value is never
    shared by two people of one text."""
    used: dict[str, set[int]] = {attr: set() for attr in ATTRS}
    facts: list[Fact] = []
    for person, attrs in zip(people, attrs_per_person, strict=True):
        for i, attr in enumerate(attrs):
            value = rng.choice([v for v in range(N_VALUES[attr]) if v not in used[attr]])
            used[attr].add(value)
            ref = "full" if i == 0 else rng.choice(("first", "pron"))
            facts.append(Fact(person, attr, value, 0, ref))
    return facts


def _other_value(rng: random.Random, attr: str, *excluded: int) -> int:
    return rng.choice([v for v in range(N_VALUES[attr]) if v not in excluded])
