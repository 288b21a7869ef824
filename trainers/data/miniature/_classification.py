"""Generators of the classification tasks: NLI (XNLI, MNLI, ANLI), paraphrase (PAWS-X, QQP), their
translate-train sets, and SST-2.

Each takes (rng, lang, split, n) and returns n rows in the hub's schema. Random choices are made before
rendering, so a parallel task draws the same content in every language.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ._lexicon import ATTRS, CITIES, FACT_TEMPLATES, N_VALUES, ORGS
from ._lexicon_english import SST_NEGATIVE, SST_POSITIVE, SST_SUBJECTS
from ._lexicon_events import EVENT_QUESTIONS, EVENT_TEMPLATES, SOLD_THINGS
from ._render import (
    Fact,
    Row,
    Tok,
    _describe,
    _detok,
    _fill,
    _hex_id,
    _other_value,
    _people,
    _question,
    _render,
)

NLI_ENTAILMENT, NLI_NEUTRAL, NLI_CONTRADICTION = 0, 1, 2


def _nli_pair(rng: random.Random, label: int, adversarial: float) -> tuple[list[Fact], Fact]:
    """A premise about one or two people and a hypothesis that it entails, contradicts, or leaves open.

    Entailed: a stated fact, usually reworded, or the negation of another value. Contradicted: a stated
    attribute with another value, or the stated fact negated. Neutral: an attribute the premise does not
    state. ``adversarial`` is the share of pairs whose hypothesis borrows a value the premise states for the
    other person, which defeats lexical overlap (the ANLI flavour).
    """
    two = adversarial > 0 or rng.random() < 0.2
    people = _people(rng, 2 if two else 1)
    attrs = rng.sample(ATTRS, 4 if two else rng.choice((2, 3)))
    if two:  # both people share the first two attributes; each has one of its own
        per_person = [[attrs[0], attrs[1], attrs[2]], [attrs[0], attrs[1], attrs[3]]]
        for group in per_person:
            rng.shuffle(group)
    else:
        per_person = [attrs]
    premise = _describe(rng, people, per_person)
    if two:  # no pronouns when two people are described
        premise = [f._replace(ref="full" if f.ref == "full" else "first") for f in premise]
    target = rng.choice(people)
    own = [f for f in premise if f.person == target]
    others = [f for f in premise if f.person != target]
    ref = rng.choice(("full", "first"))
    tricky = rng.random() < adversarial
    if label == NLI_ENTAILMENT:
        fact = rng.choice(own)
        if FACT_TEMPLATES["en"][fact.attr][2] is not None and rng.random() < 0.15:  # "not" another value
            value = _other_value(rng, fact.attr, *(f.value for f in premise if f.attr == fact.attr))
            return premise, Fact(target, fact.attr, value, 2, ref)
        return premise, Fact(target, fact.attr, fact.value, 1 if rng.random() < 0.7 else 0, ref)
    if label == NLI_CONTRADICTION:
        fact = rng.choice(own)
        rival = [f for f in others if f.attr == fact.attr]
        if tricky and rival:
            return premise, Fact(target, fact.attr, rival[0].value, rng.choice((0, 1)), ref)
        if FACT_TEMPLATES["en"][fact.attr][2] is not None and rng.random() < 0.3:
            return premise, Fact(target, fact.attr, fact.value, 2, ref)
        value = _other_value(rng, fact.attr, *(f.value for f in premise if f.attr == fact.attr))
        return premise, Fact(target, fact.attr, value, rng.choice((0, 1)), ref)
    stated = {f.attr for f in own}
    borrowed = [f for f in others if f.attr not in stated]
    if tricky and borrowed:
        fact = rng.choice(borrowed)
        return premise, Fact(target, fact.attr, fact.value, rng.choice((0, 1)), ref)
    if not two and rng.random() < 0.2:  # a stated fact, but about somebody else
        stranger = _people(rng, 1)[0]
        if stranger.first != target.first and stranger.last != target.last:
            fact = rng.choice(own)
            return premise, Fact(stranger, fact.attr, fact.value, rng.choice((0, 1)), "full")
    attr = rng.choice([a for a in ATTRS if a not in stated])
    return premise, Fact(target, attr, rng.randrange(N_VALUES[attr]), rng.choice((0, 1)), ref)


def _nli_rows(rng: random.Random, lang: str, n: int, adversarial: float) -> list[tuple[str, str, int]]:
    labels = [i % 3 for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for label in labels:
        premise, hypothesis = _nli_pair(rng, label, adversarial)
        rows.append((_render(lang, premise), _render(lang, [hypothesis]), label))
    return rows


def gen_xnli(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """XNLI (``facebook/xnli``): premise, hypothesis, label."""
    return [{"premise": p, "hypothesis": h, "label": y} for p, h, y in _nli_rows(rng, lang, n, 0.0)]


def gen_xnli_tt(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """Translate-train XNLI (``facebook/xnli`` train of each language): premise, hypothesis, label; parallel,
    so every language's train split translates the English one."""
    return gen_xnli(rng, lang, split, n)


def gen_mnli(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """MNLI (``nyu-mll/glue``): premise, hypothesis, label, idx; the same generator as XNLI."""
    rows = _nli_rows(rng, lang, n, 0.0)
    return [{"premise": p, "hypothesis": h, "label": y, "idx": i} for i, (p, h, y) in enumerate(rows)]


def gen_anli(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """ANLI (``facebook/anli``): two people per premise, half the hypotheses built to defeat word overlap."""
    rows = _nli_rows(rng, lang, n, 0.5)
    return [
        {"uid": _hex_id("anli", split, i), "premise": p, "hypothesis": h, "label": y, "reason": ""}
        for i, (p, h, y) in enumerate(rows)
    ]


# The slot that a swap exchanges with A, and the slot that a substitution changes, per event.
SWAPPED = {"hire": ("A", "B"), "move": ("B", "C"), "visit": ("A", "B"), "sell": ("A", "B")}
SUBSTITUTED = {"hire": "O", "move": "C", "visit": "C", "sell": "X"}


def _event_slots(rng: random.Random, name: str) -> dict[str, str]:
    """Fillers of an event's slots: people ``A``/``B`` (cities ``B``/``C`` for a move), place, firm, thing."""
    a, b = _people(rng, 2)
    slots = {"A": f"{a.first} {a.last}", "B": f"{b.first} {b.last}", "O": rng.choice(ORGS)}
    slots["C"] = rng.choice(CITIES)
    if name == "move":
        slots["B"], slots["C"] = rng.sample(CITIES, 2)
    slots["X"] = str(rng.randrange(len(SOLD_THINGS)))
    return slots


def _event_text(template: str, slots: dict[str, str], lang: str) -> str:
    filled = dict(slots, X=SOLD_THINGS[int(slots["X"])][lang])
    return _detok(_fill(template, {k: [Tok(w) for w in v.split()] for k, v in filled.items()}))[0]


def _paraphrase_pair(
    rng: random.Random, name: str, templates: Sequence[str], lang: str, label: int
) -> tuple[str, str]:
    """Two rewordings of one event; a non-paraphrase swaps two roles in the second (the words stay the
    same), or else substitutes one filler."""
    slots = _event_slots(rng, name)
    i, j = rng.sample(range(len(templates)), 2)
    other = dict(slots)
    if label == 0:
        if rng.random() < 0.3:
            key = SUBSTITUTED[name]
            if key == "X":
                other["X"] = str((int(slots["X"]) + rng.randrange(1, len(SOLD_THINGS))) % len(SOLD_THINGS))
            else:
                pool = ORGS if key == "O" else CITIES
                other[key] = rng.choice([v for v in pool if v not in slots.values()])
        else:
            x, y = SWAPPED[name]
            other[x], other[y] = slots[y], slots[x]
    return _event_text(templates[i], slots, lang), _event_text(templates[j], other, lang)


def gen_pawsx(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """PAWS-X: id, sentence1, sentence2, label (1 = paraphrase); negatives swap roles, keeping the words."""
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for i, label in enumerate(labels):
        name = sorted(EVENT_TEMPLATES)[rng.randrange(len(EVENT_TEMPLATES))]
        s1, s2 = _paraphrase_pair(rng, name, EVENT_TEMPLATES[name][lang], lang, label)
        rows.append({"id": i + 1, "sentence1": s1, "sentence2": s2, "label": label})
    return rows


def gen_pawsx_tt(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """Translate-train PAWS-X (the paws-x train split of each language); parallel, as ``gen_xnli_tt``."""
    return gen_pawsx(rng, lang, split, n)


def gen_qqp(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """QQP: idx, question1, question2, label (1 = duplicate); like PAWS-X, plus attribute questions."""
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for i, label in enumerate(labels):
        if rng.random() < 0.5:
            name = sorted(EVENT_QUESTIONS)[rng.randrange(len(EVENT_QUESTIONS))]
            q1, q2 = _paraphrase_pair(rng, name, EVENT_QUESTIONS[name], lang, label)
        else:
            person, other = _people(rng, 2)
            attr = rng.choice(ATTRS)
            v1, v2 = rng.sample((0, 1), 2)
            q1 = _question(lang, person, attr, v1)
            if label == 1:
                q2 = _question(lang, person, attr, v2, rng.choice(("full", "full", "first")))
            elif rng.random() < 0.5:
                q2 = _question(lang, other, attr, v2)
            else:
                q2 = _question(lang, person, rng.choice([a for a in ATTRS if a != attr]), rng.choice((0, 1)))
        rows.append({"idx": i, "question1": q1, "question2": q2, "label": label})
    return rows


def gen_sst2(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """SST-2: idx, sentence, label (1 = positive); polarity from sentiment words, flipped by negation and
    decided by the clause after "but"/"although"."""
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for i, label in enumerate(labels):
        good, bad = (SST_POSITIVE, SST_NEGATIVE) if label == 1 else (SST_NEGATIVE, SST_POSITIVE)
        s1, s2 = rng.sample(SST_SUBJECTS, 2)
        form = rng.choices(range(5), weights=(35, 25, 15, 15, 10))[0]
        if form == 0:
            text = f"{s1} is {rng.choice(good)} ."
        elif form == 1:
            a, b = rng.sample(good, 2)
            text = f"{s1} is {a} and {b} ."
        elif form == 2:
            text = f"{s1} is not {rng.choice(bad)} ."
        elif form == 3:
            text = f"{s1} is {rng.choice(bad)} , but {s2} is {rng.choice(good)} ."
        else:
            text = f"although {s1} is {rng.choice(bad)} , {s2} is truly {rng.choice(good)} ."
        rows.append({"idx": i, "sentence": text, "label": label})
    return rows
