"""Coupled channel groups: the channels that must be removed together.

Every channel of every tensor of the traced graph (``pruning.graph.trace``) gets an id; each layer's
rule (``pruning.graph.rules``) ties ids together; the connected components of the ties (union-find,
here ``scipy.sparse.csgraph.connected_components``) are single coupled channels, for example conv1's
output channel 3 + bn1's channel 3 + channel 3 of both inputs of add_1 + conv2's input channel 3. The
components that touch the same tensors form a *group* (``ChannelGroup``): conv1's 32 output channels
are one group of 32 coupled channels, and unit pruning removes k % of each group.

A group is *pinned* (never loses a channel) when it touches a model input or output, a layer named
in ``exclude`` or one that mixes channels (LayerNormalization, Softmax, a grouped convolution), or when
removing a channel would not make it exactly 0 where a Dense or convolution reads it (after a sigmoid,
say: f(0) != 0; the simplest exact choice is to pin, and this module does). Through a Multiply one zero
factor is enough, so a squeeze-and-excitation gate does not pin the channels it gates::

    >>> for group in channel_groups(model):
    ...     print(group)
    conv1:out + bn1 + add + conv2:in (8 channels)
    dense:out + logits:in (16 channels)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .errors import UnsupportedLayerError
from .layers import TWINS, GraphMasked, standard_class
from .rules import EXCLUDED, SUPPORTED, rule_for
from .trace import Graph, trace


@dataclass
class ChannelGroup:
    """``size`` coupled channels that are removed together.

    ``parts`` names the layers involved, in graph order: ``name:out`` for a producer (Dense,
    convolution) whose output channels these are, ``name:in`` for a layer that reads them, and the bare
    name for a layer they pass through with weights or a merge (BatchNormalization, depthwise,
    Add, Concatenate, Flatten, ...). ``pinned`` says why the group is never pruned (None: it can be).
    """

    index: int
    parts: tuple[str, ...]
    size: int
    pinned: str | None
    tensors: tuple[int, ...] = field(repr=False)
    labels: np.ndarray = field(repr=False, compare=False)  # component label of each channel, in order

    def __str__(self) -> str:
        text = f"{' + '.join(self.parts)} ({self.size} channels)"
        return text if self.pinned is None else f"{text}, pinned: {self.pinned}"


@dataclass
class Analysis:
    """A traced graph, each op's rule, each channel id's component label and the groups."""

    graph: Graph
    rules: list
    base: np.ndarray  # tensor t's channels are ids base[t] .. base[t+1]-1
    labels: np.ndarray  # component label per channel id
    groups: list[ChannelGroup]
    excluded: set[str]
    masked: set[int]  # ops that are (or, in a plain model, would be) masked twins

    def tensor_labels(self, t: int) -> np.ndarray:
        return self.labels[self.base[t]:self.base[t + 1]]

    def channel_index(self, t: int, labels: np.ndarray) -> np.ndarray:
        """For each component label, the first channel of tensor ``t`` that belongs to it."""
        own = self.tensor_labels(t)
        order = np.argsort(own, kind="stable")
        pos = np.searchsorted(own[order], labels)
        return order[pos]


def unsupported(op, why: str | None = None) -> UnsupportedLayerError:
    layer = op.layer
    what = f"layer {op.name!r} of class {type(layer).__name__}"
    reason = (f"cannot be handled here: {why}." if why else
              "has no channel rule, so the graph toolkit cannot tell how its output channels relate to its "
              "input channels (a custom layer, a Lambda, a recurrent or attention layer, a subclassed model).")
    return UnsupportedLayerError(
        f"{what} {reason} Supported: {SUPPORTED}. To keep the layer as it is, pass exclude=({op.name!r},): it is "
        f"then left unpruned and every channel it touches is pinned (never removed).", layer_name=op.name)


def output_ops(graph: Graph) -> set[int]:
    """The ops producing the model's outputs: from each output back through one-input layers without a
    kernel (an Activation, a Dropout, a BatchNormalization) to the first layer with a kernel (a Dense, a
    convolution) or a merge, all of them included; none of them is masked."""
    found = set()
    for t in graph.outputs:
        while graph.tensors[t].producer is not None:
            op = graph.ops[graph.tensors[t].producer]
            found.add(op.index)
            if len(op.inputs) != 1 or any("kernel" in v.name for v in op.layer.weights):
                break
            t = op.inputs[0]
    return found


def is_masked_model(graph: Graph) -> bool:
    return any(isinstance(op.layer, GraphMasked) for op in graph.ops)


def rules_of(graph: Graph, exclude=()) -> tuple[list, set[str], set[int]]:
    """Each op's rule, the excluded op names and the masked ops.

    A plain model: ``exclude`` (op or layer names) is all that is excluded; a layer without a rule
    raises ``UnsupportedLayerError``; every layer with a masked twin but the output layers would be
    masked. A model made by ``prunable``: its masked twins are masked, and its other layers that could
    have been (not output layers) or have no rule were excluded when it was made."""
    excluded = set(exclude)
    masked_model = is_masked_model(graph)
    outputs = output_ops(graph)
    rules, masked = [], set()
    for op in graph.ops:
        twin_able = standard_class(op.layer) in TWINS
        if masked_model and not isinstance(op.layer, GraphMasked) and (
                (twin_able and op.index not in outputs) or rule_for(op.layer) is None):
            excluded.add(op.name)
        if op.name in excluded or op.layer.name in excluded:
            excluded.add(op.name)
            rules.append(EXCLUDED)
            continue
        rule = rule_for(op.layer)
        if rule is None:
            raise unsupported(op)
        why = rule.check(op, graph)
        if why is not None:
            raise unsupported(op, why)
        rules.append(rule)
        if isinstance(op.layer, GraphMasked) or (not masked_model and twin_able and op.index not in outputs):
            masked.add(op.index)
    unknown = set(exclude) - {op.name for op in graph.ops} - {op.layer.name for op in graph.ops}
    if unknown:
        raise ValueError(f"exclude names {sorted(unknown)}, which are not layers of the model "
                         f"(its layers: {[op.name for op in graph.ops]})")
    return rules, excluded, masked


def analyze(graph_or_model, exclude=()) -> Analysis:
    """Rules, channel ids, coupled components and groups of a model (or of its traced graph)."""
    graph = graph_or_model if isinstance(graph_or_model, Graph) else trace(graph_or_model)
    rules, excluded, masked = rules_of(graph, exclude)
    sizes = np.array([t.channels for t in graph.tensors], dtype=np.int64)
    base = np.concatenate([[0], np.cumsum(sizes)])
    n = int(base[-1])
    heads, tails, pins = [], [], {}

    def tie(a, b, ia=None, ib=None):
        ia = np.arange(sizes[a]) if ia is None else np.asarray(ia)
        ib = np.arange(sizes[b]) if ib is None else np.asarray(ib)
        heads.append(base[a] + ia)
        tails.append(base[b] + ib)

    def pin(t, why):
        pins.setdefault(t, why)

    for t in graph.inputs:
        pin(t, f"model input {graph.tensors[t].name!r}")
    for t in graph.outputs:
        pin(t, "model output")
    for op, rule in zip(graph.ops, rules):
        rule.couple(op, graph, tie, pin)
    h = np.concatenate(heads) if heads else np.zeros(0, np.int64)
    tl = np.concatenate(tails) if tails else np.zeros(0, np.int64)
    adjacency = coo_matrix((np.ones(h.size, np.int8), (h, tl)), shape=(n, n))
    _, labels = connected_components(adjacency, directed=False)
    labels = labels.astype(np.int64)

    # components -> the tensors each touches -> groups of components touching the same tensors
    tensor_of = np.repeat(np.arange(len(graph.tensors)), sizes)
    first_id = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first_id, labels, np.arange(n))
    pairs = np.unique(labels * len(graph.tensors) + tensor_of)
    signature: dict[int, list[int]] = {}
    for label, t in zip(pairs // len(graph.tensors), pairs % len(graph.tensors)):
        signature.setdefault(int(label), []).append(int(t))
    by_sig: dict[tuple, list[int]] = {}
    for label, tensors in signature.items():
        by_sig.setdefault(tuple(tensors), []).append(label)
    analysis = Analysis(graph, rules, base, labels, [], excluded, masked)
    ordered = sorted(by_sig.items(), key=lambda item: (item[0][0], min(first_id[item[1]])))
    for index, (tensors, comp) in enumerate(ordered):
        comp = np.asarray(sorted(comp, key=lambda c: first_id[c]), dtype=np.int64)
        analysis.groups.append(_group(analysis, index, set(tensors), comp, pins))
    return analysis


def _group(analysis: Analysis, index: int, tensors: set[int], labels: np.ndarray, pins: dict) -> ChannelGroup:
    graph, rules = analysis.graph, analysis.rules
    parts, pinned = [], None
    for t in sorted(tensors):
        if t in pins:
            pinned = pins[t]
            break
    for t in graph.inputs:
        if t in tensors:
            parts.append(f"input:{graph.tensors[t].name}")
    zero, nonzero_at = {}, None
    for op, rule in zip(graph.ops, rules):
        ins = [t in tensors for t in op.inputs]
        outs = [t for t in op.outputs if t in tensors]
        if rule.producer and outs:
            parts.append(f"{op.name}:out")
        elif rule.reads_rows and any(ins):
            parts.append(f"{op.name}:in")
        elif rule.shown and (outs or any(ins)):
            parts.append(op.name)
        if outs:
            flags = [zero.get(t, False) if t in tensors else None for t in op.inputs]
            value = rule.zero_out(op, flags, op.index in analysis.masked)
            if not value and nonzero_at is None:
                nonzero_at = op.name
            for t in outs:
                zero[t] = value
        if rule.reads_rows and pinned is None:
            for t in op.inputs:
                if t in tensors and not zero.get(t, False):
                    pinned = (f"{op.name} reads it, and a removed channel would not be 0 there"
                              + (f" ({nonzero_at} maps 0 to a nonzero value)" if nonzero_at else ""))
    return ChannelGroup(index, tuple(parts), int(labels.size), pinned, tuple(sorted(tensors)), labels)


def channel_groups(model, exclude=()) -> list[ChannelGroup]:
    """The model's groups of coupled channels, in graph order.

    Each group is the channels that must be removed together (see the module's docstring). Use::

        for group in pruning.channel_groups(model):
            print(group)        # conv1:out + bn1 + add + conv2:in (64 channels)
    """
    return analyze(model, exclude).groups


def removed_labels(analysis: Analysis) -> np.ndarray:
    """Per component label: whether the channel is removed, i.e. its group is not pinned, and every
    layer that can zero it (its producers' kernel columns and bias entries, BatchNormalization's
    channel mask, a depthwise convolution's filters) has it masked to zero."""
    n_labels = int(analysis.labels.max()) + 1 if analysis.labels.size else 0
    removed = np.zeros(n_labels, dtype=bool)
    graph = analysis.graph
    for group in analysis.groups:
        if group.pinned is not None:
            continue
        live = np.zeros(n_labels, dtype=np.int64)
        zeroers = 0
        for op, rule in zip(graph.ops, analysis.rules):
            if not (rule.zeroing and op.outputs[0] in group.tensors):
                continue
            dead = rule.zeroed(op.layer)
            if dead is None:
                zeroers = -1
                break
            zeroers += 1
            np.add.at(live, analysis.tensor_labels(op.outputs[0]), ~dead)
        if zeroers > 0:
            removed[group.labels] = live[group.labels] == 0
    return removed
