"""pruning.graph.channel_groups: the coupled channel groups, checked against groups worked out by hand."""
import numpy as np
import pytest

import graph_models as M
import pruning  # noqa: F401
import keras
from pruning import graph as G
from pruning.graph.groups import analyze

L = keras.layers


def _groups(model):
    return {(frozenset(g.parts), g.size, g.pinned is None) for g in G.channel_groups(model)}


def test_residual_block_groups_by_hand():
    assert _groups(M.residual()) == {
        (frozenset({"input:img", "c1:in", "proj:in"}), 3, False),
        (frozenset({"c1:out", "bn1", "c2:in"}), 6, True),
        # the residual addition ties both branches: c2's filters, bn2, the projection and bnp, and c3's inputs
        (frozenset({"c2:out", "bn2", "proj:out", "bnp", "add", "c3:in"}), 6, True),
        (frozenset({"c3:out", "out:in"}), 4, True),
        (frozenset({"out:out"}), 2, False),
    }


def test_residual_channels_are_tied_index_by_index():
    analysis = analyze(M.residual())
    g = analysis.graph
    group = [gr for gr in analysis.groups if "add" in gr.parts][0]
    c2, proj = g.op("c2").outputs[0], g.op("proj").outputs[0]
    # channel i of c2 and channel i of proj are the same coupled channel, for every i
    np.testing.assert_array_equal(analysis.channel_index(c2, group.labels), np.arange(6))
    np.testing.assert_array_equal(analysis.channel_index(proj, group.labels), np.arange(6))


def test_concat_groups_by_hand_and_offsets():
    assert _groups(M.concat()) == {
        (frozenset({"input:img", "a:in", "b:in"}), 3, False),
        (frozenset({"a:out", "cat", "c:in"}), 3, True),
        (frozenset({"b:out", "cat", "c:in"}), 2, True),
        (frozenset({"c:out", "flat", "out:in"}), 4, True),
        (frozenset({"out:out"}), 2, False),
    }
    analysis = analyze(M.concat())
    g = analysis.graph
    cat = g.op("cat").outputs[0]
    for name, offset in (("a", 0), ("b", 3)):
        group = [gr for gr in analysis.groups if f"{name}:out" in gr.parts][0]
        np.testing.assert_array_equal(analysis.channel_index(cat, group.labels),
                                      offset + analysis.channel_index(g.op(name).outputs[0], group.labels))


def test_flatten_spreads_a_channel_over_every_position():
    analysis = analyze(M.cnn())
    g = analysis.graph
    flat = g.op("flat").outputs[0]  # 4 x 4 positions x 4 channels
    conv = g.op("c1").outputs[0]
    labels = analysis.tensor_labels(flat)
    np.testing.assert_array_equal(labels, np.tile(analysis.tensor_labels(conv), 16))


@pytest.mark.parametrize("name", sorted(M.HAND))
def test_every_models_unpinned_groups_by_hand(name):
    hand = M.HAND[name][1]
    found = {frozenset(g.parts): g.size for g in G.channel_groups(M.HAND[name][0]()) if g.pinned is None}
    assert found == {frozenset(parts): size for parts, size in hand.items()}


def test_squeeze_excitation_gate_does_not_pin_but_a_sigmoid_before_a_dense_does():
    groups = {frozenset(g.parts): g.pinned for g in G.channel_groups(M.se())}
    assert groups[frozenset({"c1:out", "fc1:in", "fc2:out", "rs", "mul", "c2:in"})] is None
    x = keras.Input((5,))
    h = L.Dense(4, name="d1")(x)
    h = L.Activation("sigmoid", name="sig")(h)
    model = keras.Model(x, L.Dense(2, name="out")(h))
    (group,) = [g for g in G.channel_groups(model) if "d1:out" in g.parts]
    assert group.pinned == "out reads it, and a removed channel would not be 0 there (sig maps 0 to a nonzero value)"


def test_layer_normalization_and_a_grouped_convolution_pin():
    groups = {frozenset(g.parts): g.pinned for g in G.channel_groups(M.kinds())}
    assert groups[frozenset({"d:out", "ln", "out:in"})].startswith("ln (LayerNormalization) normalises")
    x = keras.Input((6, 6, 4))
    h = L.Conv2D(4, 1, name="c0")(x)
    h = L.Conv2D(4, 3, groups=2, name="grouped")(h)
    model = keras.Model(x, L.Dense(2, name="out")(L.Flatten(name="f")(h)))
    groups = {frozenset(g.parts): g.pinned for g in G.channel_groups(model)}
    assert groups[frozenset({"c0:out", "grouped:in"})].startswith("grouped is a grouped convolution")


def test_str_reads_like_the_graph():
    text = [str(g) for g in G.channel_groups(M.mlp())]
    assert text == ["input:x + d1:in (6 channels), pinned: model input 'x'",
                    "d1:out + bn1 + d2:in (8 channels)",
                    "d2:out + bn2 + out:in (5 channels)",
                    "out:out (3 channels), pinned: model output"]


def test_rescaling_with_an_offset_pins_and_a_per_channel_scale_pins():
    x = keras.Input((5,))
    h = L.Dense(4, name="d1")(x)
    h = L.Rescaling(2.0, offset=1.0, name="shift")(h)
    model = keras.Model(x, L.Dense(2, name="out")(h))
    (group,) = [g for g in G.channel_groups(model) if "d1:out" in g.parts]
    assert "shift maps 0 to a nonzero value" in group.pinned
    x = keras.Input((5,))
    h = L.Dense(4, name="d1")(x)
    h = L.Rescaling([1.0, 2.0, 3.0, 4.0], name="per_channel")(h)
    model = keras.Model(x, L.Dense(2, name="out")(h))
    (group,) = [g for g in G.channel_groups(model) if "d1:out" in g.parts]
    assert group.pinned.startswith("per_channel (Rescaling)")
    x = keras.Input((5,))
    h = L.Dense(4, name="d1")(x)
    h = L.Rescaling(3.0, name="scalar")(h)
    model = keras.Model(x, L.Dense(2, name="out")(h))
    (group,) = [g for g in G.channel_groups(model) if "d1:out" in g.parts]
    assert group.pinned is None
