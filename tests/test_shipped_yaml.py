"""Every YAML file the project ships, found by glob (not listed by hand), loads through the loader that reads it
in use: spaces through ``load_space`` (and every seeded point builds a ``TransferConfig``), the embedded run
configs through ``TransferConfig.from_yaml``. A YAML file anywhere else fails here until a test validates it."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cli import DEFAULT_RUN_CONFIG, load_run_config
from search.space import INTERMEDIATE_TASK, SPACES_DIR, TARGET_TASK, load_space
from trainers.config import TransferConfig

REPO = Path(__file__).resolve().parents[1]
SEARCH = REPO / "search"

SPACES = sorted(SPACES_DIR.glob("*.yaml"))
"""The shipped search spaces (``xstilts search --space NAME``)."""
RUN_CONFIGS = sorted((SEARCH / "defaults").glob("**/*.yaml"))
"""The run configs embedded in the package (``xstilts run`` without ``--config``)."""
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
"""Run configs for ``xstilts run --config`` (examples/real-udpos.yaml)."""
CLUSTER_CONFIGS = sorted(REPO.glob("cluster*.yaml"))
"""Ray cluster launcher configs: validated against Ray's schema in tests/test_cluster_config.py."""
SHIPPED_DIRS = ("spaces", "search", "trainers", "benchmarks", "docs", "examples")
"""Where shipped YAML may live (``runs/``, outputs and caches are not shipped)."""


def _relative(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(REPO)) for path in paths]


def test_the_globs_find_the_shipped_files() -> None:
    assert SPACES and RUN_CONFIGS
    assert SEARCH / DEFAULT_RUN_CONFIG in RUN_CONFIGS


def test_every_shipped_yaml_is_validated_by_a_test() -> None:
    found = {path for folder in SHIPPED_DIRS for path in (REPO / folder).glob("**/*.y*ml")}
    found |= set(REPO.glob("*.y*ml"))
    covered = set(SPACES) | set(RUN_CONFIGS) | set(EXAMPLES) | set(CLUSTER_CONFIGS)
    assert sorted(_relative(sorted(found - covered))) == []


@pytest.mark.parametrize("path", SPACES, ids=_relative(SPACES))
def test_shipped_space_loads_and_points_build_configs(path: Path) -> None:
    space = load_space(path)
    assert space.name == path.stem and space.targets
    assert load_space(path.stem) == space  # the bare name finds it
    for target in space.targets:
        points = space.points_for(target)
        assert points, f"{path.stem}: no points for {target}"
        assert points[0][INTERMEDIATE_TASK] == "none"  # the baseline comes first
        for point in points:
            config = space.to_transfer_config({**point, TARGET_TASK: target}, target)
            assert isinstance(config, TransferConfig) and config.target.task == target


@pytest.mark.parametrize("path", RUN_CONFIGS + EXAMPLES, ids=_relative(RUN_CONFIGS + EXAMPLES))
def test_shipped_run_config_loads(path: Path) -> None:
    config = TransferConfig.from_yaml(path)
    assert TransferConfig.from_dict(config.to_dict()) == config  # resolved and complete
    if path == SEARCH / DEFAULT_RUN_CONFIG:
        assert load_run_config(None, []) == config  # what `xstilts run` without --config runs
