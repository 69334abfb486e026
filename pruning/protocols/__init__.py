"""Training protocols are plug-ins, like strategies and models: registered once, looked up by name.

A protocol says how the runs of a study are planned (``chains``, ``epochs``), what makes a run of it the run
it is (``identity``), and how one run starts, trains and finishes (``pruning.protocols.base.Protocol``); the
planner (``pruning.study.plan``) and the runner (``pruning.study.run``) ask the run's protocol and name none.

Registered here:

* ``oneshot``, ``retrain``, ``scratch`` (``pruning.protocols.pruning``): prune the dense network (and
  retrain), or train each pruned network from scratch under its mask; ``--protocol``;
* ``lottery`` (``pruning.protocols.lottery``): levels of iterative pruning with rewinding, and controls;
* ``student`` (``pruning.protocols.students``): the small dense students of strategies ``student`` and
  ``distill``, which name it (``Strategy.protocol``), whatever ``--protocol`` is.

This module imports no TensorFlow and none of the protocols' modules: an entry names its protocol object as
"module:attribute", imported on first use, so ``pruning.config`` can list and check the names cheaply. The
study's worker processes get the registry of the process that started them (``snapshot`` / ``restore``).

Use (a protocol of one's own, then ``--protocol halfway``)::

    from pruning.protocols import ProtocolSpec, register_protocol
    register_protocol(ProtocolSpec("halfway", "my_module:HALFWAY", "retrain for half the epochs"))
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry


@dataclass(frozen=True)
class ProtocolSpec:
    """A registered protocol: its ``name``, the protocol object (a ``pruning.protocols.base.Protocol``, or
    "module:attribute" naming one, imported when first used), its ``help`` for ``--protocol``, and whether
    ``--protocol`` offers it (``selectable``; the students' protocol is chosen by their strategies)."""

    name: str
    impl: Any
    help: str
    selectable: bool = True
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def resolve(self):
        """The protocol object."""
        if "obj" not in self._cache:
            obj = self.impl
            if isinstance(obj, str):
                module, _, attr = obj.partition(":")
                obj = getattr(importlib.import_module(module), attr)
            self._cache["obj"] = obj
        return self._cache["obj"]


PROTOCOLS = Registry("protocol", doc="""The training protocols, name -> ``ProtocolSpec``, in registration order.

Use::

    pruning.protocols.PROTOCOLS.names()          # ('oneshot', 'retrain', 'scratch', 'lottery', 'student')
    pruning.protocols.get("retrain").epochs(cfg)  # what the planner asks
""")


def register_protocol(spec: ProtocolSpec) -> ProtocolSpec:
    """Make ``spec`` a protocol: ``--protocol spec.name`` when it is selectable."""
    return PROTOCOLS.register(spec)


def names(selectable: bool = True) -> tuple[str, ...]:
    """The protocols ``--protocol`` offers (all registered ones with ``selectable=False``)."""
    return tuple(n for n, s in PROTOCOLS.items() if s.selectable or not selectable)


def get(name: str):
    """The protocol object registered as ``name``."""
    return PROTOCOLS.lookup(name).resolve()


def for_run(cfg):
    """The protocol a run trains under: its strategy's own (a student's), else the study's ``--protocol``."""
    from ..core import masks

    own = masks.get(cfg.strategy).protocol if cfg.sparsity > 0 else None
    return get(own or cfg.hyper.prune.protocol)


def snapshot() -> dict[str, ProtocolSpec]:
    """The registry, to hand to a worker process (picklable: strings and importable objects)."""
    return {name: ProtocolSpec(s.name, s.impl, s.help, s.selectable) for name, s in PROTOCOLS.items()}


def restore(specs: dict[str, ProtocolSpec]) -> None:
    for name, spec in specs.items():
        if name not in PROTOCOLS:
            PROTOCOLS[name] = spec


register_protocol(ProtocolSpec(
    "oneshot", "pruning.protocols.pruning:ONESHOT", "prune the trained dense network, no retraining"))
register_protocol(ProtocolSpec(
    "retrain", "pruning.protocols.pruning:RETRAIN", "prune the trained dense network, then retrain under the "
    "mask (iteratively from the sparsity below, with a cubic ramp)"))
register_protocol(ProtocolSpec(
    "scratch", "pruning.protocols.pruning:SCRATCH", "train each pruned model from a fresh initialisation under "
    "the mask"))
register_protocol(ProtocolSpec(
    "lottery", "pruning.protocols.lottery:LOTTERY", "iterative magnitude pruning with rewinding, level by level, "
    "with controls (see the lottery group; --sparsities is not used)"))
register_protocol(ProtocolSpec(
    "student", "pruning.protocols.students:STUDENTS", "small dense students (strategies student, distill)",
    selectable=False))
