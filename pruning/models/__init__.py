"""The network is a plug-in: registered builders, looked up by name (``--model``).

A builder is a top-level function ``(input_dim, model_config) -> keras.Model`` whose layers are
``pruning.core.layers.MaskedDense`` (prunable ones flagged ``prunable=True``): the runner, the masks, the
shrinker, the size report, the sparse export and the plots ask those layers what they are, never
"is this the MLP". This module imports no TensorFlow, so the command line can list the choices
cheaply; a builder's own module is imported when the model is built. The study's worker processes
get the registry of the process that started them (``snapshot`` / ``restore``), so a builder
registered by a user's script or a test works there too, as long as it is an importable
top-level function. ``--model FILE.py:FUNCTION`` and ``--model FILE.keras`` (a network of the user's
own, ``pruning.models.user``) are registered on the fly by ``get_model``.
"""
from __future__ import annotations

import importlib
import inspect
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
    # a network of the user's own (``--model FILE.py:FUNCTION`` or ``FILE.keras``, pruning.models.user):
    # ``name`` is the path, the builder is called as builder(name, input_shape, num_classes) and returns the
    # network made prunable; it reads examples in their shape (``Dataset.shaped``), not flat
    user: bool = False

    def build(self, input_dim: int, cfg, input_shape: tuple[int, ...] | None = None, num_classes: int = 10):
        if self.user:
            return _resolve(self.builder)(self.name, tuple(input_shape or (input_dim,)), int(num_classes),
                                          exclude=tuple(getattr(cfg, "exclude", ()) or ()))
        if num_classes != 10:  # the built-in builders take n_classes; check() refused those that do not
            return _resolve(self.builder)(input_dim, cfg, n_classes=int(num_classes))
        return _resolve(self.builder)(input_dim, cfg)

    def check(self, input_dim: int, cfg, input_shape: tuple[int, ...] | None = None, num_classes: int = 10) -> None:
        if self.user:
            from .user import check_fits_data

            shape = tuple(input_shape or (input_dim,))
            check_fits_data(self.name, self.build(input_dim, cfg, shape, num_classes), shape, num_classes)
            return
        if self.check_input is not None:
            _resolve(self.check_input)(input_dim, cfg)
        if num_classes != 10 and "n_classes" not in inspect.signature(_resolve(self.builder)).parameters:
            from ..errors import ConfigError

            raise ConfigError(f"--model {self.name} has 10 outputs, but the data has {num_classes} classes, and its "
                              f"builder takes no n_classes. Give the builder an n_classes parameter, or pass a "
                              f"model of your own (--model FILE.py:FUNCTION, which gets num_classes).")


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


def model_names() -> tuple[str, ...]:
    """The registered builders' names (the networks of users' own files, registered on the fly, left out)."""
    return tuple(name for name, spec in MODELS.items() if not spec.user)


def is_user_model(name: str) -> bool:
    """True when ``--model name`` is a network of one's own: ``FILE.py:FUNCTION`` or ``FILE.keras``."""
    from .user import looks_like_path

    return name not in MODELS and looks_like_path(name) or (name in MODELS and MODELS[name].user)


def get_model(name: str) -> ModelSpec:
    """The registered model ``name``; ``FILE.py:FUNCTION`` and ``FILE.keras`` are registered on first use
    (``user_spec``); a ValueError naming the choices otherwise."""
    if name not in MODELS and is_user_model(name):
        return MODELS.register(user_spec(name))
    return MODELS.lookup(name)


def user_spec(name: str) -> ModelSpec:
    """The ModelSpec of ``--model FILE.py:FUNCTION`` or ``--model FILE.keras`` (``pruning.models.user``):
    weight and unit strategies (no students: their widths follow --hidden), no --hidden or --filters.
    It holds only strings, so it pickles to the study's worker processes. ConfigError when the file is
    missing.

    Use::

        spec = pruning.models.user_spec("nets/mine.py:build")
        keras.utils.set_random_seed(seed)
        model = spec.build(data.input_dim, cfg, data.input_shape, data.num_classes)   # prunable
    """
    from .user import parse

    path, fn = parse(name)
    what = f"function {fn} of {path}" if fn else f"the architecture saved in {path}, freshly initialised"
    return ModelSpec(name, "pruning.models.user:build_prunable", f"your network: {what}",
                     granularities=("weight", "unit"), hidden=(), filters=(), user=True)


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


def build_model(input_dim: int, cfg, input_shape: tuple[int, ...] | None = None, num_classes: int = 10):
    """The network ``cfg`` (a ModelConfig) names, for inputs of ``input_dim`` features; a network of the
    user's own (``--model FILE.py:FUNCTION`` or ``FILE.keras``) is built for examples of ``input_shape``
    (default ``(input_dim,)``) and ``num_classes`` classes, made prunable, its weights drawn from Keras'
    global seed. The runner passes ``data.input_dim, cfg, data.input_shape, data.num_classes`` and feeds
    ``model_inputs(cfg, data, x)``."""
    return get_model(cfg.name).build(input_dim, cfg, input_shape, num_classes)


def check_input(input_dim: int, cfg, input_shape: tuple[int, ...] | None = None, num_classes: int = 10) -> None:
    """A ``pruning.config.ConfigError`` naming the problem when examples of ``input_dim`` values (of
    ``input_shape``, in ``num_classes`` classes) do not fit the network ``cfg`` names."""
    get_model(cfg.name).check(input_dim, cfg, input_shape, num_classes)


def model_inputs(cfg, data, x):
    """The examples ``x`` (rows of ``data.x_train`` or ``data.x_test``, flat) as the network ``cfg`` names
    reads them: in the data's shape (``data.shaped(x)``) for a network of the user's own, flat for the
    registered builders."""
    return data.shaped(x) if get_model(cfg.name).user else x


def runs_own_code(cfg) -> bool:
    """True when the network ``cfg`` (a ModelConfig) names is built by the user's own Python code
    (``--model FILE.py:FUNCTION``): the study, which imported and ran that code, trusts the Python functions
    (``Lambda`` layers) in the models it saved from it when it reads them back."""
    return get_model(cfg.name).user and not str(cfg.name).endswith(".keras")


def model_data(cfg, data):
    """``data`` as the network ``cfg`` (a ModelConfig) names reads it: for a network of the user's own, the
    view whose ``x_train`` and ``x_test`` are in the examples' shape (``Dataset.as_shaped``); ``data`` itself
    for the registered builders, which read flat vectors. The study's runner trains and measures every run
    on ``model_data(cfg.hyper.model, data)``, so no protocol reshapes anything."""
    return data.as_shaped() if get_model(cfg.name).user else data


def build_for_data(cfg, data):
    """A fresh network ``cfg`` (a ModelConfig) names, for ``data`` (a Dataset), its weights drawn from
    Keras' global seed: a network of the user's own is built for the data's example shape and number of
    classes and made prunable; a registered builder's as it always was, ``build_model(data.input_dim, cfg)``
    (its 10 outputs: the command line refuses data of more classes for it)."""
    if get_model(cfg.name).user:
        return build_model(data.input_dim, cfg, data.input_shape, data.num_classes)
    return build_model(data.input_dim, cfg)


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
