"""--precision bfloat16: the hidden layers multiply in bfloat16 (Keras' mixed_bfloat16 policy) while the
weights, masks, optimizer and logits stay float32; pruned weights stay exactly zero; the setting is part
of a run's identity only when it is not the default, and the process's policy is restored after a run."""
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from pruning.config import ConfigError, Hyper, ModelConfig, PruneConfig, RunConfig, StudyConfig, TrainConfig
from pruning.study.plan import StudyError, check_existing, plan_study
from helpers import REPO, expected_pruned

HIDDEN = (24, 16)
SHAPES = [(100, 24), (24, 16)]  # the prunable kernels for 10x10 inputs


def _hyper(precision: str = "bfloat16") -> Hyper:
    return Hyper(model=ModelConfig(hidden=HIDDEN),
                 train=TrainConfig(epochs=2, batch_size=32, lr=1e-2, precision=precision),
                 prune=PruneConfig(retrain_epochs=1, ramp_epochs=0))


def test_float32_is_left_out_of_the_identity_so_older_runs_resume_and_bfloat16_is_not():
    f32, bf16 = RunConfig(_hyper("float32"), "weight", 50, "dense"), RunConfig(_hyper(), "weight", 50, "dense")
    assert "precision" not in f32.identity()["train"]
    assert bf16.identity()["train"]["precision"] == "bfloat16"
    assert f32.identity() != bf16.identity()


def test_an_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="--precision: unknown value 'float16'; choose one of float32, bfloat16"):
        TrainConfig(precision="float16")


def test_the_command_line_refuses_an_unknown_precision_with_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "main.py", "--precision", "half", "--data-source", "sample",
                           "--logdir", str(tmp_path / "logs")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "--precision" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "logs").exists()


@pytest.fixture(scope="module")
def bf16_study(tmp_path_factory, tiny_data):
    from pruning.study.run import train_run

    logdir = tmp_path_factory.mktemp("bf16") / "logs"
    hyper = _hyper()
    results = {}
    for chain in plan_study(hyper, StudyConfig(sparsities=(0, 50), strategies=("weight", "neuron"))):
        for cfg in chain:
            results[cfg.name] = train_run(cfg, logdir, tiny_data)
    return {"logdir": logdir, "hyper": hyper, "results": results, "data": tiny_data}


def test_a_bfloat16_study_finishes_and_records_its_precision(bf16_study):
    assert {n: r["status"] for n, r in bf16_study["results"].items()} == {
        "dense": "ok", "weight_k50": "ok", "neuron_k50": "ok"}
    assert all(r["config"]["hyper"]["train"]["precision"] == "bfloat16" for r in bf16_study["results"].values())


def test_the_process_policy_is_float32_again_after_a_bfloat16_run(bf16_study):
    import keras

    assert keras.mixed_precision.global_policy().name == "float32"


def _model(study, name):
    from pruning import paths
    from pruning.core.layers import load_model

    return load_model(paths.model_file(study["logdir"], name))


def test_hidden_layers_compute_in_bfloat16_on_float32_weights_and_the_logits_are_float32(bf16_study):
    model = _model(bf16_study, "weight_k50")
    from pruning.core.layers import weight_layers

    layers = weight_layers(model)
    assert [layer.dtype_policy.name for layer in layers] == ["mixed_bfloat16", "mixed_bfloat16", "float32"]
    assert all(v.dtype == "float32" for layer in layers for v in layer.weights)
    out = model(bf16_study["data"].x_test[:5])
    assert out.dtype == "float32"


def test_pruned_weights_stay_exactly_zero_after_bfloat16_training(bf16_study):
    from pruning.core.layers import weight_layers

    for layer, (rows, cols) in zip(weight_layers(_model(bf16_study, "weight_k50")), SHAPES):
        kernel, mask = (np.asarray(v) for v in (layer.kernel, layer.mask))
        assert int((mask == 0).sum()) == expected_pruned(rows * cols, 50)
        assert np.all(kernel[mask == 0] == 0.0)


def test_the_forward_pass_really_rounds_to_bfloat16_and_stays_close_to_float32(bf16_study):
    """The same weights in float32 agree with a float64 NumPy forward pass to 1e-5; in bfloat16 they differ
    (so bfloat16 is really used) by less than 3 % of the logits' scale."""
    from pruning.core.layers import numpy_forward, weight_layers
    from pruning.models import build_model

    bf16 = _model(bf16_study, "weight_k50")
    f32 = build_model(100, bf16_study["hyper"].model)
    f32.set_weights(bf16.get_weights())
    x = bf16_study["data"].x_test
    kernels = [np.asarray(layer.effective_kernel()) for layer in weight_layers(f32)]
    exact = numpy_forward(kernels, x)
    scale = np.abs(exact).max()
    assert np.abs(np.asarray(f32(x)) - exact).max() <= 1e-5 * scale
    gap = np.abs(np.asarray(bf16(x)) - exact).max()
    assert 1e-4 * scale < gap < 3e-2 * scale


def test_a_float32_study_in_a_bfloat16_log_directory_is_refused_not_mixed(bf16_study):
    other = replace(bf16_study["hyper"], train=replace(bf16_study["hyper"].train, precision="float32"))
    assert check_existing(RunConfig(bf16_study["hyper"], "none", 0), bf16_study["logdir"]) == "done"
    with pytest.raises(StudyError, match="precision"):
        check_existing(RunConfig(other, "none", 0), bf16_study["logdir"])


def test_in_float32_gives_the_same_weights_computing_in_float32(bf16_study):
    from pruning.core.layers import in_float32, numpy_forward, weight_layers

    bf16 = _model(bf16_study, "weight_k50")
    twin = in_float32(bf16)
    assert {layer.dtype_policy.name for layer in twin.layers} == {"float32"}
    assert in_float32(twin) is twin
    x = bf16_study["data"].x_test
    exact = numpy_forward([np.asarray(layer.effective_kernel()) for layer in weight_layers(bf16)], x)
    assert np.abs(np.asarray(twin(x)) - exact).max() <= 1e-5 * np.abs(exact).max()


def test_the_benchmark_compares_a_bfloat16_study_with_its_float32_engines_without_a_false_alarm(bf16_study):
    """Its sparse and shrunk engines (float32) agree with the masked model's float32 twin to 1e-3."""
    from pruning.deploy.bench import TOLERANCE, latency_rows

    rows = latency_rows(bf16_study["logdir"], bf16_study["data"].x_test, batches=(8,), repeats=1, log=lambda s: None)
    assert [r["run"] for r in rows] == ["dense", "neuron_k50", "weight_k50"]
    assert all(r[f"{k}_max_abs_diff"] <= TOLERANCE[k] for r in rows for k in TOLERANCE)


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx512f avx512_bf16", True), ("fpu sse2 amx_tile amx_bf16", True), ("fpu sse2 avx2 fma", False)])
def test_bfloat16_units_are_read_from_the_cpu_flags(tmp_path, flags, expected):
    from pruning.tfsetup import cpu_has_bfloat16

    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_has_bfloat16(str(info)) is expected
    assert cpu_has_bfloat16(str(tmp_path / "missing")) is None


def test_bfloat16_on_a_cpu_without_bfloat16_units_gets_a_note_and_float32_never_does(tmp_path, capsys):
    from pruning.cli import _precision_notice

    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu sse2 avx2 fma\n")
    _precision_notice("bfloat16", str(info))
    assert "TensorFlow emulates bfloat16 products there, usually more slowly than float32" in capsys.readouterr().out
    _precision_notice("float32", str(info))
    _precision_notice("bfloat16", str(tmp_path / "missing"))
    assert capsys.readouterr().out == ""


def test_a_bfloat16_cnn_convolves_in_bfloat16_keeps_pruned_filters_at_zero_and_gives_float32_logits():
    import keras

    from pruning.core import callbacks
    from pruning.core.layers import weight_layers
    from pruning.models import build_model
    from pruning.study.run import compile_model, precision
    from helpers import tiny_dataset

    data = tiny_dataset(200, 50, side=20)
    cfg = ModelConfig(name="lenet5", filters=(4, 6), hidden=(16,))
    keras.utils.set_random_seed(0)
    with precision("bfloat16"):
        model = build_model(data.input_dim, cfg)
    assert [layer.dtype_policy.name for layer in weight_layers(model)] == ["mixed_bfloat16"] * 3 + ["float32"]
    compile_model(model, 1e-2, 0.0, 14)
    masking = callbacks.MaskingCallback("neuron", 50.0)
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=2, verbose=0, callbacks=[masking])
    conv1 = weight_layers(model)[0]
    dead = np.asarray(conv1.mask).reshape(-1, 4).max(axis=0) == 0
    assert int(dead.sum()) == 2  # half of conv1's 4 filters
    assert np.all(np.asarray(conv1.kernel).reshape(-1, 4)[:, dead] == 0.0)
    assert model(data.x_test[:3]).dtype == "float32"
