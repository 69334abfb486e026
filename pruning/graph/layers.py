"""Masked twins of standard Keras layers: the same layer, plus non-trainable 0/1 masks.

``pruning.graph.prunable`` swaps each prunable layer of a model for its twin here. A twin is a
subclass of the standard layer (``PrunableDense`` *is a* ``keras.layers.Dense``), with the same
configuration and weights, and masks created as ones in ``build``:

* ``<kernel>_mask`` for every kernel (``kernel``; a separable convolution's ``depthwise_kernel`` and
  ``pointwise_kernel``): the weight strategies prune these, entry by entry;
* ``bias_mask`` for a bias, ``channel_mask`` for a BatchNormalization's output: unit pruning zeroes
  the entries of a removed channel here, so that the channel outputs exactly 0 (a zeroed kernel column
  alone would leave the bias, or the BatchNormalization's shift, behind).

The forward pass multiplies every mask in, so a masked entry gets exactly zero gradient and no optimizer
can revive it. ``pruning.graph.strip`` turns a twin back into its standard layer with the masks baked
into the weights::

    >>> layer = PrunableDense(4)
    >>> layer.build((None, 3))
    >>> layer.mask_names
    {'kernel': 'kernel_mask', 'bias': 'bias_mask'}
"""
from __future__ import annotations

import keras
from keras import ops

PACKAGE = "pruning_graph"


class GraphMasked:
    """What every twin shares: ``KERNELS`` (the weights weight-pruning masks), ``mask_names``
    (weight name -> its mask's name), ``masked(name)`` (weight x mask) and ``base_class`` (the
    standard Keras layer it twins)."""

    KERNELS: tuple[str, ...] = ("kernel",)
    CHANNEL_WEIGHTS: tuple[str, ...] = ("bias",)

    @property
    def base_class(self):
        return type(self).__mro__[2]  # (twin, GraphMasked, standard layer, ...)

    def _add_masks(self) -> None:
        self.mask_names = {}
        for name in self.KERNELS + self.CHANNEL_WEIGHTS:
            var = getattr(self, name, None)
            if var is None:
                continue
            mask = self.add_weight(name=f"{name}_mask", shape=tuple(var.shape), initializer="ones",
                                   trainable=False)
            setattr(self, f"{name}_mask", mask)
            self.mask_names[name] = f"{name}_mask"

    def masked(self, name: str):
        """The weight ``name`` times its mask (the weight itself when it has none)."""
        var = getattr(self, name)
        mask_name = self.mask_names.get(name)
        return var if mask_name is None else var * getattr(self, mask_name)

    # Keras' Dense and convolutions save only their own named weights (for quantization); a twin saves
    # and loads every variable it owns, masks included, as a plain Keras layer does.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def _finish(self, outputs, bias_shape):
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.masked("bias"), bias_shape))
        return outputs if self.activation is None else self.activation(outputs)


def _check_last(layer) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"{layer.name}: only data_format='channels_last' is supported")


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrunableDense(GraphMasked, keras.layers.Dense):
    """``keras.layers.Dense`` computing ``activation(x @ (kernel * kernel_mask) + bias * bias_mask)``."""

    def build(self, input_shape):
        super().build(input_shape)
        self._add_masks()

    def call(self, inputs, training=None):
        return self._finish(ops.matmul(inputs, self.masked("kernel")), (self.units,))


class _PrunableConv(GraphMasked):
    def build(self, input_shape):
        _check_last(self)
        super().build(input_shape)
        self._add_masks()

    def call(self, inputs):
        return self._finish(self.convolution_op(inputs, self.masked("kernel")), (self.filters,))


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrunableConv1D(_PrunableConv, keras.layers.Conv1D):
    """``keras.layers.Conv1D`` with its kernel and bias masked."""

    @property
    def base_class(self):
        return keras.layers.Conv1D

    def call(self, inputs):
        padding = self.padding
        if padding == "causal":
            inputs, padding = ops.pad(inputs, self._compute_causal_padding()), "valid"
        outputs = ops.conv(inputs, self.masked("kernel"), strides=list(self.strides), padding=padding,
                           dilation_rate=self.dilation_rate, data_format=self.data_format)
        return self._finish(outputs, (self.filters,))


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrunableConv2D(_PrunableConv, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` (any stride, padding, dilation) with its kernel and bias masked."""

    @property
    def base_class(self):
        return keras.layers.Conv2D


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrunableConv3D(_PrunableConv, keras.layers.Conv3D):
    """``keras.layers.Conv3D`` with its kernel and bias masked."""

    @property
    def base_class(self):
        return keras.layers.Conv3D


class _PrunableDepthwise(GraphMasked):
    def build(self, input_shape):
        _check_last(self)
        super().build(input_shape)
        self._add_masks()

    def call(self, inputs):
        outputs = ops.depthwise_conv(inputs, self.masked("kernel"), strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate, data_format=self.data_format)
        return self._finish(outputs, (-1,))


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrunableDepthwiseConv1D(_PrunableDepthwise, keras.layers.DepthwiseConv1D):
    """``keras.layers.DepthwiseConv1D`` with its kernel and bias masked."""

    @property
    def base_class(self):
        return keras.layers.DepthwiseConv1D


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrunableDepthwiseConv2D(_PrunableDepthwise, keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` with its kernel and bias masked."""

    @property
    def base_class(self):
        return keras.layers.DepthwiseConv2D


class _PrunableSeparable(GraphMasked):
    KERNELS = ("depthwise_kernel", "pointwise_kernel")

    def build(self, input_shape):
        _check_last(self)
        super().build(input_shape)
        self._add_masks()

    def call(self, inputs):
        outputs = ops.separable_conv(inputs, self.masked("depthwise_kernel"), self.masked("pointwise_kernel"),
                                     strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate, data_format=self.data_format)
        return self._finish(outputs, (self.filters,))


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrunableSeparableConv1D(_PrunableSeparable, keras.layers.SeparableConv1D):
    """``keras.layers.SeparableConv1D`` with both kernels and the bias masked."""

    @property
    def base_class(self):
        return keras.layers.SeparableConv1D


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrunableSeparableConv2D(_PrunableSeparable, keras.layers.SeparableConv2D):
    """``keras.layers.SeparableConv2D`` with both kernels and the bias masked."""

    @property
    def base_class(self):
        return keras.layers.SeparableConv2D


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrunableBatchNormalization(GraphMasked, keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose output is multiplied by ``channel_mask`` (one entry per
    channel): a removed channel outputs exactly 0 in training and in inference. Not weight-pruned."""

    KERNELS = ()
    CHANNEL_WEIGHTS = ()

    def build(self, input_shape):
        super().build(input_shape)
        self._add_masks()
        self.channel_mask = self.add_weight(name="channel_mask", shape=(int(input_shape[-1]),),
                                            initializer="ones", trainable=False)

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=training, mask=mask) * self.channel_mask


TWINS = {
    keras.layers.Dense: PrunableDense,
    keras.layers.Conv1D: PrunableConv1D,
    keras.layers.Conv2D: PrunableConv2D,
    keras.layers.Conv3D: PrunableConv3D,
    keras.layers.DepthwiseConv1D: PrunableDepthwiseConv1D,
    keras.layers.DepthwiseConv2D: PrunableDepthwiseConv2D,
    keras.layers.SeparableConv1D: PrunableSeparableConv1D,
    keras.layers.SeparableConv2D: PrunableSeparableConv2D,
    keras.layers.BatchNormalization: PrunableBatchNormalization,
}
"""Standard Keras layer class -> its masked twin."""


def standard_class(layer) -> type:
    """The standard Keras class of ``layer`` (its own class unless it is a twin)."""
    return layer.base_class if isinstance(layer, GraphMasked) else type(layer)


def graph_masked_layers(model) -> list:
    """The model's twins, in order (found by type, never by position)."""
    return [l for l in model.layers if isinstance(l, GraphMasked)]
