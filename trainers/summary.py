"""Human-readable summaries of a run's metrics."""

from __future__ import annotations

from typing import Any


def scores_table(metrics: dict[str, Any], target: str) -> str:
    """Per-language zero-shot (and target-language dev) scores, then the English dev score."""
    languages = sorted(
        {key.split("/")[1] for key in metrics if key.startswith("zero_shot/") and key.count("/") == 1},
        key=lambda lang: (lang != "en", lang),
    )
    split = next((key.split("/")[1] for key in metrics if key.startswith("zero_shot_split/")), None)
    scored = f" ({split} split)" if split else ""
    lines = [
        f"{target}: zero-shot scores per language{scored}",
        f"  {'lang':<6}{'zero-shot':>10}{'dev':>10}",
    ]
    for lang in languages:
        dev = metrics.get(f"target_dev/{lang}")
        dev_text = f"{dev:>10.2f}" if dev is not None else f"{'-':>10}"
        lines.append(f"  {lang:<6}{metrics[f'zero_shot/{lang}']:>10.2f}{dev_text}")
    if "zero_shot_avg" in metrics:
        lines.append(f"  {'avg':<6}{metrics['zero_shot_avg']:>10.2f}")
    no_dev = sorted(key.split("/")[1] for key in metrics if key.startswith("target_dev_missing/"))
    if no_dev:
        lines.append(f"no dev split (left out of the dev averages): {', '.join(no_dev)}")
    if "en_dev" in metrics:
        lines.append(f"English dev score: {metrics['en_dev']:.2f}")
    for key in ("time/startup_s", "time/intermediate_s", "time/target_s", "time/eval_s"):
        if key in metrics:
            lines.append(f"{key}: {metrics[key]:.1f}")
    if "intermediate_reused" in metrics:
        lines.append(f"intermediate checkpoint reused: {bool(metrics['intermediate_reused'])}")
    return "\n".join(lines)
