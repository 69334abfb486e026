"""Unit pruning by coupled channel groups, then pruning.graph.shrink: same outputs, hand-computed shapes."""
import numpy as np
import pytest

import graph_models as M
import pruning  # noqa: F401
import keras
from pruning import graph as G
from pruning.core import masks
from pruning.graph.groups import analyze, removed_labels
from pruning.graph.layers import GraphMasked

NAMES = sorted(M.HAND)


def _close(a, b, rel=1e-5):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= rel * max(1e-3, float(np.max(np.abs(b))))


def _kernel_shape(layer):
    return tuple(layer.kernel.shape) if hasattr(layer, "kernel") else tuple(layer.depthwise_kernel.shape)


@pytest.mark.parametrize("name", NAMES)
def test_unit_prune_then_shrink_matches_the_hand_computed_network(name, tmp_path):
    build, groups, shapes, params = M.HAND[name]
    model = G.prunable(build())
    removed = G.prune_units(model, "neuron", 50)
    # each unpinned group lost round-half-up(50 % of its size) channels
    assert sorted(removed.values()) == sorted(masks.n_pruned(s, 50) for s in groups.values())
    x = M.sample(model)
    masked_out = model(x, training=False)
    small = G.shrink(model)
    assert not any(isinstance(l, GraphMasked) for l in small.layers)
    _close(small(x, training=False), masked_out)
    for layer_name, shape in shapes.items():
        assert _kernel_shape(small.get_layer(layer_name)) == shape, layer_name
    if name == "dwsep":
        assert tuple(small.get_layer("sep").pointwise_kernel.shape) == (1, 1, 4, 2)
        assert tuple(small.get_layer("bn").gamma.shape) == (4,)
    assert small.count_params() == params
    small.save(tmp_path / "small.keras")
    loaded = keras.models.load_model(tmp_path / "small.keras")  # plain Keras, no custom objects
    _close(loaded(x, training=False), masked_out)


def test_a_removed_channel_is_zero_downstream_in_training_mode_too():
    model = G.prunable(M.residual())
    G.prune_units(model, "neuron", 50)
    probe = keras.Model(model.inputs[0], [model.get_layer("r1").output, model.get_layer("add").output])
    r1, add = (np.asarray(t) for t in probe(M.sample(model), training=True))
    analysis = analyze(model)
    dead = removed_labels(analysis)
    for name, value in (("r1", r1), ("add", add)):
        gone = dead[analysis.tensor_labels(analysis.graph.op(name).outputs[0])]
        assert gone.sum() == 3
        assert np.all(value[..., gone] == 0) and np.all(value[..., ~gone].std(axis=(0, 1, 2)) > 0)


def test_neuron_scores_a_group_over_all_its_producers():
    """The residual group's score of channel i is sqrt(|c2[..., i]|^2 + |proj[..., i]|^2)."""
    model = G.prunable(M.residual())
    c2, proj = model.get_layer("c2"), model.get_layer("proj")
    rng = np.random.default_rng(5)
    # c2 alone would keep channels 3..5, proj alone 0..2; together channels 1, 3, 5 are the weakest
    c2_norms = np.array([1.0, 0.5, 2.0, 3.0, 4.0, 0.1])
    proj_norms = np.array([4.0, 0.5, 3.0, 0.2, 1.0, 0.1])
    for layer, norms in ((c2, c2_norms), (proj, proj_norms)):
        k = rng.normal(size=tuple(layer.kernel.shape)).astype("float32")
        k = k / np.linalg.norm(k.reshape(-1, 6), axis=0) * norms
        layer.kernel.assign(k.astype("float32"))
    G.prune_units(model, "neuron", 50)
    kept = np.flatnonzero(np.asarray(model.get_layer("c2").bias_mask))
    combined = np.sqrt(c2_norms ** 2 + proj_norms ** 2)
    np.testing.assert_array_equal(kept, np.sort(np.argsort(combined)[3:]))
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(model.get_layer("proj").bias_mask)), kept)
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(model.get_layer("bn2").channel_mask)), kept)
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(model.get_layer("bnp").channel_mask)), kept)


def test_random_neuron_is_seeded_and_masks_only_grow():
    def removed(seed, ks):
        model = G.prunable(M.mlp())
        for k in ks:
            G.prune_units(model, "random_neuron", k, seed=seed)
        return np.flatnonzero(np.asarray(model.get_layer("d1").bias_mask) == 0)

    assert np.array_equal(removed(1, [50]), removed(1, [50]))
    assert not all(np.array_equal(removed(1, [50]), removed(s, [50])) for s in (2, 3, 4))
    first, then = removed(1, [25]), removed(1, [25, 50])
    assert len(first) == 2 and len(then) == 4 and set(first) <= set(then)


def test_pinned_groups_and_weight_strategies_are_left_alone():
    model = G.prunable(M.kinds())
    G.prune_units(model, "neuron", 50)
    assert np.all(np.asarray(model.get_layer("d").bias_mask) == 1)  # pinned by the LayerNormalization
    with pytest.raises(ValueError, match="not a unit strategy"):
        G.prune_units(model, "weight", 50)
    with pytest.raises(ValueError, match="prunable"):
        G.prune_units(M.mlp(), "neuron", 50)


def test_prune_dispatches_and_a_weight_pruned_model_shrinks_only_what_units_removed():
    model = G.prunable(M.cnn())
    G.prune(model, "filter", 50)  # the alias of neuron
    G.prune(model, "weight", 70)  # (at a lower k than the units took, weight masks would revive entries)
    x = M.sample(model)
    out = model(x, training=False)
    small, keep = G.shrink(model, return_keep=True)
    assert set(keep) == {"c1", "bn", "relu", "pool", "flat"} and len(keep["c1"]) == 2
    _close(small(x, training=False), out)
    c1 = small.get_layer("c1").kernel.numpy()
    assert c1.size - np.count_nonzero(c1) >= 1  # weight masks are baked in as zeros


def test_a_group_that_loses_every_channel_keeps_one_that_outputs_zero():
    model = G.prunable(M.concat())
    G.prune_units(model, "neuron", 80)  # b's 2 channels: round(1.6) = 2 removed
    x = M.sample(model)
    small = G.shrink(model)
    assert small.get_layer("b").kernel.shape[-1] == 1
    _close(small(x, training=False), model(x, training=False))


def test_strip_of_a_unit_pruned_model_keeps_its_shape_and_outputs(tmp_path):
    model = G.prunable(M.dwsep())
    G.prune_units(model, "neuron", 50)
    x = M.sample(model)
    plain = G.strip(model)
    assert plain.count_params() == G.strip(G.prunable(M.dwsep())).count_params()
    _close(plain(x, training=False), model(x, training=False))
    plain.save(tmp_path / "plain.keras")
    _close(keras.models.load_model(tmp_path / "plain.keras")(x, training=False), model(x, training=False))


def test_conv3d_prelu_and_a_unit_normalization():
    """Groups: c3d:out+pr+d:in (4), d:out+pr2+d2:in (6), d2:out+un+out:in (4, pinned by un).  At 50 %:
    4 -> 2, 6 -> 3.  Shrunk: c3d 3*3*3*2*2+2=110, pr (shared slopes) 2, d 2*3+3=9, pr2 3, d2 3*4+4=16,
    out 4*3+3=15: 155."""
    L = keras.layers
    x = keras.Input((4, 4, 4, 2), name="vol")
    h = L.Conv3D(4, 3, padding="same", name="c3d")(x)
    h = L.PReLU(shared_axes=[1, 2, 3], name="pr")(h)
    h = L.GlobalAveragePooling3D(name="gap")(h)
    h = L.PReLU(name="pr2")(L.Dense(6, name="d")(h))
    h = L.UnitNormalization(name="un")(L.Dense(4, name="d2")(h))
    model = M._init(keras.Model(x, L.Dense(3, name="out")(h)), 0)
    groups = {frozenset(g.parts): (g.size, g.pinned is None) for g in G.channel_groups(model)}
    assert groups[frozenset({"c3d:out", "pr", "d:in"})] == (4, True)
    assert groups[frozenset({"d:out", "pr2", "d2:in"})] == (6, True)
    assert groups[frozenset({"d2:out", "un", "out:in"})] == (4, False)
    masked = G.prunable(model)
    G.prune(masked, "neuron", 50)
    x = M.sample(masked)
    small = G.shrink(masked)
    _close(small(x, training=False), masked(x, training=False))
    assert small.get_layer("c3d").kernel.shape == (3, 3, 3, 2, 2) and small.get_layer("pr2").alpha.shape == (3,)
    assert small.count_params() == 155


def test_separable_and_depthwise_1d_with_a_depth_multiplier():
    """Groups: c:out+dw+sep:in (3), sep:out+out:in (4).  At 50 %: 3 -> 1 (round(1.5) = 2 removed), 4 -> 2.
    Shrunk: c 1*2*1+1=3, dw 3*1*2+2=8 (1 channel in, 2 out), sep depthwise 3*2*2=12 (2 channels in, x2)
    + pointwise 1*4*2=8 + bias 2 = 22, out (3 positions x 2 channels flattened) 6*2+2=14: 47."""
    L = keras.layers
    x = keras.Input((8, 2), name="seq")
    h = L.Conv1D(3, 1, name="c")(x)
    h = L.DepthwiseConv1D(3, depth_multiplier=2, padding="same", name="dw")(h)
    h = L.SeparableConv1D(4, 3, depth_multiplier=2, strides=2, name="sep")(h)
    model = M._init(keras.Model(x, L.Dense(2, name="out")(L.Flatten(name="f")(h))), 0)
    groups = {frozenset(g.parts): g.size for g in G.channel_groups(model) if g.pinned is None}
    assert groups == {frozenset({"c:out", "dw", "sep:in"}): 3, frozenset({"sep:out", "f", "out:in"}): 4}
    masked = G.prunable(model)
    G.prune(masked, "neuron", 50)
    x = M.sample(masked)
    small = G.shrink(masked)
    _close(small(x, training=False), masked(x, training=False))
    sep = small.get_layer("sep")
    assert sep.depthwise_kernel.shape == (3, 2, 2) and sep.pointwise_kernel.shape == (1, 4, 2)
    assert small.count_params() == 47
