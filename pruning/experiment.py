"""Running one configuration, and a study of many with N concurrent workers.

A study is planned as *chains*: lists of runs that must run in order because each
starts from the previous one's model (iterative pruning). The dense run comes first;
the chains then run concurrently, one process per worker, each process with its
share of the CPU cores. A run whose ``result.json`` says ``ok`` is skipped (resume);
a failed or unfinished run is redone.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from . import masks, models, paths
from .config import Hyper, RunConfig, StudyConfig
from .results import is_fs_error, missing_files, read_result, write_json

Progress = Callable[[dict], None]
EVAL_BATCH = 2000


class StudyError(Exception):
    """The study cannot go on as asked; the message names the problem and the fix."""


# --------------------------------------------------------------------------- plan
def dense_config(hyper: Hyper) -> RunConfig:
    return RunConfig(hyper, "none", 0.0, None)


def plan_study(hyper: Hyper, study: StudyConfig) -> list[list[RunConfig]]:
    """The dense run (a chain of its own, first), then the pruned runs grouped in chains."""
    ks = sorted({float(k) for k in study.sparsities if float(k) > 0})
    protocol = hyper.prune.protocol
    chains = [[dense_config(hyper)]]
    for strategy in study.strategies:
        if protocol == "retrain" and hyper.prune.iterative:
            chain, parent = [], paths.DENSE
            for k in ks:
                chain.append(RunConfig(hyper, strategy, k, parent))
                parent = paths.run_name(strategy, k)
            chains.append(chain)
        else:
            parent = None if protocol == "scratch" else paths.DENSE
            chains += [[RunConfig(hyper, strategy, k, parent)] for k in ks]
    return [c for c in chains if c]


def planned_epochs(cfg: RunConfig) -> int:
    if cfg.sparsity == 0 or cfg.hyper.prune.protocol == "scratch":
        return cfg.hyper.train.epochs
    if cfg.hyper.prune.protocol == "retrain":
        return cfg.hyper.prune.retrain_epochs
    return 0


def check_existing(cfg: RunConfig, logdir, data_info: dict | None = None, notices: list | None = None) -> str:
    """'todo' or 'done' for this run in ``logdir``; raises StudyError when a finished run
    there was made with another configuration or, given ``data_info`` (``Dataset.describe()``),
    on other data: it would be silently mixed in. A run is done only when its result says ok
    and every file the result names (model.keras, model.sparse) is there; otherwise it is
    'todo', and a notice saying why is appended to ``notices``."""
    result = read_result(logdir, cfg.name)
    if result is None or result.get("status") != "ok":
        return "todo"
    gone = missing_files(logdir, result)
    if gone:
        if notices is not None:
            notices.append(f"{paths.run_dir(logdir, cfg.name)}: its result.json says finished, but "
                           f"{' and '.join(gone)} {'is' if len(gone) == 1 else 'are'} gone; redoing it "
                           f"(and the runs of its chain after it)")
        return "todo"
    theirs_data = result.get("data") or {}
    if data_info and theirs_data.get("fingerprint") != data_info["fingerprint"]:
        raise StudyError(
            f"{paths.run_dir(logdir, cfg.name)} holds a finished run trained on other data "
            f"({theirs_data.get('source')}, {theirs_data.get('train_examples')} train examples) than this one "
            f"({data_info['source']}, {data_info['train_examples']}). Pass --overwrite to retrain it, or "
            f"--logdir to write this study elsewhere."
        )
    theirs = RunConfig.from_dict(result["config"]).identity()
    ours = cfg.identity()
    if theirs != ours:
        diffs = _diff(theirs, ours)
        raise StudyError(
            f"{paths.run_dir(logdir, cfg.name)} holds a finished run made with another configuration "
            f"({'; '.join(diffs[:4])}). Pass --overwrite to retrain it, or --logdir to write this study elsewhere."
        )
    return "done"


def runs_to_do(chains: list[list[RunConfig]], logdir, overwrite: bool = False,
               data_info: dict | None = None, notices: list | None = None) -> set[str]:
    """Names of the runs to (re)train: unfinished or failed ones, and every later run of the same
    chain (it starts from a model that will change). Raises StudyError on a configuration clash."""
    todo = set()
    for chain in chains:
        stale = False
        for c in chain:
            stale = stale or overwrite or check_existing(c, logdir, data_info, notices) == "todo"
            if stale:
                todo.add(c.name)
    return todo


def _diff(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} there, {b!r} now"]


# --------------------------------------------------------------------------- one run
def set_threads(n: int | None) -> None:
    """Limit TensorFlow's CPU threads; must run before TensorFlow executes anything."""
    if not n:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(n))
        tf.config.threading.set_inter_op_parallelism_threads(min(int(n), 2))
    except RuntimeError:
        pass  # already initialised in this process: keep its setting


def compile_model(model, lr: float, weight_decay: float, steps: int):
    """Compile ``model`` as every run of the study trains: AdamW (Adam without weight decay), the
    learning rate cosine-decayed to 0 over ``steps``, cross-entropy on logits, accuracy."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(lr, max(1, steps)) if steps > 0 else lr
    if weight_decay > 0:
        opt = keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    else:
        opt = keras.optimizers.Adam(schedule)
    model.compile(
        optimizer=opt,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def evaluate(model, x, y) -> tuple[float, float]:
    """(loss, accuracy) of a compiled model on (x, y)."""
    loss, acc = model.evaluate(x, y, batch_size=EVAL_BATCH, verbose=0)
    return float(loss), float(acc)


def _oneshot(logdir, strategy: str, k: float, data, seed: int = 0) -> tuple[float, float]:
    """Train and test accuracy of the study's dense model pruned to k, not retrained."""
    from .callbacks import apply_masks
    from .model import load_model

    model = load_model(paths.model_file(logdir, paths.DENSE))
    apply_masks(model, strategy, k, seed)
    compile_model(model, 1e-3, 0.0, 0)
    return evaluate(model, data.x_train, data.y_train)[1], evaluate(model, data.x_test, data.y_test)[1]


def _progress_callback(name: str, epochs: int, progress: Progress):
    import keras

    class _Report(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            progress(
                {
                    "event": "epoch",
                    "run": name,
                    "epoch": epoch + 1,
                    "epochs": epochs,
                    "loss": float(logs.get("loss", math.nan)),
                    "accuracy": float(logs.get("accuracy", math.nan)),
                    "test_accuracy": float(logs.get("val_accuracy", math.nan)),
                    "seconds": time.perf_counter() - self.t0,
                }
            )

    return _Report()


def _extend(history: dict, new: dict) -> None:
    """Append one fit() call's history to the run's (``val_*`` keys become ``test_*``)."""
    for k, vals in new.items():
        key = "test_" + k[4:] if k.startswith("val_") else k
        history.setdefault(key, []).extend(float(v) for v in vals)


def _phases(schedule, epochs: int) -> list[tuple[int, int]]:
    """[start, end) epoch ranges over which the schedule's target sparsity is constant."""
    bounds = [0] + [e for e in range(1, epochs) if schedule(e) != schedule(e - 1)] + [epochs]
    return list(zip(bounds[:-1], bounds[1:]))


def _fit_shrinking(model, masking, data, epochs: int, fit_args: dict, history: dict, compile_fn):
    """Neuron pruning that costs what its size says: at each change of the target sparsity the
    masks are updated, the dead units are physically removed (``shrink.shrink_model``) and
    training goes on in the smaller network, with Adam's moments of the surviving weights
    carried over. Returns the final (smallest) model."""
    from .shrink import carry_optimizer_state, shrink_model

    for start, end in _phases(masking.schedule, epochs):
        masking.set_model(model)
        masking.update(start)
        smaller, keep = shrink_model(model)
        compile_fn(smaller)
        if model.optimizer is not None and model.optimizer.built:
            carry_optimizer_state(model, smaller, keep)
        model = smaller
        h = model.fit(data.x_train, data.y_train, initial_epoch=start, epochs=end, **fit_args)
        _extend(history, h.history)
        if len(h.history.get("loss", [])) < end - start:
            break  # TerminateOnNaN stopped it; the caller records the failure
    return model


def _final_shrink(model, x_test) -> tuple:
    """The model without its dead units, and the largest |logit difference| on ``x_test``
    between it and the full-size masked network it stands for (``shrink.expand_model``)."""
    from .shrink import expand_model, shrink_model

    smaller = shrink_model(model)[0]
    full = expand_model(smaller)
    diff = np.abs(smaller.predict(x_test, batch_size=EVAL_BATCH, verbose=0)
                  - full.predict(x_test, batch_size=EVAL_BATCH, verbose=0)).max()
    compile_model(smaller, 1e-3, 0.0, 0)
    return smaller, float(diff)


def size_report(model, sparse_path: Path, meta: dict | None = None) -> dict:
    """Write ``model``'s weights in the sparse format and return what it costs: the counts of
    ``shrink.network_counts`` and the bytes of its weights stored dense (float32, the unpruned
    network's shapes) and sparse, each also after gzip."""
    from .model import sparse_layers
    from .shrink import expand_arrays, network_counts
    from .results import atomic_write_bytes
    from .sparse_io import encode, gzip_nbytes

    layers, own = sparse_layers(model)
    kernels = [l.kernel for l in layers]
    full_shapes = [tuple(s) for s in own["full_shapes"]]
    blob = encode(layers, {**(meta or {}), **own})  # validated here; written as is, not encoded twice
    atomic_write_bytes(sparse_path, blob)
    dense_blob = b"".join(k.astype(np.float32).tobytes() for k in expand_arrays(model)[0])
    return {
        **network_counts(kernels, full_shapes),
        "dense_bytes": len(dense_blob),
        "sparse_bytes": len(blob),
        "dense_gzip_bytes": gzip_nbytes(dense_blob),
        "sparse_gzip_bytes": gzip_nbytes(blob),
    }


def _save_model(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


def train_run(cfg: RunConfig, logdir, data, progress: Progress | None = None) -> dict:
    """Run one configuration to its written result (returned). Never raises for a NaN loss
    or a failed parent: those are recorded as ``status: failed`` with the reason."""
    import keras
    import tensorflow as tf

    from .callbacks import MaskingCallback, apply_masks, cubic_schedule, measure_sparsity
    from .model import load_model, masked_layers
    from .models import build_model

    tf.get_logger().setLevel("ERROR")  # each run compiles anew: retracing notices are expected

    progress = progress or (lambda event: None)
    hyper, name = cfg.hyper, cfg.name
    rdir = paths.run_dir(logdir, name)
    if rdir.exists():
        shutil.rmtree(rdir)  # an unfinished, failed or overwritten run: start clean
    rdir.mkdir(parents=True)
    write_json(paths.config_file(logdir, name), cfg.to_dict())
    t0 = time.perf_counter()
    result = {
        "format": 1,
        "run": name,
        "status": "ok",
        "reason": None,
        "config": cfg.to_dict(),
        "data": data.describe(),
        "files": [paths.MODEL, paths.SPARSE_MODEL],  # a run is finished only while these exist
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": _versions(),
    }

    def fail(reason: str) -> dict:
        result.update(status="failed", reason=reason, wall_time_s=time.perf_counter() - t0)
        write_json(paths.result_file(logdir, name), result)
        progress({"event": "done", "run": name, "status": "failed", "reason": reason})
        return result

    keras.utils.set_random_seed(hyper.train.seed)
    epochs = planned_epochs(cfg)
    shrinks = cfg.sparsity > 0 and masks.get(cfg.strategy).shrinks  # unit strategies train shrunk
    protocol = hyper.prune.protocol if cfg.sparsity > 0 else "dense"
    if cfg.parent is not None:
        parent = read_result(logdir, cfg.parent)
        if parent is None or parent.get("status") != "ok" or missing_files(logdir, parent):
            why = ("has not finished" if parent is None else f"failed ({parent.get('reason')})"
                   if parent.get("status") != "ok" else
                   f"lost its {', '.join(missing_files(logdir, parent))}; rerun the study to redo it")
            return fail(f"parent run {cfg.parent} {why}")
        model = load_model(paths.model_file(logdir, cfg.parent))
    else:
        model = build_model(data.input_dim, hyper.model)

    lr = hyper.prune.retrain_lr if protocol == "retrain" else hyper.train.lr
    steps = epochs * math.ceil(len(data.y_train) / hyper.train.batch_size)
    compile_model(model, lr, hyper.train.weight_decay, steps)

    callbacks = [
        keras.callbacks.TensorBoard(log_dir=str(rdir), write_graph=False, profile_batch=0),
        keras.callbacks.TerminateOnNaN(),
        _progress_callback(name, epochs, progress),
    ]
    if cfg.sparsity > 0:
        start_k = float(parent["config"]["sparsity"]) if cfg.parent is not None else 0.0
        ramp = hyper.prune.ramp_epochs if protocol == "retrain" else 0
        schedule = cubic_schedule(start_k, cfg.sparsity, min(ramp, epochs)) if ramp else cfg.sparsity
        masking = MaskingCallback(cfg.strategy, schedule, log_dir=rdir / paths.TRAIN_EVENTS, seed=hyper.train.seed)
        callbacks.insert(0, masking)
        # The starting model pruned straight to k, not retrained (restored afterwards).
        saved = [(l.kernel.numpy(), l.mask.numpy()) for l in masked_layers(model)]
        apply_masks(model, cfg.strategy, cfg.sparsity, hyper.train.seed)
        result["pruned_test_accuracy"] = evaluate(model, data.x_test, data.y_test)[1]
        for l, (kernel, mask) in zip(masked_layers(model), saved):
            l.kernel.assign(kernel)
            l.mask.assign(mask)
        dense = read_result(logdir, paths.DENSE)
        if dense is not None and dense.get("status") == "ok":
            result["oneshot_train_accuracy"], result["oneshot_test_accuracy"] = _oneshot(
                logdir, cfg.strategy, cfg.sparsity, data, hyper.train.seed
            )

    history: dict[str, list[float]] = {}
    if epochs > 0:
        fit_args = dict(batch_size=hyper.train.batch_size, validation_data=(data.x_test, data.y_test),
                        validation_batch_size=EVAL_BATCH, callbacks=callbacks, verbose=0)
        if shrinks:
            model = _fit_shrinking(model, masking, data, epochs, fit_args, history,
                                   lambda m: compile_model(m, lr, hyper.train.weight_decay, steps))
        else:
            h = model.fit(data.x_train, data.y_train, epochs=epochs, **fit_args)
            _extend(history, h.history)
    elif cfg.sparsity > 0:  # one-shot: no training, just the masks
        masking.set_model(model)
        masking.on_train_begin()
        masking.on_epoch_end(0)
        masking.on_train_end()
    result["history"] = history

    losses = history.get("loss", [])
    if any(not math.isfinite(v) for v in losses) or len(losses) < epochs:
        return fail(f"loss became NaN or infinite at epoch {len(losses)} of {epochs}; lower --lr or --retrain-lr")
    result["train_loss"], result["train_accuracy"] = evaluate(model, data.x_train, data.y_train)
    result["test_loss"], result["test_accuracy"] = evaluate(model, data.x_test, data.y_test)
    if not math.isfinite(result["test_loss"]):
        return fail("the final model's loss is NaN or infinite; lower --lr or --retrain-lr")
    if cfg.sparsity == 0:
        result["oneshot_train_accuracy"] = result["train_accuracy"]
        result["oneshot_test_accuracy"] = result["pruned_test_accuracy"] = result["test_accuracy"]
    result["sparsity"] = measure_sparsity(model)
    if shrinks:
        model, result["shrink_max_logit_diff"] = _final_shrink(model, data.x_test)
    result["size"] = size_report(model, paths.sparse_model_file(logdir, name), meta={"run": name})
    _save_model(model, paths.model_file(logdir, name))
    result["wall_time_s"] = time.perf_counter() - t0
    write_json(paths.result_file(logdir, name), result)
    progress({"event": "done", "run": name, "status": "ok", "test_accuracy": result["test_accuracy"],
              "seconds": result["wall_time_s"]})
    return result


# --------------------------------------------------------------------------- study
_WORKER: dict = {}


def _watch_parent(parent: int) -> None:
    """Exit when the study's process is gone (even SIGKILLed): a worker never trains on as an orphan."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(threads: int, data_dir, data_source, queue, verbose: bool = False, model_specs=None) -> None:
    from . import models
    from .tfsetup import import_tensorflow

    models.restore(model_specs or {})  # the builders the study's process knows (a plug-in's too)

    # Ctrl-C reaches the whole process group; the study's process alone decides, and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    import_tensorflow(verbose)
    set_threads(threads)
    _WORKER.update(threads=threads, data_dir=data_dir, data_source=data_source, queue=queue)


def _run_chain(chain: list[dict], logdir: str) -> list[tuple[str, str]]:
    """Worker side: run one chain's runs in order (each starts from the one before)."""
    from .data import load_mnist

    if "data" not in _WORKER:
        _WORKER["data"] = load_mnist(_WORKER["data_dir"], _WORKER["data_source"], log=lambda msg: None)
    queue, out = _WORKER["queue"], []
    for d in chain:
        cfg = RunConfig.from_dict(d)
        queue.put({"event": "start", "run": cfg.name, "threads": _WORKER["threads"]})
        try:
            r = train_run(cfg, logdir, _WORKER["data"], progress=queue.put)
        except Exception as e:
            if is_fs_error(e):
                raise  # a full disk or a read-only place: the study stops and says so (exit 2)
            traceback.print_exc()  # a bug: record it, keep the study going
            reason = f"{type(e).__name__}: {e}"
            write_json(paths.result_file(logdir, cfg.name), {
                "format": 1, "run": cfg.name, "status": "failed", "reason": reason, "config": cfg.to_dict()})
            queue.put({"event": "done", "run": cfg.name, "status": "failed", "reason": reason})
            r = {"status": "failed"}
        out.append((cfg.name, r["status"]))
    return out


def run_cost(cfg: RunConfig) -> float:
    """Relative training cost of a run: epochs x the fraction of the dense network's hidden-layer
    weights it trains. Neuron runs train physically shrunk, so they cost about (1 - k)^2 of it."""
    if cfg.sparsity == 0 or not masks.get(cfg.strategy).shrinks:
        return float(planned_epochs(cfg))
    keep = 1.0 - cfg.sparsity / 100.0
    return planned_epochs(cfg) * keep * keep


def chain_threads(chains: list[list[RunConfig]], cores: int) -> list[int]:
    """Threads per chain when each chain has its own worker: shares of the cores proportional to
    the chains' cost, at least one each. The sum can exceed ``cores`` (a cheap chain keeps one
    thread while the costly one gets all cores): the costly chain then runs at full speed once
    the cheap one is done, which is most of the study."""
    costs = [sum(run_cost(c) for c in chain) for chain in chains]
    total = sum(costs) or 1.0
    return [max(1, min(cores, round(cores * c / total))) for c in costs]


def _fmt_time(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class ProgressPrinter:
    """Turns workers' events into one line each: which run, epoch, accuracy, time left."""

    def __init__(self, runs: list[RunConfig], jobs: int, out=None):
        self.out = out or sys.stdout
        self.epochs = {c.name: planned_epochs(c) for c in runs}
        self.order = {c.name: i + 1 for i, c in enumerate(runs)}
        self.total = sum(self.epochs.values())
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
            self.active.add(run)
            line = f"{tag} {run}: started ({self.epochs.get(run, 0)} epochs, {ev.get('threads')} thread(s))"
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


def worker_plan(first: list, rest: list, jobs: int, cores: int) -> list[list[tuple[list, int, int]]]:
    """Phases of (chains, worker processes, threads per worker); a phase's pools run concurrently.
    ``first`` holds the dense chain (if it is to run), ``rest`` the pruned chains (lists of RunConfig
    dicts). The cores go to the workers that run: a chain left alone (a resume, one strategy) gets
    all of them; one worker per chain shares them by the chains' cost (``chain_threads``)."""
    if jobs == 1:
        return [[(first + rest, 1, cores)]]
    workers = min(jobs, max(1, len(rest)))
    phases = [[(first, 1, cores)], [(rest, workers, max(1, cores // workers))]]
    if 1 < len(rest) <= jobs:
        costs = chain_threads([[RunConfig.from_dict(d) for d in c] for c in rest], cores)
        phases[1] = [([c], 1, t) for c, t in zip(rest, costs)]
    return phases


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
              data_info: dict | None = None, verbose: bool = False) -> dict[int, list[RunConfig]]:
    """Run (or resume) the study once per seed, each into LOGDIR/seed<N>/ with its own dense network;
    returns each seed's planned runs. The root's study.json names the seeds."""
    from dataclasses import replace

    out = out or sys.stdout
    seeds = study_seeds(hyper, study)
    Path(logdir).mkdir(parents=True, exist_ok=True)
    write_json(paths.study_file(logdir), {
        "hyper": RunConfig(hyper).to_dict()["hyper"], "seeds": seeds,
        "study": {"sparsities": list(study.sparsities), "strategies": list(study.strategies), "jobs": study.jobs},
    })
    planned = {}
    for i, seed in enumerate(seeds, start=1):
        if len(seeds) > 1:
            print(f"== seed {seed} ({i} of {len(seeds)}): {paths.seed_dir(logdir, seed)}", file=out, flush=True)
        seeded = replace(hyper, train=replace(hyper.train, seed=seed))
        planned[seed] = run_study(seeded, study, paths.seed_dir(logdir, seed), overwrite, out, data_info, verbose)
    return planned


def run_study(hyper: Hyper, study: StudyConfig, logdir, overwrite: bool = False, out=None,
              data_info: dict | None = None, verbose: bool = False) -> list[RunConfig]:
    """Run (or resume) every run of the study; returns the planned runs, in order.

    The dense run trains first with all CPU cores; then the chains run on ``study.jobs``
    worker processes, each limited to its share of the cores.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    out = out or sys.stdout
    logdir = Path(logdir)
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
    pending = [[c.to_dict() for c in chain if c.name in todo] for chain in chains]
    first, rest = [c for c in pending[:1] if c], [c for c in pending[1:] if c]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    printer = ProgressPrinter([c for c in runs if c.name in todo], min(study.jobs, max(1, len(rest))), out)

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    stop = threading.Event()
    drainer = threading.Thread(target=_drain, args=(queue, printer, stop), daemon=True)
    drainer.start()
    phases = worker_plan(first, rest, study.jobs, cores)
    pools: list = []
    try:
        for phase in phases:
            live = [(chain_list, n, threads) for chain_list, n, threads in phase if chain_list]
            pools = [ProcessPoolExecutor(min(n, len(chain_list)), mp_context=ctx, initializer=_init_worker,
                                         initargs=(threads, hyper.data.data_dir, hyper.data.data_source, queue,
                                                   verbose, models.snapshot()))
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
