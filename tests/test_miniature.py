"""The miniature benchmark: files for every registry task, hub schemas, determinism, atomic creation and
labels that a simple model can learn (so that a change making them random fails here)."""

from __future__ import annotations

import functools
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
    MINIATURE_VERSION,
    PARALLEL_TASKS,
    TASK_GENERATORS,
    ensure_miniature,
    miniature_splits,
)
from trainers.tasks import TASKS, TaskSpec, TaskType

CYRILLIC = re.compile("[\u0400-\u04ff]")
REPO = Path(__file__).resolve().parents[1]


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
    assert sorted(TASK_GENERATORS) == sorted(TASKS)
    assert tree.name == f"miniature-{MINIATURE_VERSION}"
    for name, spec in TASKS.items():
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
            assert plan == {("en", "train"), ("en", "dev")}, name
        elif spec.is_retrieval:
            assert plan == {(lang, s) for lang in languages - {"en"} for s in ("dev", "test")}, name
        else:
            assert ("en", "train") in plan if spec.train_task is None else ("en", "train") not in plan, name
            assert {(lang, s) for lang in languages for s in ("dev", "test")} <= plan, name
    assert {lang for lang, _, _ in miniature_splits(TASKS["tydiqa"])} == {"en", "ru"}
    assert {lang for lang, _, _ in miniature_splits(TASKS["xnli"])} == set(MINIATURE_LANGUAGES)
    assert {s for _, s, _ in miniature_splits(TASKS["xquad"])} == {"dev", "test"}


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


def test_generation_is_deterministic(tree: Path, tmp_path: Path) -> None:
    # A fresh process with another hash seed: no dependence on set order or on state of this process.
    # It loads the module file alone, skipping the package __init__ (which imports torch).
    code = (
        "import importlib.util, sys; from pathlib import Path;"
        " spec = importlib.util.spec_from_file_location('miniature', sys.argv[2]);"
        " module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module);"
        " module.generate_miniature(Path(sys.argv[1]))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(REPO))
    args = [sys.executable, "-c", code, str(tmp_path / "again"), miniature.__file__]
    subprocess.run(args, check=True, env=env, cwd=REPO)
    ours = sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
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
    assert [p.name for p in tree.parent.iterdir()] == [tree.name]
    assert json.loads(manifest.read_text())["version"] == MINIATURE_VERSION


def _fake_generator(delay: float) -> Any:
    def generate(root: Path, seed: int = 0) -> Path:
        (root / "xnli" / "en").mkdir(parents=True)
        time.sleep(delay)
        (root / "xnli" / "en" / "dev.jsonl").write_text(f"{threading.get_ident()}\n")
        return root

    return generate


def test_concurrent_callers_get_one_complete_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(miniature, "generate_miniature", _fake_generator(0.2))
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
    final = tmp_path / f"miniature-{MINIATURE_VERSION}"
    assert results == [final] * 4
    assert [p.name for p in tmp_path.iterdir()] == [final.name]  # the losers discarded theirs
    assert len((final / "xnli/en/dev.jsonl").read_text().splitlines()) == 1  # one writer's tree


def test_a_lost_rename_race_discards_the_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final = tmp_path / f"miniature-{MINIATURE_VERSION}"

    def generate(root: Path, seed: int = 0) -> Path:
        (root / "mine").write_text("loser")
        final.mkdir()  # another process finished first
        (final / "theirs").write_text("winner")
        return root

    monkeypatch.setattr(miniature, "generate_miniature", generate)
    assert ensure_miniature(tmp_path) == final
    assert sorted(p.name for p in final.iterdir()) == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_a_failed_generation_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def generate(root: Path, seed: int = 0) -> Path:
        (root / "half").write_text("")
        raise RuntimeError("disk full")

    monkeypatch.setattr(miniature, "generate_miniature", generate)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_miniature(tmp_path)
    assert list(tmp_path.iterdir()) == []


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
