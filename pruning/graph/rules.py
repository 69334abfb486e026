"""One small rule per Keras layer class: how its channels relate, and how to cut it.

A *channel* is one entry of a tensor's last axis. Each rule answers, for one call of its layer:

* ``couple``: which of its input channels are tied to which output channels (``tie``), or which
  tensors may never lose a channel (``pin``). A Dense or convolution *produces* new channels (no
  tie); BatchNormalization, activations, pooling and depthwise convolutions pass channel c to c;
  Flatten spreads channel c over every position; Concatenate offsets; Add, Multiply, ... tie their
  inputs' channel c together. Union-find over these ties gives the coupled channel groups
  (``pruning.graph.groups``).
* ``zero_out``: whether an output channel is exactly 0 when the group's channels are removed, given
  which of its inputs are (a producer's, a BatchNormalization's and a depthwise convolution's masks
  make it 0; an activation keeps a 0 at 0 only when f(0) == 0, which is checked numerically, so a
  sigmoid does not; a Multiply needs one zero factor, the other merges all).
  ``reads_rows``: the layer mixes its input channels (a Dense or convolution), so a removed channel must
  be exactly 0 where it reads it, or the group is pinned.
* ``zeroed`` / ``remove``: which output channels the layer's masks zero, and zeroing more.
* ``new_config`` / ``cut``: the layer's configuration and weights for kept input and output channels
  (``pruning.graph.rebuild`` does the rest with ``from_config``).

Rules are registered by exact class (``register(keras.layers.Dense, PRODUCER)``); a masked twin
(``pruning.graph.layers``) uses its standard class's rule. A class with no rule is refused by name
(``UnsupportedLayerError``); supporting a new layer kind is registering one rule.
"""
from __future__ import annotations

import numpy as np

import keras

from .layers import GraphMasked, standard_class


def _shape_ok_last(layer) -> str | None:
    fmt = getattr(layer, "data_format", None)
    if fmt not in (None, "channels_last"):
        return f"data_format={fmt!r} (only 'channels_last' is supported)"
    return None


def activation_keeps_zero(layer) -> bool:
    """Whether the layer's own ``activation`` (a Dense's, a convolution's) maps 0 to 0."""
    act = getattr(layer, "activation", None)
    return act is None or bool(np.all(np.asarray(act(np.zeros((1, 4), dtype="float32"))) == 0))


class Rule:
    """A layer that passes channel c to channel c and has no weights (pooling, dropout, padding, ...)."""

    reads_rows = False  # mixes its inputs' channels: a removed channel must reach it as exactly 0
    shown = False  # named in a channel group's description
    producer = False  # creates new channels: its kernel's columns score a group
    zeroing = False  # its masks can zero an output channel whatever its input

    def check(self, op, graph) -> str | None:
        """Why this call cannot be handled (None: it can)."""
        return _shape_ok_last(op.layer)

    def couple(self, op, graph, tie, pin) -> None:
        for t in op.inputs:
            tie(t, op.outputs[0])

    def zero_out(self, op, flags: list, masked: bool = False) -> bool:
        """Whether the output channel is exactly 0 for removed channels (``flags``: each input's, None when
        the input is not in the group; ``masked``: the layer is, or will be, a masked twin)."""
        return all(f for f in flags if f is not None)

    def zeroed(self, layer) -> np.ndarray | None:
        return None

    def remove(self, layer, removed: np.ndarray) -> None:
        pass

    def new_config(self, config: dict, keep_in: list, keep_out, op, graph) -> dict:
        return config

    def cut(self, weights: dict, keep_in: list, keep_out) -> dict:
        return weights


class Elementwise(Rule):
    """f applied entry by entry (an activation, a scalar rescaling): a removed channel stays 0 only if
    f(0) == 0, which is checked by calling the layer on zeros."""

    def _mixes(self, layer) -> bool:
        cfg = layer.get_config()
        if cfg.get("activation") in ("softmax", "log_softmax"):
            return True
        return any(np.size(cfg.get(key, 0)) > 1 for key in ("scale", "offset"))

    def couple(self, op, graph, tie, pin):
        if self._mixes(op.layer):
            why = f"{op.name} ({type(op.layer).__name__}) normalises over the channels or scales each by its own constant"
            pin(op.inputs[0], why)
            pin(op.outputs[0], why)
        super().couple(op, graph, tie, pin)

    def zero_out(self, op, flags, masked=False):
        channels = int(op.node.input_tensors[0].shape[-1] or 1)
        keeps_zero = bool(np.all(np.asarray(op.layer(np.zeros((1, channels), dtype="float32"))) == 0))
        return super().zero_out(op, flags, masked) and keeps_zero


class Producer(Rule):
    """Dense, Conv1D, Conv2D: new output channels (kernel columns and bias entries); reads its input's
    channels as the kernel's second-to-last axis."""

    reads_rows = True
    shown = True
    producer = True
    zeroing = True
    width = "units"
    kernel = "kernel"

    def couple(self, op, graph, tie, pin):
        if op.layer.get_config().get("groups", 1) != 1:
            why = f"{op.name} is a grouped convolution (groups={op.layer.get_config()['groups']})"
            pin(op.inputs[0], why)
            pin(op.outputs[0], why)

    def zero_out(self, op, flags, masked=False):
        return masked and activation_keeps_zero(op.layer)

    def columns(self, layer) -> np.ndarray:
        """The producing kernel (masked) as (fan-in, output channels)."""
        k = np.asarray(layer.masked(self.kernel)) if isinstance(layer, GraphMasked) else \
            np.asarray(getattr(layer, self.kernel))
        return k.reshape(-1, k.shape[-1])

    def zeroed(self, layer):
        if not isinstance(layer, GraphMasked):
            return None
        dead = ~np.asarray(getattr(layer, f"{self.kernel}_mask")).reshape(-1, self.out_channels(layer)).any(axis=0)
        if "bias" in layer.mask_names:
            dead &= np.asarray(layer.bias_mask) == 0
        return dead

    def out_channels(self, layer) -> int:
        return int(getattr(layer, self.kernel).shape[-1])

    def remove(self, layer, removed):
        for name in (self.kernel, "bias"):
            if name not in layer.mask_names:
                continue
            mask = getattr(layer, layer.mask_names[name])
            m = np.array(mask)
            m[..., removed] = 0.0
            mask.assign(m)
            var = getattr(layer, name)
            var.assign(np.asarray(var) * m)

    def new_config(self, config, keep_in, keep_out, op, graph):
        return {**config, self.width: int(len(keep_out))}

    def cut(self, weights, keep_in, keep_out):
        out = dict(weights)
        out["kernel"] = weights["kernel"][..., keep_in[0], :][..., keep_out]
        if "bias" in weights:
            out["bias"] = weights["bias"][keep_out]
        return out


class Conv(Producer):
    width = "filters"


class Separable(Producer):
    """SeparableConv1D/2D: a depthwise kernel over the input channels (depth_multiplier m), then a
    pointwise kernel whose row c*m + j reads the depthwise output j of channel c; its columns are new
    channels."""

    width = "filters"
    kernel = "pointwise_kernel"

    def cut(self, weights, keep_in, keep_out):
        out = dict(weights)
        m = weights["depthwise_kernel"].shape[-1]
        rows = (np.asarray(keep_in[0])[:, None] * m + np.arange(m)[None, :]).ravel()
        out["depthwise_kernel"] = weights["depthwise_kernel"][..., keep_in[0], :]
        out["pointwise_kernel"] = weights["pointwise_kernel"][..., rows, :][..., keep_out]
        if "bias" in weights:
            out["bias"] = weights["bias"][keep_out]
        return out


class Depthwise(Rule):
    """DepthwiseConv1D/2D with depth_multiplier m: output channel c*m + j is computed from input channel
    c alone, so input c and its m outputs form one channel of a group; its masks can zero them."""

    shown = True
    zeroing = True

    def couple(self, op, graph, tie, pin):
        c = graph.tensors[op.inputs[0]].channels
        m = int(op.layer.depth_multiplier)
        tie(op.inputs[0], op.outputs[0], np.repeat(np.arange(c), m), np.arange(c * m))

    def zero_out(self, op, flags, masked=False):
        return masked and activation_keeps_zero(op.layer)

    def zeroed(self, layer):
        if not isinstance(layer, GraphMasked):
            return None
        dead = ~np.asarray(layer.kernel_mask).reshape(-1, int(np.prod(layer.kernel.shape[-2:]))).any(axis=0)
        if "bias" in layer.mask_names:
            dead &= np.asarray(layer.bias_mask) == 0
        return dead

    def remove(self, layer, removed):
        km = np.array(layer.kernel_mask)
        shape = km.shape
        km = km.reshape(*shape[:-2], -1)
        km[..., removed] = 0.0
        layer.kernel_mask.assign(km.reshape(shape))
        layer.kernel.assign(np.asarray(layer.kernel) * km.reshape(shape))
        if "bias" in layer.mask_names:
            bm = np.array(layer.bias_mask)
            bm[removed] = 0.0
            layer.bias_mask.assign(bm)
            layer.bias.assign(np.asarray(layer.bias) * bm)

    def cut(self, weights, keep_in, keep_out):
        out = dict(weights)
        out["kernel"] = weights["kernel"][..., keep_in[0], :]
        if "bias" in weights:
            out["bias"] = weights["bias"][keep_out]
        return out


class BatchNorm(Rule):
    """BatchNormalization over the last axis: channel c to c; its ``channel_mask`` zeroes a removed
    channel (strip folds it into gamma, beta and the moving mean)."""

    shown = True
    zeroing = True

    def check(self, op, graph):
        axis = op.layer.axis
        rank = len(graph.tensors[op.inputs[0]].shape) + 1
        if (axis if isinstance(axis, int) else axis[0] if len(axis) == 1 else None) not in (-1, rank - 1):
            return f"axis={axis!r} (only the last axis is supported)"
        return None

    def zero_out(self, op, flags, masked=False):
        return masked and activation_keeps_zero(op.layer)

    def zeroed(self, layer):
        return (np.asarray(layer.channel_mask) == 0) if isinstance(layer, GraphMasked) else None

    def remove(self, layer, removed):
        m = np.array(layer.channel_mask)
        m[removed] = 0.0
        layer.channel_mask.assign(m)

    def cut(self, weights, keep_in, keep_out):
        return {name: w[keep_out] for name, w in weights.items()}


class Pin(Rule):
    """A layer whose output channel depends on several input channels in a way no cut reproduces
    (LayerNormalization and Softmax normalise over the channels; Normalization, PReLU hold per-channel
    constants) or a layer left alone (``exclude``): its inputs' and outputs' channels are pinned."""

    shown = True

    def __init__(self, why: str = "normalises over the channels", passes: bool = True):
        self.why = why
        self.passes = passes  # channel c in is channel c out (shown as one group); not for an excluded layer

    def check(self, op, graph):
        return None

    def couple(self, op, graph, tie, pin):
        for t in op.inputs + op.outputs:
            pin(t, f"{op.name} ({type(op.layer).__name__}) {self.why}")
        if self.passes and len(op.inputs) == 1 and len(op.outputs) == 1 and \
                graph.tensors[op.inputs[0]].shape == graph.tensors[op.outputs[0]].shape:
            tie(op.inputs[0], op.outputs[0])


class PerChannel(Rule):
    """A layer with a constant per channel and f(0) == 0 (PReLU's slopes): channel c to c; its weights
    are cut on their last axis (unless shared over the channels)."""

    shown = True

    def cut(self, weights, keep_in, keep_out):
        return {name: w if w.shape[-1] == 1 else w[..., keep_out] for name, w in weights.items()}


class Flatten(Rule):
    """Flatten (channels last): output entry p*C + c is input channel c at position p."""

    shown = True

    def check(self, op, graph):
        shape = graph.tensors[op.inputs[0]].shape
        if any(d is None for d in shape):
            return f"input shape {shape} has an unknown dimension"
        return super().check(op, graph)

    def couple(self, op, graph, tie, pin):
        c = graph.tensors[op.inputs[0]].channels
        n = graph.tensors[op.outputs[0]].channels
        tie(op.inputs[0], op.outputs[0], np.arange(n) % c, np.arange(n))


class Reshape(Flatten):
    """Reshape that keeps the channel axis last (channel c to c), or that flattens (as Flatten)."""

    def check(self, op, graph):
        shape_in = graph.tensors[op.inputs[0]].shape
        shape_out = graph.tensors[op.outputs[0]].shape
        if shape_in[-1] == shape_out[-1] or (len(shape_out) == 1 and None not in shape_in):
            return None
        return f"it reshapes {shape_in} to {shape_out}, moving the channels off the last axis"

    def couple(self, op, graph, tie, pin):
        shape_in = graph.tensors[op.inputs[0]].shape
        if shape_in[-1] == graph.tensors[op.outputs[0]].shape[-1]:
            tie(op.inputs[0], op.outputs[0])
        else:
            super().couple(op, graph, tie, pin)

    def new_config(self, config, keep_in, keep_out, op, graph):
        target = list(config["target_shape"])
        shape_in = graph.tensors[op.inputs[0]].shape
        if shape_in[-1] == graph.tensors[op.outputs[0]].shape[-1]:
            target[-1] = len(keep_out)
        else:
            target = [len(keep_out)]
        return {**config, "target_shape": tuple(target)}


class Merge(Rule):
    """Add, Subtract, Average, Maximum, Minimum (``any_zero=False``: the output channel is 0 when every
    input's is) and Multiply (``any_zero=True``: one zero factor is enough): every input's channel c and
    the output's channel c are one channel of a group."""

    shown = True

    def __init__(self, any_zero: bool = False):
        self.any_zero = any_zero

    def couple(self, op, graph, tie, pin):
        out = graph.tensors[op.outputs[0]].channels
        if any(graph.tensors[t].channels != out for t in op.inputs):
            for t in op.inputs + op.outputs:
                pin(t, f"{op.name} broadcasts a channel over others")
            return
        super().couple(op, graph, tie, pin)

    def zero_out(self, op, flags, masked=False):
        given = [f for f in flags if f is not None]
        return any(given) if self.any_zero else all(given)


class Concat(Rule):
    """Concatenate on the channel axis: input i's channel c is the output's channel offset_i + c. On
    another axis the inputs' channel c are tied together, as for Add."""

    shown = True

    def couple(self, op, graph, tie, pin):
        rank = len(graph.tensors[op.outputs[0]].shape)
        if op.layer.axis not in (-1, rank):
            return Merge().couple(op, graph, tie, pin)
        offset = 0
        for t in op.inputs:
            c = graph.tensors[t].channels
            tie(t, op.outputs[0], np.arange(c), offset + np.arange(c))
            offset += c


RULES: dict[type, Rule] = {}


def register(cls: type, rule: Rule) -> None:
    """Give the Keras layer class ``cls`` (exactly that class) its rule."""
    RULES[cls] = rule


def rule_for(layer) -> Rule | None:
    """The rule of ``layer``'s class (a twin's standard class), or None."""
    return RULES.get(standard_class(layer))


L = keras.layers
PASS = Rule()
for _cls in (L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianDropout, L.Identity,
             L.ActivityRegularization, L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D,
             L.AveragePooling2D, L.AveragePooling3D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D,
             L.GlobalMaxPooling3D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
             L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, L.Cropping1D, L.Cropping2D, L.Cropping3D,
             L.UpSampling1D, L.UpSampling2D, L.UpSampling3D, L.RepeatVector):
    register(_cls, PASS)
ELEMENTWISE = Elementwise()
for _cls in (L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Rescaling):
    register(_cls, ELEMENTWISE)
register(L.Dense, Producer())
register(L.Conv1D, Conv())
register(L.Conv2D, Conv())
register(L.Conv3D, Conv())
register(L.PReLU, PerChannel())
register(L.SeparableConv1D, Separable())
register(L.SeparableConv2D, Separable())
register(L.DepthwiseConv1D, Depthwise())
register(L.DepthwiseConv2D, Depthwise())
register(L.BatchNormalization, BatchNorm())
register(L.LayerNormalization, Pin("normalises over the channels (removing one would change the others)"))
register(L.Softmax, Pin("normalises over the channels (removing one would change the others)"))
register(L.Normalization, Pin("holds a constant per channel"))
register(L.UnitNormalization, Pin("normalises over the channels (removing one would change the others)"))
register(L.GroupNormalization, Pin("normalises over groups of channels (removing one would change the others)"))
register(L.Flatten, Flatten())
register(L.Reshape, Reshape())
for _cls in (L.Add, L.Subtract, L.Average, L.Maximum, L.Minimum):
    register(_cls, Merge())
register(L.Multiply, Merge(any_zero=True))
register(L.Concatenate, Concat())
EXCLUDED = Pin("is excluded", passes=False)

SUPPORTED = ("Dense, Conv1D, Conv2D, Conv3D (any stride, padding, dilation), DepthwiseConv1D/2D, "
             "SeparableConv1D/2D, BatchNormalization (last axis), LayerNormalization, GroupNormalization, "
             "UnitNormalization, Softmax, Normalization, activations (Activation, ReLU, LeakyReLU, ELU, PReLU), "
             "Dropout and its spatial and Gaussian kinds, pooling and global pooling, "
             "Flatten, Reshape keeping channels last, ZeroPadding, Cropping, UpSampling, RepeatVector, Rescaling, "
             "Identity, ActivityRegularization, and the merges Add, Subtract, Multiply, Average, Maximum, Minimum "
             "and Concatenate, in channels_last Functional or Sequential models (nested ones included)")
