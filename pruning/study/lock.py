"""One writer per log directory: an OS-level lock that a crash releases.

Two studies writing one log directory would train the same runs into the same folders and
report each other's numbers. Every command that writes into a study's directory (main.py,
main_alternate.py, train.py, benchmark.py) holds ``<logdir>/.lock`` with ``fcntl.flock`` while
it runs. The kernel drops a flock when its process ends, however it ends (a crash, SIGKILL), so
a lock is never left stale; the file itself stays, holding the last holder's PID and command
for the message a second process prints.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ..files import check_writable_dir

LOCK_FILE = ".lock"


class LockError(Exception):
    """Another process holds the log directory; the message names it and the way out."""


def _holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}


@contextmanager
def hold(logdir: str | Path, flag: str = "--logdir"):
    """Hold ``logdir`` (created if missing) for the duration of the block, or raise LockError at once
    when another process holds it. Nothing in the directory is changed when the lock is refused."""
    logdir = check_writable_dir(logdir, flag)
    fd = os.open(logdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            h = _holder(fd)
            who = f"process {h.get('pid', '?')}"
            if h.get("command"):
                who += f" ({h['command']}, since {h.get('started', '?')})"
            raise LockError(
                f"{logdir} is in use by {who}. Two commands writing one log directory would train the same runs "
                f"into the same folders and mix their results, so this one changed nothing. Wait for it to finish "
                f"(or stop it: kill {h.get('pid', '<pid>')}), or pass {flag} another directory."
            ) from None
        me = {"pid": os.getpid(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        yield logdir
    finally:
        os.close(fd)  # releases the lock
