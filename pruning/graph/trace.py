"""A Keras model read as a flat graph of layers and the tensors between them.

``trace(model)`` walks a Functional or Sequential model's nodes in topological order, entering nested
Functional and Sequential sub-models as if their layers were the outer model's, and returns a ``Graph``:
tensors (shape without the batch axis) and ops (a layer call: input and output tensor ids). Everything
else in this package (channel groups, masking, strip, shrink) reads this graph, never the model's
layer list by position::

    >>> g = trace(model)
    >>> [op.name for op in g.ops]            # e.g. ['conv1', 'bn1', 'relu1', 'flatten', 'logits']
    >>> g.tensors[g.ops[0].outputs[0]].shape  # e.g. (26, 26, 8)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import keras

from .errors import UnsupportedLayerError


@dataclass
class TensorInfo:
    index: int
    shape: tuple  # without the batch axis
    dtype: str
    name: str
    producer: int | None = None  # op index; None for a model input

    @property
    def channels(self) -> int:
        return int(self.shape[-1]) if self.shape else 1


@dataclass
class Op:
    index: int
    name: str  # unique in the graph (a nested model's layer is prefixed on a clash)
    layer: keras.layers.Layer
    inputs: list[int]
    outputs: list[int]
    node: object = field(repr=False, default=None)  # the Keras node (its call arguments)

    def call_arguments(self, new: dict[int, object]):
        """``(args, kwargs)`` of this layer call with tensor ``t`` replaced by ``new[t]``."""
        tensors = {id(kt): new[t] for kt, t in zip(self.node.input_tensors, self.inputs)}
        return self.node.arguments.fill_in(tensors)


@dataclass
class Graph:
    name: str
    tensors: list[TensorInfo] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def new_tensor(self, kt, producer: int | None) -> int:
        shape = tuple(None if d is None else int(d) for d in kt.shape[1:])
        history = getattr(kt, "_keras_history", None)
        name = history[0].name if producer is None and history is not None else str(kt.name)  # the InputLayer's
        self.tensors.append(TensorInfo(len(self.tensors), shape, str(kt.dtype), name, producer))
        return len(self.tensors) - 1

    def consumers(self, t: int) -> list[Op]:
        return [op for op in self.ops if t in op.inputs]

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)


def is_graph_model(layer) -> bool:
    """A Functional or Sequential model (not a subclassed one, whose call() is Python code)."""
    return isinstance(layer, keras.Sequential) or type(layer).__name__ == "Functional"


def _functional(model):
    """The Functional graph behind ``model`` (a Sequential keeps one once built)."""
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            raise UnsupportedLayerError(
                f"Sequential model {model.name!r} has no graph yet: build it with an input shape (a keras.Input "
                f"first, or model.build(shape)) before making it prunable.")
        return model._functional
    if not is_graph_model(model):
        raise UnsupportedLayerError(
            f"model {model.name!r} of class {type(model).__name__} is a subclassed model: its call() is Python "
            f"code, so its graph of layers cannot be read. The graph toolkit takes Functional and Sequential "
            f"models (nested ones included); rebuild the network with keras.Input and layer calls.")
    return model


def trace(model: keras.Model) -> Graph:
    """The flat graph of ``model`` (nested Functional/Sequential models flattened)."""
    graph = Graph(model.name)
    fmodel = _functional(model)
    ins = [graph.new_tensor(kt, None) for kt in fmodel.inputs]
    graph.inputs = ins
    graph.outputs = _walk(model, ins, graph, "")
    seen: dict[int, str] = {}
    for op in graph.ops:
        if id(op.layer) in seen:
            raise UnsupportedLayerError(
                f"layer {op.layer.name!r} ({type(op.layer).__name__}) is called more than once (a shared layer): "
                f"its weights would serve two places of the graph, whose channels could not be removed apart. "
                f"The graph toolkit supports each layer called once; rebuild with one layer per call.")
        seen[id(op.layer)] = op.name
    return graph


def _walk(model, ins: list[int], graph: Graph, prefix: str) -> list[int]:
    fmodel = _functional(model)
    where = {id(kt): t for kt, t in zip(fmodel.inputs, ins)}
    names = {op.name for op in graph.ops}
    for depth in sorted(fmodel._nodes_by_depth, reverse=True):
        for node in fmodel._nodes_by_depth[depth]:
            layer = node.operation
            if layer is None or node.is_input:
                continue
            node_ins = [where[id(kt)] for kt in node.input_tensors]
            if is_graph_model(layer):
                outs = _walk(layer, node_ins, graph, f"{prefix}{layer.name}_")
                for kt, t in zip(node.outputs, outs):
                    where[id(kt)] = t
                names = {op.name for op in graph.ops}
                continue
            index = len(graph.ops)
            outs = [graph.new_tensor(kt, index) for kt in node.outputs]
            name = layer.name if layer.name not in names else f"{prefix}{layer.name}"
            while name in names:
                name += "_"
            names.add(name)
            graph.ops.append(Op(index, name, layer, node_ins, outs, node))
            for kt, t in zip(node.outputs, outs):
                where[id(kt)] = t
    return [where[id(kt)] for kt in fmodel.outputs]
