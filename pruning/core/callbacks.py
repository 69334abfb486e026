"""Applying masks to a model, and the Keras callback that does it during training."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from . import masks
from .layers import masked_layers


def layer_infos(model: keras.Model, seed: int = 0) -> list[masks.LayerInfo]:
    """What each prunable layer's score may need: its position, original width, kept units, the seed."""
    return [masks.LayerInfo(index=i, full_units=layer.full_shape[-1], kept=layer.kept_units, seed=int(seed))
            for i, layer in enumerate(masked_layers(model))]


@dataclass(frozen=True)
class MaskSet:
    """The masks of a model's prunable layers at one sparsity, computed once (``compute_model_masks``)
    and applied as often as needed (``assign_masks``, ``masks_applied``)."""

    strategy: str
    sparsity: float
    masks: dict  # layer name -> 0/1 array, the kernel's shape
    thresholds: dict  # layer name -> the largest pruned score


def compute_model_masks(model: keras.Model, strategy: str, sparsity: float, seed: int = 0) -> MaskSet:
    """The masks that prune ``model``'s prunable layers to ``sparsity`` percent with ``strategy``;
    the model is not changed. Existing masks are kept (their entries are pruned first); ``seed``
    (the run's) decides a random strategy's draw. For a model made by ``pruning.prunable``, the masks
    ``pruning.graph.prune`` would leave (``graph_masks``)."""
    if _graph_model(model):
        return graph_masks(model, strategy, sparsity, seed)
    strat = masks.get(strategy)
    layers = masked_layers(model)
    kernels = [layer.kernel.numpy() for layer in layers]
    infos = layer_infos(model, seed)
    new = masks.compute_masks(strategy, kernels, sparsity, [layer.mask.numpy() for layer in layers],
                              [_removed(strat, layer) for layer in layers], infos)
    return MaskSet(strategy, float(sparsity), {l.name: m for l, m in zip(layers, new)},
                   {l.name: masks.threshold(strategy, k, m, i) for l, k, m, i in zip(layers, kernels, new, infos)})


def _graph_mask_variables(model) -> dict:
    """``"layer/mask"`` -> every mask variable of a ``pruning.prunable`` model's twins (kernel, bias and
    BatchNormalization channel masks), with the weight each masks (None for a channel mask)."""
    from ..graph.layers import graph_masked_layers

    out = {}
    for layer in graph_masked_layers(model):
        for weight, mask in layer.mask_names.items():
            out[f"{layer.name}/{mask}"] = (getattr(layer, mask), getattr(layer, weight))
        if getattr(layer, "channel_mask", None) is not None:
            out[f"{layer.name}/channel_mask"] = (layer.channel_mask, None)
    return out


def _graph_state(model) -> list:
    """Every variable of a ``pruning.prunable`` model's twins with its value: weights and masks."""
    from ..graph.layers import graph_masked_layers

    return [(v, np.array(v)) for layer in graph_masked_layers(model) for v in layer.weights]


def _restore(state: list) -> None:
    for variable, value in state:
        variable.assign(value)


def graph_masks(model, strategy: str, sparsity: float, seed: int = 0) -> MaskSet:
    """The ``MaskSet`` of a model made by ``pruning.prunable``: every mask ``pruning.graph.prune(model,
    strategy, sparsity, seed)`` would leave (its kernel, bias and BatchNormalization channel masks, by
    ``"layer/mask"``), the model left as it was. Its ``thresholds`` are ``prune``'s answer: each kernel's
    threshold (weight strategies) or the channels each group lost (unit strategies)."""
    from ..graph import prune

    state = _graph_state(model)
    try:
        answer = prune(model, strategy, sparsity, seed)
        new = {name: np.array(mask) for name, (mask, _) in _graph_mask_variables(model).items()}
    finally:
        _restore(state)
    return MaskSet(masks.canonical(strategy), float(sparsity), new, {str(k): float(v) for k, v in answer.items()})


def assign_masks(model: keras.Model, mask_set: MaskSet) -> dict[str, float]:
    """Give each prunable layer its mask from ``mask_set`` and set its masked kernel entries to exactly
    zero; returns the thresholds. A ``pruning.prunable`` model's twins get every mask (kernel, bias,
    channel) and their masked weights become exactly zero, as ``pruning.graph.prune`` leaves them."""
    if _graph_model(model):
        for name, (mask, weight) in _graph_mask_variables(model).items():
            mask.assign(mask_set.masks[name])
            if weight is not None:
                weight.assign(np.asarray(weight) * mask_set.masks[name])
        return dict(mask_set.thresholds)
    for layer in masked_layers(model):
        mask = mask_set.masks[layer.name]
        layer.mask.assign(mask)
        layer.kernel.assign(layer.kernel.numpy() * mask)
    return dict(mask_set.thresholds)


@contextmanager
def masks_applied(model: keras.Model, mask_set: MaskSet):
    """``model`` pruned with ``mask_set`` inside the block, exactly as it was (kernels and masks) after."""
    if _graph_model(model):
        state = _graph_state(model)
        assign_masks(model, mask_set)
        try:
            yield model
        finally:
            _restore(state)
        return
    saved = [(layer.kernel.numpy(), layer.mask.numpy()) for layer in masked_layers(model)]
    assign_masks(model, mask_set)
    try:
        yield model
    finally:
        for layer, (kernel, mask) in zip(masked_layers(model), saved):
            layer.kernel.assign(kernel)
            layer.mask.assign(mask)


def apply_masks(model: keras.Model, strategy: str, sparsity: float, seed: int = 0) -> dict[str, float]:
    """Prune the prunable layers of ``model`` to ``sparsity`` percent with ``strategy``, in place.

    Existing masks are kept (their entries are pruned first), the new masks are assigned to the
    layers and the masked kernel entries are set to exactly zero. ``seed`` (the run's) decides a
    random strategy's draw. Returns each layer's pruning threshold (the largest pruned score).

    A model made by ``pruning.prunable`` (any Keras graph) is pruned by ``pruning.graph.prune``.

    Use (public name ``pruning.prune``)::

        thresholds = pruning.prune(model, "neuron", 80)   # {"hidden1": ..., ...}; 80 % of each layer's units masked
    """
    if _graph_model(model):
        from ..graph import prune

        return prune(model, strategy, sparsity, seed)
    return assign_masks(model, compute_model_masks(model, strategy, sparsity, seed))


def _graph_model(model) -> bool:
    """Whether ``model`` was made by ``pruning.prunable`` (``pruning.graph``'s masked twins)."""
    from ..graph.report import is_graph_model

    return is_graph_model(model)


def _removed(strategy: masks.Strategy, layer) -> int:
    """How many of the layer's prunable items a shrunk layer no longer has (see masks.compute_masks)."""
    full_out = layer.full_shape[-1]
    if strategy.granularity == "unit":
        return full_out - layer.units
    return int(np.prod(layer.kernel.shape[:-1])) * full_out - int(np.prod(layer.kernel.shape))


def measure_sparsity(model: keras.Model) -> dict:
    """Measured fractions of exactly-zero effective weights.

    ``per_layer``: each prunable layer; ``weight_sparsity``: over all prunable kernels
    together; ``overall``: over every kernel, the unpruned output layer included.
    A shrunk layer is measured over its current inputs and its *original* units: a removed
    unit's column counts as pruned; the rows that went because the unit feeding them died
    count toward the effective sparsity (``pruning.deploy.shrink``), not here.
    A model made by ``pruning.prunable`` is measured by ``pruning.graph.report.measure_sparsity``.


    Use::

        pruning.prune(model, "weight", 90)
        pruning.measure_sparsity(model)["per_layer"]["hidden1"]    # 0.9
    """
    if _graph_model(model):
        from ..graph.report import measure_sparsity as graph_sparsity

        return graph_sparsity(model)
    per_layer, zeros, total, all_zeros, all_total = {}, 0, 0, 0, 0
    for layer in model.layers:
        if not hasattr(layer, "effective_kernel"):
            continue
        w = np.asarray(layer.effective_kernel())
        size = int(np.prod(w.shape[:-1])) * layer.full_shape[-1]
        z = size - int(np.count_nonzero(w))
        all_zeros, all_total = all_zeros + z, all_total + size
        if layer.prunable:
            per_layer[layer.name] = z / size
            zeros, total = zeros + z, total + size
    return {
        "per_layer": per_layer,
        "weight_sparsity": zeros / total if total else 0.0,
        "overall": all_zeros / all_total if all_total else 0.0,
    }


def cubic_schedule(start: float, end: float, ramp_epochs: int) -> Callable[[int], float]:
    """Sparsity for epoch ``e``: rises from ``start`` to ``end`` over ``ramp_epochs`` epochs along
    Zhu & Gupta's cubic curve (fast first, gentle last), then stays at ``end``.

    Epoch 0 already takes the first step; ``ramp_epochs <= 1`` prunes to ``end`` at once.

    Use, as the ``MaskingCallback``'s schedule (from 0 to 90 % over 3 epochs, then held)::

        callback = pruning.MaskingCallback("weight", pruning.cubic_schedule(0, 90, 3))
    """

    def at(epoch: int) -> float:
        if ramp_epochs <= 1 or epoch + 1 >= ramp_epochs:
            return float(end)
        frac = 1.0 - (epoch + 1) / ramp_epochs
        return float(end + (start - end) * frac**3)

    return at


class PolynomialDecay:
    """A per-step sparsity schedule in tfmot's form (``tfmot.sparsity.keras.PolynomialDecay``), in percent like
    every sparsity of this toolkit: no pruning before ``begin_step``; from there the target rises from
    ``initial_sparsity`` to ``final_sparsity`` along ``final + (initial - final) x (1 - (step - begin) / (end -
    begin)) ** power`` and stays at ``final_sparsity`` after ``end_step``. The masks are recomputed every
    ``frequency`` optimizer steps from ``begin_step`` and at ``end_step`` (``due``). Steps are the optimizer's
    ``iterations``, so a fit resumed on the same optimizer carries on where it stopped.

    Use::

        schedule = pruning.PolynomialDecay(50, 90, begin_step=0, end_step=2000, frequency=100)
        model.fit(x, y, epochs=10, callbacks=[pruning.MaskingCallback("weight", schedule)])
    """

    per_step = True

    def __init__(self, initial_sparsity: float, final_sparsity: float, begin_step: int, end_step: int,
                 power: float = 3.0, frequency: int = 100):
        for name, k in (("initial_sparsity", initial_sparsity), ("final_sparsity", final_sparsity)):
            if not (isinstance(k, (int, float)) and 0 <= k < 100):
                raise ValueError(f"PolynomialDecay: {name} {k!r} is not a percentage in [0, 100)")
        if 0 < final_sparsity <= 1:
            raise ValueError(f"PolynomialDecay: final_sparsity {final_sparsity} looks like tfmot's fraction; sparsities "
                             f"are percent here: pass {100 * final_sparsity:g} for {final_sparsity:g} of the weights")
        if final_sparsity < initial_sparsity:
            raise ValueError("PolynomialDecay: masks only grow, so final_sparsity must be >= initial_sparsity")
        if not (isinstance(begin_step, int) and isinstance(end_step, int) and 0 <= begin_step < end_step):
            raise ValueError(f"PolynomialDecay: need integer steps 0 <= begin_step < end_step, got {begin_step}, "
                             f"{end_step}")
        if not (isinstance(frequency, int) and frequency >= 1) or not power > 0:
            raise ValueError("PolynomialDecay: frequency must be an integer >= 1 and power > 0")
        self.initial_sparsity, self.final_sparsity = float(initial_sparsity), float(final_sparsity)
        self.begin_step, self.end_step, self.power, self.frequency = begin_step, end_step, float(power), frequency

    def __call__(self, step: int) -> float:
        if step < self.begin_step:
            return 0.0
        frac = min(1.0, (step - self.begin_step) / (self.end_step - self.begin_step))
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - frac) ** self.power

    def due(self, step: int) -> bool:
        """Whether the masks are recomputed at optimizer step ``step``."""
        return step == self.end_step or (self.begin_step <= step < self.end_step
                                         and (step - self.begin_step) % self.frequency == 0)


class MaskingCallback(keras.callbacks.Callback):
    """Computes and applies the pruning masks, and logs the measured sparsity.

    ``schedule`` maps an epoch index to a target sparsity in percent (a constant is
    accepted). The masks are computed at the start of training and again at the start
    of any epoch whose target differs from the current one, so a gradual schedule is a
    function of the epoch. A per-step schedule (``PolynomialDecay``: tfmot's form) is a function of
    the optimizer's step instead, its masks recomputed before the steps it is ``due``. At the end of every epoch it writes ``sparsity/<layer>`` and
    ``threshold/<layer>`` to TensorBoard (under ``log_dir``, if given). ``seed`` (the run's)
    decides a random strategy's draw. ``initial``, a ``MaskSet`` already computed on the model as it
    starts training, is used (not recomputed) when the first target is its sparsity.

    Use::

        model.fit(x, y, epochs=5, callbacks=[pruning.MaskingCallback("weight", 90, log_dir="logs/mine")])
    """

    def __init__(self, strategy: str, schedule: float | Callable[[int], float], log_dir: str | Path | None = None,
                 seed: int = 0, initial: MaskSet | None = None):
        super().__init__()
        masks.get(strategy)  # ValueError naming an unknown strategy
        self.strategy = strategy
        self.seed = int(seed)
        self.schedule = schedule if callable(schedule) else (lambda epoch, k=float(schedule): k)
        self._per_step = bool(getattr(schedule, "per_step", False))
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.current: float | None = None
        self.thresholds: dict[str, float] = {}
        self._writer = None
        if initial is not None and initial.strategy != strategy:
            raise ValueError(f"initial masks of strategy {initial.strategy!r} for a {strategy!r} callback")
        self._initial = initial

    def _update(self, epoch: int) -> None:
        target = float(self.schedule(epoch))
        if self.current is not None and target < self.current:
            raise ValueError(
                f"the sparsity schedule falls from {self.current}% to {target}% at epoch {epoch}; masks only "
                f"grow (a pruned weight's value is gone), so use a non-decreasing schedule"
            )
        if target != self.current:
            if self.current is None and self._initial is not None and self._initial.sparsity == target:
                self.thresholds = assign_masks(self.model, self._initial)
            else:
                self.thresholds = apply_masks(self.model, self.strategy, target, self.seed)
            self._initial = None
            self.current = target

    def update(self, epoch: int) -> None:
        """Bring the masks to the schedule's target for ``epoch`` (also callable between fits)."""
        self._update(epoch)

    def prune_once(self, model: keras.Model) -> None:
        """Prune ``model`` to the schedule's first target without training it (the one-shot protocol),
        with the same masks, logs and exact zeros as a ``fit`` would leave."""
        self.set_model(model)
        self.on_train_begin()
        self.on_epoch_end(0)
        self.on_train_end()

    def _step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        return int(optimizer.iterations.numpy()) if optimizer is not None and optimizer.built else 0

    def on_train_begin(self, logs=None):
        if self.log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        if self.current is None:  # a callback reused across fit() calls keeps its masks' state
            self._update(self._step() if self._per_step else 0)

    def on_epoch_begin(self, epoch, logs=None):
        if not self._per_step:
            self._update(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self._per_step:
            step = self._step()
            if self.schedule.due(step):
                self._update(step)

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            return
        measured = measure_sparsity(self.model)
        with self._writer.as_default(step=epoch):
            for name, value in measured["per_layer"].items():
                tf.summary.scalar(f"sparsity/{name}", value)
                tf.summary.scalar(f"threshold/{name}", self.thresholds.get(name, 0.0))
            tf.summary.scalar("sparsity/prunable_total", measured["weight_sparsity"])
        self._writer.flush()

    def on_train_end(self, logs=None):
        # The forward pass already multiplies by the mask; this keeps the stored
        # kernels exactly zero too, whatever state an optimizer carried in.
        for layer in masked_layers(self.model):
            layer.kernel.assign(layer.kernel * layer.mask)
        if _graph_model(self.model):
            from ..graph.layers import graph_masked_layers

            for layer in graph_masked_layers(self.model):
                for name in layer.mask_names:
                    getattr(layer, name).assign(layer.masked(name))
        if self._writer is not None:
            self._writer.close()
            self._writer = None
