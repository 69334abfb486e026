"""pruning.report.interpret: pixel maps and filters of a study's saved first layers.

The array functions on hand-built kernels (exact maps); the figures from two tiny real studies trained in
process, one module fixture each (an MLP and a LeNet-5); test_end_to_end.py draws them through main.py and
plotting.py."""
import shutil

import numpy as np
import pytest

from pruning import paths
from pruning.config import Hyper, ModelConfig, PruneConfig, StudyConfig, TrainConfig
from pruning.report.interpret import (dead_pixel_figure, dead_pixels, filter_figure, filter_images,
                                      interpretability_figures, pixel_connections, pixel_map_figure)
from pruning.study.plan import plan_study
from helpers import expected_pruned, tiny_dataset

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path) -> bytes:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 2000, path
    return data


# --------------------------------------------------------------------------- pure NumPy
def test_pixel_connections_counts_each_pixels_nonzero_first_layer_weights():
    k = np.zeros((16, 3), dtype=np.float32)
    k[0] = [1, 0, 0]
    k[1] = [0, -2, 0.5]
    k[5] = [1e-9, 0, 0]  # tiny but nonzero: a connection
    k[6] = [3, 3, -3]
    k[15] = [0, 0, -1]
    got = pixel_connections(k, side=4)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [[1, 2, 0, 0],
                                        [0, 1, 3, 0],
                                        [0, 0, 0, 0],
                                        [0, 0, 0, 1]])
    with pytest.raises(ValueError, match="does not read 5x5 pixels"):
        pixel_connections(k, side=5)


def _mlp():
    """4 pixels (2x2) -> 3 units -> 2 units -> 2 outputs. Unit 1 has no outgoing weight; unit 2 feeds only
    second-layer unit 1, which has no outgoing weight: both are dead, and so is every pixel feeding only them."""
    w1 = np.array([[1.0, 0.0, 0.0],    # pixel 0 -> unit 0 (alive)
                   [0.0, 2.0, 0.0],    # pixel 1 -> unit 1 (no way out)
                   [0.0, 0.0, -1.0],   # pixel 2 -> unit 2 (its way out ends one layer later)
                   [0.5, 0.5, 0.0]])   # pixel 3 -> units 0 and 1: alive through unit 0
    w2 = np.array([[1.0, 0.0],
                   [0.0, 0.0],
                   [0.0, 3.0]])
    w3 = np.array([[1.0, -1.0],
                   [0.0, 0.0]])
    return [w1, w2, w3]


def test_dead_pixels_are_those_feeding_only_units_off_every_input_to_output_path():
    kernels = _mlp()
    np.testing.assert_array_equal(dead_pixels(kernels, side=2), [[False, True], [True, False]])
    # pixel counts alone would call all four alive
    np.testing.assert_array_equal(pixel_connections(kernels[0], side=2), [[1, 1], [1, 2]])
    kernels[0][0, 0] = 0.0  # pixel 0 loses its one connection
    np.testing.assert_array_equal(dead_pixels(kernels, side=2), [[True, True], [True, False]])
    kernels[2][1, 1] = 4.0  # second-layer unit 1 now reaches an output: unit 2 and pixel 2 come alive
    np.testing.assert_array_equal(dead_pixels(kernels, side=2), [[True, True], [False, False]])


def _placed(kernel, kept, n):
    """A shrunk (5, 5, 1, len(kept)) convolution followed by a dense layer, put back at full size."""
    from pruning.deploy import shrink

    dense = np.ones((kernel.shape[-1], 2), np.float32)
    full = shrink.expand([kernel, dense], [None, None], [(5, 5, 1, n), (n, 2)], [kept, [0, 1]])[0][0]
    return full, full.any(axis=(0, 1, 2))


def test_a_shrunk_layers_filters_go_back_to_their_original_indices():
    kernel = np.arange(5 * 5 * 1 * 3, dtype=np.float32).reshape(5, 5, 1, 3) + 1.0  # no zero entry
    full, alive = _placed(kernel, [0, 2, 5], 6)
    assert full.shape == (5, 5, 1, 6)
    np.testing.assert_array_equal(alive, [True, False, True, False, False, True])
    for j, f in enumerate([0, 2, 5]):
        np.testing.assert_array_equal(full[..., f], kernel[..., j])
    assert not full[..., [1, 3, 4]].any()
    images = filter_images(full, alive)
    assert len(images) == 6 and all(im.shape == (5, 5) for im in images)
    np.testing.assert_array_equal(images[5], kernel[:, :, 0, 2])
    np.testing.assert_array_equal(images[2], kernel[:, :, 0, 1])
    assert all(np.isnan(images[i]).all() for i in (1, 3, 4))
    with pytest.raises(ValueError, match="an alive mask of 5 for 6 filters"):
        filter_images(full, alive[:5])


def test_filter_figure_draws_survivors_alone_as_it_draws_them_placed(tmp_path):
    import matplotlib.image

    kernel = np.linspace(-1, 1, 75, dtype=np.float32).reshape(5, 5, 1, 3)
    full, alive = _placed(kernel, [0, 2, 5], 6)
    dense = np.linspace(-2, 2, 150, dtype=np.float32).reshape(5, 5, 1, 6)
    placed = {0.0: (filter_images(dense, np.ones(6, bool)), np.ones(6, bool), np.arange(6)),
              50.0: (filter_images(full, alive), alive, np.arange(6))}
    survivors = {0.0: placed[0.0], 50.0: ([kernel[:, :, 0, j] for j in range(3)], alive, [0, 2, 5])}
    a = filter_figure(placed, tmp_path / "placed.png", title="t")
    b = filter_figure(survivors, tmp_path / "survivors.png", title="t")
    assert a == tmp_path / "placed.png"
    _png(a), _png(b)
    np.testing.assert_array_equal(matplotlib.image.imread(a), matplotlib.image.imread(b))
    # and a removed filter is really drawn differently from a live one
    everyone = {0.0: placed[0.0], 50.0: (filter_images(dense, np.ones(6, bool)), np.ones(6, bool), np.arange(6))}
    c = filter_figure(everyone, tmp_path / "everyone.png", title="t")
    assert not np.array_equal(matplotlib.image.imread(a), matplotlib.image.imread(c))


def test_pixel_figures_write_one_png_each(tmp_path):
    counts = {0.0: np.full((4, 4), 3), 90.0: pixel_connections(np.eye(16, 3), side=4)}
    dead = {0.0: np.zeros((2, 2), bool), 50.0: dead_pixels(_mlp(), side=2)}
    assert pixel_map_figure(counts, tmp_path / "p.png", "title") == tmp_path / "p.png"
    assert dead_pixel_figure(dead, tmp_path / "sub" / "d.png") == tmp_path / "sub" / "d.png"
    _png(tmp_path / "p.png"), _png(tmp_path / "sub" / "d.png")
    with pytest.raises(ValueError, match="no maps"):
        pixel_map_figure({}, tmp_path / "e.png", "title")


def test_missing_or_empty_study_writes_nothing(tmp_path):
    assert interpretability_figures(tmp_path / "absent", tmp_path / "out") == []
    (tmp_path / "empty" / "seed0").mkdir(parents=True)
    assert interpretability_figures(tmp_path / "empty", tmp_path / "out") == []
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- real studies (in process)
MLP_SIDE, LENET_SIDE = 10, 16  # the MLP reads tiny_data's 10x10 digits; lenet5's two convolutions need 16x16


def _study(root, model: ModelConfig, data):
    """A study of 1 epoch (and 1 retraining epoch, no ramp) at k = 0, 50, 90 under weight and neuron pruning,
    trained in process and laid out as main.py lays out a single-seed study: every run in ROOT/seed0/."""
    from pruning.study.run import train_run

    hyper = Hyper(model=model, train=TrainConfig(epochs=1, batch_size=64, lr=1e-2),
                  prune=PruneConfig(retrain_epochs=1, ramp_epochs=0))
    for chain in plan_study(hyper, StudyConfig(sparsities=(0, 50, 90), strategies=("weight", "neuron"), jobs=1)):
        for cfg in chain:
            result = train_run(cfg, paths.seed_dir(root, 0), data)
            assert result["status"] == "ok", f"{cfg.name}: {result.get('reason')}"
    return root


@pytest.fixture(scope="module")
def mlp_study(tmp_path_factory, tiny_data):
    """An MLP (100 -> 16 -> 8 -> 10) on 300 synthetic 10x10 digits."""
    return _study(tmp_path_factory.mktemp("mlp"), ModelConfig(hidden=(16, 8)), tiny_data)


@pytest.fixture(scope="module")
def lenet5_study(tmp_path_factory):
    """A LeNet-5 of 2 and 3 filters and 8 hidden units on 300 synthetic 16x16 digits (the smallest it reads)."""
    return _study(tmp_path_factory.mktemp("lenet5"), ModelConfig(name="lenet5", filters=(2, 3), hidden=(8,)),
                  tiny_dataset(side=LENET_SIDE))


def test_mlp_study_gives_the_pixel_figures(mlp_study, tmp_path):
    out = tmp_path / "figs"
    written = interpretability_figures(mlp_study, out)
    assert written == [out / paths.PIXELS_PNG.format(s="weight"),
                       out / paths.DEAD_PIXELS_PNG.format(s="neuron")]
    assert [p.name for p in written] == ["pixels_weight.png", "dead_pixels_neuron.png"]
    for p in written:
        _png(p)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)


def test_mlp_study_maps_have_the_exact_counts(mlp_study):
    from pruning.core.layers import load_model
    from pruning.deploy import shrink

    runs = mlp_study / "seed0"

    def kernels(name):
        k, m = shrink.expand_arrays(load_model(paths.model_file(runs, name)))
        return [a if b is None else a * b for a, b in zip(k, m)]

    pixels = MLP_SIDE * MLP_SIDE
    for name, k in (("dense", 0), ("weight_k50", 50), ("weight_k90", 90)):
        counts = pixel_connections(kernels(name)[0], side=MLP_SIDE)
        assert counts.shape == (MLP_SIDE, MLP_SIDE)
        assert int(counts.sum()) == pixels * 16 - expected_pruned(pixels * 16, k), name
    for name, units in (("neuron_k50", 16 - expected_pruned(16, 50)), ("neuron_k90", 16 - expected_pruned(16, 90))):
        full = kernels(name)
        assert full[0].shape == (pixels, 16)  # put back at full size
        assert int((full[0] != 0).any(axis=0).sum()) == units
        # neuron pruning keeps every pixel's weights to the surviving units
        assert not dead_pixels(full, side=MLP_SIDE).any()


def test_a_study_without_neuron_runs_writes_only_the_weight_figure(mlp_study, tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(mlp_study, logs)
    for name in ("neuron_k50", "neuron_k90"):
        shutil.rmtree(logs / "seed0" / name)
    (logs / "seed0" / "weight_k50" / paths.SPARSE_MODEL).write_bytes(b"not a model")  # damaged: counts as missing
    out = tmp_path / "figs"
    assert interpretability_figures(logs, out) == [out / "pixels_weight.png"]
    _png(out / "pixels_weight.png")
    # the runs of another replicate: none there
    assert interpretability_figures(logs, tmp_path / "other", seed_dir=1) == []
    # only the dense run left: no figure at all
    shutil.rmtree(logs / "seed0" / "weight_k90")
    assert interpretability_figures(logs, tmp_path / "none", seed_dir="seed0") == []


def test_lenet5_study_gives_the_filter_figures(lenet5_study, tmp_path):
    from pruning.core.layers import load_model, weight_layers

    out = tmp_path / "figs"
    written = interpretability_figures(lenet5_study, out, seed_dir=lenet5_study / "seed0")
    assert written == [out / "filters_weight.png", out / "filters_neuron.png"]
    for p in written:
        _png(p)
    runs = lenet5_study / "seed0"
    conv = weight_layers(load_model(paths.model_file(runs, "neuron_k50")))[0]
    assert conv.name == "conv1" and tuple(conv.full_shape) == (5, 5, 1, 2)
    assert len(conv.kept_units) == 2 - expected_pruned(2, 50)  # the shrunk model lost one filter
    from pruning.deploy.sparse_format import full_size_kernels, load_sparse

    full = full_size_kernels(*load_sparse(paths.sparse_model_file(runs, "neuron_k50")))[0]  # what the figure reads
    alive = full.any(axis=(0, 1, 2))
    assert full.shape == (5, 5, 1, 2) and alive.sum() == 1 and alive[conv.kept_units].all()
