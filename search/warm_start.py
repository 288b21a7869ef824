"""``--warm-start SEARCH``: a new search's studies start from what an earlier search found.

The earlier search's Optuna studies (one per target, in its RDB under the same ``--storage``,
``search/layout.py``) are read once, before any compute. Each target of the new search first tries, in
this order and only where the new space can suggest them (``search.searcher.suggestable``):

1. the configurations of the ``WARM_START_TOP`` best finished trials of the earlier study of the same
   target (the parameters the new space no longer has make the point unsuggestable; parameters it adds
   are left to TPE);
2. the intermediate settings of every earlier study's ``WARM_START_TOP`` best finished trials, the same
   target's first (partial points: TPE fills the target phase's parameters).

Then the space's own ``points_to_evaluate``, then TPE. Within the new search, ``--warm-start`` also feeds
each study the other targets' leaders as they appear (``search.searcher.Proposer.enqueue_leaders``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.layout import SearchLayout
from trainers.errors import UserError

if TYPE_CHECKING:  # the CLI's check of the earlier search's name loads neither Ray nor Optuna
    from search.space import SearchSpace


class WarmStartError(UserError, ValueError):
    """An earlier search that cannot be read (one line)."""


def check_earlier(earlier: SearchLayout) -> None:
    """The earlier search's Optuna database exists (no Ray, no Optuna: before any compute)."""
    if not earlier.optuna_db.is_file():
        raise WarmStartError(
            f"--warm-start {earlier.search}: no search {earlier.search!r} under {earlier.storage} "
            f"({earlier.optuna_db} is missing; --storage must be the earlier search's)"
        )


def earlier_points(
    space: SearchSpace, targets: list[str], earlier: SearchLayout
) -> dict[str, list[dict[str, Any]]]:
    """Per target of the new search, the earlier search's points it tries first (module docstring's order)."""
    import optuna

    from search.searcher import WARM_START_TOP, finished_trials, intermediate_part, study_leaders, suggestable

    check_earlier(earlier)
    storage = optuna.storages.RDBStorage(earlier.optuna_url)
    prefix = earlier.study_name("")
    studies = {
        name[len(prefix) :]: optuna.load_study(study_name=name, storage=storage)
        for name in optuna.get_all_study_names(storage)
        if name.startswith(prefix)
    }
    points: dict[str, list[dict[str, Any]]] = {}
    for target in targets:
        found: list[dict[str, Any]] = []
        own = studies.get(target)
        if own is not None:
            configurations = [dict(trial.params) for trial in finished_trials(own)]
            found += [p for p in configurations if suggestable(space, target, p)][:WARM_START_TOP]
        order = ([own] if own is not None else []) + [s for t, s in sorted(studies.items()) if t != target]
        parts = {intermediate_part(point) for point in found}
        for study in order:
            for leader in study_leaders(study):
                if intermediate_part(leader) not in parts and suggestable(space, target, leader):
                    found.append(leader)
                    parts.add(intermediate_part(leader))
        points[target] = found
    return points


__all__ = ["WarmStartError", "check_earlier", "earlier_points"]
