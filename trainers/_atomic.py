"""Build a directory once, atomically: in a staging directory beside it, then renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from trainers.progress import stage


def build_directory_once(final: Path, marker: str, what: str, build: Callable[[Path], None]) -> Path:
    """``final`` if its ``marker`` file exists, else ``build`` it in staging (announced as ``what``) and rename.

    Concurrent builders each build; the first rename wins and the others' copies are dropped, which is
    right only for deterministic builds (the encoders are).
    """
    if (final / marker).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    try:
        with stage(what):
            build(staging)
        try:
            os.rename(staging, final)
        except OSError:
            # Another process published it first; theirs is identical (deterministic build).
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final
