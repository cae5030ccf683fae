"""One process at a time: an exclusive `flock` on a file, held for the process's lifetime.

The host holds `data_dir/host.lock` and its enclave `data_dir/run/enclave.lock`, so a second
host on the same data directory, and a second enclave beside an orphaned one, refuse to
start: two enclaves opened on one sealed state could sign two transactions with one nonce.
The kernel drops the lock when its holder dies, however it dies; the file keeps the
holder's pid and start time as text only to name it in the refusal.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


class LockBusy(Exception):
    """Another live process holds the lock (the message names it: pid, since when, file)."""


@dataclass
class HeldLock:
    """A lock this process holds until `release` (or until it exits)."""

    path: Path
    _fd: int

    def release(self) -> None:
        # The file stays: unlinking it would let a waiter lock a file nobody else opens.
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def hold_exclusive_lock(path: Path, holder: str) -> HeldLock:
    """Take the exclusive lock on `path` (made mode 0600 if missing) without waiting.

    `holder` says what holds it ("the host", "an enclave"), for the message another
    process gets.

    Raises:
        LockBusy: another process holds it; the message names that process.
        OSError: the file cannot be opened.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = _read_holder(fd)
        os.close(fd)
        raise LockBusy(
            f"{path} is locked by {text or 'another process (it is starting)'}"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    since = datetime.now(UTC).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{holder}, pid {os.getpid()}, since {since}\n".encode(), 0)
    return HeldLock(path, fd)


def lock_holder_pid(path: Path) -> int | None:
    """The pid written in the lock file `path` by its last holder, if any."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for part in text.split(","):
        words = part.split()
        if len(words) == 2 and words[0] == "pid" and words[1].isdecimal():
            return int(words[1])
    return None


def _read_holder(fd: int) -> str:
    return os.pread(fd, 512, 0).decode("utf-8", errors="replace").strip()
