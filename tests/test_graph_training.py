"""The toolkit's calls on a prunable() model: prune, MaskingCallback in the user's compile/fit (constant
target, schedule; SGD with momentum, Adam, AdamW), measure_sparsity, shrink_model, size_report."""
import numpy as np
import pytest

import graph_models as M
import pruning
import keras
from pruning.core import masks
from pruning.graph.layers import graph_masked_layers


def _data(model, n=32, classes=2, seed=0):
    x = M.sample(model, n, seed)
    y = np.random.default_rng(seed).integers(0, classes, n)
    return x, y


def _zeros_stay(model):
    """Every masked entry of every twin (kernels, biases) is exactly 0 as stored."""
    for layer in graph_masked_layers(model):
        for name, mask_name in layer.mask_names.items():
            value, mask = np.asarray(getattr(layer, name)), np.asarray(getattr(layer, mask_name))
            assert np.all(value[mask == 0] == 0), (layer.name, name)


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    lambda: keras.optimizers.Adam(0.01),
    lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
])
def test_weights_pruned_by_the_callback_stay_exactly_zero_through_fit(optimizer):
    model = pruning.prunable(M.residual())
    model.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(model)
    before = {l.name: np.asarray(l.kernel).copy() for l in graph_masked_layers(model) if hasattr(l, "kernel_mask")}
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[pruning.MaskingCallback("weight", 60)])
    for layer in graph_masked_layers(model):
        if hasattr(layer, "kernel_mask"):
            mask = np.asarray(layer.kernel_mask)
            assert int((mask == 0).sum()) == masks.n_pruned(mask.size, 60)
            assert not np.array_equal(np.asarray(layer.kernel)[mask == 1], before[layer.name][mask == 1])  # trained
    _zeros_stay(model)
    assert pruning.measure_sparsity(model)["weight_sparsity"] == pytest.approx(0.6, abs=0.005)


def test_a_unit_strategy_with_a_schedule_in_fit_then_shrink_model():
    model = pruning.prunable(M.se())
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(model)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0,
              callbacks=[pruning.MaskingCallback("neuron", pruning.cubic_schedule(0, 50, 3))])
    _zeros_stay(model)
    assert int((np.asarray(model.get_layer("c1").bias_mask) == 0).sum()) == 2  # 50 % of 4 at the last epoch
    small, keep = pruning.shrink_model(model)
    assert small.count_params() == M.HAND["se"][3] and len(keep["c1"]) == 2
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_the_one_shot_prune_entry_point_dispatches():
    model = pruning.prunable(M.concat())
    pruning.prune(model, "global_weight", 50)
    assert pruning.measure_sparsity(model)["weight_sparsity"] == pytest.approx(
        masks.n_pruned(sum(int(np.prod(l.kernel.shape)) for l in graph_masked_layers(model)), 50)
        / sum(int(np.prod(l.kernel.shape)) for l in graph_masked_layers(model)))
    assert pruning.measure_sparsity(model)["overall"] < 0.5  # the output layer's kernel is not pruned


def test_size_report_counts_by_hand():
    """residual: kernels c1 3*3*3*6, c2 3*3*6*6, proj 3*6, c3 3*3*6*4, out 4*2 = 728 entries; applied at
    8*8, 8*8, 8*8, 3*3 and 1 positions: 2 x (162*64 + 324*64 + 18*64 + 216*9 + 8) = 68416 FLOPs.  After
    neuron 50 % and shrink: 81*64 + 81*64 + 9*64 + 54*9 + 4 = 11434 multiply-adds, 229 kernel entries."""
    model = M.residual()
    full = pruning.size_report(model)
    assert (full["kernel_params"], full["dense_flops_per_example"], full["effective_sparsity"]) == (728, 68416, 0.0)
    masked = pruning.prunable(model)
    pruning.prune(masked, "neuron", 50)
    small = pruning.shrink(masked)
    for report in (pruning.size_report(masked), pruning.size_report(small, reference=model)):
        assert report["flops_per_example"] == 2 * 11434
        assert report["effective_sparsity"] == pytest.approx(1 - 229 / 728)
    assert pruning.size_report(small)["params"] == small.count_params() == 278


def test_tensorboard_logs_and_a_saved_masked_model_loads_with_its_masks(tmp_path):
    model = pruning.prunable(M.dwsep())
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(model, 16)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0,
              callbacks=[pruning.MaskingCallback("weight", 50, log_dir=tmp_path / "logs")])
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert set(pruning.measure_sparsity(model)["per_layer"]) == {"c1", "dw", "sep/depthwise_kernel",
                                                                 "sep/pointwise_kernel"}
    model.save(tmp_path / "masked.keras")
    loaded = keras.models.load_model(tmp_path / "masked.keras")  # the twins are registered serializables
    np.testing.assert_array_equal(np.asarray(loaded.get_layer("sep").pointwise_kernel_mask),
                                  np.asarray(model.get_layer("sep").pointwise_kernel_mask))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
