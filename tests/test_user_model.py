"""--model FILE.py:FUNCTION and --model FILE.keras: a network of the user's own, registered on the fly,
built prunable once per seed (fresh weights: the same for one seed, different for two), pickled to
workers as a path; each problem is one paragraph and exit 2 with nothing written."""
import dataclasses
import json
import pickle

import numpy as np
import pytest

import pruning  # noqa: F401  (sets KERAS_BACKEND)
from helpers import REPO
from pruning import cli, models
from pruning.config import ConfigError, ModelConfig, check_fits

FILE = REPO / "tests" / "user_models.py"
SHAPE, CLASSES = (8, 8, 3), 4


pytestmark = pytest.mark.usefixtures("fresh_model_registry")  # networks registered by a test do not outlive it


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=rng.integers(0, 256, (40, *SHAPE)).astype(np.uint8), y_train=np.arange(40) % CLASSES,
             x_test=rng.integers(0, 256, (12, *SHAPE)).astype(np.uint8), y_test=np.arange(12) % CLASSES)
    return path


def _build(name, seed):
    import keras

    keras.utils.set_random_seed(seed)
    return models.build_model(int(np.prod(SHAPE)), ModelConfig(name=name), SHAPE, CLASSES)


def _weights(model):
    return [w.numpy().copy() for w in model.weights if "mask" not in w.path]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(_weights(a), _weights(b)))


def test_a_python_builder_is_built_prunable_per_seed():
    name = f"{FILE}:small_cnn"
    a, again, other = _build(name, 1), _build(name, 1), _build(name, 2)
    assert _same(a, again) and not _same(a, other)
    kinds = {layer.name: type(layer).__name__ for layer in a.layers}
    assert kinds["conv"] == "PrunableConv2D" and kinds["bn"] == "PrunableBatchNormalization"
    assert kinds["out"] == "Dense"  # the output layer is left unpruned
    assert a.input_shape == (None, *SHAPE) and a.output_shape == (None, CLASSES)
    assert pruning.strip(a).count_params() == 3 * 3 * 3 * 4 + 4 + 4 * 4 + 3 * 3 * 4 * CLASSES + CLASSES  # 488
    spec = models.get_model(name)
    assert spec.user and spec.granularities == ("weight", "unit") and ModelConfig(name=name).hidden == ()


def test_a_keras_file_gives_its_architecture_freshly_initialised_per_seed(tmp_path):
    import keras

    saved = _build(f"{FILE}:small_cnn", 7)
    plain = pruning.strip(saved)
    # a fixed initializer seed in the saved file must not fix every run's weights
    plain.get_layer("out").kernel_initializer = keras.initializers.GlorotUniform(seed=3)
    path = tmp_path / "mine.keras"
    plain.save(path)
    a, again, other = _build(str(path), 1), _build(str(path), 1), _build(str(path), 2)
    assert _same(a, again) and not _same(a, other)
    assert not np.array_equal(a.get_layer("conv").kernel.numpy(), plain.get_layer("conv").kernel.numpy())
    assert [type(layer).__name__ for layer in a.layers][1:3] == ["PrunableConv2D", "PrunableBatchNormalization"]
    assert a.count_params() > plain.count_params()  # the masks


def test_the_spec_pickles_as_strings_for_worker_processes():
    name = f"{FILE}:small_cnn"
    cfg = ModelConfig(name=name)
    specs = pickle.loads(pickle.dumps(models.snapshot()))
    models.MODELS.pop(name)
    models.restore(specs)
    assert models.get_model(name).builder == "pruning.models.user:build_prunable"
    again = ModelConfig(**{**dataclasses.asdict(cfg), "hidden": [], "filters": []})  # as RunConfig.from_dict does
    assert again == cfg and name not in models.model_names()


def test_outputs_probabilities_finds_a_softmax_output():
    from pruning.models.user import load_user_model, outputs_probabilities

    got = {fn: outputs_probabilities(load_user_model(f"{FILE}:{fn}", SHAPE, CLASSES))
           for fn in ("small_cnn", "softmax_mlp", "softmax_layer")}
    assert got == {"small_cnn": False, "softmax_mlp": True, "softmax_layer": True}


def test_students_do_not_apply_to_a_network_of_your_own():
    cfg = ModelConfig(name=f"{FILE}:small_cnn")
    check_fits(cfg, ["weight", "neuron", "global_weight"])
    with pytest.raises(ConfigError, match="a network of your own has no builder whose widths follow --hidden"):
        check_fits(cfg, ["weight", "student"])


# --------------------------------------------------------------------------- each problem: exit 2, nothing written
def _bad_keras(tmp_path):
    (tmp_path / "broken.keras").write_text("not a zip")
    return str(tmp_path / "broken.keras")


USAGE = {  # argparse errors (SystemExit 2): found while the flags are read
    "missing file": (lambda t: str(t / "nets.py") + ":build", "nets.py does not exist"),
    "missing keras file": (lambda t: str(t / "gone.keras"), "gone.keras does not exist"),
    "not a function name": (lambda t: f"{FILE}:not-a-name", "is not a Python function name"),
    "--hidden": (lambda t: f"{FILE}:small_cnn", "--hidden does not apply to --model"),
    "--filters": (lambda t: f"{FILE}:small_cnn", "--filters does not apply to --model"),
    "students": (lambda t: f"{FILE}:small_cnn", "a network of your own has no builder whose widths follow --hidden"),
}
EXTRA = {"--hidden": ["--hidden", "10"], "--filters": ["--filters", "4"], "students": ["--strategies", "weight,student"]}


@pytest.mark.parametrize("case", USAGE)
def test_each_usage_problem_exits_2(case, tmp_path, npz, capsys):
    model, message = USAGE[case]
    logs = tmp_path / "logs"
    with pytest.raises(SystemExit) as e:
        cli.study_main_guarded(["--model", model(tmp_path), "--dataset", f"npz:{npz}", "--logdir", str(logs),
                                *EXTRA.get(case, [])])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err, err
    assert not logs.exists()


BUILD = {  # found when the network is first built, before anything is written (exit 2)
    "no such function": (f"{FILE}:nope", "defines no function nope (its functions: fixed_classes"),
    "raises": (f"{FILE}:raises", "raises(input_shape=(8, 8, 3), num_classes=4) raised RuntimeError: widths do not "
                                 "divide"),
    "not a model": (f"{FILE}:not_a_model", "returned str, not a keras.Model"),
    "input shape": (f"{FILE}:fixed_shape", "reads examples of shape (5, 5, 1), but the data's examples have shape "
                                           "(8, 8, 3)"),
    "classes": (f"{FILE}:fixed_classes", "outputs shape (7,), but the data has 4 classes"),
    "unsupported layer": (f"{FILE}:with_lambda", "layer 'double' of class Lambda has no channel rule"),
    "broken .keras": (None, "does not load with keras.models.load_model"),
}


@pytest.mark.parametrize("case", BUILD)
def test_each_build_problem_is_one_paragraph_exit_2_and_nothing_written(case, tmp_path, npz, capsys):
    model, message = BUILD[case]
    model = model or _bad_keras(tmp_path)
    logs = tmp_path / "logs"
    rc = cli.study_main_guarded(["--model", model, "--dataset", f"npz:{npz}", "--logdir", str(logs),
                                 "--strategies", "weight"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert err.startswith("error: --model ") and err.strip().count("\n") == 0
    assert not logs.exists()


def test_the_built_in_models_are_built_as_before(tiny_data):
    """build_model(input_dim, cfg) keeps its form; a data set of other than 10 classes sizes their output."""
    import keras

    keras.utils.set_random_seed(0)
    mlp = models.build_model(100, ModelConfig(hidden=(8,)))
    assert mlp.output_shape == (None, 10)
    assert models.build_model(100, ModelConfig(hidden=(8,)), (100,), 3).output_shape == (None, 3)
    assert models.model_inputs(ModelConfig(hidden=(8,)), tiny_data, tiny_data.x_test) is tiny_data.x_test


def test_benchmark_refuses_a_study_of_a_network_of_your_own(tmp_path, capsys):
    """benchmark.py's sparse engine runs the study's MLPs only: a run of --model FILE.py:FUNCTION says so."""
    import json

    run = tmp_path / "logs" / "dense"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"run": "dense", "status": "ok", "config": {
        "strategy": "none", "sparsity": 0.0,
        "hyper": {"model": {"name": f"{FILE}:small_cnn", "hidden": [], "filters": []}, "prune": {"protocol": "retrain"}}}}))
    with pytest.raises(SystemExit) as e:
        cli.benchmark_main(["--logdir", str(tmp_path / "logs")])
    assert e.value.code == 2
    assert f"(--model {FILE}:small_cnn); benchmark.py times the sparse inference engine" in capsys.readouterr().err


def test_a_valid_network_of_your_own_is_trained_by_the_study(tmp_path, npz, capsys):
    """Everything is checked (file, function, shape, classes); then the study trains it (issue 23; the
    details in tests/test_user_study.py): every run finished, saved as plain Keras layers."""
    import keras

    logs = tmp_path / "logs"
    rc = cli.study_main_guarded(["--model", f"{FILE}:small_cnn", "--dataset", f"npz:{npz}", "--logdir", str(logs),
                                 "--epochs", "1", "--retrain-epochs", "1", "--sparsities", "0,50",
                                 "--strategies", "weight,neuron", "--jobs", "1"])
    assert rc == 0, capsys.readouterr().err
    seed0 = logs / "seed0"
    for name in ("dense", "weight_k50", "neuron_k50"):
        r = json.loads((seed0 / name / "result.json").read_text())
        assert r["status"] == "ok" and r["files"] == ["model.keras", "masked.keras"]
    small = keras.models.load_model(seed0 / "neuron_k50" / "model.keras", compile=False)
    assert small.get_layer("conv").filters == 2 and type(small.get_layer("conv")) is keras.layers.Conv2D


def test_a_fresh_process_builds_the_network_from_the_pickled_registry(tmp_path):
    """What a spawned worker does: restore the registry it was handed, then build by name."""
    import subprocess
    import sys

    name = f"{FILE}:small_cnn"
    ModelConfig(name=name)  # registers it here
    (tmp_path / "specs.pkl").write_bytes(pickle.dumps(models.snapshot()))
    code = (f"import pickle, keras; from pruning import models; from pruning.config import ModelConfig; "
            f"models.restore(pickle.load(open({str(tmp_path / 'specs.pkl')!r}, 'rb'))); "
            f"keras.utils.set_random_seed(1); "
            f"m = models.build_model(192, ModelConfig(name={name!r}), (8, 8, 3), 4); "
            f"print(type(m.get_layer('conv')).__name__, m.get_layer('conv').kernel.numpy().sum())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path),
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
                         timeout=300)
    assert out.returncode == 0, out.stderr
    kind, total = out.stdout.split()
    here = _build(name, 1).get_layer("conv").kernel.numpy().sum()
    assert kind == "PrunableConv2D" and float(total) == pytest.approx(float(here), abs=1e-6)
