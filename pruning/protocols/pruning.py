"""The pruning protocols of ``--protocol``: ``oneshot``, ``retrain`` (the default) and ``scratch``.

Each trains the dense run (sparsity 0) from a fresh initialisation for ``--epochs``. A pruned run:

* ``oneshot`` prunes the trained dense network to k and trains no further;
* ``retrain`` prunes its parent (the dense network, or with ``--iterative`` the run at the sparsity below)
  and retrains it for ``--retrain-epochs`` at ``--retrain-lr``, the sparsity rising from the parent's to k
  along a cubic ramp over ``--ramp-epochs`` (Zhu & Gupta 2017);
* ``scratch`` trains a fresh initialisation for ``--epochs`` under the mask of k.

Before any retraining every pruned run records what pruning alone does (``pruned_test_accuracy``, and the
dense network pruned to k: ``oneshot_*``). Unit strategies train and are saved physically shrunk; a
network of the user's own (``--model FILE.py:FUNCTION``, ``pruning.prunable``) trains masked, and the runner
saves it as plain Keras layers (shrunk, or stripped), its masked form beside it for the runs that start from it.
"""
from __future__ import annotations

import math

import numpy as np

from .. import models, paths, sparsify
from ..config import Hyper, RunConfig, StudyConfig
from ..core import masks
from ..report.results import finished_result, load_parent_model, start_model_file
from .base import Protocol, RunContext, Start


def phases(schedule, epochs: int) -> list[tuple[int, int]]:
    """[start, end) epoch ranges over which the schedule's target sparsity is constant."""
    bounds = [0] + [e for e in range(1, epochs) if schedule(e) != schedule(e - 1)] + [epochs]
    return list(zip(bounds[:-1], bounds[1:]))


def fit_shrinking(model, masking, data, epochs: int, fit_args: dict, history: dict, compile_fn):
    """Neuron pruning that costs what its size says: at each change of the target sparsity the
    masks are updated, the dead units are physically removed (``shrink.shrink_model``) and
    training goes on in the smaller network, with Adam's moments of the surviving weights
    carried over. Returns the final (smallest) model."""
    from ..core.training import extend_history
    from ..deploy.shrink import carry_optimizer_state, shrink_model

    for start, end in phases(masking.schedule, epochs):
        masking.set_model(model)
        masking.update(start)
        smaller, keep = shrink_model(model)
        compile_fn(smaller)
        if model.optimizer is not None and model.optimizer.built:
            carry_optimizer_state(model, smaller, keep)
        model = smaller
        h = model.fit(data.x_train, data.y_train, initial_epoch=start, epochs=end, **fit_args)
        extend_history(history, h.history)
        if len(h.history.get("loss", [])) < end - start:
            break  # TerminateOnNaN stopped it; the caller records the failure
    return model


def final_shrink(model, x_test) -> tuple:
    """The model without its dead units, and the largest |logit difference| on ``x_test``
    between it and the full-size masked network it stands for (``shrink.expand_model``)."""
    from ..core.training import compile_model, logits
    from ..deploy.shrink import expand_model, shrink_model

    smaller = shrink_model(model)[0]
    full = expand_model(smaller)
    diff = np.abs(logits(smaller, x_test) - logits(full, x_test)).max()
    compile_model(smaller, 1e-3, 0.0, 0)
    return smaller, float(diff)


class OneShot(Protocol):
    """``--protocol oneshot``, and what ``retrain`` and ``scratch`` share (see the module docstring)."""

    name = "oneshot"

    # ------------------------------------------------------------------ the plan
    def chains(self, hyper: Hyper, study: StudyConfig) -> list[list[RunConfig]]:
        """The dense run (a chain of its own, first), then each strategy's runs: its own protocol's chains
        for a strategy that names one (the students), else ``strategy_chains``."""
        from . import get

        ks = sorted({float(k) for k in study.sparsities if float(k) > 0})
        chains = [[RunConfig(hyper, "none", 0.0, None)]]
        for strategy in study.strategies:
            own = masks.get(strategy).protocol
            chains += (get(own) if own else self).strategy_chains(hyper, strategy, ks)
        return [c for c in chains if c]

    def strategy_chains(self, hyper: Hyper, strategy: str, ks: list[float]) -> list[list[RunConfig]]:
        """One strategy's pruned runs: here each from the dense run."""
        return [[RunConfig(hyper, strategy, k, self.parent(hyper))] for k in ks]

    def parent(self, hyper: Hyper) -> str | None:
        return paths.DENSE

    def epochs(self, cfg: RunConfig) -> int:
        return cfg.hyper.train.epochs if cfg.sparsity == 0 else self.pruned_epochs(cfg)

    def pruned_epochs(self, cfg: RunConfig) -> int:
        return 0

    def lr(self, cfg: RunConfig) -> float:
        """A pruned run's peak learning rate."""
        return cfg.hyper.train.lr

    def identity(self, cfg: RunConfig) -> dict:
        return {"protocol": cfg.hyper.prune.protocol} if cfg.sparsity > 0 else {}

    def schedule(self, cfg: RunConfig, parent: dict | None, epochs: int):
        """The run's target sparsity per epoch (a number: k from the start)."""
        return cfg.sparsity

    # ------------------------------------------------------------------ one run
    def start(self, run: RunContext) -> Start:
        from ..models import build_for_data

        cfg, data = run.cfg, run.data
        if cfg.parent is None:  # a network of the user's own: for the data's shape and classes, prunable
            model, parent = build_for_data(cfg.hyper.model, data), None
        else:
            parent = finished_result(run.logdir, cfg.parent)
            model = load_parent_model(start_model_file(run.logdir, parent),
                                      trusted=models.runs_own_code(cfg.hyper.model))
        epochs = self.epochs(cfg)
        return Start(model=model, data=data, epochs=epochs, parent=parent,
                     lr=self.lr(cfg) if cfg.sparsity > 0 else cfg.hyper.train.lr,
                     steps=epochs * math.ceil(len(data.y_train) / cfg.hyper.train.batch_size))

    def masking(self, run: RunContext, start: Start):
        """The masks of the starting model pruned straight to k: measured before retraining, and the
        callback's first masks too when its schedule starts at k (one-shot, no ramp)."""
        cfg = run.cfg
        if cfg.sparsity == 0:
            return None
        method = cfg.hyper.sparsify.method  # a --sparsify method may score the units (l0's gates) or weights
        with run.clock("masks"):
            start_masks = sparsify.compute_masks(start.model, method, cfg.strategy, cfg.sparsity, cfg.hyper.train.seed)
        run.result.update(run.pruned_accuracies(start.model, start_masks))
        return sparsify.masking_callback(method, cfg.strategy, self.schedule(cfg, start.parent, start.epochs),
                                         log_dir=run.rdir / paths.TRAIN_EVENTS, seed=cfg.hyper.train.seed,
                                         initial=start_masks)

    def shrinks(self, run: RunContext, start: Start) -> bool:
        """Whether the run trains and is saved physically shrunk: unit strategies (every --sparsify method's
        layers survive shrinking, with their per-unit variables), unless the network is one of the user's own
        (``pruning.prunable``'s: it trains masked, and the runner saves it shrunk)."""
        from ..graph.report import is_graph_model

        return (start.masking is not None and masks.get(run.cfg.strategy).shrinks
                and not is_graph_model(start.model))

    def fit(self, run: RunContext, start: Start, fit_args: dict):
        """Unit strategies train on the physically shrinking network; the rest as every model trains."""
        if not self.shrinks(run, start):
            return super().fit(run, start, fit_args)
        history: dict = {}
        model = fit_shrinking(start.model, start.masking, start.data, start.epochs, fit_args, history,
                              lambda m: run.compile(m, start.lr, start.steps))
        return model, history

    def finish(self, run: RunContext, start: Start, model, history: dict):
        if self.shrinks(run, start):
            with run.clock("eval"):
                model, run.result["shrink_max_logit_diff"] = final_shrink(model, run.data.x_test)
        return model


class Retrain(OneShot):
    """``--protocol retrain``: prune the parent, then retrain under the mask along a cubic ramp."""

    name = "retrain"

    def strategy_chains(self, hyper: Hyper, strategy: str, ks: list[float]) -> list[list[RunConfig]]:
        """With ``--iterative`` (the default) one chain, each k starting from the one below; else each k
        from the dense run."""
        if not hyper.prune.iterative:
            return super().strategy_chains(hyper, strategy, ks)
        chain, parent = [], paths.DENSE
        for k in ks:
            chain.append(RunConfig(hyper, strategy, k, parent))
            parent = paths.run_name(strategy, k)
        return [chain]

    def pruned_epochs(self, cfg: RunConfig) -> int:
        return cfg.hyper.prune.retrain_epochs

    def lr(self, cfg: RunConfig) -> float:
        return cfg.hyper.prune.retrain_lr

    def identity(self, cfg: RunConfig) -> dict:
        if cfg.sparsity == 0:
            return {}
        p = cfg.hyper.prune
        return {"protocol": p.protocol, "retrain": {"epochs": p.retrain_epochs, "lr": p.retrain_lr,
                                                    "ramp_epochs": p.ramp_epochs}}

    def schedule(self, cfg: RunConfig, parent: dict | None, epochs: int):
        """A cubic ramp from the parent's k to the run's over ``--ramp-epochs``, else k from the start."""
        from ..core.callbacks import cubic_schedule

        start_k = float(parent["config"]["sparsity"]) if parent is not None else 0.0
        ramp = cfg.hyper.prune.ramp_epochs
        return cubic_schedule(start_k, cfg.sparsity, min(ramp, epochs)) if ramp else cfg.sparsity


class Scratch(OneShot):
    """``--protocol scratch``: a fresh initialisation trained for ``--epochs`` under the mask of k."""

    name = "scratch"

    def parent(self, hyper: Hyper) -> str | None:
        return None

    def pruned_epochs(self, cfg: RunConfig) -> int:
        return cfg.hyper.train.epochs


ONESHOT, RETRAIN, SCRATCH = OneShot(), Retrain(), Scratch()
