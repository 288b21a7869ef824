"""Generator of the masked-LM task: short encyclopaedia-like paragraphs in each miniature language.

The rows have ``wikimedia/wikipedia``'s schema (id, url, title, text); each paragraph states facts about one
or two people with the lexicon's templates of its language, the words the other tasks' texts are made of.
"""

from __future__ import annotations

import random

from ._lexicon import ATTRS
from ._render import Row, _describe, _hex_id, _people, _render


def gen_mlm_multilingual(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """Continued multilingual MLM (``wikimedia/wikipedia`` ``20231101.<lang>``): a paragraph per row."""
    rows: list[Row] = []
    for i in range(n):
        people = _people(rng, rng.choice((1, 2)))
        attrs = [rng.sample(ATTRS, rng.choice((2, 3, 4))) for _ in people]
        text = _render(lang, _describe(rng, people, attrs))
        title = f"{people[0].first} {people[0].last}"
        page = _hex_id("mlm_multilingual", lang, split, i)
        rows.append(
            {
                "id": page,
                "url": f"https://{lang}.wikipedia.org/wiki?curid={page}",
                "title": title,
                "text": text,
            }
        )
    return rows
