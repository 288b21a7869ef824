"""Peak memory of one training phase, measured where it runs, for the freeze-depth study's memory column.

On CUDA: the most device memory torch's allocator held for tensors during the phase
(``torch.cuda.max_memory_allocated``, its peak statistic reset when the phase starts), the figure the memory
plan (``trainers/memory.py``) estimates; the CUDA context and the allocator's cached blocks are not in it.
On CPU there is no allocator statistic: the nearest honest measure is the process's peak resident set
during the phase (Linux's ``VmHWM``, reset when the phase starts by writing 5 to ``/proc/self/clear_refs``).
It is the whole process (interpreter, libraries, data, the model), so it is larger than the plan's
estimate; across freeze depths of one setup, its differences are what the depth changed. Where that reset
is not allowed (not Linux), no CPU figure is reported rather than one that would include earlier phases.
"""

from __future__ import annotations

from pathlib import Path

import torch

from trainers import keys

MIB = 1024**2
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _resident_peak_bytes() -> int | None:
    """This process's peak resident set since its last reset (``VmHWM``), or None where /proc has none."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        return None
    return None


def _reset_resident_peak() -> bool:
    """Reset ``VmHWM`` to the current resident set (Linux >= 4.0); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PhasePeakMemory:
    """Started when a phase starts; ``metrics(phase)`` at its end gives the phase's peak as a metric."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.resident = False
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            self.resident = _reset_resident_peak() and _resident_peak_bytes() is not None

    def metrics(self, phase: str) -> dict[str, float]:
        """``memory/<phase>_cuda_peak_mib`` on CUDA, ``memory/<phase>_rss_peak_mib`` on CPU (none if unmeasured)."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            return {keys.MEMORY_CUDA_PEAK_MIB.format(phase=phase): peak / MIB}
        resident = _resident_peak_bytes() if self.resident else None
        if resident is None:
            return {}
        return {keys.MEMORY_RSS_PEAK_MIB.format(phase=phase): resident / MIB}


def one_step_bytes(encoder: torch.nn.Module, vocab: int, batch: int, seq: int) -> tuple[int, int]:
    """What one AdamW step of ``encoder`` (as built and frozen by the caller) on random ids of ``batch x seq``
    holds, measured on the tensors themselves: (bytes autograd saves for backward in the forward pass, each
    storage once, the weights excluded; bytes of the parameters, gradients and AdamW state after the step).

    These are the two parts the memory plan (``trainers/memory.py``) estimates, without the allocator's or the
    process's overheads; ``benchmarks/memory_plan.py`` and the plan's tests compare them.
    """
    encoder.train()
    weights = {p.untyped_storage().data_ptr() for p in encoder.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:  # weights saved for backward count as parameters
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(5, vocab, (batch, seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        hidden = encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        loss = hidden.float().pow(2).mean()
    loss.backward()
    optimizer = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad])
    optimizer.step()
    tensors = [
        *encoder.parameters(),
        *(p.grad for p in encoder.parameters() if p.grad is not None),
        *(v for state in optimizer.state.values() for v in state.values() if v.dim() > 0),
    ]
    return sum(saved.values()), sum(t.numel() * t.element_size() for t in tensors)
