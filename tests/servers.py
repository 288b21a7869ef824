"""Helpers of the tests that start the real MLflow tracking server (mlflow/*.sh) as a subprocess."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

HEALTH_TIMEOUT_S = 90
"""How long a server may take to answer ``/health`` (its first start creates the SQLite schema)."""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Return once ``url/health`` answers 200; fail with the server's log if it exits or never does."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.25)
    pytest.fail(f"no /health after {HEALTH_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and everything it spawned (uvicorn workers) through its process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # Children may outlive the leader for a moment; make sure none is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def server(script: Path, args: list[str], env: dict[str, str], cwd: Path, url: str) -> Iterator[Path]:
    """Run ``bash script args`` in its own session until ``url`` is healthy; yield its log; stop it all."""
    log = cwd / f"{script.stem}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(script), *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(proc, url, log)
        yield log
    finally:
        stop_group(proc)


class _Refusing(http.server.BaseHTTPRequestHandler):
    """An MLflow server behind basic auth, to a client without credentials: /health 200, every API call 401."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        healthy = self.path.split("?")[0] == "/health"
        body = b"OK" if healthy else b"You are not authenticated."
        self.send_response(200 if healthy else 401)
        if not healthy:
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def refusing_server() -> Iterator[str]:
    """A local stand-in for a tracking server that requires credentials; yields its URL."""
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{stub.server_address[1]}"
    finally:
        stub.shutdown()
        stub.server_close()
