"""The layers and penalties of the sparsity-inducing methods, and the converters between them and the
project's plain layers.

Every method works by swapping a model's prunable ``MaskedDense`` / ``MaskedConv2D`` layers for a
subclass (same weights, same mask, same config plus the method's settings), so that everything that
finds layers by type (masks, the masking callback, ``shrink_model``, ``measure_sparsity``) keeps
working, and the method survives ``model.save`` / ``load_model`` and the rebuild that shrinking does:

* ``PenalizedDense`` / ``PenalizedConv2D``: a Keras regularizer on the kernel, ``GroupLasso`` (lambda x
  the sum of the units' column L2 norms) or ``L1`` (lambda x sum |w|), both over **kernel x mask**, so
  pruned weights add nothing; ``model.fit`` adds it to the loss (``model.losses``).
* ``GatedDense`` / ``GatedConv2D``: a hard-concrete gate per unit (``log_alpha``, Louizos et al. 2018)
  multiplied into the kernel's columns: a sample per training step, the deterministic gate at inference;
  the expected-L0 penalty is a regularizer on ``log_alpha``. ``fold_gates`` multiplies the deterministic
  gates into the kernels and returns plain layers.
* ``TargetedDropoutDense`` / ``TargetedDropoutConv2D``: at each training step the ``gamma`` fraction of
  the layer's smallest-magnitude weights (or units, by column L2 norm of kernel x mask) are candidates,
  each dropped with probability ``alpha``; at inference nothing is dropped.

* ``SparseVDDense`` / ``SparseVDConv2D`` (optional method 5): sparse variational dropout of the weights
  (Molchanov et al. 2017); at inference the weights with log alpha >= 3 are zero.

``to_plain`` turns any of them back into the project's layers (folding gates).
"""
from __future__ import annotations

import math

import numpy as np

import keras  # pruning/__init__.py has set KERAS_BACKEND before this import
import tensorflow as tf

from ..core import masks as pmasks
from ..core.layers import MaskedConv2D, MaskedDense, MaskedLayer, load_model, masked_layers  # noqa: F401
# (load_model: ``pruning.load_model`` is this one, so that loading a model imports, and so registers, the method
# layers below: a run of a --sparsify study saves its model with them)

PLAIN = (MaskedDense, MaskedConv2D)


def _columns(x):
    """A kernel-shaped tensor as (fan-in, units)."""
    return tf.reshape(x, (-1, x.shape[-1]))


def _seed(seed: int, index: int) -> int:
    """One seed per layer from the run's seed and the layer's position (layers draw independently)."""
    return int((int(seed) * 1_000_003 + 7919 * (int(index) + 1)) % (2**31 - 1))


# --------------------------------------------------------------------------- penalties
@keras.saving.register_keras_serializable(package="pruning")
class GroupLasso(keras.regularizers.Regularizer):
    """``strength * sum_j ||(W * M)[:, j]||_2`` over the units j (the kernel's last axis; a convolution's
    filter is its whole (rows, columns, channels) block). The gradient of a zero column is 0 (the
    subgradient the proximal view picks), not NaN."""

    def __init__(self, strength: float, mask=None):
        self.strength = float(strength)
        self.mask = mask

    def __call__(self, x):
        w = x if self.mask is None else x * tf.cast(self.mask, x.dtype)
        sq = tf.reduce_sum(tf.square(_columns(w)), axis=0)
        nonzero = sq > 0
        norms = tf.where(nonzero, tf.sqrt(tf.where(nonzero, sq, tf.ones_like(sq))), tf.zeros_like(sq))
        return self.strength * tf.reduce_sum(norms)

    def get_config(self):
        return {"strength": self.strength}


@keras.saving.register_keras_serializable(package="pruning")
class L1(keras.regularizers.Regularizer):
    """``strength * sum |W * M|``."""

    def __init__(self, strength: float, mask=None):
        self.strength = float(strength)
        self.mask = mask

    def __call__(self, x):
        w = x if self.mask is None else x * tf.cast(self.mask, x.dtype)
        return self.strength * tf.reduce_sum(tf.abs(w))

    def get_config(self):
        return {"strength": self.strength}


PENALTIES = {"group_lasso": GroupLasso, "l1": L1}


class _Penalized:
    """The kernel carries the penalty as its regularizer (built with the mask it multiplies)."""

    def _init_penalty(self, penalty: str, strength: float):
        if penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}, got {penalty!r}")
        self.penalty = penalty
        self.strength = float(strength)

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel.regularizer = PENALTIES[self.penalty](self.strength, self.mask)

    def penalty_value(self):
        """The penalty this layer adds to the loss now."""
        return self.kernel.regularizer(self.kernel)

    def get_config(self):
        return {**super().get_config(), "penalty": self.penalty, "strength": self.strength}


@keras.saving.register_keras_serializable(package="pruning")
class PenalizedDense(_Penalized, MaskedDense):
    """A ``MaskedDense`` whose kernel x mask is penalised (``penalty``: "group_lasso" or "l1", times
    ``strength``) in ``model.fit``'s loss."""

    def __init__(self, units: int, penalty: str = "group_lasso", strength: float = 0.0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_penalty(penalty, strength)


@keras.saving.register_keras_serializable(package="pruning")
class PenalizedConv2D(_Penalized, MaskedConv2D):
    """A ``MaskedConv2D`` whose kernel x mask is penalised, as ``PenalizedDense``."""

    def __init__(self, units: int, penalty: str = "group_lasso", strength: float = 0.0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_penalty(penalty, strength)


# --------------------------------------------------------------------------- hard-concrete gates
def gate_probability(log_alpha, beta: float, gamma: float, zeta: float):
    """P(gate != 0) = sigmoid(log_alpha - beta log(-gamma / zeta)): each gate's term of the expected L0
    norm (Louizos et al. 2018, eq. 12). Works on NumPy arrays and tensors."""
    shift = beta * math.log(-gamma / zeta)
    if isinstance(log_alpha, np.ndarray):
        return 1.0 / (1.0 + np.exp(-(log_alpha - shift)))
    return tf.sigmoid(log_alpha - shift)


def deterministic_gate(log_alpha, gamma: float, zeta: float):
    """The test-time gate min(1, max(0, sigmoid(log_alpha) (zeta - gamma) + gamma))."""
    if isinstance(log_alpha, np.ndarray):
        return np.clip(1.0 / (1.0 + np.exp(-log_alpha)) * (zeta - gamma) + gamma, 0.0, 1.0)
    return tf.clip_by_value(tf.sigmoid(log_alpha) * (zeta - gamma) + gamma, 0.0, 1.0)


def sample_gate(log_alpha, u, beta: float, gamma: float, zeta: float):
    """A training-time gate from uniform noise ``u`` in (0, 1): the hard-concrete sample
    min(1, max(0, sigmoid((log u - log(1 - u) + log_alpha) / beta) (zeta - gamma) + gamma))."""
    s = tf.sigmoid((tf.math.log(u) - tf.math.log(1.0 - u) + log_alpha) / beta)
    return tf.clip_by_value(s * (zeta - gamma) + gamma, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="pruning")
class ExpectedL0(keras.regularizers.Regularizer):
    """``strength * sum_j weight_j * P(gate_j != 0)`` on a ``log_alpha`` vector (``weight_j``: 1, or the
    gate's fan-in with ``per_weight``); on a gate variable that holds log alpha / ``scale``, log alpha is
    read as variable x ``scale``."""

    def __init__(self, strength: float, beta: float, gamma: float, zeta: float, fan_in: int = 1, scale: float = 1.0):
        self.strength, self.beta, self.gamma, self.zeta = float(strength), float(beta), float(gamma), float(zeta)
        self.fan_in, self.scale = int(fan_in), float(scale)

    def __call__(self, variable):
        """The penalty of the gates whose log alpha is ``variable`` x ``scale``."""
        p = gate_probability(tf.cast(variable, "float32") * self.scale, self.beta, self.gamma, self.zeta)
        return self.strength * float(self.fan_in) * tf.reduce_sum(p)

    def get_config(self):
        return {"strength": self.strength, "beta": self.beta, "gamma": self.gamma, "zeta": self.zeta,
                "fan_in": self.fan_in, "scale": self.scale}


@keras.saving.register_keras_serializable(package="pruning")
class ClipLogAlpha(keras.constraints.Constraint):
    """log_alpha kept in [log(1e-2), log(1e2)] after every step, as the paper's code does."""

    def __init__(self, low: float = math.log(1e-2), high: float = math.log(1e2)):
        self.low, self.high = float(low), float(high)

    def __call__(self, w):
        return tf.clip_by_value(w, self.low, self.high)

    def get_config(self):
        return {"low": self.low, "high": self.high}


EPS = 1e-6  # the uniform noise stays in [EPS, 1 - EPS], as in the paper's code


class _Gated:
    """A hard-concrete gate per unit (one sample per training step, shared by the batch).

    The trainable variable is ``gate_variable`` = log alpha / ``gate_lr_mult``; ``log_alpha`` reads it back.
    An optimizer like Adam moves a variable by about its learning rate per step whatever the variable's
    scale, so this makes the gates learn ``gate_lr_mult`` times faster than the weights, with any optimizer.
    (At the study's --lr 1e-3 along its cosine schedule, 10 epochs move log alpha by at most about 1.2 from
    its start at 0, and a deterministic gate is exactly 0 only below log alpha = -2.4: with a multiplier of
    1, the paper's, no gate can close in the study's training.)"""

    UNIT_VARIABLES = ("gate_variable",)  # one value per unit: shrink_model keeps the surviving units' values

    def _init_gates(self, strength, beta, gamma, zeta, droprate_init, per_weight, seed, gate_lr_mult=1.0):
        self.strength, self.beta, self.gamma, self.zeta = float(strength), float(beta), float(gamma), float(zeta)
        self.droprate_init, self.per_weight, self.seed = float(droprate_init), bool(per_weight), int(seed)
        self.gate_lr_mult = float(gate_lr_mult)
        if not (math.isfinite(self.gate_lr_mult) and self.gate_lr_mult > 0):
            raise ValueError(f"gate_lr_mult must be > 0, got {gate_lr_mult!r}")
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape):
        super().build(input_shape)
        m = self.gate_lr_mult
        mean = math.log(1.0 - self.droprate_init) - math.log(self.droprate_init)
        fan_in = int(np.prod(self.kernel.shape[:-1])) if self.per_weight else 1
        self.gate_variable = self.add_weight(
            name="log_alpha", shape=(self.units,), dtype="float32",
            initializer=keras.initializers.RandomNormal(mean / m, 0.01 / m, seed=self.seed),
            regularizer=ExpectedL0(self.strength, self.beta, self.gamma, self.zeta, fan_in, scale=m),
            constraint=ClipLogAlpha(math.log(1e-2) / m, math.log(1e2) / m))

    @property
    def log_alpha(self):
        """Each gate's log alpha, a (units,) float32 tensor (``gate_variable`` x ``gate_lr_mult``)."""
        return tf.cast(self.gate_variable, "float32") * self.gate_lr_mult

    def set_log_alpha(self, values) -> None:
        """Set every gate's log alpha (a (units,) array)."""
        self.gate_variable.assign(np.asarray(values, dtype=np.float32) / np.float32(self.gate_lr_mult))

    def gate(self, training: bool = False):
        """The gates as a (units,) tensor: sampled when ``training``, deterministic otherwise."""
        log_alpha = self.log_alpha
        if training:
            u = keras.random.uniform((self.units,), EPS, 1.0 - EPS, seed=self.seed_generator)
            return sample_gate(log_alpha, u, self.beta, self.gamma, self.zeta)
        return deterministic_gate(log_alpha, self.gamma, self.zeta)

    def gated_kernel(self, training: bool = False):
        kernel = self.effective_kernel()
        return kernel * tf.cast(self.gate(training), kernel.dtype)

    def penalty_value(self):
        return self.gate_variable.regularizer(self.gate_variable)

    def get_config(self):
        return {**super().get_config(), "strength": self.strength, "beta": self.beta, "gamma": self.gamma,
                "zeta": self.zeta, "droprate_init": self.droprate_init, "per_weight": self.per_weight,
                "seed": self.seed, "gate_lr_mult": self.gate_lr_mult}


_GATE_DEFAULTS = dict(strength=0.0, beta=2.0 / 3.0, gamma=-0.1, zeta=1.1, droprate_init=0.5, per_weight=False,
                      seed=0, gate_lr_mult=1.0)


@keras.saving.register_keras_serializable(package="pruning")
class GatedDense(_Gated, MaskedDense):
    """``MaskedDense`` with a hard-concrete gate per unit: ``relu(x @ (W * M * z))``, z sampled per
    training step, deterministic at inference (``fold_gates`` bakes it into W)."""

    def __init__(self, units: int, strength=0.0, beta=2.0 / 3.0, gamma=-0.1, zeta=1.1, droprate_init=0.5,
                 per_weight=False, seed=0, gate_lr_mult=1.0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_gates(strength, beta, gamma, zeta, droprate_init, per_weight, seed, gate_lr_mult)

    def call(self, x, training=None):
        return self._activate(tf.matmul(x, self.gated_kernel(bool(training))))


@keras.saving.register_keras_serializable(package="pruning")
class GatedConv2D(_Gated, MaskedConv2D):
    """``MaskedConv2D`` with a hard-concrete gate per filter, as ``GatedDense``."""

    def __init__(self, units: int, strength=0.0, beta=2.0 / 3.0, gamma=-0.1, zeta=1.1, droprate_init=0.5,
                 per_weight=False, seed=0, gate_lr_mult=1.0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_gates(strength, beta, gamma, zeta, droprate_init, per_weight, seed, gate_lr_mult)

    def call(self, x, training=None):
        return self._activate(tf.nn.conv2d(x, self.gated_kernel(bool(training)), strides=1, padding=self.padding))


# --------------------------------------------------------------------------- targeted dropout
def _smallest_n(values, n: int):
    """0/1 float32 vector: the ``n`` smallest of ``values`` (a flat float32 tensor >= 0), ties to the lower
    index: what a stable argsort's first ``n`` give, without sorting. A float32 >= 0 orders as its bits read
    as an int32, so a bisection over the bits finds the n-th smallest value T in at most 31 counting passes;
    every value below T is taken, and of those equal to T the first ones, by index, up to n."""
    size = int(values.shape[0])
    if n <= 0:
        return tf.zeros((size,), "float32")
    if n >= size:
        return tf.ones((size,), "float32")
    bits = tf.bitcast(values, tf.int32)

    def narrower(lo, hi):
        mid = lo + (hi - lo) // 2
        enough = tf.reduce_sum(tf.cast(bits <= mid, tf.int32)) >= n
        return tf.where(enough, lo, mid + 1), tf.where(enough, mid, hi)

    _, t = tf.while_loop(lambda lo, hi: lo < hi, narrower, (tf.constant(0, tf.int32), tf.reduce_max(bits)))
    below = bits < t
    ties = tf.cast(bits == t, tf.int32)
    room = n - tf.reduce_sum(tf.cast(below, tf.int32))
    return tf.cast(below | ((ties > 0) & (tf.cumsum(ties) <= room)), "float32")


def targeted_candidates(kernel, gamma: float, granularity: str, full_shape=None):
    """0/1 tensor of the kernel's shape: the ``n_pruned(count, 100 gamma)`` smallest |w| of the layer
    (granularity "weight"), or the whole columns of its smallest-L2-norm units ("unit"); ties go to the
    lower flat index, as ``pruning.core.masks.lowest_mask`` breaks them.

    ``full_shape`` is the kernel shape of the unpruned layer when ``kernel`` is a physically shrunk one
    (``pruning.deploy.shrink``). The count is then taken of the full layer, and the removed weights (units)
    fill it first, as their zeros would in the full-size masked layer: the shrunk layer's candidates are
    only what is left of the count (none once 100 gamma % or more is removed). For units, training shrunk
    then drops what training masked at full size would. (For weights the match is not exact: a removed
    unit's outgoing weights are not zeros in the full-size network, only unused.)""" 
    shape = tuple(int(d) for d in kernel.shape)
    full = shape if full_shape is None else tuple(int(d) for d in full_shape)
    k32 = tf.stop_gradient(tf.cast(kernel, "float32"))
    if granularity == "weight":
        size, full_size = int(np.prod(shape)), int(np.prod(full))
        n = max(0, pmasks.n_pruned(full_size, 100.0 * gamma) - (full_size - size))
        return tf.reshape(_smallest_n(tf.reshape(tf.abs(k32), (-1,)), n), shape)
    if granularity == "unit":
        units = shape[-1]
        n = max(0, pmasks.n_pruned(full[-1], 100.0 * gamma) - (full[-1] - units))
        norms = tf.reduce_sum(tf.square(_columns(k32)), axis=0)
        order = tf.argsort(norms, stable=True)[:n]
        per_unit = tf.scatter_nd(order[:, None], tf.ones((n,), "float32"), (units,))
        return tf.broadcast_to(per_unit, shape)
    raise ValueError(f"granularity must be weight or unit, got {granularity!r}")


def targeted_drop(kernel, gamma: float, alpha: float, granularity: str, seed, full_shape=None):
    """0/1 tensor of the kernel's shape, 1 where an entry is dropped this step: each candidate
    (``targeted_candidates``, ``full_shape`` as there) independently with probability ``alpha`` (a unit as a
    whole)."""
    shape = tuple(int(d) for d in kernel.shape)
    candidates = targeted_candidates(kernel, gamma, granularity, full_shape)
    noise_shape = shape if granularity == "weight" else (shape[-1],)
    hit = tf.cast(keras.random.uniform(noise_shape, seed=seed) < alpha, "float32")
    return candidates * tf.broadcast_to(hit, shape)


class _Targeted:
    """Targeted dropout of the kernel (x mask) while training; the plain forward pass at inference."""

    def _init_td(self, td_gamma, td_alpha, td_granularity, seed):
        if td_granularity not in ("weight", "unit"):
            raise ValueError(f"td_granularity must be weight or unit, got {td_granularity!r}")
        self.td_gamma, self.td_alpha = float(td_gamma), float(td_alpha)
        self.td_granularity, self.seed = str(td_granularity), int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def training_kernel(self, training: bool = False):
        kernel = self.effective_kernel()
        if not training:
            return kernel
        drop = targeted_drop(kernel, self.td_gamma, self.td_alpha, self.td_granularity, self.seed_generator,
                             self.full_shape)
        return kernel * tf.cast(1.0 - drop, kernel.dtype)

    def get_config(self):
        return {**super().get_config(), "td_gamma": self.td_gamma, "td_alpha": self.td_alpha,
                "td_granularity": self.td_granularity, "seed": self.seed}


@keras.saving.register_keras_serializable(package="pruning")
class TargetedDropoutDense(_Targeted, MaskedDense):
    """``MaskedDense`` with targeted dropout of its kernel while training (Gomez et al. 2019)."""

    def __init__(self, units: int, td_gamma=0.5, td_alpha=0.5, td_granularity="weight", seed=0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_td(td_gamma, td_alpha, td_granularity, seed)

    def call(self, x, training=None):
        return self._activate(tf.matmul(x, self.training_kernel(bool(training))))


@keras.saving.register_keras_serializable(package="pruning")
class TargetedDropoutConv2D(_Targeted, MaskedConv2D):
    """``MaskedConv2D`` with targeted dropout of its kernel while training."""

    def __init__(self, units: int, td_gamma=0.5, td_alpha=0.5, td_granularity="weight", seed=0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_td(td_gamma, td_alpha, td_granularity, seed)

    def call(self, x, training=None):
        return self._activate(tf.nn.conv2d(x, self.training_kernel(bool(training)), strides=1,
                                           padding=self.padding))


# --------------------------------------------------------------------------- sparse variational dropout
K1, K2, K3 = 0.63576, 1.87320, 1.48695  # Molchanov et al. 2017, eq. 14
LOG_ALPHA_CLIP = 10.0  # log alpha is clipped to [-10, 10], as in the authors' code


def svd_log_alpha(kernel, log_sigma2):
    """log alpha = log sigma^2 - log theta^2, clipped to [-10, 10] (NumPy arrays or tensors)."""
    if isinstance(kernel, np.ndarray):
        return np.clip(log_sigma2 - np.log(kernel.astype(np.float64) ** 2 + 1e-8), -LOG_ALPHA_CLIP, LOG_ALPHA_CLIP)
    return tf.clip_by_value(log_sigma2 - tf.math.log(tf.square(kernel) + 1e-8), -LOG_ALPHA_CLIP, LOG_ALPHA_CLIP)


def svd_kl(log_alpha):
    """Molchanov et al.'s approximation of each weight's KL divergence to the log-uniform prior:
    -(k1 sigmoid(k2 + k3 log alpha) - 0.5 log(1 + exp(-log alpha)) - k1), >= 0, falling as alpha grows."""
    return -(K1 * tf.sigmoid(K2 + K3 * log_alpha) - 0.5 * tf.math.softplus(-log_alpha) - K1)


@keras.saving.register_keras_serializable(package="pruning")
class SparseVDKL(keras.regularizers.Regularizer):
    """``strength * sum (KL x mask)`` on a ``log_sigma2`` variable, given the kernel it belongs to."""

    def __init__(self, strength: float, kernel=None, mask=None):
        self.strength, self.kernel, self.mask = float(strength), kernel, mask

    def __call__(self, log_sigma2):
        kl = svd_kl(svd_log_alpha(tf.cast(self.kernel, "float32"), tf.cast(log_sigma2, "float32")))
        if self.mask is not None:
            kl = kl * tf.cast(self.mask, kl.dtype)
        return self.strength * tf.reduce_sum(kl)

    def get_config(self):
        return {"strength": self.strength}


class _SparseVD:
    """Sparse variational dropout of every weight (Molchanov et al. 2017): a variance ``exp(log_sigma2)``
    per weight, the local reparameterisation trick while training (a Gaussian pre-activation of mean
    x (W M) and variance x^2 (sigma^2 M)), and at inference the weights with log alpha >= ``threshold``
    set to zero."""

    def _init_svd(self, strength, threshold, log_sigma2_init, seed):
        self.strength, self.threshold = float(strength), float(threshold)
        self.log_sigma2_init, self.seed = float(log_sigma2_init), int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape):
        super().build(input_shape)
        self.log_sigma2 = self.add_weight(
            name="log_sigma2", shape=tuple(self.kernel.shape), dtype="float32",
            initializer=keras.initializers.Constant(self.log_sigma2_init),
            regularizer=SparseVDKL(self.strength, self.kernel, self.mask))

    def log_alpha(self):
        return svd_log_alpha(tf.cast(self.kernel, "float32"), tf.cast(self.log_sigma2, "float32"))

    def inference_kernel(self):
        """kernel x mask x (log alpha < threshold): what the layer computes with at inference."""
        kernel = self.effective_kernel()
        return kernel * tf.cast(self.log_alpha() < self.threshold, kernel.dtype)

    def _forward(self, x, training, op):
        if not training:
            return self._activate(op(x, self.inference_kernel()))
        kernel = self.effective_kernel()
        variance = tf.exp(tf.cast(self.log_sigma2, kernel.dtype))
        if self.mask is not None:
            variance = variance * tf.cast(self.mask, kernel.dtype)
        mean = op(x, kernel)
        std = tf.sqrt(op(tf.square(x), variance) + tf.cast(1e-8, mean.dtype))
        noise = keras.random.normal(tf.shape(mean), seed=self.seed_generator, dtype=mean.dtype)
        return self._activate(mean + std * noise)

    def penalty_value(self):
        return self.log_sigma2.regularizer(self.log_sigma2)

    def get_config(self):
        return {**super().get_config(), "strength": self.strength, "threshold": self.threshold,
                "log_sigma2_init": self.log_sigma2_init, "seed": self.seed}


@keras.saving.register_keras_serializable(package="pruning")
class SparseVDDense(_SparseVD, MaskedDense):
    """``MaskedDense`` with sparse variational dropout of its weights."""

    def __init__(self, units: int, strength=0.0, threshold=3.0, log_sigma2_init=-10.0, seed=0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_svd(strength, threshold, log_sigma2_init, seed)

    def call(self, x, training=None):
        return self._forward(x, bool(training), tf.matmul)


@keras.saving.register_keras_serializable(package="pruning")
class SparseVDConv2D(_SparseVD, MaskedConv2D):
    """``MaskedConv2D`` with sparse variational dropout of its weights."""

    def __init__(self, units: int, strength=0.0, threshold=3.0, log_sigma2_init=-10.0, seed=0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_svd(strength, threshold, log_sigma2_init, seed)

    def call(self, x, training=None):
        return self._forward(x, bool(training), lambda a, k: tf.nn.conv2d(a, k, strides=1, padding=self.padding))


# --------------------------------------------------------------------------- converters
VARIANTS = {  # plain class -> {method family: its variant}
    MaskedDense: {"penalty": PenalizedDense, "gates": GatedDense, "targeted": TargetedDropoutDense,
                  "svd": SparseVDDense},
    MaskedConv2D: {"penalty": PenalizedConv2D, "gates": GatedConv2D, "targeted": TargetedDropoutConv2D,
                   "svd": SparseVDConv2D},
}
SPARSIFY_CLASSES = tuple(cls for family in VARIANTS.values() for cls in family.values())
_EXTRA_KEYS = {"penalty", "strength", "beta", "gamma", "zeta", "droprate_init", "per_weight", "gate_lr_mult", "seed", "td_gamma",
               "td_alpha", "td_granularity", "threshold", "log_sigma2_init"}


def _plain_class(layer) -> type:
    return MaskedConv2D if isinstance(layer, MaskedConv2D) else MaskedDense


def _refuse_graph_models(model) -> None:
    from ..graph.report import is_graph_model

    if is_graph_model(model):
        raise ValueError("pruning.sparsify works on models of MaskedDense / MaskedConv2D layers (pruning.build_mlp, "
                         "build_lenet5, your own chains of them), not on models made by pruning.prunable")


def convert(model: keras.Model, changes: dict[str, tuple[type, dict]], transfer=None) -> keras.Model:
    """A new model of ``model``'s architecture whose layers named in ``changes`` are of another class
    (``name -> (class, config updates)``), with every weight copied by layer and weight name (a weight the
    new layer does not have is dropped; one the old layer lacks keeps its initial value). ``transfer(old,
    new)`` is then called for each changed layer (to fold gates, say)."""
    config = model.get_config()
    for entry in config["layers"]:
        name = entry["config"]["name"]
        if name not in changes:
            continue
        cls, updates = changes[name]
        layer_config = {k: v for k, v in entry["config"].items() if k not in _EXTRA_KEYS}
        layer_config.update(updates)
        entry.update(class_name=cls.__name__, module=cls.__module__,
                     registered_name=keras.saving.get_registered_name(cls), config=layer_config)
    new = type(model).from_config(config)
    for layer in new.layers:
        try:
            old = model.get_layer(layer.name)
        except ValueError:
            continue
        old_weights = {w.name: w for w in old.weights}
        for w in layer.weights:
            source = old_weights.get(w.name)
            if source is not None and tuple(source.shape) == tuple(w.shape):
                w.assign(source)
        if layer.name in changes and transfer is not None:
            transfer(old, layer)
    return new


def _targets(model) -> list[MaskedLayer]:
    _refuse_graph_models(model)
    layers = masked_layers(model)
    if not layers:
        raise ValueError("the model has no prunable MaskedDense / MaskedConv2D layers to prepare")
    done = [l.name for l in layers if isinstance(l, SPARSIFY_CLASSES)]
    if done:
        raise ValueError(f"layers {', '.join(done)} are already prepared by a sparsify method; call "
                         f"pruning.sparsify.finalize(model) first")
    return layers


def add_penalty(model: keras.Model, penalty: str, strength: float) -> keras.Model:
    """``model`` with every prunable layer penalised (``penalty``: "group_lasso" or "l1", times ``strength``)."""
    return convert(model, {l.name: (VARIANTS[_plain_class(l)]["penalty"], {"penalty": penalty, "strength": strength})
                           for l in _targets(model)})


def add_gates(model: keras.Model, params=None, seed: int = 0) -> keras.Model:
    """``model`` with a hard-concrete gate on every unit of every prunable layer (``params``: an
    ``L0Params``; the defaults when None); the weights and masks are kept, the gates start at
    ``params.l0_droprate_init``.

    Use::

        gated = pruning.sparsify.add_gates(pruning.build_mlp(784))
        gated.compile(...); gated.fit(...)                 # cross-entropy + lambda x expected L0
        plain = pruning.sparsify.fold_gates(gated)         # MaskedDense again, gates baked into the kernels
    """
    from .params import L0Params

    p = params if params is not None else L0Params()
    changes = {}
    for i, l in enumerate(_targets(model)):
        changes[l.name] = (VARIANTS[_plain_class(l)]["gates"], dict(
            strength=p.l0_lambda, beta=p.l0_beta, gamma=p.l0_gamma, zeta=p.l0_zeta,
            droprate_init=p.l0_droprate_init, per_weight=p.l0_per_weight, seed=_seed(seed, i),
            gate_lr_mult=p.l0_gate_lr_mult))
    return convert(model, changes)


def add_targeted_dropout(model: keras.Model, gamma: float = 0.5, alpha: float = 0.5, granularity: str = "weight",
                         seed: int = 0) -> keras.Model:
    """``model`` with targeted dropout (``gamma``, ``alpha``, on "weight"s or "unit"s) on every prunable
    layer while training."""
    changes = {l.name: (VARIANTS[_plain_class(l)]["targeted"], dict(td_gamma=gamma, td_alpha=alpha,
                                                                   td_granularity=granularity, seed=_seed(seed, i)))
               for i, l in enumerate(_targets(model))}
    return convert(model, changes)


def add_sparse_vd(model: keras.Model, params=None, seed: int = 0) -> keras.Model:
    """``model`` with sparse variational dropout on every prunable layer (``params``: ``SparseVDParams``)."""
    from .params import SparseVDParams

    p = params if params is not None else SparseVDParams()
    changes = {l.name: (VARIANTS[_plain_class(l)]["svd"], dict(strength=p.svd_lambda, threshold=p.svd_threshold,
                                                              log_sigma2_init=p.svd_log_sigma2_init,
                                                              seed=_seed(seed, i)))
               for i, l in enumerate(_targets(model))}
    return convert(model, changes)


def svd_scores(model: keras.Model) -> dict[str, np.ndarray]:
    """Layer name -> minus log alpha of each weight: the noisiest weights (largest alpha) go first."""
    out = {}
    for layer in masked_layers(model):
        if not isinstance(layer, _SparseVD):
            raise ValueError(f"layer {layer.name} has no variational dropout (pruning.sparsify.apply makes it)")
        out[layer.name] = -svd_log_alpha(layer.kernel.numpy(), layer.log_sigma2.numpy().astype(np.float64))
    return out


def _fold(old, new) -> None:
    if isinstance(old, _Gated):
        z = np.asarray(old.gate(False), dtype=np.float32)
        new.kernel.assign(old.kernel.numpy() * z)
    elif isinstance(old, _SparseVD):
        keep = np.asarray(old.log_alpha()) < old.threshold
        new.kernel.assign(old.kernel.numpy() * keep)


def to_plain(model: keras.Model) -> keras.Model:
    """``model`` with every sparsify layer turned back into a ``MaskedDense`` / ``MaskedConv2D`` (weights and
    masks kept; gated layers' deterministic gates multiplied into their kernels' columns); ``model``
    itself when it has none."""
    layers = [l for l in model.layers if isinstance(l, SPARSIFY_CLASSES)]
    if not layers:
        return model
    return convert(model, {l.name: (_plain_class(l), {}) for l in layers}, transfer=_fold)


def fold_gates(model: keras.Model) -> keras.Model:
    """The gated ``model`` as a plain network: each ``GatedDense`` / ``GatedConv2D`` becomes a
    ``MaskedDense`` / ``MaskedConv2D`` whose kernel is multiplied column by column by the deterministic
    gates (mask kept), so that it computes what the gated model computes at inference; a unit whose gate
    is 0 has a zero column, and ``shrink_model`` removes it."""
    if not any(isinstance(l, _Gated) for l in model.layers):
        raise ValueError("the model has no gated layers to fold (pruning.sparsify.add_gates makes them)")
    return to_plain(model)


def gate_scores(model: keras.Model) -> dict[str, np.ndarray]:
    """Layer name -> each unit's probability of a nonzero gate (the expected-L0 term), for the gated
    prunable layers: the units with the smallest go first."""
    out = {}
    for layer in masked_layers(model):
        if not isinstance(layer, _Gated):
            raise ValueError(f"layer {layer.name} has no gates (pruning.sparsify.add_gates makes them)")
        out[layer.name] = gate_probability(np.asarray(layer.log_alpha, dtype=np.float64), layer.beta, layer.gamma,
                                           layer.zeta)
    return out


def penalty(model: keras.Model) -> float:
    """The sum of the sparsify penalties ``model.fit`` adds to the loss now (0.0 without any)."""
    total = 0.0
    for layer in model.layers:
        if hasattr(layer, "penalty_value"):
            total += float(layer.penalty_value())
    return total
