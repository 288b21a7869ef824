"""XLM-R XL and XXL: what their hub configs name loads as the right encoder, freezing finds its layers, and the
memory plan's shapes count what that encoder holds.

Both hub configs (facebook/xlm-roberta-xl, facebook/xlm-roberta-xxl) name ``model_type: xlm-roberta-xl`` and
``architectures: [XLMRobertaXLForMaskedLM]`` (read from stored copies of the hub's model listings, see
``trainers/memory.py``), so a checkpoint here is saved the same way: an ``XLMRobertaXLForMaskedLM``, whose
weights sit under ``roberta.``. transformers' ``XLMRobertaXLModel`` is pre-LayerNorm: its embeddings have no
LayerNorm and a final LayerNorm follows the last layer, which freezing never touches.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import XLMRobertaXLForMaskedLM, XLMRobertaXLModel

from trainers._phase import build_model
from trainers.config import TransferConfig
from trainers.encoders import layer_count, load_encoder, shape_config
from trainers.memory import ENCODER_SHAPES, EncoderShape, memory_plan
from trainers.modeling import HeadSpec, count_parameters, encoder_layers, freeze_bottom
from trainers.peak_memory import one_step_bytes
from trainers.tasks import TaskType

TINY_XL = EncoderShape(4, 32, 64, 2, 1000, 66, pre_norm=True)
"""A tiny XLM-R XL: 4 layers, hidden 32, FFN 64, 2 heads, 1,000 tokens, 66 positions."""


@pytest.fixture(scope="module")
def xl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny XLM-R XL saved as the hub's checkpoints are (the masked-LM class, its config's type)."""
    directory = tmp_path_factory.mktemp("tiny-xlmr-xl")
    torch.manual_seed(0)
    XLMRobertaXLForMaskedLM(shape_config(TINY_XL)).save_pretrained(directory)
    return directory


def test_a_hub_style_checkpoint_loads_as_the_xl_encoder_with_its_weights(xl_dir: Path) -> None:
    saved_config = json.loads((xl_dir / "config.json").read_text())
    assert saved_config["model_type"] == "xlm-roberta-xl"
    assert saved_config["architectures"] == ["XLMRobertaXLForMaskedLM"]

    encoder = load_encoder(str(xl_dir))

    assert type(encoder) is XLMRobertaXLModel
    saved = XLMRobertaXLForMaskedLM.from_pretrained(xl_dir).roberta.state_dict()
    loaded = encoder.state_dict()
    # Every encoder weight is the checkpoint's (its "roberta." prefix dropped); the pooler is not in a
    # masked-LM checkpoint, and build_model drops it.
    assert {name for name in loaded if not name.startswith("pooler.")} == set(saved)
    for name, value in saved.items():
        assert torch.equal(loaded[name], value), name
    assert layer_count(str(xl_dir)) == TINY_XL.layers


@pytest.mark.parametrize("depth", [0, 1, 3, 4])
def test_freezing_finds_the_xl_layers_and_leaves_the_final_layer_norm_trained(
    xl_dir: Path, depth: int
) -> None:
    model = build_model(str(xl_dir), [HeadSpec("pair", TaskType.PAIR_CLASSIFICATION, 2)], depth, seed=0)
    encoder = model.encoder
    embeddings, layers = encoder_layers(encoder)
    assert embeddings is encoder.embeddings and len(layers) == TINY_XL.layers

    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    frozen_prefixes = ("embeddings.", *(f"encoder.layer.{i}." for i in range(depth))) if depth else ()
    assert trainable == {
        name for name, _ in encoder.named_parameters() if not name.startswith(frozen_prefixes)
    }
    assert {"encoder.LayerNorm.weight", "encoder.LayerNorm.bias"} <= trainable
    # The plan's shape counts the same: all of it, and what this depth leaves trainable.
    frozen = 0 if depth == 0 else TINY_XL.embedding_parameters + depth * TINY_XL.layer_parameters
    trained, total = count_parameters(encoder)
    assert (trained, total) == (TINY_XL.parameters - frozen, TINY_XL.parameters)


@pytest.mark.parametrize(("name", "published_billions"), [("xlm-roberta-xl", 3.5), ("xlm-roberta-xxl", 10.7)])
def test_the_xl_shapes_count_what_transformers_builds(name: str, published_billions: float) -> None:
    shape = ENCODER_SHAPES[name]
    with torch.device("meta"):  # shapes only: no memory for 10.7B parameters
        encoder = XLMRobertaXLModel(shape_config(shape), add_pooling_layer=False)
    half = shape.layers // 2
    freeze_bottom(encoder, half)
    trained, total = count_parameters(encoder)
    assert total == shape.parameters
    assert trained == shape.parameters - shape.embedding_parameters - half * shape.layer_parameters
    assert round(total / 1e9, 1) == published_billions  # Goyal et al. 2021: 3.5B and 10.7B parameters


@pytest.mark.parametrize("freeze_depth", [0, 1])
def test_the_plan_is_within_20_percent_of_a_tiny_xl_encoders_measured_memory_on_cpu(
    freeze_depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ENCODER_SHAPES, "tiny-xlmr-xl", TINY_XL)
    batch, seq = 16, 64
    config = TransferConfig.from_dict(
        {
            "model": {"name_or_path": "tiny-xlmr-xl", "max_seq_length": seq, "doc_stride": seq // 2},
            "target": {"task": "udpos", "batch_size": batch, "freeze_depth": freeze_depth},
        }
    )
    plan = memory_plan(config, config.target, ["udpos"], device="cpu")
    assert plan is not None
    torch.manual_seed(0)
    encoder = XLMRobertaXLModel(shape_config(TINY_XL), add_pooling_layer=False)
    freeze_bottom(encoder, freeze_depth)
    activations, measured_static = one_step_bytes(encoder, TINY_XL.vocab, batch, seq)
    assert plan.parameters + plan.gradients + plan.optimizer == measured_static
    assert plan.activations == pytest.approx(activations, rel=0.20)
