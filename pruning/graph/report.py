"""Parameters, FLOPs and sparsity of any model the graph toolkit accepts (masked, stripped or shrunk).

    >>> measure_sparsity(masked)["weight_sparsity"]          # fraction of zero prunable-kernel entries
    >>> size_report(pruning.shrink(masked), reference=model)  # params, FLOPs, effective sparsity
"""
from __future__ import annotations

import numpy as np

from .layers import GraphMasked
from .rebuild import baked_weights
from .rules import Depthwise, Producer, rule_for
from .trace import trace

KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")


def _kernel_layers(graph):
    """(op, {kernel name: effective kernel}) of every Dense / convolution of the graph."""
    out = []
    for op in graph.ops:
        if not isinstance(rule_for(op.layer), (Producer, Depthwise)):
            continue
        weights = baked_weights(op.layer)
        out.append((op, {n: weights[n] for n in KERNEL_NAMES if n in weights}))
    return out


def measure_sparsity(model) -> dict:
    """Measured fractions of exactly-zero effective kernel entries (kernel x mask), as
    ``pruning.measure_sparsity`` reports them for the toolkit's own layers: ``per_layer`` (each masked
    kernel; a separable convolution's two as ``name/depthwise_kernel`` and ``name/pointwise_kernel``),
    ``weight_sparsity`` (all masked kernels together) and ``overall`` (every kernel of the model, the
    unmasked output layer's too). Biases and normalisation parameters are not counted."""
    per_layer, zeros, total, all_zeros, all_total = {}, 0, 0, 0, 0
    for op, kernels in _kernel_layers(trace(model)):
        layer = op.layer
        for name, k in kernels.items():
            z, n = int(k.size - np.count_nonzero(k)), int(k.size)
            all_zeros, all_total = all_zeros + z, all_total + n
            if isinstance(layer, GraphMasked) and name in layer.mask_names:
                per_layer[op.name if len(layer.KERNELS) == 1 else f"{op.name}/{name}"] = z / n if n else 0.0
                zeros, total = zeros + z, total + n
    return {"per_layer": per_layer, "weight_sparsity": zeros / total if total else 0.0,
            "overall": all_zeros / all_total if all_total else 0.0}


def _positions(graph, op) -> int:
    shape = graph.tensors[op.outputs[0]].shape[:-1]
    return int(np.prod([d or 1 for d in shape])) if shape else 1


def size_report(model, reference=None) -> dict:
    """What ``model`` costs, counted on its effective weights (masks multiplied in):

    * ``params``: parameters of the standard layers (masks not counted; BatchNormalization's moving
      statistics counted, as Keras counts them); ``params_nonzero``: those that are not exactly 0;
    * ``kernel_params``, ``kernel_nonzero``: the same over the kernels of Dense and convolution layers;
    * ``flops_per_example``: 2 x each nonzero kernel entry x the output positions it is applied at (a
      convolution's output height x width, 1 for a dense layer on vectors): the multiply-adds of an
      implementation that skips zeros; ``dense_flops_per_example``: the same with every entry;
    * ``effective_sparsity``: 1 - ``kernel_nonzero`` / the kernel entries of ``reference`` (the unpruned
      model; default ``model`` itself), so a shrunk model's removed channels count as pruned;
    * for a masked model only, ``units`` (``units(model)``: each Dense / convolution's output channels, the
      output layer's last) and ``units_alive`` (those its shrunk model keeps), as the study's size report
      has them for its own networks.

    For a masked model (``prunable``), ``flops_per_example``, ``kernel_nonzero`` and ``effective_sparsity``
    are those of its shrunk model (``pruning.graph.shrink``): a consumer's rows that read a removed channel
    cannot change the output, so they count as pruned, as the toolkit's effective sparsity counts them.

    Use::

        masked = pruning.prunable(model)
        pruning.prune_units(masked, "neuron", 50)
        pruning.size_report(masked, reference=model)["flops_per_example"]
    """
    graph = trace(model)
    params = nonzero = 0
    for op in graph.ops:
        for value in baked_weights(op.layer).values():
            params += int(value.size)
            nonzero += int(np.count_nonzero(value))
    kernel_params = kernel_nonzero = flops = dense_flops = 0
    for op, kernels in _kernel_layers(graph):
        positions = _positions(graph, op)
        for k in kernels.values():
            kernel_params += int(k.size)
            kernel_nonzero += int(np.count_nonzero(k))
            flops += 2 * int(np.count_nonzero(k)) * positions
            dense_flops += 2 * int(k.size) * positions
    extra = {}
    if is_graph_model(model):
        from .rebuild import shrink

        small = shrink(model)
        shrunk = size_report(small)
        kernel_nonzero, flops = shrunk["kernel_nonzero"], shrunk["flops_per_example"]
        full, kept = units(model), units(small)
        extra = {"units": full, "units_alive": {name: kept.get(name, 0) for name in full}}
    ref = kernel_params if reference is None else sum(
        int(k.size) for _, ks in _kernel_layers(trace(reference)) for k in ks.values())
    return {"params": params, "params_nonzero": nonzero, "kernel_params": kernel_params,
            "kernel_nonzero": kernel_nonzero, "flops_per_example": flops, "dense_flops_per_example": dense_flops,
            "effective_sparsity": 1.0 - kernel_nonzero / ref if ref else 0.0, **extra}


def units(model) -> dict[str, int]:
    """The output channels (units, filters) of every Dense and convolution of ``model``, by op name, in the
    graph's order with the layer(s) producing the model's outputs last (what ``size_report`` counts as
    ``units``; of a shrunk model, the channels kept)."""
    from .groups import output_ops

    graph = trace(model)
    outputs = output_ops(graph)
    ops = [op for op in graph.ops if getattr(rule_for(op.layer), "producer", False)]
    ops = [op for op in ops if op.index not in outputs] + [op for op in ops if op.index in outputs]
    return {op.name: int(graph.tensors[op.outputs[0]].shape[-1]) for op in ops}


def is_graph_model(model) -> bool:
    """Whether ``model`` holds masked twins of this package (so the toolkit's calls dispatch here)."""
    return any(isinstance(layer, GraphMasked) for layer in getattr(model, "layers", ()))


__all__ = ["measure_sparsity", "size_report", "is_graph_model", "units"]
