"""The local engine: executes a study's plan on worker processes of this machine, one chain per
worker, each with its share of the cores; prints progress; stops every worker on Ctrl-C,
SIGTERM or the first error; runs the plan once per seed (replicates).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from .. import models, paths, protocols
from ..config import Hyper, RunConfig, StudyConfig
from ..files import is_fs_error, read_json, write_json
from .plan import (StudyError, check_same_study, longest_first, plan_study, planned_epochs, runs_to_do,
                   worker_plan)
from .run import set_threads, train_run

_WORKER: dict = {}


def worker_state() -> dict:
    """This worker process's state (its threads, event queue, data loaded, the study's fingerprint), which
    every engine's worker side shares."""
    return _WORKER


def _watch_parent(parent: int) -> None:
    """Exit when the study's process is gone (even SIGKILLed): a worker never trains on as an orphan."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def start_tensorflow(threads: int, verbose: bool = False) -> None:
    """Every engine's worker: TensorFlow imported quietly, with memory growth on for every visible GPU
    before TensorFlow initialises one (so that several workers share a GPU), and ``threads`` threads."""
    from ..tfsetup import import_tensorflow

    import_tensorflow(verbose)
    set_threads(threads)


def plugins() -> dict:
    """The registries a worker process must share with the study's process (a plug-in's entries too)."""
    return {"models": models.snapshot(), "protocols": protocols.snapshot()}


def restore_plugins(specs: dict | None) -> None:
    models.restore((specs or {}).get("models") or {})
    protocols.restore((specs or {}).get("protocols") or {})


def _init_worker(threads: int, queue, verbose: bool = False, model_specs=None, fingerprint: str | None = None,
                 xla: bool = False) -> None:
    restore_plugins(model_specs)  # the builders and protocols the study's process knows (a plug-in's too)

    # Ctrl-C reaches the whole process group; the study's process alone decides, and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    start_tensorflow(threads, verbose)
    _WORKER.update(threads=threads, queue=queue, fingerprint=fingerprint, data={}, xla=xla)


def worker_data(cfg: RunConfig):
    """The data of ``cfg`` (``pruning.data.load``, once per worker), refused if it is not the data the
    study's process loaded and checked: a worker must never train on other data than the study reports."""
    from .. import data

    key = cfg.hyper.data
    if key not in _WORKER["data"]:
        ds = data.load(key, log=lambda msg: None)
        want = _WORKER.get("fingerprint")
        if want is not None and ds.fingerprint() != want:
            raise StudyError(f"a worker process loaded other data ({ds.source}) than the study checked at its "
                             f"start; the files under --data-dir (or $MNIST_DATA_DIR, $FASHION_MNIST_DATA_DIR) changed while it "
                             f"ran. "
                             f"Keep them unchanged and rerun the same command to resume.")
        _WORKER["data"][key] = ds
    return _WORKER["data"][key]


def run_one(cfg: RunConfig, logdir: str, progress, execution: dict | None = None) -> str:
    """Worker side, for every engine: train one run with this worker's data; returns its status. A
    bug in a run is written down as that run's failure and the study goes on; other data or a file
    system that cannot take the results (a full disk, a read-only place) stop the study (exit 2)."""
    try:
        r = train_run(cfg, logdir, worker_data(cfg), progress=progress, xla=_WORKER.get("xla", False),
                      execution=execution)
    except StudyError:
        raise  # the study cannot go on (other data): it stops and says so (exit 2)
    except Exception as e:
        if is_fs_error(e):
            raise  # a full disk or a read-only place: the study stops and says so (exit 2)
        traceback.print_exc()  # a bug: record it, keep the study going
        reason = f"{type(e).__name__}: {e}"
        write_json(paths.result_file(logdir, cfg.name), {
            "format": 1, "run": cfg.name, "status": "failed", "reason": reason, "config": cfg.to_dict()})
        progress({"event": "done", "run": cfg.name, "status": "failed", "reason": reason})
        return "failed"
    return r["status"]


def _run_chain(chain: list[dict], logdir: str) -> list[tuple[str, str]]:
    """Worker side: run one chain's runs in order (each starts from the one before)."""
    queue, out = _WORKER["queue"], []
    for d in chain:
        cfg = RunConfig.from_dict(d)
        queue.put({"event": "start", "run": cfg.name, "threads": _WORKER["threads"]})
        out.append((cfg.name, run_one(cfg, logdir, queue.put, {"engine": "local"})))
    return out


def _fmt_time(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class ProgressPrinter:
    """Turns workers' events into one line each: which run, epoch, accuracy, time left."""

    def __init__(self, runs: list[RunConfig], jobs: int, out=None, names: list[str] | None = None,
                 later_epochs: int = 0):
        """``names``: how the events name ``runs`` (default: the runs' names; seed<N>/<run> when the
        Ray engine runs several seeds' studies at once). ``later_epochs``: epochs the study trains
        after these runs (the seeds still to come), counted in the time left."""
        names = names or [c.name for c in runs]
        self.out = out or sys.stdout
        self.epochs = {n: planned_epochs(c) for n, c in zip(names, runs)}
        self.order = {n: i + 1 for i, n in enumerate(names)}
        self.total = sum(self.epochs.values()) + later_epochs
        self.done_epochs, self.durations, self.jobs, self.seen, self.active = 0, [], jobs, {}, set()

    def _eta(self) -> str:
        if not self.durations:
            return "?"
        recent = sorted(self.durations[-8:])[len(self.durations[-8:]) // 2]
        parallel = max(1, min(self.jobs, len(self.active)))
        return "~" + _fmt_time((self.total - self.done_epochs) * recent / parallel)

    def __call__(self, ev: dict) -> None:
        run, tag = ev.get("run", ""), f"[{self.order.get(ev.get('run'), '?')}/{len(self.order)}]"
        if ev["event"] == "start":
            # a run started again (Ray retried it: its worker or node was lost) counts its epochs anew
            again = run in self.active or run in self.seen
            self.done_epochs -= self.seen.pop(run, 0)
            self.active.add(run)
            where = f" on {ev['node']}" if ev.get("node") else ""
            line = (f"{tag} {run}: {'restarted' if again else 'started'} ({self.epochs.get(run, 0)} epochs, "
                    f"{ev.get('threads')} thread(s){where})")
        elif ev["event"] == "epoch":
            self.done_epochs += 1
            self.durations.append(ev["seconds"])
            line = (f"{tag} {run}: epoch {ev['epoch']}/{ev['epochs']}  loss {ev['loss']:.4f}  "
                    f"train acc {100 * ev['accuracy']:.2f}%  test acc {100 * ev['test_accuracy']:.2f}%  "
                    f"{ev['seconds']:.1f}s/epoch  study left {self._eta()}")
        elif ev["event"] == "done" and ev["status"] == "ok":
            line = f"{tag} {run}: done, test acc {100 * ev['test_accuracy']:.2f}% in {ev['seconds']:.0f}s"
        else:
            line = f"{tag} {run}: FAILED: {ev.get('reason')}"
        if ev["event"] == "done":  # a run that stopped early frees its remaining epochs
            self.active.discard(run)
            self.done_epochs += self.epochs.get(run, 0) - self.seen.get(run, 0)
        elif ev["event"] == "epoch":
            self.seen[run] = self.seen.get(run, 0) + 1
        print(line, file=self.out, flush=True)


def _drain(queue, printer: ProgressPrinter, stop: threading.Event) -> None:
    """Print the workers' events until ``stop`` is set and nothing is left to read. The study's
    process never writes to the queue: a worker killed halfway through a write can leave the
    queue's shared write lock held for good, and a writer here would then block its exit."""
    import queue as queue_module

    while True:
        try:
            ev = queue.get(timeout=0.2)
        except queue_module.Empty:
            if stop.is_set():
                return
            continue
        printer(ev)


def stop_workers(pools) -> None:
    """Stop every worker process of ``pools`` now: cancel what has not started, terminate what runs
    (SIGTERM, then SIGKILL after 10 s). A run cut short leaves no result.json, so a rerun redoes it."""
    procs = [p for pool in pools for p in list((getattr(pool, "_processes", None) or {}).values())]
    for pool in pools:
        pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 10
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(5)


def study_seeds(hyper: Hyper, study: StudyConfig) -> list[int]:
    """The study's replicates: --seeds, else the one --seed."""
    return list(study.seeds) if study.seeds is not None else [hyper.train.seed]


def run_seeds(hyper: Hyper, study: StudyConfig, logdir, overwrite: bool = False, out=None,
              data_info: dict | None = None, verbose: bool = False, xla: bool = False, engine="local",
              ray_options=None) -> dict[int, list[RunConfig]]:
    """Run (or resume) the study once per seed, each into LOGDIR/seed<N>/ with its own dense network;
    returns each seed's planned runs. The root's study.json names the seeds. ``engine`` "local" (the
    default) runs the seeds on this machine's worker processes: one after the other, or, for a protocol
    whose runs form a graph (the lottery), all at once; another engine is the function that runs the seeds'
    runs, ``engine(seeded, study, logdir, overwrite, out, data_info, verbose, xla, ray_options)``: the
    command line passes ``ray_engine.run_seeds_ray`` for ``--engine ray`` (every seed's runs as one graph
    of Ray tasks, with ``ray_options``: a ``ray_engine.RayOptions``)."""
    from dataclasses import replace

    out = out or sys.stdout
    seeds = study_seeds(hyper, study)
    seeded = [replace(hyper, train=replace(hyper.train, seed=seed)) for seed in seeds]
    # every seed's directory is checked before anything is written or trained (a clash in the last
    # seed's must not surface hours into the first), and the seeds already there must be of this study;
    # the epochs still to train give the time left
    check_same_study(hyper, logdir, seeds, overwrite, data_info)
    todo_epochs = [seed_epochs_to_do(h, study, paths.seed_dir(logdir, h.train.seed), overwrite, data_info)
                   for h in seeded]
    Path(logdir).mkdir(parents=True, exist_ok=True)
    previous = read_json(paths.study_file(logdir)) if paths.study_file(logdir).is_file() else {}
    known = [s for s in previous.get("seeds") or [] if paths.seed_dir(logdir, s).is_dir()]  # seeds added, not replaced
    write_json(paths.study_file(logdir), {
        "hyper": RunConfig(hyper).to_dict()["hyper"], "seeds": sorted(set(known) | set(seeds)),
        "study": {"sparsities": list(study.sparsities), "strategies": list(study.strategies), "jobs": study.jobs},
        **({"data": data_info} if data_info else {}),
    })
    if engine != "local":
        return engine(seeded, study, logdir, overwrite, out, data_info, verbose, xla, ray_options)
    if protocols.get(hyper.prune.protocol).as_graph:  # its runs start as soon as their parent is done
        return run_graph(seeded, study, logdir, overwrite, out, data_info, verbose, xla)
    planned = {}
    for i, h in enumerate(seeded):
        seed = h.train.seed
        if len(seeds) > 1:
            print(f"== seed {seed} ({i + 1} of {len(seeds)}): {paths.seed_dir(logdir, seed)}", file=out, flush=True)
        planned[seed] = run_study(h, study, paths.seed_dir(logdir, seed), overwrite, out, data_info, verbose,
                                  xla, later_epochs=sum(todo_epochs[i + 1:]))
    return planned


def seed_epochs_to_do(hyper: Hyper, study: StudyConfig, logdir: Path, overwrite: bool,
                      data_info: dict | None) -> int:
    """The epochs one seed's study still has to train in ``logdir``; raises StudyError, as the
    study itself would, when that directory holds a clashing run. Writes and prints nothing."""
    chains = plan_study(hyper, study)
    todo = runs_to_do(chains, logdir, overwrite, data_info, [])
    return sum(planned_epochs(c) for chain in chains for c in chain if c.name in todo)


def prepare_study(hyper: Hyper, study: StudyConfig, logdir: Path, overwrite: bool, out,
                  data_info: dict | None) -> tuple[list[list[RunConfig]], set[str]]:
    """Every engine's start of one seed's study: its plan (chains of runs) and the names of the runs
    still to do; prints the notices and what a resume keeps, and writes the seed's study.json.
    Raises StudyError, before anything is trained, when the log directory holds another study."""
    chains = plan_study(hyper, study)
    runs = [c for chain in chains for c in chain]
    notices: list[str] = []
    todo = runs_to_do(chains, logdir, overwrite, data_info, notices)
    for line in notices:
        print(f"notice: {line}", file=out, flush=True)
    skipped = [c.name for c in runs if c.name not in todo]
    if skipped:
        print(f"resuming: {len(skipped)} finished run(s) kept ({', '.join(skipped)}); --overwrite retrains them",
              file=out, flush=True)
    logdir.mkdir(parents=True, exist_ok=True)
    write_json(paths.study_file(logdir), {
        "hyper": RunConfig(hyper).to_dict()["hyper"],
        "study": {"sparsities": list(study.sparsities), "strategies": list(study.strategies), "jobs": study.jobs},
        "runs": [c.name for c in runs],
    })
    return chains, todo


def _run_task(d: dict, logdir: str, label: str) -> tuple[str, str]:
    """Worker side of ``run_graph``: one run, its events named ``label``."""
    queue = _WORKER["queue"]
    cfg = RunConfig.from_dict(d)

    def progress(event: dict) -> None:
        queue.put({**event, "run": label})

    progress({"event": "start", "threads": _WORKER["threads"]})
    return label, run_one(cfg, logdir, progress, {"engine": "local"})


def _priority(cfg: RunConfig) -> tuple:
    """Which ready run goes first: the dense runs and the tickets (the graph's long path), lowest level
    first; then the controls."""
    return (cfg.control is not None, cfg.level or 0)


def run_graph(seeded: list[Hyper], study: StudyConfig, logdir, overwrite: bool = False, out=None,
              data_info: dict | None = None, verbose: bool = False, xla: bool = False) -> dict[int, list[RunConfig]]:
    """Run (or resume) every seed's runs as one graph on ``study.jobs`` worker processes of this machine
    (each with its share of the cores): a run starts as soon as its parent has finished, so the seeds,
    the tickets and the controls of a lottery study overlap. Returns each seed's planned runs."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    out = out or sys.stdout
    planned, tasks, after = {}, {}, {}
    for hyper in seeded:
        seed = hyper.train.seed
        sdir = paths.seed_dir(logdir, seed)
        if len(seeded) > 1:
            print(f"== seed {seed}: {sdir}", file=out, flush=True)
        chains, todo = prepare_study(hyper, study, sdir, overwrite, out, data_info)
        planned[seed] = [c for chain in chains for c in chain]
        label = (lambda n, s=seed: f"seed{s}/{n}") if len(seeded) > 1 else (lambda n: n)
        for c in planned[seed]:
            if c.name in todo:
                tasks[label(c.name)] = (c, sdir)
                if c.parent in todo:
                    after[label(c.name)] = label(c.parent)
    if not tasks:
        return planned
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(study.jobs, len(tasks)))
    threads = study.threads or max(1, cores // workers)
    printer = ProgressPrinter([c for c, _ in tasks.values()], workers, out, names=list(tasks))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    stop = threading.Event()
    drainer = threading.Thread(target=_drain, args=(queue, printer, stop), daemon=True)
    drainer.start()
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(threads, queue, verbose, plugins(),
                                         (data_info or {}).get("fingerprint"), xla))
    waiting, running, finished = dict(tasks), {}, set()
    try:
        while waiting or running:
            ready = sorted((label for label in waiting if after.get(label) in (None, *finished)),
                           key=lambda label: _priority(waiting[label][0]))
            for label in ready[:workers - len(running)]:
                cfg, sdir = waiting.pop(label)
                running[pool.submit(_run_task, cfg.to_dict(), str(sdir), label)] = label
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                f.result()  # a full disk, other data, a dead worker: the study stops at once
                finished.add(running.pop(f))
        pool.shutdown()
    except BrokenProcessPool:
        stop_workers([pool])
        raise StudyError("a worker process died (out of memory, or killed). Rerun the same command to resume; "
                         "finished runs are kept. Try --jobs 1 if memory is short.") from None
    except BaseException:  # Ctrl-C, SIGTERM, a full disk: no worker may train on without the study
        stop_workers([pool])
        raise
    finally:
        stop.set()
        drainer.join(timeout=5)
    return planned


def run_study(hyper: Hyper, study: StudyConfig, logdir, overwrite: bool = False, out=None,
              data_info: dict | None = None, verbose: bool = False, xla: bool = False,
              later_epochs: int = 0) -> list[RunConfig]:
    """Run (or resume) every run of the study; returns the planned runs, in order.

    The dense run trains first with all CPU cores; then the chains run on ``study.jobs``
    worker processes, each limited to its share of the cores. ``later_epochs``: the epochs of the
    seeds still to come after this one, counted in the time left that the progress lines print.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    out = out or sys.stdout
    logdir = Path(logdir)
    chains, todo = prepare_study(hyper, study, logdir, overwrite, out, data_info)
    runs = [c for chain in chains for c in chain]
    pending = [[c for c in chain if c.name in todo] for chain in chains]
    pending = [[c.to_dict() for c in chain] for chain in pending[:1] + longest_first(pending[1:])]
    first, rest = [c for c in pending[:1] if c], [c for c in pending[1:] if c]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    printer = ProgressPrinter([c for c in runs if c.name in todo], min(study.jobs, max(1, len(rest))), out,
                              later_epochs=later_epochs)

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    stop = threading.Event()
    drainer = threading.Thread(target=_drain, args=(queue, printer, stop), daemon=True)
    drainer.start()
    phases = worker_plan(first, rest, study.jobs, cores, study.threads)
    pools: list = []
    try:
        for phase in phases:
            live = [(chain_list, n, threads) for chain_list, n, threads in phase if chain_list]
            pools = [ProcessPoolExecutor(min(n, len(chain_list)), mp_context=ctx, initializer=_init_worker,
                                         initargs=(threads, queue, verbose, plugins(),
                                                   (data_info or {}).get("fingerprint"), xla))
                     for chain_list, n, threads in live]
            futures = [pool.submit(_run_chain, chain, str(logdir))
                       for pool, (chain_list, _, _) in zip(pools, live) for chain in chain_list]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                f.result()  # the first failure (a full disk, a dead worker) stops the study at once
            for pool in pools:
                pool.shutdown()
    except BrokenProcessPool:
        stop_workers(pools)
        raise StudyError("a worker process died (out of memory, or killed). Rerun the same command to resume; "
                         "finished runs are kept. Try --jobs 1 if memory is short.") from None
    except BaseException:  # Ctrl-C, SIGTERM, a full disk: no worker may train on without the study
        stop_workers(pools)
        raise
    finally:
        stop.set()
        # a daemon thread: if a killed worker left half a message in the pipe, it may wait forever
        # for the rest, and must not keep the study from exiting
        drainer.join(timeout=5)
    return runs
