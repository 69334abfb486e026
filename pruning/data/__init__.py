"""The data every entry point and every worker trains on, loaded one way (``load``).

``sources`` reads MNIST from an IDX directory, tensorflow-datasets, or the small offline sample,
and validates it. ``load(DataConfig)`` is the one path: ``main.py``, ``train.py`` and
``benchmark.py`` call it in their own process, and the study's worker processes call it with the
same configuration (it travels inside every run's configuration) and check that the data they got
is the data the study started with (``Dataset.describe()["fingerprint"]``).
"""
from __future__ import annotations

from .sources import ENV_VAR, DataError, Dataset, load_mnist

__all__ = ["ENV_VAR", "DataError", "Dataset", "load", "load_mnist"]


def load(cfg, log=None) -> Dataset:
    """The data ``cfg`` (a ``pruning.config.DataConfig``) names: ``--data-dir`` (or $MNIST_DATA_DIR),
    else tensorflow-datasets, else the offline sample, as ``--data-source`` allows."""
    return load_mnist(cfg.data_dir, cfg.data_source, log)
