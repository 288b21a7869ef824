"""Every name that crosses from worker to driver: the metrics workers report, the MLflow tags and params the
driver writes and ``select``/``report`` read back, and the trial statuses. Both sides import them from here
(Ray Tune keeps its reserved result keys in one module, ``ray/tune/result.py``, for the same reason)."""

# --- metrics a worker reports -------------------------------------------------------------------------

FINISHED = "finished"
"""1.0 once a plan ran to its end (its full budget); Tune reserves the name ``done`` for itself."""

TARGET_STEP = "target_step"
"""The target phase's optimizer steps so far (0 during start-up and the intermediate phase): ASHA's clock."""

EN_DEV = "en_dev"
"""The target task's English dev score (its primary metric), reported at every periodic evaluation."""
EN_DEV_SCORE = "en_dev/{name}"
"""Each metric the English dev evaluation computed (``en_dev/f1``, ``en_dev/exact_match``, ...)."""

ZERO_SHOT = "zero_shot"
"""Prefix of the zero-shot test scores (``ZERO_SHOT_LANG``) and of their averages (``ZERO_SHOT_AVG``)."""
ZERO_SHOT_LANG = "zero_shot/{lang}"
"""One language's zero-shot test score (the task's primary metric)."""
ZERO_SHOT_LANG_SCORE = "zero_shot/{lang}/{name}"
"""Each metric of one language's zero-shot test evaluation."""
ZERO_SHOT_AVG = "zero_shot_avg"
"""Mean zero-shot test score over the target's languages, as XTREME averages a task: the search's test score."""
ZERO_SHOT_AVG_NON_EN = "zero_shot_avg_non_en"
"""The same mean without English."""
ZERO_SHOT_SPLIT = "zero_shot_split/{split}"
"""1.0 under the split the zero-shot scores were computed on (``test``, or ``dev`` where test has no labels)."""
ZERO_SHOT_XTREME = "zero_shot_xtreme"
"""XTREME's task score of the zero-shot results (QA: the mean of F1 and exact match)."""

TARGET_DEV = "target_dev"
"""Prefix of the per-language dev scores (oracle selection) and of their averages."""
TARGET_DEV_LANG = "target_dev/{lang}"
"""One language's dev score."""
TARGET_DEV_MISSING = "target_dev_missing/{lang}"
"""1.0 for a language that has no dev split (e.g. UD Kazakh)."""
TARGET_DEV_AVG = "target_dev_avg"
"""Mean dev score over the target's languages."""
TARGET_DEV_AVG_NON_EN = "target_dev_avg_non_en"
"""Mean non-English dev score: the oracle criterion (``xstilts select --criterion target_dev``)."""

AVG_SUFFIX = "_avg"
"""``<prefix>_avg``: the mean of ``<prefix>/<lang>`` over the languages."""
AVG_NON_EN_SUFFIX = "_avg_non_en"
"""``<prefix>_avg_non_en``: the same mean without English."""

INTERMEDIATE_REUSED = "intermediate_reused"
"""1.0 when the intermediate phase was answered from the checkpoint cache instead of trained."""
INTERMEDIATE_STEP = "intermediate/step"
"""The intermediate phase's optimizer steps so far."""
INTERMEDIATE_LOSS = "intermediate/loss"
"""The intermediate phase's latest training loss."""
INTERMEDIATE_EN_DEV = "intermediate/{task}/en_dev/{name}"
"""An intermediate task's English dev metrics at the end of the phase."""

TIME_PHASE_S = "time/{phase}_s"
"""Wall seconds a phase took (``startup``, ``intermediate``, ``target``, ``eval``)."""
TIME_STEP_S = "time/{phase}_step_s"
"""Mean wall seconds per optimizer step of a training phase (``intermediate``, ``target``)."""
TIME_FIRST_STEP_AT = "time/first_step_at"
"""Wall clock (Unix seconds) when the job's first optimizer step ended: start-up is what comes before it."""
TIME_LAST_STEP_AT = "time/last_step_at"
"""Wall clock (Unix seconds) when the job's last optimizer step ended: evaluation and teardown come after."""

MEMORY_CUDA_PEAK_MIB = "memory/{phase}_cuda_peak_mib"
"""MiB of GPU memory torch held in tensors at a training phase's peak (``torch.cuda.max_memory_allocated``, reset
when the phase starts: the whole phase, from loading the encoder to its end); what the memory plan estimates."""
MEMORY_RSS_PEAK_MIB = "memory/{phase}_rss_peak_mib"
"""On CPU instead: MiB of the worker process's peak resident set during the phase (Linux ``VmHWM``, reset when
the phase starts): the whole process, interpreter and data included, not the model's share alone."""
MEMORY_PEAK_KEYS = (MEMORY_CUDA_PEAK_MIB, MEMORY_RSS_PEAK_MIB)
"""The peak-memory metrics a phase may report (``trainers/peak_memory.py``), the CUDA one first."""

COST_GPU_S = "cost/gpu_s"
"""Device-seconds a trial has held so far: its wall time since launch x its workers (one GPU each on a
GPU cluster), start-up included; reported with every result, so an early-stopped trial is priced too."""

COST_PHASE_GPU_S = "cost/{phase}_gpu_s"
"""Its split by phase (``startup``, ``intermediate`` (0 when the checkpoint was reused), ``target``, ``eval``)."""

COST_PHASES = ("startup", "intermediate", "target", "eval")
"""The phases ``COST_PHASE_GPU_S`` is reported for."""

COST_STEPS = "cost/steps"
"""Optimizer steps a replayed trial has paid for (intermediate + target; ``xstilts search --replay``)."""

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

# --- MLflow tags and params the driver writes, select and report read -----------------------------------

SEARCH_TAG = "xstilts.search"
"""The search a run belongs to (parent, trial and selection runs alike)."""
TRIAL_TAG = "xstilts.trial_id"
"""A trial run's Tune trial id: how ``--resume`` finds the run again."""
TARGET_TAG = "xstilts.target"
"""A trial run's (or retrieval evaluation's) target task."""
STATUS_TAG = "xstilts.status"
"""A trial run's status (one of ``STATUSES``)."""
KIND_TAG = "xstilts.kind"
"""What a run is (``KIND_SEARCH``, ``KIND_TRIAL``, ``KIND_RETRIEVAL``, ``KIND_SELECTION``)."""
STALLED_TAG = "xstilts.stalled"
"""Set on a running trial's run while it has reported nothing for longer than the watchdog's bound."""
CRITERION_TAG = "xstilts.criterion"
"""A selection run's criterion (``en_dev`` or ``target_dev``)."""
ERROR_TAG = "xstilts.error"
"""Why a retrieval evaluation failed (its first line), on its FAILED run."""
BEST_TAG = "best"
"""``true`` on the trial run ``xstilts select`` picked for its target."""
BEST_CRITERION_TAG = "best.criterion"
"""The criterion that picked it."""

CHECKPOINT_TAG = "xstilts.checkpoint"
"""A retrieval evaluation's encoder: the intermediate-checkpoint cache key it read, or ``BASE_CHECKPOINT``."""
INTERMEDIATE_TAG = "xstilts.intermediate"
"""A retrieval evaluation's intermediate configuration in words (``none`` for the base encoder)."""
BASE_CHECKPOINT = "base"
"""``CHECKPOINT_TAG`` of the evaluation on the base encoder (no intermediate phase)."""

KIND_SEARCH = "search"
KIND_TRIAL = "trial"
KIND_SELECTION = "selection"
KIND_RETRIEVAL = "retrieval"
"""One evaluation of a retrieval target (BUCC, Tatoeba) on one encoder; not a trial (``search/retrieval_eval.py``)."""

SPACE_PARAM = "space"
"""The search's parent-run param: the space file the search was started with."""
TARGETS_PARAM = "targets"
"""The search's parent-run param: its target tasks, comma-separated."""
OBJECTIVE_PARAM = "objective"
"""The search's parent-run param: the metric its studies maximised (the space's ``metric``)."""

# --- trial statuses ---------------------------------------------------------------------------------------

COMPLETED = "completed"
"""Ran its full budget."""
EARLY_STOPPED = "early_stopped"
"""Stopped by the scheduler (ASHA) before its budget."""
FAILED = "failed"
"""Raised, or its workers died."""
RUNNING = "running"
"""Not ended (yet, or the driver died before it could say)."""
STATUSES = (COMPLETED, EARLY_STOPPED, FAILED, RUNNING)
TERMINAL = frozenset({COMPLETED, EARLY_STOPPED, FAILED})
"""Statuses a trial never leaves."""
