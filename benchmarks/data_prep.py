"""Data preparation of a trial: the first trial's tokenisation and loading beside the second's.

A trial's data work is the target phase's English train features, its English dev set and the
zero-shot evaluation sets of every language. The first trial of a search reads and tokenises them and
writes the feature cache (``<data.cache_dir>/features``); every later trial with the same task, encoder
and sequence settings loads them from it. Each trial here is a fresh process (as a trial on another
actor or node is) and times only the data calls, so imports and the tokenizer's own loading are left out.

``python benchmarks/data_prep.py [--source miniature|xtreme] [--data-dir ../shared/real]
[--targets udpos,pawsx] [--encoder tiny]``; ends with ``RESULT second_over_first=<max ratio>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIAL = r"""
import json, sys, time
from trainers.config import TransferConfig
from trainers.data import resolve_english_dev, resolve_train_task
from trainers.encoders import resolve_encoder
from trainers.prepare import eval_set, label_names_for, load_tokenizer, train_features
from trainers.tasks import get_task
from trainers.zero_shot_eval import languages

config = TransferConfig.from_dict(json.loads(sys.argv[1]))
tokenizer = load_tokenizer(resolve_encoder(config.model.name_or_path, config.data.cache_dir))
started = time.perf_counter()
target = get_task(config.target.task)
train = resolve_train_task(target)
labels = label_names_for(train, config)
rows = len(train_features(config, train, tokenizer, labels))
dev_task, dev_split = resolve_english_dev(target)
rows += len(eval_set(config, dev_task, dev_split, "en", tokenizer, labels).features)
for lang in languages(config, target):
    rows += len(eval_set(config, target, config.evaluation.split, lang, tokenizer, labels).features)
print(json.dumps({"seconds": time.perf_counter() - started, "features": rows}))
"""


def trial(config: dict[str, object]) -> dict[str, float]:
    """One trial's data preparation, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", TRIAL, json.dumps(config)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="miniature", choices=["miniature", "xtreme"])
    parser.add_argument("--data-dir", default=None, help="with --source xtreme: XTREME's download directory")
    parser.add_argument("--targets", default="udpos,pawsx")
    parser.add_argument("--encoder", default="tiny")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="xstilts-dataprep-"))
    rows = []
    try:
        for target in args.targets.split(","):
            cache = root / target  # an empty feature cache per target: the first trial pays in full
            data: dict[str, object] = {"source": args.source, "cache_dir": str(cache)}
            evaluation: dict[str, object] = {"split": "test"}
            if args.source == "xtreme":
                data["data_dir"] = str(Path(args.data_dir or "../shared/real").resolve())
                evaluation["split"] = "dev"  # an XTREME download labels only its dev sets
            config = {
                "target": {"task": target},
                "model": {"name_or_path": args.encoder, "max_seq_length": 128, "doc_stride": 64},
                "data": data,
                "evaluation": evaluation,
                "output_dir": str(root / "out"),
            }
            first, second = trial(config), trial(config)
            rows.append((target, first, second))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}; data.source {args.source}; encoder {args.encoder}"
    )
    print("| target | features | first trial s | second trial s | second / first |")
    print("|---|---:|---:|---:|---:|")
    worst = 0.0
    for target, first, second in rows:
        ratio = second["seconds"] / first["seconds"]
        worst = max(worst, ratio)
        print(
            f"| {target} | {first['features']:.0f} | {first['seconds']:.2f} | {second['seconds']:.2f} | {ratio:.3f} |"
        )
    print(f"RESULT second_over_first={worst:.3f}")


if __name__ == "__main__":
    main()
