"""Pruning strategies and their masks: pure NumPy, one registry.

A strategy (``Strategy``) is defined once, by three choices:

* its **score**: what is small gets pruned (``|w|``, a column's L2 norm, or a seeded random draw);
* its **granularity**: ``"weight"`` scores each kernel entry; ``"unit"`` scores each output unit
  (a dense kernel's column, a convolution's output filter: the kernel's last axis) and masks all of its
  entries. Unit strategies' networks are physically shrunk
  (``pruning.deploy.shrink``); weight strategies' are stored sparse (``pruning.deploy.sparse_format``);
* its **scope**: ``"layer"`` prunes k% of each prunable layer; ``"global"`` prunes k% of all
  prunable weights together, below one threshold.

Two entries are baselines, not masks: ``student`` and ``distill`` (granularity ``"student"``) train a
small *dense* network of the same family with as many weights as weight pruning leaves at k, on the
labels or distilled from the study's dense network (``pruning.protocols.distill``); they are registered
here so that they are chosen, labelled, tabulated and plotted like every strategy.

Everything else (the command-line choices, plot colours and labels, the results' rows) is read
from ``STRATEGIES``, so adding a strategy is one ``register(Strategy(...))`` plus its test.

``compute_masks`` masks exactly ``n_pruned(count, k)`` of the lowest-scored items (per layer, or
over all layers for a global strategy). Ties are broken by position (a stable sort), so the count
is exact even when many scores are equal. Items already masked by the current masks are pruned
first, so masks only ever grow along an iterative-pruning chain. Unit masks are a per-unit vector
broadcast into the kernel's shape: one apply path for every strategy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..registry import Registry

GRANULARITIES = ("weight", "unit", "student")
SCOPES = ("layer", "global")


@dataclass(frozen=True)
class LayerInfo:
    """What a score may need to know about a layer beyond its kernel: its position among the
    prunable layers, its original width and which original units it still has (a shrunk layer),
    and the run's seed (random scores)."""

    index: int = 0
    full_units: int | None = None
    kept: np.ndarray | None = field(default=None, compare=False)
    seed: int = 0


@dataclass(frozen=True)
class Strategy:
    """A pruning strategy, as the registry ``pruning.STRATEGIES`` holds it: its ``name``, its ``score``
    (``score(kernel, LayerInfo) -> scores``: one per kernel entry for ``granularity`` "weight", one per unit
    for "unit"; the lowest-scored go), its ``scope`` ("layer": k % of each layer; "global": k % of all
    prunable layers together), and the ``label``, ``color`` and ``help`` that figures and ``--help`` show.

    Use (registered, its name is accepted wherever a strategy is, and the figures draw it in its colour)::

        pruning.register_strategy(pruning.Strategy(
            "abs_cubed", lambda kernel, info: np.abs(kernel) ** 3, "weight", "layer", "|w|^3", "tab:olive",
            "the k% smallest |w|^3 of each hidden layer"))
        pruning.prune(model, "abs_cubed", 90)
    """
    name: str
    score: Callable[[np.ndarray, LayerInfo], np.ndarray]  # kernel -> scores (entries, or one per unit)
    granularity: str
    scope: str
    label: str  # for figures and tables
    color: str  # a matplotlib colour
    help: str
    protocol: str | None = None  # the protocol its runs train under instead of --protocol (students: "student")

    def __post_init__(self):
        if self.granularity not in GRANULARITIES or self.scope not in SCOPES:
            raise ValueError(f"strategy {self.name!r}: granularity must be one of {GRANULARITIES} and scope one "
                             f"of {SCOPES}, got {self.granularity!r}, {self.scope!r}")

    @property
    def masks(self) -> bool:
        """Whether the strategy prunes with masks (a student is a small dense network instead)."""
        return self.granularity != "student"

    @property
    def shrinks(self) -> bool:
        """Whole units go, so the network is physically shrunk (and trained shrunk)."""
        return self.granularity == "unit"


STRATEGIES = Registry("strategy", reserved=("none",), doc="""The pruning strategies, name -> ``Strategy``, in
registration order: ``weight``, ``neuron``, ``random``, ``random_neuron``, ``global_weight``, ``global_neuron``, ``student``,
``distill`` and any you register. The command line's ``--strategies`` choices, the plots' colours and
labels all come from here ("none", the dense run's strategy, is reserved).

Use::

    list(pruning.STRATEGIES)                          # ['weight', 'neuron', ...]
    pruning.STRATEGIES["neuron"].granularity          # 'unit': whole units go, the network shrinks
    pruning.STRATEGIES.lookup("nueron")               # ValueError naming the choices
""")  # "none": the dense run's strategy


def register(strategy: Strategy) -> Strategy:
    """Add ``strategy`` (a ``Strategy``) to ``STRATEGIES`` under its name, once (a name already taken is a
    ValueError); returns it.

    Use::

        pruning.register_strategy(pruning.Strategy(
            "abs_cubed", lambda kernel, info: np.abs(kernel) ** 3, "weight", "layer", "|w|^3", "tab:olive",
            "the k% smallest |w|^3 of each hidden layer"))
    """
    return STRATEGIES.register(strategy)



get = STRATEGIES.lookup
names = STRATEGIES.names


# ---------------------------------------------------------------------------- scores
def weight_scores(kernel: np.ndarray, info: LayerInfo | None = None) -> np.ndarray:
    """Magnitude of each entry: shape == kernel.shape."""
    return np.abs(kernel)


def units_view(array: np.ndarray) -> np.ndarray:
    """A kernel (or mask) as a matrix with one column per unit (the last axis): (fan-in, units)."""
    array = np.asarray(array)
    return array.reshape(-1, array.shape[-1])


def neuron_scores(kernel: np.ndarray, info: LayerInfo | None = None) -> np.ndarray:
    """L2 norm of each output unit's incoming weights (a dense column, a conv filter): shape (units,)."""
    return np.linalg.norm(units_view(kernel).astype(np.float64), axis=0)


def relative_neuron_scores(kernel: np.ndarray, info: LayerInfo | None = None) -> np.ndarray:
    """Each unit's L2 norm (``neuron_scores``) divided by the mean norm of the layer's units that are not
    zero: comparable across layers of different fan-in, so one threshold can rank them all (``global_neuron``)."""
    norms = neuron_scores(kernel, info)
    alive = norms[norms > 0]
    return norms / alive.mean() if alive.size else norms


def keep_one_unit_per_layer(scores: list[np.ndarray], alive: list | None = None) -> list[np.ndarray]:
    """A global unit strategy's scores with each layer's best unit (of those ``alive``, when given) made
    unprunable (+inf): one threshold over all layers may otherwise empty a layer, which cuts the network in two."""
    out = []
    for i, s in enumerate(scores):
        s = np.array(s, dtype=np.float64)
        a = None if alive is None or alive[i] is None else np.asarray(alive[i], bool).ravel()
        candidates = np.where(a if a is not None and a.any() else np.ones(s.size, bool))[0]
        if candidates.size:
            s.ravel()[candidates[np.argmax(s.ravel()[candidates])]] = np.inf
        out.append(s)
    return out


def _rng(info: LayerInfo) -> np.random.Generator:
    """The run's seed and the layer's position decide the draw: a rerun, or the next k of a chain,
    draws the same scores, so its masks are the same (and nested along the chain)."""
    return np.random.default_rng([int(info.seed), int(info.index)])


def random_weight_scores(kernel: np.ndarray, info: LayerInfo | None = None) -> np.ndarray:
    """A uniform random score per entry, independent of the weights."""
    return _rng(info or LayerInfo()).random(kernel.shape)


def random_unit_scores(kernel: np.ndarray, info: LayerInfo | None = None) -> np.ndarray:
    """A uniform random score per unit, drawn for the original width and indexed by the units the
    layer still has, so a shrunk layer keeps its units' scores."""
    info = info or LayerInfo()
    units = kernel.shape[-1]
    full = info.full_units or units
    draw = _rng(info).random(full)
    kept = np.arange(units) if info.kept is None else np.asarray(info.kept, dtype=np.int64)
    return draw[kept]


register(Strategy("weight", weight_scores, "weight", "layer", "weight pruning", "tab:blue",
                  "the k% smallest |w| of each hidden layer"))
register(Strategy("neuron", neuron_scores, "unit", "layer", "neuron (unit) pruning", "tab:orange",
                  "the k% units of each hidden layer (dense columns, convolution filters; alias: filter) with the "
                  "smallest L2 norm"))
register(Strategy("random", random_weight_scores, "weight", "layer", "random weights (baseline)", "tab:gray",
                  "k% of each hidden layer's weights chosen at random (seeded by --seed and the layer)"))
register(Strategy("random_neuron", random_unit_scores, "unit", "layer", "random units (baseline)", "tab:brown",
                  "k% of each hidden layer's units chosen at random (seeded by --seed and the layer; alias: "
                  "random_filter)"))
register(Strategy("global_weight", weight_scores, "weight", "global", "global weight pruning", "tab:green",
                  "the k% smallest |w| over all hidden layers together (one threshold)"))
register(Strategy("global_neuron", relative_neuron_scores, "unit", "global", "global neuron pruning", "tab:olive",
                  "the k% of all hidden units (dense columns, convolution filters) together with the smallest L2 "
                  "norm relative to their layer's mean, one threshold over all layers, so each layer loses its own "
                  "share (every layer keeps at least one unit; alias: global_filter)"))


def no_scores(kernel: np.ndarray, info: LayerInfo | None = None) -> np.ndarray:
    raise ValueError("a student is a small dense network: it has no masks to score")


register(Strategy("student", no_scores, "student", "layer", "small dense student (labels only)", "tab:purple",
                  "baseline: a dense network of the same family, its widths scaled to as many weights as weight "
                  "pruning leaves at k, trained on the labels for --epochs", protocol="student"))
register(Strategy("distill", no_scores, "student", "layer", "small dense student (distilled)", "tab:pink",
                  "baseline: the same small dense network, trained on the dense network's logits softened at "
                  "--temperature (Hinton et al. 2015) and the labels", protocol="student"))


# other names a strategy answers to: a convolution's units are its filters. A run is always stored
# under the strategy's own name, so neuron_k50 is the same run whichever name asked for it.
ALIASES = {"filter": "neuron", "random_filter": "random_neuron", "global_filter": "global_neuron"}


def canonical(name: str) -> str:
    """The registered name for ``name`` (itself, or what an alias stands for)."""
    return ALIASES.get(name, name)


# ---------------------------------------------------------------------------- masks
def n_pruned(count: int, sparsity: float) -> int:
    """How many of ``count`` items sparsity ``k`` percent removes: round(k% x count), halves up."""
    if not 0 <= sparsity < 100:
        raise ValueError(f"sparsity {sparsity} is outside [0, 100)")
    return min(count, int(math.floor(sparsity * count / 100.0 + 0.5)))


def _alive(strategy: Strategy, mask: np.ndarray) -> np.ndarray:
    """A kernel-shaped mask seen at the strategy's granularity (unit: alive if any entry is)."""
    if strategy.granularity == "unit":
        return (units_view(mask) != 0).any(axis=0)
    return mask != 0


def lowest_mask(scores: np.ndarray, n: int, alive: np.ndarray | None = None) -> np.ndarray:
    """0/1 array shaped like ``scores`` with exactly ``n`` zeros at the lowest scores.

    Entries where ``alive`` is False are taken first; ties go to the lower flat index.
    """
    flat = scores.ravel().astype(np.float64)
    if alive is not None:
        flat = np.where(alive.ravel(), flat, -np.inf)
    order = np.argsort(flat, kind="stable")
    keep = np.ones(flat.size, dtype=np.float32)
    keep[order[:n]] = 0.0
    return keep.reshape(scores.shape)


def compute_masks(
    strategy: str, kernels: list[np.ndarray], sparsity: float, currents: list[np.ndarray | None] | None = None,
    removed: list[int] | None = None, infos: list[LayerInfo] | None = None,
) -> list[np.ndarray]:
    """The float32 0/1 masks, shaped like ``kernels``, that prune ``sparsity`` percent.

    Layer scope: each layer loses exactly round(k% x its items) entries (weight granularity) or
    whole columns (unit granularity). Global scope: exactly round(k% x all prunable entries) go,
    the lowest scores over all layers together. ``currents`` (previous masks) are pruned first.
    ``removed[i]`` items of layer i are already physically gone (a shrunk layer): k% counts the
    original items, and the removed ones count as pruned.
    """
    strat = get(strategy)
    kernels = [np.asarray(k) for k in kernels]
    n_layers = len(kernels)
    currents = currents or [None] * n_layers
    removed = removed or [0] * n_layers
    infos = infos or [LayerInfo(index=i) for i in range(n_layers)]
    scores = [strat.score(k, info) for k, info in zip(kernels, infos)]
    alive = [None if c is None else _alive(strat, np.asarray(c)) for c in currents]
    keeps = select(scores, sparsity, strat.scope, strat.granularity, alive, removed)
    return [np.broadcast_to(keep, k.shape).astype(np.float32) for keep, k in zip(keeps, kernels)]


def select(scores: list[np.ndarray], sparsity: float, scope: str, granularity: str,
           alive: list | None = None, removed: list[int] | None = None) -> list[np.ndarray]:
    """Which items to keep (bool arrays shaped like ``scores``: one entry per weight, or per unit) so that
    ``sparsity`` percent go, the lowest scores first. ``scope`` "layer": each layer loses exactly
    ``n_pruned`` of its own items; "global": that many of all layers' items together, the lowest over all
    of them (for units, every layer keeps its best unit: ``keep_one_unit_per_layer``). ``alive[i]``
    (None: all) marks items already pruned, which go first; ``removed[i]`` items of layer i are physically
    gone and count as pruned. ``compute_masks`` scores with the strategy; ``pruning.sparsify`` with a
    method's own scores (gates, log alpha)."""
    alive = alive or [None] * len(scores)
    removed = removed or [0] * len(scores)
    if scope == "layer":
        return [lowest_mask(s, max(0, n_pruned(s.size + r, sparsity) - r), a)
                for s, r, a in zip(scores, removed, alive)]
    if granularity == "unit":
        scores = keep_one_unit_per_layer(scores, alive)
    flat = np.concatenate([s.ravel().astype(np.float64) for s in scores])
    flat_alive = None if all(a is None for a in alive) else np.concatenate(
        [np.ones(s.size, bool) if a is None else a.ravel() for s, a in zip(scores, alive)])
    n = max(0, n_pruned(flat.size + sum(removed), sparsity) - sum(removed))
    if granularity == "unit":  # every layer keeps one unit
        n = min(n, flat.size - sum(1 for sc in scores if sc.size))
    joint = lowest_mask(flat, n, flat_alive)
    bounds = np.cumsum([0] + [s.size for s in scores])
    return [joint[a:b].reshape(s.shape) for a, b, s in zip(bounds[:-1], bounds[1:], scores)]


def compute_mask(strategy: str, kernel: np.ndarray, sparsity: float, current: np.ndarray | None = None,
                 removed: int = 0, info: LayerInfo | None = None) -> np.ndarray:
    """One layer's mask (``compute_masks`` for a single layer; for a global strategy that is the
    layer scope, since the layer is all there is)."""
    return compute_masks(strategy, [kernel], sparsity, [current], [removed], [info or LayerInfo()])[0]


def threshold(strategy: str, kernel: np.ndarray, mask: np.ndarray, info: LayerInfo | None = None) -> float:
    """The largest score that was pruned (0.0 when nothing is): TensorBoard's threshold/<layer>."""
    strat = get(strategy)
    scores = strat.score(np.asarray(kernel), info or LayerInfo())
    pruned = ~_alive(strat, np.asarray(mask))
    return float(scores[pruned].max()) if pruned.any() else 0.0


def sparsity_of(array: np.ndarray) -> float:
    """Measured fraction of exactly-zero entries."""
    a = np.asarray(array)
    return float(np.count_nonzero(a == 0) / a.size) if a.size else 0.0


# ---------------------------------------------------------------------------- lottery levels
def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def alive_after(count: int, fraction: float, levels: int) -> int:
    """Items left of ``count`` after ``levels`` levels that each prune round(fraction x what is alive)."""
    for _ in range(levels):
        count -= round_half_up(fraction * count)
    return count


def prune_alive(strategy: str, kernels: list[np.ndarray], currents: list[np.ndarray],
                groups: list[tuple[list[int], float]], infos: list[LayerInfo] | None = None) -> list[np.ndarray]:
    """One level of iterative magnitude pruning: in each group of layers (``(layer indices, fraction)``),
    exactly round(fraction x the items still alive in the group) more items go, the lowest scored
    among the alive ones (``lowest_mask``). A layer-scope strategy puts each layer in its own group; a
    global one pools layers. Items are entries (weight granularity) or kernel columns (unit)."""
    strat = get(strategy)
    kernels = [np.asarray(k) for k in kernels]
    infos = infos or [LayerInfo(index=i) for i in range(len(kernels))]
    new = [np.asarray(c, dtype=np.float32) for c in currents]
    for layers, fraction in groups:
        scores = [strat.score(kernels[i], infos[i]) for i in layers]
        alive = [_alive(strat, np.asarray(currents[i])) for i in layers]
        flat = np.concatenate([s.ravel().astype(np.float64) for s in scores])
        flat_alive = np.concatenate([a.ravel() for a in alive])
        n_alive = int(flat_alive.sum())
        keep = lowest_mask(flat, flat.size - n_alive + round_half_up(fraction * n_alive), flat_alive)
        bounds = np.cumsum([0] + [s.size for s in scores])
        for i, a, b, s in zip(layers, bounds[:-1], bounds[1:], scores):
            new[i] = np.broadcast_to(keep[a:b].reshape(s.shape), kernels[i].shape).astype(np.float32)
    return new


def random_like(current: list[np.ndarray], rng: np.random.Generator, granularity: str = "weight") -> list[np.ndarray]:
    """Random masks with exactly the items alive per layer that ``current`` has (entries, or whole
    units at unit granularity), placed uniformly at random by ``rng``."""
    out = []
    for c in current:
        c = np.asarray(c)
        alive = (units_view(c) != 0).any(axis=0) if granularity == "unit" else (c != 0)
        keep = np.zeros(alive.size, dtype=np.float32)
        keep[rng.permutation(alive.size)[:int(alive.sum())]] = 1.0
        out.append(np.broadcast_to(keep.reshape(alive.shape), c.shape).astype(np.float32))
    return out
