"""The masked-LM task type: BERT's masking (counts, 80/10/10, reproducible from a seed), its features, the
tied LM head, the loss on masked positions, the miniature's multilingual text, and that it is intermediate only.

The type's path from rows to its metric is in the contract suite (tests/test_task_types.py), its run through
every phase in tests/test_pipeline.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from test_features import tokenizer  # noqa: F401 (a fixture)
from transformers import BertConfig, BertModel

from trainers.config import ConfigError, TransferConfig
from trainers.data import featurize
from trainers.data.miniature import GENERATORS, _rng
from trainers.errors import DataError
from trainers.modeling import HeadSpec, TransferModel, freeze_bottom
from trainers.task_types import IGNORE_INDEX, TASK_TYPES
from trainers.task_types.masked_lm import MaskedLMHead, mask_tokens
from trainers.tasks import TaskSpec, TaskSpecError, TaskType, get_task

MLM = get_task("mlm_multilingual")
TEXTS = [
    "The cat sat on the mat while the dog slept in the garden.",
    "Paris is the capital of France and its largest city.",
    "Rome",
]


def _encoder(vocab: int, tie: bool = True) -> BertModel:
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        tie_word_embeddings=tie,
    )
    return BertModel(config, add_pooling_layer=False)


def _model(vocab: int, seed: int, tie: bool = True) -> Any:
    torch.manual_seed(seed)  # what build_model does with the config's seed before the heads are made
    return TransferModel(_encoder(vocab, tie), [HeadSpec.of(MLM)])


def _features(tokenizer: Any, training: bool) -> datasets.Dataset:  # noqa: F811
    rows = datasets.Dataset.from_list(
        [{"text": text} for text in TEXTS], features=TASK_TYPES[TaskType.MASKED_LM].canonical_features
    )
    return featurize(MLM, rows, tokenizer, max_length=48, doc_stride=16, training=training)


def test_mask_tokens_predicts_round_fifteen_percent_of_maskable_tokens_the_bert_way() -> None:
    rows, length, mask_id, vocab = 400, 60, 3, 1000
    ids = torch.randint(10, vocab, (rows, length), generator=torch.Generator().manual_seed(1))
    maskable = torch.ones(rows, length, dtype=torch.bool)
    maskable[:, 0] = maskable[:, -1] = False  # [CLS] ... [SEP]
    maskable[: rows // 2, 40:] = False  # padding of half the rows
    inputs, positions, gold = mask_tokens(ids, maskable, mask_id, vocab, torch.Generator().manual_seed(0))
    predicted = gold != IGNORE_INDEX
    # round(15%) of each row's maskable tokens: 38 -> 6 (5.7), 58 -> 9 (8.7)
    assert predicted[: rows // 2].sum(1).tolist() == [6] * (rows // 2)
    assert predicted[rows // 2 :].sum(1).tolist() == [9] * (rows // 2)
    where = positions[predicted]
    row_of = torch.arange(rows)[:, None].expand_as(positions)[predicted]
    assert maskable[row_of, where].all(), "a special token or padding was picked"
    assert len({(int(r), int(p)) for r, p in zip(row_of, where, strict=True)}) == len(where), (
        "a position twice"
    )
    assert torch.equal(gold[predicted], ids[row_of, where])
    # Positions not picked read their own token.
    untouched = torch.ones_like(ids, dtype=torch.bool)
    untouched[row_of, where] = False
    assert torch.equal(inputs[untouched], ids[untouched])
    # 80% read the mask, 10% a random token, 10% are kept (a random token may equal the original: rare).
    now = inputs[row_of, where]
    share_mask = (now == mask_id).float().mean().item()
    share_kept = (now == ids[row_of, where]).float().mean().item()
    assert 0.77 < share_mask < 0.83 and 0.08 < share_kept < 0.12
    assert 0.07 < 1 - share_mask - share_kept < 0.12


def test_mask_tokens_is_reproducible_from_its_seed_and_differs_across_seeds() -> None:
    ids = torch.arange(10, 70).reshape(3, 20)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    first, again, other = (
        mask_tokens(ids, maskable, 3, 100, torch.Generator().manual_seed(seed)) for seed in (5, 5, 6)
    )
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])


def test_mask_tokens_masks_one_token_of_a_short_row_and_none_of_an_empty_one() -> None:
    ids = torch.tensor([[1, 7, 2, 0, 0], [1, 2, 0, 0, 0]])
    maskable = torch.tensor([[False, True, False, False, False], [False] * 5])
    inputs, positions, gold = mask_tokens(ids, maskable, 3, 50, torch.Generator().manual_seed(0))
    assert (gold[0] != IGNORE_INDEX).sum() == 1 and int(positions[0][gold[0] != IGNORE_INDEX]) == 1
    assert (gold[1] == IGNORE_INDEX).all() and torch.equal(inputs[1], ids[1])


def test_training_features_hold_the_mask_at_every_maskable_token_and_the_originals_in_labels(
    tokenizer: Any,  # noqa: F811
) -> None:
    features = _features(tokenizer, training=True)
    mask_id = tokenizer.mask_token_id
    for text, row in zip(TEXTS, features, strict=True):
        plain = tokenizer(text, truncation=True, max_length=48)["input_ids"]
        assert row["input_ids"][0] == plain[0] and row["input_ids"][-1] == plain[-1]  # [CLS], [SEP] kept
        assert row["input_ids"][1:-1] == [mask_id] * (len(plain) - 2)
        assert row["labels"] == [IGNORE_INDEX, *plain[1:-1], IGNORE_INDEX]


def test_evaluation_features_are_masked_once_the_same_in_every_run(tokenizer: Any) -> None:  # noqa: F811
    first, second = _features(tokenizer, training=False), _features(tokenizer, training=False)
    assert first["input_ids"] == second["input_ids"] and first["labels"] == second["labels"]
    for text, row in zip(TEXTS, first, strict=True):
        plain = tokenizer(text, truncation=True, max_length=48)["input_ids"]
        positions = [i for i, label in enumerate(row["labels"]) if label != IGNORE_INDEX]
        assert len(positions) == max(1, round(0.15 * (len(plain) - 2)))
        assert all(row["labels"][i] == plain[i] for i in positions)
        assert 0 not in positions and len(plain) - 1 not in positions
        unmasked = [i for i in range(len(plain)) if i not in positions]
        assert [row["input_ids"][i] for i in unmasked] == [plain[i] for i in unmasked]


def test_the_lm_head_is_tied_to_the_input_embeddings_where_the_encoder_ties_them() -> None:
    tied = _model(64, 0)
    head = tied.heads[MLM.name]
    assert isinstance(head, MaskedLMHead) and head.vocab_size == 64
    assert head.decoder.weight is tied.encoder.get_input_embeddings().weight
    # Counted once; frozen with the embeddings.
    assert sum(p.numel() for p in tied.parameters()) == sum(
        p.numel() for p in tied.encoder.parameters()
    ) + sum(p.numel() for name, p in head.named_parameters() if not name.startswith("decoder"))
    freeze_bottom(tied.encoder, 1)
    assert not head.decoder.weight.requires_grad
    untied = _model(64, 0, tie=False)
    assert untied.heads[MLM.name].decoder.weight is not untied.encoder.get_input_embeddings().weight


def test_the_training_loss_is_on_masked_positions_and_reproducible_from_the_seed(tokenizer: Any) -> None:  # noqa: F811
    from trainers.data import collate

    features = _features(tokenizer, training=True)
    batch = collate([features[i] for i in range(len(features))], tokenizer.pad_token_id)

    def losses(seed: int) -> list[float]:
        model = _model(len(tokenizer), seed)
        model.eval()  # no dropout: the loss differs only by the masking drawn
        model.heads[MLM.name].train()
        return [float(model(MLM.name, batch)[0].detach()) for _ in range(3)]

    first = losses(0)
    assert first == losses(0)
    assert len(set(first)) == 3, "each step draws a fresh masking"
    # A loss over the whole vocabulary at random initialisation: about log(vocab).
    assert all(abs(loss - torch.log(torch.tensor(float(len(tokenizer)))).item()) < 1.5 for loss in first)
    model = _model(len(tokenizer), 0)
    loss, logits = model(MLM.name, batch)
    assert logits.shape[-1] == len(tokenizer)
    assert loss is not None
    loss.backward()
    assert model.encoder.get_input_embeddings().weight.grad is not None


def test_a_tied_t5_head_scales_the_states_so_the_first_loss_is_about_log_vocab(tokenizer: Any) -> None:  # noqa: F811
    from transformers import MT5Config, MT5EncoderModel

    from trainers.data import collate

    features = _features(tokenizer, training=True)
    batch = collate([features[i] for i in range(len(features))], tokenizer.pad_token_id)
    # transformers 5 ties every T5-family config (MT5Config forces tie_word_embeddings=True).
    torch.manual_seed(0)
    config = MT5Config(vocab_size=len(tokenizer), d_model=64, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    model: Any = TransferModel(MT5EncoderModel(config), [HeadSpec.of(MLM)])
    head = model.heads[MLM.name]
    assert isinstance(head, MaskedLMHead) and head.scale == 64**-0.5
    assert head.decoder.weight is model.encoder.get_input_embeddings().weight
    # T5 embeddings are initialised at unit scale: unscaled, the tied logits would be 8 times too large.
    loss = float(model(MLM.name, batch)[0].detach())
    assert abs(loss - torch.log(torch.tensor(float(len(tokenizer)))).item()) < 1.5, loss
    head.scale = 1.0
    assert float(model(MLM.name, batch)[0].detach()) > loss + 5.0


def test_a_target_of_the_masked_lm_type_is_one_error() -> None:
    with pytest.raises(TaskSpecError, match="a masked_lm task is an intermediate task only"):
        TaskSpec("mlm_target", TaskType.MASKED_LM, None, {"text": "text"}, role="target")
    with pytest.raises(ConfigError, match="mlm_multilingual is an intermediate task, not an XTREME target"):
        TransferConfig.from_dict({"target": {"task": "mlm_multilingual"}})


def test_the_miniature_writes_each_language_in_its_own_words() -> None:
    entry = GENERATORS["mlm_multilingual"]
    rows = {
        lang: entry.generate(_rng(0, "mlm", lang), lang, "train", 20) for lang in ("en", "de", "es", "ru")
    }
    assert rows["en"] == entry.generate(_rng(0, "mlm", "en"), "en", "train", 20)
    for lang, texts in rows.items():
        assert len(texts) == 20 and set(texts[0]) == {"id", "url", "title", "text"}
        assert all(row["text"] and row["url"].startswith(f"https://{lang}.") for row in texts)
    assert " works " in " ".join(r["text"] for r in rows["en"])
    assert " arbeitet " in " ".join(r["text"] for r in rows["de"])
    assert any("\u0400" <= ch <= "\u04ff" for ch in " ".join(r["text"] for r in rows["ru"]))


def _word_tokenizer(specials: list[str], **named: str) -> Any:
    """A word-level fast tokenizer with ``specials`` and the given special-token roles (no training)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["the", "cat", "sat", "on", "mat", "."]
    vocab = {token: i for i, token in enumerate([*specials, *words])}
    model = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=model, unk_token="<unk>", pad_token="<pad>", **named)


def test_a_tokenizer_without_a_mask_token_masks_with_t5s_first_sentinel_else_fails_in_one_line() -> None:
    rows = datasets.Dataset.from_list([{"text": "the cat sat on the mat ."}])
    t5 = _word_tokenizer(["<pad>", "</s>", "<unk>", "<extra_id_0>"], eos_token="</s>")
    assert t5.mask_token_id is None
    train = featurize(MLM, rows, t5, max_length=16, doc_stride=8, training=True)
    assert set(train[0]["input_ids"]) == {t5.convert_tokens_to_ids("<extra_id_0>")}
    bare = _word_tokenizer(["<pad>", "<unk>"])
    with pytest.raises(DataError, match="mlm_multilingual: the tokenizer has no mask token"):
        featurize(MLM, rows, bare, max_length=16, doc_stride=8, training=True)


@pytest.mark.slow
def test_the_multilingual_spaces_mlm_mixture_through_every_phase(tiny_config: Any, tmp_path: Path) -> None:
    """spaces/multilingual.yaml's English task + multilingual MLM mixture on the tiny encoder and the miniature:
    one encoder with a classification head and a tied LM head, then the target phase and zero-shot."""
    from search.space import load_space
    from trainers import keys
    from trainers.checkpoint_cache import CheckpointCache, intermediate_key
    from trainers.worker import Plan, run_local

    choices = load_space("spaces/multilingual.yaml").param("intermediate_task").choices  # type: ignore[union-attr]
    assert "mnli+mlm_multilingual" in choices
    config = tiny_config(tmp_path / "run", "xnli", ["mnli", "mlm_multilingual"], ["intermediate.max_steps=6"])
    cache_root = tmp_path / "intermediate-cache"
    results = run_local(Plan(config, cache_root=str(cache_root)))
    assert results["finished"] == 1.0 and results["intermediate/step"] == 6
    for task in ("mnli", "mlm_multilingual"):
        score = results[keys.INTERMEDIATE_EN_DEV.format(task=task, name="accuracy")]
        assert 0.0 <= score <= 100.0
    assert 0.0 <= results["zero_shot_avg"] <= 100.0 and 0.0 <= results["en_dev"] <= 100.0
    # The published encoder holds no head (the LM head's tied decoder is the embeddings, saved once).
    entry = CheckpointCache(cache_root).lookup(intermediate_key(config))
    assert entry is not None
    from safetensors import safe_open

    with safe_open(str(entry / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    assert names and not [name for name in names if "head" in name or "decoder" in name]
