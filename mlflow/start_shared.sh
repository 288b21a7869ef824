#!/usr/bin/env bash
# Start the shared MLflow tracking server for xstilts: PostgreSQL backend store, artifacts proxied
# by the server (--serve-artifacts) to S3 or a shared filesystem. Used on the Ray head node
# (see cluster.yaml) or any team machine. Everything comes from the environment; no secret is
# ever written into this script, the cluster YAML or the command line.
#
# Usage: mlflow/start_shared.sh [EXTRA 'mlflow server' OPTIONS, e.g. --workers 2]
#
# Required:
#   MLFLOW_BACKEND_STORE_URI      postgresql://USER@HOST:5432/DB (password in ~/.pgpass or PGPASSWORD,
#                                 not in the URI)
#   MLFLOW_ARTIFACTS_DESTINATION  s3://BUCKET/PREFIX (needs boto3 and AWS credentials, e.g. an
#                                 instance role) or a shared filesystem path; defaults to
#                                 $XSTILTS_STORAGE/mlflow-artifacts when XSTILTS_STORAGE is set
# Optional:
#   MLFLOW_HOST  interface to bind (default 127.0.0.1: reach it through SSH port forwarding).
#                Any non-loopback value turns on MLflow's basic-auth app (--app-name basic-auth),
#                which additionally needs:
#                  MLFLOW_FLASK_SERVER_SECRET_KEY  (required) CSRF key, same on every server replica
#                  MLFLOW_AUTH_ADMIN_PASSWORD      admin password, needed on the first start only
#                  MLFLOW_AUTH_CONFIG_PATH         your own basic_auth.ini; otherwise one is written to
#                                                  $MLFLOW_STATE_DIR/basic_auth.ini with its user
#                                                  database at MLFLOW_AUTH_DATABASE_URI
#                                                  (default sqlite:///$MLFLOW_STATE_DIR/basic_auth.db)
#                  MLFLOW_STATE_DIR                (default ~/.xstilts-mlflow)
#                  MLFLOW_SERVER_ALLOWED_HOSTS     Host headers to accept beyond localhost/private IPs
#   MLFLOW_PORT      port (default 5000)
#   MLFLOW_PID_FILE  write the server's process id here (it stays the same after exec); a SIGTERM
#                    to it stops the server and its uvicorn workers
# Python packages on the server machine: psycopg (pip install "psycopg[binary]"; SQLAlchemy's
# default PostgreSQL driver), boto3 for s3:// artifacts, mlflow[auth] for the basic-auth app.
set -euo pipefail

prog="start_shared.sh"
die() {
    echo "$prog: $*" >&2
    exit 2
}

command -v mlflow >/dev/null 2>&1 || die "'mlflow' is not on PATH; install the project first (pip install -e .)"

backend="${MLFLOW_BACKEND_STORE_URI:-}"
[ -n "$backend" ] || die "MLFLOW_BACKEND_STORE_URI is not set: export the PostgreSQL store, e.g. postgresql://mlflow@db-host:5432/mlflow (password in ~/.pgpass)"
case "$backend" in
    postgresql://* | postgresql+*://*) ;;
    # Print only the scheme: the rest of the URI may carry a password.
    *) die "MLFLOW_BACKEND_STORE_URI must be a PostgreSQL URI (postgresql://...), got a '${backend%%:*}:' URI" ;;
esac

artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-}"
if [ -z "$artifacts" ] && [ -n "${XSTILTS_STORAGE:-}" ]; then
    artifacts="${XSTILTS_STORAGE%/}/mlflow-artifacts"
fi
[ -n "$artifacts" ] || die "MLFLOW_ARTIFACTS_DESTINATION is not set (and neither is XSTILTS_STORAGE): export s3://BUCKET/PREFIX or a shared filesystem path"

host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
case "$port" in
    '' | *[!0-9]*) die "MLFLOW_PORT must be a number, got '$port'" ;;
esac
for arg in "$@"; do
    case "$arg" in
        -h | --host | --host=* | -p | --port | --port=*) die "set MLFLOW_HOST / MLFLOW_PORT instead of passing $arg" ;;
        --app-name | --app-name=*) die "--app-name is chosen by this script (basic-auth whenever MLFLOW_HOST is not loopback)" ;;
    esac
done

app=()
auth_note=""
case "$host" in
    127.* | localhost | ::1 | '[::1]') ;;
    *)
        [ -n "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ] || die "MLFLOW_HOST=$host exposes the server, which then runs MLflow's basic-auth app: set MLFLOW_FLASK_SERVER_SECRET_KEY (and MLFLOW_AUTH_ADMIN_PASSWORD on the first start)"
        if [ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
            state_dir="${MLFLOW_STATE_DIR:-$HOME/.xstilts-mlflow}"
            mkdir -p "$state_dir"
            state_dir="$(cd "$state_dir" && pwd)"
            export MLFLOW_AUTH_CONFIG_PATH="$state_dir/basic_auth.ini"
            # No password in this file: MLflow reads MLFLOW_AUTH_ADMIN_PASSWORD from the environment.
            (
                umask 077
                cat >"$MLFLOW_AUTH_CONFIG_PATH" <<EOF
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DATABASE_URI:-sqlite:///$state_dir/basic_auth.db}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
            )
        fi
        app=(--app-name basic-auth)
        auth_note="  (basic auth: clients set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
        ;;
esac

# xstilts uses no server-side MLflow jobs (GenAI scorers, trace rollups): skip the job runner and
# its huey consumer processes unless asked for.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

echo "MLflow tracking URI: http://${host}:${port}${auth_note}"
echo "  backend store: ${backend%%://*}://... (PostgreSQL)"
echo "  artifacts:     ${artifacts} (proxied by the server)"

if [ -n "${MLFLOW_PID_FILE:-}" ]; then
    mkdir -p "$(dirname "$MLFLOW_PID_FILE")"
    echo "$$" >"$MLFLOW_PID_FILE"
fi

exec mlflow server \
    --backend-store-uri "$backend" \
    --serve-artifacts \
    --artifacts-destination "$artifacts" \
    --host "$host" \
    --port "$port" \
    ${app[@]+"${app[@]}"} \
    "$@"
