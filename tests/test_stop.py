"""Stopping a study: SIGTERM (and SIGHUP, by the same handler) behaves like Ctrl-C: the workers stop, finished runs are
kept, the study says so and exits non-zero; a SIGKILLed study's workers exit by themselves."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped; only its parent (maybe PID 1 here) has not reaped it


def _start_study(root: Path, mnist_dir: Path, jobs: int = 2) -> subprocess.Popen:
    shutil.copytree(mnist_dir, root / "data")
    args = ["--data-dir", root / "data", "--hidden", "40,40,20,10", "--epochs", "1", "--retrain-epochs", "60",
            "--ramp-epochs", "0", "--sparsities", "0,50,90", "--batch-size", "64", "--logdir", root / "logs",
            "--jobs", jobs]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # a session of its own with SIGINT at its default, as a terminal gives a foreground job (Ctrl-C is
    # SIGINT to the whole process group), even when this suite itself runs as a background job
    return subprocess.Popen([sys.executable, str(REPO / "main.py"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=root, env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_workers(proc: subprocess.Popen, timeout: float = 120) -> list[str]:
    """Read progress until a pruned run has started in a worker; return the lines read."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "_k" in line and "epoch 1/" in line:  # a worker is training a pruned run
            return lines
    proc.kill()
    pytest.fail("the study never got to a pruned run:\n" + "".join(lines) + proc.stderr.read())


def _wait_gone(pids, timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    return {p for p in pids if _alive(p)}


@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["kill", "ctrl-c"])
def test_sigterm_and_ctrl_c_stop_every_worker_keep_finished_runs_and_say_so(tmp_path, mnist_dir, sig, group):
    """kill PID (SIGTERM to the study alone) and Ctrl-C (SIGINT to the study and its workers). The
    workers report every epoch (~0.1 s here), so one may be killed halfway through a report: the study
    must still exit (it once hung on the progress queue's lock that the dead worker held)."""
    proc = _start_study(tmp_path, mnist_dir)
    _wait_for_workers(proc)
    workers = _children(proc.pid)
    assert workers, "the study should have worker processes"
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the study did not exit within 60 s of the signal")
    assert proc.returncode == 128 + sig
    assert f"stopped by {signal.Signals(sig).name}" in err and "finished runs are kept" in err
    assert "Traceback" not in err
    assert _wait_gone(workers, 15) == set()
    logs = tmp_path / "logs" / "seed0"
    assert (logs / "dense" / "result.json").is_file()  # the finished dense run is kept
    # nothing trained on after the stop (every worker is gone, so nothing can start it later)
    assert not (logs / "weight_k90").exists()


def test_a_sigkilled_study_leaves_no_worker_training(tmp_path, mnist_dir):
    """Each worker watches the study's process by itself; one worker (--jobs 1) shows it as well as two."""
    proc = _start_study(tmp_path, mnist_dir, jobs=1)
    _wait_for_workers(proc)
    workers = _children(proc.pid)
    assert workers
    proc.kill()
    proc.wait()
    assert _wait_gone(workers, 15) == set()


def test_nohup_keeps_sighup_ignored():
    """A study started with nohup (SIGHUP ignored) must survive the terminal closing: the scripts only
    handle the stop signals that were not ignored when they started."""
    code = ("import os, signal, sys; from pruning import cli; "
            "f = cli.guarded(lambda argv: os.kill(os.getpid(), signal.SIGHUP) or 0); sys.exit(f(None))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert proc.returncode == 0 and "stopped" not in proc.stderr
    handled = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                             preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    assert handled.returncode == 128 + signal.SIGHUP and "stopped by SIGHUP" in handled.stderr
