"""What the runner (``pruning.study.run``) and the protocols (``pruning.protocols``) both use to train and
measure a model: the precision policy and thread settings, compiling as every run trains, evaluating and
computing logits without Keras' per-call overhead, saving atomically. It sits below both, so that imports
run one way: study.run -> protocols -> core (a finished parent run is read by ``pruning.report.results``).
"""
from __future__ import annotations

import os
import sys
import weakref
from contextlib import contextmanager
from pathlib import Path

import numpy as np

EVAL_BATCH = 2000


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
    throughout), cross-entropy on logits (or ``loss``; on probabilities for a network whose output layer
    applies a softmax: ``from_logits``), accuracy (or the metric ``accuracy``). ``xla``
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
        loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits(model)),
        metrics=[accuracy or "accuracy"],
        jit_compile=bool(xla),
    )


def from_logits(model) -> bool:
    """Whether ``model`` outputs logits (True: the study's networks, and most of the user's own), or
    probabilities: its output layer applies a softmax (``pruning.models.user.outputs_probabilities``, a
    network of the user's own built that way), so that the cross-entropy must be taken of them as they are."""
    from ..models.user import outputs_probabilities

    if not getattr(model, "outputs", None):  # a subclassed model: no graph to read, logits as always
        return True
    return not outputs_probabilities(model)


_TENSORS: dict = {}  # id(NumPy array) -> (the array, its TensorFlow copy): a data set is copied once
_EVAL_STEPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its evaluation step


def tensor(a):
    import tensorflow as tf

    hit = _TENSORS.get(id(a))
    if hit is None or hit[0] is not a:
        if len(_TENSORS) > 8:
            _TENSORS.clear()
        hit = _TENSORS[id(a)] = (a, tf.constant(a))
    return hit[1]


def evaluate(model, x, y) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model``'s logits (its probabilities, for a network whose output
    applies a softmax: ``from_logits``) on (x, y), in batches of ``EVAL_BATCH``.

    What ``model.evaluate`` computes (the same batches, so the same logits and the same accuracy),
    about 1.7x faster: the arrays become tensors once per process instead of a tf.data pipeline per
    call, and the step is one ``tf.function`` kept with the model. The loss is summed in float64 over
    the batches, so it can differ from Keras' running mean in the last float32 digit."""
    import keras
    import tensorflow as tf

    step = _EVAL_STEPS.get(model)
    if step is None:
        on_logits = from_logits(model)

        @tf.function(reduce_retracing=True)
        def step(xb, yb):
            logits = model(xb, training=False)
            losses = keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=on_logits)
            hits = tf.equal(tf.argmax(logits, axis=-1, output_type=yb.dtype), yb)
            return tf.reduce_sum(tf.cast(losses, tf.float64)), tf.reduce_sum(tf.cast(hits, tf.int64))
        _EVAL_STEPS[model] = step
    xt, yt = tensor(x), tensor(y)
    n = int(yt.shape[0])
    loss, correct = 0.0, 0
    for start in range(0, n, EVAL_BATCH):
        batch_loss, batch_correct = step(xt[start:start + EVAL_BATCH], yt[start:start + EVAL_BATCH])
        loss, correct = loss + float(batch_loss), correct + int(batch_correct)
    return loss / n, correct / n


def logits(model, x) -> np.ndarray:
    """``model``'s logits on ``x`` in batches of ``EVAL_BATCH`` (``model.predict`` without its
    per-call tf.data pipeline and tracing)."""
    import tensorflow as tf

    step = tf.function(lambda xb: model(xb, training=False), reduce_retracing=True)
    xt = tensor(x)
    return np.concatenate([step(xt[i:i + EVAL_BATCH]).numpy() for i in range(0, int(xt.shape[0]), EVAL_BATCH)])


def extend_history(history: dict, new: dict) -> None:
    """Append one fit() call's history to the run's (``val_*`` keys become ``test_*``)."""
    for k, vals in new.items():
        key = "test_" + k[4:] if k.startswith("val_") else k
        history.setdefault(key, []).extend(float(v) for v in vals)


def save_model(model, path: Path) -> None:
    """``model.save(path)`` through a temporary file renamed into place: never half a model at ``path``."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)


def versions() -> dict:
    """The versions that decide a run's numbers, for its result."""
    import keras
    import tensorflow as tf

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}
