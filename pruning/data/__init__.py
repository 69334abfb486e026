"""The data every entry point and every worker trains on, loaded one way (``load``).

``sources`` reads MNIST or Fashion-MNIST from an IDX directory or tensorflow-datasets (MNIST also
from the small offline sample), or a user's data (``npz:PATH``, ``tfds:NAME``), and validates it. ``load(DataConfig)`` is the one path: ``main.py``,
``train.py`` and ``benchmark.py`` call it in their own process, and the study's worker processes
call it with the same configuration (it travels inside every run's configuration) and check that
the data they got is the data the study started with (``Dataset.describe()["fingerprint"]``).
"""
from __future__ import annotations

from .sources import (DATASET_NAMES, ENV_VAR, ENV_VARS, DataError, Dataset, content_notice, env_var, load_dataset,
                      load_mnist, load_npz, load_user_dataset, user_dataset)

__all__ = ["DATASET_NAMES", "ENV_VAR", "ENV_VARS", "DataError", "Dataset", "content_notice", "env_var", "load",
           "load_dataset", "load_mnist", "load_npz", "load_user_dataset", "user_dataset"]


def load(cfg, log=None) -> Dataset:
    """The data ``cfg`` (a ``pruning.config.DataConfig``) names: its ``dataset`` (mnist or fashion_mnist)
    from ``--data-dir`` (or that data set's environment variable: $MNIST_DATA_DIR or
    $FASHION_MNIST_DATA_DIR), else tensorflow-datasets, else (MNIST only) the offline sample, as
    ``--data-source`` allows; or a user's data: ``npz:PATH`` (the arrays of an .npz file) or ``tfds:NAME``
    (any tensorflow-datasets image classification set), kept in their shape (``Dataset.input_shape``)."""
    dataset = getattr(cfg, "dataset", "mnist")
    if user_dataset(dataset):
        return load_user_dataset(dataset)
    return load_dataset(getattr(cfg, "dataset", "mnist"), cfg.data_dir, cfg.data_source, log)
