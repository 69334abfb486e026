"""What each ``--sparsify`` method costs per training epoch against plain training, measured in one run.

    python benchmarks/sparsify_cost.py --data-dir ../shared/data/mnist            # the MLP and LeNet-5
    python benchmarks/sparsify_cost.py --data-dir ../shared/data/mnist --models mlp --examples 12000 --rounds 3
    python benchmarks/sparsify_cost.py --smoke                                      # tiny, checks only

For each network, every method (plain training first) is built with its defaults, compiled as the study
compiles a run (AdamW, cosine schedule, batch 256), trained one warm-up epoch on ``--examples`` training
examples (tracing and the first steps are not counted), then timed over one more epoch, ``--rounds`` times in
interleaved order (plain, group lasso, ..., plain, group lasso, ...), so a slow minute of a shared machine falls
on every method alike. It prints, per network and method, the median seconds per epoch (min in brackets) and
the ratio to plain training's median, and writes them to ``--csv``. Threads: all cores (as ``main_alternate.py``
trains); run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {  # network -> the (label, method, strategy) pairs timed; strategy decides targeted dropout's target
    "mlp": [("plain", "none", "weight"), ("group_lasso", "group_lasso", "neuron"), ("l1", "l1", "weight"),
            ("l0", "l0", "neuron"), ("targeted_dropout (weights)", "targeted_dropout", "weight"),
            ("targeted_dropout (units)", "targeted_dropout", "neuron"), ("sparse_vd", "sparse_vd", "weight")],
    "lenet5": [("plain", "none", "neuron"), ("group_lasso", "group_lasso", "neuron"), ("l0", "l0", "neuron"),
               ("targeted_dropout (units)", "targeted_dropout", "neuron")],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="MNIST's IDX files (default: the offline sample)")
    p.add_argument("--models", default="mlp,lenet5", help="networks, comma-separated (default: %(default)s)")
    p.add_argument("--examples", type=int, default=12000, help="training examples per epoch (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="timed epochs per method, interleaved (default: %(default)s)")
    p.add_argument("--csv", default=None, help="write the medians here")
    p.add_argument("--smoke", action="store_true", help="a tiny MLP on 512 examples, one round: checks, no timing claim")
    args = p.parse_args(argv)

    from pruning.tfsetup import import_tensorflow

    tf = import_tensorflow(False)
    tf.get_logger().setLevel("ERROR")  # each network compiles anew: retracing notices are expected
    import keras
    import numpy as np

    from pruning import data as datasets, sparsify
    from pruning.config import DataConfig, ModelConfig
    from pruning.core.training import compile_model
    from pruning.models import build_model

    data = datasets.load(DataConfig(data_dir=args.data_dir, data_source="idx" if args.data_dir else "auto"))
    n = 512 if args.smoke else min(args.examples, len(data.y_train))
    rounds = 1 if args.smoke else args.rounds
    models = ["mlp"] if args.smoke else [m for m in args.models.split(",") if m]
    x, y = data.x_train[:n], data.y_train[:n]
    rows = []
    for name in models:
        cfg = ModelConfig(name=name, hidden=(64, 32) if args.smoke else ModelConfig().hidden)
        nets = {}
        for label, method, strategy in CASES[name]:
            keras.utils.set_random_seed(0)
            model = build_model(data.input_dim, cfg, data.input_shape, data.num_classes)
            model = sparsify.apply(model, method, strategy=strategy if method != "none" else None, seed=0)
            steps = (rounds + 1) * int(np.ceil(n / 256))
            compile_model(model, 1e-3, 0.5, steps)
            sparsify.exclude_from_weight_decay(model)
            model.fit(x, y, batch_size=256, epochs=1, verbose=0)  # warm-up: tracing, first steps
            nets[label] = model
        times = {label: [] for label in nets}
        for _ in range(rounds):
            for label, model in nets.items():
                t0 = time.perf_counter()
                model.fit(x, y, batch_size=256, epochs=1, verbose=0)
                times[label].append(time.perf_counter() - t0)
        base = statistics.median(times["plain"])
        print(f"{name}: seconds per epoch of {n} examples, median of {rounds} (min), ratio to plain")
        for label, ts in times.items():
            med = statistics.median(ts)
            rows.append({"model": name, "method": label, "examples": n, "rounds": rounds,
                         "median_s": round(med, 4), "min_s": round(min(ts), 4), "ratio": round(med / base, 3)})
            print(f"  {label:<28} {med:7.3f} s  ({min(ts):.3f})  {med / base:5.2f}x", flush=True)
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
