"""The fused optimizers compute Keras' Adam and AdamW updates, to float32 rounding."""
import numpy as np
import pytest


@pytest.mark.parametrize("fused_name, keras_name, kwargs", [
    ("FusedAdamW", "AdamW", {"weight_decay": 0.5}),
    ("FusedAdam", "Adam", {}),
])
def test_fused_optimizer_follows_keras_update_for_fifty_steps(fused_name, keras_name, kwargs):
    import keras

    from pruning.core import optim

    rng = np.random.default_rng(0)
    start = rng.standard_normal((40, 30)).astype(np.float32)
    grads = rng.standard_normal((50, 40, 30)).astype(np.float32)

    def run(opt_class):
        var = keras.Variable(start.copy())
        opt = opt_class(keras.optimizers.schedules.CosineDecay(1e-2, 50), **kwargs)
        for g in grads:
            opt.apply([g], [var])
        return var.numpy(), opt

    ours, opt = run(getattr(optim, fused_name))
    theirs, _ = run(getattr(keras.optimizers, keras_name))
    assert not np.allclose(ours, start, atol=1e-3)  # it moved: 50 steps of up to 1e-2 each
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-6)
    assert int(opt.iterations) == 50


def test_a_model_compiled_by_the_study_uses_the_fused_update_and_trains_as_keras_adamw(tiny_data):
    import keras

    from pruning.config import ModelConfig
    from pruning.core.optim import FusedAdamW
    from pruning.models import build_model
    from pruning.study.run import compile_model

    def train(swap: bool):
        keras.utils.set_random_seed(0)
        model = build_model(tiny_data.input_dim, ModelConfig(hidden=(16, 8)))
        compile_model(model, 1e-2, 0.5, 20)
        if swap:
            assert isinstance(model.optimizer, FusedAdamW)
            model.compile(optimizer=keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(1e-2, 20),
                                                           weight_decay=0.5),
                          loss=model.loss, metrics=["accuracy"])
        model.fit(tiny_data.x_train, tiny_data.y_train, batch_size=32, epochs=2, verbose=0)
        return [w.numpy() for w in model.trainable_weights]

    fused, plain = train(False), train(True)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
