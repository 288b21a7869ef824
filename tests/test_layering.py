"""The layering: ``trainers/`` (what runs on the workers) never imports ``search/`` (the driver).

Read from the import statements themselves (``ast``), at any depth of the package and wherever they sit
(inside functions too), so a lazy import counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trainers

TRAINERS = Path(trainers.__file__).resolve().parent
DRIVER_PACKAGES = ("search",)


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of every module the file at ``path`` (in dotted ``package``) imports, relative ones resolved."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                assert base, f"{path}: a relative import climbs out of the trainers package"
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def trainers_modules() -> list[tuple[Path, str]]:
    """(file, dotted package it lives in) for every Python file of ``trainers/``."""
    found = []
    for path in sorted(TRAINERS.rglob("*.py")):
        package = ".".join(("trainers", *path.parent.relative_to(TRAINERS).parts))
        found.append((path, package))
    return found


def test_the_walk_sees_imports_of_every_kind(tmp_path: Path) -> None:
    """The checker itself: plain, from, relative and function-local imports are all found."""
    source = tmp_path / "probe.py"
    source.write_text(
        "import os\nfrom search import tuner\nfrom . import keys\nfrom ..data import features\n"
        "def f():\n    import search.select\n"
    )
    names = imported_modules(source, "trainers.data")
    assert {"os", "search", "search.tuner", "trainers.data.keys", "trainers.data.features"} <= names
    assert "search.select" in names


@pytest.mark.parametrize(
    ("path", "package"),
    trainers_modules(),
    ids=lambda v: v.relative_to(TRAINERS.parent).as_posix() if isinstance(v, Path) else "",
)
def test_trainers_never_imports_search(path: Path, package: str) -> None:
    offending = sorted(
        name
        for name in imported_modules(path, package)
        if any(name == driver or name.startswith(f"{driver}.") for driver in DRIVER_PACKAGES)
    )
    assert not offending, f"{path.relative_to(TRAINERS.parent)} imports {offending}"


def test_every_trainers_subpackage_is_walked() -> None:
    walked = {package for _, package in trainers_modules()}
    assert {"trainers", "trainers.data", "trainers.tasks"} <= walked
