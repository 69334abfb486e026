"""A run's written result and the study's table.

A run is finished exactly when its ``result.json`` exists (written last, atomically, by
``pruning.files``) and the files it names are there. ``results.csv`` has one row per
(seed, strategy, sparsity); ``summary.csv`` (``pruning.report.stats``) is computed from it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..files import ResultError, atomic_write_bytes, read_json

RESULT_FORMAT = 1
# result.json's "size" block (pruning.deploy.export.size_report): what the pruned network really costs
SIZE_COLUMNS = (
    "effective_sparsity",
    "params_nonzero",
    "flops_per_example",
    "dense_bytes",
    "sparse_bytes",
    "dense_gzip_bytes",
    "sparse_gzip_bytes",
)
# what a table describes, from each run's configuration: the network, the data set, the protocol and --sparsify
# (tables written before these columns existed have none of them and read as before)
IDENTITY_COLUMNS = ("model", "dataset", "protocol", "sparsify", "sparsify_strength")
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
    *IDENTITY_COLUMNS,
    "units_kept",
    "units_alive",  # hidden units alive per hidden layer, "8-13-88" (a shrunk or gated network's per-layer widths)
    "data_kind",  # the data's source kind (idx, npz, tfds, sample), never its path; with the sizes below, what a
    "train_examples",  # figure drawn from the table alone names in its footer (figure.csv_data_label)
    "test_examples",
    "threads",  # TensorFlow's intra-op threads the run trained with (execution.intra_op_threads; 0: its default)
)


def identity(result: dict) -> dict:
    """The ``IDENTITY_COLUMNS`` of a run's result: ``model`` (``config.hyper.model.name``), ``dataset``
    (``config.hyper.data.dataset``, else the data's own name, else "mnist": runs made before --dataset
    were MNIST), ``protocol`` (``config.hyper.prune.protocol``; None where a result does not say) and
    ``sparsify`` (the ``--sparsify`` method; "none" for runs made before it existed) and
    ``sparsify_strength`` (the method's strength, its lambda; None for a method without one, or none).

    >>> identity({"config": {"hyper": {"model": {"name": "lenet5"}, "prune": {"protocol": "retrain"}}}})
    {'model': 'lenet5', 'dataset': 'mnist', 'protocol': 'retrain', 'sparsify': 'none', 'sparsify_strength': None}
    >>> identity({"config": {"hyper": {"sparsify": {"method": "l1", "params": {"l1_lambda": 1e-05}}}}})["sparsify_strength"]
    1e-05
    """
    hyper = (result.get("config") or {}).get("hyper") or {}
    sparsify = hyper.get("sparsify") or {}
    return {"model": (hyper.get("model") or {}).get("name"),
            "dataset": (hyper.get("data") or {}).get("dataset") or (result.get("data") or {}).get("dataset") or "mnist",
            "protocol": (hyper.get("prune") or {}).get("protocol"),
            "sparsify": sparsify.get("method") or "none",
            "sparsify_strength": _strength_of(sparsify)}


def _strength_of(sparsify: dict):
    """The strength (lambda) of a run's ``--sparsify`` settings, None when the method has none."""
    from ..sparsify import methods

    method = methods.METHODS.get(sparsify.get("method") or "none")
    if method is None or method.strength is None:
        return None
    return (sparsify.get("params") or {}).get(method.strength)


def result_files(result: dict) -> list[str]:
    """The files (relative to the run's directory) that a finished run's result names; results written
    before the list existed name model.keras and model.sparse."""
    return list(result.get("files") or (paths.MODEL, paths.SPARSE_MODEL))


def start_model_file(logdir: str | Path, result: dict) -> Path:
    """The model file a run that starts from the finished run ``result`` loads: its masked network
    (``masked.keras``) when it wrote one (a network of the user's own, whose ``model.keras`` is plain Keras
    layers), else its ``model.keras``."""
    name = paths.MASKED_MODEL if paths.MASKED_MODEL in result_files(result) else paths.MODEL
    return paths.run_dir(logdir, result["run"]) / name


def missing_files(logdir: str | Path, result: dict) -> list[str]:
    """The files a finished result names that are not in its run directory: such a run is not finished."""
    rdir = paths.run_dir(logdir, result["run"])
    return [f for f in result_files(result) if not (rdir / f).is_file()]


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_checks(run_dir: str | Path, names) -> dict[str, dict]:
    """What a result records of each file it names (``files`` -> ``checks``): its size and SHA-256, so that a
    resume can tell a damaged file (cut short, overwritten) from the one the run wrote."""
    run_dir = Path(run_dir)
    return {name: {"size": (run_dir / name).stat().st_size, "sha256": sha256_file(run_dir / name)} for name in names}


def damaged_files(logdir: str | Path, result: dict, deep: bool = False) -> dict[str, str]:
    """The files a finished result names that are gone or not the ones it wrote, each with what is wrong
    ("gone"; "100 bytes, 2,345,678 when written"; "its SHA-256 differs from the one written"). The size is
    always compared with the recorded one; the SHA-256 only when ``deep`` (the files a run is about to read).
    Results written before sizes and hashes were recorded are checked for presence only."""
    rdir = paths.run_dir(logdir, result["run"])
    checks = result.get("checks") or {}
    out = {}
    for name in result_files(result):
        path = rdir / name
        if not path.is_file():
            out[name] = "gone"
            continue
        want = checks.get(name)
        if not want:
            continue
        size = path.stat().st_size
        if size != want["size"]:
            out[name] = f"{size:,} bytes, {want['size']:,} when written"
        elif deep and sha256_file(path) != want["sha256"]:
            out[name] = "its SHA-256 differs from the one written"
    return out


def describe_damage(damage: dict[str, str]) -> str:
    """``damaged_files``' answer in words: "model.keras is gone and start.keras is damaged (100 bytes, ...)"."""
    parts = [f"{name} is gone" if why == "gone" else f"{name} is damaged ({why})" for name, why in damage.items()]
    return " and ".join(parts)


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


@dataclass(frozen=True)
class Replicate:
    """One replicate of a study as written: LOGDIR/seed<N>/ (``seed`` N), or LOGDIR itself when it has
    no seed directories (``seed`` None); its finished runs and its study.json (None when missing)."""

    seed: int | None
    results: list[dict]
    study: dict | None


def read_replicates(logdir: str | Path) -> list[Replicate]:
    """Every replicate of the study under ``logdir``, in seed order. A seed that the study's
    study.json names but that has no directory yet (a study stopped before it began) is a replicate
    without results, planned like the others: its runs count as missing, never silently dropped."""
    dirs = paths.seed_dirs(logdir) or [(None, Path(logdir))]
    reps = [Replicate(seed, read_all_results(d), read_json(paths.study_file(d)) if paths.study_file(d).exists()
                      else None) for seed, d in dirs]
    root = read_json(paths.study_file(logdir)) if paths.study_file(logdir).exists() else {}
    check_one_study(logdir, reps)
    named = root.get("seeds")
    if named and reps[0].seed is not None:
        # a seed's plan is its study's: the same run names whatever the seed
        plan = next((r.study for r in reps if r.study is not None), None) or {"study": root["study"]}
        found = {r.seed for r in reps}
        reps = sorted(reps + [Replicate(s, [], plan) for s in named if s not in found], key=lambda r: r.seed)
    return reps


def _parsed(read):
    """``read()``, or None when a written configuration is incomplete or of an older form (then it is not compared)."""
    try:
        return read()
    except (KeyError, TypeError, ValueError):
        return None


def check_one_study(logdir, reps: list[Replicate]) -> None:
    """Refuse (ResultError) to average seeds that are not of one study: made with other configurations
    (each seed's study.json, ``config.study_identity``; and each run against the same run of the other
    seeds, ``RunConfig.identity`` without the seed) or on other data (the runs' fingerprints). Such a
    directory was filled before the study checked the seeds it adds."""
    from ..config import Hyper, RunConfig, diff, seedless, study_identity

    def mixed(what: str, first: str, tag: str, a: dict, b: dict) -> ResultError:
        shown = "; ".join(diff(a, b, labels=(f"in {first}", f"in {tag}"))[:4])
        return ResultError(
            f"{logdir} mixes studies: {what} was made with another configuration than in {first} ({shown}), so its "
            f"seeds cannot be averaged. Move the seeds that differ to a log directory of their own (for example mv "
            f"{Path(logdir) / tag} OTHER_LOGDIR/) and plot each directory.")

    studies: list = []  # (seed tag, study identity)
    runs: dict = {}  # run name -> (seed tag, identity without the seed)
    first_data = None  # (seed tag, run, data record) of the first run that records its data
    for rep in reps:
        tag = f"seed{rep.seed}" if rep.seed is not None else str(logdir)
        if rep.study and "hyper" in rep.study:
            ident = _parsed(lambda: study_identity(Hyper.from_dict(rep.study["hyper"])))
            if ident is None:
                continue
            if studies and studies[0][1] != ident:
                raise mixed(f"{tag} (its study.json)", studies[0][0], tag, studies[0][1], ident)
            studies.append((tag, ident))
        for r in rep.results:
            ident = _parsed(lambda: seedless(RunConfig.from_dict(r["config"]).identity()))
            if ident is None:
                continue
            first = runs.setdefault(r["run"], (tag, ident))
            if first[1] != ident:
                raise mixed(f"{tag}/{r['run']}", first[0], tag, first[1], ident)
            d = r.get("data") or {}
            if d.get("fingerprint"):
                first_data = first_data or (tag, r["run"], d)
                if first_data[2]["fingerprint"] != d["fingerprint"]:
                    f = first_data
                    raise ResultError(
                        f"{logdir} mixes studies: {tag}/{r['run']} was trained on other data ({d.get('source')}, "
                        f"{d.get('train_examples')} train examples) than {f[0]}/{f[1]} ({f[2].get('source')}, "
                        f"{f[2].get('train_examples')}), so its seeds cannot be averaged. Move the seeds that differ "
                        f"to a log directory of their own and plot each directory.")


def strategies_found(results: list[dict]) -> list[str]:
    """The strategies of ``results``' pruned runs, in the registry's order."""
    from ..core import masks

    return sorted({r["config"]["strategy"] for r in results} - {"none"}, key=masks.names().index)


def read_study_results(logdir: str | Path) -> list[dict]:
    """Every finished run of a study: of each replicate (LOGDIR/seed<N>/), or of LOGDIR itself when it
    has none (a single replicate's directory)."""
    dirs = [d for _, d in paths.seed_dirs(logdir)] or [Path(logdir)]
    return [r for d in dirs for r in read_all_results(d)]


def data_columns(result: dict) -> dict:
    """``data_kind`` (the kind of source: "idx:/home/me/mnist" gives "idx"), ``train_examples`` and
    ``test_examples`` of a run's result; None each where the result does not say."""
    data = result.get("data") or {}
    source = data.get("source")
    return {"data_kind": str(source).split(":", 1)[0] if source else None,
            "train_examples": data.get("train_examples"), "test_examples": data.get("test_examples")}


def units_kept(result: dict) -> float | None:
    """The fraction of the hidden units (every weight layer's but the last, the output) that are alive in a run's
    final network (``size.units_alive`` over ``size.units``); None for results written before those counts."""
    size = result.get("size") or {}
    alive, full = size.get("units_alive"), size.get("units")
    if not alive or not full or len(full) < 2:
        return None
    hidden = list(full)[:-1]
    return sum(alive[n] for n in hidden) / sum(full[n] for n in hidden)


def units_alive(result: dict) -> str | None:
    """The hidden units alive in each hidden layer of a run's final network, in layer order, joined by "-"
    ("8-13-88"); None for results written before those counts."""
    size = result.get("size") or {}
    alive, full = size.get("units_alive"), size.get("units")
    if not alive or not full or len(full) < 2:
        return None
    return "-".join(str(int(alive[n])) for n in list(full)[:-1])


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
                    **identity(r),
                    "units_kept": units_kept(r),
                    "units_alive": units_alive(r),
                    **data_columns(r),
                    "threads": (r.get("execution") or {}).get("intra_op_threads"),
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


OPTIONAL_COLUMNS = ("sparsify", "sparsify_strength", "threads", "units_kept", "units_alive", "units_kept_mean", "units_kept_sd", "units_kept_ci95", "data_kind",
                    "train_examples", "test_examples")  # left out of a table none of whose rows has one (tables made before it existed)


def write_rows(path: str | Path, rows: list[dict], columns=None) -> None:
    """Flat dicts as CSV, written atomically; ``columns`` default to the keys in first-seen order. An
    ``OPTIONAL_COLUMNS`` column that no row fills is left out, so a table recomputed from one written before
    the column existed is that table, byte for byte."""
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    columns = [c for c in columns if c not in OPTIONAL_COLUMNS or any(r.get(c) not in (None, "") for r in rows)]
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


# --------------------------------------------------------------------------- a finished run to start from
class ParentUnusable(Exception):
    """The run's parent cannot be started from; the message says why (written as the run's failure)."""


def finished_result(logdir, name: str, role: str = "parent run") -> dict:
    """The result of the finished run ``name``, which this run starts from; ParentUnusable if it is not
    (unfinished, failed, or a file it names gone or not the one it wrote: sizes and SHA-256 checked)."""
    result = read_result(logdir, name)
    if result is None or result.get("status") != "ok":
        why = "has not finished" if result is None else f"failed ({result.get('reason')})"
        raise ParentUnusable(f"{role} {name} {why}")
    damage = damaged_files(logdir, result, deep=True)
    if damage and set(damage.values()) == {"gone"}:
        raise ParentUnusable(f"{role} {name} lost its {', '.join(damage)}; rerun the study to redo it")
    if damage:
        raise ParentUnusable(f"{role} {name} cannot be read: in {paths.run_dir(logdir, name)}, {describe_damage(damage)}. "
                             f"Rerun the same command: the study redoes a run whose files are damaged, and the runs "
                             f"that start from it")
    return result


def load_parent_model(path: Path, role: str = "parent run", trusted: bool = False):
    """The Keras model saved at ``path`` by a finished run; ParentUnusable naming the file, not a Keras
    traceback, when it cannot be read (a result written before files were checksummed, say). ``trusted``:
    the run's network is the user's own code (``--model FILE.py:FUNCTION``, already imported and run), so a
    ``Lambda`` of Python code it saved loads back (Keras' ``safe_mode=False``)."""
    from ..graph import layers  # noqa: F401  (registers the masked twins a network of the user's own saves)
    from ..sparsify.layers import load_model  # the toolkit's loader, with the --sparsify layers registered

    try:
        return load_model(path, safe_mode=not trusted)
    except Exception as e:  # Keras raises ValueError, OSError, zipfile errors... for a damaged .keras file
        raise ParentUnusable(f"{role}'s {path} cannot be read as a Keras model ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}). Delete its run directory and rerun the "
                             f"same command: the study redoes it and the runs that start from it") from None
