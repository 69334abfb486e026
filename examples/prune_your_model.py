"""Prune your own Keras model: a small CNN with biases, BatchNorm and a residual connection, on your arrays.

Two ways, each ending in a plain Keras model that loads without this package:

1. weight pruning while training: ``pruning.prunable`` -> ``fit`` with ``pruning.MaskingCallback`` (80 % of
   every kernel but the output layer's, reached along a cubic schedule) -> ``pruning.strip`` -> save ->
   ``keras.models.load_model``;
2. unit (filter) pruning: ``pruning.prunable`` -> ``pruning.prune_units`` (half the channels of every
   coupled group) -> ``pruning.shrink`` (a physically smaller model) -> ``pruning.size_report``.

Run it on an .npz file of your arrays (x_train, y_train, x_test, y_test; images (n, h, w[, c]), integer
labels), or on a few hundred synthetic images in seconds::

    python examples/prune_your_model.py --data mine.npz
    python examples/prune_your_model.py --tiny

``build_model`` has the form the study's ``--model FILE.py:FUNCTION`` takes: ``(input_shape, num_classes)``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone, without installing
import pruning  # noqa: E402  (sets KERAS_BACKEND before keras is imported)
import keras  # noqa: E402

L = keras.layers


def build_model(input_shape, num_classes):
    """stem conv -> BN -> ReLU -> [conv -> BN] + residual -> ReLU -> pool -> conv -> BN -> ReLU -> global
    pool -> dense logits. Every convolution has a bias."""
    x = keras.Input(input_shape, name="image")
    h = L.Conv2D(8, 3, padding="same", name="stem")(x)
    h = L.BatchNormalization(momentum=0.9, name="stem_bn")(h)
    h = L.ReLU(name="stem_relu")(h)
    r = L.Conv2D(8, 3, padding="same", name="block_conv")(h)
    r = L.BatchNormalization(momentum=0.9, name="block_bn")(r)
    h = L.Add(name="residual")([h, r])  # ties stem's and block_conv's channels into one group
    h = L.ReLU(name="block_relu")(h)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Conv2D(16, 3, padding="same", name="conv2")(h)
    h = L.BatchNormalization(momentum=0.9, name="conv2_bn")(h)
    h = L.ReLU(name="conv2_relu")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(num_classes, name="logits")(h), name="small_resnet")


def tiny_arrays(n_train=300, n_test=100, side=16, seed=0):
    """Synthetic uint8 RGB images whose label (0-3) is the quadrant holding a bright square."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 4
        rng.shuffle(y)
        x = rng.integers(0, 80, (n, side, side, 3))
        for i, c in enumerate(y):
            r, col = (c // 2) * side // 2 + 2, (c % 2) * side // 2 + 2
            x[i, r:r + 4, col:col + 4] += 170
        return x.astype(np.uint8), y

    return (*make(n_train), *make(n_test))


def load_arrays(args):
    """(x_train, y_train, x_test, y_test) as floats in their shape: yours (validated), or the tiny set."""
    if args.data:
        from pruning.data import load_npz

        data = load_npz(args.data)  # uint8 scaled to [0, 1]; a DataError names any problem in the file
        return data.shaped(data.x_train), data.y_train, data.shaped(data.x_test), data.y_test
    x_train, y_train, x_test, y_test = tiny_arrays()
    return x_train / np.float32(255), y_train, x_test / np.float32(255), y_test


def compile_(model, lr=3e-3):
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", metavar="FILE.npz", help="your arrays: x_train, y_train, x_test, y_test")
    p.add_argument("--tiny", action="store_true", help="a few hundred synthetic 16x16 images (seconds)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--sparsity", type=float, default=80.0, help="weight pruning target, percent (default 80)")
    p.add_argument("--out", default="pruned_models", help="where the two plain .keras files go")
    args = p.parse_args(argv)
    if not args.data and not args.tiny:
        p.error("pass --data FILE.npz (your arrays) or --tiny (synthetic images)")
    keras.utils.set_random_seed(0)
    x_train, y_train, x_test, y_test = load_arrays(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(x_train.shape[1:], int(max(y_train.max(), y_test.max())) + 1)

    # 1. weight pruning during training, then strip to standard layers and reload with plain Keras
    masked = compile_(pruning.prunable(model))          # masks on every kernel but the output layer's
    schedule = pruning.cubic_schedule(0, args.sparsity, args.epochs)   # 0 -> 80 % over the epochs
    masked.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0,
               callbacks=[pruning.MaskingCallback("weight", schedule)])
    sparsity = pruning.measure_sparsity(masked)["weight_sparsity"]
    pruning.strip(masked).save(out / "weight_pruned.keras")          # standard layers, zeros baked in
    plain = keras.models.load_model(out / "weight_pruned.keras")     # no custom objects needed
    gap = float(np.max(np.abs(plain.predict(x_test, verbose=0) - masked.predict(x_test, verbose=0))))
    accuracy = float(np.mean(plain.predict(x_test, verbose=0).argmax(1) == y_test))
    print(f"weight pruning: {100 * sparsity:.2f} % of the prunable weights are 0, test accuracy "
          f"{100 * accuracy:.1f} %, stripped model reloaded by plain Keras (max output difference {gap:.1e})")

    # 2. unit pruning: remove half the channels of every coupled group, then shrink physically
    units = pruning.prunable(model)
    pruning.prune_units(units, "neuron", 50)            # residual: stem and block_conv lose the same channels
    small = compile_(pruning.shrink(units))             # standard layers, fewer channels
    small.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)  # a little fine-tuning, plain Keras
    small.save(out / "unit_pruned.keras")
    before, after = pruning.size_report(model), pruning.size_report(small, reference=model)
    print(f"unit pruning: {before['params']:,} -> {after['params']:,} parameters, "
          f"{before['flops_per_example']:,} -> {after['flops_per_example']:,} FLOPs per example, effective "
          f"sparsity {100 * after['effective_sparsity']:.1f} %")
    for group in pruning.channel_groups(units):
        print("  group:", group)
    return {"weight_sparsity": sparsity, "stripped_gap": gap, "accuracy": accuracy, "params": before["params"],
            "shrunk_params": after["params"], "shrunk": small, "masked": masked,
            "paths": (out / "weight_pruned.keras", out / "unit_pruned.keras")}


if __name__ == "__main__":
    main()
