"""Phase 3: zero-shot evaluation on every language of the target task.

Trained targets are scored with the fine-tuned model on each language's evaluation split (and each
language's dev split where one exists, for oracle selection). Retrieval targets (BUCC, Tatoeba) have
no training data: the encoder from phase 1 (or the base model) embeds sentences by mean-pooling a
hidden layer, and sentences are matched by cosine similarity.
"""

from __future__ import annotations

from statistics import mean
from typing import Any

import numpy as np
import torch

from trainers import _phase, retrieval
from trainers.config import TransferConfig
from trainers.data import (
    DataError,
    available_languages,
    collate,
    featurize_texts,
    load_split,
    resolve_train_task,
)
from trainers.evaluation import evaluate
from trainers.metrics import primary
from trainers.prepare import eval_set, label_names_for, load_tokenizer
from trainers.runtime import Runtime
from trainers.tasks import TaskSpec, get_task


def languages(config: TransferConfig, task: TaskSpec) -> list[str]:
    """The languages to evaluate: those asked for, or every language the data source has."""
    have = available_languages(task, config.data)
    asked = config.evaluation.languages
    if asked is None:
        return list(have)
    missing = [lang for lang in asked if lang not in have]
    if missing:
        raise DataError(
            f"evaluation.languages: {task.name} has no data for {', '.join(missing)}; it has {', '.join(have)}"
        )
    return list(asked)


def _averages(metrics: dict[str, float], prefix: str, langs: list[str]) -> dict[str, float]:
    scores = [metrics[f"{prefix}/{lang}"] for lang in langs if f"{prefix}/{lang}" in metrics]
    foreign = [
        metrics[f"{prefix}/{lang}"] for lang in langs if lang != "en" and f"{prefix}/{lang}" in metrics
    ]
    out = {f"{prefix}_avg": mean(scores)} if scores else {}
    if foreign:
        out[f"{prefix}_avg_non_en"] = mean(foreign)
    return out


def run(runtime: Runtime, config: TransferConfig, engine: Any, encoder_dir: str) -> dict[str, float]:
    """Score every language; ``engine`` is the fine-tuned model (``None`` for retrieval targets)."""
    timer = _phase.Timer()
    task = get_task(config.target.task)
    langs = languages(config, task)
    if task.is_retrieval:
        metrics = _retrieval(runtime, config, task, encoder_dir, langs)
    else:
        metrics = _trained(runtime, config, task, engine, encoder_dir, langs)
    metrics["time/eval_s"] = timer.seconds()
    return metrics


def _trained(
    runtime: Runtime, config: TransferConfig, task: TaskSpec, engine: Any, encoder_dir: str, langs: list[str]
) -> dict[str, float]:
    tokenizer = load_tokenizer(encoder_dir)
    labels = label_names_for(resolve_train_task(task), config)
    metrics: dict[str, float] = {}
    splits = {"zero_shot": config.evaluation.split, "target_dev": "dev"}
    for prefix, split in splits.items():
        for lang in langs:
            try:
                data = eval_set(config, task, split, lang, tokenizer, labels)
            except DataError:
                if prefix == "zero_shot":
                    raise
                continue  # no per-language dev split (e.g. XQuAD): oracle selection skips it
            scores = evaluate(
                engine,
                task.name,
                data,
                labels,
                config.evaluation.batch_size,
                tokenizer.pad_token_id,
                runtime.device,
            )
            metrics[f"{prefix}/{lang}"] = primary(task.metric, scores)
            metrics.update({f"{prefix}/{lang}/{k}": v for k, v in scores.items()})
        metrics.update(_averages(metrics, prefix, langs))
    return metrics


@torch.no_grad()
def _embed(
    model: Any, tokenizer: Any, texts: list[str], layer: int, config: TransferConfig, device: torch.device
) -> np.ndarray:
    features = featurize_texts(texts, tokenizer, config.model.max_seq_length)
    chunks = []
    for start in range(0, len(features), config.evaluation.batch_size):
        rows = [features[i] for i in range(start, min(start + config.evaluation.batch_size, len(features)))]
        batch = collate(rows, tokenizer.pad_token_id)
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
        chunks.append(retrieval.mean_pool(hidden, mask).float().cpu().numpy())
    return np.concatenate(chunks)


def _retrieval(
    runtime: Runtime, config: TransferConfig, task: TaskSpec, encoder_dir: str, langs: list[str]
) -> dict[str, float]:
    from transformers import AutoModel

    metrics: dict[str, float] = {}
    if runtime.rank == 0:  # no engine, no collectives: one rank is enough
        model = AutoModel.from_pretrained(encoder_dir).to(runtime.device).eval()
        tokenizer = load_tokenizer(encoder_dir)
        n_layers = int(model.config.num_hidden_layers)
        # hidden_states[0] is the embedding output, so layer k is index k.
        layer = (
            config.model.retrieval_layer if config.model.retrieval_layer is not None else (n_layers + 1) // 2
        )
        metrics["retrieval_layer"] = layer

        def embed_split(split: str, lang: str) -> tuple[np.ndarray, np.ndarray]:
            # The raw rows, not eval_set: retrieval features hold one text column, and both sides are embedded.
            rows = load_split(task, split, lang, config.data)
            return (
                _embed(model, tokenizer, list(rows["source"]), layer, config, runtime.device),
                _embed(model, tokenizer, list(rows["target"]), layer, config, runtime.device),
            )

        def score(split: str, lang: str, dev: tuple[np.ndarray, np.ndarray] | None) -> dict[str, float]:
            src, tgt = embed_split(split, lang)
            if task.metric == "bucc_f1":
                dev_src, dev_tgt = dev if dev is not None else (src, tgt)  # the threshold is tuned on dev
                return retrieval.evaluate_bucc(dev_src, dev_tgt, src, tgt)
            return {"accuracy": retrieval.tatoeba_accuracy(src, tgt)}

        for lang in langs:
            dev = None
            try:
                dev = embed_split("dev", lang)
                dev_scores = score("dev", lang, dev)
                metrics[f"target_dev/{lang}"] = primary(task.metric, dev_scores)
            except DataError:
                if task.metric == "bucc_f1":
                    raise  # BUCC needs dev to tune its threshold
            scores = score(config.evaluation.split, lang, dev)
            metrics[f"zero_shot/{lang}"] = primary(task.metric, scores)
            metrics.update({f"zero_shot/{lang}/{k}": float(v) for k, v in scores.items()})
        metrics.update(_averages(metrics, "zero_shot", langs))
        metrics.update(_averages(metrics, "target_dev", langs))
        if "target_dev_avg" in metrics:
            # No English dev set exists for a retrieval target: its language pairs' dev score stands in,
            # so searches and selection have the same metric for every target.
            metrics["en_dev"] = metrics["target_dev_avg"]
    torch.distributed.barrier()
    return metrics
