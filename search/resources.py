"""What a trial needs from the cluster, what the cluster can reach, and how many trials run at once.

"Reach" is what the cluster has now (its alive nodes) or, on a cluster started by the Ray cluster
launcher, what its autoscaler may add: each worker node type of the launcher's config up to its
``max_workers``, at most the config's ``max_workers`` nodes in all. ``ray up`` leaves that config on the
head as ``~/ray_bootstrap_config.yaml`` (the file ``ray start --autoscaling-config`` reads), which is where
``ray submit`` and ``ray job submit`` run the search driver; ``$XSTILTS_AUTOSCALING_CONFIG`` names another.
So a search on a cluster that starts with no GPU node is neither refused nor held to one trial at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from search.space import SearchSpace
from trainers.config import ScalingConfig

AUTOSCALING_CONFIG = "~/ray_bootstrap_config.yaml"
"""Where ``ray up`` puts the launcher's config on the head."""
HEAD_RESOURCE = "head"
"""The custom resource a cluster's head advertises (cluster.yaml): trials' own actors pin to it."""
TRIAL_DRIVER_CPUS = 0.01
"""What a trial's own actor requests on a cluster without a ``head`` resource (one machine)."""
TRIAL_DRIVER_HEAD = 0.001
"""A trial actor's share of ``head`` (a thousand trials at once)."""


class ResourceError(ValueError):
    """A trial that no reachable node or cluster can hold (one line)."""


@dataclass(frozen=True)
class Reach:
    """What the cluster can hold at once: in all, and node by node."""

    total: dict[str, float]
    """Resources summed over the nodes the cluster has or may start."""
    nodes: list[dict[str, float]]
    """The resources of each alive node and of each node type the autoscaler may start."""
    autoscaling: bool = False
    """Whether the launcher's config contributed (nodes may not exist yet)."""


def _add(total: dict[str, float], resources: dict[str, float], times: int = 1) -> None:
    for key, value in resources.items():
        total[key] = total.get(key, 0.0) + float(value) * times


def autoscaling_config(path: str | None = None) -> dict[str, Any] | None:
    """The cluster launcher's config on this head, if there is one (``None`` on a plain machine)."""
    path = path or os.environ.get("XSTILTS_AUTOSCALING_CONFIG") or AUTOSCALING_CONFIG
    file = Path(path).expanduser()
    if not file.is_file():
        return None
    data = yaml.safe_load(file.read_text())
    return data if isinstance(data, dict) else None


def cluster_reach(alive: list[dict[str, float]], config: dict[str, Any] | None = None) -> Reach:
    """What ``alive`` nodes hold, or what the launcher's ``config`` lets the autoscaler reach if more.

    Worker node types are counted largest first (by GPUs, then CPUs), each up to its ``max_workers``,
    until the config's ``max_workers`` nodes are used. Node types without ``resources`` (a provider that
    fills them at launch) count as unknown: only the alive nodes count for them.
    """
    now: dict[str, float] = {}
    for node in alive:
        _add(now, node)
    nodes = [dict(node) for node in alive]
    config = config or {}
    types = config.get("available_node_types") or {}
    head_type = config.get("head_node_type")
    if not types:
        return Reach(now, nodes)
    reachable: dict[str, float] = {}
    _add(reachable, dict(types.get(head_type, {}).get("resources") or {}))
    workers = [
        (dict(spec.get("resources") or {}), int(spec.get("max_workers", 0)))
        for name, spec in types.items()
        if name != head_type and spec.get("resources")
    ]
    workers.sort(key=lambda item: (item[0].get("GPU", 0), item[0].get("CPU", 0)), reverse=True)
    left = int(config.get("max_workers", sum(count for _, count in workers)))
    for resources, count in workers:
        used = max(0, min(count, left))
        _add(reachable, resources, used)
        left -= used
        if count > 0:
            nodes.append({key: float(value) for key, value in resources.items()})
    total = {key: max(now.get(key, 0.0), reachable.get(key, 0.0)) for key in {*now, *reachable}}
    return Reach(total, nodes, autoscaling=True)


def current_reach() -> Reach:
    """The reach of the Ray cluster this process is connected to."""
    import ray

    alive = [dict(node["Resources"]) for node in ray.nodes() if node["Alive"]]
    return cluster_reach(alive, autoscaling_config())


def _scaling(space: SearchSpace) -> ScalingConfig:
    return space.base_config(space.targets[0]).scaling


def _per_worker(scaling: ScalingConfig) -> dict[str, float]:
    return {"CPU": scaling.cpus_per_worker, "GPU": 1.0 if scaling.use_gpu else 0.0}


def worker_resources(space: SearchSpace) -> dict[str, float]:
    """What one Train worker of a trial needs (on one node)."""
    return _per_worker(_scaling(space))


def trial_resources(space: SearchSpace) -> dict[str, float]:
    """CPUs and GPUs one trial's Train job needs (all its workers)."""
    scaling = _scaling(space)
    return {kind: scaling.num_workers * amount for kind, amount in _per_worker(scaling).items()}


def runs_in_process(scaling: ScalingConfig) -> bool:
    """Whether a trial runs its one worker in its own process instead of starting a Ray Train job."""
    return scaling.num_workers == 1 and scaling.worker_group == "auto"


def trial_actor_resources(space: SearchSpace, cluster: dict[str, float]) -> dict[str, float]:
    """What each trial's own actor requests: its worker's resources when it runs the worker itself,
    else a sliver (``trial_driver_resources``) beside the Train job that holds them."""
    scaling = _scaling(space)
    if runs_in_process(scaling):
        return {kind: amount for kind, amount in _per_worker(scaling).items() if amount}
    return trial_driver_resources(cluster)


def trial_driver_resources(cluster: dict[str, float]) -> dict[str, float]:
    """What each trial's own actor requests (it only waits on its Train job; Train's controller joins it).

    On a cluster whose head advertises the ``head`` resource (cluster.yaml, cluster.local.yaml) these run
    on the head, which is never preempted, so a lost worker node only takes Train workers with it and Train
    restarts them elsewhere. A trial actor on a worker node would die with that node and take its Train
    controller along; if that happens while the job's workers are starting, Ray Train has not yet handed
    the job's placement group to its cleaner and the group stays reserved until the search ends. Without
    a ``head`` resource (a single machine): a sliver of a CPU.
    """
    if cluster.get(HEAD_RESOURCE, 0.0) > 0:
        return {"CPU": 0.0, HEAD_RESOURCE: TRIAL_DRIVER_HEAD}
    return {"CPU": TRIAL_DRIVER_CPUS}


def concurrent_trials(space: SearchSpace, cluster: dict[str, float], override: int | None) -> int:
    """How many trials fit on ``cluster`` (a reach's total) at once: on GPUs if trials use them, else CPUs."""
    if override is not None:
        return override
    if space.tuner.max_concurrent_trials is not None:
        return space.tuner.max_concurrent_trials
    need = trial_resources(space)
    if need["GPU"]:
        return max(1, int(cluster.get("GPU", 0) // need["GPU"]))
    # Each trial's driver holds a sliver of a CPU beside its workers' CPUs (none where it sits on the head,
    # or where it runs its one worker itself).
    driver_cpus = 0.0 if runs_in_process(_scaling(space)) else trial_driver_resources(cluster).get("CPU", 0.0)
    return max(1, int(cluster.get("CPU", 0) // (need["CPU"] + driver_cpus)))


def check_resources(space: SearchSpace, reach: Reach) -> None:
    """One Train worker must fit on some node, and a trial's workers on what the cluster can reach."""
    worker = worker_resources(space)
    if not any(all(node.get(kind, 0.0) >= amount for kind, amount in worker.items()) for node in reach.nodes):
        raise ResourceError(
            f"a Train worker needs {worker['CPU']:g} CPUs and {worker['GPU']:g} GPUs on one node "
            f"(scaling.cpus_per_worker, scaling.use_gpu) but no node{' type' if reach.autoscaling else ''} "
            "of the cluster has that; lower scaling.cpus_per_worker or add a bigger node type"
        )
    need = trial_resources(space)
    for kind in ("GPU", "CPU"):
        if need[kind] > reach.total.get(kind, 0.0):
            where = "can reach" if reach.autoscaling else "has"
            raise ResourceError(
                f"a trial needs {need[kind]:g} {kind}s (scaling.num_workers x per-worker) but the cluster "
                f"{where} {reach.total.get(kind, 0.0):g}; lower scaling.num_workers or add nodes"
            )
