"""--protocol lottery (pruning.protocols.lottery): each level's exact counts (round half up of what is alive),
survivors by magnitude, masks that only grow, the rewind to the dense run's weights bit for bit, the controls,
the held-out split and its early stop, the plan, resume, and bad command lines."""
import io
import json
import math
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from pruning import cli, files, paths
from pruning.config import (CONTROLS, ConfigError, DataConfig, Hyper, LotteryConfig, ModelConfig, PruneConfig,
                            StudyConfig, TrainConfig)
from pruning.core import masks
from pruning.study.plan import plan_study, planned_epochs, runs_to_do
from helpers import read_scalars, write_mnist_dir

HIDDEN = (16, 12)
SHAPES = {"hidden1": (100, 16), "hidden2": (16, 12), "output": (12, 10)}  # tiny_data: 10x10 pixels, 10 classes
N_TRAIN, VALIDATION = 300, 50  # tiny_data's training set, and the held-out part of it
BATCH = 32
STEPS_PER_EPOCH = math.ceil((N_TRAIN - VALIDATION) / BATCH)  # 8: levels train on the 250 examples left
# per-layer weights alive after each level at --prune-fraction 0.2, the output layer (--prune-output) at 0.1:
# hidden1 1600 -320-> 1280 -256-> 1024; hidden2 192 -38 (38.4)-> 154 -31 (30.8)-> 123; output 120 -12-> 108 -11 (10.8)-> 97
ALIVE = {0: {"hidden1": 1600, "hidden2": 192, "output": 120},
         1: {"hidden1": 1280, "hidden2": 154, "output": 108},
         2: {"hidden1": 1024, "hidden2": 123, "output": 97}}
TICKETS = ("weight_L01", "weight_L02")
LEVEL_RUNS = TICKETS + tuple(f"{t}_{c}" for t in TICKETS for c in CONTROLS)


def expected_alive(count: int, fraction: float, levels: int) -> int:
    """What is left of ``count`` after ``levels`` levels that each remove floor(fraction x alive + 1/2), written
    independently of pruning.core.masks."""
    for _ in range(levels):
        count -= int(math.floor(fraction * count + 0.5))
    return count


def _hyper(**lottery) -> Hyper:
    return Hyper(model=ModelConfig(hidden=HIDDEN), train=TrainConfig(epochs=2, batch_size=BATCH, lr=1e-2),
                 prune=PruneConfig(protocol="lottery"),
                 lottery=LotteryConfig(**{"levels": 2, "validation_size": VALIDATION, **lottery}))


def _chain_names(chains):
    return [[(c.name, c.parent) for c in chain] for chain in chains]


def _weights(path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """layer name -> (kernel, mask or None) of every dense layer of the saved model at ``path``."""
    from pruning.core.layers import weight_layers, load_model

    return {l.name: (l.kernel.numpy(), None if l.mask is None else l.mask.numpy())
            for l in weight_layers(load_model(path))}


def _iterations(path) -> int:
    """Optimizer steps taken by the model saved at ``path`` (loaded with its optimizer)."""
    import keras

    from pruning.core.layers import MaskedDense

    return int(keras.models.load_model(path, custom_objects={"MaskedDense": MaskedDense}).optimizer.iterations.numpy())


# --------------------------------------------------------------------------- the levels' masks, pure NumPy
@pytest.mark.parametrize("fraction", (0.2, 0.35, 0.5))
def test_each_level_prunes_round_half_up_of_each_layers_alive_weights_the_smallest_and_masks_only_grow(fraction):
    rng = np.random.default_rng(3)
    shapes = [(7, 13), (13, 5), (5, 3), (1, 1)]
    currents = [np.ones(s, np.float32) for s in shapes]
    for level in range(1, 8):
        # retrained between levels: every entry holds a new value, pruned ones too (they must stay pruned)
        kernels = [rng.normal(size=s).astype(np.float32) for s in shapes]
        new = masks.prune_alive("weight", kernels, currents, [([i], fraction) for i in range(len(shapes))])
        for (rows, cols), kernel, old, mask in zip(shapes, kernels, currents, new):
            assert mask.shape == kernel.shape and mask.dtype == np.float32
            assert set(np.unique(mask)) <= {0.0, 1.0}
            assert int(np.count_nonzero(mask)) == expected_alive(rows * cols, fraction, level), (level, rows, cols)
            assert np.all(mask[old == 0] == 0), "a pruned weight came back"
            survivors, removed = np.abs(kernel[mask == 1]), np.abs(kernel[(old == 1) & (mask == 0)])
            if survivors.size and removed.size:
                assert survivors.min() > removed.max(), "a larger |w| was pruned while a smaller one survived"
        currents = new
    assert [int(np.count_nonzero(m)) for m in currents] == [expected_alive(r * c, fraction, 7) for r, c in shapes]


def test_the_rounding_is_half_up_and_a_small_layer_can_stop_shrinking_or_die():
    # 13 alive at 0.5: 6.5 -> 7 go (not 6, as Python's round would have it); 2 alive at 0.2: 0.4 -> none go
    kernel = np.arange(1, 14, dtype=np.float32).reshape(1, 13)
    assert np.count_nonzero(masks.prune_alive("weight", [kernel], [np.ones_like(kernel)], [([0], 0.5)])[0]) == 6
    two = np.array([[0.5, -2.0]], np.float32)
    assert np.array_equal(masks.prune_alive("weight", [two], [np.ones_like(two)], [([0], 0.2)])[0], [[1.0, 1.0]])
    one = np.array([[3.0]], np.float32)
    assert np.array_equal(masks.prune_alive("weight", [one], [np.ones_like(one)], [([0], 0.5)])[0], [[0.0]])
    assert [expected_alive(100, 0.2, n) for n in range(5)] == [100, 80, 64, 51, 41]  # 51.2 -> 51, 40.8 -> 41
    assert [masks.alive_after(100, 0.2, n) for n in range(5)] == [100, 80, 64, 51, 41]
    assert [masks.alive_after(13, 0.5, n) for n in range(4)] == [13, 6, 3, 1]


@pytest.mark.parametrize("fraction", (0.2, 0.35))
def test_a_global_level_pools_the_hidden_layers_and_the_output_layer_goes_alone_at_half_the_fraction(fraction):
    rng = np.random.default_rng(5)
    shapes = [(9, 11), (11, 7), (7, 6), (6, 4)]  # three hidden layers pooled, the output layer alone
    groups = [([0, 1, 2], fraction), ([3], fraction / 2)]
    currents = [np.ones(s, np.float32) for s in shapes]
    pooled = sum(r * c for r, c in shapes[:3])
    for level in range(1, 7):
        kernels = [rng.normal(size=s).astype(np.float32) for s in shapes]
        new = masks.prune_alive("global_weight", kernels, currents, groups)
        assert sum(int(np.count_nonzero(m)) for m in new[:3]) == expected_alive(pooled, fraction, level)
        assert int(np.count_nonzero(new[3])) == expected_alive(24, fraction / 2, level)
        for old, mask in zip(currents, new):
            assert np.all(mask[old == 0] == 0)
        flat = lambda arrays: np.concatenate([a.ravel() for a in arrays])  # noqa: E731
        k, old, mask = np.abs(flat(kernels[:3])), flat(currents[:3]), flat(new[:3])
        assert k[mask == 1].min() > k[(old == 1) & (mask == 0)].max(), "one threshold over the pooled layers"
        currents = new
    # the pool is not pruned layer by layer: the layers' shares differ from round(fraction x each)
    per_layer = [int(np.count_nonzero(m)) for m in currents[:3]]
    assert per_layer != [expected_alive(r * c, fraction, 6) for r, c in shapes[:3]]


@pytest.mark.parametrize("fraction", (0.2, 0.35))
def test_a_neuron_level_prunes_round_half_up_of_each_layers_alive_columns_the_smallest_norms(fraction):
    rng = np.random.default_rng(7)
    shapes = [(7, 13), (13, 9), (9, 4)]
    currents = [np.ones(s, np.float32) for s in shapes]
    for level in range(1, 7):
        kernels = [rng.normal(size=s).astype(np.float32) for s in shapes]
        new = masks.prune_alive("neuron", kernels, currents, [([i], fraction) for i in range(len(shapes))])
        for (rows, cols), kernel, old, mask in zip(shapes, kernels, currents, new):
            alive, was = (mask == 1).all(axis=0), (old == 1).all(axis=0)
            assert np.all(alive | (mask == 0).all(axis=0)), "a column is partly masked"
            assert int(alive.sum()) == expected_alive(cols, fraction, level), (level, cols)
            assert not np.any(alive & ~was), "a pruned unit came back"
            norms = np.linalg.norm(kernel.astype(np.float64), axis=0)
            if alive.any() and (was & ~alive).any():
                assert norms[alive].min() > norms[was & ~alive].max()
        currents = new


@pytest.mark.parametrize("granularity", ("weight", "unit"))
def test_random_like_keeps_each_layers_alive_count_exactly_and_is_fixed_by_its_seed(granularity):
    rng = np.random.default_rng(11)
    shapes = [(30, 20), (20, 7), (7, 1), (5, 3), (4, 4)]
    if granularity == "weight":
        current = [(rng.random(s) < p).astype(np.float32) for s, p in zip(shapes, (0.3, 0.8, 0.5, 0.0, 1.0))]
        count = lambda m: int(np.count_nonzero(m))  # noqa: E731
    else:
        current = [np.broadcast_to(rng.random(s[1]) < p, s).astype(np.float32)
                   for s, p in zip(shapes, (0.3, 0.8, 0.5, 0.0, 1.0))]
        count = lambda m: int((m != 0).all(axis=0).sum())  # noqa: E731
    a = masks.random_like(current, np.random.default_rng(42), granularity)
    b = masks.random_like(current, np.random.default_rng(42), granularity)
    c = masks.random_like(current, np.random.default_rng(43), granularity)
    for cur, x, y, z in zip(current, a, b, c):
        assert x.shape == cur.shape and x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
        assert count(x) == count(z) == count(cur)
        assert np.array_equal(x, y)
        if granularity == "unit":
            assert np.all((x == 1).all(axis=0) | (x == 0).all(axis=0)), "a column is partly masked"
    assert not np.array_equal(a[0], current[0]) and not np.array_equal(a[0], c[0])  # placed at random


def test_lottery_level_prunes_the_trained_model_into_the_rewind_model_keeping_its_values_exactly():
    import keras

    from pruning.core.layers import masked_layers
    from pruning.models import build_model
    from pruning.protocols.lottery import lottery_level

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(hidden=HIDDEN, prune_output=True)
    trained, rewind = build_model(100, cfg), build_model(100, cfg)
    init = {l.name: l.kernel.numpy().copy() for l in masked_layers(rewind)}
    rng = np.random.default_rng(0)
    for level in (1, 2):
        trained_kernels = {l.name: l.kernel.numpy() for l in masked_layers(trained)}
        before = {l.name: l.mask.numpy() for l in masked_layers(trained)}
        mask_set = lottery_level(trained, rewind, "weight", 0.2, 0)
        for layer in masked_layers(rewind):
            name, kernel, mask = layer.name, layer.kernel.numpy(), layer.mask.numpy()
            assert int(np.count_nonzero(mask)) == ALIVE[level][name], (level, name)
            assert np.array_equal(mask_set.masks[name], mask)
            assert np.array_equal(kernel[mask == 1], init[name][mask == 1]) and np.all(kernel[mask == 0] == 0.0)
            w = np.abs(trained_kernels[name])
            assert w[mask == 1].min() > w[(before[name] == 1) & (mask == 0)].max()
        for t, r in zip(masked_layers(trained), masked_layers(rewind)):  # "train" the rewound model
            t.mask.assign(r.mask.numpy())
            t.kernel.assign(rng.normal(size=t.kernel.shape).astype(np.float32) * r.mask.numpy())


# --------------------------------------------------------------------------- the plan
def test_plan_is_dense_then_each_strategys_ticket_chain_then_one_run_per_control_after_its_ticket():
    hyper = _hyper()
    chains = plan_study(hyper, StudyConfig(strategies=("weight", "global_weight")))
    assert _chain_names(chains) == [
        [("dense", None)],
        [("weight_L01", "dense"), ("weight_L02", "weight_L01")],
        [("global_weight_L01", "dense"), ("global_weight_L02", "global_weight_L01")],
        [("weight_L01_reinit", "weight_L01")], [("weight_L01_random_mask", "weight_L01")],
        [("weight_L02_reinit", "weight_L02")], [("weight_L02_random_mask", "weight_L02")],
        [("global_weight_L01_reinit", "global_weight_L01")], [("global_weight_L01_random_mask", "global_weight_L01")],
        [("global_weight_L02_reinit", "global_weight_L02")], [("global_weight_L02_random_mask", "global_weight_L02")],
    ]
    runs = [c for chain in chains for c in chain]
    assert [(c.level, c.control) for c in runs[:5]] == [(0, None), (1, None), (2, None), (1, None), (2, None)]
    assert [(c.level, c.control) for c in runs[5:9]] == [(1, "reinit"), (1, "random_mask"), (2, "reinit"),
                                                        (2, "random_mask")]
    assert [c.sparsity for c in runs[:3]] == [0.0, pytest.approx(20.0), pytest.approx(36.0)]
    assert runs[0].strategy == "none" and {c.strategy for c in runs[1:3]} == {"weight"}
    assert [planned_epochs(c) for c in runs[:3]] == [2, 2, 2]
    assert [c.name for c in runs if c.control] == [f"{t}_{c}" for s in ("weight", "global_weight")
                                                  for t in (f"{s}_L01", f"{s}_L02") for c in CONTROLS]
    only = plan_study(_hyper(controls=("none",), levels=3), StudyConfig(strategies=("weight",)))
    assert _chain_names(only) == [[("dense", None)],
                                  [("weight_L01", "dense"), ("weight_L02", "weight_L01"), ("weight_L03", "weight_L02")]]


def test_levels_default_to_two_percent_left_and_until_remaining_or_levels_say_where_to_stop():
    assert 100 * 0.8 ** 18 <= 2 < 100 * 0.8 ** 17
    assert LotteryConfig(prune_fraction=0.2).n_levels() == 18
    assert LotteryConfig().n_levels() == 18
    assert 100 * 0.8 ** 15 <= 3.6 < 100 * 0.8 ** 14
    assert LotteryConfig(until_remaining=3.6).n_levels() == 15
    assert LotteryConfig(prune_fraction=0.5).n_levels() == 6  # 1.5625 % <= 2 < 3.125 %
    assert LotteryConfig(prune_fraction=0.5, until_remaining=25).n_levels() == 2  # exactly 25 % left: "at most"
    for n in (1, 2, 7, 30):
        assert LotteryConfig(levels=n).n_levels() == n
    chains = plan_study(_hyper(levels=None, until_remaining=3.6, controls=()), StudyConfig(strategies=("weight",)))
    assert [c.name for c in chains[1]] == [f"weight_L{i:02d}" for i in range(1, 16)]
    rewound = replace(_hyper(rewind_epoch=1.5), train=TrainConfig(epochs=3, batch_size=BATCH))
    assert [planned_epochs(c) for chain in plan_study(rewound, StudyConfig(strategies=("weight",)))[:2]
            for c in chain] == [3, 2, 2]


@pytest.mark.parametrize("kwargs, needle", [
    ({"prune_fraction": 1.5}, "--prune-fraction"), ({"prune_fraction": 0}, "--prune-fraction"),
    ({"prune_fraction": 1}, "--prune-fraction"), ({"rewind_epoch": -1}, "--rewind-epoch"),
    ({"until_remaining": 0}, "--until-remaining"), ({"until_remaining": 100}, "--until-remaining"),
    ({"levels": 0}, "--levels"), ({"levels": 2, "until_remaining": 2}, "--levels and --until-remaining"),
    ({"controls": ("reinit", "bogus")}, "--controls"), ({"controls": ("reinit", "reinit")}, "--controls"),
    ({"validation_size": 0}, "--validation-size"),
])
def test_lottery_config_refuses_bad_values_naming_the_flag(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        LotteryConfig(**kwargs)


def test_a_rewind_point_must_lie_inside_the_dense_training():
    with pytest.raises(ConfigError, match="--rewind-epoch 2 .*--epochs 2"):
        _hyper(rewind_epoch=2)
    assert _hyper(rewind_epoch=1.99).lottery.rewind_epoch == 1.99


def test_a_rewind_point_that_rounds_to_the_last_step_is_refused_once_the_data_is_known():
    from pruning.config import check_lottery_data

    # 250 examples left at batch 16: 16 steps per epoch; 1.97 epochs is step round(31.52) = 32 of 32
    hyper = replace(_hyper(rewind_epoch=1.97), train=TrainConfig(epochs=2, batch_size=16))
    with pytest.raises(ConfigError, match="--rewind-epoch 1.97 is step 32 of the 32 steps"):
        check_lottery_data(hyper, 300)
    check_lottery_data(replace(hyper, lottery=replace(hyper.lottery, rewind_epoch=1.9)), 300)  # step 30: fine


@pytest.mark.parametrize("kwargs", [dict(prune_fraction=0.99, levels=9), dict(levels=200)])
def test_levels_that_would_leave_less_than_one_weight_are_refused_before_any_plan(kwargs):
    with pytest.raises(ConfigError, match="--levels .* less than one weight"):
        LotteryConfig(**kwargs)


# --------------------------------------------------------------------------- a tiny study, in process
def _train_study(hyper, logdir, data) -> dict:
    from pruning.study.run import train_run

    out = {}
    for chain in plan_study(hyper, StudyConfig(strategies=("weight",))):
        for cfg in chain:
            out[cfg.name] = train_run(cfg, logdir, data)
            assert out[cfg.name]["status"] == "ok", (cfg.name, out[cfg.name]["reason"])
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_data):
    """dense -> weight_L01 -> weight_L02 and both controls of each level, rewinding to the initialisation, the
    output layer pruned too; written as seed 0 of a study on IDX files holding tiny_data (so that the engine's
    workers can resume it)."""
    root = tmp_path_factory.mktemp("lottery")
    data_dir = write_mnist_dir(root / "data", N_TRAIN, 100, side=10)
    hyper = replace(_hyper(), data=DataConfig(data_dir=str(data_dir), data_source="idx"),
                    model=ModelConfig(hidden=HIDDEN, prune_output=True))
    logdir = paths.seed_dir(root / "logs", 0)
    return {"root": root / "logs", "logdir": logdir, "hyper": hyper, "data": tiny_data,
            "results": _train_study(hyper, logdir, tiny_data)}


def _start(study, name):
    return _weights(paths.run_dir(study["logdir"], name) / paths.START_MODEL)


def _final(study, name):
    return _weights(paths.model_file(study["logdir"], name))


def test_every_level_has_its_files_and_the_lottery_block_of_its_result(study):
    results = study["results"]
    assert list(results) == ["dense", *TICKETS, *(f"{t}_{c}" for t in TICKETS for c in CONTROLS)]
    for name, r in results.items():
        rdir = paths.run_dir(study["logdir"], name)
        assert files.read_json(rdir / paths.RESULT) == json.loads(json.dumps(files._clean(r)))  # returned = written
        assert {paths.START_MODEL, paths.MODEL, paths.SPARSE_MODEL, paths.HELDOUT_EVENTS} <= {p.name for p in rdir.iterdir()}
        assert not (rdir / paths.REWIND_MODEL).exists(), "rewinding to 0: the initialisation is start.keras"
        assert r["files"] == [paths.MODEL, paths.SPARSE_MODEL, paths.START_MODEL]
        lot = r["lottery"]
        level = 0 if name == "dense" else int(name.split("_L")[1][:2])
        control = next((c for c in CONTROLS if name.endswith(c)), None)
        assert (lot["level"], lot["control"]) == (level, control)
        assert (lot["rewind_steps"], lot["start_step"], lot["steps_per_epoch"], lot["total_steps"]) == (
            0, 0, STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH)
        assert set(r["history"]) == {"loss", "accuracy", "test_loss", "test_accuracy", "epoch", "heldout_loss",
                                     "heldout_accuracy"}
        assert r["history"]["epoch"] == [1.0, 2.0] and all(len(v) == 2 for v in r["history"].values())
    assert [results[n]["config"]["parent"] for n in LEVEL_RUNS] == [
        "dense", "weight_L01", "weight_L01", "weight_L01", "weight_L02", "weight_L02"]


@pytest.mark.parametrize("name", LEVEL_RUNS)
def test_each_levels_alive_weights_per_layer_are_the_repeated_rounding_in_result_and_start_model(study, name):
    level = int(name.split("_L")[1][:2])
    want = ALIVE[level]
    assert want == {layer: expected_alive(r * c, 0.2 if layer != "output" else 0.1, level)
                    for layer, (r, c) in SHAPES.items()}
    remaining = study["results"][name]["lottery"]["remaining"]
    total = sum(r * c for r, c in SHAPES.values())
    assert remaining == {"weights": sum(want.values()) / total, "prunable": sum(want.values()) / total,
                         "alive_per_layer": want, "alive": sum(want.values()), "total": total}
    start = _start(study, name)
    assert {layer: int(np.count_nonzero(m)) for layer, (_, m) in start.items()} == want
    assert {layer: k.shape for layer, (k, _) in start.items()} == SHAPES


def test_the_output_layer_with_prune_output_goes_at_half_the_fraction(study):
    for level, name in ((1, "weight_L01"), (2, "weight_L02")):
        alive = study["results"][name]["lottery"]["remaining"]["alive_per_layer"]
        assert alive["output"] == expected_alive(120, 0.1, level) == (108, 97)[level - 1]
        assert alive["output"] != expected_alive(120, 0.2, level)  # 96, 77 at the hidden layers' fraction
    dense = study["results"]["dense"]["lottery"]["remaining"]
    assert dense["alive_per_layer"] == ALIVE[0] and dense["weights"] == 1.0


def test_a_ticket_keeps_the_largest_trained_weights_of_the_level_before_and_its_masks_only_grow(study):
    for name, parent in (("weight_L01", "dense"), ("weight_L02", "weight_L01")):
        trained, start = _final(study, parent), _start(study, name)
        for layer, (kernel, mask) in start.items():
            before = trained[layer][1]
            assert np.all(mask[before == 0] == 0), f"{name}/{layer}: a weight pruned before came back"
            kept, gone = np.abs(trained[layer][0][mask == 1]), np.abs(trained[layer][0][(before == 1) & (mask == 0)])
            assert gone.size == ALIVE[int(name[-1]) - 1][layer] - ALIVE[int(name[-1])][layer]
            assert kept.min() >= gone.max(), f"{name}/{layer}: a smaller |w| of {parent} survived a larger one"


@pytest.mark.parametrize("name", ("weight_L01", "weight_L02", "weight_L01_random_mask", "weight_L02_random_mask"))
def test_a_level_starts_from_the_dense_initial_weights_bit_for_bit_with_exact_zeros_where_pruned(study, name):
    init = _start(study, "dense")
    assert all(m is not None and m.all() for _, m in init.values())  # the dense run: nothing masked
    for layer, (kernel, mask) in _start(study, name).items():
        assert np.array_equal(kernel[mask == 1], init[layer][0][mask == 1]), f"{name}/{layer}"
        assert np.all(kernel[mask == 0] == 0.0)
        assert np.count_nonzero(kernel) == np.count_nonzero(mask)  # glorot draws no exact zero


@pytest.mark.parametrize("level", (1, 2))
def test_reinit_control_has_the_tickets_masks_and_a_fresh_initialisation(study, level):
    ticket, reinit = _start(study, f"weight_L{level:02d}"), _start(study, f"weight_L{level:02d}_reinit")
    for layer, (kernel, mask) in reinit.items():
        t_kernel, t_mask = ticket[layer]
        assert np.array_equal(mask, t_mask)
        alive = mask == 1
        assert np.all(kernel[alive] != t_kernel[alive]), f"{layer}: a survivor kept the ticket's value"
        assert np.all(kernel[~alive] == 0.0)
    if level == 2:  # each level's control draws its own initialisation
        first = _start(study, "weight_L01_reinit")
        for layer, (kernel, mask) in reinit.items():
            assert np.all(kernel[mask == 1] != first[layer][0][mask == 1]), layer


@pytest.mark.parametrize("level", (1, 2))
def test_random_mask_control_has_the_tickets_counts_another_mask_and_the_tickets_rewound_weights(study, level):
    ticket, control = _start(study, f"weight_L{level:02d}"), _start(study, f"weight_L{level:02d}_random_mask")
    init = _start(study, "dense")
    for layer, (kernel, mask) in control.items():
        t_kernel, t_mask = ticket[layer]
        assert int(np.count_nonzero(mask)) == int(np.count_nonzero(t_mask)) == ALIVE[level][layer]
        assert not np.array_equal(mask, t_mask), f"{layer}: the random mask is the ticket's"
        assert np.array_equal(kernel[mask == 1], init[layer][0][mask == 1])
        assert np.all(kernel[mask == 0] == 0.0)
    prior = _start(study, "weight_L01")
    if level == 2:  # random: not nested in the level before, unlike the ticket
        assert np.any((control["hidden1"][1] == 1) & (prior["hidden1"][1] == 0))


@pytest.mark.parametrize("name", LEVEL_RUNS)
def test_pruned_weights_of_every_levels_final_model_are_exactly_zero_under_the_masks_it_started_with(study, name):
    final, start = _final(study, name), _start(study, name)
    for layer, (kernel, mask) in final.items():
        assert np.array_equal(mask, start[layer][1]), "a level's masks are fixed while it trains"
        assert np.all(kernel[mask == 0] == 0.0)
        assert int(np.count_nonzero(mask)) == ALIVE[int(name.split("_L")[1][:2])][layer]
        assert not np.array_equal(kernel, start[layer][0]), "the level trained"


def test_the_held_out_split_is_validation_size_examples_out_of_the_full_training_set(study):
    from pruning.core.layers import MaskedDense, load_model, numpy_forward
    from pruning.protocols import lottery

    data = study["data"]
    rest, (x_held, y_held) = lottery.split(data, VALIDATION, 0)
    assert len(y_held) == VALIDATION and len(rest.y_train) == N_TRAIN - VALIDATION
    # a partition of the training set: every example is in exactly one part
    both = np.concatenate([rest.x_train, x_held])
    assert sorted(map(bytes, both)) == sorted(map(bytes, data.x_train))
    again = lottery.split(data, VALIDATION, 0)[1]
    assert np.array_equal(again[0], x_held) and np.array_equal(again[1], y_held)  # the seed decides
    assert not np.array_equal(lottery.split(data, VALIDATION, 1)[1][0], x_held)
    with pytest.raises(ValueError, match="--validation-size 300"):
        lottery.split(data, N_TRAIN, 0)
    for name, r in study["results"].items():
        assert r["data"]["train_examples"] == N_TRAIN, "the result names the full data set"
        assert r["lottery"]["heldout_examples"] == VALIDATION
        model = load_model(paths.model_file(study["logdir"], name))
        kernels = [np.asarray(l.effective_kernel()) for l in model.layers if isinstance(l, MaskedDense)]
        # the last held-out accuracy is the final model's on exactly these 50 examples; train_accuracy on the rest
        held_correct = int(np.count_nonzero(np.argmax(numpy_forward(kernels, x_held), axis=1) == y_held))
        assert round(r["history"]["heldout_accuracy"][-1] * VALIDATION) == held_correct, name
        rest_correct = int(np.count_nonzero(np.argmax(numpy_forward(kernels, rest.x_train), axis=1) == rest.y_train))
        assert round(r["train_accuracy"] * (N_TRAIN - VALIDATION)) == rest_correct, name


@pytest.mark.parametrize("name", ("dense", *LEVEL_RUNS))
def test_early_stop_is_the_epoch_of_lowest_held_out_loss(study, name):
    r = study["results"][name]
    h, lot = r["history"], r["lottery"]
    i = int(np.argmin(h["heldout_loss"]))
    assert lot["early_stop_epoch"] == h["epoch"][i] == i + 1
    assert lot["early_stop_step"] == (i + 1) * STEPS_PER_EPOCH
    assert lot["early_stop_heldout_loss"] == min(h["heldout_loss"])
    assert lot["early_stop_heldout_accuracy"] == h["heldout_accuracy"][i]
    assert lot["early_stop_test_accuracy"] == h["test_accuracy"][i]
    assert all(0 <= a <= 1 and round(a * VALIDATION) == pytest.approx(a * VALIDATION) for a in h["heldout_accuracy"])


def test_held_out_loss_and_accuracy_are_written_to_their_own_tensorboard_stream(study):
    h = study["results"]["weight_L01"]["history"]
    scalars = read_scalars(paths.run_dir(study["logdir"], "weight_L01") / paths.HELDOUT_EVENTS)
    assert scalars["epoch_loss"] == {0: pytest.approx(h["heldout_loss"][0], rel=1e-6),
                                     1: pytest.approx(h["heldout_loss"][1], rel=1e-6)}
    assert scalars["epoch_accuracy"] == {0: pytest.approx(h["heldout_accuracy"][0], rel=1e-6),
                                         1: pytest.approx(h["heldout_accuracy"][1], rel=1e-6)}


# --------------------------------------------------------------------------- rewinding to a step of the training
@pytest.fixture(scope="module")
def rewound(tmp_path_factory, tiny_data):
    """dense -> weight_L01 and its random_mask control, rewinding to half an epoch (step 4 of 8 per epoch); the
    output layer is not pruned."""
    logdir = tmp_path_factory.mktemp("rewound")
    hyper = _hyper(rewind_epoch=0.5, levels=1, controls=("random_mask",))
    return {"logdir": logdir, "results": _train_study(hyper, logdir, tiny_data)}


def test_rewinding_half_an_epoch_saves_the_dense_weights_after_that_step_and_levels_train_the_rest(rewound):
    logdir, results = rewound["logdir"], rewound["results"]
    rewind_steps = round(0.5 * STEPS_PER_EPOCH)
    assert rewind_steps == 4 and list(results) == ["dense", "weight_L01", "weight_L01_random_mask"]
    dense = paths.run_dir(logdir, "dense")
    assert results["dense"]["files"] == [paths.MODEL, paths.SPARSE_MODEL, paths.START_MODEL, paths.REWIND_MODEL]
    assert _iterations(dense / paths.REWIND_MODEL) == rewind_steps
    assert _iterations(dense / paths.MODEL) == 2 * STEPS_PER_EPOCH
    for name, r in results.items():
        lot = r["lottery"]
        start = 0 if name == "dense" else rewind_steps
        assert (lot["rewind_steps"], lot["start_step"], lot["total_steps"]) == (rewind_steps, start, 16)
        assert r["history"]["epoch"] == [1.0, 2.0], "a partial first epoch, then the last one"
        if name != "dense":
            assert not (paths.run_dir(logdir, name) / paths.REWIND_MODEL).exists()
            assert r["files"] == [paths.MODEL, paths.SPARSE_MODEL, paths.START_MODEL]
            assert _iterations(paths.model_file(logdir, name)) == 2 * STEPS_PER_EPOCH - rewind_steps
        i = int(np.argmin(r["history"]["heldout_loss"]))
        assert lot["early_stop_epoch"] == i + 1 and lot["early_stop_step"] == (i + 1) * STEPS_PER_EPOCH


def test_rewound_levels_start_from_the_rewind_weights_bit_for_bit(rewound):
    logdir = rewound["logdir"]
    dense = paths.run_dir(logdir, "dense")
    rewind, init = _weights(dense / paths.REWIND_MODEL), _weights(dense / paths.START_MODEL)
    assert not np.array_equal(rewind["hidden1"][0], init["hidden1"][0]), "four steps changed the weights"
    ticket = _weights(paths.run_dir(logdir, "weight_L01") / paths.START_MODEL)
    control = _weights(paths.run_dir(logdir, "weight_L01_random_mask") / paths.START_MODEL)
    assert set(ticket) == {"hidden1", "hidden2", "output"} and ticket["output"][1] is None
    assert np.array_equal(ticket["output"][0], rewind["output"][0]), "the unpruned output layer is rewound too"
    for layer in ("hidden1", "hidden2"):
        for start in (ticket, control):
            kernel, mask = start[layer]
            assert int(np.count_nonzero(mask)) == ALIVE[1][layer]
            assert np.array_equal(kernel[mask == 1], rewind[layer][0][mask == 1])
            assert np.all(kernel[mask == 0] == 0.0)
        assert not np.array_equal(ticket[layer][1], control[layer][1])
    assert rewound["results"]["weight_L01"]["lottery"]["remaining"]["alive_per_layer"] == {
        "hidden1": 1280, "hidden2": 154}
    assert rewound["results"]["weight_L01"]["lottery"]["remaining"]["weights"] == (1280 + 154 + 120) / 1912


# --------------------------------------------------------------------------- resume
def _copy(study, tmp_path):
    root = tmp_path / "logs"
    shutil.copytree(study["root"], root)
    return root, paths.seed_dir(root, 0)


def test_a_study_killed_in_level_2_redoes_level_2_and_its_controls_only(study, tmp_path):
    chains = plan_study(study["hyper"], StudyConfig(strategies=("weight",)))
    _, logdir = _copy(study, tmp_path)
    info = study["data"].describe()
    assert runs_to_do(chains, logdir, data_info=info) == set()
    os.remove(paths.result_file(logdir, "weight_L02"))
    assert runs_to_do(chains, logdir, data_info=info) == {"weight_L02", "weight_L02_reinit", "weight_L02_random_mask"}
    os.remove(paths.result_file(logdir, "weight_L01"))
    assert runs_to_do(chains, logdir, data_info=info) == set(LEVEL_RUNS)


def test_a_level_whose_start_model_is_gone_is_redone_with_what_starts_from_it(study, tmp_path):
    chains = plan_study(study["hyper"], StudyConfig(strategies=("weight",)))
    _, logdir = _copy(study, tmp_path)
    os.remove(paths.run_dir(logdir, "weight_L02") / paths.START_MODEL)
    notices = []
    assert runs_to_do(chains, logdir, notices=notices) == {"weight_L02", "weight_L02_reinit", "weight_L02_random_mask"}
    assert len(notices) == 1 and "start.keras" in notices[0]
    os.remove(paths.run_dir(logdir, "dense") / paths.START_MODEL)
    assert runs_to_do(chains, logdir) == {"dense", *LEVEL_RUNS}


def test_the_engine_resumes_a_killed_study_retraining_exactly_the_lost_runs_the_same_way(study, tmp_path):
    from pruning.study.engine import run_seeds

    root, logdir = _copy(study, tmp_path)
    os.remove(paths.result_file(logdir, "weight_L02"))
    redo = {"weight_L02", "weight_L02_reinit", "weight_L02_random_mask"}
    before = {n: os.stat(paths.result_file(logdir, n)).st_mtime_ns for n in study["results"] if n != "weight_L02"}
    out = io.StringIO()
    planned = run_seeds(study["hyper"], StudyConfig(strategies=("weight",), jobs=1), root, out=out,
                        data_info=study["data"].describe())
    assert [c.name for c in planned[0]] == list(study["results"])
    for name in study["results"]:
        r = files.read_json(paths.result_file(logdir, name))
        assert r["status"] == "ok"
        if name in redo:
            assert name == "weight_L02" or os.stat(paths.result_file(logdir, name)).st_mtime_ns > before[name]
            assert r["started"] >= study["results"][name]["started"]
            assert r["execution"]["engine"] == "local"
            # the same start as the killed run's: masks, rewind, the controls' seeded draws
            for layer, (kernel, mask) in _start(study, name).items():
                again = _weights(paths.run_dir(logdir, name) / paths.START_MODEL)[layer]
                assert np.array_equal(again[1], mask) and np.array_equal(again[0], kernel), (name, layer)
        else:
            assert os.stat(paths.result_file(logdir, name)).st_mtime_ns == before[name], f"{name} was retrained"
            assert r["started"] == study["results"][name]["started"]
    text = out.getvalue()
    assert "resuming: 4 finished run(s) kept" in text
    started = [line.split(": ")[0].split()[-1] for line in text.splitlines() if ": started (" in line]
    assert sorted(started) == sorted(redo)


# --------------------------------------------------------------------------- bad command lines
@pytest.mark.parametrize("argv, needles", [
    (["--prune-fraction", "1.5"], ("--prune-fraction", "1.5")),
    (["--prune-fraction", "0"], ("--prune-fraction", "got 0")),
    (["--rewind-epoch", "10", "--epochs", "2"], ("--rewind-epoch 10", "--epochs 2")),
    (["--until-remaining", "0"], ("--until-remaining",)),
    (["--until-remaining", "150"], ("--until-remaining", "150")),
    (["--controls", "bogus"], ("--controls", "'bogus'")),
    (["--levels", "2", "--until-remaining", "2"], ("--levels and --until-remaining",)),
    (["--levels", "0"], ("--levels",)),
    (["--rewind-epoch", "-0.5"], ("--rewind-epoch",)),
])
def test_a_bad_lottery_flag_exits_2_naming_it_and_writes_nothing(tmp_path, monkeypatch, capsys, mnist_dir, argv,
                                                                 needles):
    monkeypatch.chdir(tmp_path)
    logdir = tmp_path / "logs"
    with pytest.raises(SystemExit) as info:
        cli.study_main_guarded(["--protocol", "lottery", "--data-dir", str(mnist_dir), "--logdir", str(logdir),
                                *argv])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in captured.err, f"{needle!r} not in stderr:\n{captured.err}"
    assert not logdir.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_validation_size_holding_out_every_training_example_exits_2_before_anything_is_written(
        tmp_path, monkeypatch, capsys, mnist_dir):
    monkeypatch.chdir(tmp_path)
    logdir = tmp_path / "logs"
    assert cli.study_main_guarded(["--protocol", "lottery", "--data-dir", str(mnist_dir), "--logdir", str(logdir),
                                   "--validation-size", "600", "--levels", "1"]) == 2
    err = capsys.readouterr().err
    assert "--validation-size 600" in err and "600 training examples" in err and "Traceback" not in err
    assert not logdir.exists()
