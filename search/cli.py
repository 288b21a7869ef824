"""The ``xstilts`` command: ``run`` one transfer configuration, ``search`` for the best, ``select``, ``report``."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

DEFAULT_RUN_CONFIG = "defaults/run.yaml"


def _load_run_config(path: str | None, overrides: list[str]) -> object:
    from trainers.config import TransferConfig

    if path is None:
        with resources.as_file(resources.files("search") / DEFAULT_RUN_CONFIG) as default:
            return TransferConfig.from_yaml(default, overrides)
    return TransferConfig.from_yaml(path, overrides)


def cmd_run(args: argparse.Namespace) -> int:
    """Run one transfer configuration end to end and print per-language scores."""
    from search.run import run_transfer
    from trainers.config import TransferConfig
    from trainers.preflight import preflight

    config = _load_run_config(args.config, args.set)
    assert isinstance(config, TransferConfig)
    preflight(config)
    metrics = run_transfer(config, backend=args.backend, storage_path=args.storage)
    from trainers.summary import scores_table

    print(scores_table(metrics, config.target.task))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """List the task registry."""
    from trainers.tasks import TASKS

    for task in TASKS.values():
        print(
            f"{task.name:<14} {task.role:<12} {task.type.value:<20} {len(task.languages):>3} langs  {task.description}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help``)."""
    parser = argparse.ArgumentParser(prog="xstilts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run one transfer configuration (phases 1-3) and print its scores")
    run.add_argument("--config", help="TransferConfig YAML (default: the embedded offline demo)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, e.g. target.learning_rate=1e-4",
    )
    run.add_argument(
        "--backend",
        choices=("ray", "local"),
        default="ray",
        help="ray: a Ray Train TorchTrainer job (default); local: the same worker function in this process",
    )
    run.add_argument("--storage", default="runs/ray", help="Ray Train storage path or URI for checkpoints")
    run.set_defaults(func=cmd_run)

    tasks = commands.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(func=cmd_tasks)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xstilts`` console script."""
    from trainers.config import ConfigError
    from trainers.data import DataError
    from trainers.modeling import FreezeError
    from trainers.tasks import UnknownTaskError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, DataError, FreezeError, UnknownTaskError, FileNotFoundError) as error:
        print(f"xstilts: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["build_parser", "main"]
