"""pruning.deploy.shrink: liveness, effective sparsity by hand count, shrunk == masked, optimizer carry-over."""
import numpy as np
import pytest

from pruning.deploy import shrink

keras = pytest.importorskip("keras")

from pruning.core import callbacks  # noqa: E402
from pruning.config import ModelConfig  # noqa: E402
from pruning.study.run import compile_model  # noqa: E402
from pruning.core.layers import weight_layers, load_model, masked_layers  # noqa: E402
from pruning.models.mlp import build_mlp  # noqa: E402
from helpers import expected_pruned  # noqa: E402

CFG = ModelConfig(hidden=(16, 12, 8))
FULL = [(20, 16), (16, 12), (12, 8), (8, 10)]

# A hand-built 3-3-2-2 network (inputs, hidden1, hidden2, outputs):
#  hidden1 unit 1 has an all-zero column: it outputs 0, so its row in W2 (7, 8) is dead weight;
#  hidden2 unit 1 has an all-zero outgoing row in W3: its column in W2 (6, 8, 9) cannot matter;
#  so hidden1 unit 2, whose only nonzero outgoing weight (9) feeds hidden2 unit 1, cannot matter
#  either: its column (2, 3) is dead too. Left: W1 (1, 4), W2 (5), W3 (1, 2) = 5 weights of 19.
W1 = np.array([[1, 0, 2], [0, 0, 3], [4, 0, 0]], np.float32)
W2 = np.array([[5, 6], [7, 8], [0, 9]], np.float32)
W3 = np.array([[1, 2], [0, 0]], np.float32)
HAND = [W1, W2, W3]


def test_alive_units_of_the_hand_built_network():
    alive = shrink.alive_units(HAND)
    assert [a.tolist() for a in alive] == [[True, False, False], [True, False]]


def test_effective_sparsity_params_and_flops_equal_the_hand_count():
    counts = shrink.network_counts(HAND, [w.shape for w in HAND])
    assert counts == {"params_nonzero": 11, "effective_sparsity": 1 - 5 / 19, "flops_per_example": 10}


def test_effective_sparsity_is_measured_against_the_full_shapes():
    # the same 5 effective weights, inside a network that was 4 times larger
    counts = shrink.network_counts(HAND, [(3, 6), (6, 4), (4, 2)])
    assert counts["effective_sparsity"] == 1 - 5 / (18 + 24 + 8)


def test_shrink_arrays_of_the_hand_built_network():
    kernels, masks, keep = shrink.shrink_arrays(HAND)
    assert [k.tolist() for k in keep] == [[0], [0]]
    assert [k.tolist() for k in kernels] == [[[1], [0], [4]], [[5]], [[1, 2]]]
    assert masks == [None, None, None]


def test_a_dead_layer_keeps_one_unit_so_the_network_stays_valid():
    kernels, _, keep = shrink.shrink_arrays([np.zeros((3, 4), np.float32), np.ones((4, 2), np.float32)])
    assert [k.shape for k in kernels] == [(3, 1), (1, 2)] and keep[0].tolist() == [0]


@pytest.fixture()
def model():
    keras.utils.set_random_seed(0)
    return build_mlp(20, CFG)


def _neuron_pruned(model, k):
    callbacks.apply_masks(model, "neuron", k)
    return model


@pytest.mark.parametrize("k", [25.0, 50.0, 90.0])
def test_shrunk_model_predicts_what_the_masked_model_predicts(model, k):
    _neuron_pruned(model, k)
    smaller, keep = shrink.shrink_model(model)
    widths = [expected_pruned(n, k) for n in CFG.hidden]
    assert [l.units for l in masked_layers(smaller)] == [n - p for n, p in zip(CFG.hidden, widths)]
    x = np.random.default_rng(1).normal(size=(500, 20)).astype(np.float32)
    diff = np.abs(np.asarray(smaller(x)) - np.asarray(model(x))).max()
    assert diff <= 1e-5
    assert [l.full_shape for l in weight_layers(smaller)] == FULL
    for layer, old, kept in zip(masked_layers(smaller), masked_layers(model), keep):
        alive = np.flatnonzero(old.mask.numpy().any(axis=0))
        assert layer.kept == alive.tolist() == kept.tolist()


def test_expanding_a_shrunk_model_gives_back_the_masked_kernels(model):
    _neuron_pruned(model, 50)
    smaller = shrink.shrink_model(model)[0]
    kernels, masks = shrink.expand_arrays(smaller)
    before = [np.asarray(l.effective_kernel()) for l in weight_layers(model)]
    alive = [np.ones(20, bool)] + [l.mask.numpy().any(axis=0) for l in masked_layers(model)]
    for k, b, rows in zip(kernels, before, alive):
        assert k.shape == b.shape
        assert np.array_equal(k[rows], b[rows])  # rows of dead inputs are 0 now: they never mattered
        assert not k[~rows].any()
    for m, layer in zip(masks, masked_layers(model)):
        assert np.array_equal(m.any(axis=0), layer.mask.numpy().any(axis=0))
    x = np.random.default_rng(2).normal(size=(64, 20)).astype(np.float32)
    assert np.abs(np.asarray(shrink.expand_model(smaller)(x)) - np.asarray(model(x))).max() <= 1e-5


def test_a_shrunk_model_saves_and_loads_with_its_history(model, tmp_path):
    smaller = shrink.shrink_model(_neuron_pruned(model, 50))[0]
    smaller.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")
    for a, b in zip(weight_layers(smaller), weight_layers(back)):
        assert (a.full_shape, a.kept, a.units) == (b.full_shape, b.kept, b.units)
        assert np.array_equal(a.kernel.numpy(), b.kernel.numpy())


def test_pruning_a_shrunk_model_counts_k_against_the_original_units(model):
    smaller = shrink.shrink_model(_neuron_pruned(model, 50))[0]
    callbacks.apply_masks(smaller, "neuron", 75)
    for layer, n in zip(masked_layers(smaller), CFG.hidden):
        assert int((~layer.mask.numpy().any(axis=0)).sum()) == expected_pruned(n, 75) - expected_pruned(n, 50)
    assert callbacks.measure_sparsity(smaller)["per_layer"] == {
        l.name: expected_pruned(n, 75) / n for l, n in zip(masked_layers(smaller), CFG.hidden)}
    # and pruning to the sparsity it already has changes nothing
    before = [l.mask.numpy().copy() for l in masked_layers(smaller)]
    smallest = shrink.shrink_model(smaller)[0]
    callbacks.apply_masks(smallest, "neuron", 75)
    assert all(l.mask.numpy().all() for l in masked_layers(smallest))
    assert [int(b.any(axis=0).sum()) for b in before] == [l.units for l in masked_layers(smallest)]


def test_adam_moments_of_the_surviving_weights_are_carried_over(model):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 20)).astype(np.float32), rng.integers(0, 10, 64)
    compile_model(model, 1e-3, 0.5, 100)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    _neuron_pruned(model, 50)
    smaller, keep = shrink.shrink_model(model)
    compile_model(smaller, 1e-3, 0.5, 100)
    shrink.carry_optimizer_state(model, smaller, keep)
    old, new = model.optimizer, smaller.optimizer
    assert int(new.iterations.numpy()) == int(old.iterations.numpy()) == 2
    rows, cols = [slice(None)] + keep, keep + [slice(None)]
    for o, n, r, c in zip(model.trainable_variables, smaller.trainable_variables, rows, cols):
        for slots in ("_momentums", "_velocities"):
            want = np.asarray(getattr(old, slots)[old._get_variable_index(o)])[r][:, c]
            got = np.asarray(getattr(new, slots)[new._get_variable_index(n)])
            assert np.array_equal(got, want) and np.abs(want).sum() > 0
    smaller.fit(x, y, batch_size=32, epochs=1, verbose=0)  # and it trains on
    assert int(new.iterations.numpy()) == 4


def test_a_sequential_model_of_masked_layers_shrinks_and_expands_too():
    from pruning.core.layers import MaskedDense

    keras.utils.set_random_seed(3)
    seq = keras.Sequential([keras.Input((20,)), MaskedDense(8, name="a"), MaskedDense(6, name="b"),
                            MaskedDense(3, relu=False, prunable=False, name="out")])
    callbacks.apply_masks(seq, "neuron", 50)
    smaller, _ = shrink.shrink_model(seq)
    assert isinstance(smaller, keras.Sequential) and [l.units for l in smaller.layers] == [4, 3, 3]
    x = np.random.default_rng(4).normal(size=(32, 20)).astype(np.float32)
    assert np.abs(np.asarray(smaller(x)) - np.asarray(seq(x))).max() <= 1e-5
    assert np.abs(np.asarray(shrink.expand_model(smaller)(x)) - np.asarray(seq(x))).max() <= 1e-5
