"""The whole study on a network of the user's own (issue 23): ``main.py --model FILE.py:FUNCTION --dataset
npz:PATH`` (and ``--model FILE.keras``, and ``train.py``) builds it for the data's example shape and classes,
trains it masked on examples in their shape, prunes it by weights and by channel groups, saves every run as
plain Keras layers (shrunk when channels were removed) whose outputs are the masked network's, resumes,
and picks the loss for a softmax output. What does not apply says so: exit 2, one paragraph."""
import json

import numpy as np
import pytest

import pruning  # noqa: F401  (sets KERAS_BACKEND)
from helpers import REPO
from pruning import cli, files, models, paths
from pruning.config import ModelConfig

FILE = REPO / "tests" / "user_models.py"
SHAPE, CLASSES = (8, 8, 1), 4
STUDY = ["--epochs", "2", "--retrain-epochs", "1", "--batch-size", "32", "--lr", "0.01"]


pytestmark = pytest.mark.usefixtures("fresh_model_registry")  # networks registered by a test do not outlive it


def quadrants(path, n_train=300, n_test=100, seed=0):
    """An easy 4-class set of 8x8x1 images: the class is the quadrant that is bright."""
    rng = np.random.default_rng(seed)

    def part(n):
        y = rng.integers(0, CLASSES, n)
        x = rng.uniform(0, 0.3, (n, *SHAPE)).astype(np.float32)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, 4 * r:4 * r + 4, 4 * q:4 * q + 4, 0] += 0.7
        return x, y

    (xtr, ytr), (xte, yte) = part(n_train), part(n_test)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return path


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return quadrants(tmp_path_factory.mktemp("data") / "quadrants.npz")


@pytest.fixture(scope="module")
def study(tmp_path_factory, npz):
    """One study of tests/user_models.py:residual_cnn (biases, BatchNormalization, a residual Add) at k = 0, 50,
    90 with weight and neuron, in a worker process of the local engine (--jobs 1)."""
    logs = tmp_path_factory.mktemp("study") / "logs"
    argv = ["--model", f"{FILE}:residual_cnn", "--dataset", f"npz:{npz}", "--sparsities", "0,50,90",
            "--strategies", "weight,neuron", "--jobs", "1", "--logdir", str(logs), *STUDY]
    rc = cli.study_main_guarded(argv)
    return {"rc": rc, "logs": logs, "argv": argv, "seed0": paths.seed_dir(logs, 0)}


def _result(seed_dir, name):
    return files.read_json(paths.result_file(seed_dir, name))


def _x_test(npz):
    return np.load(npz)["x_test"]


def _load_masked(path):
    from pruning.report.results import load_parent_model

    return load_parent_model(path)


def _plain_keras_only(model):
    """Every layer is a class of Keras itself (no masked twin, no layer of this package)."""
    return all(type(layer).__module__.startswith("keras.") for layer in model.layers)


def test_the_study_runs_every_run_and_writes_the_table(study):
    assert study["rc"] == 0
    with open(study["logs"] / "results.csv") as f:
        rows = {(r.split(",")[1], r.split(",")[2]): r for r in f.read().splitlines()[1:]}
    assert set(rows) == {(s, k) for s in ("weight", "neuron") for k in ("0", "50", "90")}
    assert all(",ok," in r for r in rows.values())
    for name in ("dense", "weight_k50", "weight_k90", "neuron_k50", "neuron_k90"):
        r = _result(study["seed0"], name)
        assert r["status"] == "ok" and r["config"]["hyper"]["model"]["name"] == f"{FILE}:residual_cnn"
        assert r["data"]["input_shape"] == list(SHAPE) and r["data"]["num_classes"] == CLASSES
        # the files it names are those it wrote (no model.sparse: the sparse encoding is the study's MLPs')
        assert r["files"] == [paths.MODEL, paths.MASKED_MODEL] and set(r["checks"]) == set(r["files"])
        assert not (paths.run_dir(study["seed0"], name) / paths.SPARSE_MODEL).exists()
        assert np.isfinite(r["test_loss"]) and len(r["history"]["loss"]) == (2 if name == "dense" else 1)


def test_units_kept_counts_the_channels_the_shrunk_network_keeps(study):
    """stem and block (8 filters each, one group through the residual Add) and hidden (16 units): neuron at 90 %
    removes round-half-up 7 of 8 and 14 of 16, so 1 + 1 + 2 of 32 hidden channels are kept; weight pruning
    keeps every channel. The output layer's 4 units are listed last and not counted."""
    import csv

    with open(study["logs"] / "results.csv") as f:
        rows = {(r["strategy"], r["sparsity"]): r for r in csv.DictReader(f)}
    assert float(rows[("neuron", "90")]["units_kept"]) == 4 / 32
    assert float(rows[("neuron", "50")]["units_kept"]) == 16 / 32
    assert float(rows[("weight", "90")]["units_kept"]) == 1.0
    size = _result(study["seed0"], "neuron_k90")["size"]
    assert size["units"] == {"stem": 8, "block": 8, "hidden": 16, "out": 4}
    assert size["units_alive"] == {"stem": 1, "block": 1, "hidden": 2, "out": 4}


def test_weight_runs_prune_every_masked_kernel_to_k(study):
    r = _result(study["seed0"], "weight_k90")
    # stem 3x3x1x8 = 72, block 3x3x8x8 = 576, hidden (4*4*8)x16 = 2048: round half up of 90 % of each
    assert r["sparsity"]["per_layer"] == pytest.approx({"stem": 65 / 72, "block": 518 / 576, "hidden": 1843 / 2048})
    assert r["config"]["parent"] == "weight_k50"  # --iterative: from the run below, its masks kept
    assert r["size"]["saved_params"] == _result(study["seed0"], "dense")["size"]["saved_params"]  # stripped


def test_a_neuron_run_is_saved_as_a_smaller_plain_keras_network_with_the_masked_networks_outputs(study, npz):
    import keras

    seed0 = study["seed0"]
    r = _result(seed0, "neuron_k50")
    # the stem + block + residual group (8 channels) and hidden (16 units) lose half of their channels
    assert r["sparsity"]["per_layer"] == {"stem": 0.5, "block": 0.5, "hidden": 0.5}
    plain = keras.models.load_model(paths.model_file(seed0, "neuron_k50"), compile=False)
    dense = keras.models.load_model(paths.model_file(seed0, paths.DENSE), compile=False)
    assert _plain_keras_only(plain) and _plain_keras_only(dense)
    assert plain.get_layer("stem").filters == 4 and plain.get_layer("hidden").units == 8
    assert plain.count_params() == r["size"]["saved_params"] < dense.count_params() == 2860
    assert 0 <= r["shrink_max_logit_diff"] < 1e-4
    masked = _load_masked(paths.run_dir(seed0, "neuron_k50") / paths.MASKED_MODEL)
    assert not _plain_keras_only(masked)
    x = _x_test(npz)
    diff = np.abs(plain.predict(x, verbose=0) - masked.predict(x, verbose=0)).max()
    assert diff < 1e-4
    # the recorded accuracy is the saved network's
    acc = float(np.mean(np.argmax(plain.predict(x, verbose=0), axis=-1) == np.load(npz)["y_test"]))
    assert acc == pytest.approx(r["test_accuracy"], abs=1e-9)


def test_pruning_alone_is_measured_on_the_dense_network_for_every_pruned_run(study):
    seed0 = study["seed0"]
    for name in ("weight_k50", "weight_k90", "neuron_k50", "neuron_k90"):
        r = _result(seed0, name)
        assert 0 <= r["oneshot_test_accuracy"] <= 1 and 0 <= r["pruned_test_accuracy"] <= 1
    # k50 starts from the dense run: what pruning alone does is the dense network pruned to 50 %
    r = _result(seed0, "neuron_k50")
    assert r["oneshot_test_accuracy"] == r["pruned_test_accuracy"]


def test_the_rerun_resumes_without_training(study, capsys):
    capsys.readouterr()
    assert cli.study_main_guarded(study["argv"]) == 0
    out = capsys.readouterr().out
    assert "resuming: 5 finished run(s) kept" in out and "started" not in out


def test_train_py_prunes_the_same_network_from_the_studys_dense_run(study, npz, capsys):
    import keras

    argv = ["--model", f"{FILE}:residual_cnn", "--dataset", f"npz:{npz}", "--strategy", "random_neuron",
            "--sparsity", "70", "--logdir", str(study["logs"]), *STUDY]
    assert cli.train_main(argv) == 0
    out = capsys.readouterr().out
    assert "random_neuron_k70: test accuracy" in out and "dense: started" not in out  # the study's dense run
    r = _result(study["seed0"], "random_neuron_k70")
    assert r["status"] == "ok" and r["config"]["parent"] == "dense"
    assert r["sparsity"]["per_layer"]["stem"] == pytest.approx(6 / 8)  # round half up of 70 % of 8 channels
    plain = keras.models.load_model(paths.model_file(study["seed0"], "random_neuron_k70"), compile=False)
    assert _plain_keras_only(plain) and plain.get_layer("stem").filters == 2 and r["shrink_max_logit_diff"] < 1e-4


def test_a_keras_file_model_runs_the_study(tmp_path, npz):
    import keras

    import user_models

    keras.utils.set_random_seed(5)
    saved = tmp_path / "mine.keras"
    user_models.residual_cnn(SHAPE, CLASSES).save(saved)
    logs = tmp_path / "logs"
    argv = ["--model", str(saved), "--dataset", f"npz:{npz}", "--sparsities", "0,50", "--strategies", "neuron",
            "--jobs", "1", "--logdir", str(logs), *STUDY]
    assert cli.study_main_guarded(argv) == 0
    seed0 = paths.seed_dir(logs, 0)
    r = _result(seed0, "neuron_k50")
    assert r["status"] == "ok" and r["config"]["hyper"]["model"]["name"] == str(saved)
    plain = keras.models.load_model(paths.model_file(seed0, "neuron_k50"), compile=False)
    assert _plain_keras_only(plain) and plain.get_layer("hidden").units == 8 and r["shrink_max_logit_diff"] < 1e-4


def test_a_softmax_output_is_trained_and_measured_on_probabilities(tmp_path, npz):
    """tests/user_models.py:softmax_mlp ends in Dense(softmax): the loss takes its outputs as probabilities
    (from_logits=False), so it is the plain cross-entropy of what the network outputs, and it learns."""
    import keras

    from pruning.core.training import compile_model, evaluate

    logs = tmp_path / "logs"
    argv = ["--model", f"{FILE}:softmax_mlp", "--dataset", f"npz:{npz}", "--strategy", "weight", "--sparsity",
            "0", "--logdir", str(logs), "--epochs", "3", "--batch-size", "32", "--lr", "0.01"]
    assert cli.train_main(argv) == 0
    r = _result(paths.seed_dir(logs, 0), "dense")
    assert all(np.isfinite(r["history"]["loss"])) and r["history"]["loss"][-1] < r["history"]["loss"][0]
    assert r["test_accuracy"] > 0.6  # chance: 0.25
    model = keras.models.load_model(paths.model_file(paths.seed_dir(logs, 0), "dense"), compile=False)
    data = np.load(npz)
    probs = model.predict(data["x_test"], verbose=0)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)  # probabilities, not logits
    want = -np.mean(np.log(probs[np.arange(len(probs)), data["y_test"]]))
    assert r["test_loss"] == pytest.approx(want, rel=1e-4)  # the cross-entropy of the probabilities themselves
    compile_model(model, 1e-3, 0.0, 10)
    assert model.loss.get_config()["from_logits"] is False
    assert evaluate(model, data["x_test"], data["y_test"].astype(np.int64))[0] == pytest.approx(want, rel=1e-4)


def test_graph_masks_are_computed_applied_and_restored_exactly(npz):
    """compute_model_masks / masks_applied on a prunable network: the masks graph.prune leaves, applied
    inside the block, every weight and mask exactly as before after it."""
    import keras

    from pruning.core.callbacks import compute_model_masks, masks_applied

    keras.utils.set_random_seed(0)
    model = models.build_model(64, ModelConfig(name=f"{FILE}:residual_cnn"), SHAPE, CLASSES)
    before = [np.array(w) for w in model.weights]
    mask_set = compute_model_masks(model, "neuron", 50)
    assert all(np.array_equal(a, np.array(w)) for a, w in zip(before, model.weights))  # not changed
    assert mask_set.masks["stem_bn/channel_mask"].sum() == 4 and mask_set.masks["hidden/bias_mask"].sum() == 8
    with masks_applied(model, mask_set):
        assert pruning.measure_sparsity(model)["per_layer"] == {"stem": 0.5, "block": 0.5, "hidden": 0.5}
        assert np.array(model.get_layer("stem").bias)[mask_set.masks["stem/bias_mask"] == 0].tolist() == [0.0] * 4
    assert all(np.array_equal(a, np.array(w)) for a, w in zip(before, model.weights))  # restored
    again = keras.models.clone_model(model)
    again.set_weights([np.array(w) for w in model.weights])
    pruning.prune(again, "neuron", 50)
    assert all(np.array_equal(np.array(w), mask_set.masks[f"{l.name}/{w.name}"]) for l in again.layers
               for w in l.weights if w.name.endswith("mask"))


def test_the_data_is_read_in_its_shape_by_a_network_of_your_own_only(tiny_data, tmp_path):
    from pruning import data as pdata

    ds = pdata.load_npz(quadrants(tmp_path / "q.npz", 20, 8))
    view = models.model_data(ModelConfig(name=f"{FILE}:residual_cnn"), ds)
    assert view.x_train.shape == (20, *SHAPE) and view.x_test.shape == (8, *SHAPE)
    assert np.shares_memory(view.x_train, ds.x_train) and view.describe() == ds.describe()
    assert view.input_dim == ds.input_dim == 64 and view.as_shaped() is view and ds.as_shaped() is view
    assert models.model_data(ModelConfig(), tiny_data) is tiny_data  # the MLP: flat, the data set itself


@pytest.mark.parametrize("extra, needle", [
    (["--protocol", "lottery"], "--protocol lottery does not train a network of your own"),
    (["--sparsify", "l1"], "--sparsify l1 does not apply to a network of your own"),
    (["--strategies", "global_neuron"], "--strategies global_neuron ranks units over all layers together"),
    (["--strategies", "weight,student"], "a network of your own has no builder whose widths follow --hidden"),
])
def test_what_does_not_apply_to_a_network_of_your_own_exits_2_before_anything_is_written(extra, needle, tmp_path,
                                                                                          npz, capsys):
    logs = tmp_path / "logs"
    with pytest.raises(SystemExit) as e:
        cli.study_main_guarded(["--model", f"{FILE}:residual_cnn", "--dataset", f"npz:{npz}", "--logdir", str(logs),
                                *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and not logs.exists()


def test_more_than_ten_classes_are_fine_for_a_network_that_outputs_them(tmp_path, capsys):
    """The built-in networks' 10 outputs stop such data; a network of your own sized to the classes does not,
    and one that is not says what to fix."""
    from pruning import data as pdata
    from pruning.config import Hyper

    rng = np.random.default_rng(0)
    path = tmp_path / "twelve.npz"
    np.savez(path, x_train=rng.uniform(size=(24, 4, 4, 1)).astype(np.float32), y_train=np.arange(24) % 12,
             x_test=rng.uniform(size=(12, 4, 4, 1)).astype(np.float32), y_test=np.arange(12))
    ds = pdata.load_npz(path)
    hyper = Hyper(model=ModelConfig(name=f"{FILE}:softmax_mlp"))
    models.check_input(ds.input_dim, hyper.model, ds.input_shape, ds.num_classes)
    cli._check_runner_support(hyper, ds)  # no error: 12 outputs for 12 classes
    logs = tmp_path / "logs"
    assert cli.study_main_guarded(["--model", f"{FILE}:fixed_classes", "--dataset", f"npz:{path}",
                                   "--logdir", str(logs)]) == 2
    assert "outputs shape (7,), but the data has 12 classes" in capsys.readouterr().err and not logs.exists()


def test_result_json_names_only_files_that_exist(study):
    for name in ("dense", "neuron_k90"):
        r = json.loads(paths.result_file(study["seed0"], name).read_text())
        assert all((paths.run_dir(study["seed0"], name) / f).is_file() for f in r["files"])


def test_a_network_with_nothing_to_prune_exits_2(tmp_path, npz, capsys):
    """tests/user_models.py:softmax_layer has the output layer alone: nothing pruning.prunable masks."""
    logs = tmp_path / "logs"
    assert cli.study_main_guarded(["--model", f"{FILE}:softmax_layer", "--dataset", f"npz:{npz}",
                                   "--logdir", str(logs)]) == 2
    err = capsys.readouterr().err
    assert f"--model {FILE}:softmax_layer has nothing to prune" in err and not logs.exists()


def test_exclude_leaves_a_layer_without_a_rule_alone_and_the_study_runs(tmp_path, npz):
    """tests/user_models.py:with_lambda has a Lambda between its hidden Dense and the output: refused without
    --exclude (the message names the flag), run with --exclude double, which is part of every run's identity."""
    logs = tmp_path / "logs"
    argv = ["--model", f"{FILE}:with_lambda", "--dataset", f"npz:{npz}", "--sparsities", "0,50",
            "--strategies", "weight", "--jobs", "1", "--logdir", str(logs), *STUDY]
    assert cli.study_main_guarded(argv) == 2 and not logs.exists()
    assert cli.study_main_guarded([*argv, "--exclude", "double"]) == 0
    seed0 = paths.seed_dir(logs, 0)
    r = _result(seed0, "weight_k50")
    assert r["status"] == "ok" and r["config"]["hyper"]["model"]["exclude"] == ["double"]
    # the hidden Dense is still pruned, to exactly half of its 64 x 5 weights
    assert r["sparsity"]["per_layer"]["d"] == pytest.approx(0.5)
    from pruning.config import RunConfig

    assert RunConfig.from_dict(r["config"]).identity()["model"]["exclude"] == ["double"]


def test_the_lambda_without_exclude_names_the_flag(tmp_path, npz, capsys):
    logs = tmp_path / "logs"
    assert cli.study_main_guarded(["--model", f"{FILE}:with_lambda", "--dataset", f"npz:{npz}",
                                   "--logdir", str(logs)]) == 2
    err = capsys.readouterr().err
    assert "layer 'double' of class Lambda has no channel rule" in err and "--exclude double" in err
    assert "Traceback" not in err and not logs.exists()


@pytest.mark.parametrize("model, needle", [
    (f"{FILE}:residual_cnn", "--exclude nope names layers the model does not have (nope)"),
    ("mlp", "--exclude applies to a network of your own"),
])
def test_a_bad_exclude_exits_2_before_anything_is_written(model, needle, tmp_path, npz, capsys):
    logs = tmp_path / "logs"
    data = ["--dataset", f"npz:{npz}"] if model != "mlp" else []
    with pytest.raises(SystemExit) as e:
        rc = cli.study_main_guarded(["--model", model, *data, "--exclude", "nope", "--logdir", str(logs)])
        raise SystemExit(rc)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and not logs.exists()


def test_bfloat16_trains_a_network_of_your_own_and_saves_it_shrunk(tmp_path, npz):
    """--precision bfloat16 on tests/user_models.py:residual_cnn: the neuron run trains under the mixed policy
    and saves plain Keras layers, shrunk (hidden 16 -> 8 units at 50 %), that keep the policy."""
    import keras

    logs = tmp_path / "logs"
    argv = ["--model", f"{FILE}:residual_cnn", "--dataset", f"npz:{npz}", "--sparsities", "0,50",
            "--strategies", "neuron", "--jobs", "1", "--precision", "bfloat16", "--logdir", str(logs), *STUDY]
    assert cli.study_main_guarded(argv) == 0
    seed0 = paths.seed_dir(logs, 0)
    r = _result(seed0, "neuron_k50")
    assert r["status"] == "ok" and r["config"]["hyper"]["train"]["precision"] == "bfloat16"
    plain = keras.models.load_model(paths.model_file(seed0, "neuron_k50"), compile=False)
    assert _plain_keras_only(plain) and plain.get_layer("hidden").units == 8
    assert plain.get_layer("hidden").dtype_policy.name == "mixed_bfloat16"
    assert r["size"]["units_alive"]["hidden"] == 8
