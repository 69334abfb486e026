"""Nothing mixed, nothing trusted blindly: damaged files are noticed and redone, a log directory holds one
study, ``train.py --from-run`` checks its parent, data sets are recognised by their content, and the
benchmark refuses a lottery study. Each reproduction of issue 21 is a test here."""
import hashlib
import io
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pruning import cli, files, paths
from pruning.config import (ConfigError, DataConfig, Hyper, ModelConfig, PruneConfig, RunConfig, StudyConfig,
                            TrainConfig)
from pruning.data import sources as pdata
from pruning.report import results
from pruning.study.plan import StudyError, plan_study, runs_to_do
from helpers import REPO, run_script, write_mnist_dir

HIDDEN = (12, 8)
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def _hyper(data_dir, **model) -> Hyper:
    return Hyper(data=DataConfig(data_dir=str(data_dir), data_source="idx"),
                 model=ModelConfig(hidden=model.get("hidden", HIDDEN)),
                 train=TrainConfig(epochs=2, batch_size=32, lr=1e-2), prune=PruneConfig(retrain_epochs=1))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """dense -> weight_k50 -> weight_k75 as seed 0 of a study on synthetic IDX files, trained in process."""
    from pruning.data import load
    from pruning.study.run import train_run

    root = tmp_path_factory.mktemp("trust")
    data_dir = write_mnist_dir(root / "data", 300, 100, side=10)
    hyper = _hyper(data_dir)
    data = load(hyper.data)
    sc = StudyConfig(sparsities=(0, 50, 75), strategies=("weight",), jobs=1)
    logdir = paths.seed_dir(root / "logs", 0)
    for chain in plan_study(hyper, sc):
        for cfg in chain:
            assert train_run(cfg, logdir, data)["status"] == "ok"
    files.write_json(paths.study_file(root / "logs"), {"hyper": RunConfig(hyper).to_dict()["hyper"], "seeds": [0],
                                                       "data": data.describe(), "study": {
                                                           "sparsities": [0, 50, 75], "strategies": ["weight"],
                                                           "jobs": 1}})
    return {"root": root / "logs", "logdir": logdir, "hyper": hyper, "study": sc, "data": data, "data_dir": data_dir}


def _copy(study, tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "logs"
    shutil.copytree(study["root"], root)
    return root, paths.seed_dir(root, 0)


def _flip_a_byte(path: Path) -> None:
    """Damage a file without changing its size: only its hash tells."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


# --------------------------------------------------------------------------- 1. damaged files
def test_a_result_records_each_files_size_and_sha256(study):
    r = results.read_result(study["logdir"], "weight_k50")
    rdir = paths.run_dir(study["logdir"], "weight_k50")
    assert set(r["checks"]) == {paths.MODEL, paths.SPARSE_MODEL}
    for name, check in r["checks"].items():
        assert check == {"size": (rdir / name).stat().st_size,
                         "sha256": hashlib.sha256((rdir / name).read_bytes()).hexdigest()}


def test_a_truncated_model_is_redone_with_its_chain_and_named_in_a_notice(study, tmp_path):
    _, logdir = _copy(study, tmp_path)
    chains = plan_study(study["hyper"], study["study"])
    model = paths.model_file(logdir, "weight_k50")
    size = model.stat().st_size
    os.truncate(model, 100)
    notices = []
    assert runs_to_do(chains, logdir, notices=notices) == {"weight_k50", "weight_k75"}
    assert notices == [f"{logdir / 'weight_k50'}: its result.json says finished, but model.keras is damaged "
                       f"(100 bytes, {size:,} when written); redoing it (and the runs of its chain after it)"]


def test_a_same_size_damage_is_found_in_the_files_the_next_runs_read(study, tmp_path):
    _, logdir = _copy(study, tmp_path)
    chains = plan_study(study["hyper"], study["study"])
    _flip_a_byte(paths.model_file(logdir, "weight_k50"))
    # nothing reads weight_k50 while weight_k75 is finished: only sizes are compared, and they agree
    assert runs_to_do(chains, logdir) == set()
    # weight_k75 to redo: it reads weight_k50, whose hash is then checked, so weight_k50 is redone first
    os.remove(paths.result_file(logdir, "weight_k75"))
    notices = []
    assert runs_to_do(chains, logdir, notices=notices) == {"weight_k50", "weight_k75"}
    assert notices == [f"{logdir / 'weight_k50'}: its result.json says finished, but model.keras is damaged (its "
                       f"SHA-256 differs from the one written); redoing it (and the runs of its chain after it)"]
    # the dense model is read by every pruned run: a damaged one is redone as soon as a pruned run is
    _, logdir = _copy(study, tmp_path / "again")
    _flip_a_byte(paths.model_file(logdir, "dense"))
    assert runs_to_do(chains, logdir) == set()
    os.remove(paths.result_file(logdir, "weight_k75"))
    assert runs_to_do(chains, logdir) == {"dense", "weight_k75"}


def test_a_run_whose_parent_is_damaged_fails_naming_the_file_not_with_a_keras_traceback(study, tmp_path):
    from pruning.study.run import train_run

    _, logdir = _copy(study, tmp_path)
    _flip_a_byte(paths.model_file(logdir, "weight_k50"))
    r = train_run(RunConfig(study["hyper"], "weight", 75, "weight_k50"), logdir, study["data"])
    assert r["status"] == "failed"
    assert r["reason"] == (f"parent run weight_k50 cannot be read: in {logdir / 'weight_k50'}, model.keras is damaged "
                           f"(its SHA-256 differs from the one written). Rerun the same command: the study redoes a "
                           f"run whose files are damaged, and the runs that start from it")


def test_a_parent_written_before_checksums_that_keras_cannot_read_fails_naming_the_file(study, tmp_path):
    from pruning.study.run import train_run

    _, logdir = _copy(study, tmp_path)
    result = results.read_result(logdir, "weight_k50")
    del result["checks"]  # as results were written before sizes and hashes were recorded
    files.write_json(paths.result_file(logdir, "weight_k50"), result)
    os.truncate(paths.model_file(logdir, "weight_k50"), 100)
    r = train_run(RunConfig(study["hyper"], "weight", 75, "weight_k50"), logdir, study["data"])
    assert r["status"] == "failed"
    assert r["reason"].startswith(f"parent run's {paths.model_file(logdir, 'weight_k50')} cannot be read as a Keras "
                                  f"model (")
    assert "Delete its run directory and rerun the same command" in r["reason"]


@pytest.fixture(scope="module")
def lottery(tmp_path_factory, mnist_dir):
    """The issue's lottery study (--hidden 32,16 --epochs 1 --levels 2 --prune-fraction 0.5), on synthetic data."""
    root = tmp_path_factory.mktemp("lottery")
    argv = ["--protocol", "lottery", "--hidden", "16,8", "--epochs", "1", "--levels", "2", "--prune-fraction", "0.5",
            "--data-dir", str(mnist_dir), "--validation-size", "100", "--logdir", str(root / "x")]
    assert cli.study_main_guarded(argv) == 0
    return {"logdir": root / "x", "argv": argv}


def test_the_issues_lottery_reproduction_redoes_a_truncated_dense_model_and_trains_on(lottery, tmp_path, capsys):
    logdir = tmp_path / "x"
    shutil.copytree(lottery["logdir"], logdir)
    argv = [a if a != str(lottery["logdir"]) else str(logdir) for a in lottery["argv"]]
    dense = paths.model_file(paths.seed_dir(logdir, 0), "dense")
    os.truncate(dense, 100)
    capsys.readouterr()
    assert cli.study_main_guarded(argv) == 0
    out = capsys.readouterr().out
    assert f"notice: {dense.parent}: its result.json says finished, but model.keras is damaged (100 bytes," in out
    # the dense run and every level after it are redone (the first ticket starts from the dense run's rewind point)
    assert "[1/13] dense: started" in out and "resuming" not in out
    assert dense.stat().st_size > 100
    # the issue's next step: a new strategy reads the dense run: it trains, no traceback, every run ok
    assert cli.study_main_guarded(argv + ["--strategies", "weight,neuron,global_weight"]) == 0
    out = capsys.readouterr().out
    assert "Traceback" not in out and "not ok" not in out


def test_a_failed_run_is_named_once_in_the_not_ok_line(lottery, tmp_path, capsys):
    from pruning.report import lottery as lot

    logdir = tmp_path / "x"
    shutil.copytree(lottery["logdir"], logdir)
    seed0 = paths.seed_dir(logdir, 0)
    r = results.read_result(seed0, "weight_L02_reinit")
    files.write_json(paths.result_file(seed0, "weight_L02_reinit"), {**r, "status": "failed", "reason": "test"})
    rows = lot.study_rows(logdir)
    assert lot.missing_runs(rows, logdir) == ["weight_L02_reinit"]  # one seed: named as the table names it


# --------------------------------------------------------------------------- 2. one study per log directory
def test_a_seed_added_with_another_configuration_is_refused_before_anything_trains(study, tmp_path):
    from pruning.study.engine import run_seeds

    root, _ = _copy(study, tmp_path)
    other = replace(study["hyper"], model=ModelConfig(hidden=(16,)), train=replace(study["hyper"].train, seed=2))
    before = paths.study_file(root).read_bytes()
    out = io.StringIO()
    with pytest.raises(StudyError) as e:
        run_seeds(other, replace(study["study"], seeds=(2,)), root, out=out, data_info=study["data"].describe())
    assert str(e.value).startswith(f"{root} holds a study made with another configuration (study.json: model.hidden: "
                                   f"[12, 8] there, [16] now). A log directory holds one study")
    assert not paths.seed_dir(root, 2).exists() and paths.study_file(root).read_bytes() == before
    assert out.getvalue() == ""


def test_a_seed_added_with_the_same_configuration_joins_the_studys_seeds(study, tmp_path):
    from pruning.study.plan import check_same_study

    root, _ = _copy(study, tmp_path)
    seed2 = replace(study["hyper"], train=replace(study["hyper"].train, seed=2))
    check_same_study(seed2, root, [2], data_info=study["data"].describe())  # the seed differs: that is allowed
    # a lottery's prune fraction is part of the study (the issue's 0.2 added to a 0.5 study)
    lottery = replace(seed2, prune=PruneConfig(protocol="lottery"))
    with pytest.raises(StudyError, match=r"protocol: 'retrain' there, 'lottery' now"):
        check_same_study(lottery, root, [2])
    # other data: refused, naming both
    with pytest.raises(StudyError, match="holds a study trained on other data"):
        check_same_study(seed2, root, [2], data_info={**study["data"].describe(), "fingerprint": "0" * 16})
    # --overwrite of every seed there replaces the study: nothing to compare with
    other = replace(study["hyper"], model=ModelConfig(hidden=(16,)))
    check_same_study(other, root, [0], overwrite=True)


def test_plotting_refuses_a_directory_whose_seeds_disagree(study, tmp_path, capsys):
    root, seed0 = _copy(study, tmp_path)
    seed1 = paths.seed_dir(root, 1)
    shutil.copytree(seed0, seed1)
    for name in ("dense", "weight_k50", "weight_k75"):  # seed 1 made with --hidden 16 (as the old code let it be)
        r = results.read_result(seed1, name)
        r["config"]["hyper"]["model"]["hidden"] = [16]
        r["config"]["hyper"]["train"]["seed"] = 1
        files.write_json(paths.result_file(seed1, name), r)
    with pytest.raises(files.ResultError) as e:
        results.read_replicates(root)
    assert str(e.value).startswith(f"{root} mixes studies: seed1/dense was made with another configuration than in "
                                   f"seed0 (model.hidden: [12, 8] in seed0, [16] in seed1)")
    assert cli.plotting_main(["--logdir", str(root), "--plots", str(tmp_path / "figs")]) == 2
    assert "mixes studies" in capsys.readouterr().err and not (tmp_path / "figs").exists()


# --------------------------------------------------------------------------- 3. train.py --from-run
def test_train_from_run_refuses_a_parent_of_another_configuration_or_data(study, tmp_path, capsys):
    root, _ = _copy(study, tmp_path)
    base = ["--from-run", "weight_k75", "--strategy", "weight", "--sparsity", "90", "--epochs", "2",
            "--batch-size", "32", "--lr", "0.01", "--retrain-epochs", "1", "--data-dir", str(study["data_dir"]),
            "--logdir", str(root)]
    assert cli.train_main(base + ["--hidden", "16"]) == 2
    err = capsys.readouterr().err
    assert "made with another configuration" in err and "model.hidden: [12, 8] there, [16] now" in err
    assert not paths.run_dir(paths.seed_dir(root, 0), "weight_k90").exists()
    # the parent's data: the same files read as another data set
    assert cli.train_main(base + ["--hidden", "12,8", "--dataset", "fashion_mnist"]) == 2
    assert "dataset: 'mnist' there, 'fashion_mnist' now" in capsys.readouterr().err
    # the parent, checked as the study checks its chains: its configuration, then its data
    from pruning.study.plan import check_parent

    parent = results.read_result(paths.seed_dir(root, 0), "weight_k75")
    with pytest.raises(StudyError, match=r"was trained on other data \(mnist, idx:"):
        check_parent(parent, study["hyper"], paths.seed_dir(root, 0), {**study["data"].describe(), "fingerprint": "x"})
    check_parent(parent, study["hyper"], paths.seed_dir(root, 0), study["data"].describe())  # the same: no error


# --------------------------------------------------------------------------- 4. data sets by their content
def _md5s(directory: Path) -> dict[str, str]:
    import gzip

    return {f.name[:-3]: hashlib.md5(gzip.open(f).read()).hexdigest() for f in directory.glob("*.gz")}


def test_idx_files_given_as_another_data_set_are_refused_naming_which_they_are(tmp_path, monkeypatch):
    d = write_mnist_dir(tmp_path / "m", 50, 20, side=6)
    monkeypatch.setitem(pdata.KNOWN_CONTENT, "mnist", _md5s(d))  # these files are "MNIST's published ones"
    assert pdata.load_idx_dir(d, "mnist").recognised == "published"
    with pytest.raises(pdata.DataError) as e:
        pdata.load_idx_dir(d, "fashion_mnist")
    assert str(e.value) == (f"{d} was given as Fashion-MNIST, but its files are MNIST's (all four files' uncompressed "
                            f"bytes have the MD5s MNIST publishes). Pass --dataset mnist to use them as what they are, "
                            f"or point --data-dir at Fashion-MNIST's files (Debian's dataset-fashion-mnist package "
                            f"puts Fashion-MNIST in /usr/share/datasets/fashion-mnist).")
    # one file of the other set among them: refused too
    mixed = _md5s(d)
    monkeypatch.setitem(pdata.KNOWN_CONTENT, "mnist", {"t10k-labels-idx1-ubyte": mixed["t10k-labels-idx1-ubyte"]})
    with pytest.raises(pdata.DataError, match=r"partly another data set's \(t10k-labels-idx1-ubyte is MNIST's"):
        pdata.load_idx_dir(d, "fashion_mnist")


def test_files_of_neither_set_are_used_with_a_notice_and_two_copies_never_share_a_fingerprint(tmp_path, capsys):
    a = write_mnist_dir(tmp_path / "a", 50, 20, side=6)
    b = write_mnist_dir(tmp_path / "b", 50, 20, side=6)
    images = b / "t10k-images-idx3-ubyte.gz"
    x = pdata.read_idx(images).copy()
    x[19, 5, 5] ^= 1  # one pixel of the last test image: outside the old strided sample of the images
    pdata.write_idx(images, x)
    da, db = pdata.load_idx_dir(a), pdata.load_idx_dir(b)
    assert da.recognised == db.recognised == "unknown"
    assert da.fingerprint() != db.fingerprint()
    assert pdata.content_notice(da).startswith(f"the files in {a.resolve()} are not the published MNIST files")
    # the same arrays in memory and in IDX files: one fingerprint, whatever the wrapper
    same = pdata.Dataset(da.x_train, da.y_train, da.x_test, da.y_test, source="synthetic")
    assert same.fingerprint() == da.fingerprint()
    # the CLI prints the notice
    assert cli.study_main_guarded(["--data-dir", str(a), "--hidden", "4", "--epochs", "0", "--sparsities", "0",
                                   "--logdir", str(tmp_path / "logs")]) == 0
    assert "note: the files in" in capsys.readouterr().out


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the shared MNIST copy is not on this machine")
def test_the_real_mnist_files_are_recognised_and_refused_as_fashion_mnist():
    ds = pdata.load_idx_dir(SHARED_MNIST, "mnist")
    assert ds.recognised == "published" and pdata.content_notice(ds) is None
    assert ds.fingerprint() == "a315f4fa991453c6"  # as before contents were checked: studies resume
    with pytest.raises(pdata.DataError, match="was given as Fashion-MNIST, but its files are MNIST's"):
        pdata.load_idx_dir(SHARED_MNIST, "fashion_mnist")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debians_fashion_mnist_is_recognised_and_refused_as_mnist():
    assert pdata.load_idx_dir(DEBIAN_FASHION, "fashion_mnist").recognised == "published"
    with pytest.raises(pdata.DataError, match="was given as MNIST, but its files are Fashion-MNIST's"):
        pdata.load_idx_dir(DEBIAN_FASHION, "mnist")


def test_main_refuses_mnist_files_given_as_fashion_mnist_with_exit_2_and_nothing_written(tmp_path, monkeypatch,
                                                                                         capsys):
    d = write_mnist_dir(tmp_path / "m", 50, 20, side=6)
    monkeypatch.setitem(pdata.KNOWN_CONTENT, "mnist", _md5s(d))
    logs = tmp_path / "logs"
    assert cli.study_main_guarded(["--dataset", "fashion_mnist", "--data-dir", str(d), "--logdir", str(logs)]) == 2
    assert "but its files are MNIST's" in capsys.readouterr().err and not logs.exists()


# --------------------------------------------------------------------------- 5. benchmark.py on a lottery study
def test_benchmark_refuses_a_lottery_study_before_timing_and_writes_nothing(lottery, capsys):
    before = sorted(p.relative_to(lottery["logdir"]) for p in lottery["logdir"].rglob("*"))
    with pytest.raises(SystemExit) as e:  # an argparse error, as for a CNN's study: exit status 2
        cli.benchmark_main(["--logdir", str(lottery["logdir"]), "--repeats", "1", "--no-training"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "is a lottery study (--protocol lottery)" in err and "Traceback" not in err
    assert sorted(p.relative_to(lottery["logdir"]) for p in lottery["logdir"].rglob("*")) == before


# --------------------------------------------------------------------------- the smaller ones
def test_filters_messages_say_what_is_wrong():
    with pytest.raises(ConfigError) as e:
        ModelConfig(name="lenet5", filters=(0,))
    assert str(e.value) == "--filters must list one positive width per convolution of --model lenet5 (its default: 20,50); got 0."
    with pytest.raises(ConfigError, match=r"^--filters is not used by --model mlp, which has no convolutions"):
        ModelConfig(name="mlp", filters=(4,))


def test_a_changed_precision_names_float32_not_none(study, tmp_path):
    from pruning.study.plan import check_existing

    _, logdir = _copy(study, tmp_path)
    bf16 = replace(study["hyper"], train=replace(study["hyper"].train, precision="bfloat16"))
    with pytest.raises(StudyError, match=r"train\.precision: 'float32' there, 'bfloat16' now"):
        check_existing(RunConfig(bf16, "none", 0.0), logdir)


def test_an_immutable_results_file_is_named_with_the_fix_that_works(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old")
    if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not possible here (not root, or a file system without attributes)")
    try:
        with pytest.raises(OSError) as e:
            files.atomic_write_bytes(target, b"new")
        assert e.value.filename == str(target)  # the file the user knows, not the temporary one beside it
        assert files.explain_fs_error(e.value) == (
            f"{target} cannot be replaced: it is marked immutable (lsattr {target} shows it), which no file permission "
            f"overrides. Remove the mark (chattr -i {target}, as root) and rerun the same command, or pass --logdir "
            f"/ --plots to another place.")
        assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]
    finally:
        subprocess.run(["chattr", "-i", str(target)], capture_output=True)


def test_a_weight_strategy_that_would_empty_a_layer_gets_a_note(tmp_path, capsys):
    from pruning.cli import emptied_kernels

    mlp = ModelConfig(hidden=(8, 3))  # kernels of 36 x 8 = 288 and 8 x 3 = 24 weights on 6x6 images
    assert emptied_kernels(mlp, 36, ["weight"], (90, 99, 99.99)) == [(99, "hidden2", 24), (99.99, "hidden1", 288),
                                                                     (99.99, "hidden2", 24)]
    assert emptied_kernels(mlp, 36, ["neuron", "global_weight"], (99.99,)) == []  # unit: their own note; global: one threshold
    assert emptied_kernels(ModelConfig(), 784, ["weight"], (99,)) == []  # 100,000 weights at least: not built
    d = write_mnist_dir(tmp_path / "m", 50, 20, side=6)
    assert cli.study_main_guarded(["--data-dir", str(d), "--hidden", "8,3", "--sparsities", "0,99.99", "--strategies",
                                   "weight", "--epochs", "0", "--logdir", str(tmp_path / "logs")]) == 0
    assert ("note: weight would remove every weight of a layer (at k = 99.99 %, layer hidden1 of 288 weights "
            "(round(0.9999 x 288) = 288)") in capsys.readouterr().out


def test_a_lenet5_study_prints_no_tensorflow_start_up_lines(tmp_path):
    d = write_mnist_dir(tmp_path / "m", 50, 20, side=28)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([os.sys.executable, str(REPO / "train.py"), "--model", "lenet5", "--data-dir", str(d),
                           "--epochs", "0", "--logdir", str(tmp_path / "logs")], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(REPO)}, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
