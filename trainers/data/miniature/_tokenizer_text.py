"""The fixed text the tiny encoder's tokenizer is trained on, versioned apart from the miniature's tasks.

The tokenizer once trained on every miniature file, so that any change to any task's generator retrained it and
with it invalidated every cached checkpoint of the tiny encoder. It now trains on a frozen word list instead:
``tokenizer_words_v<TOKENIZER_TEXT_VERSION>.tsv``, each normalised, pre-tokenised word of the miniature as it
was generated at version 1 and its count. A WordPiece trainer sees only word counts, so training on this list
is training on that text. Adding or changing a task changes neither; bump the version (and write a new list)
only to change the tokenizer on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

TOKENIZER_TEXT_VERSION = "1"
"""The version of the tiny tokenizer's training text; part of the tiny encoder's cache name and version."""

_CHUNK = 512
"""Words per yielded string: few enough to keep memory flat, many enough to keep the iteration cheap."""


def tokenizer_words_file(version: str = TOKENIZER_TEXT_VERSION) -> Path:
    """The word list (``word<TAB>count`` lines) of a tokenizer text version."""
    return Path(__file__).with_name(f"tokenizer_words_v{version}.tsv")


def tokenizer_texts(version: str = TOKENIZER_TEXT_VERSION) -> Iterator[str]:
    """The tokenizer's training text: every word as often as it was counted, space-separated, in chunks."""
    with tokenizer_words_file(version).open(encoding="utf-8") as handle:
        for line in handle:
            word, _, count = line.rstrip("\n").rpartition("\t")
            remaining = int(count)
            while remaining > 0:
                n = min(remaining, _CHUNK)
                yield " ".join([word] * n)
                remaining -= n
