"""Retrieval evaluation as XTREME does it (Tatoeba and BUCC), given sentence embeddings.

The model side (which hidden layer, batching) is not here: these functions take embeddings as numpy
arrays or torch tensors. Similarities are cosine, computed as chunked matrix products (no faiss) so
that mining a BUCC test set of ~15k sentences never materialises a full similarity matrix
(``margin_scores`` does, for small sets and inspection).
Scores are on a 0-100 scale, as XTREME reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch

from trainers.metrics import compute

Embeddings = np.ndarray | torch.Tensor
MinedPair = tuple[int, int, float]
"""(source row, target row, margin score)."""

# Rows of queries scored against all keys at once: bounds memory to CHUNK x N floats.
CHUNK = 2048


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [B, L, H] over the positions where ``attention_mask`` [B, L] is set -> [B, H]."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    # An all-padding row would divide by zero; it pools to zeros instead.
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _unit_rows(embeddings: Embeddings) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32), so that dot products are cosine similarities."""
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().float().numpy()
    array = np.asarray(embeddings, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"embeddings must be 2-D [N, H], got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def _chunks(n_rows: int) -> Iterator[slice]:
    for start in range(0, n_rows, CHUNK):
        yield slice(start, min(start + CHUNK, n_rows))


def _top_k(queries: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar keys of each query, best first: (similarities, indices), [N, k]."""
    k = min(k, keys.shape[0])
    sims = np.empty((queries.shape[0], k), dtype=np.float32)
    inds = np.empty((queries.shape[0], k), dtype=np.int64)
    for rows in _chunks(queries.shape[0]):
        block = queries[rows] @ keys.T
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        part_sims = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        inds[rows] = np.take_along_axis(part, order, axis=1)
        sims[rows] = np.take_along_axis(part_sims, order, axis=1)
    return sims, inds


def tatoeba_accuracy(src: Embeddings, tgt: Embeddings) -> float:
    """Percentage of sources whose cosine nearest target is their own translation (row i <-> row i)."""
    x, y = _unit_rows(src), _unit_rows(tgt)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} sources for {y.shape[0]} targets; Tatoeba aligns row i with row i")
    _, nearest = _top_k(x, y, 1)
    return compute("retrieval_accuracy", nearest[:, 0].tolist(), list(range(x.shape[0])))["accuracy"]


def _neighbourhood_means(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean cosine of each source to its k nearest targets, and of each target to its k nearest sources."""
    return _top_k(x, y, k)[0].mean(axis=1), _top_k(y, x, k)[0].mean(axis=1)


def margin_scores(src: Embeddings, tgt: Embeddings, k: int = 4) -> np.ndarray:
    """Ratio margin [N_src, N_tgt]: cos(x, y) over the mean of both k-NN mean cosines (Artetxe & Schwenk)."""
    x, y = _unit_rows(src), _unit_rows(tgt)
    fwd_mean, bwd_mean = _neighbourhood_means(x, y, k)
    return (x @ y.T) / ((fwd_mean[:, None] + bwd_mean[None, :]) / 2)


def _best_candidates(
    x: np.ndarray, y: np.ndarray, k: int, fwd_mean: np.ndarray, bwd_mean: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of x, the best of its k cosine-nearest rows of y by margin: (indices, margins)."""
    # As XTREME/LASER: margin re-ranks only the k cosine candidates, never the whole target set.
    sims, inds = _top_k(x, y, k)
    margins = sims / ((fwd_mean[:, None] + bwd_mean[inds]) / 2)
    best = margins.argmax(axis=1)
    rows = np.arange(x.shape[0])
    return inds[rows, best], margins[rows, best]


def mine_pairs(
    src: Embeddings, tgt: Embeddings, k: int = 4, retrieval: Literal["max", "fwd"] = "max"
) -> list[MinedPair]:
    """Candidate pairs (i, j, ratio margin) as XTREME's ``mine_bitext`` ("max": both directions, 1-to-1)."""
    if retrieval not in ("max", "fwd"):
        raise ValueError(f"retrieval must be 'max' or 'fwd', got {retrieval!r}")
    x, y = _unit_rows(src), _unit_rows(tgt)
    fwd_mean, bwd_mean = _neighbourhood_means(x, y, k)
    fwd_best, fwd_scores = _best_candidates(x, y, k, fwd_mean, bwd_mean)
    if retrieval == "fwd":
        return [(i, int(j), float(s)) for i, (j, s) in enumerate(zip(fwd_best, fwd_scores, strict=True))]
    bwd_best, bwd_scores = _best_candidates(y, x, k, bwd_mean, fwd_mean)
    # "max": pool forward and backward candidates, then take them best-first while both ends are unused.
    src_ids = np.concatenate([np.arange(x.shape[0]), bwd_best])
    tgt_ids = np.concatenate([fwd_best, np.arange(y.shape[0])])
    scores = np.concatenate([fwd_scores, bwd_scores])
    seen_src: set[int] = set()
    seen_tgt: set[int] = set()
    mined: list[MinedPair] = []
    for n in np.argsort(-scores, kind="stable"):
        i, j = int(src_ids[n]), int(tgt_ids[n])
        if i not in seen_src and j not in seen_tgt:
            seen_src.add(i)
            seen_tgt.add(j)
            mined.append((i, j, float(scores[n])))
    return mined


def diagonal_pairs(n: int) -> list[tuple[int, int]]:
    """Gold pairs (i, i) for ``n`` aligned rows (the hub's bucc18 layout)."""
    return [(i, i) for i in range(n)]


def bucc_f1(
    mined: Iterable[MinedPair], gold_pairs: Iterable[Sequence[int]], threshold: float
) -> dict[str, float]:
    """Precision, recall and F1 (0-100) of the mined pairs scoring at least ``threshold``."""
    extracted = [(i, j) for i, j, score in mined if score >= threshold]
    return compute("bucc_f1", extracted, list(gold_pairs))


def best_threshold(mined: Sequence[MinedPair], gold_pairs: Iterable[Sequence[int]]) -> float:
    """The score threshold maximising F1 of ``mined`` against ``gold_pairs`` (XTREME's bucc_optimize)."""
    gold = {(int(p[0]), int(p[1])) for p in gold_pairs}
    ranked = sorted(mined, key=lambda pair: -pair[2])
    # Without any correct pair every threshold scores 0; XTREME then falls back to 0.
    best_f1, threshold = 0.0, 0.0
    correct = 0
    # Walk the pairs best-first: extracting the top n costs precision or gains recall at each step.
    for n, (i, j, score) in enumerate(ranked, start=1):
        correct += (i, j) in gold
        if correct == 0:
            continue
        precision, recall = correct / n, correct / len(gold)
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1:
            best_f1 = f1
            # Midway to the next score keeps exactly the top n under ``score >= threshold``. When keeping
            # every pair is best, any lower cut ties on dev: take XTREME's mining floor (margins > 0) so
            # that test pairs scoring a little under dev's lowest are not cut.
            threshold = (score + ranked[n][2]) / 2 if n < len(ranked) else min(score, 0.0)
    return threshold


def _gold_or_diagonal(
    gold: Iterable[Sequence[int]] | None, src: Embeddings, tgt: Embeddings, split: str
) -> list[tuple[int, int]]:
    if gold is not None:
        return [(int(p[0]), int(p[1])) for p in gold]
    if len(src) != len(tgt):
        raise ValueError(
            f"{split}: {len(src)} sources for {len(tgt)} targets; pass the gold pairs explicitly"
        )
    return diagonal_pairs(len(src))


def evaluate_bucc(
    dev_src: Embeddings,
    dev_tgt: Embeddings,
    test_src: Embeddings,
    test_tgt: Embeddings,
    *,
    k: int = 4,
    dev_gold: Iterable[Sequence[int]] | None = None,
    test_gold: Iterable[Sequence[int]] | None = None,
    retrieval: Literal["max", "fwd"] = "max",
) -> dict[str, float]:
    """Mine dev and test, tune the threshold on dev; test f1/precision/recall (0-100) and the threshold."""
    dev_pairs = _gold_or_diagonal(dev_gold, dev_src, dev_tgt, "dev")
    test_pairs = _gold_or_diagonal(test_gold, test_src, test_tgt, "test")
    threshold = best_threshold(mine_pairs(dev_src, dev_tgt, k, retrieval), dev_pairs)
    scores = bucc_f1(mine_pairs(test_src, test_tgt, k, retrieval), test_pairs, threshold)
    return {**scores, "threshold": threshold}


__all__ = [
    "MinedPair",
    "best_threshold",
    "bucc_f1",
    "diagonal_pairs",
    "evaluate_bucc",
    "margin_scores",
    "mean_pool",
    "mine_pairs",
    "tatoeba_accuracy",
]
