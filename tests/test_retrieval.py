"""Retrieval evaluation on hand-made embeddings whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainers.retrieval as retrieval
from trainers.retrieval import (
    best_threshold,
    bucc_f1,
    diagonal_pairs,
    evaluate_bucc,
    margin_scores,
    mean_pool,
    mine_pairs,
    tatoeba_accuracy,
)

DIM = 64
N_TRUE, N_NOISE = 8, 4


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _basis(index: int) -> np.ndarray:
    vector = np.zeros(DIM)
    vector[index] = 1.0
    return vector


def _bucc_corpus(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows 0..7 of each side are translations (isolated, cosine 0.8); rows 8..11 are untranslated
    noise packed in one dense cluster (cosine ~0.9 to each other across the sides)."""
    rng = np.random.default_rng(seed)
    true_tgt = [_basis(i) for i in range(N_TRUE)]
    true_src = [0.8 * _basis(i) + 0.6 * _basis(N_TRUE + i) for i in range(N_TRUE)]
    centre = _basis(20)
    noise_src = [_unit(centre + 0.33 * _basis(30 + n)) for n in range(N_NOISE)]
    noise_tgt = [_unit(centre + 0.33 * _basis(40 + n)) for n in range(N_NOISE)]
    src = np.stack(true_src + noise_src) + rng.normal(scale=1e-3, size=(N_TRUE + N_NOISE, DIM))
    tgt = np.stack(true_tgt + noise_tgt) + rng.normal(scale=1e-3, size=(N_TRUE + N_NOISE, DIM))
    return src.astype(np.float32), tgt.astype(np.float32)


GOLD = diagonal_pairs(N_TRUE)  # noise rows have no translation


def test_mean_pool_averages_only_unmasked_positions() -> None:
    hidden = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, -1.0], [99.0, 99.0], [99.0, 99.0]]]
    )
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert torch.allclose(mean_pool(hidden, mask), torch.tensor([[2.0, 3.0], [5.0, -1.0]]))


def test_mean_pool_of_an_all_padding_row_is_zero_not_nan() -> None:
    pooled = mean_pool(torch.ones(1, 3, 2), torch.zeros(1, 3, dtype=torch.long))
    assert torch.equal(pooled, torch.zeros(1, 2))


def test_tatoeba_accuracy_with_one_deliberately_wrong_query() -> None:
    src = np.eye(5, 8)
    tgt = src + 0.05 * np.eye(5, 8, k=5)[:, ::-1]
    tgt[3] = src[1] + 0.1 * src[3]  # English row 3 points at source 1: its only miss
    assert tatoeba_accuracy(src, tgt) == pytest.approx(80.0)
    assert tatoeba_accuracy(torch.from_numpy(src), torch.from_numpy(tgt)) == pytest.approx(80.0)


def test_tatoeba_uses_cosine_not_dot_product() -> None:
    tgt = np.eye(4, 6)
    src = tgt + 0.1 * tgt.sum(axis=0)
    src[0] *= 100.0  # a long source would win every English query's dot product, but not a cosine
    assert tatoeba_accuracy(src, tgt) == pytest.approx(100.0)


def test_tatoeba_queries_with_english_as_xtreme_does() -> None:
    # Non-English side: two orthogonal sentences. English side: t0 is a "hub" near both.
    src = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    tgt = np.array([[0.75, 0.66, 0.0], [0.0, 0.6, 0.8]])
    # en -> xx (XTREME's similarity_search indexes xx, queries English): t0 -> s0 (0.75 > 0.66),
    # t1 -> s1 (0.6 > 0): both right. xx -> en: s0 -> t0 right, s1 -> t0 (0.66 / 1.0 > 0.6) wrong.
    assert retrieval.tatoeba_predictions(src, tgt) == [0, 1]
    assert tatoeba_accuracy(src, tgt) == pytest.approx(100.0)
    assert tatoeba_accuracy(tgt, src) == pytest.approx(50.0)  # the other direction disagrees


def test_retrieval_layer_is_xtremes_per_encoder_family() -> None:
    # run_tatoeba.sh: mBERT layer 7 of the last 12, XLM-R large 13 of the last 24 -> hidden states 8, 14.
    assert retrieval.default_retrieval_layer("bert", 12) == 8
    assert retrieval.default_retrieval_layer("xlm-roberta", 24) == 14
    # Any other encoder: XLM-R large's relative depth, 14/24 of its layers.
    assert retrieval.default_retrieval_layer("xlm-roberta", 12) == 7
    assert retrieval.default_retrieval_layer("bert", 6) == 4
    assert retrieval.default_retrieval_layer("xlm-roberta", 2) == 1


def test_tatoeba_refuses_unaligned_sides() -> None:
    with pytest.raises(ValueError, match="3 sources for 2 targets"):
        tatoeba_accuracy(np.eye(3), np.eye(2, 3))


def _margin_by_loops(src: np.ndarray, tgt: np.ndarray, k: int) -> np.ndarray:
    """The ratio margin written out pair by pair, as the definition reads."""
    x, y = _unit(src.astype(np.float64)), _unit(tgt.astype(np.float64))
    cos = x @ y.T
    fwd = [np.mean(sorted(cos[i], reverse=True)[:k]) for i in range(len(x))]
    bwd = [np.mean(sorted(cos[:, j], reverse=True)[:k]) for j in range(len(y))]
    return np.array([[cos[i, j] / ((fwd[i] + bwd[j]) / 2) for j in range(len(y))] for i in range(len(x))])


def test_margin_scores_match_the_definition() -> None:
    rng = np.random.default_rng(0)
    # Shifted off the origin so that no neighbourhood mean is near 0 (the ratio would be ill-conditioned).
    src, tgt = rng.normal(size=(7, 5)) + 1.0, rng.normal(size=(6, 5)) + 1.0
    np.testing.assert_allclose(margin_scores(src, tgt, k=3), _margin_by_loops(src, tgt, 3), rtol=1e-5)
    # k larger than a side falls back to that side's size, as XTREME's min(n, k).
    np.testing.assert_allclose(margin_scores(src, tgt, k=50), _margin_by_loops(src, tgt, 50), rtol=1e-5)


def test_planted_pairs_have_margin_4_and_noise_margin_1() -> None:
    src, tgt = _bucc_corpus(seed=0)
    margins = margin_scores(src, tgt)
    # True pair: 0.8 / mean(0.2, 0.2); noise: 0.9 / mean(0.9, 0.9).
    np.testing.assert_allclose(np.diag(margins)[:N_TRUE], 4.0, atol=0.05)
    np.testing.assert_allclose(margins[N_TRUE:, N_TRUE:], 1.0, atol=0.05)


def test_forward_mining_takes_each_sources_best_margin_candidate() -> None:
    src, tgt = _bucc_corpus(seed=0)
    margins = margin_scores(src, tgt)
    mined = mine_pairs(src, tgt, retrieval="fwd")
    assert [i for i, _, _ in mined] == list(range(len(src)))
    assert [(i, j) for i, j, _ in mined[:N_TRUE]] == GOLD
    for i, j, score in mined:
        assert score == pytest.approx(margins[i, j], rel=1e-5)
        assert j in range(N_TRUE, N_TRUE + N_NOISE) or i < N_TRUE


def test_max_mining_is_one_to_one() -> None:
    tgt = np.eye(3, 6)
    src = np.stack([tgt[0] + 0.1 * tgt[1], tgt[0] + 0.2 * tgt[2], tgt[1] + 0.01 * tgt[2]])
    fwd = mine_pairs(src, tgt, k=2, retrieval="fwd")
    assert [j for _, j, _ in fwd][:2] == [0, 0]  # two sources claim target 0 going forward
    mined = mine_pairs(src, tgt, k=2, retrieval="max")
    assert len({i for i, _, _ in mined}) == len({j for _, j, _ in mined}) == len(mined)
    assert (0, 0) in {(i, j) for i, j, _ in mined}
    with pytest.raises(ValueError, match="retrieval"):
        mine_pairs(src, tgt, retrieval="bwd")  # type: ignore[arg-type]


def test_chunked_search_matches_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    src, tgt = rng.normal(size=(11, 8)), rng.normal(size=(9, 8))
    whole = mine_pairs(src, tgt)
    monkeypatch.setattr(retrieval, "CHUNK", 3)
    chunked = mine_pairs(src, tgt)
    assert [(i, j) for i, j, _ in chunked] == [(i, j) for i, j, _ in whole]
    np.testing.assert_allclose([s for *_, s in chunked], [s for *_, s in whole], rtol=1e-6)


def test_margin_separates_what_a_raw_cosine_threshold_cannot() -> None:
    src, tgt = _bucc_corpus(seed=0)
    # Baseline: nearest target by raw cosine, thresholded at its best possible value.
    cos = _unit(src) @ _unit(tgt).T
    by_cosine = [(i, int(cos[i].argmax()), float(cos[i].max())) for i in range(len(src))]
    cosine_f1 = bucc_f1(by_cosine, GOLD, best_threshold(by_cosine, GOLD))["f1"]
    # Noise pairs (cos 0.9) outrank every true pair (cos 0.8): 8 right of 12 extracted at best.
    assert cosine_f1 == pytest.approx(80.0)
    mined = mine_pairs(src, tgt)
    assert bucc_f1(mined, GOLD, best_threshold(mined, GOLD)) == pytest.approx(
        {"f1": 100.0, "precision": 100.0, "recall": 100.0}
    )


def test_best_threshold_by_hand() -> None:
    mined = [(3, 3, 1.5), (0, 0, 3.0), (4, 9, 1.0), (1, 1, 2.5), (2, 5, 2.0)]
    gold = [(0, 0), (1, 1), (3, 3)]
    # Top-n F1 for n = 1..5: .5, .8, .667, .857, .75 -> keep the top 4, cut midway between 1.5 and 1.0.
    threshold = best_threshold(mined, gold)
    assert threshold == pytest.approx(1.25)
    scores = bucc_f1(mined, gold, threshold)
    assert scores["precision"] == pytest.approx(75.0)
    assert scores["recall"] == pytest.approx(100.0)
    assert scores["f1"] == pytest.approx(600 / 7)


def test_bucc_f1_keeps_pairs_scoring_exactly_the_threshold() -> None:
    mined = [(0, 0, 2.0), (1, 1, 1.0)]
    assert bucc_f1(mined, [(0, 0), (1, 1)], 1.0)["recall"] == pytest.approx(100.0)
    assert bucc_f1(mined, [(0, 0), (1, 1)], 1.0001)["recall"] == pytest.approx(50.0)
    # When every pair is right, the threshold keeps everything the miner found (0, as XTREME's miner).
    assert best_threshold(mined, [(0, 0), (1, 1)]) == 0.0
    assert best_threshold([(0, 0, -2.0), (1, 1, -1.0)], [(0, 0), (1, 1)]) == -2.0


def test_evaluate_bucc_tunes_between_noise_and_true_scores_on_dev() -> None:
    dev_src, dev_tgt = _bucc_corpus(seed=1)
    test_src, test_tgt = _bucc_corpus(seed=2)
    result = evaluate_bucc(dev_src, dev_tgt, test_src, test_tgt, dev_gold=GOLD, test_gold=GOLD)
    dev_mined = mine_pairs(dev_src, dev_tgt)
    noise = [s for i, j, s in dev_mined if (i, j) not in GOLD]
    true = [s for i, j, s in dev_mined if (i, j) in GOLD]
    # Max mining pairs noise rows one to one while unclaimed, so at least one noise pair is mined.
    assert len(true) == N_TRUE and noise
    assert max(noise) < result["threshold"] < min(true)
    assert result["f1"] == pytest.approx(100.0)
    assert set(result) == {"f1", "precision", "recall", "threshold"}


def test_evaluate_bucc_defaults_to_row_aligned_gold() -> None:
    dev_src, dev_tgt = _bucc_corpus(seed=1)
    test_src, test_tgt = _bucc_corpus(seed=2)
    # Hub layout: only the aligned rows, gold pairs (i, i) implied.
    aligned = evaluate_bucc(dev_src[:N_TRUE], dev_tgt[:N_TRUE], test_src[:N_TRUE], test_tgt[:N_TRUE])
    assert aligned["f1"] == pytest.approx(100.0)
    # Reversing the targets breaks the implied alignment, so the score must collapse.
    shuffled = evaluate_bucc(
        dev_src[:N_TRUE], dev_tgt[:N_TRUE], test_src[:N_TRUE], test_tgt[:N_TRUE][::-1].copy()
    )
    assert shuffled["f1"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="pass the gold pairs explicitly"):
        evaluate_bucc(dev_src, dev_tgt[:N_TRUE], test_src, test_tgt)
