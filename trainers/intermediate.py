"""Phase 1: train the pretrained encoder on an English intermediate task, or a multi-task mixture.

Each task of the mixture has its own head; every step draws one task (proportional, temperature
or uniform sampling) and one batch of it. The output is the encoder alone (heads dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, SupportsFloat

from trainers import _loop, _phase, keys
from trainers.config import IntermediateConfig, TransferConfig
from trainers.data import collate
from trainers.evaluation import evaluate
from trainers.modeling import HeadSpec
from trainers.peak_memory import PhasePeakMemory
from trainers.prepare import eval_set, label_names_for, load_tokenizer, train_features
from trainers.progress import PhaseProgress
from trainers.runtime import Runtime
from trainers.tasks import get_task

PHASE = "intermediate"


def run(
    runtime: Runtime,
    config: TransferConfig,
    base_encoder: str,
    output_dir: Path,
    resume_from: Path | None,
    publish_at: Callable[[int, Any, Any], None] | None = None,
) -> dict[str, float]:
    """Train on ``config.intermediate``, save the encoder to ``output_dir``, return the phase's metrics.

    ``publish_at(step, engine, tokenizer)`` is called (on every rank) after each of the phase's
    ``publish_steps`` below its last step, to publish the encoder as it is then.
    """
    phase: IntermediateConfig = config.intermediate  # type: ignore[assignment]
    timer = _phase.Timer()
    peak_memory = PhasePeakMemory(runtime.device)  # the whole phase, loading included
    # Setup: data for every task of the mixture.
    tokenizer = load_tokenizer(base_encoder)
    tasks = [get_task(name) for name in phase.tasks]
    labels = {task.name: label_names_for(task, config) for task in tasks}
    features = [train_features(config, task, tokenizer, labels[task.name]) for task in tasks]
    sizes = [len(f) for f in features]
    total_steps = _loop.steps_for(
        sum(sizes), phase.batch_size, runtime.world_size, phase.epochs, phase.max_steps
    )
    schedule = _loop.task_schedule(
        _loop.mixture_weights(sizes, phase.sampling, phase.temperature), total_steps, config.seed
    )
    # Model and engine.
    heads = [HeadSpec.of(task, labels[task.name]) for task in tasks]
    # The schedule's horizon, not this run's length, sets the learning rate of every step (publish_steps).
    horizon = max(total_steps, phase.schedule_steps or 0)
    model = _phase.build_model(
        base_encoder,
        heads,
        phase.freeze_depth,
        config.seed,
        config.model.gradient_checkpointing,
        _phase.engine_config(runtime, phase, config, horizon),
    )
    engine, counts = _phase.start_engine(runtime, model, phase, config, horizon)
    start = _phase.maybe_resume(engine, resume_from, PHASE)
    streams = [
        _loop.batch_indices(size, phase.batch_size, config.seed + i, runtime.rank, runtime.world_size)
        for i, size in enumerate(sizes)
    ]
    for index in schedule[:start]:  # replay the data order up to the resumed step
        next(streams[index])
    # Train.
    pad_id = tokenizer.pad_token_id
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
        index = schedule[step - 1]
        rows = [features[index][i] for i in next(streams[index])]
        batch = _loop.to_device(collate(rows, pad_id), runtime.device)
        with stepping:
            loss = _loop.train_step(engine, tasks[index].name, batch)
        if publish_at is not None and step in phase.publish_steps and step < total_steps:
            publish_at(step, engine, tokenizer)
        report_due = shown.advance(step, loss)
        if _phase.due(step, phase.checkpoint_every, total_steps):
            progress = {
                keys.INTERMEDIATE_STEP: step,
                keys.INTERMEDIATE_LOSS: float(loss),
                keys.TARGET_STEP: 0,
            }
            _phase.checkpoint(runtime, engine, PHASE, step, config, {**progress, **shown.metrics()})
        elif report_due:
            runtime.report(shown.metrics())  # progress/* only: the driver's table, not a phase result
    with stepping:  # the steps still queued on the device are part of their time
        _loop.wait_for_device(runtime.device)
    shown.close()
    # Evaluate on each task's English dev set.
    metrics: dict[str, float] = {
        keys.INTERMEDIATE_STEP: total_steps,
        keys.INTERMEDIATE_LOSS: float(loss),
        "intermediate/trainable_params": counts["trainable_params"],
        "total_params": counts["total_params"],
        "intermediate/resumed_from_step": start,  # 0 unless it continued from a checkpoint of this phase
    }
    for task in tasks:
        dev = eval_set(config, task, "dev", "en", tokenizer, labels[task.name])
        scores = evaluate(  # each rank predicts its share; every rank gets rank 0's scores
            engine,
            task.name,
            dev,
            labels[task.name],
            config.evaluation.batch_size,
            pad_id,
            runtime.device,
            rank=runtime.rank,
            world_size=runtime.world_size,
        )
        metrics.update(
            {keys.INTERMEDIATE_EN_DEV.format(task=task.name, name=k): v for k, v in scores.items()}
        )
    _phase.save_encoder(runtime, engine, tokenizer, output_dir, config)
    metrics[keys.TIME_PHASE_S.format(phase=PHASE)] = timer.seconds()
    metrics.update(peak_memory.metrics(PHASE))
    metrics[keys.TIME_STEP_S.format(phase=PHASE)] = stepping.seconds() / max(1, total_steps - start)
    return metrics
