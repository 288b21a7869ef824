"""Launch one plan as a Ray Train ``TorchTrainer`` job (DeepSpeed on every worker)."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainers.progress import PROGRESS_EVERY_ENV, ProgressSettings

if TYPE_CHECKING:  # the worker stack (torch, DeepSpeed, the metrics) is imported where a job is built
    from trainers.worker import Plan

# A Train job waits this long for its workers: on a busy or autoscaling cluster they may take minutes
# to get resources (nodes booting), and a trial pending on the autoscaler must not fail for it.
WORKER_START_TIMEOUT_S = "1800"
PROBE_TIMEOUT_S = 120.0
"""How long every node together may take to answer the shared-cache probe (each starts a worker process)."""


def init_ray() -> None:
    """Connect to the running cluster (``ray start``/``ray up``) or start a local one, once."""
    import ray

    if ray.is_initialized():
        return
    env = {
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": os.environ.get(
            "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", WORKER_START_TIMEOUT_S
        ),
    }
    if PROGRESS_EVERY_ENV in os.environ:  # the workers print the progress lines
        env[PROGRESS_EVERY_ENV] = str(ProgressSettings.from_env().every_s)
    os.environ.update(env)  # the driver's own Train jobs (xstilts run) read it from here
    # The dashboard serves the State API, which Ray Train's placement-group cleaner needs: without it the
    # placement groups of finished trials stay reserved and later trials wait forever for resources.
    ray.init(runtime_env={"env_vars": env})


@contextlib.contextmanager
def ray_address_pinned() -> Iterator[None]:
    """While a Train job is launched, hand this cluster's address to its controller and helper actors.

    Ray Train's placement-group cleaner finds the State API by address auto-discovery, which fails
    when a machine runs more than one Ray instance; the placement groups of trials stopped early then
    stay reserved and later trials wait forever. RAY_ADDRESS removes the ambiguity. It is restored
    afterwards, so processes this one starts later do not inherit a cluster that may be gone.
    """
    import ray
    from ray.train.v2._internal import constants

    constants.ENV_VARS_TO_PROPAGATE.add("RAY_ADDRESS")
    previous = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = previous or ray.get_runtime_context().gcs_address
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("RAY_ADDRESS", None)


def _sees(path: str, token: str) -> bool:
    """Run on one node: whether ``path`` there holds ``token`` (the same file the driver wrote)."""
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def probe_nodes(path: str, token: str) -> dict[str, bool]:
    """Node id -> whether that node sees ``path`` with ``token`` in it, for every alive node.

    One alive node (a single machine, or a head whose workers the autoscaler has not started yet) is
    not asked: it is this one.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    alive = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
    if len(alive) < 2:
        return {}
    sees = ray.remote(num_cpus=0, max_retries=0)(_sees)
    refs = {
        node: sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
            path, token
        )
        for node in alive
    }
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    answers = {}
    for node, ref in refs.items():
        try:
            answers[node] = bool(ray.get(ref, timeout=max(1.0, deadline - time.monotonic())))
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError):
            answers[node] = False  # a node that cannot answer cannot be trusted with the cache either
    return answers


def nodes_without(directory: str, probe: Callable[[str, str], dict[str, bool]] = probe_nodes) -> list[str]:
    """The alive Ray nodes that do not see ``directory`` as this process does (empty: it is shared).

    Writes a probe file with a random token into ``directory`` and asks every node to read it back, so
    a path that exists everywhere but is a different disk on each node (the usual mistake: a local
    ``~/.cache``) is caught. Nodes that join later (autoscaling) run the same setup commands.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    marker = root / f".shared-probe-{token}"
    marker.write_text(token)
    try:
        return sorted(node for node, seen in probe(str(marker), token).items() if not seen)
    finally:
        marker.unlink(missing_ok=True)


def storage_uri(path: str) -> str:
    """An absolute path or a URI (Ray Train storage needs one)."""
    if "://" in path:
        return path
    return str(Path(path).expanduser().resolve())


def trainer_for(
    plan: Plan,
    name: str,
    storage_path: str,
    callbacks: list[Any] | None = None,
    max_failures: int = 1,
    keep_checkpoints: int = 2,
) -> Any:
    """A ``TorchTrainer`` running ``plan`` on ``plan.config.scaling`` workers.

    Re-fitting a trainer with the same ``name`` and ``storage_path`` resumes from its latest checkpoint
    (Ray Train V2 restores a run by name), so a restarted trial continues its phase where it stopped.
    """
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from trainers.worker import train_loop_per_worker

    scaling = plan.config.scaling
    resources = {"CPU": scaling.cpus_per_worker}
    if scaling.use_gpu:
        resources["GPU"] = 1
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=plan.to_dict(),
        # The process-group rendezvous (and its collectives) wait at most this long, then fail the job.
        torch_config=TorchConfig(timeout_s=max(1, round(plan.config.scaling.timeout_s))),
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers, use_gpu=scaling.use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_uri(storage_path),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            callbacks=callbacks or [],
        ),
    )
