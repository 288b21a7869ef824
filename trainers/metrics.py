"""The metric registry: every ``TaskSpec.metric`` name -> how to score it, on XTREME's 0-100 scale.

Each metric wraps a maintained implementation where one computes the reference's number (scikit-learn,
seqeval, torchmetrics' port of the SQuAD 2.0 script). Where none does, the reference's rules are
followed one for one: SQuAD v1.1's script (XTREME's ``evaluate_squad.py``, for XQuAD and TyDiQA) scores
an answer that normalises to nothing F1 0, where torchmetrics applies SQuAD 2.0's rule (1 when both are
empty); MLQA's script (``mlqa_evaluation_v1.py``, XTREME's ``evaluate_mlqa.py``) normalises per language.
"""

from __future__ import annotations

import re
import string
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from statistics import fmean
from typing import Any

# The scoring libraries (scikit-learn, seqeval, torchmetrics: 3 s of imports together) are imported by the
# metric that uses them, so a worker pays only for its tasks' metrics.

Scores = dict[str, float]


@dataclass(frozen=True)
class Metric:
    """One metric: its name, the key of its headline score, how to compute it, and its direction."""

    name: str
    """Registry key (the ``metric`` field of a ``TaskSpec``)."""
    primary: str
    """Key of the headline score in ``compute``'s result (what the search optimises and XTREME reports)."""
    compute: Callable[..., Scores]
    """``(predictions, references) -> {key: score}`` (plus ``language`` where ``per_language``), 0-100."""
    higher_is_better: bool = True
    """Direction the search optimises ``primary`` in."""
    inputs: str = ""
    """One line: what ``predictions`` and ``references`` are."""
    per_language: bool = False
    """``compute`` takes the language code as a third argument (MLQA normalises answers per language)."""
    xtreme_keys: tuple[str, ...] = ()
    """Keys whose mean is XTREME's score of the task (``avg_metric`` of its ``evaluate.py``); empty:
    ``primary`` alone. QA averages exact match and F1."""
    null_answer: bool = False
    """The empty answer is a valid prediction (SQuAD 2.0's "no answer")."""


class UnknownMetricError(ValueError):
    """A metric name that the registry does not hold."""


def _percent(value: Any) -> float:
    return 100.0 * float(value)


def _accuracy(predictions: Sequence[Any], references: Sequence[Any]) -> Scores:
    from sklearn.metrics import accuracy_score

    return {"accuracy": _percent(accuracy_score(references, predictions))}


def _f1_binary(predictions: Sequence[int], references: Sequence[int]) -> Scores:
    # GLUE reports QQP as F1 of the positive class (index 1, "duplicate") alongside accuracy.
    from sklearn.metrics import f1_score

    return {
        "f1": _percent(f1_score(references, predictions, pos_label=1, average="binary", zero_division=0)),
        **_accuracy(predictions, references),
    }


def _check_same_lengths(predictions: Sequence[Sequence[Any]], references: Sequence[Sequence[Any]]) -> None:
    # Flattening silently misaligns tokens if one sentence is cut, so refuse instead.
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predicted sequences for {len(references)} references")
    for index, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
        if len(pred) != len(ref):
            raise ValueError(f"sequence {index}: {len(pred)} predicted tags for {len(ref)} reference tags")


def _flatten(sequences: Iterable[Sequence[Any]]) -> list[Any]:
    return [item for sequence in sequences for item in sequence]


def _accuracy_tokens(predictions: Sequence[Sequence[Any]], references: Sequence[Sequence[Any]]) -> Scores:
    _check_same_lengths(predictions, references)
    return _accuracy(_flatten(predictions), _flatten(references))


def _seqeval_f1(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> Scores:
    import seqeval.metrics

    _check_same_lengths(predictions, references)
    # Lists, not tuples or arrays: seqeval checks its inputs' types.
    y_true = [list(sequence) for sequence in references]
    y_pred = [list(sequence) for sequence in predictions]
    # Default (conlleval-compatible) mode, as XTREME's evaluate.py uses for PAN-X and UD POS alike. POS
    # tags are not IOB: seqeval reads "NOUN" as tag N of type OUN, so runs of one tag form one chunk;
    # that is the published UD POS score. It warns once per such tag, which says nothing here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".* seems not to be NE tag", category=UserWarning)
        return {
            "f1": _percent(seqeval.metrics.f1_score(y_true, y_pred)),
            "precision": _percent(seqeval.metrics.precision_score(y_true, y_pred)),
            "recall": _percent(seqeval.metrics.recall_score(y_true, y_pred)),
            "accuracy": _percent(seqeval.metrics.accuracy_score(y_true, y_pred)),
        }


def _answer_texts(answers: Sequence[str] | Mapping[str, Sequence[Any]]) -> list[str]:
    # Accept the canonical ``answers`` column ({"text": [...], "answer_start": [...]}) as well as a list.
    texts = list(answers["text"]) if isinstance(answers, Mapping) else list(answers)
    # SQuAD 2.0's official script scores an unanswerable question against the empty answer.
    return texts or [""]


def _squad_v2(predictions: Mapping[str, str], references: Mapping[str, Any]) -> Scores:
    # A question without a prediction scores 0 (official script); predictions without a question are ignored.
    from torchmetrics.functional.text import squad as torchmetrics_squad

    preds = [{"id": qid, "prediction_text": text} for qid, text in predictions.items()]
    target = [{"id": qid, "answers": {"text": _answer_texts(ans)}} for qid, ans in references.items()]
    result = torchmetrics_squad(preds, target)  # type: ignore[arg-type]
    return {"f1": float(result["f1"]), "exact_match": float(result["exact_match"])}


# MLQA's punctuation: every Unicode punctuation category (P*) plus ASCII punctuation (which holds
# symbols such as $ and + that Unicode files under S*).
def _is_mlqa_punct(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


# MLQA's article patterns per language; Hindi and Chinese have none. Arabic's first alternative can
# never match (``^`` after characters), so the script removes every "ال"; kept as written.
_MLQA_ARTICLES: dict[str, str | None] = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "hi": None,
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",
    "zh": None,
}
_MLQA_CJK = re.compile(r"[\u4e00-\u9fa5]")


def _mlqa_segments(text: str, language: str) -> list[str]:
    """Whitespace tokens, or for Chinese every CJK character (and punctuation) as its own token."""
    if language != "zh":
        return text.split()
    segments: list[str] = []
    pending = ""
    for char in text:
        if _MLQA_CJK.search(char) or _is_mlqa_punct(char):
            segments.extend(pending.split())
            pending = ""
            segments.append(char)
        else:
            pending += char
    segments.extend(pending.split())
    return segments


@cache
def _mlqa_tokens(text: str, language: str) -> tuple[str, ...]:
    """MLQA's ``normalize_answer`` split into tokens: lower, drop punctuation, articles, re-segment."""
    text = "".join(char for char in text.lower() if not _is_mlqa_punct(char))
    articles = _MLQA_ARTICLES[language]
    if articles is not None:
        text = re.sub(articles, " ", text)
    return tuple(token for token in _mlqa_segments(text, language) if token.strip())


_ASCII_PUNCT = frozenset(string.punctuation)


@cache
def _squad_tokens(text: str) -> tuple[str, ...]:
    """SQuAD v1.1's ``normalize_answer`` split into tokens: lower, drop ASCII punctuation and articles."""
    text = "".join(char for char in text.lower() if char not in _ASCII_PUNCT)
    return tuple(re.sub(r"\b(a|an|the)\b", " ", text).split())


def _overlap_f1(prediction: tuple[str, ...], truth: tuple[str, ...]) -> float:
    shared = sum((Counter(prediction) & Counter(truth)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(prediction), shared / len(truth)
    return 2 * precision * recall / (precision + recall)


def _overlap_scores(
    predictions: Mapping[str, str], references: Mapping[str, Any], tokens: Callable[[str], tuple[str, ...]]
) -> Scores:
    # The SQuAD v1.1 and MLQA scripts: per-question best over the gold answers; a question without a
    # prediction scores 0; predictions without a question are ignored.
    _require_nonempty(references, "questions")
    exact = f1 = 0.0
    for qid, answers in references.items():
        if qid not in predictions:
            warnings.warn(f"Unanswered question {qid} will receive score 0.", stacklevel=4)
            continue
        predicted = tokens(predictions[qid])
        truths = [tokens(text) for text in _answer_texts(answers)]
        # The scripts compare normalised strings; joined tokens are exactly those strings.
        exact += max(float(predicted == truth) for truth in truths)
        f1 += max(_overlap_f1(predicted, truth) for truth in truths)
    return {"exact_match": _percent(exact / len(references)), "f1": _percent(f1 / len(references))}


def _squad(predictions: Mapping[str, str], references: Mapping[str, Any]) -> Scores:
    return _overlap_scores(predictions, references, _squad_tokens)


def _mlqa(predictions: Mapping[str, str], references: Mapping[str, Any], language: str) -> Scores:
    if language not in _MLQA_ARTICLES:
        raise ValueError(f"MLQA normalises only {', '.join(_MLQA_ARTICLES)}, not {language!r}")
    return _overlap_scores(predictions, references, lambda text: _mlqa_tokens(text, language))


def _pair_set(pairs: Iterable[Sequence[Any]]) -> set[tuple[Any, Any]]:
    return {(pair[0], pair[1]) for pair in pairs}


def _bucc_f1(predictions: Iterable[Sequence[Any]], references: Iterable[Sequence[Any]]) -> Scores:
    # BUCC scores the set of extracted pairs against the gold set (XTREME's bucc_eval); sklearn has no
    # set-retrieval F1, so this is the count arithmetic of that script.
    extracted, gold = _pair_set(predictions), _pair_set(references)
    correct = len(extracted & gold)
    if correct == 0:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    precision, recall = correct / len(extracted), correct / len(gold)
    return {
        "f1": _percent(2 * precision * recall / (precision + recall)),
        "precision": _percent(precision),
        "recall": _percent(recall),
    }


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("accuracy", "accuracy", _accuracy, inputs="labels (any hashable), one per example"),
        Metric(
            "f1_binary",
            "f1",
            _f1_binary,
            inputs="class indices 0/1 (or booleans), one per example; index 1 is the positive class",
        ),
        Metric("accuracy_tokens", "accuracy", _accuracy_tokens, inputs="tag sequences, one per sentence"),
        Metric("seqeval_f1", "f1", _seqeval_f1, inputs="IOB tag-name sequences, one per sentence"),
        Metric(
            "squad",
            "f1",
            _squad,
            inputs="{id: predicted text}; {id: list of answer texts, or the canonical answers dict}",
            xtreme_keys=("exact_match", "f1"),
        ),
        Metric(
            "squad_v2",
            "f1",
            _squad_v2,
            inputs="as squad; an unanswerable question has no answer texts, and '' predicts no answer",
            xtreme_keys=("exact_match", "f1"),
            null_answer=True,
        ),
        Metric(
            "mlqa",
            "f1",
            _mlqa,
            inputs="as squad, with the answer language (en es hi vi de ar zh): MLQA's normalisation",
            per_language=True,
            xtreme_keys=("exact_match", "f1"),
        ),
        Metric(
            "retrieval_accuracy",
            "accuracy",
            _accuracy,
            inputs="retrieved target index per query; the gold target index per query",
        ),
        Metric("bucc_f1", "f1", _bucc_f1, inputs="extracted (src, tgt) pairs; gold (src, tgt) pairs"),
    )
}


def get_metric(name: str) -> Metric:
    """The registry entry for ``name``, or a one-line error listing the known metrics."""
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownMetricError(
            f"unknown metric {name!r}; known metrics: {', '.join(sorted(METRICS))}"
        ) from None


def compute(metric_name: str, predictions: Any, references: Any, language: str | None = None) -> Scores:
    """Score ``predictions`` against ``references`` with the named metric (0-100, primary key present).

    ``language`` is the evaluation language; metrics that normalise per language (MLQA) need it.
    """
    metric = get_metric(metric_name)
    if not metric.per_language:
        return metric.compute(predictions, references)
    if language is None:
        raise ValueError(f"metric {metric_name!r} normalises per language: pass the language code")
    return metric.compute(predictions, references, language)


def primary(metric_name: str, scores: Mapping[str, float]) -> float:
    """The headline number of ``scores`` (e.g. F1 for SQuAD and PAN-X, accuracy for XNLI)."""
    return float(scores[get_metric(metric_name).primary])


def _require_nonempty(collection: Collection[Any], what: str) -> None:
    if not collection:
        raise ValueError(f"no {what} to average")


def aggregate_languages(per_language: Mapping[str, Mapping[str, float]]) -> Scores:
    """Per-key mean over languages: XTREME's score of one task."""
    _require_nonempty(per_language, "languages")
    keys = {lang: set(scores) for lang, scores in per_language.items()}
    first_lang, first_keys = next(iter(keys.items()))
    for lang, lang_keys in keys.items():
        # A key missing in one language would silently average over a different set of languages.
        if lang_keys != first_keys:
            raise ValueError(
                f"languages report different scores: {lang} has {sorted(lang_keys)}, "
                f"{first_lang} has {sorted(first_keys)}"
            )
    return {key: fmean(scores[key] for scores in per_language.values()) for key in sorted(first_keys)}


def xtreme_task_score(metric_name: str, scores: Mapping[str, float]) -> float:
    """XTREME's score of one task from its (language-averaged) scores: (EM + F1) / 2 for QA."""
    metric = get_metric(metric_name)
    return fmean(float(scores[key]) for key in metric.xtreme_keys or (metric.primary,))


def xtreme_score(task_scores: Mapping[str, float]) -> float:
    """Mean of the per-task scores: the XTREME benchmark score."""
    _require_nonempty(task_scores, "task scores")
    return fmean(task_scores.values())


__all__ = [
    "METRICS",
    "Metric",
    "Scores",
    "UnknownMetricError",
    "aggregate_languages",
    "compute",
    "get_metric",
    "xtreme_score",
    "xtreme_task_score",
]
