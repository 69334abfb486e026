"""Name -> entry, for each kind of plug-in (strategies in ``pruning.core.masks``, models in
``pruning.models``): registered once, looked up by name, listed in registration order. A plain dict
underneath, so ``for entry in REGISTRY.values()`` and a test's ``monkeypatch.setitem`` just work."""
from __future__ import annotations


class Registry(dict):
    """Name -> entry for one kind of plug-in (``kind``: "strategy", "model"); ``reserved`` names cannot be
    registered. ``doc`` documents the instance itself (``help(pruning.STRATEGIES)``, ``docs/api.md``).

    Use::

        SHAPES = Registry("shape", doc="The shapes, by name.")
        SHAPES.register(Shape("square"))      # anything with a ``name``
        SHAPES.lookup("square"); SHAPES.names()
    """

    def __init__(self, kind: str, reserved: tuple[str, ...] = (), doc: str | None = None):
        super().__init__()
        self.kind = kind
        self.reserved = set(reserved)
        if doc is not None:
            self.__doc__ = doc

    def register(self, entry):
        """Add ``entry`` (anything with a ``name``) under its name, once."""
        if entry.name in self or entry.name in self.reserved:
            raise ValueError(f"a {self.kind} named {entry.name!r} is already registered")
        self[entry.name] = entry
        return entry

    def lookup(self, name: str):
        """The entry named ``name``; a ValueError naming the choices otherwise."""
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self)}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self)
