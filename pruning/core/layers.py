"""The layers that own their pruning masks, and what the rest of the toolkit asks of a model's layers.

A model is prunable when its layers are ``MaskedDense``: the masks, the callback, the shrinker, the
sparse export and the reports find them by type and flag (``masked_layers``), never by position."""
from __future__ import annotations

import numpy as np

import keras  # pruning/__init__.py has set KERAS_BACKEND before this import
import tensorflow as tf



@keras.saving.register_keras_serializable(package="pruning")
class MaskedDense(keras.layers.Layer):
    """``out = tf.maximum(tf.matmul(x, W * M), 0.0)`` with no bias.

    ``M`` is a non-trainable weight owned by the layer, created as ones in ``build``.
    Because the mask multiplies the kernel inside the forward pass, the gradient of a
    masked entry is exactly zero: it cannot be revived by any optimizer. Layers built
    with ``prunable=False`` (the output layer) have no mask at all.

    A layer of a physically shrunk network (``pruning.deploy.shrink``) remembers where it came
    from: ``full_shape`` is the kernel shape of the unpruned network and ``kept`` the
    original indices of the units it still has (``None``: all of them, in order).
    """

    def __init__(self, units: int, relu: bool = True, prunable: bool = True,
                 full_shape: tuple[int, int] | None = None, kept: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.relu = bool(relu)
        self.prunable = bool(prunable)
        self._full_shape = None if full_shape is None else (int(full_shape[0]), int(full_shape[1]))
        self.kept = None if kept is None else [int(i) for i in kept]
        if self.kept is not None and len(self.kept) != self.units:
            raise ValueError(f"{len(self.kept)} kept unit indices for a layer of {self.units} units")

    @property
    def full_shape(self) -> tuple[int, int]:
        """The kernel shape this layer had in the unpruned network."""
        return self._full_shape or tuple(int(d) for d in self.kernel.shape)

    @property
    def kept_units(self) -> np.ndarray:
        """Original indices of this layer's units (all of them when never shrunk)."""
        return np.arange(self.units) if self.kept is None else np.asarray(self.kept, dtype=np.int64)

    def build(self, input_shape):
        shape = (int(input_shape[-1]), self.units)
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer="glorot_uniform")
        self.mask = None
        if self.prunable:
            self.mask = self.add_weight(name="mask", shape=shape, initializer="ones", trainable=False)

    def effective_kernel(self):
        return self.kernel * self.mask if self.mask is not None else self.kernel

    def call(self, x):
        out = tf.matmul(x, self.effective_kernel())
        return tf.maximum(out, 0.0) if self.relu else out

    def get_config(self):
        return {**super().get_config(), "units": self.units, "relu": self.relu, "prunable": self.prunable,
                "full_shape": None if self._full_shape is None else list(self._full_shape), "kept": self.kept}


def mlp_from_specs(input_dim: int, specs: list[dict]) -> keras.Model:
    """A chain of MaskedDense layers, one per spec (``MaskedDense`` keyword arguments)."""
    inputs = keras.Input(shape=(input_dim,), name="pixels")
    h = inputs
    for spec in specs:
        h = MaskedDense(**spec)(h)
    return keras.Model(inputs, h, name="mlp")


def masked_layers(model: keras.Model) -> list[MaskedDense]:
    """The model's prunable layers, in order, found by type and flag (never by position)."""
    return [l for l in model.layers if isinstance(l, MaskedDense) and l.prunable]


def all_dense_layers(model: keras.Model) -> list[MaskedDense]:
    return [l for l in model.layers if isinstance(l, MaskedDense)]


def effective_kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """Layer name -> kernel x mask, as NumPy (what the forward pass really uses)."""
    return {l.name: np.asarray(l.effective_kernel()) for l in all_dense_layers(model)}


def load_model(path) -> keras.Model:
    return keras.models.load_model(path, custom_objects={"MaskedDense": MaskedDense}, compile=False)


def numpy_forward(kernels: list[np.ndarray], x: np.ndarray, output_relu: bool = False) -> np.ndarray:
    """Reference forward pass in NumPy (float64) over the effective kernels, for tests."""
    h = np.asarray(x, dtype=np.float64)
    for i, w in enumerate(kernels):
        h = h @ np.asarray(w, dtype=np.float64)
        if i < len(kernels) - 1 or output_relu:
            h = np.maximum(h, 0.0)
    return h
