"""Measuring what pruning buys: inference latency of each way to run a pruned network, this
machine's float32 matmul peak, and dense training throughput as a fraction of that peak.

Every timing is wall-clock: a warm-up, then the median of repeats. Engines that are compared
are timed in interleaved rounds, so that a slow spell of a shared machine hits them all
alike, in blocks separated by a short idle pause (see ``timed_rounds``); speedups are
ratios measured in the same run.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import paths
from .results import read_all_results

BATCHES = (1, 100, 1000)
ENGINES = ("dense", "dense_tf", "masked", "sparse", "shrunk")
ENGINE_HELP = {
    "dense": "the unpruned network, NumPy float32 matmuls (BLAS, all cores): the reference",
    "dense_tf": "the same unpruned network run by TensorFlow (compiled tf.function)",
    "masked": "the pruned network as trained: Keras/TensorFlow, kernel x mask at full size",
    "sparse": "the pruned network from model.sparse on pruning.inference.SparseMLP "
              "(per layer dense BLAS or a Numba sparse kernel, whichever is faster)",
    "shrunk": "the pruned network without its dead units (pruning.shrink), NumPy float32 matmuls",
}


def timed_rounds(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, rounds: int = 2,
                 pause: float = 0.2) -> dict[str, float]:
    """Median seconds per call of each function over ``repeats`` timed calls.

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
            time.sleep(pause)
            for _ in range(warmup):
                fn()
            for _ in range(per_block):
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


# --------------------------------------------------------------------------- machine peak
def matmul_peak(n: int = 2048, repeats: int = 7) -> dict:
    """Float32 matmul GFLOP/s of an n x n x n product in NumPy (BLAS) and in TensorFlow (oneDNN /
    Eigen), all cores. ``peak`` is the better of the two: the machine's practical peak."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = tf.constant(a), tf.constant(b)
    tf_mm = tf.function(lambda x, y: tf.matmul(x, y))
    t = timed_rounds({"numpy": lambda: a @ b, "tensorflow": lambda: tf_mm(ta, tb).numpy()}, repeats, warmup=2)
    flops = 2.0 * n**3
    out = {k: flops / v / 1e9 for k, v in t.items()}
    out["peak"] = max(out.values())
    out["n"] = n
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

    from .experiment import _compile
    from .model import all_dense_layers, build_mlp

    keras.utils.set_random_seed(hyper.train.seed)
    model = build_mlp(data.input_dim, hyper.model)
    steps = math.ceil(len(data.y_train) / hyper.train.batch_size) * (epochs_timed + 1)
    _compile(model, hyper.train.lr, hyper.train.weight_decay, steps)
    n_warm = hyper.train.batch_size * 20
    model.fit(data.x_train[:n_warm], data.y_train[:n_warm], batch_size=hyper.train.batch_size, epochs=1, verbose=0)
    t = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=hyper.train.batch_size, epochs=epochs_timed, verbose=0)
    seconds = (time.perf_counter() - t) / epochs_timed
    shapes = [tuple(int(d) for d in l.kernel.shape) for l in all_dense_layers(model)]
    flops = training_flops_per_example(shapes) * len(data.y_train)
    return {"epoch_s": seconds, "examples_per_s": len(data.y_train) / seconds, "gflops": flops / seconds / 1e9,
            "batch_size": hyper.train.batch_size}


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
    from .inference import SparseMLP
    from .model import all_dense_layers, load_model
    from .shrink import expand_arrays, expand_model, shrink_arrays
    from .sparse_io import load_sparse

    name = result["run"]
    model = load_model(paths.model_file(logdir, name))
    layers = all_dense_layers(model)
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


def finished_runs(logdir) -> list[dict]:
    """The study's finished runs, the dense one first, then by (strategy, sparsity)."""
    ok = [r for r in read_all_results(logdir) if r.get("status") == "ok"]
    return sorted(ok, key=lambda r: (r["run"] != paths.DENSE, r["config"]["strategy"], float(r["config"]["sparsity"])))


def latency_rows(logdir, x: np.ndarray, batches=BATCHES, repeats: int = 15,
                 log: Callable[[str], None] = print) -> list[dict]:
    """One row per (run, batch): median latency of each engine and its speedup over dense."""
    from .model import all_dense_layers, load_model

    runs = finished_runs(logdir)
    dense_model = load_model(paths.model_file(logdir, paths.DENSE))
    layers = all_dense_layers(dense_model)
    dense_fns = {"dense": numpy_forward_fn([l.kernel.numpy() for l in layers], [l.relu for l in layers]),
                 "dense_tf": keras_forward_fn(dense_model)}
    rows = []
    for i, r in enumerate(runs, start=1):
        eng = run_engines(logdir, r, dense_fns)
        for batch in batches:
            xb = np.ascontiguousarray(x[:batch], dtype=np.float32)
            reference = eng.fns["masked"](xb)
            diffs = {k: float(np.abs(eng.fns[k](xb) - reference).max()) for k in ("sparse", "shrunk")}
            t = timed_rounds({k: (lambda f=f: f(xb)) for k, f in eng.fns.items()}, repeats)
            row = {"run": eng.name, "strategy": eng.strategy, "sparsity": eng.sparsity, "batch": batch,
                   "flop_ratio": eng.flop_ratio, "sparse_plan": "".join(p[0] for p in eng.sparse.plan_for(batch))}
            for k in ENGINES:
                row[f"{k}_ms"] = 1e3 * t[k]
                row[f"{k}_speedup"] = t["dense"] / t[k]
            row.update({f"{k}_max_abs_diff": v for k, v in diffs.items()})
            rows.append(row)
        log(f"[{i}/{len(runs)}] {eng.name}: " + "  ".join(
            f"b{row['batch']} sparse {row['sparse_speedup']:.2f}x shrunk {row['shrunk_speedup']:.2f}x"
            for row in rows[-len(batches):]))
    return rows
