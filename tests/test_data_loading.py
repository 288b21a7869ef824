"""load_split and friends: hub schemas (hub faked from local files), local files, the miniature, errors."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import datasets
import pytest
from datasets.exceptions import DataFilesNotFoundError, DatasetNotFoundError

from trainers.config import DataConfig
from trainers.data import (
    CANONICAL_FEATURES,
    DataError,
    available_languages,
    load_split,
    resolve_english_dev,
    resolve_train_task,
)
from trainers.tasks import CANONICAL_COLUMNS, HubSource, TaskSpecError, get_task
from trainers.tasks.xtreme import NER_TAGS, NLI_LABELS, UPOS_TAGS

REAL_LOAD_DATASET = datasets.load_dataset

Value = datasets.Value
List = datasets.List


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


HubKey = tuple[str, str | None, str | None, tuple[tuple[str, str], ...]]
"""A fake hub's files: dataset id, config, revision, data_files."""


class FakeHub:
    """Stands in for ``datasets.load_dataset``: serves jsonl files with the hub's exact features, each only
    when asked for by its dataset id, config, revision and data_files (as the hub serves a revision's files)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[HubKey, tuple[Path, datasets.Features | None]] = {}
        self.calls: list[tuple[str, str | None, str]] = []
        self.options: list[dict[str, Any]] = []
        """Each call's keyword arguments beyond the split."""

    def add(
        self,
        path: str,
        config: str | None,
        rows: list[dict[str, Any]],
        features: dict[str, Any] | None = None,
        *,
        revision: str | None = None,
        data_files: dict[str, str] | None = None,
    ) -> None:
        key: HubKey = (path, config, revision, tuple(sorted((data_files or {}).items())))
        file = write_jsonl(self.root / "hub" / path / f"{len(self.files)}-{config}.jsonl", rows)
        self.files[key] = (file, datasets.Features(features) if features else None)

    def __call__(self, path: str, name: str | None = None, *, split: str, **kwargs: Any) -> datasets.Dataset:
        if path == "json":  # the local branch still reads real files
            return REAL_LOAD_DATASET(path, name, split=split, **kwargs)
        self.calls.append((path, name, split))
        self.options.append(kwargs)
        assert set(kwargs) <= {"revision", "data_files"}, kwargs
        key: HubKey = (
            path,
            name,
            kwargs.get("revision"),
            tuple(sorted(kwargs.get("data_files", {}).items())),
        )
        file, features = self.files[key]
        return REAL_LOAD_DATASET(
            "json", data_files=str(file), split="train", features=features, cache_dir=str(self.root / "hf")
        )


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake = FakeHub(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    return fake


@pytest.fixture
def hub_config(tmp_path: Path) -> DataConfig:
    return DataConfig(source="hub", cache_dir=str(tmp_path / "cache"))


@pytest.fixture
def local(tmp_path: Path) -> DataConfig:
    return DataConfig(source="local", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))


def local_file(data: DataConfig, task: str, lang: str, split: str, rows: list[dict[str, Any]]) -> Path:
    assert data.data_dir is not None
    return write_jsonl(Path(data.data_dir) / task / lang / f"{split}.jsonl", rows)


def assert_canonical(dataset: datasets.Dataset, task: str) -> None:
    spec = get_task(task)
    assert tuple(dataset.column_names) == CANONICAL_COLUMNS[spec.type]
    assert dataset.features == CANONICAL_FEATURES[spec.type]


# -- hub schemas ----------------------------------------------------------------------------------


def test_hub_xnli_classlabel_ints_become_names(hub: FakeHub, hub_config: DataConfig) -> None:
    features = {
        "premise": Value("string"),
        "hypothesis": Value("string"),
        "label": datasets.ClassLabel(names=NLI_LABELS),
    }
    rows = [
        {"premise": "p0", "hypothesis": "h0", "label": 2},
        {"premise": "p1", "hypothesis": "h1", "label": 0},
    ]
    hub.add("facebook/xnli", "de", rows, features)
    dataset = load_split(get_task("xnli"), "dev", "de", hub_config)
    assert hub.calls == [("facebook/xnli", "de", "validation")]
    assert_canonical(dataset, "xnli")
    assert dataset.to_list() == [
        {"text_a": "p0", "text_b": "h0", "label": "contradiction"},
        {"text_a": "p1", "text_b": "h1", "label": "entailment"},
    ]


def test_hub_sst2_single_sentence(hub: FakeHub, hub_config: DataConfig) -> None:
    rows = [{"idx": 0, "sentence": "good", "label": 1}]
    hub.add(
        "stanfordnlp/sst2",
        None,
        rows,
        {"idx": Value("int32"), "sentence": Value("string"), "label": Value("int64")},
    )
    dataset = load_split(get_task("sst2"), "train", "en", hub_config)
    assert_canonical(dataset, "sst2")
    assert dataset[0] == {"text_a": "good", "label": "positive"}


def test_hub_panx_int_ner_tags(hub: FakeHub, hub_config: DataConfig) -> None:
    features = {
        "tokens": List(Value("string")),
        "ner_tags": List(datasets.ClassLabel(names=NER_TAGS)),
        "langs": List(Value("string")),
    }
    hub.add(
        "google/xtreme",
        "PAN-X.fr",
        [{"tokens": ["Jean", "à", "Paris"], "ner_tags": [1, 0, 5], "langs": ["fr"] * 3}],
        features,
    )
    dataset = load_split(get_task("panx"), "test", "fr", hub_config)
    assert hub.calls == [("google/xtreme", "PAN-X.fr", "test")]
    assert_canonical(dataset, "panx")
    assert dataset[0] == {"tokens": ["Jean", "à", "Paris"], "tags": ["B-PER", "O", "B-LOC"]}


def test_hub_udpos_config_uses_language_name(hub: FakeHub, hub_config: DataConfig) -> None:
    features = {"tokens": List(Value("string")), "pos_tags": List(datasets.ClassLabel(names=UPOS_TAGS))}
    hub.add("google/xtreme", "udpos.German", [{"tokens": ["Ich", "gehe"], "pos_tags": [10, 15]}], features)
    dataset = load_split(get_task("udpos"), "dev", "de", hub_config)
    assert hub.calls == [("google/xtreme", "udpos.German", "validation")]
    assert dataset[0]["tags"] == ["PRON", "VERB"]


QA_FEATURES = {
    "id": Value("string"),
    "title": Value("string"),
    "context": Value("string"),
    "question": Value("string"),
    "answers": {"text": List(Value("string")), "answer_start": List(Value("int32"))},
}


def qa_row(id_: str, context: str = "Paris is in France.", answer: str = "France") -> dict[str, Any]:
    start = context.index(answer)
    return {
        "id": id_,
        "title": "t",
        "context": context,
        "question": "Where?",
        "answers": {"text": [answer], "answer_start": [start]},
    }


def test_hub_xquad_nested_answers(hub: FakeHub, hub_config: DataConfig) -> None:
    hub.add("google/xtreme", "XQuAD.es", [qa_row("q1")], QA_FEATURES)
    dataset = load_split(get_task("xquad"), "test", "es", hub_config)
    assert hub.calls == [("google/xtreme", "XQuAD.es", "validation")]
    assert_canonical(dataset, "xquad")
    assert dataset[0]["answers"] == {"text": ["France"], "answer_start": [12]}


def test_hub_tydiqa_filters_rows_by_id_prefix(hub: FakeHub, hub_config: DataConfig) -> None:
    rows = [qa_row("english-1"), qa_row("arabic-2"), qa_row("english-3"), qa_row("finnish-4")]
    hub.add("google/xtreme", "tydiqa", rows, QA_FEATURES)
    english = load_split(get_task("tydiqa"), "test", "en", hub_config)
    arabic = load_split(get_task("tydiqa"), "train", "ar", hub_config)
    assert english["id"] == ["english-1", "english-3"]
    assert arabic["id"] == ["arabic-2"]
    assert [call[2] for call in hub.calls] == ["validation", "train"]


def test_hub_hellaswag_string_label_and_endings(hub: FakeHub, hub_config: DataConfig) -> None:
    row = {
        "ind": 4,
        "activity_label": "Cooking",
        "ctx_a": "A man",
        "ctx_b": "cuts",
        "ctx": "A man cuts",
        "endings": ["a", "b", "c", "d"],
        "source_id": "s",
        "split": "val",
        "split_type": "indomain",
        "label": "2",
    }
    hub.add("Rowan/hellaswag", None, [row])
    dataset = load_split(get_task("hellaswag"), "dev", "en", hub_config)
    assert_canonical(dataset, "hellaswag")
    assert dataset[0] == {
        "context": "A man cuts",
        "question": "",
        "choices": ["a", "b", "c", "d"],
        "label": 2,
    }


def test_local_cosmosqa_gathers_answer_columns(local: DataConfig) -> None:
    row = {"id": "c", "context": "ctx", "question": "q?", "label": 1} | {
        f"answer{i}": f"a{i}" for i in range(4)
    }
    local_file(local, "cosmosqa", "en", "train", [row])
    dataset = load_split(get_task("cosmosqa"), "train", "en", local)
    assert dataset[0] == {"context": "ctx", "question": "q?", "choices": ["a0", "a1", "a2", "a3"], "label": 1}


# Repos whose main holds only a loading script, read at the hub's parquet conversion of it: each row as the
# converter wrote it (the script's features), the canonical row it becomes, and where the converter's branch
# holds a split's files when the registry names them ({split}: the hub's split name).
CONVERTED: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str | None]] = [
    (
        "copa",  # aps/super_glue: every SuperGLUE config's files on one branch
        {"premise": "The glass fell.", "choice1": "It broke.", "choice2": "It sang.", "question": "effect"}
        | {"idx": 3, "label": 0},
        {"premise": Value("string"), "choice1": Value("string"), "choice2": Value("string")}
        | {"question": Value("string"), "idx": Value("int32")}
        | {"label": datasets.ClassLabel(names=["choice1", "choice2"])},
        {
            "context": "The glass fell.",
            "question": "effect",
            "choices": ["It broke.", "It sang."],
            "label": 0,
        },
        "copa/{split}/*.parquet",
    ),
    (
        "siqa",  # allenai/social_i_qa: labels are the strings "1"-"3"
        {"context": "Jan lent Sam a pen.", "question": "Why?", "answerA": "a", "answerB": "b", "answerC": "c"}
        | {"label": "3"},
        {name: Value("string") for name in ("context", "question", "answerA", "answerB", "answerC", "label")},
        {"context": "Jan lent Sam a pen.", "question": "Why?", "choices": ["a", "b", "c"], "label": 2},
        None,
    ),
    (
        "cosmosqa",  # allenai/cosmos_qa: four answer columns, an int32 label
        {"id": "x", "context": "ctx", "question": "q?", "label": 1}
        | {f"answer{i}": f"a{i}" for i in range(4)},
        {name: Value("string") for name in ("id", "context", "question", "answer0", "answer1", "answer2")}
        | {"answer3": Value("string"), "label": Value("int32")},
        {"context": "ctx", "question": "q?", "choices": ["a0", "a1", "a2", "a3"], "label": 1},
        None,
    ),
]


@pytest.mark.parametrize(
    ("task", "row", "features", "canonical", "files"), CONVERTED, ids=[c[0] for c in CONVERTED]
)
def test_hub_script_only_repo_reads_its_parquet_conversion(
    hub: FakeHub,
    hub_config: DataConfig,
    task: str,
    row: dict[str, Any],
    features: dict[str, Any],
    canonical: dict[str, Any],
    files: str | None,
) -> None:
    spec = get_task(task)
    assert spec.hub is not None and spec.hub.revision is not None and not spec.hub.script_only
    for split, hub_split in (("train", "train"), ("dev", "validation")):
        data_files = {hub_split: files.format(split=hub_split)} if files else None
        # The fake serves these rows only to a call at the revision with these files.
        hub.add(spec.hub.path, None, [row], features, revision=spec.hub.revision, data_files=data_files)
        dataset = load_split(spec, split, "en", hub_config)
        assert_canonical(dataset, task)
        assert dataset.to_list() == [canonical]
    # The revision reaches every call, with one split's files each (datasets prepares no other split).
    assert [call[2] for call in hub.calls] == ["train", "validation"]
    assert hub.options == [
        {"revision": spec.hub.revision} | ({"data_files": {s: files.format(split=s)}} if files else {})
        for s in ("train", "validation")
    ]


def test_script_only_hub_dataset_is_one_data_error_before_any_download(
    hub: FakeHub, hub_config: DataConfig
) -> None:
    # A repo whose main holds only a loading script (which datasets 5 refuses) and no known conversion.
    cosmos = get_task("cosmosqa")
    assert cosmos.hub is not None
    script = dataclasses.replace(cosmos.hub, revision=None, script_only=True, verified="script only: x.py")
    with pytest.raises(DataError, match=r"^cosmosqa: allenai/cosmos_qa is a script-based hub dataset"):
        load_split(dataclasses.replace(cosmos, hub=script), "train", "en", hub_config)
    assert hub.calls == []


def test_hub_refusals_become_one_line_data_errors(
    hub_config: DataConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(message: str, kind: type[Exception]) -> Any:
        def load(*args: Any, **kwargs: Any) -> Any:
            raise kind(message)

        return load

    monkeypatch.setattr(
        datasets,
        "load_dataset",
        refuse("Dataset scripts are no longer supported, but found x.py", RuntimeError),
    )
    with pytest.raises(DataError, match="script-based hub dataset") as error:
        load_split(get_task("mnli"), "dev", "en", hub_config)
    assert "\n" not in str(error.value)
    monkeypatch.setattr(
        datasets, "load_dataset", refuse('Unknown split "validation". Should be one of', ValueError)
    )
    with pytest.raises(DataError, match=r"udpos: google/xtreme \(udpos.German\) has no split 'validation'"):
        load_split(get_task("udpos"), "dev", "de", hub_config)
    # A pinned revision the hub no longer has, or files that are not at it: one line naming the revision.
    siqa = get_task("siqa")
    assert siqa.hub is not None and siqa.hub.revision is not None
    gone = f"Revision '{siqa.hub.revision}' doesn't exist for dataset 'allenai/social_i_qa' on the Hub."
    monkeypatch.setattr(datasets, "load_dataset", refuse(gone, DatasetNotFoundError))
    with pytest.raises(DataError) as error:
        load_split(siqa, "train", "en", hub_config)
    assert str(error.value) == f"siqa: allenai/social_i_qa@{siqa.hub.revision}: {gone}"
    missing = "Unable to find 'hf://datasets/aps/super_glue@5ac8656/copa/validation/*.parquet'\nmore"
    monkeypatch.setattr(datasets, "load_dataset", refuse(missing, DataFilesNotFoundError))
    with pytest.raises(DataError, match=r"^copa: aps/super_glue@[0-9a-f]{40}: Unable to find '\S+'$"):
        load_split(get_task("copa"), "dev", "en", hub_config)
    # Without a revision or files of its own, a missing dataset is not rewritten (preflight names it).
    monkeypatch.setattr(datasets, "load_dataset", refuse("Dataset 'x' doesn't exist", DatasetNotFoundError))
    with pytest.raises(DatasetNotFoundError):
        load_split(get_task("mnli"), "dev", "en", hub_config)


def test_hub_languages_without_a_dev_split_fail_before_any_download(
    hub: FakeHub, hub_config: DataConfig
) -> None:
    # google/xtreme's udpos.Kazakh has train and test only, udpos.Thai test only.
    with pytest.raises(DataError, match=r"^udpos: no split 'dev' for 'kk' on the hub \(udpos.Kazakh\)$"):
        load_split(get_task("udpos"), "dev", "kk", hub_config)
    with pytest.raises(DataError, match="no split 'dev' for 'th'"):
        load_split(get_task("udpos"), "dev", "th", hub_config)
    assert hub.calls == []


def test_every_hub_entry_says_how_its_id_was_verified() -> None:
    from trainers.tasks import TASKS

    for task in TASKS.values():
        if task.hub is not None:
            assert task.hub.verified, f"{task.name} ({task.hub.path}) has no verification note"
            assert task.hub.script_only == task.hub.verified.startswith("script only"), task.name
            if task.hub.revision is not None:
                # Pinned to the commit whose files were seen (a branch moves; the converter's is rewritten
                # when main changes), and the note names that commit.
                assert re.fullmatch(r"[0-9a-f]{40}", task.hub.revision), task.name
                assert task.hub.revision[:7] in task.hub.verified, task.name


def test_hub_data_files_name_the_files_of_every_split_read() -> None:
    with pytest.raises(
        TaskSpecError, match=r"^hub source a/b: data_files names no files for split\(s\) validation$"
    ):
        HubSource("a/b", None, {"train": "train", "dev": "validation"}, data_files={"train": "t/*.parquet"})
    source = HubSource("a/b", None, {"train": "train[10:]", "dev": "train[:10]"}, data_files={"train": "t/*"})
    assert source.files_of("train[:10]") == {"train": "t/*"}
    assert HubSource("a/b", None, {"train": "train"}).files_of("train") == {}


def test_hub_commonsenseqa_nested_choices_and_letter_key(hub: FakeHub, hub_config: DataConfig) -> None:
    row = {
        "id": "x",
        "question": "Where?",
        "question_concept": "c",
        "choices": {"label": list("ABCDE"), "text": ["v", "w", "x", "y", "z"]},
        "answerKey": "C",
    }
    hub.add("tau/commonsense_qa", None, [row])
    dataset = load_split(get_task("commonsenseqa"), "dev", "en", hub_config)
    assert dataset[0] == {
        "context": "",
        "question": "Where?",
        "choices": ["v", "w", "x", "y", "z"],
        "label": 2,
    }


def test_hub_retrieval_columns_and_cap(hub: FakeHub, tmp_path: Path) -> None:
    rows = [
        {"source_sentence": f"s{i}", "target_sentence": f"t{i}", "source_lang": "deu", "target_lang": "eng"}
        for i in range(5)
    ]
    hub.add("google/xtreme", "tatoeba.deu", rows)
    data = DataConfig(source="hub", cache_dir=str(tmp_path / "cache"), max_eval_examples=3)
    dataset = load_split(get_task("tatoeba"), "test", "de", data)
    assert_canonical(dataset, "tatoeba")
    assert dataset["source"] == ["s0", "s1", "s2"]
    assert dataset["target"] == ["t0", "t1", "t2"]


# -- hub errors -------------------------------------------------------------------------------------


def test_hub_errors_before_download(hub: FakeHub, hub_config: DataConfig) -> None:
    with pytest.raises(DataError, match=r"xquad: no split 'train' on the hub; splits: test$"):
        load_split(get_task("xquad"), "train", "en", hub_config)
    with pytest.raises(DataError, match=r"no language 'xx'; languages: en, ar"):
        load_split(get_task("xnli"), "test", "xx", hub_config)
    with pytest.raises(DataError, match="ccg has no hub source"):
        load_split(get_task("ccg"), "train", "en", hub_config)
    assert hub.calls == []


def test_hub_missing_column_names_it(hub: FakeHub, hub_config: DataConfig) -> None:
    hub.add("facebook/xnli", "en", [{"premise": "p", "label": 0}])
    with pytest.raises(DataError, match=r"no column 'hypothesis' \(columns: premise, label\)") as error:
        load_split(get_task("xnli"), "dev", "en", hub_config)
    assert "facebook/xnli" in str(error.value)


# -- local files ----------------------------------------------------------------------------------


def test_local_matches_hub_types_and_caps_first_rows(local: DataConfig) -> None:
    rows = [{"premise": f"p{i}", "hypothesis": "h", "label": i % 3} for i in range(5)]
    local_file(local, "xnli", "en", "train", rows)
    local.max_train_examples = 2
    dataset = load_split(get_task("xnli"), "train", "en", local)
    assert_canonical(dataset, "xnli")
    assert dataset["text_a"] == ["p0", "p1"]
    assert dataset["label"] == ["entailment", "neutral"]
    # Same rows, same fingerprint: the feature cache keys on it.
    assert load_split(get_task("xnli"), "train", "en", local)._fingerprint == dataset._fingerprint


def test_local_ccg_string_tags_are_kept(local: DataConfig) -> None:
    local_file(local, "ccg", "en", "train", [{"tokens": ["I", "run"], "tags": ["NP", "S\\NP"]}])
    dataset = load_split(get_task("ccg"), "train", "en", local)
    assert dataset[0] == {"tokens": ["I", "run"], "tags": ["NP", "S\\NP"]}


def test_local_squad_v2_unanswerable_keeps_types(local: DataConfig) -> None:
    unanswerable = qa_row("u") | {"answers": {"text": [], "answer_start": []}}
    local_file(local, "squad_v2", "en", "dev", [unanswerable])
    dataset = load_split(get_task("squad_v2"), "dev", "en", local)
    assert_canonical(dataset, "squad_v2")
    assert dataset[0]["answers"] == {"text": [], "answer_start": []}


def test_available_languages(local: DataConfig, hub_config: DataConfig) -> None:
    row = [{"premise": "p", "hypothesis": "h", "label": 0}]
    for lang in ("de", "en", "xx"):
        local_file(local, "xnli", lang, "test", row)
    assert local.data_dir is not None
    (Path(local.data_dir) / "xnli" / "fr").mkdir()  # no files: not a language
    assert available_languages(get_task("xnli"), local) == ("en", "de", "xx")
    assert available_languages(get_task("pawsx"), local) == ()
    assert available_languages(get_task("pawsx"), hub_config) == get_task("pawsx").languages


def test_miniature_reads_what_ensure_miniature_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    roots: list[Path] = []

    def ensure_miniature(root: Path) -> Path:
        roots.append(root)
        write_jsonl(root / "pawsx" / "ja" / "dev.jsonl", [{"sentence1": "a", "sentence2": "b", "label": 1}])
        return root

    fake = types.ModuleType("trainers.data.miniature")
    fake.ensure_miniature = ensure_miniature  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "trainers.data.miniature", fake)
    data = DataConfig(source="miniature", cache_dir=str(tmp_path / "cache"))
    dataset = load_split(get_task("pawsx"), "dev", "ja", data)
    assert dataset[0] == {"text_a": "a", "text_b": "b", "label": "paraphrase"}
    assert roots[0] == tmp_path / "cache" / "data"
    assert available_languages(get_task("pawsx"), data) == ("ja",)


def test_resolve_train_task_and_english_dev() -> None:
    assert resolve_train_task(get_task("xquad")).name == "squad_v1"
    assert resolve_train_task(get_task("xnli")).name == "xnli"
    xquad_dev = resolve_english_dev(get_task("xquad"))
    assert (xquad_dev[0].name, xquad_dev[1]) == ("squad_v1", "dev")
    mlqa_dev = resolve_english_dev(get_task("mlqa"))
    assert (mlqa_dev[0].name, mlqa_dev[1]) == ("mlqa", "dev")


# -- local errors -----------------------------------------------------------------------------------


def test_unknown_split_lists_the_task_splits(local: DataConfig) -> None:
    with pytest.raises(DataError, match=r"xquad: unknown split 'validation'; splits: test$"):
        load_split(get_task("xquad"), "validation", "en", local)


def test_missing_language_lists_present_ones(local: DataConfig) -> None:
    local_file(local, "xnli", "en", "test", [{"premise": "p", "hypothesis": "h", "label": 0}])
    with pytest.raises(DataError, match=r"no language 'de' under .*xnli; languages: en$"):
        load_split(get_task("xnli"), "test", "de", local)


def test_missing_data_dir(tmp_path: Path) -> None:
    data = DataConfig(source="local", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"data\.data_dir .*nowhere does not exist"):
        load_split(get_task("xnli"), "test", "en", data)
    data.data_dir = None
    with pytest.raises(DataError, match=r"needs data\.data_dir"):
        load_split(get_task("xnli"), "test", "en", data)


def test_missing_file_names_path_and_present_splits(local: DataConfig) -> None:
    local_file(local, "xnli", "en", "test", [{"premise": "p", "hypothesis": "h", "label": 0}])
    with pytest.raises(DataError, match=r"missing file .*xnli/en/dev\.jsonl; splits present: test$"):
        load_split(get_task("xnli"), "dev", "en", local)


def test_missing_column_fails_before_parsing_the_file(
    local: DataConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = local_file(local, "xnli", "en", "test", [{"premise": "p", "label": 0, "idx": 1}])

    def no_heavy_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("load_dataset called before the columns were checked")

    monkeypatch.setattr(datasets, "load_dataset", no_heavy_work)
    with pytest.raises(DataError, match=r"no column 'hypothesis' \(columns: premise, label, idx\)") as error:
        load_split(get_task("xnli"), "test", "en", local)
    assert str(path) in str(error.value)


def test_missing_nested_field(local: DataConfig) -> None:
    row = {"question": "q", "choices": {"label": ["A"], "txt": ["x"]}, "answerKey": "A"}
    local_file(local, "commonsenseqa", "en", "train", [row])
    with pytest.raises(DataError, match=r"column 'choices' has no field 'text' \(fields: label, txt\)"):
        load_split(get_task("commonsenseqa"), "train", "en", local)


@pytest.mark.parametrize(
    ("task", "row", "message"),
    [
        ("xnli", {"premise": "p", "hypothesis": "h", "label": 3}, "label 3 out of range for 3 label names"),
        ("xnli", {"premise": "p", "hypothesis": "h", "label": -1}, "label -1 out of range"),
        ("panx", {"tokens": ["a"], "ner_tags": [7]}, "label 7 out of range for 7 label names"),
        (
            "xnli",
            {"premise": "p", "hypothesis": "h", "label": "maybe"},
            "label 'maybe' is not one of entailment",
        ),
        (
            "commonsenseqa",
            {"question": "q", "choices": {"label": ["A"], "text": ["x"]}, "answerKey": "F"},
            "label 'F' out of range; expected one of A, B, C, D, E",
        ),
    ],
)
def test_label_out_of_range(local: DataConfig, task: str, row: dict[str, Any], message: str) -> None:
    local_file(local, task, "en", "test", [row])
    with pytest.raises(DataError, match=message):
        load_split(get_task(task), "test", "en", local)


# -- a task trained on its dev split (data.dev_as_train) -------------------------------------------


def test_dev_as_train_holds_out_the_first_rows_and_trains_on_the_rest(local: DataConfig) -> None:
    rows = [{"premise": f"p{i}", "hypothesis": "h", "label": i % 3} for i in range(7)]
    local_file(local, "xnli", "en", "dev", rows)
    local.dev_as_train = {"xnli": 3}
    dev = load_split(get_task("xnli"), "dev", "en", local)
    train = load_split(get_task("xnli"), "train", "en", local)
    assert dev["text_a"] == ["p0", "p1", "p2"]
    assert train["text_a"] == ["p3", "p4", "p5", "p6"]  # disjoint, together the whole dev file
    assert_canonical(train, "xnli")
    # The caps apply to each part, after the split: the held-out rows never move into training.
    local.max_train_examples, local.max_eval_examples = 2, 2
    assert load_split(get_task("xnli"), "train", "en", local)["text_a"] == ["p3", "p4"]
    assert load_split(get_task("xnli"), "dev", "en", local)["text_a"] == ["p0", "p1"]


def test_dev_as_train_leaves_other_tasks_and_the_test_split_alone(local: DataConfig) -> None:
    local_file(local, "xnli", "en", "train", [{"premise": "t", "hypothesis": "h", "label": 0}])
    local_file(local, "xnli", "en", "test", [{"premise": "x", "hypothesis": "h", "label": 0}])
    local_file(
        local, "pawsx", "en", "dev", [{"sentence1": f"s{i}", "sentence2": "b", "label": 1} for i in range(3)]
    )
    local.dev_as_train = {"pawsx": 1}
    assert load_split(get_task("xnli"), "train", "en", local)["text_a"] == ["t"]
    assert load_split(get_task("xnli"), "test", "en", local)["text_a"] == ["x"]
    assert load_split(get_task("pawsx"), "train", "en", local)["text_a"] == ["s1", "s2"]


def test_dev_as_train_that_leaves_nothing_to_train_is_one_line(local: DataConfig) -> None:
    local_file(local, "xnli", "en", "dev", [{"premise": "p", "hypothesis": "h", "label": 0}] * 3)
    local.dev_as_train = {"xnli": 3}
    with pytest.raises(DataError, match=r"xnli's en dev split has 3 rows; holding out 3 leaves none"):
        load_split(get_task("xnli"), "train", "en", local)
