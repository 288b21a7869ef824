"""What ``xstilts search --dry-run`` prints, and the memory check a real search runs first."""

from __future__ import annotations

from search.costs._estimate import Estimate, estimate, sum_known
from search.costs._phase import RULES, PhaseCost
from search.space import (
    CategoricalParam,
    IntParam,
    Param,
    SearchSpace,
    SpaceError,
)
from trainers.memory import GIB, check_fits


def _hours(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def _describe(param: Param) -> str:
    if isinstance(param, CategoricalParam):
        return f"{param.name} ({len(param.choices)} choices)"
    if isinstance(param, IntParam):
        count = (param.high - param.low) // param.step + 1
        return f"{param.name} (int {param.low}..{param.high} step {param.step}: {count} values)"
    return f"{param.name} (float{' log' if param.log else ''} {param.low:g}..{param.high:g}: continuous)"


def _phase_row(phase: str, name: str, cost: PhaseCost | None) -> str:
    if cost is None:
        return f"| {phase} | {name} | n/a | n/a | n/a | n/a |"
    return (
        f"| {phase} | {name} | {cost.steps:,.0f} | {cost.sequences:,.0f} | {_hours(cost.gpu_hours)} "
        f"| {_hours(cost.wall_hours)} |"
    )


def format_plan(space: SearchSpace, est: Estimate, concurrent: int | None) -> str:
    """The dry run's report: the plan, the intermediate-training counts and the compute, with assumptions.

    ``concurrent``: trials at once if known before the cluster is (an override or the space's cap).
    """
    from search.resources import trial_resources

    need = trial_resources(space)
    workers = space.base_config(est.targets[0]).scaling.num_workers
    gpus_per_trial = need["GPU"]
    a = est.assumptions
    total_trials = sum(est.trials.values())
    trained = est.studies
    lines = [
        f"xstilts search --dry-run {space.source}: nothing started (no Ray, no MLflow, nothing written)",
        f"space {space.name}: {space.description}",
        f"studies: {len(trained)} ({', '.join(space.study_name(t) for t in trained)})",
        f"trials: {total_trials} ({space.tuner.num_samples} per study, of which seeded points: "
        + ", ".join(f"{t} {n}" for t, n in est.seeded.items())
        + ")",
    ]
    if est.retrieval_targets:
        each = est.evaluations_per_retrieval_target
        most = "unbounded" if est.checkpoints_bound is None else f"{1 + est.checkpoints_bound}"
        lines.append(
            f"retrieval targets: {', '.join(est.retrieval_targets)}: no study, no trials; each evaluated once on "
            f"the base encoder and once on every intermediate checkpoint the trials use: {each:.1f} evaluations "
            f"expected each (at most {most}), {each * len(est.retrieval_targets):.1f} in all, training nothing"
        )
    lines.append("searched: " + "; ".join(_describe(p) for p in space.params))
    s = space.tuner.scheduler
    if s.type == "asha":
        lines.append(
            f"scheduler: ASHA on {s.time_attr}, grace {s.grace_period}, reduction {s.reduction_factor:g}, "
            f"max_t {s.max_t}"
        )
    else:
        lines.append("scheduler: FIFO (every trial runs to its end)")
    lines.append(
        f"a trial needs: {need['GPU']:g} GPUs and {need['CPU']:g} CPUs ({workers} Train workers), "
        "plus its driver's sliver of a CPU"
    )
    if concurrent is None:
        lines.append("concurrency: as many trials as the cluster's GPUs (or CPUs) hold, decided at start")
    else:
        busy = f"{concurrent * need['GPU']:g} GPUs" if need["GPU"] else f"{concurrent * need['CPU']:g} CPUs"
        lines.append(f"concurrency: {concurrent} trials at once ({busy} busy)")
    where = f"the {a.gpu}'s {a.gpu_memory_gib:g} GiB" if est.device == "cuda" else "each worker's CPU memory"
    lines.append(f"memory per worker at the peak of a step, largest trial of each phase (against {where}):")
    for phase, (plan, label) in sorted(est.memory.items()):
        lines.append(
            f"  {phase}: {plan.describe()} ({plan.precision}, ZeRO {plan.zero_stage}, "
            f"{plan.workers} workers{', activation checkpointing' if plan.checkpointing else ''}; {label})"
        )
    if len(est.memory_by_encoder) > 1:
        lines.append("  per encoder (its largest trial of each phase):")
        for encoder, phases in est.memory_by_encoder.items():
            for phase, (plan, _) in sorted(phases.items()):
                lines.append(
                    f"    {encoder} {phase}: {plan.describe()} (ZeRO {plan.zero_stage}"
                    f"{', activation checkpointing' if plan.checkpointing else ''})"
                )
    lines.append("intermediate checkpoints (the key of trainers/checkpoint_cache.py key_fields):")
    keyed = [f"{n} (continuous)" if n in est.continuous_key_params else n for n in est.key_params]
    lines.append(f"  searched parameters in the key: {', '.join(keyed) or 'none'}")
    if est.distinct_configs is None:
        lines.append(
            f"  distinct intermediate configurations the space allows: unbounded "
            f"({', '.join(est.continuous_key_params)} continuous: every trial that draws one trains its own)"
        )
    else:
        lines.append(f"  distinct intermediate configurations the space allows: {est.distinct_configs}")
    lines.append(
        f"  trials with an intermediate phase: {est.trials_with_intermediate:.1f} of {total_trials} (expected)"
    )
    bound = "unbounded" if est.checkpoints_bound is None else f"at most {est.checkpoints_bound}"
    lines.append(
        f"  distinct intermediate checkpoints the trials use (each length a run publishes is one): "
        f"{est.checkpoints_used:.1f} expected ({bound})"
    )
    lines.append(
        f"  intermediate trainings: {est.trainings:.1f} expected with the cache's reuse "
        f"(at most {est.trainings_bound:.1f}), {est.trials_with_intermediate:.1f} without reuse; "
        f"the grid: {est.grid_trainings}"
    )
    lines += [
        f"per-phase compute, one run each (GPU-h summed over its {workers} workers; hours: wall-clock on them):",
        "| phase | task | steps | sequences | GPU-h | hours |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for task, cost in est.grid_intermediate_costs.items():
        lines.append(_phase_row("intermediate", task, cost))
    for target, cost in est.grid_target_costs.items():
        lines.append(_phase_row("target (full)", target, cost))
        if cost is not None and target in est.asha_steps and est.asha_steps[target] < cost.steps:
            lines.append(_phase_row("target (ASHA, expected)", target, cost.scaled(est.asha_steps[target])))
    search_runs = sum(est.trials[t] for t in trained)
    lines += [
        f"estimated compute ({a.gpu}, {a.peak_tflops:g} TFLOP/s bf16 peak, MFU {a.mfu:g}):",
        "| | intermediate trainings | intermediate GPU-h | target runs | target GPU-h | total GPU-h |",
        "|---|---:|---:|---:|---:|---:|",
        f"| this search (cache reuse) | {est.trainings:.1f} | {_hours(est.intermediate_gpu_hours)} | "
        f"{search_runs} | {_hours(est.target_gpu_hours)} | {_hours(est.gpu_hours)} |",
        f"| this search, no reuse | {est.trials_with_intermediate:.1f} | "
        f"{_hours(est.intermediate_gpu_hours_no_reuse)} | {search_runs} | {_hours(est.target_gpu_hours)} | "
        f"{_hours(sum_known(est.intermediate_gpu_hours_no_reuse, est.target_gpu_hours))} |",
        f"| the paper's grid | {est.grid_trainings} | {_hours(est.grid_intermediate_gpu_hours)} | "
        f"{est.grid_target_runs} | {_hours(est.grid_target_gpu_hours)} | {_hours(est.grid_gpu_hours)} |",
    ]
    if est.gpu_hours is not None and est.grid_gpu_hours:
        lines.append(f"this search / the grid: {est.gpu_hours / est.grid_gpu_hours:.2f} x the GPU-hours")
        if concurrent is not None and gpus_per_trial:
            wall = est.gpu_hours / (concurrent * gpus_per_trial)
            lines.append(
                f"wall-clock at {concurrent} trials at once: about {_hours(wall)} hours (GPUs kept busy)"
            )
    shown = [f"{task} {'?' if n is None else f'{n:,}'}" for task, n in sorted(est.train_examples.items())]
    lines.append("assumptions:")
    lines.append(f"  - train examples per task (task registry, data caps applied): {', '.join(shown)}")
    lines += [f"  - {rule}" for rule in RULES]
    return "\n".join(lines)


def dry_run(space: SearchSpace, targets: list[str], max_concurrent_trials: int | None) -> str:
    """``xstilts search --dry-run``: the plan and estimate of ``space`` (only ``targets`` if given)."""
    if max_concurrent_trials is not None and max_concurrent_trials < 1:
        raise SpaceError(f"--max-concurrent-trials must be >= 1, got {max_concurrent_trials}")
    for target in targets:
        if target not in space.targets:
            raise SpaceError(
                f"--target {target} is not a target of {space.source} ({', '.join(space.targets)})"
            )
    concurrent = max_concurrent_trials or space.tuner.max_concurrent_trials
    est = estimate(space, targets or None)
    _check_memory(est)
    return format_plan(space, est, concurrent)


def check_memory(space: SearchSpace, targets: list[str]) -> None:
    """Before a real search: a trial whose phase cannot fit the GPUs is one ``MemoryPlanError`` line."""
    _check_memory(estimate(space, targets or None))


def _check_memory(est: Estimate) -> None:
    if est.device == "cuda":
        for phase, (plan, label) in est.memory.items():
            check_fits(plan, phase, est.assumptions.gpu_memory_gib * GIB, est.assumptions.gpu, where=label)
