"""``python search/main.py [ARGS]`` is ``xstilts search [ARGS]``.

This is the file ``ray submit cluster.yaml search/main.py -- --space spaces/xtreme.yaml`` uploads to
the head node and runs there (where the project is installed by the cluster's setup commands).
"""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
# Running a file puts its own folder first on sys.path, where search/*.py would shadow top-level
# modules; drop it, and let a checkout's root win so this works without installing too.
if sys.path and os.path.abspath(sys.path[0] or ".") == _here:
    sys.path.pop(0)
_root = os.path.dirname(_here)
if os.path.isfile(os.path.join(_root, "search", "__init__.py")):
    sys.path.insert(0, _root)

from search.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["search", *sys.argv[1:]]))
