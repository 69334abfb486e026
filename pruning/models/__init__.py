"""The network is a plug-in: registered builders, looked up by name (``--model``).

A builder is a top-level function ``(input_dim, model_config) -> keras.Model`` whose layers are
``pruning.core.layers.MaskedDense`` (prunable ones flagged ``prunable=True``): the runner, the masks, the
shrinker, the size report, the sparse export and the plots ask those layers what they are, never
"is this the MLP". This module imports no TensorFlow, so the command line can list the choices
cheaply; a builder's own module is imported when the model is built. The study's worker processes
get the registry of the process that started them (``snapshot`` / ``restore``), so a builder
registered by a user's script or a test works there too, as long as it is an importable
top-level function.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ..registry import Registry

DEFAULT = "mlp"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: str | Callable  # "module:function", or the function itself
    help: str
    # the strategy granularities (pruning.core.masks.GRANULARITIES) its prunable layers support:
    # "weight" needs masks only; "unit" also needs the network to be shrinkable unit by unit
    granularities: tuple[str, ...] = ("weight", "unit")

    def build(self, input_dim: int, cfg):
        fn = self.builder
        if isinstance(fn, str):
            module, _, attr = fn.partition(":")
            fn = getattr(importlib.import_module(module), attr)
        return fn(input_dim, cfg)


MODELS = Registry("model")
get_model = MODELS.lookup
model_names = MODELS.names


def register_model(name: str, builder: str | Callable, help: str,
                   granularities: tuple[str, ...] = ("weight", "unit")) -> ModelSpec:
    """Make ``builder`` (a top-level function, or "module:function") the choice ``--model name``;
    ``granularities`` names the kinds of strategy it can be pruned with."""
    return MODELS.register(ModelSpec(name, builder, help, tuple(granularities)))


def build_model(input_dim: int, cfg):
    """The network ``cfg`` (a ModelConfig) names, for inputs of ``input_dim`` features."""
    return get_model(cfg.name).build(input_dim, cfg)


def snapshot() -> dict[str, ModelSpec]:
    """The registry, to hand to a worker process (picklable: strings and top-level functions)."""
    return dict(MODELS)


def restore(specs: dict[str, ModelSpec]) -> None:
    MODELS.update(specs)


register_model(DEFAULT, "pruning.models.mlp:build_mlp",
               "a bias-free ReLU MLP of --hidden widths; the hidden layers are prunable, the output layer is not")
