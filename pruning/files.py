"""Writing files so that a killed process never leaves a half-written one, and saying plainly why a
file cannot be written.

Every output of the toolkit (results, tables, sparse models, locks' probes) goes through
``atomic_write_bytes``: a temporary file beside the target, renamed into place. The file-system
failures that are the user's to fix (a full disk, a read-only place) become one-paragraph messages.
"""
from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path


class ResultError(Exception):
    """A written result cannot be read; the message names the file and the fix."""


class OutputError(Exception):
    """An output file or directory cannot be written; the message names the path and the fix."""


# The file-system failures that are the user's to fix (a full disk, a read-only place, a file where a
# directory belongs), not bugs: the scripts turn them into a one-paragraph message and exit status 2.
FS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
             errno.EEXIST, errno.EISDIR, errno.EFBIG}


def is_fs_error(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in FS_ERRNOS


FS_IOC_GETFLAGS = 0x80086601  # Linux: a file's attributes (chattr/lsattr)
FS_IMMUTABLE_FL, FS_APPEND_FL = 0x10, 0x20


def locked_attributes(path: str | Path) -> str | None:
    """"immutable" or "append-only" when ``path`` carries that Linux attribute (chattr +i / +a): no
    permission lets it be replaced, so chmod cannot help; None otherwise (or where it cannot be read)."""
    try:
        import array
        import fcntl

        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            buf = array.array("l", [0])
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
        finally:
            os.close(fd)
    except (OSError, ImportError, ValueError):
        return None
    flags = buf[0]
    return "immutable" if flags & FS_IMMUTABLE_FL else "append-only" if flags & FS_APPEND_FL else None


def explain_fs_error(e: OSError, what: str | None = None) -> str:
    """One paragraph naming the path, the problem and the fix for one of ``FS_ERRNOS``."""
    path = e.filename or what or "an output file"
    attribute = locked_attributes(path) if e.errno == errno.EPERM and os.path.exists(path) else None
    if attribute:
        return (f"{path} cannot be replaced: it is marked {attribute} (lsattr {path} shows it), which no file "
                f"permission overrides. Remove the mark (chattr -{'i' if attribute == 'immutable' else 'a'} {path}, "
                f"as root) and rerun the same command, or pass --logdir / --plots to another place.")
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"the disk holding {path} is full ({e.strerror}). Free some space (or pass --logdir on another "
                f"disk) and rerun the same command: finished runs are kept and the study resumes.")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"{path} cannot be written ({e.strerror}). Make it writable (chmod u+w, or a folder you own), "
                f"or pass --logdir / --plots to a writable place.")
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return (f"{path} cannot be created: a file stands where a directory is needed ({e.strerror}). Move that "
                f"file away, or pass --logdir / --plots to a directory.")
    return f"{path} cannot be written ({e.strerror}). Check the path and its permissions."


def check_writable_dir(path: str | Path, flag: str, create: bool = True) -> Path:
    """Prove, before any training, that ``path`` can take files: create it (and its parents) and write
    a probe file in it; with ``create=False`` probe the nearest existing folder instead, so that
    nothing is left behind. Raises OutputError naming ``flag``, the path and the fix otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is an existing file, not a directory. Pass {flag} a directory "
                          f"(it is created if missing), or move the file away.")
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
            _probe(path)
        else:
            existing = next(p for p in (path, *path.absolute().parents) if p.exists())
            if not existing.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(existing))
            _probe(existing)
    except OSError as e:
        raise OutputError(f"{flag} {path}: " + explain_fs_error(e, str(path))) from None
    return path


def _probe(directory: Path) -> None:
    """Create and remove a small file in ``directory``; raises OSError when it cannot."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".write-test.")
    try:
        os.write(fd, b"ok")
    finally:
        os.close(fd)
        os.unlink(tmp)


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (threads may create files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place; the file gets the
    permissions any new file gets under the user's umask (mkstemp alone would make it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as e:  # name the file the user knows, not the temporary one beside it
            if e.errno is None:
                raise
            raise type(e)(e.errno, e.strerror, str(path)) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clean(obj):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ResultError(f"{path} cannot be read ({e}). Delete that run's directory (or pass --overwrite) to redo it.") from None
