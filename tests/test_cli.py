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
    logdir = in_tmp / "logs"
    argv = ["--data-dir", str(mnist_dir), "--hidden", "16,8", "--epochs", "1", "--retrain-epochs", "1",
            "--batch-size", "64", "--strategy", "neuron", "--sparsity", "50", "--logdir", str(logdir)]
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
