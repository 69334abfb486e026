"""Fast CPU inference for a weight-pruned, bias-free MLP (NumPy + Numba; no TensorFlow).

``SparseMLP(kernels, relus, plan)`` runs ``h = relu?(h @ W)`` layer by layer, each layer either

* ``"dense"``: NumPy/BLAS ``Wt @ ht`` into a preallocated buffer (in-place ReLU), or
* ``"sparse"``: a Numba kernel over W^T stored as CSR (one row per output unit), ReLU fused.

Layout. Activations are kept transposed, ``(features, batch)`` and C-contiguous, through the whole
network: the batch is the contiguous axis the sparse kernel vectorises over, and a dense layer is
``Wt @ ht`` with a contiguous ``Wt``. There is one transpose in (skipped when the first layer is
dense: BLAS reads ``x.T`` directly; a parallel 8x8-tiled Numba copy otherwise, 3x faster than
NumPy's strided copy at batch 1000) and one small one out (the logits). Buffers are allocated once
per batch size and reused.

Sparse kernel (``_spmm_t``). For output unit j: ``y[j, :] = sum_p data[p] * xt[indices[p], :]``
over the nonzeros of row j, parallel over rows (``prange``; rows split into ranges of equal work,
nnz + 1 per row), column indices uint32 (no negative-index checks). Changes kept, each measured on
one pruned 1000x1000 (and 1000x500) layer on 2 cores against the version before it:

* four nonzeros per pass over the batch, so the accumulator row is loaded and stored once per four
  FMAs: 1.1-1.7x faster than one nonzero per pass at batch 100 and 1000;
* the output written into a reused buffer instead of a fresh ``np.zeros``: 1.15-1.6x at batch 1000
  (the 4 MB allocation page-faults);
* the first pass assigns the n % 4 leftover products (or zeros) and the last group of four
  applies the ReLU, two passes fewer per row: 1.4-1.5x at k=99 batch 100, 1.5-1.9x at k=99 batch
  1000, 1.05-1.15x at k=90-95 batch 1000, equal at batch 8-32 (testing "last group?" inside the
  group loop instead was 1.3-1.8x slower at batch 8-32, so the last group is peeled);
* FMA contraction (``fastmath={"contract"}``, no reassociation): 2-6% in 4 of 6 cases, about noise;
* a separate batch-1 kernel (``_spmv``: gather-dot with four partial sums): 3x faster than the
  batched kernel at batch 1.

Tried and dropped: blocking the batch into 64-512 wide column tiles so that a tile of ``xt`` stays
in L2 (1.2-2x slower), eight nonzeros per pass (no consistent gain).

"auto" plan: a rule, no timing. Layer l runs sparse when its density nnz / (in * out) is at most
``density_limit(batch)`` (``DENSITY_LIMITS``): 0.08 at batch 1, 0.10 for batch 2-7, 0.15 for 8-63,
0.20 for 64-127 and 0.25 from 128 on. These are (rounded down) the crossovers measured for the
whole 784-1000-1000-500-200-10 network, all hidden layers at the same k, sparse plan vs dense plan,
each timed in its own process on the 2-core AMD EPYC machine this toolkit reports on:
sparse/dense time at density 0.20 / 0.15 / 0.10 / 0.05 was 1.84 / 1.51 / 1.20 / 0.59 at batch 1;
1.50 / 1.24 / 0.83 / 0.48 at batch 2; 2.06 / 0.96 / 0.96 / 0.69 at batch 8; 0.89 / 0.77 / 0.73 /
0.65 at batch 16; 0.89 / 0.72 / 0.48 / 0.29 at batch 64; and at density 0.30 / 0.25 / 0.20 it was
1.06 / 1.00 / 0.74 at batch 128 and 0.97 / 0.80 / 0.61 at batch 1000 (batch 2 and up measured
before the last kernel change, which only moves the crossovers further toward sparse).
When any layer runs sparse, tiny layers (in * out <= ``TINY_LAYER``, e.g. the 200x10 output
layer) run sparse too: they cost the same either way, and a plan that does not mix BLAS and Numba
avoids the thread interference described next. Timing candidates in-process (calibration) was
tried and dropped: on a 2-core machine it was dominated by that interference and by other load,
and picked plans 2.8-12x slower than the best in several cases.

Thread interference. A Numba parallel region that starts while BLAS's worker threads still spin
after a multi-threaded BLAS call (OpenBLAS spins for about 0.1 s) shares a core with them and
stalls: on 2 cores the k=95 network at batch 100 with its first layer in multi-threaded BLAS took
6.9 ms, 2.5 ms when BLAS's workers did not spin (all layers sparse: 1.1 ms), and a sparse forward
started 10-30 ms after a dense NumPy forward took 40-50 ms instead of 1-8 ms. So a plan that mixes
dense and sparse layers runs BLAS single-threaded for the duration of ``predict`` (through
threadpoolctl when it is installed; restored afterwards; without it such plans are just slower). The same
effect hits any caller that interleaves NumPy matmuls and ``predict`` (for example a benchmark
timing engines in interleaved rounds): time each engine in its own block of calls.

``nnz`` (per layer, as stored) and ``flops_per_example(batch)`` (2 x nnz for sparse layers, 2 x in x
out for dense ones, under the plan used at that batch) describe the work.

Numba functions are compiled with ``cache=True`` (to ``__pycache__`` next to this file, or
Numba's user cache dir when that is not writable); the constructor compiles or loads them
(``warmup()``), a few seconds the very first time, about 0.1 s afterwards.

Not thread-safe: an instance reuses its buffers; use one instance per thread.
"""
from __future__ import annotations

from collections import OrderedDict

import numba as nb
import numpy as np

PLANS = ("dense", "sparse")
# "auto": a layer runs sparse when its density (nnz / (in * out)) is at most the limit for the
# batch size: (smallest batch, limit) pairs, see the module docstring for the measurements.
DENSITY_LIMITS = ((1, 0.08), (2, 0.10), (8, 0.15), (64, 0.20), (128, 0.25))
TINY_LAYER = 1 << 16  # in * out up to which a layer follows the others (sparse if any layer is)
_MAX_BUFFER_SETS = 8


def density_limit(batch: int) -> float:
    """The largest density at which "auto" runs a layer sparse at this batch size."""
    limit = DENSITY_LIMITS[0][1]
    for b, d in DENSITY_LIMITS:
        if batch >= b:
            limit = d
    return limit


# --------------------------------------------------------------------------- kernels
@nb.njit(parallel=True, cache=True, fastmath={"contract"})
def _spmm_t(indptr, indices, data, bounds, xt, relu, y):
    """y[j, :] = sum_p data[p] * xt[indices[p], :] for row j of CSR(W^T); fused ReLU if relu.

    xt (n_in, b) and y (n_out, b) are C-contiguous; rows bounds[t]:bounds[t+1] form task t. Per row:
    one pass that assigns the first n % 4 products (or zeros), then passes over four nonzeros
    each, the ReLU applied in the last one.
    """
    b = xt.shape[1]
    zero = np.float32(0.0)
    for task in nb.prange(bounds.shape[0] - 1):
        for j in range(bounds[task], bounds[task + 1]):
            p = indptr[j]
            end = indptr[j + 1]
            acc = y[j]
            r = (end - p) % 4
            if r == 0:
                for t in range(b):
                    acc[t] = zero
            elif r == 1:
                w0 = data[p]
                x0 = xt[indices[p]]
                for t in range(b):
                    acc[t] = w0 * x0[t]
            elif r == 2:
                w0 = data[p]
                w1 = data[p + 1]
                x0 = xt[indices[p]]
                x1 = xt[indices[p + 1]]
                for t in range(b):
                    acc[t] = w0 * x0[t] + w1 * x1[t]
            else:
                w0 = data[p]
                w1 = data[p + 1]
                w2 = data[p + 2]
                x0 = xt[indices[p]]
                x1 = xt[indices[p + 1]]
                x2 = xt[indices[p + 2]]
                for t in range(b):
                    acc[t] = (w0 * x0[t] + w1 * x1[t]) + w2 * x2[t]
            p += r
            while p + 8 <= end:  # all groups of four but the last
                w0 = data[p]
                w1 = data[p + 1]
                w2 = data[p + 2]
                w3 = data[p + 3]
                x0 = xt[indices[p]]
                x1 = xt[indices[p + 1]]
                x2 = xt[indices[p + 2]]
                x3 = xt[indices[p + 3]]
                for t in range(b):
                    acc[t] += (w0 * x0[t] + w1 * x1[t]) + (w2 * x2[t] + w3 * x3[t])
                p += 4
            if p < end:  # the last group of four, with the ReLU
                w0 = data[p]
                w1 = data[p + 1]
                w2 = data[p + 2]
                w3 = data[p + 3]
                x0 = xt[indices[p]]
                x1 = xt[indices[p + 1]]
                x2 = xt[indices[p + 2]]
                x3 = xt[indices[p + 3]]
                if relu:
                    for t in range(b):
                        acc[t] = max(acc[t] + ((w0 * x0[t] + w1 * x1[t]) + (w2 * x2[t] + w3 * x3[t])), zero)
                else:
                    for t in range(b):
                        acc[t] += (w0 * x0[t] + w1 * x1[t]) + (w2 * x2[t] + w3 * x3[t])
            elif relu:  # no group of four: the ReLU in a pass of its own
                for t in range(b):
                    acc[t] = max(acc[t], zero)
    return y


@nb.njit(parallel=True, cache=True, fastmath={"contract"})
def _spmv(indptr, indices, data, bounds, x, relu, y):
    """Batch 1: y[j] = sum_p data[p] * x[indices[p]] (1-D x, y), four partial sums per row."""
    for task in nb.prange(bounds.shape[0] - 1):
        for j in range(bounds[task], bounds[task + 1]):
            p = indptr[j]
            end = indptr[j + 1]
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            s3 = np.float32(0.0)
            while p + 4 <= end:
                s0 += data[p] * x[indices[p]]
                s1 += data[p + 1] * x[indices[p + 1]]
                s2 += data[p + 2] * x[indices[p + 2]]
                s3 += data[p + 3] * x[indices[p + 3]]
                p += 4
            while p < end:
                s0 += data[p] * x[indices[p]]
                p += 1
            s = (s0 + s1) + (s2 + s3)
            if relu and s < 0.0:
                s = np.float32(0.0)
            y[j] = s
    return y


@nb.njit(parallel=True, cache=True)
def _transpose_into(x, out):
    """out[:, :] = x.T for C-contiguous x (n, m) and out (m, n), in 8x8 tiles, parallel over row blocks."""
    n, m = x.shape
    nbi = n // 8
    nbj = m // 8
    for bi in nb.prange(nbi):
        i0 = bi * 8
        for bj in range(nbj):
            j0 = bj * 8
            for jj in range(8):
                o = out[j0 + jj]
                for ii in range(8):
                    o[i0 + ii] = x[i0 + ii, j0 + jj]
        for j in range(nbj * 8, m):
            for ii in range(8):
                out[j, i0 + ii] = x[i0 + ii, j]
    for i in range(nbi * 8, n):
        for j in range(m):
            out[j, i] = x[i, j]
    return out


_compiled = False


def warmup() -> None:
    """Compile (or load from Numba's cache) the kernels; later calls return at once."""
    global _compiled
    if _compiled:
        return
    indptr = np.array([0, 1, 1], dtype=np.int64)
    indices = np.zeros(1, dtype=np.uint32)
    data = np.ones(1, dtype=np.float32)
    bounds = np.array([0, 2], dtype=np.int64)
    _spmm_t(indptr, indices, data, bounds, np.ones((1, 2), np.float32), True, np.empty((2, 2), np.float32))
    _spmv(indptr, indices, data, bounds, np.ones(1, np.float32), True, np.empty(2, np.float32))
    _transpose_into(np.ones((9, 9), np.float32), np.empty((9, 9), np.float32))
    _compiled = True


# --------------------------------------------------------------------------- layers
class _Layer:
    """One kernel, stored as dense Wt (out, in) and/or CSR(W^T), whichever the plan can use."""

    def __init__(self, kernel: np.ndarray, relu: bool, need_dense: bool, need_sparse: bool, n_tasks: int):
        k = np.asarray(kernel)
        if k.ndim != 2:
            raise ValueError(f"a kernel must be 2-D (in, out); got shape {k.shape}")
        wt = np.ascontiguousarray(k.T, dtype=np.float32)
        self.n_out, self.n_in = wt.shape
        self.relu = bool(relu)
        nz = wt != 0
        self.nnz = int(np.count_nonzero(nz))
        self.density = self.nnz / max(1, wt.size)
        self.wt = wt if need_dense else None
        self.indptr = self.indices = self.data = self.bounds = None
        if need_sparse:
            self.indptr = np.zeros(self.n_out + 1, dtype=np.int64)
            np.cumsum(np.count_nonzero(nz, axis=1), out=self.indptr[1:])
            rows, cols = np.nonzero(nz)  # row-major order: CSR order, columns sorted
            self.indices = cols.astype(np.uint32)  # unsigned: no negative-index wraparound checks
            self.data = np.ascontiguousarray(wt[rows, cols])
            # n_tasks row ranges of about equal work, a row costing its nnz + 1
            cost = self.indptr + np.arange(self.n_out + 1)
            cuts = np.searchsorted(cost, np.linspace(0, cost[-1], n_tasks + 1)[1:-1])
            self.bounds = np.concatenate([[0], cuts, [self.n_out]]).astype(np.int64)


# --------------------------------------------------------------------------- the engine
class SparseMLP:
    """Inference engine for a pruned bias-free MLP; each layer runs dense (NumPy BLAS) or sparse (Numba CSR kernel).

    kernels: float32 (in, out) arrays, zeros = pruned weights; relus: one flag per layer.
    plan: "auto" (a density rule per batch size, see the module docstring), "dense", "sparse", or
    a list with one "dense"/"sparse" per layer. predict(x) maps (batch, in) to (batch, out) float32.

    Use (an MLP's ``model.sparse``, written by ``pruning.export_sparse``)::

        layers, meta = pruning.load_sparse("model.sparse")
        logits = pruning.SparseMLP([l.kernel for l in layers], [l.relu for l in layers]).predict(x)
    """

    def __init__(self, kernels, relus, plan="auto"):
        kernels = list(kernels)
        relus = [bool(r) for r in relus]
        if not kernels or len(kernels) != len(relus):
            raise ValueError(f"need at least one kernel and one relu flag per kernel; got {len(kernels)} "
                             f"kernels and {len(relus)} flags")
        self._fixed = _parse_plan(plan, len(kernels))
        n_tasks = max(1, nb.config.NUMBA_NUM_THREADS)
        self.layers = [
            _Layer(k, r, self._fixed is None or self._fixed[i] == "dense",
                   self._fixed is None or self._fixed[i] == "sparse", n_tasks)
            for i, (k, r) in enumerate(zip(kernels, relus))
        ]
        for i, (a, b) in enumerate(zip(self.layers, self.layers[1:])):
            if a.n_out != b.n_in:
                raise ValueError(f"kernel {i} has {a.n_out} outputs but kernel {i + 1} has {b.n_in} inputs")
        self.n_in = self.layers[0].n_in
        self.n_out = self.layers[-1].n_out
        self._buffers: OrderedDict[int, list[np.ndarray]] = OrderedDict()
        self.warmup()

    # ------------------------------------------------------------------ public
    @property
    def nnz(self) -> list[int]:
        """Nonzero weights per layer."""
        return [l.nnz for l in self.layers]

    def flops_per_example(self, batch: int = 1) -> int:
        """Multiply-adds x 2 per example under plan_for(batch): 2*nnz (sparse) or 2*in*out (dense) per layer."""
        return sum(2 * (l.nnz if p == "sparse" else l.n_in * l.n_out)
                   for l, p in zip(self.layers, self.plan_for(batch)))

    @staticmethod
    def warmup() -> None:
        """Compile or load the Numba kernels (done by the constructor; cheap when already done)."""
        warmup()

    def plan_for(self, batch: int) -> list[str]:
        """The per-layer choice ("dense"/"sparse") used at this batch size."""
        if self._fixed is not None:
            return list(self._fixed)
        limit = density_limit(batch)
        plan = ["sparse" if l.density <= limit else "dense" for l in self.layers]
        if "sparse" in plan:  # tiny layers follow, so that a plan rarely mixes BLAS and Numba
            plan = ["sparse" if l.n_in * l.n_out <= TINY_LAYER else p for l, p in zip(self.layers, plan)]
        return plan

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (batch, out) float32 for inputs x (batch, in); any strides, cast to float32."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"expected input of shape (batch, {self.n_in}); got {x.shape}")
        b = x.shape[0]
        if b == 0:
            return np.zeros((0, self.n_out), dtype=np.float32)
        return self._run(x, self.plan_for(b))

    # ------------------------------------------------------------------ internals
    def _bufs(self, b: int) -> list[np.ndarray]:
        """[input (in, b), out of layer 0, ..., out of layer L-1], reused across calls (LRU of a few sizes)."""
        bufs = self._buffers.get(b)
        if bufs is None:
            bufs = [np.empty((self.n_in, b), np.float32)] + [np.empty((l.n_out, b), np.float32) for l in self.layers]
            self._buffers[b] = bufs
            if len(self._buffers) > _MAX_BUFFER_SETS:
                self._buffers.popitem(last=False)
        else:
            self._buffers.move_to_end(b)
        return bufs

    def _run(self, x: np.ndarray, plan) -> np.ndarray:
        if "dense" in plan and "sparse" in plan:
            with _one_blas_thread():
                return self._forward(x, plan)
        return self._forward(x, plan)

    def _forward(self, x: np.ndarray, plan) -> np.ndarray:
        b = x.shape[0]
        bufs = self._bufs(b)
        cur = x.T
        if plan[0] == "sparse" and not cur.flags.c_contiguous:
            if x.flags.c_contiguous:
                _transpose_into(x, bufs[0])
            else:
                np.copyto(bufs[0], cur)
            cur = bufs[0]
        for i, (l, p) in enumerate(zip(self.layers, plan)):
            out = bufs[i + 1]
            if p == "sparse" and b == 1:
                _spmv(l.indptr, l.indices, l.data, l.bounds, cur.reshape(-1), l.relu, out.reshape(-1))
            elif p == "sparse":
                _spmm_t(l.indptr, l.indices, l.data, l.bounds, cur, l.relu, out)
            else:
                np.matmul(l.wt, cur, out=out)
                if l.relu:
                    np.maximum(out, 0.0, out=out)
            cur = out
        return cur.T.copy()  # always a copy: cur is a buffer the next call overwrites


_blas_libs = None


def _blas_controllers() -> list:
    """threadpoolctl controllers of the loaded BLAS libraries ([] without threadpoolctl)."""
    global _blas_libs
    if _blas_libs is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas_libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # optional dependency; without it mixed plans just run slower
            _blas_libs = []
    return _blas_libs


class _one_blas_thread:
    """Run BLAS single-threaded inside the block (restored after): in a plan mixing BLAS and
    Numba layers, BLAS's worker threads would otherwise still spin when the next Numba layer
    starts and take its cores."""

    def __enter__(self):
        self.saved = [(c, c.get_num_threads()) for c in _blas_controllers()]
        for c, n in self.saved:
            if n != 1:
                c.set_num_threads(1)

    def __exit__(self, *exc):
        for c, n in self.saved:
            if n != 1:
                c.set_num_threads(n)
        return False


def _parse_plan(plan, n: int):
    """None for "auto", else a tuple of n "dense"/"sparse"; ValueError for anything else."""
    if isinstance(plan, str):
        if plan == "auto":
            return None
        if plan in PLANS:
            return (plan,) * n
        raise ValueError(f"plan must be 'auto', 'dense', 'sparse' or a per-layer list of 'dense'/'sparse'; "
                         f"got {plan!r}")
    try:
        plan = tuple(plan)
    except TypeError:
        raise ValueError(f"plan must be a string or a per-layer list; got {plan!r}") from None
    if len(plan) != n or any(not isinstance(p, str) or p not in PLANS for p in plan):
        raise ValueError(f"a per-layer plan needs {n} entries, each 'dense' or 'sparse'; got {list(plan)!r}")
    return plan
