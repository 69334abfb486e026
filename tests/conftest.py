"""Shared fixtures: synthetic MNIST-like data (IDX files and in-memory), never the network."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import helpers` from any test module
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import helpers  # noqa: E402


@pytest.fixture(autouse=True)
def _no_mnist_env(monkeypatch):
    """A user's $MNIST_DATA_DIR or $FASHION_MNIST_DATA_DIR must never leak into a test."""
    for var in helpers.pdata.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fresh_model_registry():
    """Networks registered on the fly by a test (``--model FILE.py:FUNCTION`` registers one) do not outlive
    it: ``pruning.models.MODELS`` is restored afterwards."""
    from pruning import models

    before = dict(models.MODELS)
    yield
    models.MODELS.clear()
    models.MODELS.update(before)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """600 train / 200 test synthetic 28x28 digits as the four gzipped IDX files."""
    return helpers.write_mnist_dir(tmp_path_factory.mktemp("mnist"), 600, 200)


@pytest.fixture(scope="session")
def tiny_data():
    """300 train / 100 test synthetic 10x10 digits, in memory."""
    return helpers.tiny_dataset()
