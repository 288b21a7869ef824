"""Phase 3: zero-shot evaluation on every language of the target task.

Trained targets are scored with the fine-tuned model on each language's evaluation split (and each
language's dev split where one exists, for oracle selection; a language without one is noted as
``target_dev_missing/<lang>``). Each rank predicts its share of a language's batches and rank 0
scores them all (``evaluation.evaluate``): the scores of one rank, in about 1/N of the time on N ranks.
Retrieval targets (BUCC, Tatoeba) have no training data: the encoder from phase 1 (or the base model)
embeds sentences by mean-pooling a hidden layer (XTREME's, see ``retrieval.default_retrieval_layer``),
and sentences are matched by cosine similarity as XTREME does:
Tatoeba queries the non-English side with English, BUCC mines the de-duplicated full corpora (the scorers
of ``trainers/task_types/retrieval.py``, by the task's metric). They have no English dev set, so they
report no ``en_dev`` (see docs/selection.md).
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np
import torch

from trainers import _phase, keys, retrieval
from trainers.config import ConfigError, TransferConfig
from trainers.data import (
    DataError,
    available_languages,
    collate,
    featurize_texts,
    resolve_train_task,
)
from trainers.data.bucc import bucc_dir_languages, bucc_directory, reads_bucc_dir
from trainers.evaluation import evaluate
from trainers.metrics import aggregate_languages, primary, xtreme_task_score
from trainers.prepare import eval_set, label_names_for, load_tokenizer
from trainers.progress import PhaseProgress
from trainers.runtime import Runtime
from trainers.task_types.retrieval import TYPE as RETRIEVAL
from trainers.tasks import TaskSpec, get_task


def languages(config: TransferConfig, task: TaskSpec) -> list[str]:
    """The languages to evaluate: those asked for, or every language the data source has."""
    if reads_bucc_dir(task, config.data):
        have = bucc_dir_languages(str(bucc_directory(config.data)))
    elif config.data.source == "xtreme":
        from trainers.data.xtreme_layout import evaluated_languages

        # The languages with a file of the scored split (an XTREME download's test files cover more).
        root = Path(str(config.data.data_dir)).expanduser()
        return evaluated_languages(task, root, config.evaluation.split, config.evaluation.languages)
    else:
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
    out = {prefix + keys.AVG_SUFFIX: mean(scores)} if scores else {}
    if foreign:
        out[prefix + keys.AVG_NON_EN_SUFFIX] = mean(foreign)
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
    metrics.update(xtreme_task_metrics(metrics, task, langs))
    # Which split the zero-shot scores are of (an XTREME download labels only its dev sets).
    metrics[keys.ZERO_SHOT_SPLIT.format(split=config.evaluation.split)] = 1.0
    metrics[keys.TIME_PHASE_S.format(phase="eval")] = timer.seconds()
    return metrics


def xtreme_task_metrics(metrics: dict[str, float], task: TaskSpec, langs: list[str]) -> dict[str, float]:
    """``zero_shot_xtreme``: XTREME's score of the task over the evaluated languages (QA: (EM + F1) / 2)."""
    per_language = {
        lang: {
            key.rsplit("/", 1)[1]: value
            for key, value in metrics.items()
            if key.startswith(keys.ZERO_SHOT_LANG.format(lang=lang) + "/")
        }
        for lang in langs
    }
    if not per_language or not all(per_language.values()):
        return {}  # a rank that did not score (retrieval targets score on rank 0 only)
    return {keys.ZERO_SHOT_XTREME: xtreme_task_score(task.metric, aggregate_languages(per_language))}


def _trained(
    runtime: Runtime, config: TransferConfig, task: TaskSpec, engine: Any, encoder_dir: str, langs: list[str]
) -> dict[str, float]:
    tokenizer = load_tokenizer(encoder_dir)
    labels = label_names_for(resolve_train_task(task), config)
    metrics: dict[str, float] = {}
    splits = {keys.ZERO_SHOT: config.evaluation.split, keys.TARGET_DEV: "dev"}
    if config.evaluation.split == "dev":
        del splits[keys.TARGET_DEV]  # the same sets: scored once, copied below
    for prefix, split in splits.items():
        shown = PhaseProgress(
            f"eval {split}", len(langs), unit="language", calibrate_after=1, world_size=runtime.world_size
        )
        for done, lang in enumerate(langs, 1):
            try:
                data = eval_set(config, task, split, lang, tokenizer, labels)
            except DataError:
                if prefix == keys.ZERO_SHOT:
                    raise
                # No dev split in this language (XQuAD; UD Kazakh, Thai): oracle selection skips it.
                metrics[keys.TARGET_DEV_MISSING.format(lang=lang)] = 1.0
                if shown.advance(done):
                    runtime.report(shown.metrics())
                continue
            # Each rank predicts its share of the batches; rank 0 gathers them, scores, and writes the
            # files in XTREME's formats for `xstilts score`; every rank gets rank 0's scores.
            write = prefix == keys.ZERO_SHOT and config.evaluation.write_predictions and runtime.rank == 0
            scores = evaluate(
                engine,
                task.name,
                data,
                labels,
                config.evaluation.batch_size,
                tokenizer.pad_token_id,
                runtime.device,
                files=Path(config.output_dir) if write else None,
                rank=runtime.rank,
                world_size=runtime.world_size,
            )
            metrics[f"{prefix}/{lang}"] = primary(task.metric, scores)
            metrics.update({f"{prefix}/{lang}/{k}": v for k, v in scores.items()})
            # Every rank took part in the same languages: the report's collective is safe.
            if shown.advance(done):
                runtime.report(shown.metrics())
        shown.close()
        metrics.update(_averages(metrics, prefix, langs))
    if keys.TARGET_DEV not in splits:
        metrics.update(
            {
                keys.TARGET_DEV + key[len(keys.ZERO_SHOT) :]: v
                for key, v in metrics.items()
                if key.startswith(keys.ZERO_SHOT)
            }
        )
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


def retrieval_layer(config: TransferConfig, model_type: str, n_layers: int) -> int:
    """The hidden state to mean-pool: ``model.retrieval_layer``, or XTREME's for the encoder."""
    layer = config.model.retrieval_layer
    if layer is None:
        return retrieval.default_retrieval_layer(model_type, n_layers)
    if not 0 <= layer <= n_layers:
        raise ConfigError(f"model.retrieval_layer={layer} is out of range: the encoder has {n_layers} layers")
    return layer


def _retrieval(
    runtime: Runtime, config: TransferConfig, task: TaskSpec, encoder_dir: str, langs: list[str]
) -> dict[str, float]:
    from trainers.encoders import load_encoder

    metrics: dict[str, float] = {}
    if runtime.rank == 0:  # no engine, no collectives: one rank is enough
        model = load_encoder(encoder_dir).to(runtime.device).eval()
        tokenizer = load_tokenizer(encoder_dir)
        # hidden_states[0] is the embedding output, so layer k is index k.
        layer = retrieval_layer(config, str(model.config.model_type), int(model.config.num_hidden_layers))
        metrics["retrieval_layer"] = layer

        def embed(texts: list[str]) -> np.ndarray:
            return _embed(model, tokenizer, texts, layer, config, runtime.device)

        # How the embeddings are scored is the task's metric's entry in the retrieval type's SCORERS.
        metrics.update(RETRIEVAL.scorer(task)(config, task, langs, embed))
        metrics.update(_averages(metrics, keys.ZERO_SHOT, langs))
        # No en_dev: a retrieval target has no English dev set, and its target-language dev score is
        # an oracle (target_dev), not a stand-in for one.
        metrics.update(_averages(metrics, keys.TARGET_DEV, langs))
    torch.distributed.barrier()
    return metrics
