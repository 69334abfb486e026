"""Shared test helpers: synthetic MNIST-like data, exact expected counts, event reading.

Nothing here imports TensorFlow at module import time, so the pure-NumPy tests stay fast.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pruning.data import sources as pdata

REPO = Path(__file__).resolve().parent.parent
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# --------------------------------------------------------------------------- expected numbers
def expected_pruned(count: int, k: float) -> int:
    """Round-half-up of k% of count, written independently of pruning.core.masks."""
    return int(math.floor(k * count / 100.0 + 0.5))


def expected_weight_sparsity(shapes, strategy: str, k: float) -> float:
    """The exact fraction of zero entries over prunable kernels of the given shapes."""
    zeros = total = 0
    for rows, cols in shapes:
        total += rows * cols
        if strategy == "weight":
            zeros += expected_pruned(rows * cols, k)
        else:
            zeros += rows * expected_pruned(cols, k)
    return zeros / total


def prunable_shapes(input_dim: int, hidden) -> list[tuple[int, int]]:
    dims = [input_dim, *hidden]
    return list(zip(dims[:-1], dims[1:]))


def assert_mask_count(mask: np.ndarray, strategy: str, k: float) -> None:
    """The one assertion of a mask's exact size: entries (weight granularity: weight, random, ...) or
    whole columns (unit granularity: neuron, random_neuron)."""
    mask = np.asarray(mask)
    assert set(np.unique(mask)).issubset({0.0, 1.0}), f"mask holds values other than 0/1: {np.unique(mask)}"
    if strategy not in ("neuron", "random_neuron", "unit"):
        got, want = int(np.count_nonzero(mask == 0)), expected_pruned(mask.size, k)
        assert got == want, f"weight k={k} on {mask.shape}: {got} zero entries, expected {want}"
    else:  # whole units: a dense kernel's columns, a convolution's filters (the last axis)
        units = mask.reshape(-1, mask.shape[-1])
        col_dead = (units == 0).all(axis=0)
        col_alive = (units == 1).all(axis=0)
        assert np.all(col_dead | col_alive), f"neuron mask on {mask.shape} has a partly-masked unit"
        got, want = int(col_dead.sum()), expected_pruned(mask.shape[-1], k)
        assert got == want, f"neuron k={k} on {mask.shape}: {got} dead columns, expected {want}"


# --------------------------------------------------------------------------- synthetic data
def synthetic_digits(n: int, seed: int, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, side, side) images whose label is the position of a bright block, plus noise.

    Labels are balanced (n // 10 of each class when n is a multiple of 10).
    """
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, side, side)).astype(np.int32)
    block = max(2, side // 5)
    jitter = 2 if side >= 20 else 1  # small images: no jitter, so the blocks stay apart
    for i, c in enumerate(labels):
        r = (int(c) // 5) * (side // 2) + int(rng.integers(0, jitter))
        col = (int(c) % 5) * (side // 5) + int(rng.integers(0, jitter))
        images[i, r : r + block, col : col + block] += 180
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_mnist_dir(directory: Path, n_train: int = 600, n_test: int = 200, side: int = 28,
                    gz: bool = True, dotted: bool = False, seed: int = 0) -> Path:
    """The four MNIST IDX files of synthetic digits in ``directory`` (created)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    xtr, ytr = synthetic_digits(n_train, seed, side)
    xte, yte = synthetic_digits(n_test, seed + 1, side)
    for key, arr in (("train_images", xtr), ("train_labels", ytr), ("test_images", xte), ("test_labels", yte)):
        name = IDX_NAMES[key]
        if dotted:
            name = name.replace("-idx", ".idx")
        pdata.write_idx(directory / (name + (".gz" if gz else "")), arr)
    return directory


def tiny_dataset(n_train: int = 300, n_test: int = 100, side: int = 10, seed: int = 0) -> pdata.Dataset:
    """An in-memory Dataset of small synthetic digits (side x side pixels)."""
    xtr, ytr = synthetic_digits(n_train, seed, side)
    xte, yte = synthetic_digits(n_test, seed + 1, side)
    f = lambda a: (a.reshape(len(a), -1).astype(np.float32) / 255.0)  # noqa: E731
    return pdata.Dataset(f(xtr), ytr.astype(np.int32), f(xte), yte.astype(np.int32), source="synthetic")


# --------------------------------------------------------------------------- TensorBoard
def read_scalars(log_dir: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} from every event file under ``log_dir`` (TF2 tensor summaries too)."""
    import tensorflow as tf

    out: dict[str, dict[int, float]] = {}
    for f in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    v = float(value.simple_value)
                elif value.HasField("tensor"):
                    v = float(tf.make_ndarray(value.tensor))
                else:
                    continue
                out.setdefault(value.tag, {})[int(event.step)] = v
    return out


# --------------------------------------------------------------------------- scripts
def run_script(script: str, *args, timeout: float = 180, cwd: Path | None = None):
    """Run one of the repository's scripts in a fresh interpreter; returns (proc, seconds)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    for var in pdata.ENV_VARS.values():
        env.pop(var, None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=str(cwd or REPO), env=env)
    return proc, time.perf_counter() - t0
