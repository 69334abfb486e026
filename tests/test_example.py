"""examples/prune_your_model.py (the README's "Prune your own Keras model") runs on tiny data and gives
the numbers worked out by hand: the exact weight sparsity, the stripped model reloaded by plain Keras,
the shrunk model's layer shapes and parameter count."""
import importlib.util

import numpy as np
import pytest

import pruning  # noqa: F401  (sets KERAS_BACKEND)
from helpers import REPO, expected_pruned

EXAMPLE = REPO / "examples" / "prune_your_model.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("prune_your_model", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ran(example, tmp_path_factory):
    return example.main(["--tiny", "--epochs", "2", "--out", str(tmp_path_factory.mktemp("out"))])


# masked kernels of the example's CNN on 16x16x3 images: stem 3x3x3x8, block_conv 3x3x8x8, conv2 3x3x8x16;
# the output layer (logits) is not masked
KERNELS = {"stem": 216, "block_conv": 576, "conv2": 1152}


def test_weight_pruning_reaches_exactly_80_percent_and_the_stripped_model_loads_in_plain_keras(ran):
    import keras

    zeros = sum(expected_pruned(n, 80) for n in KERNELS.values())  # 173 + 461 + 922 = 1556
    assert ran["weight_sparsity"] == zeros / sum(KERNELS.values())
    plain = keras.models.load_model(ran["paths"][0])  # no custom objects
    assert {type(layer).__module__.split(".")[0] for layer in plain.layers} == {"keras"}
    for name, n in KERNELS.items():
        assert int(np.count_nonzero(plain.get_layer(name).kernel.numpy() == 0)) == expected_pruned(n, 80)
    assert ran["stripped_gap"] < 1e-5


def test_unit_pruning_shrinks_every_layer_of_each_group_to_the_hand_counted_size(ran):
    import keras

    # the residual Add ties stem and block_conv (8 -> 4 channels); conv2 16 -> 8; the 4 logits stay
    # stem 3*3*3*4+4 = 112, stem_bn 4*4 = 16, block_conv 3*3*4*4+4 = 148, block_bn 16,
    # conv2 3*3*4*8+8 = 296, conv2_bn 32, logits 8*4+4 = 36: 656 (of 2,172)
    assert ran["params"] == 2172 and ran["shrunk_params"] == 656
    small = keras.models.load_model(ran["paths"][1])
    assert small.count_params() == 656
    shapes = {name: tuple(small.get_layer(name).kernel.shape) for name in ("stem", "block_conv", "conv2", "logits")}
    assert shapes == {"stem": (3, 3, 3, 4), "block_conv": (3, 3, 4, 4), "conv2": (3, 3, 4, 8), "logits": (8, 4)}


def test_the_example_s_builder_is_a_study_model(example):
    import keras

    from pruning import models
    from pruning.config import ModelConfig

    name = f"{EXAMPLE}:build_model"
    try:
        keras.utils.set_random_seed(0)
        model = models.build_model(768, ModelConfig(name=name), (16, 16, 3), 4)
        models.check_input(768, ModelConfig(name=name), (16, 16, 3), 4)
    finally:
        models.MODELS.pop(name, None)
    assert model.output_shape == (None, 4) and type(model.get_layer("stem")).__name__ == "PrunableConv2D"
