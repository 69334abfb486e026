"""pruning.sparsify: the sparsity-inducing training methods of issue 24, checked against hand-computed numbers.

Penalties (group lasso, L1) against NumPy, value and gradient, with masks that zero entries and whole
units; the hard-concrete gates' expected L0 against its closed form, their test-time gate, folding;
targeted dropout's candidates and drop rate (binomial tolerance), and nothing dropped at inference;
hyper-parameter validation; every method trained with model.fit, saved and loaded."""
import argparse
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from pruning import sparsify  # noqa: E402
from pruning.config import ConfigError, ModelConfig  # noqa: E402
from pruning.core import masks  # noqa: E402
from pruning.core.callbacks import MaskingCallback, assign_masks, masks_applied  # noqa: E402
from pruning.core.layers import MaskedConv2D, MaskedDense, load_model, masked_layers  # noqa: E402
from pruning.deploy.shrink import shrink_model  # noqa: E402
from pruning.models.lenet5 import build_lenet5  # noqa: E402
from pruning.models.mlp import build_mlp  # noqa: E402
from pruning.sparsify import layers as sl  # noqa: E402
from helpers import assert_mask_count, expected_pruned  # noqa: E402

# a 3 x 4 kernel by hand, and a mask that zeroes one entry (row 0 of unit 0) and all of unit 2
W = np.array([[3.0, -1.0, 2.0, 0.5],
              [4.0, 2.0, -2.0, -0.5],
              [0.0, -2.0, 1.0, 1.0]], dtype=np.float32)
M = np.array([[0, 1, 0, 1],
              [1, 1, 0, 1],
              [1, 1, 0, 1]], dtype=np.float32)


def _dense(cls, kernel, mask=None, **kwargs):
    layer = cls(kernel.shape[-1], **kwargs)
    layer.build((None, kernel.shape[0]))
    layer.kernel.assign(kernel)
    if mask is not None:
        layer.mask.assign(mask)
    return layer


def _value_and_grad(layer, variable):
    with tf.GradientTape() as tape:
        value = layer.penalty_value()
    return float(value), tape.gradient(value, variable).numpy()


def _mlp(hidden=(6, 5), input_dim=8, seed=0):
    keras.utils.set_random_seed(seed)
    return build_mlp(input_dim, ModelConfig(hidden=hidden))


def _x(n=16, dim=8, seed=1):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


# --------------------------------------------------------------------------- penalties
def test_group_lasso_value_and_gradient_on_a_masked_kernel_match_numpy():
    layer = _dense(sl.PenalizedDense, W, M, penalty="group_lasso", strength=0.1)
    value, grad = _value_and_grad(layer, layer.kernel)
    # by hand: the masked columns are (0, 4, 0), (-1, 2, -2), (0, 0, 0), (0.5, -0.5, 1)
    norms = [4.0, 3.0, 0.0, math.sqrt(1.5)]
    assert value == pytest.approx(0.1 * sum(norms), rel=1e-6)
    wm = W * M
    col = np.linalg.norm(wm, axis=0)
    want = 0.1 * np.where(col > 0, wm / np.where(col > 0, col, 1), 0.0) * M
    np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(grad)) and np.all(grad[:, 2] == 0) and grad[0, 0] == 0  # pruned: no pull, no NaN
    np.testing.assert_allclose(grad[:, 1], [-0.1 / 3, 0.2 / 3, -0.2 / 3], rtol=1e-6)


def test_group_lasso_of_a_convolution_takes_each_filter_as_one_group():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(2, 2, 3, 4)).astype(np.float32)
    mask = np.ones_like(kernel)
    mask[..., 1] = 0.0  # filter 1 pruned
    mask[0, 0, 0, 3] = 0.0  # one entry of filter 3
    layer = sl.PenalizedConv2D(4, kernel_size=2, penalty="group_lasso", strength=0.5)
    layer.build((None, 5, 5, 3))
    layer.kernel.assign(kernel)
    layer.mask.assign(mask)
    value, grad = _value_and_grad(layer, layer.kernel)
    wm = (kernel * mask).reshape(12, 4)
    norms = np.linalg.norm(wm, axis=0)
    assert norms[1] == 0
    assert value == pytest.approx(0.5 * norms.sum(), rel=1e-6)
    want = 0.5 * np.where(norms > 0, wm / np.where(norms > 0, norms, 1), 0.0).reshape(kernel.shape) * mask
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)


def test_l1_value_and_gradient_on_a_masked_kernel_match_numpy():
    layer = _dense(sl.PenalizedDense, W, M, penalty="l1", strength=0.01)
    value, grad = _value_and_grad(layer, layer.kernel)
    # |W * M| by hand: 0+1+0+0.5 + 4+2+0+0.5 + 0+2+0+1 = 11
    assert value == pytest.approx(0.11, rel=1e-6)
    np.testing.assert_allclose(grad, 0.01 * np.sign(W) * M, rtol=1e-6)


@pytest.mark.parametrize("method", ("group_lasso", "l1"))
def test_the_penalty_is_what_fit_adds_to_the_cross_entropy(method):
    plain = _mlp()
    x, y = _x(), np.arange(16) % 10
    model = sparsify.apply(plain, method, sparsify.with_strength(method, None, 0.01))
    for m in (plain, model):
        m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    expected = sum(float(l.penalty_value()) for l in masked_layers(model))
    assert expected > 0 and sparsify.penalty(model) == pytest.approx(expected)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-6)
    ce = plain.evaluate(x, y, batch_size=16, verbose=0)
    total = model.evaluate(x, y, batch_size=16, verbose=0)
    assert total - ce == pytest.approx(expected, rel=1e-4)


# --------------------------------------------------------------------------- hard-concrete gates
LOG_ALPHA = np.array([-4.0, -1.0, 0.0, 1.5, 4.0], dtype=np.float32)


def _gated_dense(log_alpha=LOG_ALPHA, strength=0.1, per_weight=False, fan_in=3):
    layer = sl.GatedDense(len(log_alpha), strength=strength, per_weight=per_weight)
    layer.build((None, fan_in))
    layer.set_log_alpha(log_alpha)
    return layer


def test_expected_l0_is_its_closed_form_and_its_gradient_p_times_one_minus_p():
    layer = _gated_dense()
    value, grad = _value_and_grad(layer, layer.gate_variable)  # m = 1: the variable is log alpha
    shift = (2.0 / 3.0) * math.log(0.1 / 1.1)  # beta log(-gamma / zeta) = -1.598597
    assert shift == pytest.approx(-1.598597, abs=1e-6)
    p = [1.0 / (1.0 + math.exp(-(a - shift))) for a in LOG_ALPHA.astype(float)]
    assert p[2] == pytest.approx(0.831822, abs=1e-6)  # log_alpha 0: sigmoid(1.598597)
    assert value == pytest.approx(0.1 * sum(p), rel=1e-6)
    np.testing.assert_allclose(grad, [0.1 * q * (1 - q) for q in p], rtol=1e-5)
    np.testing.assert_allclose(sl.gate_scores(keras.Sequential([keras.Input((3,)), layer]))[layer.name], p,
                               rtol=1e-6)
    weighted = _gated_dense(per_weight=True, fan_in=3)
    assert float(weighted.penalty_value()) == pytest.approx(3 * value, rel=1e-6)  # each gate counts its 3 weights


def test_the_expected_l0_is_the_rate_of_nonzero_sampled_gates():
    layer = _gated_dense(np.full(2000, 0.5, dtype=np.float32))
    samples = np.stack([layer.gate(training=True).numpy() for _ in range(10)])
    p = 1.0 / (1.0 + math.exp(-(0.5 - (2.0 / 3.0) * math.log(0.1 / 1.1))))
    n = samples.size
    assert abs(np.mean(samples > 0) - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert samples.min() >= 0 and samples.max() <= 1 and np.mean(samples == 1) > 0.1  # hard: exact 0s and 1s


def test_the_deterministic_gate_at_inference():
    layer = _gated_dense()
    # min(1, max(0, sigmoid(a) x 1.2 - 0.1)): -4 -> 0; -1 -> 0.2689 x 1.2 - 0.1; 0 -> 0.5; 1.5 -> 0.8176 x 1.2 - 0.1; 4 -> 1
    want = [0.0, 0.26894142 * 1.2 - 0.1, 0.5, 0.81757448 * 1.2 - 0.1, 1.0]
    np.testing.assert_allclose(layer.gate(training=False).numpy(), want, rtol=1e-6, atol=1e-7)
    kernel = np.arange(15, dtype=np.float32).reshape(3, 5) - 7
    layer.kernel.assign(kernel)
    x = _x(4, 3)
    np.testing.assert_allclose(layer(x, training=False).numpy(), np.maximum(x @ (kernel * np.float32(want)), 0),
                               rtol=1e-5, atol=1e-5)


def _set_gates(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in masked_layers(model):
        la = rng.uniform(-3.0, 3.0, layer.units).astype(np.float32)
        la[0] = -5.0  # a gate exactly 0 at inference
        la[-1] = 5.0  # one exactly 1
        layer.set_log_alpha(la)


@pytest.mark.parametrize("network", ("mlp", "lenet5"))
def test_folded_gates_give_the_gated_logits_in_plain_layers_and_shrink(network):
    keras.utils.set_random_seed(0)
    if network == "mlp":
        plain, x = build_mlp(8, ModelConfig(hidden=(7, 6))), _x(32, 8)
    else:
        plain = build_lenet5(256, ModelConfig(name="lenet5", filters=(4, 6), hidden=(10,)))
        x = np.random.default_rng(2).uniform(size=(32, 256)).astype(np.float32)
    gated = sparsify.add_gates(plain)
    assert all(isinstance(l, (sl.GatedDense, sl.GatedConv2D)) for l in masked_layers(gated))
    np.testing.assert_array_equal(gated.get_layer(masked_layers(plain)[0].name).kernel.numpy(),
                                  masked_layers(plain)[0].kernel.numpy())
    _set_gates(gated)
    folded = sparsify.fold_gates(gated)
    assert {type(l) for l in masked_layers(folded)} <= {MaskedDense, MaskedConv2D}
    assert not any(isinstance(l, sl.SPARSIFY_CLASSES) for l in folded.layers)
    want = gated(x, training=False).numpy()
    np.testing.assert_allclose(folded(x).numpy(), want, rtol=1e-5, atol=1e-6)
    # the gates at 0 leave zero columns, which shrink_model removes; the network computes the same
    smaller, keep = shrink_model(folded)
    for layer, kept in zip(masked_layers(gated), keep):
        z = layer.gate(False).numpy()
        assert 0 not in kept and (layer.units - 1) in kept and len(kept) <= int(np.count_nonzero(z))
    np.testing.assert_allclose(smaller(x).numpy(), want, rtol=1e-5, atol=1e-5)


def test_l0_prunes_exactly_the_units_with_the_smallest_gate_probabilities_and_shrinks_after_folding():
    gated = sparsify.apply(_mlp(hidden=(10, 8)), "l0", strategy="neuron")
    _set_gates(gated, seed=3)
    k = 50
    mask_set = sparsify.compute_masks(gated, "l0", "neuron", k)
    assert mask_set.strategy == "neuron" and mask_set.sparsity == 50.0
    scores = sparsify.unit_scores(gated, "l0")
    for layer in masked_layers(gated):
        mask = mask_set.masks[layer.name]
        assert_mask_count(mask, "neuron", k)
        dead = np.flatnonzero((mask == 0).all(axis=0))
        assert set(dead) == set(np.argsort(layer.log_alpha.numpy())[:expected_pruned(layer.units, k)])
        assert mask_set.thresholds[layer.name] == pytest.approx(scores[layer.name][dead].max())
    assign_masks(gated, mask_set)
    x = _x()
    want = gated(x, training=False).numpy()
    plain = sparsify.finalize(gated)
    smaller, keep = shrink_model(plain)
    assert [len(k_) for k_ in keep] == [5, 4]  # 10 - 5 and 8 - 4 units (no gate was exactly 0 among the kept)
    np.testing.assert_allclose(smaller(x).numpy(), want, rtol=1e-5, atol=1e-5)
    # random baselines keep their own draw; weight strategies ignore gates
    assert not sparsify.uses_method_scores("l0", "random_neuron") and sparsify.uses_method_scores("l0", "filter")


def test_the_gates_learn_gate_lr_mult_times_faster_and_compute_the_same_at_equal_log_alpha(tmp_path):
    """--l0-gate-lr-mult: the variable holds log alpha / m. At equal log alpha the gates, the penalty and the
    logits are those of m = 1; one Adam step moves log alpha m times as far; saving keeps m."""
    from pruning.core.training import compile_model

    x, y = _x(), np.arange(16) % 10
    la = np.random.default_rng(0).normal(0, 2, 10).astype(np.float32)
    models, moved = {}, {}
    for m in (1.0, 10.0):
        model = sparsify.apply(_mlp(hidden=(10, 8)), "l0", sparsify.L0Params(l0_lambda=1e-2, l0_gate_lr_mult=m),
                               strategy="neuron")
        layer = masked_layers(model)[0]
        assert layer.gate_lr_mult == m
        layer.set_log_alpha(la)
        np.testing.assert_allclose(layer.log_alpha.numpy(), la, rtol=1e-6)
        np.testing.assert_allclose(layer.gate_variable.numpy(), la / m, rtol=1e-6)
        models[m] = model
    (a, b) = (masked_layers(models[1.0])[0], masked_layers(models[10.0])[0])
    np.testing.assert_allclose(a.gate(False).numpy(), b.gate(False).numpy(), rtol=1e-6)
    np.testing.assert_allclose(float(a.penalty_value()), float(b.penalty_value()), rtol=1e-6)
    np.testing.assert_allclose(models[1.0](x, training=False).numpy(), models[10.0](x, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)
    for m, model in models.items():
        layer = masked_layers(model)[0]
        before = layer.log_alpha.numpy()
        compile_model(model, 1e-3, 0.0, 1)
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # one Adam step: about lr per variable
        moved[m] = np.abs(layer.log_alpha.numpy() - before)
    assert np.all(moved[1.0] < 1.01e-3) and np.max(moved[1.0]) > 0.9e-3
    assert np.all(moved[10.0] < 1.01e-2) and np.max(moved[10.0]) > 0.9e-2
    models[10.0].save(tmp_path / "gated.keras")
    loaded = load_model(tmp_path / "gated.keras")
    assert masked_layers(loaded)[0].gate_lr_mult == 10.0
    np.testing.assert_allclose(masked_layers(loaded)[0].log_alpha.numpy(), masked_layers(models[10.0])[0].log_alpha.numpy())


def test_a_gated_network_shrinks_with_its_gates_and_their_optimizer_moments_and_expands_back():
    """l0's unit runs retrain physically shrunk, as every unit method: shrink_model keeps the surviving units'
    gate parameters (the gated network's deterministic logits are unchanged), carry_optimizer_state their Adam
    moments, and expand_model puts them back at their units' places."""
    from pruning.core.training import compile_model
    from pruning.deploy.shrink import carry_optimizer_state, expand_model

    gated = sparsify.apply(_mlp(hidden=(10, 8)), "l0", strategy="neuron")
    _set_gates(gated, seed=3)
    compile_model(gated, 1e-2, 0.0, 4)
    x, y = _x(), np.arange(16) % 10
    gated.fit(x, y, epochs=1, batch_size=8, verbose=0)  # the optimizer has moments to carry
    assign_masks(gated, sparsify.compute_masks(gated, "l0", "neuron", 50))
    want = gated(x, training=False).numpy()
    smaller, keep = shrink_model(gated)
    assert [type(l) for l in smaller.layers] == [type(l) for l in gated.layers]
    for old, new, kept in zip(masked_layers(gated), masked_layers(smaller), keep):
        assert new.units == len(kept) == old.units // 2
        np.testing.assert_array_equal(new.log_alpha.numpy(), old.log_alpha.numpy()[kept])
    np.testing.assert_allclose(smaller(x, training=False).numpy(), want, rtol=1e-5, atol=1e-5)
    compile_model(smaller, 1e-2, 0.0, 4)
    carry_optimizer_state(gated, smaller, keep)
    old_opt, new_opt = gated.optimizer, smaller.optimizer
    for old, new, kept in zip(masked_layers(gated), masked_layers(smaller), keep):
        for slots in ("_momentums", "_velocities"):
            moved = getattr(old_opt, slots)[old_opt._get_variable_index(old.gate_variable)].numpy()
            assert np.any(moved != 0)
            np.testing.assert_array_equal(getattr(new_opt, slots)[new_opt._get_variable_index(new.gate_variable)].numpy(),
                                          moved[kept])
    smaller.fit(x, y, epochs=1, batch_size=8, verbose=0)  # and it trains on
    full = expand_model(smaller)
    np.testing.assert_allclose(full(x, training=False).numpy(), smaller(x, training=False).numpy(), rtol=1e-5,
                               atol=1e-5)
    for small, big in zip(masked_layers(smaller), masked_layers(full)):
        np.testing.assert_array_equal(big.log_alpha.numpy()[small.kept_units], small.log_alpha.numpy())


# --------------------------------------------------------------------------- targeted dropout
def _distinct_kernel(shape, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.permutation(np.prod(shape)).astype(np.float32) + 1.0
    return (values * rng.choice([-1.0, 1.0], size=values.size)).reshape(shape).astype(np.float32) / 100.0


def test_targeted_candidates_are_the_smallest_weights_or_units_with_ties_by_position():
    kernel = _distinct_kernel((20, 50))
    cand = sl.targeted_candidates(tf.constant(kernel), 0.5, "weight").numpy()
    order = np.argsort(np.abs(kernel).ravel())
    assert cand.sum() == 500 and np.all(cand.ravel()[order[:500]] == 1) and np.all(cand.ravel()[order[500:]] == 0)
    units = sl.targeted_candidates(tf.constant(kernel), 0.3, "unit").numpy()
    norms = np.linalg.norm(kernel, axis=0)
    dead = np.flatnonzero(units[0] == 1)
    assert set(dead) == set(np.argsort(norms)[:expected_pruned(50, 30)]) and np.all(units == units[0])
    zeros = np.zeros((4, 5), np.float32)  # all tied: the first n flat positions
    np.testing.assert_array_equal(sl.targeted_candidates(tf.constant(zeros), 0.25, "weight").numpy().ravel(),
                                  [1] * 5 + [0] * 15)


def test_a_shrunk_layers_candidates_are_what_the_full_size_masked_layer_would_drop():
    """A unit-pruned network retrains physically shrunk: its removed units, zero columns at full size, are
    the first candidates there, so the shrunk layer's candidates are only what is left of gamma's count."""
    kernel = _distinct_kernel((20, 10))
    removed = [2, 5, 7]
    masked = kernel.copy()
    masked[:, removed] = 0.0
    kept = [j for j in range(10) if j not in removed]
    full = sl.targeted_candidates(tf.constant(masked), 0.5, "unit").numpy()  # 5 units: the 3 zeros and 2 more
    assert full[0, removed].sum() == 3 and full[0].sum() == 5
    shrunk = sl.targeted_candidates(tf.constant(kernel[:, kept]), 0.5, "unit", full_shape=(20, 10)).numpy()
    np.testing.assert_array_equal(shrunk, full[:, kept])
    assert shrunk[0].sum() == 2
    # 100 gamma % or more removed: nothing left to drop (before, half of the 7 survivors were candidates)
    assert sl.targeted_candidates(tf.constant(kernel[:, kept]), 0.2, "unit", full_shape=(20, 10)).numpy().sum() == 0
    assert sl.targeted_candidates(tf.constant(kernel[:, kept]), 0.2, "unit").numpy()[0].sum() == 1
    weights = sl.targeted_candidates(tf.constant(kernel[:, kept]), 0.5, "weight", full_shape=(20, 10)).numpy()
    assert weights.sum() == 100 - 60  # 100 of 200 at full size, 60 of them removed


def test_a_unit_pruned_targeted_dropout_network_retrains_shrunk_without_dropping_its_survivors():
    model = sparsify.apply(_mlp(hidden=(30, 20), input_dim=8), "targeted_dropout", strategy="neuron")
    assign_masks(model, sparsify.compute_masks(model, "targeted_dropout", "neuron", 60))  # past gamma = 0.5: at full size the pruned units are all the candidates
    smaller, _ = shrink_model(model)
    layer = masked_layers(smaller)[0]
    assert isinstance(layer, sl.TargetedDropoutDense) and layer.units == 12 and layer.full_shape == (8, 30)
    for _ in range(5):
        np.testing.assert_array_equal(layer.training_kernel(True).numpy(), layer.effective_kernel().numpy())


def test_the_smallest_n_by_bisection_equal_a_stable_argsorts_first_n_ties_and_zeros_included():
    """targeted_candidates finds a layer's smallest weights without sorting (sl._smallest_n); what it picks is
    exactly a stable argsort's first n, on values with many ties, many zeros, and every n from 0 to the size."""
    rng = np.random.default_rng(3)
    cases = [np.abs(rng.normal(size=97)), rng.integers(0, 4, 97) * 0.25,
             np.where(rng.random(97) < 0.5, 0.0, np.abs(rng.normal(size=97))), np.zeros(97), np.full(97, 1e-30)]
    for values in cases:
        values = values.astype(np.float32)
        for n in range(0, 98, 4):
            expect = np.zeros(97, np.float32)
            expect[np.argsort(values, kind="stable")[:n]] = 1
            np.testing.assert_array_equal(sl._smallest_n(tf.constant(values), n).numpy(), expect)


@pytest.mark.parametrize("granularity, alpha", (("weight", 0.5), ("weight", 0.2), ("unit", 0.5)))
def test_targeted_dropout_drops_only_candidates_at_rate_alpha(granularity, alpha):
    kernel = tf.constant(_distinct_kernel((20, 50)))
    cand = sl.targeted_candidates(kernel, 0.5, granularity).numpy()
    seed = keras.random.SeedGenerator(7)
    draws = np.stack([sl.targeted_drop(kernel, 0.5, alpha, granularity, seed).numpy() for _ in range(40)])
    assert np.all(draws[:, cand == 0] == 0)  # never a non-candidate
    if granularity == "unit":
        assert np.all(draws == draws[:, :1, :])  # whole units
        trials = draws[:, 0, cand[0] == 1]
    else:
        trials = draws[:, cand == 1]
    n = trials.size  # 40 x 500 weights, or 40 x 25 units
    # a binomial(n, alpha) rate: 4 standard deviations (the seed is fixed, so this is deterministic)
    assert abs(trials.mean() - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / n)
    assert len({d.tobytes() for d in draws}) > 1  # a new draw each step


def test_targeted_dropout_drops_nothing_at_inference_and_only_candidates_while_training():
    model = sparsify.apply(_mlp(hidden=(30,), input_dim=8), "targeted_dropout", strategy="weight")
    layer = masked_layers(model)[0]
    assert isinstance(layer, sl.TargetedDropoutDense) and layer.td_granularity == "weight"
    x = _x(8, 8)
    kernel = layer.kernel.numpy()
    np.testing.assert_allclose(layer(x, training=False).numpy(), np.maximum(x @ kernel, 0), rtol=1e-5, atol=1e-6)
    plain = sparsify.finalize(model)
    np.testing.assert_allclose(plain(x).numpy(), model(x, training=False).numpy(), rtol=0, atol=0)
    # one training step's kernel: the non-candidates untouched, candidates either kept or zero
    cand = sl.targeted_candidates(layer.kernel, 0.5, "weight").numpy()
    used = layer.training_kernel(True).numpy()
    assert np.all(used[cand == 0] == kernel[cand == 0])
    assert np.all((used[cand == 1] == 0) | (used[cand == 1] == kernel[cand == 1]))
    assert 0 < np.count_nonzero(used[cand == 1] == 0) < cand.sum()
    units = sparsify.apply(_mlp(hidden=(30,), input_dim=8), "targeted_dropout", strategy="neuron")
    assert masked_layers(units)[0].td_granularity == "unit"


# --------------------------------------------------------------------------- hyper-parameters
@pytest.mark.parametrize("cls, field, bad, flag", [
    (sparsify.GroupLassoParams, "group_lasso_lambda", -1e-4, "--group-lasso-lambda"),
    (sparsify.GroupLassoParams, "group_lasso_lambda", float("nan"), "--group-lasso-lambda"),
    (sparsify.L1Params, "l1_lambda", -1.0, "--l1-lambda"),
    (sparsify.L0Params, "l0_lambda", float("inf"), "--l0-lambda"),
    (sparsify.L0Params, "l0_beta", 0.0, "--l0-beta"),
    (sparsify.L0Params, "l0_gamma", 0.1, "--l0-gamma"),
    (sparsify.L0Params, "l0_zeta", 1.0, "--l0-zeta"),
    (sparsify.L0Params, "l0_droprate_init", 1.0, "--l0-droprate-init"),
    (sparsify.L0Params, "l0_gate_lr_mult", 0.0, "--l0-gate-lr-mult"),
    (sparsify.TargetedDropoutParams, "td_gamma", 1.0, "--td-gamma"),
    (sparsify.TargetedDropoutParams, "td_gamma", 0.0, "--td-gamma"),
    (sparsify.TargetedDropoutParams, "td_alpha", 1.5, "--td-alpha"),
    (sparsify.SparseVDParams, "svd_lambda", -1.0, "--svd-lambda"),
    (sparsify.SparseVDParams, "svd_threshold", 10.0, "--svd-threshold"),
    (sparsify.SparseVDParams, "svd_log_sigma2_init", 0.0, "--svd-log-sigma2-init"),
])
def test_bad_hyper_parameters_raise_a_config_error_naming_the_flag(cls, field, bad, flag):
    with pytest.raises(ConfigError, match=flag) as err:
        cls(**{field: bad})
    assert "\n" not in str(err.value)


def test_defaults_flags_and_identity():
    assert list(sparsify.METHODS) == ["group_lasso", "l1", "l0", "targeted_dropout", "sparse_vd"]
    p = sparsify.L0Params()
    assert (p.l0_beta, p.l0_gamma, p.l0_zeta, p.l0_droprate_init) == (2.0 / 3.0, -0.1, 1.1, 0.5)
    assert (sparsify.TargetedDropoutParams().td_gamma, sparsify.TargetedDropoutParams().td_alpha) == (0.5, 0.5)
    parser = argparse.ArgumentParser()
    sparsify.add_sparsify_flags(parser)
    args = parser.parse_args(["--sparsify", "l0", "--l0-lambda", "0.01", "--l0-per-weight"])
    assert sparsify.params_from_args(args) == sparsify.L0Params(l0_lambda=0.01, l0_per_weight=True)
    assert sparsify.params_from_args(parser.parse_args([])) is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--sparsify", "l2"])
    assert sparsify.identity("none") is None
    weight, unit = (sparsify.identity("targeted_dropout", None, s) for s in ("weight", "neuron"))
    assert weight != unit and weight["granularity"] == "weight" and weight["td_alpha"] == 0.5
    assert sparsify.identity("l1", sparsify.L1Params(2e-5))["l1_lambda"] == 2e-5
    assert sparsify.with_strength("l1", None, 3e-5) == sparsify.L1Params(3e-5)
    with pytest.raises(ConfigError, match="--l1-lambda"):
        sparsify.with_strength("l1", None, -1)


@pytest.mark.parametrize("method, strategy", (("group_lasso", "weight"), ("l1", "neuron"), ("l0", "global_weight"),
                                              ("targeted_dropout", "student"),
                                              ("sparse_vd", "neuron")))
def test_a_method_that_does_not_fit_the_strategy_is_refused(method, strategy):
    with pytest.raises(ConfigError, match=f"--sparsify {method}"):
        sparsify.check_fits(method, strategy)
    with pytest.raises(ConfigError):
        sparsify.apply(_mlp(), method, strategy=strategy)


def test_unknown_method_and_wrong_params_are_refused():
    with pytest.raises(ConfigError, match="choose one of none, group_lasso"):
        sparsify.apply(_mlp(), "dropconnect")
    with pytest.raises(ConfigError, match="L1Params"):
        sparsify.apply(_mlp(), "l1", sparsify.L0Params())
    model = _mlp()
    assert sparsify.apply(model, "none") is model and sparsify.finalize(model) is model
    with pytest.raises(ValueError, match="already prepared"):
        sparsify.apply(sparsify.apply(model, "l1"), "group_lasso")


# --------------------------------------------------------------------------- training, saving, loading
CASES = (("group_lasso", "neuron"), ("l1", "weight"), ("l0", "neuron"), ("targeted_dropout", "weight"),
         ("targeted_dropout", "neuron"), ("sparse_vd", "weight"), ("sparse_vd", "global_weight"))


@pytest.mark.parametrize("method, strategy", CASES)
def test_each_method_trains_two_epochs_with_fit_saves_and_loads(method, strategy, tiny_data, tmp_path):
    keras.utils.set_random_seed(0)
    model = sparsify.apply(build_mlp(100, ModelConfig(hidden=(24, 16))), method, strategy=strategy, seed=3)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(tiny_data.x_train, tiny_data.y_train, epochs=2, batch_size=50, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    x = tiny_data.x_test
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    np.testing.assert_allclose(loaded(x, training=False).numpy(), model(x, training=False).numpy(), rtol=1e-6,
                               atol=1e-6)
    # prune at k, retrain one epoch under the mask (the runner's callback) with the method still on
    mask_set = sparsify.compute_masks(model, method, strategy, 50, seed=0)
    assign_masks(model, mask_set)
    model.fit(tiny_data.x_train, tiny_data.y_train, epochs=1, batch_size=50, verbose=0,
              callbacks=[MaskingCallback(strategy, 50, initial=mask_set)])
    for layer in masked_layers(model):
        assert np.all(layer.kernel.numpy()[mask_set.masks[layer.name] == 0] == 0)
    plain = sparsify.finalize(model)
    assert all(type(l) is MaskedDense for l in plain.layers[1:])
    np.testing.assert_allclose(plain(x).numpy(), model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)
    plain.save(tmp_path / "plain.keras")
    assert [type(l) for l in load_model(tmp_path / "plain.keras").layers[1:]] == [MaskedDense] * 3


def test_shrinking_mid_protocol_keeps_the_penalty_layers():
    model = sparsify.apply(_mlp(hidden=(10, 8)), "group_lasso", sparsify.GroupLassoParams(1e-3), strategy="neuron")
    assign_masks(model, sparsify.compute_masks(model, "group_lasso", "neuron", 50))
    smaller, keep = shrink_model(model)
    assert [type(l) for l in masked_layers(smaller)] == [sl.PenalizedDense] * 2
    assert all(l.strength == 1e-3 for l in masked_layers(smaller))
    x = _x()
    np.testing.assert_allclose(smaller(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert sparsify.penalty(smaller) > 0


def test_choose_strength_picks_the_best_held_out_accuracy_at_k(tiny_data):
    calls = []

    def train(params):
        calls.append(params)
        keras.utils.set_random_seed(0)
        model = sparsify.apply(build_mlp(100, ModelConfig(hidden=(24,))), "l1", params, strategy="weight")
        if params.l1_lambda == 1e-5:  # only this candidate is trained: it must win
            model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(tiny_data.x_train, tiny_data.y_train, epochs=5, batch_size=50, verbose=0)
        return model

    heldout = (tiny_data.x_test, tiny_data.y_test)
    choice = sparsify.choose_strength("l1", [1e-3, 1e-5], train, heldout, 50, "weight")
    assert [p.l1_lambda for p in calls] == [1e-3, 1e-5]
    assert choice.strength == 1e-5 and set(choice.accuracies) == {1e-3, 1e-5}
    assert choice.accuracies[1e-5] > choice.accuracies[1e-3]
    with pytest.raises(ConfigError):
        sparsify.choose_strength("group_lasso", [1e-4], train, heldout, 50, "weight")


def test_pick_strength_keeps_penalties_that_cost_the_dense_network_out_when_asked():
    # the LeNet-5 L0 choice of 2026-12-07: 1e-2 survives pruning best but costs the dense network 2.9 points
    pruned = {1e-4: 0.2584, 1e-3: 0.5156, 1e-2: 0.6852}
    dense = {1e-4: 0.9870, 1e-3: 0.9836, 1e-2: 0.9578}
    assert sparsify.pick_strength(pruned) == 1e-2
    assert sparsify.pick_strength(pruned, dense, max_dense_drop=None) == 1e-2
    assert sparsify.pick_strength(pruned, dense, max_dense_drop=1.0) == 1e-3  # 0.34 points below the best dense
    assert sparsify.pick_strength(pruned, dense, max_dense_drop=0.34) == 1e-3  # the boundary is inclusive
    assert sparsify.pick_strength(pruned, dense, max_dense_drop=0.3) == 1e-4
    assert sparsify.pick_strength(pruned, dense, max_dense_drop=3.0) == 1e-2
    assert sparsify.pick_strength({1.0: 0.5, 2.0: 0.5}) == 1.0  # ties: the earlier candidate
    assert sparsify.eligible_strengths(dense, 0.34) == [1e-4, 1e-3]  # the rule's candidates, in order
    assert sparsify.eligible_strengths(dense, 0.0) == [1e-4]
    with pytest.raises(ConfigError, match="dense held-out accuracy"):
        sparsify.pick_strength(pruned, {1e-4: 0.9}, max_dense_drop=1.0)
    with pytest.raises(ConfigError, match=">= 0"):
        sparsify.pick_strength(pruned, dense, max_dense_drop=-1.0)


def test_the_masking_callback_of_l0_prunes_by_gates_and_the_others_are_the_plain_one():
    gated = sparsify.apply(_mlp(hidden=(10, 8)), "l0", strategy="neuron")
    _set_gates(gated, seed=5)
    callback = sparsify.masking_callback("l0", "neuron", 30)
    assert isinstance(callback, MaskingCallback) and type(callback) is not MaskingCallback
    callback.prune_once(gated)
    for layer in masked_layers(gated):
        dead = np.flatnonzero((layer.mask.numpy() == 0).all(axis=0))
        assert set(dead) == set(np.argsort(layer.log_alpha.numpy())[:expected_pruned(layer.units, 30)])
    assert callback.current == 30.0
    assert type(sparsify.masking_callback("l0", "random_neuron", 30)) is MaskingCallback
    assert type(sparsify.masking_callback("group_lasso", "neuron", 30)) is MaskingCallback


# --------------------------------------------------------------------------- sparse variational dropout (optional)
K1, K2, K3 = 0.63576, 1.87320, 1.48695


def _np_log_alpha(kernel, log_sigma2):
    raw = log_sigma2 - np.log(kernel.astype(np.float64) ** 2 + 1e-8)
    return np.clip(raw, -10, 10), np.abs(raw) < 10


def _np_kl(la):
    return -(K1 / (1 + np.exp(-(K2 + K3 * la))) - 0.5 * np.log1p(np.exp(-la)) - K1)


def test_sparse_vd_kl_value_and_gradient_match_numpy():
    assert _np_kl(np.array(0.0)) == pytest.approx(0.63576 * (1 - 1 / (1 + math.exp(-1.8732))) + 0.5 * math.log(2),
                                                  rel=1e-9)
    assert _np_kl(np.array(0.0)) == pytest.approx(0.431239, abs=1e-6) and _np_kl(np.array(10.0)) < 1e-4
    layer = _dense(sl.SparseVDDense, W, M, strength=0.5)
    log_sigma2 = np.array([[-2.0, 0.0, -1.0, -3.0], [1.0, -6.0, 0.0, -1.0], [0.0, 2.0, -4.0, -20.0]], np.float32)
    layer.log_sigma2.assign(log_sigma2)
    value, grad = _value_and_grad(layer, layer.log_sigma2)
    la, inside = _np_log_alpha(W, log_sigma2.astype(np.float64))
    assert not inside[2, 0] and not inside[2, 3]  # W = 0 and a tiny variance: clipped at +10 and -10
    assert value == pytest.approx(0.5 * np.sum(_np_kl(la) * M), rel=1e-5)
    s = 1 / (1 + np.exp(-(K2 + K3 * la)))
    dkl = -(K1 * K3 * s * (1 - s) + 0.5 / (1 + np.exp(la)))
    np.testing.assert_allclose(grad, 0.5 * M * dkl * inside, rtol=1e-4, atol=1e-7)


def test_sparse_vd_inference_drops_log_alpha_at_least_3_and_training_is_the_local_reparameterisation():
    layer = _dense(sl.SparseVDDense, W, M, strength=0.5, relu=False)
    log_sigma2 = np.log(W.astype(np.float64) ** 2 + 1e-8).astype(np.float32) + np.float32(2.0)  # log alpha 2
    log_sigma2[1, 1] += 2.0  # log alpha 4: zero at inference
    layer.log_sigma2.assign(log_sigma2)
    x = _x(3, 3)
    keep = np.ones_like(W)
    keep[1, 1] = 0
    keep[2, 0] = 0  # W = 0: log alpha clipped to 10
    np.testing.assert_allclose(layer(x, training=False).numpy(), x @ (W * M * keep), rtol=1e-5, atol=1e-6)
    draws = np.stack([layer(x, training=True).numpy() for _ in range(3000)])
    mean, var = x @ (W * M), (x ** 2) @ (np.exp(log_sigma2.astype(np.float64)) * M)
    sd = np.sqrt(var + 1e-8)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 4 * sd / math.sqrt(3000) + 1e-6)
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.1)


@pytest.mark.parametrize("strategy", ("weight", "global_weight"))
def test_sparse_vd_prunes_the_largest_log_alpha_and_folds_to_its_inference(strategy):
    model = sparsify.apply(_mlp(hidden=(10, 8)), "sparse_vd", strategy=strategy)
    rng = np.random.default_rng(4)
    for layer in masked_layers(model):
        layer.log_sigma2.assign(rng.uniform(-14, 2, layer.kernel.shape).astype(np.float32))
    scores = sparsify.METHODS["sparse_vd"].scores(model)
    mask_set = sparsify.compute_masks(model, "sparse_vd", strategy, 60)
    las = {l.name: np.asarray(l.log_alpha()).ravel() for l in masked_layers(model)}
    if strategy == "weight":
        for layer in masked_layers(model):
            mask = mask_set.masks[layer.name].ravel()
            assert_mask_count(mask, "weight", 60)
            assert np.all(las[layer.name][mask == 0].min() >= las[layer.name][mask == 1].max() - 1e-6)
    else:
        allm = np.concatenate([mask_set.masks[n].ravel() for n in las])
        alla = np.concatenate(list(las.values()))
        assert int((allm == 0).sum()) == expected_pruned(allm.size, 60)
        assert alla[allm == 0].min() >= alla[allm == 1].max() - 1e-6
    assert mask_set.thresholds == pytest.approx({n: float(scores[n].ravel()[mask_set.masks[n].ravel() == 0].max())
                                                 for n in las})
    assign_masks(model, mask_set)
    x = _x()
    plain = sparsify.finalize(model)
    assert not any(isinstance(l, sl.SPARSIFY_CLASSES) for l in plain.layers)
    np.testing.assert_allclose(plain(x).numpy(), model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method, name", (("l0", "log_alpha"), ("sparse_vd", "log_sigma2")))
def test_weight_decay_is_kept_off_the_methods_own_variables(method, name):
    from pruning.core.optim import FusedAdamW

    strategy = "neuron" if method == "l0" else "weight"
    params = sparsify.with_strength(method, None, 0.0)
    x, y = np.zeros((8, 8), np.float32), np.arange(8) % 10  # zero inputs: zero gradients, only the decay moves
    moved = {}
    for exclude in (False, True):
        model = sparsify.apply(_mlp(), method, params, strategy=strategy)
        model.compile(FusedAdamW(0.1, weight_decay=0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if exclude:
            sparsify.exclude_from_weight_decay(model)
        layer = masked_layers(model)[0]
        before, kernel = getattr(layer, name).numpy().copy(), layer.kernel.numpy().copy()
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        np.testing.assert_allclose(layer.kernel.numpy(), kernel * (1 - 0.1 * 0.5), rtol=1e-6)  # the kernel decays
        moved[exclude] = not np.array_equal(getattr(layer, name).numpy(), before)
    assert moved == {False: True, True: False}
    assert [v.name for v in sparsify.no_decay_variables(model)] == [name, name]


@pytest.mark.parametrize("method, strategy", CASES)
def test_the_runner_hooks_in_order_dense_prune_retrain_shrunk_finalize_save(method, strategy, tiny_data, tmp_path):
    """The order the package docstring gives the runner, with the study's optimizer (AdamW, weight decay)
    and, for unit strategies, retraining shrunk with Adam's moments carried (as run.py does)."""
    from pruning.core.callbacks import cubic_schedule, measure_sparsity
    from pruning.deploy.shrink import carry_optimizer_state
    from pruning.study.run import compile_model

    data, k = tiny_data, 50
    fit = dict(batch_size=50, verbose=0)
    keras.utils.set_random_seed(0)
    model = sparsify.apply(build_mlp(100, ModelConfig(hidden=(24, 16))), method, strategy=strategy, seed=0)
    compile_model(model, 1e-2, 0.5, steps=12)
    sparsify.exclude_from_weight_decay(model)
    model.fit(data.x_train, data.y_train, epochs=2, **fit)
    mask_set = sparsify.compute_masks(model, method, strategy, k, seed=0)
    with masks_applied(model, mask_set):
        one_shot = sparsify.heldout_accuracy(model, data.x_test, data.y_test)
    assert measure_sparsity(model)["weight_sparsity"] == 0 and 0 <= one_shot <= 1  # restored after the block
    masking = sparsify.masking_callback(method, strategy, cubic_schedule(0, k, 2), seed=0, initial=mask_set)
    if masks.get(strategy).shrinks:
        masking.set_model(model)
        masking.update(0)
        smaller, keep = shrink_model(model)
        compile_model(smaller, 1e-2, 0.5, steps=12)
        sparsify.exclude_from_weight_decay(smaller)
        carry_optimizer_state(model, smaller, keep)  # l0's gate parameters and their moments too
        assert [type(l) for l in smaller.layers] == [type(l) for l in model.layers]
        model = smaller
    else:
        compile_model(model, 1e-2, 0.5, steps=12)
        sparsify.exclude_from_weight_decay(model)
    model.fit(data.x_train, data.y_train, epochs=2, callbacks=[masking], **fit)
    assert masking.current == k
    final = sparsify.finalize(model)
    assert not any(isinstance(l, sl.SPARSIFY_CLASSES) for l in final.layers)
    x = data.x_test
    np.testing.assert_allclose(final(x).numpy(), model(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    final.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded(x).numpy(), final(x).numpy(), rtol=1e-6, atol=1e-6)
    if masks.get(strategy).shrinks:
        assert [l.units for l in masked_layers(shrink_model(final)[0])] == [12, 8]
    else:
        measured = measure_sparsity(final)
        if strategy == "weight":
            assert all(v >= 0.5 for v in measured["per_layer"].values())
        assert measured["weight_sparsity"] >= 0.5
