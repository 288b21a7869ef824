"""The intermediate-checkpoint cache: key stability, atomic publish, leases across threads and processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

from trainers.checkpoint_cache import (
    CheckpointCache,
    intermediate_key,
    key_fields,
)
from trainers.config import TransferConfig, apply_overrides

# Fork: fast (no re-import of the test module per process), and the project runs on POSIX only.
_CTX = multiprocessing.get_context("fork")

_BASE: dict[str, Any] = {
    "model": {"name_or_path": "some-org/some-encoder"},
    "data": {"source": "hub"},
    "intermediate": {"tasks": ["mnli", "squad_v1"], "learning_rate": 3e-5},
    "target": {"task": "xnli"},
}


def _config(*overrides: str, base: dict[str, Any] | None = None) -> TransferConfig:
    return TransferConfig.from_dict(apply_overrides(base or _BASE, list(overrides)))


def _fake_train(staging: Path, tag: str) -> None:
    (staging / "model.safetensors").write_text(f"weights from {tag}")
    (staging / "config.yaml").write_text(f"tag: {tag}\n")


# -- the key -----------------------------------------------------------------------------------


def test_key_is_stable_and_tracks_what_shapes_the_intermediate_phase() -> None:
    key = intermediate_key(_config())
    assert (
        key == intermediate_key(_config()) == intermediate_key(_config("intermediate.learning_rate=0.00003"))
    )
    assert key == intermediate_key(_config("intermediate.epochs=1"))  # int and float alike
    changed: list[tuple[str, ...]] = [
        ("intermediate.learning_rate=1.0e-5",),
        ("intermediate.tasks=[squad_v1, mnli]",),  # order is part of the mixture
        ("intermediate.tasks=[mnli]",),
        ("intermediate.freeze_depth=2",),
        ("intermediate.max_steps=10",),
        ("intermediate.sampling=uniform",),
        ("intermediate.batch_size=8",),
        ("seed=1",),
        ("scaling.num_workers=2",),
        ("deepspeed.precision=fp16",),
        ("scaling.use_gpu=true",),
        ("model.name_or_path=other/encoder",),
        ("model.max_seq_length=256",),
        ("data.max_train_examples=100",),
        ("data.data_dir=/data",),
        ("data.source=local", "data.data_dir=/data"),
    ]
    keys = {overrides: intermediate_key(_config(*overrides)) for overrides in changed}
    assert key not in keys.values()
    # Only the global batch counts: two workers or two accumulation steps train the same model.
    accumulated = intermediate_key(_config("deepspeed.gradient_accumulation_steps=2"))
    assert keys[("scaling.num_workers=2",)] == accumulated
    assert len(set(keys.values())) == len(keys)


def test_key_ignores_target_evaluation_output_and_bookkeeping() -> None:
    key = intermediate_key(_config())
    same = [
        "target.task=pawsx",
        "target.learning_rate=1.0e-3",
        "target.freeze_depth=3",
        "evaluation.split=dev",
        "evaluation.languages=[de, fr]",
        "output_dir=/elsewhere",
        "intermediate.eval_every=5",
        "intermediate.checkpoint_every=5",
        "deepspeed.zero_stage=2",
        "data.cache_dir=/other/cache",
        "data.max_eval_examples=7",
        "scaling.cpus_per_worker=4",
    ]
    for override in same:
        assert intermediate_key(_config(override)) == key, override


def test_key_needs_an_intermediate_phase() -> None:
    config = TransferConfig()
    with pytest.raises(ValueError, match="intermediate"):
        intermediate_key(config)


def _versions(**versions: str) -> types.SimpleNamespace:
    """A stand-in miniature module whose tasks have ``versions`` (every other task version "1")."""
    return types.SimpleNamespace(miniature_version=lambda task: versions.get(task, "1"))


def test_key_tracks_the_miniature_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # Per task since the miniature is versioned per task: the key holds the intermediate tasks' versions.
    config = _config("data.source=miniature")
    monkeypatch.setitem(sys.modules, "trainers.data.miniature", _versions(mnli="3"))
    assert key_fields(config)["data"]["miniature_versions"] == {"mnli": "3", "squad_v1": "1"}
    v3 = intermediate_key(config)
    monkeypatch.setitem(sys.modules, "trainers.data.miniature", _versions(mnli="4"))
    assert intermediate_key(config) != v3
    monkeypatch.setitem(sys.modules, "trainers.data.miniature", None)  # import fails
    assert key_fields(config)["data"]["miniature_versions"] == {"mnli": "unknown", "squad_v1": "unknown"}
    assert "miniature_versions" not in key_fields(_config())["data"]  # hub data has no generator version


def test_key_ignores_the_versions_of_other_miniature_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config("data.source=miniature")
    monkeypatch.setitem(sys.modules, "trainers.data.miniature", _versions())
    key = intermediate_key(config)
    monkeypatch.setitem(sys.modules, "trainers.data.miniature", _versions(xnli="2", qqp="7", new_task="1"))
    assert intermediate_key(config) == key  # another task changed or was added: this entry stays valid
    monkeypatch.setitem(sys.modules, "trainers.data.miniature", _versions(squad_v1="2"))
    assert intermediate_key(config) != key


def test_the_tiny_encoder_is_versioned_by_its_tokenizer_text_not_the_tasks() -> None:
    from trainers.checkpoint_cache import _encoder_version
    from trainers.data.miniature import TOKENIZER_TEXT_VERSION
    from trainers.encoders import TINY_VERSION

    assert _encoder_version("tiny") == f"tiny-v{TINY_VERSION}-text{TOKENIZER_TEXT_VERSION}"


def test_key_fields_are_json_and_hash_to_the_key() -> None:
    from trainers.config import stable_hash

    fields = key_fields(_config())
    assert json.loads(json.dumps(fields)) == fields
    assert stable_hash(fields) == intermediate_key(_config())
    assert fields["global_batch_size"] == 16
    assert fields["intermediate"]["tasks"] == ["mnli", "squad_v1"]


# -- publish and lookup ------------------------------------------------------------------------


def test_publish_then_lookup(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path / "cache")
    assert cache.lookup("k1") is None
    staging = cache.staging_dir("k1")
    assert staging.parent.name == ".staging" and staging != cache.staging_dir("k1")
    _fake_train(staging, "a")
    path = cache.publish(staging, "k1", {"fields": {"x": 1}})
    assert path == cache.path("k1") == cache.lookup("k1")
    assert (path / "model.safetensors").read_text() == "weights from a"
    meta = json.loads((path / "meta.json").read_text())
    assert meta["fields"] == {"x": 1} and meta["key"] == "k1"
    assert not staging.exists()
    [entry] = cache.entries()
    assert entry["key"] == "k1" and entry["path"] == str(path)
    stats = cache.stats()
    assert stats["entries"] == 1 and stats["bytes"] > 0


def test_a_torn_write_is_never_visible_and_does_not_block(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    crashed = cache.staging_dir("k1")
    (crashed / "model.safetensors").write_text("half of the wei")  # the writer died here
    assert cache.lookup("k1") is None
    assert cache.entries() == []
    later = cache.staging_dir("k1")
    _fake_train(later, "b")
    path = cache.publish(later, "k1", {})
    assert cache.lookup("k1") == path
    assert (path / "model.safetensors").read_text() == "weights from b"
    # The crashed writer's leftovers are only removed by clean(), once old enough.
    assert crashed.exists()
    assert cache.clean(older_than_s=3600) == 0
    assert cache.clean(older_than_s=0) == 1 and not crashed.exists()


def test_a_second_publish_keeps_the_first_entry(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    first, second = cache.staging_dir("k1"), cache.staging_dir("k1")
    _fake_train(first, "first")
    _fake_train(second, "second")
    path = cache.publish(first, "k1", {})
    assert cache.publish(second, "k1", {}) == path
    assert (path / "config.yaml").read_text() == "tag: first\n"
    assert not second.exists()


def test_concurrent_publishers_make_exactly_one_entry(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    barrier = threading.Barrier(4)
    results: list[Path] = []

    def writer(tag: str) -> None:
        staging = cache.staging_dir("k1")
        _fake_train(staging, tag)
        barrier.wait()
        results.append(cache.publish(staging, "k1", {"tag": tag}))

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and set(results) == {cache.path("k1")}
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["k1"]
    assert list((tmp_path / ".staging").iterdir()) == []
    meta = json.loads((cache.path("k1") / "meta.json").read_text())
    assert (cache.path("k1") / "config.yaml").read_text() == f"tag: {meta['tag']}\n"  # one writer's, whole


def test_bad_keys_are_refused(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    for key in ("../escape", ".staging", "a/b", ""):
        with pytest.raises(ValueError):
            cache.path(key)


# -- leases ------------------------------------------------------------------------------------


def test_release_removes_the_lease(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    lease = cache.acquire("k1", "alice", ttl_s=30)
    assert lease is not None
    with lease:
        assert lease.held
        info = cache.lease_info("k1")
        assert info is not None and info.owner == "alice" and info.pid == os.getpid()
        assert cache.acquire("k1", "bob", ttl_s=30) is None
        assert lease.renew()
    assert cache.lease_info("k1") is None and not lease.held
    assert lease.release()  # idempotent
    assert not lease.renew()
    bob = cache.acquire("k1", "bob", ttl_s=30)
    assert bob is not None
    bob.release()
    assert list((tmp_path / ".leases").iterdir()) == []  # no tombstones left behind


def test_a_live_lease_is_not_stolen(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    lease = cache.acquire("k1", "alice", ttl_s=0.5)
    assert lease is not None
    with lease.keep_alive(0.05):
        deadline = time.monotonic() + 1.2  # well past the first expiry: only the heartbeat keeps it alive
        while time.monotonic() < deadline:
            assert cache.acquire("k1", "bob", ttl_s=0.5) is None
            time.sleep(0.1)
        assert lease.held
    assert cache.lease_info("k1") is None


def test_an_expired_lease_is_stolen_and_its_old_owner_knows(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    lost: list[str] = []
    crashed = cache.acquire("k1", "crashed", ttl_s=0.05)
    assert crashed is not None
    crashed.keep_alive(0.3, on_lost=lambda lease: lost.append(lease.owner))  # beats too slowly to save it
    time.sleep(0.1)
    thief = cache.acquire("k1", "thief", ttl_s=30)
    assert thief is not None
    info = cache.lease_info("k1")
    assert info is not None and info.owner == "thief"
    assert not crashed.renew() and crashed.lost and not crashed.held
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:  # the heartbeat's next beat finds it stolen
        time.sleep(0.05)
    assert lost == ["crashed"]
    assert not crashed.release()  # must not remove the thief's lease
    assert thief.held and cache.lease_info("k1") == info
    thief.release()


def test_an_unreadable_lease_expires_by_its_age(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    (tmp_path / ".leases").mkdir()
    stub = tmp_path / ".leases" / "k1.lease"
    stub.touch()  # a creator that died between O_EXCL and writing its JSON
    assert cache.acquire("k1", "bob", ttl_s=30) is None
    os.utime(stub, (time.time() - 60, time.time() - 60))
    lease = cache.acquire("k1", "bob", ttl_s=30)
    assert lease is not None and lease.held
    lease.release()


def _steal(root: str, barrier: Any, results: Any, index: int) -> None:
    cache = CheckpointCache(root)
    barrier.wait()
    lease = cache.acquire("k1", f"stealer{index}", ttl_s=30)
    results.put((index, lease is not None and lease.held))
    # Exit without releasing: the winner's lease must stay in place for the assertions.


def test_concurrent_stealers_one_wins(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    assert cache.acquire("k1", "crashed", ttl_s=0.01) is not None
    time.sleep(0.05)
    barrier, results = _CTX.Barrier(4), _CTX.Queue()
    procs = [_CTX.Process(target=_steal, args=(str(tmp_path), barrier, results, i)) for i in range(4)]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=20) for _ in procs)
    for proc in procs:
        proc.join(timeout=20)
    winners = [index for index, won in outcomes.items() if won]
    assert len(winners) == 1
    info = cache.lease_info("k1")
    assert info is not None and info.owner == f"stealer{winners[0]}"
    assert [p.name for p in (tmp_path / ".leases").iterdir()] == ["k1.lease"]  # tombstones cleaned up


# -- wait_for ----------------------------------------------------------------------------------


def _trial(root: str, barrier: Any, results: Any, index: int) -> None:
    cache = CheckpointCache(root)
    barrier.wait()
    path, lease = cache.wait_for("k1", poll_s=0.05, timeout_s=20, ttl_s=5, owner=f"trial{index}")
    if lease is not None:
        with lease.keep_alive(0.5):
            fd = os.open(Path(root) / "trained.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.write(fd, f"trial{index}\n".encode())
            os.close(fd)
            staging = cache.staging_dir("k1")
            time.sleep(0.3)  # "training": the others must wait, not train too
            _fake_train(staging, f"trial{index}")
            path = cache.publish(staging, "k1", {"by": index})
    # What a loader would read right after: the whole entry of the one trainer, never a torn one.
    results.put((index, (str(path), (Path(path) / "model.safetensors").read_text())))


def test_processes_train_a_key_exactly_once(tmp_path: Path) -> None:
    barrier, results = _CTX.Barrier(4), _CTX.Queue()
    procs = [_CTX.Process(target=_trial, args=(str(tmp_path), barrier, results, i)) for i in range(4)]
    for proc in procs:
        proc.start()
    read = dict(results.get(timeout=25) for _ in procs)
    for proc in procs:
        proc.join(timeout=20)
        assert proc.exitcode == 0
    trained = (tmp_path / "trained.log").read_text().split()
    assert len(trained) == 1
    assert set(read.values()) == {(str(tmp_path / "k1"), f"weights from {trained[0]}")}
    assert (tmp_path / "k1" / "config.yaml").read_text() == f"tag: {trained[0]}\n"
    assert CheckpointCache(tmp_path).lease_info("k1") is None


def test_wait_for_returns_a_published_entry(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    staging = cache.staging_dir("k1")
    _fake_train(staging, "a")
    published = cache.publish(staging, "k1", {})
    assert cache.wait_for("k1", poll_s=0.01, timeout_s=1) == (published, None)


def test_wait_for_takes_over_from_a_crashed_writer(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    assert cache.acquire("k1", "crashed", ttl_s=0.2) is not None  # never renewed, never released
    torn = cache.staging_dir("k1")
    (torn / "model.safetensors").write_text("half")
    start = time.monotonic()
    path, lease = cache.wait_for("k1", poll_s=0.05, timeout_s=5, ttl_s=30, owner="heir")
    assert path is None and lease is not None and time.monotonic() - start >= 0.1
    with lease:
        staging = cache.staging_dir("k1")
        _fake_train(staging, "heir")
        path = cache.publish(staging, "k1", {})
    assert cache.lookup("k1") == path and (path / "model.safetensors").read_text() == "weights from heir"


def _hold_lease(root: str, ready: Any) -> None:
    lease = CheckpointCache(root).acquire("k1", "killed-trial", ttl_s=600)
    assert lease is not None
    ready.set()
    time.sleep(600)


def test_a_lease_whose_holder_was_killed_is_taken_over_at_once(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    ready = _CTX.Event()
    holder = _CTX.Process(target=_hold_lease, args=(str(tmp_path), ready))
    holder.start()
    try:
        assert ready.wait(30)
        assert cache.acquire("k1", "bob", ttl_s=600) is None  # its holder lives: not stolen
    finally:
        holder.kill()
        holder.join(30)
    info = cache.lease_info("k1")
    assert info is not None and info.pid == holder.pid and info.expires_at is not None
    assert info.expires_at > time.time() + 500  # a TTL wait would last ten minutes
    start = time.monotonic()
    path, lease = cache.wait_for("k1", poll_s=0.05, timeout_s=5, ttl_s=600, owner="heir")
    assert path is None and lease is not None and time.monotonic() - start < 1
    assert cache.lease_info("k1") is not None and cache.lease_info("k1").owner == "heir"  # type: ignore[union-attr]
    lease.release()


def test_wait_for_times_out_naming_the_key_and_the_owner(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    lease = cache.acquire("k1", "alice", ttl_s=30)
    assert lease is not None
    with lease, pytest.raises(TimeoutError, match=r"k1.*alice"):
        cache.wait_for("k1", poll_s=0.02, timeout_s=0.1, owner="bob")


def test_get_or_create_builds_once(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    calls: list[Path] = []

    def build(staging: Path) -> None:
        calls.append(staging)
        _fake_train(staging, "built")

    first = cache.get_or_create("k1", build, {"a": 1}, poll_s=0.01, timeout_s=1)
    second = cache.get_or_create("k1", build, {"a": 1}, poll_s=0.01, timeout_s=1)
    assert first == second == cache.lookup("k1") and len(calls) == 1
    assert cache.lease_info("k1") is None

    def broken(staging: Path) -> None:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        cache.get_or_create("k2", broken, {}, poll_s=0.01, timeout_s=1)
    assert cache.lookup("k2") is None and cache.lease_info("k2") is None  # the next trial can retry
    assert list((tmp_path / ".staging").iterdir()) == []


# -- damaged entries: detected, set aside, retrained, never loaded ------------------------------------


def _damage_weights(entry: Path) -> None:
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4])  # truncated, as a disk that lost the tail would leave it


def _damage_missing_file(entry: Path) -> None:
    (entry / "config.yaml").unlink()


def _damage_manifest(entry: Path) -> None:
    (entry / "meta.json").write_text('{"key": "k1", "files": ')  # half-written


@pytest.mark.parametrize("damage", [_damage_weights, _damage_missing_file, _damage_manifest])
def test_a_damaged_entry_is_never_loaded_and_is_retrained(tmp_path: Path, damage: Any) -> None:
    cache = CheckpointCache(tmp_path)
    built: list[str] = []

    def build(staging: Path) -> None:
        built.append(staging.name)
        _fake_train(staging, f"build {len(built)}")

    first = cache.get_or_create("k1", build, {}, poll_s=0.01, timeout_s=5)
    damage(first)

    assert cache.lookup("k1") is None  # detected: never handed to a loader
    again = cache.get_or_create("k1", build, {}, poll_s=0.01, timeout_s=5)

    assert len(built) == 2  # retrained once
    assert again == cache.lookup("k1") == first  # the same key, now whole
    assert (again / "model.safetensors").read_text() == "weights from build 2"
    assert len(list((tmp_path / ".trash").iterdir())) == 1  # the damaged one kept aside for inspection


def test_a_directory_without_a_manifest_is_set_aside_when_the_key_is_published(tmp_path: Path) -> None:
    """A partial copy by hand at the entry's name does not block publishing (it used to need removing by hand)."""
    cache = CheckpointCache(tmp_path)
    stray = cache.path("k1")
    stray.mkdir()
    (stray / "model.safetensors").write_text("half of the wei")
    assert cache.lookup("k1") is None

    path = cache.get_or_create(
        "k1", lambda staging: _fake_train(staging, "fresh"), {}, poll_s=0.01, timeout_s=5
    )

    assert path == cache.lookup("k1")
    assert (path / "model.safetensors").read_text() == "weights from fresh"
    [aside] = (tmp_path / ".trash").iterdir()
    assert (aside / "model.safetensors").read_text() == "half of the wei"


def test_key_tracks_dev_as_train_of_its_own_tasks_only() -> None:
    key = intermediate_key(_config())
    assert intermediate_key(_config("data.dev_as_train={pawsx: 500}")) == key  # not an intermediate task
    trained_on_dev = intermediate_key(_config("data.dev_as_train={mnli: 500}"))
    assert trained_on_dev != key
    assert intermediate_key(_config("data.dev_as_train={mnli: 400}")) != trained_on_dev


def test_key_tracks_the_features_version_of_its_tasks_types(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainers.task_types import type_of
    from trainers.tasks import get_task

    tagged = _config("intermediate.tasks=[panx]")
    key, other = intermediate_key(tagged), intermediate_key(_config())
    monkeypatch.setattr(type(type_of(get_task("panx"))), "features_version", 3)
    assert intermediate_key(tagged) != key  # a tagging checkpoint trained on other features is not reused
    assert intermediate_key(_config()) == other  # mnli + squad_v1: their types' features did not change
