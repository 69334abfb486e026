"""Time ``prunable`` + a unit prune + ``shrink`` of a ResNet-50 (about 25.6 million weights, 177 layers:
residual connections, BatchNormalization, zero padding, pooling), one line per step.

    python benchmarks/graph_prune.py                  # keras.applications.ResNet50(weights=None), 224x224
    python benchmarks/graph_prune.py --k 50 --repeats 3
    python benchmarks/graph_prune.py --smoke          # a two-block ResNet-like net at 32x32: checks, no timing claim

Steps, each timed with wall time (``time.perf_counter``) around the call:

* build:     the Keras model (not part of the budget; reported for scale);
* trace:     ``pruning.channel_groups`` on the plain model (graph, rules, union-find, groups);
* prunable:  ``pruning.prunable(model)``: masked twins, weights copied;
* prune:     ``pruning.prune_units(masked, strategy, k)``;
* shrink:    ``pruning.shrink(masked)``: standard Keras layers, removed channels gone;
* check:     outputs of the masked and the shrunk model on a few images (inference mode): the largest
             difference relative to the output scale (not part of the budget).

With ``--repeats`` > 1 the prunable/prune/shrink steps are repeated on fresh copies and the median is
reported (min in brackets). Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tiny_resnet(keras, size: int = 32):
    """Two residual blocks (one with a projection shortcut), BatchNormalization everywhere: the smoke net."""
    L = keras.layers
    x = keras.Input((size, size, 3), name="image")
    h = L.Conv2D(16, 3, padding="same", name="stem")(x)
    h = L.BatchNormalization(name="stem_bn")(h)
    h = L.ReLU(name="stem_relu")(h)
    for i, (filters, stride) in enumerate(((16, 1), (32, 2))):
        s = h
        h = L.Conv2D(filters, 3, strides=stride, padding="same", name=f"b{i}_c1")(h)
        h = L.BatchNormalization(name=f"b{i}_bn1")(h)
        h = L.ReLU(name=f"b{i}_r1")(h)
        h = L.Conv2D(filters, 3, padding="same", name=f"b{i}_c2")(h)
        h = L.BatchNormalization(name=f"b{i}_bn2")(h)
        if stride != 1 or s.shape[-1] != filters:
            s = L.Conv2D(filters, 1, strides=stride, name=f"b{i}_proj")(s)
            s = L.BatchNormalization(name=f"b{i}_proj_bn")(s)
        h = L.ReLU(name=f"b{i}_out")(L.Add(name=f"b{i}_add")([h, s]))
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(10, name="logits")(h), name="tiny_resnet")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=float, default=50.0, help="percent of each group's channels removed")
    parser.add_argument("--strategy", default="neuron", help="a unit strategy (neuron, random_neuron)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="a small ResNet-like net instead of ResNet-50")
    args = parser.parse_args(argv)

    import numpy as np

    import pruning
    import keras

    def timed(fn, *a, **kw):
        start = time.perf_counter()
        out = fn(*a, **kw)
        return out, time.perf_counter() - start

    if args.smoke:
        model, t_build = timed(tiny_resnet, keras)
    else:
        model, t_build = timed(keras.applications.ResNet50, weights=None, input_shape=(224, 224, 3))
    size = model.inputs[0].shape[1]
    print(f"model {model.name}: {model.count_params():,} parameters, {len(model.layers)} layers, "
          f"input {size}x{size}x3; build {t_build:.2f} s")
    groups, t_trace = timed(pruning.channel_groups, model)
    print(f"channel_groups: {len(groups)} groups, {sum(g.pinned is None for g in groups)} prunable; "
          f"{t_trace:.2f} s")
    times = {"prunable": [], "prune": [], "shrink": []}
    for _ in range(max(1, args.repeats)):
        masked, t = timed(pruning.prunable, model)
        times["prunable"].append(t)
        _, t = timed(pruning.prune_units, masked, args.strategy, args.k)
        times["prune"].append(t)
        small, t = timed(pruning.shrink, masked)
        times["shrink"].append(t)
    for step, values in times.items():
        print(f"{step:9s} {statistics.median(values):7.2f} s  (min {min(values):.2f} s)")
    total = sum(statistics.median(v) for v in times.values())
    print(f"{'total':9s} {total:7.2f} s  (prunable + prune + shrink, medians)")
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    start = time.perf_counter()
    ref = np.asarray(masked(x, training=False))
    out = np.asarray(small(x, training=False))
    rel = float(np.max(np.abs(out - ref)) / max(1e-12, float(np.max(np.abs(ref)))))
    print(f"shrunk: {small.count_params():,} parameters ({small.count_params() / model.count_params():.1%}); "
          f"max |shrunk - masked| / max |masked| = {rel:.2e}; check {time.perf_counter() - start:.2f} s")
    return 0 if rel <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
