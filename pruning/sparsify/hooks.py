"""What the runner calls: prepare a model for a method's training, score and mask it at k, finalize it,
and choose a penalty's strength on a held-out split."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..core import masks as pmasks
from . import methods


def apply(model, method: str, params=None, *, strategy: str | None = None, seed: int = 0):
    """``model`` prepared for training with ``method`` (its ``params``, the defaults when None): a new
    model whose prunable layers carry the method's penalty, gates or targeted dropout, with the same
    weights and masks; ``model`` itself for "none". ``strategy`` (the run's) is checked against the
    method's granularities and decides what targeted dropout targets (weights or units); ``seed`` (the
    run's) seeds the gates' and the dropout's draws. Call it before ``compile`` (the penalty enters the
    loss when the training step is traced), and again after anything that rebuilds the model from its
    configuration without the method's layers (``pruning.load_model`` of a finalized model).

    Use::

        model = pruning.sparsify.apply(pruning.build_mlp(784), "group_lasso", strategy="neuron")
        model.compile(...); model.fit(...)                 # cross-entropy + lambda x sum of column norms
    """
    if method == "none":
        return model
    m = methods.get(method)
    params = params if params is not None else m.params()
    methods.check_params(method, params)
    if strategy is not None and strategy != "none":
        methods.check_fits(method, strategy, params)
    return m.prepare(model, params, methods.target_granularity(method, params, strategy), int(seed))


def unit_scores(model, method: str) -> dict:
    """Layer name -> one score per unit of each prunable layer, the lowest pruned first: the gates'
    probabilities of being nonzero for ``l0``, the L2 norm of each unit's masked incoming weights (the
    ``neuron`` strategy's score) otherwise. (``sparse_vd``'s scores are per weight: its ``Method.scores``.)"""
    from ..core.layers import masked_layers

    m = methods.get(method) if method != "none" else None
    if m is not None and m.scores is not None and "unit" in m.granularities:
        return m.scores(model)
    return {l.name: pmasks.neuron_scores(np.asarray(l.effective_kernel())) for l in masked_layers(model)}


def uses_method_scores(method: str, strategy: str) -> bool:
    """Whether ``method`` replaces ``strategy``'s scores: a method with scores (``l0``'s gates, per unit;
    ``sparse_vd``'s log alpha, per weight) and a magnitude strategy of its granularity (``neuron``,
    ``global_neuron``; ``weight``, ``global_weight``); random baselines stay random."""
    if method == "none":
        return False
    m = methods.get(method)
    strat = pmasks.get(pmasks.canonical(strategy))
    magnitude = {"unit": (pmasks.neuron_scores, pmasks.relative_neuron_scores),
                 "weight": (pmasks.weight_scores,)}.get(strat.granularity, ())
    return m.scores is not None and strat.granularity in m.granularities and strat.score in magnitude


def compute_masks(model, method: str, strategy: str, sparsity: float, seed: int = 0):
    """The ``MaskSet`` (``pruning.core.callbacks``) that prunes ``model`` to ``sparsity`` percent with
    ``strategy`` after training with ``method``. When the method has its own scores
    (``uses_method_scores``: ``l0`` with ``neuron``, ``sparse_vd`` with ``weight`` or ``global_weight``),
    exactly ``n_pruned(count, k)`` of the lowest-scored units or weights go, per layer or, for a global
    strategy, over all prunable layers together (items already masked, or removed by shrinking, count as
    pruned and go first, as ``pruning.core.masks.compute_masks`` does); otherwise the strategy's own masks
    (``compute_model_masks``). Assign it with ``assign_masks`` or ``masks_applied``, or pass it to
    ``masking_callback(..., initial=...)``."""
    from ..core import callbacks
    from ..core.layers import masked_layers

    if not uses_method_scores(method, strategy):
        return callbacks.compute_model_masks(model, strategy, sparsity, seed)
    strat = pmasks.get(pmasks.canonical(strategy))
    unit = strat.granularity == "unit"
    layers = masked_layers(model)
    method_scores = methods.get(method).scores(model)
    scores = [np.asarray(method_scores[l.name], dtype=np.float64) for l in layers]
    alive, removed = [], []
    for layer in layers:
        mask = layer.mask.numpy()
        alive.append((pmasks.units_view(mask) != 0).any(axis=0) if unit else mask != 0)
        full = int(layer.full_shape[-1])
        removed.append(full - int(layer.units) if unit
                       else int(np.prod(layer.kernel.shape[:-1])) * full - int(np.prod(layer.kernel.shape)))
    keeps = pmasks.select(scores, sparsity, strat.scope, strat.granularity, alive, removed)
    new, thresholds = {}, {}
    for layer, s, keep in zip(layers, scores, keeps):
        new[layer.name] = np.broadcast_to(keep, tuple(layer.kernel.shape)).astype(np.float32)
        pruned = keep == 0
        thresholds[layer.name] = float(s[pruned].max()) if pruned.any() else 0.0
    return callbacks.MaskSet(pmasks.canonical(strategy), float(sparsity), new, thresholds)


def masking_callback(method: str, strategy: str, schedule, log_dir=None, seed: int = 0, initial=None):
    """The ``MaskingCallback`` for retraining after ``method``: the plain one, unless the method gives the
    strategy its scores (``l0`` with ``neuron``), in which case every mask it computes along ``schedule``
    (a ramp included) comes from ``compute_masks``, that is from the gates, not from column norms."""
    from ..core.callbacks import MaskingCallback

    if not uses_method_scores(method, strategy):
        return MaskingCallback(strategy, schedule, log_dir=log_dir, seed=seed, initial=initial)
    return _MethodMaskingCallback(method, strategy, schedule, log_dir=log_dir, seed=seed, initial=initial)


@functools.lru_cache(maxsize=None)
def _method_masking_callback_class():
    from ..core.callbacks import MaskingCallback, assign_masks

    class MethodMaskingCallback(MaskingCallback):
        """``MaskingCallback`` whose masks come from ``compute_masks(model, method, ...)``."""

        def __init__(self, method, strategy, schedule, **kwargs):
            super().__init__(strategy, schedule, **kwargs)
            self.method = method

        def _update(self, epoch: int) -> None:
            target = float(self.schedule(epoch))
            if self.current is not None and target < self.current:
                raise ValueError(f"the sparsity schedule falls from {self.current}% to {target}% at epoch {epoch}; "
                                 f"masks only grow, so use a non-decreasing schedule")
            if target == self.current:
                return
            if self.current is None and self._initial is not None and self._initial.sparsity == target:
                mask_set = self._initial
            else:
                mask_set = compute_masks(self.model, self.method, self.strategy, target, self.seed)
            self.thresholds = assign_masks(self.model, mask_set)
            self._initial = None
            self.current = target

    return MethodMaskingCallback


def _MethodMaskingCallback(*args, **kwargs):
    return _method_masking_callback_class()(*args, **kwargs)


def no_decay_variables(model) -> list:
    """The method's own trainable variables that weight decay must not touch: ``l0``'s gates (log alpha)
    (decay would pull every gate toward log alpha 0, a gate of 0.5) and ``sparse_vd``'s ``log_sigma2``
    (decay would pull the noise variance up toward exp(0) = 1)."""
    out = []
    for layer in model.layers:
        for name in ("gate_variable", "log_sigma2"):
            variable = getattr(layer, name, None)
            if variable is not None and hasattr(variable, "assign"):
                out.append(variable)
    return out


def exclude_from_weight_decay(model, optimizer=None) -> None:
    """Keep AdamW's decoupled weight decay (``--weight-decay``) off the method's own variables
    (``no_decay_variables``). Call it after ``compile`` and before the first ``fit`` (Keras allows it only
    before the optimizer is built); nothing to do for a model without such variables."""
    variables = no_decay_variables(model)
    if variables:
        (optimizer or model.optimizer).exclude_from_weight_decay(var_list=variables)


def finalize(model, method: str | None = None):
    """``model`` as a plain network of ``MaskedDense`` / ``MaskedConv2D`` layers, ready to save, shrink or
    export: penalties and targeted dropout removed, gates folded into the kernels (``fold_gates``),
    sparse variational dropout's weights with log alpha >= its threshold set to zero; weights and masks
    kept. A plain model is returned as it is. ``method`` is accepted for symmetry with ``apply`` and not
    needed: every method's layers are recognised by their class."""
    if method not in (None, "none"):
        methods.get(method)  # a ConfigError naming the choices for an unknown name
    from .layers import to_plain

    return to_plain(model)


def penalty(model) -> float:
    """The sparsify penalty ``model.fit`` adds to the loss right now (0.0 for a plain model)."""
    from .layers import penalty as layer_penalty

    return layer_penalty(model)


# --------------------------------------------------------------------------- choosing a strength
@dataclass(frozen=True)
class StrengthChoice:
    """The strength ``choose_strength`` picked and the held-out accuracy of every candidate."""

    strength: float
    accuracies: dict  # candidate strength -> held-out accuracy at k
    dense: dict = field(default_factory=dict)  # candidate -> dense held-out accuracy (if measured)


def eligible_strengths(dense: dict, max_dense_drop: float) -> list:
    """The candidates (keys of ``dense``: strength -> dense held-out accuracy, a fraction) whose dense
    accuracy is within ``max_dense_drop`` percentage points of the best one's, the bound included, in
    ``dense``'s order: the ones ``pick_strength`` lets compete under ``--max-dense-drop``."""
    if max_dense_drop < 0:
        raise ConfigError(f"max_dense_drop must be >= 0 percentage points, got {max_dense_drop:g}.")
    floor = max(dense.values()) - max_dense_drop / 100 - 1e-12
    return [s for s in dense if dense[s] >= floor]


def pick_strength(pruned: dict, dense: dict | None = None, max_dense_drop: float | None = None) -> float:
    """The candidate with the most accurate pruned network (``pruned``: strength -> held-out accuracy at
    k); ties go to the earlier candidate. With ``max_dense_drop`` (percentage points), only candidates whose
    *dense* held-out accuracy is within that many points of the best candidate's dense accuracy compete
    (``eligible_strengths``): a penalty strong enough to cost the dense network more than that is not
    chosen however well its network survives one-shot pruning (one-shot accuracy alone favours such
    penalties, and retraining cannot recover what the penalty keeps costing)."""
    eligible = list(pruned)
    if max_dense_drop is not None:
        if dense is None or set(dense) != set(pruned):
            raise ConfigError("max_dense_drop needs every candidate's dense held-out accuracy.")
        kept = set(eligible_strengths(dense, max_dense_drop))
        eligible = [s for s in pruned if s in kept]
    best = max(pruned[s] for s in eligible)
    return next(s for s in eligible if pruned[s] == best)


def heldout_accuracy(model, x, y, batch: int = 1000) -> float:
    """Accuracy of ``model``'s inference logits on (x, y)."""
    correct = 0
    for start in range(0, len(y), batch):
        logits = np.asarray(model(x[start:start + batch], training=False))
        correct += int(np.sum(np.argmax(logits, axis=-1) == np.asarray(y[start:start + batch])))
    return correct / len(y)


def choose_strength(method: str, candidates: Sequence[float], train: Callable, heldout, sparsity: float,
                    strategy: str, params=None, seed: int = 0, prune: bool = True,
                    max_dense_drop: float | None = None) -> StrengthChoice:
    """The candidate strength (lambda) of ``method`` whose network is most accurate on the held-out split
    at ``sparsity`` percent, pruned with ``strategy``.

    A penalty's strength decides how much accuracy the dense network gives up for how much is later
    prunable, so it must be chosen on data the reported numbers never see: a held-out split of the
    **training** set (``pruning.protocols.lottery.split(data, size, seed)``, as the lottery protocol holds
    out ``--validation-size`` examples), never the test set. ``train(params) -> model`` trains a network
    with ``method`` at ``params`` (``params`` with each candidate strength) on the training set *without*
    the held-out examples; each is pruned to ``sparsity`` with ``compute_masks`` (one shot; pass
    ``prune=False`` when ``train`` already prunes and retrains at that k) and scored by its accuracy on
    ``heldout = (x, y)``. Ties go to the earlier candidate. With ``max_dense_drop`` (points) only the
    candidates whose dense held-out accuracy is within that of the best dense one compete
    (``pick_strength``). The chosen strength is then used, unchanged,
    for the study's runs of every seed, trained on the whole training set, and reported with the
    held-out accuracies.

    Use::

        rest, heldout = pruning.protocols.lottery.split(data, 5000, seed=0)
        train = lambda params: fit(pruning.sparsify.apply(build(), "l1", params), rest.x_train, rest.y_train)
        choice = pruning.sparsify.choose_strength("l1", [1e-6, 1e-5, 1e-4], train, heldout, 90, "weight")
        choice.strength, choice.accuracies
    """
    from ..core.callbacks import masks_applied

    if not candidates:
        raise ConfigError("choose_strength needs at least one candidate strength.")
    methods.check_fits(method, strategy)
    x, y = heldout
    accuracies, dense = {}, {}
    for strength in candidates:
        model = train(methods.with_strength(method, params, strength))
        if max_dense_drop is not None:
            dense[float(strength)] = heldout_accuracy(model, x, y)
        if prune and sparsity > 0:
            with masks_applied(model, compute_masks(model, method, strategy, sparsity, seed)):
                accuracies[float(strength)] = heldout_accuracy(model, x, y)
        else:
            accuracies[float(strength)] = heldout_accuracy(model, x, y)
    return StrengthChoice(pick_strength(accuracies, dense, max_dense_drop), accuracies, dense)


# --------------------------------------------------------------------------- the study's runner
def is_prepared(model) -> bool:
    """Whether ``model`` already carries a method's layers (a run's saved model: it is loaded with them)."""
    from ..core.layers import masked_layers
    from .layers import SPARSIFY_CLASSES

    return any(isinstance(l, SPARSIFY_CLASSES) for l in masked_layers(model))


def prepare_run(model, sparsify, strategy: str, seed: int):
    """The starting model of one run of a ``--sparsify`` study (``sparsify``: the run's ``SparsifyConfig``),
    ready to train with the method: prepared by ``apply`` when it is a fresh or plain model, as it is when
    it was saved with the method's layers (a parent run's model: its gates, say, are what the run prunes
    by). ``model`` itself for --sparsify none."""
    if sparsify.method == "none" or is_prepared(model):
        return model
    return apply(model, sparsify.method, sparsify.typed(), strategy=strategy if strategy != "none" else None,
                 seed=seed)
