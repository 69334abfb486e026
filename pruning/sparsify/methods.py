"""The sparsity-inducing training methods: their hyper-parameters (frozen, validated, one flag per field)
and the registry ``METHODS`` that names them.

A method changes how a network is *trained* so that pruning later removes less that matters; it does
not choose what is pruned (that stays the strategy's job, except that ``l0`` gives the unit strategy
``neuron`` new scores: its gates). Each ``Method`` says which strategy granularities it makes sense for
("weight": entries; "unit": whole units, a dense column or a convolution filter), the dataclass of its
hyper-parameters, the name of the field that is its *strength* (the lambda a held-out split must
choose, ``pruning.sparsify.choose_strength``), and how it prepares a model (``pruning.sparsify.apply``).

Pure Python: importing this module does not start TensorFlow; the layers are imported when a method
prepares a model.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError
from ..flags import add_flags
from ..core import masks
from ..registry import Registry
from .params import GroupLassoParams, L0Params, L1Params, SparseVDParams, TargetedDropoutParams  # noqa: F401

GRANULARITIES = ("weight", "unit")


@dataclass(frozen=True)
class Method:
    """A sparsity-inducing training method, as ``METHODS`` holds it.

    ``prepare(model, params, granularity, seed) -> model`` returns the model ready for training (its
    prunable layers swapped for the method's layer classes); ``scores(model) -> {layer: scores}``, when
    set, replaces the magnitude strategy's scores at the method's granularity (one per unit: ``neuron``'s
    column norms; one per weight: ``weight`` and ``global_weight``'s |w|); the lowest go. ``strength`` names the field
    of ``params`` that a held-out split must choose (None: the method has none)."""

    name: str
    help: str
    label: str
    color: str
    granularities: tuple[str, ...]
    params: type
    strength: str | None
    prepare: Callable
    scores: Callable | None = None

    def __post_init__(self):
        if not self.granularities or any(g not in GRANULARITIES for g in self.granularities):
            raise ValueError(f"method {self.name!r}: granularities must be among {GRANULARITIES}")
        if self.strength is not None and self.strength not in {f.name for f in dataclasses.fields(self.params)}:
            raise ValueError(f"method {self.name!r}: {self.strength!r} is not a field of {self.params.__name__}")

    def defaults(self):
        """The method's hyper-parameters at their defaults."""
        return self.params()


METHODS = Registry("sparsify method", reserved=("none",), doc="""The sparsity-inducing training methods, name ->
``Method``, in registration order: ``group_lasso``, ``l1``, ``l0``, ``targeted_dropout``, ``sparse_vd``. "none" (plain
training) is reserved. The command line's choices and the figures' labels and colours come from here.

Use::

    list(pruning.sparsify.METHODS)          # ['group_lasso', 'l1', 'l0', 'targeted_dropout', 'sparse_vd']
    pruning.sparsify.METHODS["l0"].granularities          # ('unit',)
""")


def register(method: Method) -> Method:
    """Add ``method`` to ``METHODS`` under its name, once; returns it."""
    return METHODS.register(method)


def get(name: str) -> Method:
    """The method named ``name``; a ConfigError naming the choices otherwise ("none" is not a method)."""
    try:
        return METHODS.lookup(name)
    except ValueError:
        raise ConfigError(f"--sparsify: unknown method {name!r}; choose one of none, {', '.join(METHODS)}.") from None


def names() -> tuple[str, ...]:
    return ("none",) + METHODS.names()


def granularity_of(strategy: str) -> str:
    """The granularity ("weight" or "unit") a registered strategy prunes at."""
    return masks.get(masks.canonical(strategy)).granularity


def target_granularity(method: str, params=None, strategy: str | None = None) -> str:
    """The granularity ``method`` trains for: a ``--td-target`` other than auto, else ``strategy``'s, else
    the method's first."""
    m = get(method)
    target = getattr(params, "td_target", "auto") if params is not None else "auto"
    if target != "auto":
        return target
    return granularity_of(strategy) if strategy is not None and strategy != "none" else m.granularities[0]


def check_fits(method: str, strategy: str, params=None) -> None:
    """A ConfigError (naming both flags) when ``method`` makes no sense for ``strategy``: a unit penalty
    before weight pruning, a weight penalty before unit pruning, anything before a student baseline, targeted
    dropout of one ``--td-target`` before pruning of the other."""
    if method == "none":
        return
    m = get(method)
    granularity = granularity_of(strategy)
    target = getattr(params, "td_target", "auto") if params is not None else "auto"
    if target != "auto" and granularity in m.granularities and granularity != target:
        raise ConfigError(
            f"--sparsify {method} --td-target {target} trains the network to lose {target}s, but strategy {strategy} "
            f"prunes by {granularity}. Pass --td-target {granularity} (a study of its own: its dense network trains "
            f"differently), or drop {strategy} from --strategies.")
    if granularity not in m.granularities:
        fits = [s for s in masks.names() if masks.get(s).granularity in m.granularities]
        raise ConfigError(
            f"--sparsify {method} prepares a network for pruning by {' or '.join(m.granularities)}, but strategy "
            f"{strategy} prunes by {granularity}: the method would shape the wrong thing. Use it with "
            f"{', '.join(fits)}, or choose another --sparsify for {strategy} (none trains plainly).")


def check_params(method: str, params) -> None:
    """A ConfigError unless ``params`` is ``method``'s hyper-parameter class."""
    m = get(method)
    if not isinstance(params, m.params):
        raise ConfigError(f"--sparsify {method} takes {m.params.__name__} hyper-parameters, got "
                          f"{type(params).__name__}.")


def with_strength(method: str, params, strength: float):
    """``params`` (or the defaults) with the method's strength set to ``strength`` (validated)."""
    m = get(method)
    if m.strength is None:
        raise ConfigError(f"--sparsify {method} has no strength to choose.")
    return dataclasses.replace(params if params is not None else m.params(), **{m.strength: float(strength)})


def identity(method: str, params=None, strategy: str | None = None) -> dict | None:
    """What a run's identity (``RunConfig.identity``) must add for ``method`` (None for "none"): its name,
    every hyper-parameter, and the granularity it targets when it has several (targeted dropout on
    weights and on units are different dense runs)."""
    if method == "none":
        return None
    m = get(method)
    params = params if params is not None else m.params()
    check_params(method, params)
    ident = {"method": m.name, **dataclasses.asdict(params)}
    if len(m.granularities) > 1:
        ident["granularity"] = target_granularity(method, params, strategy)
    return ident


# --------------------------------------------------------------------------- flags
PARAMS = (GroupLassoParams, L1Params, L0Params, TargetedDropoutParams, SparseVDParams)


def add_sparsify_flags(parser: argparse.ArgumentParser) -> None:
    """``--sparsify METHOD`` and every method's hyper-parameter flags (one group per method)."""
    group = parser.add_argument_group("sparsity-inducing training (--sparsify)")
    group.add_argument("--sparsify", dest="sparsify", default="none", choices=names(),
                       help="train the dense network (and retrain) with a sparsity-inducing method: "
                            + "; ".join(f"{m.name} ({m.help})" for m in METHODS.values())
                            + " (default: %(default)s)")
    for m in METHODS.values():
        add_flags(parser, m.params, title=f"--sparsify {m.name}")


def params_from_args(args: argparse.Namespace, method: str | None = None):
    """The chosen method's hyper-parameters from parsed flags (None for "none")."""
    method = method or getattr(args, "sparsify", "none")
    if method == "none":
        return None
    cls = get(method).params
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


# --------------------------------------------------------------------------- the four methods
def _prepare_penalty(kind: str):
    def prepare(model, params, granularity, seed):
        from . import layers

        return layers.add_penalty(model, kind, getattr(params, f"{kind}_lambda"))

    return prepare


def _prepare_l0(model, params, granularity, seed):
    from . import layers

    return layers.add_gates(model, params, seed=seed)


def _l0_scores(model):
    from . import layers

    return layers.gate_scores(model)


def _prepare_svd(model, params, granularity, seed):
    from . import layers

    return layers.add_sparse_vd(model, params, seed=seed)


def _svd_scores(model):
    from . import layers

    return layers.svd_scores(model)


def _prepare_td(model, params, granularity, seed):
    from . import layers

    return layers.add_targeted_dropout(model, params.td_gamma, params.td_alpha, granularity, seed=seed)


register(Method("group_lasso", "lambda x the sum of each unit's incoming-weight L2 norm, for unit strategies",
                "group lasso", "tab:red", ("unit",), GroupLassoParams, "group_lasso_lambda",
                _prepare_penalty("group_lasso")))
register(Method("l1", "lambda x the sum of |w|, for weight strategies", "L1", "tab:cyan", ("weight",), L1Params,
                "l1_lambda", _prepare_penalty("l1")))
register(Method("l0", "hard-concrete L0 gates on units (Louizos et al. 2018); units go by gate probability",
                "L0 gates", "tab:olive", ("unit",), L0Params, "l0_lambda", _prepare_l0, _l0_scores))
register(Method("targeted_dropout", "drop the smallest weights or units at random while training (Gomez et al. "
                "2019)", "targeted dropout", "gold", ("weight", "unit"), TargetedDropoutParams, None,
                _prepare_td))
register(Method("sparse_vd", "sparse variational dropout of the weights (Molchanov et al. 2017); weights go by "
                "log alpha", "sparse variational dropout", "black", ("weight",), SparseVDParams, "svd_lambda",
                _prepare_svd, _svd_scores))
