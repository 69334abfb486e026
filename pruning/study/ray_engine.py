"""The Ray engine (``--engine ray``): the study's runs as a graph of Ray tasks, on one machine or
on a cluster, instead of the local engine's process pool.

Each run is one task whose arguments include the ObjectRefs of the runs it must wait for: its
parent, and its seed's dense run (whose model gives every run its one-shot accuracy, as the local
engine's dense-first phase does). Ray resolves those before the task starts, so a seed's dense run
comes before its chains and an iterative chain's k after the k below it; everything else (other
chains, other seeds) runs in parallel, as many at a time as the cluster's resources hold
(``--cpus-per-run``, ``--gpus-per-run`` per task). Every seed's graph goes in at once.

Every node reads and writes the one log directory, as the local engine's workers do: a run loads
its parent's model from there and writes its result there. So the log directory must be on a file
system that every node shares; ``check_nodes`` proves it before anything trains. A worker or node
that dies is Ray's to retry (``MAX_RETRIES``): the run starts again from nothing (``train_run``
removes its directory first and writes result.json last, atomically), and the study's process
counts each run once, when its task's ObjectRef resolves.

Ray is imported only inside these functions, when the engine runs: the default engine needs no Ray.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..config import ConfigError, Hyper, RunConfig, StudyConfig
from ..files import is_fs_error
from .engine import (ProgressPrinter, plugins, prepare_study, restore_plugins, run_one, start_tensorflow,
                     worker_data, worker_state)
from .plan import StudyError

REQUIREMENTS = "requirements-ray.txt"
MAX_RETRIES = 3  # system failures (a worker or node that died) only; a run's own errors are written down
POLL_S = 0.5  # how often the study's process prints the workers' progress
NODES_EVERY_S = 5.0  # how often it checks that some node can still run a run (else it would wait forever)
CHECK_TIMEOUT_S = 120.0  # a node whose visibility check has not answered by then is refused
CONNECT_TIMEOUT_S = 10.0  # a cluster address that does not answer by then is refused
RESULT_GRACE_S = 30.0  # how long a finished run's result.json may take to show on a shared file system
TOKEN_PREFIX = ".node-check-"


@dataclass(frozen=True)
class RayOptions:
    """How the study executes on Ray (``--ray-address``, ``--cpus-per-run``, ``--gpus-per-run``):
    not part of any run's identity, so a study resumes across engines."""
    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0

    def execution(self) -> dict:
        """What each run records in its result.json's ``execution``."""
        return {"engine": "ray", "cpus_per_run": self.cpus_per_run, "gpus_per_run": self.gpus_per_run}


def require_ray():
    """The ray module; a ConfigError saying what to install when this Python has none."""
    try:
        import ray
    except ImportError as e:
        raise ConfigError(f"--engine ray needs Ray (ray core), which this Python ({sys.executable}) cannot import "
                          f"({e}). Install it with pip install -r {REQUIREMENTS}, or leave --engine out to run "
                          f"on this machine's process pool (the default).") from None
    return ray


# --------------------------------------------------------------------------- worker side
class _Events:
    """The study's mailbox for the workers' progress events: an actor on the study's own node, so
    that it lives exactly as long as the study does, whichever other node leaves."""

    def __init__(self):
        self._items: list[dict] = []

    def put(self, event: dict) -> None:
        self._items.append(event)

    def take(self) -> list[dict]:
        items, self._items = self._items, []
        return items

    def ping(self) -> None:
        """A worker's last call: an actor runs one caller's calls in order, so every event the
        worker sent before is in the mailbox when this returns."""


def _init_ray_worker(ctx: dict) -> str:
    """A Ray worker process's set-up for the study (Ray reuses worker processes between runs, and
    between the studies of one Ray job): the study's model registry, its environment and working
    directory (a relative --data-dir means the same here) and its data's fingerprint; once per
    process, TensorFlow imported quietly with GPU memory growth on (before TensorFlow initialises
    a GPU; Ray has set CUDA_VISIBLE_DEVICES for a GPU task) and as many threads as the task's CPU
    share, at least one: TensorFlow takes thread counts once per process. Returns this node's address."""
    import ray

    state = worker_state()
    if state.get("study") == ctx["study"]:
        return state["node"]
    restore_plugins(ctx["plugins"])
    for name, value in ctx["env"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if os.path.isdir(ctx["cwd"]):
        os.chdir(ctx["cwd"])
    if state.get("engine") != "ray":
        threads = threads_for(ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0))
        start_tensorflow(threads, ctx["verbose"])
        state.update(engine="ray", threads=threads, queue=None, data={}, node=ray.util.get_node_ip_address(),
                     node_id=ray.get_runtime_context().get_node_id())
    if state.get("fingerprint") != ctx["fingerprint"]:
        state["data"] = {}
    state.update(study=ctx["study"], fingerprint=ctx["fingerprint"], xla=ctx["xla"])
    return state["node"]


def threads_for(cpus: float) -> int:
    """TensorFlow's threads for a task's CPU share: its whole CPUs, at least one."""
    return max(1, int(cpus))


def _run_task(cfg_dict: dict, logdir: str, label: str, ctx: dict, *after) -> dict:
    """Worker side: one run (``after``: the results of the runs it waited for; Ray resolved them
    before this started). A run's own failure is written down by ``run_one``; other data, a data
    set this node cannot load, or a file system that cannot take results stop the study."""
    import ray

    from ..data import DataError

    node = _init_ray_worker(ctx)
    cfg = RunConfig.from_dict(cfg_dict)
    events, task_id = ctx["events"], ray.get_runtime_context().get_task_id()  # the same for every retry

    def progress(event: dict) -> None:
        try:
            events.put.remote({**event, "run": label})
        except Exception:  # noqa: BLE001 - a lost progress line must never fail a run
            pass

    earlier = _written_by_earlier_attempt(cfg, logdir, task_id)
    if earlier is not None:  # its node was lost after the run's result.json was written: not redone
        status = earlier["status"]
        progress({"event": "done", "status": status, "reason": earlier.get("reason"),
                  "test_accuracy": earlier.get("test_accuracy"), "seconds": earlier.get("wall_time_s") or 0.0})
    else:
        progress({"event": "start", "threads": worker_state()["threads"], "node": node, "node_id": worker_state()["node_id"]})
        try:
            worker_data(cfg)  # loaded once per worker process, and refused if it is not the study's data
        except DataError as e:
            raise StudyError(f"node {node} cannot load the study's data: {e} Every node needs the same data at "
                             f"the same path: put --data-dir on the shared file system (or install the same "
                             f"tensorflow-datasets cache on every node).") from None
        status = run_one(cfg, logdir, progress, {**ctx["execution"], "node": node, "node_id": worker_state()["node_id"],
                                                 "ray_task_id": task_id})
    try:
        ray.get(events.ping.remote(), timeout=30)
    except Exception:  # noqa: BLE001 - progress only
        pass
    return {"run": label, "status": status, "node": node}


def _written_by_earlier_attempt(cfg: RunConfig, logdir: str, task_id: str) -> dict | None:
    """The run's result when an earlier attempt of this very task wrote it (its worker or node died
    after writing result.json, before Ray heard back), so that a retry never writes it twice."""
    from ..report.results import damaged_files, read_result

    try:
        r = read_result(logdir, cfg.name)
    except Exception:  # noqa: BLE001 - unreadable: not this task's finished result
        return None
    if r is None or (r.get("execution") or {}).get("ray_task_id") != task_id:
        return None
    return r if r.get("status") != "ok" or not damaged_files(logdir, r) else None


def _check_node(logdir: str, driver_token: str, tag: str) -> str | None:
    """Worker side of the visibility check, on one node: read the token the study's process wrote
    into the log directory and write this node's own beside it (never creating the directory: a
    node that lacks it must fail here, not train into a directory of its own). None when both
    work, else what failed."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    folder = Path(logdir)
    try:
        if (folder / driver_token).read_text() != tag:
            return f"{folder / driver_token} holds another token (another directory at the same path?)"
    except OSError as e:
        return f"cannot read {folder / driver_token} ({e.strerror or e})"
    mine = folder / _node_token(tag, node_id)
    try:
        fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, f"{tag} {node_id}".encode())
        finally:
            os.close(fd)
    except OSError as e:
        return f"cannot write {mine} ({e.strerror or e})"
    return None


def _node_token(tag: str, node_id: str) -> str:
    return f"{TOKEN_PREFIX}{tag}-{node_id}"


# --------------------------------------------------------------------------- the study's process
def _describe(node: dict) -> str:
    return f"{node.get('NodeManagerAddress', '?')} (node id {node['NodeID']})"


def capable_nodes(ray, options: RayOptions) -> list[dict]:
    """The alive nodes that have the resources of one run (others never run one)."""
    return [n for n in ray.nodes() if n.get("Alive")
            and n["Resources"].get("CPU", 0.0) >= options.cpus_per_run
            and n["Resources"].get("GPU", 0.0) >= options.gpus_per_run]


def _slots(nodes: list[dict], options: RayOptions) -> int:
    """How many runs the nodes hold at a time."""
    def per_node(n):
        k = int(n["Resources"].get("CPU", 0.0) // options.cpus_per_run)
        if options.gpus_per_run > 0:
            k = min(k, int(n["Resources"].get("GPU", 0.0) // options.gpus_per_run))
        return k
    return max(1, sum(per_node(n) for n in nodes))


def check_nodes(ray, logdir: Path, nodes: list[dict]) -> None:
    """Prove, before any training, that every node in ``nodes`` reads and writes ``logdir`` as this
    process sees it: a task pinned to each node reads a token file this process wrote there and
    writes its own, which this process reads back. Raises StudyError naming each node that cannot,
    and the path; the token files are removed either way."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    tag = uuid.uuid4().hex
    driver_token = logdir / f"{TOKEN_PREFIX}{tag}"
    driver_token.write_text(tag)
    probe = ray.remote(num_cpus=0, max_retries=0)(_check_node)
    refs, waiting, problems = {}, [], []
    try:
        for n in nodes:
            ref = probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                                name="node-check").remote(str(logdir), driver_token.name, tag)
            refs[ref] = n
        waiting = list(refs)
        ready, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=CHECK_TIMEOUT_S)
        for ref in waiting:
            problems.append((refs[ref], f"did not answer within {CHECK_TIMEOUT_S:.0f} s"))
        for ref in ready:
            problems += [(refs[ref], why) for why in [_node_answer(ray, ref, logdir, tag, refs[ref])] if why]
    finally:
        for ref in waiting:
            ray.cancel(ref, force=True)
        for f in logdir.glob(f"{TOKEN_PREFIX}{tag}*"):
            try:
                f.unlink()
            except OSError:
                pass
    if problems:
        raise StudyError(
            f"the log directory {logdir} must be one path that every node of the Ray cluster can read and write "
            f"(a shared file system such as NFS, mounted at the same path on every node), and "
            f"{len(problems)} of the {len(nodes)} node(s) cannot: "
            + "; ".join(f"node {_describe(n)}: {why}" for n, why in problems)
            + ". Mount the shared file system on every node, or pass --logdir a directory on it. Nothing was trained.")


def _node_answer(ray, ref, logdir: Path, tag: str, node: dict) -> str | None:
    """What one node's check found (None: it can read and write ``logdir``)."""
    try:
        why = ray.get(ref)
    except ray.exceptions.RayError as e:
        return f"the check could not run there ({type(e).__name__}: {str(e).strip().splitlines()[-1]})"
    if why is not None:
        return why
    mine = logdir / _node_token(tag, node["NodeID"])
    try:
        if mine.read_text() == f"{tag} {node['NodeID']}":
            return None
    except OSError:
        pass
    return f"it wrote {mine}, which this process cannot read (it wrote into another directory at the same path)"


@contextmanager
def _session(options: RayOptions, verbose: bool):
    """Ray for the study: a caller's connection if this process has one (left as it is), else
    ``ray.init`` at --ray-address, else $RAY_ADDRESS, else a cluster ``ray start`` made on this
    machine, else a local instance; disconnected at the end (which stops only a local instance
    the study started, and with it every worker of the study)."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    where = options.address or os.environ.get("RAY_ADDRESS") or "a local instance"
    _check_reachable(where)
    handlers = _signal_handlers()
    try:
        ray.init(address=options.address or None, include_dashboard=False, log_to_driver=True,
                 logging_level=logging.INFO if verbose else logging.ERROR)
    except Exception as e:  # noqa: BLE001 - no cluster there, a bad address, a version mismatch
        raise StudyError(f"Ray could not start or connect ({where}): {type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}. Check --ray-address (or "
                         f"$RAY_ADDRESS): the head node's address as ray start --head printed it, reachable from "
                         f"here, with the same Ray and Python versions; or leave both out for a local instance."
                         ) from None
    finally:
        _restore(handlers)  # ray.init takes SIGTERM over: it must stop the study as Ctrl-C does
    try:
        yield ray
    finally:
        ray.shutdown()


def _signal_handlers() -> dict:
    """This process's handlers of the stop signals (main thread only: elsewhere none can be set)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    return {s: signal.getsignal(s) for s in (getattr(signal, n, None) for n in names) if s is not None}


def _restore(handlers: dict) -> None:
    import signal

    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)


def _check_reachable(address: str) -> None:
    """Fail fast when nothing listens at a host:port cluster address: ray.init would retry for ever."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", "local", a ray:// client address, or a local instance: Ray's to resolve
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise StudyError(f"no Ray cluster answers at {address} ({e.strerror or type(e).__name__}). Check --ray-address "
                         f"(or $RAY_ADDRESS): the head node's address as ray start --head printed it (host:port, "
                         f"6379 by default), reachable from this machine; or leave both out for a local Ray "
                         f"instance.") from None


@dataclass
class _Plan:
    """One seed's study as the Ray engine runs it."""
    hyper: Hyper
    logdir: Path  # absolute: every node reads it as the study's process does
    prefix: str  # "seed<N>/" when several seeds' runs are printed together, else ""
    chains: list = None
    todo: set = None

    @property
    def runs(self) -> list[RunConfig]:
        return [c for chain in self.chains for c in chain]


def run_seeds_ray(seeded: list[Hyper], study: StudyConfig, logdir, overwrite: bool = False, out=None,
                  data_info: dict | None = None, verbose: bool = False, xla: bool = False,
                  options: RayOptions | None = None) -> dict[int, list[RunConfig]]:
    """``engine.run_seeds`` on Ray: every seed's study (``seeded``: the hyperparameters of each
    seed) in LOGDIR/seed<N>/, all of their runs in one graph of tasks; returns each seed's planned
    runs."""
    out = out or sys.stdout
    root = Path(logdir).absolute()
    several = len(seeded) > 1
    plans = []
    for i, hyper in enumerate(seeded, start=1):
        seed = hyper.train.seed
        if several:
            print(f"== seed {seed} ({i} of {len(seeded)}): {paths.seed_dir(logdir, seed)}", file=out, flush=True)
        plans.append(_Plan(hyper, paths.seed_dir(root, seed), f"seed{seed}/" if several else ""))
    _run(plans, study, root, overwrite, out, data_info, verbose, xla, options or RayOptions())
    return {p.hyper.train.seed: p.runs for p in plans}


def _run(plans: list[_Plan], study: StudyConfig, check_dir: Path, overwrite: bool, out, data_info, verbose: bool,
         xla: bool, options: RayOptions) -> None:
    """Plan every seed (notices, resume), then, if anything is left to train: Ray, the resources and
    visibility checks, the graph, its progress until the last run is in."""
    for p in plans:
        p.chains, p.todo = prepare_study(p.hyper, study, p.logdir, overwrite, out, data_info)
    todo = [(p, c) for p in plans for c in p.runs if c.name in p.todo]
    if not todo:
        return
    with _session(options, verbose) as ray:
        nodes = capable_nodes(ray, options)
        if not nodes:
            raise StudyError(_no_node_message(ray, options, "has"))
        check_nodes(ray, check_dir, nodes)
        print(f"ray: {len(nodes)} node(s) can run a run ({options.cpus_per_run:g} CPU, {options.gpus_per_run:g} GPU "
              f"each), up to {_slots(nodes, options)} at a time; every one of them reads and writes {check_dir}",
              file=out, flush=True)
        events = _mailbox(ray)
        ctx = {"study": uuid.uuid4().hex, "plugins": plugins(), "verbose": verbose, "xla": xla,
               "fingerprint": (data_info or {}).get("fingerprint"), "cwd": os.getcwd(), "env": _data_env(),
               "events": events, "execution": options.execution()}
        printer = ProgressPrinter([c for _, c in todo], _slots(nodes, options), out,
                                  names=[p.prefix + c.name for p, c in todo])
        try:
            _drive(ray, _submit(ray, plans, options, ctx), events, printer, options)
        finally:
            ray.kill(events)  # a caller's Ray connection outlives the study: its mailbox must not


def _data_env() -> dict:
    """The environment a worker needs to find the data as this process does."""
    from ..data import ENV_VARS

    return {var: os.environ.get(var) for var in ENV_VARS.values()}


def _mailbox(ray):
    """The progress events' actor, pinned to this process's node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    return ray.remote(num_cpus=0, max_restarts=0)(_Events).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()


def _submit(ray, plans: list[_Plan], options: RayOptions, ctx: dict) -> dict:
    """One task per run still to do, after the tasks of its parent and its seed's dense run (when
    those are to do too); returns ObjectRef -> (label, seed logdir, run name). A GPU task gets a
    fresh worker process each time (max_calls=1, as Ray does for @ray.remote(num_gpus=...)): Ray
    sets CUDA_VISIBLE_DEVICES per task, and TensorFlow reads it only once per process."""
    task = ray.remote(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run, max_retries=MAX_RETRIES,
                      retry_exceptions=False, max_calls=1 if options.gpus_per_run > 0 else 0)(_run_task)
    refs = {}
    for p in plans:
        mine: dict = {}  # run name -> its task's ObjectRef, in plan order (dense first)
        for cfg in p.runs:
            if cfg.name not in p.todo:
                continue
            after = [mine[n] for n in dict.fromkeys((cfg.parent, paths.DENSE)) if n in mine]
            label = p.prefix + cfg.name
            ref = task.options(name=label).remote(cfg.to_dict(), str(p.logdir), label, ctx, *after)
            mine[cfg.name] = ref
            refs[ref] = (label, p.logdir, cfg.name)
    return refs


def _drive(ray, refs: dict, events, printer: ProgressPrinter, options: RayOptions) -> None:
    """Print the workers' progress and take each run's outcome once, until every task is in. The
    first error that stops the study (other data, a full disk, a run lost ``MAX_RETRIES`` + 1
    times, no node left), Ctrl-C or SIGTERM cancels every task that has not finished."""
    pending, reported = dict(refs), set()
    checked = time.monotonic()
    raised: list = []  # what a stop signal's handler raised (Ray turns it into a bare KeyboardInterrupt)
    handlers = _signal_handlers()
    _restore({s: _remembering(h, raised) for s, h in handlers.items() if callable(h)})
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
            _print_events(ray, events, printer, reported)
            for ref in ready:
                _outcome(ray, ref, *pending.pop(ref))
            if pending and time.monotonic() - checked > NODES_EVERY_S:
                checked = time.monotonic()
                if not capable_nodes(ray, options):
                    raise StudyError(_no_node_message(ray, options, "has left"))
        _print_events(ray, events, printer, reported)
    except BaseException as e:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        if isinstance(e, KeyboardInterrupt) and raised and e is not raised[0]:
            raise raised[0] from None  # SIGTERM stays SIGTERM in the study's message and exit status
        raise
    finally:
        _restore(handlers)


def _remembering(handler, raised: list):
    """``handler``, keeping what it raises in ``raised``."""
    def wrapper(signum, frame):
        try:
            handler(signum, frame)
        except BaseException as e:
            raised.append(e)
            raise
    return wrapper


def _print_events(ray, events, printer: ProgressPrinter, reported: set) -> None:
    """The events that arrived, once each: a run is reported done once (``reported``), even when an
    attempt that Ray retried had reported it before its node was lost."""
    try:
        batch = ray.get(events.take.remote(), timeout=30)
    except ray.exceptions.RayError:
        return  # progress only: the runs' outcomes come from their tasks
    for ev in batch:
        if ev["event"] == "done":
            if ev["run"] in reported:
                continue
            reported.add(ev["run"])
        printer(ev)


def _outcome(ray, ref, label: str, logdir: Path, name: str) -> None:
    """One finished task: its run's result.json is written (ok or failed, as ``train_run`` left it),
    or the study stops with the reason."""
    try:
        r = ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = e.cause
        if isinstance(cause, StudyError) or (isinstance(cause, OSError) and is_fs_error(cause)):
            raise cause from None
        raise StudyError(f"run {label} could not start on its worker: {type(cause).__name__}: {cause}. Every node "
                         f"needs this project's code and its requirements (at the same versions) importable by "
                         f"Ray's workers. Finished runs are kept; rerun the same command to resume.") from None
    except ray.exceptions.RayError as e:
        raise StudyError(f"run {label} was lost {MAX_RETRIES + 1} times ({type(e).__name__}): its worker or its node "
                         f"died each time (out of memory, or the node left the cluster). Finished runs are kept; "
                         f"rerun the same command to resume.") from None
    deadline = time.monotonic() + RESULT_GRACE_S
    while not _readable(paths.result_file(logdir, name)):
        if time.monotonic() > deadline:
            raise StudyError(f"run {label} finished on node {r['node']}, but its result.json is not in {logdir} as "
                             f"this process sees it: that node wrote into another directory at the same path. The log "
                             f"directory must be on a file system every node shares (a node that joined after the "
                             f"study's start was not checked). Finished runs are kept; rerun to resume.")
        time.sleep(1.0)


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb"):  # an open, not a stat: a network file system then revalidates its cache
            return True
    except OSError:
        return False


def _no_node_message(ray, options: RayOptions, verb: str) -> str:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    seen = ", ".join(f"{n.get('NodeManagerAddress', '?')}: {n['Resources'].get('CPU', 0):g} CPU, "
                     f"{n['Resources'].get('GPU', 0):g} GPU" for n in alive) or "none alive"
    tail = ("Finished runs are kept; rerun the same command to resume once nodes are back." if verb == "has left"
            else "Lower --cpus-per-run / --gpus-per-run, or add nodes that have them.")
    return (f"no node of the Ray cluster {verb} the resources of one run (--cpus-per-run {options.cpus_per_run:g}, "
            f"--gpus-per-run {options.gpus_per_run:g}); its nodes: {seen}. {tail}")
