"""Who judges the experiments of a data dir: the process holding an exclusive lock on DATA_DIR/leader.lock.

Usage: lock = LeaderLock.take(data_dir)  # blocking (a thread); None: another process holds it (logged)
The lock is `flock`ed without waiting and released by `release()` or by the kernel when the process dies,
so a crashed leader never blocks the next one. The holder's pid is written in the file for people.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from proxy.telemetry.logs import event

LOCK_NAME = "leader.lock"


class LeaderLock:
    """An exclusive lock on the data dir's leader file, held until `release`."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def take(cls, data_dir: Path) -> LeaderLock | None:
        """The lock, or None (logged: this process then runs no controllers) if another process holds it."""
        path = data_dir / LOCK_NAME
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            event(
                "not the leader",
                level=logging.WARNING,
                lock=str(path),
                holder_pid=holder,
                detail="another outrider process holds the data dir's leader lock: this one runs no "
                "controllers, follows the stored experiment states and refuses admin mutations",
            )
            return None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        """Give the lock up (closing the file releases the flock)."""
        os.close(self.fd)
