"""Names of metrics that both sides read: the workers report them, the driver selects on them."""

FINISHED = "finished"
"""1.0 once a plan ran to its end (its full budget); Tune reserves the name ``done`` for itself."""
