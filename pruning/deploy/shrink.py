"""Networks that are really smaller: which units are still alive, physically removing the
dead ones, and the counts results.csv reports.

A hidden unit of a bias-free ReLU MLP is *alive* when some path of nonzero weights runs
from an input through it to an output. A unit that no path reaches outputs exactly 0 for
every input (no bias), and a unit from which no path leaves cannot change the output; in
both cases its incoming column and its outgoing row can go. Neuron pruning kills units by
zeroing columns, so its networks shrink to plain, smaller dense MLPs.

The counting functions are pure NumPy over a list of kernels (shape ``(in, out)``, zeros
where pruned); the Keras functions rebuild models of ``MaskedDense`` layers.
"""
from __future__ import annotations

import numpy as np


# --------------------------------------------------------------------------- pure counting
def reachable(kernels: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each hidden layer, (``forward``, ``backward``) boolean unit vectors: reachable from
    some input through nonzero weights, and reaching some output through nonzero weights."""
    nz = [np.asarray(k) != 0 for k in kernels]
    forward, seen = [], np.ones(nz[0].shape[0], dtype=bool)
    for w in nz[:-1]:
        seen = (w & seen[:, None]).any(axis=0)
        forward.append(seen)
    backward, seen = [], np.ones(nz[-1].shape[1], dtype=bool)
    for w in reversed(nz[1:]):
        seen = (w & seen[None, :]).any(axis=1)
        backward.append(seen)
    return forward, backward[::-1]


def alive_units(kernels: list[np.ndarray]) -> list[np.ndarray]:
    """Boolean vector per hidden layer: the unit lies on an input-to-output path of nonzero weights."""
    forward, backward = reachable(kernels)
    return [f & b for f, b in zip(forward, backward)]


def effective_entries(kernels: list[np.ndarray]) -> list[np.ndarray]:
    """Boolean array per kernel: the weight is nonzero and lies on an input-to-output path."""
    forward, backward = reachable(kernels)
    rows = [np.ones(np.shape(kernels[0])[0], dtype=bool)] + forward
    cols = backward + [np.ones(np.shape(kernels[-1])[1], dtype=bool)]
    return [(np.asarray(k) != 0) & r[:, None] & c[None, :] for k, r, c in zip(kernels, rows, cols)]


def network_counts(kernels: list[np.ndarray], full_shapes: list[tuple[int, int]]) -> dict:
    """What results.csv reports about a (possibly shrunk) network's size.

    * ``params_nonzero``: nonzero weights in the kernels as stored;
    * ``effective_sparsity``: fraction of the *unpruned* network's weights (``full_shapes``)
      that are zero, removed, or can no longer influence the output;
    * ``flops_per_example``: 2 x the effective weights: the multiply-adds an implementation that
      skips what cannot matter (a shrunk or sparse network) performs per example.
    """
    full = sum(int(a) * int(b) for a, b in full_shapes)
    effective = sum(int(e.sum()) for e in effective_entries(kernels))
    return {
        "params_nonzero": sum(int(np.count_nonzero(k)) for k in kernels),
        "effective_sparsity": 1.0 - effective / full,
        "flops_per_example": 2 * effective,
    }


def shrink_arrays(kernels: list[np.ndarray], masks: list[np.ndarray | None] | None = None):
    """Drop every dead hidden unit: its column in its layer and its row in the next.

    Returns ``(kernels, masks, keep)`` where ``keep[l]`` are the indices (into the given
    network) of hidden layer ``l``'s surviving units. Liveness is judged on ``kernel x mask``.
    A layer is never left with zero units: if all are dead, its first unit stays (and
    outputs 0), so the result is still a valid network.
    """
    masks = masks if masks is not None else [None] * len(kernels)
    effective = [k if m is None else k * m for k, m in zip(kernels, masks)]
    keep = [np.flatnonzero(a) if a.any() else np.array([0]) for a in alive_units(effective)]
    rows = [slice(None)] + keep
    cols = keep + [slice(None)]
    cut = lambda a, r, c: None if a is None else np.ascontiguousarray(np.asarray(a)[r][:, c])  # noqa: E731
    return ([cut(k, r, c) for k, r, c in zip(kernels, rows, cols)],
            [cut(m, r, c) for m, r, c in zip(masks, rows, cols)], keep)


# --------------------------------------------------------------------------- Keras models
def _layer_arrays(model):
    from ..core.layers import all_dense_layers

    layers = all_dense_layers(model)
    return layers, [l.kernel.numpy() for l in layers], [None if l.mask is None else l.mask.numpy() for l in layers]


def shrink_model(model):
    """A smaller model of ``MaskedDense`` layers that computes the same function as ``model``,
    without its dead units. Returns ``(smaller, keep)``, ``keep`` as in ``shrink_arrays``.

    Each layer keeps its ``full_shape`` and the original indices of its units (``kept``), so
    the result can be expanded back and its sparsity measured against the unpruned network.
    """
    from ..core.layers import mlp_from_specs

    layers, kernels, masks = _layer_arrays(model)
    kernels, masks, keep = shrink_arrays(kernels, masks)
    specs = []
    for i, (layer, k) in enumerate(zip(layers, kernels)):
        kept = layer.kept_units[keep[i]] if i < len(keep) else layer.kept_units
        specs.append(dict(name=layer.name, units=k.shape[1], relu=layer.relu, prunable=layer.prunable,
                          full_shape=layer.full_shape, kept=[int(j) for j in kept]))
    smaller = mlp_from_specs(int(kernels[0].shape[0]), specs)
    for layer, k, m in zip(_layer_arrays(smaller)[0], kernels, masks):
        layer.kernel.assign(k)
        if m is not None:
            layer.mask.assign(m)
    return smaller, keep


def expand_arrays(model) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """The kernels and masks of ``model`` put back at their places in the unpruned network's
    shapes: removed units' columns (and their rows in the next layer) are 0, and so is the
    mask of a removed column. Rows of removed inputs keep mask 1: they were never masked."""
    layers, kernels, masks = _layer_arrays(model)
    out_k, out_m, rows = [], [], np.arange(kernels[0].shape[0])
    for layer, k, m in zip(layers, kernels, masks):
        cols = layer.kept_units
        fk = np.zeros(layer.full_shape, dtype=np.float32)
        fk[np.ix_(rows, cols)] = k
        out_k.append(fk)
        if m is None:
            out_m.append(None)
        else:
            fm = np.zeros(layer.full_shape, dtype=np.float32)
            fm[:, cols] = 1.0
            fm[np.ix_(rows, cols)] = m
            out_m.append(fm)
        rows = cols
    return out_k, out_m


def expand_model(model):
    """A full-size masked model computing the same function as a shrunk ``model``."""
    from ..core.layers import mlp_from_specs

    layers = _layer_arrays(model)[0]
    kernels, masks = expand_arrays(model)
    specs = [dict(name=l.name, units=l.full_shape[1], relu=l.relu, prunable=l.prunable) for l in layers]
    full = mlp_from_specs(int(kernels[0].shape[0]), specs)
    for layer, k, m in zip(_layer_arrays(full)[0], kernels, masks):
        layer.kernel.assign(k)
        if m is not None:
            layer.mask.assign(m)
    return full


def carry_optimizer_state(old_model, new_model, keep: list[np.ndarray]) -> None:
    """Copy Adam's step count and the moments of the surviving weights from ``old_model``'s
    optimizer into ``new_model``'s (compiled, not yet stepped), so training goes on as if the
    removed units had only been masked."""
    old_opt, new_opt = old_model.optimizer, new_model.optimizer
    new_opt.build(new_model.trainable_variables)
    new_opt.iterations.assign(old_opt.iterations)
    rows, cols = [slice(None)] + list(keep), list(keep) + [slice(None)]
    pairs = [(o, n) for o, n in zip(old_model.trainable_variables, new_model.trainable_variables)]
    if len(pairs) != len(rows):
        raise ValueError("carry_optimizer_state expects one trainable kernel per layer")
    for slots in ("_momentums", "_velocities"):
        old_slots, new_slots = getattr(old_opt, slots), getattr(new_opt, slots)
        for (o, n), r, c in zip(pairs, rows, cols):
            value = np.asarray(old_slots[old_opt._get_variable_index(o)])[r][:, c]
            new_slots[new_opt._get_variable_index(n)].assign(value)
