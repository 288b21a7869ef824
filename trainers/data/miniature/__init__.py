"""The miniature benchmark: a small, deterministic, offline stand-in for XTREME and the intermediate tasks.

Every registry task with a miniature generator is generated from templates and a lexicon and written as
``<task>/<lang>/<split>.jsonl`` in the hub's own schema, so that the ``local`` loader reads it like real
data. The labels follow from the text by rules a small model learns from about a thousand examples, and the
four languages share named entities, numbers and some cognates, so that zero-shot transfer from English
works to a degree (Russian, in Cyrillic, is the non-Latin script). Related tasks share structure (MNLI/ANLI
with XNLI, QQP with PAWS-X, SQuAD with XQuAD/MLQA/TyDiQA, CCG with UD-POS) so that a search over
intermediate tasks has something to find.

The package, by what changes together:

- ``_registry.py``: task name -> generator and the version of its files (``GENERATORS``), the data that
  decides what the miniature holds; a task without an entry is an error only when asked for on the miniature;
- ``_classification.py``, ``_tagging.py``, ``_span_qa.py``, ``_multiple_choice.py``, ``_retrieval.py``:
  the generators, one module per task type;
- ``_lexicon.py`` (people, attributes, templates in four languages), ``_lexicon_events.py`` (paraphrase
  events), ``_lexicon_english.py`` (commonsense and sentiment words), ``_render.py`` (facts to text);
- ``_tree.py``: the files on disk, versioned per task (``ensure_miniature``);
- ``_tokenizer_text.py``: the fixed text the tiny encoder's tokenizer is trained on, versioned on its own.
"""

from __future__ import annotations

from ._classification import gen_anli, gen_mnli, gen_pawsx, gen_qqp, gen_sst2, gen_xnli
from ._multiple_choice import gen_commonsenseqa, gen_cosmosqa, gen_hellaswag
from ._registry import (
    GENERATORS,
    Generator,
    MiniatureGenerator,
    NoMiniatureError,
    check_miniature_tasks,
    miniature_version,
)
from ._render import Row, _rng
from ._retrieval import gen_bucc, gen_tatoeba
from ._span_qa import gen_mlqa, gen_squad_v1, gen_squad_v2, gen_tydiqa, gen_xquad
from ._tagging import gen_ccg, gen_panx, gen_udpos
from ._tokenizer_text import TOKENIZER_TEXT_VERSION, tokenizer_texts, tokenizer_words_file
from ._tree import (
    LAYOUT_VERSION,
    MINIATURE_LANGUAGES,
    TASKS_DIR,
    ensure_miniature,
    ensure_task,
    generate_miniature,
    miniature_splits,
    miniature_tasks,
    view_name,
    write_task,
)

TASK_GENERATORS: dict[str, Generator] = {name: entry.generate for name, entry in GENERATORS.items()}
"""Task name -> generator function (``GENERATORS`` without the versions)."""
PARALLEL_TASKS = frozenset(name for name, entry in GENERATORS.items() if entry.parallel)
"""Tasks whose evaluation sets are translations of one another: every language draws the same content."""

__all__ = [
    "GENERATORS",
    "LAYOUT_VERSION",
    "MINIATURE_LANGUAGES",
    "PARALLEL_TASKS",
    "TASKS_DIR",
    "TASK_GENERATORS",
    "TOKENIZER_TEXT_VERSION",
    "Generator",
    "MiniatureGenerator",
    "NoMiniatureError",
    "Row",
    "_rng",
    "check_miniature_tasks",
    "ensure_miniature",
    "ensure_task",
    "gen_anli",
    "gen_bucc",
    "gen_ccg",
    "gen_commonsenseqa",
    "gen_cosmosqa",
    "gen_hellaswag",
    "gen_mlqa",
    "gen_mnli",
    "gen_panx",
    "gen_pawsx",
    "gen_qqp",
    "gen_squad_v1",
    "gen_squad_v2",
    "gen_sst2",
    "gen_tatoeba",
    "gen_tydiqa",
    "gen_udpos",
    "gen_xnli",
    "gen_xquad",
    "generate_miniature",
    "miniature_splits",
    "miniature_tasks",
    "miniature_version",
    "tokenizer_texts",
    "tokenizer_words_file",
    "view_name",
    "write_task",
]
