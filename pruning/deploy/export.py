"""A trained Keras model in the sparse format: what is written, and what it costs."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from ..core.layers import weight_layers


def sparse_layers(model: keras.Model):
    """The model's weight layers as ``sparse_format.SparseLayer`` (effective kernel, mask, ReLU flag; a
    convolution's as its (fan-in, filters) matrix) and the metadata that lets a shrunk network be expanded
    back (original shapes, kept units) and a convolution's kernel be reshaped back (``kernel_shapes``)."""
    from ..core.masks import units_view
    from .sparse_format import SparseLayer

    layers = weight_layers(model)
    out = [SparseLayer(l.name, units_view(l.effective_kernel()), None if l.mask is None else units_view(l.mask),
                       l.relu) for l in layers]
    meta = {"full_shapes": [list(l.full_shape) for l in layers],
            "kept": {l.name: l.kept for l in layers if l.kept is not None}}
    shapes = {l.name: [int(d) for d in l.kernel.shape] for l in layers if len(l.kernel.shape) != 2}
    if shapes:
        meta["kernel_shapes"] = shapes
    return out, meta



def export_sparse(model: keras.Model, path, meta: dict | None = None) -> int:
    """Write the model's weights to ``path`` in the compact, checksummed sparse format
    (``pruning.deploy.sparse_format``; read back with ``load_sparse``); returns the bytes written.

    Use::

        pruning.export_sparse(model, "model.sparse")
        layers, meta = pruning.load_sparse("model.sparse")
    """
    from .sparse_format import save_sparse

    layers, own = sparse_layers(model)
    return save_sparse(path, layers, {**(meta or {}), **own})


def size_report(model, sparse_path: Path, meta: dict | None = None) -> dict:
    """Write ``model``'s weights in the sparse format and return what it costs: the counts of
    ``shrink.network_counts`` and the bytes of its weights stored dense (float32, the unpruned
    network's shapes) and sparse, each also after gzip; ``units_alive``: per weight layer, the units (columns,
    filters) with a nonzero incoming weight, which a shrunk network keeps (a unit removed by shrinking, or whose
    every weight is zero or masked, as a closed L0 gate leaves it, is not alive); ``units``: each weight layer's
    units before any shrinking."""
    from ..core.masks import units_view
    from ..files import atomic_write_bytes
    from .shrink import expand_arrays, network_counts
    from .sparse_format import encode, gzip_nbytes

    layers, own = sparse_layers(model)
    model_layers = weight_layers(model)
    kernels = [np.asarray(l.effective_kernel()) for l in model_layers]
    full_shapes = [tuple(s) for s in own["full_shapes"]]
    blob = encode(layers, {**(meta or {}), **own})  # validated here; written as is, not encoded twice
    atomic_write_bytes(sparse_path, blob)
    dense_blob = b"".join(k.astype(np.float32).tobytes() for k in expand_arrays(model)[0])
    return {
        **network_counts(kernels, full_shapes, [l.positions for l in model_layers]),
        "dense_bytes": len(dense_blob),
        "sparse_bytes": len(blob),
        "dense_gzip_bytes": gzip_nbytes(dense_blob),
        "sparse_gzip_bytes": gzip_nbytes(blob),
        "units_alive": {l.name: int(np.count_nonzero(np.any(units_view(k) != 0, axis=0)))
                        for l, k in zip(model_layers, kernels)},
        "units": {l.name: int(l.full_shape[-1]) for l in model_layers},  # before any shrinking
    }


def graph_export(model, x) -> tuple:
    """A model made by ``pruning.prunable`` (a network of the user's own, trained masked) as the plain Keras
    network a run saves, and the largest |output difference| between the two on ``x`` (as the masked
    network reads it): the removed channels cut out (``pruning.graph.shrink``: physically smaller, for a
    unit-pruned network); with no channel removed (weight pruning, the dense run) that is
    ``pruning.graph.strip``, the pruned weights baked in as zeros. Standard layers only:
    ``keras.models.load_model`` reads it without this package.

    Use::

        plain, diff = graph_export(masked, x_test)    # diff: about 1e-6 (float32 sums in another order)
        plain.save("model.keras")
    """
    from ..core.training import logits
    from ..graph import shrink

    plain = shrink(model)
    diff = float(np.abs(logits(plain, x) - logits(model, x)).max()) if len(x) else 0.0
    return plain, diff


def graph_size_report(model) -> dict:
    """What a run's ``pruning.prunable`` network costs (``pruning.graph.report.size_report``, on its effective
    weights, with the removed channels' weights counted as pruned): ``params``, ``params_nonzero``,
    ``kernel_params``, ``kernel_nonzero``, ``flops_per_example``, ``dense_flops_per_example`` and
    ``effective_sparsity``; no sparse encoding (``model.sparse`` holds the study's own layers only)."""
    from ..graph.report import size_report as report

    return report(model)
