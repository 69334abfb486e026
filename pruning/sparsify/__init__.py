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
``sparse_vd``          weight       sparse variational dropout (Molchanov et al. 2017), optional item 5:
                                    a variance per weight, lambda x the KL term; weights go by log alpha
=====================  ===========  =======================================================================

Each method's hyper-parameters are a frozen dataclass (``GroupLassoParams``, ``L1Params``, ``L0Params``,
``TargetedDropoutParams``, ``SparseVDParams``) whose fields generate flags (``add_sparsify_flags``: ``--sparsify METHOD``,
``--group-lasso-lambda``, ``--l1-lambda``, ``--l0-lambda``, ``--l0-beta``, ...); bad values raise
``ConfigError`` naming the flag. ``identity(method, params, strategy)`` is what a run's identity must add.

The runner's hooks, in order (the method's layers are subclasses of ``MaskedDense`` / ``MaskedConv2D``,
so masks, ``MaskingCallback``, ``measure_sparsity`` and ``shrink_model`` work on prepared models)::

    check_fits(method, strategy)                 # planning: ConfigError (exit 2) on a misfit
    identity(method, params, strategy)           # added to the identity of every run, the dense one included:
                                                 # one dense run per method and params (and, for targeted
                                                 # dropout, per granularity)
    # 1. dense training
    model = apply(build_model(), method, params, strategy=strategy, seed=seed)   # BEFORE compile
    compile_model(model, ...)
    exclude_from_weight_decay(model)             # after compile, before fit: AdamW's decay off log_alpha, log_sigma2
    model.fit(...)                               # the penalty is in model.losses, so in fit's loss
    # 2. pruning at k (one shot, and where retraining starts)
    mask_set = compute_masks(model, method, strategy, k, seed)   # instead of callbacks.compute_model_masks;
                                                                 # l0 + neuron: the smallest gate probabilities;
                                                                 # sparse_vd + weight: the largest log alpha
    with masks_applied(model, mask_set): evaluate(model, ...)    # one-shot accuracy (gates deterministic)
    # 3. retraining (retrain protocol), the method still on
    # (a model compiled anew for retraining: exclude_from_weight_decay(model) again, after compile)
    callback = masking_callback(method, strategy, schedule, log_dir, seed, initial=mask_set)
    model.fit(..., callbacks=[callback])         # instead of MaskingCallback(...): for l0 + neuron a ramp's
                                                 # masks come from the gates too
    # 4. before saving (model.keras), shrinking for deployment, exporting sparse, reporting sizes
    model = finalize(model)                      # plain MaskedDense / MaskedConv2D; gates folded

Shrinking a unit-pruned model *during* the protocol (``shrink_model``, unit strategies retrain shrunk)
keeps the penalty and targeted-dropout layers: they are rebuilt from their configuration and their
kernels and masks copied, as for plain layers. It does **not** carry ``l0``'s gates (it copies kernels
and masks only, and ``carry_optimizer_state`` expects one trainable kernel per layer): for ``l0`` call
``finalize`` after step 2 (the gates chose the units; the deterministic gates scale the surviving
columns) and retrain the plain network under the mask as today; or retrain with the gates on and
unshrunk, and finalize before shrinking. ``apply`` and ``finalize`` return *new, uncompiled* models
(Adam's moments start afresh; an uncompiled Keras 3 model has no ``optimizer`` attribute at all, so
code that carries optimizer state must check ``getattr(model, "optimizer", None)``). A finalized model has no penalty: a method that must stay on
while retraining a model loaded from disk is applied again (``apply``) before compiling.

Choosing a penalty's strength: on a held-out split of the *training* set, never on the test set. Hold
out examples with ``pruning.protocols.lottery.split(data, size, seed)`` (the lottery protocol's
``--validation-size`` split), train one network per candidate lambda on the rest, prune each at the
target k, and keep the lambda whose pruned network is most accurate on the held-out examples
(``choose_strength``); the study then trains every seed on the full training set with that lambda and
reports the held-out accuracies of all candidates beside the test results.
"""
from .hooks import (StrengthChoice, apply, choose_strength, compute_masks, eligible_strengths, pick_strength, exclude_from_weight_decay, finalize,
                    heldout_accuracy, is_prepared, masking_callback, no_decay_variables, penalty, prepare_run,
                    unit_scores, uses_method_scores)
from .methods import (METHODS, GroupLassoParams, L0Params, L1Params, Method, SparseVDParams, TargetedDropoutParams,
                      add_sparsify_flags, check_fits, check_params, get, granularity_of, identity, names,
                      target_granularity,
                      params_from_args, register, with_strength)


def add_gates(model, params=None, seed: int = 0):
    """``pruning.sparsify.layers.add_gates`` (imported on use: it starts TensorFlow)."""
    from .layers import add_gates as _add_gates

    return _add_gates(model, params, seed)


def fold_gates(model):
    """``pruning.sparsify.layers.fold_gates`` (imported on use: it starts TensorFlow)."""
    from .layers import fold_gates as _fold_gates

    return _fold_gates(model)


__all__ = ["METHODS", "Method", "GroupLassoParams", "L1Params", "L0Params", "TargetedDropoutParams", "SparseVDParams", "apply",
           "unit_scores", "compute_masks", "finalize", "penalty", "choose_strength", "eligible_strengths", "pick_strength", "StrengthChoice",
           "heldout_accuracy", "add_gates", "fold_gates", "add_sparsify_flags", "params_from_args", "check_fits",
           "check_params", "identity", "with_strength", "get", "names", "register", "granularity_of", "target_granularity",
           "uses_method_scores", "masking_callback", "exclude_from_weight_decay",
           "no_decay_variables", "is_prepared", "prepare_run"]
