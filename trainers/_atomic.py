"""Atomic writes: a file or a directory is written under a temporary name beside its final one, then renamed.

A reader (another rank, trial, node or a later run) sees the old version or the new one, never half of
one; a writer that dies leaves only a hidden temporary name behind, never a broken final one. Renames
are atomic on POSIX filesystems, NFS/EFS included, when both names are in one directory's filesystem,
which is why every temporary name here sits beside its final name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from trainers.progress import stage

SHARED_MODE = 0o755
"""Mode of a directory built here: ``mkdtemp`` makes it private, but the trees built this way are shared
data (the miniature, encoders, feature caches) read by other users' and nodes' processes."""


def write_text_atomic(path: Path, text: str, *, durable: bool = False) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and ``os.replace``.

    ``durable`` also fsyncs the file before the rename (and the directory after), so that a host crash
    cannot leave the new name holding an empty file. The temporary file is removed on any error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


@contextlib.contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """A fresh hidden directory beside ``final`` to build in; removed on exit unless renamed away by then."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        staging.chmod(SHARED_MODE)
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def rename_into_place(staging: Path, final: Path) -> bool:
    """Rename the finished ``staging`` directory to ``final``: True if ours is now there.

    False when another writer published ``final`` first (the rename fails on a non-empty directory):
    ours is dropped and theirs kept, which is right for builds whose outputs are interchangeable. Any
    other failure (``final`` still missing) is raised.
    """
    try:
        os.rename(staging, final)
    except OSError:
        if not Path(final).is_dir():  # not a lost race: a real error
            raise
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def build_directory(final: Path, build: Callable[[Path], object], what: str | None = None) -> Path:
    """Build a directory with ``build(staging)`` beside ``final`` and rename it into place; ``final``.

    Concurrent builders each build; the first rename wins and the others' copies are dropped. ``what``,
    when given, announces the build as a progress stage.
    """
    with staged_directory(final) as staging:
        with stage(what) if what is not None else contextlib.nullcontext():
            build(staging)
        rename_into_place(staging, final)
    return final


def build_directory_once(final: Path, marker: str, what: str, build: Callable[[Path], object]) -> Path:
    """``final`` if its ``marker`` file exists, else ``build`` it in staging (announced as ``what``) and rename.

    Concurrent builders each build; the first rename wins and the others' copies are dropped, which is
    right only for deterministic builds (the encoders are).
    """
    if (final / marker).is_file():
        return final
    return build_directory(final, build, what)


def fsync_dir(path: Path) -> None:
    """fsync a directory (its entries: names created or renamed in it); best effort, as some filesystems refuse."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (best effort), before renaming it into place."""
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)
        fsync_dir(Path(directory))
