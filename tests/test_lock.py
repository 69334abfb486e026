"""One writer per log directory: a second study (or train.py, benchmark.py) on a directory that a
running one holds is refused with the holder's PID, exit 2, and changes nothing; a crash frees it."""
import os
import signal
import subprocess
import sys
import time

import pytest

from pruning import cli
from pruning.study import lock
from helpers import REPO, run_script

HOLD = """
import sys, time
from pruning.study import lock
with lock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _snapshot(root):
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture()
def holder(tmp_path):
    """Another process holding tmp_path/logs (with a finished-looking file in it)."""
    logs = tmp_path / "logs"
    (logs / "dense").mkdir(parents=True)
    (logs / "dense" / "result.json").write_text("{}")
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(logs)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    yield logs, proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("main", [cli.study_main_guarded, cli.alternate_main_guarded, cli.train_main])
def test_a_second_command_on_a_held_logdir_exits_2_naming_it_and_the_holder_and_changes_nothing(
        holder, tmp_path, capsys, main):
    logs, proc = holder
    before = _snapshot(logs)
    code = main(["--logdir", str(logs), "--data-source", "sample", "--hidden", "8", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{logs} is in use by process {proc.pid}" in err
    assert "--logdir" in err and "Traceback" not in err
    assert _snapshot(logs) == before


def test_two_main_py_at_once_the_second_is_refused_before_training(holder):
    logs, proc = holder
    second, _ = run_script("main.py", "--logdir", logs, "--data-source", "sample", "--hidden", "8", timeout=60)
    assert second.returncode == 2
    assert f"in use by process {proc.pid}" in second.stderr and "Traceback" not in second.stderr
    assert "started" not in second.stdout


def test_a_killed_holder_frees_the_directory(holder):
    logs, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with lock.hold(logs) as held:  # no stale lock: the kernel dropped it with the process
        assert held == logs
        assert f'"pid": {os.getpid()}' in (logs / lock.LOCK_FILE).read_text()


def test_the_lock_is_released_when_the_block_ends_even_by_an_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with lock.hold(tmp_path / "logs"):
            raise RuntimeError("boom")
    t = time.monotonic()
    with lock.hold(tmp_path / "logs"):
        pass
    assert time.monotonic() - t < 5
