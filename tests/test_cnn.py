"""--model lenet5: conv masks (exact counts, whole filters), pruned conv weights stay zero, the shrunk CNN
equals the masked one, channel bookkeeping across the flatten on a hand-built case, sizes and FLOPs,
the sparse format, and the input-size check."""
import subprocess
import sys

import numpy as np
import pytest

from pruning.config import ConfigError, ModelConfig
from pruning.deploy import shrink
from helpers import REPO, assert_mask_count, expected_pruned, write_mnist_dir

keras = pytest.importorskip("keras")

from pruning.core import callbacks  # noqa: E402
from pruning.core.layers import load_model, masked_layers, weight_layers  # noqa: E402
from pruning.deploy.export import size_report, sparse_layers  # noqa: E402
from pruning.deploy.sparse_format import full_size_kernels, load_sparse, stored_kernels  # noqa: E402
from pruning.models import build_model, check_input  # noqa: E402
from pruning.study.run import compile_model  # noqa: E402

LENET = ModelConfig(name="lenet5")
# 20x20 images: conv1 16x16x2 -> pool 8x8x2 -> conv2 4x4x3 -> pool 2x2x3 -> flatten 12 -> dense1 4 -> 10
SMALL = ModelConfig(name="lenet5", filters=(2, 3), hidden=(4,))


def _x(n, dim, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, dim)).astype(np.float32)


@pytest.fixture(scope="module")
def lenet():
    keras.utils.set_random_seed(0)
    return build_model(784, LENET)


def test_lenet5_has_the_documented_shapes_and_430500_weights(lenet):
    shapes = [tuple(l.kernel.shape) for l in weight_layers(lenet)]
    assert shapes == [(5, 5, 1, 20), (5, 5, 20, 50), (800, 500), (500, 10)]
    assert sum(int(np.prod(s)) for s in shapes) == 430_500
    assert [l.positions for l in weight_layers(lenet)] == [576, 64, 1, 1]
    assert [l.name for l in masked_layers(lenet)] == ["conv1", "conv2", "dense1"]


@pytest.mark.parametrize("strategy", ["weight", "random", "neuron", "random_neuron"])
@pytest.mark.parametrize("k", [50.0, 90.0])
def test_conv_masks_prune_exact_counts_per_layer_and_whole_filters(lenet, strategy, k):
    mask_set = callbacks.compute_model_masks(lenet, strategy, k, seed=3)
    for layer in masked_layers(lenet):
        assert mask_set.masks[layer.name].shape == tuple(layer.kernel.shape)
        assert_mask_count(mask_set.masks[layer.name], strategy, k)


def test_filter_pruning_removes_the_filters_of_smallest_l2_norm(lenet):
    mask = callbacks.compute_model_masks(lenet, "neuron", 50.0).masks["conv2"]
    norms = np.linalg.norm(lenet.get_layer("conv2").kernel.numpy().reshape(-1, 50), axis=0)
    dead = np.flatnonzero((mask == 0).all(axis=(0, 1, 2)))
    assert sorted(dead.tolist()) == sorted(np.argsort(norms, kind="stable")[:25].tolist())


def test_global_weight_pruning_counts_conv_and_dense_entries_together(lenet):
    mask_set = callbacks.compute_model_masks(lenet, "global_weight", 90.0)
    total = sum(int(np.prod(l.kernel.shape)) for l in masked_layers(lenet))
    zeros = sum(int((m == 0).sum()) for m in mask_set.masks.values())
    assert total == 425_500 and zeros == expected_pruned(total, 90.0)


def test_pruned_conv_weights_stay_exactly_zero_after_training():
    keras.utils.set_random_seed(1)
    model = build_model(400, SMALL)
    callbacks.apply_masks(model, "weight", 60.0)
    before = {l.name: l.mask.numpy() for l in masked_layers(model)}
    compile_model(model, lr=1e-2, weight_decay=0.5, steps=20)
    x, y = _x(64, 400), np.arange(64) % 10
    model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    for layer in masked_layers(model):
        pruned = before[layer.name] == 0
        assert np.array_equal(layer.mask.numpy(), before[layer.name])
        assert np.count_nonzero(layer.kernel.numpy()[pruned]) == 0
        assert np.count_nonzero(layer.kernel.numpy()[~pruned]) > 0.9 * np.count_nonzero(~pruned)


def test_channel_bookkeeping_across_the_flatten_on_a_hand_built_case():
    keras.utils.set_random_seed(2)
    model = build_model(400, SMALL)
    conv2 = model.get_layer("conv2")
    mask = np.ones((5, 5, 2, 3), np.float32)
    mask[..., 1] = 0.0  # filter 1 of conv2 goes
    conv2.mask.assign(mask)
    conv2.kernel.assign(conv2.kernel.numpy() * mask)
    dense_before = model.get_layer("dense1").kernel.numpy()  # (12, 4): rows (position, channel), channel fastest
    smaller, keep = shrink.shrink_model(model)
    assert keep[1].tolist() == [0, 2]
    assert smaller.get_layer("conv2").kept == [0, 2]
    assert tuple(smaller.get_layer("conv2").kernel.shape) == (5, 5, 2, 2)
    # the flatten's rows of channel 1 are 1, 4, 7, 10: exactly those go
    assert np.array_equal(smaller.get_layer("dense1").kernel.numpy(), dense_before[[0, 2, 3, 5, 6, 8, 9, 11]])
    x = _x(200, 400, seed=3)
    assert np.abs(np.asarray(smaller(x)) - np.asarray(model(x))).max() <= 1e-5
    kernels, _ = shrink.expand_arrays(smaller)
    assert np.array_equal(kernels[2][[0, 2, 3, 5, 6, 8, 9, 11]], dense_before[[0, 2, 3, 5, 6, 8, 9, 11]])
    assert not kernels[2][[1, 4, 7, 10]].any()
    assert np.abs(np.asarray(shrink.expand_model(smaller)(x)) - np.asarray(model(x))).max() <= 1e-5


def test_filter_pruned_lenet5_shrinks_and_predicts_what_the_masked_one_predicts():
    keras.utils.set_random_seed(4)
    model = build_model(784, LENET)
    callbacks.apply_masks(model, "neuron", 60.0)
    smaller, keep = shrink.shrink_model(model)
    assert [l.units for l in masked_layers(smaller)] == [8, 20, 200]
    assert tuple(smaller.get_layer("dense1").kernel.shape) == (16 * 20, 200)
    x = _x(300, 784, seed=5)
    assert np.abs(np.asarray(smaller(x)) - np.asarray(model(x))).max() <= 1e-5


def test_a_dead_filter_silences_its_inputs_to_the_next_layer_in_the_effective_count():
    # conv (2x2, 1 -> 2 filters) on 3x3 images: 4 positions; flatten 4 x 2 = 8 rows; dense 8 -> 1 output.
    conv = np.ones((2, 2, 1, 2), np.float32)
    conv[..., 0] = 0.0  # filter 0 is dead
    dense = np.arange(1, 9, dtype=np.float32).reshape(8, 1)
    eff = shrink.effective_entries([conv, dense])
    assert eff[0][..., 0].sum() == 0 and eff[0][..., 1].sum() == 4
    assert eff[1][:, 0].tolist() == [False, True] * 4  # rows of channel 0 (even rows) cannot matter
    counts = shrink.network_counts([conv, dense], [(2, 2, 1, 2), (8, 1)], positions=[4, 1])
    # effective weights: 4 in the conv, applied at 4 positions, and 4 in the dense layer
    assert counts == {"params_nonzero": 12, "effective_sparsity": 1 - 8 / 16, "flops_per_example": 2 * (4 * 4 + 4)}


def test_size_report_and_sparse_format_cover_conv_layers_losslessly(lenet, tmp_path):
    keras.utils.set_random_seed(6)
    model = build_model(784, LENET)
    callbacks.apply_masks(model, "weight", 90.0)
    size = size_report(model, tmp_path / "m.sparse")
    assert size["params_nonzero"] == 5_000 + sum(n - expected_pruned(n, 90.0) for n in (500, 25_000, 400_000))
    assert size["dense_bytes"] == 4 * 430_500
    stored, meta = load_sparse(tmp_path / "m.sparse")
    assert meta["kernel_shapes"] == {"conv1": [5, 5, 1, 20], "conv2": [5, 5, 20, 50]}
    for kernel, layer in zip(stored_kernels(stored, meta), weight_layers(model)):
        kept = np.ones(kernel.shape, bool) if layer.mask is None else layer.mask.numpy() == 1
        effective = np.asarray(layer.effective_kernel())
        assert np.array_equal(kernel, effective)  # masked entries come back +0.0 (the format's rule)
        assert np.array_equal(kernel[kept].view(np.uint32), effective[kept].view(np.uint32))
    dense = build_model(784, LENET)
    full = size_report(dense, tmp_path / "d.sparse")
    assert full["flops_per_example"] == 2 * (500 * 576 + 25_000 * 64 + 400_000 + 5_000)
    assert full["effective_sparsity"] == 0.0 and len(sparse_layers(dense)[0]) == 4


def test_a_shrunk_cnn_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(7)
    model = build_model(400, SMALL)
    callbacks.apply_masks(model, "neuron", 50.0)
    smaller = shrink.shrink_model(model)[0]
    smaller.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")
    x = _x(20, 400)
    assert np.array_equal(np.asarray(back(x)), np.asarray(smaller(x)))
    assert back.get_layer("conv1").kept == smaller.get_layer("conv1").kept
    assert back.get_layer("conv1").full_shape == (5, 5, 1, 2)


@pytest.mark.parametrize("dim", [100, 783, 15 * 15])
def test_images_that_do_not_fit_the_cnn_are_refused(dim):
    with pytest.raises(ConfigError, match="--model lenet5 reads square single-channel images of at least 16x16"):
        check_input(dim, LENET)
    check_input(16 * 16, LENET)  # the smallest that fits


def test_filters_are_refused_for_the_mlp_and_required_to_be_positive():
    with pytest.raises(ConfigError, match="--filters"):
        ModelConfig(name="mlp", filters=(4,))
    with pytest.raises(ConfigError, match="--filters"):
        ModelConfig(name="lenet5", filters=(4, 0))


def test_the_command_line_refuses_idx_images_too_small_for_the_cnn(tmp_path):
    data = write_mnist_dir(tmp_path / "small", 60, 20, side=10)
    out = subprocess.run([sys.executable, "train.py", "--model", "lenet5", "--data-dir", str(data), "--logdir",
                          str(tmp_path / "logs"), "--epochs", "1"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "--model lenet5 reads square single-channel images" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "logs").exists()


def test_benchmark_refuses_a_cnn_study_because_the_sparse_engine_runs_mlps_only(tmp_path, capsys):
    from pruning import cli, paths
    from pruning.config import Hyper, RunConfig
    from pruning.files import write_json

    cfg = RunConfig(Hyper(model=LENET), "none", 0.0)
    write_json(paths.result_file(tmp_path / "logs", "dense"), {"run": "dense", "status": "ok",
                                                               "config": cfg.to_dict(), "files": []})
    with pytest.raises(SystemExit) as exit_:
        cli.benchmark_main(["--logdir", str(tmp_path / "logs")])
    assert exit_.value.code == 2
    assert "--model lenet5); benchmark.py times the sparse inference engine, which runs MLPs only" in capsys.readouterr().err


def test_adam_moments_of_surviving_filters_and_their_channels_are_carried_over():
    keras.utils.set_random_seed(8)
    model = build_model(400, SMALL)
    x, y = _x(32, 400, seed=9), np.arange(32) % 10
    compile_model(model, 1e-3, 0.5, 100)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    mask = np.ones((5, 5, 2, 3), np.float32)
    mask[..., 1] = 0.0  # conv2's filter 1 goes, and with it 4 of dense1's 12 input rows
    conv2 = model.get_layer("conv2")
    conv2.mask.assign(mask)
    conv2.kernel.assign(conv2.kernel.numpy() * mask)
    smaller, keep = shrink.shrink_model(model)
    compile_model(smaller, 1e-3, 0.5, 100)
    shrink.carry_optimizer_state(model, smaller, keep)
    old, new = model.optimizer, smaller.optimizer
    by_name = {v.path.split("/")[0]: v for v in model.trainable_variables}
    want_index = {"conv1": np.s_[..., :], "conv2": np.s_[:, :, :, [0, 2]],
                  "dense1": np.s_[[0, 2, 3, 5, 6, 8, 9, 11], :], "output": np.s_[:, :]}
    for n in smaller.trainable_variables:
        layer = n.path.split("/")[0]
        o = by_name[layer]
        for slots in ("_momentums", "_velocities"):
            want = np.asarray(getattr(old, slots)[old._get_variable_index(o)])[want_index[layer]]
            got = np.asarray(getattr(new, slots)[new._get_variable_index(n)])
            assert np.array_equal(got, want), (layer, slots)
    smaller.fit(x, y, batch_size=16, epochs=1, verbose=0)  # and it trains on


def test_a_saved_sparse_file_expands_to_the_masked_networks_kernels_without_tensorflow(tmp_path):
    keras.utils.set_random_seed(10)
    model = build_model(784, LENET)
    callbacks.apply_masks(model, "neuron", 50.0)
    smaller = shrink.shrink_model(model)[0]
    size_report(smaller, tmp_path / "m.sparse")
    got = full_size_kernels(*load_sparse(tmp_path / "m.sparse"))
    kernels, masks = shrink.expand_arrays(smaller)
    for g, k, m in zip(got, kernels, masks):
        assert np.array_equal(g, k if m is None else k * m)
    assert [g.shape for g in got] == [(5, 5, 1, 20), (5, 5, 20, 50), (800, 500), (500, 10)]


def test_filter_is_another_name_for_neuron_pruning_and_its_runs_are_the_neuron_runs():
    from pruning.cli import train_parser
    from pruning.config import Hyper, RunConfig, StudyConfig
    from pruning.study.plan import plan_study

    study = StudyConfig(sparsities=(0, 50), strategies=("weight", "filter", "random_filter"))
    assert study.strategies == ("weight", "neuron", "random_neuron")
    chains = plan_study(Hyper(model=LENET), study)
    assert [c.name for chain in chains for c in chain] == ["dense", "weight_k50", "neuron_k50", "random_neuron_k50"]
    assert RunConfig(Hyper(model=LENET), "filter", 50, "dense").identity() == \
        RunConfig(Hyper(model=LENET), "neuron", 50, "dense").identity()
    assert train_parser().parse_args(["--strategy", "filter", "--sparsity", "50"]).strategy == "neuron"
    with pytest.raises(ConfigError, match="lists neuron more than once"):
        StudyConfig(strategies=("neuron", "filter"))


def test_unit_pruning_that_would_empty_a_layer_is_named_before_the_study():
    """round(0.99 x 20) = 20 and round(0.99 x 50) = 50: filter pruning at 99 % leaves LeNet-5 no filter."""
    from pruning.cli import emptied_layers

    ks = (25, 50, 60, 70, 80, 90, 95, 97, 99)
    assert emptied_layers(LENET, ["weight", "neuron"], ks) == [(99, "--filters", 20), (99, "--filters", 50)]
    assert emptied_layers(LENET, ["weight", "random", "global_weight", "student"], ks) == []
    assert emptied_layers(ModelConfig(name="mlp"), ["neuron"], ks) == []  # 200 units: 198 go at 99 %
    # 97.5 % is the first k that takes all 20 filters (19.5 rounds up); conv2 keeps 1 of 50 up to 98 %
    assert emptied_layers(LENET, ["random_neuron"], (97, 97.5, 98)) == [(97.5, "--filters", 20), (98, "--filters", 20)]
    assert emptied_layers(ModelConfig(name="mlp", hidden=(8, 3)), ["neuron"], (80, 90)) == [(90, "--hidden", 3)]


def test_the_study_says_which_layer_filter_pruning_empties_and_writes_nothing_on_bad_data(tmp_path):
    out = subprocess.run([sys.executable, "main.py", "--model", "lenet5", "--strategies", "weight,filter",
                          "--sparsities", "90,99", "--data-dir", str(tmp_path / "absent"), "--logdir",
                          str(tmp_path / "logs")], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr  # the data is missing: the note came first, nothing was written
    assert ("note: neuron would remove every unit of a layer (at k = 99 %, --filters width 20 (round(0.99 x 20) = "
            "20); at k = 99 %, --filters width 50 (round(0.99 x 50) = 50)).") in out.stdout
    assert "Leave k = 99 out for neuron, or widen the layer." in out.stdout
    assert not (tmp_path / "logs").exists()
