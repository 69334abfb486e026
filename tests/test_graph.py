"""pruning.graph: any Functional/Sequential model made prunable; weight pruning on it; the refusals."""
import numpy as np
import pytest

import graph_models as M
import pruning  # noqa: F401
import keras
from pruning import graph as G
from pruning.core import masks
from pruning.graph.layers import GraphMasked

L = keras.layers
NAMES = sorted(M.HAND)


def _close(a, b, rel=1e-6):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= rel * max(1.0, float(np.max(np.abs(b))))


@pytest.mark.parametrize("name", NAMES)
def test_prunable_keeps_outputs_and_leaves_the_original_alone(name):
    model = M.HAND[name][0]()
    before = [w.copy() for w in model.get_weights()]
    layers_before = [type(l) for l in model.layers]
    x = M.sample(model)
    ref = model(x, training=False)
    masked = G.prunable(model)
    _close(masked(x, training=False), ref)
    assert [type(l) for l in model.layers] == layers_before
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # every layer with weights is a masked twin except the output layer ...
    weighted = [l for l in masked.layers if l.weights]
    assert [l.name for l in weighted if not isinstance(l, GraphMasked)] == (["ln", "out"] if name == "kinds" else ["out"])
    # ... and a twin is its standard class, same config
    for layer in masked.layers:
        if isinstance(layer, GraphMasked):
            assert isinstance(layer, layer.base_class) and layer.base_class.__module__.startswith("keras")


def test_nested_models_are_flattened():
    masked = G.prunable(M.nested())
    assert [l.name for l in masked.layers] == ["x", "d0", "i1", "ir", "i2", "r", "out"]


@pytest.mark.parametrize("strategy", ["weight", "random"])
def test_weight_pruning_gives_exact_counts_per_kernel(strategy):
    model = G.prunable(M.residual())
    untouched = {l.name: {v.name: np.asarray(v).copy() for v in l.weights if "kernel" not in v.name}
                 for l in model.layers}
    G.prune_weights(model, strategy, 30, seed=3)
    slots = G.kernel_slots(model)
    assert [l.name for l, _ in slots] == ["c1", "c2", "proj", "c3"]
    for layer, name in slots:
        kernel, mask = np.asarray(getattr(layer, name)), np.asarray(getattr(layer, f"{name}_mask"))
        assert int((mask == 0).sum()) == masks.n_pruned(kernel.size, 30)
        assert np.all(kernel[mask == 0] == 0)
    for layer in model.layers:  # biases, BN parameters and the masks of biases are not pruned
        for v in layer.weights:
            if "kernel" not in v.name:
                np.testing.assert_array_equal(np.asarray(v), untouched[layer.name][v.name])


def test_weight_pruning_of_a_separable_and_a_depthwise_kernel():
    model = G.prunable(M.dwsep())
    G.prune_weights(model, "weight", 50)
    sizes = {"c1": 3 * 3 * 3 * 4, "dw": 3 * 3 * 4 * 2, "sep/depthwise_kernel": 3 * 3 * 8, "sep/pointwise_kernel": 8 * 5}
    for layer, name in G.kernel_slots(model):
        key = layer.name if len(layer.KERNELS) == 1 else f"{layer.name}/{name}"
        assert int((np.asarray(getattr(layer, f"{name}_mask")) == 0).sum()) == masks.n_pruned(sizes[key], 50)


def test_global_weight_pruning_uses_one_threshold():
    model = G.prunable(M.concat())
    G.prune_weights(model, "global_weight", 60)
    kernels = [np.asarray(getattr(l, n)) for l, n in G.kernel_slots(model)]
    maskv = [np.asarray(getattr(l, f"{n}_mask")) for l, n in G.kernel_slots(model)]
    total = sum(k.size for k in kernels)
    assert sum(int((m == 0).sum()) for m in maskv) == masks.n_pruned(total, 60)
    original = G.prunable(M.concat())
    absolute = [np.abs(np.asarray(getattr(l, n))) for l, n in G.kernel_slots(original)]
    pruned = np.concatenate([a[m == 0] for a, m in zip(absolute, maskv)])
    kept = np.concatenate([a[m == 1] for a, m in zip(absolute, maskv)])
    assert pruned.max() <= kept.min()
    # per layer the fractions differ (one threshold, not k % each)
    assert len({round(float((m == 0).mean()), 3) for m in maskv}) > 1


def test_weight_pruned_model_computes_with_its_masks_and_strips_to_plain_keras(tmp_path):
    model = G.prunable(M.se())
    G.prune_weights(model, "weight", 40)
    x = M.sample(model)
    masked_out = model(x, training=False)
    plain = G.strip(model)
    assert not any(isinstance(l, GraphMasked) for l in plain.layers)
    _close(plain(x, training=False), masked_out)
    assert plain.get_layer("c1").kernel.numpy().size - np.count_nonzero(plain.get_layer("c1").kernel.numpy()) \
        == masks.n_pruned(3 * 3 * 3 * 4, 40)
    plain.save(tmp_path / "plain.keras")
    loaded = keras.models.load_model(tmp_path / "plain.keras")  # no custom objects
    _close(loaded(x, training=False), masked_out)


def test_exclude_leaves_a_layer_unmasked_and_pins_its_channels():
    model = G.prunable(M.residual(), exclude=("c2",))
    assert not isinstance(model.get_layer("c2"), GraphMasked)
    assert isinstance(model.get_layer("c1"), GraphMasked)
    groups = {frozenset(g.parts): g for g in G.channel_groups(model)}
    assert groups[frozenset({"c1:out", "bn1", "c2"})].pinned == "c2 (Conv2D) is excluded"
    assert groups[frozenset({"c2", "bn2", "proj:out", "bnp", "add", "c3:in"})].pinned.startswith("c2")
    assert groups[frozenset({"c3:out", "out:in"})].pinned is None
    with pytest.raises(ValueError, match="not layers of the model"):
        G.prunable(M.residual(), exclude=("nope",))


# ---------------------------------------------------------------------------- refusals
def _lambda_model():
    x = keras.Input((4,), name="x")
    h = L.Dense(3, name="d")(x)
    h = L.Lambda(lambda t: t * 2.0, name="twice")(h)
    return keras.Model(x, L.Dense(2, name="out")(h))


class Scale(L.Layer):
    def call(self, x):
        return x * 3.0


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.d = L.Dense(2)

    def call(self, x):
        return self.d(x)


def _custom_model():
    x = keras.Input((4,))
    return keras.Model(x, L.Dense(2)(Scale(name="scale")(L.Dense(3)(x))))


def _rnn_model():
    x = keras.Input((5, 3))
    return keras.Model(x, L.Dense(2)(L.LSTM(4, name="rnn")(x)))


def _shared_model():
    x = keras.Input((4,))
    d = L.Dense(4, name="shared")
    return keras.Model(x, L.Dense(2)(d(d(x))))


def _reshape_model():
    x = keras.Input((4, 6))
    h = L.Reshape((6, 4), name="swap")(L.Conv1D(6, 1)(x))
    return keras.Model(x, L.Dense(2)(L.Flatten()(h)))


def _nested_subclassed():
    net = Net()
    x = keras.Input((4,))
    return keras.Model(x, L.Dense(2)(net(L.Dense(4)(x))))


def _bn_axis_model():
    x = keras.Input((4, 4, 3))
    return keras.Model(x, L.Dense(2)(L.Flatten()(L.BatchNormalization(axis=1, name="bn_h")(L.Conv2D(3, 1)(x)))))


@pytest.mark.parametrize("build, words", [
    (_lambda_model, ["'twice'", "class Lambda", "no channel rule", "Supported: Dense", "exclude=('twice',)"]),
    (_custom_model, ["'scale'", "class Scale", "no channel rule"]),
    (_rnn_model, ["'rnn'", "class LSTM", "no channel rule"]),
    (_shared_model, ["'shared'", "more than once"]),
    (_reshape_model, ["'swap'", "class Reshape", "moving the channels off the last axis"]),
    (_nested_subclassed, ["class Net", "no channel rule"]),
    (_bn_axis_model, ["'bn_h'", "class BatchNormalization", "axis=1"]),
])
def test_each_unsupported_case_gets_its_one_paragraph_message(build, words):
    with pytest.raises(G.UnsupportedLayerError) as err:
        G.prunable(build())
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert isinstance(err.value, ValueError)


def test_a_subclassed_model_is_refused():
    net = Net()
    net(np.zeros((1, 4), "float32"))
    with pytest.raises(G.UnsupportedLayerError, match="subclassed model"):
        G.prunable(net)


def test_an_excluded_unsupported_layer_is_kept_and_pins_its_channels():
    model = _lambda_model()
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    masked = G.prunable(model, exclude=("twice",))
    _close(masked(x), model(x))
    groups = {frozenset(g.parts): g.pinned for g in G.channel_groups(masked)}
    assert groups[frozenset({"d:out", "twice"})] == "twice (Lambda) is excluded"
    with pytest.raises(G.UnsupportedLayerError):
        G.channel_groups(model)  # the plain model, no exclude: refused
    assert {frozenset(g.parts): g.pinned for g in G.channel_groups(model, exclude=("twice",))} == groups


def test_a_sequential_model_and_a_masked_model_made_prunable_again():
    model = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(3, 3, name="c"), L.BatchNormalization(name="bn"),
                              L.ReLU(name="r"), L.Flatten(name="f"), L.Dense(2, name="out")], name="seq")
    M._init(model, 0)
    x = M.sample(model)
    masked = G.prunable(model)
    _close(masked(x, training=False), model(x, training=False))
    assert [str(g) for g in G.channel_groups(masked) if g.pinned is None] == ["c:out + bn + f + out:in (3 channels)"]
    G.prune(masked, "neuron", 34)  # round(1.02) = 1 channel
    again = G.prunable(masked)
    np.testing.assert_array_equal(np.asarray(again.get_layer("c").bias_mask), np.asarray(masked.get_layer("c").bias_mask))
    _close(again(x, training=False), masked(x, training=False))


def test_two_inputs_and_a_sequential_nested_in_a_sequential():
    a, b = keras.Input((3,), name="a"), keras.Input((4,), name="b")
    h = L.Concatenate(name="cat")([L.Dense(5, name="da")(a), L.Dense(2, name="db")(b)])
    model = M._init(keras.Model([a, b], L.Dense(2, name="out")(L.ReLU(name="r")(h))), 0)
    xs = [M.sample(keras.Model(a, a), 4), M.sample(keras.Model(b, b), 4)]
    masked = G.prunable(model)
    _close(masked(xs), model(xs))
    G.prune(masked, "neuron", 50)
    small = G.shrink(masked)
    assert small.get_layer("da").kernel.shape == (3, 2) and small.get_layer("db").kernel.shape == (4, 1)
    assert small.get_layer("out").kernel.shape == (3, 2)
    _close(small(xs), masked(xs), rel=1e-5)
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3, name="i"), L.ReLU(name="ir")], name="inner")
    outer = M._init(keras.Sequential([keras.Input((5,)), L.Dense(4, name="o"), inner, L.Dense(2, name="out")]), 0)
    masked = G.prunable(outer)
    assert [l.name for l in masked.layers][1:] == ["o", "i", "ir", "out"]
    x = M.sample(outer)
    _close(masked(x), outer(x))


def test_the_output_layer_is_found_behind_a_batch_normalization_and_an_activation():
    x = keras.Input((4,), name="x")
    h = L.Dense(5, name="hidden")(x)
    h = L.BatchNormalization(name="bn_out")(L.Dense(3, name="out")(h))
    model = keras.Model(x, L.Activation("softmax", name="sm")(h))
    masked = G.prunable(model)
    assert [l.name for l in masked.layers if isinstance(l, GraphMasked)] == ["hidden"]
    assert [str(g) for g in G.channel_groups(masked) if g.pinned is None] == ["hidden:out + out:in (5 channels)"]
