"""docs/api.md's reference of the public API, made from the docstrings of ``pruning.__all__``.

``python -m pruning.apidoc`` rewrites the generated part of docs/api.md (between ``BEGIN`` and ``END``);
``python -m pruning.apidoc --check`` exits 1 when it is stale. ``tests/test_api.py`` checks it too, so
a docstring and its entry cannot drift apart.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

BEGIN = "<!-- api: made by python -m pruning.apidoc from the docstrings; edit those, not this -->"
END = "<!-- api: end -->"
API_MD = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return type(obj).__name__


def _signature(name: str, obj) -> str:
    if isinstance(obj, dict) or not callable(obj):
        return name
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def entry(name: str) -> str:
    """One name's entry: a heading, where it lives, its signature and its docstring."""
    import pruning

    module, attr = pruning._API[name]
    obj = getattr(pruning, name)
    where = f"pruning.{module}.{attr}"
    return "\n".join([f"### `pruning.{name}`", "",
                      f"{_kind(obj)} `{where}`" + ("" if attr == name else f" (public name `{name}`)"), "",
                      "```python", _signature(name, obj), "```", "", inspect.getdoc(obj) or "", ""])


def markdown() -> str:
    """The generated part of docs/api.md: an index, then every public name's entry, in ``__all__``'s order."""
    import pruning

    index = ", ".join(f"[`{n}`](#pruning{n.lower()})" for n in pruning.__all__)
    return "\n".join([BEGIN, "", "## Reference", "", index, "", *map(entry, pruning.__all__), END])


def updated(text: str) -> str:
    """``text`` (docs/api.md) with its generated part made again (appended when it has none)."""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        return head + markdown() + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + markdown() + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = API_MD.read_text()
    new = updated(text)
    if "--check" in argv:
        if new != text:
            print(f"{API_MD} is stale: run python -m pruning.apidoc", file=sys.stderr)
            return 1
        return 0
    API_MD.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
