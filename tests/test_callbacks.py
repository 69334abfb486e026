"""pruning.core.callbacks.MaskingCallback: masks at the start, on schedule changes, and its
TensorBoard scalars."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pruning.core import masks  # noqa: E402
from pruning.core.callbacks import MaskingCallback, apply_masks, measure_sparsity  # noqa: E402
from pruning.config import ModelConfig  # noqa: E402
from pruning.core.layers import masked_layers  # noqa: E402
from pruning.models.mlp import build_mlp  # noqa: E402
from helpers import expected_pruned, read_scalars  # noqa: E402

HIDDEN = ("hidden1", "hidden2", "hidden3")
SHAPES = {"hidden1": (20, 16), "hidden2": (16, 12), "hidden3": (12, 8)}


def _fraction(strategy, k, shape):
    rows, cols = shape
    n = expected_pruned(rows * cols, k) if strategy == "weight" else rows * expected_pruned(cols, k)
    return n / (rows * cols)


def _model_and_data(seed=0):
    keras.utils.set_random_seed(seed)
    m = build_mlp(20, ModelConfig(hidden=(16, 12, 8)))
    m.compile(optimizer=keras.optimizers.Adam(1e-2),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    return m, rng.normal(size=(96, 20)).astype(np.float32), rng.integers(0, 10, 96).astype(np.int32)


class _Probe(keras.callbacks.Callback):
    """Records each prunable layer's mask and measured sparsity at every epoch's start."""

    def __init__(self):
        super().__init__()
        self.masks, self.sparsity = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.masks.append({l.name: l.mask.numpy().copy() for l in masked_layers(self.model)})
        self.sparsity.append(measure_sparsity(self.model)["per_layer"])


@pytest.mark.parametrize("strategy", ("weight", "neuron"))
def test_callback_prunes_at_the_start_and_logs_sparsity_and_threshold(tmp_path, strategy):
    m, x, y = _model_and_data()
    initial = {l.name: l.kernel.numpy().copy() for l in masked_layers(m)}
    probe = _Probe()
    cb = MaskingCallback(strategy, 80, log_dir=tmp_path / "tb")
    m.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb, probe])

    want = {name: _fraction(strategy, 80, shape) for name, shape in SHAPES.items()}
    assert probe.sparsity[0] == want, "masks were not in place at the first epoch"
    assert measure_sparsity(m)["per_layer"] == want
    expected_thresholds = {}
    for name, kernel in initial.items():
        mask = masks.compute_mask(strategy, kernel, 80)
        assert np.array_equal(probe.masks[0][name], mask)
        expected_thresholds[name] = masks.threshold(strategy, kernel, mask)
    assert cb.thresholds == expected_thresholds
    # masked kernel entries are exactly zero after training
    for layer in masked_layers(m):
        assert np.all(layer.kernel.numpy()[layer.mask.numpy() == 0] == 0.0)

    scalars = read_scalars(tmp_path / "tb")
    for name in HIDDEN:
        assert scalars[f"sparsity/{name}"] == {0: pytest.approx(want[name], abs=1e-7),
                                               1: pytest.approx(want[name], abs=1e-7)}
        assert scalars[f"threshold/{name}"][0] == pytest.approx(expected_thresholds[name], rel=1e-6)
        assert scalars[f"threshold/{name}"][1] == scalars[f"threshold/{name}"][0]
    total = sum(want[n] * SHAPES[n][0] * SHAPES[n][1] for n in HIDDEN) / sum(r * c for r, c in SHAPES.values())
    assert scalars["sparsity/prunable_total"][1] == pytest.approx(total, abs=1e-7)


def test_callable_schedule_changes_the_mask_at_the_epoch_its_target_changes(tmp_path):
    m, x, y = _model_and_data(1)
    schedule = lambda epoch: 0 if epoch < 2 else (50 if epoch < 3 else 75)  # noqa: E731
    probe = _Probe()
    cb = MaskingCallback("weight", schedule, log_dir=tmp_path / "tb")
    m.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[cb, probe])
    targets = [0, 0, 50, 75]
    for epoch, k in enumerate(targets):
        assert probe.sparsity[epoch] == {n: _fraction("weight", k, s) for n, s in SHAPES.items()}, f"epoch {epoch}"
    # unchanged target: the same mask; a new target: the old zeros stay zero
    for name in HIDDEN:
        assert np.array_equal(probe.masks[0][name], probe.masks[1][name])
        assert np.all(probe.masks[1][name] == 1)
        assert np.all(probe.masks[3][name][probe.masks[2][name] == 0] == 0)
    assert cb.current == 75.0
    scalars = read_scalars(tmp_path / "tb")
    assert {s: round(v, 6) for s, v in scalars["sparsity/hidden1"].items()} == {0: 0.0, 1: 0.0, 2: 0.5, 3: 0.75}
    assert scalars["threshold/hidden1"][0] == 0.0 and scalars["threshold/hidden1"][2] > 0
    assert scalars["threshold/hidden1"][3] > scalars["threshold/hidden1"][2]


def test_callback_without_log_dir_writes_nothing_and_still_prunes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m, x, y = _model_and_data(2)
    m.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[MaskingCallback("neuron", 50)])
    assert measure_sparsity(m)["per_layer"] == {n: 0.5 for n in HIDDEN}
    assert list(tmp_path.iterdir()) == []


def test_callback_rejects_an_unknown_strategy():
    with pytest.raises(ValueError, match="foo"):
        MaskingCallback("foo", 50)


def test_apply_masks_returns_the_thresholds_of_the_computed_masks():
    m, _, _ = _model_and_data(3)
    kernels = {l.name: l.kernel.numpy().copy() for l in masked_layers(m)}
    thresholds = apply_masks(m, "neuron", 50)
    for name, kernel in kernels.items():
        norms = np.linalg.norm(kernel.astype(np.float64), axis=0)
        assert thresholds[name] == np.sort(norms)[expected_pruned(kernel.shape[1], 50) - 1]


# --------------------------------------------------------------------------- gradual (cubic) schedule
def test_cubic_schedule_follows_zhu_and_gupta_and_ends_at_the_target():
    from pruning.core.callbacks import cubic_schedule

    s = cubic_schedule(0.0, 80.0, 4)
    # s(e) = end + (start - end) * (1 - (e + 1) / ramp)^3
    assert [s(e) for e in range(6)] == pytest.approx([80 - 80 * 0.75**3, 80 - 80 * 0.5**3, 80 - 80 * 0.25**3,
                                                      80.0, 80.0, 80.0], abs=1e-12)
    values = [s(e) for e in range(4)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert cubic_schedule(50.0, 90.0, 2)(0) == pytest.approx(90 - 40 * 0.5**3)
    for ramp in (0, 1):
        assert cubic_schedule(25.0, 90.0, ramp)(0) == 90.0


def test_cubic_schedule_in_fit_prunes_gradually_to_the_exact_target(tmp_path):
    from pruning.core.callbacks import cubic_schedule

    m, x, y = _model_and_data(4)
    schedule = cubic_schedule(0.0, 75.0, 3)
    probe = _Probe()
    m.fit(x, y, batch_size=32, epochs=4, verbose=0,
          callbacks=[MaskingCallback("weight", schedule, log_dir=tmp_path / "tb"), probe])
    for epoch in range(4):
        assert probe.sparsity[epoch] == {n: _fraction("weight", schedule(epoch), s) for n, s in SHAPES.items()}
    assert measure_sparsity(m)["per_layer"] == {n: _fraction("weight", 75.0, s) for n, s in SHAPES.items()}
    logged = read_scalars(tmp_path / "tb")["sparsity/hidden1"]
    assert [round(logged[e] * 320) for e in range(4)] == [expected_pruned(320, schedule(e)) for e in range(4)]


def test_a_falling_schedule_is_refused_because_masks_only_grow(tmp_path):
    m, x, y = _model_and_data(2)
    schedule = lambda epoch: 80.0 if epoch == 0 else 50.0  # noqa: E731
    with pytest.raises(ValueError, match="falls from 80.0% to 50.0%"):
        m.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[MaskingCallback("weight", schedule)])


# --------------------------------------------------------------------------- masks computed once, applied as needed
def test_masks_applied_prunes_inside_the_block_and_restores_kernels_and_masks_exactly_after():
    from pruning.core.callbacks import compute_model_masks, masks_applied

    m, _, _ = _model_and_data()
    apply_masks(m, "weight", 25)
    before = {l.name: (l.kernel.numpy().copy(), l.mask.numpy().copy()) for l in masked_layers(m)}
    ms = compute_model_masks(m, "weight", 60)
    assert {l.name: l.mask.numpy().tolist() for l in masked_layers(m)} == {
        n: mask.tolist() for n, (_, mask) in before.items()}, "computing masks changed the model"
    with pytest.raises(RuntimeError, match="inside"):
        with masks_applied(m, ms):
            assert measure_sparsity(m)["per_layer"] == {n: _fraction("weight", 60, s) for n, s in SHAPES.items()}
            for l in masked_layers(m):
                assert np.count_nonzero(l.kernel.numpy()[ms.masks[l.name] == 0]) == 0
            raise RuntimeError("inside")
    for l in masked_layers(m):
        assert np.array_equal(l.kernel.numpy(), before[l.name][0])
        assert np.array_equal(l.mask.numpy(), before[l.name][1])


def test_the_callback_uses_given_first_masks_instead_of_computing_them(monkeypatch):
    from pruning.core.callbacks import MaskSet

    m, x, y = _model_and_data()
    rng = np.random.default_rng(3)
    # not what magnitude pruning would choose: a fixed random half of each layer
    given = {l.name: (rng.random(l.kernel.shape) < 0.5).astype(np.float32) for l in masked_layers(m)}
    calls = []
    real = masks.compute_masks
    monkeypatch.setattr(masks, "compute_masks", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    cb = MaskingCallback("weight", lambda e: 50.0 if e == 0 else 70.0,
                         initial=MaskSet("weight", 50.0, given, {n: 0.0 for n in given}))
    probe = _Probe()
    m.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb, probe])
    for name, mask in given.items():
        assert np.array_equal(probe.masks[0][name], mask)
    assert calls == [70.0], "only the second target is computed"
    assert measure_sparsity(m)["per_layer"] == {n: _fraction("weight", 70, s) for n, s in SHAPES.items()}


def test_given_first_masks_are_ignored_for_another_target_and_refused_for_another_strategy(monkeypatch):
    from pruning.core.callbacks import MaskSet, compute_model_masks

    m, x, y = _model_and_data()
    at_50 = compute_model_masks(m, "weight", 50)
    with pytest.raises(ValueError, match="'weight'.*'neuron'"):
        MaskingCallback("neuron", 50, initial=at_50)
    calls = []
    real = masks.compute_masks
    monkeypatch.setattr(masks, "compute_masks", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    m.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[MaskingCallback("weight", 80, initial=at_50)])
    assert calls == [80.0]
    assert isinstance(at_50, MaskSet) and at_50.sparsity == 50.0


def test_polynomial_decay_prunes_on_the_optimizers_steps_in_tfmots_form():
    import keras
    import numpy as np

    import pruning
    from pruning.config import ModelConfig

    schedule = pruning.PolynomialDecay(20, 80, begin_step=2, end_step=10, power=3, frequency=3)
    assert schedule(0) == schedule(1) == 0.0 and schedule(2) == 20.0 and schedule(10) == schedule(50) == 80.0
    assert schedule(6) == pytest.approx(80 + (20 - 80) * 0.5 ** 3)  # halfway: 72.5
    assert [s for s in range(14) if schedule.due(s)] == [2, 5, 8, 10]
    keras.utils.set_random_seed(0)
    model = pruning.build_mlp(16, ModelConfig(hidden=(40,)))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    seen = {}

    class Watch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):  # after the masking callback's update for this step
            step = int(self.model.optimizer.iterations.numpy())
            seen[step] = float(1 - np.asarray(self.model.get_layer("hidden1").mask).mean())

    x = np.random.default_rng(0).normal(size=(96, 16)).astype("float32")
    y = np.arange(96) % 10
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False,
              callbacks=[pruning.MaskingCallback("weight", schedule), Watch()])
    expected_at = {0: 0.0, 1: 0.0, 2: 20.0, 3: 20.0, 4: 20.0, 5: schedule(5), 8: schedule(8), 9: schedule(8),
                   10: 80.0, 11: 80.0}
    for step, k in expected_at.items():
        assert seen[step] == pytest.approx(round(k * 640 / 100) / 640), step  # exact counts of 16 x 40 weights
    kernel = model.get_layer("hidden1")
    assert np.count_nonzero(np.asarray(kernel.kernel) * np.asarray(kernel.mask)) == 640 - 512
    with pytest.raises(ValueError, match="looks like tfmot's fraction"):
        pruning.PolynomialDecay(0.5, 0.9, 0, 100)


def test_polynomial_decay_prunes_a_prunable_keras_model_to_its_final_sparsity():
    import keras
    import numpy as np

    import pruning

    keras.utils.set_random_seed(0)
    plain = keras.Sequential([keras.Input((12,)), keras.layers.Dense(32, activation="relu", name="a"),
                              keras.layers.Dense(4, name="out")])
    model = pruning.prunable(plain)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(1).normal(size=(64, 12)).astype("float32")
    model.fit(x, np.arange(64) % 4, batch_size=8, epochs=2, verbose=0,
              callbacks=[pruning.MaskingCallback("weight", pruning.PolynomialDecay(0, 75, 0, 12, frequency=4))])
    assert pruning.measure_sparsity(model)["per_layer"]["a"] == pytest.approx(0.75)
