"""Read the directory google-research/xtreme's download script leaves (``data.source: xtreme``).

``scripts/download_data.sh`` (and ``utils_preprocess.py``) put each task in its own folder, in the task's
own file format: ``udpos/dev-de.tsv`` (``token<TAB>tag`` lines, a blank line between sentences),
``xnli/dev-de.tsv`` (``premise<TAB>hypothesis<TAB>label``, csv-quoted), ``xquad/xquad.de.json``
(SQuAD v1.1 JSON), ``xcopa/val-et.jsonl``, and so on. ``LAYOUT`` is the table of them, one entry per
task: its folder, the reader of its file format and the file name of each split (``{lang}`` is the
language's code in file names). The readers, one per format in ``trainers/data/xtreme_readers.py``,
return the canonical columns of docs/CONTRACTS.md, so everything downstream is the same as with the hub
or local sources.

XTREME ships most test sets without labels (its script strips the tags, the label column and the QA
answers), so the labelled evaluation sets of a download are its dev files: ``evaluation.split: dev``.
A file without labels is a one-line ``DataError`` that says so. BUCC is not read here: its official
files sit in the download's ``bucc2018/`` folder, which ``trainers/data/bucc.py`` reads.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from datasets.table import InMemoryTable, MemoryMappedTable

from trainers.config import stable_hash
from trainers.data.bucc import XTREME_BUCC_FOLDER
from trainers.data.loading import CANONICAL_FEATURES, DataError, _label_converter
from trainers.data.xtreme_readers import (
    TATOEBA_ENGLISH,
    Rows,
    UnlabelledError,
    read_copa_jsonl,
    read_pair_tsv,
    read_siqa_jsonl,
    read_squad_json,
    read_tagging_tsv,
    read_tatoeba,
)
from trainers.tasks import SPLITS, TaskSpec, TaskType, get_task
from trainers.tasks.xtreme import TATOEBA_CODES

READER_VERSION = "xtreme-layout-v1"
"""Part of every dataset fingerprint: bump it when a reader's output changes, to refresh feature caches."""

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
    foreign: tuple[str, ...] = ()
    """Languages whose files in ``folder`` belong to another task (XCOPA's folder holds COPA's English)."""


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
    # Translate-train (XTREME's processors read them from these folders): the English train file and the
    # machine-translated ones, en-<lang>-translated.tsv, in the same text_a<TAB>text_b<TAB>label format.
    "xnli_tt": LayoutEntry(
        "xnli",
        read_pair_tsv,
        {
            "train": ("XNLI-Translated/en-{lang}-translated.tsv", "train-{lang}.tsv"),
            "dev": ("dev-{lang}.tsv",),
        },
        labels={"contradictory": "contradiction"},
        hints={"train": "XTREME's translate-train files are xnli/XNLI-Translated/en-<lang>-translated.tsv"},
    ),
    "pawsx_tt": LayoutEntry(
        "pawsx",
        read_pair_tsv,
        {
            "train": ("translated/en-{lang}-translated.tsv", "train-{lang}.tsv"),
            "dev": ("dev-{lang}.tsv",),
        },
        labels={"0": "different", "1": "paraphrase"},
        hints={"train": "XTREME's translate-train files are pawsx/translated/en-<lang>-translated.tsv"},
    ),
    # XTREME-R's tasks: XCOPA (its folder also holds COPA's English splits, the copa task) and Social IQa.
    "copa": LayoutEntry(
        "xcopa",
        read_copa_jsonl,
        {"train": ("train-en.jsonl", "train.en.jsonl"), "dev": ("val-en.jsonl", "val.en.jsonl")},
        hints={"train": "XTREME-R's download puts COPA's English train set there as xcopa/train-en.jsonl"},
    ),
    "xcopa": LayoutEntry(
        "xcopa",
        read_copa_jsonl,
        {
            "train": ("train-{lang}.jsonl", "train.{lang}.jsonl"),
            "dev": ("val-{lang}.jsonl", "val.{lang}.jsonl"),
            "test": ("test-{lang}.jsonl", "test.{lang}.jsonl"),
        },
        foreign=("en",),
        hints={"train": "XCOPA trains on COPA's English train set (the copa task)"},
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
        languages -= set(entry.foreign)
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
    if language in entry.foreign:
        raise DataError(
            f"{task.name}: the {language!r} files in {root / entry.folder} belong to another task; "
            f"it has {_describe(inventory(entry, root))}"
        )
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


def load_split(
    task: TaskSpec, split: str, language: str, data_dir: str | Path, cache_dir: str | Path | None = None
) -> datasets.Dataset:
    """One split and language of ``task`` from an XTREME download, in the task type's canonical columns.

    The dataset's fingerprint is the content of the files read (and this reader's version), so feature
    caches follow the files. With ``cache_dir`` the parsed rows are kept there as an Arrow file named by
    that fingerprint, so a later process (the next trial) maps them instead of parsing the files again.
    """
    if split not in SPLITS:
        raise DataError(f"{task.name}: unknown split {split!r}; splits: {', '.join(SPLITS)}")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data.data_dir {root} does not exist (data.source=xtreme reads it)")
    entry, path = find_file(task, split, language, root)
    files = [path, path.with_suffix(entry.companion)] if entry.companion else [path]
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())
    cache = str(Path(cache_dir).expanduser()) if cache_dir is not None else None
    return _dataset(task.name, split, language, str(root), str(path), stamp, cache)


@functools.lru_cache(maxsize=16)
def _dataset(
    task_name: str,
    split: str,
    language: str,
    root: str,
    path: str,
    stamp: tuple[Any, ...],
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """Parsed once per process and version of the files (``stamp``): preflight and the phases read the same."""
    task, entry = get_task(task_name), LAYOUT[task_name]
    features = CANONICAL_FEATURES[task.type]
    info = datasets.DatasetInfo(features=features)
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(Path(name).read_bytes())
    fingerprint = stable_hash([READER_VERSION, task_name, split, language, digest.hexdigest()])
    cached = Path(cache_dir) / f"{task_name}-{split}-{language}-{fingerprint}.arrow" if cache_dir else None
    if cached is not None and cached.is_file():
        return datasets.Dataset(MemoryMappedTable.from_file(str(cached)), info=info, fingerprint=fingerprint)
    rows = _read_checked(task, entry, Path(path), split, language, Path(root))
    columns = {name: [row[name] for row in rows] for name in features}
    table = pa.Table.from_pydict(columns, schema=features.arrow_schema)
    if cached is not None:
        _write_arrow(table, cached)
    return datasets.Dataset(InMemoryTable(table), info=info, fingerprint=fingerprint)


def _write_arrow(table: pa.Table, path: Path) -> None:
    """``table`` as an Arrow stream file at ``path``, whole or not at all (a cache: a failure only costs a parse)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)


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
