"""``xstilts score``: XTREME's file formats in, XTREME's evaluate.py numbers out (hand-worked cases)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import seqeval.metrics

from search.cli import main
from search.score import ScoreError, score_files
from trainers.tasks import get_task

REAL = Path(os.environ.get("XSTILTS_REAL_DATA", "/work/shared/real"))


def _lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _tags(path: Path, sentences: list[list[str]]) -> Path:
    return _lines(path, [line for sentence in sentences for line in [*sentence, ""]])


def _squad(path: Path, gold: dict[str, str]) -> Path:
    qas = [
        {"id": qid, "question": "?", "answers": [{"text": text, "answer_start": 0}]}
        for qid, text in gold.items()
    ]
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(["score", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else None, err


@pytest.mark.parametrize(
    ("language", "prediction", "gold", "f1"),
    [("zh", "北京大学", "北京", 200 / 3), ("de", "«Berlin»", "Berlin", 100.0)],
)
def test_score_mlqa_prints_the_mlqa_scripts_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], language: str, prediction: str, gold: str, f1: float
) -> None:
    predictions = _json(tmp_path / "p.json", {"q": prediction})
    labels = _squad(tmp_path / "l.json", {"q": gold})
    code, result, _ = _run(
        capsys, "mlqa", "--predictions", str(predictions), "--labels", str(labels), "--language", language
    )
    assert code == 0
    assert result["f1"] == pytest.approx(f1)
    # SQuAD's English normalisation (XQuAD, TyDiQA) scores both 0: Unicode punctuation, no characters.
    assert score_files("xquad", predictions, labels)["f1"] == 0.0


def test_score_pos_is_seqeval_f1_where_token_accuracy_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _tags(tmp_path / "labels.tsv", [["DET", "NOUN", "VERB"]])
    predictions = _tags(tmp_path / "pred.tsv", [["DET", "NOUN", "NOUN"]])
    code, result, _ = _run(capsys, "udpos", "--predictions", str(predictions), "--labels", str(labels))
    assert code == 0
    # Chunks ET, OUN, ERB vs ET, OUN[1:3]: P = 1/2, R = 1/3 -> F1 40, where 2 of 3 tokens are right.
    assert result["f1"] == pytest.approx(40.0)
    assert result["accuracy"] == pytest.approx(200 / 3)


def test_score_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = _lines(tmp_path / "l.tsv", ["0", "1"])
    predictions = _lines(tmp_path / "p.tsv", ["0"])
    code, _, err = _run(capsys, "xnli", "--predictions", str(predictions), "--labels", str(labels))
    assert code == 2 and err.count("\n") == 1 and "has 1 entries for 2" in err
    code, _, err = _run(capsys, "xnli", "--predictions", str(tmp_path / "none.tsv"), "--labels", str(labels))
    assert code == 2 and "no file" in err
    code, _, err = _run(capsys, "ccg", "--predictions", str(predictions), "--labels", str(labels))
    assert code == 2 and "unknown XTREME task 'ccg'" in err
    code, _, err = _run(capsys, "xnli", "--labels", str(labels))
    assert code == 2 and "score needs TASK --predictions P --labels L" in err


def _all_tasks(root: Path) -> tuple[Path, Path]:
    """Prediction and label folders for every language of every XTREME task, with known task scores."""
    pred, gold = root / "pred", root / "gold"
    for task, (p, g) in {
        "pawsx": (["1", "1"], ["1", "0"]),  # accuracy 50
        "xnli": (["entailment"], ["entailment"]),  # 100
        "tatoeba": (["0", "2"], ["0", "1"]),  # 50
        "bucc2018": (["a\tb", "c\td"], ["a\tb"]),  # P 1/2, R 1 -> F1 66.7
    }.items():
        for lang in get_task("bucc" if task == "bucc2018" else task).languages:
            _lines(pred / task / f"test-{lang}.tsv", p)
            _lines(gold / task / f"test-{lang}.tsv", g)
    for task, (p_tags, g_tags) in {
        "udpos": ([["DET", "NOUN", "NOUN"]], [["DET", "NOUN", "VERB"]]),  # seqeval F1 40
        "panx": ([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]]),  # 100
    }.items():
        for lang in get_task(task).languages:
            _tags(pred / task / f"test-{lang}.tsv", p_tags)
            _tags(gold / task / f"test-{lang}.tsv", g_tags)
    qa = {
        "xquad": ({"q": "Paris"}, {"q": "Paris"}),  # EM 100, F1 100
        # q1 exact; q2 one extra token: EM 50, F1 (100 + 66.7) / 2 = 83.3 -> (EM + F1) / 2 = 66.7
        "mlqa": ({"q1": "Berlin", "q2": "Berlin Mitte"}, {"q1": "Berlin", "q2": "Berlin"}),
        "tydiqa": ({"q": "Rome"}, {"q": "Paris"}),  # 0
    }
    for task, (p_qa, g_qa) in qa.items():
        for lang in get_task(task).languages:
            _json(pred / task / f"test-{lang}.json", p_qa)
            _squad(gold / task / f"test-{lang}.json", g_qa)
    return pred, gold


def test_score_all_prints_xtremes_task_group_and_overall_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred, gold = _all_tasks(tmp_path)
    code, result, _ = _run(capsys, "--all", str(pred), str(gold))
    assert code == 0
    expected = {
        "pawsx": 50.0, "xnli": 100.0, "udpos": 40.0, "panx": 100.0, "xquad": 100.0,
        "mlqa": (50.0 + 250 / 3) / 2, "tydiqa": 0.0, "bucc": 200 / 3, "tatoeba": 50.0,
    }  # fmt: skip
    assert {task: r["xtreme"] for task, r in result["tasks"].items()} == pytest.approx(expected)
    assert result["tasks"]["mlqa"]["average"] == pytest.approx({"exact_match": 50.0, "f1": 250 / 3})
    assert set(result["tasks"]["xquad"]["languages"]) == set(get_task("xquad").languages)  # no ro
    assert result["groups"] == pytest.approx(
        {"classification": 75.0, "tagging": 70.0, "qa": (100.0 + expected["mlqa"]) / 3, "retrieval": 175 / 3}
    )
    assert result["xtreme_score"] == pytest.approx(sum(expected.values()) / 9)


def test_score_all_without_every_task_has_no_xtreme_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred, gold = _all_tasks(tmp_path)
    for task in ("udpos", "panx"):
        for path in (pred / task).iterdir():
            path.unlink()
        (pred / task).rmdir()
    code, result, _ = _run(capsys, "--all", str(pred), str(gold))
    assert code == 0 and result["xtreme_score"] is None
    assert "tagging" not in result["groups"] and "qa" in result["groups"]
    (pred / "xnli" / "test-de.tsv").unlink()
    code, _, err = _run(capsys, "--all", str(pred), str(gold))
    assert code == 2 and f"no file {pred / 'xnli' / 'test-de.tsv'}" in err


TYDIQA_EN = REAL / "tydiqa" / "tydiqa-goldp-v1.1-train" / "tydiqa.goldp.en.train.json"
needs_real = pytest.mark.skipif(
    not TYDIQA_EN.is_file() or not (REAL / "udpos" / "dev-de.tsv").is_file(),
    reason=f"real XTREME files not found under {REAL} (set XSTILTS_REAL_DATA)",
)


@needs_real
def test_score_on_real_tydiqa_and_udpos_files(tmp_path: Path) -> None:
    # The English TyDiQA-GoldP train set is labelled (XTREME's dev/test copies here have empty answers),
    # but XTREME's copy numbers questions per paragraph, so ids repeat: refused, not silently merged.
    predictions = _json(tmp_path / "p.json", {"0": "x"})
    with pytest.raises(ScoreError, match=r"question id '.*' occurs twice; ids must be unique"):
        score_files("tydiqa", predictions, TYDIQA_EN)
    # One question per id, as a labels file in tmp_path.
    articles = json.loads(TYDIQA_EN.read_text(encoding="utf-8"))["data"]
    qas = list(
        {qa["id"]: qa for a in articles for p in a["paragraphs"] for qa in reversed(p["qas"])}.values()
    )
    labels = _json(tmp_path / "labels.json", {"data": [{"paragraphs": [{"context": "", "qas": qas}]}]})
    gold = _json(tmp_path / "gold.json", {qa["id"]: qa["answers"][0]["text"] for qa in qas})
    assert score_files("tydiqa", gold, labels) == {"f1": 100.0, "exact_match": 100.0}
    half = _json(tmp_path / "half.json", {qa["id"]: qa["answers"][0]["text"] for qa in qas[: len(qas) // 2]})
    with pytest.warns(UserWarning, match="Unanswered question"):  # as the SQuAD script prints, per question
        half_scores = score_files("tydiqa", half, labels)
    assert half_scores["exact_match"] == pytest.approx(100 * (len(qas) // 2) / len(qas))
    # UD POS dev (token<TAB>tag lines): predict NOUN everywhere; XTREME's number is seqeval's F1 of read_tag.
    sentences = [
        [line.split("\t")[1] for line in block.splitlines()]
        for block in (REAL / "udpos" / "dev-de.tsv").read_text(encoding="utf-8").split("\n\n")
        if block.strip()
    ]
    labels_path = _tags(tmp_path / "ud.tsv", sentences)
    predictions = _tags(tmp_path / "noun.tsv", [["NOUN"] * len(s) for s in sentences])
    scores = score_files("udpos", predictions, labels_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # seqeval: "NOUN seems not to be NE tag", per tag
        reference = 100 * seqeval.metrics.f1_score(sentences, [["NOUN"] * len(s) for s in sentences])
    assert scores["f1"] == pytest.approx(reference)
    assert scores["f1"] != pytest.approx(scores["accuracy"], abs=1.0)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["udpos", "mlqa", "pawsx"])
def test_the_pipelines_numbers_are_xstilts_scores_of_its_own_predictions(
    target: str, tiny_config: Any, tmp_path: Path
) -> None:
    from trainers.worker import Plan, run_local

    config = tiny_config(tmp_path / "run", target, None, ["evaluation.write_predictions=true"])
    results = run_local(Plan(config, cache_root=str(tmp_path / "cache")))
    languages = sorted(k.split("/")[1] for k in results if k.startswith("zero_shot/") and k.count("/") == 1)
    assert languages
    suffix = "json" if target == "mlqa" else "tsv"
    for lang in languages:
        predictions, labels = (
            tmp_path / "run" / kind / target / f"test-{lang}.{suffix}" for kind in ("predictions", "labels")
        )
        scores = score_files(target, predictions, labels, lang)
        for key, value in scores.items():
            assert results[f"zero_shot/{lang}/{key}"] == pytest.approx(value), (lang, key)


# XTREME evaluate.py's TASK2LANGS (its "bucc2018" is our "bucc"): the languages its scores average over.
XTREME_TASK2LANGS = {
    "pawsx": "de,en,es,fr,ja,ko,zh",
    "xnli": "ar,bg,de,el,en,es,fr,hi,ru,sw,th,tr,ur,vi,zh",
    "panx": "ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,ko,th,sw,"
    "yo,my,zh,kk,tr,et,fi,hu",
    "udpos": "af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,nl,pt,ru,ta,te,th,tl,tr,ur,vi,yo,zh",
    "bucc": "de,fr,ru,zh",
    "tatoeba": "ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,ko,th,sw,zh,kk,"
    "tr,et,fi,hu",
    "xquad": "en,es,de,el,ru,tr,ar,vi,th,zh,hi",
    "mlqa": "en,es,de,ar,hi,vi,zh",
    "tydiqa": "en,ar,bn,fi,id,ko,ru,sw,te",
}


@pytest.mark.parametrize("task", sorted(XTREME_TASK2LANGS))
def test_every_task_averages_over_xtremes_languages(task: str) -> None:
    assert set(get_task(task).languages) == set(XTREME_TASK2LANGS[task].split(","))
