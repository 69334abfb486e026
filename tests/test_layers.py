"""pruning.core.layers: the masked MLP, its masks under any optimizer, its NumPy twin, save/load."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from pruning.core import callbacks, masks  # noqa: E402
from pruning.config import ModelConfig  # noqa: E402
from pruning.study.run import compile_model, evaluate  # noqa: E402
from pruning.core.layers import (MaskedDense, effective_kernels, load_model, masked_layers,  # noqa: E402
                                 numpy_forward)
from pruning.models.mlp import build_mlp  # noqa: E402
from helpers import assert_mask_count  # noqa: E402

CFG = ModelConfig(hidden=(16, 12, 8))
HIDDEN = ("hidden1", "hidden2", "hidden3")


def _random_data(n=128, dim=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32)


def _kernels(model):
    return [np.asarray(l.effective_kernel()) for l in model.layers if isinstance(l, MaskedDense)]


@pytest.fixture()
def model():
    keras.utils.set_random_seed(0)
    return build_mlp(20, CFG)


def test_build_mlp_has_masked_hidden_layers_and_an_unmasked_output(model):
    assert [l.name for l in masked_layers(model)] == list(HIDDEN)
    shapes = {"hidden1": (20, 16), "hidden2": (16, 12), "hidden3": (12, 8), "output": (8, 10)}
    for layer in masked_layers(model):
        assert layer.prunable and layer.relu
        assert layer.mask.name == "mask" and not layer.mask.trainable
        assert tuple(layer.mask.shape) == shapes[layer.name] == tuple(layer.kernel.shape)
        assert np.all(layer.mask.numpy() == 1.0)
        assert [w.name for w in layer.trainable_weights] == ["kernel"]
    out = model.get_layer("output")
    assert isinstance(out, MaskedDense) and not out.prunable and out.mask is None and not out.relu
    assert tuple(out.kernel.shape) == shapes["output"]
    assert all(w.name != "mask" for w in out.weights)
    # bias-free: the only trainable weights are the four kernels
    assert len(model.trainable_weights) == 4
    assert model.output_shape == (None, 10)


def test_default_model_is_784_1000_1000_500_200_10():
    m = build_mlp(784)
    assert [tuple(l.kernel.shape) for l in m.layers if isinstance(l, MaskedDense)] == [
        (784, 1000), (1000, 1000), (1000, 500), (500, 200), (200, 10)]


@pytest.mark.parametrize("strategy", ("weight", "neuron"))
def test_apply_masks_leaves_the_output_layer_bit_identical(model, strategy):
    before = model.get_layer("output").kernel.numpy().copy()
    callbacks.apply_masks(model, strategy, 80)
    assert model.get_layer("output").kernel.numpy().tobytes() == before.tobytes()


@pytest.mark.parametrize("strategy", ("weight", "neuron"))
def test_apply_masks_prunes_each_layer_exactly_and_zeroes_the_kernel(model, strategy):
    thresholds = callbacks.apply_masks(model, strategy, 80)
    assert set(thresholds) == set(HIDDEN)
    for layer in masked_layers(model):
        mask = layer.mask.numpy()
        assert_mask_count(mask, strategy, 80)
        assert np.all(layer.kernel.numpy()[mask == 0] == 0.0)
        assert thresholds[layer.name] > 0


@pytest.mark.parametrize("strategy", ("weight", "neuron"))
def test_masked_entries_stay_exactly_zero_through_adam_training_without_the_callback(model, strategy):
    x, y = _random_data()
    callbacks.apply_masks(model, strategy, 80)
    masks_before = {l.name: l.mask.numpy().copy() for l in masked_layers(model)}
    kernels_before = {l.name: l.kernel.numpy().copy() for l in masked_layers(model)}
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)  # no MaskingCallback
    live_inputs = np.ones(20, bool)
    for layer in masked_layers(model):
        mask, kernel = masks_before[layer.name], layer.kernel.numpy()
        assert np.array_equal(layer.mask.numpy(), mask), "training changed a mask"
        assert np.all(kernel[mask == 0] == 0.0), f"{layer.name}: a masked kernel entry moved off 0.0"
        # unmasked entries fed by a live unit of the layer below must train (a pruned unit
        # outputs 0, so the weights it feeds get no gradient under neuron pruning)
        trainable = (mask == 1) & live_inputs[:, None]
        changed = kernel[trainable] != kernels_before[layer.name][trainable]
        assert changed.mean() > 0.5, f"{layer.name}: only {changed.mean():.0%} of the unmasked entries trained"
        live_inputs = (mask == 1).any(axis=0)


def test_gradient_is_exactly_zero_at_masked_entries(model):
    x, y = _random_data(64)
    callbacks.apply_masks(model, "weight", 80)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    layers = masked_layers(model)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, [l.kernel for l in layers])
    for layer, g in zip(layers, grads):
        g, mask = np.asarray(g), layer.mask.numpy()
        assert np.all(g[mask == 0] == 0.0), f"{layer.name}: non-zero gradient at a masked entry"
        assert np.count_nonzero(g[mask == 1]) > 0
    # and the mask itself is not a trainable variable: the optimizer never sees it
    trainable = {id(v) for v in model.trainable_variables}
    assert all(id(l.mask) not in trainable for l in layers)


@pytest.mark.parametrize("strategy", ("weight", "neuron"))
@pytest.mark.parametrize("output_relu", (False, True), ids=("logits", "relu-out"))
def test_predictions_equal_the_numpy_forward_of_the_effective_kernels(strategy, output_relu):
    keras.utils.set_random_seed(1)
    m = build_mlp(20, ModelConfig(hidden=(16, 12, 8), output_relu=output_relu))
    callbacks.apply_masks(m, strategy, 50)
    x, _ = _random_data(200, seed=2)
    pred = np.asarray(m.predict(x, verbose=0))
    ref = numpy_forward(_kernels(m), x, output_relu=output_relu)
    assert np.max(np.abs(pred - ref)) <= 1e-4
    assert list(effective_kernels(m)) == [*HIDDEN, "output"]
    if output_relu:
        assert pred.min() >= 0.0 and (pred == 0).any()
    else:
        assert pred.min() < 0.0


@pytest.mark.parametrize("strategy", ("weight", "neuron"))
def test_oneshot_accuracy_from_evaluate_equals_numpy_argmax_accuracy(strategy, tiny_data):
    keras.utils.set_random_seed(3)
    m = build_mlp(tiny_data.input_dim, CFG)
    compile_model(m, 1e-2, 0.0, 0)
    m.fit(tiny_data.x_train, tiny_data.y_train, batch_size=32, epochs=3, verbose=0)
    callbacks.apply_masks(m, strategy, 50)
    compile_model(m, 1e-3, 0.0, 0)
    x, y = tiny_data.x_test, tiny_data.y_test
    _, acc = evaluate(m, x, y)
    logits = numpy_forward(_kernels(m), x)
    correct = int(np.count_nonzero(np.argmax(logits, axis=1) == y))
    assert round(acc * len(y)) == correct
    assert acc == pytest.approx(correct / len(y), abs=1e-7)
    # the reference logits cannot be so close to a tie that float32 could flip the argmax
    top2 = np.sort(logits, axis=1)[:, -2:]
    assert np.min(top2[:, 1] - top2[:, 0]) > 1e-4 or np.array_equal(
        np.argmax(np.asarray(m.predict(x, verbose=0)), axis=1), np.argmax(logits, axis=1))


@pytest.mark.parametrize("output_relu", (False, True), ids=("logits", "relu-out"))
def test_save_and_load_round_trip_keeps_kernels_and_masks_bit_exact(tmp_path, output_relu):
    keras.utils.set_random_seed(4)
    m = build_mlp(20, ModelConfig(hidden=(16, 12, 8), output_relu=output_relu))
    callbacks.apply_masks(m, "neuron", 50)
    callbacks.apply_masks(m, "weight", 75)
    path = tmp_path / "m.keras"
    m.save(path)
    back = load_model(path)
    assert [l.name for l in masked_layers(back)] == list(HIDDEN)
    for a, b in zip([l for l in m.layers if isinstance(l, MaskedDense)],
                    [l for l in back.layers if isinstance(l, MaskedDense)]):
        assert (a.name, a.relu, a.prunable, a.units) == (b.name, b.relu, b.prunable, b.units)
        assert a.kernel.numpy().tobytes() == b.kernel.numpy().tobytes()
        if a.prunable:
            assert a.mask.numpy().tobytes() == b.mask.numpy().tobytes()
            assert not b.mask.trainable
        else:
            assert b.mask is None
    x, _ = _random_data(16)
    assert np.array_equal(np.asarray(m.predict(x, verbose=0)), np.asarray(back.predict(x, verbose=0)))


def test_numpy_forward_applies_relu_between_layers_only():
    w1 = np.array([[1.0, -1.0]])
    w2 = np.array([[1.0], [1.0]])
    x = np.array([[2.0], [-3.0]])
    # hidden: relu([2,-2]) = [2,0] -> 2 ; relu([-3,3]) = [0,3] -> 3
    assert np.array_equal(numpy_forward([w1, w2], x), [[2.0], [3.0]])
    assert np.array_equal(numpy_forward([w1, -w2], x), [[-2.0], [-3.0]])
    assert np.array_equal(numpy_forward([w1, -w2], x, output_relu=True), [[0.0], [0.0]])


def test_measure_sparsity_matches_a_hand_count(model):
    callbacks.apply_masks(model, "weight", 50)
    k1 = model.get_layer("hidden1").kernel
    k1.assign(k1.numpy() * 0)  # hidden1 fully zero by hand (mask still half ones)
    got = callbacks.measure_sparsity(model)
    # hidden1: 320 of 320; hidden2: 96 of 192; hidden3: 48 of 96; output (80 entries): none
    assert got["per_layer"] == {"hidden1": 1.0, "hidden2": 0.5, "hidden3": 0.5}
    assert got["weight_sparsity"] == (320 + 96 + 48) / (320 + 192 + 96)
    assert got["overall"] == (320 + 96 + 48) / (320 + 192 + 96 + 80)
    assert got["per_layer"]["hidden2"] == masks.sparsity_of(np.asarray(model.get_layer("hidden2").effective_kernel()))


def test_a_model_saved_before_the_package_was_reorganised_still_loads(tmp_path):
    """model.keras files written when MaskedDense lived in pruning.model (every study before the
    core/ models/ study/ layout) name that module; the registered name still finds the layer."""
    import zipfile

    m = build_mlp(12, ModelConfig(hidden=(6, 4)))
    callbacks.apply_masks(m, "weight", 50)
    new = tmp_path / "new.keras"
    m.save(new)
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(new) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                assert b'"pruning.core.layers"' in data
                data = data.replace(b'"pruning.core.layers"', b'"pruning.model"')
            dst.writestr(item, data)
    back = load_model(old)
    assert [l.name for l in masked_layers(back)] == ["hidden1", "hidden2"]
    for a, b in zip(masked_layers(m), masked_layers(back)):
        assert np.array_equal(a.mask.numpy(), b.mask.numpy()) and np.array_equal(a.kernel.numpy(), b.kernel.numpy())
