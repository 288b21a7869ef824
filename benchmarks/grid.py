"""Record the search benchmark's grid: every configuration of a small discrete space, trained for real.

A tabular benchmark (in the spirit of NAS-Bench / HPOBench): each row is one configuration and seed of
the miniature benchmark on the ``tiny`` encoder, run as a plain process through the same per-worker
function a trial runs (``trainers.worker.run_local``), with what a searcher could observe and pay for:

- the target phase's learning curve: ``en_dev`` and ``target_dev_avg_non_en`` at every evaluation step,
  and the target-phase seconds spent up to each of them;
- the final scores: ``en_dev``, ``zero_shot/<lang>``, ``zero_shot_avg``, ``target_dev/<lang>``;
- the cost of each phase in optimizer steps and seconds, the intermediate phase separately (it is
  trained once per intermediate configuration and seed and reused by every target configuration, so
  a searcher that reuses it pays it once: the replay prices that).

Rows are appended to ``<out>.jsonl`` as they finish (a killed run resumes where it stopped); the
finished grid is written as Parquet. Generation takes hours on one CPU core and is not run in CI:

    python benchmarks/grid.py --out benchmarks/grid/miniature_tiny.parquet

``--smoke`` runs a two-configuration slice in a temporary directory (what CI runs).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The grid's space. Intermediate configurations are shared by all targets (Phang et al.'s grid design).
INTERMEDIATE_TASKS: tuple[tuple[str, ...], ...] = (
    (),  # no intermediate phase: the baseline
    ("mnli",),
    ("anli",),
    ("qqp",),
    ("sst2",),
    ("squad_v1",),
    ("squad_v2",),
    ("hellaswag",),
    ("cosmosqa",),
    ("commonsenseqa",),
    ("ccg",),
    ("ccg", "mnli"),  # a mixture
)
INTERMEDIATE_STEPS = (30, 90)
INTERMEDIATE_LR = 1e-3
TARGETS = ("udpos", "panx", "tatoeba")
FREEZE_DEPTHS = (0, 1, 2)  # every depth of the 2-layer tiny encoder
TARGET_LRS = (3e-4, 1e-3, 3e-3)
SEEDS = (0, 1, 2)
TARGET_STEPS = 40
EVAL_EVERY = 10


@dataclass(frozen=True)
class Cell:
    """One configuration of the grid, for one seed."""

    target: str
    intermediate: tuple[str, ...]
    intermediate_steps: int  # 0 without an intermediate phase
    freeze_depth: int
    target_lr: float
    seed: int

    @property
    def intermediate_name(self) -> str:
        """``none``, a task name, or a mixture's names joined with ``+``."""
        return "+".join(self.intermediate) or "none"

    @property
    def key(self) -> str:
        """A stable id of the cell (the resume key)."""
        return (
            f"{self.target}|{self.intermediate_name}|{self.intermediate_steps}|{self.freeze_depth}|"
            f"{self.target_lr:g}|{self.seed}"
        )


def cells(targets: tuple[str, ...], seeds: tuple[int, ...]) -> list[Cell]:
    """Every cell, seed by seed, grouped by intermediate configuration (trained once, then reused)."""
    out: list[Cell] = []
    for seed in seeds:
        for tasks in INTERMEDIATE_TASKS:
            for steps in INTERMEDIATE_STEPS if tasks else (0,):
                for target in targets:
                    retrieval = target in ("tatoeba", "bucc")
                    # Retrieval targets have no target phase: one cell per intermediate configuration.
                    depths = (0,) if retrieval else FREEZE_DEPTHS
                    lrs = (TARGET_LRS[0],) if retrieval else TARGET_LRS
                    for depth, lr in itertools.product(depths, lrs):
                        out.append(Cell(target, tasks, steps, depth, lr, seed))
    return out


def config_for(cell: Cell, cache_dir: str, output_dir: str) -> Any:
    """The TransferConfig of a cell (the demo space's base settings)."""
    from trainers.config import TransferConfig

    data: dict[str, Any] = {
        "model": {"name_or_path": "tiny", "max_seq_length": 64, "doc_stride": 32},
        "data": {
            "source": "miniature",
            "max_train_examples": 256,
            "max_eval_examples": 64,
            "cache_dir": cache_dir,
        },
        "deepspeed": {"zero_stage": 0, "precision": "fp32"},
        "evaluation": {"split": "test", "batch_size": 64},
        "target": {
            "task": cell.target,
            "batch_size": 16,
            "max_steps": TARGET_STEPS,
            "eval_every": EVAL_EVERY,
            "warmup_ratio": 0.1,
            "learning_rate": cell.target_lr,
            "freeze_depth": cell.freeze_depth,
            "eval_target_dev": True,
        },
        "seed": cell.seed,
        "output_dir": output_dir,
    }
    if cell.intermediate:
        data["intermediate"] = {
            "tasks": list(cell.intermediate),
            "learning_rate": INTERMEDIATE_LR,
            "max_steps": cell.intermediate_steps,
            "batch_size": 16,
            "warmup_ratio": 0.1,
        }
    return TransferConfig.from_dict(data)


def run_cell(
    cell: Cell, cache_dir: str, scratch: Path, intermediate_costs: dict[str, dict[str, float]]
) -> dict:
    """Train and evaluate one cell; return its row."""
    from trainers import keys
    from trainers.checkpoint_cache import intermediate_key
    from trainers.worker import Plan, run_local

    output_dir = scratch / "run"
    shutil.rmtree(output_dir, ignore_errors=True)
    config = config_for(cell, cache_dir, str(output_dir))
    started = time.time()
    metrics = run_local(Plan(config, str(Path(cache_dir) / "intermediate"), launched_at=started))
    wall = time.time() - started
    reports = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    # The learning curve: every periodic evaluation, then the final one; seconds counted from the
    # target phase's first report (step 0), which is sent after phase 1.
    target_start = next(r["time"] for r in reports if r.get(keys.TARGET_STEP) == 0)
    curve = [r for r in reports if keys.EN_DEV in r and r.get(keys.TARGET_STEP, 0) > 0]
    row: dict[str, Any] = {
        "cell": cell.key,
        "target": cell.target,
        "intermediate": cell.intermediate_name,
        "intermediate_steps": cell.intermediate_steps,
        "freeze_depth": cell.freeze_depth,
        "target_lr": cell.target_lr,
        "seed": cell.seed,
        "curve_step": [int(r[keys.TARGET_STEP]) for r in curve],
        "curve_en_dev": [float(r[keys.EN_DEV]) for r in curve],
        "curve_target_dev": [float(r.get(keys.TARGET_DEV_AVG_NON_EN, float("nan"))) for r in curve],
        "curve_s": [float(r["time"] - target_start) for r in curve],
        # The final scores under the metrics' own names (search/replay.py reports them back by these).
        keys.EN_DEV: float(metrics.get(keys.EN_DEV, float("nan"))),
        keys.TARGET_DEV_AVG_NON_EN: float(metrics.get(keys.TARGET_DEV_AVG_NON_EN, float("nan"))),
        keys.ZERO_SHOT_AVG: float(metrics[keys.ZERO_SHOT_AVG]),
        keys.ZERO_SHOT_AVG_NON_EN: float(metrics.get(keys.ZERO_SHOT_AVG_NON_EN, float("nan"))),
        "zero_shot": {
            k.split("/")[1]: float(v)
            for k, v in metrics.items()
            if k.count("/") == 1 and k.startswith(keys.ZERO_SHOT + "/")
        },
        "target_steps": 0 if cell.target == "tatoeba" else TARGET_STEPS,
        "target_s": float(metrics.get(keys.TIME_PHASE_S.format(phase="target"), 0.0)),
        "eval_s": float(metrics.get(keys.TIME_PHASE_S.format(phase="eval"), 0.0)),
        "wall_s": wall,
    }
    if cell.intermediate:
        key = intermediate_key(config)
        if metrics.get(keys.INTERMEDIATE_REUSED) != 1.0:
            intermediate_costs[key] = {
                "s": float(metrics[keys.TIME_PHASE_S.format(phase="intermediate")]),
                "steps": float(cell.intermediate_steps),
            }
        row["intermediate_key"] = key
        row["intermediate_s"] = intermediate_costs.get(key, {}).get("s", float("nan"))
        row["intermediate_en_dev"] = float(
            next(
                (v for k, v in metrics.items() if k.startswith("intermediate/") and k.endswith("/en_dev")),
                float("nan"),
            )
        )
    else:
        row["intermediate_key"] = ""
        row["intermediate_s"] = 0.0
        row["intermediate_en_dev"] = float("nan")
    return row


def machine() -> str:
    """What the grid was measured on."""
    return f"{platform.machine()}, {os.cpu_count()} cores, torch threads {_threads()}, Python {platform.python_version()}"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def summary(path: Path) -> str:
    """Markdown tables of a written grid: what it holds, what each intermediate task gains, what it costs."""
    import pandas as pd

    from trainers import keys

    frame = pd.read_parquet(path)
    lines = [
        f"{path}: {len(frame)} rows, {frame['seed'].nunique()} seeds, {path.stat().st_size / 1e6:.2f} MB",
        "",
        "| target | cells per seed | zero-shot of the best cell (mean over seeds) | its configuration (seed 0) | "
        "baseline's best | gain |",
        "|---|---|---|---|---|---|",
    ]
    for target, rows in frame.groupby("target", sort=False):
        best = rows.loc[rows.groupby("seed")[keys.ZERO_SHOT_AVG].idxmax()]
        base = rows[rows["intermediate"] == "none"].groupby("seed")[keys.ZERO_SHOT_AVG].max()
        first = best.iloc[0]
        config = (
            f"{first['intermediate']}@{first['intermediate_steps']}, freeze {first['freeze_depth']}, "
            f"lr {first['target_lr']:g}"
        )
        lines.append(
            f"| {target} | {len(rows) // rows['seed'].nunique()} | {best['zero_shot_avg'].mean():.2f} | {config} | "
            f"{base.mean():.2f} | {best['zero_shot_avg'].mean() - base.mean():+.2f} |"
        )
    lines += [
        "",
        "Best zero-shot average per intermediate configuration (over target settings; mean over seeds), minus "
        "the baseline's:",
        "",
    ]
    targets = list(frame["target"].unique())
    lines.append("| intermediate | steps | " + " | ".join(targets) + " | intermediate s (median) |")
    lines.append("|---|---|" + "---|" * len(targets) + "---|")
    per = frame.groupby(["target", "seed", "intermediate", "intermediate_steps"])[keys.ZERO_SHOT_AVG].max()
    base_by = {t: per[t].xs("none", level="intermediate").groupby("seed").max() for t in targets}
    for (name, steps), rows in frame.groupby(["intermediate", "intermediate_steps"], sort=False):
        if name == "none":
            continue
        gains = []
        for target in targets:
            values = per[target].xs((name, steps), level=("intermediate", "intermediate_steps"))
            gains.append(f"{(values - base_by[target]).mean():+.2f}")
        cost = rows.drop_duplicates("intermediate_key")["intermediate_s"].median()
        lines.append(f"| {name} | {steps} | " + " | ".join(gains) + f" | {cost:.2f} |")
    trained = frame[frame["target_steps"] > 0]
    lines += [
        "",
        f"target phase: median {trained['target_s'].median():.2f} s for {TARGET_STEPS} steps with "
        f"{TARGET_STEPS // EVAL_EVERY} evaluations of every language's dev split; zero-shot evaluation: "
        f"median {frame['eval_s'].median():.2f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Generate (or continue) the grid and write it as Parquet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="Parquet file (default: benchmarks/grid/miniature_tiny.parquet)")
    parser.add_argument(
        "--cache-dir",
        help="data.cache_dir: miniature, features, intermediate checkpoints (default: ~/.cache/xstilts-grid)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one core by default)")
    parser.add_argument("--smoke", action="store_true", help="two cells in a temporary directory")
    parser.add_argument("--summary", action="store_true", help="print tables of the written --out grid")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(Path(args.out or "benchmarks/grid/miniature_tiny.parquet")))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()  # a load report per cell would bury the progress lines
    transformers.logging.disable_progress_bar()
    todo = cells(tuple(args.targets), tuple(args.seeds))
    scratch = Path(tempfile.mkdtemp(prefix="xstilts-grid-"))
    if args.smoke:  # the baseline and one intermediate task, one target configuration each
        first = [
            c for c in todo if c.target == args.targets[0] and c.freeze_depth == 0 and c.seed == args.seeds[0]
        ]
        todo = [c for c in first if c.target_lr == max(c2.target_lr for c2 in first)]
        todo = [c for c in todo if c.intermediate in ((), ("ccg",))][:2]
    out = Path(
        args.out or (scratch / "grid.parquet" if args.smoke else "benchmarks/grid/miniature_tiny.parquet")
    )
    cache_dir = str(
        Path(args.cache_dir or (scratch / "cache" if args.smoke else "~/.cache/xstilts-grid")).expanduser()
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".jsonl")
    done = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            row = json.loads(line)
            done[row["cell"]] = row
    costs: dict[str, dict[str, float]] = {
        r["intermediate_key"]: {"s": r["intermediate_s"], "steps": r["intermediate_steps"]}
        for r in done.values()
        if r["intermediate_key"] and r["intermediate_s"] == r["intermediate_s"]
    }
    started = time.time()
    remaining = [c for c in todo if c.key not in done]
    print(f"grid: {len(todo)} cells, {len(done)} done, {len(remaining)} to run; {machine()}", flush=True)
    with partial.open("a") as handle:
        for index, cell in enumerate(remaining, 1):
            row = run_cell(cell, cache_dir, scratch, costs)
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            done[cell.key] = row
            if index % 10 == 0 or index == len(remaining):
                rate = (time.time() - started) / index
                print(
                    f"grid: {index}/{len(remaining)} ({rate:.1f} s/cell, ~{rate * (len(remaining) - index) / 60:.0f} min left)",
                    flush=True,
                )
    import pandas as pd

    frame = pd.DataFrame([done[c.key] for c in todo])
    frame.attrs["machine"] = machine()
    frame.to_parquet(out, index=False)
    print(f"grid: wrote {out} ({len(frame)} rows, {out.stat().st_size / 1e6:.2f} MB)")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
