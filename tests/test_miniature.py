"""The miniature benchmark: files for every registry task, hub schemas, determinism, atomic creation and
labels that a simple model can learn (so that a change making them random fails here)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from trainers.data import miniature
from trainers.data.miniature import (
    MINIATURE_LANGUAGES,
    PARALLEL_TASKS,
    TASK_GENERATORS,
    TASKS_DIR,
    TOKENIZER_TEXT_VERSION,
    MiniatureGenerator,
    NoMiniatureError,
    check_miniature_tasks,
    ensure_miniature,
    miniature_splits,
    miniature_tasks,
    miniature_version,
    view_name,
)
from trainers.data.miniature import _tree as miniature_tree
from trainers.errors import UserError
from trainers.tasks import TASKS, TaskSpec, TaskType

CYRILLIC = re.compile("[\u0400-\u04ff]")
REPO = Path(__file__).resolve().parents[1]
TOKENIZER_TEXT_SHA256 = "507fea06e5fc3655"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_miniature(tmp_path_factory.mktemp("cache"))


@functools.cache
def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _files(tree: Path, task: str) -> dict[tuple[str, str], Path]:
    return {(p.parent.name, p.stem): p for p in sorted((tree / task).glob("*/*.jsonl"))}


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


# -- layout -------------------------------------------------------------------------------------------


def test_every_registry_task_has_a_generator_and_files(tree: Path) -> None:
    # A registry task may have no generator (it then runs on real data only); every shipped one has one.
    assert set(TASK_GENERATORS) <= set(TASKS)
    assert sorted(miniature_tasks()) == sorted(TASK_GENERATORS)
    assert tree.name == view_name(miniature_tasks())  # versioned by each task's version
    for name in miniature_tasks():
        spec = TASKS[name]
        files = _files(tree, name)
        plan = miniature_splits(spec)
        assert plan, name
        assert set(files) == {(lang, split) for lang, split, _ in plan}, name
        for lang, split, size in plan:
            assert len(_rows(files[lang, split])) == size, (name, lang, split)


def test_splits_follow_the_roles() -> None:
    for name, spec in TASKS.items():
        plan = {(lang, split) for lang, split, _ in miniature_splits(spec)}
        languages = {lang for lang in MINIATURE_LANGUAGES if lang in spec.languages}
        if spec.role == "intermediate":
            # English, and each miniature language of a translate-train task, train; English alone is dev.
            trained = {lang for lang in MINIATURE_LANGUAGES if lang == "en" or lang in spec.train_languages}
            assert plan == {(lang, "train") for lang in trained} | {("en", "dev")}, name
        elif spec.is_retrieval:
            assert plan == {(lang, s) for lang in languages - {"en"} for s in ("dev", "test")}, name
        else:
            assert ("en", "train") in plan if spec.train_task is None else ("en", "train") not in plan, name
            assert {(lang, s) for lang in languages for s in ("dev", "test")} <= plan, name
    assert {lang for lang, _, _ in miniature_splits(TASKS["tydiqa"])} == {"en", "ru"}
    assert {lang for lang, _, _ in miniature_splits(TASKS["xnli"])} == set(MINIATURE_LANGUAGES)
    assert {s for _, s, _ in miniature_splits(TASKS["xquad"])} == {"dev", "test"}
    plan = {(lang, split) for lang, split, _ in miniature_splits(TASKS["mnli"])}
    assert plan == {("en", "train"), ("en", "dev")}
    # Translate-train: every miniature language of the task trains (PAWS-X has no Russian).
    assert {lang for lang, s, _ in miniature_splits(TASKS["xnli_tt"]) if s == "train"} == set(
        MINIATURE_LANGUAGES
    )
    assert {lang for lang, s, _ in miniature_splits(TASKS["pawsx_tt"]) if s == "train"} == {"en", "de", "es"}
    # XCOPA has none of the miniature's languages: its non-English ones stand in; COPA trains it.
    plan = {(lang, split) for lang, split, _ in miniature_splits(TASKS["xcopa"])}
    assert plan == {(lang, s) for lang in ("de", "es", "ru") for s in ("dev", "test")}


# -- schemas ------------------------------------------------------------------------------------------


def _column(row: dict[str, Any], path: str) -> Any:
    head, _, field = path.partition(".")
    assert head in row, f"missing column {head!r} in {sorted(row)}"
    return row[head][field] if field else row[head]


def _check_label(spec: TaskSpec, value: Any) -> None:
    if spec.label_names and isinstance(value, str):
        assert value in spec.label_names
    elif spec.label_names:
        assert isinstance(value, int) and not isinstance(value, bool) and 0 <= value < spec.num_labels
    else:  # CCG: the supertags themselves
        assert isinstance(value, str) and value


def _check_row(spec: TaskSpec, row: dict[str, Any], lang: str) -> None:
    cols = spec.columns
    if spec.type in (TaskType.SINGLE_CLASSIFICATION, TaskType.PAIR_CLASSIFICATION):
        for role in ("text_a", "text_b"):
            if role in cols:
                assert isinstance(_column(row, cols[role]), str) and _column(row, cols[role])
        label = _column(row, cols["label"])
        assert isinstance(label, int)  # the hub's ClassLabel: an integer
        _check_label(spec, label)
    elif spec.type is TaskType.TAGGING:
        tokens, tags = _column(row, cols["tokens"]), _column(row, cols["tags"])
        assert tokens and len(tokens) == len(tags) and all(isinstance(t, str) and t for t in tokens)
        for tag in tags:
            _check_label(spec, tag)
        if spec.label_names:
            assert all(isinstance(t, int) for t in tags)
    elif spec.type is TaskType.SPAN_QA:
        for role in ("id", "context", "question"):
            assert isinstance(_column(row, cols[role]), str) and _column(row, cols[role])
        answers = _column(row, cols["answers"])
        assert set(answers) == {"text", "answer_start"}
        assert len(answers["text"]) == len(answers["answer_start"])
        context = row[cols["context"]]
        for text, start in zip(answers["text"], answers["answer_start"], strict=True):
            assert isinstance(start, int) and context[start : start + len(text)] == text and text
        if spec.name != "squad_v2":
            assert answers["text"], "only SQuAD 2.0 has unanswerable questions"
        if spec.hub is not None and spec.hub.id_prefix:
            assert row["id"].startswith(spec.hub.id_prefix[lang] + "-")
    elif spec.type is TaskType.MULTIPLE_CHOICE:
        parts = [p.strip() for p in cols["choices"].split(",")]
        choices = [_column(row, p) for p in parts] if len(parts) > 1 else _column(row, parts[0])
        assert isinstance(choices, list) and all(isinstance(c, str) and c for c in choices)
        assert len(choices) == len(spec.label_names) == len(set(choices))
        for role in ("context", "question"):
            if role in cols:
                assert isinstance(_column(row, cols[role]), str)
        _check_label(spec, _column(row, cols["label"]))
    elif spec.type is TaskType.MASKED_LM:
        assert isinstance(_column(row, cols["text"]), str) and _column(row, cols["text"]).strip()
    else:
        source, target = _column(row, cols["source"]), _column(row, cols["target"])
        assert isinstance(source, str) and isinstance(target, str) and source and target


@pytest.mark.parametrize("name", sorted(TASKS))
def test_rows_have_the_hub_columns_and_types(tree: Path, name: str) -> None:
    spec = TASKS[name]
    for (lang, split), path in _files(tree, name).items():
        rows = _rows(path)
        for i, row in enumerate(rows):
            try:
                _check_row(spec, row, lang)
            except AssertionError as error:
                raise AssertionError(f"{name} {lang}/{split} row {i}: {error}: {row}") from None
        if spec.label_names and spec.type is not TaskType.TAGGING:
            labels = {str(_column(r, spec.columns["label"])) for r in rows}
            assert len(labels) == spec.num_labels, f"{name} {lang}/{split}: labels used {labels}"


def test_hub_value_types_of_the_odd_schemas(tree: Path) -> None:
    hellaswag = _rows(tree / "hellaswag/en/train.jsonl")[0]
    assert isinstance(hellaswag["label"], str) and len(hellaswag["endings"]) == 4
    assert hellaswag["ctx"] == f"{hellaswag['ctx_a']} {hellaswag['ctx_b']}"
    csqa = _rows(tree / "commonsenseqa/en/train.jsonl")[0]
    assert csqa["choices"]["label"] == list("ABCDE") and csqa["answerKey"] in "ABCDE"
    cosmos = _rows(tree / "cosmosqa/en/train.jsonl")[0]
    assert isinstance(cosmos["label"], int) and all(f"answer{i}" in cosmos for i in range(4))
    panx = _rows(tree / "panx/de/test.jsonl")[0]
    assert panx["langs"] == ["de"] * len(panx["tokens"])
    assert all(isinstance(t, str) for r in _rows(tree / "ccg/en/train.jsonl") for t in r["tags"])
    squad_v2 = _rows(tree / "squad_v2/en/train.jsonl")
    unanswerable = sum(not r["answers"]["text"] for r in squad_v2) / len(squad_v2)
    assert 0.2 < unanswerable < 0.45


def test_retrieval_rows_are_aligned_translations(tree: Path) -> None:
    for name in ("bucc", "tatoeba"):
        for (lang, _), path in _files(tree, name).items():
            rows = _rows(path)
            assert lang != "en" and all(r["source_lang"] == lang and r["target_lang"] == "en" for r in rows)
            targets = [r["target_sentence"] for r in rows]
            assert len(set(targets)) == len(targets)
            for row in rows:
                # Names, places, firms and numbers are shared: those of row i's target are in row i's source.
                shared = set(re.findall(r"\b[A-Z][a-z]+\b|\d+", row["target_sentence"])) - {
                    "He",
                    "She",
                    "A",
                    "The",
                }
                assert shared and shared <= set(re.findall(r"\w+", row["source_sentence"])), row
                assert row["source_sentence"] != row["target_sentence"]


def test_parallel_tasks_draw_the_same_content_in_every_language(tree: Path) -> None:
    assert {"xnli", "xquad"} <= PARALLEL_TASKS
    labels = {
        lang: [r["label"] for r in _rows(tree / f"xnli/{lang}/test.jsonl")] for lang in MINIATURE_LANGUAGES
    }
    assert all(labels[lang] == labels["en"] for lang in labels)
    ids = {lang: [r["id"] for r in _rows(tree / f"xquad/{lang}/test.jsonl")] for lang in MINIATURE_LANGUAGES}
    assert all(ids[lang] == ids["en"] for lang in ids)
    english = _rows(tree / "xnli/en/test.jsonl")
    german = _rows(tree / "xnli/de/test.jsonl")
    assert english[0]["premise"] != german[0]["premise"]


def test_russian_is_written_in_cyrillic(tree: Path) -> None:
    for name in sorted(TASKS):
        for (lang, split), path in _files(tree, name).items():
            if lang != "ru":
                continue
            texts = [json.dumps(row, ensure_ascii=False) for row in _rows(path)]
            with_cyrillic = sum(bool(CYRILLIC.search(t)) for t in texts) / len(texts)
            assert with_cyrillic > 0.7, f"{name} ru/{split}: {with_cyrillic:.0%} of rows have Cyrillic"
    for lang in ("en", "de", "es"):
        assert not CYRILLIC.search((tree / f"xnli/{lang}/dev.jsonl").read_text(encoding="utf-8"))


# -- determinism and creation -----------------------------------------------------------------------


def _tree_files(root: Path) -> list[Path]:
    """Every file under ``root``, through the view's links to the task directories."""
    return sorted(
        Path(directory, name).relative_to(root)
        for directory, _, names in os.walk(root, followlinks=True)
        for name in names
    )


def test_generation_is_deterministic(tree: Path, tmp_path: Path) -> None:
    # A fresh process with another hash seed: no dependence on set order or on state of this process.
    # It loads the miniature package alone, skipping the trainers.data __init__ (which imports torch).
    code = (
        "import importlib.util, sys; from pathlib import Path;"
        " spec = importlib.util.spec_from_file_location('miniature', sys.argv[2],"
        " submodule_search_locations=[str(Path(sys.argv[2]).parent)]);"
        " module = importlib.util.module_from_spec(spec); sys.modules['miniature'] = module;"
        " spec.loader.exec_module(module);"
        " module.generate_miniature(Path(sys.argv[1]))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(REPO))
    args = [sys.executable, "-c", code, str(tmp_path / "again"), miniature.__file__]
    subprocess.run(args, check=True, env=env, cwd=REPO)
    ours = _tree_files(tree)
    theirs = _tree_files(tmp_path / "again")
    assert ours == theirs
    for rel in ours:
        assert (tree / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel


def test_another_seed_gives_other_data() -> None:
    rows = [miniature.gen_xnli(miniature._rng(seed, "xnli", "dev", "en"), "en", "dev", 30) for seed in (0, 1)]
    assert rows[0] != rows[1]


def test_ensure_miniature_is_idempotent_and_leaves_no_temp_dirs(tree: Path) -> None:
    manifest = tree / "MANIFEST.json"
    before = manifest.stat().st_mtime_ns
    assert ensure_miniature(tree.parent) == tree
    assert manifest.stat().st_mtime_ns == before
    assert sorted(p.name for p in tree.parent.iterdir()) == sorted([tree.name, TASKS_DIR])
    tasks = miniature_tasks()
    assert sorted(p.name for p in (tree.parent / TASKS_DIR).iterdir()) == sorted(
        f"{name}-v{version}" for name, version in tasks.items()
    )
    assert json.loads(manifest.read_text())["tasks"] == tasks  # each task's own version


def _fake_generator(delay: float) -> Any:
    def write_task(directory: Path, name: str, seed: int = 0) -> None:
        (directory / "en").mkdir(parents=True)
        time.sleep(delay)
        (directory / "en" / "dev.jsonl").write_text(f"{threading.get_ident()}\n")
        (directory / "MANIFEST.json").write_text("{}")

    return write_task


def _only_xnli(monkeypatch: pytest.MonkeyPatch) -> Path:
    """A miniature of XNLI alone (the tree's machinery is the same for one task as for all)."""
    monkeypatch.setattr(miniature_tree, "miniature_tasks", lambda: {"xnli": "1"})
    return Path(TASKS_DIR) / "xnli-v1"


def test_concurrent_callers_get_one_complete_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(miniature_tree, "write_task", _fake_generator(0.2))
    task_dir = _only_xnli(monkeypatch)
    start = threading.Barrier(4)
    results: list[Path] = []

    def call() -> None:
        start.wait()
        results.append(ensure_miniature(tmp_path))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = tmp_path / view_name({"xnli": "1"})
    assert results == [final] * 4
    # The losers discarded theirs, of the task's files and of the view.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([final.name, TASKS_DIR])
    assert [p.name for p in (tmp_path / TASKS_DIR).iterdir()] == [task_dir.name]
    assert len((final / "xnli/en/dev.jsonl").read_text().splitlines()) == 1  # one writer's tree
    assert (final / "xnli").resolve() == (tmp_path / task_dir).resolve()


def test_a_lost_rename_race_discards_the_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final = tmp_path / _only_xnli(monkeypatch)

    def generate(directory: Path, name: str, seed: int = 0) -> None:
        (directory / "mine").write_text("loser")
        final.mkdir(parents=True)  # another process finished first
        (final / "theirs").write_text("winner")
        (final / "MANIFEST.json").write_text("{}")

    monkeypatch.setattr(miniature_tree, "write_task", generate)
    view = ensure_miniature(tmp_path)
    assert sorted(p.name for p in final.iterdir()) == ["MANIFEST.json", "theirs"]
    assert [p.name for p in final.parent.iterdir()] == [final.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([view.name, TASKS_DIR])


def test_a_failed_generation_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _only_xnli(monkeypatch)

    def generate(directory: Path, name: str, seed: int = 0) -> None:
        (directory / "half").write_text("")
        raise RuntimeError("disk full")

    monkeypatch.setattr(miniature_tree, "write_task", generate)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_miniature(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [TASKS_DIR]  # no view, and no task's files
    assert list((tmp_path / TASKS_DIR).iterdir()) == []


# -- learnability -------------------------------------------------------------------------------------


def _learn(train: list[dict[str, Any]], evaluation: list[dict[str, Any]], features: Any) -> float:
    """Accuracy on ``evaluation`` of a logistic regression on ``features(row)`` trained on ``train``."""
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = DictVectorizer()
    x = vectorizer.fit_transform([features(r) for r in train])
    model = LogisticRegression(max_iter=2000).fit(x, [r["label"] for r in train])
    return float(
        model.score(vectorizer.transform([features(r) for r in evaluation]), [r["label"] for r in evaluation])
    )


def _overlap(premise: str, hypothesis: str) -> dict[str, float]:
    """Hypothesis words marked as in or out of the premise, and how many are out: a lexical NLI baseline."""
    seen = set(_words(premise))
    out = [w for w in _words(hypothesis) if w not in seen]
    features: dict[str, float] = {("IN:" if w in seen else "OUT:") + w: 1.0 for w in _words(hypothesis)}
    features["n_out"] = float(len(out))
    features[f"n_out={min(len(out), 4)}"] = 1.0
    return features


def _bag(text: str) -> dict[str, float]:
    return {w: 1.0 for w in _words(text)}


def _length(*texts: str) -> dict[str, float]:
    n = sum(len(_words(t)) for t in texts)
    return {"length": n / 10, f"length={n}": 1.0}


def _missing_bigrams(a: str, b: str) -> dict[str, float]:
    """Bigrams of the second sentence missing from the first: sees word order, unlike a bag of words."""
    wa, wb = _words(a), _words(b)
    have = set(itertools.pairwise(wa))
    missing = [x for x in itertools.pairwise(wb) if x not in have]
    features = {"MISS:" + "_".join(x): 1.0 for x in missing}
    features["missing"] = float(len(missing))
    return features


def _eval_rows(tree: Path, task: str, lang: str) -> list[dict[str, Any]]:
    return _rows(tree / f"{task}/{lang}/dev.jsonl") + _rows(tree / f"{task}/{lang}/test.jsonl")


def test_nli_is_learnable_transfers_and_has_no_hypothesis_only_leak(tree: Path) -> None:
    train = _rows(tree / "xnli/en/train.jsonl")
    english, russian = _eval_rows(tree, "xnli", "en"), _eval_rows(tree, "xnli", "ru")
    overlap = lambda r: _overlap(r["premise"], r["hypothesis"])  # noqa: E731
    assert _learn(train, english, overlap) > 0.75  # measured 0.88 (chance 0.33)
    assert _learn(train, russian, overlap) > 0.42  # zero-shot via shared names and numbers; measured 0.55
    assert _learn(train, english, lambda r: _bag(r["hypothesis"])) < 0.52  # measured 0.42: needs the premise
    assert _learn(train, english, lambda r: _length(r["premise"], r["hypothesis"])) < 0.45  # measured 0.39


def test_sentiment_is_learnable_from_words_not_length(tree: Path) -> None:
    train, dev = _rows(tree / "sst2/en/train.jsonl"), _rows(tree / "sst2/en/dev.jsonl")  # no test split
    assert _learn(train, dev, lambda r: _bag(r["sentence"])) > 0.65  # measured 0.74
    assert _learn(train, dev, lambda r: _length(r["sentence"])) < 0.6  # measured 0.44


def test_paraphrase_needs_word_order(tree: Path) -> None:
    train, dev = _rows(tree / "pawsx/en/train.jsonl"), _eval_rows(tree, "pawsx", "en")
    order = _learn(train, dev, lambda r: _missing_bigrams(r["sentence1"], r["sentence2"]))
    overlap = _learn(train, dev, lambda r: _overlap(r["sentence1"], r["sentence2"]))
    # The PAWS design: word order tells a paraphrase from a role swap, word overlap barely does.
    assert order > 0.62  # measured 0.73 (chance 0.5)
    assert overlap < order - 0.08  # measured 0.53


# -- versions per task ------------------------------------------------------------------------------


def _two_task_registry(monkeypatch: pytest.MonkeyPatch, **extra: TaskSpec) -> None:
    """A miniature of SST-2 and QQP (two small tasks), plus ``extra`` registry tasks."""
    tasks = {"sst2": TASKS["sst2"], "qqp": TASKS["qqp"], **extra}
    monkeypatch.setattr(miniature_tree, "TASKS", tasks)


def _task_dirs(root: Path) -> dict[str, int]:
    """Each task directory's manifest's modification time: a regenerated directory gets a new one."""
    return {p.name: (p / "MANIFEST.json").stat().st_mtime_ns for p in sorted((root / TASKS_DIR).iterdir())}


def test_adding_a_task_generates_that_task_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_task_registry(monkeypatch)
    before = ensure_miniature(tmp_path)
    dirs = _task_dirs(tmp_path)
    assert sorted(dirs) == ["qqp-v1", "sst2-v1"]
    # A new task of an existing type: one registry entry and one generator entry.
    spec = dataclasses.replace(TASKS["sst2"], name="sst2_copy")
    _two_task_registry(monkeypatch, sst2_copy=spec)
    monkeypatch.setitem(miniature.GENERATORS, "sst2_copy", MiniatureGenerator(miniature.gen_sst2))
    after = ensure_miniature(tmp_path)
    assert after != before and (before / "MANIFEST.json").is_file()  # the old view stays for its readers
    assert {k: v for k, v in _task_dirs(tmp_path).items() if k != "sst2_copy-v1"} == dirs  # not regenerated
    assert (after / "sst2_copy/en/train.jsonl").is_file()
    assert (after / "sst2").resolve() == (before / "sst2").resolve()
    assert json.loads((after / "MANIFEST.json").read_text())["tasks"] == {
        "qqp": "1",
        "sst2": "1",
        "sst2_copy": "1",
    }


def test_bumping_one_tasks_version_regenerates_that_task_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_task_registry(monkeypatch)
    ensure_miniature(tmp_path)
    dirs = _task_dirs(tmp_path)
    monkeypatch.setitem(miniature.GENERATORS, "qqp", MiniatureGenerator(miniature.gen_qqp, version="2"))
    view = ensure_miniature(tmp_path)
    assert miniature_version("qqp") == "2" and miniature_version("sst2") == "1"
    now = _task_dirs(tmp_path)
    assert sorted(now) == ["qqp-v1", "qqp-v2", "sst2-v1"]
    assert now["sst2-v1"] == dirs["sst2-v1"]
    assert (view / "qqp").resolve().name == "qqp-v2"
    assert json.loads((view / "qqp/MANIFEST.json").read_text())["version"] == "2"


def test_a_task_without_a_generator_is_an_error_only_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = dataclasses.replace(TASKS["qqp"], name="qqp_real_only")
    _two_task_registry(monkeypatch, qqp_real_only=spec)
    view = ensure_miniature(tmp_path)  # the miniature of the other tasks builds
    assert sorted(p.name for p in view.iterdir() if p.is_dir()) == ["qqp", "sst2"]
    assert miniature_version("qqp_real_only") is None
    check_miniature_tasks(["qqp", "sst2"])
    with pytest.raises(
        NoMiniatureError, match=r"no miniature generator for task\(s\) qqp_real_only;"
    ) as error:
        check_miniature_tasks(["sst2", "qqp_real_only"])
    assert isinstance(error.value, UserError) and "\n" not in str(error.value)


def test_preflight_names_a_task_without_a_generator_before_any_compute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainers.config import TransferConfig
    from trainers.preflight import preflight

    spec = dataclasses.replace(TASKS["qqp"], name="qqp_real_only")
    monkeypatch.setitem(TASKS, spec.name, spec)
    config = TransferConfig.from_dict(
        {
            "model": {"name_or_path": "tiny"},
            "data": {"source": "miniature", "cache_dir": str(tmp_path)},
            "intermediate": {"tasks": ["qqp_real_only"]},
            "target": {"task": "pawsx"},
        }
    )
    with pytest.raises(NoMiniatureError, match="qqp_real_only"):
        preflight(config)
    assert list(tmp_path.iterdir()) == []  # nothing generated, nothing built


# -- the tiny tokenizer's text ------------------------------------------------------------------------


def test_the_tokenizer_text_is_fixed_and_independent_of_the_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    words = miniature.tokenizer_words_file()
    assert words.name == f"tokenizer_words_v{TOKENIZER_TEXT_VERSION}.tsv"
    # Frozen: a change to this file changes the tiny encoder, which must come with a version bump.
    assert hashlib.sha256(words.read_bytes()).hexdigest().startswith(TOKENIZER_TEXT_SHA256)
    first = list(itertools.islice(miniature.tokenizer_texts(), 50))
    monkeypatch.setattr(miniature, "GENERATORS", {})
    monkeypatch.setattr(miniature_tree, "TASKS", {})
    assert list(itertools.islice(miniature.tokenizer_texts(), 50)) == first


def test_the_tokenizer_text_holds_the_words_of_the_miniature(tree: Path) -> None:
    counts = {}
    for line in miniature.tokenizer_words_file().read_text(encoding="utf-8").splitlines():
        word, count = line.split("\t")
        counts[word] = int(count)
    # Text version 1 counted the words of the miniature as its tasks were at version 1.
    assert counts["the"] > 1000 and counts["живёт"] > 100 and counts["¿"] > 100
    sample = {w for row in _rows(tree / "xnli/de/dev.jsonl") for w in _words(row["premise"])}
    assert sample <= set(counts)


def test_adding_a_task_keeps_the_other_tasks_datasets_fingerprints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Feature caches are keyed by the dataset's fingerprint, which datasets derives from the file's path.
    from trainers.config import DataConfig
    from trainers.data import load_split

    data = DataConfig(source="miniature", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    _two_task_registry(monkeypatch)
    before = load_split(TASKS["sst2"], "dev", "en", data)._fingerprint
    spec = dataclasses.replace(TASKS["sst2"], name="sst2_copy")
    _two_task_registry(monkeypatch, sst2_copy=spec)
    monkeypatch.setitem(miniature.GENERATORS, "sst2_copy", MiniatureGenerator(miniature.gen_sst2))
    assert load_split(TASKS["sst2"], "dev", "en", data)._fingerprint == before
    assert len(list((tmp_path / "data").glob("miniature-*"))) == 3  # two views and the tasks' directory


def test_the_word_list_trains_the_tokenizer_as_the_text_it_counts() -> None:
    # The tokenizer's trainer sees word counts after normalising and pre-tokenising: the chunks the list
    # yields must come back out of the tiny tokenizer's own normaliser and pre-tokeniser as the same counts.
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    seen: dict[str, int] = {}
    for chunk in miniature.tokenizer_texts():
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(chunk)):
            seen[word] = seen.get(word, 0) + 1
    listed = {}
    for line in miniature.tokenizer_words_file().read_text(encoding="utf-8").splitlines():
        word, count = line.split("\t")
        listed[word] = int(count)
    assert seen == listed
