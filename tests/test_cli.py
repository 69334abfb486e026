"""The command lines: bad input is exit status 2 with a message naming the argument or file,
never a traceback. In process (pruning.cli) except one real train.py subprocess."""
import json

import pytest

from pruning import cli, paths
from helpers import IDX_NAMES, run_script, write_mnist_dir


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty directory, so a default --logdir cannot touch the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def corrupt_dir(tmp_path_factory):
    d = write_mnist_dir(tmp_path_factory.mktemp("corrupt"), n_train=20, n_test=10, side=4)
    bad = d / (IDX_NAMES["train_images"] + ".gz")
    bad.write_bytes(bad.read_bytes()[:40])  # a gzip stream cut short
    return d, bad


def _assert_user_error(captured, *needles):
    err = captured.err
    assert "Traceback" not in err and "Traceback" not in captured.out
    for needle in needles:
        assert needle in err, f"{needle!r} not in stderr:\n{err}"


# --------------------------------------------------------------------------- argparse errors
@pytest.mark.parametrize("argv, needles", [
    (["--sparsity", "100"], ("argument --sparsity", "outside [0, 100)")),
    (["--sparsity", "-1"], ("argument --sparsity", "outside [0, 100)")),
    (["--sparsity", "nan"], ("argument --sparsity", "outside [0, 100)")),
    (["--sparsity", "ninety"], ("argument --sparsity", "'ninety'")),
    (["--strategy", "foo"], ("argument --strategy", "'foo'")),
    (["--hidden", "32,0"], ("--hidden",)),
    (["--hidden", "32,x"], ("argument --hidden",)),
    (["--lr", "0"], ("--lr must be > 0",)),
    (["--lr", "inf"], ("--lr must be > 0",)),
    (["--epochs", "-1"], ("--epochs must be >= 0",)),
    (["--protocol", "magic"], ("argument --protocol", "'magic'")),
    (["--data-source", "ftp"], ("argument --data-source", "'ftp'")),
])
def test_train_bad_argument_exits_2_naming_it(in_tmp, capsys, argv, needles):
    with pytest.raises(SystemExit) as info:
        cli.train_main(argv + ["--logdir", str(in_tmp / "logs")])
    assert info.value.code == 2
    _assert_user_error(capsys.readouterr(), *needles)
    assert not (in_tmp / "logs").exists()


@pytest.mark.parametrize("argv, needles", [
    (["--sparsities", "0,50,100"], ("--sparsities", "100")),
    (["--sparsities", "0,-5"], ("--sparsities", "-5")),
    (["--sparsities", "0,abc"], ("argument --sparsities",)),
    (["--strategies", "weight,foo"], ("--strategies", "'foo'")),
    (["--jobs", "0"], ("--jobs must be > 0",)),
])
def test_study_bad_argument_exits_2_naming_it(in_tmp, capsys, argv, needles):
    with pytest.raises(SystemExit) as info:
        cli.study_main_guarded(argv + ["--logdir", str(in_tmp / "logs")])
    assert info.value.code == 2
    _assert_user_error(capsys.readouterr(), *needles)


def test_main_alternate_has_no_jobs_flag(in_tmp, capsys):
    with pytest.raises(SystemExit) as info:
        cli.alternate_main_guarded(["--jobs", "2"])
    assert info.value.code == 2
    _assert_user_error(capsys.readouterr(), "--jobs")
    assert "--jobs" in cli.study_parser(False).format_help()


# --------------------------------------------------------------------------- data errors
def test_train_missing_data_dir_exits_2_naming_it(in_tmp, capsys):
    missing = in_tmp / "no-such-mnist"
    assert cli.train_main(["--data-dir", str(missing), "--logdir", str(in_tmp / "logs")]) == 2
    _assert_user_error(capsys.readouterr(), "error:", str(missing), "does not exist")


def test_train_corrupt_file_exits_2_naming_it(in_tmp, capsys, corrupt_dir):
    d, bad = corrupt_dir
    assert cli.train_main(["--data-dir", str(d), "--logdir", str(in_tmp / "logs")]) == 2
    _assert_user_error(capsys.readouterr(), str(bad), "corrupt or truncated")


def test_study_missing_data_dir_exits_2_before_training(in_tmp, capsys):
    missing = in_tmp / "nowhere"
    assert cli.study_main_guarded(["--data-dir", str(missing), "--logdir", str(in_tmp / "logs")]) == 2
    _assert_user_error(capsys.readouterr(), str(missing))
    assert not (in_tmp / "logs").exists()


def test_train_from_run_that_does_not_exist_exits_2(in_tmp, capsys):
    argv = ["--sparsity", "50", "--from-run", "weight_k25", "--logdir", str(in_tmp / "logs")]
    assert cli.train_main(argv) == 2
    _assert_user_error(capsys.readouterr(), "--from-run weight_k25", "holds no finished run")


def test_plotting_empty_logdir_exits_2_in_process(in_tmp, capsys):
    (in_tmp / "empty").mkdir()
    assert cli.plotting_main(["--logdir", str(in_tmp / "empty"), "--out", str(in_tmp / "p")]) == 2
    _assert_user_error(capsys.readouterr(), str(in_tmp / "empty"), "no finished run")
    assert not (in_tmp / "p").exists()


def test_benchmark_on_a_logdir_with_no_finished_runs_says_so(in_tmp, capsys):
    (in_tmp / "logs" / "dense").mkdir(parents=True)
    assert cli.benchmark_main(["--logdir", "logs", "--no-training"]) == 2
    _assert_user_error(capsys.readouterr(), "logs holds no finished study", "python main.py")


def test_train_py_script_corrupt_file_exits_2_without_traceback(tmp_path, corrupt_dir):
    """The real script, in a fresh interpreter: the exit status and stderr a user sees."""
    d, bad = corrupt_dir
    proc, _ = run_script("train.py", "--data-dir", d, "--sparsity", "50", "--logdir", tmp_path / "logs", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"error: {bad} is a corrupt or truncated gzip file" in proc.stderr


# --------------------------------------------------------------------------- a real train.py run, in process
def test_train_main_trains_dense_then_the_target_and_then_reports_it_finished(in_tmp, capsys, mnist_dir):
    argv = ["--data-dir", str(mnist_dir), "--hidden", "16,8", "--epochs", "1", "--retrain-epochs", "1",
            "--batch-size", "64", "--strategy", "neuron", "--sparsity", "50", "--logdir", str(in_tmp / "logs")]
    logdir = in_tmp / "logs" / "seed0"  # train.py writes into the replicate of its --seed, as main.py does
    assert cli.train_main(argv) == 0
    out = capsys.readouterr().out
    assert f"data: idx:{mnist_dir.resolve()} (600 train / 200 test)" in out
    assert "dense: started" in out and "neuron_k50: started" in out
    assert f"result: {paths.result_file(str(logdir), 'neuron_k50')}" in out
    r = json.loads((logdir / "neuron_k50" / "result.json").read_text())
    assert r["status"] == "ok" and r["config"]["parent"] == "dense"
    # 784x16: 8 of 16 columns; 16x8: 4 of 8 columns -> (784*8 + 16*4) / (784*16 + 16*8)
    assert r["sparsity"]["weight_sparsity"] == (784 * 8 + 16 * 4) / (784 * 16 + 16 * 8)
    assert "prunable weights zero 50.00%" in out
    mtime = (logdir / "neuron_k50" / "result.json").stat().st_mtime_ns
    assert cli.train_main(argv) == 0
    out = capsys.readouterr().out
    assert "is already finished; pass --overwrite to retrain it" in out and "started" not in out
    assert (logdir / "neuron_k50" / "result.json").stat().st_mtime_ns == mtime


# --------------------------------------------------------------------------- repeats, percentages, names
@pytest.mark.parametrize("argv, needles", [
    (["--strategies", "weight,weight"], ("--strategies lists weight more than once",)),
    (["--sparsities", "50,50"], ("--sparsities lists 50 more than once",)),
    (["--sparsities", "0,50,50.0,90"], ("--sparsities lists 50 more than once",)),
    (["--sparsities", "90%,90"], ("--sparsities lists 90 more than once",)),
    (["--strategies", ""], ("--strategies must name at least one strategy",)),
    (["--strategies", ","], ("--strategies must name at least one strategy",)),
    (["--sparsities", ""], ("--sparsities must list at least one sparsity",)),
    (["--seed", "-1"], ("--seed must be an integer in [0, 2**32)",)),
    (["--seeds", ""], ("--seeds must list at least one seed",)),
    (["--seeds", "0,-1"], ("--seeds: seed -1 is outside [0, 2**32)",)),
    (["--seeds", "0,1,1"], ("--seeds lists 1 more than once",)),
    (["--seeds", "0,x"], ("argument --seeds",)),
    (["--seed", str(2**32)], ("--seed must be an integer in [0, 2**32)",)),
])
def test_study_repeats_empty_lists_and_bad_seeds_exit_2_before_anything_is_written(in_tmp, capsys, argv, needles):
    with pytest.raises(SystemExit) as info:
        cli.study_main_guarded(argv + ["--logdir", str(in_tmp / "logs")])
    assert info.value.code == 2
    _assert_user_error(capsys.readouterr(), *needles)
    assert not (in_tmp / "logs").exists()


def test_train_seed_minus_one_exits_2_naming_it(in_tmp, capsys):
    with pytest.raises(SystemExit) as info:
        cli.train_main(["--seed", "-1", "--logdir", str(in_tmp / "logs")])
    assert info.value.code == 2
    _assert_user_error(capsys.readouterr(), "--seed must be an integer")


def test_percent_signs_are_accepted_and_main_takes_strategy_and_sparsity_for_one_value():
    args = cli.study_parser(False).parse_args(["--sparsities", "50%,90", "--strategy", "neuron"])
    assert args.sparsities == (50.0, 90.0) and args.strategies == ("neuron",)
    args = cli.study_parser(False).parse_args(["--sparsity", "95 %", "--strategies", "weight,neuron"])
    assert args.sparsities == (95.0,) and args.strategies == ("weight", "neuron")
    assert cli.train_parser().parse_args(["--sparsity", "97.5%"]).sparsity == 97.5


def test_a_fractional_sparsity_gets_a_percentage_notice(in_tmp, capsys, mnist_dir):
    (in_tmp / "a-file").write_text("")
    code = cli.study_main_guarded(["--sparsities", "0,0.9", "--data-dir", str(mnist_dir), "--logdir",
                                   str(in_tmp / "logs"), "--plots", str(in_tmp / "a-file")])
    out, err = capsys.readouterr()
    assert "note: sparsities are percentages: 0.9 means 0.9 % of the weights" in out
    assert "Pass 90 (or 90%)" in out
    assert code == 2 and "--plots" in err  # stopped before training by the unwritable --plots


@pytest.mark.parametrize("main, typo, hint", [
    (cli.study_main_guarded, "--sparsites", "--sparsities"),
    (cli.study_main_guarded, "--stratgies", "--strategies"),
    (cli.train_main, "--sparsty", "--sparsity"),
    (cli.plotting_main, "--outt", "--out"),
])
def test_an_unknown_flag_suggests_the_closest_known_one(in_tmp, capsys, main, typo, hint):
    with pytest.raises(SystemExit) as info:
        main([typo, "50"])
    assert info.value.code == 2
    _assert_user_error(capsys.readouterr(), f"unrecognized arguments: {typo} 50", f"{typo}: did you mean {hint}?")


def test_plotting_takes_plots_and_keeps_out_as_its_old_name():
    p_new = cli.study_parser(False).parse_args(["--plots", "a"])
    p_old = cli.study_parser(False).parse_args(["--out", "a"])
    assert p_new.plots == p_old.plots == "a"
    assert cli.study_parser(False).parse_args([]).plots is None  # the study's own folder


# --------------------------------------------------------------------------- file-system faults: exit 2, no traceback
def _study_argv(in_tmp, mnist_dir, *extra):
    return ["--data-dir", str(mnist_dir), "--hidden", "8", "--epochs", "1", "--retrain-epochs", "1",
            "--sparsities", "0,50", "--strategies", "weight", *map(str, extra)]


def _readonly(monkeypatch, directory):
    """Simulate a read-only directory for root too: creating anything in it fails with EACCES."""
    import errno
    import os as _os

    from pruning import files

    directory = str(directory)
    inside = lambda p: str(p) == directory or str(p).startswith(directory + "/")  # noqa: E731
    real_mkdir, real_probe = _os.mkdir, files._probe

    def mkdir(path, *a, **k):
        if inside(_os.path.dirname(str(path))) and not _os.path.isdir(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_mkdir(path, *a, **k)

    def probe(path):
        if inside(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_probe(path)

    monkeypatch.setattr(_os, "mkdir", mkdir)
    monkeypatch.setattr(files, "_probe", probe)


@pytest.mark.parametrize("case", ["logdir_is_a_file", "logdir_under_a_file", "logdir_under_readonly",
                                  "readonly_logdir", "readonly_plots", "plots_is_a_file"])
def test_unwritable_outputs_exit_2_naming_the_path_before_any_training(in_tmp, capsys, mnist_dir, monkeypatch, case):
    logs, plots = in_tmp / "logs", in_tmp / "figs"
    if case == "logdir_is_a_file":
        logs.write_text("x")
    elif case == "logdir_under_a_file":
        (in_tmp / "f").write_text("x")
        logs = in_tmp / "f" / "logs"
    elif case == "logdir_under_readonly":
        (in_tmp / "ro").mkdir()
        logs = in_tmp / "ro" / "logs"
        _readonly(monkeypatch, in_tmp / "ro")
    elif case == "readonly_logdir":
        logs.mkdir()
        _readonly(monkeypatch, logs)
    elif case == "readonly_plots":
        plots.mkdir()
        _readonly(monkeypatch, plots)
    else:
        plots.write_text("x")
    code = cli.study_main_guarded(_study_argv(in_tmp, mnist_dir, "--logdir", logs, "--plots", plots))
    out, err = capsys.readouterr()
    assert code == 2, out + err
    flag = "--plots" if "plots" in case else "--logdir"
    assert "Traceback" not in out + err
    assert f"error: {flag} {plots if 'plots' in case else logs}" in err
    assert "started" not in out  # nothing trained
    assert not (logs / "seed0").exists()


def test_a_full_disk_exits_2_with_a_message_not_a_traceback(in_tmp, capsys, mnist_dir, monkeypatch):
    import errno

    from pruning import files

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(files, "atomic_write_bytes", full)
    code = cli.study_main_guarded(_study_argv(in_tmp, mnist_dir, "--logdir", in_tmp / "logs"))
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err + out
    assert f"error: the disk holding {in_tmp / 'logs' / 'study.json'} is full (No space left on device)" in err
    assert "rerun the same command" in err


def test_a_worker_on_a_full_disk_stops_the_study_instead_of_recording_a_failure(tmp_path, monkeypatch, tiny_data):
    """The worker side: a full disk is raised to the study (which stops with exit 2), not written down
    as a failed run (which the full disk could not take anyway)."""
    import errno
    import queue

    from pruning.config import Hyper, ModelConfig, RunConfig, TrainConfig
    from pruning.study import engine, run

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(run, "write_json", full)
    monkeypatch.setattr(engine, "write_json", full)
    cfg = RunConfig(Hyper(model=ModelConfig(hidden=(8,)), train=TrainConfig(epochs=1)))
    monkeypatch.setattr(engine, "_WORKER", {"data": {cfg.hyper.data: tiny_data}, "queue": queue.Queue(), "threads": 1})
    with pytest.raises(OSError) as info:
        engine._run_chain([cfg.to_dict()], str(tmp_path / "logs"))
    assert info.value.errno == errno.ENOSPC
    assert not (tmp_path / "logs" / "dense" / "result.json").exists()


def test_tensorflow_start_up_lines_are_hidden_unless_verbose():
    import subprocess
    import sys

    from helpers import REPO

    # quiet: main.py's end-to-end test asserts that its stderr (study and three workers) is empty
    code = "from pruning.tfsetup import import_tensorflow; import_tensorflow(True)"
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert loud.returncode == 0
    assert "oneDNN" in loud.stderr  # TensorFlow's own notice, shown with --verbose


# --------------------------------------------------------------------------- strategies come from the registry
def test_every_registered_strategy_is_a_choice_with_its_help(monkeypatch):
    import numpy as np

    from pruning.config import Hyper, RunConfig, StudyConfig
    from pruning.core import masks

    assert StudyConfig(strategies=("random", "random_neuron", "global_weight")).strategies[0] == "random"
    help_text = cli.study_parser(False).format_help()
    assert "random_neuron (k% of each hidden layer's units chosen at random" in " ".join(help_text.split())
    monkeypatch.setitem(masks.STRATEGIES, "smallest_first_rows", masks.Strategy(
        "smallest_first_rows", lambda kernel, info: np.arange(kernel.size).reshape(kernel.shape), "weight", "layer",
        "first rows", "tab:red", "the first k% of the entries"))
    assert StudyConfig(strategies=("smallest_first_rows",)).strategies == ("smallest_first_rows",)
    assert RunConfig(Hyper(), "smallest_first_rows", 50).name == "smallest_first_rows_k50"
    assert "smallest_first_rows" in cli.train_parser().format_help()


GPU_PROBE = """
from types import SimpleNamespace
import tensorflow as tf
from tensorflow.python.eager import context
from pruning.study import engine

gpus = [SimpleNamespace(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(2)]
calls = []
real_list = tf.config.list_physical_devices
tf.config.list_physical_devices = lambda kind=None: gpus if kind == "GPU" else real_list(kind)
tf.config.experimental.set_memory_growth = lambda dev, on: calls.append((dev.name, on, context.context()._initialized))
engine._init_worker(1, None)  # a study's worker starting up
print(calls)
"""


def test_every_visible_gpu_gets_memory_growth_before_tensorflow_initialises(monkeypatch):
    """No GPU here: TensorFlow's device list is faked, in a fresh interpreter (where TensorFlow has not
    started). Checked: a worker's start-up makes the call for every GPU, before the runtime starts
    (when TensorFlow still accepts it), and a GPU already initialised is left as it is, without a crash."""
    import subprocess
    import sys

    from helpers import REPO

    proc = subprocess.run([sys.executable, "-c", GPU_PROBE], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == (
        "[('/physical_device:GPU:0', True, False), ('/physical_device:GPU:1', True, False)]")

    import tensorflow as tf

    from pruning import tfsetup

    def too_late(dev, on):
        raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [object()] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", too_late)
    assert tfsetup.enable_gpu_memory_growth(tf) == []
