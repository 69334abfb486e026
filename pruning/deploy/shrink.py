"""Networks that are really smaller: which units are still alive, physically removing the
dead ones, and the counts results.csv reports.

A hidden unit (a dense layer's neuron, a convolution's filter) of a bias-free ReLU network is
*alive* when some path of nonzero weights runs from an input through it to an output. A unit that no
path reaches outputs exactly 0 for every input (no bias; max pooling keeps a zero channel zero), and
a unit from which no path leaves cannot change the output; in both cases its incoming weights and its
outgoing ones can go. Neuron (filter) pruning kills units by zeroing them, so its networks shrink to
plain, smaller dense networks.

The counting functions are pure NumPy over a list of kernels (zeros where pruned), units on the last
axis, chained as ``pruning.core.layers`` describes: the next kernel's rows, read as
``kernel.reshape(-1, units)``, belong to input channel ``row % channels`` (positions of a convolution
window, or of a flattened feature map, repeat the channels). Liveness is judged per channel: a
filter counts as reaching the output when any of its positions does.
"""
from __future__ import annotations

import numpy as np


# --------------------------------------------------------------------------- pure counting
def _matrix(kernel) -> np.ndarray:
    kernel = np.asarray(kernel)
    return kernel.reshape(-1, kernel.shape[-1])


def _rows(channels: np.ndarray, fan_in: int) -> np.ndarray:
    """A per-channel vector repeated over the positions of a fan-in of ``fan_in`` rows (channel fastest)."""
    if fan_in % channels.size:
        raise ValueError(f"a kernel with {fan_in} inputs per unit does not follow a layer of {channels.size} units")
    return np.tile(channels, fan_in // channels.size)


def in_channels(kernels: list[np.ndarray]) -> list[int]:
    """Each kernel's input channels: the previous kernel's units; the first kernel's are its second-to-last
    axis (a dense layer's inputs, a convolution's image channels)."""
    return [int(np.shape(kernels[0])[-2])] + [int(np.shape(k)[-1]) for k in kernels[:-1]]


def reachable(kernels: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each hidden layer, (``forward``, ``backward``) boolean unit vectors: reachable from
    some input through nonzero weights, and reaching some output through nonzero weights."""
    nz = [_matrix(k) != 0 for k in kernels]
    forward, seen = [], np.ones(in_channels(kernels)[0], dtype=bool)
    for w in nz[:-1]:
        seen = (w & _rows(seen, w.shape[0])[:, None]).any(axis=0)
        forward.append(seen)
    backward, seen = [], np.ones(nz[-1].shape[1], dtype=bool)
    for w, channels in zip(reversed(nz[1:]), reversed(in_channels(kernels)[1:])):
        seen = (w & seen[None, :]).any(axis=1).reshape(-1, channels).any(axis=0)
        backward.append(seen)
    return forward, backward[::-1]


def alive_units(kernels: list[np.ndarray]) -> list[np.ndarray]:
    """Boolean vector per hidden layer: the unit lies on an input-to-output path of nonzero weights."""
    forward, backward = reachable(kernels)
    return [f & b for f, b in zip(forward, backward)]


def effective_entries(kernels: list[np.ndarray]) -> list[np.ndarray]:
    """Boolean array per kernel (its shape): the weight is nonzero and lies on an input-to-output path."""
    forward, backward = reachable(kernels)
    rows = [np.ones(in_channels(kernels)[0], dtype=bool)] + forward
    cols = backward + [np.ones(np.shape(kernels[-1])[-1], dtype=bool)]
    out = []
    for k, r, c in zip(kernels, rows, cols):
        w = _matrix(k) != 0
        out.append((w & _rows(r, w.shape[0])[:, None] & c[None, :]).reshape(np.shape(k)))
    return out


def network_counts(kernels: list[np.ndarray], full_shapes: list[tuple[int, ...]],
                   positions: list[int] | None = None) -> dict:
    """What results.csv reports about a (possibly shrunk) network's size.

    * ``params_nonzero``: nonzero weights in the kernels as stored;
    * ``effective_sparsity``: fraction of the *unpruned* network's weights (``full_shapes``)
      that are zero, removed, or can no longer influence the output;
    * ``flops_per_example``: 2 x the effective weights x the positions each is applied at
      (``positions[l]``: a convolution's output height x width, 1 for a dense layer): the
      multiply-adds an implementation that skips what cannot matter (a shrunk or sparse network)
      performs per example.
    """
    positions = positions or [1] * len(kernels)
    full = sum(int(np.prod(s)) for s in full_shapes)
    effective = [int(e.sum()) for e in effective_entries(kernels)]
    return {
        "params_nonzero": sum(int(np.count_nonzero(k)) for k in kernels),
        "effective_sparsity": 1.0 - sum(effective) / full,
        "flops_per_example": 2 * sum(e * int(p) for e, p in zip(effective, positions)),
    }


def cut(array, channels: int, keep_in, keep_out) -> np.ndarray | None:
    """``array`` (a kernel, its mask or an optimizer slot) with only input channels ``keep_in`` (of
    ``channels``; a slice keeps all) and units ``keep_out``; same rank as before."""
    if array is None:
        return None
    a = np.asarray(array)
    chained = a.reshape(-1, channels, a.shape[-1])[:, keep_in][:, :, keep_out]  # (positions, channels, units)
    shape = (*a.shape[:-2], chained.shape[1], chained.shape[2]) if a.ndim > 2 else (-1, chained.shape[2])
    return np.ascontiguousarray(chained.reshape(shape))


def shrink_arrays(kernels: list[np.ndarray], masks: list[np.ndarray | None] | None = None):
    """Drop every dead hidden unit: its weights in its layer and its input channel in the next.

    Returns ``(kernels, masks, keep)`` where ``keep[l]`` are the indices (into the given
    network) of hidden layer ``l``'s surviving units. Liveness is judged on ``kernel x mask``.
    A layer is never left with zero units: if all are dead, its first unit stays (and
    outputs 0), so the result is still a valid network.
    """
    masks = masks if masks is not None else [None] * len(kernels)
    effective = [k if m is None else k * m for k, m in zip(kernels, masks)]
    keep = [np.flatnonzero(a) if a.any() else np.array([0]) for a in alive_units(effective)]
    channels = in_channels(kernels)
    rows = [slice(None)] + keep
    cols = keep + [slice(None)]
    return ([cut(k, c, r, o) for k, c, r, o in zip(kernels, channels, rows, cols)],
            [cut(m, c, r, o) for m, c, r, o in zip(masks, channels, rows, cols)], keep)


# --------------------------------------------------------------------------- Keras models
def _layer_arrays(model):
    from ..core.layers import weight_layers

    layers = weight_layers(model)
    return layers, [l.kernel.numpy() for l in layers], [None if l.mask is None else l.mask.numpy() for l in layers]


def shrink_model(model):
    """A smaller model of the same architecture that computes the same function as ``model``,
    without its dead units. Returns ``(smaller, keep)``, ``keep`` as in ``shrink_arrays``.

    Each layer keeps its ``full_shape`` and the original indices of its units (``kept``), so
    the result can be expanded back and its sparsity measured against the unpruned network.

    A model made by ``pruning.prunable`` (any Keras graph) is shrunk by ``pruning.graph.shrink``: the
    result is standard Keras layers, and ``keep`` maps each layer that lost channels to the indices of
    the output channels it kept.

    Use (after unit pruning: the same logits from a smaller network)::

        pruning.prune(model, "neuron", 80)
        smaller, keep = pruning.shrink_model(model)
    """
    from ..graph.report import is_graph_model

    if is_graph_model(model):
        from ..graph import shrink

        return shrink(model, return_keep=True)
    from ..core.layers import rebuild

    layers, kernels, masks = _layer_arrays(model)
    kernels, masks, keep = shrink_arrays(kernels, masks)
    changes = {}
    for i, (layer, k) in enumerate(zip(layers, kernels)):
        kept = layer.kept_units[keep[i]] if i < len(keep) else layer.kept_units
        changes[layer.name] = dict(units=int(k.shape[-1]), full_shape=list(layer.full_shape),
                                   kept=[int(j) for j in kept])
    smaller = rebuild(model, changes)
    _assign(smaller, kernels, masks)
    _carry_unit_variables(layers, _layer_arrays(smaller)[0], [*keep, slice(None)])
    return smaller, keep


def _carry_unit_variables(old_layers, new_layers, units) -> None:
    """Copy each layer's per-unit variables (its class's ``UNIT_VARIABLES``, one value per unit: ``l0``'s gate
    parameters, say) from ``old_layers`` to ``new_layers``, keeping ``units[i]`` of layer i."""
    for old, new, keep in zip(old_layers, new_layers, units):
        for name in getattr(old, "UNIT_VARIABLES", ()):
            getattr(new, name).assign(np.asarray(getattr(old, name))[keep])


def _assign(model, kernels, masks) -> None:
    for layer, k, m in zip(_layer_arrays(model)[0], kernels, masks):
        layer.kernel.assign(k)
        if m is not None:
            layer.mask.assign(m)


def expand_arrays(model) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """The kernels and masks of ``model`` put back at their places in the unpruned network's
    shapes (``expand``)."""
    layers, kernels, masks = _layer_arrays(model)
    return expand(kernels, masks, [l.full_shape for l in layers], [l.kept_units for l in layers])


def expand(kernels, masks, full_shapes, kept) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Kernels and masks of a (possibly shrunk) network, whose layer l kept the original units
    ``kept[l]``, put back at their places in the unpruned network's ``full_shapes``: removed units'
    weights (and their input channels in the next layer) are 0, and so is the mask of a removed unit.
    Inputs from removed units keep mask 1: they were never masked. Pure NumPy (a saved model.sparse
    has all it needs)."""
    out_k, out_m = [], []
    rows, channels = np.arange(np.shape(kernels[0])[-2]), int(full_shapes[0][-2])
    for k, m, full, cols in zip(kernels, masks, full_shapes, kept):
        cols = np.asarray(cols, dtype=np.int64)
        full = tuple(int(d) for d in full)
        place = (slice(None), rows[:, None], cols[None, :])
        fk = np.zeros(full, dtype=np.float32)
        fk.reshape(-1, channels, full[-1])[place] = np.asarray(k).reshape(-1, len(rows), len(cols))
        out_k.append(fk)
        if m is None:
            out_m.append(None)
        else:
            fm = np.zeros(full, dtype=np.float32)
            fm.reshape(-1, channels, full[-1])[:, :, cols] = 1.0
            fm.reshape(-1, channels, full[-1])[place] = np.asarray(m).reshape(-1, len(rows), len(cols))
            out_m.append(fm)
        rows, channels = cols, int(full[-1])
    return out_k, out_m


def expand_model(model):
    """A full-size masked model computing the same function as a shrunk ``model``.

    Use::

        full = pruning.expand_model(smaller)          # smaller from pruning.shrink_model; same logits, full shape
    """
    from ..core.layers import rebuild

    layers = _layer_arrays(model)[0]
    kernels, masks = expand_arrays(model)
    full = rebuild(model, {l.name: dict(units=int(l.full_shape[-1]), full_shape=None, kept=None) for l in layers})
    _assign(full, kernels, masks)
    for small, big in zip(layers, _layer_arrays(full)[0]):  # per-unit variables at their units' places
        for name in getattr(small, "UNIT_VARIABLES", ()):
            value = np.asarray(getattr(big, name)).copy()  # a removed unit's value never matters: its column is 0
            value[small.kept_units] = np.asarray(getattr(small, name))
            getattr(big, name).assign(value)
    return full


def carry_optimizer_state(old_model, new_model, keep: list[np.ndarray]) -> None:
    """Copy Adam's step count and the moments of the surviving weights from ``old_model``'s
    optimizer into ``new_model``'s (compiled, not yet stepped), so training goes on as if the
    removed units had only been masked."""
    from ..core.layers import weight_layers

    old_opt, new_opt = old_model.optimizer, new_model.optimizer
    new_opt.build(new_model.trainable_variables)
    new_opt.iterations.assign(old_opt.iterations)
    old_layers, new_layers = weight_layers(old_model), weight_layers(new_model)
    rows, cols = [slice(None)] + list(keep), list(keep) + [slice(None)]
    if len(old_layers) != len(rows) or len(new_layers) != len(rows):
        raise ValueError("carry_optimizer_state expects the layers shrink_model shrank, one keep per hidden layer")
    channels = in_channels([np.asarray(l.kernel) for l in old_layers])
    pairs = []  # (old variable, new variable, how its moments are cut)
    for old, new, ch, r, c in zip(old_layers, new_layers, channels, rows, cols):
        pairs.append((old.kernel, new.kernel, lambda v, ch=ch, r=r, c=c: cut(v, ch, r, c)))
        pairs += [(getattr(old, n), getattr(new, n), lambda v, c=c: np.asarray(v)[c])
                  for n in getattr(old, "UNIT_VARIABLES", ())]
    if {id(n) for _, n, _ in pairs} != {id(v) for v in new_model.trainable_variables}:
        raise ValueError("carry_optimizer_state: the model has trainable variables besides the kernels and the "
                         "layers' UNIT_VARIABLES; their moments cannot be carried")
    for slots in ("_momentums", "_velocities"):
        old_slots, new_slots = getattr(old_opt, slots), getattr(new_opt, slots)
        for o, n, take in pairs:
            new_slots[new_opt._get_variable_index(n)].assign(take(old_slots[old_opt._get_variable_index(o)]))
