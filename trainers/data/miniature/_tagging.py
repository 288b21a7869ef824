"""Generators of the tagging tasks: UD-POS, PAN-X and CCG supertagging (English only)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from trainers.tasks.xtreme import NER_TAGS, UPOS_TAGS

from ._lexicon import ATTRS, CITIES, CONJUNCTION, FACT_TEMPLATES, N_VALUES, ORGS, WORD_POS
from ._render import Fact, Row, Tok, _entity, _fact_toks, _people, _person_toks

# English CCG supertags: by word where the category depends on the word's frame, else by POS.
CCG_BY_WORD = {
    "lives": "S[dcl]\\NP", "live": "S[b]\\NP", "works": "S[dcl]\\NP", "work": "S[b]\\NP",
    "in": "((S\\NP)\\(S\\NP))/NP", "for": "((S\\NP)\\(S\\NP))/NP", "by": "((S\\NP)\\(S\\NP))/NP",
    "as": "((S\\NP)\\(S\\NP))/NP", "is": "(S[dcl]\\NP)/NP", "does": "(S[dcl]\\NP)/(S[b]\\NP)",
    "can": "(S[dcl]\\NP)/(S[b]\\NP)", "not": "(S\\NP)\\(S\\NP)", "where": "(NP\\NP)/S[dcl]",
    "employed": "S[pss]\\NP", "aged": "(S[adj]\\NP)/N", "old": "(S[adj]\\NP)\\NP",
    "has": "(S[dcl]\\NP)/NP", "owns": "(S[dcl]\\NP)/NP", "plays": "(S[dcl]\\NP)/NP", "play": "(S[b]\\NP)/NP",
    "likes": "(S[dcl]\\NP)/NP", "enjoys": "(S[dcl]\\NP)/NP",
    "and": "conj", ".": ".", ",": ",", "(": "LRB", ")": "RRB",
}  # fmt: skip
CCG_BY_POS = {"NOUN": "N", "DET": "NP[nb]/N", "NUM": "N/N", "PRON": "NP", "ADJ": "S[adj]\\NP"}


def _tagged_sentence(rng: random.Random, lang: str) -> list[Tok]:
    """One or two facts joined by a conjunction; the second about the same person (pronoun) or another."""
    people = _people(rng, 2)
    attr1, attr2 = rng.sample(ATTRS, 2)
    kind1 = 2 if FACT_TEMPLATES["en"][attr1][2] and rng.random() < 0.1 else int(rng.random() < 0.3)
    toks = _fact_toks(
        lang, Fact(people[0], attr1, rng.randrange(N_VALUES[attr1]), kind1, rng.choice(("full", "first")))
    )
    if rng.random() < 0.5:
        same = rng.random() < 0.5
        second = Fact(
            people[0] if same else people[1],
            attr2,
            rng.randrange(N_VALUES[attr2]),
            int(rng.random() < 0.3),
            "pron" if same else rng.choice(("full", "first")),
        )
        toks = [*toks[:-1], Tok(","), Tok(CONJUNCTION[lang]), *_fact_toks(lang, second, start=False)]
    return toks


def _pos_tags(toks: Sequence[Tok], lang: str) -> list[str]:
    return [tok.pos or WORD_POS[lang][tok.text.lower()] for tok in toks]


def gen_udpos(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """UD-POS (``google/xtreme`` udpos.*): tokens, pos_tags (indices into UPOS_TAGS)."""
    rows = []
    for _ in range(n):
        toks = _tagged_sentence(rng, lang)
        rows.append(
            {
                "tokens": [t.text for t in toks],
                "pos_tags": [UPOS_TAGS.index(p) for p in _pos_tags(toks, lang)],
            }
        )
    return rows


def gen_panx(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """PAN-X (``google/xtreme`` PAN-X.*): tokens, ner_tags (indices into NER_TAGS), langs; with the
    list-like fragments of WikiANN among the sentences."""
    rows = []
    for _ in range(n):
        if rng.random() < 0.25:
            person = _people(rng, 1)[0]
            org = _entity(rng.choice(ORGS), "ORG")
            city = _entity(rng.choice(CITIES), "LOC")
            pick = rng.randrange(3)
            if pick == 0:
                toks = [*org, Tok("("), *city, Tok(")")]
            elif pick == 1:
                toks = [*_person_toks(person, lang, "full"), Tok(","), *org]
            else:
                toks = [*_person_toks(person, lang, "full"), Tok("("), *city, Tok(")")]
        else:
            toks = _tagged_sentence(rng, lang)
        rows.append(
            {
                "tokens": [t.text for t in toks],
                "ner_tags": [NER_TAGS.index(t.ner) for t in toks],
                "langs": [lang] * len(toks),
            }
        )
    return rows


def _ccg_tags(toks: Sequence[Tok], pos: Sequence[str]) -> list[str]:
    tags = []
    for i, (tok, p) in enumerate(zip(toks, pos, strict=True)):
        if p == "PROPN":
            same_name = i + 1 < len(toks) and pos[i + 1] == "PROPN" and toks[i + 1].ner.startswith("I-")
            tags.append("N/N" if same_name else "N")
        elif tok.pos is None and tok.text.lower() in CCG_BY_WORD:
            tags.append(CCG_BY_WORD[tok.text.lower()])
        else:
            tags.append(CCG_BY_POS[p])
    return tags


def gen_ccg(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """CCGbank (local files only): tokens, tags (supertag strings); the sentences of UD-POS."""
    rows = []
    for _ in range(n):
        toks = _tagged_sentence(rng, lang)
        rows.append({"tokens": [t.text for t in toks], "tags": _ccg_tags(toks, _pos_tags(toks, lang))})
    return rows
