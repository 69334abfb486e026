"""New models from a traced graph: masked twins (``prunable``), standard layers with the masks baked in
(``strip``), and physically smaller ones (``shrink``).

All three re-run the graph (``pruning.graph.trace``) layer by layer on new ``keras.Input`` tensors:
each layer is rebuilt by ``from_config`` from its configuration (a producer's width set to the channels
it keeps, by its rule) and given its weights, cut to the kept input and output channels by its rule
(``pruning.graph.rules``). Nested models come out flattened.

    >>> plain = pruning.strip(masked)                 # keras.models.load_model reads it, no custom objects
    >>> small = pruning.shrink(masked)                # removed channels gone from every layer of their group
"""
from __future__ import annotations

import numpy as np

import keras
from keras import tree

from .groups import Analysis, analyze, removed_labels
from .layers import TWINS, GraphMasked, standard_class
from .rules import EXCLUDED


def baked_weights(layer) -> dict[str, np.ndarray]:
    """``layer``'s weights by name with its masks multiplied in (a twin's masks themselves left out).
    A BatchNormalization's channel mask goes into gamma, beta and the moving mean: a removed channel
    (exactly 0 on input) then outputs exactly 0 in inference and training alike."""
    if not isinstance(layer, GraphMasked):
        return {v.name: np.asarray(v) for v in layer.weights}
    masks = set(layer.mask_names.values()) | {"channel_mask"}
    out = {v.name: np.asarray(layer.masked(v.name)) for v in layer.weights if v.name not in masks}
    if hasattr(layer, "channel_mask"):
        cm = np.asarray(layer.channel_mask)
        for name in ("gamma", "beta", "moving_mean"):
            if name in out:
                out[name] = out[name] * cm
    return out


def rebuild(analysis: Analysis, keep=None, twins: bool = False):
    """The graph of ``analysis`` as a new Functional model.

    ``keep``: tensor id -> kept channel indices (None: all channels of every tensor). ``twins``: make the
    masked ops masked twins (``prunable``); otherwise every layer is its standard Keras class with masks
    baked in. Excluded layers are copied as they are."""
    graph = analysis.graph
    new = {}
    inputs = []
    for t in graph.inputs:
        info = graph.tensors[t]
        new[t] = keras.Input(shape=info.shape, dtype=info.dtype, name=info.name)
        inputs.append(new[t])

    def kept(t):
        return np.arange(graph.tensors[t].channels) if keep is None else keep[t]

    for op, rule in zip(graph.ops, analysis.rules):
        layer = op.layer
        keep_in, keep_out = [kept(t) for t in op.inputs], kept(op.outputs[0])
        config = dict(layer.get_config())
        config["name"] = op.name
        if rule is EXCLUDED:
            try:
                new_layer = type(layer).from_config(config)
            except Exception:  # a class that cannot be rebuilt from its config: shared, as the docs say
                new_layer = layer
            outs = new_layer(*op.call_arguments(new)[0], **op.call_arguments(new)[1])
            if new_layer is not layer:
                new_layer.set_weights(layer.get_weights())
        else:
            cls = standard_class(layer)
            if twins and op.index in analysis.masked:
                cls = TWINS[cls]
            full = keep is None or all(len(k) == graph.tensors[t].channels for k, t in
                                       zip(keep_in + [keep_out], op.inputs + [op.outputs[0]]))
            if not full:
                config = rule.new_config(config, keep_in, keep_out, op, graph)
            new_layer = cls.from_config(config)
            args, kwargs = op.call_arguments(new)
            outs = new_layer(*args, **kwargs)
            if twins and isinstance(layer, GraphMasked) and full:  # a masked model made prunable again
                weights = {v.name: np.asarray(v) for v in layer.weights}
            else:
                weights = baked_weights(layer)
            if not full:
                weights = rule.cut(weights, keep_in, keep_out)
            by_name = {v.name: v for v in new_layer.weights}
            for name, value in weights.items():
                by_name[name].assign(value)
        for kt, t in zip(tree.flatten(outs), op.outputs):
            new[t] = kt
    outputs = [new[t] for t in graph.outputs]
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                       name=graph.name)


def strip(model):
    """``model`` (made by ``prunable``, pruned or not) as standard Keras layers with the pruned weights
    baked in as zeros: same outputs; saved, it loads with plain ``keras.models.load_model``.

        >>> pruning.strip(masked).save("plain.keras")
        >>> keras.models.load_model("plain.keras")      # no custom objects
    """
    return rebuild(analyze(model), keep=None, twins=False)


def kept_channels(analysis: Analysis) -> dict[int, np.ndarray]:
    """Tensor id -> the channels it keeps once every removed channel (``removed_labels``) is gone. A group
    that lost every channel keeps its first (it outputs 0), so no layer is left with width 0."""
    removed = removed_labels(analysis)
    for group in analysis.groups:
        if group.labels.size and removed[group.labels].all():
            removed[group.labels[0]] = False
    return {t: np.flatnonzero(~removed[analysis.tensor_labels(t)]) for t in range(len(analysis.graph.tensors))}


def shrink(model, return_keep: bool = False):
    """A physically smaller model of standard Keras layers computing what the unit-pruned ``model``
    computes: every removed channel is gone from every layer of its group (producers' kernels and
    biases, BatchNormalization's four vectors, depthwise filters, consumers' input rows, Flatten's
    positions, Concatenate's offsets). Weight masks are baked in. With ``return_keep``, also
    ``{layer name: kept output channel indices}`` for the layers that lost channels.

        >>> small = pruning.shrink(masked)
        >>> small.count_params() < masked.count_params()
    """
    analysis = analyze(model)
    keep = kept_channels(analysis)
    smaller = rebuild(analysis, keep=keep, twins=False)
    if not return_keep:
        return smaller
    lost = {op.name: keep[op.outputs[0]] for op in analysis.graph.ops
            if len(keep[op.outputs[0]]) < analysis.graph.tensors[op.outputs[0]].channels}
    return smaller, lost
