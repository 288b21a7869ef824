"""``data.source: xtreme``: XTREME's download layout, read in its own formats (trainers/data/xtreme_layout.py).

The readers are checked on the real files in ``../shared/real`` (a subset of an XTREME download; its
README lists sources and licences), each against the file read independently here; those tests skip
with the reason when that directory is absent (set ``XSTILTS_REAL_DATA`` to another copy). The error
cases run on small files written here, and one smoke trains UD POS for 3 steps on the real files and
scores German and Spanish on their dev sets.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from trainers.config import ConfigError, DataConfig, TransferConfig
from trainers.data import DataError, available_languages, load_split
from trainers.data.bucc import bucc_directory, reads_bucc_dir
from trainers.data.xtreme_layout import (
    LAYOUT,
    UnlabelledError,
    evaluated_languages,
    read_copa_jsonl,
    read_siqa_jsonl,
)
from trainers.preflight import check_bucc, check_data, check_input_dirs, preflight
from trainers.summary import scores_table
from trainers.tasks import get_task
from trainers.tasks.xtreme import NER_TAGS, NLI_LABELS, UPOS_TAGS
from trainers.worker import RESULTS_FILE, Plan, run_local

REAL = Path(os.environ.get("XSTILTS_REAL_DATA") or Path(__file__).resolve().parents[2] / "shared" / "real")
HAS_REAL = (REAL / "udpos").is_dir()
needs_real = pytest.mark.skipif(
    not HAS_REAL,
    reason=f"no real XTREME data at {REAL} (../shared/real beside the repository, or XSTILTS_REAL_DATA)",
)


def _xtreme(root: Path | str = REAL, **extra: Any) -> DataConfig:
    return DataConfig(source="xtreme", data_dir=str(root), **extra)


def _first_sentence(path: Path) -> tuple[list[str], list[str], int]:
    """The first sentence of a token<TAB>tag file and the number of sentences, read here independently."""
    blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    pairs = [line.split("\t") for line in blocks[0].strip("\n").split("\n")]
    return [p[0] for p in pairs], [p[1] for p in pairs], len(blocks)


def _first_line_fields(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n", 1)[0].rstrip("\r").split("\t")


# -- each reader on the real files --------------------------------------------------------------------


@needs_real
@pytest.mark.parametrize(
    ("task", "split", "lang", "tags"),
    [
        ("udpos", "train", "en", UPOS_TAGS),
        ("udpos", "dev", "de", UPOS_TAGS),
        ("panx", "train", "en", NER_TAGS),
        ("panx", "dev", "zh", NER_TAGS),
    ],
)
def test_token_tag_files(task: str, split: str, lang: str, tags: tuple[str, ...]) -> None:
    rows = load_split(get_task(task), split, lang, _xtreme())
    tokens, first_tags, sentences = _first_sentence(REAL / task / f"{split}-{lang}.tsv")
    assert len(rows) == sentences
    assert rows[0] == {"tokens": tokens, "tags": first_tags}
    for row in rows.select(range(200)):
        assert len(row["tokens"]) == len(row["tags"]) > 0
        assert set(row["tags"]) <= set(tags)


@needs_real
def test_xnli_tsv() -> None:
    rows = load_split(get_task("xnli"), "dev", "de", _xtreme())
    premise, hypothesis, label = _first_line_fields(REAL / "xnli" / "dev-de.tsv")
    assert rows[0] == {"text_a": premise, "text_b": hypothesis, "label": label}
    assert len(rows) == 2490  # XNLI's dev set, per language
    assert set(rows["label"]) == set(NLI_LABELS)


@needs_real
def test_pawsx_tsv_labels_quotes_and_the_headed_test_file() -> None:
    task = get_task("pawsx")
    rows = load_split(task, "dev", "de", _xtreme())
    text_a, text_b, label = _first_line_fields(REAL / "pawsx" / "dev-de.tsv")
    assert rows[0] == {"text_a": text_a, "text_b": text_b, "label": task.label_names[int(label)]}
    assert len(rows) == 2000 and set(rows["label"]) == set(task.label_names)
    # XTREME writes with csv.writer: a field holding '"' is quoted and its quotes doubled, and read back.
    lines = (REAL / "pawsx" / "dev-es.tsv").read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith('"') and '""' in line)
    quoted = next(csv.reader([lines[index]], delimiter="\t"))
    row = load_split(task, "dev", "es", _xtreme())[index]
    assert row["text_a"] == quoted[0] and not row["text_a"].startswith('"') and '""' not in row["text_a"]
    # PAWS-X's own test file: a header 'id sentence1 sentence2 label' and an id column.
    test = load_split(task, "test", "de", _xtreme())
    header, first = (REAL / "pawsx" / "test-de.tsv").read_text(encoding="utf-8").split("\n")[:2]
    assert header.split("\t") == ["id", "sentence1", "sentence2", "label"]
    _, sentence1, sentence2, raw = next(csv.reader([first], delimiter="\t"))
    assert test[0] == {"text_a": sentence1, "text_b": sentence2, "label": task.label_names[int(raw)]}
    assert len(test) == 2000


@needs_real
def test_squad_json_tydiqa_train() -> None:
    rows = load_split(get_task("tydiqa"), "train", "en", _xtreme())
    data = json.loads(
        (REAL / "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json").read_text(encoding="utf-8")
    )
    paragraph = data["data"][0]["paragraphs"][0]
    qa = paragraph["qas"][0]
    assert rows[0] == {
        "id": qa["id"],
        "context": paragraph["context"],
        "question": qa["question"],
        "answers": {
            "text": [a["text"] for a in qa["answers"]],
            "answer_start": [a["answer_start"] for a in qa["answers"]],
        },
    }
    assert len(rows) == 3696  # the English gold-passage train examples (the registry's train_size)
    # XTREME's per-language train files keep only the last part of each id: repeats are told apart.
    assert len(set(rows["id"])) == len(rows)
    for row in rows.select(range(100)):
        start, text = row["answers"]["answer_start"][0], row["answers"]["text"][0]
        assert row["context"][start : start + len(text)] == text


@needs_real
@pytest.mark.parametrize(
    ("task", "split", "lang"),
    [("xquad", "test", "de"), ("tydiqa", "test", "ar")],
)
def test_qa_files_xtreme_stripped_say_so(task: str, split: str, lang: str) -> None:
    with pytest.raises(UnlabelledError, match=r"has no answers .*remove_qa_test_annotations"):
        load_split(get_task(task), split, lang, _xtreme())


@needs_real
def test_tatoeba_laser_pairs() -> None:
    rows = load_split(get_task("tatoeba"), "test", "de", _xtreme())
    german = (REAL / "tatoeba/tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()
    english = (REAL / "tatoeba/tatoeba.deu-eng.eng").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(german) == 1000
    assert rows[0] == {"source": german[0], "target": english[0]}
    assert rows[999] == {"source": german[999], "target": english[999]}
    # Languages as XTREME names them (ISO 639-1), from LASER's ISO 639-3 file names.
    assert available_languages(get_task("tatoeba"), _xtreme()) == ("de", "es", "hi", "ru", "zh")


@needs_real
def test_xcopa_and_siqa_jsonl() -> None:
    # The readers alone, on the real files (tests/test_xtremer_tasks.py reads them through the registry).
    folder = REAL / LAYOUT["xcopa"].folder
    rows = read_copa_jsonl(folder / "val-et.jsonl")
    first = json.loads((folder / "val-et.jsonl").read_text(encoding="utf-8").split("\n", 1)[0])
    assert rows[0] == {
        "context": first["premise"],
        "question": f"What was the {first['question']}?",  # XTREME-R's run_xcopa.py
        "choices": [first["choice1"], first["choice2"]],
        "label": first["label"],
    }
    assert len(rows) == 100 and {row["label"] for row in rows} == {0, 1}
    assert len(read_copa_jsonl(folder / "train-en.jsonl")) == 400  # COPA's English train set
    siqa = REAL / "siqa" / "socialIQa_v1.4_dev.jsonl"
    rows = read_siqa_jsonl(siqa)
    first = json.loads(siqa.read_text(encoding="utf-8").split("\n", 1)[0])
    assert rows[0] == {
        "context": first["context"],
        "question": first["question"],
        "choices": [first["answerA"], first["answerB"], first["answerC"]],
        "label": "ABC".index(first["correct"]),
    }
    assert len(rows) == 1954 and {row["label"] for row in rows} == {0, 1, 2}


# -- what the directory has, and what it lacks ----------------------------------------------------------


@needs_real
def test_languages_and_missing_ones_list_what_is_there() -> None:
    udpos = get_task("udpos")
    assert available_languages(udpos, _xtreme()) == ("en", "de", "es", "hi", "ru", "zh")
    with pytest.raises(
        DataError, match=r"udpos: no test files in .*; it has train: en; dev: .*; set evaluation.split=dev$"
    ):
        evaluated_languages(udpos, REAL, "test", None)
    assert evaluated_languages(udpos, REAL, "dev", None) == ["en", "de", "es", "hi", "ru", "zh"]
    data = {"source": "xtreme", "data_dir": str(REAL)}
    asked = {"split": "test", "languages": ["de"]}
    config = TransferConfig.from_dict({"target": {"task": "udpos"}, "data": data, "evaluation": asked})
    with pytest.raises(
        DataError, match=r"udpos: no test file for 'de' .*\(no udpos/test-de\.tsv\); it has train"
    ):
        check_data(config)
    with pytest.raises(
        DataError, match=r"udpos: no dev file for 'fr' .*; it has train: en; dev: de en es hi ru zh$"
    ):
        load_split(udpos, "dev", "fr", _xtreme())
    with pytest.raises(
        DataError, match=r"no mlqa/ folder in the XTREME download .*; it has: copa, panx, pawsx, .*xnli"
    ):
        load_split(get_task("mlqa"), "dev", "de", _xtreme())
    with pytest.raises(DataError, match=r"mnli: data.source=xtreme reads only XTREME's tasks"):
        load_split(get_task("mnli"), "train", "en", _xtreme())


@needs_real
def test_a_missing_english_train_set_is_one_data_error() -> None:
    # The copy leaves out MNLI (XNLI's train set), PAWS's and SQuAD's: asked for as a train set, one line.
    with pytest.raises(DataError, match=r"xnli: no train file for 'en' .*it has dev: .*MNLI's train set"):
        load_split(get_task("xnli"), "train", "en", _xtreme())
    config = TransferConfig.from_dict(
        {"target": {"task": "pawsx"}, "data": {"source": "xtreme", "data_dir": str(REAL)}}
    )
    with pytest.raises(DataError, match=r"pawsx: no train file for 'en'"):
        check_data(config)
    config = TransferConfig.from_dict(
        {"target": {"task": "xquad"}, "data": {"source": "xtreme", "data_dir": str(REAL)}}
    )
    with pytest.raises(DataError, match=r"squad_v1: no squad/ folder"):
        check_data(config)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_unlabelled_test_files_point_at_the_dev_split(tmp_path: Path) -> None:
    _write(tmp_path / "udpos/dev-de.tsv", "Ich\tPRON\nbin\tAUX\n\nJa\tINTJ\n")
    _write(tmp_path / "udpos/test-de.tsv", "Ich\nbin\n\nJa\n")  # XTREME's test files: tokens only
    udpos = get_task("udpos")
    with pytest.raises(
        UnlabelledError, match=r"udpos test/de: .*without tags .*evaluation.split=dev .*\(de\)"
    ):
        load_split(udpos, "test", "de", _xtreme(tmp_path))
    assert load_split(udpos, "dev", "de", _xtreme(tmp_path))["tags"] == [["PRON", "AUX"], ["INTJ"]]
    assert evaluated_languages(udpos, tmp_path, "dev", None) == ["de"]
    _write(tmp_path / "pawsx/test-de.tsv", "a\tb\n")
    with pytest.raises(UnlabelledError, match="no label column"):
        load_split(get_task("pawsx"), "test", "de", _xtreme(tmp_path))
    _write(tmp_path / "pawsx/dev-de.tsv", "a\tb\t2\n")
    with pytest.raises(DataError, match="label '2' is not one of different, paraphrase"):
        load_split(get_task("pawsx"), "dev", "de", _xtreme(tmp_path))
    _write(tmp_path / "xnli/dev-de.tsv", "a\tb\tcontradictory\r\n")  # XNLI's own word, CRLF line ends
    assert load_split(get_task("xnli"), "dev", "de", _xtreme(tmp_path))[0]["label"] == "contradiction"


def test_xtremes_sorted_tatoeba_copies_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "tatoeba/de-en.de", "Hallo\n")
    _write(tmp_path / "tatoeba/de-en.en", "Hello\n")
    with pytest.raises(DataError, match=r"no tatoeba/tatoeba\.deu-eng\.deu.*not aligned: put LASER's"):
        load_split(get_task("tatoeba"), "test", "de", _xtreme(tmp_path))


def test_config_needs_data_dir_and_checks_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^data.source=xtreme needs data.data_dir"):
        DataConfig(source="xtreme")
    config = TransferConfig.from_dict(
        {"target": {"task": "udpos"}, "data": {"source": "xtreme", "data_dir": str(tmp_path / "nowhere")}}
    )
    with pytest.raises(ConfigError, match=r"data\.data_dir .*nowhere does not exist"):
        check_input_dirs(config)


def test_bucc_reads_the_downloads_bucc2018_folder(tmp_path: Path) -> None:
    folder = tmp_path / "bucc2018"
    for name, lines in {
        "de-en.dev.de": "de-1\tHund\nde-2\tKatze\n",
        "de-en.dev.en": "en-1\tdog\nen-2\tcat\n",
        "de-en.dev.gold": "de-1\ten-1\nde-2\ten-2\n",
        "de-en.test.de": "de-1\tHund\n",
        "de-en.test.en": "en-1\tdog\n",  # XTREME's script deletes the test gold
    }.items():
        _write(folder / name, lines)
    data = {"source": "xtreme", "data_dir": str(tmp_path)}
    config = TransferConfig.from_dict({"target": {"task": "bucc"}, "data": data})
    assert bucc_directory(config.data) == str(folder) and reads_bucc_dir(get_task("bucc"), config.data)
    with pytest.raises(
        DataError, match=r"no de-en\.training\.gold or de-en\.test\.gold .*evaluation.split=dev"
    ):
        check_bucc(config)
    dev = TransferConfig.from_dict({"target": {"task": "bucc"}, "data": data, "evaluation": {"split": "dev"}})
    check_bucc(dev)
    check_data(dev)  # BUCC's files were check_bucc's: nothing else to read


def test_the_scores_table_names_the_split() -> None:
    table = scores_table({"zero_shot/de": 50.0, "zero_shot_split/dev": 1.0}, "udpos")
    assert table.splitlines()[0] == "udpos: zero-shot scores per language (dev split)"


# -- the smoke: a few steps on the real files ---------------------------------------------------------


@needs_real
def test_udpos_smoke_on_the_real_files(tiny_config: Any, tmp_path: Path) -> None:
    """The tiny encoder (tokenizer trained on the miniature: poor on real text, fine for a smoke)."""
    config = tiny_config(
        tmp_path / "run",
        "udpos",
        overrides=[
            "data.source=xtreme",
            f"data.data_dir={REAL}",
            "evaluation.split=dev",
            "evaluation.languages=[de, es]",
        ],
    )
    preflight(config)
    metrics = run_local(Plan(config, cache_root=str(tmp_path / "cache")))
    results = json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert results == pytest.approx(metrics)
    assert results["finished"] == 1.0 and results["target_step"] == 3
    for lang in ("de", "es"):
        assert 0.0 <= results[f"zero_shot/{lang}"] <= 100.0
        # Scored once: the dev split is both the zero-shot and the target-language dev score.
        assert results[f"target_dev/{lang}"] == results[f"zero_shot/{lang}"]
    assert {key.split("/")[1] for key in results if key.startswith("zero_shot/")} == {"de", "es"}
    assert results["zero_shot_split/dev"] == 1.0 and "zero_shot_split/test" not in results
    assert 0.0 <= results["en_dev"] <= 100.0


def test_parsed_rows_are_kept_as_arrow_and_follow_the_files(tmp_path: Path) -> None:
    """A later process maps the rows an earlier one parsed (same fingerprint, same rows); changed files
    are parsed again."""
    from trainers.data import xtreme_layout
    from trainers.tasks import get_task

    root = tmp_path / "download"
    (root / "udpos").mkdir(parents=True)
    source = REAL / "udpos" / "dev-de.tsv"
    if HAS_REAL:
        text = "\n\n".join(source.read_text(encoding="utf-8").split("\n\n")[:20]) + "\n"
    else:
        text = "Das\tDET\nHaus\tNOUN\n\nEin\tDET\nBaum\tNOUN\n"
    (root / "udpos" / "dev-de.tsv").write_text(text, encoding="utf-8")
    cache = tmp_path / "rows"
    udpos = get_task("udpos")
    parsed = xtreme_layout.load_split(udpos, "dev", "de", root, cache_dir=cache)
    (kept,) = cache.glob("*.arrow")
    xtreme_layout._dataset.cache_clear()  # as a new process: nothing in memory
    mapped = xtreme_layout.load_split(udpos, "dev", "de", root, cache_dir=cache)
    assert mapped._fingerprint == parsed._fingerprint
    assert mapped.to_list() == parsed.to_list() and len(mapped) > 0
    assert list(cache.glob("*.arrow")) == [kept]
    # Changed content: a new fingerprint and a new parse, not the kept rows.
    (root / "udpos" / "dev-de.tsv").write_text(text + "\nNeu\tADJ\n", encoding="utf-8")
    changed = xtreme_layout.load_split(udpos, "dev", "de", root, cache_dir=cache)
    assert changed._fingerprint != parsed._fingerprint and len(changed) == len(parsed) + 1
    assert len(list(cache.glob("*.arrow"))) == 2
