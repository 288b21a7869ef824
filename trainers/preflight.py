"""Checks that run before any compute, so bad input fails in one line and writes nothing."""

from __future__ import annotations

from trainers.config import ConfigError, TransferConfig
from trainers.data import available_languages, load_split, resolve_english_dev, resolve_train_task
from trainers.encoders import layer_count
from trainers.tasks import get_task


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


def check_data(config: TransferConfig) -> None:
    """Every split the run reads exists in the data source (local and miniature sources; the hub is trusted)."""
    if config.data.source == "hub":
        return
    target = get_task(config.target.task)
    needed: list[tuple[str, str, str]] = []  # (task, split, language)
    if config.intermediate is not None:
        for name in config.intermediate.tasks:
            needed += [(name, "train", "en"), (name, "dev", "en")]
    if not target.is_retrieval:
        dev_task, dev_split = resolve_english_dev(target)
        needed += [(resolve_train_task(target).name, "train", "en"), (dev_task.name, dev_split, "en")]
    have = available_languages(target, config.data)
    languages = config.evaluation.languages or list(have)
    missing = [lang for lang in languages if lang not in have]
    if missing:
        raise ConfigError(
            f"evaluation.languages: {target.name} has no data for {', '.join(missing)} (it has {', '.join(have)})"
        )
    needed += [(target.name, config.evaluation.split, lang) for lang in languages]
    for task_name, split, language in needed:
        load_split(get_task(task_name), split, language, config.data)  # raises DataError with the path


def preflight(config: TransferConfig) -> None:
    """All checks; raises ``ConfigError`` or ``DataError`` with one line."""
    check_freeze_depth(config)
    check_data(config)
