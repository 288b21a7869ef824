"""Checks that run before any compute, so bad input fails in one line and writes nothing."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Any

from trainers.config import ConfigError, TransferConfig
from trainers.encoders import BUILTIN_ENCODERS, layer_count
from trainers.tasks import TaskSpec, get_task

HUB_TIMEOUT_S = 10.0
"""How long the hub may take to answer one question (a firewalled cluster drops packets: no quick refusal)."""
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
"""Any of these set true makes transformers and datasets read only their local caches."""
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""A local encoder directory needs one of these beside config.json (what ``AutoModel`` loads)."""


def check_freeze_depth(config: TransferConfig) -> None:
    """Freeze depths within the encoder's layer count (when it is known without a download)."""
    layers = layer_count(config.model.name_or_path)
    if layers is None:
        return
    phases = [("target", config.target.freeze_depth)]
    if config.intermediate is not None:
        phases.append(("intermediate", config.intermediate.freeze_depth))
    for where, depth in phases:
        if depth > layers:
            raise ConfigError(
                f"{where}.freeze_depth={depth} is out of range: {config.model.name_or_path} has {layers} layers (0..{layers})"
            )
    retrieval_layer = config.model.retrieval_layer
    if retrieval_layer is not None and retrieval_layer > layers:
        raise ConfigError(
            f"model.retrieval_layer={retrieval_layer} is out of range: {config.model.name_or_path} has "
            f"{layers} layers (0..{layers}, 0 is the embeddings)"
        )


def check_input_dirs(config: TransferConfig) -> None:
    """Every ``data.*_dir`` the run reads from exists, whether or not this target reads it (a typo fails now).

    Not inputs: ``cache_dir`` (written), and ``data_dir`` unless ``source`` is local or xtreme (the miniature
    is written there).
    """
    for field in dataclasses.fields(config.data):
        value = getattr(config.data, field.name)
        output = field.name == "cache_dir" or (
            field.name == "data_dir" and config.data.source not in ("local", "xtreme")
        )
        if not field.name.endswith("_dir") or output or not value:
            continue
        path = Path(value).expanduser()
        if not path.is_dir():
            problem = "is not a directory" if path.exists() else "does not exist"
            raise ConfigError(f"data.{field.name} {path} {problem}")


def hub_offline() -> bool:
    """Whether transformers/datasets are told to stay offline (their own reading of the variables)."""
    return any(os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"} for name in OFFLINE_VARIABLES)


def _hub_api() -> Any:
    from huggingface_hub import HfApi, constants

    # The endpoint is read now, not at import, so HF_ENDPOINT set by the caller counts.
    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)


def _hub_answer(kind: str, repo_id: str, revision: str | None = None) -> str | None:
    """None if the hub knows ``repo_id`` (at ``revision``, where given); else why not, as a phrase ("does not
    exist", "cannot be reached (...)")."""
    return _ask_hub(_hub_api().endpoint, kind, repo_id, revision)


@functools.cache
def _ask_hub(endpoint: str, kind: str, repo_id: str, revision: str | None = None) -> str | None:
    # Once per process and question: a search checks every target and seeded point against the same
    # encoder and datasets, and a firewalled hub costs HUB_TIMEOUT_S per question.
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    api = HfApi(endpoint=endpoint)
    try:
        if kind == "model":
            api.model_info(repo_id, timeout=HUB_TIMEOUT_S)
        else:
            api.dataset_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return None  # it exists; the worker's token decides (a missing one is the loader's one-line error)
    except RevisionNotFoundError:  # a pinned revision (a commit the hub no longer has)
        return f"no revision {revision} of {kind} {repo_id} on the hub {api.endpoint}"
    except RepositoryNotFoundError:
        return f"no {kind} {repo_id} on the hub {api.endpoint} (or it is private and no token is set)"
    except HFValidationError as error:
        return f"{repo_id!r} is not a hub {kind} id ({str(error).splitlines()[0]})"
    except Exception as error:  # every transport failure: DNS, refused, timeout, 5xx
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"the hub {api.endpoint} cannot be reached ({reason})"
    return None


def _model_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def check_model(config: TransferConfig) -> None:
    """The encoder loads: a built-in name, a directory with a config and weights, or a hub id it can fetch."""
    name = config.model.name_or_path
    if name in BUILTIN_ENCODERS:
        return
    where = f"model.name_or_path {name}"
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{where}: the directory has no config.json (not a Hugging Face model)")
        try:
            model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError, AttributeError):
            raise ConfigError(f"{where}: config.json is not a JSON object") from None
        if not model_type:
            raise ConfigError(f"{where}: config.json names no model_type, so AutoModel cannot load it")
        if not any((path / weights).is_file() for weights in WEIGHT_FILES):
            raise ConfigError(f"{where}: no weights ({', '.join(WEIGHT_FILES)}) in the directory")
        return
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ConfigError(f"{where}: no such directory, and not a hub model id") from None
    if hub_offline():
        if not _model_cached(name):
            raise ConfigError(
                f"{where}: not in the local Hugging Face cache, and the hub is off (HF_HUB_OFFLINE)"
            )
        return
    problem = _hub_answer("model", name)
    if problem is not None and not (problem.startswith("the hub") and _model_cached(name)):
        raise ConfigError(f"{where}: {problem}")


def _dataset_cached(repo_id: str) -> bool:
    """Whether datasets has ``repo_id`` locally: downloaded files in the hub cache or a prepared copy."""
    from huggingface_hub import constants

    hub_copy = Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}"
    prepared = Path(os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets")
    return hub_copy.is_dir() or (prepared / repo_id.replace("/", "___")).is_dir()


def _read_tasks(config: TransferConfig) -> list[TaskSpec]:
    """Every task whose data the run reads: intermediate tasks, the target's train and dev tasks, the target."""
    from trainers.data import resolve_english_dev, resolve_train_task

    target = get_task(config.target.task)
    tasks = [get_task(name) for name in config.intermediate.tasks] if config.intermediate else []
    if not target.is_retrieval:
        tasks += [resolve_train_task(target), resolve_english_dev(target)[0]]
    return [*tasks, target]


def check_miniature(config: TransferConfig) -> None:
    """With ``data.source=miniature``: every task the run reads has a miniature generator."""
    if config.data.source != "miniature":
        return
    from trainers.data.miniature import check_miniature_tasks

    check_miniature_tasks(task.name for task in _read_tasks(config))  # raises NoMiniatureError, one line


def check_hub_data(config: TransferConfig) -> None:
    """With ``data.source=hub``: each dataset the run reads exists on the hub (at the revision its entry pins),
    or is cached when offline."""
    seen: set[tuple[str, str | None]] = set()
    for task in _read_tasks(config):
        if task.metric == "bucc_f1":
            continue  # never read from the hub: check_bucc
        if task.hub is None:
            raise ConfigError(
                f"data.source=hub: {task.name} has no hub source (licensed data): use data.source=local"
            )
        if task.hub.script_only:
            raise ConfigError(
                f"data.source=hub: {task.name} ({task.hub.path}) is a script-based hub dataset, which "
                "datasets 5 no longer loads; use data.source=local with its files"
            )
        if (task.hub.path, task.hub.revision) in seen:
            continue
        seen.add((task.hub.path, task.hub.revision))
        where = f"data.source=hub: {task.name} ({task.hub.path})"
        if hub_offline():
            if not _dataset_cached(task.hub.path):
                raise ConfigError(
                    f"{where} is not in the local datasets cache, and the hub is off (HF_HUB_OFFLINE)"
                )
            continue
        problem = _hub_answer("dataset", task.hub.path, task.hub.revision)
        if problem is not None and not (problem.startswith("the hub") and _dataset_cached(task.hub.path)):
            raise ConfigError(f"{where}: {problem}")


def check_bucc(config: TransferConfig) -> None:
    """BUCC reads the official corpora in ``data.bucc_dir``: every split of every language it evaluates."""
    target = get_task(config.target.task)
    if target.metric != "bucc_f1":
        return
    from trainers.data.bucc import bucc_dir_languages, bucc_directory, load_bucc

    directory = bucc_directory(config.data)
    if directory is None:
        if config.data.source != "miniature":
            raise ConfigError(
                f"target bucc (data.source={config.data.source}): gold pairs alone (the hub's bucc18 configs, "
                "row-aligned files) have no distractors and inflate F1; set data.bucc_dir to a directory of "
                "the official BUCC 2018 files"
            )
        return  # the miniature: generated row-aligned pairs, checked with the other local data
    where = f"data.bucc_dir {directory}" if config.data.bucc_dir else f"the XTREME download's {directory}"
    have = bucc_dir_languages(directory)
    languages = config.evaluation.languages or list(have)
    missing = [lang for lang in languages if lang not in have]
    if missing or not languages:
        raise ConfigError(
            f"{where}: no BUCC files for {', '.join(missing) or 'any language'} (it has {', '.join(have) or 'none'})"
        )
    for lang in languages:
        for split in ("dev", config.evaluation.split):
            load_bucc(directory, lang, split)  # raises DataError naming the missing file


def check_data(config: TransferConfig) -> None:
    """Every split the run reads exists in the data source (the hub: every dataset it names)."""
    if config.data.source == "hub":
        check_hub_data(config)
        return
    # Lazy: datasets (seconds to import) is needed only once the config itself is known to be good.
    from trainers.data import (
        available_languages,
        load_split,
        resolve_english_dev,
        resolve_train_task,
        train_languages,
    )

    target = get_task(config.target.task)
    needed: list[tuple[str, str, str]] = []  # (task, split, language)
    if config.intermediate is not None:
        for name in config.intermediate.tasks:
            task = get_task(name)
            needed += [(name, "train", lang) for lang in train_languages(task, config.data)]
            needed += [(name, "dev", "en")]
    if not target.is_retrieval:
        dev_task, dev_split = resolve_english_dev(target)
        needed += [(resolve_train_task(target).name, "train", "en"), (dev_task.name, dev_split, "en")]
    from trainers.data.bucc import reads_bucc_dir

    bucc_files = reads_bucc_dir(target, config.data)  # check_bucc read them
    if config.data.source == "xtreme" and not bucc_files:
        from trainers.data.xtreme_layout import evaluated_languages

        # Those with a file of the scored split; raises, listing the download's files of the target.
        root = Path(str(config.data.data_dir)).expanduser()
        have = tuple(evaluated_languages(target, root, config.evaluation.split, config.evaluation.languages))
    else:
        have = () if bucc_files else available_languages(target, config.data)
    languages = [] if bucc_files else config.evaluation.languages or list(have)
    missing = [lang for lang in languages if lang not in have]
    if missing:
        raise ConfigError(
            f"evaluation.languages: {target.name} has no data for {', '.join(missing)} (it has {', '.join(have)})"
        )
    needed += [(target.name, config.evaluation.split, lang) for lang in languages]
    for task_name, split, language in needed:
        load_split(get_task(task_name), split, language, config.data)  # raises DataError with the path


def preflight(config: TransferConfig) -> None:
    """All checks, cheapest first; raises a ``UserError`` (``ConfigError``, ``DataError``, ``NoMiniatureError``), one line."""
    check_freeze_depth(config)
    check_input_dirs(config)
    check_model(config)
    check_bucc(config)
    check_miniature(config)
    check_data(config)
