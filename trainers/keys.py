"""Names of metrics that both sides read: the workers report them, the driver selects on them."""

FINISHED = "finished"
"""1.0 once a plan ran to its end (its full budget); Tune reserves the name ``done`` for itself."""

COST_GPU_S = "cost/gpu_s"
"""Device-seconds a trial has held so far: its wall time since launch x its workers (one GPU each on a
GPU cluster), start-up included; reported with every result, so an early-stopped trial is priced too."""

COST_PHASE_GPU_S = "cost/{phase}_gpu_s"
"""Its split by phase (``startup``, ``intermediate`` (0 when the checkpoint was reused), ``target``, ``eval``)."""

COST_PHASES = ("startup", "intermediate", "target", "eval")
"""The phases ``COST_PHASE_GPU_S`` is reported for."""

PROGRESS_PHASE = "progress/phase"
"""The phase a trial is in (``intermediate``, ``target``, ``eval``); with every ``progress/*`` key, what
Tune's status table shows while a trial runs (``trainers/progress.py`` reports, ``search/progress.py`` shows)."""
PROGRESS_STEP = "progress/step"
"""Units of the phase done (optimizer steps; languages in ``eval``)."""
PROGRESS_TOTAL = "progress/total"
"""Units of the phase in all."""
PROGRESS_ETA_S = "progress/eta_s"
"""Seconds the phase has left at its pace so far."""
PROGRESS_RATE = "progress/examples_per_s"
"""Training examples per second, all workers together (languages per second in ``eval``)."""
PROGRESS_LOSS = "progress/loss"
"""The latest training loss."""
PROGRESS_DEV = "progress/dev"
"""The latest English dev score of the target phase."""
