"""A network of your own as ``--model``: ``FILE.py:FUNCTION`` or ``FILE.keras``.

``--model nets/mine.py:build`` calls ``build(input_shape, num_classes)`` (the data's example shape, e.g.
``(32, 32, 3)``, and its number of classes), which returns a built ``keras.Model``; ``--model
mine.keras`` reads the saved model's architecture and initialises it afresh (its saved weights are not
used). Either way the network is built once per seed, after the runner's ``keras.utils.set_random_seed``,
so two seeds start from different weights and one seed always from the same, and it is returned
``pruning.prunable`` (masks on every Dense and convolution except the output layer's; see
``pruning.graph``).

The registry entry (``user_spec``) stores only the path string, so the study's worker processes, which
get the registry pickled, import the file or read the .keras themselves. Such a network has no widths
that follow ``--hidden`` and ``--filters``: they do not apply to it, and neither do the student
baselines (``granularities`` is weight and unit).

Every problem (no such file, no such function, a function that raises or returns something else than a
Keras model, a .keras file that does not load, a layer ``pruning.prunable`` has no rule for, an input
shape or a number of outputs that does not fit the data) is a ``pruning.config.ConfigError`` naming the
file and the fix.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

PY_FORM = "FILE.py:FUNCTION"
KERAS_FORM = "FILE.keras"


def looks_like_path(name: str) -> bool:
    """True for the two forms of a network of one's own: ``something.py:function`` and ``something.keras``."""
    name = str(name)
    if name.endswith(".keras"):
        return True
    path, sep, fn = name.rpartition(":")
    return bool(sep) and path.endswith(".py")


def parse(name: str) -> tuple[Path, str | None]:
    """(the file, the function or None for a .keras file) of ``--model name``; ConfigError for a missing
    file or function name."""
    from ..errors import ConfigError

    name = str(name)
    if name.endswith(".keras"):
        path, fn = Path(name).expanduser(), None
    else:
        file, _, fn = name.rpartition(":")
        path = Path(file).expanduser()
        if not fn.isidentifier():
            raise ConfigError(f"--model {name}: {fn!r} is not a Python function name. Pass {PY_FORM}, e.g. --model "
                              f"{file}:build_model, naming a top-level function (input_shape, num_classes) -> "
                              f"keras.Model of that file.")
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"--model {name}: {path} {what} (looked for from {os.getcwd()}). Pass the path of "
                          + (f"a Python file defining {fn}(input_shape, num_classes) -> keras.Model ({PY_FORM})"
                             if fn else f"a model saved with model.save('{path.name}') ({KERAS_FORM})") + ".")
    return path, fn


def _import_file(path: Path, name: str):
    """The module of Python file ``path`` (imported once per process, under a name derived from its path)."""
    from ..errors import ConfigError

    resolved = path.resolve()
    module_name = "pruning_user_model_" + hashlib.md5(str(resolved).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:
        del sys.modules[module_name]
        if isinstance(e, KeyboardInterrupt):
            raise
        raise ConfigError(f"--model {name}: importing {path} failed ({type(e).__name__}: {e}). Fix the file so that "
                          f"python {path} runs without error.") from None
    return module


def _fresh_config(config):
    """A layer config with every initializer's fixed seed removed, so the runner's seed decides the weights."""
    if isinstance(config, dict):
        out = {}
        for k, v in config.items():
            if k == "seed" and "class_name" not in config and (v is None or isinstance(v, int)):
                out[k] = None
            else:
                out[k] = _fresh_config(v)
        return out
    if isinstance(config, list):
        return [_fresh_config(v) for v in config]
    return config


def _load_keras(path: Path, name: str):
    """The architecture of the saved model at ``path``, freshly initialised (every initializer reseeded from
    the global seed)."""
    import keras

    from ..errors import ConfigError

    try:
        saved = keras.models.load_model(path, compile=False)
    except Exception as e:
        raise ConfigError(f"--model {name}: {path} does not load with keras.models.load_model ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}). Save the model with model.save('"
                          f"{path.name}') using Keras 3 and standard layers (custom layers need their module "
                          f"imported and registered), or pass {PY_FORM} building it.") from None

    def fresh(layer):
        try:
            return layer.__class__.from_config(_fresh_config(layer.get_config()))
        except Exception:
            return layer.__class__.from_config(layer.get_config())

    try:
        return keras.models.clone_model(saved, clone_function=fresh)
    except Exception as e:
        raise ConfigError(f"--model {name}: the model in {path} cannot be rebuilt from its configuration "
                          f"({type(e).__name__}: {e}); only Functional and Sequential models can. Save a Functional "
                          f"or Sequential model, or pass {PY_FORM}.") from None


def load_user_model(name: str, input_shape, num_classes: int):
    """The plain Keras model ``--model name`` describes, built for examples of ``input_shape`` and
    ``num_classes`` classes (not made prunable, not checked against the data)."""
    import keras

    from ..errors import ConfigError

    path, fn = parse(name)
    if fn is None:
        model = _load_keras(path, name)
    else:
        module = _import_file(path, name)
        builder = getattr(module, fn, None)
        if not callable(builder):
            defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                             and getattr(v, "__module__", None) == module.__name__)
            raise ConfigError(f"--model {name}: {path} defines no function {fn}"
                              + (f" (its functions: {', '.join(defined)})" if defined else "")
                              + f". Define {fn}(input_shape, num_classes) returning a keras.Model there, or name "
                              f"one of its functions after the colon.")
        try:
            model = builder(tuple(input_shape), int(num_classes))
        except Exception as e:
            raise ConfigError(f"--model {name}: {fn}(input_shape={tuple(input_shape)}, num_classes={num_classes}) "
                              f"raised {type(e).__name__}: {e}. Fix {fn} in {path}; it is called with the data's "
                              f"example shape and number of classes and must return a keras.Model.") from None
    if not isinstance(model, keras.Model):
        raise ConfigError(f"--model {name}: {fn}(input_shape, num_classes) returned {type(model).__name__}, not a "
                          f"keras.Model. Return the model, e.g. keras.Model(inputs, outputs) or "
                          f"keras.Sequential([...]) built with keras.Input(input_shape).")
    return model


def build_prunable(name: str, input_shape, num_classes: int, exclude=()):
    """``--model name`` built and made prunable (``pruning.prunable``: a mask on every kernel but the output
    layer's and those of the layers named in ``exclude``, the study's ``--exclude``). The weights are drawn
    from Keras' global seed: call ``keras.utils.set_random_seed(seed)`` first. ConfigError naming the file
    when it cannot be built or pruned."""
    from ..errors import ConfigError
    from ..graph import UnsupportedLayerError, prunable

    model = load_user_model(name, input_shape, num_classes)
    try:
        return prunable(model, exclude=tuple(exclude))
    except UnsupportedLayerError as e:
        hint = (f" In the study, that is --exclude {e.layer_name}: the layer is then left as it is and the channels "
                f"it touches are never removed." if e.layer_name else "")
        raise ConfigError(f"--model {name}: {e}{hint}") from None
    except ValueError as e:
        if str(e).startswith("exclude names"):
            layers = [layer.name for layer in model.layers]
            raise ConfigError(f"--model {name}: --exclude {','.join(exclude)} names layers the model does not have "
                              f"({', '.join(sorted(set(exclude) - set(layers)))}); its layers are: "
                              f"{', '.join(layers)}. Pass their names as model.summary() prints them.") from None
        raise ConfigError(f"--model {name}: pruning.prunable cannot read this model (ValueError: {e}). "
                          f"Build it on keras.Input(input_shape) as a Functional or Sequential model.") from None
    except Exception as e:  # e.g. a model that was never built (no input shape)
        raise ConfigError(f"--model {name}: pruning.prunable cannot read this model ({type(e).__name__}: {e}). "
                          f"Build it on keras.Input(input_shape) as a Functional or Sequential model.") from None


def check_fits_data(name: str, model, input_shape, num_classes: int) -> None:
    """ConfigError unless ``model`` (made prunable) reads examples of ``input_shape``, outputs ``num_classes``
    scores and has a masked kernel to prune."""
    from ..errors import ConfigError

    inputs = model.inputs
    if len(inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError(f"--model {name} has {len(inputs)} inputs and {len(model.outputs)} outputs; the study "
                          f"trains a network of one input (the examples) and one output (the class scores).")
    want = tuple(int(d) for d in input_shape)
    got = tuple(inputs[0].shape[1:])
    if len(got) != len(want) or any(g is not None and g != w for g, w in zip(got, want)):
        raise ConfigError(f"--model {name} reads examples of shape {got}, but the data's examples have shape "
                          f"{want}. Build the model on keras.Input({want}) (a FILE.py:FUNCTION gets it as "
                          f"input_shape), or reshape the data in your .npz file.")
    out = tuple(model.outputs[0].shape[1:])
    if out != (int(num_classes),):
        raise ConfigError(f"--model {name} outputs shape {out}, but the data has {num_classes} classes: the last "
                          f"layer must give one score per class, shape ({num_classes},) (a FILE.py:FUNCTION gets it "
                          f"as num_classes).")
    from ..graph import kernel_slots

    if not kernel_slots(model):
        raise ConfigError(f"--model {name} has nothing to prune: pruning.prunable masks every Dense and convolution "
                          f"except the output layer, and it has no other. Add a hidden Dense or convolution layer "
                          f"before the output layer.")


def outputs_probabilities(model) -> bool:
    """True when ``model``'s output is a softmax (probabilities), False when it gives logits.

    The study's loss assumes logits (``from_logits=True``); for a model of your own whose last layer ends
    in a softmax, pick ``from_logits=not pruning.models.user.outputs_probabilities(model)``. Found from the
    layer producing the output, looking back through layers that pass values unchanged at inference
    (Dropout, Identity, Activation("linear")): a ``Softmax`` layer, an ``Activation("softmax")``, or a layer
    whose ``activation`` is softmax (``Dense(10, activation="softmax")``). A sigmoid output is not counted
    (its scores do not sum to 1 over the classes).

    Use::

        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=not pruning.models.user.outputs_probabilities(model))
    """
    import keras

    passthrough = (keras.layers.Dropout, keras.layers.Identity, keras.layers.SpatialDropout1D,
                   keras.layers.SpatialDropout2D, keras.layers.GaussianDropout, keras.layers.GaussianNoise,
                   keras.layers.AlphaDropout, keras.layers.ActivityRegularization)
    tensor = model.outputs[0]
    for _ in range(1000):
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return False
        layer = history[0] if not hasattr(history, "operation") else history.operation
        if isinstance(layer, keras.Model):  # a nested model: its own output
            tensor = layer.outputs[history[2] if not hasattr(history, "tensor_index") else history.tensor_index]
            continue
        if isinstance(layer, keras.layers.Softmax):
            return True
        act = getattr(layer, "activation", None)
        if act is not None and getattr(act, "__name__", "") == "softmax":
            return True
        linear = act is not None and getattr(act, "__name__", "") == "linear" and isinstance(
            layer, keras.layers.Activation)
        if isinstance(layer, passthrough) or linear:
            node = layer._inbound_nodes[history[1] if not hasattr(history, "node_index") else history.node_index]
            tensor = node.input_tensors[0]
            continue
        return False
    return False
