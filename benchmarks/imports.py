"""What a fresh process pays to import the search driver and the trainer's worker, side by side across trees.

Each measurement is one new Python process timing one statement (``python -c``), median over ``--repeats``,
with the trees' runs interleaved so that load on the machine falls on all of them alike. A tree is a checkout
of this repository (``git worktree add /tmp/base <rev>`` gives an earlier one); it goes first on
``PYTHONPATH``. Rows: the driver (``search.tuner``), the worker (``trainers.worker``), and DeepSpeed as a
worker first imports it (``trainers.deepspeed_ops.import_deepspeed``, where the tree has it) beside a plain
``import deepspeed``.

    python benchmarks/imports.py --trees . /tmp/base --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

STATEMENTS = {
    "search driver (import search.tuner)": "import search.tuner",
    "worker (import trainers.worker)": "import trainers.worker",
    "DeepSpeed, as a worker imports it": (
        "try:\n"
        "    from trainers.deepspeed_ops import import_deepspeed\n"
        "except ImportError:\n"
        "    import deepspeed\n"
        "else:\n"
        "    import_deepspeed()\n"
    ),
    "DeepSpeed, plain import": "import deepspeed",
}


def seconds(tree: Path, statement: str) -> float:
    """Wall seconds of ``statement`` in a fresh interpreter importing from ``tree``."""
    code = f"import time\nstarted = time.perf_counter()\n{statement}\nprint('SECONDS', time.perf_counter() - started)\n"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"imports: {tree}: {statement!r} failed:\n{done.stderr[-2000:]}")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("SECONDS "))
    return float(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trees", nargs="+", default=["."], help="checkouts to compare (the first is 'this')"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    trees = [Path(tree).resolve() for tree in args.trees]
    times: dict[tuple[str, Path], list[float]] = {}
    for _ in range(args.repeats):
        for name, statement in STATEMENTS.items():
            for tree in trees:
                times.setdefault((name, tree), []).append(seconds(tree, statement))
    load = os.getloadavg()[0]
    print(f"# {args.repeats} fresh processes per cell, median seconds; load average {load:.1f} at the end")
    print("| import | " + " | ".join(str(tree) for tree in trees) + " | time, first / each other |")
    print("|---|" + "---:|" * len(trees) + "---|")
    for name in STATEMENTS:
        medians = [statistics.median(times[(name, tree)]) for tree in trees]
        ratios = ", ".join(f"{medians[0] / m:.2f}x" for m in medians[1:]) or "-"
        print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in medians) + f" | {ratios} |")
    driver = [statistics.median(times[("search driver (import search.tuner)", tree)]) for tree in trees]
    worker = [statistics.median(times[("worker (import trainers.worker)", tree)]) for tree in trees]
    print(f"RESULT driver_import_s={driver[0]:.2f} worker_import_s={worker[0]:.2f}")


if __name__ == "__main__":
    main()
