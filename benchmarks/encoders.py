"""Which built-in encoder for the offline demo: ``tiny`` (random init) vs ``minilm`` (pretrained MiniLM-L6).

For each encoder and each of two targets (udpos: token tagging; pawsx: sentence pairs) it runs the
same short target phase in-process and prints, in one table: seconds per optimizer step at 16 x 64
tokens, the English dev score after the budget, and the mean non-English zero-shot score.
``python benchmarks/encoders.py [--steps 60]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from trainers import keys
from trainers.config import TransferConfig
from trainers.worker import Plan, run_local


def main() -> None:
    """Run every (encoder, target) pair and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--cache-dir", default="~/.cache/xstilts")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="xstilts-encoders-"))
    rows = []
    try:
        for encoder, lr in (("tiny", 1e-3), ("minilm", 5e-5)):
            for target in ("udpos", "pawsx"):
                config = TransferConfig.from_dict(
                    {
                        "target": {
                            "task": target,
                            "learning_rate": lr,
                            "batch_size": 16,
                            "max_steps": args.steps,
                        },
                        "model": {"name_or_path": encoder, "max_seq_length": 64, "doc_stride": 32},
                        "data": {"cache_dir": args.cache_dir, "max_eval_examples": 120},
                        "output_dir": str(root / f"{encoder}-{target}"),
                    }
                )
                metrics = run_local(Plan.for_config(config))
                foreign = [
                    v
                    for k, v in metrics.items()
                    if k.startswith(keys.ZERO_SHOT + "/") and k.count("/") == 1 and not k.endswith("/en")
                ]
                rows.append(
                    (
                        encoder,
                        target,
                        metrics[keys.TIME_STEP_S.format(phase="target")],
                        metrics[keys.EN_DEV],
                        sum(foreign) / len(foreign),
                    )
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.steps} target steps, batch 16 x 64 tokens, CPU")
    print(f"{'encoder':<8}{'target':<8}{'s/step':>8}{'en_dev':>8}{'zero-shot non-en':>18}")
    for encoder, target, step, en_dev, foreign in rows:
        print(f"{encoder:<8}{target:<8}{step:>8.3f}{en_dev:>8.1f}{foreign:>18.1f}")
    tiny = {t: s for e, t, s, _, _ in rows if e == "tiny"}
    mini = {t: s for e, t, s, _, _ in rows if e == "minilm"}
    print("minilm / tiny step time: " + ", ".join(f"{t} {mini[t] / tiny[t]:.1f}x" for t in tiny))


if __name__ == "__main__":
    main()
