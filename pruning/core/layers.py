"""The layers that own their pruning masks, and what the rest of the toolkit asks of a model's layers.

A model is prunable when its weight layers are ``MaskedDense`` or ``MaskedConv2D`` (both
``MaskedLayer``): the masks, the callback, the shrinker, the sparse export and the reports find them
by type and flag (``masked_layers``), never by position.

Every kernel has its units (output neurons, or a convolution's output filters) on its **last** axis,
and the layers form a chain: each layer's input channels are the previous weight layer's units, seen
through layers without weights (pooling, flatten) that keep channels last. Read as a matrix
``kernel.reshape(-1, units)``, a row's input channel is ``row % in_channels``: for a dense layer after
a dense layer the rows are the channels; after a convolution and a flatten they are (position,
channel) pairs, channel fastest; a convolution's rows are (kernel row, kernel column, channel). This
one rule lets masks, shrinking and the size report treat an MLP and a CNN alike.
"""
from __future__ import annotations

import numpy as np

import keras  # pruning/__init__.py has set KERAS_BACKEND before this import
import tensorflow as tf


class MaskedLayer(keras.layers.Layer):
    """What MaskedDense and MaskedConv2D share: a kernel with ``units`` on its last axis, a mask of the
    kernel's shape when ``prunable`` (created as ones in ``build``; pruned entries get exactly zero
    gradient, so no optimizer can revive them), an optional ReLU, and the bookkeeping of a physically
    shrunk layer (``pruning.deploy.shrink``): ``full_shape`` is the kernel shape of the unpruned network
    and ``kept`` the original indices of the units it still has (``None``: all of them, in order).

    Not used alone: ``pruning.MaskedDense`` and ``pruning.MaskedConv2D`` are its two kinds, and a model's
    prunable layers are the instances with ``prunable`` set::

        prunable = [l for l in model.layers if isinstance(l, pruning.MaskedLayer) and l.prunable]
    """

    def __init__(self, units: int, relu: bool = True, prunable: bool = True,
                 full_shape: tuple[int, ...] | None = None, kept: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.relu = bool(relu)
        self.prunable = bool(prunable)
        self._full_shape = None if full_shape is None else tuple(int(d) for d in full_shape)
        self.kept = None if kept is None else [int(i) for i in kept]
        if self.kept is not None and len(self.kept) != self.units:
            raise ValueError(f"{len(self.kept)} kept unit indices for a layer of {self.units} units")
        self.positions = 1  # output positions per example (a convolution's output height x width)

    @property
    def full_shape(self) -> tuple[int, ...]:
        """The kernel shape this layer had in the unpruned network."""
        return self._full_shape or tuple(int(d) for d in self.kernel.shape)

    @property
    def kept_units(self) -> np.ndarray:
        """Original indices of this layer's units (all of them when never shrunk)."""
        return np.arange(self.units) if self.kept is None else np.asarray(self.kept, dtype=np.int64)

    def _add_kernel(self, shape: tuple[int, ...]) -> None:
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer="glorot_uniform")
        self.mask = None
        if self.prunable:
            self.mask = self.add_weight(name="mask", shape=shape, initializer="ones", trainable=False)

    def effective_kernel(self):
        return self.kernel * self.mask if self.mask is not None else self.kernel

    def _activate(self, out):
        return tf.maximum(out, 0.0) if self.relu else out

    def get_config(self):
        return {**super().get_config(), "units": self.units, "relu": self.relu, "prunable": self.prunable,
                "full_shape": None if self._full_shape is None else list(self._full_shape), "kept": self.kept}


@keras.saving.register_keras_serializable(package="pruning")
class MaskedDense(MaskedLayer):
    """``out = tf.maximum(tf.matmul(x, W * M), 0.0)`` with no bias (no ReLU with ``relu=False``).
    Layers built with ``prunable=False`` (the output layer) have no mask at all.

    Use::

        inputs = keras.Input((784,))
        hidden = pruning.MaskedDense(300, name="hidden1")(inputs)              # prunable, ReLU, no bias
        logits = pruning.MaskedDense(10, relu=False, prunable=False, name="output")(hidden)
        model = keras.Model(inputs, logits)
        pruning.prune(model, "weight", 90)                                      # hidden1's mask drops 90 %
    """

    def build(self, input_shape):
        self._add_kernel((int(input_shape[-1]), self.units))

    def call(self, x):
        return self._activate(tf.matmul(x, self.effective_kernel()))


@keras.saving.register_keras_serializable(package="pruning")
class MaskedConv2D(MaskedLayer):
    """``out = tf.maximum(tf.nn.conv2d(x, W * M), 0.0)``, no bias, stride 1, NHWC; ``units`` filters of
    ``kernel_size`` x ``kernel_size``, kernel shape ``(size, size, in_channels, units)``.

    Use (on NHWC images; ``pruning.build_lenet5`` builds the whole CNN)::

        x = pruning.MaskedConv2D(20, kernel_size=5, name="conv1")(keras.Input((28, 28, 1)))
    """

    def __init__(self, units: int, kernel_size: int = 5, padding: str = "VALID", **kwargs):
        super().__init__(units, **kwargs)
        self.kernel_size = int(kernel_size)
        self.padding = str(padding).upper()
        if self.padding not in ("VALID", "SAME"):
            raise ValueError(f"padding must be VALID or SAME, got {padding!r}")

    def build(self, input_shape):
        h, w, c = (int(d) for d in input_shape[-3:])
        if self.padding == "VALID":
            h, w = h - self.kernel_size + 1, w - self.kernel_size + 1
        self.positions = h * w
        self._add_kernel((self.kernel_size, self.kernel_size, c, self.units))

    def call(self, x):
        return self._activate(tf.nn.conv2d(x, self.effective_kernel(), strides=1, padding=self.padding))

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "padding": self.padding}


def mlp_from_specs(input_dim: int, specs: list[dict]) -> keras.Model:
    """A chain of MaskedDense layers, one per spec (``MaskedDense`` keyword arguments)."""
    inputs = keras.Input(shape=(input_dim,), name="pixels")
    h = inputs
    for spec in specs:
        h = MaskedDense(**spec)(h)
    return keras.Model(inputs, h, name="mlp")


def rebuild(model: keras.Model, changes: dict[str, dict]) -> keras.Model:
    """A new model of ``model``'s architecture, with the configuration of the layers named in
    ``changes`` updated (for example fewer ``units``); its weights are freshly initialised."""
    config = model.get_config()
    for layer in config["layers"]:
        layer_config = layer["config"]
        layer_config.update(changes.get(layer_config["name"], {}))
        layer.pop("build_config", None)  # shapes follow from the new widths
    return type(model).from_config(config)  # a functional model or a Sequential one


def in_float32(model: keras.Model) -> keras.Model:
    """``model`` computing in float32 throughout: itself when it already does, else a twin with the same
    (float32) weights, for comparing a ``--precision bfloat16`` model with float32 engines."""
    mixed = {l.name: {"dtype": "float32"} for l in model.layers if l.dtype_policy.name != "float32"}
    if not mixed:
        return model
    twin = rebuild(model, mixed)
    twin.set_weights(model.get_weights())
    return twin


def masked_layers(model: keras.Model) -> list[MaskedLayer]:
    """The model's prunable layers, in order, found by type and flag (never by position)."""
    return [l for l in model.layers if isinstance(l, MaskedLayer) and l.prunable]


def weight_layers(model: keras.Model) -> list[MaskedLayer]:
    """Every layer with a kernel (prunable or not), in order."""
    return [l for l in model.layers if isinstance(l, MaskedLayer)]


def effective_kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """Layer name -> kernel x mask, as NumPy (what the forward pass really uses)."""
    return {l.name: np.asarray(l.effective_kernel()) for l in weight_layers(model)}


def load_model(path, safe_mode: bool = True) -> keras.Model:
    """A Keras model saved by the toolkit (``model.keras``: ``MaskedDense`` / ``MaskedConv2D`` layers,
    their masks included), loaded without compiling it; plain Keras models load too. ``safe_mode``:
    Keras' own (False lets a ``Lambda`` of Python code load: only for files whose code you trust).

    Use::

        model = pruning.load_model("logs/seed0/weight_k90/model.keras")
        pruning.measure_sparsity(model)["weight_sparsity"]                      # 0.9
    """
    return keras.models.load_model(path, custom_objects={"MaskedDense": MaskedDense, "MaskedConv2D": MaskedConv2D},
                                   compile=False, safe_mode=safe_mode)


def numpy_forward(kernels: list[np.ndarray], x: np.ndarray, output_relu: bool = False) -> np.ndarray:
    """Reference forward pass of an MLP in NumPy (float64) over the effective kernels, for tests."""
    h = np.asarray(x, dtype=np.float64)
    for i, w in enumerate(kernels):
        h = h @ np.asarray(w, dtype=np.float64)
        if i < len(kernels) - 1 or output_relu:
            h = np.maximum(h, 0.0)
    return h
