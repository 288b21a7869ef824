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
