"""Checks of ``xstilts search`` input that need no heavy import: the search name and the tracking URI.

They run before Ray, MLflow or torch is imported and before anything is written, so a bad name or URI
costs a fraction of a second and leaves no directory behind that a retry would trip over.
"""

from __future__ import annotations

import base64
import importlib.metadata
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from trainers.errors import UserError

SEARCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""A search name: it becomes a directory (``<storage>/<name>``), an MLflow experiment and study names."""

TRACKING_SCHEMES = frozenset(
    {"", "file", "http", "https", "databricks", "postgresql", "mysql", "sqlite", "mssql"}
)
"""URI schemes MLflow's tracking-store registry accepts (its plugins, entry points
``mlflow.tracking_store``, add theirs); ``postgresql+psycopg`` counts as ``postgresql``."""


class TrackingError(UserError, RuntimeError):
    """The tracking server cannot be reached or used."""


def check_search_name(name: str) -> None:
    """A name that stays one directory under the storage root: no separators, no ``..``, no leading dot."""
    if not SEARCH_NAME.fullmatch(name) or ".." in name:
        raise UserError(
            f"search name {name!r} is not allowed: use letters, digits, '.', '_' and '-' (at most 100, "
            "starting with a letter or digit, no '..'); it names a directory under --storage"
        )


def tracking_scheme(uri: str) -> str:
    """The store type MLflow picks for ``uri`` (``""`` for a plain path, the engine of a database URI)."""
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter: a path
        return ""
    return scheme.split("+", 1)[0]


def _api_status(url: str, timeout_s: float) -> int | None:
    """The HTTP status of a GET with the credentials MLflow's client would send (None: no answer)."""
    request = urllib.request.Request(url)
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail with one line if MLflow cannot use ``uri`` or the store is unreachable (before any trial)."""
    scheme = tracking_scheme(uri)
    plugins = {entry.name for entry in importlib.metadata.entry_points(group="mlflow.tracking_store")}
    if scheme not in TRACKING_SCHEMES | plugins:
        known = ", ".join(f"{s}://" for s in sorted(TRACKING_SCHEMES | plugins) if s)
        raise TrackingError(
            f"tracking URI {uri}: MLflow has no tracking store for {scheme}:// (known: {known})"
        )
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as response:
                if response.status != 200:
                    raise TrackingError(f"tracking server {uri} answered {response.status} on /health")
        except (urllib.error.URLError, OSError) as error:
            raise TrackingError(f"tracking server {uri} is unreachable ({error})") from None
        # /health answers anyone; an API call says whether this client may use the server (basic auth).
        status = _api_status(uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1", timeout_s)
        if status in (401, 403):
            raise TrackingError(
                f"tracking server {uri} refused the request ({status}): set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            )
    elif scheme == "sqlite" and uri.startswith("sqlite:///"):
        directory = Path(uri[len("sqlite:///") :]).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingError(
                f"cannot create the tracking store's directory {directory}: {error}"
            ) from None


__all__ = ["TrackingError", "check_search_name", "check_tracking_uri", "tracking_scheme"]
