"""How fast the ``xstilts`` CLI answers ``--help`` and bad input, side by side with ``ray --help``.

Each command runs ``--repeats`` times, interleaved with the others (so background load hits all alike),
as a fresh process from a scratch directory; the table gives the median wall time and its ratio to
``ray --help``. Every xstilts command must exit as expected (0 for help, 2 for bad input) and print one
``xstilts: error:`` line for bad input, or the benchmark stops. ``python benchmarks/cli.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

COMMANDS: list[tuple[str, list[str], int]] = [
    ("ray --help", ["ray", "--help"], 0),
    ("xstilts --help", ["xstilts", "--help"], 0),
    ("xstilts search --help", ["xstilts", "search", "--help"], 0),
    ("xstilts run: config error (batch size 0)", ["xstilts", "run", "--set", "target.batch_size=0"], 2),
    (
        "xstilts run: model path that does not exist",
        ["xstilts", "run", "--set", "model.name_or_path=/no/such"],
        2,
    ),
    ("xstilts search: space error (unknown key)", ["xstilts", "search", "--space", "{bad_space}"], 2),
    ("xstilts search: space file not UTF-8", ["xstilts", "search", "--space", "{latin1_space}"], 2),
    ("xstilts search --name ../../etc", ["xstilts", "search", "--name", "../../etc"], 2),
    ("xstilts search --tracking-uri ftp://x", ["xstilts", "search", "--tracking-uri", "ftp://x"], 2),
]


def run_once(argv: list[str], expected: int, cwd: Path) -> float:
    """Wall seconds of one run; stops the benchmark if it does not answer as it should."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    if done.returncode != expected or (expected == 2 and not (len(lines) == 1 and "error:" in lines[0])):
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}, stderr:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xstilts-cli-bench-"))
    try:
        demo = Path(__file__).resolve().parents[1] / "spaces" / "demo.yaml"
        text = demo.read_text(encoding="utf-8")
        (work / "bad.yaml").write_text(text + "\nno_such_key: 1\n", encoding="utf-8")
        (work / "latin1.yaml").write_bytes(("# café\n" + text).encode("latin-1"))
        values = {"bad_space": str(work / "bad.yaml"), "latin1_space": str(work / "latin1.yaml")}
        commands = [(label, [a.format(**values) for a in argv], code) for label, argv, code in COMMANDS]
        times: dict[str, list[float]] = {label: [] for label, _, _ in commands}
        for _ in range(args.repeats):
            for label, argv, code in commands:
                times[label].append(run_once(argv, code, work))
        ray = statistics.median(times["ray --help"])
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, load average {load} (1/5/15 min)")
        print("| command | median s | min s | / ray --help |")
        print("|---|---:|---:|---:|")
        for label, samples in times.items():
            median = statistics.median(samples)
            print(f"| `{label}` | {median:.2f} | {min(samples):.2f} | {median / ray:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
