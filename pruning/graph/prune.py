"""Making any Keras model prunable, and pruning it by weights or by coupled channel groups.

    >>> import pruning
    >>> masked = pruning.prunable(model)                    # same outputs; ``model`` is not changed
    >>> pruning.graph.prune(masked, "global_weight", 80)    # one threshold over every prunable kernel
    >>> pruning.graph.prune(masked, "neuron", 50)           # half the channels of every group
    >>> small = pruning.shrink(masked)                      # standard Keras layers, fewer channels
"""
from __future__ import annotations

import numpy as np

from ..core import masks
from .groups import analyze, is_masked_model, removed_labels
from .layers import GraphMasked, graph_masked_layers
from .rebuild import rebuild


def prunable(model, exclude=()):
    """A new model computing what ``model`` computes, with a mask on every prunable kernel.

    ``model`` is a built Keras 3 Functional or Sequential model; nested Functional and Sequential models
    are flattened into the result. Every Dense, Conv1D/2D, DepthwiseConv1D/2D, SeparableConv1D/2D and
    BatchNormalization becomes its masked twin (``pruning.graph.layers``), except the layers producing the
    model's outputs and those named in ``exclude`` (layer names), which stay standard layers. The weights
    are copied; ``model`` itself is not changed. A layer no rule covers (``pruning.graph.rules``: a custom
    layer, a Lambda, an RNN, a subclassed model) raises ``UnsupportedLayerError`` unless ``exclude`` names
    it; an excluded layer is copied as it is (or shared, when its class cannot be rebuilt from its config)
    and every channel it touches is pinned.

        >>> masked = pruning.prunable(model, exclude=("attention",))
    """
    analysis = analyze(model, exclude)
    return rebuild(analysis, keep=None, twins=True)


def kernel_slots(model) -> list[tuple[object, str]]:
    """``(layer, kernel name)`` of every masked kernel, in graph order: what weight strategies prune."""
    return [(layer, name) for layer in graph_masked_layers(model) for name in layer.KERNELS
            if name in layer.mask_names]


def _slot_name(layer, name: str) -> str:
    return layer.name if len(layer.KERNELS) == 1 else f"{layer.name}/{name}"


def prune_weights(model, strategy: str, sparsity: float, seed: int = 0) -> dict[str, float]:
    """Prune every masked kernel of a ``prunable`` model with a weight strategy, in place, exactly as
    ``pruning.prune`` prunes the toolkit's own layers: round-half-up counts per kernel (``weight``,
    ``random``) or over all kernels below one threshold (``global_weight``); existing masks are kept;
    biases and normalisation parameters are never pruned. Returns each kernel's threshold.

    As everywhere in the toolkit, k % counts a kernel's entries and the entries already masked are taken
    first: a weight k below what unit pruning already removed from a kernel gives some entries back
    (their stored weights stay 0, their bias entries stay masked).

        >>> pruning.graph.prune_weights(masked, "weight", 90)     # 90 % of every masked kernel
    """
    strat = masks.get(strategy)
    if strat.granularity != "weight":
        raise ValueError(f"{strategy!r} is not a weight strategy")
    slots = kernel_slots(model)
    if not slots:
        raise ValueError(f"model {model.name!r} has no masked kernels: make it with pruning.prunable(model) first")
    kernels = [np.asarray(getattr(l, n)) for l, n in slots]
    currents = [np.asarray(getattr(l, l.mask_names[n])) for l, n in slots]
    infos = [masks.LayerInfo(index=i, seed=int(seed)) for i in range(len(slots))]
    new = masks.compute_masks(strategy, kernels, sparsity, currents, None, infos)
    out = {}
    for (layer, name), kernel, mask, info in zip(slots, kernels, new, infos):
        getattr(layer, layer.mask_names[name]).assign(mask)
        getattr(layer, name).assign(kernel * mask)
        out[_slot_name(layer, name)] = masks.threshold(strategy, kernel, mask, info)
    return out


def prune_units(model, strategy: str, sparsity: float, seed: int = 0) -> dict[str, int]:
    """Remove ``sparsity`` % of the channels of every unpinned channel group of a ``prunable`` model, in
    place; returns each group's description -> channels removed in total.

    Each group loses exactly ``masks.n_pruned(size, k)`` channels (round half up), those the strategy
    scores lowest over the *whole group*: the strategy's unit score is applied to one matrix stacking,
    for each producer of the group (Dense, convolution, a separable convolution's pointwise kernel), its
    masked kernel's columns of the group's channels (fan-in rows of all producers, one column per
    channel). For ``neuron`` that is the L2 norm of each channel's incoming weights over all its
    producers together, sqrt(sum of squared column norms); ``random_neuron`` draws one seeded score per
    channel (seed and group index). Channels already removed are removed first, so masks only grow.
    A removed channel outputs exactly 0 everywhere: its producers' columns and bias entries, its
    BatchNormalization's channel-mask entries and its depthwise filters are masked.

    Use::

        masked = pruning.prunable(model)
        removed = pruning.prune_units(masked, "neuron", 50)   # {"conv1:out + bn1 + ... (64 channels)": 32, ...}
        smaller = pruning.shrink(masked)
    """
    strat = masks.get(strategy)
    if strat.granularity != "unit":
        raise ValueError(f"{strategy!r} is not a unit strategy")
    if strat.scope != "layer":
        raise ValueError(f"{strategy!r} ranks units over all layers together; a model made by pruning.prunable is "
                         f"pruned group by group: use neuron or random_neuron")
    analysis = analyze(model)
    if not is_masked_model(analysis.graph):
        raise ValueError(f"model {model.name!r} has no masks: make it with pruning.prunable(model) first")
    dead = removed_labels(analysis)
    graph, out = analysis.graph, {}
    for group in analysis.groups:
        if group.pinned is not None:
            continue
        ops = [(op, rule) for op, rule in zip(graph.ops, analysis.rules) if op.outputs[0] in group.tensors]
        producers = [(op, rule) for op, rule in ops if rule.producer]
        zeroers = [(op, rule) for op, rule in ops if rule.zeroing]
        if not producers or not all(isinstance(op.layer, GraphMasked) for op, _ in zeroers):
            continue
        matrix = np.concatenate([rule.columns(op.layer)[:, analysis.channel_index(op.outputs[0], group.labels)]
                                 for op, rule in producers], axis=0)
        info = masks.LayerInfo(index=group.index, full_units=group.size, seed=int(seed))
        scores = strat.score(matrix, info)
        keep = masks.lowest_mask(scores, masks.n_pruned(group.size, sparsity), ~dead[group.labels])
        gone = group.labels[keep == 0]
        for op, rule in zeroers:
            rule.remove(op.layer, np.isin(analysis.tensor_labels(op.outputs[0]), gone))
        out[str(group)] = int(gone.size)
    return out


def prune(model, strategy: str, sparsity: float, seed: int = 0) -> dict:
    """Prune a ``prunable`` model in place with any registered strategy: ``prune_weights`` for a weight
    strategy, ``prune_units`` for a unit strategy (``neuron``, ``random_neuron``, ...)."""
    if masks.get(masks.canonical(strategy)).granularity == "unit":
        return prune_units(model, masks.canonical(strategy), sparsity, seed)
    return prune_weights(model, strategy, sparsity, seed)
