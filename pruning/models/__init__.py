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
    # "weight" needs masks only; "unit" also needs the network to be shrinkable unit by unit; "student"
    # needs a builder whose widths follow --hidden (and --filters), so a smaller copy can be built
    granularities: tuple[str, ...] = ("weight", "unit", "student")
    hidden: tuple[int, ...] = (1000, 1000, 500, 200)  # the widths --hidden defaults to
    filters: tuple[int, ...] = ()  # the convolution widths --filters defaults to (none: no convolutions)
    # "module:function" or a function (input_dim, cfg) raising pruning.config.ConfigError when the
    # data's examples do not fit the network; None: any input size
    check_input: str | Callable | None = None

    def build(self, input_dim: int, cfg):
        return _resolve(self.builder)(input_dim, cfg)

    def check(self, input_dim: int, cfg) -> None:
        if self.check_input is not None:
            _resolve(self.check_input)(input_dim, cfg)


def _resolve(fn: str | Callable) -> Callable:
    if isinstance(fn, str):
        module, _, attr = fn.partition(":")
        fn = getattr(importlib.import_module(module), attr)
    return fn


MODELS = Registry("model", doc="""The networks, name -> ``ModelSpec`` (its builder, help, the strategy kinds it
supports, its default widths), in registration order: ``mlp`` (the default) and ``lenet5``, and any
you register with ``register_model``; the command line's ``--model`` choices come from here.

Use::

    list(pruning.MODELS)                                          # ['mlp', 'lenet5']
    pruning.MODELS["lenet5"].build(784, ModelConfig(name="lenet5"))  # ModelConfig from pruning.config
""")
get_model = MODELS.lookup
model_names = MODELS.names


def register_model(name: str, builder: str | Callable, help: str,
                   granularities: tuple[str, ...] = ("weight", "unit", "student"), **defaults) -> ModelSpec:
    """Make ``builder`` (a top-level function, or "module:function") the choice ``--model name``;
    ``granularities`` names the kinds of strategy it can be pruned with; ``defaults``: ``hidden``,
    ``filters``, ``check_input`` (see ``ModelSpec``).

    Use (the builder must be an importable top-level function, so the study's workers find it)::

        pruning.register_model("tiny", "mypackage.nets:build_tiny", "a two-layer MLP")
        # python main.py --model tiny ...   (or pruning.MODELS["tiny"].build(784, ModelConfig(name="tiny")))
    """
    return MODELS.register(ModelSpec(name, builder, help, tuple(granularities), **defaults))


def build_model(input_dim: int, cfg):
    """The network ``cfg`` (a ModelConfig) names, for inputs of ``input_dim`` features."""
    return get_model(cfg.name).build(input_dim, cfg)


def check_input(input_dim: int, cfg) -> None:
    """A ``pruning.config.ConfigError`` naming the problem when examples of ``input_dim`` values do not
    fit the network ``cfg`` names."""
    get_model(cfg.name).check(input_dim, cfg)


def snapshot() -> dict[str, ModelSpec]:
    """The registry, to hand to a worker process (picklable: strings and top-level functions)."""
    return dict(MODELS)


def restore(specs: dict[str, ModelSpec]) -> None:
    MODELS.update(specs)


register_model(DEFAULT, "pruning.models.mlp:build_mlp",
               "a bias-free ReLU MLP of --hidden widths; the hidden layers are prunable, the output layer is not")
register_model("lenet5", "pruning.models.lenet5:build_lenet5",
               "a bias-free LeNet-5-sized CNN (Caffe's LeNet-5, as pruned by Han et al. 2015): two 5x5 convolutions "
               "of --filters widths (default 20,50), each followed by 2x2 max pooling, then dense layers of --hidden "
               "widths (default 500) and the output; the convolutions and hidden layers are prunable, unit strategies "
               "remove whole filters", hidden=(500,), filters=(20, 50),
               check_input="pruning.models.lenet5:check_input")
