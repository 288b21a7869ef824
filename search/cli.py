"""The ``xstilts`` command: ``run`` one transfer configuration, ``search`` for the best, ``select``, ``report``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from importlib import resources
from typing import Any, TypeVar

from search.layout import DEFAULT_STORAGE, EXPERIMENT_PREFIX, SearchLayout  # standard library only
from trainers import keys  # standard library only

T = TypeVar("T")

DEFAULT_RUN_CONFIG = "defaults/run.yaml"
WARM_WITHIN = "\0within"
"""``--warm-start`` given without a search name (no search name can be this)."""


def options_from(cls: type[T], args: argparse.Namespace) -> T:
    """The options dataclass ``cls`` of a subcommand, filled from the parsed arguments of the same names."""
    names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{name: value for name, value in vars(args).items() if name in names})


def load_run_config(path: str | None, overrides: list[str]) -> object:
    """The config of ``xstilts run`` (and ``rank``): a YAML file, or the embedded default, plus overrides."""
    from trainers.config import TransferConfig

    if path is None:
        with resources.as_file(resources.files("search") / DEFAULT_RUN_CONFIG) as default:
            config = TransferConfig.from_yaml(default, overrides)
    else:
        config = TransferConfig.from_yaml(path, overrides)
    # Relative data paths read from here; a Ray Train worker starts in a directory of its own.
    return config.with_absolute_data_paths()


def cmd_run(args: argparse.Namespace) -> int:
    """Run one transfer configuration end to end and print per-language scores."""
    from trainers.config import TransferConfig
    from trainers.preflight import preflight

    config = load_run_config(args.config, args.set)
    assert isinstance(config, TransferConfig)
    preflight(config)
    # The trainer stack (torch, DeepSpeed, Ray Train) loads only once the input is known to be good.
    from search.run import run_transfer

    metrics = run_transfer(config, backend=args.backend, storage_path=args.storage)
    from trainers.summary import scores_table

    print(scores_table(metrics, config.target.task))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Run (or resume) a search and print the best trial of each target."""
    from search.checks import check_search_name, check_tracking_uri
    from search.space import load_space
    from trainers.errors import UserError

    # What the arguments alone decide is checked before Ray, MLflow and torch load (seconds) and before
    # anything is written; run_search repeats these cheap checks for callers that skip the CLI.
    space = load_space(args.space)
    check_search_name(args.name or space.name)
    if args.tracking_uri:
        check_tracking_uri(args.tracking_uri)
    if args.replay is not None and not os.path.isfile(args.replay):
        raise UserError(f"--replay {args.replay}: grid file not found (benchmarks/grid.py writes it)")
    if args.dry_run:
        from search.costs import dry_run  # no Ray, MLflow or torch: it only reads the space

        print(dry_run(space, args.targets, args.max_concurrent_trials))
        return 0
    # --warm-start alone: within the search; --warm-start SEARCH: from that earlier search too.
    args.warm_start_from = None if args.warm_start in (None, WARM_WITHIN) else args.warm_start
    args.warm_start = args.warm_start is not None
    if args.warm_start_from is not None:
        from search.warm_start import check_earlier  # no Ray or Optuna: a file check

        check_search_name(args.warm_start_from)
        check_earlier(SearchLayout(args.warm_start_from, args.storage))
    from search.tuner import SearchOptions, run_search

    options = options_from(SearchOptions, args)
    outcomes = run_search(options)
    print(search_summary(outcomes, options))
    return 0


def search_summary(outcomes: list[Any], options: Any) -> str:
    """Per target: trial counts and the best completed trial (a retrieval target: its scores per encoder);
    then where to look in MLflow."""
    from search import tracking
    from search.retrieval_eval import RetrievalOutcome

    lines = []
    for outcome in outcomes:
        if isinstance(outcome, RetrievalOutcome):  # evaluated on every encoder the search made, no study
            lines += outcome.summary()
            continue
        lines.append(
            f"{outcome.target}: {outcome.trials} trials, {outcome.completed} completed, "
            f"{outcome.early_stopped} early-stopped, {outcome.failed} failed"
        )
        if outcome.best is None:
            lines.append("  no trial completed its full budget")
            continue
        best = outcome.best
        lines.append(
            f"  best trial {best['trial_id']}: " + ", ".join(f"{k}={v}" for k, v in best["config"].items())
        )
        en_dev = "n/a" if best[keys.EN_DEV] is None else f"{best[keys.EN_DEV]:.2f}"
        lines.append(
            f"  {keys.EN_DEV}={en_dev}  {keys.ZERO_SHOT_AVG}={best[keys.ZERO_SHOT_AVG]:.2f}  "
            f"intermediate reused={bool(best[keys.INTERMEDIATE_REUSED])}"
        )
    uri = options.tracking_uri or tracking.default_tracking_uri()
    name = SearchLayout(outcomes[0].search if outcomes else "").experiment_name
    lines.append(f"MLflow: experiment {name} at {uri}")
    experiment = tracking.existing_experiment(uri, name)
    if uri.startswith(("http://", "https://")):
        lines.append(f"  {tracking.experiment_url(uri, experiment)}" if experiment else f"  {uri}")
    else:
        lines.append(f"  mlflow ui --backend-store-uri {uri}")
        if experiment:
            # Without the link's workflowType the UI opens the GenAI view, not the runs table.
            lines.append(f"  then open {tracking.experiment_url('http://127.0.0.1:5000', experiment)}")
    return "\n".join(lines)


def cmd_tasks(args: argparse.Namespace) -> int:
    """List the task registry."""
    from trainers.tasks import TASKS

    for task in TASKS.values():
        print(
            f"{task.name:<14} {task.role:<12} {task.type.value:<20} {len(task.languages):>3} langs  {task.description}"
        )
    return 0


# -- select / report ---------------------------------------------------------------------------------


def _seeds(text: str) -> list[int]:
    """``1,2,3`` -> [1, 2, 3] (argparse type of --seeds)."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def cmd_select(args: argparse.Namespace) -> int:
    """Pick each target's best completed trial, write best_configs/<target>.yaml, log the selection."""
    from search.select import SelectOptions, format_selection, select

    print(format_selection(select(options_from(SelectOptions, args))))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the search's plots and Markdown summary and log them to MLflow."""
    from search.report import ReportOptions, format_report, report

    print(format_report(report(options_from(ReportOptions, args))))
    return 0


def add_select_parser(commands: Any) -> None:
    """``xstilts select``."""
    select = commands.add_parser(
        "select",
        help="pick the best completed trial of each target and write best_configs/<target>.yaml",
        description="Pick the best completed trial of every target of a search (early-stopped and failed "
        "trials excluded), write its resolved config to <out>/<target>.yaml (run it with xstilts run "
        "--config), tag the winning MLflow run best=true and log a selection run with the rankings. "
        "Both criteria's winners are always shown, with how often they disagree.",
    )
    select.add_argument(
        "--search", required=True, help=f"the search name (experiment {EXPERIMENT_PREFIX}-<name>)"
    )
    select.add_argument(
        "--criterion",
        choices=("en_dev", "target_dev"),
        default="en_dev",
        help="en_dev: English dev score, strict zero-shot (default); "
        "target_dev: target_dev_avg_non_en, mean target-language dev score (oracle)",
    )
    select.add_argument(
        "--confirm",
        type=int,
        default=0,
        metavar="K",
        help="re-run the top K configurations of each target with --seeds and select on the mean "
        "(a lead smaller than the seed spread is reported as a tie)",
    )
    select.add_argument(
        "--seeds", type=_seeds, default=[1, 2, 3], help="seeds for --confirm (default: 1,2,3)"
    )
    select.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///./mlruns/mlflow.db)")
    select.add_argument(
        "--out", default="best_configs", help="directory of the best configs (default: best_configs)"
    )
    select.add_argument(
        "--target",
        dest="targets",
        metavar="TARGET",
        action="append",
        default=[],
        help="only this target (repeatable)",
    )
    select.add_argument(
        "--backend", choices=("ray", "local"), default="ray", help="how --confirm re-runs (default: ray)"
    )
    select.add_argument("--storage", default="runs/confirm", help="storage of the --confirm re-runs")
    select.set_defaults(func=cmd_select)


def add_report_parser(commands: Any) -> None:
    """``xstilts report``."""
    report = commands.add_parser(
        "report",
        help="plots and a Markdown summary of a search, also logged to MLflow",
        description="Write a gain-over-baseline heatmap, score vs freeze depth, Optuna parameter importance "
        "and the winners' per-language scores (PNG) plus summary.md, and log them under report/ of the "
        "search's selection run.",
    )
    report.add_argument(
        "--search", required=True, help=f"the search name (experiment {EXPERIMENT_PREFIX}-<name>)"
    )
    report.add_argument("--out", help="output directory (default: reports/<search>)")
    report.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///./mlruns/mlflow.db)")
    report.add_argument(
        "--storage", default=DEFAULT_STORAGE, help="the search's --storage, where its Optuna database is"
    )
    report.add_argument(
        "--pick",
        choices=(keys.ZERO_SHOT_AVG, "en_dev", "target_dev"),
        default=keys.ZERO_SHOT_AVG,
        help="how the heatmap picks the best trial of a cell (default: by zero_shot_avg itself)",
    )
    report.add_argument(
        "--no-log", dest="log", action="store_false", help="write the files only, do not log to MLflow"
    )
    report.set_defaults(func=cmd_report)


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

    search = commands.add_parser(
        "search", help="search transfer configurations (Ray Tune + Optuna + ASHA), tracked in MLflow"
    )
    search.add_argument(
        "--space", default="spaces/demo.yaml", help="search space YAML (default: spaces/demo.yaml)"
    )
    search.add_argument(
        "--name",
        help="search name: letters, digits, '.', '_', '-' (a directory under --storage; default: the space's name)",
    )
    search.add_argument("--resume", action="store_true", help="continue an interrupted search of this name")
    search.add_argument(
        "--storage",
        default=os.environ.get("XSTILTS_STORAGE", DEFAULT_STORAGE),
        help=f"Tune/Train storage: a path or s3:// URI (default: $XSTILTS_STORAGE, else {DEFAULT_STORAGE})",
    )
    search.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlruns/mlflow.db)",
    )
    search.add_argument(
        "--cache-root",
        default=os.environ.get("XSTILTS_CACHE"),
        help="intermediate-checkpoint cache, a directory every node sees (default: $XSTILTS_CACHE, "
        "else <data.cache_dir>/intermediate, which is node-local)",
    )
    search.add_argument(
        "--max-concurrent-trials", type=int, help="override the value derived from the cluster"
    )
    search.add_argument(
        "--target",
        dest="targets",
        metavar="TARGET",
        action="append",
        default=[],
        help="only this target of the space (repeatable); a retrieval target is evaluated on the base and on the "
        "intermediate checkpoints the search's trials have used so far",
    )
    search.add_argument(
        "--stall-after",
        dest="stall_after_s",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="warn about a running trial that has reported nothing for this long and tag its MLflow run "
        "xstilts.stalled (default: 1800; 0: never)",
    )
    search.add_argument(
        "--warm-start",
        nargs="?",
        const=WARM_WITHIN,
        metavar="SEARCH",
        help="each target's study also tries the intermediate settings of the other targets' best finished "
        "trials as they appear; with SEARCH (an earlier search under the same --storage), it first tries that "
        "search's best configurations and intermediate settings that the space allows",
    )
    search.add_argument(
        "--replay",
        metavar="GRID",
        help="answer trials from a recorded grid (benchmarks/grid.py's Parquet) on a simulated clock "
        "instead of training: the search benchmark's replay (search/replay.py)",
    )
    search.add_argument(
        "--no-intermediate-reuse",
        dest="reuse_intermediate",
        action="store_false",
        help="with --replay: charge every trial its own intermediate phase, as a search without the cache would",
    )
    search.add_argument(
        "--dry-run",
        action="store_true",
        help="check the space and print the plan (studies, trials, retrieval evaluations, distinct intermediate "
        "configurations, "
        "GPUs per trial, concurrency, memory per GPU) and its estimated GPU-hours beside the paper's grid; "
        "start nothing",
    )
    search.set_defaults(func=cmd_search)

    tasks = commands.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(func=cmd_tasks)
    add_select_parser(commands)
    add_report_parser(commands)
    from search.score import add_score_parser  # light: the metric libraries load in its handler

    add_score_parser(commands)
    from search.rank import add_rank_parser  # light: torch loads in its handler

    add_rank_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xstilts`` console script."""
    # Only the argument parser and UserError load before parsing: --help and bad input answer at once.
    from trainers.deepspeed_ops import StartupError  # standard library only
    from trainers.errors import UserError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (UserError, FileNotFoundError) as error:
        print(f"xstilts: error: {error}", file=sys.stderr)
        return 2
    except StartupError as error:  # not bad input: a bounded start-up wait ran out, named in one line
        print(f"xstilts: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["build_parser", "main"]
