"""BUCC 2018 as XTREME evaluates it: the official corpora, de-duplicated, with gold pairs by sentence id.

The hub's ``google/xtreme`` ``bucc18.*`` configs hold only the gold pairs, so mining there has no
distractors and F1 is inflated. XTREME mines over the full corpora (hundreds of thousands of sentences
per side); this module reads them from a directory of the official files, as the BUCC 2018 archives
unpack them (``<lang>-en.{sample,training}.{<lang>,en,gold}``) or as XTREME's download script renames
them (``<lang>-en.{dev,test}.*``). Each sentence file holds ``id<TAB>sentence`` lines, the gold file
``<lang id><TAB><en id>`` lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainers.config import DataConfig
from trainers.data.loading import DataError
from trainers.tasks import TaskSpec

BUCC_LANGUAGES = ("de", "fr", "ru", "zh")
# XTREME's splits: dev is BUCC's sample set, test its training set (the official test set's gold is not
# public); XTREME's download script renames the files so, and either name is read here.
FILE_SPLITS: dict[str, tuple[str, str]] = {"dev": ("sample", "dev"), "test": ("training", "test")}


@dataclass(frozen=True)
class BuccCorpus:
    """One side of a BUCC split, de-duplicated as XTREME does (``text_load_unify``, ``read_sent2id``)."""

    sentences: tuple[str, ...]
    """Every distinct sentence once, in order of first appearance: what is embedded and mined."""
    ids: tuple[str | None, ...]
    """The id of each distinct sentence; ``None`` for a sentence the corpus repeats (XTREME drops it)."""


@dataclass(frozen=True)
class BuccSplit:
    """One language pair's split: both corpora and the gold (source id, English id) pairs."""

    source: BuccCorpus
    """The non-English corpus."""
    target: BuccCorpus
    """The English corpus."""
    gold: frozenset[tuple[str, str]]
    """Gold pairs by sentence id; all of them count for recall, even those whose sentence is repeated."""


def _split_file(directory: Path, language: str, split: str, suffix: str) -> Path:
    names = [f"{language}-en.{name}.{suffix}" for name in FILE_SPLITS[split]]
    for name in names:
        if (directory / name).is_file():
            return directory / name
    # XTREME's download script deletes the test gold files (and keeps the dev, BUCC's sample, gold).
    hint = "; XTREME's download deletes the test gold: evaluation.split=dev" if suffix == "gold" else ""
    raise DataError(f"bucc: no {' or '.join(names)} in {directory} (the official BUCC 2018 files){hint}")


def _read_corpus(path: Path) -> BuccCorpus:
    ids: list[str] = []
    lines: list[str] = []
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            sentence_id, tab, sentence = line.rstrip("\n").partition("\t")
            if not tab:
                raise DataError(f"bucc: {path} line {number} is not 'id<TAB>sentence'")
            ids.append(sentence_id.strip())
            lines.append(sentence.strip())
    first_id: dict[str, str | None] = {}
    for sentence_id, sentence in zip(ids, lines, strict=True):
        # A repeated sentence cannot be told apart from its copies, so it maps to no id (read_sent2id).
        first_id[sentence] = None if sentence in first_id else sentence_id
    return BuccCorpus(tuple(first_id), tuple(first_id.values()))


def _read_gold(path: Path) -> frozenset[tuple[str, str]]:
    pairs = set()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DataError(f"bucc: {path} line {number} is not '<source id><TAB><English id>'")
            pairs.add((fields[0], fields[1]))
    return frozenset(pairs)


XTREME_BUCC_FOLDER = "bucc2018"
"""Where XTREME's download script puts the official files (renamed ``dev``/``test``) under its directory."""


def bucc_directory(data: DataConfig) -> str | None:
    """The directory of the official files: ``data.bucc_dir``, else an XTREME download's ``bucc2018``."""
    if data.bucc_dir:
        return data.bucc_dir
    if data.source == "xtreme" and data.data_dir:
        return str(Path(data.data_dir).expanduser() / XTREME_BUCC_FOLDER)
    return None


def reads_bucc_dir(task: TaskSpec, data: DataConfig) -> bool:
    """Whether ``task`` is BUCC mined over the official corpora (``bucc_directory``)."""
    return task.metric == "bucc_f1" and bucc_directory(data) is not None


def bucc_dir_languages(directory: str | Path) -> tuple[str, ...]:
    """The BUCC languages with a source file of either split in ``directory``."""
    root = Path(directory).expanduser()
    names = [name for split in FILE_SPLITS.values() for name in split]
    return tuple(
        lang
        for lang in BUCC_LANGUAGES
        if any((root / f"{lang}-en.{name}.{lang}").is_file() for name in names)
    )


def load_bucc(directory: str | Path, language: str, split: str) -> BuccSplit:
    """The ``split`` (dev or test) of ``<language>-en`` from a directory of the official BUCC 2018 files."""
    root = Path(directory).expanduser()
    if language not in BUCC_LANGUAGES:
        raise DataError(f"bucc: no language {language!r}; languages: {', '.join(BUCC_LANGUAGES)}")
    if split not in FILE_SPLITS:
        raise DataError(f"bucc: no split {split!r}; splits: {', '.join(FILE_SPLITS)}")
    if not root.is_dir():
        raise DataError(
            f"BUCC directory {root} does not exist (data.bucc_dir, or an XTREME download's bucc2018)"
        )
    source = _read_corpus(_split_file(root, language, split, language))
    target = _read_corpus(_split_file(root, language, split, "en"))
    gold = _read_gold(_split_file(root, language, split, "gold"))
    if not gold:
        raise DataError(f"bucc: {_split_file(root, language, split, 'gold')} holds no gold pairs")
    return BuccSplit(source, target, gold)


__all__ = [
    "BUCC_LANGUAGES",
    "XTREME_BUCC_FOLDER",
    "BuccCorpus",
    "BuccSplit",
    "bucc_dir_languages",
    "bucc_directory",
    "load_bucc",
    "reads_bucc_dir",
]
