"""Writing the miniature: each task's files in a directory of its own version, and one view of all of them.

On disk, under a root (``data.data_dir``, or ``<data.cache_dir>/data``)::

    miniature-tasks/<task>-v<version>/<lang>/<split>.jsonl   one task's files (and its MANIFEST.json)
    miniature-<digest>/<task> -> ../miniature-tasks/<task>-v<version>
    miniature-<digest>/MANIFEST.json                         which task versions the view links

The view is what the ``local`` loader reads (``<root>/<task>/<lang>/<split>.jsonl``). Its name hashes the
task versions it links, so adding a task, or bumping one task's version, makes a new view that links the
other tasks' existing directories: only that task is generated. Every directory appears by an atomic rename
(``trainers._atomic.build_directory``), so concurrent callers see a complete directory or none.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from trainers._atomic import build_directory
from trainers.progress import stage
from trainers.tasks import TASKS, TaskSpec, TaskType

from ._registry import GENERATORS
from ._render import _rng

MINIATURE_LANGUAGES = ("en", "de", "es", "ru")
"""The languages of the miniature; Russian is the non-Latin script."""
LAYOUT_VERSION = "2"
"""How the tree is laid out (not what the files hold: that is each task's own version)."""
TASKS_DIR = "miniature-tasks"
"""The directory, under the root, of every task's versioned files."""
MANIFEST = "MANIFEST.json"
"""Written last into every directory here: its presence marks a complete one."""

N_TRAIN = 1200
N_QA_TRAIN = 800
N_DEV = 120
N_TEST = 200
N_RETRIEVAL = 150


def miniature_splits(spec: TaskSpec) -> list[tuple[str, str, int]]:
    """The (language, split, size) files the miniature holds for ``spec``."""
    # A task none of whose languages the miniature has (XCOPA) is evaluated on the miniature's own
    # non-English languages, standing in for them.
    languages = [lang for lang in MINIATURE_LANGUAGES if lang in spec.languages] or [
        lang for lang in MINIATURE_LANGUAGES if lang != "en"
    ]
    train_size = N_QA_TRAIN if spec.type is TaskType.SPAN_QA else N_TRAIN
    if spec.role == "intermediate":
        # A translate-train task trains on every language the miniature has of it.
        trained = [lang for lang in MINIATURE_LANGUAGES if lang == "en" or lang in spec.train_languages]
        return [(lang, "train", train_size) for lang in trained] + [("en", "dev", N_DEV)]
    if spec.is_retrieval:
        return [(lang, split, N_RETRIEVAL) for lang in languages if lang != "en" for split in ("dev", "test")]
    plan = [] if spec.train_task else [("en", "train", train_size)]
    return plan + [
        (lang, split, size) for lang in languages for split, size in (("dev", N_DEV), ("test", N_TEST))
    ]


def miniature_tasks() -> dict[str, str]:
    """Registry task -> the version of its miniature files, for every task the miniature generates."""
    return {name: GENERATORS[name].version for name in sorted(TASKS) if name in GENERATORS}


def view_name(tasks: dict[str, str]) -> str:
    """The name of the view linking ``tasks`` (task -> version)."""
    digest = hashlib.sha256(json.dumps([LAYOUT_VERSION, sorted(tasks.items())]).encode()).hexdigest()
    return f"miniature-{digest[:12]}"


def write_task(directory: Path, name: str, seed: int = 0) -> None:
    """Write task ``name``'s files as ``<directory>/<lang>/<split>.jsonl``, then its manifest."""
    generator = GENERATORS[name]
    for lang, split, size in miniature_splits(TASKS[name]):
        # The key of a parallel task leaves the language out: every language draws the same content.
        rows = generator.generate(
            _rng(seed, name, split, "parallel" if generator.parallel else lang), lang, split, size
        )
        path = directory / lang / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    manifest = {"task": name, "version": generator.version, "seed": seed}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def generate_miniature(root: Path, seed: int = 0) -> Path:
    """Write every task the miniature generates as ``<root>/<task>/<lang>/<split>.jsonl``; return ``root``."""
    root = Path(root)
    tasks = miniature_tasks()
    for name in tasks:
        write_task(root / name, name, seed)
    manifest = {"layout": LAYOUT_VERSION, "seed": seed, "tasks": tasks}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return root


def _task_dir(root: Path, name: str) -> Path:
    return root / TASKS_DIR / f"{name}-v{GENERATORS[name].version}"


def ensure_task(root: Path, name: str) -> Path:
    """``<root>/miniature-tasks/<name>-v<version>``, generated first if missing; safe under concurrent callers."""
    final = _task_dir(Path(root).expanduser(), name)
    if (final / MANIFEST).is_file():
        return final
    return build_directory(final, lambda staging: write_task(staging, name))


def ensure_miniature(root: Path) -> Path:
    """The view of every task the miniature generates (``<root>/miniature-<digest>``), generated first where
    missing; safe under concurrent callers."""
    root = Path(root).expanduser()
    tasks = miniature_tasks()
    final = root / view_name(tasks)
    if (final / MANIFEST).is_file():
        return final
    missing = [name for name in tasks if not (_task_dir(root, name) / MANIFEST).is_file()]
    if missing:
        which = "every task" if len(missing) == len(tasks) else ", ".join(missing)
        what = f"generating the miniature benchmark ({which}) in {root / TASKS_DIR}"
        with stage(what):
            for name in missing:
                ensure_task(root, name)

    def link(staging: Path) -> None:
        for name in tasks:
            target = ensure_task(root, name)  # present, unless removed meanwhile: then made again
            os.symlink(Path("..") / TASKS_DIR / target.name, staging / name, target_is_directory=True)
        manifest = {"layout": LAYOUT_VERSION, "seed": 0, "tasks": tasks}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")

    return build_directory(final, link)
