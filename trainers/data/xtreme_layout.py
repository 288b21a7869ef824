"""Read the directory google-research/xtreme's download script leaves (``data.source: xtreme``).

``scripts/download_data.sh`` (and ``utils_preprocess.py``) put each task in its own folder, in the task's
own file format: ``udpos/dev-de.tsv`` (``token<TAB>tag`` lines, a blank line between sentences),
``xnli/dev-de.tsv`` (``premise<TAB>hypothesis<TAB>label``, csv-quoted), ``xquad/xquad.de.json``
(SQuAD v1.1 JSON), ``xcopa/val-et.jsonl``, and so on. ``LAYOUT`` is the table of them, one entry per
task: its folder, the reader of its file format and the file name of each split (``{lang}`` is the
language's code in file names). The readers return the canonical columns of docs/CONTRACTS.md, so
everything downstream is the same as with the hub or local sources.

XTREME ships most test sets without labels (its script strips the tags, the label column and the QA
answers), so the labelled evaluation sets of a download are its dev files: ``evaluation.split: dev``.
A file without labels is a one-line ``DataError`` that says so. BUCC is not read here: its official
files sit in the download's ``bucc2018/`` folder, which ``trainers/data/bucc.py`` reads.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from datasets.table import InMemoryTable

from trainers.config import stable_hash
from trainers.data.bucc import XTREME_BUCC_FOLDER
from trainers.data.loading import CANONICAL_FEATURES, DataError, _label_converter
from trainers.tasks import SPLITS, TaskSpec, TaskType, get_task
from trainers.tasks.xtreme import TATOEBA_CODES

READER_VERSION = "xtreme-layout-v1"
"""Part of every dataset fingerprint: bump it when a reader's output changes, to refresh feature caches."""

Rows = list[dict[str, Any]]


class UnlabelledError(DataError):
    """A file whose labels XTREME's download script removed (most test sets)."""


# -- readers, one per file format -----------------------------------------------------------------


def read_tagging_tsv(path: Path) -> Rows:
    """udpos and panx: ``token<TAB>tag`` per line, sentences separated by blank (or ``-DOCSTART-``) lines.

    As XTREME's ``utils_tag.read_examples_from_file``: the token is the first field, the tag the last.
    A file of bare tokens (XTREME's test files) has no tags: ``UnlabelledError``.
    """
    rows: Rows = []
    tokens: list[str] = []
    tags: list[str] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line or line.isspace() or line.startswith("-DOCSTART-"):
            if tokens:
                rows.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        token, tab, rest = line.partition("\t")
        if not tab:
            if not rows and not tokens:  # the first token of the file: a test file of bare tokens
                raise UnlabelledError(
                    f"{path} has tokens without tags (XTREME ships test sets without labels)"
                )
            raise DataError(f"{path} line {number} is not 'token<TAB>tag' like the lines before it")
        tokens.append(token)
        tags.append(rest.rpartition("\t")[2].strip())
    if tokens:
        rows.append({"tokens": tokens, "tags": tags})
    return rows


PAWSX_HEADER = ("id", "sentence1", "sentence2", "label")
"""PAWS-X's own files (``test_2k.tsv``) start with this header; XTREME's copies drop it and the id."""


def read_pair_tsv(path: Path) -> Rows:
    """xnli and pawsx: ``text_a<TAB>text_b<TAB>label``, written by ``csv.writer`` (quoted where needed).

    Also PAWS-X's original layout, a header ``id sentence1 sentence2 label`` and an id column (a test
    file some copies keep). Two columns (XTREME's test files) are ``UnlabelledError``.
    """
    rows: Rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quotechar='"')
        columns = (0, 1, 2)
        try:
            for number, fields in enumerate(reader, start=1):
                if reader.line_num != number:
                    # One record per line in XTREME's files: a quote left open swallowed line breaks.
                    raise DataError(f"{path} line {number}: a quoted field runs over the end of the line")
                if not fields:
                    continue
                if number == 1 and tuple(f.strip().lower() for f in fields[:4]) == PAWSX_HEADER:
                    columns = (1, 2, 3)
                    continue
                if len(fields) == columns[2]:  # the label column is the one missing
                    raise UnlabelledError(
                        f"{path} has no label column (XTREME ships test sets without labels)"
                    )
                if len(fields) != columns[2] + 1:
                    raise DataError(
                        f"{path} line {number} has {len(fields)} tab-separated fields, expected {columns[2] + 1}"
                    )
                rows.append(
                    {
                        "text_a": fields[columns[0]],
                        "text_b": fields[columns[1]],
                        "label": fields[columns[2]].strip(),
                    }
                )
        except csv.Error as error:
            raise DataError(
                f"{path} line {reader.line_num} is not valid tab-separated csv ({error})"
            ) from None
    return rows


def read_squad_json(path: Path) -> Rows:
    """xquad, mlqa, tydiqa and squad: SQuAD v1.1 JSON (``data[].paragraphs[].qas[]``).

    A file whose every answer is empty is one XTREME stripped (``remove_qa_test_annotations``):
    ``UnlabelledError``. Ids repeated within a file (XTREME's per-language TyDiQA train files keep
    only the last part of each id) get ``#<n>`` appended, so that predictions map back to one question.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{path} is not SQuAD JSON (no top-level 'data' list)")
    rows: Rows = []
    seen: dict[str, int] = {}
    answered = 0
    try:
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    answers = [a for a in qa.get("answers", []) if a.get("text")]
                    answered += bool(answers)
                    qid = str(qa["id"])
                    seen[qid] = seen.get(qid, 0) + 1
                    rows.append(
                        {
                            "id": qid if seen[qid] == 1 else f"{qid}#{seen[qid]}",
                            "context": paragraph["context"],
                            "question": qa["question"],
                            "answers": {
                                "text": [a["text"] for a in answers],
                                "answer_start": [int(a["answer_start"]) for a in answers],
                            },
                        }
                    )
    except (KeyError, TypeError) as error:
        raise DataError(f"{path} is not SQuAD JSON (missing or malformed field {error})") from None
    if rows and not answered:
        raise UnlabelledError(
            f"{path} has no answers (XTREME's download script removes those of QA test sets: "
            "remove_qa_test_annotations)"
        )
    return rows


def _jsonl(path: Path) -> list[dict[str, Any]]:
    objects = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path} line {number} is not JSON ({error.msg})") from None
            if not isinstance(value, dict):
                raise DataError(f"{path} line {number} is not a JSON object")
            objects.append(value)
    return objects


def _field(row: dict[str, Any], name: str, path: Path, number: int) -> Any:
    if name not in row:
        raise DataError(f"{path} line {number} has no field {name!r} (fields: {', '.join(row)})")
    return row[name]


def read_copa_jsonl(path: Path) -> Rows:
    """xcopa (and COPA's English train/val): ``premise``, ``choice1``, ``choice2``, ``question``, ``label``.

    The question is ``cause`` or ``effect``; XTREME-R's ``run_xcopa.py`` asks "<premise> What was the
    <question>?", so the canonical question is "What was the <question>?". No ``label``: ``UnlabelledError``.
    """
    rows: Rows = []
    for number, row in enumerate(_jsonl(path), start=1):
        if "label" not in row:
            raise UnlabelledError(f"{path} line {number} has no 'label' (a test set without labels)")
        rows.append(
            {
                "context": _field(row, "premise", path, number),
                "question": f"What was the {_field(row, 'question', path, number)}?",
                "choices": [_field(row, "choice1", path, number), _field(row, "choice2", path, number)],
                "label": row["label"],
            }
        )
    return rows


SIQA_ANSWERS = ("answerA", "answerB", "answerC")


def read_siqa_jsonl(path: Path) -> Rows:
    """siqa (Social IQa v1.4): ``context``, ``question``, ``answerA``-``answerC``, ``correct`` (A, B or C).

    The letter is the label, as in XTREME-R's ``siqa_data.py``; without ``correct``: ``UnlabelledError``.
    """
    rows: Rows = []
    for number, row in enumerate(_jsonl(path), start=1):
        if "correct" not in row:
            raise UnlabelledError(
                f"{path} line {number} has no 'correct' answer letter (a test set without labels)"
            )
        letter = str(row["correct"]).strip()
        if letter not in ("A", "B", "C"):
            raise DataError(f"{path} line {number}: 'correct' is {letter!r}, not A, B or C")
        rows.append(
            {
                "context": _field(row, "context", path, number),
                "question": _field(row, "question", path, number),
                "choices": [_field(row, name, path, number) for name in SIQA_ANSWERS],
                "label": "ABC".index(letter),
            }
        )
    return rows


TATOEBA_ENGLISH = ".eng"


def read_tatoeba(path: Path) -> Rows:
    """tatoeba: LASER's ``tatoeba.<xxx>-eng.<xxx>`` and, beside it, ``.eng``: line i of one translates line i
    of the other."""
    english = path.with_suffix(TATOEBA_ENGLISH)
    if not english.is_file():
        raise DataError(f"{path} has no English side {english.name} beside it")
    source = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    target = [line.strip() for line in english.read_text(encoding="utf-8").splitlines()]
    if len(source) != len(target):
        raise DataError(f"{path} has {len(source)} lines but {english.name} {len(target)}: not line-aligned")
    return [{"source": s, "target": t} for s, t in zip(source, target, strict=True)]


# -- the table: task -> folder, reader, file names -----------------------------------------------

TSV_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train-{lang}.tsv",),
    "dev": ("dev-{lang}.tsv",),
    "test": ("test-{lang}.tsv",),
}


@dataclass(frozen=True)
class LayoutEntry:
    """Where one task's files are in an XTREME download and how they are read."""

    folder: str
    """The task's folder under ``data_dir``."""
    reader: Callable[[Path], Rows]
    """Reads one file into canonical rows (labels as the file writes them)."""
    files: dict[str, tuple[str, ...]]
    """Our split -> file names under ``folder`` (the first present is read); ``{lang}`` is the language's
    code in file names. A name without ``{lang}`` holds English only."""
    codes: dict[str, str] = field(default_factory=dict)
    """Language -> its code in file names, where that is not the ISO 639-1 code."""
    labels: dict[str, str] = field(default_factory=dict)
    """Label as the file writes it -> the registry's label name."""
    hints: dict[str, str] = field(default_factory=dict)
    """Split -> what to say when its file is missing: what XTREME puts there, or what to put there instead."""
    companion: str = ""
    """Suffix of a second file the reader reads beside each one (Tatoeba's English side), if any."""


LAYOUT: dict[str, LayoutEntry] = {
    "xnli": LayoutEntry(
        "xnli",
        read_pair_tsv,
        TSV_SPLITS,
        labels={"contradictory": "contradiction"},
        hints={"train": "XTREME's xnli/train-en.tsv is MNLI's train set, from XNLI-MT-1.0"},
    ),
    "pawsx": LayoutEntry(
        "pawsx",
        read_pair_tsv,
        TSV_SPLITS,
        labels={"0": "different", "1": "paraphrase"},
        hints={"train": "XTREME's pawsx/train-en.tsv is PAWS's English train set, from x-final"},
    ),
    "udpos": LayoutEntry("udpos", read_tagging_tsv, TSV_SPLITS),
    "panx": LayoutEntry("panx", read_tagging_tsv, TSV_SPLITS),
    # XQuAD is a test set only: it trains on SQuAD and takes its English dev set from SQuAD (the registry).
    "xquad": LayoutEntry("xquad", read_squad_json, {"test": ("xquad.{lang}.json",)}),
    "mlqa": LayoutEntry(
        "mlqa",
        read_squad_json,
        {
            "dev": ("MLQA_V1/dev/dev-context-{lang}-question-{lang}.json",),
            "test": ("MLQA_V1/test/test-context-{lang}-question-{lang}.json",),
        },
    ),
    # The gold-passage dev files are the registry's test split (the hub's validation split).
    "tydiqa": LayoutEntry(
        "tydiqa",
        read_squad_json,
        {
            "train": ("tydiqa-goldp-v1.1-train/tydiqa.goldp.{lang}.train.json",),
            "test": ("tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json",),
        },
    ),
    "squad_v1": LayoutEntry(
        "squad",
        read_squad_json,
        {"train": ("train-v1.1.json",), "dev": ("dev-v1.1.json",)},
        hints={"train": "XTREME's download_squad puts SQuAD v1.1's files there"},
    ),
    "tatoeba": LayoutEntry(
        "tatoeba",
        read_tatoeba,
        {"test": ("tatoeba.{lang}-eng.{lang}",)},
        codes=TATOEBA_CODES,
        companion=TATOEBA_ENGLISH,
        hints={
            "test": "XTREME's own <l>-en.<l> and <l>-en.en copies sort the English side, so they are not "
            "aligned: put LASER's data/tatoeba/v1 files there"
        },
    ),
    # XTREME-R's tasks (no registry entry yet): XCOPA with COPA's English splits, and Social IQa.
    "xcopa": LayoutEntry(
        "xcopa",
        read_copa_jsonl,
        {
            "train": ("train-{lang}.jsonl", "train.{lang}.jsonl"),
            "dev": ("val-{lang}.jsonl", "val.{lang}.jsonl"),
            "test": ("test-{lang}.jsonl", "test.{lang}.jsonl"),
        },
    ),
    "siqa": LayoutEntry(
        "siqa",
        read_siqa_jsonl,
        {
            "train": ("socialIQa_v1.4_trn.jsonl",),
            "dev": ("socialIQa_v1.4_dev.jsonl",),
            "test": ("socialIQa_v1.4_tst.jsonl",),
        },
    ),
}


# -- finding files --------------------------------------------------------------------------------


def _pattern_regex(name: str) -> re.Pattern[str]:
    """The file-name regex of a name with ``{lang}`` (its later occurrences must repeat the first)."""
    parts = re.escape(name).split(re.escape("{lang}"))
    regex = parts[0]
    for index, part in enumerate(parts[1:]):
        regex += ("(?P<lang>[A-Za-z0-9_]+)" if index == 0 else "(?P=lang)") + part
    return re.compile(f"^{regex}$")


def _language_of(entry: LayoutEntry, code: str) -> str:
    return {c: lang for lang, c in entry.codes.items()}.get(code, code)


def inventory(entry: LayoutEntry, root: Path) -> dict[str, tuple[str, ...]]:
    """Split -> the languages with a file of that split under ``root / entry.folder`` (sorted)."""
    folder = root / entry.folder
    found: dict[str, tuple[str, ...]] = {}
    for split, names in entry.files.items():
        languages: set[str] = set()
        for name in names:
            directory = (folder / name).parent
            if "{lang}" not in name:
                if (folder / name).is_file():
                    languages.add("en")
                continue
            if not directory.is_dir():
                continue
            regex = _pattern_regex(Path(name).name)
            for path in directory.iterdir():
                match = regex.match(path.name)
                if match and path.is_file():
                    languages.add(_language_of(entry, match["lang"]))
        if languages:
            found[split] = tuple(sorted(languages))
    return found


def _describe(found: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{split}: {' '.join(langs)}" for split, langs in found.items()) or "no files of it"


def entry_for(task: TaskSpec, root: Path) -> LayoutEntry:
    """The layout entry of ``task``, checked to have a folder under ``root``."""
    entry = LAYOUT.get(task.name)
    if entry is None:
        raise DataError(
            f"{task.name}: data.source=xtreme reads only XTREME's tasks ({', '.join(sorted(LAYOUT))}); "
            "use data.source=hub or local for it"
        )
    if not (root / entry.folder).is_dir():
        present = sorted(name for name, e in LAYOUT.items() if (root / e.folder).is_dir())
        bucc = ["bucc"] if (root / XTREME_BUCC_FOLDER).is_dir() else []
        raise DataError(
            f"{task.name}: no {entry.folder}/ folder in the XTREME download {root}; "
            f"it has: {', '.join(present + bucc) or 'no task folder'}"
        )
    return entry


def find_file(task: TaskSpec, split: str, language: str, root: Path) -> tuple[LayoutEntry, Path]:
    """The file of one split and language, or a one-line ``DataError`` naming what the folder has."""
    entry = entry_for(task, root)
    names = entry.files.get(split, ())
    code = entry.codes.get(language, language)
    candidates = [
        entry.folder + "/" + name.format(lang=code) for name in names if "{lang}" in name or language == "en"
    ]
    for candidate in candidates:
        if (root / candidate).is_file():
            return entry, root / candidate
    found = inventory(entry, root)
    looked = f" (no {' or '.join(candidates)})" if candidates else ""
    hint = f" ({entry.hints[split]})" if split in entry.hints else ""
    raise DataError(
        f"{task.name}: no {split} file for {language!r} in {root / entry.folder}{looked}; "
        f"it has {_describe(found)}{hint}"
    )


def languages(task: TaskSpec, root: Path, split: str | None = None) -> tuple[str, ...]:
    """Languages with a file of ``task`` (of ``split``, when given) under ``root``; registry order first."""
    entry = LAYOUT.get(task.name)
    if entry is None or not (root / entry.folder).is_dir():
        return ()
    found = inventory(entry, root)
    present = set(found.get(split, ())) if split else {lang for langs in found.values() for lang in langs}
    return tuple(lang for lang in task.languages if lang in present) + tuple(
        sorted(present - set(task.languages))
    )


def evaluated_languages(task: TaskSpec, root: Path, split: str, asked: list[str] | None) -> list[str]:
    """The languages to score on ``split``: ``asked``, or every one with a file of it; a one-line
    ``DataError`` listing what the folder has when one asked for has none, or none has it."""
    have = languages(task, root, split)
    missing = [lang for lang in asked or [] if lang not in have]
    if missing:
        find_file(task, split, missing[0], root)  # raises, naming the file and listing the folder
    if asked:
        return list(asked)
    if not have:
        found = inventory(entry_for(task, root), root)
        raise DataError(
            f"{task.name}: no {split} files in {root / LAYOUT[task.name].folder} to evaluate; it has "
            f"{_describe(found)}" + ("; set evaluation.split=dev" if "dev" in found else "")
        )
    return list(have)


# -- canonical datasets ---------------------------------------------------------------------------


def read_rows(task: TaskSpec, split: str, language: str, root: Path) -> Rows:
    """One split and language of ``task`` as canonical rows, labels as the registry names them."""
    entry, path = find_file(task, split, language, root)
    return _read_checked(task, entry, path, split, language, root)


def _read_checked(
    task: TaskSpec, entry: LayoutEntry, path: Path, split: str, language: str, root: Path
) -> Rows:
    try:
        rows = entry.reader(path)
    except UnlabelledError as error:
        dev = inventory(entry, root).get("dev", ()) if split != "dev" else ()
        hint = f"; evaluation.split=dev scores the labelled dev files ({' '.join(dev)})" if dev else ""
        raise UnlabelledError(f"{task.name} {split}/{language}: {error}{hint}") from None
    if not rows:
        raise DataError(f"{task.name}: {path} holds no examples")
    _check_labels(task, entry, rows, f"{task.name} {split}/{language} ({path})")
    return rows


def _check_labels(task: TaskSpec, entry: LayoutEntry, rows: Rows, where: str) -> None:
    """Labels renamed to the registry's names (``entry.labels``) and checked against them, in place."""
    if task.type is TaskType.MULTIPLE_CHOICE:
        for number, row in enumerate(rows, start=1):
            label = row["label"]
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(row["choices"]):
                raise DataError(f"{where}: example {number} has label {label!r}, not a choice index")
        return
    if task.type in (TaskType.RETRIEVAL, TaskType.SPAN_QA):
        return
    column = "tags" if task.type is TaskType.TAGGING else "label"
    rename = entry.labels
    if rename:
        for row in rows:
            value = row[column]
            row[column] = (
                [rename.get(v, v) for v in value] if isinstance(value, list) else rename.get(value, value)
            )
    convert = _label_converter(task, where)
    # Each distinct value once: the converter raises on one outside the registry's names.
    if task.type is TaskType.TAGGING:
        convert(sorted({tag for row in rows for tag in row[column]}))
    else:
        for value in sorted({row[column] for row in rows}):
            convert(value)


def load_split(task: TaskSpec, split: str, language: str, data_dir: str | Path) -> datasets.Dataset:
    """One split and language of ``task`` from an XTREME download, in the task type's canonical columns.

    The dataset's fingerprint is the content of the files read (and this reader's version), so feature
    caches follow the files.
    """
    if split not in SPLITS:
        raise DataError(f"{task.name}: unknown split {split!r}; splits: {', '.join(SPLITS)}")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data.data_dir {root} does not exist (data.source=xtreme reads it)")
    entry, path = find_file(task, split, language, root)
    files = [path, path.with_suffix(entry.companion)] if entry.companion else [path]
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())
    return _dataset(task.name, split, language, str(root), str(path), stamp)


@functools.lru_cache(maxsize=16)
def _dataset(
    task_name: str, split: str, language: str, root: str, path: str, stamp: tuple[Any, ...]
) -> datasets.Dataset:
    """Parsed once per process and version of the files (``stamp``): preflight and the phases read the same."""
    task, entry = get_task(task_name), LAYOUT[task_name]
    rows = _read_checked(task, entry, Path(path), split, language, Path(root))
    features = CANONICAL_FEATURES[task.type]
    columns = {name: [row[name] for row in rows] for name in features}
    table = pa.Table.from_pydict(columns, schema=features.arrow_schema)
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(Path(name).read_bytes())
    fingerprint = stable_hash([READER_VERSION, task_name, split, language, digest.hexdigest()])
    return datasets.Dataset(
        InMemoryTable(table), info=datasets.DatasetInfo(features=features), fingerprint=fingerprint
    )


__all__ = [
    "LAYOUT",
    "LayoutEntry",
    "UnlabelledError",
    "entry_for",
    "evaluated_languages",
    "find_file",
    "inventory",
    "languages",
    "load_split",
    "read_copa_jsonl",
    "read_pair_tsv",
    "read_rows",
    "read_siqa_jsonl",
    "read_squad_json",
    "read_tagging_tsv",
    "read_tatoeba",
]
