"""The study's network: a bias-free ReLU MLP (784-1000-1000-500-200-10 by default)."""
from __future__ import annotations

import keras

from ..config import ModelConfig
from ..core.layers import mlp_from_specs


def build_mlp(input_dim: int, cfg: ModelConfig = ModelConfig(), n_classes: int = 10) -> keras.Model:
    """784-1000-1000-500-200-10 by default: hidden layers ``hidden1..`` are prunable,
    the output layer ``output`` is not (unless ``cfg.prune_output``); it gives logits (or ReLU'd
    logits with ``cfg.output_relu``, the literal form of the original challenge), always in float32.

    Use::

        model = pruning.build_mlp(784)                                          # the default network
        small = pruning.build_mlp(784, ModelConfig(hidden=(300, 100)))          # from pruning.config
    """
    specs = [dict(name=f"hidden{i}", units=w, relu=True, prunable=True) for i, w in enumerate(cfg.hidden, start=1)]
    # the logits are float32 under any precision policy (--precision bfloat16 multiplies only the hidden layers
    # in bfloat16), as TensorFlow's mixed-precision guide advises for the layer that feeds the softmax
    specs.append(dict(name="output", units=n_classes, relu=cfg.output_relu, prunable=cfg.prune_output,
                      dtype="float32"))
    return mlp_from_specs(input_dim, specs)
