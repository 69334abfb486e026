"""A small toolkit for studying how much of a network pruning can remove, and at what cost.

The public API (imported lazily: ``import pruning`` does not start TensorFlow)::

    import pruning
    model = pruning.build_mlp(784)                                   # MaskedDense layers; or build_lenet5, your own
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, callbacks=[pruning.MaskingCallback("weight", 90)])   # pruned to 90 % and kept so
    pruning.export_sparse(model, "model.sparse")                     # compact, checksummed; pruning.load_sparse

* ``prune(model, strategy, k, seed=0)``: prune a model's prunable layers to k % in place (one shot);
* ``MaskingCallback(strategy, k_or_schedule, log_dir=None, seed=0)``: prune during ``fit`` (``cubic_schedule`` per
  epoch, ``PolynomialDecay`` per step: tfmot's form, in percent);
* ``measure_sparsity(model)``; ``shrink_model(model)`` / ``expand_model(model)``: drop dead units / put them back;
* ``export_sparse(model, path)``, ``load_sparse(path)``, ``SparseMLP(kernels, relus)``: store and run it sparse;
* ``lottery_level(trained, rewind, strategy, fraction)``: one lottery-ticket level (prune what is alive, rewind);
* ``build_lenet5(784, ModelConfig(name="lenet5"))``, ``MaskedConv2D``: the CNN and its masked convolution;
* ``distillation_loss(T, alpha)``: Hinton et al.'s loss over labels packed with a teacher's logits;
* ``STRATEGIES``, ``Strategy``, ``register_strategy``; ``MODELS``, ``register_model``: the registries.
* ``prunable(model, exclude=())``: any Keras Functional/Sequential model with masks (``pruning.graph``);
  ``channel_groups``, ``prune_units``, ``strip``, ``shrink``, ``size_report``, ``UnsupportedLayerError``;
  ``prune``, ``MaskingCallback``, ``measure_sparsity`` and ``shrink_model`` accept its models too.

The package's folders show its architecture; data flows one way through them::

    config.py, paths.py, files.py, registry.py   frozen configurations, every output name, atomic writes
    data/      MNIST or Fashion-MNIST from IDX files or tensorflow-datasets, or the offline MNIST sample, validated
    core/      strategies and pure mask functions, MaskedDense and MaskedConv2D, the masking callback
    graph/     any Keras graph: masked twins, channel rules, coupled groups, strip and shrink
    models/    registered network builders (mlp, lenet5)
    protocols/ lottery tickets (levels, rewinding, controls); distillation students (small dense baselines)
    study/     plan -> runs on worker processes (engine) -> result.json + TensorBoard events; resume, lock
    deploy/    shrink, the sparse file format and engine, the benchmark
    report/    results.csv, summary.csv (mean, sd, 95 % CI), figures, what survives (interpret)
    cli.py     the five commands (main.py, main_alternate.py, train.py, plotting.py, benchmark.py)
"""
import os

# TensorFlow's C++ start-up chatter (oneDNN notices, "no CUDA driver") hides the
# progress lines users need; keep it quiet unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow turns its oneDNN kernels on only for some CPUs; on others (AMD, AVX2) its
# Eigen matmul reaches about 2/3 of the speed (measured: 95 vs 138 GFLOP/s for a
# 2048^3 float32 product on 2 AVX2 cores). Set it to 0 to compare.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_API = {
    "prune": ("core.callbacks", "apply_masks"),
    "MaskingCallback": ("core.callbacks", "MaskingCallback"),
    "cubic_schedule": ("core.callbacks", "cubic_schedule"),
    "PolynomialDecay": ("core.callbacks", "PolynomialDecay"),
    "measure_sparsity": ("core.callbacks", "measure_sparsity"),
    "MaskedDense": ("core.layers", "MaskedDense"),
    "MaskedConv2D": ("core.layers", "MaskedConv2D"),
    "MaskedLayer": ("core.layers", "MaskedLayer"),
    "load_model": ("sparsify.layers", "load_model"),  # registers the --sparsify layers first
    "STRATEGIES": ("core.masks", "STRATEGIES"),
    "Strategy": ("core.masks", "Strategy"),
    "register_strategy": ("core.masks", "register"),
    "build_mlp": ("models.mlp", "build_mlp"),
    "build_lenet5": ("models.lenet5", "build_lenet5"),
    "distillation_loss": ("protocols.distill", "distillation_loss"),
    "lottery_level": ("protocols.lottery", "lottery_level"),
    "MODELS": ("models", "MODELS"),
    "register_model": ("models", "register_model"),
    "export_sparse": ("deploy.export", "export_sparse"),
    "load_sparse": ("deploy.sparse_format", "load_sparse"),
    "shrink_model": ("deploy.shrink", "shrink_model"),
    "expand_model": ("deploy.shrink", "expand_model"),
    "SparseMLP": ("deploy.sparse_engine", "SparseMLP"),
    # any Keras Functional/Sequential model, through its graph of channels (pruning/graph)
    "prunable": ("graph.prune", "prunable"),
    "channel_groups": ("graph.groups", "channel_groups"),
    "prune_units": ("graph.prune", "prune_units"),
    "strip": ("graph.rebuild", "strip"),
    "shrink": ("graph.rebuild", "shrink"),
    "size_report": ("graph.report", "size_report"),
    "UnsupportedLayerError": ("graph.errors", "UnsupportedLayerError"),
}
__all__ = sorted(_API)


def __getattr__(name: str):
    """The public API, imported on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'pruning' has no attribute {name!r}")
    import importlib

    module, attr = _API[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
