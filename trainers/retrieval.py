"""Retrieval evaluation as XTREME does it (Tatoeba and BUCC), given sentence embeddings.

The model side (which hidden layer, batching) is not here: these functions take embeddings as numpy
arrays or torch tensors. Similarities are cosine, computed as chunked matrix products (no faiss) so
that mining BUCC's full corpora (hundreds of thousands of sentences a side) never materialises a full
similarity matrix (``margin_scores`` does, for small sets and inspection).
Scores are on a 0-100 scale, as XTREME reports them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch

from trainers.metrics import compute

Embeddings = np.ndarray | torch.Tensor
MinedPair = tuple[Any, Any, float]
"""(source row, target row, margin score); rows may be sentence ids instead of indices (BUCC)."""

# The hidden state XTREME mean-pools for retrieval, by (model_type, layers): hidden_states[k], where 0
# is the embedding output. Its scripts take layer 7 of the last 12 for mBERT and 13 of the last 24 for
# XLM-R large (run_tatoeba.sh), i.e. hidden states 8 and 14; jiant's retrieval uses 14 for XLM-R too.
# XTREME evaluated no T5-family encoder on retrieval: mT5's encoder stack (t5/mt5/umt5, loaded without
# its decoder) takes the relative-depth rule below, on the same indexing (hidden_states[k] is the k-th
# block's output, the last one after the final RMSNorm); mT5 large's 24 blocks give 14, as XLM-R large's.
XTREME_RETRIEVAL_LAYERS: dict[tuple[str, int], int] = {("bert", 12): 8, ("xlm-roberta", 24): 14}

# Rows of queries scored against all keys at once: at most CHUNK, and at most BLOCK_FLOATS similarities
# (1 GiB of float32), so that a block against 400k BUCC sentences stays small.
CHUNK = 2048
BLOCK_FLOATS = 2**28


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


def _chunks(n_rows: int, n_keys: int) -> Iterator[slice]:
    size = max(1, min(CHUNK, BLOCK_FLOATS // max(n_keys, 1)))
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))


def _top_k(queries: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar keys of each query, best first: (similarities, indices), [N, k]."""
    k = min(k, keys.shape[0])
    sims = np.empty((queries.shape[0], k), dtype=np.float32)
    inds = np.empty((queries.shape[0], k), dtype=np.int64)
    for rows in _chunks(queries.shape[0], keys.shape[0]):
        block = queries[rows] @ keys.T
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        part_sims = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        inds[rows] = np.take_along_axis(part, order, axis=1)
        sims[rows] = np.take_along_axis(part_sims, order, axis=1)
    return sims, inds


def default_retrieval_layer(model_type: str, n_layers: int) -> int:
    """XTREME's hidden state for its encoders; for any other, the same relative depth as XLM-R large's."""
    return XTREME_RETRIEVAL_LAYERS.get((model_type, n_layers), max(1, round(n_layers * 14 / 24)))


def tatoeba_predictions(src: Embeddings, tgt: Embeddings) -> list[int]:
    """For each English sentence (``tgt`` row), the row of its cosine-nearest non-English sentence."""
    x, y = _unit_rows(src), _unit_rows(tgt)
    # XTREME indexes the non-English side and queries it with English (similarity_search(x, y) in
    # run_retrieval.py), as jiant does: en -> xx. The other direction differs by a point or so.
    _, nearest = _top_k(y, x, 1)
    return [int(i) for i in nearest[:, 0]]


def tatoeba_accuracy(src: Embeddings, tgt: Embeddings) -> float:
    """Percentage of English sentences whose cosine-nearest source is their translation (row i <-> i)."""
    if len(src) != len(tgt):
        raise ValueError(f"{len(src)} sources for {len(tgt)} targets; Tatoeba aligns row i with row i")
    return compute("retrieval_accuracy", tatoeba_predictions(src, tgt), list(range(len(tgt))))["accuracy"]


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
    mined: Iterable[MinedPair], gold_pairs: Iterable[Sequence[Hashable]], threshold: float
) -> dict[str, float]:
    """Precision, recall and F1 (0-100) of the mined pairs scoring at least ``threshold``."""
    extracted = [(i, j) for i, j, score in mined if score >= threshold]
    return compute("bucc_f1", extracted, list(gold_pairs))


def best_threshold(mined: Sequence[MinedPair], gold_pairs: Iterable[Sequence[Hashable]]) -> float:
    """The score threshold maximising F1 of ``mined`` against ``gold_pairs`` (XTREME's bucc_optimize)."""
    gold = {(p[0], p[1]) for p in gold_pairs}
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
    return bucc_from_candidates(
        mine_pairs(dev_src, dev_tgt, k, retrieval),
        dev_pairs,
        mine_pairs(test_src, test_tgt, k, retrieval),
        test_pairs,
    )


def mined_ids(
    mined: Iterable[MinedPair], source_ids: Sequence[Hashable | None], target_ids: Sequence[Hashable | None]
) -> list[MinedPair]:
    """Mined row pairs as (source id, target id, margin); rows without an id (repeated sentences) drop out.

    As XTREME's ``read_candidate2score``: a pair mined twice keeps its higher margin.
    """
    best: dict[tuple[Hashable, Hashable], float] = {}
    for i, j, score in mined:
        source, target = source_ids[i], target_ids[j]
        if source is not None and target is not None:
            best[(source, target)] = max(score, best.get((source, target), score))
    return [(source, target, score) for (source, target), score in best.items()]


def bucc_from_candidates(
    dev: Sequence[MinedPair],
    dev_gold: Iterable[Sequence[Hashable]],
    test: Sequence[MinedPair],
    test_gold: Iterable[Sequence[Hashable]],
) -> dict[str, float]:
    """Test f1/precision/recall (0-100) at the threshold that maximises dev F1, and that threshold."""
    threshold = best_threshold(dev, dev_gold)
    return {**bucc_f1(test, test_gold, threshold), "threshold": threshold}


__all__ = [
    "XTREME_RETRIEVAL_LAYERS",
    "MinedPair",
    "best_threshold",
    "bucc_f1",
    "bucc_from_candidates",
    "default_retrieval_layer",
    "diagonal_pairs",
    "evaluate_bucc",
    "margin_scores",
    "mean_pool",
    "mine_pairs",
    "mined_ids",
    "tatoeba_accuracy",
    "tatoeba_predictions",
]
