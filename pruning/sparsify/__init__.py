"""Sparsity-inducing training (issue 24): methods that train a network so that pruning later removes less
that matters, each registered once in ``METHODS`` and usable with the strategies of its granularity.

=====================  ===========  =======================================================================
method                 strategies   what training gets
=====================  ===========  =======================================================================
``group_lasso``        unit         lambda x sum over units of the unit's incoming-weight L2 norm
                                    (kernel x mask columns); units then go by norm (``neuron``)
``l1``                 weight       lambda x sum |kernel x mask|
``l0``                 unit         a hard-concrete gate per unit (Louizos et al. 2018) and lambda x the
                                    expected number of nonzero gates; units go by gate probability
``targeted_dropout``   weight,      each step, the gamma fraction of each layer's smallest weights (or
                       unit         units) are candidates, each dropped with probability alpha (Gomez et
                                    al. 2019); nothing dropped at inference
=====================  ===========  =======================================================================

Each method's hyper-parameters are a frozen dataclass (``GroupLassoParams``, ``L1Params``, ``L0Params``,
``TargetedDropoutParams``) whose fields generate flags (``add_sparsify_flags``: ``--sparsify METHOD``,
``--group-lasso-lambda``, ``--l1-lambda``, ``--l0-lambda``, ``--l0-beta``, ...); bad values raise
``ConfigError`` naming the flag. ``identity(method, params, strategy)`` is what a run's identity must add.

The runner's hooks, in order (the method's layers are subclasses of ``MaskedDense`` / ``MaskedConv2D``,
so masks, ``MaskingCallback``, ``measure_sparsity`` and ``shrink_model`` work on prepared models)::

    check_fits(method, strategy)                                  # at planning: ConfigError on a misfit
    # dense training (one dense run per method, params and, for targeted dropout, granularity)
    model = apply(build_model(), method, params, strategy=strategy, seed=seed)    # before compile
    compile_model(model, ...); model.fit(...)                     # the penalty is in model.losses
    # pruning at k (one shot, and the start of retraining)
    mask_set = compute_masks(model, method, strategy, k, seed)    # l0 + neuron: by gate probability
    with masks_applied(model, mask_set): evaluate(model, ...)     # one-shot accuracy
    # retraining (retrain protocol): the method's penalty or dropout stays on
    assign_masks(model, mask_set)
    callback = MaskingCallback(strategy, k, initial=mask_set)     # ramp_epochs 0 for l0 (see below)
    model.fit(..., callbacks=[callback])
    # before saving, shrinking, exporting
    model = finalize(model)                                       # plain layers; gates folded

Shrinking a unit-pruned model mid-protocol (``shrink_model``) keeps the penalty and targeted-dropout
layers (they are rebuilt from their configuration; the mask and kernel are copied as for plain layers).
A gated model must be finalized (``fold_gates``) *before* ``shrink_model``, which copies only kernels and
masks: for ``l0`` the protocol is dense training with gates, ``compute_masks`` at k (the gates choose the
units), ``finalize`` (the deterministic gates scale the surviving columns, pruned ones are zero), then
retraining the plain network under the mask as today. A ramped ``MaskingCallback`` would recompute
masks by column norm, not by gate: start it at k (``initial=mask_set``, ramp 0) for ``l0``.

Choosing a penalty's strength: on a held-out split of the *training* set, never on the test set. Hold
out examples with ``pruning.protocols.lottery.split(data, size, seed)`` (the lottery protocol's
``--validation-size`` split), train one network per candidate lambda on the rest, prune each at the
target k, and keep the lambda whose pruned network is most accurate on the held-out examples
(``choose_strength``); the study then trains every seed on the full training set with that lambda and
reports the held-out accuracies of all candidates beside the test results.
"""
from .hooks import (StrengthChoice, apply, choose_strength, compute_masks, finalize, heldout_accuracy, penalty,
                    unit_scores, uses_method_scores)
from .methods import (METHODS, GroupLassoParams, L0Params, L1Params, Method, TargetedDropoutParams,
                      add_sparsify_flags, check_fits, check_params, get, granularity_of, identity, names,
                      params_from_args, register, with_strength)


def add_gates(model, params=None, seed: int = 0):
    """``pruning.sparsify.layers.add_gates`` (imported on use: it starts TensorFlow)."""
    from .layers import add_gates as _add_gates

    return _add_gates(model, params, seed)


def fold_gates(model):
    """``pruning.sparsify.layers.fold_gates`` (imported on use: it starts TensorFlow)."""
    from .layers import fold_gates as _fold_gates

    return _fold_gates(model)


__all__ = ["METHODS", "Method", "GroupLassoParams", "L1Params", "L0Params", "TargetedDropoutParams", "apply",
           "unit_scores", "compute_masks", "finalize", "penalty", "choose_strength", "StrengthChoice",
           "heldout_accuracy", "add_gates", "fold_gates", "add_sparsify_flags", "params_from_args", "check_fits",
           "check_params", "identity", "with_strength", "get", "names", "register", "granularity_of",
           "uses_method_scores"]
