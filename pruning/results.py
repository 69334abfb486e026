"""Writing and reading a run's result and the study's table, atomically.

A run is finished exactly when its ``result.json`` exists: it is written last, to a
temporary file that is renamed into place, so a killed run leaves nothing that
looks finished.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import tempfile
from pathlib import Path

from . import paths

RESULT_FORMAT = 1
# result.json's "size" block (experiment.size_report): what the pruned network really costs
SIZE_COLUMNS = (
    "effective_sparsity",
    "params_nonzero",
    "flops_per_example",
    "dense_bytes",
    "sparse_bytes",
    "dense_gzip_bytes",
    "sparse_gzip_bytes",
)
CSV_COLUMNS = (
    "seed",
    "strategy",
    "sparsity",
    "status",
    "oneshot_test_accuracy",
    "oneshot_train_accuracy",
    "pruned_test_accuracy",
    "test_accuracy",
    "train_accuracy",
    "weight_sparsity",
    *SIZE_COLUMNS,
    "epochs",
    "wall_time_s",
    "run",
    "parent",
)


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


def explain_fs_error(e: OSError, what: str | None = None) -> str:
    """One paragraph naming the path, the problem and the fix for one of ``FS_ERRNOS``."""
    path = e.filename or what or "an output file"
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
        os.replace(tmp, path)
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


def result_files(result: dict) -> list[str]:
    """The files (relative to the run's directory) that a finished run's result names; results written
    before the list existed name model.keras and model.sparse."""
    return list(result.get("files") or (paths.MODEL, paths.SPARSE_MODEL))


def missing_files(logdir: str | Path, result: dict) -> list[str]:
    """The files a finished result names that are not in its run directory: such a run is not finished."""
    rdir = paths.run_dir(logdir, result["run"])
    return [f for f in result_files(result) if not (rdir / f).is_file()]


def read_result(logdir: str | Path, name: str) -> dict | None:
    """The run's written result, or None if the run has not finished."""
    path = paths.result_file(logdir, name)
    return read_json(path) if path.exists() else None


def read_all_results(logdir: str | Path) -> list[dict]:
    """Every finished run under ``logdir``, sorted by (strategy, sparsity), never by directory order."""
    out = []
    logdir = Path(logdir)
    if not logdir.is_dir():
        return out
    for sub in logdir.iterdir():
        f = sub / paths.RESULT
        if f.is_file():
            out.append(read_json(f))
    return sorted(out, key=lambda r: (r["config"]["strategy"], float(r["config"]["sparsity"])))


def read_study_results(logdir: str | Path) -> list[dict]:
    """Every finished run of a study: of each replicate (LOGDIR/seed<N>/), or of LOGDIR itself when it
    has none (a single replicate's directory)."""
    dirs = [d for _, d in paths.seed_dirs(logdir)] or [Path(logdir)]
    return [r for d in dirs for r in read_all_results(d)]


def table_rows(results: list[dict], strategies, sparsities, seed: int | None = None) -> list[dict]:
    """One row per (strategy, sparsity) that has a result, of one seed's runs; sparsity 0 is the
    shared dense run. ``seed`` (default: the runs' own) fills the ``seed`` column."""
    by_name = {r["run"]: r for r in results}
    rows = []
    for strategy in strategies:
        for k in sparsities:
            r = by_name.get(paths.run_name(strategy, k))
            if r is None:
                continue
            rows.append(
                {
                    "seed": seed if seed is not None else r["config"]["hyper"]["train"]["seed"],
                    "strategy": strategy,
                    "sparsity": float(k),
                    "status": r["status"],
                    "oneshot_test_accuracy": r.get("oneshot_test_accuracy"),
                    "oneshot_train_accuracy": r.get("oneshot_train_accuracy"),
                    "pruned_test_accuracy": r.get("pruned_test_accuracy"),
                    "test_accuracy": r.get("test_accuracy"),
                    "train_accuracy": r.get("train_accuracy"),
                    "weight_sparsity": (r.get("sparsity") or {}).get("weight_sparsity"),
                    **{k: (r.get("size") or {}).get(k) for k in SIZE_COLUMNS},
                    "epochs": len((r.get("history") or {}).get("loss", [])),
                    "wall_time_s": r.get("wall_time_s"),
                    "run": r["run"],
                    "parent": r["config"].get("parent"),
                }
            )
    return rows


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else ""
    return str(v)


def write_table(path: str | Path, rows: list[dict]) -> None:
    write_rows(path, rows, CSV_COLUMNS)


def _ratio(a, b) -> str:
    return f"{a / b:.1f}x" if a and b else ""


def write_rows(path: str | Path, rows: list[dict], columns=None) -> None:
    """Flat dicts as CSV, written atomically; ``columns`` default to the keys in first-seen order."""
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _fmt(row.get(k)) for k in columns})
    atomic_write_bytes(path, buf.getvalue().encode())


def format_table(rows: list[dict]) -> str:
    """The results table as aligned text for the terminal (accuracies in percent)."""
    head = (f"{'strategy':<13} {'k%':>5} {'one-shot':>9} {'final':>9} {'train':>7} {'zeros':>7} {'effective':>9} "
            f"{'smaller':>7} {'time':>6}  status")
    lines = [head, "-" * len(head)]
    pct = lambda v: "" if v is None else f"{100 * v:.2f}"  # noqa: E731
    for r in rows:
        lines.append(
            f"{r['strategy']:<13} {paths.format_sparsity(r['sparsity']):>5} {pct(r['oneshot_test_accuracy']):>9} "
            f"{pct(r['test_accuracy']):>9} {pct(r['train_accuracy']):>7} {pct(r['weight_sparsity']):>7} "
            f"{pct(r.get('effective_sparsity')):>9} {_ratio(r.get('dense_bytes'), r.get('sparse_bytes')):>7} "
            f"{(r['wall_time_s'] or 0):>5.0f}s  {r['status']}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- replicates
SUMMARY_KEYS = ("test_accuracy", "oneshot_test_accuracy", "effective_sparsity")
SUMMARY_COLUMNS = ("strategy", "sparsity", "seeds", "n_ok",
                   *(f"{key}_{stat}" for key in SUMMARY_KEYS for stat in ("mean", "sd", "ci95")))

# Two-sided 95 % quantiles of Student's t, t(0.975, df), for df = 1..30 (standard tables).
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788,
         2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
         2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t975(df: int) -> float:
    """t(0.975, df): the table for df <= 30, then a Cornish-Fisher expansion around the normal
    quantile (error below 1e-4 there)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values) -> tuple[float, float, float]:
    """(mean, sample standard deviation, 95 % confidence half-width = t(0.975, n-1) x sd / sqrt(n)) of
    the values that are numbers; sd and half-width are NaN for fewer than two."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(v) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    return mean, sd, t975(n - 1) * sd / math.sqrt(n)


def summarize(rows: list[dict]) -> list[dict]:
    """One row per (strategy, sparsity) over the seeds of ``rows`` (results.csv rows): how many seeds,
    how many finished ok, and the mean, sd and 95 % half-width of each of ``SUMMARY_KEYS`` over the
    finished ones. Never stored by hand: always recomputed from the per-seed rows."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], float(r["sparsity"])), []).append(r)
    out = []
    for (strategy, k), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        row = {"strategy": strategy, "sparsity": k, "seeds": len(rs), "n_ok": len(ok)}
        for key in SUMMARY_KEYS:
            mean, sd, hw = mean_ci(r.get(key) for r in ok)
            row.update({f"{key}_mean": mean, f"{key}_sd": sd, f"{key}_ci95": hw})
        out.append(row)
    return out


def format_summary(rows: list[dict]) -> str:
    """The summary as aligned text: mean +- 95 % half-width in percent, over n seeds."""
    def pm(r, key):
        mean, hw = r[f"{key}_mean"], r[f"{key}_ci95"]
        if mean is None or not math.isfinite(mean):
            return ""
        return f"{100 * mean:.2f}" + (f" +- {100 * hw:.2f}" if hw is not None and math.isfinite(hw) else "")

    head = (f"{'strategy':<13} {'k%':>5} {'seeds':>5} {'one-shot':>15} {'final':>15} {'effective':>15}")
    lines = [head, "-" * len(head)]
    for r in rows:
        n = f"{r['n_ok']}" + ("" if r["n_ok"] == r["seeds"] else f"/{r['seeds']}")
        lines.append(f"{r['strategy']:<13} {paths.format_sparsity(r['sparsity']):>5} {n:>5} "
                     f"{pm(r, 'oneshot_test_accuracy'):>15} {pm(r, 'test_accuracy'):>15} "
                     f"{pm(r, 'effective_sparsity'):>15}")
    lines.append("mean +- 95% confidence half-width (Student t over the seeds), test accuracy in %; seeds: "
                 "finished / planned when some failed")
    return "\n".join(lines)
