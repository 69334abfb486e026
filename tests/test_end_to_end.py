"""The scripts as a user runs them, on synthetic IDX files: main.py (a study, then its resume)
and plotting.py. These are the suite's only slow tests: one subprocess each."""
import csv
import re
import shutil

import numpy as np
import pytest

from pruning import paths
from helpers import expected_pruned, expected_weight_sparsity, prunable_shapes, run_script

# widths whose every k% below is a whole number of weights and of units in every layer,
# so the measured weight_sparsity is exactly 0.5 and 0.9
HIDDEN = "40,40,20,10"
RUNS = ("dense", "weight_k50", "weight_k90", "neuron_k50", "neuron_k90")
PROGRESS = re.compile(r"^\[\d+/\d+\] \w+: (started|epoch)", re.M)  # a line of a run being trained
FIGURES = ("accuracy_vs_epoch_weight.png", "accuracy_vs_epoch_neuron.png", "accuracy_vs_sparsity_weight.png",
           "accuracy_vs_sparsity_neuron.png", "compare_train.png", "compare_test.png", "oneshot_vs_retrained.png",
           "accuracy_vs_effective_sparsity.png", "accuracy_vs_parameters.png", "pixels_weight.png",
           "dead_pixels_neuron.png")


def _study_args(root):
    return ["--data-dir", root / "data", "--hidden", HIDDEN, "--epochs", "2", "--retrain-epochs", "1",
            "--sparsities", "0,50,90", "--batch-size", "32", "--lr", "0.01", "--retrain-lr", "0.01",
            "--logdir", root / "logs"]


@pytest.fixture(scope="module")
def study(tmp_path_factory, mnist_dir):
    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(mnist_dir, root / "data")
    proc, seconds = run_script("main.py", *_study_args(root), timeout=200, cwd=root)
    # logs: the study's root (results.csv, summary.csv, plots/); runs: its one replicate, seed0/
    return {"root": root, "proc": proc, "seconds": seconds, "logs": root / "logs", "runs": root / "logs" / "seed0"}


def _csv(logs):
    with open(paths.results_csv(logs), newline="") as f:
        return list(csv.DictReader(f))


def test_main_exits_0_and_reports_the_data_source(study):
    proc = study["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # TensorFlow's start-up lines (3 workers: dense, weight, neuron) are hidden without --verbose
    assert proc.stderr == "", proc.stderr
    assert f"data: idx:{(study['root'] / 'data').resolve()} (600 train / 200 test)" in proc.stdout
    assert f"figures: {len(FIGURES)} in" in proc.stdout
    for name in RUNS:
        assert f"{name}: done" in proc.stdout
    assert len(PROGRESS.findall(proc.stdout)) == 5 + 2 + 4  # 5 starts, 2 dense epochs, 4 retraining epochs


def test_results_csv_has_one_row_per_strategy_and_sparsity_with_exact_sparsity(study):
    rows = _csv(study["logs"])
    for column in ("strategy", "sparsity", "oneshot_test_accuracy", "test_accuracy", "train_accuracy",
                   "weight_sparsity", "status", "epochs", "run", "parent"):
        assert column in rows[0], column
    assert [(r["strategy"], r["sparsity"], r["run"], r["parent"], r["epochs"]) for r in rows] == [
        ("weight", "0", "dense", "", "2"), ("weight", "50", "weight_k50", "dense", "1"),
        ("weight", "90", "weight_k90", "weight_k50", "1"),
        ("neuron", "0", "dense", "", "2"), ("neuron", "50", "neuron_k50", "dense", "1"),
        ("neuron", "90", "neuron_k90", "neuron_k50", "1")]
    assert [r["weight_sparsity"] for r in rows] == ["0", "0.5", "0.9"] * 2
    assert all(r["status"] == "ok" for r in rows)
    for r in rows:
        for key in ("oneshot_test_accuracy", "test_accuracy", "train_accuracy"):
            assert 0.0 <= float(r[key]) <= 1.0
        if r["parent"] in ("", "dense"):  # pruned straight from the dense model: one-shot == before retraining
            assert r["oneshot_test_accuracy"] == r["pruned_test_accuracy"]
    assert float(rows[0]["test_accuracy"]) > 0.2, "the dense model learned nothing from learnable digits"


@pytest.mark.parametrize("name", RUNS)
def test_each_run_has_its_result_model_and_events(study, name):
    from pruning.files import read_json

    rdir = study["runs"] / name
    for f in ("result.json", "model.keras", "config.json"):
        assert (rdir / f).is_file(), f
    assert any((rdir / "train").glob("events.out.tfevents.*"))
    assert any((rdir / "validation").glob("events.out.tfevents.*"))
    r = read_json(rdir / "result.json")
    k = float(r["config"]["sparsity"])
    strategy = "weight" if name == "dense" else r["config"]["strategy"]
    hidden = tuple(int(w) for w in HIDDEN.split(","))
    assert r["sparsity"]["weight_sparsity"] == expected_weight_sparsity(prunable_shapes(784, hidden), strategy, k)
    assert r["sparsity"]["weight_sparsity"] == {0.0: 0.0, 50.0: 0.5, 90.0: 0.9}[k]
    assert r["data"]["train_examples"] == 600


def test_main_writes_its_figures_inside_the_study_not_into_the_working_directory(study):
    plots = study["logs"] / paths.PLOTS  # the study's own figures: <logdir>/plots by default
    assert sorted(p.name for p in plots.iterdir()) == sorted(FIGURES)
    assert not (study["root"] / paths.PLOTS).exists()  # a committed plots/ folder in the cwd is never touched
    assert f"figures: {len(FIGURES)} in {plots}/" in study["proc"].stdout
    for name in FIGURES:
        data = (plots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_rerun_resumes_quickly_without_retraining(study):
    assert study["proc"].returncode == 0
    logs = study["logs"]
    before = {p.parent.name: p.stat().st_mtime_ns for p in study["runs"].glob("*/result.json")}
    table = paths.results_csv(logs).read_text()
    proc, seconds = run_script("main.py", *_study_args(study["root"]), timeout=120, cwd=study["root"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming: 5 finished run(s) kept ({', '.join(RUNS)})" in proc.stdout
    assert not PROGRESS.search(proc.stdout), proc.stdout
    assert {p.parent.name: p.stat().st_mtime_ns for p in study["runs"].glob("*/result.json")} == before
    assert paths.results_csv(logs).read_text() == table
    assert seconds < 20 and seconds < study["seconds"], (seconds, study["seconds"])


def test_plotting_names_a_missing_run_and_still_draws(study, tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(study["logs"], logs)
    shutil.rmtree(logs / "seed0" / "neuron_k50")
    proc, _ = run_script("plotting.py", "--logdir", logs, "--plots", tmp_path / "plots2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "missing or failed runs (not plotted): neuron_k50" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "plots2").iterdir()) == sorted(FIGURES)
    assert sum(line.endswith(".png") for line in proc.stdout.splitlines()) == len(FIGURES) == 11


def test_plotting_an_empty_logdir_exits_2_with_a_message(tmp_path):
    (tmp_path / "empty").mkdir()
    proc, _ = run_script("plotting.py", "--logdir", tmp_path / "empty", "--out", tmp_path / "p", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"error: {tmp_path / 'empty'} holds no finished run" in proc.stderr
    assert not (tmp_path / "p").exists()


def test_alternate_study_with_nan_loss_records_failures_plots_and_exits_1(tmp_path, mnist_dir, capsys):
    """main_alternate.py's code path, in process (it spawns one worker): a NaN dense run fails, the
    run that starts from it fails naming it, the table and figures are still written, exit 1."""
    from pruning import cli

    logs = tmp_path / "logs"
    argv = ["--data-dir", str(mnist_dir), "--hidden", "16,8", "--epochs", "1", "--retrain-epochs", "1",
            "--sparsities", "0,50", "--strategies", "weight", "--lr", "1e30", "--logdir", str(logs),
            "--plots", str(tmp_path / "plots")]
    assert cli.alternate_main_guarded(argv) == 1
    out = capsys.readouterr().out
    assert "dense: FAILED: loss became NaN or infinite at epoch 1 of 1" in out
    assert "weight_k50: FAILED: parent run dense failed (loss became NaN" in out
    assert "not ok: dense, weight_k50" in out
    rows = _csv(logs)
    assert [(r["strategy"], r["sparsity"], r["status"]) for r in rows] == [
        ("weight", "0", "failed"), ("weight", "50", "failed")]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f for f in FIGURES if "neuron" not in f and not f.startswith("pixels"))  # no finished pruned run to draw


def test_size_columns_match_the_saved_models_and_sparse_files(study):
    """results.csv's size columns are recomputed here from each run's model.keras and model.sparse."""
    from pruning.core.layers import weight_layers, load_model
    from pruning.deploy.shrink import expand_arrays, network_counts
    from pruning.files import read_json
    from pruning.deploy.sparse_format import load_sparse

    hidden = tuple(int(w) for w in HIDDEN.split(","))
    full = list(zip((784,) + hidden, hidden + (10,)))
    for row in _csv(study["logs"]):
        rdir = study["runs"] / row["run"]
        model = load_model(rdir / paths.MODEL)
        layers = weight_layers(model)
        kernels = [np.asarray(l.effective_kernel()) for l in layers]
        counts = network_counts(kernels, full)
        assert float(row["effective_sparsity"]) == pytest.approx(counts["effective_sparsity"], abs=1e-6)
        assert int(row["params_nonzero"]) == counts["params_nonzero"]
        assert int(row["flops_per_example"]) == counts["flops_per_example"]
        assert int(row["dense_bytes"]) == 4 * sum(a * b for a, b in full)
        assert int(row["sparse_bytes"]) == (rdir / paths.SPARSE_MODEL).stat().st_size
        stored, meta = load_sparse(rdir / paths.SPARSE_MODEL)
        for s, k in zip(stored, kernels):
            assert np.array_equal(s.kernel, k)
        # what neuron pruning removes is more than its k% of each layer: the dead units' rows go too
        k = float(row["sparsity"])
        if row["strategy"] == "neuron" and k > 0:
            assert float(row["effective_sparsity"]) > float(row["weight_sparsity"])
            assert [l.units for l in layers[:-1]] == [w - expected_pruned(w, k) for w in hidden]
            assert read_json(rdir / paths.RESULT)["shrink_max_logit_diff"] <= 1e-4
            assert sum(e.size for e in expand_arrays(model)[0]) == sum(a * b for a, b in full)
        if row["run"] == "dense":
            assert float(row["effective_sparsity"]) == 0.0


def _study_copy(study, tmp_path):
    """A copy of the study's log directory without any benchmark output, to benchmark or damage."""
    logs = tmp_path / "logs"
    shutil.copytree(study["runs"], logs, ignore=shutil.ignore_patterns("benchmark.*", "plots"))
    return logs


def _benchmark(study, logs, *extra):
    """benchmark.py in process, with no idle pauses between timed blocks: these tests check what it
    writes and refuses, never its timings."""
    from pruning import cli
    from pruning.deploy import bench

    saved = bench.BLOCK_PAUSE_S
    bench.BLOCK_PAUSE_S = 0.0
    try:
        return cli.benchmark_main(["--logdir", str(logs), "--data-dir", str(study["root"] / "data"),
                                   "--batches", "1,7", "--repeats", "1", "--no-training", *extra])
    finally:
        bench.BLOCK_PAUSE_S = saved


def _nothing_written(logs):
    return not any((logs / name).exists() for name in (paths.BENCHMARK_CSV, paths.BENCHMARK_JSON, "plots"))


def test_benchmark_times_every_run_and_its_fast_paths_agree_with_the_masked_model(study, tmp_path, capsys):
    from pruning.deploy.bench import ENGINES
    from pruning.files import read_json

    logs = _study_copy(study, tmp_path)
    code = _benchmark(study, logs)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "float32 matmul peak:" in out and "summary:" in out
    rows = list(csv.DictReader(open(paths.benchmark_csv(logs))))
    assert sorted((r["run"], r["batch"]) for r in rows) == sorted((n, b) for n in RUNS for b in ("1", "7"))
    for r in rows:
        assert float(r["sparse_max_abs_diff"]) <= 1e-4 and float(r["shrunk_max_abs_diff"]) <= 1e-4, r
        assert float(r["dense_speedup"]) == 1.0 and float(r["masked_ms"]) > 0
        assert all(float(r[f"{k}_spread"]) >= 0 for k in ENGINES)
        assert r["noisy"] in ("True", "False") and set(r["suspect"].split()) <= {"sparse", "shrunk"}
    report = read_json(paths.benchmark_json(logs))
    assert set(report["load"]) == {"start", "end"} and report["load"]["start"]["usable_cores"] >= 1
    assert report["summary"]["rows"] == len(rows) and report["thresholds"]["tolerance"]["sparse"] == 1e-3
    # the figure goes to <logdir>/plots/ by default, not the committed plots/ folder
    assert (logs / "plots" / paths.BENCHMARK_PNG).read_bytes()[:4] == b"\x89PNG"


def test_benchmark_on_a_sparse_file_damaged_inside_exits_2_naming_its_checksum(study, tmp_path, capsys):
    import struct

    logs = _study_copy(study, tmp_path)
    bad = logs / "weight_k90" / paths.SPARSE_MODEL
    blob = bytearray(bad.read_bytes())
    start = 16 + struct.unpack_from("<I", blob, 12)[0] + 8  # past the header, inside the payload
    assert len(blob) > start + 64 + 32
    blob[start : start + 64] = bytes(b ^ 0x5A for b in blob[start : start + 64])
    bad.write_bytes(bytes(blob))
    code = _benchmark(study, logs, "--out", str(tmp_path / "figs"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "checksum" in err and "damaged after it was written" in err and str(bad) in err
    assert "Traceback" not in err and _nothing_written(logs) and not (tmp_path / "figs").exists()


def test_benchmark_exits_1_when_an_engine_disagrees_with_the_masked_model(study, tmp_path, capsys, monkeypatch):
    from pruning.deploy.sparse_engine import SparseMLP

    predict = SparseMLP.predict
    monkeypatch.setattr(SparseMLP, "predict", lambda self, x: predict(self, x) + 1.0)
    logs = _study_copy(study, tmp_path)
    code = _benchmark(study, logs)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("error: run dense, engine sparse, batch 1:") and "tolerance" in err and "--overwrite" in err
    assert "Traceback" not in err and _nothing_written(logs)


def test_benchmark_on_a_corrupt_sparse_file_exits_2_naming_it(study, tmp_path, capsys):
    from pruning import cli

    logs = _study_copy(study, tmp_path)
    bad = logs / "weight_k90" / paths.SPARSE_MODEL
    bad.write_bytes(bad.read_bytes()[:-100])
    code = cli.benchmark_main(["--logdir", str(logs), "--data-dir", str(study["root"] / "data"),
                               "--batches", "1", "--repeats", "1", "--no-training", "--plots", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "truncated" in err and str(bad) in err and "Traceback" not in err


def test_benchmark_leaves_out_a_run_whose_model_is_gone_and_names_it(study, tmp_path, capsys):
    logs = _study_copy(study, tmp_path)
    (logs / "weight_k90" / paths.MODEL).unlink()
    code = _benchmark(study, logs)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (f"notice: {logs / 'weight_k90'} is not finished (model.keras gone): not benchmarked; rerun the study "
            f"to redo it") in out
    rows = list(csv.DictReader(open(paths.benchmark_csv(logs))))
    assert {r["run"] for r in rows} == set(RUNS) - {"weight_k90"}


def test_benchmark_without_the_dense_model_exits_2_saying_what_to_do(study, tmp_path, capsys):
    logs = _study_copy(study, tmp_path)
    (logs / "dense" / paths.SPARSE_MODEL).unlink()
    assert _benchmark(study, logs) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"error: {logs} holds no finished study" in err and "python main.py" in err
    assert _nothing_written(logs)


def test_benchmark_on_a_study_that_is_running_exits_2_and_writes_nothing(study, tmp_path, capsys):
    import os

    from pruning.study import lock

    logs = _study_copy(study, tmp_path)
    with lock.hold(logs):
        assert _benchmark(study, logs) == 2
    err = capsys.readouterr().err
    assert f"{logs} is in use by process {os.getpid()}" in err
    assert _nothing_written(logs)


def test_seeds_run_the_study_once_each_and_summarize_them_and_a_resume_adds_only_the_new_seed(tmp_path, mnist_dir,
                                                                                               capsys):
    from pruning import cli

    logs = tmp_path / "logs"
    argv = ["--data-dir", str(mnist_dir), "--hidden", "16,8", "--epochs", "1", "--retrain-epochs", "1",
            "--sparsities", "0,50", "--strategies", "weight,random", "--batch-size", "64", "--logdir", str(logs)]
    assert cli.alternate_main_guarded(argv) == 0  # one seed (0) by default; one worker: the fastest here
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in logs.glob("seed*/*/result.json")}
    assert len(before) == 3
    assert cli.alternate_main_guarded(argv + ["--seeds", "0,1"]) == 0
    out = capsys.readouterr().out
    assert out.count("resuming:") == 1 and "== seed 1 (2 of 2)" in out and "mean +- 95% confidence half-width" in out
    assert {p: p.stat().st_mtime_ns for p in before} == before  # seed 0 untouched
    rows = _csv(logs)
    assert [(r["seed"], r["strategy"], r["sparsity"]) for r in rows] == [
        (s, st, k) for s in ("0", "1") for st in ("weight", "random") for k in ("0", "50")]
    dense = {r["seed"]: r["test_accuracy"] for r in rows if r["run"] == "dense"}
    assert dense["0"] != dense["1"]  # each seed trains its own dense network
    summary = list(csv.DictReader(open(paths.summary_csv(logs))))
    assert [(r["strategy"], r["sparsity"], r["seeds"], r["n_ok"]) for r in summary] == [
        ("weight", "0", "2", "2"), ("weight", "50", "2", "2"), ("random", "0", "2", "2"), ("random", "50", "2", "2")]
    accs = [float(r["test_accuracy"]) for r in rows if r["strategy"] == "weight" and r["sparsity"] == "50"]
    weight50 = next(r for r in summary if r["strategy"] == "weight" and r["sparsity"] == "50")
    assert float(weight50["test_accuracy_mean"]) == pytest.approx(sum(accs) / 2, abs=1e-6)
    assert float(weight50["test_accuracy_ci95"]) == pytest.approx(12.7062 * abs(accs[0] - accs[1]) / 2, rel=1e-4)
    assert (logs / "plots" / "compare_test.png").is_file()
    from pruning.report.stats import study_markdown

    tables = study_markdown(logs)
    assert "Test accuracy after retraining, %, mean ± 95% confidence half-width over 2 seeds (0, 1):" in tables
    assert "| k (%) | weight | random |" in tables
    assert (f"| 50 | {100 * sum(accs) / 2:.2f} ± {100 * 12.7062 * abs(accs[0] - accs[1]) / 2:.2f} |"
            in tables.split("one-shot")[0])
    # a run that has not finished is a seed without a number in the tables, never silently left out
    shutil.rmtree(paths.run_dir(logs / "seed1", "random_k50"))
    assert cli.plotting_main(["--logdir", str(logs), "--plots", str(tmp_path / "figs"), "--markdown"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("| 50 |"))
    assert line.count("(1 of 2 seeds)") == 1 and line.endswith("(1 of 2 seeds) |")


def test_a_second_registered_model_runs_through_the_whole_study(tmp_path, mnist_dir, capsys, monkeypatch):
    """Registering a builder is all it takes: training, masks, shrinking, the sparse export, the table
    and the figures work on it (the worker processes get the registration too)."""
    from pruning import cli, models
    from pruning.core.layers import weight_layers, load_model
    from pruning.deploy.sparse_format import load_sparse
    import model_plugins

    monkeypatch.setitem(models.MODELS, "two_layer", models.ModelSpec("two_layer", model_plugins.build_two_layer,
                                                                     "trunk + ReLU head (tests)"))
    logs = tmp_path / "logs"
    argv = ["--model", "two_layer", "--data-dir", str(mnist_dir), "--hidden", "16", "--epochs", "1",
            "--retrain-epochs", "1", "--sparsities", "0,50", "--strategies", "weight,neuron", "--batch-size", "64",
            "--logdir", str(logs)]
    assert cli.alternate_main_guarded(argv) == 0, capsys.readouterr()
    rows = {r["run"]: r for r in _csv(logs)}
    assert float(rows["weight_k50"]["weight_sparsity"]) == 0.5  # 784 x 16 trunk: 6,272 of 12,544
    assert float(rows["neuron_k50"]["weight_sparsity"]) == 0.5
    runs = logs / "seed0"
    shrunk = load_model(paths.model_file(runs, "neuron_k50"))
    assert [(l.name, l.units, l.prunable, l.relu) for l in weight_layers(shrunk)] == [
        ("trunk", 8, True, True), ("head", 10, False, True)]
    layers, _ = load_sparse(paths.sparse_model_file(runs, "weight_k50"))
    assert [(l.name, l.kernel.shape, l.relu) for l in layers] == [("trunk", (784, 16), True), ("head", (16, 10), True)]
    assert (logs / "plots" / "compare_test.png").is_file()
    with pytest.raises(SystemExit):  # an unknown model: exit 2 naming the flag and the choices
        cli.study_main_guarded(["--model", "cnn", "--logdir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert "--model: unknown value 'cnn'; choose one of mlp, lenet5, two_layer" in err


@pytest.mark.parametrize("script, argv, needle", [
    ("study", ["--strategies", "weight,neuron,random_neuron"],
     "--strategies neuron,random_neuron prune by unit, which --model weights_only does not support (it is pruned "
     "by weight: weight, random, global_weight). Drop them from --strategies, or choose another --model."),
    ("train", ["--strategy", "neuron", "--sparsity", "50"],
     "--strategy neuron prunes by unit, which --model weights_only does not support"),
])
def test_a_strategy_the_model_cannot_be_pruned_by_exits_2_before_anything_is_written(
        tmp_path, mnist_dir, capsys, monkeypatch, script, argv, needle):
    from pruning import cli, models
    import model_plugins

    monkeypatch.setitem(models.MODELS, "weights_only", models.ModelSpec(
        "weights_only", model_plugins.build_two_layer, "masks only (tests)", ("weight",)))
    main = cli.study_main_guarded if script == "study" else cli.train_main
    with pytest.raises(SystemExit) as info:
        main(["--model", "weights_only", "--data-dir", str(mnist_dir), "--logdir", str(tmp_path / "logs"), *argv])
    assert info.value.code == 2
    assert needle in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "logs").exists()
