"""Any Keras 3 Functional or Sequential model, pruned through its graph of channels.

    >>> import pruning
    >>> masked = pruning.prunable(model)                  # masked twins of Dense, Conv, BN, ...; same outputs
    >>> print(*pruning.channel_groups(masked), sep="\\n")  # "conv1:out + bn1 + add + conv2:in (32 channels)"
    >>> pruning.graph.prune(masked, "neuron", 50)         # or prune_units / prune_weights
    >>> small = pruning.shrink(masked)                    # standard Keras layers, removed channels gone
    >>> plain = pruning.strip(masked)                     # standard Keras layers, zeros baked in

Modules, one concept each:

* ``trace``: the model as a flat graph of layer calls and tensors (nested models flattened);
* ``layers``: the masked twins of the standard layers (``PrunableDense``, ...);
* ``rules``: one rule per Keras layer class (how channels couple, how to cut its weights);
* ``groups``: coupled channel groups by union-find over the rules' ties (``channel_groups``);
* ``prune``: ``prunable``, ``prune_weights``, ``prune_units``, ``prune``;
* ``rebuild``: ``strip`` and ``shrink`` (from_config with new widths, weights cut by the rules);
* ``report``: parameters, FLOPs and sparsity of any model this package accepts;
* ``errors``: ``UnsupportedLayerError``.

Limits: channels last only; a layer called more than once (shared) is refused; a Reshape that moves
the channels off the last axis, Permute, Conv*Transpose, Embedding, recurrent and attention layers,
Lambda and custom layers have no rule (refused by name unless excluded, then pinned);
LayerNormalization, GroupNormalization, UnitNormalization, Softmax, Normalization, grouped convolutions
and activations with f(0) != 0 before a Dense or convolution pin their groups rather than remove
channels inexactly. ``strip`` and ``shrink`` return flat Functional models (nested models flattened).
"""
from .errors import UnsupportedLayerError
from .groups import ChannelGroup, channel_groups
from .prune import kernel_slots, prunable, prune, prune_units, prune_weights
from .rebuild import shrink, strip

__all__ = ["UnsupportedLayerError", "ChannelGroup", "channel_groups", "kernel_slots", "prunable", "prune",
           "prune_units", "prune_weights", "shrink", "strip"]
