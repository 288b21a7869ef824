"""``xstilts score``: score any system's XTREME predictions as XTREME's ``evaluate.py`` does.

The file formats are XTREME's: one prediction (label, tag, retrieved index or ``source<TAB>target``
id pair) per line for classification, retrieval and BUCC, one tag per line with a blank line between
sentences for tagging, and SQuAD JSON for QA (``{id: answer}`` predictions; a SQuAD dataset, or its
``data`` list, as labels). Scores come from ``trainers.metrics``, the code the pipeline reports with,
so a number from ``xstilts run`` and one from ``xstilts score`` on the same predictions are the same.

``--all PRED_DIR LABEL_DIR`` reads ``<dir>/<task>/test-<lang>.{tsv,json}`` for every language of every
XTREME task present in both (XTREME names BUCC's folder ``bucc2018``), averages per task over the
languages, takes XTREME's task score (QA: the mean of exact match and F1) and, when all nine tasks
are there, the XTREME score; group scores (classification, tagging, QA, retrieval) when a group is
complete. Heavy imports (the metric libraries load torch) wait until the arguments are parsed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import fmean
from typing import Any

from trainers.errors import UserError

# XTREME's task groups and folder names (evaluate.py's GROUP2TASK), in xstilts' task names.
GROUPS: dict[str, tuple[str, ...]] = {
    "classification": ("pawsx", "xnli"),
    "tagging": ("udpos", "panx"),
    "qa": ("xquad", "mlqa", "tydiqa"),
    "retrieval": ("bucc", "tatoeba"),
}
XTREME_TASKS: tuple[str, ...] = tuple(task for group in GROUPS.values() for task in group)
XTREME_FOLDERS: dict[str, str] = {"bucc": "bucc2018"}
"""xstilts task -> XTREME's folder name, where they differ."""
QA_TASKS = frozenset(GROUPS["qa"])


class ScoreError(UserError):
    """Prediction or label files that cannot be scored; one line naming the file and the problem."""


# -- reading XTREME's files ---------------------------------------------------------------------------


def _text(path: Path) -> str:
    if not path.is_file():
        raise ScoreError(f"no file {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ScoreError(f"{path}: not UTF-8 text (byte {error.start})") from None


def read_lines(path: Path) -> list[str]:
    """One stripped entry per line (evaluate.py's ``read_label``)."""
    return [line.strip() for line in _text(path).splitlines()]


def read_tags(path: Path) -> list[list[str]]:
    """Tag sequences: one tag per line, a blank line between sentences (evaluate.py's ``read_tag``)."""
    sentences: list[list[str]] = [[]]
    for line in _text(path).splitlines():
        if line.strip():
            sentences[-1].append(line.strip())
        elif sentences[-1]:
            sentences.append([])
    return [sentence for sentence in sentences if sentence]


def _json(path: Path) -> Any:
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as error:
        raise ScoreError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None


def read_qa_predictions(path: Path) -> dict[str, str]:
    """``{question id: predicted answer}``."""
    data = _json(path)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ScoreError(f"{path}: QA predictions must be a JSON object of question id -> answer text")
    return {str(k): v for k, v in data.items()}


def read_qa_labels(path: Path) -> dict[str, list[str]]:
    """``{question id: gold answer texts}`` from a SQuAD-format file (or its ``data`` list)."""
    data = _json(path)
    articles = data.get("data") if isinstance(data, dict) else data
    if not isinstance(articles, list):
        raise ScoreError(f"{path}: QA labels must be SQuAD JSON (a 'data' list of articles)")
    labels: dict[str, list[str]] = {}
    try:
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    qid = str(qa["id"])
                    if qid in labels:
                        # Predictions are keyed by id: a repeated id would be scored against one answer.
                        raise ScoreError(f"{path}: question id {qid!r} occurs twice; ids must be unique")
                    labels[qid] = [answer["text"] for answer in qa["answers"]]
    except (KeyError, TypeError) as error:
        raise ScoreError(f"{path}: not SQuAD JSON (missing {error})") from None
    return labels


def _pairs(lines: list[str], path: Path) -> list[tuple[str, ...]]:
    pairs = [tuple(line.split("\t")) for line in lines if line]
    bad = next((n for n, pair in enumerate(pairs, start=1) if len(pair) != 2), None)
    if bad is not None:
        raise ScoreError(f"{path}: line {bad} is not '<source id><TAB><English id>'")
    return pairs


def _same_length(predictions: list[Any], labels: list[Any], pred_path: Path, label_path: Path) -> None:
    # evaluate.py asserts this for every task but QA and BUCC: a shifted line would score garbage.
    if len(predictions) != len(labels):
        raise ScoreError(
            f"{pred_path} has {len(predictions)} entries for {len(labels)} in {label_path}; they must align"
        )


# -- scoring -----------------------------------------------------------------------------------------


def _task(name: str) -> Any:
    from trainers.tasks import get_task

    if name not in XTREME_TASKS:
        raise ScoreError(f"unknown XTREME task {name!r}; tasks: {', '.join(XTREME_TASKS)}")
    return get_task(name)


def score_files(
    task_name: str, predictions: Path, labels: Path, language: str | None = None
) -> dict[str, float]:
    """One task's metrics (0-100) of a prediction file against a label file, as evaluate.py computes them."""
    from trainers import metrics

    task = _task(task_name)
    if language is not None and language not in task.languages:
        raise ScoreError(f"{task.name} has no language {language!r}; languages: {', '.join(task.languages)}")
    if metrics.get_metric(task.metric).per_language and language is None:
        raise ScoreError(f"{task.name} normalises answers per language: pass --language")
    if task.name in QA_TASKS:
        preds: Any = read_qa_predictions(predictions)
        gold: Any = read_qa_labels(labels)
    elif task.name in GROUPS["tagging"]:
        preds, gold = read_tags(predictions), read_tags(labels)
        _same_length(preds, gold, predictions, labels)
    elif task.metric == "bucc_f1":
        preds, gold = _pairs(read_lines(predictions), predictions), _pairs(read_lines(labels), labels)
    else:
        preds, gold = read_lines(predictions), read_lines(labels)
        _same_length(preds, gold, predictions, labels)
    try:
        scores = metrics.compute(task.metric, preds, gold, language)
    except ValueError as error:  # misaligned tag sequences, and the like
        raise ScoreError(f"{predictions}: {error}") from None
    return {key: float(value) for key, value in scores.items()}


def _folder(root: Path, task: str) -> Path | None:
    for name in (XTREME_FOLDERS.get(task, task), task):
        if (root / name).is_dir():
            return root / name
    return None


def score_all(prediction_dir: Path, label_dir: Path) -> dict[str, Any]:
    """Every XTREME task present in both folders: per language, averaged, XTREME's task and overall scores."""
    from trainers import metrics

    for directory in (prediction_dir, label_dir):
        if not directory.is_dir():
            raise ScoreError(f"no directory {directory}")
    tasks: dict[str, Any] = {}
    for task_name in XTREME_TASKS:
        pred_folder, label_folder = _folder(prediction_dir, task_name), _folder(label_dir, task_name)
        if pred_folder is None or label_folder is None:
            continue
        task = _task(task_name)
        suffix = "json" if task_name in QA_TASKS else "tsv"
        per_language = {
            lang: score_files(
                task_name, pred_folder / f"test-{lang}.{suffix}", label_folder / f"test-{lang}.{suffix}", lang
            )
            for lang in task.languages
        }
        average = metrics.aggregate_languages(per_language)
        tasks[task_name] = {
            "languages": per_language,
            "average": average,
            "xtreme": metrics.xtreme_task_score(task.metric, average),
        }
    if not tasks:
        raise ScoreError(f"no XTREME task folder is in both {prediction_dir} and {label_dir}")
    task_scores = {name: result["xtreme"] for name, result in tasks.items()}
    groups = {
        group: fmean(task_scores[t] for t in members)
        for group, members in GROUPS.items()
        if all(t in task_scores for t in members)
    }
    complete = all(t in task_scores for t in XTREME_TASKS)
    return {
        "tasks": tasks,
        "groups": groups,
        "xtreme_score": metrics.xtreme_score(task_scores) if complete else None,
    }


# -- command line ------------------------------------------------------------------------------------


def cmd_score(args: argparse.Namespace) -> int:
    """``xstilts score``: print the scores as JSON."""
    single = (args.task, args.predictions, args.labels)
    if args.all:
        if any(value is not None for value in single):
            raise ScoreError(
                "score takes TASK --predictions P --labels L, or --all PRED_DIR LABEL_DIR, not both"
            )
        result: dict[str, Any] = score_all(Path(args.all[0]), Path(args.all[1]))
    else:
        if any(value is None for value in single):
            raise ScoreError("score needs TASK --predictions P --labels L, or --all PRED_DIR LABEL_DIR")
        scores = score_files(args.task, Path(args.predictions), Path(args.labels), args.language)
        result = {"task": args.task, "language": args.language, **scores}
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


def add_score_parser(commands: Any) -> None:
    """``xstilts score``."""
    score = commands.add_parser(
        "score",
        help="score prediction files against label files as XTREME's evaluate.py does (JSON out)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("task", nargs="?", help="an XTREME task: " + ", ".join(XTREME_TASKS))
    score.add_argument("--predictions", help="prediction file (XTREME's format for the task)")
    score.add_argument("--labels", help="label file (XTREME's format for the task)")
    score.add_argument("--language", help="the language of the files (needed for MLQA's normalisation)")
    score.add_argument(
        "--all",
        nargs=2,
        metavar=("PRED_DIR", "LABEL_DIR"),
        help="score every task folder present in both (<dir>/<task>/test-<lang>.tsv|json) and the XTREME score",
    )
    score.set_defaults(func=cmd_score)


__all__ = [
    "GROUPS",
    "XTREME_TASKS",
    "ScoreError",
    "add_score_parser",
    "cmd_score",
    "score_all",
    "score_files",
]
