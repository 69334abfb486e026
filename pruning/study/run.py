"""One run of the study, from its configuration to its written result.

``train_run`` does what every run does and asks the run's protocol (``pruning.protocols``: oneshot,
retrain, scratch, lottery, the students, or one of the user's) for the rest, as ``pruning.protocols.base``
describes: the model it starts from, its schedule and callbacks, the pruning callback, how it fits, and what
it adds to the result. It writes ``result.json``, ``model.keras``, ``model.sparse`` and TensorBoard events into
the run's directory, and never raises for a NaN loss or a failed parent: those are written as ``status:
failed`` with the reason. It names no protocol.

A network of the user's own (``--model FILE.py:FUNCTION`` or ``FILE.keras``: ``pruning.prunable``'s twins)
reads the examples in their shape (``models.model_data``: every protocol gets that view as ``run.data``),
trains masked, and is saved as plain Keras layers in ``model.keras`` (``graph_export``: shrunk when channels
were removed, the pruned weights baked in; ``shrink_max_logit_diff`` records how far its outputs are from
the masked network's on the test set) and with its masks in ``masked.keras`` (what the runs that start from
it load); its size comes from ``pruning.graph``'s report, and there is no ``model.sparse``.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .. import models, paths, protocols, sparsify
from ..config import RunConfig
from ..core.training import (EVAL_BATCH, POLICIES, compile_model, evaluate, logits, precision, save_model,  # noqa: F401
                             set_threads, versions)
from ..files import write_json
from ..report.results import (ParentUnusable, file_checks, finished_result, load_parent_model, read_result,
                              start_model_file)

Progress = Callable[[dict], None]
TIMING_KINDS = ("train", "validation", "eval", "masks", "io", "other")


class Clock:
    """A run's wall time by kind of work (``TIMING_KINDS``): ``with clock("eval"): ...``. A section
    inside another counts only in the inner one. ``train`` is ``fit`` without its per-epoch
    ``validation`` on the test set (together: the epochs); ``eval`` the full evaluations before and
    after; ``masks`` computing masks and sparsities; ``io`` loading, saving and the size report;
    ``other`` the rest of the wall time."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.spent = dict.fromkeys(TIMING_KINDS, 0.0)
        self._open: list[list] = []  # [kind, seconds spent in sections inside it]
        self.epochs: list[float] = []  # each epoch's wall time, validation included

    @contextmanager
    def __call__(self, kind: str):
        start = time.perf_counter()
        self._open.append([kind, 0.0])
        try:
            yield
        finally:
            _, inner = self._open.pop()
            seconds = time.perf_counter() - start
            self.spent[kind] += seconds - inner
            if self._open:
                self._open[-1][1] += seconds

    def move(self, seconds: float, source: str, target: str) -> None:
        self.spent[source] -= seconds
        self.spent[target] += seconds

    def report(self) -> dict:
        wall = time.perf_counter() - self.t0
        out = {f"{k}_s": v for k, v in self.spent.items() if k != "other"}
        out["other_s"] = max(0.0, wall - sum(out.values()))
        out["epoch_s"] = list(self.epochs)
        return out


_DENSE: dict = {}  # the study's dense model, loaded once per process: (path, mtime, size) -> model


def _dense_model(path: Path, trusted: bool = False):
    """The dense model saved at ``path``, loaded once per process (every run of a chain prunes it to
    its k for the one-shot accuracy); reloaded when the file changes. ``masks_applied`` restores its
    weights exactly after each use, so a run never sees another's masks."""
    st = os.stat(path)
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _DENSE:
        _DENSE.clear()
        _DENSE[key] = load_parent_model(path, "the dense run", trusted=trusted)
        compile_model(_DENSE[key], 1e-3, 0.0, 0)
    return _DENSE[key]


def _pruned_accuracies(model, cfg: RunConfig, logdir, data, start_masks, clock: Clock) -> dict:
    """What pruning alone does, before any retraining: the starting model pruned straight to k
    (``pruned_test_accuracy``) and the study's dense model pruned to k (``oneshot_*``; the same
    masks when the run starts from the dense model, so they are computed once)."""
    from ..core.callbacks import masks_applied

    out = {}
    with masks_applied(model, start_masks), clock("eval"):
        out["pruned_test_accuracy"] = evaluate(model, data.x_test, data.y_test)[1]
        if cfg.parent == paths.DENSE:
            out["oneshot_train_accuracy"] = evaluate(model, data.x_train, data.y_train)[1]
            out["oneshot_test_accuracy"] = out["pruned_test_accuracy"]
            return out
    dense = read_result(logdir, paths.DENSE)
    if dense is not None and dense.get("status") == "ok":
        with clock("io"):
            finished_result(logdir, paths.DENSE, "the dense run")  # its files checked before they are read
            path = start_model_file(logdir, dense)
            # a network built by the user's own Python code may hold a Lambda: trusted (safe_mode off)
            dense_model = _dense_model(path, trusted=models.runs_own_code(cfg.hyper.model))
        with clock("masks"):
            dense_masks = sparsify.compute_masks(dense_model, cfg.hyper.sparsify.method, cfg.strategy, cfg.sparsity,
                                                 cfg.hyper.train.seed)
        with masks_applied(dense_model, dense_masks), clock("eval"):
            out["oneshot_train_accuracy"] = evaluate(dense_model, data.x_train, data.y_train)[1]
            out["oneshot_test_accuracy"] = evaluate(dense_model, data.x_test, data.y_test)[1]
    return out


def _progress_callback(name: str, epochs: int, progress: Progress, clock: Clock):
    """Reports each epoch to ``progress`` and times it (and its validation) on ``clock``."""
    import keras

    class _Report(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.validation_s = 0.0  # inside fit: moved from train to validation on the clock afterwards

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_test_begin(self, logs=None):
            self.v0 = time.perf_counter()

        def on_test_end(self, logs=None):
            self.validation_s += time.perf_counter() - self.v0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            clock.epochs.append(time.perf_counter() - self.t0)
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


class _Run:
    """What the runner lends the run's protocol (``pruning.protocols.base.RunContext``)."""

    def __init__(self, cfg: RunConfig, logdir, data, clock: Clock, result: dict, xla: bool):
        self.cfg, self.logdir, self.data, self.clock, self.result, self.xla = cfg, logdir, data, clock, result, xla
        self.rdir = paths.run_dir(logdir, cfg.name)

    def compile(self, model, lr: float, steps: int, start_step: int = 0, loss=None, accuracy=None) -> None:
        train = self.cfg.hyper.train
        compile_model(model, lr, train.weight_decay, steps, self.xla, start_step, train.lr_schedule, loss, accuracy)
        sparsify.exclude_from_weight_decay(model)  # AdamW's decay off a --sparsify method's own variables

    def pruned_accuracies(self, model, start_masks) -> dict:
        return _pruned_accuracies(model, self.cfg, self.logdir, self.data, start_masks, self.clock)

    def save(self, model, path) -> None:
        save_model(model, Path(path))


def train_run(cfg: RunConfig, logdir, data, progress: Progress | None = None, xla: bool = False,
              execution: dict | None = None) -> dict:
    """Run one configuration to its written result (returned), its models built under its --precision:
    see ``_train_run``."""
    with precision(cfg.hyper.train.precision):
        return _train_run(cfg, logdir, data, progress, xla, execution)


def _train_run(cfg: RunConfig, logdir, data, progress: Progress | None = None, xla: bool = False,
               execution: dict | None = None) -> dict:
    """Run one configuration to its written result (returned). Never raises for a NaN loss
    or a failed parent: those are recorded as ``status: failed`` with the reason. ``xla``
    (``--xla``) trains with XLA-compiled steps; it is how the run executes, not what it computes,
    so it is recorded in ``result["execution"]`` (with ``execution``: the engine, its resources) and is
    not part of the run's identity."""
    import keras
    import tensorflow as tf

    from ..core.callbacks import measure_sparsity
    from ..deploy.export import graph_export, graph_size_report, size_report

    tf.get_logger().setLevel("ERROR")  # each run compiles anew: retracing notices are expected

    progress = progress or (lambda event: None)
    data = models.model_data(cfg.hyper.model, data)  # the examples as the network reads them (a view)
    own = models.get_model(cfg.hyper.model.name).user  # a network of the user's own: pruning.prunable's
    name = cfg.name
    rdir = paths.run_dir(logdir, name)
    if rdir.exists():
        shutil.rmtree(rdir)  # an unfinished, failed or overwritten run: start clean
    rdir.mkdir(parents=True)
    write_json(paths.config_file(logdir, name), cfg.to_dict())
    t0 = time.perf_counter()
    clock = Clock()
    result = {
        "format": 1,
        "run": name,
        "status": "ok",
        "reason": None,
        "config": cfg.to_dict(),
        "data": data.describe(),
        "files": [],  # a run is finished only while these exist as written (``checks``)
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "execution": {"xla": bool(xla), "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                      **(execution or {})},
    }
    protocol = protocols.for_run(cfg)
    run = _Run(cfg, logdir, data, clock, result, xla)

    def fail(reason: str) -> dict:
        result.update(status="failed", reason=reason, wall_time_s=time.perf_counter() - t0)
        write_json(paths.result_file(logdir, name), result)
        progress({"event": "done", "run": name, "status": "failed", "reason": reason})
        return result

    # 1. the starting model and what it trains on, compiled as the run trains it
    keras.utils.set_random_seed(cfg.hyper.train.seed)
    result["files"] = protocol.files(run)
    if own:  # no sparse encoding of its layers; its masked network beside the plain one
        result["files"] = [f for f in result["files"] if f != paths.SPARSE_MODEL] + [paths.MASKED_MODEL]
    try:
        with clock("io"):
            start = protocol.start(run)
    except ParentUnusable as e:
        return fail(str(e))
    # a --sparsify method's layers, before compiling (its penalty enters the loss when the step is traced)
    start.model = sparsify.prepare_run(start.model, cfg.hyper.sparsify, cfg.strategy, cfg.hyper.train.seed)
    model, train_data = start.model, start.data
    run.compile(model, start.lr, start.steps, start.start_step, start.loss, start.accuracy)
    report = _progress_callback(name, start.epochs, progress, clock)
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=str(rdir), write_graph=False, profile_batch=0),
        keras.callbacks.TerminateOnNaN(),
        report,
        *protocol.callbacks(run, start),
    ]

    # 2. pruning: the callback that prunes along the run's schedule (and what pruning alone does)
    try:
        start.masking = protocol.masking(run, start)
    except ParentUnusable as e:
        return fail(str(e))
    if start.masking is not None:
        callbacks.insert(0, start.masking)

    # 3. training
    history: dict[str, list[float]] = {}
    if start.epochs > 0:
        y_val = start.y_val if start.y_val is not None else data.y_test
        fit_args = dict(batch_size=cfg.hyper.train.batch_size, validation_data=(data.x_test, y_val),
                        validation_batch_size=EVAL_BATCH, callbacks=callbacks, verbose=0)
        with clock("train"):
            model, history = protocol.fit(run, start, fit_args)
        clock.move(report.validation_s, "train", "validation")
    elif start.masking is not None:  # one-shot: no training, just the masks
        with clock("masks"):
            start.masking.prune_once(model)
    result["history"] = history
    losses = history.get("loss", [])
    if any(not math.isfinite(v) for v in losses) or len(losses) < start.epochs:
        return fail(f"loss became NaN or infinite at epoch {len(losses)} of {start.epochs}; lower --lr or "
                    f"--retrain-lr")

    # 4. the final model: measured, finished by its protocol, written; result.json last (it marks the run finished)
    with clock("eval"):
        result["train_loss"], result["train_accuracy"] = evaluate(model, train_data.x_train, train_data.y_train)
        result["test_loss"], result["test_accuracy"] = evaluate(model, data.x_test, data.y_test)
    if not math.isfinite(result["test_loss"]):
        return fail("the final model's loss is NaN or infinite; lower --lr or --retrain-lr")
    if cfg.sparsity == 0:
        result["oneshot_train_accuracy"] = result["train_accuracy"]
        result["oneshot_test_accuracy"] = result["pruned_test_accuracy"] = result["test_accuracy"]
    with clock("masks"):  # a --sparsify model as the plain network it stands for (gates folded, say)
        result["sparsity"] = measure_sparsity(sparsify.finalize(model))
    model = protocol.finish(run, start, model, history)
    saved = model
    if own:  # plain Keras layers, its outputs checked against the masked network's
        with clock("eval"):
            saved, result["shrink_max_logit_diff"] = graph_export(model, data.x_test)
    with clock("io"):  # the sizes too: the sparse encoding and the gzip measurements
        if own:
            result["size"] = {**graph_size_report(model), "saved_params": int(saved.count_params())}
            save_model(model, rdir / paths.MASKED_MODEL)
        else:
            result["size"] = size_report(sparsify.finalize(model), paths.sparse_model_file(logdir, name),
                                         meta={"run": name})
        protocol.sizes(run, start, result["size"])
        save_model(saved, paths.model_file(logdir, name))
        result["checks"] = file_checks(rdir, result["files"])  # a resume tells a damaged file from this one
    result["timing"] = clock.report()
    result["wall_time_s"] = time.perf_counter() - t0
    write_json(paths.result_file(logdir, name), result)
    progress({"event": "done", "run": name, "status": "ok", "test_accuracy": result["test_accuracy"],
              "seconds": result["wall_time_s"]})
    return result
