"""Sparse inference candidates for one pruned 1000x1000 ReLU layer, as ratios to dense NumPy.

    python benchmarks/sparse_candidates.py --batch 100 --repeats 30
    python benchmarks/sparse_candidates.py --batch 1000 --network   # also the whole 784-...-10 net

Layer candidates (k = 90, 95, 99 % of the weights zero, at random places):

* dense:   NumPy/BLAS ``np.maximum(x @ W, 0)``, x (batch, 1000) -- the baseline;
* scipy:   SciPy ``CSR(W^T) @ X^T``, then ReLU;
* mkl:     ``sparse_dot_mkl.dot_product_mkl(CSR(W^T), X^T)``, then ReLU (skipped when not importable;
           it needs ``pip install sparse_dot_mkl mkl``; MKL_RT defaults to the venv's libmkl_rt.so.3);
* numba:   the simple Numba kernel (W^T CSR rows, batch inner, prange over output units, ReLU fused);
* final:   the kernel SparseMLP uses (``pruning.inference._spmm_t``), output buffer reused.

The sparse candidates take X^T contiguous (features, batch), as in a network kept transposed.
With ``--network``: the whole network (hidden layers k% sparse, 200x10 output dense), dense NumPy
forward vs ``SparseMLP(plan="auto").predict`` (transposes included), at the same k.

Timing: each candidate runs in its own block: warm-up calls for at least ``--warmup-s`` seconds
(BLAS, MKL and Numba worker threads keep spinning for 0.1-0.2 s after their last call and slow
whichever library runs next on a small machine), then ``--repeats`` timed calls; the median is
reported (min in brackets) with the ratio dense median / candidate median.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = [784, 1000, 1000, 500, 200, 10]


def simple_numba_kernel():
    import numba as nb

    @nb.njit(parallel=True, cache=True)
    def spmm_t(indptr, indices, data, xt, relu):
        n_out = indptr.shape[0] - 1
        b = xt.shape[1]
        y = np.zeros((n_out, b), dtype=np.float32)
        for j in nb.prange(n_out):
            acc = y[j]
            for p in range(indptr[j], indptr[j + 1]):
                w = data[p]
                xi = xt[indices[p]]
                for t in range(b):
                    acc[t] += w * xi[t]
            if relu:
                for t in range(b):
                    if acc[t] < 0:
                        acc[t] = 0.0
        return y

    return spmm_t


def load_mkl():
    """sparse_dot_mkl's dot_product_mkl, or the reason it is not available."""
    lib = Path(sys.prefix) / "lib" / "libmkl_rt.so.3"
    if lib.exists():
        os.environ.setdefault("MKL_RT", str(lib))
    try:
        from sparse_dot_mkl import dot_product_mkl
    except Exception as e:  # ImportError, or MKL failing to load
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return dot_product_mkl, None


def timed(f, repeats: int, warmup_s: float) -> tuple[float, float]:
    """(median, min) seconds of f() over repeats calls, after warm-up calls for warmup_s seconds (at least 3)."""
    t_end = time.perf_counter() + warmup_s
    n = 0
    while n < 3 or time.perf_counter() < t_end:
        f()
        n += 1
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(np.min(ts))


def pruned(rng, shape, k) -> np.ndarray:
    w = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
    flat = w.reshape(-1)
    flat[rng.permutation(flat.size)[: int(round(k / 100 * flat.size))]] = 0.0
    return w


def layer_candidates(k: float, batch: int, mkl, rng) -> dict:
    import scipy.sparse as sp

    from pruning.inference import SparseMLP, _spmm_t

    w = pruned(rng, (1000, 1000), k)
    x = rng.standard_normal((batch, 1000)).astype(np.float32)
    xt = np.ascontiguousarray(x.T)
    csr = sp.csr_matrix(np.ascontiguousarray(w.T))
    csr.sort_indices()
    indptr, indices, data = csr.indptr, csr.indices, csr.data
    simple = simple_numba_kernel()
    layer = SparseMLP([w], [True], "sparse").layers[0]
    out = np.empty((1000, batch), np.float32)

    def final():
        return _spmm_t(layer.indptr, layer.indices, layer.data, layer.bounds, xt, True, out)

    cands = {
        "dense": lambda: np.maximum(x @ w, 0.0),
        "scipy": lambda: np.maximum(csr @ xt, 0.0),
        "mkl": (lambda: np.maximum(mkl(csr, xt), 0.0)) if mkl else None,
        "numba": lambda: simple(indptr, indices, data, xt, True),
        "final": final,
    }
    ref = np.maximum(x.astype(np.float64) @ w, 0.0).T
    for name, f in cands.items():
        if f is not None:
            got = np.asarray(f(), np.float64)
            got = got.T if name == "dense" else got
            err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
            assert err < 1e-5, f"{name}: relative error {err:.2e}"
    return cands


def network_candidates(k: float, batch: int, rng) -> dict:
    from pruning.inference import SparseMLP

    kernels = [pruned(rng, (a, b), k if i < 4 else 0) for i, (a, b) in enumerate(zip(SIZES, SIZES[1:]))]
    relus = [True, True, True, True, False]
    x = rng.standard_normal((batch, SIZES[0])).astype(np.float32)
    m = SparseMLP(kernels, relus, "auto")

    def dense():
        h = x
        for w, r in zip(kernels, relus):
            h = h @ w
            if r:
                np.maximum(h, 0.0, out=h)
        return h

    assert np.linalg.norm(m.predict(x) - dense()) <= 1e-5 * np.linalg.norm(dense())
    plan = "".join(p[0] for p in m.plan_for(batch))
    return {"dense": dense, f"SparseMLP auto [{plan}]": lambda: m.predict(x)}


def report(title: str, cands: dict, repeats: int, warmup_s: float, skipped: dict) -> None:
    print(title)
    t = {}
    for name, f in cands.items():
        if f is None:
            print(f"  {name:24s} skipped: {skipped.get(name, 'not available')}")
            continue
        t[name] = timed(f, repeats, warmup_s)
        med, lo = t[name]
        print(f"  {name:24s} {med * 1e3:9.3f} ms  (min {lo * 1e3:8.3f})  ratio {t['dense'][0] / med:6.2f}x",
              flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--sparsity", type=float, nargs="+", default=[90, 95, 99], help="k in %%")
    ap.add_argument("--warmup-s", type=float, default=0.3, help="warm-up seconds per candidate")
    ap.add_argument("--network", action="store_true", help="also time the whole 784-1000-1000-500-200-10 net")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    import numba as nb

    mkl, why = load_mkl()
    print(f"batch {a.batch}, {a.repeats} repeats, numba threads {nb.get_num_threads()}, cpus {os.cpu_count()}")
    rng = np.random.default_rng(a.seed)
    for k in a.sparsity:
        report(f"1000x1000 layer, k={k:g}%:", layer_candidates(k, a.batch, mkl, rng), a.repeats, a.warmup_s,
               {"mkl": why})
    if a.network:
        for k in a.sparsity:
            report(f"network {'-'.join(map(str, SIZES))}, hidden k={k:g}%:", network_candidates(k, a.batch, rng),
                   a.repeats, a.warmup_s, {})


if __name__ == "__main__":
    main()
