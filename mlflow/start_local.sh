#!/usr/bin/env bash
# Start the embedded-default MLflow tracking server for xstilts: a SQLite backend store and a
# local artifact directory, bound to 127.0.0.1 only (never reachable from other machines).
#
# Usage: mlflow/start_local.sh [--port N] [--backend-store-uri URI] [--artifacts-destination DIR]
#                              [-- EXTRA 'mlflow server' OPTIONS]
#
# Environment (a flag wins over its variable):
#   MLFLOW_PORT                   port to listen on                       (default 5000)
#   MLFLOW_BACKEND_STORE_URI      SQLAlchemy URI of the tracking store    (default sqlite:///mlruns/mlflow.db)
#   MLFLOW_ARTIFACTS_DESTINATION  directory the server stores artifacts in (default mlruns/artifacts)
#   MLFLOW_WORKERS                uvicorn worker processes                (default 1)
# Relative paths are relative to the directory you start the script from: start it from the
# repository root to see the same mlruns/ store the search driver writes to by default.
# Stop it with Ctrl-C (or by signalling its process group).
set -euo pipefail

prog="start_local.sh"
die() {
    echo "$prog: $*" >&2
    exit 2
}

port="${MLFLOW_PORT:-5000}"
backend="${MLFLOW_BACKEND_STORE_URI:-sqlite:///mlruns/mlflow.db}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-mlruns/artifacts}"
workers="${MLFLOW_WORKERS:-1}"
extra=()

while [ "$#" -gt 0 ]; do
    case "$1" in
        --port | --backend-store-uri | --artifacts-destination)
            [ "$#" -ge 2 ] || die "$1 needs a value"
            case "$1" in
                --port) port="$2" ;;
                --backend-store-uri) backend="$2" ;;
                --artifacts-destination) artifacts="$2" ;;
            esac
            shift 2
            ;;
        --port=*) port="${1#*=}"; shift ;;
        --backend-store-uri=*) backend="${1#*=}"; shift ;;
        --artifacts-destination=*) artifacts="${1#*=}"; shift ;;
        -h | --help)
            sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        --) shift; extra=("$@"); break ;;
        *) die "unknown argument '$1' (options: --port, --backend-store-uri, --artifacts-destination, -- EXTRA)" ;;
    esac
done

case "$port" in
    '' | *[!0-9]*) die "port must be a number, got '$port'" ;;
esac
for arg in ${extra[@]+"${extra[@]}"}; do
    case "$arg" in
        -h | --host | --host=*) die "the local server always binds 127.0.0.1; use mlflow/start_shared.sh to expose a server" ;;
        -p | --port | --port=*) die "give the port as --port N before '--'" ;;
    esac
done
command -v mlflow >/dev/null 2>&1 || die "'mlflow' is not on PATH; install the project first (pip install -e .)"

# SQLite needs its directory to exist: sqlite:///relative/path.db or sqlite:////absolute/path.db.
case "$backend" in
    sqlite:///*)
        db_path="${backend#sqlite:///}"
        db_path="${db_path%%\?*}"
        mkdir -p "$(dirname "$db_path")"
        ;;
esac
# A plain directory (not a URI) is created and made absolute so the printed location is unambiguous.
case "$artifacts" in
    *://*) ;;
    *)
        mkdir -p "$artifacts"
        artifacts="$(cd "$artifacts" && pwd)"
        ;;
esac

# xstilts uses no server-side MLflow jobs (GenAI scorers, trace rollups): skip the job runner and
# its huey consumer processes unless asked for.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

echo "MLflow tracking URI: http://127.0.0.1:${port}  (export MLFLOW_TRACKING_URI=http://127.0.0.1:${port})"
echo "  backend store: ${backend}"
echo "  artifacts:     ${artifacts}"

exec mlflow server \
    --backend-store-uri "$backend" \
    --serve-artifacts \
    --artifacts-destination "$artifacts" \
    --host 127.0.0.1 \
    --port "$port" \
    --workers "$workers" \
    ${extra[@]+"${extra[@]}"}
