#!/usr/bin/env bash
# benchmarks/gpu_session.sh: the one command a session lent an H200 runs (issues 12 and 15), in ~9 minutes.
#
# Through the device tool, from the repository root, with the wheels carried:
#     run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=600)
# It installs .whl/*.whl into /tmp/site (no index, no dependencies, as the device README says), puts
# /tmp/site and the repository on PYTHONPATH, prints versions and nvidia-smi, checks that
# `import trainers.worker` works, then runs, most important first, each under `timeout` (so one hang
# cannot eat the lease) and within one overall budget (GPU_SESSION_BUDGET_S, default 510 s):
#   1. benchmarks/gpu_check.py --json $OUT/gpu_check.json   issue 12: the memory plan against
#      torch.cuda.max_memory_allocated under ZeRO-3 + CPU-Adam offload (XLM-R base), then issue 15's
#      freeze-depth table (step time and peak memory per depth);
#   2. benchmarks/gpu_perf.py --shapes xlm-roberta-large     issue 15: MFU of the xstilts phase loop
#      (ZeRO 0 and 2) beside the HF Trainer (no DeepSpeed, ZeRO 2), the RESULT line's mfu_large;
#   3. benchmarks/gpu_perf.py --shapes xlm-roberta-base      the same four rows at base shape.
# Every step's output is teed to $OUT/<step>.log (what comes back even if the call is cut off).
# Exit status: 0 when every step exited 0 (gpu_check exits 1 without a GPU), else the first failure's.
#
#   bash benchmarks/gpu_session.sh --help        this text
#   GPU_SESSION_DRY=1 bash benchmarks/gpu_session.sh
#       the dry path, for a machine without a GPU (or without Python 3.12): the same steps and timeouts,
#       but the wheels go into a scratch --target with pip's --python-version 3.12 --platform flags (so
#       the install line is checked for cp312 wheels here), and each pure-Python wheel is imported from
#       there; the GPU scripts then take their own no-GPU exits. $OUT defaults to a new /tmp folder.
#
# .whl/ (ignored: /.whl/ in .gitignore and .git/info/exclude; never committed): what the H200 image lacks
# for the training path (trainers.worker, DeepSpeed's engine, the data layer), one version each, 5.4 MiB:
#   deepspeed-0.19.8-py3-none-any.whl                         2.1 MiB  built here from the sdist (pure
#                                                                      Python; its C++ ops JIT-build there)
#   pydantic_core-2.46.4-cp312-...manylinux2014_x86_64.whl    2.0 MiB  (deepspeed -> pydantic)
#   datasets-5.2.0-py3-none-any.whl                           0.6 MiB
#   pydantic-2.13.4-py3-none-any.whl                          0.5 MiB
#   multiprocess-0.70.19-py312-none-any.whl                   147 KiB  (datasets)
#   dill-0.4.1-py3-none-any.whl                               117 KiB  (datasets)
#   hjson-3.1.0-py3-none-any.whl                               53 KiB  (deepspeed)
#   seqeval-1.2.2-py3-none-any.whl                            16 KiB   built here from the sdist
#   typing_inspection-0.4.2-py3-none-any.whl                  15 KiB   (pydantic)
#   annotated_types-0.7.0-py3-none-any.whl                    14 KiB   (pydantic)
# The image already has the rest of what those require (KINDS.md): einops, msgpack, ninja, numpy,
# packaging, psutil, py-cpuinfo, torch, tqdm, filelock, fsspec, huggingface-hub, pandas, pyarrow, pyyaml,
# xxhash, scikit-learn, typing-extensions; datasets 5.2.0 asks for pyarrow>=24 and fsspec<=2026.9.0 of
# them (the session prints the image's versions first). Not carried: transformers; the image's 5.17.0 with
# its huggingface-hub 1.33.0 ran both scripts' CPU paths on this tree (gpu_check.py --smoke-on-cpu,
# gpu_perf.py --cpu --shapes tiny: all four rows).
# Ray and MLflow are not needed: trainers.worker imports neither.
#
# Rebuilding .whl/ on a fresh clone (from the repository root, on a machine that reaches PyPI):
#   mkdir -p .whl
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl hjson==3.1.0 pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 \
#       typing-inspection==0.4.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
#   python3 -m pip wheel --no-deps --no-build-isolation -w .whl deepspeed==0.19.8 seqeval==1.2.2
# (deepspeed's setup.py imports torch, hence --no-build-isolation with torch installed; with no
# DS_BUILD_* set it prebuilds no op, so the wheel is py3-none-any.)

set -o pipefail
set -u

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"
    exit 0
fi
if [[ $# -gt 0 ]]; then
    echo "xstilts: error: gpu_session.sh takes no arguments (got: $*); see --help" >&2
    exit 2
fi

cd "$(dirname "$0")/.." || exit 2
DRY="${GPU_SESSION_DRY:-0}"
BUDGET="${GPU_SESSION_BUDGET_S:-510}"
OUT="${OUT:-$(mktemp -d /tmp/gpu-session-out.XXXXXX)}"
SITE=/tmp/site
[[ "$DRY" == 1 ]] && SITE="$(mktemp -d /tmp/gpu-session-site.XXXXXX)"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false MAX_JOBS="${MAX_JOBS:-16}"
mkdir -p "$OUT"
SESSION_LOG="$OUT/session.log"
FIRST_RC=0

log() { echo "gpu_session: $*" | tee -a "$SESSION_LOG"; }

# step NAME CAP_S COMMAND...: run under timeout min(CAP_S, what is left of the budget), teed to $OUT/NAME.log.
step() {
    local name="$1" cap="$2" left rc
    shift 2
    left=$((BUDGET - SECONDS - 5))
    ((cap > left)) && cap=$left
    if ((cap < 20)); then
        log "$name: skipped, ${left}s of the ${BUDGET}s budget left"
        ((FIRST_RC == 0)) && FIRST_RC=124
        return
    fi
    log "$name: start at ${SECONDS}s, timeout ${cap}s: $*"
    timeout -k 15 "$cap" "$@" 2>&1 | tee "$OUT/$name.log"
    rc=$?
    log "$name: exit $rc after ${SECONDS}s$( ((rc == 124 || rc == 137)) && echo ' (TIMED OUT)')"
    ((rc != 0 && FIRST_RC == 0)) && FIRST_RC=$rc
}

log "start $(date -u '+%F %T UTC'), dry=$DRY, budget ${BUDGET}s, OUT=$OUT, site=$SITE"
shopt -s nullglob
wheels=(.whl/*.whl)
shopt -u nullglob
if ((${#wheels[@]} == 0)); then
    log "no wheels under .whl/ (carry [\".whl\"]?): DeepSpeed and datasets rows will be skipped"
elif [[ "$DRY" == 1 ]]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --root-user-action=ignore \
        --upgrade --target "$SITE" --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        "${wheels[@]}" 2>&1 | tee -a "$SESSION_LOG" || { log "wheel install failed"; exit 3; }
    # The wheels are for Python 3.12; here, import each pure-Python one from $SITE (the host's own
    # compiled pydantic_core, the same version, stands in for the cp312 one) and check the cp312 binary.
    python3 - "$SITE" <<'PY' 2>&1 | tee -a "$SESSION_LOG" || { log "dry import check failed"; exit 3; }
import glob, importlib, sys

site = sys.argv[1]
try:
    import pydantic_core  # noqa: F401  the host's, before $SITE goes first (none: $SITE's must load)
except ImportError:
    pass
sys.path.insert(0, site)
binaries = glob.glob(f"{site}/pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so")
print(f"cp312 binary: {binaries[0].rsplit('/', 1)[1] if binaries else 'MISSING'}")
bad = not binaries
names = "hjson annotated_types typing_inspection pydantic dill seqeval deepspeed datasets multiprocess"
for name in names.split():
    try:
        module = importlib.import_module(name)
    except Exception as error:  # multiprocess is a py312 build: it may not import on another Python
        print(f"import {name}: {type(error).__name__}: {error}")
        bad |= name != "multiprocess"
        continue
    ours = (module.__file__ or "").startswith(site)
    bad |= not ours
    print(f"import {name} {getattr(module, '__version__', '')}: {'from' if ours else 'NOT from'} the wheels")
sys.exit(1 if bad else 0)
PY
else
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --root-user-action=ignore \
        --upgrade --target "$SITE" "${wheels[@]}" 2>&1 | tee -a "$SESSION_LOG" ||
        { log "wheel install failed"; exit 3; }
fi
log "installed ${#wheels[@]} wheels at ${SECONDS}s"
if [[ "$DRY" == 1 && "$(python3 -c 'import sys; print(sys.version_info[:2] == (3, 12))')" != True ]]; then
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # cp312 wheels cannot load here; the host's stand in
else
    export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

{
    echo "--- $(python3 -V 2>&1) at $(command -v python3); load average $(cut -d' ' -f1-3 /proc/loadavg);" \
        "$(nproc) CPUs"
    python3 - <<'PY'
import importlib.metadata as md
names = ["torch", "transformers", "accelerate", "deepspeed", "datasets", "pydantic", "pydantic-core", "hjson",
         "seqeval", "dill", "multiprocess", "huggingface-hub", "tokenizers", "pyarrow", "fsspec", "pandas",
         "numpy", "scikit-learn", "torchmetrics", "ninja", "py-cpuinfo", "msgpack", "einops", "xxhash", "pyyaml"]


def version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "MISSING"


print(", ".join(f"{name} {version(name)}" for name in names))
try:
    import torch
    print(f"torch CUDA {torch.version.cuda}, available {torch.cuda.is_available()}",
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as error:
    print(f"torch: {type(error).__name__}: {error}")
PY
    # What DeepSpeed's JIT build of CPU Adam (gpu_check's offload row) needs: a C++ compiler, ninja, Python.h.
    python3 -c "import sysconfig, os; h = sysconfig.get_paths()['include']; \
print('Python.h', 'at ' + h if os.path.exists(os.path.join(h, 'Python.h')) else 'MISSING under ' + h)"
    for tool in c++ g++ ninja nvcc; do echo "$tool: $(command -v "$tool" || echo MISSING)"; done
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.max.sm \
            --format=csv 2>&1
    else
        echo "nvidia-smi: not on PATH"
    fi
} 2>&1 | tee -a "$SESSION_LOG"

step import 90 python3 -c "import time; t = time.perf_counter(); import trainers.worker, trainers.engine, \
trainers.data; import deepspeed, datasets; print(f'import trainers.worker, deepspeed, datasets: ok in \
{time.perf_counter() - t:.1f}s')"
step gpu_check 230 python3 benchmarks/gpu_check.py --json "$OUT/gpu_check.json"
step gpu_perf_large 170 python3 benchmarks/gpu_perf.py --shapes xlm-roberta-large --row-timeout 80
step gpu_perf_base 120 python3 benchmarks/gpu_perf.py --shapes xlm-roberta-base --row-timeout 55

log "done at ${SECONDS}s of ${BUDGET}s; exit $FIRST_RC; logs under $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
[[ "$DRY" == 1 ]] && rm -rf "$SITE"
exit "$FIRST_RC"
