"""The real study's tables (``spaces/real.yaml``), read from the search's MLflow runs.

Per trial: English dev and zero-shot score per language, their non-English average and each phase's seconds;
then each intermediate task's gain over no intermediate task with the same seed (mean over seeds, and each
seed's); then Tatoeba, evaluated on the base encoder and on every intermediate checkpoint (no training).
``python benchmarks/real_study.py --search real [--tracking-uri URI]`` after
``xstilts search --space spaces/real.yaml``.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from typing import Any

from search.layout import SearchLayout
from search.tracking import SEARCHED_PREFIX
from trainers import keys

LANGUAGES = ("de", "es", "ru", "hi", "zh")
ORDER = ("none", "panx", "xnli", "pawsx", "siqa")


def _runs(client: Any, search: str, kind: str) -> list[Any]:
    experiment = client.get_experiment_by_name(SearchLayout(search).experiment_name)
    if experiment is None:
        raise SystemExit(f"no search {search!r} in this store")
    return list(
        client.search_runs(
            [experiment.experiment_id], f"tags.`{keys.KIND_TAG}` = '{kind}'", max_results=10_000
        )
    )


def _average(metrics: dict[str, float]) -> float:
    return statistics.fmean(metrics[keys.ZERO_SHOT_LANG.format(lang=lang)] for lang in LANGUAGES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", default="real")
    parser.add_argument("--tracking-uri", default="sqlite:///./mlruns/mlflow.db")
    args = parser.parse_args()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=args.tracking_uri)
    trials: dict[tuple[str, str], dict[str, float]] = {}
    for run in _runs(client, args.search, keys.KIND_TRIAL):
        metrics, params = run.data.metrics, run.data.params
        if keys.ZERO_SHOT_LANG.format(lang=LANGUAGES[0]) in metrics:
            point = (params[f"{SEARCHED_PREFIX}intermediate_task"], params[f"{SEARCHED_PREFIX}seed"])
            trials[point] = metrics
    seeds = sorted({seed for _, seed in trials})
    print(f"{len(trials)} finished trials, seeds {', '.join(seeds)}\n")
    print(
        "| intermediate | seed | en dev | "
        + " | ".join(LANGUAGES)
        + " | avg | intermediate s | target s | eval s |"
    )
    print("|---|---|---:|" + "---:|" * len(LANGUAGES) + "---:|---:|---:|---:|")
    for task in ORDER:
        for seed in seeds:
            if (task, seed) not in trials:
                continue
            m = trials[(task, seed)]
            phases = [
                m.get(keys.TIME_PHASE_S.format(phase=phase), 0.0)
                for phase in ("intermediate", "target", "eval")
            ]
            scores = " | ".join(f"{m[keys.ZERO_SHOT_LANG.format(lang=lang)]:.1f}" for lang in LANGUAGES)
            print(
                f"| {task} | {seed} | {m[keys.EN_DEV]:.1f} | {scores} | {_average(m):.1f} | "
                + " | ".join(f"{s:.0f}" for s in phases)
                + " |"
            )
    print("\nGain over no intermediate task with the same seed: mean over seeds [each seed's]")
    print("| intermediate | en dev | " + " | ".join(LANGUAGES) + " | avg (5 langs) |")
    print("|---|---:|" + "---:|" * len(LANGUAGES) + "---:|")
    columns: list[Any] = [
        lambda m: m[keys.EN_DEV],
        *[lambda m, lang=lang: m[keys.ZERO_SHOT_LANG.format(lang=lang)] for lang in LANGUAGES],
        _average,
    ]
    for task in ORDER[1:]:
        cells = []
        for column in columns:
            gains = [
                column(trials[(task, seed)]) - column(trials[("none", seed)])
                for seed in seeds
                if (task, seed) in trials and ("none", seed) in trials
            ]
            shown = ", ".join(f"{g:+.1f}" for g in gains)
            cells.append(f"{statistics.fmean(gains):+.1f} [{shown}]" if gains else "n/a")
        print(f"| {task} | " + " | ".join(cells) + " |")
    evaluations: dict[str, dict[str, float]] = defaultdict(dict)
    for run in _runs(client, args.search, keys.KIND_RETRIEVAL):
        if (
            run.data.tags.get(keys.TARGET_TAG) == "tatoeba"
            and keys.ZERO_SHOT_LANG.format(lang="de") in run.data.metrics
        ):
            evaluations[run.data.tags[keys.INTERMEDIATE_TAG]] = run.data.metrics
    if evaluations:
        base = next((m for label, m in evaluations.items() if label.startswith("none")), None)
        print("\nTatoeba (accuracy, English queries): the base encoder and each intermediate checkpoint")
        print("| encoder | " + " | ".join(LANGUAGES) + " | avg | vs base |")
        print("|---|" + "---:|" * len(LANGUAGES) + "---:|---:|")
        for label in sorted(evaluations, key=lambda name: (not name.startswith("none"), name)):
            m = evaluations[label]
            scores = " | ".join(f"{m[keys.ZERO_SHOT_LANG.format(lang=lang)]:.1f}" for lang in LANGUAGES)
            gain = "" if base is None or m is base else f"{_average(m) - _average(base):+.1f}"
            print(f"| {label} | {scores} | {_average(m):.1f} | {gain} |")


if __name__ == "__main__":
    main()
