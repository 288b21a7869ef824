"""``python -m trainers --config C.yaml [key=value ...]``: run one transfer configuration without Ray.

The same per-worker function as under Ray Train, as a plain process; under ``torchrun`` each rank
runs it (DeepSpeed joins the process group torchrun made). For debugging and for GPU machines that
have no Ray.
"""

from __future__ import annotations

import argparse
import sys

from trainers._phase import CheckpointWriteError
from trainers.config import ConfigError, TransferConfig
from trainers.deepspeed_ops import StartupError
from trainers.summary import scores_table
from trainers.worker import Plan, run_local


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the plan, print the scores."""
    parser = argparse.ArgumentParser(prog="python -m trainers", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML TransferConfig (default: the embedded default)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. target.learning_rate=1e-4")
    args = parser.parse_args(argv)
    try:
        if args.config:
            config = TransferConfig.from_yaml(args.config, args.overrides)
        else:
            from trainers.config import apply_overrides

            config = TransferConfig.from_dict(apply_overrides({}, args.overrides))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        metrics = run_local(Plan.for_config(config))
    # A bounded wait that ran out, or a checkpoint a full disk refused: say what, in one line.
    except (StartupError, CheckpointWriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(scores_table(metrics, config.target.task))
    return 0


if __name__ == "__main__":
    sys.exit(main())
