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
    xtreme_task_score,
)
from trainers.tasks import TASKS

# One small (predictions, references) case per metric: a new metric without one fails the sync test.
EXAMPLES: dict[str, tuple[Any, ...]] = {
    "accuracy": (["a", "b", "a"], ["a", "b", "b"]),
    "f1_binary": ([1, 0, 1], [1, 0, 0]),
    "accuracy_tokens": ([["NOUN", "VERB"]], [["NOUN", "NOUN"]]),
    "seqeval_f1": ([["B-PER", "O"]], [["B-PER", "O"]]),
    "squad": ({"q1": "a cat"}, {"q1": ["cat"]}),
    "squad_v2": ({"q1": "", "q2": "a cat"}, {"q1": [], "q2": ["cat"]}),
    "mlqa": ({"q1": "北京大学"}, {"q1": ["北京"]}, "zh"),
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


def test_squad_v2_unanswerable_questions_score_against_the_empty_answer() -> None:
    refs: dict[str, Any] = {"q1": [], "q2": {"text": [], "answer_start": []}}
    assert compute("squad_v2", {"q1": "", "q2": "something"}, refs) == {"f1": 50.0, "exact_match": 50.0}


def test_squad_v1_scores_an_empty_normalised_answer_f1_0_as_its_script_does() -> None:
    # evaluate-v1.1.py (XTREME's evaluate_squad.py): "The" and "a" both normalise to nothing, so they
    # match exactly, but with no shared token F1 is 0; SQuAD 2.0's script (squad_v2) gives F1 1.
    assert compute("squad", {"q": "a"}, {"q": ["The"]}) == {"exact_match": 100.0, "f1": 0.0}
    assert compute("squad_v2", {"q": "a"}, {"q": ["The"]}) == {"exact_match": 100.0, "f1": 100.0}
    # ASCII punctuation only: a guillemet stays, so it costs the exact match.
    assert compute("squad", {"q": "«Berlin»"}, {"q": ["Berlin"]}) == {"exact_match": 0.0, "f1": 0.0}
    assert compute("squad", {"q": "Berlin!"}, {"q": ["berlin"]}) == {"exact_match": 100.0, "f1": 100.0}


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


def test_pos_is_scored_as_xtreme_does_with_seqeval_f1_not_token_accuracy() -> None:
    assert TASKS["udpos"].metric == "seqeval_f1"
    refs = [["DET", "NOUN", "VERB"]]
    preds = [["DET", "NOUN", "NOUN"]]
    # seqeval reads a POS tag as tag letter + type ("NOUN" -> N, OUN), so a run of one tag is one chunk:
    # gold chunks ET[0], OUN[1], ERB[2]; predicted ET[0], OUN[1:3]. 1 correct: P = 1/2, R = 1/3.
    scores = compute("seqeval_f1", preds, refs)
    assert scores["f1"] == pytest.approx(40.0)
    assert scores["precision"] == pytest.approx(50.0)
    assert scores["recall"] == pytest.approx(100 / 3)
    # Two of three tokens are right: token accuracy says 66.7 where XTREME's number is 40.
    assert scores["accuracy"] == pytest.approx(200 / 3)
    assert compute("accuracy_tokens", preds, refs)["accuracy"] == pytest.approx(200 / 3)


def test_pos_runs_of_one_tag_score_as_one_chunk() -> None:
    # Gold NOUN NOUN is one chunk; predicting NOUN for one of them gets no chunk right.
    scores = compute("seqeval_f1", [["NOUN", "VERB"]], [["NOUN", "NOUN"]])
    assert scores["f1"] == 0.0 and scores["accuracy"] == 50.0


# MLQA's official script, rule by rule: (language, prediction, gold, exact match, F1); each expected
# value worked by hand from mlqa_evaluation_v1.py's normalize_answer, f1_score and exact_match_score.
MLQA_CASES = [
    # Chinese is segmented by character: {北, 京, 大, 学} vs {北, 京}: P = 1/2, R = 1.
    ("zh", "北京大学", "北京", 0.0, 200 / 3),
    # Digits stay one token beside a CJK character: {2008, 年} vs {2008}.
    ("zh", "2008年", "2008", 0.0, 200 / 3),
    ("zh", "「长城」", "长城", 100.0, 100.0),  # CJK brackets are Unicode punctuation
    # Unicode punctuation (guillemets) is removed, not only ASCII punctuation.
    ("de", "«Berlin»", "Berlin", 100.0, 100.0),
    ("de", "der Hund", "Hund", 100.0, 100.0),  # German articles
    ("de", "the Hund", "Hund", 0.0, 200 / 3),  # English articles are English only
    ("es", "¿los Estados Unidos?", "Estados Unidos", 100.0, 100.0),
    ("es", "una casa", "casa", 100.0, 100.0),
    # Arabic drops every "ال", even inside a word.
    ("ar", "الكتاب", "كتاب", 100.0, 100.0),
    ("ar", "مالك", "م ك", 100.0, 100.0),
    ("hi", "दिल्ली।", "दिल्ली", 100.0, 100.0),  # the danda is punctuation
    ("hi", "the दिल्ली", "दिल्ली", 0.0, 200 / 3),  # Hindi has no articles to drop
    ("vi", "cái bàn", "bàn", 100.0, 100.0),
    ("en", "The cat.", "cat", 100.0, 100.0),
]


@pytest.mark.parametrize(("language", "prediction", "gold", "exact", "f1"), MLQA_CASES)
def test_mlqa_normalises_per_language_as_its_official_script(
    language: str, prediction: str, gold: str, exact: float, f1: float
) -> None:
    scores = compute("mlqa", {"q": prediction}, {"q": [gold]}, language)
    assert scores["exact_match"] == pytest.approx(exact)
    assert scores["f1"] == pytest.approx(f1)


def test_mlqa_differs_from_squad_where_the_issue_says() -> None:
    assert compute("squad", {"q": "北京大学"}, {"q": ["北京"]})["f1"] == 0.0
    assert compute("squad", {"q": "«Berlin»"}, {"q": ["Berlin"]})["f1"] == 0.0
    assert TASKS["mlqa"].metric == "mlqa"


def test_mlqa_best_reference_unanswered_questions_and_unknown_languages() -> None:
    refs: dict[str, Any] = {"q1": ["Hund", "der Hund"], "q2": {"text": ["Katze"], "answer_start": [0]}}
    with pytest.warns(UserWarning, match="Unanswered question q2"):
        assert compute("mlqa", {"q1": "ein Hund"}, refs, "de") == {"exact_match": 50.0, "f1": 50.0}
    with pytest.raises(ValueError, match="normalises only"):
        compute("mlqa", {"q": "x"}, {"q": ["x"]}, "ru")
    with pytest.raises(ValueError, match="pass the language"):
        compute("mlqa", {"q": "x"}, {"q": ["x"]})


def test_squad_v2_metric_accepts_no_answer_and_says_so() -> None:
    assert get_metric("squad_v2").null_answer and not get_metric("squad").null_answer
    assert TASKS["squad_v2"].metric == "squad_v2"
    refs: dict[str, Any] = {"q1": [], "q2": ["cat"]}
    assert compute("squad_v2", {"q1": "", "q2": "cat"}, refs) == {"f1": 100.0, "exact_match": 100.0}


def test_xtreme_task_score_is_em_f1_mean_for_qa_and_the_primary_score_otherwise() -> None:
    # XTREME's evaluate.py: avg_metric = (avg_exact_match + avg_f1) / 2 for QA, else avg_f1 or accuracy.
    for qa in ("squad", "mlqa", "squad_v2"):
        assert xtreme_task_score(qa, {"f1": 80.0, "exact_match": 60.0}) == pytest.approx(70.0)
    assert xtreme_task_score("seqeval_f1", {"f1": 40.0, "accuracy": 66.0}) == pytest.approx(40.0)
    assert xtreme_task_score("accuracy", {"accuracy": 55.0}) == pytest.approx(55.0)
    assert xtreme_task_score("bucc_f1", {"f1": 70.0, "precision": 90.0, "recall": 50.0}) == 70.0


def test_xquad_has_xtremes_eleven_languages() -> None:
    assert "ro" not in TASKS["xquad"].languages
    assert len(TASKS["xquad"].languages) == 11
