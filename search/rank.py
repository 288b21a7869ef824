"""``xstilts rank``: order the base encoder and the cached intermediate encoders for a target, untrained.

Each candidate (the config's base encoder, and every published intermediate checkpoint of the same
encoder and data source in the cache) is scored by LogME on the target's English training data
(``trainers/transferability.py``): a cheap, frozen-feature estimate of how well a head on it fits the
target's labels, computed in seconds per encoder, before any target training. How well that ranking
predicts zero-shot transfer is measured against the recorded grid by ``benchmarks/rank.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_rank(args: argparse.Namespace) -> int:
    """Score every candidate encoder for the config's target and print them best first."""
    from search.cli import load_run_config
    from trainers.config import TransferConfig
    from trainers.preflight import preflight

    config = load_run_config(args.config, args.set)
    assert isinstance(config, TransferConfig)
    preflight(config)
    import transformers

    from trainers.transferability import rank_encoders

    transformers.logging.set_verbosity_error()  # one load report per candidate would bury the table
    transformers.logging.disable_progress_bar()

    cache_root = args.cache_root or str(Path(config.data.cache_dir).expanduser() / "intermediate")
    ranked = rank_encoders(config, cache_root)
    print(
        f"{config.target.task}: LogME of {len(ranked)} encoder(s) on its English training data (higher first)"
    )
    print(f"{'rank':>4}  {'intermediate':<24} {'steps':>6} {'lr':>9} {'seed':>5}  {'LogME':>8}")
    for index, entry in enumerate(ranked, 1):
        inter = entry.key_fields.get("intermediate", {})
        steps = str(inter.get("max_steps", "")) if inter else ""
        lr = f"{inter['learning_rate']:.2g}" if inter else ""
        seed = str(entry.key_fields.get("seed", "")) if inter else ""
        print(f"{index:>4}  {entry.name:<24} {steps:>6} {lr:>9} {seed:>5}  {entry.score:>8.4f}")
    return 0


def add_rank_parser(commands: Any) -> None:
    """``xstilts rank``."""
    rank = commands.add_parser(
        "rank",
        help="rank the base and the cached intermediate encoders for a target by LogME (no training)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rank.add_argument(
        "--config", help="TransferConfig YAML: target, encoder, data (default: the embedded demo)"
    )
    rank.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="dotted override (repeatable)"
    )
    rank.add_argument(
        "--cache-root",
        help="the intermediate-checkpoint cache to rank (default: <data.cache_dir>/intermediate)",
    )
    rank.set_defaults(func=cmd_rank)


__all__ = ["add_rank_parser", "cmd_rank"]
