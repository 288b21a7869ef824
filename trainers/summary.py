"""Human-readable summaries of a run's metrics."""

from __future__ import annotations

from typing import Any

from trainers import keys
from trainers.keys import COST_PHASES


def _slots(metrics: dict[str, Any], template: str) -> list[str]:
    """What fills the one slot of ``template`` (``prefix/{lang}``) in each key of ``metrics`` it formats."""
    prefix = template.split("{", 1)[0]
    return [key[len(prefix) :] for key in metrics if key.startswith(prefix) and "/" not in key[len(prefix) :]]


def scores_table(metrics: dict[str, Any], target: str) -> str:
    """Per-language zero-shot (and target-language dev) scores, then the English dev score."""
    languages = sorted(
        set(_slots(metrics, keys.ZERO_SHOT_LANG)),
        key=lambda lang: (lang != "en", lang),
    )
    split = next(iter(_slots(metrics, keys.ZERO_SHOT_SPLIT)), None)
    scored = f" ({split} split)" if split else ""
    lines = [
        f"{target}: zero-shot scores per language{scored}",
        f"  {'lang':<6}{'zero-shot':>10}{'dev':>10}",
    ]
    for lang in languages:
        dev = metrics.get(keys.TARGET_DEV_LANG.format(lang=lang))
        dev_text = f"{dev:>10.2f}" if dev is not None else f"{'-':>10}"
        lines.append(f"  {lang:<6}{metrics[keys.ZERO_SHOT_LANG.format(lang=lang)]:>10.2f}{dev_text}")
    if keys.ZERO_SHOT_AVG in metrics:
        lines.append(f"  {'avg':<6}{metrics[keys.ZERO_SHOT_AVG]:>10.2f}")
    no_dev = sorted(_slots(metrics, keys.TARGET_DEV_MISSING))
    if no_dev:
        lines.append(f"no dev split (left out of the dev averages): {', '.join(no_dev)}")
    if keys.EN_DEV in metrics:
        lines.append(f"English dev score: {metrics[keys.EN_DEV]:.2f}")
    for key in (keys.TIME_PHASE_S.format(phase=phase) for phase in COST_PHASES):
        if key in metrics:
            lines.append(f"{key}: {metrics[key]:.1f}")
    if keys.INTERMEDIATE_REUSED in metrics:
        lines.append(f"intermediate checkpoint reused: {bool(metrics[keys.INTERMEDIATE_REUSED])}")
    return "\n".join(lines)
