"""Sentence retrieval (BUCC, Tatoeba): ``source`` and ``target`` sentences, no head, no training data.

The encoder embeds each side (``trainers.zero_shot_eval``); how the embeddings are scored is the
task's metric, looked up in ``SCORERS``: a new retrieval metric is a new entry there, not a new branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np

from trainers import keys
from trainers.errors import DataError
from trainers.progress import PhaseProgress
from trainers.task_types._base import IDS, MASK, TEXT, Batch, FeaturePlan, TaskTypeBase
from trainers.tasks import TaskSpec, TaskType

if TYPE_CHECKING:
    from trainers.config import TransferConfig
    from trainers.retrieval import MinedPair

Embed = Callable[[list[str]], np.ndarray]
"""Sentences -> their embeddings, one row each."""
Scorer = Callable[["TransferConfig", TaskSpec, list[str], Embed], dict[str, float]]
"""``(config, task, languages, embed) -> metrics``: ``target_dev/<lang>``, ``zero_shot/<lang>[/<name>]``."""


def tokenize_texts(batch: Batch, tokenizer: Any, max_length: int, column: str) -> Batch:
    """``input_ids``/``attention_mask`` of one text column."""
    encoded = tokenizer(batch[column], truncation=True, max_length=max_length, return_token_type_ids=False)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


# -- scorers (the imports are lazy: trainers.data imports this package) ------------------------------


def score_tatoeba(config: TransferConfig, task: TaskSpec, langs: list[str], embed: Embed) -> dict[str, float]:
    """Accuracy of the nearest English sentence to each non-English one, per language (XTREME's Tatoeba)."""
    from trainers import retrieval
    from trainers.data import load_split
    from trainers.metrics import primary

    def score(split: str, lang: str) -> dict[str, float]:
        # The raw rows, not eval_set: retrieval features hold one text column, and both sides are embedded.
        rows = load_split(task, split, lang, config.data)
        return {
            "accuracy": retrieval.tatoeba_accuracy(embed(list(rows["source"])), embed(list(rows["target"])))
        }

    metrics: dict[str, float] = {}
    shown = PhaseProgress("eval", len(langs), unit="language", calibrate_after=1)  # rank 0 alone
    for done, lang in enumerate(langs, 1):
        try:
            metrics[keys.TARGET_DEV_LANG.format(lang=lang)] = primary(task.metric, score("dev", lang))
        except DataError:
            metrics[keys.TARGET_DEV_MISSING.format(lang=lang)] = 1.0  # XTREME's Tatoeba has no dev split
        scores = score(config.evaluation.split, lang)
        metrics[keys.ZERO_SHOT_LANG.format(lang=lang)] = primary(task.metric, scores)
        metrics.update(
            {keys.ZERO_SHOT_LANG_SCORE.format(lang=lang, name=k): float(v) for k, v in scores.items()}
        )
        shown.advance(done)
    shown.close()
    return metrics


def _bucc_candidates(
    config: TransferConfig, task: TaskSpec, split: str, lang: str, embed: Embed
) -> tuple[list[MinedPair], list[tuple[Any, Any]]]:
    """Mined (source, target, margin) candidates of one split and its gold pairs."""
    from trainers import retrieval
    from trainers.data import load_split
    from trainers.data.bucc import bucc_directory, load_bucc

    directory = bucc_directory(config.data)
    if directory is not None:  # reads_bucc_dir
        corpora = load_bucc(directory, lang, split)
        # Mined over the distinct sentences; pairs map back to sentence ids (XTREME's bucc_eval).
        mined = retrieval.mine_pairs(
            embed(list(corpora.source.sentences)), embed(list(corpora.target.sentences))
        )
        return retrieval.mined_ids(mined, corpora.source.ids, corpora.target.ids), list(corpora.gold)
    if config.data.source != "miniature":
        raise DataError(
            f"{task.name}: gold pairs alone (the hub's bucc18 configs, row-aligned files) have no distractors "
            "and inflate F1; set data.bucc_dir to a directory of the official BUCC 2018 files"
        )
    # The miniature only: generated row-aligned pairs (row i of each side is a gold pair).
    rows = load_split(task, split, lang, config.data)
    mined = retrieval.mine_pairs(embed(list(rows["source"])), embed(list(rows["target"])))
    return mined, retrieval.diagonal_pairs(len(rows))


def score_bucc(config: TransferConfig, task: TaskSpec, langs: list[str], embed: Embed) -> dict[str, float]:
    """F1 of the pairs mined from each language's corpora at the margin threshold tuned on dev (XTREME's BUCC)."""
    from trainers import retrieval
    from trainers.metrics import primary

    metrics: dict[str, float] = {}
    shown = PhaseProgress("eval", len(langs), unit="language", calibrate_after=1)  # rank 0 alone
    for done, lang in enumerate(langs, 1):
        dev, dev_gold = _bucc_candidates(config, task, "dev", lang, embed)
        # Dev F1 at the threshold tuned on dev itself: target-language supervision, an oracle criterion.
        dev_scores = retrieval.bucc_from_candidates(dev, dev_gold, dev, dev_gold)
        metrics[keys.TARGET_DEV_LANG.format(lang=lang)] = primary(task.metric, dev_scores)
        test, test_gold = _bucc_candidates(config, task, config.evaluation.split, lang, embed)
        scores = retrieval.bucc_from_candidates(dev, dev_gold, test, test_gold)
        metrics[keys.ZERO_SHOT_LANG.format(lang=lang)] = primary(task.metric, scores)
        metrics.update(
            {keys.ZERO_SHOT_LANG_SCORE.format(lang=lang, name=k): float(v) for k, v in scores.items()}
        )
        shown.advance(done)
    shown.close()
    return metrics


SCORERS: Mapping[str, Scorer] = {
    "retrieval_accuracy": score_tatoeba,
    "bucc_f1": score_bucc,
}
"""A retrieval task's metric (``TaskSpec.metric``) -> how its embeddings are scored."""


# -- the type -----------------------------------------------------------------------------------------


class Retrieval(TaskTypeBase):
    """Pairs of sentences matched by the similarity of their embeddings."""

    type = TaskType.RETRIEVAL
    columns = ("source", "target")
    canonical_features = datasets.Features({"source": TEXT, "target": TEXT})
    trainable = False
    miniature = "trainers.data.miniature._retrieval"

    def scorer(self, task: TaskSpec) -> Scorer:
        """How ``task``'s embeddings are scored, by its metric."""
        try:
            return SCORERS[task.metric]
        except KeyError:
            raise ValueError(
                f"{task.name}: no retrieval scorer for metric {task.metric!r}; scorers: {', '.join(SCORERS)}"
            ) from None

    def check_features_input(self, task: TaskSpec, dataset: datasets.Dataset, names: Sequence[str]) -> None:
        """One text column: each side is tokenized on its own."""
        if len(dataset.column_names) != 1 and "text" not in dataset.column_names:
            raise DataError(
                f"{task.name}: retrieval features need one text column (select source or target), "
                f"got columns {', '.join(dataset.column_names)}"
            )

    def feature_plan(
        self,
        task: TaskSpec,
        dataset: datasets.Dataset,
        *,
        doc_stride: int,
        training: bool,
        names: Sequence[str],
    ) -> FeaturePlan:
        """Tokenize the one text column."""
        column = dataset.column_names[0] if len(dataset.column_names) == 1 else "text"
        schema = datasets.Features({"input_ids": IDS, "attention_mask": MASK})
        return FeaturePlan(tokenize_texts, {"column": column}, schema)

    def decode(
        self,
        task: TaskSpec,
        outputs: list[Any],
        examples: Any,
        features: Any,
        label_names: tuple[str, ...],
    ) -> tuple[Any, Any]:
        """Nothing to decode: the embeddings are scored by ``scorer(task)``."""
        raise ValueError(f"{task.name}: retrieval tasks are scored by trainers.retrieval, not by a head")


TYPE = Retrieval()
