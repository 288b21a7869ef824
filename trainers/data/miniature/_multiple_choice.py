"""Generators of the multiple-choice tasks: HellaSwag, CosmosQA, CommonsenseQA, and COPA-style plausible
alternatives (XCOPA in every miniature language, COPA and Social IQa in English)."""

from __future__ import annotations

import random

from ._lexicon import ATTRS, CITIES, JOBS, N_VALUES, PETS, PRONOUNS
from ._lexicon_english import EVENTS, JOB_ACTIVITIES, OBJECT_PLACES, PET_ACTIVITIES
from ._render import Fact, Row, _describe, _hex_id, _other_value, _people, _render


def gen_hellaswag(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """HellaSwag: ctx (= ctx_a + ctx_b), four endings, label as a string; the right ending is what the
    person's job or pet makes them do."""
    rows = []
    for i in range(n):
        person = _people(rng, 1)[0]
        pronoun = PRONOUNS["en"]["nom"][person.female]
        if rng.random() < 0.5:
            job = rng.randrange(len(JOBS))
            ctx_a = _render("en", [Fact(person, "job", job)])
            activities = JOB_ACTIVITIES
            key, label_text = JOBS[job]["en"], "Working"
            ctx_b = rng.choice(("Every morning, {p}", "At work, {p}", "Later that day, {p}"))
        else:
            pet = rng.randrange(len(PETS))
            ctx_a = _render("en", [Fact(person, "pet", pet)])
            activities = PET_ACTIVITIES
            key, label_text = PETS[pet]["en"], "Pets"
            ctx_b = rng.choice(("In the afternoon, {p}", "After dinner, {p}", "On Sunday, {p}"))
        if rng.random() < 0.5:
            attr = rng.choice(("city", "org", "age"))
            ctx_a += " " + _render("en", [Fact(person, attr, rng.randrange(N_VALUES[attr]), 0, "pron")])
        ctx_b = ctx_b.format(p=rng.choice((pronoun, person.first)))
        wrong = rng.sample([a for k, a in sorted(activities.items()) if k != key], 3)
        label = rng.randrange(4)
        endings = [f"{e}." for e in (*wrong[:label], activities[key], *wrong[label:])]
        rows.append(
            {
                "ind": i,
                "activity_label": label_text,
                "ctx_a": ctx_a,
                "ctx_b": ctx_b,
                "ctx": f"{ctx_a} {ctx_b}",
                "endings": endings,
                "source_id": f"miniature~{split}~{i}",
                "split": "val" if split == "dev" else split,
                "split_type": "indomain",
                "label": str(label),
            }
        )
    return rows


def gen_cosmosqa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """CosmosQA: id, context, question, answer0..answer3, label; the answer follows from the person's event
    (how they felt, what they did next, or why), another person's event is a distractor."""
    events = sorted(EVENTS)
    rows = []
    for i in range(n):
        people = _people(rng, 2)
        e1, e2 = rng.sample(events, 2)
        context = f"{people[0].first} {people[0].last} {e1}."
        if rng.random() < 0.5:
            context += f" The same day, {people[1].first} {e2}."
        context += " " + _render("en", [Fact(people[0], "city", rng.randrange(len(CITIES)), 0, "first")])
        kind = rng.randrange(3)
        if kind == 0:
            question = f"How did {people[0].first} probably feel?"
            pool, right = [EVENTS[e][0] for e in events], EVENTS[e1][0]
        elif kind == 1:
            question = f"What did {people[0].first} most likely do next?"
            pool, right = [EVENTS[e][1] for e in events], EVENTS[e1][1]
        else:
            question = f"Why did {people[0].first} feel {EVENTS[e1][0]}?"
            pool, right = (
                [f"Because {people[0].first} {e}." for e in events],
                f"Because {people[0].first} {e1}.",
            )
        wrong = rng.sample(sorted(set(pool) - {right}), 3)
        if rng.random() < 0.2:
            wrong[2] = "None of the above choices ."
        label = rng.randrange(4)
        answers = [*wrong[:label], right, *wrong[label:]]
        rows.append(
            {
                "id": _hex_id("cosmosqa", split, i),
                "context": context,
                "question": question,
                **{f"answer{k}": a for k, a in enumerate(answers)},
                "label": label,
            }
        )
    return rows


def gen_commonsenseqa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """CommonsenseQA: id, question, question_concept, choices{label, text}, answerKey; where things are."""
    objects = sorted(OBJECT_PLACES)
    places = sorted(set(OBJECT_PLACES.values()))
    forms = (
        "Where would you most likely find {o}?",
        "{O} is usually found in which place?",
        "If you wanted to see {o}, where would you go?",
    )
    rows = []
    for i in range(n):
        obj = rng.choice(objects)
        right = OBJECT_PLACES[obj]
        choices = [*rng.sample([p for p in places if p != right], 4)]
        key = rng.randrange(5)
        choices.insert(key, right)
        question = rng.choice(forms).format(o=obj, O=obj[:1].upper() + obj[1:])
        rows.append(
            {
                "id": _hex_id("commonsenseqa", split, i),
                "question": question,
                "question_concept": obj,
                "choices": {"label": list("ABCDE"), "text": choices},
                "answerKey": "ABCDE"[key],
            }
        )
    return rows


def _alternatives(rng: random.Random, lang: str, k: int) -> tuple[str, list[str], int]:
    """A premise about one person and ``k`` statements about them, of which only the right one agrees with
    it (the others give the same attribute another value): the premise, the choices, the right index.
    Rendered from the shared facts, so a parallel task draws the same content in every language."""
    person = _people(rng, 1)[0]
    premise = _describe(rng, [person], [rng.sample(ATTRS, rng.choice((2, 3)))])
    fact = rng.choice(premise)
    ref = rng.choice(("first", "pron"))
    kind = 1 if rng.random() < 0.5 else 0
    wrong = [fact.value]
    for _ in range(k - 1):
        wrong.append(_other_value(rng, fact.attr, *wrong))
    label = rng.randrange(k)
    values = [*wrong[1 : label + 1], fact.value, *wrong[label + 1 :]]
    choices = [_render(lang, [Fact(person, fact.attr, value, kind, ref)]) for value in values]
    return _render(lang, premise), choices, label


def gen_xcopa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """XCOPA (``cambridgeltl/xcopa``): premise, choice1, choice2, question (cause or effect), label, idx,
    changed; the right choice restates what the premise says."""
    rows = []
    for i in range(n):
        premise, choices, label = _alternatives(rng, lang, 2)
        question = rng.choice(("cause", "effect"))
        rows.append(
            {
                "premise": premise,
                "choice1": choices[0],
                "choice2": choices[1],
                "question": question,
                "label": label,
                "idx": i,
                "changed": False,
            }
        )
    return rows


def gen_copa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """COPA (``super_glue`` copa): premise, choice1, choice2, question, idx, label; XCOPA's generator."""
    return [{k: v for k, v in row.items() if k != "changed"} for row in gen_xcopa(rng, lang, split, n)]


def gen_siqa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """Social IQa (``allenai/social_i_qa``): context, question, answerA-answerC, label ("1"-"3")."""
    rows = []
    for _ in range(n):
        context, choices, label = _alternatives(rng, lang, 3)
        question = rng.choice(("What is true of this person?", "What would others say about them?"))
        rows.append(
            {
                "context": context,
                "question": question,
                **{f"answer{letter}": choice for letter, choice in zip("ABC", choices, strict=True)},
                "label": str(label + 1),
            }
        )
    return rows
