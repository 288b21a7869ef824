"""XTREME's evaluation protocol on real data: Tatoeba's direction on LASER's real test pairs.

The real files (XTREME's download layout) live in /work/shared/real or ``$XSTILTS_REAL_DATA``; the
tests skip, saying so, where they are absent. Nothing here is copied into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer
from test_features import tokenizer as tokenizer  # the fixture

from trainers.retrieval import tatoeba_accuracy, tatoeba_predictions

REAL = Path(os.environ.get("XSTILTS_REAL_DATA", "/work/shared/real"))
TATOEBA = REAL / "tatoeba"
needs_tatoeba = pytest.mark.skipif(
    not (TATOEBA / "tatoeba.deu-eng.deu").is_file(),
    reason=f"real Tatoeba pairs not found under {TATOEBA} (set XSTILTS_REAL_DATA)",
)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _char_ngrams(texts: list[str]) -> np.ndarray:
    """A language-blind sentence embedding: hashed character 2-4-grams (names and numbers match)."""
    vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2**12, norm=None)
    return vectorizer.transform(texts).toarray().astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _xtreme_similarity_search(x: np.ndarray, y: np.ndarray) -> list[int]:
    """XTREME's similarity_search as the oracle: L2-normalise, index x, find each y's nearest by L2."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    distances = (y**2).sum(1)[:, None] + (x**2).sum(1)[None, :] - 2 * y @ x.T
    return [int(i) for i in distances.argmin(axis=1)]


@needs_tatoeba
@pytest.mark.parametrize("code", ["deu", "spa"])  # Latin script: character n-grams match
def test_tatoeba_direction_on_real_pairs(code: str) -> None:
    # run_retrieval.py: x = the xx side, y = English; similarity_search(x, y) indexes x, queries y.
    xx = _char_ngrams(_lines(TATOEBA / f"tatoeba.{code}-eng.{code}"))
    en = _char_ngrams(_lines(TATOEBA / f"tatoeba.{code}-eng.eng"))
    ours, oracle = tatoeba_predictions(xx, en), _xtreme_similarity_search(xx, en)
    cosine = _unit(en) @ _unit(xx).T
    rows = np.arange(len(en))
    # The same nearest neighbour for every English query, up to exact ties in similarity.
    np.testing.assert_allclose(cosine[rows, ours], cosine[rows, oracle], atol=1e-5)
    en_to_xx, xx_to_en = tatoeba_accuracy(xx, en), tatoeba_accuracy(en, xx)
    oracle_accuracy = 100 * float(np.mean(np.asarray(oracle) == rows))
    assert en_to_xx == pytest.approx(oracle_accuracy, abs=0.2)
    # On real pairs the directions differ (here deu 18.4 vs 15.3, spa 17.2 vs 18.1): only en -> xx is XTREME's.
    assert en_to_xx != pytest.approx(xx_to_en, abs=0.05)


def test_search_summary_of_a_retrieval_target_without_en_dev() -> None:
    from search.cli import search_summary

    best: dict[str, Any] = {"trial_id": "t0", "config": {"intermediate_task": "mnli"}, "en_dev": None}
    best |= {"zero_shot_avg": 41.5, "intermediate_reused": 0.0}
    outcome = SimpleNamespace(
        search="s", target="tatoeba", trials=1, completed=1, early_stopped=0, failed=0, best=best
    )
    text = search_summary([outcome], SimpleNamespace(tracking_uri="sqlite:///x.db"))
    assert "en_dev=n/a  zero_shot_avg=41.50" in text


# -- the pipeline's side: SQuAD 2.0's "no answer", languages without dev, the retrieval layer ---------


class _NoAnswerEngine:
    """A QA head that always scores the CLS position (SQuAD 2.0's "no answer") highest."""

    def eval(self) -> None:
        """No dropout to switch off."""

    def __call__(self, task: str, batch: dict[str, Any]) -> tuple[None, tuple[Any, Any]]:
        import torch

        start = torch.zeros(batch["input_ids"].shape)
        end = torch.zeros(batch["input_ids"].shape)
        start[:, 0] = end[:, 0] = 5.0
        return None, (start, end)


@pytest.mark.parametrize(("task", "exact_match"), [("squad_v2", 100.0), ("squad_v1", 0.0)])
def test_squad_v2_dev_answers_no_answer(tokenizer: Any, task: str, exact_match: float) -> None:
    import torch
    from test_features import canonical, qa_example

    from trainers.data import featurize
    from trainers.evaluation import evaluate
    from trainers.prepare import EvalSet
    from trainers.tasks import get_task

    # An unanswerable question: only a head allowed to say "no answer" can get it right. (No article or
    # punctuation in the context: any span of it normalises to a non-empty answer.)
    examples = canonical(task, [qa_example("q", "Paris is capital of France", None)])
    features = featurize(get_task(task), examples, tokenizer, max_length=64, doc_stride=16, training=False)
    data = EvalSet(get_task(task), "en", "dev", examples, features)
    scores = evaluate(_NoAnswerEngine(), task, data, (), 8, tokenizer.pad_token_id, torch.device("cpu"))
    assert scores["exact_match"] == exact_match


def test_a_language_without_a_dev_split_is_noted_not_fatal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import trainers.zero_shot_eval as zero_shot_eval
    from trainers.config import TransferConfig
    from trainers.data import DataError
    from trainers.runtime import LocalRuntime
    from trainers.tasks import get_task

    def eval_set(config: Any, task: Any, split: str, lang: str, *args: Any) -> str:
        if split == "dev" and lang == "kk":  # google/xtreme's udpos.Kazakh: train and test only
            raise DataError("udpos: no split 'dev' for 'kk' on the hub (udpos.Kazakh)")
        return f"{split}/{lang}"

    scored = {"test/en": 90.0, "test/kk": 60.0, "dev/en": 92.0}
    monkeypatch.setattr(zero_shot_eval, "eval_set", eval_set)
    monkeypatch.setattr(zero_shot_eval, "load_tokenizer", lambda path: SimpleNamespace(pad_token_id=0))
    monkeypatch.setattr(zero_shot_eval, "label_names_for", lambda task, config: ())
    monkeypatch.setattr(zero_shot_eval, "evaluate", lambda engine, head, data, *a, **k: {"f1": scored[data]})
    config = TransferConfig.from_dict({"target": {"task": "udpos"}, "evaluation": {"split": "test"}})
    runtime = LocalRuntime(tmp_path / "run")
    metrics = zero_shot_eval._trained(runtime, config, get_task("udpos"), None, "enc", ["en", "kk"])
    assert metrics["zero_shot_avg"] == pytest.approx(75.0)
    assert metrics["target_dev/en"] == 92.0 and "target_dev/kk" not in metrics
    assert metrics["target_dev_missing/kk"] == 1.0
    assert metrics["target_dev_avg"] == 92.0  # over the languages that have a dev split
    from trainers.summary import scores_table

    assert "no dev split (left out of the dev averages): kk" in scores_table(metrics, "udpos")


def test_retrieval_layer_is_configurable_and_checked() -> None:
    from trainers.config import ConfigError, TransferConfig
    from trainers.zero_shot_eval import retrieval_layer

    default = TransferConfig.from_dict({"target": {"task": "tatoeba"}})
    assert retrieval_layer(default, "xlm-roberta", 24) == 14
    assert retrieval_layer(default, "bert", 12) == 8
    chosen = TransferConfig.from_dict({"target": {"task": "tatoeba"}, "model": {"retrieval_layer": 20}})
    assert retrieval_layer(chosen, "xlm-roberta", 24) == 20
    with pytest.raises(
        ConfigError, match=r"model\.retrieval_layer=20 is out of range: the encoder has 12 layers"
    ):
        retrieval_layer(chosen, "bert", 12)


def test_each_run_reports_xtremes_task_score() -> None:
    from trainers.tasks import get_task
    from trainers.zero_shot_eval import xtreme_task_metrics

    metrics = {"zero_shot/en": 80.0, "zero_shot/en/f1": 80.0, "zero_shot/en/exact_match": 60.0}
    metrics |= {"zero_shot/de": 60.0, "zero_shot/de/f1": 60.0, "zero_shot/de/exact_match": 40.0}
    # XTREME's QA score: (average EM + average F1) / 2 = (50 + 70) / 2, where the headline F1 is 70.
    assert xtreme_task_metrics(metrics, get_task("xquad"), ["en", "de"]) == {"zero_shot_xtreme": 60.0}
    assert xtreme_task_metrics({}, get_task("tatoeba"), ["de"]) == {}
