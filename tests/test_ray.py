"""The Ray engine (--engine ray) on a real Ray cluster made here (ray.cluster_utils.Cluster: a head and
a worker node, 1 CPU each, both on this machine), each study run in process through main.py's entry
point: the same numbers as the local engine to the last digit, a node removed mid-study, a node that
cannot see the log directory, and the command line's errors.

Ray is slow to start, so the module shares one cluster, and the local engine's reference study runs
in the background (a fresh main.py process) while the cluster starts. The first cluster test lets
the study connect by itself (--ray-address) and disconnect, as main.py does; the two studies after it
run with this process already connected (the engine then uses that connection and leaves it open), so
the second finds the first one's worker processes with TensorFlow loaded. The node-removal test comes
last, as it leaves one node. Without Ray installed only the command-line tests run."""
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pruning import cli, paths
from helpers import REPO

STUDY = ["--hidden", "16,8", "--epochs", "1", "--retrain-epochs", "1", "--sparsities", "50,90",
         "--strategies", "weight,neuron", "--seeds", "0,1", "--batch-size", "32", "--lr", "0.01"]
RUNS = [f"seed{s}/{r}" for s in (0, 1) for r in ("dense", "weight_k50", "weight_k90", "neuron_k50", "neuron_k90")]
NUMBERS = ("test_accuracy", "train_accuracy", "oneshot_test_accuracy", "oneshot_train_accuracy",
           "pruned_test_accuracy", "test_loss", "train_loss")
CSV_COLUMNS = ("oneshot_test_accuracy", "oneshot_train_accuracy", "pruned_test_accuracy", "test_accuracy",
               "train_accuracy", "weight_sparsity", "effective_sparsity", "params_nonzero")


@pytest.fixture(scope="module")
def local_study(tmp_path_factory, mnist_dir):
    """The reference: the same study on the local engine (main.py --jobs 1: one worker process per seed,
    all cores), run as a user runs it, in a fresh process started at once in the background: it trains
    while the cluster starts. ``local_study()`` waits for it and returns its log directory."""
    pytest.importorskip("ray")
    logs = tmp_path_factory.mktemp("local") / "logs"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    for var in ("MNIST_DATA_DIR", "FASHION_MNIST_DATA_DIR"):
        env.pop(var, None)
    with open(logs.parent / "out.txt", "w") as out, open(logs.parent / "err.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, str(REPO / "main.py"), *_argv(mnist_dir, logs, "--jobs", "1")],
                                stdout=out, stderr=err, cwd=logs.parent, env=env)

    def finished() -> Path:
        assert proc.wait(timeout=300) == 0, (logs.parent / "err.txt").read_text()[-3000:]
        return logs

    try:
        yield finished
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def cluster(local_study):
    """A head and one worker node, 1 CPU each; shut down (every Ray process of it) after the module."""
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def connected(cluster):
    """This process connected to the cluster, as a program that calls the engine with a Ray connection
    of its own is: the studies use it and leave it open, so the second finds the first one's worker
    processes with TensorFlow loaded (about 10 s less). The first cluster test starts its own connection
    from --ray-address, as main.py does."""
    import signal

    import ray

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    ray.init(address=cluster.address, include_dashboard=False, logging_level="ERROR")
    for s, h in handlers.items():
        signal.signal(s, h)  # ray.init takes SIGTERM over; pytest's own handling stays
    try:
        yield cluster
    finally:
        ray.shutdown()


@pytest.fixture()
def no_figures(monkeypatch):
    """The studies here test the engine: the figures (tested elsewhere) are not drawn."""
    monkeypatch.setattr("pruning.report.plots.make_figures", lambda logdir, plots: ([], []))


def _argv(mnist_dir, logs, *extra) -> list[str]:
    return [*STUDY, "--data-dir", str(mnist_dir), "--logdir", str(logs), *map(str, extra)]


def _ray_argv(cluster, mnist_dir, logs) -> list[str]:
    return _argv(mnist_dir, logs, "--engine", "ray", "--ray-address", cluster.address)


def _results(logs: Path) -> dict[str, dict]:
    return {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())
            for p in sorted(logs.glob("seed*/*/result.json"))}


def _csv(logs: Path) -> dict[tuple, dict]:
    import csv

    with open(paths.results_csv(logs)) as f:
        return {(r["seed"], r["strategy"], r["sparsity"]): r for r in csv.DictReader(f)}


def _assert_same_numbers(ray_logs: Path, local_logs: Path) -> None:
    """Every accuracy and loss of every run, as result.json and results.csv hold them, to the last digit."""
    ours, theirs = _results(ray_logs), _results(local_logs)
    assert sorted(ours) == sorted(theirs) == sorted(RUNS)
    for run in RUNS:
        assert ours[run]["status"] == theirs[run]["status"] == "ok", run
        for key in NUMBERS:
            assert ours[run][key] == theirs[run][key], (run, key, ours[run][key], theirs[run][key])
    a, b = _csv(ray_logs), _csv(local_logs)
    assert sorted(a) == sorted(b) and len(a) == 8
    for row in a:
        assert {c: a[row][c] for c in CSV_COLUMNS} == {c: b[row][c] for c in CSV_COLUMNS}, row


# --------------------------------------------------------------------------- the command line (no Ray needed)
def test_engine_ray_without_ray_installed_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError, as without the package
    with pytest.raises(SystemExit) as info:
        cli.study_main_guarded(["--engine", "ray", "--logdir", str(tmp_path / "logs")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "--engine ray needs Ray" in err and "pip install -r requirements-ray.txt" in err
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("argv, needles", [
    (["--engine", "ray", "--cpus-per-run", "0"], ("--cpus-per-run must be a positive number", "got 0")),
    (["--engine", "ray", "--cpus-per-run", "-1"], ("--cpus-per-run must be a positive number", "got -1")),
    (["--engine", "ray", "--cpus-per-run", "nan"], ("--cpus-per-run must be a positive number",)),
    (["--engine", "ray", "--gpus-per-run", "-0.5"], ("--gpus-per-run must be 0", "got -0.5")),
    (["--engine", "ray", "--gpus-per-run", "1.5"], ("--gpus-per-run must be 0", "a whole number of GPUs")),
    (["--engine", "ray", "--ray-address", " "], ("--ray-address is empty",)),
    (["--ray-address", "10.0.0.1:6379"], ("--ray-address applies to the Ray engine only", "add --engine ray")),
    (["--cpus-per-run", "2", "--gpus-per-run", "1"],
     ("--cpus-per-run and --gpus-per-run apply to the Ray engine only",)),
    (["--engine", "dask"], ("argument --engine", "'dask'")),
    (["--engine", "ray", "--threads", "2"], ("--threads applies to the local engine only", "--cpus-per-run")),
    (["--threads", "0"], ("--threads must be > 0", "got 0")),
])
@pytest.mark.parametrize("main", [cli.study_main_guarded, cli.alternate_main_guarded], ids=["main", "alternate"])
def test_bad_engine_flags_exit_2_naming_the_flag_before_anything_is_written(tmp_path, capsys, argv, needles, main):
    with pytest.raises(SystemExit) as info:
        main(argv + ["--logdir", str(tmp_path / "logs")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err}"
    assert not (tmp_path / "logs").exists()


def test_a_run_that_ray_restarts_is_printed_as_restarted_and_its_epochs_counted_once():
    from pruning.config import Hyper, ModelConfig, RunConfig, TrainConfig
    from pruning.study.engine import ProgressPrinter

    runs = [RunConfig(Hyper(model=ModelConfig(hidden=(8,)), train=TrainConfig(epochs=3)))]
    out = io.StringIO()
    p = ProgressPrinter(runs, jobs=2, out=out, names=["seed1/dense"])
    epoch = {"event": "epoch", "run": "seed1/dense", "epoch": 1, "epochs": 3, "loss": 1.0, "accuracy": 0.5,
             "test_accuracy": 0.5, "seconds": 2.0}
    p({"event": "start", "run": "seed1/dense", "threads": 1, "node": "10.0.0.7"})
    p(epoch)
    p({"event": "start", "run": "seed1/dense", "threads": 1, "node": "10.0.0.8"})  # its node died: Ray retried it
    assert p.done_epochs == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/1] seed1/dense: started (3 epochs, 1 thread(s) on 10.0.0.7)"
    assert lines[2] == "[1/1] seed1/dense: restarted (3 epochs, 1 thread(s) on 10.0.0.8)"


def test_a_ray_worker_takes_its_cpu_share_in_whole_threads_at_least_one():
    from pruning.study.ray_engine import threads_for

    assert [threads_for(c) for c in (0.25, 0.5, 1.0, 1.5, 2.0, 4.0)] == [1, 1, 1, 1, 2, 4]


# --------------------------------------------------------------------------- on the cluster
@pytest.fixture()
def hidden_dir_node(cluster, tmp_path):
    """A third node whose processes see an empty file system at ``tmp_path/shared`` (a tmpfs mounted
    over it in a mount namespace of their own): a node without the study's shared file system. It is
    started as an operator starts one (ray start --address), and stopped (its whole process group) after."""
    shared = tmp_path / "shared"
    shared.mkdir()
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"mount namespaces are not available here (unshare: {probe.stderr.decode().strip()})")
    before = _cluster_node_ids(cluster)
    ray_cli = Path(sys.executable).parent / "ray"
    script = (f"mount -t tmpfs tmpfs '{shared}' && exec '{ray_cli}' start --address={cluster.address} --num-cpus=1 "
              f"--object-store-memory=157286400 --disable-usage-stats --block")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (_cluster_node_ids(cluster) - before):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the third node did not join"
            time.sleep(0.2)
        yield shared, (_cluster_node_ids(cluster) - before).pop()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        deadline = time.monotonic() + 60
        while len(_cluster_node_ids(cluster)) > len(before) and time.monotonic() < deadline:
            time.sleep(0.2)


def _cluster_node_ids(cluster) -> set[str]:
    return {n["NodeID"] for n in cluster.global_state.node_table() if n["Alive"]}


def test_a_node_that_cannot_see_the_log_directory_is_refused_before_any_training(cluster, hidden_dir_node, mnist_dir,
                                                                                  capsys):
    """The check is real: the third node's task fails to read the token file the study wrote into the
    log directory (it is not there in that node's file system), and the study refuses to start."""
    shared, hidden_node = hidden_dir_node
    logs = shared / "logs"
    code = cli.study_main_guarded(_ray_argv(cluster, mnist_dir, logs))
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    assert f"error: the log directory {logs} must be one path that every node of the Ray cluster can read and " \
           f"write (a shared file system" in err
    assert "1 of the 3 node(s) cannot" in err
    assert f"(node id {hidden_node}): cannot read {logs}/.node-check-" in err and "No such file or directory" in err
    assert "Nothing was trained" in err
    assert "started" not in out and not list(logs.rglob("result.json"))
    assert not list(logs.glob(".node-check-*")), "the token files are removed"


def test_a_study_on_two_nodes_gives_the_local_engines_numbers_to_the_last_digit(connected, local_study, mnist_dir,
                                                                                tmp_path, capsys, no_figures):
    cluster, logs = connected, tmp_path / "logs"
    code = cli.study_main_guarded(_argv(mnist_dir, logs, "--engine", "ray"))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert "ray: 2 node(s) can run a run (1 CPU, 0 GPU each), up to 2 at a time" in out
    _assert_same_numbers(logs, local_study())
    results = _results(logs)
    for run, r in results.items():
        assert r["execution"]["engine"] == "ray" and r["execution"]["cpus_per_run"] == 1.0, run
        assert r["execution"]["gpus_per_run"] == 0.0 and r["execution"]["intra_op_threads"] == 1, run
    assert {r["execution"]["node_id"] for r in results.values()} == _cluster_node_ids(cluster), "both nodes ran runs"
    assert all(r["execution"]["engine"] == "local" for r in _results(local_study()).values())
    assert not list(logs.glob(".node-check-*"))


def test_a_lottery_study_on_ray_gives_the_local_engines_numbers_to_the_last_digit(connected, mnist_dir, tmp_path,
                                                                                  capsys, no_figures):
    lottery = ["--hidden", "16,8", "--epochs", "1", "--batch-size", "32", "--lr", "0.01", "--protocol", "lottery",
               "--levels", "2", "--controls", "reinit", "--strategies", "weight", "--validation-size", "100",
               "--seeds", "0", "--data-dir", str(mnist_dir)]
    codes = [cli.study_main_guarded([*lottery, "--logdir", str(tmp_path / engine), "--engine", engine])
             for engine in ("ray", "local")]
    out, err = capsys.readouterr()
    assert codes == [0, 0], out + err
    ours, theirs = _results(tmp_path / "ray"), _results(tmp_path / "local")
    runs = ["seed0/dense", "seed0/weight_L01", "seed0/weight_L01_reinit", "seed0/weight_L02", "seed0/weight_L02_reinit"]
    assert sorted(ours) == sorted(theirs) == sorted(runs)
    for run in runs:
        assert ours[run]["execution"]["engine"] == "ray" and theirs[run]["execution"]["engine"] == "local"
        for key in ("test_accuracy", "train_accuracy", "test_loss", "train_loss"):
            assert ours[run][key] == theirs[run][key], (run, key)
        assert ours[run]["lottery"] == theirs[run]["lottery"], run
    assert ours["seed0/weight_L02"]["lottery"]["remaining"]["alive_per_layer"] == {"hidden1": 8028, "hidden2": 82}


class _Watcher(threading.Thread):
    """Records every version of every run's result.json (an atomic write makes a new file: a new inode)
    and, once four runs are finished, removes the worker node as soon as a run starts on it (``cut``)."""

    def __init__(self, cluster, logs: Path, events: list):
        super().__init__(daemon=True)
        self.cluster, self.logs, self.events, self.stop = cluster, logs, events, threading.Event()
        self.versions: dict[str, set] = {}
        self.cut = None

    def run(self):
        node = next(iter(self.cluster.worker_nodes))
        while not self.stop.is_set():
            self.scan()
            if self.cut is None and len(self.versions) >= 4:  # both dense runs and two more are finished
                busy = [ev["run"] for ev in list(self.events) if ev["event"] == "start"
                        and ev["node_id"] == node.node_id and ev["run"] not in self.versions]
                if busy:
                    self.cluster.remove_node(node)
                    self.cut = busy[-1]
            time.sleep(0.02)
        self.scan()  # the results written since the last look

    def scan(self):
        for f in self.logs.glob("seed*/*/result.json"):
            try:
                st = f.stat()
            except OSError:
                continue
            self.versions.setdefault(f"{f.parent.parent.name}/{f.parent.name}", set()).add((st.st_ino, st.st_mtime_ns))


def test_a_node_removed_mid_study_is_survived_and_every_run_is_written_once(connected, local_study, mnist_dir,
                                                                            tmp_path, capsys, no_figures,
                                                                            monkeypatch):
    """Runs last: it leaves the cluster with one node. The run the removed node was training is retried
    by Ray on the other node, from nothing; no run is written twice (every result.json is seen in one
    version only, each run is reported done once) and the numbers are still the local engine's."""
    from pruning.study.engine import ProgressPrinter

    events, show = [], ProgressPrinter.__call__
    monkeypatch.setattr(ProgressPrinter, "__call__", lambda self, ev: events.append(ev) or show(self, ev))
    logs = tmp_path / "logs"
    watcher = _Watcher(connected, logs, events)
    watcher.start()
    try:
        code = cli.study_main_guarded(_argv(mnist_dir, logs, "--engine", "ray"))
    finally:
        watcher.stop.set()
        watcher.join(10)
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert watcher.cut is not None, "the worker node was never removed"
    assert f"{watcher.cut}: restarted (1 epochs" in out, f"{watcher.cut} was not retried:\n{out}"
    assert sorted(watcher.versions) == sorted(RUNS), watcher.versions
    assert {run: len(v) for run, v in watcher.versions.items()} == dict.fromkeys(RUNS, 1), "a result written twice"
    done = [ev["run"] for ev in events if ev["event"] == "done"]
    assert sorted(done) == sorted(RUNS), "each run reported done exactly once"
    assert len([line for line in out.splitlines() if ": done, test acc" in line]) == len(RUNS)
    _assert_same_numbers(logs, local_study())


def test_a_study_of_a_users_own_network_on_ray_gives_the_local_engines_numbers(connected, tmp_path, capsys,
                                                                                no_figures):
    """--model FILE.py:FUNCTION and --dataset npz:PATH on the Ray engine: the workers import the file and read the
    data themselves, and every number is the local engine's."""
    from test_user_study import FILE, quadrants

    npz = quadrants(tmp_path / "quadrants.npz")
    argv = ["--model", f"{FILE}:residual_cnn", "--dataset", f"npz:{npz}", "--sparsities", "0,50", "--strategies",
            "weight,neuron", "--seeds", "0", "--epochs", "1", "--retrain-epochs", "1", "--batch-size", "32"]
    codes = [cli.study_main_guarded([*argv, "--logdir", str(tmp_path / engine), "--engine", engine])
             for engine in ("ray", "local")]
    out, err = capsys.readouterr()
    assert codes == [0, 0], out + err
    ours, theirs = _results(tmp_path / "ray"), _results(tmp_path / "local")
    assert sorted(ours) == sorted(theirs) == ["seed0/dense", "seed0/neuron_k50", "seed0/weight_k50"]
    threads = {run: (ours[run]["execution"]["intra_op_threads"], theirs[run]["execution"]["intra_op_threads"])
               for run in ours}
    for run in ours:
        assert ours[run]["execution"]["engine"] == "ray"
        # a convolution's sums run in another order on another thread count (dense: 1 on Ray, 2 locally), and every
        # run starts from the dense one: the numbers agree to float rounding, not to the last digit
        for key in NUMBERS:
            assert ours[run][key] == pytest.approx(theirs[run][key], abs=0.02), (run, key, threads)
        assert ours[run]["size"]["saved_params"] == theirs[run]["size"]["saved_params"]
