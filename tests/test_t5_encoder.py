"""The T5 family (t5, mt5, umt5) as encoders: loaded as the encoder stack alone, frozen block by block,
mean-pooled for sentence-level heads, tokenized by a sentencepiece-style tokenizer, and counted by the
memory plan; every task type from rows to its metric on a tiny mT5 encoder (the model side of
``tests/test_task_types.py``'s contract). ``tests/test_pipeline.py`` runs ``tiny-t5`` through every phase.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from test_task_types import EXAMPLES, _a_task, _rows
from transformers import AutoModel, AutoTokenizer, MT5Config, MT5EncoderModel, MT5Model

from trainers import metrics
from trainers.config import TransferConfig
from trainers.data import collate, featurize
from trainers.encoders import (
    BUILTIN_ENCODERS,
    KNOWN_LAYER_COUNTS,
    T5_ENCODER_CLASSES,
    layer_count,
    load_encoder,
    resolve_encoder,
    sentence_pooling,
)
from trainers.evaluation import predict
from trainers.memory import ENCODER_SHAPES, encoder_shape, memory_plan
from trainers.modeling import FreezeError, HeadSpec, TransferModel, count_parameters, freeze_bottom
from trainers.peak_memory import one_step_bytes
from trainers.prepare import EvalSet
from trainers.retrieval import default_retrieval_layer
from trainers.task_types import TASK_TYPES
from trainers.tasks import TaskType, get_task
from trainers.zero_shot_eval import _embed


@pytest.fixture(scope="module")
def t5_dir(cache_dir: Path) -> str:
    return resolve_encoder("tiny-t5", cache_dir)


@pytest.fixture(scope="module")
def t5_tokenizer(t5_dir: str) -> Any:
    return AutoTokenizer.from_pretrained(t5_dir, use_fast=True)


def _tiny_mt5_config(vocab: int, layers: int = 2) -> MT5Config:
    return MT5Config(
        vocab_size=vocab,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=2,
        feed_forward_proj="gated-gelu",
        decoder_start_token_id=0,
    )


def test_tiny_t5_is_built_in_with_its_layer_count(t5_dir: str) -> None:
    assert BUILTIN_ENCODERS["tiny-t5"].num_layers == KNOWN_LAYER_COUNTS["tiny-t5"] == 2
    encoder = load_encoder(t5_dir)
    assert type(encoder).__name__ == "MT5EncoderModel"
    assert encoder.config.num_layers == layer_count("tiny-t5") == layer_count(t5_dir) == 2
    assert encoder_shape("tiny-t5") == ENCODER_SHAPES["tiny-t5"]
    assert encoder_shape("tiny-t5").parameters == sum(p.numel() for p in encoder.parameters())  # type: ignore[union-attr]


def test_an_encoder_decoder_checkpoint_loads_as_its_encoder_stack(tmp_path: Path) -> None:
    # A whole mT5 checkpoint (encoder and decoder), as google/mt5-* are published.
    torch.manual_seed(0)
    full = MT5Model(_tiny_mt5_config(50))
    full.save_pretrained(tmp_path)
    ids, mask = torch.randint(3, 50, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    with pytest.raises(ValueError, match=r"input_ids or inputs_embeds"):
        AutoModel.from_pretrained(tmp_path)(input_ids=ids, attention_mask=mask)  # the decoder has no input
    encoder = load_encoder(str(tmp_path))
    assert type(encoder).__name__ == T5_ENCODER_CLASSES["mt5"]
    full.eval(), encoder.eval()
    expected = full.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(encoder(input_ids=ids, attention_mask=mask).last_hidden_state, expected)
    assert not any(name.startswith("decoder") for name, _ in encoder.named_parameters())


def test_pooling_by_family() -> None:
    assert {sentence_pooling(model_type) for model_type in T5_ENCODER_CLASSES} == {"mean"}
    assert sentence_pooling("xlm-roberta") == sentence_pooling("bert") == "first"
    sentence_level = {t for t, module in TASK_TYPES.items() if module.sentence_level}
    assert {
        TaskType.SINGLE_CLASSIFICATION,
        TaskType.PAIR_CLASSIFICATION,
        TaskType.MULTIPLE_CHOICE,
    } <= sentence_level
    assert TaskType.TAGGING not in sentence_level and TaskType.SPAN_QA not in sentence_level


def test_a_sentence_head_reads_the_masked_mean_and_ignores_padding() -> None:
    torch.manual_seed(0)
    task = get_task("pawsx")
    model = TransferModel(MT5EncoderModel(_tiny_mt5_config(40)), [HeadSpec.of(task)]).eval()
    assert model.pooling == "mean"
    ids = torch.tensor([[5, 6, 7, 1, 0, 0], [8, 9, 10, 11, 12, 1]])
    mask = (torch.arange(6) < torch.tensor([[4], [6]])).long()
    states = model.encode(ids, mask)
    expected = torch.stack([states[0, :4].mean(0), states[1].mean(0)])
    torch.testing.assert_close(model.encode_sentences(ids, mask), expected)
    # More padding changes nothing: the head never sees a padded position.
    _, logits = model(task.name, {"input_ids": ids, "attention_mask": mask})
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    _, padded_logits = model(
        task.name, {"input_ids": padded, "attention_mask": torch.cat([mask, mask[:, :3] * 0], 1)}
    )
    torch.testing.assert_close(padded_logits, logits)


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_freeze_depth_freezes_the_shared_embedding_and_the_bottom_blocks(t5_dir: str, depth: int) -> None:
    encoder = load_encoder(t5_dir)
    freeze_bottom(encoder, depth)
    frozen = {name for name, p in encoder.named_parameters() if not p.requires_grad}
    blocks = [f"encoder.block.{i}." for i in range(depth)]
    expected = {
        name
        for name, _ in encoder.named_parameters()
        if depth and (name == "shared.weight" or any(name.startswith(b) for b in blocks))
    }
    assert frozen == expected
    assert "encoder.final_layer_norm.weight" not in frozen
    trainable, total = count_parameters(encoder)
    shape = ENCODER_SHAPES["tiny-t5"]
    assert total == shape.parameters
    frozen_count = 0 if depth == 0 else shape.embedding_parameters + depth * shape.layer_parameters
    assert trainable == total - frozen_count
    with pytest.raises(FreezeError, match=r"freeze_depth must be in \[0, 2\]"):
        freeze_bottom(load_encoder(t5_dir), 3)


def test_the_tokenizer_is_fast_and_sentencepiece_shaped(t5_tokenizer: Any) -> None:
    assert t5_tokenizer.is_fast and t5_tokenizer.cls_token is None
    encoded = t5_tokenizer("Paris is a city", "Rome", return_offsets_mapping=True)
    tokens = t5_tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[0].startswith("▁") and tokens.count("</s>") == 2 and tokens[-1] == "</s>"
    assert encoded.sequence_ids()[-1] is None and encoded["offset_mapping"][0] == (0, 5)


@pytest.mark.parametrize(
    ("task_name", "rows", "check"),
    [
        (
            "udpos",
            [{"tokens": ["Paris", "is", "a", "city", "."], "tags": ["PROPN", "AUX", "DET", "NOUN", "PUNCT"]}],
            "tags",
        ),
        ("squad_v2", None, "answer"),
    ],
)
def test_tagging_and_qa_features_on_the_t5_tokenizer(
    t5_tokenizer: Any, task_name: str, rows: Any, check: str
) -> None:
    from test_features import SHORT, qa_example

    task = get_task(task_name)
    if rows is None:
        rows = [qa_example("a", SHORT, "the capital of France")]
    dataset = datasets.Dataset.from_list(rows, features=TASK_TYPES[task.type].canonical_features)
    names = ("PROPN", "AUX", "DET", "NOUN", "PUNCT")
    features = featurize(
        task, dataset, t5_tokenizer, max_length=64, doc_stride=16, training=True, label_names=names
    )
    row = features[0]
    if check == "tags":
        # One label per word, on its first piece, in order.
        assert [label for label in row["labels"] if label >= 0] == [0, 1, 2, 3, 4]
    else:
        span = row["input_ids"][row["start_positions"] : row["end_positions"] + 1]
        assert t5_tokenizer.decode(span).strip() == "the capital of france"  # the tokenizer lower-cases


@pytest.mark.parametrize("task_type", list(EXAMPLES), ids=str)
def test_every_task_type_from_rows_to_its_metric_on_a_t5_encoder(
    task_type: TaskType, t5_tokenizer: Any
) -> None:
    """The contract of tests/test_task_types.py on the T5 family: features, loss, gradients, decoding."""
    task, module = _a_task(task_type), TASK_TYPES[task_type]
    names = EXAMPLES[task_type][1]
    rows = _rows(task_type)
    options: dict[str, Any] = {"max_length": 48, "doc_stride": 16, "label_names": names}
    torch.manual_seed(0)
    if not module.trainable:
        features = featurize(task, rows.select_columns(["source"]), t5_tokenizer, training=False, **options)
        assert features.column_names == ["input_ids", "attention_mask"]
        return
    encoder = MT5EncoderModel(_tiny_mt5_config(len(t5_tokenizer)))
    model = TransferModel(encoder, [HeadSpec.of(task, names)])
    train = featurize(task, rows, t5_tokenizer, training=True, **options)
    batch = collate([train[i] for i in range(len(train))], t5_tokenizer.pad_token_id)
    loss, _ = model(task.name, batch)
    assert loss is not None and loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert encoder.shared.weight.grad is not None
    evaluation = featurize(task, rows, t5_tokenizer, training=False, **options)
    data = EvalSet(task, "en", "dev", rows, evaluation)
    predictions, references = predict(
        model, task.name, data, names, 2, t5_tokenizer.pad_token_id, torch.device("cpu")
    )
    assert len(predictions) == len(references) == len(rows)
    scores = metrics.compute(task.metric, predictions, references, "en")
    assert 0.0 <= metrics.primary(task.metric, scores) <= 100.0


def test_retrieval_embeds_a_t5_hidden_state(t5_dir: str, t5_tokenizer: Any, tmp_path: Path) -> None:
    encoder = load_encoder(t5_dir).eval()
    layers = int(encoder.config.num_hidden_layers)
    layer = default_retrieval_layer(str(encoder.config.model_type), layers)
    assert (layers, layer) == (2, 1)
    assert (
        default_retrieval_layer("mt5", KNOWN_LAYER_COUNTS["mt5-large"]) == 14
    )  # XLM-R large's relative depth
    config = TransferConfig.from_dict({"output_dir": str(tmp_path), "target": {"task": "tatoeba"}})
    with torch.no_grad():
        embeddings = _embed(
            encoder, t5_tokenizer, ["Berlin is a city.", "a"], layer, config, torch.device("cpu")
        )
    assert embeddings.shape == (2, encoder.config.d_model)


def _plan(model: str, **sections: Any) -> Any:
    data: dict[str, Any] = {
        "model": {"name_or_path": model, "max_seq_length": 64, "doc_stride": 32},
        "target": {"task": "udpos"},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    config = TransferConfig.from_dict(data)
    return memory_plan(config, config.target, ["udpos"], device="cpu" if model.startswith("tiny") else "cuda")


def test_mt5_parameter_counts_match_the_published_encoders() -> None:
    # MT5EncoderModel parameter counts of google/mt5-base and -large: shared embedding, the blocks (the
    # first with its relative-position bias), the final RMSNorm; no decoder, no LM head.
    assert (
        ENCODER_SHAPES["mt5-base"].parameters
        == 250112 * 768 + 12 * (4 * 768 * 768 + 3 * 768 * 2048 + 2 * 768) + 32 * 12 + 768
    )
    assert ENCODER_SHAPES["mt5-xxl"].parameters > 5.6e9  # the 13B model's encoder
    assert 3.4e9 < ENCODER_SHAPES["xlm-roberta-xl"].parameters < 3.6e9  # "XL (3.5B)"
    assert 10.5e9 < ENCODER_SHAPES["xlm-roberta-xxl"].parameters < 10.9e9  # "XXL (10.7B)"
    for name in (
        "mt5-small",
        "mt5-base",
        "mt5-large",
        "mt5-xl",
        "mt5-xxl",
        "xlm-roberta-xl",
        "xlm-roberta-xxl",
    ):
        assert layer_count(f"google/{name}") == ENCODER_SHAPES[name].layers, name
    assert _plan("google/mt5-large", scaling={"use_gpu": True}) is not None


@pytest.mark.parametrize("freeze_depth", [0, 1])
def test_the_t5_plan_is_within_20_percent_of_tiny_t5s_measured_memory_on_cpu(
    t5_dir: str, freeze_depth: int
) -> None:
    batch, seq = 16, 64
    plan = _plan("tiny-t5", target={"task": "udpos", "batch_size": batch, "freeze_depth": freeze_depth})
    assert plan is not None
    encoder = load_encoder(t5_dir)
    freeze_bottom(encoder, freeze_depth)
    torch.manual_seed(0)
    activations, static = one_step_bytes(encoder, ENCODER_SHAPES["tiny-t5"].vocab, batch, seq)
    assert plan.parameters + plan.gradients + plan.optimizer == pytest.approx(static, rel=0.01)
    assert plan.activations == pytest.approx(activations, rel=0.20)
    assert plan.total == pytest.approx(static + activations, rel=0.20)


def test_a_checkpoint_with_only_a_sentencepiece_model_gets_a_fast_tokenizer(
    t5_dir: str, t5_tokenizer: Any, tmp_path: Path
) -> None:
    """google/mt5-* ship ``spiece.model`` and no ``tokenizer.json``: the fast tokenizer the tagging and QA
    features need (offsets, word ids) is converted from it, which takes the ``sentencepiece`` package."""
    pytest.importorskip("sentencepiece")
    from transformers.convert_slow_tokenizer import import_protobuf

    from trainers.prepare import load_tokenizer

    # tiny-t5's Unigram pieces, written as a sentencepiece model (mT5's layout: pad 0, eos 1, unk 2).
    vocab = json.loads((Path(t5_dir) / "tokenizer.json").read_text())["model"]["vocab"]
    proto = import_protobuf().ModelProto()
    for piece, score in vocab:
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        entry.type = {"<unk>": 2, "<pad>": 3, "</s>": 3, "<extra_id_0>": 4}.get(piece, 1)
    proto.trainer_spec.model_type = 1  # Unigram
    proto.trainer_spec.unk_id, proto.trainer_spec.pad_id, proto.trainer_spec.eos_id = 2, 0, 1
    proto.trainer_spec.bos_id = -1
    proto.normalizer_spec.name, proto.normalizer_spec.add_dummy_prefix = "nmt_nfkc", True
    (tmp_path / "spiece.model").write_bytes(proto.SerializeToString())
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "extra_ids": 0}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", **special}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mt5"}))

    tokenizer = load_tokenizer(str(tmp_path))
    assert tokenizer.is_fast
    text = (
        "paris is the capital of france"  # lower case, no punctuation: tiny-t5's normaliser changes nothing
    )
    assert tokenizer(text)["input_ids"] == t5_tokenizer(text)["input_ids"]
    rows = [{"tokens": ["paris", "is", "a", "city"], "tags": ["PROPN", "AUX", "DET", "NOUN"]}]
    task = get_task("udpos")
    dataset = datasets.Dataset.from_list(rows, features=TASK_TYPES[task.type].canonical_features)
    names = ("PROPN", "AUX", "DET", "NOUN")
    features = featurize(
        task, dataset, tokenizer, max_length=32, doc_stride=8, training=True, label_names=names
    )
    assert [label for label in features[0]["labels"] if label >= 0] == [0, 1, 2, 3]


def test_frozen_t5_blocks_stay_bit_identical_through_deepspeed_steps(
    t5_dir: str, tiny_config: Any, tmp_path: Path
) -> None:
    """build_model on tiny-t5, freeze_depth=1, four DeepSpeed (ZeRO 2) steps on mean-pooled PAWS-X: the shared
    embedding and block 0 are untouched, block 1, the final RMSNorm and the head move."""
    from trainers import _loop
    from trainers._phase import build_model
    from trainers.config import DeepSpeedConfig, PhaseConfig
    from trainers.engine import build_engine, init_distributed
    from trainers.prepare import label_names_for, load_tokenizer, train_features

    task = get_task("pawsx")
    config = tiny_config(tmp_path, task.name, overrides=["model.name_or_path=tiny-t5"])
    tokenizer = load_tokenizer(t5_dir)
    features = train_features(config, task, tokenizer, label_names_for(task, config))
    batch = collate([features[i] for i in range(8)], tokenizer.pad_token_id)
    model = build_model(t5_dir, [HeadSpec.of(task)], freeze_depth=1, seed=0)
    assert model.pooling == "mean"
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    init_distributed(torch.device("cpu"))
    steps = 4  # DeepSpeed's warm-up gives the first steps a zero learning rate
    phase = PhaseConfig(learning_rate=1e-2, batch_size=8, max_steps=steps)
    engine = build_engine(model, phase, DeepSpeedConfig(zero_stage=2), steps, torch.device("cpu"))
    for _ in range(steps):
        _loop.train_step(engine, task.name, batch)
    after = dict(engine.module.named_parameters())
    for name, value in before.items():
        frozen = name == "encoder.shared.weight" or name.startswith("encoder.encoder.block.0.")
        assert after[name].requires_grad is not frozen, name
        assert torch.equal(after[name].detach(), value) is frozen, name
    assert "encoder.encoder.final_layer_norm.weight" in before


ENCODER_STAND_INS = {
    "bert-base-multilingual-cased": "tiny",
    "xlm-roberta-base": "tiny",
    "xlm-roberta-large": "tiny",
    "google/mt5-base": "tiny-t5",
    "google/mt5-large": "tiny-t5",
}
"""The tiny encoder of each family that spaces/encoders.yaml's encoders stand in for on CPU."""


@pytest.mark.slow
def test_the_encoders_space_runs_on_tiny_shapes(cache_dir: Path, tmp_path: Path) -> None:
    """spaces/encoders.yaml as shipped, shrunk: each family's seeded no-intermediate point and one drawn with an
    intermediate task, on PAWS-X (a mean-pooled head on the T5 family), through every phase on the miniature."""
    from search.space import load_space
    from trainers.config import apply_overrides
    from trainers.worker import Plan, run_local

    space = load_space("encoders")
    assert set(space.encoders) == set(ENCODER_STAND_INS), "an encoder of the space needs a tiny stand-in here"
    tiny_shapes = [
        "model.max_seq_length=64",
        "model.doc_stride=32",
        "data.source=miniature",
        f"data.cache_dir={cache_dir}",
        "data.max_train_examples=64",
        "data.max_eval_examples=16",
        "scaling.num_workers=1",
        "scaling.use_gpu=false",
        "deepspeed.precision=auto",
        "evaluation.split=dev",
        "evaluation.batch_size=32",
        "target.max_steps=3",
        "target.eval_every=null",
    ]
    families: dict[str, dict[str, Any]] = {}
    for point in space.points_for("pawsx"):
        families.setdefault(ENCODER_STAND_INS[point["model.name_or_path"]], point)
    assert set(families) == {"tiny", "tiny-t5"}, "every family has a seeded point"
    for stand_in, point in families.items():
        drawn = {**point, "intermediate_task": "mnli", "intermediate.learning_rate": 1e-3}
        for i, params in enumerate((point, drawn)):
            config = space.to_transfer_config(params, "pawsx")
            output = tmp_path / f"{stand_in}-{i}"
            overrides = [*tiny_shapes, f"model.name_or_path={stand_in}", f"output_dir={output}"]
            if config.intermediate is not None:
                overrides.append("intermediate.max_steps=3")
            data = apply_overrides(config.to_dict(), overrides)
            results = run_local(Plan(TransferConfig.from_dict(data), cache_root=str(tmp_path / "cache")))
            assert results["finished"] == 1.0, (stand_in, params)
            assert 0.0 <= results["zero_shot_avg"] <= 100.0
            assert ("intermediate/step" in results) is (params is drawn)
