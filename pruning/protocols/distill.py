"""Small dense students (strategies ``student`` and ``distill``): is a pruned network better than a dense
network that is simply as small?

At each sparsity k the student is a *dense* network of the study's family (the same ``--model``, the same
number of layers) whose widths are scaled so that its weights number as many as the nonzero weights of
the weight-pruned network at k (``target_params``). It is trained on the labels alone (``student``), or
on the dense network's logits softened at temperature T plus the labels (``distill``; Hinton, Vinyals &
Dean 2015, "Distilling the knowledge in a neural network"); the dense network of the study is the teacher.

**Sizes.** Every kernel layer l (``pruning.core.layers.weight_layers``: convolutions, dense layers, the
output) has ``fan_in_l = prod(kernel.shape[:-1])`` rows and ``c_l`` units (its last axis). Its input
channels ``c_{l-1}`` are the previous kernel layer's units; for the first layer they are
``kernel.shape[-2]`` (the image's channels for a convolution, e.g. 1 for LeNet-5; the input features for
a dense layer, e.g. 784 for the MLP). So ``rows_per_channel_l = fan_in_l / c_{l-1}`` is what a layer
multiplies per input channel: 25 for a 5x5 convolution, 16 for the dense layer after LeNet-5's 4x4x50
flatten (4x4 positions), 1 for a dense layer after a dense layer or on the flat input. It does not depend
on any width, so one build of the full-size network gives the whole structure, and a network of widths
``c_0 .. c_{L-2}`` (the output's ``c_{L-1}`` fixed, ``c_{-1}`` the input's channels) has

    param_count = sum_l rows_per_channel_l * c_{l-1} * c_l

weights (all layers are bias-free).

**The rule.** Every hidden width (``--filters``, then ``--hidden``) becomes ``max(1, round(s x original))``
(round half up) for one scale s in (0, 1]; s is found by bisection: the two neighbouring achievable sizes
around the target (the largest at or below it and the smallest above it) are bracketed, and the nearer
one is taken (a tie: the smaller). Targets at or above the full network give the full network (s = 1);
targets below the all-ones network give widths of 1.

**The guarantee.** The student's ``param_count`` is the size the rule can reach that is nearest the target
(``param_count`` never decreases with s, and the bisection, in exact arithmetic, narrows s to one
scale where widths change), so it is at most
half a *step* from the target, a step being the change between two neighbouring reachable sizes: one more
unit in each layer whose ``s x w`` crosses a half at that scale. ``param_count`` is linear in each width, so
adding or removing one unit of layer l changes it by the same ``rows_l c_{l-1} + rows_{l+1} c_{l+1}``
(``unit_changes``; the largest of them: ``one_unit_change``). When one layer crosses alone, half a step is
half that layer's one-unit change, so

    |param_count(student) - target| <= one_unit_change(student)      ("within one unit of width")

(with a factor 2 to spare). When several layers cross at the same s (equal original widths always do, such
as the MLP's 1000 and 1000) a step is about the sum of their one-unit changes, and half of it can exceed
the largest: the rule (one s for every layer) cannot reach anything in between. For the default networks
and k = 1, 2, ..., 99 % the bound holds at every k for LeNet-5, and at every k but 29 % for the MLP, which
misses it by 1 % of a unit (1607 weights off, one unit of hidden1 is 1597: 1000, 1000 and 200 all cross at
s = 0.8125); ``size_error`` measures it (<= 1: within one unit). tests/test_distill.py checks the nearest
size against an exact enumeration of the reachable sizes, the bound at the study's sparsities, and that
list of exceptions.

**The loss.** ``distillation_loss(T, alpha)`` is an ordinary Keras loss whose ``y_true`` packs the label and
the teacher's logits in one float32 row (``pack_targets``), so ``model.fit`` needs nothing special:

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(label, softmax(s)),

averaged over the batch (t: the teacher's logits, s: the student's). The T^2 keeps the soft term's
gradients the same size as T changes (Hinton et al. 2015, section 2). ``distillation_loss_np`` is the
NumPy reference of the same formula.

This module imports NumPy only; TensorFlow and Keras are imported inside the functions that need them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..core.masks import n_pruned

# the two strategies this module trains; registered (label, colour, help) in pruning.core.masks.STRATEGIES
STUDENTS = ("student", "distill")


# --------------------------------------------------------------------------- sizes
def target_params(model, sparsity: float) -> int:
    """The nonzero weights of ``model`` (built, dense) after weight pruning at ``sparsity`` percent per
    prunable layer: each prunable kernel keeps ``size - n_pruned(size, k)`` entries, the others all of
    theirs."""
    from ..core.layers import weight_layers

    total = 0
    for layer in weight_layers(model):
        size = int(np.prod(layer.kernel.shape))
        total += size - n_pruned(size, sparsity) if layer.prunable else size
    return total


@dataclass(frozen=True)
class Structure:
    """What the size of a network of the family depends on, read once from a full-size build.

    ``rows[l]``: rows per input channel of kernel layer l (``rows_per_channel``); ``in_channels``: the
    first layer's input channels (``c_{-1}``); ``widths``: the full network's hidden widths (the units of
    every kernel layer but the last); ``out_units``: the output layer's units (fixed)."""

    in_channels: int
    rows: tuple[int, ...]
    widths: tuple[int, ...]
    out_units: int

    def channels(self, widths) -> list[int]:
        """``[c_{-1}, c_0, ..., c_{L-1}]`` for hidden ``widths``."""
        widths = [int(w) for w in widths]
        if len(widths) != len(self.rows) - 1:
            raise ValueError(f"{len(widths)} widths for a network of {len(self.rows) - 1} hidden layers")
        return [self.in_channels, *widths, self.out_units]


def rows_per_channel(model) -> list[int]:
    """``fan_in / in_channels`` of each kernel layer of ``model``: in_channels is the previous kernel
    layer's units, or ``kernel.shape[-2]`` for the first layer (so 1 for a dense layer on flat input, and
    the kernel's height x width for a convolution). ValueError when a fan-in is not a whole number of
    input channels (a layer that does not keep channels last)."""
    from ..core.layers import weight_layers

    rows, prev = [], None
    for layer in weight_layers(model):
        shape = tuple(int(d) for d in layer.kernel.shape)
        fan_in = int(np.prod(shape[:-1]))
        in_channels = shape[-2] if prev is None else prev
        if fan_in % in_channels:
            raise ValueError(f"layer {layer.name}: a fan-in of {fan_in} is not a whole number of its "
                             f"{in_channels} input channels")
        rows.append(fan_in // in_channels)
        prev = shape[-1]
    return rows


def structure(model) -> Structure:
    """The ``Structure`` of ``model`` (built; any widths of its family)."""
    from ..core.layers import weight_layers

    layers = weight_layers(model)
    if not layers:
        raise ValueError("the model has no kernel layers")
    return Structure(in_channels=int(layers[0].kernel.shape[-2]), rows=tuple(rows_per_channel(model)),
                     widths=tuple(int(l.kernel.shape[-1]) for l in layers[:-1]),
                     out_units=int(layers[-1].kernel.shape[-1]))


def param_count(struct: Structure, widths) -> int:
    """The weights of the network of ``struct``'s family with hidden ``widths``:
    ``sum_l rows_l * c_{l-1} * c_l``."""
    c = struct.channels(widths)
    return int(sum(r * a * b for r, a, b in zip(struct.rows, c[:-1], c[1:])))


def unit_changes(struct: Structure, widths) -> list[int]:
    """For each hidden layer l, how much ``param_count`` changes when layer l gains or loses one unit:
    ``rows_l * c_{l-1} + rows_{l+1} * c_{l+1}`` (the count is linear in each width)."""
    c = struct.channels(widths)
    return [struct.rows[l] * c[l] + struct.rows[l + 1] * c[l + 2] for l in range(len(struct.rows) - 1)]


def one_unit_change(struct: Structure, widths) -> int:
    """The largest change of ``param_count`` from adding or removing one unit in any single hidden layer
    (0 for a network without hidden layers)."""
    return max(unit_changes(struct, widths), default=0)


def scaled_widths(widths, scale) -> tuple[int, ...]:
    """``max(1, round(scale x w))`` for each width, round half up, in exact arithmetic (``scale`` a float or
    a Fraction, taken at its exact value): two widths whose ``scale x w`` cross a half at the same scale
    change together, whatever the floats' rounding."""
    scale = Fraction(scale)
    return tuple(max(1, math.floor(scale * int(w) + Fraction(1, 2))) for w in widths)


def student_widths(struct: Structure, target: int) -> tuple[tuple[int, ...], float]:
    """(hidden widths, scale s): ``scaled_widths(struct.widths, s)`` whose ``param_count`` is the
    reachable one nearest ``target`` (a tie: the smaller), never above the full network's.

    Bisection over exact (dyadic) scales keeps ``param_count(lo) <= target < param_count(hi)`` (the count
    never decreases with s) until ``hi - lo < 1 / (2 w_max^2)``: distinct scales where a width changes,
    ``(m - 1/2) / w``, are at least that far apart, so the widths at hi are those at lo plus one unit in
    each layer that changes at the one such scale between them. s is returned as a float, exactly (a
    dyadic fraction of few bits)."""
    target = int(target)
    full = param_count(struct, struct.widths)
    if target >= full:
        return tuple(struct.widths), 1.0
    ones = tuple(1 for _ in struct.widths)
    if target <= param_count(struct, ones):
        return ones, 1.0 / max(struct.widths, default=1)  # a scale that rounds every width to 1
    lo, hi = Fraction(0), Fraction(1)  # count(lo) = the all-ones network's <= target < count(hi) = full
    gap = Fraction(1, 2 * max(struct.widths) ** 2)
    while hi - lo >= gap:
        mid = (lo + hi) / 2
        if param_count(struct, scaled_widths(struct.widths, mid)) <= target:
            lo = mid
        else:
            hi = mid
    w_lo, w_hi = scaled_widths(struct.widths, lo), scaled_widths(struct.widths, hi)
    p_lo, p_hi = param_count(struct, w_lo), param_count(struct, w_hi)
    return (w_lo, float(lo)) if target - p_lo <= p_hi - target else (w_hi, float(hi))


def size_error(struct: Structure, widths, target: int) -> float:
    """``|param_count(widths) - target| / one_unit_change(widths)``: the guarantee is that it is <= 1
    (0 when the count is exact)."""
    gap = abs(param_count(struct, widths) - int(target))
    unit = one_unit_change(struct, widths)
    return 0.0 if gap == 0 else (math.inf if unit == 0 else gap / unit)


def _split(model_cfg, n_layers: int, full_widths):
    filters, hidden = tuple(model_cfg.filters), tuple(model_cfg.hidden)
    if len(filters) + len(hidden) != n_layers or tuple(full_widths) != filters + hidden:
        raise ValueError(f"--model {model_cfg.name}: its hidden kernel layers have widths {tuple(full_widths)}, not "
                         f"--filters {filters} then --hidden {hidden}, so a student of its family cannot be built "
                         f"by scaling them (the model does not support the student strategies)")
    return len(filters)


def student_config(model_cfg, model, target: int):
    """The ModelConfig of the dense student of ``model_cfg``'s family with about ``target`` weights:
    ``model`` is ``build_model(input_dim, model_cfg)`` (built once, for its structure); every width of
    ``filters`` and ``hidden`` becomes ``max(1, round(s x original))`` for the one scale s of
    ``student_widths``: the reachable size nearest ``target``, within one unit of width of it unless several
    layers' widths change at the same scale there (see the module)."""
    struct = structure(model)
    n_filters = _split(model_cfg, len(struct.widths), struct.widths)
    widths, _ = student_widths(struct, target)
    return dataclasses.replace(model_cfg, filters=tuple(widths[:n_filters]), hidden=tuple(widths[n_filters:]))


# --------------------------------------------------------------------------- the loss
def pack_targets(labels, teacher_logits) -> np.ndarray:
    """float32 rows ``[label, teacher_logit_0, ..., teacher_logit_{C-1}]``, shape (N, 1 + C): the
    ``y_true`` of ``distillation_loss`` and ``packed_accuracy`` (labels below 2**24 are exact)."""
    labels = np.asarray(labels)
    logits = np.asarray(teacher_logits, dtype=np.float32)
    if logits.ndim != 2 or labels.ndim != 1 or len(labels) != len(logits):
        raise ValueError(f"pack_targets needs N labels and N x C logits, got shapes {labels.shape} and {logits.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= logits.shape[1] or np.any(labels != np.round(labels))):
        raise ValueError(f"labels must be whole numbers in [0, {logits.shape[1]}) (the logits' classes)")
    return np.concatenate([labels.astype(np.float32)[:, None], logits], axis=1)


def teacher_logits(teacher_model, x, batch_size: int = 1024) -> np.ndarray:
    """The teacher's outputs (logits) for ``x``, float32 (N, C), computed in batches (inference mode)."""
    x = np.asarray(x)
    outs = [np.asarray(teacher_model(x[i:i + batch_size], training=False), dtype=np.float32)
            for i in range(0, len(x), int(batch_size))]
    if not outs:
        return np.zeros((0, int(teacher_model.outputs[0].shape[-1])), np.float32)
    return np.concatenate(outs, axis=0)


def _check(temperature: float, alpha: float) -> tuple[float, float]:
    temperature, alpha = float(temperature), float(alpha)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"the temperature must be positive, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return temperature, alpha


def distillation_loss(temperature: float, alpha: float):
    """A Keras loss ``fn(y_true, y_pred)``: ``y_true`` the packed targets (B, 1 + C) of ``pack_targets``,
    ``y_pred`` the student's logits (B, C); the batch mean of
    ``alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(label, s)`` (a scalar).

    Use (``pack_targets`` and ``packed_accuracy`` are in ``pruning.protocols.distill``)::

        student.compile("adam", loss=pruning.distillation_loss(4.0, 0.9), metrics=[packed_accuracy()])
        student.fit(x, pack_targets(y, teacher.predict(x)), epochs=10)
    """
    import tensorflow as tf

    T, a = _check(temperature, alpha)

    def distillation(y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        labels = tf.cast(y_true[:, 0], tf.int32)
        teacher = y_true[:, 1:]
        log_p_teacher = tf.nn.log_softmax(teacher / T, axis=-1)
        log_p_student = tf.nn.log_softmax(y_pred / T, axis=-1)
        kl = tf.reduce_sum(tf.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=y_pred)
        return tf.reduce_mean(a * T * T * kl + (1.0 - a) * ce)

    distillation.__name__ = "distillation"
    return distillation


def packed_accuracy():
    """A Keras metric named ``accuracy``: the fraction of argmax(logits) equal to the label in column 0
    of the packed targets (so a distilled student's progress reads like every run's)."""
    import keras
    import tensorflow as tf

    def accuracy(y_true, y_pred):
        labels = tf.cast(y_true[:, 0], tf.int64)
        return tf.cast(tf.equal(tf.argmax(y_pred, axis=-1), labels), tf.float32)

    return keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")


def _log_softmax_np(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def distillation_loss_np(labels, teacher_logits, student_logits, temperature: float, alpha: float) -> float:
    """NumPy (float64) reference of ``distillation_loss``: the batch mean of
    ``alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(label, s)``."""
    T, a = _check(temperature, alpha)
    labels = np.asarray(labels).astype(np.int64)
    t = np.asarray(teacher_logits, dtype=np.float64)
    s = np.asarray(student_logits, dtype=np.float64)
    log_pt, log_ps = _log_softmax_np(t / T), _log_softmax_np(s / T)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=-1)
    ce = -_log_softmax_np(s)[np.arange(len(labels)), labels]
    return float(np.mean(a * T * T * kl + (1.0 - a) * ce))
