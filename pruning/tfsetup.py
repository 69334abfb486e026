"""Importing TensorFlow without its start-up chatter.

TensorFlow 2.21 prints half a dozen C++ lines on import and on its first device query (oneDNN
notices, "could not find cuda drivers", "failed call to cuInit") straight to file descriptor 2,
before its own log level (``TF_CPP_MIN_LOG_LEVEL``) applies, so every worker process of a study
would bury the progress lines under them. ``import_tensorflow`` does both steps with that
descriptor pointed at /dev/null; ``--verbose`` keeps them.
"""
from __future__ import annotations

import os
import sys


def import_tensorflow(verbose: bool = False):
    """Import TensorFlow and Keras and list the devices once; quietly unless ``verbose``.
    Returns the tensorflow module. Safe to call again (later calls are plain imports)."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    if verbose or "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe; does not start the runtime (threads can still be set)
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
