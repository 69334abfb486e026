"""The bias-free ReLU MLP whose layers own their pruning masks."""
from __future__ import annotations

import numpy as np

import keras  # pruning/__init__.py has set KERAS_BACKEND before this import
import tensorflow as tf

from .config import ModelConfig


@keras.saving.register_keras_serializable(package="pruning")
class MaskedDense(keras.layers.Layer):
    """``out = tf.maximum(tf.matmul(x, W * M), 0.0)`` with no bias.

    ``M`` is a non-trainable weight owned by the layer, created as ones in ``build``.
    Because the mask multiplies the kernel inside the forward pass, the gradient of a
    masked entry is exactly zero: it cannot be revived by any optimizer. Layers built
    with ``prunable=False`` (the output layer) have no mask at all.

    A layer of a physically shrunk network (``pruning.shrink``) remembers where it came
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


def build_mlp(input_dim: int, cfg: ModelConfig = ModelConfig(), n_classes: int = 10) -> keras.Model:
    """784-1000-1000-500-200-10 by default: hidden layers ``hidden1..`` are prunable,
    the output layer ``output`` is not; it gives logits (or ReLU'd logits with
    ``cfg.output_relu``, the literal form of the original challenge)."""
    specs = [dict(name=f"hidden{i}", units=w, relu=True, prunable=True) for i, w in enumerate(cfg.hidden, start=1)]
    specs.append(dict(name="output", units=n_classes, relu=cfg.output_relu, prunable=False))
    return mlp_from_specs(input_dim, specs)


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


def sparse_layers(model: keras.Model):
    """The model's dense layers as ``sparse_io.SparseLayer`` (effective kernel, mask, ReLU flag) and the
    metadata that lets a shrunk network be expanded back (original shapes, kept units)."""
    from .sparse_io import SparseLayer

    layers = all_dense_layers(model)
    out = [SparseLayer(l.name, np.asarray(l.effective_kernel()), None if l.mask is None else l.mask.numpy(), l.relu)
           for l in layers]
    meta = {"full_shapes": [list(l.full_shape) for l in layers],
            "kept": {l.name: l.kept for l in layers if l.kept is not None}}
    return out, meta


def export_sparse(model: keras.Model, path, meta: dict | None = None) -> int:
    """Write the model's weights to ``path`` in the compact, checksummed sparse format
    (``pruning.sparse_io``; read back with ``load_sparse``); returns the bytes written."""
    from .sparse_io import save_sparse

    layers, own = sparse_layers(model)
    return save_sparse(path, layers, {**(meta or {}), **own})
