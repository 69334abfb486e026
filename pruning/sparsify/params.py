"""The hyper-parameters of each sparsity-inducing method (``pruning.sparsify.methods``), as frozen dataclasses
with the papers' defaults whose fields generate the command-line flags and whose validation names the flag
and the fix. Its own module, so that the layers (``pruning.sparsify.layers``) and the registry read them
without importing each other."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..flags import hp


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_strength(flag: str, value, example: str) -> None:
    if not (_finite(value) and value >= 0):
        raise ConfigError(f"{flag} must be a finite number >= 0 (the penalty's weight in the training loss; 0 "
                          f"switches the penalty off), got {value!r}. Choose it on a held-out split of the "
                          f"training set (pruning.sparsify.choose_strength), e.g. {flag} {example}.")


# --------------------------------------------------------------------------- hyper-parameters
@dataclass(frozen=True)
class GroupLassoParams:
    """Group lasso on units (structured sparsity, Wen et al. 2016): lambda x the sum over a layer's units of
    the L2 norm of the unit's incoming weights (kernel x mask), for every prunable layer."""

    group_lasso_lambda: float = hp(
        1e-4, "group lasso strength: lambda x sum over units of the L2 norm of each unit's incoming (masked) "
        "weights, added to the mean cross-entropy of a batch, during dense training and retraining; >= 0. "
        "The default is a starting point, not a paper's value: choose it on a held-out split", metavar="L")

    def __post_init__(self):
        _check_strength("--group-lasso-lambda", self.group_lasso_lambda, "1e-4")


@dataclass(frozen=True)
class L1Params:
    """L1 on weights: lambda x the sum of |kernel x mask| over every prunable layer."""

    l1_lambda: float = hp(
        1e-5, "L1 strength: lambda x sum |w| of the (masked) prunable kernels, added to the mean cross-entropy "
        "of a batch, during dense training and retraining; >= 0. The default is a starting point, not a "
        "paper's value: choose it on a held-out split", metavar="L")

    def __post_init__(self):
        _check_strength("--l1-lambda", self.l1_lambda, "1e-5")


@dataclass(frozen=True)
class L0Params:
    """Hard-concrete gates on units (Louizos, Welling & Kingma 2018): beta, gamma and zeta are the paper's
    (and its code's) values; the initial drop rate is its code's (AMLab-Amsterdam/L0_regularization,
    ``droprate_init=0.5``), and so is the clip of log_alpha to [log 1e-2, log 1e2] after every step.

    Differences from the paper, on purpose: a gate sits on each *output* unit of a prunable layer (a dense
    column, a filter), which for hidden units is the paper's gate on the next layer's inputs, but the
    input pixels are not gated; by default each gate counts once in the expected L0 (``--l0-per-weight``
    counts its fan-in, the paper's group form); the strength is per batch-mean loss (the paper's code
    divides its lambda by the training set's size N); the paper's gate-weighted L2 term is left to
    ``--weight-decay``; one gate sample per training step is shared by the batch (the code's default)."""

    l0_lambda: float = hp(
        1e-3, "L0 strength: lambda x the expected number of nonzero gates, sum_j sigmoid(log_alpha_j - "
        "beta log(-gamma/zeta)) (x each gate's fan-in with --l0-per-weight), added to the mean cross-entropy "
        "of a batch; >= 0. A starting point: the paper's lambda counts weights and is divided by the training "
        "set's size; choose it on a held-out split", metavar="L")
    l0_beta: float = hp(2.0 / 3.0, "temperature beta of the hard-concrete gates, > 0 (the paper's 2/3)",
                        metavar="B")
    l0_gamma: float = hp(-0.1, "lower end gamma of the gates' stretched interval, < 0 (the paper's -0.1)",
                         metavar="G")
    l0_zeta: float = hp(1.1, "upper end zeta of the gates' stretched interval, > 1 (the paper's 1.1)",
                        metavar="Z")
    l0_droprate_init: float = hp(
        0.5, "initial drop rate p of every gate: log_alpha starts at log(1 - p) - log(p) plus N(0, 0.01) "
        "noise, 0 < p < 1 (the paper's code: 0.5)", metavar="P")
    l0_per_weight: bool = hp(
        False, "weigh each gate's expected-L0 term by the number of weights it gates (its fan-in), so that "
        "the penalty is the expected number of nonzero weights, as the paper's group-sparsity form; default: "
        "each gate counts once")
    l0_gate_lr_mult: float = hp(
        1.0, "the gates learn this many times faster than the weights, > 0 (1: the paper's, which trains for 200 "
        "epochs). Adam moves log alpha by about the learning rate per step: at --lr 1e-3 along the cosine schedule "
        "10 epochs move it by at most about 1.2 from its start, and a gate is exactly 0 only below about -2.4, "
        "so with 1 no gate closes in the study's 10 epochs; 10 lets them", metavar="M")

    def __post_init__(self):
        _check_strength("--l0-lambda", self.l0_lambda, "1e-3")
        if not (_finite(self.l0_beta) and self.l0_beta > 0):
            raise ConfigError(f"--l0-beta must be a positive temperature (the paper's 2/3 makes the gates' samples "
                              f"nearly binary), got {self.l0_beta!r}; e.g. --l0-beta 0.6667.")
        if not (_finite(self.l0_gamma) and self.l0_gamma < 0):
            raise ConfigError(f"--l0-gamma must be < 0: the stretched interval (gamma, zeta) must reach below 0 "
                              f"so that a gate can be exactly 0, got {self.l0_gamma!r}; e.g. --l0-gamma -0.1.")
        if not (_finite(self.l0_zeta) and self.l0_zeta > 1):
            raise ConfigError(f"--l0-zeta must be > 1: the stretched interval (gamma, zeta) must reach above 1 so "
                              f"that a gate can be exactly 1, got {self.l0_zeta!r}; e.g. --l0-zeta 1.1.")
        if not (_finite(self.l0_gate_lr_mult) and self.l0_gate_lr_mult > 0):
            raise ConfigError(f"--l0-gate-lr-mult must be a positive factor (how many times faster than the weights "
                              f"the gates learn), got {self.l0_gate_lr_mult!r}; e.g. --l0-gate-lr-mult 10.")
        if not (_finite(self.l0_droprate_init) and 0 < self.l0_droprate_init < 1):
            raise ConfigError(f"--l0-droprate-init must be a probability strictly between 0 and 1 (the gates' "
                              f"initial drop rate), got {self.l0_droprate_init!r}; e.g. --l0-droprate-init 0.5.")


@dataclass(frozen=True)
class TargetedDropoutParams:
    """Targeted dropout (Gomez et al. 2019): gamma and alpha are the values of the authors' code
    (for-ai/TD, hparams ``cifar10_resnet32_trgtd_weight`` / ``_trgtd_unit`` and the LeNet ones: ``targeted =
    0.5``, ``dropout = 0.5``).

    As in that code, kept weights are not rescaled and one drop pattern per training step is shared by
    the batch. Differences: weight candidates are the smallest gamma fraction of the whole layer (as the
    ``weight`` strategy prunes), where the code takes gamma of each unit's fan-in; a dropped unit loses its
    whole column (the paper's description), where the code draws each entry of a candidate column. The
    candidates are ranked on kernel x mask, so masked weights (exact zeros) are the first candidates:
    once a layer is pruned to k >= 100 gamma, retraining drops nothing more."""

    td_gamma: float = hp(
        0.5, "targeted dropout's targeting proportion gamma: the fraction of each prunable layer's weights "
        "(or units, by column L2 norm) with the smallest magnitude that are candidates for dropping at each "
        "training step, 0 < gamma < 1", metavar="G")
    td_alpha: float = hp(
        0.5, "targeted dropout's drop rate alpha: each candidate is dropped with probability alpha at each "
        "training step (none at inference), 0 < alpha <= 1", metavar="A")
    td_target: str = hp(
        "auto", "what targeted dropout drops: weight (for the weight strategies), unit (for the unit strategies), "
        "or auto: the granularity of the study's strategies (they must then share one: the dense network trains "
        "differently for each)", choices=("auto", "weight", "unit"))

    def __post_init__(self):
        if not (_finite(self.td_gamma) and 0 < self.td_gamma < 1):
            raise ConfigError(f"--td-gamma must be a fraction strictly between 0 and 1 (the share of each layer's "
                              f"smallest weights or units that may be dropped), got {self.td_gamma!r}; e.g. "
                              f"--td-gamma 0.5.")
        if not (_finite(self.td_alpha) and 0 < self.td_alpha <= 1):
            raise ConfigError(f"--td-alpha must be a probability in (0, 1] (how often a candidate is dropped), got "
                              f"{self.td_alpha!r}; e.g. --td-alpha 0.5.")
        if self.td_target not in ("auto", "weight", "unit"):
            raise ConfigError(f"--td-target must be weight, unit or auto, got {self.td_target!r}.")


@dataclass(frozen=True)
class SparseVDParams:
    """Sparse variational dropout (Molchanov, Ashukha & Vetrov 2017): the threshold log alpha = 3 and the
    initial log sigma^2 = -10 are the paper's and its code's."""

    svd_lambda: float = hp(
        1.0 / 60000, "weight of the KL divergence per weight (Molchanov et al.'s approximation) added to the mean "
        "cross-entropy of a batch: the variational lower bound's is 1/N, N the training examples (MNIST: 1/60000); "
        ">= 0", metavar="L")
    svd_threshold: float = hp(
        3.0, "weights whose log alpha (log sigma^2 - log w^2) is at least this are zero at inference and in the "
        "finalized network (the paper's 3)", metavar="T")
    svd_log_sigma2_init: float = hp(-10.0, "initial log sigma^2 of every weight (the authors' code: -10)",
                                    metavar="S")

    def __post_init__(self):
        _check_strength("--svd-lambda", self.svd_lambda, "1.6667e-5")
        if not (_finite(self.svd_threshold) and -10 < self.svd_threshold < 10):
            raise ConfigError(f"--svd-threshold must be a log alpha strictly between -10 and 10 (log alpha is clipped "
                              f"there), got {self.svd_threshold!r}; e.g. --svd-threshold 3.")
        if not (_finite(self.svd_log_sigma2_init) and self.svd_log_sigma2_init < 0):
            raise ConfigError(f"--svd-log-sigma2-init must be a negative number (training starts nearly "
                              f"noise-free), got {self.svd_log_sigma2_init!r}; e.g. --svd-log-sigma2-init -10.")


# --------------------------------------------------------------------------- methods
