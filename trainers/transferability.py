"""How well an encoder suits a target before any training: LogME on the target's English training data.

LogME (You et al., ICML 2021; the fixed-point solver of You et al. 2022, "Ranking and Tuning
Pre-trained Models") is the log of the maximum evidence of a Bayesian linear model from the encoder's
features to each class's one-hot label column, averaged over classes and divided by the number of
examples: a frozen-feature estimate of how easily a head on these features fits the labels. Poth et
al. (EMNLP 2021) rank intermediate tasks with it. Here the features of a text are the mean over the
encoder's layers of its hidden states: the first sub-token of each word for tagging targets, the
masked mean over tokens for classification targets.

``rank_encoders`` scores the base encoder and every published intermediate checkpoint of the cache, so
a search (or ``xstilts rank``) can order intermediate tasks before training any target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainers.config import TransferConfig
from trainers.tasks import TaskType, get_task

MAX_ROWS = 4000
"""Feature rows per estimate (tokens for tagging): enough for a stable ranking, cheap on a CPU."""
_EPSILON = 1e-5  # keeps the updates finite when the fit is perfect or the weights vanish


def log_evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    """Per-example log evidence of ``target`` (N) under ``y = F w + noise``, ``w ~ N(0, 1/alpha)``,
    noise ``~ N(0, 1/beta)``, straight from the definition (for checks; ``logme`` maximises it)."""
    n, d = features.shape
    a = alpha * np.eye(d) + beta * features.T @ features
    m = beta * np.linalg.solve(a, features.T @ target)
    residual = float(((target - features @ m) ** 2).sum())
    _, logdet = np.linalg.slogdet(a)
    value = (
        d / 2 * math.log(alpha)
        + n / 2 * math.log(beta)
        - 0.5 * logdet
        - beta / 2 * residual
        - alpha / 2 * float(m @ m)
        - n / 2 * math.log(2 * math.pi)
    )
    return value / n


@dataclass(frozen=True)
class Evidence:
    """The maximum evidence of one label column and where it was reached."""

    value: float
    """Per-example log evidence."""
    alpha: float
    """Prior precision of the weights."""
    beta: float
    """Precision of the noise."""


def _max_evidence(u: np.ndarray, sigma: np.ndarray, d: int, target: np.ndarray, iterations: int) -> Evidence:
    """Maximise the evidence of one column over (alpha, beta) by MacKay's fixed-point updates.

    In the SVD basis ``F = U S V^T`` (``sigma = S**2``) every quantity is a sum over singular values;
    the part of ``target`` outside the span of ``U`` only adds to the residual.
    """
    n = target.shape[0]
    projected = u.T @ target
    projected2 = projected**2
    outside = float((target**2).sum() - projected2.sum())
    alpha, beta = 1.0, 1.0
    for _ in range(iterations):
        ratio = alpha / beta
        gamma = float((sigma / (sigma + ratio)).sum())  # the effective number of parameters
        weight2 = float((sigma * projected2 / (sigma + ratio) ** 2).sum())  # |m|^2
        residual = float((projected2 * (ratio / (sigma + ratio)) ** 2).sum()) + outside
        alpha = gamma / (weight2 + _EPSILON)
        beta = (n - gamma) / (residual + _EPSILON)
        if abs(alpha / beta - ratio) / ratio <= 1e-3:
            break
    ratio = alpha / beta
    weight2 = float((sigma * projected2 / (sigma + ratio) ** 2).sum())
    residual = float((projected2 * (ratio / (sigma + ratio)) ** 2).sum()) + outside
    value = (
        d / 2 * math.log(alpha)
        + n / 2 * math.log(beta)
        - 0.5 * float(np.log(alpha + beta * sigma).sum())
        - 0.5 * (d - sigma.shape[0]) * math.log(alpha)  # directions of w the features never see
        - beta / 2 * residual
        - alpha / 2 * weight2
        - n / 2 * math.log(2 * math.pi)
    )
    return Evidence(value / n, alpha, beta)


def logme(features: np.ndarray, labels: np.ndarray, iterations: int = 100) -> float:
    """LogME of class ``labels`` (N ints) on ``features`` (N x D): the mean over classes of the
    per-example maximum log evidence of the class's one-hot column. Higher is better."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"logme: features {features.shape} and labels {labels.shape} do not match")
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    keep = s > 1e-10 * max(1.0, float(s.max(initial=0.0)))
    u, sigma = u[:, keep], s[keep] ** 2
    classes = np.unique(labels)
    return float(
        np.mean(
            [
                _max_evidence(u, sigma, features.shape[1], (labels == c).astype(np.float64), iterations).value
                for c in classes
            ]
        )
    )


@torch.no_grad()
def target_features(config: TransferConfig, encoder_dir: str, max_rows: int = MAX_ROWS) -> tuple[Any, Any]:
    """Features (rows x hidden) and labels of the target's English training data on ``encoder_dir``."""
    from trainers.data import collate, resolve_train_task
    from trainers.encoders import load_encoder
    from trainers.prepare import label_names_for, load_tokenizer, train_features

    target = get_task(config.target.task)
    train_task = resolve_train_task(target)
    if train_task.type not in (
        TaskType.TAGGING,
        TaskType.SINGLE_CLASSIFICATION,
        TaskType.PAIR_CLASSIFICATION,
    ):
        raise ValueError(
            f"rank: {target.name} is a {train_task.type.value} task; LogME ranks tagging and classification targets"
        )
    tokenizer = load_tokenizer(encoder_dir)
    labels_names = label_names_for(train_task, config)
    features = train_features(config, train_task, tokenizer, labels_names)
    model = load_encoder(encoder_dir).eval()
    rows: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    count = 0
    batch_size = config.evaluation.batch_size
    for start in range(0, len(features), batch_size):
        batch = collate(
            [features[i] for i in range(start, min(start + batch_size, len(features)))],
            tokenizer.pad_token_id,
        )
        hidden = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        ).hidden_states
        mean = torch.stack(hidden[1:]).mean(0)  # the mean over layers (the embedding output left out)
        if train_task.type is TaskType.TAGGING:
            picked = batch["labels"] >= 0  # the first sub-token of each word
            rows.append(mean[picked].float().numpy())
            labels.append(batch["labels"][picked].numpy())
        else:
            mask = batch["attention_mask"].unsqueeze(-1).float()
            rows.append(((mean * mask).sum(1) / mask.sum(1)).float().numpy())
            labels.append(batch["labels"].numpy())
        count += len(labels[-1])
        if count >= max_rows:
            break
    return np.concatenate(rows)[:max_rows], np.concatenate(labels)[:max_rows]


@dataclass(frozen=True)
class Ranked:
    """One candidate encoder's LogME for a target."""

    name: str
    """``none`` for the base encoder, else the intermediate task or mixture (``a+b``)."""
    key_fields: dict[str, Any]
    """The intermediate configuration (the cache entry's ``key_fields``; empty for the base encoder)."""
    path: str
    """The encoder directory."""
    score: float
    """LogME (higher: a better start for this target)."""


def rank_encoders(config: TransferConfig, cache_root: str | Path, max_rows: int = MAX_ROWS) -> list[Ranked]:
    """The base encoder and every cached intermediate encoder of the same encoder and data, by LogME."""
    from trainers.checkpoint_cache import CheckpointCache
    from trainers.encoders import resolve_encoder

    base = resolve_encoder(config.model.name_or_path, config.data.cache_dir)
    candidates: list[tuple[str, dict[str, Any], str]] = [("none", {}, str(base))]
    for entry in CheckpointCache(cache_root).entries():
        fields = entry.get("key_fields") or {}
        encoder = fields.get("encoder", {})
        if encoder.get("name_or_path") != config.model.name_or_path:
            continue
        if fields.get("data", {}).get("source") != config.data.source:
            continue
        name = "+".join(fields["intermediate"]["tasks"])
        candidates.append((name, fields, str(entry["path"])))
    ranked = []
    for name, fields, path in candidates:
        features, labels = target_features(config, path, max_rows)
        ranked.append(Ranked(name, fields, path, logme(features, labels)))
    return sorted(ranked, key=lambda r: r.score, reverse=True)
