"""Phase 2: fine-tune on the English training set of the target task.

Starts from the intermediate phase's encoder (or the base model) with a fresh head. Reports
``target_step`` (the search scheduler's time axis) and ``en_dev`` (the English dev score) as it goes,
so trials with and without an intermediate phase are compared on the same axis.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any, SupportsFloat

from trainers import _loop, _phase, keys
from trainers.config import TargetConfig, TransferConfig
from trainers.data import DataError, collate, resolve_english_dev, resolve_train_task
from trainers.evaluation import evaluate
from trainers.metrics import primary
from trainers.modeling import HeadSpec
from trainers.peak_memory import PhasePeakMemory
from trainers.prepare import EvalSet, eval_set, label_names_for, load_tokenizer, train_features
from trainers.progress import PhaseProgress
from trainers.runtime import Runtime
from trainers.tasks import TaskSpec, get_task

PHASE = "target"


def _target_dev_sets(
    config: TransferConfig, target: TaskSpec, tokenizer: Any, labels: tuple[str, ...]
) -> list[EvalSet]:
    """Every evaluated language's dev split that exists (for ``target.eval_target_dev``)."""
    from trainers.zero_shot_eval import languages

    sets = []
    for lang in languages(config, target):
        try:
            sets.append(eval_set(config, target, "dev", lang, tokenizer, labels))
        except DataError:
            continue  # no dev split in this language: the curve averages the others
    return sets


def run(
    runtime: Runtime, config: TransferConfig, encoder_dir: str, resume_from: Path | None
) -> tuple[Any, dict[str, float]]:
    """Fine-tune; return the DeepSpeed engine (for zero-shot evaluation) and the phase's metrics."""
    phase: TargetConfig = config.target
    timer = _phase.Timer()
    peak_memory = PhasePeakMemory(runtime.device)  # the whole phase, loading included
    # Setup: English train data (possibly another registry task's, e.g. SQuAD for XQuAD) and English dev.
    target = get_task(phase.task)
    train_task = resolve_train_task(target)
    tokenizer = load_tokenizer(encoder_dir)
    labels = label_names_for(train_task, config)
    features = train_features(config, train_task, tokenizer, labels)
    dev_task, dev_split = resolve_english_dev(target)
    dev = eval_set(config, dev_task, dev_split, "en", tokenizer, labels)
    total_steps = _loop.steps_for(
        len(features), phase.batch_size, runtime.world_size, phase.epochs, phase.max_steps
    )
    # Model and engine: the head is named after the target task, whatever task supplied the train data.
    head = HeadSpec(target.name, train_task.type, len(labels))
    model = _phase.build_model(
        encoder_dir,
        [head],
        phase.freeze_depth,
        config.seed,
        config.model.gradient_checkpointing,
        _phase.engine_config(runtime, phase, config, total_steps),
    )
    engine, counts = _phase.start_engine(runtime, model, phase, config, total_steps)
    start = _phase.maybe_resume(engine, resume_from, PHASE)
    stream = _loop.batch_indices(
        len(features), phase.batch_size, config.seed, runtime.rank, runtime.world_size
    )
    for _ in range(start):  # replay the data order up to the resumed step
        next(stream)
    pad_id = tokenizer.pad_token_id
    eval_batch = config.evaluation.batch_size

    dev_sets = _target_dev_sets(config, target, tokenizer, labels) if phase.eval_target_dev else []

    # Every rank predicts its share of each dev set and gets rank 0's scores (evaluation.evaluate).
    def scored(data: Any) -> dict[str, float]:
        return evaluate(
            engine,
            target.name,
            data,
            labels,
            eval_batch,
            pad_id,
            runtime.device,
            rank=runtime.rank,
            world_size=runtime.world_size,
        )

    def english_dev() -> dict[str, float]:
        scores = scored(dev)
        out = {
            keys.EN_DEV: primary(dev_task.metric, scores),
            **{keys.EN_DEV_SCORE.format(name=k): v for k, v in scores.items()},
        }
        for data in dev_sets:
            out[keys.TARGET_DEV_LANG.format(lang=data.language)] = primary(target.metric, scored(data))
        foreign = [out[keys.TARGET_DEV_LANG.format(lang=d.language)] for d in dev_sets if d.language != "en"]
        if foreign:
            out[keys.TARGET_DEV_AVG_NON_EN] = mean(foreign)
        return out

    # Train, evaluating and checkpointing on their cadences.
    loss: SupportsFloat = float("nan")
    stepping = _phase.Timer.stopped()  # optimizer steps alone: the cost a freeze depth or encoder changes
    shown = PhaseProgress(
        PHASE,
        total_steps,
        start=start,
        examples_per_unit=phase.batch_size * runtime.world_size,
        world_size=runtime.world_size,
    )
    for step in range(start + 1, total_steps + 1):
        rows = [features[i] for i in next(stream)]
        batch = _loop.to_device(collate(rows, pad_id), runtime.device)
        with stepping:
            loss = _loop.train_step(engine, target.name, batch)
        report_due = shown.advance(step, loss)
        evaluating = _phase.due(step, phase.eval_every, total_steps)
        checkpointing = _phase.due(step, phase.checkpoint_every, total_steps)
        progress: dict[str, Any] = {}
        if evaluating or checkpointing:  # what a result reports (reading the loss waits for the device)
            progress = {
                keys.TARGET_STEP: step,
                "target/loss": float(loss),
                "target/progress": step / total_steps,
            }
        if evaluating:
            progress.update(english_dev())
            shown.set_dev(progress[keys.EN_DEV])
        if checkpointing:
            _phase.checkpoint(runtime, engine, PHASE, step, config, {**progress, **shown.metrics()})
        elif keys.EN_DEV in progress:
            runtime.report({**progress, **shown.metrics()})
        elif report_due:
            runtime.report(shown.metrics())  # progress/* only: no target_step, so ASHA does not read it
    with stepping:  # the steps still queued on the device are part of their time
        _loop.wait_for_device(runtime.device)
    shown.close()
    metrics = {
        keys.TARGET_STEP: total_steps,
        "target/loss": float(loss),
        "target/progress": 1.0,
        "target/trainable_params": counts["trainable_params"],
        "total_params": counts["total_params"],
        "target/resumed_from_step": start,  # 0 unless it continued from a checkpoint of this phase
        **english_dev(),
    }
    metrics[keys.TIME_PHASE_S.format(phase=PHASE)] = timer.seconds()
    metrics.update(peak_memory.metrics(PHASE))
    metrics[keys.TIME_STEP_S.format(phase=PHASE)] = stepping.seconds() / max(1, total_steps - start)
    return engine, metrics
