"""One run of the study, from its configuration to its written result.

``train_run`` builds (or loads from its parent run) the model, prunes it with the run's strategy
along its schedule while it retrains, and writes ``result.json``, ``model.keras``, ``model.sparse``
and TensorBoard events into the run's directory. It never raises for a NaN loss or a failed parent:
those are written as ``status: failed`` with the reason.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from .. import paths
from ..config import RunConfig
from ..core import masks
from ..files import write_json
from ..report.results import damaged_files, describe_damage, file_checks, read_result
from .plan import planned_epochs

Progress = Callable[[dict], None]
EVAL_BATCH = 2000
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


POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}  # --precision -> Keras dtype policy


@contextmanager
def precision(name: str = "float32"):
    """Build the models made inside under ``name``'s Keras dtype policy (``--precision``), and restore
    the process's policy after. A saved model keeps the policy it was built with, so a run that starts
    from another loads it as it trained; the output layers compute in float32 under either
    (``pruning.models``)."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(POLICIES[name])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def compile_model(model, lr: float, weight_decay: float, steps: int, xla: bool = False, start_step: int = 0,
                  schedule: str = "cosine", loss=None, accuracy=None):
    """Compile ``model`` as every run of the study trains: AdamW (Adam without weight decay; both with
    TensorFlow's fused update, ``pruning.core.optim``), the
    learning rate cosine-decayed to 0 over ``steps`` (from step ``start_step`` of that schedule: a
    lottery level resuming the dense run's schedule at its rewind point; ``schedule="constant"``: ``lr``
    throughout), cross-entropy on logits (or ``loss``), accuracy (or the metric ``accuracy``). ``xla``
    compiles the training and evaluation steps with XLA (Keras' ``jit_compile``; off by default
    on CPUs): faster epochs, and sums in another order, so the last digits differ."""
    import keras

    from ..core.optim import FusedAdam, FusedAdamW, ShiftedSchedule

    rate = keras.optimizers.schedules.CosineDecay(lr, max(1, steps)) if steps > 0 and schedule == "cosine" else lr
    if start_step and not isinstance(rate, float):
        rate = ShiftedSchedule(rate, start_step)
    if weight_decay > 0:
        opt = FusedAdamW(rate, weight_decay=weight_decay)
    else:
        opt = FusedAdam(rate)
    model.compile(
        optimizer=opt,
        loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[accuracy or "accuracy"],
        jit_compile=bool(xla),
    )


_TENSORS: dict = {}  # id(NumPy array) -> (the array, its TensorFlow copy): a data set is copied once
_EVAL_STEPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its evaluation step


def _tensor(a):
    import tensorflow as tf

    hit = _TENSORS.get(id(a))
    if hit is None or hit[0] is not a:
        if len(_TENSORS) > 8:
            _TENSORS.clear()
        hit = _TENSORS[id(a)] = (a, tf.constant(a))
    return hit[1]


def evaluate(model, x, y) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model``'s logits on (x, y), in batches of ``EVAL_BATCH``.

    What ``model.evaluate`` computes (the same batches, so the same logits and the same accuracy),
    about 1.7x faster: the arrays become tensors once per process instead of a tf.data pipeline per
    call, and the step is one ``tf.function`` kept with the model. The loss is summed in float64 over
    the batches, so it can differ from Keras' running mean in the last float32 digit."""
    import keras
    import tensorflow as tf

    step = _EVAL_STEPS.get(model)
    if step is None:
        @tf.function(reduce_retracing=True)
        def step(xb, yb):
            logits = model(xb, training=False)
            losses = keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)
            hits = tf.equal(tf.argmax(logits, axis=-1, output_type=yb.dtype), yb)
            return tf.reduce_sum(tf.cast(losses, tf.float64)), tf.reduce_sum(tf.cast(hits, tf.int64))
        _EVAL_STEPS[model] = step
    xt, yt = _tensor(x), _tensor(y)
    n = int(yt.shape[0])
    loss, correct = 0.0, 0
    for start in range(0, n, EVAL_BATCH):
        batch_loss, batch_correct = step(xt[start:start + EVAL_BATCH], yt[start:start + EVAL_BATCH])
        loss, correct = loss + float(batch_loss), correct + int(batch_correct)
    return loss / n, correct / n


_DENSE: dict = {}  # the study's dense model, loaded once per process: (path, mtime, size) -> model


def _dense_model(path: Path):
    """The dense model saved at ``path``, loaded once per process (every run of a chain prunes it to
    its k for the one-shot accuracy); reloaded when the file changes. ``masks_applied`` restores its
    weights exactly after each use, so a run never sees another's masks."""
    st = os.stat(path)
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _DENSE:
        _DENSE.clear()
        _DENSE[key] = load_parent_model(path, "the dense run")
        compile_model(_DENSE[key], 1e-3, 0.0, 0)
    return _DENSE[key]


def logits(model, x) -> np.ndarray:
    """``model``'s logits on ``x`` in batches of ``EVAL_BATCH`` (``model.predict`` without its
    per-call tf.data pipeline and tracing)."""
    import tensorflow as tf

    step = tf.function(lambda xb: model(xb, training=False), reduce_retracing=True)
    xt = _tensor(x)
    return np.concatenate([step(xt[i:i + EVAL_BATCH]).numpy() for i in range(0, int(xt.shape[0]), EVAL_BATCH)])


def _pruned_accuracies(model, cfg: RunConfig, logdir, data, start_masks, clock: Clock) -> dict:
    """What pruning alone does, before any retraining: the starting model pruned straight to k
    (``pruned_test_accuracy``) and the study's dense model pruned to k (``oneshot_*``; the same
    masks when the run starts from the dense model, so they are computed once)."""
    from ..core.callbacks import compute_model_masks, masks_applied

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
            dense_model = _dense_model(paths.model_file(logdir, paths.DENSE))
        with clock("masks"):
            dense_masks = compute_model_masks(dense_model, cfg.strategy, cfg.sparsity, cfg.hyper.train.seed)
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
    from ..deploy.shrink import carry_optimizer_state, shrink_model

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
    from ..deploy.shrink import expand_model, shrink_model

    smaller = shrink_model(model)[0]
    full = expand_model(smaller)
    diff = np.abs(logits(smaller, x_test) - logits(full, x_test)).max()
    compile_model(smaller, 1e-3, 0.0, 0)
    return smaller, float(diff)


def _save_model(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


class ParentUnusable(Exception):
    """The run's parent cannot be started from; the message says why (written as the run's failure)."""


def finished_result(logdir, name: str, role: str = "parent run") -> dict:
    """The result of the finished run ``name``, which this run starts from; ParentUnusable if it is not
    (unfinished, failed, or a file it names gone or not the one it wrote: sizes and SHA-256 checked)."""
    result = read_result(logdir, name)
    if result is None or result.get("status") != "ok":
        why = "has not finished" if result is None else f"failed ({result.get('reason')})"
        raise ParentUnusable(f"{role} {name} {why}")
    damage = damaged_files(logdir, result, deep=True)
    if damage and set(damage.values()) == {"gone"}:
        raise ParentUnusable(f"{role} {name} lost its {', '.join(damage)}; rerun the study to redo it")
    if damage:
        raise ParentUnusable(f"{role} {name} cannot be read: in {paths.run_dir(logdir, name)}, {describe_damage(damage)}. "
                             f"Rerun the same command: the study redoes a run whose files are damaged, and the runs "
                             f"that start from it")
    return result


def load_parent_model(path: Path, role: str = "parent run"):
    """The Keras model saved at ``path`` by a finished run; ParentUnusable naming the file, not a Keras
    traceback, when it cannot be read (a result written before files were checksummed, say)."""
    from ..core.layers import load_model

    try:
        return load_model(path)
    except Exception as e:  # Keras raises ValueError, OSError, zipfile errors... for a damaged .keras file
        raise ParentUnusable(f"{role}'s {path} cannot be read as a Keras model ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}). Delete its run directory and rerun the "
                             f"same command: the study redoes it and the runs that start from it") from None


def _start_model(cfg: RunConfig, logdir, data):
    """The model the run starts from (its parent's, else a fresh one) and the parent's result (None)."""
    from ..models import build_model

    if cfg.parent is None:
        return build_model(data.input_dim, cfg.hyper.model), None
    parent = finished_result(logdir, cfg.parent)
    return load_parent_model(paths.model_file(logdir, cfg.parent)), parent


def _student(cfg: RunConfig, logdir, data):
    """A student run (``pruning.protocols.distill``): the small dense network, fresh; its training and test
    targets (the labels, or the labels packed with the teacher's logits for ``distill``); its loss and
    accuracy metric (None: the study's usual ones); and what result.json records about it."""
    import keras

    from ..models import build_model
    from ..protocols import distill

    teacher = finished_result(logdir, cfg.parent, role="teacher (the dense run)")
    seed = cfg.hyper.train.seed
    full = build_model(data.input_dim, cfg.hyper.model)
    target = distill.target_params(full, cfg.sparsity)
    student_cfg = distill.student_config(cfg.hyper.model, full, target)
    keras.utils.set_random_seed(seed)  # the student's initialisation depends on the seed only
    model = build_model(data.input_dim, student_cfg)
    info = {"hidden": list(student_cfg.hidden), "filters": list(student_cfg.filters),
            "params": int(sum(np.prod(w.shape) for w in model.trainable_weights)), "target_params": int(target),
            "dense_params": int(sum(np.prod(w.shape) for w in full.trainable_weights))}
    if cfg.strategy != "distill":
        return model, data.y_train, data.y_test, None, None, info
    net = load_parent_model(paths.model_file(logdir, teacher["run"]), "teacher (the dense run)")
    d = cfg.hyper.distill
    info.update(temperature=d.temperature, alpha=d.distill_alpha)
    return (model, distill.pack_targets(data.y_train, distill.teacher_logits(net, data.x_train)),
            distill.pack_targets(data.y_test, distill.teacher_logits(net, data.x_test)),
            distill.distillation_loss(d.temperature, d.distill_alpha), distill.packed_accuracy(), info)


def _schedule(cfg: RunConfig, parent: dict | None, epochs: int):
    """The run's target sparsity per epoch: a cubic ramp from the parent's k to the run's over
    ``--ramp-epochs`` when retraining, else the run's k from the start."""
    from ..core.callbacks import cubic_schedule

    start_k = float(parent["config"]["sparsity"]) if parent is not None else 0.0
    ramp = cfg.hyper.prune.ramp_epochs if cfg.hyper.prune.protocol == "retrain" else 0
    return cubic_schedule(start_k, cfg.sparsity, min(ramp, epochs)) if ramp else cfg.sparsity


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

    from ..core.callbacks import MaskingCallback, compute_model_masks, measure_sparsity
    from ..deploy.export import size_report

    tf.get_logger().setLevel("ERROR")  # each run compiles anew: retracing notices are expected

    progress = progress or (lambda event: None)
    hyper, name = cfg.hyper, cfg.name
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
        "files": [paths.MODEL, paths.SPARSE_MODEL],  # a run is finished only while these exist
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": _versions(),
        "execution": {"xla": bool(xla), "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                      **(execution or {})},
    }

    def fail(reason: str) -> dict:
        result.update(status="failed", reason=reason, wall_time_s=time.perf_counter() - t0)
        write_json(paths.result_file(logdir, name), result)
        progress({"event": "done", "run": name, "status": "failed", "reason": reason})
        return result

    # 1. the starting model, compiled as the run trains it
    keras.utils.set_random_seed(hyper.train.seed)
    lottery = hyper.prune.protocol == "lottery"
    student = cfg.sparsity > 0 and not masks.get(cfg.strategy).masks
    y_fit, y_val, loss, accuracy = data.y_train, data.y_test, None, None
    if lottery:  # levels of a lottery (pruning.protocols.lottery): its own start, split and schedule
        from ..protocols import lottery as lot

        data, heldout_data = lot.split(data, hyper.lottery.validation_size, hyper.train.seed)
        sched = lot.schedule(cfg, len(data.y_train))
        result["files"] = lot.run_files(cfg, sched)
    try:
        with clock("io"):
            if lottery:
                model, start_masks = lot.start_model(cfg, logdir, data.input_dim)
                parent = None
                _save_model(model, paths.run_dir(logdir, name) / paths.START_MODEL)
            elif student:
                model, y_fit, y_val, loss, accuracy, result["student"] = _student(cfg, logdir, data)
                parent = None
            else:
                model, parent = _start_model(cfg, logdir, data)
    except ParentUnusable as e:
        return fail(str(e))
    epochs = sched.fit_epochs if lottery else planned_epochs(cfg)
    retrains = cfg.sparsity > 0 and hyper.prune.protocol == "retrain"
    lr = hyper.prune.retrain_lr if retrains else hyper.train.lr
    steps = sched.total_steps if lottery else epochs * math.ceil(len(data.y_train) / hyper.train.batch_size)
    compile_model(model, lr, hyper.train.weight_decay, steps, xla, sched.start_step if lottery else 0,
                  hyper.train.lr_schedule, loss, accuracy)
    report = _progress_callback(name, epochs, progress, clock)
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=str(rdir), write_graph=False, profile_batch=0),
        keras.callbacks.TerminateOnNaN(),
        report,
    ]
    if lottery:
        heldout = lot.heldout_callback(*heldout_data, rdir / paths.HELDOUT_EVENTS, evaluate)
        callbacks.append(heldout)
        if cfg.level == 0 and sched.rewind_steps > 0:
            callbacks.append(lot.save_at_step_callback(sched.rewind_steps, rdir / paths.REWIND_MODEL, _save_model))

    # 2. pruning: what it does before any retraining, and the callback that prunes along the schedule
    masking = None
    if lottery and start_masks is not None:  # a level's masks are fixed while it trains
        masking = MaskingCallback(cfg.strategy, cfg.sparsity, log_dir=rdir / paths.TRAIN_EVENTS,
                                  seed=hyper.train.seed, initial=start_masks)
        callbacks.insert(0, masking)
    elif cfg.sparsity > 0 and not lottery and not student:
        # The masks of the starting model pruned straight to k: measured before retraining, and the
        # callback's first masks too when its schedule starts at k (one-shot, no ramp).
        with clock("masks"):
            start_masks = compute_model_masks(model, cfg.strategy, cfg.sparsity, hyper.train.seed)
        try:
            result.update(_pruned_accuracies(model, cfg, logdir, data, start_masks, clock))
        except ParentUnusable as e:
            return fail(str(e))
        masking = MaskingCallback(cfg.strategy, _schedule(cfg, parent, epochs), log_dir=rdir / paths.TRAIN_EVENTS,
                                  seed=hyper.train.seed, initial=start_masks)
        callbacks.insert(0, masking)

    # 3. training (unit strategies on the physically shrinking network)
    history: dict[str, list[float]] = {}
    shrinks = masking is not None and masks.get(cfg.strategy).shrinks and not lottery
    if epochs > 0:
        fit_args = dict(batch_size=hyper.train.batch_size, validation_data=(data.x_test, y_val),
                        validation_batch_size=EVAL_BATCH, callbacks=callbacks, verbose=0)
        with clock("train"):
            if lottery:
                for h in lot.fit_from(model, data, sched, fit_args, hyper.train.seed):
                    _extend(history, h)
            elif shrinks:
                model = _fit_shrinking(model, masking, data, epochs, fit_args, history,
                                       lambda m: compile_model(m, lr, hyper.train.weight_decay, steps, xla,
                                                                         schedule=hyper.train.lr_schedule))
            else:
                _extend(history, model.fit(data.x_train, y_fit, epochs=epochs, **fit_args).history)
        clock.move(report.validation_s + (heldout.seconds if lottery else 0.0), "train", "validation")
        if lottery:
            history.update(epoch=[float(e) for e in heldout.epochs], heldout_loss=heldout.loss,
                           heldout_accuracy=heldout.accuracy)
    elif masking is not None:  # one-shot: no training, just the masks
        with clock("masks"):
            masking.prune_once(model)
    result["history"] = history
    losses = history.get("loss", [])
    if any(not math.isfinite(v) for v in losses) or len(losses) < epochs:
        return fail(f"loss became NaN or infinite at epoch {len(losses)} of {epochs}; lower --lr or --retrain-lr")

    # 4. the final model: measured, shrunk, written; result.json last (it marks the run finished)
    with clock("eval"):
        result["train_loss"], result["train_accuracy"] = evaluate(model, data.x_train, data.y_train)
        result["test_loss"], result["test_accuracy"] = evaluate(model, data.x_test, data.y_test)
    if not math.isfinite(result["test_loss"]):
        return fail("the final model's loss is NaN or infinite; lower --lr or --retrain-lr")
    if cfg.sparsity == 0:
        result["oneshot_train_accuracy"] = result["train_accuracy"]
        result["oneshot_test_accuracy"] = result["pruned_test_accuracy"] = result["test_accuracy"]
    with clock("masks"):
        result["sparsity"] = measure_sparsity(model)
    if lottery:
        result["lottery"] = {"level": cfg.level, "control": cfg.control, "remaining": lot.remaining(model),
                             "rewind_steps": sched.rewind_steps, "start_step": sched.start_step,
                             "steps_per_epoch": sched.steps_per_epoch, "total_steps": sched.total_steps,
                             "heldout_examples": len(heldout_data[1]),
                             **lot.early_stop(heldout, history, sched)}
    if shrinks:
        with clock("eval"):
            model, result["shrink_max_logit_diff"] = _final_shrink(model, data.x_test)
    with clock("io"):  # the sizes too: the sparse encoding and the gzip measurements
        result["size"] = size_report(model, paths.sparse_model_file(logdir, name), meta={"run": name})
        if student:  # its weights against the dense network's, as for the pruned networks
            result["size"]["effective_sparsity"] = 1.0 - result["size"]["params_nonzero"] / result["student"]["dense_params"]
        _save_model(model, paths.model_file(logdir, name))
        result["checks"] = file_checks(rdir, result["files"])  # a resume tells a damaged file from this one
    result["timing"] = clock.report()
    result["wall_time_s"] = time.perf_counter() - t0
    write_json(paths.result_file(logdir, name), result)
    progress({"event": "done", "run": name, "status": "ok", "test_accuracy": result["test_accuracy"],
              "seconds": result["wall_time_s"]})
    return result
