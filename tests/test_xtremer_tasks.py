"""XTREME-R's XCOPA (trained on COPA, after Social IQa) and the translate-train intermediate tasks (``xnli_tt``,
``pawsx_tt``: the machine-translated training sets published with XNLI and PAWS-X, every language mixed).

The XTREME-layout readers are checked on the real files in ``../shared/real`` (its README lists sources and
licences; they skip with the reason when it is absent, or set ``XSTILTS_REAL_DATA``); translate-train files,
which that copy lacks, are written here in XTREME's format. The whole pipeline runs these tasks on the
miniature in tests/test_pipeline.py.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_features import tokenizer  # noqa: F401 (a fixture)

from trainers.config import DataConfig, TransferConfig
from trainers.data import DataError, available_languages, featurize, load_split, train_languages
from trainers.data.miniature import MINIATURE_LANGUAGES
from trainers.data.xtreme_layout import UnlabelledError
from trainers.preflight import check_data
from trainers.prepare import label_names_for, train_features
from trainers.tasks import TARGET_TASKS, get_task
from trainers.tasks.xtreme import NLI_LABELS

REAL = Path(os.environ.get("XSTILTS_REAL_DATA") or Path(__file__).resolve().parents[2] / "shared" / "real")
needs_real_xcopa = pytest.mark.skipif(
    not (REAL / "xcopa").is_dir() or not (REAL / "siqa").is_dir(),
    reason=f"no real XCOPA/SIQA data at {REAL} (../shared/real beside the repository, or XSTILTS_REAL_DATA)",
)

# XTREME-R's scripts/train_xcopa.sh: langs="et,ht,id,it,qu,sw,ta,th,tr,vi,zh".
XTREME_R_XCOPA = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")


def _xtreme(root: Path) -> DataConfig:
    return DataConfig(source="xtreme", data_dir=str(root))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- the registry -------------------------------------------------------------------------------------------


def test_xcopa_trains_on_copa_and_translate_train_mixes_every_language() -> None:
    xcopa = get_task("xcopa")
    assert "xcopa" in TARGET_TASKS and xcopa.languages == XTREME_R_XCOPA
    assert (xcopa.train_task, xcopa.english_dev_task, xcopa.metric) == ("copa", "copa", "accuracy")
    for name in ("copa", "siqa"):
        assert get_task(name).role == "intermediate" and get_task(name).type is xcopa.type
    # Their hub repos hold loading scripts on main: both read the hub's parquet conversion instead.
    for name in ("copa", "siqa"):
        hub = get_task(name).hub
        assert hub is not None and hub.revision is not None and not hub.script_only
    for tt, source in (("xnli_tt", "xnli"), ("pawsx_tt", "pawsx")):
        task, original = get_task(tt), get_task(source)
        assert task.role == "intermediate" and task.train_languages == original.languages
        assert task.train_languages[0] == "en"  # English included
        assert task.hub is not None and original.hub is not None and task.hub.path == original.hub.path
        assert task.label_names == original.label_names
        assert task.train_size is not None and original.train_size is not None
        assert task.train_size > original.train_size  # every language's train set counts
    # Every other task trains on English alone.
    assert get_task("mnli").train_languages == ("en",)


# -- the real XTREME-R files ----------------------------------------------------------------------------------


@needs_real_xcopa
def test_copa_xcopa_and_siqa_from_the_xtreme_download() -> None:
    data = _xtreme(REAL)
    copa = load_split(get_task("copa"), "train", "en", data)
    first = _jsonl(REAL / "xcopa" / "train-en.jsonl")[0]
    assert len(copa) == 400  # COPA's English train set
    assert copa[0] == {
        "context": first["premise"],
        "question": f"What was the {first['question']}?",
        "choices": [first["choice1"], first["choice2"]],
        "label": first["label"],
    }
    assert len(load_split(get_task("copa"), "dev", "en", data)) == 100
    xcopa = get_task("xcopa")
    # The folder's English files are COPA's: XCOPA's languages are XTREME-R's eleven.
    assert available_languages(xcopa, data) == XTREME_R_XCOPA
    rows = load_split(xcopa, "dev", "et", data)
    assert len(rows) == len(_jsonl(REAL / "xcopa" / "val-et.jsonl"))
    with pytest.raises(
        DataError, match=r"^xcopa: the 'en' files in .* belong to another task; it has dev: et "
    ):
        load_split(xcopa, "test", "en", data)
    siqa = load_split(get_task("siqa"), "dev", "en", data)
    assert len(siqa) == 1954 and set(siqa["label"]) == {0, 1, 2}
    with pytest.raises(DataError, match=r"^siqa: no train file for 'en' .*socialIQa_v1.4_trn.jsonl"):
        load_split(get_task("siqa"), "train", "en", data)


@needs_real_xcopa
def test_xcopa_run_reads_copa_siqa_and_xcopa_before_any_compute(tmp_path: Path) -> None:
    config = {
        "target": {"task": "xcopa"},
        "intermediate": {"tasks": ["siqa"]},
        "data": {"source": "xtreme", "data_dir": str(REAL)},
        "evaluation": {"split": "dev", "languages": ["et", "zh"]},
        "output_dir": str(tmp_path),
    }
    # SIQA has no train file in this copy: one line naming it, before anything trains.
    with pytest.raises(DataError, match=r"^siqa: no train file for 'en'"):
        check_data(TransferConfig.from_dict(config))
    del config["intermediate"]
    check_data(TransferConfig.from_dict(config))  # COPA's train and dev, XCOPA's et and zh dev: all there


# -- translate-train in XTREME's layout ---------------------------------------------------------------------


def _tsv(path: Path, rows: Sequence[tuple[str, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(rows)


def _download(root: Path) -> Path:
    """An XTREME download with XNLI's English train and dev files and German translate-train."""
    _tsv(root / "xnli/train-en.tsv", [("A man sleeps.", "A person rests.", "entailment")] * 3)
    _tsv(root / "xnli/dev-en.tsv", [("A dog runs.", "A cat runs.", "contradictory")] * 2)
    _tsv(root / "xnli/dev-de.tsv", [("Ein Hund rennt.", "Eine Katze rennt.", "contradictory")] * 2)
    translated = [
        ("Ein Mann schläft.", "Eine Person ruht.", "entailment"),
        ("Er isst.", "Er fastet.", "contradictory"),
    ]
    _tsv(root / "xnli/XNLI-Translated/en-de-translated.tsv", translated)
    return root


def test_translate_train_reads_every_language_of_the_download(tmp_path: Path) -> None:
    data = _xtreme(_download(tmp_path))
    task = get_task("xnli_tt")
    assert train_languages(task, data) == ("en", "de")
    german = load_split(task, "train", "de", data)
    assert german["text_a"] == ["Ein Mann schläft.", "Er isst."]
    assert german["label"] == ["entailment", "contradiction"]  # XNLI's "contradictory", renamed
    assert len(load_split(task, "train", "en", data)) == 3  # English: MNLI's train set, train-en.tsv
    # A run with it as the intermediate task checks each language's train file before any compute.
    config = {
        "target": {"task": "xnli"},
        "intermediate": {"tasks": ["xnli_tt"]},
        "data": {"source": "xtreme", "data_dir": str(tmp_path)},
        "evaluation": {"split": "dev"},
        "output_dir": str(tmp_path / "out"),
    }
    check_data(TransferConfig.from_dict(config))
    _tsv(tmp_path / "xnli/XNLI-Translated/en-de-translated.tsv", [("Ein Mann schläft.", "Eine Person ruht.")])
    with pytest.raises(
        UnlabelledError, match=r"^xnli_tt train/de: .*en-de-translated.tsv has no label column"
    ):
        check_data(TransferConfig.from_dict(config))


def test_translate_train_features_mix_the_miniature_languages(
    tiny_config: Any,
    tmp_path: Path,
    tokenizer: Any,  # noqa: F811
) -> None:
    config = tiny_config(tmp_path, "xcopa", ["xnli_tt"])
    task = get_task("xnli_tt")
    assert train_languages(task, config.data) == MINIATURE_LANGUAGES  # the miniature's four, all of XNLI's
    names = label_names_for(task, config)
    assert names == NLI_LABELS
    features = train_features(config, task, tokenizer, names)
    cap = config.data.max_train_examples
    assert len(features) == cap * len(MINIATURE_LANGUAGES)
    # Each language's rows, in turn, as featurized alone: English first, then German.
    options = {"max_length": config.model.max_seq_length, "doc_stride": config.model.doc_stride}
    for index, language in enumerate(("en", "de")):
        rows = load_split(task, "train", language, config.data)
        alone = featurize(task, rows, tokenizer, training=True, label_names=names, **options)
        assert features.select(range(index * cap, (index + 1) * cap)).to_list() == alone.to_list()
    english = load_split(task, "train", "en", config.data)["text_a"]
    assert english != load_split(task, "train", "de", config.data)["text_a"]


# -- bad input: one line before any compute -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intermediate", "named"),
    [
        ("intermediate=null", "copa (aps/super_glue)"),
        ("intermediate.tasks=[siqa]", "siqa (allenai/social_i_qa)"),
    ],
)
def test_xcopa_from_the_hub_offline_is_one_line_naming_the_uncached_dataset(
    tmp_path: Path, intermediate: str, named: str
) -> None:
    # COPA (XCOPA's English train set) and SIQA read parquet from the hub like any other task: offline with
    # an empty cache, the first one the run reads is named before any compute.
    overrides = [
        "target.task=xcopa",
        "data.source=hub",
        intermediate,
        f"data.cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'out'}",
    ]
    cache_variables = ("HF_HUB_CACHE", "HF_DATASETS_CACHE", "HUGGINGFACE_HUB_CACHE")
    env = {k: v for k, v in os.environ.items() if k not in cache_variables}
    result = subprocess.run(
        [sys.executable, "-m", "search.cli", "run", *(arg for o in overrides for arg in ("--set", o))],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")},
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("xstilts: error:")]
    assert errors == [
        f"xstilts: error: data.source=hub: {named} is not in the local datasets cache, and the hub is off "
        "(HF_HUB_OFFLINE)"
    ]
    assert not (tmp_path / "out").exists()  # nothing ran
