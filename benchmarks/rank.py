"""How well LogME ranks intermediate configurations before any target training, against the recorded grid.

For each target and grid seed, every intermediate configuration of the grid (and none: the base
encoder) is scored by LogME on the target's English training data, from the intermediate checkpoint
the grid's generation published (``--cache-dir``, benchmarks/grid.py's). The truth is the best
zero-shot average that configuration reached in the grid over its target learning rates and freeze
depths. Printed per target: regret@1 and regret@3 (zero-shot points lost by keeping only the top 1 or
3 by LogME), and Spearman's and Kendall's rank correlation, with the mean over seeds last:

    python benchmarks/rank.py --grid benchmarks/grid/miniature_tiny.parquet
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    """Score every intermediate checkpoint per target and seed; print the ranking quality."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="benchmarks/grid/miniature_tiny.parquet")
    parser.add_argument("--cache-dir", default="~/.cache/xstilts-grid", help="the grid generation's cache")
    parser.add_argument("--targets", nargs="+", default=["udpos", "panx"])
    parser.add_argument("--seeds", type=int, nargs="+", help="grid seeds (default: all in the grid)")
    args = parser.parse_args(argv)

    import grid as recorded
    import pandas as pd
    import torch
    from scipy.stats import kendalltau, spearmanr

    from trainers.keys import ZERO_SHOT_AVG
    from trainers.transferability import logme, target_features

    torch.set_num_threads(1)
    cache_dir = str(Path(args.cache_dir).expanduser())
    frame = pd.read_parquet(args.grid)
    seeds = args.seeds or sorted(int(s) for s in frame["seed"].unique())
    summary: dict[str, list[tuple[float, float, float, float]]] = {t: [] for t in args.targets}
    started = time.time()
    print(
        "| target | seed | configurations | LogME's top 1 | its zero-shot | best zero-shot | regret@1 | regret@3 | Spearman | Kendall |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for target in args.targets:
        for seed in seeds:
            rows = frame[(frame["target"] == target) & (frame["seed"] == seed)]
            truth = rows.groupby(["intermediate", "intermediate_steps"])[ZERO_SHOT_AVG].max()
            scores = {}
            for (name, steps), _ in truth.items():
                cell = next(
                    c
                    for c in recorded.cells((target,), (seed,))
                    if c.intermediate_name == name and c.intermediate_steps == steps
                )
                config = recorded.config_for(cell, cache_dir, str(Path(cache_dir) / "rank-scratch"))
                if cell.intermediate:
                    from trainers.checkpoint_cache import CheckpointCache, intermediate_key

                    found = CheckpointCache(Path(cache_dir) / "intermediate").lookup(intermediate_key(config))
                    if found is None:
                        raise SystemExit(f"rank: no checkpoint for {name}@{steps} seed {seed} in {cache_dir}")
                    encoder = str(found)
                else:
                    from trainers.encoders import resolve_encoder

                    encoder = str(resolve_encoder("tiny", cache_dir))
                features, labels = target_features(config, encoder)
                scores[(name, steps)] = logme(features, labels)
            order = sorted(scores, key=lambda k: scores[k], reverse=True)
            best = float(truth.max())
            regret1 = best - float(truth[order[0]])
            regret3 = best - max(float(truth[k]) for k in order[:3])
            keys = list(truth.index)
            rho = float(spearmanr([scores[k] for k in keys], [truth[k] for k in keys]).statistic)
            tau = float(kendalltau([scores[k] for k in keys], [truth[k] for k in keys]).statistic)
            summary[target].append((regret1, regret3, rho, tau))
            top = f"{order[0][0]}@{order[0][1]}"
            print(
                f"| {target} | {seed} | {len(keys)} | {top} | {truth[order[0]]:.2f} | {best:.2f} | "
                f"{regret1:.2f} | {regret3:.2f} | {rho:.2f} | {tau:.2f} |",
                flush=True,
            )
    print("\n| target | seeds | regret@1 (mean) | regret@3 (mean) | Spearman (mean) | Kendall (mean) |")
    print("|---|---|---|---|---|---|")
    for target, values in summary.items():
        means = [statistics.mean(v[i] for v in values) for i in range(4)]
        print(
            f"| {target} | {len(values)} | {means[0]:.2f} | {means[1]:.2f} | {means[2]:.2f} | {means[3]:.2f} |"
        )
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
