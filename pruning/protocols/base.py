"""What a protocol supplies: the contract between the planner, the runner and one protocol.

The runner (``pruning.study.run.train_run``) does what every run does: a clean run directory, the
configuration written, the seed set, the model compiled as every run trains, TensorBoard, progress and NaN
callbacks, the final evaluation, sparsity and size, the model saved and ``result.json`` written last. It asks
the run's protocol (``pruning.protocols.for_run``) for the rest, in this order:

1. ``files(run)``: what a finished run of it holds (``result.json`` names them);
2. ``start(run)``: the model the run starts from and what it trains on, as a ``Start`` (raises
   ``ParentUnusable`` when a run it starts from is not there);
3. ``callbacks(run, start)``: Keras callbacks of its own;
4. ``masking(run, start)``: the pruning callback, or None (it may first record what pruning alone does);
5. ``fit(run, start, fit_args)``: trains (``start.epochs`` > 0), returns the final model and its history;
6. ``finish(run, start, model, history)``: after the final evaluation: its additions to the result, and
   the model to save (a shrunk one, say);
7. ``sizes(run, start, size)``: a last word on the size report.

The planner (``pruning.study.plan``) asks the study's protocol for its ``chains`` and each run's protocol for
its ``epochs``; ``RunConfig.identity`` adds its ``identity``; the local engine runs a protocol whose
``as_graph`` is true as one graph of runs over all seeds (its runs start as soon as their parent is done).

A ``RunContext`` is what the runner lends a protocol: the run's configuration, log and run directories,
data, clock and result, and its services (``compile``, ``pruned_accuracies``, ``save``).

Use (a toy protocol: retrain every pruned run for one epoch at a tenth of the learning rate)::

    class Polish(pruning.protocols.pruning.OneShot):
        name = "polish"
        def pruned_epochs(self, cfg): return 1
        def lr(self, cfg): return cfg.hyper.train.lr / 10

    register_protocol(ProtocolSpec("polish", Polish(), "one epoch at lr / 10"))
"""
from __future__ import annotations

from dataclasses import dataclass, field
import typing
from typing import Any

from .. import paths
from ..config import Hyper, RunConfig, StudyConfig


class RunContext(typing.Protocol):
    """What the runner lends a protocol for one run (``pruning.study.run``)."""

    cfg: RunConfig
    logdir: Any  # the seed's log directory
    rdir: Any  # the run's directory
    data: Any  # the study's Dataset
    clock: Any  # the run's wall time by kind: ``with run.clock("masks"): ...``
    result: dict  # the result being written: a protocol adds its entries
    xla: bool

    def compile(self, model, lr: float, steps: int, start_step: int = 0, loss=None, accuracy=None) -> None: ...

    def pruned_accuracies(self, model, start_masks) -> dict: ...

    def save(self, model, path) -> None: ...


@dataclass
class Start:
    """How one run starts: its model, the finished run it starts from (its result, or None), what it
    fits (``data``: the training set it trains on; ``y_fit``/``y_val``: the targets of fit and of its
    per-epoch validation on the test set, default the labels; ``loss``/``accuracy``: None for the study's
    own), its schedule (``epochs``, peak ``lr``, total optimizer ``steps`` of its learning-rate schedule,
    ``start_step`` into it), the masks it starts under (``masks``), the pruning callback (``masking``, set
    by the runner), and anything else the protocol keeps for its later steps (``state``)."""

    model: Any
    data: Any
    epochs: int
    lr: float
    steps: int
    parent: dict | None = None
    start_step: int = 0
    y_fit: Any = None
    y_val: Any = None
    loss: Any = None
    accuracy: Any = None
    masks: Any = None
    masking: Any = None  # the pruning callback the runner got from ``masking`` (None: no pruning)
    state: dict = field(default_factory=dict)


class Protocol:
    """A protocol: subclass it and override what differs (``pruning.protocols.pruning`` for examples)."""

    name = "protocol"

    # ------------------------------------------------------------------ the planner asks
    def chains(self, hyper: Hyper, study: StudyConfig) -> list[list[RunConfig]]:
        """The study's runs as chains (each run starts from the one before it); the dense run first."""
        raise NotImplementedError

    def epochs(self, cfg: RunConfig) -> int:
        """The epochs ``cfg`` trains (the progress lines and the time left count them)."""
        return cfg.hyper.train.epochs

    def identity(self, cfg: RunConfig) -> dict:
        """What ``RunConfig.identity`` adds for a run of this protocol (a finished run is reused only when
        its identity is the requested one)."""
        return {}

    as_graph = False  # the local engine runs all seeds' runs as one graph (a run starts when its parent is done)

    # ------------------------------------------------------------------ the runner asks
    def files(self, run: RunContext) -> list[str]:
        return [paths.MODEL, paths.SPARSE_MODEL]

    def start(self, run: RunContext) -> Start:
        raise NotImplementedError

    def callbacks(self, run: RunContext, start: Start) -> list:
        return []

    def masking(self, run: RunContext, start: Start):
        return None

    def fit(self, run: RunContext, start: Start, fit_args: dict):
        """Train ``start.model`` for ``start.epochs``; returns (the final model, its history lists)."""
        from ..core.training import extend_history

        history: dict = {}
        y = start.y_fit if start.y_fit is not None else start.data.y_train
        extend_history(history, start.model.fit(start.data.x_train, y, epochs=start.epochs, **fit_args).history)
        return start.model, history

    def finish(self, run: RunContext, start: Start, model, history: dict):
        """After the final evaluation: add to ``run.result``; returns the model to save."""
        return model

    def sizes(self, run: RunContext, start: Start, size: dict) -> None:
        """A last word on ``run.result["size"]`` (``size``)."""
