"""Tests of mlflow/start_local.sh and mlflow/start_shared.sh.

Argument and environment handling is checked against a stand-in `mlflow` executable placed first
on PATH (it prints the arguments it was exec'd with), so those tests take milliseconds. The slow
tests start the real server: start_local.sh with SQLite always, start_shared.sh with a throwaway
PostgreSQL cluster where initdb, psycopg and Flask-WTF are available.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port, server

REPO = Path(__file__).resolve().parents[1]
LOCAL = REPO / "mlflow" / "start_local.sh"
SHARED = REPO / "mlflow" / "start_shared.sh"
# The bin directory of this interpreter, so the scripts find the `mlflow` of the tested install.
PY_BIN = str(Path(sys.executable).parent)

FAKE_MLFLOW = """#!/bin/sh
echo "FAKE-PID=$$"
echo "FAKE-AUTH-CONFIG=${MLFLOW_AUTH_CONFIG_PATH:-}"
echo "FAKE-JOBS=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-}"
echo "FAKE-ARGS: $*"
"""

# Variables the scripts read; cleared so the developer's own settings cannot leak into a test.
SCRIPT_VARS = [
    "MLFLOW_PORT",
    "MLFLOW_HOST",
    "MLFLOW_WORKERS",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_ARTIFACTS_DESTINATION",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MLFLOW_AUTH_CONFIG_PATH",
    "MLFLOW_AUTH_DATABASE_URI",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_STATE_DIR",
    "MLFLOW_PID_FILE",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
    "MLFLOW_TRACKING_URI",
    "XSTILTS_STORAGE",
]


def clean_env(path_first: str | None = None, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARS}
    env["PATH"] = os.pathsep.join(p for p in (path_first, PY_BIN, env.get("PATH", "")) if p)
    env.update(overrides)
    return env


@pytest.fixture
def fake_bin(tmp_path: Path) -> str:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    fake = bin_dir / "mlflow"
    fake.write_text(FAKE_MLFLOW)
    fake.chmod(0o755)
    return str(bin_dir)


def run_script(script: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


def fake_args(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = [line for line in result.stdout.splitlines() if line.startswith("FAKE-ARGS: ")]
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0].removeprefix("FAKE-ARGS: ").split()


def fake_value(result: subprocess.CompletedProcess[str], key: str) -> str:
    for line in result.stdout.splitlines():
        if line.startswith(f"FAKE-{key}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"FAKE-{key} missing in {result.stdout!r}")


def option(args: list[str], name: str) -> str:
    assert name in args, args
    return args[args.index(name) + 1]


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "FAKE-ARGS" not in result.stdout, "the server must not be started"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("script", [LOCAL, SHARED], ids=lambda p: p.name)
def test_script_parses_runs_as_a_program_and_becomes_the_server(
    script: Path, tmp_path: Path, fake_bin: str
) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert script.stat().st_mode & stat.S_IXUSR, f"chmod +x {script}"
    # Run as a program (its own interpreter line), not through bash: it replaces itself with the server
    # (exec), so the process started here is the server's, with the same id.
    env = clean_env(fake_bin, MLFLOW_BACKEND_STORE_URI=PG_URI, XSTILTS_STORAGE="s3://bucket/xstilts")
    process = subprocess.Popen(
        [str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    ran = subprocess.CompletedProcess([str(script)], process.returncode, stdout, stderr)
    assert fake_value(ran, "PID") == str(process.pid)


def test_a_failing_step_stops_the_script_before_the_server(tmp_path: Path, fake_bin: str) -> None:
    # The artifact directory cannot be made (a file is in its way): the script stops there (errexit)
    # instead of starting a server that would fail on its first artifact.
    (tmp_path / "blocker").write_text("a file, not a directory")
    env = clean_env(fake_bin, MLFLOW_ARTIFACTS_DESTINATION=str(tmp_path / "blocker" / "artifacts"))
    result = run_script(LOCAL, cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "FAKE-ARGS" not in result.stdout, "the server must not be started"
    assert "blocker" in result.stderr


def test_mlflow_directory_does_not_shadow_the_library() -> None:
    mlflow_dir = REPO / "mlflow"
    assert not (mlflow_dir / "__init__.py").exists()
    assert not list(REPO.glob("mlflow/**/*.py")), "no Python modules in mlflow/"
    assert not (REPO / "mlflow.py").exists()
    result = subprocess.run(
        [sys.executable, "-c", "import mlflow, mlflow.client; print(mlflow.__file__)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert not Path(result.stdout.strip()).resolve().is_relative_to(mlflow_dir.resolve())


# --------------------------------------------------------------------------- start_local.sh (fast)


def test_local_defaults(tmp_path: Path, fake_bin: str) -> None:
    result = run_script(LOCAL, cwd=tmp_path, env=clean_env(fake_bin))
    assert result.returncode == 0, result.stderr
    args = fake_args(result)
    assert args[0] == "server"
    assert option(args, "--backend-store-uri") == "sqlite:///mlruns/mlflow.db"
    assert option(args, "--host") == "127.0.0.1"
    assert option(args, "--port") == "5000"
    assert "--serve-artifacts" in args
    assert option(args, "--artifacts-destination") == str((tmp_path / "mlruns" / "artifacts").resolve())
    assert (tmp_path / "mlruns" / "artifacts").is_dir(), "SQLite and artifact directories are created"
    assert "MLflow tracking URI: http://127.0.0.1:5000" in result.stdout
    assert fake_value(result, "JOBS") == "false"


def test_local_env_and_flag_overrides(tmp_path: Path, fake_bin: str) -> None:
    db = tmp_path / "store" / "x.db"
    env = clean_env(fake_bin, MLFLOW_PORT="6001", MLFLOW_BACKEND_STORE_URI=f"sqlite:///{db}")
    args = ["--port", "6002", "--artifacts-destination=art", "--", "--workers", "2"]
    result = run_script(LOCAL, *args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    args = fake_args(result)
    assert option(args, "--port") == "6002", "a flag wins over MLFLOW_PORT"
    assert option(args, "--backend-store-uri") == f"sqlite:///{db}"
    assert db.parent.is_dir()
    assert option(args, "--artifacts-destination") == str((tmp_path / "art").resolve())
    assert args[-2:] == ["--workers", "2"]
    assert "http://127.0.0.1:6002" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--", "--host", "0.0.0.0"], "127.0.0.1"),
        (["--port", "abc"], "port"),
        (["--bogus"], "--bogus"),
        (["--port"], "--port needs a value"),
    ],
)
def test_local_rejects_bad_arguments(tmp_path: Path, fake_bin: str, args: list[str], needle: str) -> None:
    result = run_script(LOCAL, *args, cwd=tmp_path, env=clean_env(fake_bin))
    assert_one_line_failure(result, needle)


# --------------------------------------------------------------------------- start_shared.sh (fast)

PG_URI = "postgresql://mlflow@db.internal:5432/mlflow"


def test_shared_fails_without_postgres_uri(tmp_path: Path, fake_bin: str) -> None:
    env = clean_env(fake_bin, XSTILTS_STORAGE="s3://bucket/xstilts")
    assert_one_line_failure(run_script(SHARED, cwd=tmp_path, env=env), "MLFLOW_BACKEND_STORE_URI is not set")


def test_shared_rejects_non_postgres_uri_without_echoing_it(tmp_path: Path, fake_bin: str) -> None:
    env = clean_env(
        fake_bin, MLFLOW_BACKEND_STORE_URI="mysql://user:hunter22@db/mlflow", XSTILTS_STORAGE="/shared"
    )
    result = run_script(SHARED, cwd=tmp_path, env=env)
    assert_one_line_failure(result, "PostgreSQL", "'mysql:'")
    assert "hunter22" not in result.stderr + result.stdout


def test_shared_fails_without_artifact_destination(tmp_path: Path, fake_bin: str) -> None:
    env = clean_env(fake_bin, MLFLOW_BACKEND_STORE_URI=PG_URI)
    result = run_script(SHARED, cwd=tmp_path, env=env)
    assert_one_line_failure(result, "MLFLOW_ARTIFACTS_DESTINATION")


def test_shared_loopback_defaults(tmp_path: Path, fake_bin: str) -> None:
    pid_file = tmp_path / "run" / "mlflow.pid"
    env = clean_env(
        fake_bin,
        MLFLOW_BACKEND_STORE_URI=PG_URI,
        XSTILTS_STORAGE="s3://bucket/xstilts/",
        MLFLOW_PID_FILE=str(pid_file),
    )
    result = run_script(SHARED, "--workers", "2", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    args = fake_args(result)
    assert option(args, "--backend-store-uri") == PG_URI
    assert "--serve-artifacts" in args
    assert option(args, "--artifacts-destination") == "s3://bucket/xstilts/mlflow-artifacts"
    assert option(args, "--host") == "127.0.0.1"
    assert option(args, "--port") == "5000"
    assert "--app-name" not in args, "no auth app on loopback"
    assert args[-2:] == ["--workers", "2"]
    # exec keeps the process id: the pid file names the server process itself.
    assert pid_file.read_text().strip() == fake_value(result, "PID")
    own_output = [line for line in result.stdout.splitlines() if not line.startswith("FAKE-")]
    assert "db.internal" not in "\n".join(own_output), "the script does not print the store URI"


def test_shared_explicit_artifact_destination_wins(tmp_path: Path, fake_bin: str) -> None:
    env = clean_env(
        fake_bin,
        MLFLOW_BACKEND_STORE_URI=PG_URI,
        MLFLOW_ARTIFACTS_DESTINATION="/mnt/shared/mlflow",
        XSTILTS_STORAGE="s3://bucket/xstilts",
        MLFLOW_PORT="5055",
    )
    args = fake_args(run_script(SHARED, cwd=tmp_path, env=env))
    assert option(args, "--artifacts-destination") == "/mnt/shared/mlflow"
    assert option(args, "--port") == "5055"


def test_shared_exposed_requires_secret_key(tmp_path: Path, fake_bin: str) -> None:
    env = clean_env(
        fake_bin, MLFLOW_BACKEND_STORE_URI=PG_URI, XSTILTS_STORAGE="/shared", MLFLOW_HOST="0.0.0.0"
    )
    result = run_script(SHARED, cwd=tmp_path, env=env)
    assert_one_line_failure(result, "MLFLOW_FLASK_SERVER_SECRET_KEY")


def test_shared_exposed_uses_basic_auth(tmp_path: Path, fake_bin: str) -> None:
    state = tmp_path / "state"
    env = clean_env(
        fake_bin,
        MLFLOW_BACKEND_STORE_URI=PG_URI,
        XSTILTS_STORAGE="/shared",
        MLFLOW_HOST="0.0.0.0",
        MLFLOW_FLASK_SERVER_SECRET_KEY="not-a-real-key",
        MLFLOW_STATE_DIR=str(state),
        MLFLOW_AUTH_ADMIN_PASSWORD="not-a-real-password-123",
    )
    result = run_script(SHARED, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    args = fake_args(result)
    assert option(args, "--app-name") == "basic-auth"
    assert option(args, "--host") == "0.0.0.0"
    ini = state / "basic_auth.ini"
    assert fake_value(result, "AUTH-CONFIG") == str(ini.resolve())
    assert ini.stat().st_mode & 0o077 == 0, "auth config is private"
    text = ini.read_text()
    assert f"database_uri = sqlite:///{state.resolve()}/basic_auth.db" in text
    assert "not-a-real-password" not in text and "not-a-real-key" not in text


@pytest.mark.parametrize("arg", ["--host", "--port=1", "--app-name"])
def test_shared_rejects_overriding_its_own_options(tmp_path: Path, fake_bin: str, arg: str) -> None:
    env = clean_env(fake_bin, MLFLOW_BACKEND_STORE_URI=PG_URI, XSTILTS_STORAGE="/shared")
    assert_one_line_failure(run_script(SHARED, arg, "x", cwd=tmp_path, env=env), arg)


# --------------------------------------------------------------------------- real servers (slow)


def log_a_run(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Create an experiment and a run with a param, a metric and an artifact; returns the run id."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    client = MlflowClient(tracking_uri=url)
    experiment_id = client.create_experiment("xstilts-smoke")
    run = client.create_run(experiment_id, tags={"mlflow.runName": "trial-0"})
    client.log_param(run.info.run_id, "intermediate_task", "squad")
    client.log_metric(run.info.run_id, "target_avg", 0.5, step=1)
    client.log_text(run.info.run_id, "hello", "notes/hello.txt")
    client.set_terminated(run.info.run_id)
    fetched = client.get_run(run.info.run_id)
    assert fetched.data.metrics == {"target_avg": 0.5}
    assert fetched.data.params == {"intermediate_task": "squad"}
    assert [f.path for f in client.list_artifacts(run.info.run_id, "notes")] == ["notes/hello.txt"]
    found = client.search_runs([experiment_id], "params.intermediate_task = 'squad'")
    assert [r.info.run_id for r in found] == [run.info.run_id]
    return run.info.run_id


@pytest.mark.slow
def test_start_local_serves_tracking_and_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = tmp_path / "store" / "mlflow.db"
    artifacts = tmp_path / "artifacts"
    args = [
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{db}",
        "--artifacts-destination",
        str(artifacts),
    ]
    with server(LOCAL, args, clean_env(), tmp_path, url) as log:
        run_id = log_a_run(url, monkeypatch)
        assert f"MLflow tracking URI: {url}" in log.read_text()
    assert db.is_file()
    assert list(artifacts.rglob(f"{run_id}/artifacts/notes/hello.txt")), (
        "artifact stored under the local root"
    )


def _pg_tools() -> tuple[str, str] | None:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return (initdb, pg_ctl) if initdb and pg_ctl else None


def _missing_for_postgres() -> str | None:
    if _pg_tools() is None:
        return "initdb/pg_ctl not on PATH"
    for module in ("psycopg", "boto3"):
        try:
            __import__(module)
        except ImportError:
            return f"python package {module} not installed (pip install 'psycopg[binary]' boto3)"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _uid("postgres") is None):
        return "running as root without a 'postgres' user for initdb"
    return None


def _uid(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


@contextlib.contextmanager
def postgres(port: int) -> Iterator[None]:
    """A throwaway PostgreSQL cluster on 127.0.0.1:port with database `mlflow`, trust auth."""
    initdb, pg_ctl = _pg_tools()  # type: ignore[misc]
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="xstilts-pg-"))
    if as_root:
        os.chown(base, _uid("postgres"), -1)  # type: ignore[arg-type]
    data = base / "data"

    def pg(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=60)

    try:
        pg(initdb, "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8")
        opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
        pg(pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "pg.log"), "-w", "-t", "30", "start")
        try:
            pg(
                shutil.which("createdb") or "createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "mlflow",
                "mlflow",
            )
            yield
        finally:
            pg(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(_missing_for_postgres() is not None, reason=str(_missing_for_postgres()))
def test_start_shared_with_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pg_port, port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    artifacts = tmp_path / "shared-artifacts"
    env = clean_env(
        MLFLOW_BACKEND_STORE_URI=f"postgresql://mlflow@127.0.0.1:{pg_port}/mlflow",
        MLFLOW_ARTIFACTS_DESTINATION=str(artifacts),
        MLFLOW_PORT=str(port),
        MLFLOW_PID_FILE=str(tmp_path / "mlflow.pid"),
    )
    with postgres(pg_port), server(SHARED, ["--workers", "1"], env, tmp_path, url):
        run_id = log_a_run(url, monkeypatch)
    assert list(artifacts.rglob(f"{run_id}/artifacts/notes/hello.txt"))


def _missing_for_basic_auth() -> str | None:
    try:
        __import__("flask_wtf")
    except ImportError:
        return "python package Flask-WTF not installed (pip install 'mlflow[auth]')"
    return _missing_for_postgres()


@pytest.mark.slow
@pytest.mark.skipif(_missing_for_basic_auth() is not None, reason=str(_missing_for_basic_auth()))
def test_start_shared_exposed_answers_401_without_credentials(tmp_path: Path) -> None:
    """Bound to a non-loopback address, the shared server refuses anonymous requests and serves the admin."""
    import base64
    import urllib.error
    import urllib.request

    pg_port, port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    password = "not-a-real-password-123"
    env = clean_env(
        MLFLOW_BACKEND_STORE_URI=f"postgresql://mlflow@127.0.0.1:{pg_port}/mlflow",
        MLFLOW_ARTIFACTS_DESTINATION=str(tmp_path / "shared-artifacts"),
        MLFLOW_PORT=str(port),
        MLFLOW_HOST="0.0.0.0",  # not loopback: the script turns basic auth on
        MLFLOW_FLASK_SERVER_SECRET_KEY="not-a-real-key",
        MLFLOW_AUTH_ADMIN_PASSWORD=password,
        MLFLOW_STATE_DIR=str(tmp_path / "state"),
    )
    api = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"

    def status(credentials: tuple[str, str] | None) -> int:
        request = urllib.request.Request(api)
        if credentials is not None:
            token = base64.b64encode(":".join(credentials).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    with postgres(pg_port), server(SHARED, ["--workers", "1"], env, tmp_path, url) as log:
        anonymous = status(None)
        wrong = status(("admin", "wrong-password"))
        admin = status(("admin", password))
        assert "basic auth" in log.read_text()
    assert (anonymous, wrong, admin) == (401, 401, 200)
