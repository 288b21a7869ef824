"""The metric registry: coverage of every task's metric, and each metric against its reference or by hand."""

from __future__ import annotations

from typing import Any

import pytest
import seqeval.metrics
from sklearn.metrics import accuracy_score, f1_score

from trainers.metrics import (
    METRICS,
    UnknownMetricError,
    aggregate_languages,
    compute,
    get_metric,
    xtreme_score,
)
from trainers.tasks import TASKS

# One small (predictions, references) case per metric: a new metric without one fails the sync test.
EXAMPLES: dict[str, tuple[Any, Any]] = {
    "accuracy": (["a", "b", "a"], ["a", "b", "b"]),
    "f1_binary": ([1, 0, 1], [1, 0, 0]),
    "accuracy_tokens": ([["NOUN", "VERB"]], [["NOUN", "NOUN"]]),
    "seqeval_f1": ([["B-PER", "O"]], [["B-PER", "O"]]),
    "squad": ({"q1": "a cat"}, {"q1": ["cat"]}),
    "retrieval_accuracy": ([0, 2, 2], [0, 1, 2]),
    "bucc_f1": ([(0, 0), (1, 2)], [(0, 0), (1, 1)]),
}


def test_registry_covers_every_metric_the_tasks_use() -> None:
    used = {task.metric for task in TASKS.values()}
    assert used <= set(METRICS), f"tasks use metrics missing from METRICS: {used - set(METRICS)}"
    assert set(EXAMPLES) == set(METRICS)
    for name, metric in METRICS.items():
        assert metric.name == name


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_returns_floats_with_its_primary_key(name: str) -> None:
    scores = compute(name, *EXAMPLES[name])
    assert METRICS[name].primary in scores
    assert all(type(value) is float for value in scores.values())
    assert all(0.0 <= value <= 100.0 for value in scores.values())
    assert METRICS[name].higher_is_better


def test_unknown_metric_is_a_one_line_error_listing_known_metrics() -> None:
    with pytest.raises(UnknownMetricError) as excinfo:
        compute("bleu", [], [])
    message = str(excinfo.value)
    assert "\n" not in message
    assert "'bleu'" in message and "seqeval_f1" in message
    assert get_metric("squad") is METRICS["squad"]


def test_accuracy_matches_sklearn_on_a_0_100_scale() -> None:
    preds, refs = ["a", "b", "c", "a"], ["a", "b", "b", "b"]
    assert compute("accuracy", preds, refs) == {"accuracy": 50.0}
    assert compute("accuracy", preds, refs)["accuracy"] == pytest.approx(100 * accuracy_score(refs, preds))


def test_f1_binary_scores_the_positive_class_index_1() -> None:
    preds, refs = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    scores = compute("f1_binary", preds, refs)
    # Class 1: TP=2, FP=1, FN=1 -> P=R=2/3. Class 0 would give 50, so the positive class matters.
    assert scores["f1"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(100 * f1_score(refs, preds))
    assert scores["accuracy"] == pytest.approx(60.0)


def test_token_accuracy_counts_every_token() -> None:
    preds = [["NOUN", "VERB", "DET"], ["ADJ"]]
    refs = [["NOUN", "NOUN", "DET"], ["ADJ"]]
    assert compute("accuracy_tokens", preds, refs)["accuracy"] == pytest.approx(75.0)


def test_token_accuracy_refuses_misaligned_sentences() -> None:
    with pytest.raises(ValueError, match="sequence 1"):
        compute("accuracy_tokens", [["A"], ["B"]], [["A"], ["B", "C"]])


def test_seqeval_scores_entities_where_token_accuracy_does_not() -> None:
    refs = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    preds = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]
    scores = compute("seqeval_f1", preds, refs)
    # Gold entities PER[0:2], LOC, ORG; predicted PER[0:1] (wrong span), LOC, ORG -> 2 of 3 both ways.
    assert scores["f1"] == pytest.approx(200 / 3)
    assert scores["precision"] == pytest.approx(200 / 3)
    assert scores["recall"] == pytest.approx(200 / 3)
    # Only one token of six is wrong, so token accuracy is much higher than entity F1.
    assert scores["accuracy"] == pytest.approx(500 / 6)
    assert compute("accuracy_tokens", preds, refs)["accuracy"] == pytest.approx(500 / 6)
    assert scores["f1"] == pytest.approx(100 * seqeval.metrics.f1_score(refs, preds))


def test_squad_normalises_case_articles_and_punctuation() -> None:
    assert compute("squad", {"q": "The cat."}, {"q": ["cat"]}) == {"f1": 100.0, "exact_match": 100.0}


def test_squad_partial_overlap_f1_by_hand() -> None:
    scores = compute("squad", {"q": "black cat sat"}, {"q": ["the cat sat down"]})
    # Tokens {black, cat, sat} vs {cat, sat, down}: 2 shared, P = R = 2/3.
    assert scores["f1"] == pytest.approx(200 / 3, abs=1e-4)
    assert scores["exact_match"] == 0.0


def test_squad_takes_the_best_reference_and_counts_missing_predictions_as_zero() -> None:
    preds = {"q1": "cat", "unasked": "ignored"}
    refs: dict[str, Any] = {"q1": ["dog", "a cat"], "q2": {"text": ["dog"], "answer_start": [3]}}
    # q1 matches its second reference; q2 has no prediction and scores 0; "unasked" is not a question.
    with pytest.warns(UserWarning, match="Unanswered question q2"):
        assert compute("squad", preds, refs) == {"f1": 50.0, "exact_match": 50.0}


def test_squad_unanswerable_questions_score_against_the_empty_answer() -> None:
    refs: dict[str, Any] = {"q1": [], "q2": {"text": [], "answer_start": []}}
    assert compute("squad", {"q1": "", "q2": "something"}, refs) == {"f1": 50.0, "exact_match": 50.0}


def test_retrieval_accuracy_by_hand() -> None:
    assert compute("retrieval_accuracy", [0, 2, 2, 3], [0, 1, 2, 3]) == {"accuracy": 75.0}


def test_bucc_f1_is_set_precision_and_recall() -> None:
    scores = compute("bucc_f1", [(0, 0), (1, 2), (0, 0)], [(0, 0), (1, 1), (2, 2)])
    # Extracted {(0,0), (1,2)} (duplicates count once): 1 correct of 2 extracted, of 3 gold.
    assert scores["precision"] == pytest.approx(50.0)
    assert scores["recall"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(40.0)
    assert compute("bucc_f1", [(0, 1)], [(0, 0)]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_aggregate_languages_is_the_per_key_mean() -> None:
    per_language = {
        "en": {"f1": 80.0, "exact_match": 70.0},
        "de": {"f1": 60.0, "exact_match": 50.0},
        "zh": {"f1": 40.0, "exact_match": 0.0},
    }
    assert aggregate_languages(per_language) == pytest.approx({"f1": 60.0, "exact_match": 40.0})


def test_aggregate_languages_refuses_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError, match="different scores"):
        aggregate_languages({"en": {"f1": 1.0, "exact_match": 1.0}, "de": {"f1": 1.0}})
    with pytest.raises(ValueError, match="no languages"):
        aggregate_languages({})


def test_xtreme_score_is_the_mean_over_tasks() -> None:
    assert xtreme_score({"xnli": 70.0, "panx": 60.0, "tatoeba": 20.0}) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="no task scores"):
        xtreme_score({})
