"""A search on paper: what ``xstilts search --dry-run`` prints before anything starts.

Counts come from the space alone: its studies, trials and seeded points, and the distributions of the
parameters that enter the intermediate-checkpoint key (``trainers.checkpoint_cache.key_fields``). Compute
comes from a FLOPs model of the encoder, the task registry's train-set sizes (``TaskSpec.train_size``) and
each phase's steps, batch and sequence length. Every assumption is a field of ``CostAssumptions`` or a rule
in ``RULES`` and is printed with the estimate.

How a search is counted (the rules, printed too):

* A trial that is not a seeded point draws every active parameter uniformly (Optuna's random start-up
  distribution; TPE later concentrates its draws, which makes finite configurations repeat *more*).
* An intermediate configuration is trained once, whichever target's trial first wants it; every later
  trial that draws the same key reuses it (the cache's lease-and-publish). A seeded configuration is
  trained once. A configuration with a continuous parameter in its key is never drawn twice: every trial
  that draws one trains its own. So with ``n_t`` random trials in target ``t``'s study and ``p_ct`` the
  chance that one of them draws finite configuration ``c``, the expected number of trainings is
  ``seeded + sum_c [1 - prod_t (1 - p_ct) ** n_t] + sum_t n_t * P_t(continuous)``, and never more than
  ``min(trials with an intermediate phase, distinct configurations)``.
* ASHA: a trial continues past rung ``k`` with probability ``1 / reduction_factor ** (k + 1)`` and stops
  at ``max_t``; the target phase is charged the expected steps.
* The paper's grid (Phang et al. 2020) over the same intermediate tasks and targets: each intermediate
  task trained once at the space's seeded intermediate settings and reused by every target; each trained
  target fine-tuned once per intermediate task and once without, for its full length at the seeded
  target settings.

The package: ``_phase`` (one run's compute, a trial's draws), ``_estimate`` (the whole search and the grid),
``_plan`` (the dry run's report and the memory check). Everything public is re-exported here.
"""

from search.costs._estimate import Estimate, IntermediateClass, estimate
from search.costs._phase import (
    MAX_ENUMERATED,
    RULES,
    CostAssumptions,
    Draw,
    PhaseCost,
    asha_expected_steps,
    checkpoint_key,
    draws,
    phase_cost,
    sequences_per_example,
    train_examples,
)
from search.costs._plan import check_memory, dry_run, format_plan

__all__ = [
    "MAX_ENUMERATED",
    "RULES",
    "CostAssumptions",
    "Draw",
    "Estimate",
    "IntermediateClass",
    "PhaseCost",
    "asha_expected_steps",
    "check_memory",
    "checkpoint_key",
    "draws",
    "dry_run",
    "estimate",
    "format_plan",
    "phase_cost",
    "sequences_per_example",
    "train_examples",
]
