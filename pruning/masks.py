"""Mask computation: pure NumPy functions ``(kernel, sparsity, current) -> 0/1 mask``.

A strategy is a *score* function plus the granularity it scores at:

* ``weight``: one score per kernel entry, ``|w|``;
* ``neuron``: one score per output unit (kernel column), the column's L2 norm.

``compute_mask`` masks exactly ``n_pruned(count, k)`` of the lowest-scored items.
Ties are broken by position (a stable sort), so the count is exact even when many
scores are equal. Items already masked by ``current`` are pruned first, so masks
only ever grow along an iterative-pruning chain. Neuron masks are a per-unit
vector broadcast into the kernel's shape: one apply path for both strategies.

Adding a strategy is adding one score function to ``SCORES``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def weight_scores(kernel: np.ndarray) -> np.ndarray:
    """Magnitude of each entry: shape == kernel.shape."""
    return np.abs(kernel)


def neuron_scores(kernel: np.ndarray) -> np.ndarray:
    """L2 norm of each output unit's incoming weights (kernel column): shape (units,)."""
    return np.linalg.norm(kernel.astype(np.float64), axis=0)


SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "weight": weight_scores,
    "neuron": neuron_scores,
}


def n_pruned(count: int, sparsity: float) -> int:
    """How many of ``count`` items sparsity ``k`` percent removes: round(k% x count), halves up."""
    if not 0 <= sparsity < 100:
        raise ValueError(f"sparsity {sparsity} is outside [0, 100)")
    return min(count, int(math.floor(sparsity * count / 100.0 + 0.5)))


def _unit_view(strategy: str, mask: np.ndarray) -> np.ndarray:
    """A kernel-shaped mask seen at the strategy's granularity (neuron: a unit is alive if any entry is)."""
    if strategy == "neuron":
        return (mask != 0).any(axis=0)
    return mask != 0


def lowest_mask(scores: np.ndarray, n: int, alive: np.ndarray | None = None) -> np.ndarray:
    """0/1 array shaped like ``scores`` with exactly ``n`` zeros at the lowest scores.

    Entries where ``alive`` is False are taken first; ties go to the lower flat index.
    """
    flat = scores.ravel().astype(np.float64)
    if alive is not None:
        flat = np.where(alive.ravel(), flat, -np.inf)
    order = np.argsort(flat, kind="stable")
    keep = np.ones(flat.size, dtype=np.float32)
    keep[order[:n]] = 0.0
    return keep.reshape(scores.shape)


def compute_mask(
    strategy: str, kernel: np.ndarray, sparsity: float, current: np.ndarray | None = None,
    removed: int = 0,
) -> np.ndarray:
    """The float32 0/1 mask, shaped like ``kernel``, that prunes ``sparsity`` percent.

    ``weight`` masks exactly round(k% x kernel.size) entries; ``neuron`` masks exactly
    round(k% x units) whole columns. ``current`` (a previous mask) is pruned first.
    ``removed`` items (entries or units) of the layer are already physically gone (a shrunk
    layer): k% is of the original count, and the removed ones count as pruned.
    """
    if strategy not in SCORES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(SCORES)}")
    kernel = np.asarray(kernel)
    scores = SCORES[strategy](kernel)
    alive = None if current is None else _unit_view(strategy, np.asarray(current))
    n = max(0, n_pruned(scores.size + removed, sparsity) - removed)
    keep = lowest_mask(scores, n, alive)
    return np.broadcast_to(keep, kernel.shape).astype(np.float32)


def threshold(strategy: str, kernel: np.ndarray, mask: np.ndarray) -> float:
    """The largest score that was pruned (0.0 when nothing is): TensorBoard's threshold/<layer>."""
    scores = SCORES[strategy](np.asarray(kernel))
    pruned = ~_unit_view(strategy, np.asarray(mask))
    return float(scores[pruned].max()) if pruned.any() else 0.0


def sparsity_of(array: np.ndarray) -> float:
    """Measured fraction of exactly-zero entries."""
    a = np.asarray(array)
    return float(np.count_nonzero(a == 0) / a.size) if a.size else 0.0
