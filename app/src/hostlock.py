"""The host lock: one lock for everything that writes the database.

On the server a deploy, a restore and a backup take this lock (the host
tool ctv-bookedbiz-db-admin), and so does every CLI command that writes the
database (see ``cli._writes_database``), so that a restore can never swap
the database file under a running import.  The web application and the
read-only commands do not take it.  The protocol, shared with the host
tool (keep the two the same):

- The lock of the database at path P is the file ``P + ".lock"``, created
  beside it when missing (also when P itself does not exist yet), opened
  O_RDWR|O_CREAT with mode 0660; read-only when it cannot be opened for
  writing (flock works on it; the holder line is then not written).
- It is taken with ``flock(fd, LOCK_EX | LOCK_NB)``, tried every 0.2 s for
  at most ``CTV_BOOKEDBIZ_DB_LOCK_WAIT`` seconds (default 30).  The holder
  truncates the file and writes one JSON line: ``{"holder": "<who>",
  "pid": N, "since": "<UTC ISO-8601>", "token": "<32 hex digits>"}``.
- It is released by closing the descriptor, so the kernel releases it
  however the holder ends (SIGKILL included).  Forked children (the import
  workers) close their inherited copy at once: only the holder keeps it.
- A waiter that gives up fails naming the holder from the file; with no
  valid JSON there, "held by an unknown process".
- A command run by a process that already holds the lock (a deploy runs
  ``ctv-bookedbiz db upgrade`` under its lock) gets the holder's token in
  ``CTV_BOOKEDBIZ_DB_LOCK_TOKEN``: it does not take the lock, it checks
  that somebody holds it and that the file's token is that one, and fails
  otherwise.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

WAIT_ENV = "CTV_BOOKEDBIZ_DB_LOCK_WAIT"
TOKEN_ENV = "CTV_BOOKEDBIZ_DB_LOCK_TOKEN"
DEFAULT_WAIT = 30.0
RETRY_EVERY = 0.2


class LockError(Exception):
    """The lock could not be taken (or the run's token does not hold it);
    the message says why and by whom it is held."""


def lock_path(database: str | Path) -> Path:
    return Path(f"{database}.lock")


def wait_seconds() -> float:
    """CTV_BOOKEDBIZ_DB_LOCK_WAIT, or the default."""
    raw = os.environ.get(WAIT_ENV, "").strip()
    if not raw:
        return DEFAULT_WAIT
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait < float("inf"):
        raise LockError(f"{WAIT_ENV}={raw!r} is not a number of seconds")
    return wait


# descriptors of locks this process holds: closed in forked children
_held: set[int] = set()


def _forget_in_child() -> None:
    for fd in _held:
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _open(path: Path) -> tuple[int, bool]:
    """The lock file's descriptor, and whether it is writable."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660), True
    except PermissionError:
        pass
    except OSError as exc:
        raise LockError(f"cannot open the lock file {path}: {exc.strerror or exc}") from None
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
    except OSError as exc:
        raise LockError(f"cannot open the lock file {path}: {exc.strerror or exc}") from None


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _holder(fd: int) -> dict | None:
    """The holder line's JSON, or None when it is not a JSON object."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def describe(record: dict | None) -> str:
    if record is None:
        return "an unknown process"
    return f"{record.get('holder', '?')} (pid {record.get('pid', '?')}) since {record.get('since', '?')}"


def _write_holder(fd: int, holder: str) -> None:
    line = (
        json.dumps(
            {
                "holder": holder,
                "pid": os.getpid(),
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "token": secrets.token_hex(16),
            }
        )
        + "\n"
    )
    os.ftruncate(fd, 0)
    os.pwrite(fd, line.encode(), 0)


def _check_token(path: Path, token: str) -> None:
    fd, _writable = _open(path)
    try:
        if _try_lock(fd):
            raise LockError(
                f"lock token given but nobody holds the lock ({TOKEN_ENV} is set, {path} is free); nothing was changed"
            )
        record = _holder(fd)
        if record is None or record.get("token") != token:
            raise LockError(f"the lock is held by {describe(record)}, not by this run; nothing was changed")
    finally:
        os.close(fd)  # releases the lock if the check took it


@contextmanager
def held(database: str | Path, holder: str, wait: float | None = None) -> Iterator[None]:
    """Hold the host lock of ``database`` for the ``with`` block; or, when
    ``CTV_BOOKEDBIZ_DB_LOCK_TOKEN`` is set, check that the run holding it
    is ours.  ``holder`` says who, e.g. "ctv-bookedbiz import weekly.csv
    (user ctvbooked)".  Raises LockError, having changed nothing, when the
    lock stays taken for ``wait`` seconds (default: the environment's)."""
    path = lock_path(database)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        _check_token(path, token)
        yield
        return
    if wait is None:
        wait = wait_seconds()
    fd, writable = _open(path)
    try:
        deadline = time.monotonic() + wait
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                record = _holder(fd)
                who = f" by {describe(record)}" if record is not None else f", held by {describe(record)}"
                raise LockError(
                    f"the database is locked{who}; try again later (waited {wait:g} s; nothing was changed)"
                )
            time.sleep(min(RETRY_EVERY, max(deadline - time.monotonic(), 0.01)))
        _held.add(fd)
        if writable:
            _write_holder(fd, holder)
        yield
    finally:
        _held.discard(fd)
        os.close(fd)
