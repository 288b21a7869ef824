"""Search spaces: shipped files, the define-by-run function, flat points to configs, every bad input."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from search.space import (
    ENCODER_LAYERS,
    INTERMEDIATE_TASK,
    TARGET_TASK,
    DefineByRun,
    IntParam,
    SearchSpace,
    SpaceError,
    encoder_layers,
    load_space,
)
from trainers.config import ConfigError, TransferConfig
from trainers.encoders import BUILTIN_ENCODERS, KNOWN_LAYER_COUNTS, layer_count
from trainers.memory import ENCODER_SHAPES
from trainers.tasks import get_task

optuna.logging.set_verbosity(optuna.logging.WARNING)


def minimal() -> dict[str, Any]:
    """A small valid space; each bad-input case breaks one thing in a copy of it."""
    return {
        "name": "t",
        "targets": ["pawsx"],
        "base": {"model": {"name_or_path": "tiny"}, "target": {"max_steps": 2}},
        "search": {
            INTERMEDIATE_TASK: {"type": "categorical", "choices": ["none", "mnli", ["mnli", "qqp"]]},
            "intermediate.learning_rate": {
                "type": "float",
                "low": 1e-4,
                "high": 1e-3,
                "log": True,
                "when": {INTERMEDIATE_TASK: {"not": "none"}},
            },
            "target.freeze_depth": {"type": "int", "low": 0, "high": "layers"},
            "target.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True},
        },
        "points_to_evaluate": [{INTERMEDIATE_TASK: "none", "target.learning_rate": 5e-4}],
        "tuner": {"num_samples": 2},
    }


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ask(function: DefineByRun, sampler: optuna.samplers.BaseSampler, n: int) -> list[dict[str, Any]]:
    """Run ``n`` ask/tell rounds of an in-memory study; returns each trial's params."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    seen = []
    for _ in range(n):
        trial = study.ask()
        assert function(trial) == {TARGET_TASK: function.target}
        study.tell(trial, trial.params.get("target.learning_rate", 0.0) * 1000)
        seen.append(dict(trial.params))
    return seen


# -- shipped spaces (each loads and builds its points: tests/test_shipped_yaml.py) -------------------


def test_demo_is_offline_tiny_and_small() -> None:
    space = load_space("demo")  # a bare name is looked up in spaces/
    assert space.targets == ("udpos", "panx")
    assert space.base["model"]["name_or_path"] == "tiny" and space.base["data"]["source"] == "miniature"
    assert space.param(INTERMEDIATE_TASK).choices == ("none", "ccg", "mnli", "squad_v1", "ccg+mnli")  # type: ignore[union-attr]
    assert space.param("target.freeze_depth") == IntParam("target.freeze_depth", 0, 2)
    assert space.param("intermediate.learning_rate").low == 3e-4  # type: ignore[union-attr]  # "3e-4" is a float
    assert space.tuner.num_samples <= 8 and space.tuner.scheduler.type == "asha"


def test_encoders_space_bounds_freeze_depth_by_the_smallest_encoder() -> None:
    space = load_space("encoders")
    assert space.encoders == (
        "bert-base-multilingual-cased",
        "xlm-roberta-base",
        "xlm-roberta-large",
        "google/mt5-base",
        "google/mt5-large",
    )
    assert space.layers == 12 and space.param("target.freeze_depth").high == 12  # type: ignore[union-attr]
    assert load_space("freeze").param("target.freeze_depth").high == 24  # type: ignore[union-attr]


def test_retrieval_targets_have_no_target_phase_params() -> None:
    space = load_space("xtreme")
    for target in ("bucc", "tatoeba"):
        assert get_task(target).is_retrieval
        assert all(not key.startswith("target.") for point in space.points_for(target) for key in point)
        for params in ask(DefineByRun(space, target), optuna.samplers.RandomSampler(seed=0), 10):
            assert not any(key.startswith("target.") for key in params)
            space.to_transfer_config(params, target)
    assert (
        "target.learning_rate" in ask(DefineByRun(space, "xnli"), optuna.samplers.RandomSampler(seed=0), 1)[0]
    )


# -- the define-by-run function ---------------------------------------------------------------------


def test_define_by_run_pickles_and_is_deterministic() -> None:
    function = DefineByRun(load_space("demo"), "panx")
    clone = pickle.loads(pickle.dumps(function))
    assert clone == function
    first = ask(function, optuna.samplers.TPESampler(seed=3, n_startup_trials=3), 8)
    second = ask(clone, optuna.samplers.TPESampler(seed=3, n_startup_trials=3), 8)
    assert first == second


def test_define_by_run_defaults_to_the_first_target_and_rejects_others() -> None:
    space = load_space("demo")
    assert DefineByRun(space).target == "udpos"
    with pytest.raises(SpaceError, match="xnli"):
        DefineByRun(space, "xnli")


def test_conditional_params_follow_intermediate_task() -> None:
    seen = ask(DefineByRun(load_space("demo"), "udpos"), optuna.samplers.RandomSampler(seed=1), 40)
    conditional = {"intermediate.learning_rate", "intermediate.max_steps"}
    for params in seen:
        if params[INTERMEDIATE_TASK] == "none":
            assert not conditional & params.keys()
        else:
            assert conditional <= params.keys()
    assert {p[INTERMEDIATE_TASK] == "none" for p in seen} == {True, False}


def test_mixture_is_a_string_choice_and_maps_to_tasks(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, minimal()))
    assert space.param(INTERMEDIATE_TASK).choices == ("none", "mnli", "mnli+qqp")  # type: ignore[union-attr]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({INTERMEDIATE_TASK: "mnli+qqp"})
    trial = study.ask()
    constants = DefineByRun(space)(trial)
    config = space.to_transfer_config({**trial.params, **(constants or {})}, "pawsx")
    assert config.intermediate is not None and config.intermediate.tasks == ["mnli", "qqp"]
    assert config.target.max_steps == 2  # inherited from base
    none = space.to_transfer_config({INTERMEDIATE_TASK: "none", "target.learning_rate": 5e-4}, "pawsx")
    assert none.intermediate is None and none.target.learning_rate == 5e-4


def test_to_transfer_config_rejects_foreign_keys(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, minimal()))
    with pytest.raises(SpaceError, match="seed"):
        space.to_transfer_config({"seed": 3}, "pawsx")
    with pytest.raises(SpaceError, match=TARGET_TASK):
        space.to_transfer_config({TARGET_TASK: "udpos"}, "pawsx")


@pytest.mark.parametrize(
    ("encoder", "layers"),
    [
        ("tiny", 2),
        ("minilm", 6),
        ("xlm-roberta-base", 12),
        ("xlm-roberta-large", 24),
        ("FacebookAI/xlm-roberta-large", 24),
        ("bert-base-multilingual-cased", 12),
        ("google/mt5-base", 12),
        ("google/mt5-small", 8),
        ("facebook/xlm-roberta-xl", 36),
        ("me5-small", 12),
    ],
)
def test_layers_bound_resolves_per_encoder(tmp_path: Path, encoder: str, layers: int) -> None:
    data = minimal()
    data["base"]["model"]["name_or_path"] = encoder
    space = load_space(write(tmp_path, data))
    assert space.layers == layers and space.param("target.freeze_depth").high == layers  # type: ignore[union-attr]


def test_spaces_and_configs_read_one_layer_table() -> None:
    """trainers/encoders.py holds the only layer-count table; the space, preflight and memory plan agree."""
    assert ENCODER_LAYERS is KNOWN_LAYER_COUNTS
    for name, encoder in BUILTIN_ENCODERS.items():
        assert encoder_layers(name) == layer_count(name) == encoder.num_layers
    for name, shape in ENCODER_SHAPES.items():
        assert layer_count(name) == encoder_layers(name) == shape.layers, name
    assert layer_count("FacebookAI/xlm-roberta-large") == encoder_layers("xlm-roberta-large") == 24
    assert encoder_layers("my/encoder") is None and encoder_layers("my/encoder", {"my/encoder": 4}) == 4


def test_num_layers_names_unknown_encoders(tmp_path: Path) -> None:
    data = minimal()
    data["base"]["model"]["name_or_path"] = "my/encoder"
    with pytest.raises(SpaceError, match=r"search\.target\.freeze_depth\.high.*num_layers"):
        load_space(write(tmp_path, data))
    data["num_layers"] = {"my/encoder": 4}
    assert load_space(write(tmp_path, data)).param("target.freeze_depth").high == 4  # type: ignore[union-attr]


def test_optuna_search_accepts_the_define_by_run_function() -> None:
    optuna_search = pytest.importorskip("ray.tune.search.optuna")
    space: SearchSpace = load_space("demo")
    searcher = optuna_search.OptunaSearch(
        space=DefineByRun(space, "udpos"),
        metric=space.tuner.metric,
        mode=space.tuner.mode,
        points_to_evaluate=space.points_for("udpos"),
        sampler=optuna.samplers.TPESampler(seed=space.tuner.sampler_seed),
    )
    # suggest() needs no running Ray: the first trial is the enqueued baseline plus the constant target.
    assert searcher.suggest("trial_0") == {**space.points_for("udpos")[0], TARGET_TASK: "udpos"}


# -- bad inputs ---------------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Any:
    """A mutation setting ``data[a][b]...`` (path split on '/', since keys contain dots)."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, leaf = path.split("/")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value

    return mutate


def _drop(path: str) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        *parents, leaf = path.split("/")
        node = data
        for part in parents:
            node = node[part]
        del node[leaf]

    return mutate


LR = "search/target.learning_rate"
BAD = [
    ("unknown top key", _set("nmae", "x"), "nmae"),
    ("unknown param key", _set(f"{LR}/lgo", True), "search.target.learning_rate.lgo"),
    ("unknown tuner key", _set("tuner/samples", 3), "tuner.samples"),
    (
        "unknown scheduler key",
        _set("tuner/scheduler", {"type": "fifo", "grace_period": 1}),
        "tuner.scheduler.grace",
    ),
    ("empty choices", _set(f"search/{INTERMEDIATE_TASK}/choices", []), "search.intermediate_task.choices"),
    ("inverted bounds", _set(f"{LR}/low", 1e-2), "search.target.learning_rate"),
    ("equal bounds", _set("search/target.freeze_depth/low", 2), "search.target.freeze_depth"),
    ("log low <= 0", _set(f"{LR}/low", 0.0), "search.target.learning_rate.low"),
    ("unknown type", _set(f"{LR}/type", "uniform"), "search.target.learning_rate.type"),
    ("unknown target", _set("targets", ["pawsx", "xnil"]), "targets[1]"),
    ("intermediate task as target", _set("targets", ["mnli"]), "targets[0]: mnli is an intermediate task"),
    (
        "unknown intermediate choice",
        _set(f"search/{INTERMEDIATE_TASK}/choices", ["none", "mlni"]),
        "choices[1]",
    ),
    ("mixture repeats", _set(f"search/{INTERMEDIATE_TASK}/choices", [["mnli", "mnli"]]), "choices[0]"),
    ("retrieval target with target params", _set("targets", ["pawsx", "bucc"]), "search.target.freeze_depth"),
    ("freeze above layers", _set("search/target.freeze_depth/high", 3), "search.target.freeze_depth.high"),
    ("step not dividing", _set("search/target.freeze_depth/step", 3), "search.target.freeze_depth.step"),
    (
        "when on unknown param",
        _set("search/intermediate.learning_rate/when", {"intermediate_tsk": {"not": "none"}}),
        "search.intermediate.learning_rate.when.intermediate_tsk",
    ),
    (
        "when on a later param",
        _set("search/target.freeze_depth/when", {"target.learning_rate": 1e-3}),
        "search.target.freeze_depth.when.target.learning_rate",
    ),
    (
        "when value impossible",
        _set("search/intermediate.learning_rate/when", {INTERMEDIATE_TASK: {"not": "None"}}),
        "search.intermediate.learning_rate.when.intermediate_task",
    ),
    (
        "intermediate param not conditional",
        _drop("search/intermediate.learning_rate/when"),
        "search.intermediate",
    ),
    (
        "unsearchable key",
        _set("search/model.hidden", {"type": "int", "low": 1, "high": 2}),
        "search.model.hidden",
    ),
    (
        "searched target.task",
        _set("search/target.task", {"type": "categorical", "choices": ["x"]}),
        "target.task",
    ),
    ("base sets target.task", _set("base/target/task", "xnli"), "base.target.task"),
    ("base invalid value", _set("base/model/max_seq_length", 8), "base: model.max_seq_length"),
    ("base unknown key", _set("base/model/hidden", 8), "base: unknown key model.hidden"),
    (
        "wrong type for field",
        _set("search/target.batch_size", {"type": "categorical", "choices": [16.5]}),
        "search.target.batch_size",
    ),
    (
        "point outside range",
        _set("points_to_evaluate", [{"target.learning_rate": 1.0}]),
        "points_to_evaluate[0]",
    ),
    ("point unknown param", _set("points_to_evaluate", [{"seed": 1}]), "points_to_evaluate[0].seed"),
    (
        "point sets an inactive param",
        _set("points_to_evaluate", [{INTERMEDIATE_TASK: "none", "intermediate.learning_rate": 5e-4}]),
        "points_to_evaluate[0].intermediate.learning_rate",
    ),
    ("bad mode", _set("tuner/mode", "maximize"), "tuner.mode"),
    ("bad num_samples", _set("tuner/num_samples", 0), "tuner.num_samples"),
    ("bad refine", _set("tuner/refine", "greedy"), "tuner.refine"),
]


@pytest.mark.parametrize(("mutate", "key"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_space_names_file_and_key(tmp_path: Path, mutate: Any, key: str) -> None:
    data = copy.deepcopy(minimal())
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(SpaceError) as caught:
        load_space(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and key in message and "\n" not in message


def test_spaces_and_configs_word_bad_values_alike(tmp_path: Path) -> None:
    """One typed reader (trainers/_fromdict.py) parses both: the same problem reads the same in either file."""
    data = minimal()
    data["tuner"] = {"num_samples": "x"}
    with pytest.raises(SpaceError, match=r"tuner\.num_samples: must be an integer, got 'x'$"):
        load_space(write(tmp_path, data))
    with pytest.raises(ConfigError, match=r"^seed must be an integer, got 'x'$"):
        TransferConfig.from_dict({"seed": "x"})
    data["tuner"] = {"samples": 2}
    with pytest.raises(
        SpaceError, match=r": unknown key tuner\.samples; expected one of max_concurrent_trials, "
    ):
        load_space(write(tmp_path, data))
    with pytest.raises(ConfigError, match=r"^unknown key target\.lr; expected one of batch_size, "):
        TransferConfig.from_dict({"target": {"lr": 1e-3}})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("targets: [pawsx\n", "not valid YAML"),
        ("targets: [pawsx]\ntargets: [udpos]\n", "duplicate key 'targets'"),
        ("- a list\n", "the top level must be a mapping"),
    ],
)
def test_unreadable_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=problem) as caught:
        load_space(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="not found"):
        load_space(tmp_path / "nope.yaml")


def test_shipped_spaces_load_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no spaces/ here: the shipped ones are found (the CLI default too)
    assert load_space("spaces/demo.yaml").name == "demo"
    assert load_space("demo").name == "demo"
    with pytest.raises(SpaceError, match="not found"):
        load_space("spaces/nope.yaml")
    # A spaces/ directory of one's own wins over the shipped one.
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "demo.yaml").write_text("name: mine\n")
    with pytest.raises(SpaceError, match=r"spaces/demo.yaml"):  # loads the local file (it is incomplete)
        load_space("spaces/demo.yaml")


def test_relative_data_paths_in_base_read_from_the_directory_the_search_starts_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = minimal()
    data["base"]["data"] = {"source": "xtreme", "data_dir": "../download", "cache_dir": "~/.cache/x"}
    path = write(tmp_path, data)
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path / "runs")
    space = load_space(path)
    # Tune starts a trial in its own directory: the trial gets the path as the driver's directory reads it.
    config = space.to_transfer_config({INTERMEDIATE_TASK: "none"}, "pawsx")
    assert config.data.data_dir == str(tmp_path / "download")
    assert config.data.cache_dir == "~/.cache/x"  # the home directory is each node's own: left as written


def test_a_base_target_phase_applies_to_trained_targets_only(tmp_path: Path) -> None:
    data = minimal()
    data["targets"] = ["pawsx", "tatoeba"]
    data["base"]["target"]["freeze_depth"] = 1
    for param in ("target.freeze_depth", "target.learning_rate"):
        del data["search"][param]
    data["points_to_evaluate"] = [{INTERMEDIATE_TASK: "none"}]
    space = load_space(write(tmp_path, data))
    point = {INTERMEDIATE_TASK: "mnli", "intermediate.learning_rate": 5e-4}
    assert space.to_transfer_config(point, "pawsx").target.freeze_depth == 1
    assert space.to_transfer_config(point, "tatoeba").target.freeze_depth == 0  # no target phase to freeze


def test_a_base_dev_split_applies_to_targets_that_have_one(tmp_path: Path) -> None:
    data = minimal()
    data["targets"] = ["pawsx", "tatoeba", "xquad"]
    data["base"]["evaluation"] = {"split": "dev"}
    del data["search"]["target.freeze_depth"], data["search"]["target.learning_rate"]
    data["points_to_evaluate"] = [{INTERMEDIATE_TASK: "none"}]
    space = load_space(write(tmp_path, data))
    point = {INTERMEDIATE_TASK: "none"}
    assert space.to_transfer_config(point, "pawsx").evaluation.split == "dev"
    # XTREME strips the labels of test sets that have a dev set; Tatoeba's and XQuAD's are their only split.
    assert space.to_transfer_config(point, "tatoeba").evaluation.split == "test"
    assert space.to_transfer_config(point, "xquad").evaluation.split == "test"
