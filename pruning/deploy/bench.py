"""Measuring what pruning buys: inference latency of each way to run a pruned network, this
machine's float32 matmul peak, and dense training throughput as a fraction of that peak.

Every timing is wall-clock: a warm-up, then the median of repeats. Engines that are compared
are timed in interleaved rounds, so that a slow spell of a shared machine hits them all
alike, in blocks separated by a short idle pause (see ``timed_rounds``); speedups are
ratios measured in the same run.

A busy machine still distorts them, so the benchmark says when not to trust a number: each
engine's timing carries the spread of its repeats (``relative_spread``); a row is ``noisy``
when any engine's spread exceeds ``NOISY_SPREAD``, and a ratio is ``suspect`` when a sparse or
shrunk network beats dense by more than its FLOP ratio allows (``SUSPECT_MARGIN``); the load
average is recorded before and after (``machine_load``). Before anything is timed, the sparse
and shrunk logits must match the masked model's within ``TOLERANCE``, else ``BenchmarkError``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import paths
from ..report.results import damaged_files, read_all_results

BATCHES = (1, 100, 1000)
ENGINES = ("dense", "dense_tf", "masked", "sparse", "shrunk")
ENGINE_HELP = {
    "dense": "the unpruned network, NumPy float32 matmuls (BLAS, all cores): the reference",
    "dense_tf": "the same unpruned network run by TensorFlow (compiled tf.function)",
    "masked": "the pruned network as trained: Keras/TensorFlow, kernel x mask at full size",
    "sparse": "the pruned network from model.sparse on pruning.deploy.sparse_engine.SparseMLP "
              "(per layer dense BLAS or a Numba sparse kernel, whichever is faster)",
    "shrunk": "the pruned network without its dead units (pruning.deploy.shrink), NumPy float32 matmuls",
}

# Largest |logit difference| on the timed inputs allowed between an engine and the masked model
# (model.keras run by Keras), per engine. Intact runs agree to 1.7e-5 at most (float32 sums in
# another order); 1e-3 leaves 50x headroom and still catches a real disagreement (the one reported
# in issue 7 was 437).
TOLERANCE = {"sparse": 1e-3, "shrunk": 1e-3}

# A row is noisy when an engine's relative spread (interquartile range / median of its repeats,
# see relative_spread) exceeds this: the middle half of its repeats then spans more than a quarter
# of its median, and the ratios built on that median are unreliable.
NOISY_SPREAD = 0.25

# Engines whose FLOPs shrink with pruning. Their speedup over dense cannot honestly exceed the run's
# FLOP ratio (dense FLOPs / the run's FLOPs): they do the same kind of float32 arithmetic, only less
# of it. A ratio above SUSPECT_MARGIN x the FLOP ratio is marked suspect (most likely dense was slowed
# by other load). At batch 1 the product is a matrix-vector one, bound by memory and call overhead,
# where a smaller network may legitimately win a little more than its FLOPs (1.19x the FLOP ratio
# measured on an idle machine): the margin there is SUSPECT_MARGIN_BATCH_1.
SUSPECT_ENGINES = ("sparse", "shrunk")
SUSPECT_MARGIN = 1.1
SUSPECT_MARGIN_BATCH_1 = 1.5


class BenchmarkError(Exception):
    """Engines of a run disagree: the message names the run, engine, batch, difference, tolerance and fix."""


@dataclass(frozen=True)
class Timing:
    """One engine's timing: the median seconds per call and the relative spread of the repeats."""
    median: float
    spread: float
    repeats: int


def relative_spread(seconds) -> float:
    """(75th percentile - 25th percentile) / median of the repeats: 0 when they all agree, 0.25
    when the middle half spans a quarter of the median. The interquartile range ignores a lone
    hiccup, as the median does, so it grows only when the median itself is uncertain."""
    t = np.asarray(seconds, dtype=float)
    if t.size < 2:
        return 0.0
    p25, median, p75 = np.percentile(t, (25, 50, 75))
    return float((p75 - p25) / median) if median > 0 else math.inf


BLOCK_PAUSE_S = 0.2  # idle time before each timed block (see timed_rounds); the tests, which time nothing, set 0


def timed_rounds(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, rounds: int = 2,
                 pause: float | None = None) -> dict[str, Timing]:
    """The Timing of each function over ``repeats`` timed calls (at least one per round): the median
    seconds per call and the relative spread of the calls (``relative_spread``).

    The calls run in blocks, one engine at a time, in ``rounds`` interleaved rounds (so a slow spell
    of a shared machine hits every engine). Before each block the machine idles for ``pause``
    seconds and the engine makes ``warmup`` untimed calls: BLAS, Numba and TensorFlow worker threads
    keep spinning for 0.1-0.2 s after their last call, and timing one library right after another
    measured the second up to 2x slower (dense NumPy at batch 100 after the Numba kernel: 8-10 ms
    instead of 4.6 ms).
    """
    per_block = max(1, math.ceil(repeats / rounds))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            time.sleep(BLOCK_PAUSE_S if pause is None else pause)
            for _ in range(warmup):
                fn()
            for _ in range(per_block):
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    return {k: Timing(float(np.median(v)), relative_spread(v), len(v)) for k, v in times.items()}


# --------------------------------------------------------------------------- machine peak
def matmul_peak(n: int = 2048, repeats: int = 7, bfloat16: bool = False) -> dict:
    """Float32 matmul GFLOP/s of an n x n x n product in NumPy (BLAS) and in TensorFlow (oneDNN /
    Eigen), all cores. ``peak`` is the better of the two: the machine's practical peak. With
    ``bfloat16``, also TensorFlow's bfloat16 product (``tensorflow_bfloat16``, not part of ``peak``)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = tf.constant(a), tf.constant(b)
    tf_mm = tf.function(lambda x, y: tf.matmul(x, y))
    fns = {"numpy": lambda: a @ b, "tensorflow": lambda: tf_mm(ta, tb).numpy()}
    if bfloat16:
        ha, hb = tf.cast(ta, tf.bfloat16), tf.cast(tb, tf.bfloat16)
        fns["tensorflow_bfloat16"] = lambda: tf_mm(ha, hb).numpy()
    t = timed_rounds(fns, repeats, warmup=2)
    flops = 2.0 * n**3
    out = {k: flops / v.median / 1e9 for k, v in t.items()}
    out["peak"] = max(out["numpy"], out["tensorflow"])
    out["n"] = n
    out["spread"] = {k: v.spread for k, v in t.items()}
    return out


def training_flops_per_example(shapes: list[tuple[int, int]]) -> int:
    """Matmul FLOPs of one training example of a bias-free MLP: forward (2 in x out per layer),
    the weight gradients (the same again) and the input gradients of every layer but the first."""
    per_layer = [2 * a * b for a, b in shapes]
    return 3 * sum(per_layer) - per_layer[0]


def dense_training_throughput(data, hyper, epochs_timed: int = 1) -> dict:
    """Train the dense network exactly as a study does (batch size, optimizer, masks present),
    time whole epochs after a warm-up, and return examples/s and matmul GFLOP/s."""
    import keras

    from ..core.layers import weight_layers
    from ..models import build_model
    from ..study.run import compile_model, precision

    keras.utils.set_random_seed(hyper.train.seed)
    with precision(hyper.train.precision):  # as the study trained: float32, or bfloat16 products
        model = build_model(data.input_dim, hyper.model)
    steps = math.ceil(len(data.y_train) / hyper.train.batch_size) * (epochs_timed + 1)
    compile_model(model, hyper.train.lr, hyper.train.weight_decay, steps)
    n_warm = hyper.train.batch_size * 20
    model.fit(data.x_train[:n_warm], data.y_train[:n_warm], batch_size=hyper.train.batch_size, epochs=1, verbose=0)
    t = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=hyper.train.batch_size, epochs=epochs_timed, verbose=0)
    seconds = (time.perf_counter() - t) / epochs_timed
    shapes = [tuple(int(d) for d in l.kernel.shape) for l in weight_layers(model)]
    flops = training_flops_per_example(shapes) * len(data.y_train)
    return {"epoch_s": seconds, "examples_per_s": len(data.y_train) / seconds, "gflops": flops / seconds / 1e9,
            "batch_size": hyper.train.batch_size, "precision": hyper.train.precision}


# --------------------------------------------------------------------------- inference engines
def numpy_forward_fn(kernels: list[np.ndarray], relus: list[bool]) -> Callable[[np.ndarray], np.ndarray]:
    """A float32 NumPy forward pass (``max(x @ W, 0)`` per layer), kernels made contiguous once."""
    ws = [np.ascontiguousarray(k, dtype=np.float32) for k in kernels]

    def forward(x):
        h = x
        for w, relu in zip(ws, relus):
            h = h @ w
            if relu:
                np.maximum(h, 0.0, out=h)
        return h

    return forward


def keras_forward_fn(model) -> Callable[[np.ndarray], np.ndarray]:
    """The Keras model's own forward pass, compiled once per input shape (no predict() overhead)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: fn(tf.constant(x)).numpy()


@dataclass
class RunEngines:
    """Everything needed to time one finished run."""
    name: str
    strategy: str
    sparsity: float
    flop_ratio: float
    fns: dict[str, Callable[[np.ndarray], np.ndarray]]
    sparse: object  # the SparseMLP, for its per-layer plan


def run_engines(logdir, result: dict, dense_fns: dict) -> RunEngines:
    """Load one finished run's model.keras and model.sparse and build its engines."""
    from ..core.layers import in_float32, weight_layers, load_model
    from .shrink import expand_arrays, expand_model, shrink_arrays
    from .sparse_engine import SparseMLP
    from .sparse_format import load_sparse

    name = result["run"]
    model = in_float32(load_model(paths.model_file(logdir, name)))  # every engine computes in float32
    layers = weight_layers(model)
    relus = [l.relu for l in layers]
    masked = expand_model(model) if any(l.kept is not None for l in layers) else model
    full_kernels = [k if m is None else k * m for k, m in zip(*expand_arrays(model))]
    stored, _ = load_sparse(paths.sparse_model_file(logdir, name))
    sparse = SparseMLP([s.kernel for s in stored], [s.relu for s in stored], plan="auto")
    shrunk = shrink_arrays(full_kernels)[0]
    size = result.get("size") or {}
    dense_flops = 2 * sum(k.size for k in full_kernels)
    fns = {**dense_fns, "masked": keras_forward_fn(masked), "sparse": sparse.predict,
           "shrunk": numpy_forward_fn(shrunk, relus)}
    return RunEngines(name, result["config"]["strategy"], float(result["config"]["sparsity"]),
                      dense_flops / max(1, size.get("flops_per_example") or dense_flops), fns, sparse)


def finished_runs(logdir, notices: list | None = None) -> list[dict]:
    """The study's finished runs, the dense one first, then by (strategy, sparsity). A run whose result
    says ok but whose model.keras or model.sparse is gone is not finished: it is left out, and a
    notice naming it is appended to ``notices``."""
    from ..core import masks

    ok = []
    from ..models.user import looks_like_path

    for r in read_all_results(logdir):
        name = r["config"]["hyper"]["model"].get("name") or ""
        if looks_like_path(name):
            raise BenchmarkError(
                f"{paths.run_dir(logdir, r['run'])} is a run of a network of your own (--model {name}); "
                f"benchmark.py times the sparse inference engine, which runs the study's MLPs only. Benchmark an MLP "
                f"study's log directory instead (your network's sizes and FLOPs are in its results.csv; its "
                f"shrunk copy runs in plain Keras).")
        if (r["config"]["hyper"]["model"].get("filters") or []):
            raise BenchmarkError(
                f"{paths.run_dir(logdir, r['run'])} is a run of a network with convolutions (--model "
                f"{r['config']['hyper']['model']['name']}); benchmark.py times the sparse inference engine, which runs "
                f"MLPs only. Benchmark an MLP study's log directory instead (the CNN's sizes and FLOPs are in its "
                f"results.csv).")
        if r["config"]["hyper"]["prune"].get("protocol") == "lottery":
            raise BenchmarkError(
                f"{logdir} is a lottery study (--protocol lottery): its runs are levels and controls, not the "
                f"sparsities of a pruning study, and benchmark.py times the latter. Benchmark the log directory of a "
                f"study made with --protocol retrain, oneshot or scratch (the tickets' weights left per level are in "
                f"its results.csv and lottery figures).")
        strategy = r["config"]["strategy"]
        if r.get("status") != "ok" or (strategy != "none" and not masks.get(strategy).masks):  # students: not pruned
            continue
        # the sparse file checks itself when it is read (a damaged one stops the benchmark, naming it)
        damage = {f: why for f, why in damaged_files(logdir, r, deep=True).items()
                  if why == "gone" or f != paths.SPARSE_MODEL}
        if damage:
            if notices is not None:
                what = " and ".join(f"{f} gone" if why == "gone" else f"{f} damaged: {why}" for f, why in damage.items())
                notices.append(f"{paths.run_dir(logdir, r['run'])} is not finished ({what}): not "
                               f"benchmarked; rerun the study to redo it")
            continue
        ok.append(r)
    return sorted(ok, key=lambda r: (r["run"] != paths.DENSE, r["config"]["strategy"], float(r["config"]["sparsity"])))


def check_agreement(run: str, batch: int, diffs: dict[str, float], tolerance: dict[str, float] = TOLERANCE,
                    run_dir=None) -> None:
    """Raise BenchmarkError if an engine's max |logit difference| from the masked model (``diffs``)
    exceeds its tolerance, or is not a number."""
    for engine, diff in diffs.items():
        tol = tolerance[engine]
        if diff <= tol:
            continue
        where = run_dir if run_dir is not None else f"the run directory {run}/"
        cause = ("The run's model.sparse disagrees with its model.keras: most likely one of the two was "
                 "changed, replaced or damaged after the study wrote them." if engine == "sparse" else
                 "The network shrunk from the run's model.keras (pruning.deploy.shrink) disagrees with it: most likely "
                 "model.keras was changed or damaged after the study wrote it (e.g. NaN or inf weights).")
        raise BenchmarkError(
            f"run {run}, engine {engine}, batch {batch}: its logits differ from the masked model's "
            f"(model.keras run by Keras) by up to {diff:.4g}, above the tolerance of {tol:g} (an intact run "
            f"agrees to about 1e-5), so its timings would compare two different networks. {cause} Delete "
            f"{where} and rerun the study (only that run is trained again), or rerun the study with "
            f"--overwrite; then run benchmark.py again."
        )


def suspect_margin(batch: int) -> float:
    """How far above the FLOP ratio a sparse or shrunk speedup may go before it is suspect."""
    return SUSPECT_MARGIN_BATCH_1 if batch == 1 else SUSPECT_MARGIN


def mark_row(row: dict) -> dict:
    """Set ``row``'s ``noisy`` (an engine's spread above NOISY_SPREAD) and ``suspect`` (the engines
    of SUSPECT_ENGINES, space-separated, whose speedup exceeds suspect_margin x the FLOP ratio);
    returns the row."""
    row["noisy"] = any(row.get(f"{k}_spread", 0.0) > NOISY_SPREAD for k in ENGINES)
    limit = suspect_margin(row["batch"]) * row["flop_ratio"]
    row["suspect"] = " ".join(k for k in SUSPECT_ENGINES if row[f"{k}_speedup"] > limit)
    return row


def machine_load() -> dict:
    """The 1, 5 and 15-minute load averages (None where unknown), and the cores this process may use."""
    try:
        loadavg = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        loadavg = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {"loadavg": loadavg, "usable_cores": usable, "cpu_count": os.cpu_count()}


def load_warning(load: dict, when: str) -> str | None:
    """A warning line when the 1-minute load average exceeds the usable cores, else None."""
    if not load.get("loadavg") or load["loadavg"][0] <= load["usable_cores"]:
        return None
    return (f"warning: the 1-minute load average {when} is {load['loadavg'][0]:.2f}, more than the "
            f"{load['usable_cores']} usable cores: other processes compete for the CPU and these timings "
            f"are unreliable; rerun on an idle machine.")


def latency_rows(logdir, x: np.ndarray, batches=BATCHES, repeats: int = 15,
                 log: Callable[[str], None] = print) -> list[dict]:
    """One row per (run, batch): median latency, spread and speedup over dense of each engine, the
    sparse and shrunk engines' max |logit difference| from the masked model, and the row's ``noisy``
    and ``suspect`` marks (``mark_row``). Raises BenchmarkError, before timing, when an engine
    disagrees with the masked model (``check_agreement``)."""
    from ..core.layers import in_float32, weight_layers, load_model

    runs = finished_runs(logdir)
    dense_model = in_float32(load_model(paths.model_file(logdir, paths.DENSE)))
    layers = weight_layers(dense_model)
    dense_fns = {"dense": numpy_forward_fn([l.kernel.numpy() for l in layers], [l.relu for l in layers]),
                 "dense_tf": keras_forward_fn(dense_model)}
    rows = []
    for i, r in enumerate(runs, start=1):
        eng = run_engines(logdir, r, dense_fns)
        for batch in batches:
            xb = np.ascontiguousarray(x[:batch], dtype=np.float32)
            reference = eng.fns["masked"](xb)
            diffs = {k: float(np.abs(eng.fns[k](xb) - reference).max()) for k in TOLERANCE}
            check_agreement(eng.name, batch, diffs, run_dir=paths.run_dir(logdir, eng.name))
            t = timed_rounds({k: (lambda f=f: f(xb)) for k, f in eng.fns.items()}, repeats)
            row = {"run": eng.name, "strategy": eng.strategy, "sparsity": eng.sparsity, "batch": batch,
                   "flop_ratio": eng.flop_ratio, "sparse_plan": "".join(p[0] for p in eng.sparse.plan_for(batch))}
            for k in ENGINES:
                row[f"{k}_ms"] = 1e3 * t[k].median
                row[f"{k}_speedup"] = t["dense"].median / t[k].median
                row[f"{k}_spread"] = t[k].spread
            row.update({f"{k}_max_abs_diff": v for k, v in diffs.items()})
            rows.append(mark_row(row))
        log(f"[{i}/{len(runs)}] {eng.name}: " + "  ".join(
            f"b{row['batch']} sparse {row['sparse_speedup']:.2f}x shrunk {row['shrunk_speedup']:.2f}x"
            for row in rows[-len(batches):]))
    return rows


# --------------------------------------------------------------------------- report
def format_benchmark(rows: list[dict]) -> str:
    """Speedups over dense (x) per run and batch for the terminal, with the row's spread (the largest
    of its engines'), ``*`` after a noisy row's spread, ``!`` after a suspect ratio, and a legend."""
    head = (f"{'run':<12} {'batch':>5} {'dense ms':>9} {'spread':>6}  {'dense_tf':>8}  {'masked':>8}  "
            f"{'sparse':>8}  {'shrunk':>8} {'FLOPs':>7}  sparse plan")
    lines = [head, "-" * len(head)]
    for r in rows:
        suspect = str(r.get("suspect") or "").split()
        ratio = lambda k: f" {r[f'{k}_speedup']:>7.2f}x" + ("!" if k in suspect else " ")  # noqa: E731
        spread = max((r.get(f"{k}_spread", 0.0) for k in ENGINES), default=0.0)
        noisy = "*" if r.get("noisy") else " "
        lines.append(f"{r['run']:<12} {r['batch']:>5} {r['dense_ms']:>9.3f} {100 * spread:>5.0f}%{noisy}"
                     f"{ratio('dense_tf')}{ratio('masked')}{ratio('sparse')}{ratio('shrunk')}"
                     f"{r['flop_ratio']:>6.1f}x  {r['sparse_plan']}")
    lines += [
        f"spread: the widest interquartile range of the row's engines, as a fraction of its median; "
        f"* a noisy row (spread above {100 * NOISY_SPREAD:.0f}%): its ratios are unreliable.",
        f"!: a {'/'.join(SUSPECT_ENGINES)} speedup above {SUSPECT_MARGIN:g}x its FLOP ratio "
        f"({SUSPECT_MARGIN_BATCH_1:g}x at batch 1): more than the saved arithmetic allows, most likely "
        f"a disturbed timing.",
    ]
    return "\n".join(lines)


def benchmark_summary(rows: list[dict], repeats: int | None = None) -> dict:
    """Counts of rows, noisy rows and suspect ratios (for benchmark.json and ``summary_line``)."""
    return {"rows": len(rows), "noisy_rows": sum(1 for r in rows if r.get("noisy")),
            "suspect_ratios": sum(len(str(r.get("suspect") or "").split()) for r in rows), "repeats": repeats}


def summary_line(summary: dict) -> str:
    """One line: how many rows are noisy and ratios suspect, and what to do about it."""
    noisy, suspect = summary["noisy_rows"], summary["suspect_ratios"]
    if not noisy and not suspect:
        return (f"summary: no noisy row (every spread at most {100 * NOISY_SPREAD:.0f}%) and no suspect ratio "
                f"in {summary['rows']} rows.")
    more = f" (this run: {summary['repeats']})" if summary.get("repeats") else ""
    return (f"summary: {noisy} of {summary['rows']} rows noisy (*), {suspect} suspect ratios (!): the machine "
            f"was probably busy; rerun on an idle machine, or with more --repeats{more}, before trusting them.")
