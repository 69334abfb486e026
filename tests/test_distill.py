"""The small dense students (pruning.protocols.distill): the distillation loss worked out by hand and against
its NumPy reference, the nonzero counts of weight pruning, the width-scaling rule (the reachable size nearest
the target, checked against an exact enumeration; within one unit of width at the study's sparsities; the
built student's weights), and one step of training on packed targets."""
import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from pruning.config import ModelConfig
from pruning.protocols import distill
from helpers import REPO

LN = math.log
KS = (50.0, 90.0, 95.0, 99.0)

# --------------------------------------------------------------------------- the loss, by hand
# Two examples, three classes, T = 2.
# Example 1: label 1, teacher t = [0, 2 ln 2, 0], student s = [0, 0, 0].
#   t/T = [0, ln 2, 0] -> softmax [1, 2, 1] / 4 = [1/4, 1/2, 1/4]; s/T = 0 -> [1/3, 1/3, 1/3].
#   KL = 1/4 ln(3/4) + 1/2 ln(3/2) + 1/4 ln(3/4) = 1/2 ln(3/4 x 3/2) = 1/2 ln(9/8) = 0.0588915
#   CE(label 1, softmax(s) = uniform) = ln 3 = 1.0986123
# Example 2: label 0, teacher t = [0, 0, 0], student s = [2 ln 3, 0, 0].
#   t/T -> [1/3, 1/3, 1/3]; s/T = [ln 3, 0, 0] -> softmax [3, 1, 1] / 5.
#   KL = 1/3 ln((1/3)/(3/5)) + 2/3 ln((1/3)/(1/5)) = 1/3 ln(5/9) + 2/3 ln(5/3) = 1/3 ln(125/81) = 0.1446215
#   CE(label 0, softmax(s) = [9, 1, 1] / 11) = ln(11/9) = 0.2006707
# alpha = 0.5: per example 0.5 x T^2 x KL + 0.5 x CE = 2 KL + CE / 2:
#   ex. 1: ln(9/8) + 1/2 ln 3 = 0.1177830 + 0.5493061 = 0.6670892
#   ex. 2: 2/3 ln(125/81) + 1/2 ln(11/9) = 0.2892430 + 0.1003353 = 0.3895784
#   mean: 0.5283338
# alpha = 0 (plain cross-entropy): (ln 3 + ln(11/9)) / 2 = 0.6496415
# alpha = 1 (T^2 KL): (4 x 1/2 ln(9/8) + 4 x 1/3 ln(125/81)) / 2 = ln(9/8) + 2/3 ln(125/81) = 0.4070261
LABELS = np.array([1, 0])
TEACHER = np.array([[0.0, 2 * LN(2), 0.0], [0.0, 0.0, 0.0]])
STUDENT = np.array([[0.0, 0.0, 0.0], [2 * LN(3), 0.0, 0.0]])
HAND = {
    0.5: 0.5 * ((LN(9 / 8) + 0.5 * LN(3)) + (2 / 3 * LN(125 / 81) + 0.5 * LN(11 / 9))),
    0.0: 0.5 * (LN(3) + LN(11 / 9)),
    1.0: LN(9 / 8) + 2 / 3 * LN(125 / 81),
}


def tf_loss(labels, teacher, student, temperature, alpha) -> float:
    import tensorflow as tf

    fn = distill.distillation_loss(temperature, alpha)
    y_true = tf.constant(distill.pack_targets(labels, teacher))
    return float(fn(y_true, tf.constant(np.asarray(student, dtype=np.float32))))


def test_hand_numbers_are_what_the_comment_says():
    assert HAND[0.5] == pytest.approx(0.5283338, abs=1e-7)
    assert HAND[0.0] == pytest.approx(0.6496415, abs=1e-7)
    assert HAND[1.0] == pytest.approx(0.4070261, abs=1e-7)


@pytest.mark.parametrize("alpha", [0.5, 0.0, 1.0])
def test_distillation_loss_by_hand(alpha):
    assert distill.distillation_loss_np(LABELS, TEACHER, STUDENT, 2.0, alpha) == pytest.approx(HAND[alpha], abs=1e-12)
    assert tf_loss(LABELS, TEACHER, STUDENT, 2.0, alpha) == pytest.approx(HAND[alpha], abs=1e-6)


def test_alpha_zero_is_cross_entropy_and_one_is_scaled_kl():
    rng = np.random.default_rng(0)
    labels, t, s = rng.integers(0, 5, 16), rng.normal(0, 3, (16, 5)), rng.normal(0, 3, (16, 5))
    log_ps1 = s - s.max(1, keepdims=True)
    log_ps1 -= np.log(np.exp(log_ps1).sum(1, keepdims=True))
    ce = float(np.mean(-log_ps1[np.arange(16), labels]))
    pt = np.exp(t / 3) / np.exp(t / 3).sum(1, keepdims=True)
    ps = np.exp(s / 3) / np.exp(s / 3).sum(1, keepdims=True)
    kl = float(np.mean((pt * np.log(pt / ps)).sum(1)))
    assert distill.distillation_loss_np(labels, t, s, 3.0, 0.0) == pytest.approx(ce, rel=1e-12)
    assert distill.distillation_loss_np(labels, t, s, 3.0, 1.0) == pytest.approx(9.0 * kl, rel=1e-12)
    assert distill.distillation_loss_np(labels, t, s, 3.0, 0.25) == pytest.approx(0.25 * 9 * kl + 0.75 * ce, rel=1e-12)
    assert tf_loss(labels, t, s, 3.0, 0.0) == pytest.approx(ce, abs=1e-6)
    assert tf_loss(labels, t, s, 3.0, 1.0) == pytest.approx(9.0 * kl, abs=1e-5)  # float32 of a sum near 10


def test_identical_logits_and_alpha_one_give_zero():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (8, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 8)
    assert distill.distillation_loss_np(labels, logits, logits, 4.0, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert tf_loss(labels, logits, logits, 4.0, 1.0) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.9), (4.0, 0.9), (2.5, 0.3), (20.0, 1.0)])
def test_tensorflow_loss_equals_numpy_reference(temperature, alpha):
    rng = np.random.default_rng(2)
    labels, t, s = rng.integers(0, 10, 32), rng.normal(0, 4, (32, 10)), rng.normal(0, 4, (32, 10))
    t, s = t.astype(np.float32), s.astype(np.float32)  # what the Keras loss sees
    assert tf_loss(labels, t, s, temperature, alpha) == pytest.approx(
        distill.distillation_loss_np(labels, t, s, temperature, alpha), abs=1e-6)


def test_pack_targets():
    packed = distill.pack_targets(np.array([3, 0], dtype=np.uint8), np.arange(8.0).reshape(2, 4))
    assert packed.dtype == np.float32 and packed.shape == (2, 5)
    np.testing.assert_array_equal(packed, [[3, 0, 1, 2, 3], [0, 4, 5, 6, 7]])
    with pytest.raises(ValueError, match="whole numbers"):
        distill.pack_targets(np.array([4, 0]), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="N labels"):
        distill.pack_targets(np.array([1, 0, 2]), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="alpha"):
        distill.distillation_loss_np([0], [[0.0, 1.0]], [[0.0, 1.0]], 2.0, 1.5)


def test_import_is_cheap():
    code = "import sys, pruning.protocols.distill; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_students_are_the_registered_strategies_without_masks():
    from pruning.core import masks

    assert distill.STUDENTS == tuple(s for s in masks.names() if not masks.get(s).masks) == ("student", "distill")


# --------------------------------------------------------------------------- sizes
@pytest.fixture(scope="module")
def small_mlp():
    from pruning.models import build_model

    return build_model(12, ModelConfig(name="mlp", hidden=(10, 6)))


@pytest.mark.parametrize("k,expected", [
    # hidden1 12x10 = 120 and hidden2 10x6 = 60 are pruned, output 6x10 = 60 is not
    (0.0, 120 + 60 + 60),
    (50.0, (120 - 60) + (60 - 30) + 60),    # 150
    (90.0, (120 - 108) + (60 - 54) + 60),   # 78
    (12.5, (120 - 15) + (60 - 8) + 60),     # 217: 7.5 of 60 rounds half up to 8
])
def test_target_params_small_mlp(small_mlp, k, expected):
    assert distill.target_params(small_mlp, k) == expected


def test_target_params_counts_a_pruned_output_layer():
    from pruning.models import build_model

    model = build_model(12, ModelConfig(name="mlp", hidden=(10, 6), prune_output=True))
    assert distill.target_params(model, 50.0) == 60 + 30 + 30
    assert distill.target_params(model, 90.0) == 12 + 6 + 6


@pytest.fixture(scope="module")
def full_models():
    """name -> (ModelConfig, the full-size model on 28x28 inputs)."""
    from pruning.models import build_model

    cfgs = {"mlp": ModelConfig(name="mlp"), "lenet5": ModelConfig(name="lenet5")}
    return {name: (cfg, build_model(784, cfg)) for name, cfg in cfgs.items()}


# hand-written parameter counts (bias-free), independent of the module's structure
def mlp_params(w) -> int:
    c = [784, *w, 10]
    return sum(a * b for a, b in zip(c[:-1], c[1:]))


def lenet5_params(w) -> int:
    f1, f2, h = w
    return 5 * 5 * 1 * f1 + 5 * 5 * f1 * f2 + 4 * 4 * f2 * h + h * 10


HAND_PARAMS = {"mlp": mlp_params, "lenet5": lenet5_params}


def hand_one_unit(name, widths) -> int:
    """The largest |change| of the hand count from adding, or removing (to no fewer than 1), one unit of
    one layer."""
    count, base, changes = HAND_PARAMS[name], HAND_PARAMS[name](widths), []
    for i in range(len(widths)):
        for step in (1, -1):
            w = list(widths)
            w[i] += step
            if w[i] >= 1:
                changes.append(abs(count(w) - base))
    return max(changes)


def test_rows_per_channel(full_models):
    # the first layer's input channels are kernel.shape[-2]: LeNet-5's 1 image channel (25 rows of a 5x5
    # kernel per channel), the MLP's 784 input features (1 row each)
    assert distill.rows_per_channel(full_models["lenet5"][1]) == [25, 25, 16, 1]
    assert distill.rows_per_channel(full_models["mlp"][1]) == [1, 1, 1, 1, 1]
    assert distill.structure(full_models["lenet5"][1]) == distill.Structure(1, (25, 25, 16, 1), (20, 50, 500), 10)
    assert distill.structure(full_models["mlp"][1]) == distill.Structure(784, (1,) * 5, (1000, 1000, 500, 200), 10)


def test_param_count_is_the_hand_count(full_models):
    for name, (cfg, model) in full_models.items():
        struct = distill.structure(model)
        for widths in [struct.widths, tuple(1 for _ in struct.widths), tuple(range(3, 3 + len(struct.widths)))]:
            assert distill.param_count(struct, widths) == HAND_PARAMS[name](widths)
            assert distill.one_unit_change(struct, widths) == hand_one_unit(name, widths)
    assert distill.param_count(distill.structure(full_models["lenet5"][1]), (20, 50, 500)) == 430_500
    assert distill.param_count(distill.structure(full_models["mlp"][1]), (1000, 1000, 500, 200)) == 2_386_000


# the students the rule gives, with their weights and the target (the weight-pruned network's nonzeros)
STUDENTS = {
    ("mlp", 50.0): ((), (653, 653, 326, 131), 1_195_255, 1_194_000),
    ("mlp", 90.0): ((), (213, 213, 107, 43), 240_183, 240_400),
    ("mlp", 95.0): ((), (123, 123, 62, 25), 120_987, 121_200),
    ("mlp", 99.0): ((), (31, 31, 15, 6), 25_880, 25_840),
    ("lenet5", 50.0): ((14, 35), (355,), 214_950, 217_750),
    ("lenet5", 90.0): ((7, 16), (165,), 46_865, 47_550),
    ("lenet5", 95.0): ((5, 12), (122,), 26_269, 26_275),
    ("lenet5", 99.0): ((3, 7), (71,), 9_262, 9_255),
}


@pytest.mark.parametrize("name,k", list(STUDENTS))
def test_student_config_within_one_unit_and_built_count(full_models, name, k):
    from pruning.models import build_model

    cfg, model = full_models[name]
    filters, hidden, params, target = STUDENTS[name, k]
    assert distill.target_params(model, k) == target
    student = distill.student_config(cfg, model, target)
    assert (student.name, student.filters, student.hidden) == (name, filters, hidden)
    assert (student.output_relu, student.prune_output) == (cfg.output_relu, cfg.prune_output)
    widths = filters + hidden
    struct = distill.structure(model)
    assert distill.param_count(struct, widths) == HAND_PARAMS[name](widths) == params
    assert abs(params - target) <= hand_one_unit(name, widths)  # within one unit of width
    assert distill.size_error(struct, widths, target) <= 1.0
    built = build_model(784, student)
    assert sum(int(np.prod(w.shape)) for w in built.trainable_weights) == params
    assert len(distill.rows_per_channel(built)) == len(distill.rows_per_channel(model))


def reachable(widths) -> list[tuple[int, tuple[int, ...]]]:
    """Every (hand count, widths) the rule reaches for s in (0, 1], exactly (fractions): the widths
    max(1, floor(s w + 1/2)) change only where s w + 1/2 is a whole number m >= 2."""
    breaks = {Fraction(2 * m - 1, 2 * w) for w in widths for m in range(2, w + 1)}
    sizes = {tuple(1 for _ in widths)}
    for s in breaks:
        sizes.add(tuple(max(1, math.floor(s * w + Fraction(1, 2))) for w in widths))
    return sizes


@pytest.mark.parametrize("name,exceptions", [("mlp", [29.0]), ("lenet5", [])])
def test_nearest_reachable_size_at_every_k(full_models, name, exceptions):
    """At k = 1..99 the student is the reachable size nearest the target (a tie: the smaller), found by an
    exact enumeration; it is within one unit of width except where several layers change at the same scale
    (the MLP at 29 %: 1000, 1000 and 200 all cross a half at s = 0.8125)."""
    cfg, model = full_models[name]
    struct = distill.structure(model)
    count = HAND_PARAMS[name]
    sizes = sorted((count(w), w) for w in reachable(struct.widths))
    counts = np.array([c for c, _ in sizes])
    missed = []
    for k in np.arange(1.0, 100.0):
        target = distill.target_params(model, k)
        widths, scale = distill.student_widths(struct, target)
        i = int(np.searchsorted(counts, target, side="right"))  # counts[i - 1] <= target < counts[i]
        lo = sizes[i - 1][0]
        hi = sizes[i][0] if i < len(sizes) else math.inf
        nearest = lo if target - lo <= hi - target else hi
        assert count(widths) == nearest, (k, widths, target)
        assert widths == distill.scaled_widths(struct.widths, scale) and 0 < scale <= 1
        if abs(count(widths) - target) > hand_one_unit(name, widths):
            missed.append(float(k))
    assert missed == exceptions
    if name == "mlp":
        target = distill.target_params(model, 29.0)
        widths, _ = distill.student_widths(struct, target)
        assert widths == (813, 813, 406, 163) and count(widths) - target == 1607 and hand_one_unit(name, widths) == 1597


def test_student_widths_at_the_ends():
    struct = distill.Structure(784, (1,) * 3, (8, 4), 10)
    full = 784 * 8 + 8 * 4 + 4 * 10
    assert distill.student_widths(struct, full) == ((8, 4), 1.0)
    assert distill.student_widths(struct, full + 100)[0] == (8, 4)
    assert distill.student_widths(struct, 10)[0] == (1, 1)  # below the all-ones network's 784 + 1 + 10
    # hand: widths (4, 2) (s in [0.4375, 0.5625) for 8, [0.375, 0.625) for 4) have 784 x 4 + 8 + 20 = 3164 weights
    assert distill.student_widths(struct, 3164)[0] == (4, 2)


def test_student_config_refuses_a_model_whose_widths_are_not_its_config(full_models):
    cfg, model = full_models["mlp"]
    with pytest.raises(ValueError, match="cannot be built"):
        distill.student_config(ModelConfig(name="mlp", hidden=(100, 50)), model, 10_000)


# --------------------------------------------------------------------------- training
def test_student_trains_on_packed_targets():
    import keras

    from pruning.models import build_model

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(name="mlp", hidden=(16, 8))
    teacher = build_model(20, cfg)
    student_cfg = distill.student_config(cfg, teacher, distill.target_params(teacher, 90.0))
    # hand: 90 % of 320 and of 128 leave 32 and 13, + the output's 80 = 125 weights; 20 w1 + w1 w2 + 10 w2 for the
    # widths round(16 s), round(8 s) the rule reaches: (2, 1) 52, (3, 1) 73, (3, 2) 86, (4, 2) 108, (5, 2) 130, ...:
    # 130 is the nearest
    assert student_cfg.hidden == (5, 2)
    student = build_model(20, student_cfg)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 20)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    logits = distill.teacher_logits(teacher, x, batch_size=24)  # batches of 24, 24, 16
    np.testing.assert_allclose(logits, np.asarray(teacher(x)), rtol=1e-6, atol=1e-6)
    packed = distill.pack_targets(y, logits)
    student.compile(optimizer=keras.optimizers.Adam(1e-3), loss=distill.distillation_loss(4, 0.9),
                    metrics=[distill.packed_accuracy()])
    history = student.fit(x, packed, batch_size=32, epochs=1, verbose=0).history
    assert set(history) == {"loss", "accuracy"} and math.isfinite(history["loss"][0])
    # Keras' loss of the whole batch is the NumPy reference's mean; the metric is the plain accuracy
    loss, accuracy = student.evaluate(x, packed, batch_size=64, verbose=0)
    out = np.asarray(student(x))
    assert loss == pytest.approx(distill.distillation_loss_np(y, logits, out, 4.0, 0.9), abs=1e-5)
    assert accuracy == pytest.approx(float(np.mean(out.argmax(1) == y)), abs=1e-7)
