"""Adam and AdamW whose per-variable update is one fused TensorFlow kernel.

Keras 3's Adam updates each variable with about ten separate element-wise operations (the two
moments, the bias-corrected step, the decay), each a full pass over the variable's memory; on a CPU
that is a large share of a training step of this MLP. TensorFlow's ``ResourceApplyAdam`` does the
same update in one pass (it is the kernel tf.keras 2 used), and ``ResourceApplyGradientDescent``
applies AdamW's decoupled weight decay (``w -= lr * wd * w``) in one more. The formulas are Keras':
the moments ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``, the step ``lr * sqrt(1 - b2^t) /
(1 - b1^t) * m / (sqrt(v) + eps)``; only the order of the float32 operations differs, so results
agree with Keras' optimizers to rounding (tested), not bit for bit. The moments are Keras' own
variables, so ``shrink.carry_optimizer_state`` and saving work unchanged. Both kernels exist for CPU
and GPU and under XLA. Other backends than TensorFlow fall back to Keras' update.
"""
from __future__ import annotations

import keras


def _fused_adam_step(opt, gradient, variable, learning_rate) -> None:
    import tensorflow as tf

    dtype = variable.dtype
    step = tf.cast(opt.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(opt.beta_1, dtype), tf.cast(opt.beta_2, dtype)
    i = opt._get_variable_index(variable)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=opt._momentums[i].handle, v=opt._velocities[i].handle,
        beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
        beta1=beta_1, beta2=beta_2, epsilon=tf.cast(opt.epsilon, dtype), grad=tf.cast(gradient, dtype))


def _fusable(opt) -> bool:
    return keras.backend.backend() == "tensorflow" and not opt.amsgrad


class _FusedUpdate:
    """The fused Adam step, shared by both optimizers (Keras' own step where it cannot be fused)."""

    def update_step(self, gradient, variable, learning_rate):
        if not _fusable(self):
            return super().update_step(gradient, variable, learning_rate)
        _fused_adam_step(self, gradient, variable, learning_rate)


@keras.saving.register_keras_serializable(package="pruning")
class FusedAdam(_FusedUpdate, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with TensorFlow's fused update (see the module's docstring)."""


@keras.saving.register_keras_serializable(package="pruning")
class FusedAdamW(_FusedUpdate, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` with TensorFlow's fused update and a one-pass weight decay."""

    def _apply_weight_decay(self, variables):
        if not _fusable(self) or self.weight_decay is None:
            return super()._apply_weight_decay(variables)
        import tensorflow as tf

        for variable in variables:
            if self._use_weight_decay(variable):
                alpha = tf.cast(self.learning_rate, variable.dtype) * tf.cast(self.weight_decay, variable.dtype)
                tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=alpha, delta=variable.value)


@keras.saving.register_keras_serializable(package="pruning")
class ShiftedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` read ``offset`` steps later: a run that resumes another's schedule at step ``offset``
    (a lottery level rewound to a point of the dense training) with a fresh optimizer, whose own step
    count (Adam's bias correction) starts at 0."""

    def __init__(self, schedule, offset: int):
        super().__init__()
        self.schedule = schedule
        self.offset = int(offset)

    def __call__(self, step):
        return self.schedule(step + self.offset)

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "offset": self.offset}

    @classmethod
    def from_config(cls, config):
        return cls(keras.optimizers.schedules.deserialize(config["schedule"]), config["offset"])
