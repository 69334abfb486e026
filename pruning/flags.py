"""Command-line flags generated from frozen dataclasses: ``hp`` declares a field with its help text, ``add_flags``
adds one flag per field and ``from_args`` builds the dataclass back from parsed flags. Its own module (pure
Python) so that every package that declares hyper-parameters (``pruning.config``, ``pruning.sparsify``) reads
it without importing the others."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import field
from typing import Any


def hp(default: Any, help: str, *, choices: tuple | None = None, metavar: str | None = None,
       aliases: tuple[str, ...] = (), items: type | None = None, flag: str | None = None,
       scalar: type | None = None):
    """A dataclass field carrying its command-line help text (and any other flag names it answers to);
    ``items``: the element type of a comma-separated list whose default is None; ``scalar``: the type of
    a single value whose default is None."""
    return field(default=default, metadata={"help": help, "choices": choices, "metavar": metavar,
                                            "aliases": aliases, "items": items, "flag": flag, "scalar": scalar})



def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_number(text: str, item_type=float):
    """A number from the command line; a percentage may carry a trailing % ("90%" -> 90.0)."""
    text = text.strip()
    if item_type is float and text.endswith("%"):
        text = text[:-1].strip()
    return item_type(text)


def parse_tuple(text: str, item_type):
    try:
        return tuple(parse_number(t, item_type) if item_type in (int, float) else item_type(t.strip())
                     for t in text.split(",") if t.strip() != "")
    except ValueError:
        kind = {int: "integers", float: "numbers"}.get(item_type, "values")
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind}, got {text!r}") from None


def add_flags(parser: argparse.ArgumentParser, cls, *, title: str | None = None, skip=()) -> None:
    """Add one flag per field of dataclass ``cls`` (defaults and help come from the field)."""
    group = parser.add_argument_group(title or cls.__name__.replace("Config", "").lower())
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta, default = f.metadata, f.default
        kwargs: dict[str, Any] = {"dest": f.name, "default": default, "help": meta.get("help", "")}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple) or meta.get("items"):
            item = meta.get("items") or (type(default[0]) if default else str)
            kwargs["type"] = lambda s, item=item: parse_tuple(s, item)
            if default is not None:
                kwargs["help"] += f" (default: {','.join(f'{v:g}' if isinstance(v, float) else str(v) for v in default)})"
        else:
            kwargs["type"] = meta.get("scalar") or (
                float if isinstance(default, float) else int if isinstance(default, int) else str)
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            if default is not None:
                kwargs["help"] += " (default: %(default)s)"
        group.add_argument(meta.get("flag") or flag_name(f.name), *meta.get("aliases", ()), **kwargs)


def from_args(args: argparse.Namespace, cls, **overrides):
    """Build a ``cls`` instance from parsed flags (fields without a flag keep their default)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)


