"""A bias-free LeNet-5-sized CNN (``--model lenet5``): the LeNet-5 of Caffe's MNIST example that Han
et al. (2015) pruned, without biases:

    28x28x1 -conv 5x5-> 24x24x20 -max pool 2-> 12x12x20 -conv 5x5-> 8x8x50 -max pool 2-> 4x4x50
    -flatten-> 800 -dense-> 500 -dense-> 10 logits

430,500 weights (conv 500 + 25,000, dense 400,000 + 5,000). ``--filters`` sets the two convolutions'
widths and ``--hidden`` the dense ones. The convolutions and the hidden dense layers are prunable;
unit strategies remove whole filters of a convolution (and that channel's inputs of the next layer,
across the flatten) as they remove units of a dense layer.
"""
from __future__ import annotations

import math

import keras

from ..config import ConfigError, ModelConfig
from ..core.layers import MaskedConv2D, MaskedDense

KERNEL = 5


def image_side(input_dim: int) -> int:
    """The side of the square, single-channel images of ``input_dim`` pixels the CNN reads."""
    side = math.isqrt(int(input_dim))
    return side if side * side == int(input_dim) else 0


def check_input(input_dim: int, cfg: ModelConfig) -> None:
    """A ConfigError unless images of ``input_dim`` pixels are square and large enough for the convolutions."""
    side = image_side(input_dim)
    size = side
    for _ in cfg.filters:
        size = (size - KERNEL + 1) // 2
    if side == 0 or size < 1:
        raise ConfigError(
            f"--model lenet5 reads square single-channel images of at least {_min_side(len(cfg.filters))}x"
            f"{_min_side(len(cfg.filters))} pixels ({len(cfg.filters)} convolutions of {KERNEL}x{KERNEL}, each "
            f"followed by 2x2 pooling), but the data's examples have {input_dim} values. Use 28x28 IDX files "
            f"(MNIST, Fashion-MNIST) or --model mlp, which reads any size.")


def _min_side(n_convs: int) -> int:
    side = 1
    for _ in range(n_convs):
        side = 2 * side + KERNEL - 1
    return side


def build_lenet5(input_dim: int = 784, cfg: ModelConfig | None = None, n_classes: int = 10) -> keras.Model:
    """The CNN for flat inputs of ``input_dim`` pixels (a square image), widths from ``cfg`` (default:
    20 and 50 filters, 500 dense units).

    Use (flat 28 x 28 inputs, as the data loader gives them)::

        model = pruning.build_lenet5(784, ModelConfig(name="lenet5"))           # ModelConfig from pruning.config
    """
    cfg = cfg or ModelConfig(name="lenet5")
    check_input(input_dim, cfg)
    side = image_side(input_dim)
    inputs = keras.Input(shape=(input_dim,), name="pixels")
    h = keras.layers.Reshape((side, side, 1), name="image")(inputs)
    for i, filters in enumerate(cfg.filters, start=1):
        h = MaskedConv2D(filters, KERNEL, name=f"conv{i}")(h)
        h = keras.layers.MaxPooling2D(2, name=f"pool{i}")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    for i, width in enumerate(cfg.hidden, start=1):
        h = MaskedDense(width, relu=True, prunable=True, name=f"dense{i}")(h)
    out = MaskedDense(n_classes, relu=cfg.output_relu, prunable=cfg.prune_output, name="output",
                      dtype="float32")(h)  # float32 logits under any precision policy, as in the MLP
    return keras.Model(inputs, out, name="lenet5")
