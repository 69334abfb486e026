"""The public API in pruning/__init__.py, as the README's example uses it: lazily imported, and the
five lines do what they say (exact sparsity, the sparse file predicts what the model predicts)."""
import subprocess
import sys

import numpy as np

import pruning
from helpers import REPO, expected_pruned


def test_import_pruning_does_not_start_tensorflow():
    code = "import sys, pruning; pruning.STRATEGIES; pruning.MODELS; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_every_public_name_resolves():
    for name in pruning.__all__:
        assert getattr(pruning, name) is not None, name


def test_the_readme_example_prunes_trains_exports_and_loads(tmp_path, tiny_data):
    x, y = tiny_data.x_train, tiny_data.y_train
    model = pruning.build_mlp(x.shape[1])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0, callbacks=[pruning.MaskingCallback("weight", 90)])
    pruning.export_sparse(model, tmp_path / "model.sparse")
    layers, meta = pruning.load_sparse(tmp_path / "model.sparse")
    for layer, stored in zip([l for l in model.layers if getattr(l, "prunable", False)], layers):
        size = int(np.prod(layer.kernel.shape))
        assert np.count_nonzero(stored.mask == 0) == expected_pruned(size, 90) == np.count_nonzero(stored.kernel == 0)
    engine = pruning.SparseMLP([l.kernel for l in layers], [l.relu for l in layers])
    logits = model.predict(tiny_data.x_test, verbose=0)
    assert np.abs(engine.predict(tiny_data.x_test) - logits).max() < 1e-4
    assert pruning.measure_sparsity(model)["weight_sparsity"] > 0.899


def test_prune_is_the_one_shot_entry_point(tiny_data):
    model = pruning.build_mlp(tiny_data.x_train.shape[1])
    thresholds = pruning.prune(model, "global_weight", 75)
    assert set(thresholds) == {"hidden1", "hidden2", "hidden3", "hidden4"}
    assert abs(pruning.measure_sparsity(model)["weight_sparsity"] - 0.75) < 1e-6


def test_lottery_level_prunes_a_fifth_of_what_is_alive_and_rewinds_the_survivors(tiny_data):
    import keras

    init = pruning.build_mlp(tiny_data.x_train.shape[1])
    trained = keras.models.clone_model(init)
    trained.set_weights([w * 1.5 + 0.01 for w in init.get_weights()])  # "trained": other values, all ones masks
    saved = {l.name: l.kernel.numpy().copy() for l in init.layers if getattr(l, "prunable", False)}
    for level in (1, 2):
        pruning.lottery_level(trained, init, "weight", 0.2)
        for layer in (l for l in init.layers if getattr(l, "prunable", False)):
            mask, kernel = layer.mask.numpy(), layer.kernel.numpy()
            alive = mask.size
            for _ in range(level):
                alive -= int(np.floor(0.2 * alive + 0.5))
            assert int(mask.sum()) == alive
            assert np.array_equal(kernel[mask == 1], saved[layer.name][mask == 1]) and not kernel[mask == 0].any()
        trained.set_weights(init.get_weights())  # the next level starts from this one


def test_the_cnn_is_public_and_filter_pruning_shrinks_it():
    model = pruning.build_lenet5(784)
    assert sum(int(np.prod(l.kernel.shape)) for l in model.layers if isinstance(l, pruning.MaskedLayer)) == 430_500
    pruning.prune(model, "neuron", 50)
    smaller = pruning.shrink_model(model)[0]
    assert [l.units for l in smaller.layers if isinstance(l, pruning.MaskedConv2D)] == [10, 25]
    x = np.random.default_rng(0).uniform(size=(50, 784)).astype(np.float32)
    assert np.abs(np.asarray(smaller(x)) - np.asarray(model(x))).max() <= 1e-5


# --------------------------------------------------------------------------- every public name documented
def _doc(name):
    import inspect

    obj = getattr(pruning, name)
    own = obj.__doc__ if not inspect.isclass(obj) and not callable(obj) else inspect.getdoc(obj)
    if isinstance(obj, dict) and own == type(obj).__doc__:
        return None  # a registry with only its type's docstring says nothing about itself
    return inspect.getdoc(obj) if own else None


def test_every_public_name_has_a_docstring_that_shows_its_use():
    """What it is, and an indented example that calls it by its public name (``pruning.<name>``)."""
    for name in pruning.__all__:
        doc = _doc(name)
        assert doc and not doc.startswith(f"{name}("), f"pruning.{name} has no docstring of its own"
        example = [line for line in doc.splitlines() if line.startswith("    ") and f"pruning.{name}" in line]
        assert example, f"pruning.{name}'s docstring shows no use of pruning.{name} (an indented example)"


def test_docs_api_md_is_made_from_the_docstrings():
    from pruning import apidoc

    text = apidoc.API_MD.read_text()
    assert apidoc.updated(text) == text, "docs/api.md is stale: run python -m pruning.apidoc"
    for name in pruning.__all__:
        assert f"### `pruning.{name}`" in text
