"""Importing TensorFlow without its start-up chatter.

TensorFlow 2.21 prints half a dozen C++ lines on import and on its first device query (oneDNN
notices, "could not find cuda drivers", "failed call to cuInit") straight to file descriptor 2,
before its own log level (``TF_CPP_MIN_LOG_LEVEL``) applies, so every worker process of a study
would bury the progress lines under them. ``import_tensorflow`` does both steps with that
descriptor pointed at /dev/null; ``--verbose`` keeps them.

It also turns on memory growth for every visible GPU before TensorFlow initialises one: by default
each process maps nearly all of a GPU's memory, so a second worker on the same GPU would fail.
"""
from __future__ import annotations

import os
import sys


BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that multiply bfloat16 natively


def cpu_has_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool | None:
    """Whether the CPU reports bfloat16 units (AMX or AVX512-BF16) in ``cpuinfo``; None when that file
    cannot be read (not Linux), so nothing is claimed."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = {word for line in f if line.startswith("flags") for word in line.split(":", 1)[-1].split()}
    except OSError:
        return None
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def enable_gpu_memory_growth(tf) -> list[str]:
    """Let each visible GPU's memory grow as a process needs it (``tf.config.experimental.
    set_memory_growth``), so that several workers can share one GPU; returns the GPUs set. It must
    run before TensorFlow initialises a GPU: a GPU already initialised in this process keeps its
    setting (TensorFlow raises RuntimeError, ignored here). Nothing happens without a GPU."""
    done = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
            done.append(gpu.name)
        except RuntimeError:
            pass
    return done


def import_tensorflow(verbose: bool = False):
    """Import TensorFlow and Keras, list the devices once and enable GPU memory growth; quietly
    unless ``verbose``. Returns the tensorflow module. Safe to call again."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    if verbose or "tensorflow" in sys.modules:
        import tensorflow as tf

        enable_gpu_memory_growth(tf)
        return tf
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe; does not start the runtime (threads can still be set)
        enable_gpu_memory_growth(tf)
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
