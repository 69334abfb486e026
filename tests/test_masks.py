"""pruning.core.masks: exact counts, ties, whole columns, monotone chains, lowest scores first."""
import numpy as np
import pytest

from pruning.core import masks
from helpers import assert_mask_count, expected_pruned

STRATEGIES = ("weight", "neuron")
SPARSITIES = (0, 25, 50, 90, 97.5, 99)
SHAPES = ((784, 1000), (7, 13), (13, 7), (1, 1), (3, 1))


def _kernel(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.fixture(scope="module")
def big_kernel():
    return _kernel((784, 1000), seed=1)


@pytest.mark.parametrize("k", SPARSITIES)
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_mask_prunes_exactly_round_half_up_of_k_percent(strategy, k, shape, big_kernel):
    kernel = big_kernel if shape == (784, 1000) else _kernel(shape)
    mask = masks.compute_mask(strategy, kernel, k)
    assert mask.shape == kernel.shape and mask.dtype == np.float32
    assert_mask_count(mask, strategy, k)


@pytest.mark.parametrize(
    "count, k, expected",
    [(10, 25, 3), (10, 15, 2), (10, 5, 1), (2, 25, 1), (13, 50, 7), (7, 50, 4), (1000, 97.5, 975),
     (1000, 99, 990), (91, 0, 0), (1, 49.9, 0), (1, 50, 1), (784000, 90, 705600), (3, 99.9, 3)],
)
def test_n_pruned_rounds_halves_up(count, k, expected):
    assert masks.n_pruned(count, k) == expected == expected_pruned(count, k)


@pytest.mark.parametrize("k", (100, 100.0, 150, -1, -0.001, float("nan"), float("inf")))
def test_n_pruned_rejects_sparsity_outside_0_100(k):
    with pytest.raises(ValueError, match="outside"):
        masks.n_pruned(10, k)


@pytest.mark.parametrize("k", (25, 50, 90, 97.5))
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("shape", ((7, 13), (40, 30)), ids=lambda s: f"{s[0]}x{s[1]}")
def test_all_equal_kernel_still_masks_the_exact_count(strategy, k, shape):
    mask = masks.compute_mask(strategy, np.ones(shape, np.float32), k)
    assert_mask_count(mask, strategy, k)


@pytest.mark.parametrize("k", (25, 50, 90))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ties_go_to_the_lower_index_so_masks_are_reproducible(strategy, k):
    mask = masks.compute_mask(strategy, np.full((40, 30), 0.5, np.float32), k)
    if strategy == "weight":
        n = expected_pruned(1200, k)
        assert np.array_equal(np.flatnonzero(mask.ravel() == 0), np.arange(n))
    else:
        n = expected_pruned(30, k)
        assert np.array_equal(np.flatnonzero((mask == 0).all(axis=0)), np.arange(n))


@pytest.mark.parametrize("k", (25, 50, 90))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ties_among_few_distinct_scores_go_to_the_lower_index(strategy, k):
    rng = np.random.default_rng(9)
    kernel = rng.choice(np.array([-0.3, 0.1, 0.2, 0.3], np.float32), size=(40, 30))
    if strategy == "neuron":
        kernel = np.repeat(rng.choice(np.array([0.1, 0.2, 0.3], np.float32), size=(1, 30)), 40, axis=0)
    mask = masks.compute_mask(strategy, kernel, k)
    scores = np.abs(kernel).ravel() if strategy == "weight" else np.abs(kernel[0])
    ranked = sorted(range(scores.size), key=lambda i: (round(float(scores[i]), 6), i))  # score, then position
    dead = np.flatnonzero(mask.ravel() == 0) if strategy == "weight" else np.flatnonzero((mask == 0).all(axis=0))
    assert np.array_equal(dead, np.sort(ranked[: expected_pruned(scores.size, k)]))


@pytest.mark.parametrize("k", (25, 50, 90))
def test_neuron_mask_is_whole_columns_with_lowest_l2_norms(k):
    kernel = _kernel((50, 40), seed=3)
    mask = masks.compute_mask("neuron", kernel, k)
    dead = (mask == 0).all(axis=0)
    assert np.all(dead | (mask == 1).all(axis=0))
    norms = np.linalg.norm(kernel.astype(np.float64), axis=0)
    assert norms[dead].max() <= norms[~dead].min()
    assert np.array_equal(np.sort(np.flatnonzero(dead)), np.sort(np.argsort(norms)[: expected_pruned(40, k)]))


@pytest.mark.parametrize("k", (25, 50, 90, 99))
@pytest.mark.parametrize("shape", ((7, 13), (200, 300)), ids=lambda s: f"{s[0]}x{s[1]}")
def test_weight_mask_removes_the_lowest_magnitudes(k, shape):
    kernel = _kernel(shape, seed=4)
    mask = masks.compute_mask("weight", kernel, k)
    scores = np.abs(kernel)
    assert scores[mask == 0].max() <= scores[mask == 1].min()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_threshold_is_the_largest_pruned_score(strategy):
    kernel = _kernel((30, 20), seed=5)
    mask = masks.compute_mask(strategy, kernel, 50)
    scores = masks.get(strategy).score(kernel, masks.LayerInfo())
    pruned = (mask == 0) if strategy == "weight" else (mask == 0).all(axis=0)
    t = masks.threshold(strategy, kernel, mask)
    assert t == float(scores[pruned].max())
    assert np.all(scores[~pruned] >= t)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_threshold_is_zero_when_nothing_is_pruned(strategy):
    kernel = _kernel((6, 5))
    assert masks.threshold(strategy, kernel, masks.compute_mask(strategy, kernel, 0)) == 0.0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_iterative_chain_masks_only_grow_and_keep_exact_counts(strategy):
    kernel = _kernel((60, 50), seed=6)
    mask = None
    for k in (25, 50, 60, 90, 97.5, 99):
        new = masks.compute_mask(strategy, kernel if mask is None else kernel * mask, k, current=mask)
        assert_mask_count(new, strategy, k)
        if mask is not None:
            assert np.all(new[mask == 0] == 0), f"k={k}: an entry masked earlier was revived"
        mask = new


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_current_mask_zeros_are_pruned_first_even_if_their_scores_are_high(strategy):
    kernel = _kernel((20, 30), seed=7)
    rng = np.random.default_rng(8)
    current = np.ones_like(kernel)
    if strategy == "weight":
        high = np.argsort(np.abs(kernel).ravel())[-100:]  # the 100 largest entries (of 600)
        current.ravel()[rng.choice(high, 60, replace=False)] = 0
        n_dead = 60
    else:
        high = np.argsort(np.linalg.norm(kernel, axis=0))[-10:]  # the 10 strongest units (of 30)
        current[:, rng.choice(high, 6, replace=False)] = 0
        n_dead = 6
    mask = masks.compute_mask(strategy, kernel, 50, current=current)  # the raw kernel, not kernel * current
    assert_mask_count(mask, strategy, 50)
    assert np.all(mask[current == 0] == 0)
    # the remaining prunes are the lowest scores among the items still alive
    if strategy == "weight":
        scores, alive, new_dead = np.abs(kernel), current == 1, (mask == 0) & (current == 1)
        assert new_dead.sum() == expected_pruned(600, 50) - n_dead
    else:
        scores = np.linalg.norm(kernel, axis=0)
        alive, new_dead = (current == 1).all(axis=0), (mask == 0).all(axis=0) & (current == 1).all(axis=0)
        assert new_dead.sum() == expected_pruned(30, 50) - n_dead
    assert scores[new_dead].max() <= scores[alive & ~new_dead].min()


def test_unknown_strategy_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="foo"):
        masks.compute_mask("foo", np.ones((3, 3)), 50)


@pytest.mark.parametrize("k", (100, -1))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_compute_mask_rejects_sparsity_outside_0_100(strategy, k):
    with pytest.raises(ValueError):
        masks.compute_mask(strategy, np.ones((3, 3)), k)


@pytest.mark.parametrize("array, expected", [(np.zeros((2, 5)), 1.0), (np.eye(4), 0.75), (np.ones(3), 0.0),
                                             (np.array([0.0, -0.0, 1e-30, 2.0]), 0.5)])
def test_sparsity_of_counts_exact_zeros(array, expected):
    assert masks.sparsity_of(array) == expected


# --------------------------------------------------------------------------- the registry and the baselines
def test_every_registered_strategy_names_its_score_granularity_scope_label_and_colour():
    assert masks.names()[:2] == ("weight", "neuron")
    assert {"random", "random_neuron", "global_weight"} <= set(masks.names())
    for s in masks.STRATEGIES.values():
        assert s.granularity in masks.GRANULARITIES and s.scope in masks.SCOPES and s.label and s.color and s.help
    assert [s.name for s in masks.STRATEGIES.values() if s.shrinks] == ["neuron", "random_neuron", "global_neuron"]
    assert [s.name for s in masks.STRATEGIES.values() if s.scope == "global"] == ["global_weight", "global_neuron"]


def test_a_strategy_name_can_be_registered_once_only():
    with pytest.raises(ValueError, match="already registered"):
        masks.register(masks.get("weight"))


@pytest.mark.parametrize("k", SPARSITIES)
@pytest.mark.parametrize("strategy", ("random", "random_neuron", "global_weight"))
def test_the_baselines_prune_exactly_round_half_up_of_k_percent_of_one_layer(strategy, k, big_kernel):
    assert_mask_count(masks.compute_mask(strategy, big_kernel, k), strategy, k)


@pytest.mark.parametrize("strategy", ("random", "random_neuron"))
def test_random_masks_depend_on_the_seed_and_the_layer_only(strategy, big_kernel):
    at = lambda seed, index, kernel=big_kernel: masks.compute_mask(  # noqa: E731
        strategy, kernel, 50, info=masks.LayerInfo(index=index, seed=seed))
    assert np.array_equal(at(0, 0), at(0, 0))  # a rerun draws the same mask
    assert not np.array_equal(at(0, 0), at(1, 0))  # another seed, another mask
    assert not np.array_equal(at(0, 0), at(0, 1))  # another layer, another mask
    assert np.array_equal(at(3, 2), at(3, 2, kernel=-7 * big_kernel))  # the weights do not matter


def test_random_weight_masks_ignore_magnitude(big_kernel):
    """Among the k% smallest |w|, a random mask prunes about k of them (magnitude pruning: all)."""
    for k in (25, 50, 90):
        smallest = np.abs(big_kernel) <= np.percentile(np.abs(big_kernel), k)
        random_pruned = (masks.compute_mask("random", big_kernel, k) == 0)[smallest].mean()
        magnitude_pruned = (masks.compute_mask("weight", big_kernel, k) == 0)[smallest].mean()
        assert abs(random_pruned - k / 100) < 0.01, (k, random_pruned)  # 784,000 draws: sd < 0.001
        assert magnitude_pruned > 0.999


def test_random_unit_masks_ignore_column_norms(big_kernel):
    kernel = big_kernel * np.linspace(0.1, 10, 1000, dtype=np.float32)  # column norms rise with the index
    dead = (masks.compute_mask("random_neuron", kernel, 50) == 0).all(axis=0)
    assert 0.4 < dead[:500].mean() < 0.6  # the weak half loses about half its units, not all of them
    assert (masks.compute_mask("neuron", kernel, 50) == 0).all(axis=0)[:500].mean() > 0.95  # magnitude: ~all


@pytest.mark.parametrize("strategy", ("random", "random_neuron"))
def test_a_random_chain_keeps_its_pruned_items_and_draws_new_ones_among_the_survivors(strategy, big_kernel):
    info = masks.LayerInfo(index=1, seed=7)
    mask = None
    for k in (25, 50, 90, 99):
        new = masks.compute_mask(strategy, big_kernel if mask is None else big_kernel * mask, k, current=mask, info=info)
        assert_mask_count(new, strategy, k)
        if mask is not None:
            assert np.all(new[mask == 0] == 0), f"k={k}: a pruned item was revived"
        mask = new
    # nested draws: the chain ends where pruning straight to 99 % does
    assert np.array_equal(mask, masks.compute_mask(strategy, big_kernel, 99, info=info))


def test_a_shrunk_layer_keeps_its_units_random_scores():
    """random_neuron draws per original unit: a layer shrunk to units 2, 5, 7 of 10 scores them as
    the full layer scored units 2, 5 and 7."""
    full = _kernel((6, 10))
    kept = np.array([2, 5, 7])
    info_full = masks.LayerInfo(index=0, full_units=10, seed=3)
    info_shrunk = masks.LayerInfo(index=0, full_units=10, kept=kept, seed=3)
    scores_full = masks.random_unit_scores(full, info_full)
    assert np.array_equal(masks.random_unit_scores(full[:, kept], info_shrunk), scores_full[kept])


def _layers_of_different_scale():
    rng = np.random.default_rng(11)
    return [rng.normal(0, 1.0, (30, 40)).astype(np.float32),   # large weights
            rng.normal(0, 0.1, (40, 20)).astype(np.float32),   # small weights
            rng.normal(0, 0.5, (20, 10)).astype(np.float32)]


@pytest.mark.parametrize("k", (25, 50, 90, 97.5))
def test_global_pruning_removes_exactly_k_percent_of_all_weights_below_one_threshold(k):
    kernels = _layers_of_different_scale()
    new = masks.compute_masks("global_weight", kernels, k)
    total = sum(m.size for m in new)
    assert sum(int(np.count_nonzero(m == 0)) for m in new) == expected_pruned(total, k)
    pruned = np.concatenate([np.abs(w)[m == 0] for w, m in zip(kernels, new)])
    kept = np.concatenate([np.abs(w)[m == 1] for w, m in zip(kernels, new)])
    assert pruned.max() <= kept.min()  # one threshold over every layer


def test_global_pruning_prunes_the_layer_of_small_weights_hardest():
    kernels = _layers_of_different_scale()
    fractions = [float((m == 0).mean()) for m in masks.compute_masks("global_weight", kernels, 50)]
    layerwise = [float((m == 0).mean()) for m in masks.compute_masks("weight", kernels, 50)]
    assert layerwise == [0.5, 0.5, 0.5]
    assert fractions[1] > 0.95 and fractions[0] < 0.3, fractions  # 1,200 + 800 + 200 weights; 1,000 go
    assert fractions[1] > fractions[2] > fractions[0]


def test_a_global_chain_only_grows_and_prunes_what_was_pruned_first():
    kernels = _layers_of_different_scale()
    current = None
    for k in (25, 50, 90):
        new = masks.compute_masks("global_weight", kernels, k, currents=current)
        if current is not None:
            assert all(np.all(n[c == 0] == 0) for n, c in zip(new, current))
        current = new
    total = sum(m.size for m in current)
    assert sum(int(np.count_nonzero(m == 0)) for m in current) == expected_pruned(total, 90)


def test_global_neuron_prunes_an_exact_share_of_all_units_by_norm_relative_to_the_layer_and_never_empties_one():
    rng = np.random.default_rng(0)
    # layer 0 has large weights (fan-in 20), layer 1 small ones (fan-in 5): raw norms would strip layer 1 first
    k0 = rng.normal(0, 10.0, (20, 8))
    k1 = rng.normal(0, 0.1, (5, 4))
    k1[:, 0] *= 0.01  # one clearly weak unit in the small layer
    m0, m1 = masks.compute_masks("global_neuron", [k0, k1], 25.0)
    kept0, kept1 = m0.any(axis=0), m1.any(axis=0)
    assert (~kept0).sum() + (~kept1).sum() == 3  # round half up of 25 % of 12 units
    assert not kept1[0]  # the weak unit relative to its own layer goes
    rel0 = np.linalg.norm(k0, axis=0) / np.linalg.norm(k0, axis=0).mean()
    rel1 = np.linalg.norm(k1, axis=0) / np.linalg.norm(k1, axis=0).mean()
    pruned = np.concatenate([rel0[~kept0], rel1[~kept1]])
    alive = np.concatenate([rel0[kept0], rel1[kept1]])
    assert pruned.max() <= alive.min()
    # at 99 % every layer still keeps its best unit
    m0, m1 = masks.compute_masks("global_neuron", [k0, k1], 99.0)
    assert m0.any(axis=0).sum() == 1 and m1.any(axis=0).sum() == 1
    assert masks.canonical("global_filter") == "global_neuron"
