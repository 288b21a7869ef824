"""The dry run's counts and cost model (search/costs/) and ``xstilts search --dry-run``.

Expected values are worked out by hand from the rules in search/costs.py's docstring, not read back from
the code's output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from search.costs import CostAssumptions, asha_expected_steps, estimate, phase_cost
from search.space import SchedulerSettings, SearchSpace, load_space, space_from_dict
from trainers.config import TransferConfig
from trainers.tasks import TASKS, get_task

REPO = Path(__file__).resolve().parent.parent


def small_space(
    continuous_lr: bool = False, points: list[dict[str, Any]] | None = None, num_samples: int = 10
) -> SearchSpace:
    """Two targets; intermediate_task none|mnli|qqp and max_steps 100|200; optionally a continuous lr."""
    when = {"intermediate_task": {"not": "none"}}
    search: dict[str, Any] = {
        "intermediate_task": {"type": "categorical", "choices": ["none", "mnli", "qqp"]},
        "intermediate.max_steps": {"type": "int", "low": 100, "high": 200, "step": 100, "when": when},
    }
    if continuous_lr:
        search["intermediate.learning_rate"] = {
            "type": "float",
            "low": 1e-4,
            "high": 1e-3,
            "log": True,
            "when": when,
        }
    search["target.learning_rate"] = {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}
    return space_from_dict(
        {
            "name": "small",
            "targets": ["udpos", "panx"],
            "base": {
                "model": {"name_or_path": "tiny", "max_seq_length": 64, "doc_stride": 32},
                "data": {"source": "miniature", "max_train_examples": 256},
                "intermediate": {"batch_size": 16},
                "target": {"batch_size": 16, "max_steps": 40},
            },
            "search": search,
            "points_to_evaluate": points or [],
            "tuner": {"num_samples": num_samples},
        }
    )


# -- counting intermediate configurations ------------------------------------------------------------


def test_categorical_key_parameters_allow_finitely_many_configurations_that_get_reused() -> None:
    est = estimate(small_space())
    assert est.key_params == ["intermediate_task", "intermediate.max_steps"]  # target.* never enters the key
    assert est.distinct_configs == 4  # {mnli, qqp} x {100, 200}
    # 20 random trials (10 per study, both studies share the cache); each draws a given configuration
    # with probability 2/3 (an intermediate task) x 1/2 (the task) x 1/2 (the steps) = 1/6.
    assert est.trials_with_intermediate == pytest.approx(20 * 2 / 3)
    assert est.trainings == pytest.approx(4 * (1 - (5 / 6) ** 20))
    assert est.trainings_bound == pytest.approx(4)


def test_a_continuous_key_parameter_makes_every_trial_train_its_own() -> None:
    est = estimate(small_space(continuous_lr=True))
    assert est.distinct_configs is None
    assert est.continuous_key_params == ["intermediate.learning_rate"]
    assert est.trainings == pytest.approx(20 * 2 / 3)
    assert est.trainings == pytest.approx(est.trials_with_intermediate)


def test_a_seeded_configuration_is_trained_once_for_every_study() -> None:
    point = {"intermediate_task": "mnli", "intermediate.max_steps": 100, "target.learning_rate": 1e-3}
    est = estimate(small_space(points=[point]))
    assert est.seeded == {"udpos": 1, "panx": 1}
    assert est.trials_with_intermediate == pytest.approx(2 + 18 * 2 / 3)
    # The seeded configuration once, the other three as 18 random draws find them.
    assert est.trainings == pytest.approx(1 + 3 * (1 - (5 / 6) ** 18))


def test_a_point_that_leaves_a_key_parameter_to_the_sampler_counts_as_a_random_trial() -> None:
    est = estimate(small_space(points=[{"intermediate_task": "mnli"}]))
    assert est.seeded == {"udpos": 0, "panx": 0}
    assert est.trainings == pytest.approx(4 * (1 - (5 / 6) ** 20))


def test_the_grid_trains_each_intermediate_task_once_for_all_targets() -> None:
    est = estimate(small_space())
    assert est.grid_tasks == ["mnli", "qqp"]
    assert est.grid_trainings == 2
    assert est.grid_target_runs == 2 * 3  # two targets, each after mnli, after qqp and without


# -- the cost arithmetic ------------------------------------------------------------------------------


def _config(**sections: Any) -> TransferConfig:
    data: dict[str, Any] = {
        "model": {"name_or_path": "tiny", "max_seq_length": 64, "doc_stride": 32},
        "data": {"source": "hub"},
        "target": {"task": "udpos", "batch_size": 16, "max_steps": 40},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return TransferConfig.from_dict(data)


def test_phase_flops_by_hand() -> None:
    # tiny: 2 layers, hidden 64, ffn 128. Forward per layer per token: 2 x (4 x 64^2 + 2 x 64 x 128)
    # + 4 x 64 (seq) x 64 = 81,920; trained: x 3 per layer = 491,520 per token. 40 steps x 16 sequences
    # x 64 tokens = 40,960 tokens -> 20,132,659,200 FLOPs.
    assumptions = CostAssumptions(gpu="test", peak_tflops=1.0, mfu=0.5)
    config = _config()
    cost = phase_cost(config, config.target, ["udpos"], assumptions)
    assert cost is not None
    assert (cost.steps, cost.sequences) == (40, 640)
    assert cost.flops == pytest.approx(20_132_659_200)
    assert cost.gpu_hours == pytest.approx(20_132_659_200 / 0.5e12 / 3600)
    # Freezing the bottom layer skips its backward: 81,920 x (3 + 1) per token.
    frozen = _config(target={"freeze_depth": 1})
    cost = phase_cost(frozen, frozen.target, ["udpos"], assumptions)
    assert cost is not None and cost.flops == pytest.approx(40_960 * 81_920 * 4)


def test_epoch_based_steps_read_the_registry_train_size() -> None:
    # udpos English train: 21,253 examples; 2 epochs at 8 x 4 workers: ceil(42,506 / 32) = 1,329 steps.
    config = _config(target={"max_steps": None, "epochs": 2.0, "batch_size": 8}, scaling={"num_workers": 4})
    cost = phase_cost(config, config.target, ["udpos"], CostAssumptions())
    assert cost is not None and cost.steps == 1_329 and cost.workers == 4
    capped = _config(
        target={"max_steps": None, "epochs": 2.0, "batch_size": 8},
        scaling={"num_workers": 4},
        data={"max_train_examples": 1000},
    )
    cost = phase_cost(capped, capped.target, ["udpos"], CostAssumptions())
    assert cost is not None and cost.steps == 63  # ceil(2,000 / 32)


def test_a_multiple_choice_example_is_one_sequence_per_choice() -> None:
    config = _config(intermediate={"tasks": ["hellaswag"], "batch_size": 8, "max_steps": 10})
    assert config.intermediate is not None
    cost = phase_cost(config, config.intermediate, ["hellaswag"], CostAssumptions())
    assert cost is not None and cost.sequences == 10 * 8 * 4


def test_asha_expected_steps_by_hand() -> None:
    asha = SchedulerSettings(type="asha", grace_period=10, reduction_factor=2, max_t=40)
    # Rungs at 10 and 20: everyone runs 10 steps, half the next 10, a quarter the last 20.
    assert asha_expected_steps(40, asha) == pytest.approx(10 + 10 / 2 + 20 / 4)
    assert asha_expected_steps(100, asha) == pytest.approx(20)  # stopped at max_t
    assert asha_expected_steps(15, asha) == pytest.approx(10 + 5 / 2)
    assert asha_expected_steps(8, asha) == pytest.approx(8)
    assert asha_expected_steps(40, SchedulerSettings()) == 40  # FIFO runs everything


def test_every_task_that_trains_has_a_train_size() -> None:
    for task in TASKS.values():
        if not task.is_retrieval and task.train_task is None:
            assert task.train_size is not None and task.train_size > 0, task.name
        if task.train_task is not None:
            assert TASKS[task.train_task].train_size, task.name


# -- the CLI -------------------------------------------------------------------------------------------

PROBE = (
    "import sys\n"
    "from search.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('LOADED', sorted(m for m in ('ray', 'torch', 'mlflow', 'optuna', 'deepspeed') if m in sys.modules))\n"
    "sys.exit(rc)\n"
)


def _xstilts(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env_path = str(REPO)
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )


@pytest.mark.parametrize("space_file", ["spaces/demo.yaml", "spaces/xtreme.yaml"])
def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path: Path, space_file: str) -> None:
    space = load_space(REPO / space_file)
    result = _xstilts(["search", "--space", space_file, "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "LOADED []" in out  # no Ray, torch, MLflow, Optuna or DeepSpeed
    assert list(tmp_path.iterdir()) == []  # nothing written
    studies = [t for t in space.targets if not get_task(t).is_retrieval]  # retrieval targets are evaluated
    assert f"studies: {len(studies)} " in out
    assert f"trials: {len(studies) * space.tuner.num_samples} " in out
    assert "| the paper's grid |" in out and "assumptions:" in out


def test_dry_run_of_the_xtreme_space_trains_each_intermediate_task_once(tmp_path: Path) -> None:
    """The shipped study: a finite intermediate set, one run per task serving every length, below the grid."""
    result = _xstilts(["search", "--space", "spaces/xtreme.yaml", "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "distinct intermediate configurations the space allows: 9" in result.stdout
    est = estimate(load_space(REPO / "spaces/xtreme.yaml"))
    assert est.grid_trainings == 9
    assert est.trainings == pytest.approx(9)  # every task drawn at least once over 9 x 24 trials
    assert est.gpu_hours is not None and est.grid_gpu_hours is not None
    assert est.gpu_hours < est.grid_gpu_hours


def test_retrieval_targets_are_counted_as_evaluations_not_trials(tmp_path: Path) -> None:
    """xtreme: bucc and tatoeba have no study; each is evaluated on the base and on every checkpoint used."""
    result = _xstilts(["search", "--space", "spaces/xtreme.yaml", "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    est = estimate(load_space(REPO / "spaces/xtreme.yaml"))
    assert est.studies == ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa"]
    assert est.retrieval_targets == ["bucc", "tatoeba"] and sorted(est.trials) == sorted(est.studies)
    # 9 tasks x 3 published lengths; the two seeded ones (mnli and squad_v2 at 6000 steps) surely used.
    assert est.checkpoints_bound == 27 and 2 < est.checkpoints_used < 27
    assert est.evaluations_per_retrieval_target == 1 + est.checkpoints_used
    each = f"{est.evaluations_per_retrieval_target:.1f}"
    assert "retrieval targets: bucc, tatoeba: no study, no trials;" in result.stdout
    assert f": {each} evaluations expected each (at most 28)" in result.stdout
    # A space whose trials draw nothing at random: the seeded ccg checkpoint and the base, exactly.
    data: dict[str, Any] = {
        "targets": ["udpos", "tatoeba"],
        "base": {"model": {"name_or_path": "tiny"}, "intermediate": {"learning_rate": 1.0e-3}},
        "search": {"intermediate_task": {"type": "categorical", "choices": ["none", "ccg"]}},
        "points_to_evaluate": [{"intermediate_task": "none"}, {"intermediate_task": "ccg"}],
        "tuner": {"num_samples": 2},
    }
    small = estimate(space_from_dict(data))
    assert (small.studies, small.retrieval_targets) == (["udpos"], ["tatoeba"])
    assert (small.checkpoints_used, small.evaluations_per_retrieval_target, small.trials) == (
        1,
        2,
        {"udpos": 2},
    )


def test_a_continuous_intermediate_parameter_costs_a_training_per_trial(tmp_path: Path) -> None:
    """The design before: a continuous intermediate learning rate and per-trial lengths, 48 trials a study."""
    data = yaml.safe_load((REPO / "spaces/xtreme.yaml").read_text())
    for key in ("learning_rate", "schedule_steps", "publish_steps"):
        del data["base"]["intermediate"][key]
    when = {"intermediate_task": {"not": "none"}}
    search = {"intermediate_task": data["search"].pop("intermediate_task")}
    search["intermediate.learning_rate"] = {
        "type": "float",
        "low": 5e-6,
        "high": 3e-5,
        "log": True,
        "when": when,
    }
    search["intermediate.max_steps"] = {"type": "int", "low": 2000, "high": 10000, "step": 4000, "when": when}
    del data["search"]["intermediate.max_steps"]
    data["search"] = {**search, **data["search"]}
    for point in data["points_to_evaluate"][1:]:
        point["intermediate.learning_rate"] = 1.0e-5
    data["tuner"]["num_samples"] = 48
    old = tmp_path / "xtreme-continuous.yaml"
    old.write_text(yaml.safe_dump(data, sort_keys=False))
    result = _xstilts(["search", "--space", str(old), "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "distinct intermediate configurations the space allows: unbounded" in result.stdout
    est = estimate(load_space(old))
    # 9 intermediate tasks: the grid trains each once; the search, one per trial that draws a task
    # apart from the two seeded configurations shared by every study.
    assert est.grid_trainings == 9
    random_trials = 7 * (48 - 3)  # the 7 trained targets' studies: bucc and tatoeba have none
    assert est.trainings == pytest.approx(2 + random_trials * 9 / 10)
    assert est.gpu_hours is not None and est.grid_gpu_hours is not None
    assert est.gpu_hours > est.grid_gpu_hours


def test_dry_run_with_a_bad_space_or_target_is_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "spaces/demo.yaml").read_text().replace("num_samples: 6", "num_sample: 6"))
    result = _xstilts(["search", "--space", str(bad), "--dry-run"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("xstilts: error:")
    assert "tuner.num_sample" in result.stderr
    result = _xstilts(["search", "--space", "spaces/demo.yaml", "--target", "xnli", "--dry-run"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("xstilts: error: --target xnli is not a target")


def test_a_search_whose_trial_cannot_fit_its_gpus_stops_before_anything_starts(tmp_path: Path) -> None:
    """The memory plan runs before the pre-flight, Ray and MLflow: one line naming what to change."""
    from search.tuner import SearchOptions, run_search
    from trainers.memory import MemoryPlanError

    data = yaml.safe_load((REPO / "spaces/xtreme.yaml").read_text())
    data["search"]["target.batch_size"]["choices"] = [4096]
    for point in data["points_to_evaluate"]:
        point["target.batch_size"] = 4096
    space = tmp_path / "huge.yaml"
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    options = SearchOptions(
        space=str(space), storage=str(tmp_path / "runs"), tracking_uri=f"sqlite:///{tmp_path}/m.db"
    )
    with pytest.raises(MemoryPlanError, match="batch_size"):
        run_search(options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.yaml"]  # nothing written
