"""Process-group start-up with and without DeepSpeed's shared-memory op build, side by side.

Each measurement is a fresh Python process that joins a one-rank gloo group the way a worker does,
either through ``deepspeed.init_distributed`` as DeepSpeed ships it (which JIT-builds its CPU
shared-memory op) or through ``trainers.engine.init_distributed`` (which skips that op). Three states of
torch's extension cache (``TORCH_EXTENSIONS_DIR``): cold (empty, as on a fresh machine), warm (the op
already built), and stale (a ``lock`` file left by a killed build, which DeepSpeed waits on forever: the
run is stopped after ``--stale-limit`` seconds). ``python benchmarks/deepspeed_ops.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainers.deepspeed_ops import SHM_COMM_OP

# The child process: the same rank variables a one-worker job has, then the timed init call.
CHILD = """
import os, sys, time
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2], RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
import torch, deepspeed
from trainers import engine
start = time.perf_counter()
if sys.argv[1] == "deepspeed":
    deepspeed.init_distributed(dist_backend="gloo")
else:
    engine.init_distributed(torch.device("cpu"))
print(f"INIT_S={time.perf_counter() - start:.3f}")
"""


def measure(mode: str, extensions: Path, limit_s: float, port: int) -> tuple[float, float | None]:
    """Wall seconds of one child process and its init call's seconds (None when it was stopped)."""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(extensions), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=limit_s,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, None
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-2000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("INIT_S=")][-1]
    return wall, float(line.split("=", 1)[1])


def main() -> None:
    """Measure every (mode, cache state) pair and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per mode (median reported)")
    parser.add_argument(
        "--stale-limit", type=float, default=60.0, help="seconds before a stale run is stopped"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="xstilts-ops-"))
    rows: list[tuple[str, str, float, float | None]] = []
    try:
        port = 29600
        for mode in ("deepspeed", "xstilts"):
            # Cold: a fresh cache per mode, so the DeepSpeed row pays the whole build.
            cold = root / f"cold-{mode}"
            wall, init = measure(mode, cold, 900.0, port)
            rows.append((mode, "cold", wall, init))
            port += 1
        warm = root / "cold-deepspeed"  # the op DeepSpeed just built
        for mode in ("deepspeed", "xstilts"):
            runs = []
            for _ in range(args.repeats):
                runs.append(measure(mode, warm, 900.0, port))
                port += 1
            runs.sort(key=lambda r: r[0])
            rows.append((mode, "warm", *runs[len(runs) // 2]))
        for mode in ("deepspeed", "xstilts"):
            stale = root / f"stale-{mode}"
            shutil.copytree(warm, stale)
            (stale / SHM_COMM_OP / "lock").touch()  # what a build killed mid-way leaves
            wall, init = measure(mode, stale, args.stale_limit, port)
            rows.append((mode, "stale lock", wall, init))
            port += 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| init_distributed | extension cache | process wall s | init call s |")
    print("|---|---|---:|---:|")
    for mode, state, wall, init in rows:
        name = "DeepSpeed as shipped" if mode == "deepspeed" else "xstilts (shm op skipped)"
        shown = f"{init:.2f}" if init is not None else f"hung, stopped at {args.stale_limit:.0f}"
        print(f"| {name} | {state} | {wall:.1f} | {shown} |")
    by = {(m, s): w for m, s, w, _ in rows}
    for state in ("cold", "warm"):
        print(
            f"{state}: DeepSpeed as shipped / xstilts process wall = {by['deepspeed', state] / by['xstilts', state]:.2f}"
        )


if __name__ == "__main__":
    main()
