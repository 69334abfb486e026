"""pruning.study and pruning.report.results: the study plan, one run's written result,
failures, resume, and atomic writes."""
import io
import json
import math
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from pruning import files, paths
from pruning.report import results, stats
from pruning.config import (ConfigError, DataConfig, Hyper, ModelConfig, PruneConfig, RunConfig, StudyConfig,
                            TrainConfig)
from pruning.study.plan import StudyError, check_existing, dense_config, plan_study, planned_epochs
from helpers import expected_pruned, expected_weight_sparsity, prunable_shapes, read_scalars, write_mnist_dir

HIDDEN = (16, 12, 8)


def _hyper(**kw) -> Hyper:
    base = Hyper(model=ModelConfig(hidden=HIDDEN), train=TrainConfig(epochs=3, batch_size=16, lr=1e-2),
                 prune=PruneConfig(retrain_epochs=1))
    return replace(base, **kw)


def _as_written(obj):
    """``obj`` as it reads back from JSON (tuples as lists, NaN as null)."""
    return json.loads(json.dumps(files._clean(obj)))


def _chain_names(chains):
    return [[(c.name, c.parent) for c in chain] for chain in chains]


# --------------------------------------------------------------------------- plan
def test_plan_retrain_iterative_is_dense_then_one_ascending_chain_per_strategy():
    chains = plan_study(_hyper(), StudyConfig(sparsities=(90, 0, 50, 25), strategies=("weight", "neuron")))
    assert _chain_names(chains) == [
        [("dense", None)],
        [("weight_k25", "dense"), ("weight_k50", "weight_k25"), ("weight_k90", "weight_k50")],
        [("neuron_k25", "dense"), ("neuron_k50", "neuron_k25"), ("neuron_k90", "neuron_k50")],
    ]
    assert [planned_epochs(c) for chain in chains for c in chain] == [3, 1, 1, 1, 1, 1, 1]
    with pytest.raises(ConfigError, match="--sparsities lists 50 more than once"):
        StudyConfig(sparsities=(90, 0, 50, 25, 50.0))
    with pytest.raises(ConfigError, match="--strategies lists neuron more than once"):
        StudyConfig(strategies=("neuron", "weight", "neuron"))


@pytest.mark.parametrize("protocol, iterative, parent, epochs", [
    ("retrain", False, "dense", 1),
    ("oneshot", True, "dense", 0),
    ("oneshot", False, "dense", 0),
    ("scratch", True, None, 3),
    ("scratch", False, None, 3),
])
def test_plan_non_iterative_protocols_start_every_run_from_dense_or_scratch(protocol, iterative, parent, epochs):
    hyper = _hyper(prune=PruneConfig(protocol=protocol, retrain_epochs=1, iterative=iterative))
    chains = plan_study(hyper, StudyConfig(sparsities=(0, 50, 97.5), strategies=("neuron", "weight")))
    assert _chain_names(chains) == [[("dense", None)], [("neuron_k50", parent)], [("neuron_k97.5", parent)],
                                    [("weight_k50", parent)], [("weight_k97.5", parent)]]
    assert [planned_epochs(c) for chain in chains[1:] for c in chain] == [epochs] * 4
    assert planned_epochs(chains[0][0]) == 3


def test_the_workers_take_the_costliest_chains_first_and_the_students_fill_the_end():
    """Seen on the LeNet-5 study: the global_weight chain, planned last, ran alone for 10-17 minutes
    per seed while the other core idled."""
    from pruning.study.plan import longest_first, run_cost

    chains = plan_study(_hyper(), StudyConfig(sparsities=(0, 50, 90), strategies=("student", "neuron", "weight",
                                                                                   "random")))
    assert [round(sum(run_cost(c) for c in chain), 6) for chain in chains[1:]] == [1.5, 0.3, 0.26, 2.0, 2.0]
    assert [[c.name for c in chain] for chain in longest_first(chains[1:])] == [
        ["weight_k50", "weight_k90"], ["random_k50", "random_k90"], ["student_k50"], ["student_k90"],
        ["neuron_k50", "neuron_k90"]]


def test_every_sparsity_zero_run_is_the_one_dense_run():
    assert RunConfig(_hyper(), "neuron", 0.0, None).name == "dense"
    assert RunConfig(_hyper(), "neuron", 0.0, None).strategy == "none"
    assert dense_config(_hyper()).identity() == RunConfig(_hyper(), "weight", 0).identity()


# --------------------------------------------------------------------------- a small study, in process
@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_data):
    """dense -> weight_k50 -> weight_k75 (the study), plus neuron_k50 from dense, trained in process."""
    from pruning.study.run import train_run

    root = tmp_path_factory.mktemp("study")
    data_dir = write_mnist_dir(root / "data", 300, 100, side=10)
    hyper = _hyper(data=DataConfig(data_dir=str(data_dir)))
    sc = StudyConfig(sparsities=(0, 50, 75), strategies=("weight",), jobs=1)
    logdir = root / "logs"
    out = {}
    for chain in plan_study(hyper, sc):
        for cfg in chain:
            out[cfg.name] = train_run(cfg, logdir, tiny_data)
    neuron = RunConfig(hyper, "neuron", 50, "dense")
    out[neuron.name] = train_run(neuron, logdir, tiny_data)
    return {"logdir": logdir, "hyper": hyper, "study": sc, "results": out, "data": tiny_data}


def _load(study, name):
    from pruning.core.layers import load_model

    return load_model(paths.model_file(study["logdir"], name))


def test_train_run_writes_result_config_model_and_events(study):
    logdir = study["logdir"]
    for name, epochs in (("dense", 3), ("weight_k50", 1), ("weight_k75", 1), ("neuron_k50", 1)):
        rdir = logdir / name
        assert {"result.json", "config.json", "model.keras", "train", "validation"} <= {p.name for p in rdir.iterdir()}
        r = files.read_json(rdir / "result.json")
        assert r == _as_written(study["results"][name])  # what train_run returned is what it wrote
        assert r["status"] == "ok" and r["reason"] is None and r["run"] == name
        assert r["config"] == files.read_json(rdir / "config.json")
        assert r["data"] == {"source": "synthetic", "fingerprint": study["data"].fingerprint(), "train_examples": 300, "test_examples": 100, "input_dim": 100,
                             "note": None}
        assert set(r["history"]) == {"loss", "accuracy", "test_loss", "test_accuracy"}
        assert all(len(v) == epochs for v in r["history"].values())
        for key in ("test_accuracy", "train_accuracy", "oneshot_test_accuracy", "oneshot_train_accuracy",
                    "pruned_test_accuracy"):
            assert 0.0 <= r[key] <= 1.0, key
        assert r["history"]["test_accuracy"][-1] == pytest.approx(r["test_accuracy"], abs=1e-6)
    dense = study["results"]["dense"]
    assert dense["oneshot_test_accuracy"] == dense["pruned_test_accuracy"] == dense["test_accuracy"]
    assert dense["test_accuracy"] > 0.3, "the synthetic digits are learnable: dense must beat chance (0.1) clearly"


@pytest.mark.parametrize("name, strategy, k", [("dense", "weight", 0), ("weight_k50", "weight", 50),
                                               ("weight_k75", "weight", 75), ("neuron_k50", "neuron", 50)])
def test_written_sparsity_is_the_exact_fraction_and_saved_kernels_are_zero_where_masked(study, name, strategy, k):
    from pruning.core.layers import masked_layers

    r = study["results"][name]
    shapes = prunable_shapes(100, HIDDEN)
    assert r["sparsity"]["weight_sparsity"] == expected_weight_sparsity(shapes, strategy, k)
    model = _load(study, name)
    if strategy == "neuron":  # saved physically shrunk: the masks are put back in place to count them
        from pruning.deploy.shrink import expand_model

        for layer, (rows, cols) in zip(masked_layers(model), shapes):
            assert layer.units == cols - expected_pruned(cols, k) and layer.mask.numpy().all()
        model = expand_model(model)
    for layer, (rows, cols) in zip(masked_layers(model), shapes):
        mask, kernel = layer.mask.numpy(), layer.kernel.numpy()
        assert np.all(kernel[mask == 0] == 0.0)
        if strategy == "weight":  # (an expanded layer also has 0 rows where its inputs died)
            assert np.count_nonzero(kernel == 0) == np.count_nonzero(mask == 0)
        n = expected_pruned(rows * cols, k) if strategy == "weight" else rows * expected_pruned(cols, k)
        assert np.count_nonzero(mask == 0) == n
        assert r["sparsity"]["per_layer"][layer.name] == n / (rows * cols)


def test_iterative_chain_keeps_the_previous_runs_zeros(study):
    from pruning.core.layers import masked_layers

    k50, k75 = _load(study, "weight_k50"), _load(study, "weight_k75")
    for a, b in zip(masked_layers(k50), masked_layers(k75)):
        assert np.all(b.mask.numpy()[a.mask.numpy() == 0] == 0)
    assert study["results"]["weight_k75"]["config"]["parent"] == "weight_k50"


@pytest.mark.parametrize("name, strategy, k", [("weight_k50", "weight", 50), ("weight_k75", "weight", 75),
                                               ("neuron_k50", "neuron", 50)])
def test_oneshot_accuracy_is_the_dense_model_pruned_to_k_in_numpy(study, name, strategy, k):
    from pruning.core import masks
    from pruning.core.layers import MaskedDense, numpy_forward

    dense = _load(study, "dense")
    kernels = []
    for layer in (l for l in dense.layers if isinstance(l, MaskedDense)):
        w = layer.kernel.numpy()
        kernels.append(w * masks.compute_mask(strategy, w, k) if layer.prunable else w)
    data, r = study["data"], study["results"][name]
    for x, y, key in ((data.x_test, data.y_test, "oneshot_test_accuracy"),
                      (data.x_train, data.y_train, "oneshot_train_accuracy")):
        correct = int(np.count_nonzero(np.argmax(numpy_forward(kernels, x), axis=1) == y))
        assert round(r[key] * len(y)) == correct, key
    if r["config"]["parent"] == "dense":  # pruned from the dense model itself: one-shot == pruned
        assert r["pruned_test_accuracy"] == r["oneshot_test_accuracy"]


def test_final_accuracy_is_that_of_the_saved_model(study):
    from pruning.core.layers import MaskedDense, numpy_forward

    data = study["data"]
    for name in ("dense", "weight_k75", "neuron_k50"):
        model = _load(study, name)
        kernels = [np.asarray(l.effective_kernel()) for l in model.layers if isinstance(l, MaskedDense)]
        correct = int(np.count_nonzero(np.argmax(numpy_forward(kernels, data.x_test), axis=1) == data.y_test))
        assert round(study["results"][name]["test_accuracy"] * len(data.y_test)) == correct, name


def test_pruned_run_logs_masking_scalars_to_tensorboard(study):
    scalars = read_scalars(study["logdir"] / "weight_k50" / paths.TRAIN_EVENTS)
    for layer, (rows, cols) in zip(("hidden1", "hidden2", "hidden3"), prunable_shapes(100, HIDDEN)):
        assert scalars[f"sparsity/{layer}"][0] == pytest.approx(expected_pruned(rows * cols, 50) / (rows * cols), abs=1e-7)
        assert scalars[f"threshold/{layer}"][0] > 0


# --------------------------------------------------------------------------- other protocols
def test_oneshot_and_scratch_runs(study, tmp_path):
    from pruning.study.run import train_run
    from pruning.core.layers import masked_layers

    logdir = tmp_path / "logs"
    shutil.copytree(study["logdir"] / "dense", logdir / "dense")
    one = replace(study["hyper"], prune=PruneConfig(protocol="oneshot"))
    r = train_run(RunConfig(one, "weight", 75, "dense"), logdir, study["data"])
    assert r["status"] == "ok" and r["history"] == {}
    # no training: the final model is the one-shot model
    assert r["test_accuracy"] == r["oneshot_test_accuracy"] == r["pruned_test_accuracy"]
    assert r["train_accuracy"] == r["oneshot_train_accuracy"]
    assert r["sparsity"]["weight_sparsity"] == expected_weight_sparsity(prunable_shapes(100, HIDDEN), "weight", 75)

    scratch = replace(study["hyper"], prune=PruneConfig(protocol="scratch"))
    r = train_run(RunConfig(scratch, "neuron", 75, None), logdir, study["data"])
    assert r["status"] == "ok" and len(r["history"]["loss"]) == 3
    assert r["sparsity"]["weight_sparsity"] == expected_weight_sparsity(prunable_shapes(100, HIDDEN), "neuron", 75)
    model = _load({"logdir": logdir}, "neuron_k75")
    for layer in masked_layers(model):
        assert np.all(layer.kernel.numpy()[layer.mask.numpy() == 0] == 0.0)


# --------------------------------------------------------------------------- failures
@pytest.fixture(scope="module")
def failed_study(tmp_path_factory, tiny_data):
    from pruning.study.run import train_run

    logdir = tmp_path_factory.mktemp("failed") / "logs"
    hyper = _hyper(train=TrainConfig(epochs=2, batch_size=16, lr=1e30))
    events = []
    dense = train_run(dense_config(hyper), logdir, tiny_data, progress=events.append)
    child = train_run(RunConfig(hyper, "weight", 50, "dense"), logdir, tiny_data, progress=events.append)
    return {"logdir": logdir, "hyper": hyper, "dense": dense, "child": child, "events": events}


def test_absurd_learning_rate_fails_the_run_with_a_nan_reason(failed_study):
    r = failed_study["dense"]
    assert r["status"] == "failed"
    assert "NaN" in r["reason"] and "--lr" in r["reason"]
    assert files.read_json(failed_study["logdir"] / "dense" / "result.json") == _as_written(r)
    assert math.isnan(r["history"]["loss"][-1])  # NaN in memory, null on disk
    assert files.read_json(failed_study["logdir"] / "dense" / "result.json")["history"]["loss"][-1] is None
    assert not (failed_study["logdir"] / "dense" / "model.keras").exists()
    assert {"event": "done", "run": "dense", "status": "failed", "reason": r["reason"]} in failed_study["events"]


def test_run_whose_parent_failed_is_failed_naming_the_parent(failed_study):
    r = failed_study["child"]
    assert r["status"] == "failed"
    assert r["reason"].startswith("parent run dense failed")
    assert files.read_json(failed_study["logdir"] / "weight_k50" / "result.json")["status"] == "failed"
    assert not (failed_study["logdir"] / "weight_k50" / "model.keras").exists()


def test_run_whose_parent_never_ran_is_failed_naming_the_parent(tmp_path, tiny_data):
    from pruning.study.run import train_run

    r = train_run(RunConfig(_hyper(), "neuron", 50, "neuron_k25"), tmp_path, tiny_data)
    assert r["status"] == "failed" and r["reason"] == "parent run neuron_k25 has not finished"


def test_failed_run_is_todo_on_resume(failed_study):
    assert check_existing(dense_config(failed_study["hyper"]), failed_study["logdir"]) == "todo"


# --------------------------------------------------------------------------- resume
def test_check_existing_done_todo_and_conflict(study):
    logdir, hyper = study["logdir"], study["hyper"]
    assert check_existing(dense_config(hyper), logdir) == "done"
    assert check_existing(RunConfig(hyper, "weight", 75, "weight_k50"), logdir) == "done"
    assert check_existing(RunConfig(hyper, "neuron", 90, "neuron_k50"), logdir) == "todo"
    # settings that cannot change the dense run do not invalidate it
    other = replace(hyper, prune=PruneConfig(retrain_epochs=7, retrain_lr=0.5), data=DataConfig(data_dir="/elsewhere"))
    assert check_existing(dense_config(other), logdir) == "done"
    changed = replace(hyper, train=replace(hyper.train, epochs=4))
    with pytest.raises(StudyError) as info:
        check_existing(dense_config(changed), logdir)
    msg = str(info.value)
    assert str(logdir / "dense") in msg and "train.epochs: 3 there, 4 now" in msg and "--overwrite" in msg
    # a different parent is a different run
    with pytest.raises(StudyError, match="parent: 'weight_k50' there, 'dense' now"):
        check_existing(RunConfig(hyper, "weight", 75, "dense"), logdir)


def test_run_study_resumes_without_retraining_finished_runs(study):
    from pruning.study.engine import run_study

    logdir = study["logdir"]
    before = {p.parent.name: p.stat().st_mtime_ns for p in logdir.glob("*/result.json")}
    models = {p.parent.name: p.stat().st_mtime_ns for p in logdir.glob("*/model.keras")}
    out = io.StringIO()
    runs = run_study(study["hyper"], study["study"], logdir, out=out)
    assert [c.name for c in runs] == ["dense", "weight_k50", "weight_k75"]
    assert "resuming: 3 finished run(s) kept (dense, weight_k50, weight_k75)" in out.getvalue()
    assert {p.parent.name: p.stat().st_mtime_ns for p in logdir.glob("*/result.json")} == before
    assert {p.parent.name: p.stat().st_mtime_ns for p in logdir.glob("*/model.keras")} == models
    written = files.read_json(paths.study_file(logdir))
    assert written["runs"] == ["dense", "weight_k50", "weight_k75"]
    assert written["study"]["sparsities"] == [0, 50, 75]


def test_run_study_starts_the_costliest_chain_first(study, tmp_path):
    from pruning.study.engine import run_study

    logdir = tmp_path / "logs"
    shutil.copytree(study["logdir"], logdir)
    shutil.rmtree(logdir / "weight_k75")
    (logdir / "neuron_k50" / paths.RESULT).unlink()
    out = io.StringIO()
    run_study(study["hyper"], replace(study["study"], strategies=("neuron", "weight"), jobs=1), logdir, out=out)
    started = [line.split()[1].rstrip(":") for line in out.getvalue().splitlines() if ": started (" in line]
    # left: neuron_k50 and neuron_k75 (1 epoch each on 1/4 and 1/16 of the weights), weight_k75 (1 epoch, all)
    assert started == ["weight_k75", "neuron_k50", "neuron_k75"]


def test_run_study_refuses_a_logdir_holding_another_configuration(study):
    from pruning.study.engine import run_study

    changed = replace(study["hyper"], model=ModelConfig(hidden=(16, 12, 9)))
    with pytest.raises(StudyError, match="model.hidden"):
        run_study(changed, study["study"], study["logdir"], out=io.StringIO())


# --------------------------------------------------------------------------- results table
def test_results_table_has_one_row_per_strategy_and_sparsity(study):
    found = results.read_all_results(study["logdir"])
    # sorted by (strategy, sparsity), never by directory order; the dense run's strategy is "none"
    assert [r["run"] for r in found] == ["neuron_k50", "dense", "weight_k50", "weight_k75"]
    rows = results.table_rows(found, ("weight", "neuron"), (0, 50, 75))
    assert [(r["strategy"], r["sparsity"], r["run"]) for r in rows] == [
        ("weight", 0.0, "dense"), ("weight", 50.0, "weight_k50"), ("weight", 75.0, "weight_k75"),
        ("neuron", 0.0, "dense"), ("neuron", 50.0, "neuron_k50")]
    assert [r["epochs"] for r in rows] == [3, 1, 1, 3, 1]
    # what the table describes, from each run's configuration
    assert {(r["model"], r["dataset"], r["protocol"]) for r in rows} == {("mlp", "mnist", "retrain")}
    # the threads each run trained with, as its result records them
    assert [r["threads"] for r in rows] == [r["execution"]["intra_op_threads"] for r in
                                            [{x["run"]: x for x in found}[row["run"]] for row in rows]]
    assert all(isinstance(r["threads"], int) and r["threads"] >= 0 for r in rows)  # 0: TensorFlow's default
    path = study["logdir"].parent / "table.csv"
    results.write_table(path, rows)
    lines = path.read_text().splitlines()
    # every column, but the strength of a --sparsify method, which a plain study has none of
    assert lines[0] == ",".join(c for c in results.CSV_COLUMNS if c != "sparsify_strength")
    assert lines[2].split(",")[:4] == ["0", "weight", "50", "ok"]  # seed first
    assert len(lines) == 6
    text = results.format_table(rows).splitlines()
    assert len(text) == 2 + 5
    acc = 100 * study["results"]["weight_k75"]["test_accuracy"]
    assert text[4].split()[:2] == ["weight", "75"] and f"{acc:.2f}" in text[4] and text[4].endswith("ok")


def test_write_json_turns_nan_and_inf_into_null(tmp_path):
    files.write_json(tmp_path / "r.json", {"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": -float("inf")}})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": None, "b": [1.5, None], "c": {"d": None}}


def test_read_json_of_a_corrupt_result_names_the_file(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_text('{"status": "ok", ')
    with pytest.raises(files.ResultError, match=str(tmp_path / "run" / "result.json")):
        results.read_result(tmp_path, "run")


def test_atomic_write_leaves_the_old_file_and_no_temporary_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    path.write_bytes(b"old contents\n")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write_bytes(path, b"new contents that never land\n")
    with pytest.raises(OSError, match="disk full"):
        results.write_table(path, [{"strategy": "weight", "sparsity": 50.0}])
    assert path.read_bytes() == b"old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_write_table_that_fails_while_formatting_writes_nothing(tmp_path):
    class Bad:
        def __str__(self):
            raise RuntimeError("unprintable")

    with pytest.raises(RuntimeError, match="unprintable"):
        results.write_table(tmp_path / "results.csv", [{"strategy": "weight", "run": "a"}, {"strategy": Bad()}])
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_interrupted_by_keyboard_interrupt_leaves_no_file(tmp_path, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        files.write_json(tmp_path / "sub" / "result.json", {"status": "ok"})
    assert list((tmp_path / "sub").iterdir()) == []
    assert not os.path.exists(tmp_path / "sub" / "result.json")


# --------------------------------------------------------------------------- progress lines
def test_progress_printer_prints_one_line_per_event():
    from pruning.study.engine import ProgressPrinter

    hyper = _hyper()
    runs = [dense_config(hyper), RunConfig(hyper, "weight", 50, "dense")]
    out = io.StringIO()
    p = ProgressPrinter(runs, jobs=1, out=out)
    p({"event": "start", "run": "dense", "threads": 2})
    p({"event": "epoch", "run": "dense", "epoch": 1, "epochs": 3, "loss": 1.23456, "accuracy": 0.5,
       "test_accuracy": 0.25, "seconds": 2.0})
    p({"event": "done", "run": "dense", "status": "ok", "test_accuracy": 0.875, "seconds": 7.0})
    p({"event": "done", "run": "weight_k50", "status": "failed", "reason": "parent run dense failed (x)"})
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] dense: started (3 epochs, 2 thread(s))"
    assert lines[1].startswith("[1/2] dense: epoch 1/3  loss 1.2346  train acc 50.00%  test acc 25.00%  2.0s/epoch")
    assert lines[2] == "[1/2] dense: done, test acc 87.50% in 7s"
    assert lines[3] == "[2/2] weight_k50: FAILED: parent run dense failed (x)"


def test_time_left_counts_the_epochs_of_the_seeds_still_to_come():
    from pruning.study.engine import ProgressPrinter

    hyper = _hyper()
    out = io.StringIO()
    p = ProgressPrinter([dense_config(hyper)], jobs=1, out=out, later_epochs=8)
    p({"event": "start", "run": "dense", "threads": 2})
    p({"event": "epoch", "run": "dense", "epoch": 1, "epochs": 3, "loss": 1.0, "accuracy": 0.5,
       "test_accuracy": 0.25, "seconds": 10.0})
    # (3 + 8 - 1) epochs left at 10 s each, one at a time
    assert out.getvalue().splitlines()[1].endswith("study left ~1m40s")


def test_run_seeds_checks_every_seeds_directory_before_anything_trains(study, tmp_path):
    from pruning.study.engine import run_seeds, seed_epochs_to_do

    logs = tmp_path / "logs"
    shutil.copytree(study["logdir"], paths.seed_dir(logs, 0))
    assert seed_epochs_to_do(study["hyper"], study["study"], paths.seed_dir(logs, 0), False, None) == 0
    seed1 = replace(study["hyper"], train=replace(study["hyper"].train, seed=1))
    assert seed_epochs_to_do(seed1, study["study"], paths.seed_dir(logs, 1), False, None) == 3 + 1 + 1
    # seed 2's directory holds seed 0's runs: the study stops before seed 1 trains anything
    shutil.copytree(study["logdir"], paths.seed_dir(logs, 2))
    out = io.StringIO()
    with pytest.raises(StudyError, match=r"seed2.*train\.seed: 0 there, 2 now"):
        run_seeds(study["hyper"], replace(study["study"], seeds=(0, 1, 2)), logs, out=out)
    assert not paths.seed_dir(logs, 1).exists() and not paths.study_file(logs).exists()
    assert "started" not in out.getvalue()


def test_resume_redoes_every_later_run_of_a_chain_whose_middle_run_is_missing(study, tmp_path):
    from pruning.study.plan import runs_to_do

    logdir = tmp_path / "logs"
    shutil.copytree(study["logdir"], logdir)
    chains = plan_study(study["hyper"], study["study"])
    assert runs_to_do(chains, logdir) == set()
    (logdir / "weight_k50" / paths.RESULT).unlink()
    assert runs_to_do(chains, logdir) == {"weight_k50", "weight_k75"}
    assert runs_to_do(chains, logdir, overwrite=True) == {"dense", "weight_k50", "weight_k75"}


@pytest.mark.parametrize("lost", [paths.MODEL, paths.SPARSE_MODEL])
def test_a_finished_run_whose_model_file_is_gone_is_redone_with_its_chain_after_it(study, tmp_path, lost):
    from pruning.study.plan import runs_to_do

    logdir = tmp_path / "logs"
    shutil.copytree(study["logdir"], logdir)
    chains = plan_study(study["hyper"], study["study"])
    (logdir / "weight_k50" / lost).unlink()
    notices = []
    assert runs_to_do(chains, logdir, notices=notices) == {"weight_k50", "weight_k75"}
    assert notices == [f"{logdir / 'weight_k50'}: its result.json says finished, but {lost} is gone; redoing it "
                       f"(and the runs of its chain after it)"]
    assert results.missing_files(logdir, results.read_result(logdir, "weight_k50")) == [lost]
    assert results.missing_files(logdir, results.read_result(logdir, "weight_k75")) == []


def test_a_run_whose_parent_lost_its_model_fails_naming_it_not_with_a_traceback(study, tmp_path):
    from pruning.study.run import train_run

    logdir = tmp_path / "logs"
    shutil.copytree(study["logdir"], logdir)
    (logdir / "weight_k50" / paths.MODEL).unlink()
    r = train_run(RunConfig(study["hyper"], "weight", 75, "weight_k50"), logdir, study["data"])
    assert r["status"] == "failed"
    assert r["reason"] == "parent run weight_k50 lost its model.keras; rerun the study to redo it"


def test_a_result_names_the_files_that_make_it_finished(study):
    r = results.read_result(study["logdir"], "weight_k50")
    assert r["files"] == [paths.MODEL, paths.SPARSE_MODEL]
    assert results.result_files({"run": "old"}) == [paths.MODEL, paths.SPARSE_MODEL]  # results before the list


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_result_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        files.write_json(tmp_path / "r.json", {"a": 1})
        results.write_rows(tmp_path / "r.csv", [{"a": 1}])
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "r.csv").stat().st_mode & 0o777 == mode


def test_a_chain_running_alone_gets_every_core():
    from pruning.study.plan import worker_plan

    dense = [dense_config(_hyper()).to_dict()]
    weight = [RunConfig(_hyper(), "weight", k, None).to_dict() for k in (50, 90)]
    neuron = [RunConfig(_hyper(), "neuron", k, None).to_dict() for k in (50, 90)]
    assert worker_plan([], [weight], jobs=2, cores=2) == [[([], 1, 2)], [([weight], 1, 2)]]
    assert worker_plan([dense], [weight], jobs=2, cores=8)[1] == [([weight], 1, 8)]
    two = worker_plan([dense], [weight, neuron], jobs=2, cores=2)
    assert two[0] == [([dense], 1, 2)] and [t for _, _, t in two[1]] == [2, 1]  # by cost (chain_threads)
    assert worker_plan([dense], [weight, neuron], jobs=1, cores=2) == [[([dense, weight, neuron], 1, 2)]]
    many = [[RunConfig(_hyper(), "weight", k, None).to_dict()] for k in (50, 60, 70)]
    assert worker_plan([], many, jobs=2, cores=4)[1] == [(many, 2, 2)]
    # --threads N: every worker N threads, whatever the study's shape (to repeat a run digit for digit)
    assert worker_plan([dense], [weight, neuron], jobs=2, cores=2, threads=1) == [
        [([dense], 1, 1)], [([weight], 1, 1), ([neuron], 1, 1)]]
    assert worker_plan([dense], [weight], jobs=1, cores=8, threads=3) == [[([dense, weight], 1, 3)]]
    with pytest.raises(ConfigError, match="--threads"):
        StudyConfig(threads=0)


def test_retraining_with_a_ramp_raises_sparsity_each_epoch_to_the_exact_target(study, tmp_path):
    """--ramp-epochs 3: the masks grow along the cubic schedule from the parent's k (50) to 75;
    pruned_test_accuracy is the parent pruned straight to 75, and the parent's model is untouched."""
    from pruning.core.callbacks import apply_masks, cubic_schedule
    from pruning.study.run import compile_model, evaluate, train_run

    logdir = tmp_path / "logs"
    shutil.copytree(study["logdir"], logdir)
    hyper = replace(study["hyper"], prune=PruneConfig(retrain_epochs=4, ramp_epochs=3))
    r = train_run(RunConfig(hyper, "weight", 75, "weight_k50"), logdir, study["data"])
    assert r["status"] == "ok"
    shapes = dict(zip(("hidden1", "hidden2", "hidden3"), prunable_shapes(study["data"].input_dim, HIDDEN)))
    logged = read_scalars(logdir / "weight_k75" / "train")
    schedule = cubic_schedule(50.0, 75.0, 3)
    for name, (rows, cols) in shapes.items():
        want = [expected_pruned(rows * cols, schedule(e)) / (rows * cols) for e in range(4)]
        assert [logged[f"sparsity/{name}"][e] == pytest.approx(w, abs=1e-7) for e, w in enumerate(want)] == [True] * 4
        assert want[0] < want[1] < want[2] == want[3]
    assert r["sparsity"]["weight_sparsity"] == pytest.approx(
        expected_weight_sparsity(shapes.values(), "weight", 75), abs=1e-12)
    parent = _load(study, "weight_k50")
    apply_masks(parent, "weight", 75)
    compile_model(parent, 1e-3, 0.0, 0)
    assert r["pruned_test_accuracy"] == evaluate(parent, study["data"].x_test, study["data"].y_test)[1]


def test_check_existing_refuses_a_finished_run_trained_on_other_data(study):
    """The data directory's path is not part of a run's identity, but the data themselves are."""
    from pruning.data.sources import Dataset

    logdir, hyper, data = study["logdir"], study["hyper"], study["data"]
    same = data.describe()
    assert check_existing(dense_config(hyper), logdir, same) == "done"
    flipped = Dataset(data.x_train, (data.y_train + 1) % 10, data.x_test, data.y_test, source=data.source)
    assert flipped.fingerprint() != data.fingerprint()
    with pytest.raises(StudyError, match="trained on other data") as info:
        check_existing(dense_config(hyper), logdir, flipped.describe())
    assert "--overwrite" in str(info.value) and str(logdir / "dense") in str(info.value)


def test_chain_threads_give_the_costly_chain_all_cores_and_every_chain_one():
    from pruning.config import Hyper, StudyConfig
    from pruning.study.plan import chain_threads, plan_study, run_cost

    chains = plan_study(Hyper(), StudyConfig())[1:]  # weight chain, neuron chain
    assert [c[0].strategy for c in chains] == ["weight", "neuron"]
    assert sum(run_cost(c) for c in chains[0]) == 9 * 5
    assert run_cost(chains[1][-1]) == pytest.approx(5 * 0.01 ** 2)
    assert chain_threads(chains, 2) == [2, 1]
    assert chain_threads(chains, 8) == [7, 1]  # neuron: 5 x sum((1 - k)^2) = 5.58 of 50.58
    assert chain_threads(chains[:1], 2) == [2]


# --------------------------------------------------------------------------- the baselines, trained
@pytest.fixture(scope="module")
def baselines(study, tmp_path_factory):
    """random k75, random_neuron k50 and global_weight k75, each retrained from the study's dense model."""
    from pruning.study.run import train_run

    logdir = tmp_path_factory.mktemp("baselines") / "logs"
    shutil.copytree(study["logdir"], logdir)
    runs = {}
    for strategy, k in (("random", 75), ("random_neuron", 50), ("global_weight", 75)):
        runs[strategy] = train_run(RunConfig(study["hyper"], strategy, k, "dense"), logdir, study["data"])
    return {"logdir": logdir, "runs": runs}


@pytest.mark.parametrize("strategy, granularity, k", [("random", "weight", 75), ("random_neuron", "neuron", 50)])
def test_random_baselines_train_with_the_exact_count_per_layer(baselines, strategy, granularity, k):
    r = baselines["runs"][strategy]
    assert r["status"] == "ok", r.get("reason")
    shapes = prunable_shapes(100, HIDDEN)
    assert r["sparsity"]["weight_sparsity"] == expected_weight_sparsity(shapes, granularity, k)
    assert 0 < r["oneshot_test_accuracy"] <= 1 and r["pruned_test_accuracy"] == r["oneshot_test_accuracy"]


def test_random_neuron_runs_train_and_are_saved_physically_shrunk(baselines):
    from pruning.core.layers import load_model, masked_layers

    model = load_model(paths.model_file(baselines["logdir"], "random_neuron_k50"))
    assert [l.units for l in masked_layers(model)] == [w - expected_pruned(w, 50) for w in HIDDEN]
    assert baselines["runs"]["random_neuron"]["shrink_max_logit_diff"] <= 1e-4


def test_a_random_mask_is_the_same_for_the_same_seed_and_another_for_another(study, tmp_path):
    from pruning.core.callbacks import apply_masks
    from pruning.core.layers import load_model, masked_layers

    def mask_at(seed):
        model = load_model(paths.model_file(study["logdir"], "dense"))
        apply_masks(model, "random", 50, seed)
        return [l.mask.numpy() for l in masked_layers(model)]

    assert all(np.array_equal(a, b) for a, b in zip(mask_at(0), mask_at(0)))
    assert not all(np.array_equal(a, b) for a, b in zip(mask_at(0), mask_at(1)))


def test_global_weight_prunes_exactly_k_percent_of_all_hidden_weights_and_records_each_layers_share(baselines):
    r = baselines["runs"]["global_weight"]
    assert r["status"] == "ok", r.get("reason")
    sizes = [a * b for a, b in prunable_shapes(100, HIDDEN)]
    assert r["sparsity"]["weight_sparsity"] == expected_pruned(sum(sizes), 75) / sum(sizes)
    per_layer = r["sparsity"]["per_layer"]
    assert len(per_layer) == len(HIDDEN)
    zeros = sum(round(f * n) for f, n in zip(per_layer.values(), sizes))
    assert zeros == expected_pruned(sum(sizes), 75)
    assert len(set(per_layer.values())) > 1  # one threshold, so the layers' shares differ


# --------------------------------------------------------------------------- replicates: the summary
def test_summary_over_three_seeds_matches_the_numbers_worked_by_hand():
    rows = [{"seed": s, "strategy": "weight", "sparsity": 90.0, "status": "ok", "test_accuracy": acc,
             "oneshot_test_accuracy": one, "effective_sparsity": 0.9}
            for s, acc, one in ((0, 0.98, 0.90), (1, 0.97, 0.80), (2, 0.99, 0.85))]
    rows.append({"seed": 3, "strategy": "weight", "sparsity": 90.0, "status": "failed", "test_accuracy": None,
                 "oneshot_test_accuracy": None, "effective_sparsity": None})
    (row,) = stats.summarize(rows)
    assert (row["strategy"], row["sparsity"], row["seeds"], row["n_ok"]) == ("weight", 90.0, 4, 3)
    # mean 0.98; deviations -0.00, -0.01, +0.01: sd = sqrt(0.0002 / 2) = 0.01; t(0.975, 2) = 4.3027
    assert row["test_accuracy_mean"] == pytest.approx(0.98)
    assert row["test_accuracy_sd"] == pytest.approx(0.01)
    assert row["test_accuracy_ci95"] == pytest.approx(4.3027 * 0.01 / math.sqrt(3), rel=1e-4)
    assert row["oneshot_test_accuracy_mean"] == pytest.approx(0.85)
    assert row["oneshot_test_accuracy_sd"] == pytest.approx(0.05)
    assert row["effective_sparsity_sd"] == pytest.approx(0.0)
    text = stats.format_summary([row])
    assert "98.00 +- 2.48" in text and "85.00 +- 12.42" in text and "3/4" in text


def test_one_seed_has_a_mean_but_no_interval_and_the_t_quantiles_are_right():
    (row,) = stats.summarize([{"seed": 0, "strategy": "neuron", "sparsity": 50.0, "status": "ok",
                                 "test_accuracy": 0.9, "oneshot_test_accuracy": 0.5, "effective_sparsity": 0.6}])
    assert row["test_accuracy_mean"] == 0.9 and math.isnan(row["test_accuracy_ci95"])
    assert [round(stats.t975(df), 3) for df in (1, 2, 4, 9, 30, 60, 120)] == [
        12.706, 4.303, 2.776, 2.262, 2.042, 2.000, 1.980]


# --------------------------------------------------------------------------- masks once per change; one data path
@pytest.mark.parametrize("protocol, epochs, parent, targets", [
    # the starting model pruned to k is also the one-shot model and the callback's first masks
    ("oneshot", 1, "dense", [75]),
    ("retrain", 1, "dense", [75]),
    # a ramp: the start (shared with one-shot), then each epoch's new target 75 + (0 - 75)(1 - (e+1)/3)^3
    ("retrain", 3, "dense", [75, 75 - 75 * 8 / 27, 75 - 75 / 27, 75]),
    # from another run: its model pruned to k, the dense model pruned to k (one-shot), then the ramp from 50
    ("retrain", 3, "weight_k50", [75, 75, 75 - 25 * 8 / 27, 75 - 25 / 27, 75]),
])
def test_masks_are_computed_once_per_change_of_the_target(study, tmp_path, monkeypatch, protocol, epochs, parent,
                                                          targets):
    from pruning.core import masks
    from pruning.study.run import train_run

    for name in {"dense", parent}:
        shutil.copytree(paths.run_dir(study["logdir"], name), paths.run_dir(tmp_path, name))
    calls = []
    real = masks.compute_masks
    monkeypatch.setattr(masks, "compute_masks", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    hyper = replace(study["hyper"], prune=PruneConfig(protocol=protocol, retrain_epochs=epochs, ramp_epochs=3))
    r = train_run(RunConfig(hyper, "weight", 75, parent), tmp_path, study["data"])
    assert r["status"] == "ok"
    assert calls == pytest.approx(targets)
    if parent == "dense":
        assert r["oneshot_test_accuracy"] == r["pruned_test_accuracy"]
    assert 0 < r["oneshot_train_accuracy"] <= 1 and 0 < r["oneshot_test_accuracy"] <= 1


def test_a_worker_loads_the_runs_data_once_and_refuses_other_data_than_the_studys(monkeypatch, mnist_dir, tmp_path):
    import queue

    from pruning import data
    from pruning.study import engine

    cfg = RunConfig(_hyper(data=DataConfig(data_dir=str(mnist_dir))))
    right = data.load(cfg.hyper.data).fingerprint()
    monkeypatch.setattr(engine, "_WORKER", {"data": {}, "queue": queue.Queue(), "threads": 1, "fingerprint": right})
    ds = engine.worker_data(cfg)
    assert ds.fingerprint() == right and ds.source == f"idx:{mnist_dir.resolve()}"
    assert engine.worker_data(cfg) is ds, "loaded once per worker"

    other = write_mnist_dir(tmp_path / "other", 60, 20)
    with pytest.raises(StudyError, match=r"other data \(idx:.*other\) than the study checked"):
        engine.worker_data(RunConfig(_hyper(data=DataConfig(data_dir=str(other)))))


def test_markdown_table_puts_k_in_rows_strategies_in_columns_with_mean_and_half_width():
    rows = [{"seed": s, "strategy": "weight", "sparsity": 90.0, "status": "ok", "test_accuracy": acc,
             "oneshot_test_accuracy": 0.5, "effective_sparsity": 0.9}
            for s, acc in ((0, 0.98), (1, 0.97), (2, 0.99))]
    rows += [{"seed": s, "strategy": "random", "sparsity": 90.0, "status": st, "test_accuracy": acc,
              "oneshot_test_accuracy": None, "effective_sparsity": 0.9}
             for s, st, acc in ((0, "ok", 0.95), (1, "failed", None), (2, "ok", 0.96))]
    rows += [{"seed": 0, "strategy": "weight", "sparsity": 50.0, "status": "ok", "test_accuracy": 0.985,
              "oneshot_test_accuracy": 0.9, "effective_sparsity": 0.5}]
    text = stats.markdown_table(stats.summarize(rows), "test_accuracy", ["weight", "random"])
    # weight k90: 98.00 +- 4.3027 x 0.01 / sqrt(3); random k90: mean 95.5, sd 0.00707, t(0.975, 1) = 12.7062
    assert text.splitlines() == [
        "| k (%) | weight | random |",
        "|---:|---:|---:|",
        "| 50 | 98.50 |  |",
        "| 90 | 98.00 ± 2.48 | 95.50 ± 6.35 (2 of 3 seeds) |",
    ]


# --------------------------------------------------------------------------- where a run's time goes
def test_a_run_writes_its_time_by_kind_and_each_epochs_wall_time(study):
    r = study["results"]["weight_k50"]
    t = r["timing"]
    kinds = ("train", "validation", "eval", "masks", "io", "other")
    assert set(t) == {f"{k}_s" for k in kinds} | {"epoch_s"}
    assert all(t[f"{k}_s"] >= 0 for k in kinds)
    assert t["train_s"] > 0 and t["validation_s"] > 0 and t["eval_s"] > 0 and t["io_s"] > 0
    assert sum(t[f"{k}_s"] for k in kinds) == pytest.approx(r["wall_time_s"], rel=0.02, abs=0.05)
    assert len(t["epoch_s"]) == len(r["history"]["loss"]) == 1
    assert t["masks_s"] > 0  # its masks were computed
    assert r["execution"] == {"xla": False, "intra_op_threads": r["execution"]["intra_op_threads"]}


def test_the_timing_summary_adds_the_runs_kinds_and_counts_the_study_in_dense_epochs():
    from pruning.report import timing

    runs = [{"run": "dense", "started": "2026-11-26T10:00:00+0000",
             "timing": {"train_s": 90.0, "validation_s": 6.0, "eval_s": 3.0, "masks_s": 0.0, "io_s": 1.0,
                        "other_s": 0.0, "epoch_s": [9.0, 10.0, 12.0]}},
            {"run": "weight_k50", "started": "2026-11-26T10:02:00+0000",
             "timing": {"train_s": 30.0, "validation_s": 2.0, "eval_s": 4.0, "masks_s": 1.0, "io_s": 2.0,
                        "other_s": 1.0, "epoch_s": [6.0]}}]
    from datetime import datetime, timezone

    assert timing.started_since(runs, datetime(2026, 11, 26, 10, 1, tzinfo=timezone.utc).timestamp()) == runs[1:]
    assert timing.dense_epoch_s(runs) == 10.0
    text = timing.format_timing(runs, 300.0, 10.0)
    # 140 s in all; outside the epochs: 3 + 0 + 1 + 0 + 4 + 1 + 2 + 1 = 12 s = 9 %
    assert text.splitlines() == [
        "time in the 2 run(s) trained now, summed over runs (workers overlap), in min: training 2.0, per-epoch "
        "validation 0.1, evaluation 0.1, masks 0.0, I/O and sizes 0.1, other 0.0; outside the epochs: 9% of the "
        "runs' time",
        "study wall time 5.0 min = 30 dense epochs (median dense epoch 10.0 s, validation included)"]
    assert timing.format_timing([], 10.0, None) == "time: no run was trained by this command"


def test_xla_trains_the_same_run_with_compiled_steps_and_records_it(study, tmp_path):
    from pruning.study.run import train_run

    shutil.copytree(paths.run_dir(study["logdir"], "dense"), paths.run_dir(tmp_path, "dense"))
    cfg = RunConfig(study["hyper"], "weight", 50, "dense")
    r = train_run(cfg, tmp_path, study["data"], xla=True)
    assert r["status"] == "ok" and r["execution"]["xla"] is True
    assert r["sparsity"]["weight_sparsity"] == study["results"]["weight_k50"]["sparsity"]["weight_sparsity"]
    assert check_existing(cfg, tmp_path) == "done"  # how a run executes is not part of what it is


def test_evaluate_gives_keras_accuracy_exactly_and_its_loss_to_float32_precision(study):
    from pruning.core.layers import load_model
    from pruning.study.run import EVAL_BATCH, compile_model, evaluate

    data = study["data"]
    for name in ("dense", "weight_k75", "neuron_k50"):
        model = load_model(paths.model_file(study["logdir"], name))
        compile_model(model, 1e-3, 0.0, 0)
        for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
            loss, acc = model.evaluate(x, y, batch_size=EVAL_BATCH, verbose=0)
            ours = evaluate(model, x, y)
            assert ours[1] == pytest.approx(acc, abs=1e-7)  # the same hits, as a float64 fraction
            assert round(ours[1] * len(y)) == round(acc * len(y))
            assert ours[0] == pytest.approx(loss, rel=1e-5)
        logits = model.predict(data.x_test, verbose=0)
        assert evaluate(model, data.x_test, data.y_test)[1] == np.mean(logits.argmax(1) == data.y_test)


def test_a_run_computes_the_same_whatever_its_process_ran_before(study, tmp_path, monkeypatch):
    """weight_k75 starts from weight_k50 and takes its one-shot accuracy from the dense model, which a
    worker keeps loaded between runs (or loads, building layers and drawing random numbers, when it
    has not). Retrained again here with the dense model cached and random draws made before training
    that the study's run never made, it gives the study's result exactly: training starts from the seed."""
    import shutil

    import keras
    import tensorflow as tf

    from pruning.study import run as run_module

    logdir = tmp_path / "logs"
    for name in ("dense", "weight_k50"):
        shutil.copytree(paths.run_dir(study["logdir"], name), paths.run_dir(logdir, name))
    run_module._DENSE.clear()
    cached = run_module._dense_model(paths.model_file(logdir, "dense"))  # as in a worker that ran others

    def busy_dense_model(path, trusted=False):
        tf.random.uniform((7,)), keras.random.uniform((7,)), np.random.random(7)  # draws the study never made
        return cached

    monkeypatch.setattr(run_module, "_dense_model", busy_dense_model)
    cfg = RunConfig(study["hyper"], "weight", 75, "weight_k50")
    again = run_module.train_run(cfg, logdir, study["data"])
    first = study["results"]["weight_k75"]
    for key in ("oneshot_test_accuracy", "oneshot_train_accuracy", "test_accuracy", "train_loss", "test_loss"):
        assert again[key] == first[key], key
    a = [l.numpy() for l in _load(study, "weight_k75").trainable_weights]
    b = [l.numpy() for l in keras.saving.load_model(paths.model_file(logdir, "weight_k75")).trainable_weights]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_the_learning_rate_schedules_and_a_default_schedule_keeps_earlier_runs_identities(tiny_data):
    from pruning.models.mlp import build_mlp
    from pruning.study.run import compile_model

    assert "lr_schedule" not in RunConfig(_hyper()).identity()["train"]  # runs written before the setting resume
    constant = replace(_hyper(), train=replace(_hyper().train, lr_schedule="constant"))
    assert RunConfig(constant).identity()["train"]["lr_schedule"] == "constant"
    rates = {}
    for name, kwargs in {"cosine": {}, "shifted": {"start_step": 50}, "constant": {"schedule": "constant"}}.items():
        model = build_mlp(tiny_data.input_dim, ModelConfig(hidden=HIDDEN))
        compile_model(model, 1e-3, 0.5, 100, **kwargs)
        model.optimizer.build(model.trainable_variables)
        model.optimizer.iterations.assign(50)
        rates[name] = float(model.optimizer.learning_rate)
    # step 50 of a cosine decay over 100 steps is half the peak; shifted by 50 steps, it is the end: zero
    assert rates == pytest.approx({"cosine": 5e-4, "shifted": 0.0, "constant": 1e-3}, rel=1e-6, abs=1e-12)
    with pytest.raises(ConfigError, match="--lr-schedule"):
        TrainConfig(lr_schedule="linear")
