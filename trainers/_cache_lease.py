"""Leases on the intermediate-checkpoint cache's keys: one trial trains a key while the others wait.

A lease is a file ``<root>/.leases/<key>.lease`` created with ``O_CREAT | O_EXCL`` and renewed in place
by its holder. A crashed holder's lease expires (at once when the holder ran on the reader's host and
its process is gone) and is stolen by renaming it to a unique tombstone, which only one stealer can win.
``trainers.checkpoint_cache`` is the public face; this module is its lease half.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from types import TracebackType

# Lease files are padded to at least this many bytes so that a renew overwrites them in place
# without ever shrinking them (a reader never sees a truncated-then-rewritten file).
_LEASE_PAD = 512


class LeaseHome(Protocol):
    """What a lease needs of the cache it belongs to: where lease files and their tombstones go."""

    _lease_root: Path

    def _lease_path(self, key: str) -> Path: ...

    def _tombstone(self, key: str) -> Path: ...


def _hostname() -> str:
    return socket.gethostname()


def _default_owner() -> str:
    return f"{_hostname()}:{os.getpid()}"


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease file says (as read by anyone), plus its modification time."""

    owner: str | None
    """Who holds it (``None`` when the file could not be parsed)."""
    host: str | None
    """The holder's hostname."""
    pid: int | None
    """The holder's process id on ``host``."""
    expires_at: float | None
    """Wall-clock expiry (``time.time()``); ``None`` when the file could not be parsed."""
    token: str | None
    """A unique id of this lease (owners' names need not be unique)."""
    mtime: float
    """The file's modification time (used when its content is unreadable)."""

    def expired(self, now: float, grace_s: float) -> bool:
        """True once the lease has expired or its holder on this host has died; an unparseable file
        expires ``grace_s`` after its mtime."""
        if self.expires_at is not None:
            return now >= self.expires_at or self.holder_dead()
        # Empty/garbled: a creator that crashed between O_EXCL and its write, or a write in flight.
        return now >= self.mtime + grace_s

    def holder_dead(self) -> bool:
        """True if the holder ran on this host and its process is gone (a killed trial): no need to wait out
        the TTL. Holders on other hosts cannot be checked from here; their leases expire by time."""
        if self.host != _hostname() or self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, another user's
        return False

    def describe(self) -> str:
        """One line for error messages."""
        if self.expires_at is None:
            return "an unreadable lease"
        left = self.expires_at - time.time()
        return f"owner {self.owner!r} on {self.host} (pid {self.pid}), expires in {left:.0f}s"


def _read_lease(path: Path) -> LeaseInfo | None:
    """Parse a lease file; ``None`` when there is none."""
    try:
        with path.open("rb") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            raw = handle.read()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode())
        return LeaseInfo(
            owner=str(data["owner"]),
            host=str(data.get("host")),
            pid=int(data["pid"]) if data.get("pid") is not None else None,
            expires_at=float(data["expires_at"]),
            token=str(data.get("token")),
            mtime=mtime,
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return LeaseInfo(None, None, None, None, None, mtime)


def _lease_bytes(fields: dict[str, Any]) -> bytes:
    """JSON padded with spaces (which JSON ignores) so that rewrites never shrink the file."""
    blob = json.dumps(fields, sort_keys=True).encode()
    return blob + b" " * max(0, _LEASE_PAD - len(blob))


def _restore(tomb: Path, path: Path) -> None:
    """Put a lease moved aside by mistake back under its name, unless a new lease took the name meanwhile."""
    # link() fails if the name exists, unlike rename(), so a newer lease is never clobbered.
    with contextlib.suppress(OSError):
        os.link(tomb, path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tomb)


class Lease:
    """The right to train one key, held through a lease file until released or expired."""

    def __init__(self, cache: LeaseHome, key: str, owner: str, ttl_s: float, fd: int, token: str) -> None:
        self.cache = cache
        """The cache the lease belongs to."""
        self.key = key
        """The key being trained."""
        self.owner = owner
        """Who holds it."""
        self.ttl_s = ttl_s
        """Lifetime granted by each renew."""
        self.token = token
        """Unique id written into the lease file."""
        self.path = cache._lease_path(key)
        """The lease file."""
        self.expires_at = time.time() + ttl_s
        """Expiry as last written."""
        self.lost = False
        """True once the lease was found stolen (or removed) by someone else."""
        self._fd = fd
        self._close = weakref.finalize(self, os.close, fd)  # closes exactly once, even if never released
        self._lock = threading.Lock()
        self._released = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "released" if self._released else "lost" if self.lost else "held"
        return f"Lease(key={self.key!r}, owner={self.owner!r}, {state})"

    @property
    def held(self) -> bool:
        """True while not released and the lease file under its name is still this one."""
        return not self._released and not self.lost and self._is_named()

    def _fields(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "host": _hostname(),
            "pid": os.getpid(),
            "expires_at": self.expires_at,
            "token": self.token,
        }

    def _write(self) -> None:
        # In place through our own descriptor: whatever name the file has now, only our file changes
        # (never a thief's lease that took the name).
        os.pwrite(self._fd, _lease_bytes(self._fields()), 0)
        os.fsync(self._fd)  # push to the server on NFS, where others read it

    def _is_named(self, retries: int = 3) -> bool:
        """True if ``self.path`` holds our token; retried, as a stealer's mistake is undone at once."""
        # The token, not the inode, identifies the file: NFS servers may reuse a deleted file's inode number.
        for attempt in range(retries):
            info = _read_lease(self.path)
            if info is not None and info.token == self.token:
                return True
            if attempt + 1 < retries:
                time.sleep(0.02)
        return False

    def renew(self, ttl_s: float | None = None) -> bool:
        """Push the expiry ``ttl_s`` (default: the lease's) ahead; False if lost or released."""
        with self._lock:
            if self._released or self.lost:
                return False
            if not self._is_named():
                self.lost = True
                return False
            if ttl_s is not None:
                self.ttl_s = ttl_s
            self.expires_at = time.time() + self.ttl_s
            try:
                self._write()
            except OSError:  # ESTALE on NFS once a stealer deleted our file
                self.lost = True
                return False
            # A stealer may have renamed it between the check and the write; then it is not ours.
            if not self._is_named():
                self.lost = True
                return False
            return True

    def release(self) -> bool:
        """Give the lease up (idempotent); False if it had already been lost to someone else."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._released:
                return not self.lost
            self._released = True
            was_ours = False
            if not self.lost and self._is_named():
                tomb = self.cache._tombstone(self.key)
                try:
                    os.rename(self.path, tomb)
                except FileNotFoundError:
                    pass
                else:
                    moved = _read_lease(tomb)
                    if moved is not None and moved.token == self.token:
                        was_ours = True
                        self._close()  # before unlink: NFS would otherwise keep a .nfsXXXX file
                        os.unlink(tomb)
                    else:
                        _restore(tomb, self.path)  # someone else's lease had taken the name
            self.lost = self.lost or not was_ours
            self._close()
            return was_ours

    def keep_alive(
        self, interval_s: float | None = None, on_lost: Callable[[Lease], None] | None = None
    ) -> Lease:
        """Renew from a daemon thread every ``interval_s`` (default ttl/3) until released; returns self."""
        if self._thread is not None:
            return self
        interval = interval_s if interval_s is not None else max(self.ttl_s / 3.0, 0.01)

        def beat() -> None:
            while not self._stop.wait(interval):
                if not self.renew():
                    if self.lost and on_lost is not None:
                        on_lost(self)
                    return

        self._thread = threading.Thread(target=beat, name=f"lease-{self.key}", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def tombstone_path(lease_root: Path, key: str) -> Path:
    """A unique name under ``lease_root`` to move a lease file aside to (release, steal)."""
    return lease_root / f"{key}.tomb.{_hostname()}.{os.getpid()}.{uuid.uuid4().hex[:12]}"


def count_leases(lease_root: Path, now: float, grace_s: float) -> tuple[int, int]:
    """(live, expired) lease files under ``lease_root``."""
    live = expired = 0
    if lease_root.is_dir():
        for lease_file in lease_root.glob("*.lease"):
            info = _read_lease(lease_file)
            if info is None:
                continue
            if info.expired(now, grace_s=grace_s):
                expired += 1
            else:
                live += 1
    return live, expired


def acquire_lease(cache: LeaseHome, key: str, owner: str | None, ttl_s: float) -> Lease | None:
    """Take the lease on ``key``: None while someone else holds a live one; expired ones are stolen."""
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
    owner = owner or _default_owner()
    path = cache._lease_path(key)
    cache._lease_root.mkdir(parents=True, exist_ok=True)
    # A few rounds: each failed one means another process created or stole a lease meanwhile.
    for _ in range(4):
        lease = _create(cache, key, owner, ttl_s)
        if lease is not None:
            return lease
        info = _read_lease(path)
        if info is None:
            continue  # released between our create and read: try again
        if not info.expired(time.time(), grace_s=ttl_s):
            return None
        _steal(cache, key, path, ttl_s)
    return None


def _create(cache: LeaseHome, key: str, owner: str, ttl_s: float) -> Lease | None:
    """O_EXCL-create the lease file; None if it exists."""
    path = cache._lease_path(key)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    except FileExistsError:
        return None
    lease = Lease(cache, key, owner, ttl_s, fd, uuid.uuid4().hex)
    try:
        lease._write()
    except BaseException:
        lease._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return lease


def _steal(cache: LeaseHome, key: str, path: Path, ttl_s: float) -> None:
    """Move an expired lease out of the way; only one of several concurrent stealers wins the rename."""
    tomb = cache._tombstone(key)
    try:
        os.rename(path, tomb)
    except FileNotFoundError:
        return  # another stealer (or the owner's release) got there first
    # rename() moves whatever holds the name now, which may be a fresh lease created by a faster
    # stealer, or the owner's renewed one. Re-judge what we moved and put a live lease back.
    info = _read_lease(tomb)
    if info is not None and not info.expired(time.time(), grace_s=ttl_s):
        _restore(tomb, path)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tomb)
