"""Lottery tickets: iterative magnitude pruning with rewinding (Frankle & Carbin 2019), and its controls.

A lottery study is a graph of ordinary runs (``pruning.study.plan``):

* **level 0** is the dense run. It trains on the training set minus a held-out split of
  ``--validation-size`` examples (chosen by the seed), saves its initial weights (``start.keras``) and,
  for ``--rewind-epoch`` > 0, its weights at that step (``rewind.keras``);
* **level L** (the ticket) starts from level L-1's trained model: each prunable layer loses
  round(``--prune-fraction`` x its weights still alive) more, the smallest (``masks.prune_alive``; a
  global strategy pools the hidden layers; the output layer, with ``--prune-output``, goes at half the
  rate), the survivors are reset to the dense run's rewind point, and it trains from that step to the
  end of the dense run's schedule (the learning rate resumes there; Adam's moments start afresh);
* its **controls** start from the ticket's level: ``reinit`` keeps the ticket's masks with a fresh random
  initialisation; ``random_mask`` draws a random mask with the ticket's per-layer counts over the
  ticket's rewound weights. They train exactly like the ticket.

Every level saves the weights it starts from (``start.keras``, masks included) and measures, on the
held-out split after every epoch, its early-stopping epoch (lowest held-out loss); the test set is
reported, never used to choose.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from .. import paths
from ..config import RunConfig
from ..core import masks
from .base import Protocol, Start

CONTROL_SALT = {"reinit": 1, "random_mask": 2}  # a control's random draws differ from the seed's own


def split(data, size: int, seed: int):
    """(the data set without its held-out examples, (x_heldout, y_heldout)): ``size`` training examples
    chosen by ``seed``, the same for every level and control of that seed."""
    n = len(data.y_train)
    if not 0 < size < n:
        raise ValueError(f"--validation-size {size} must be below the {n} training examples")
    held = np.random.default_rng([int(seed), 0x5EED]).permutation(n)[:size]
    keep = np.ones(n, dtype=bool)
    keep[held] = False
    held = np.sort(held)
    rest = dataclasses.replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])
    return rest, (data.x_train[held], data.y_train[held])


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Where a level trains on the dense run's schedule, in optimizer steps."""

    steps_per_epoch: int
    total_steps: int  # the dense run's: --epochs x steps_per_epoch
    rewind_steps: int  # --rewind-epoch in steps
    start_step: int  # 0 for the dense run, rewind_steps for every level

    @property
    def fit_epochs(self) -> int:
        """Epochs (a partial first one counted) that the run trains."""
        return math.ceil((self.total_steps - self.start_step) / self.steps_per_epoch)


def schedule(cfg: RunConfig, n_train: int) -> Schedule:
    spe = math.ceil(n_train / cfg.hyper.train.batch_size)
    rewind = masks.round_half_up(cfg.hyper.lottery.rewind_epoch * spe)
    return Schedule(spe, cfg.hyper.train.epochs * spe, rewind, rewind if cfg.level else 0)


def rewind_file(logdir) -> Path:
    """The dense run's weights at the rewind point: its initial weights when rewinding to 0."""
    dense = paths.run_dir(logdir, paths.DENSE)
    return dense / paths.REWIND_MODEL if (dense / paths.REWIND_MODEL).exists() else dense / paths.START_MODEL


def run_files(cfg: RunConfig, sched: Schedule) -> list[str]:
    """What a finished run of the lottery has in its directory (the result names them)."""
    extra = [paths.REWIND_MODEL] if cfg.level == 0 and sched.rewind_steps > 0 else []
    return [paths.MODEL, paths.SPARSE_MODEL, paths.START_MODEL, *extra]


# ---------------------------------------------------------------------------- the starting weights
def _output_layer(model):
    from ..core.layers import weight_layers

    return weight_layers(model)[-1]


def level_groups(model, strategy: str, fraction: float) -> list[tuple[list[int], float]]:
    """``masks.prune_alive``'s groups for ``model``'s prunable layers: each hidden layer alone (layer
    scope) or all of them together (global scope) at ``fraction``; the output layer, when it is
    prunable, alone at half of it."""
    from ..core.layers import masked_layers

    layers = masked_layers(model)
    out = _output_layer(model)
    hidden = [i for i, layer in enumerate(layers) if layer is not out]
    groups = [([i], fraction) for i in hidden] if masks.get(strategy).scope == "layer" else [(hidden, fraction)]
    return groups + [([i], fraction / 2) for i, layer in enumerate(layers) if layer is out]


def ticket_masks(parent_model, strategy: str, fraction: float, seed: int):
    """The next level's MaskSet: ``parent_model`` (the previous level, trained) pruned by ``fraction`` of
    what is alive in each group of ``level_groups``."""
    from ..core.callbacks import MaskSet, layer_infos
    from ..core.layers import masked_layers

    layers = masked_layers(parent_model)
    kernels = [layer.kernel.numpy() for layer in layers]
    infos = layer_infos(parent_model, seed)
    new = masks.prune_alive(strategy, kernels, [layer.mask.numpy() for layer in layers],
                            level_groups(parent_model, strategy, fraction), infos)
    return MaskSet(strategy, 0.0, {l.name: m for l, m in zip(layers, new)},
                   {l.name: masks.threshold(strategy, k, m, i) for l, k, m, i in zip(layers, kernels, new, infos)})


def lottery_level(trained, rewind, strategy: str = "weight", fraction: float = 0.2, seed: int = 0):
    """One level of a lottery, in your own code: ``rewind`` (a model of the same shape holding the weights
    to rewind to, e.g. a copy of the initialisation) gets ``trained``'s masks pruned by ``fraction`` of
    what is alive in each layer, and its kernels times those masks (the survivors keep their rewind
    values exactly); returns the MaskSet. Train ``rewind`` next, then call this again with it.

    Use::

        init = pruning.build_mlp(784); trained = keras.models.clone_model(init)
        trained.set_weights(init.get_weights()); trained.compile(...); trained.fit(...)
        pruning.lottery_level(trained, init, "weight", 0.2)   # init: 20 % fewer weights, survivors rewound
    """
    from ..core.callbacks import assign_masks

    mask_set = ticket_masks(trained, strategy, fraction, seed)
    assign_masks(rewind, mask_set)
    return mask_set


def model_masks(model) -> dict[str, np.ndarray]:
    from ..core.layers import masked_layers

    return {layer.name: layer.mask.numpy() for layer in masked_layers(model)}


def control_seed(seed: int, level: int, control: str) -> int:
    return int(np.random.SeedSequence([int(seed), int(level), CONTROL_SALT[control]]).generate_state(1)[0])


def start_model(cfg: RunConfig, logdir, input_dim: int):
    """(the model the run starts training from, its MaskSet or None for the dense run). The ticket's
    survivors hold the rewind point's values exactly (a kernel times a 0/1 mask); the controls'
    masks come from the ticket's ``start.keras``. Raises ``run.ParentUnusable`` when a run it needs
    has not finished."""
    import keras

    from ..core.callbacks import MaskSet, assign_masks
    from ..models import build_model
    from ..report.results import finished_result, load_parent_model as load_model

    if not cfg.level:
        return build_model(input_dim, cfg.hyper.model), None
    finished_result(logdir, paths.DENSE, "the dense run (level 0)")
    finished_result(logdir, cfg.parent)
    seed, strategy = cfg.hyper.train.seed, cfg.strategy
    if cfg.control is None:  # the ticket: the previous level pruned further, rewound
        model = load_model(rewind_file(logdir))
        mask_set = lottery_level(load_model(paths.model_file(logdir, cfg.parent)), model, strategy,
                                 cfg.hyper.lottery.prune_fraction, seed)
    else:
        ticket = model_masks(load_model(paths.run_dir(logdir, cfg.parent) / paths.START_MODEL))
        if cfg.control == "reinit":
            keras.utils.set_random_seed(control_seed(seed, cfg.level, cfg.control))
            model = build_model(input_dim, cfg.hyper.model)
            keras.utils.set_random_seed(seed)  # the ticket's data order
            chosen = ticket
        else:  # random_mask
            rng = np.random.default_rng(control_seed(seed, cfg.level, cfg.control))
            chosen = dict(zip(ticket, masks.random_like(list(ticket.values()), rng,
                                                        masks.get(strategy).granularity)))
            model = load_model(rewind_file(logdir))
        mask_set = MaskSet(strategy, 0.0, chosen, dict.fromkeys(chosen, 0.0))
        assign_masks(model, mask_set)
    return model, dataclasses.replace(mask_set, sparsity=cfg.sparsity)


def remaining(model) -> dict:
    """Weights still alive (the masks' ones; an unmasked layer counts whole): over every kernel, over
    the prunable ones, and per layer."""
    from ..core.layers import weight_layers

    alive = total = p_alive = p_total = 0
    per_layer = {}
    for layer in weight_layers(model):
        size = int(np.prod(layer.kernel.shape))
        n = size if layer.mask is None else int(np.count_nonzero(layer.mask.numpy()))
        alive, total = alive + n, total + size
        if layer.mask is not None:
            p_alive, p_total = p_alive + n, p_total + size
            per_layer[layer.name] = n
    return {"weights": alive / total, "prunable": p_alive / p_total if p_total else 1.0, "alive_per_layer": per_layer,
            "alive": alive, "total": total}


# ---------------------------------------------------------------------------- training
def save_at_step_callback(step: int, path: Path, save):
    """A callback that saves the model (``save(model, path)``) after optimizer step ``step`` of ``fit``."""
    import keras

    class _SaveAtStep(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = 0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen == step:
                save(self.model, path)

    return _SaveAtStep()


def heldout_callback(x, y, log_dir: Path, evaluate):
    """A callback that measures loss and accuracy on the held-out split after every epoch (and writes them
    to TensorBoard as epoch_loss / epoch_accuracy under ``log_dir``); ``seconds`` is the time it took."""
    import keras
    import tensorflow as tf

    class _HeldOut(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.loss, self.accuracy, self.epochs, self.seconds = [], [], [], 0.0
            self.writer = None

        def on_epoch_end(self, epoch, logs=None):
            t0 = time.perf_counter()
            loss, acc = evaluate(self.model, x, y)
            self.loss.append(loss)
            self.accuracy.append(acc)
            self.epochs.append(epoch + 1)
            if self.writer is None:
                self.writer = tf.summary.create_file_writer(str(log_dir))
            with self.writer.as_default(step=epoch):
                tf.summary.scalar("epoch_loss", loss)
                tf.summary.scalar("epoch_accuracy", acc)
            self.writer.flush()
            self.seconds += time.perf_counter() - t0

    return _HeldOut()


def fit_from(model, data, sched: Schedule, fit_args: dict, seed: int) -> list[dict]:
    """Train from ``sched.start_step`` to the end of the schedule: a partial first epoch when the start is
    inside an epoch (the remaining batches' worth of a seeded draw of the examples), then whole epochs.
    Returns each ``fit`` call's history."""
    first, into = divmod(sched.start_step, sched.steps_per_epoch)
    epochs = sched.total_steps // sched.steps_per_epoch
    histories = []
    if into:
        n = min(len(data.y_train), (sched.steps_per_epoch - into) * fit_args["batch_size"])
        pick = np.sort(np.random.default_rng([int(seed), first]).permutation(len(data.y_train))[:n])
        histories.append(model.fit(data.x_train[pick], data.y_train[pick], initial_epoch=first, epochs=first + 1,
                                   **fit_args).history)
        first += 1
        if len(histories[-1].get("loss", [])) < 1:
            return histories  # TerminateOnNaN stopped it
    if first < epochs:
        histories.append(model.fit(data.x_train, data.y_train, initial_epoch=first, epochs=epochs,
                                   **fit_args).history)
    return histories


def early_stop(heldout, history: dict, sched: Schedule) -> dict:
    """The epoch of lowest held-out loss (on the dense run's schedule, 1-based), its optimizer step, and
    the held-out and test accuracies there."""
    if not heldout.loss:
        return {}
    i = int(np.argmin(heldout.loss))
    epoch = heldout.epochs[i]
    return {
        "early_stop_epoch": epoch,
        "early_stop_step": min(sched.total_steps, epoch * sched.steps_per_epoch),
        "early_stop_heldout_loss": heldout.loss[i],
        "early_stop_heldout_accuracy": heldout.accuracy[i],
        "early_stop_test_accuracy": (history.get("test_accuracy") or [math.nan] * (i + 1))[i],
    }


# ---------------------------------------------------------------------------- the protocol
class Lottery(Protocol):
    """``--protocol lottery``: the dense run (level 0), each strategy's chain of tickets, and each level's
    controls (see the module docstring)."""

    name = "lottery"
    as_graph = True  # seeds, tickets and controls overlap: a run starts as soon as its parent is done

    def chains(self, hyper, study) -> list[list[RunConfig]]:
        """The dense run (level 0); per strategy, the chain of its tickets (level L starts from level L-1);
        and each control of each level, a run of its own whose parent is its level's ticket."""
        lot = hyper.lottery
        chains = [[RunConfig(hyper, "none", 0.0, None, level=0)]]
        controls = []
        for strategy in study.strategies:
            chain, parent = [], paths.DENSE
            for level in range(1, lot.n_levels() + 1):
                ticket = RunConfig(hyper, strategy, lot.nominal_sparsity(level), parent, level=level)
                chain.append(ticket)
                controls += [[RunConfig(hyper, strategy, ticket.sparsity, ticket.name, level, c)]
                             for c in lot.controls]
                parent = ticket.name
            chains.append(chain)
        return chains + controls

    def epochs(self, cfg: RunConfig) -> int:
        """A level trains from its rewind point (a part epoch counts)."""
        return cfg.hyper.train.epochs - (int(cfg.hyper.lottery.rewind_epoch) if cfg.level else 0)

    def identity(self, cfg: RunConfig) -> dict:
        """The dense run too: it trains on the split and saves the rewind point."""
        lot = cfg.hyper.lottery
        return {"protocol": "lottery",
                "lottery": {"validation_size": lot.validation_size, "rewind_epoch": lot.rewind_epoch,
                            "level": cfg.level, "control": cfg.control,
                            **({"prune_fraction": lot.prune_fraction} if cfg.sparsity > 0 else {})}}

    def _split(self, run):
        cfg = run.cfg
        data, heldout = split(run.data, cfg.hyper.lottery.validation_size, cfg.hyper.train.seed)
        return data, heldout, schedule(cfg, len(data.y_train))

    def files(self, run) -> list[str]:
        cfg = run.cfg
        n = len(run.data.y_train) - cfg.hyper.lottery.validation_size
        return run_files(cfg, schedule(cfg, n))

    def start(self, run) -> Start:
        cfg = run.cfg
        data, heldout, sched = self._split(run)
        model, start_masks = start_model(cfg, run.logdir, data.input_dim)
        run.save(model, run.rdir / paths.START_MODEL)
        return Start(model=model, data=data, epochs=sched.fit_epochs, lr=cfg.hyper.train.lr, steps=sched.total_steps,
                     start_step=sched.start_step, masks=start_masks, state={"heldout": heldout, "sched": sched})

    def callbacks(self, run, start: Start) -> list:
        from ..core.training import evaluate, save_model

        sched = start.state["sched"]
        heldout = heldout_callback(*start.state["heldout"], run.rdir / paths.HELDOUT_EVENTS, evaluate)
        start.state["heldout_callback"] = heldout
        out = [heldout]
        if run.cfg.level == 0 and sched.rewind_steps > 0:
            out.append(save_at_step_callback(sched.rewind_steps, run.rdir / paths.REWIND_MODEL, save_model))
        return out

    def masking(self, run, start: Start):
        """A level's masks are fixed while it trains."""
        from ..core.callbacks import MaskingCallback

        if start.masks is None:
            return None
        cfg = run.cfg
        return MaskingCallback(cfg.strategy, cfg.sparsity, log_dir=run.rdir / paths.TRAIN_EVENTS,
                               seed=cfg.hyper.train.seed, initial=start.masks)

    def fit(self, run, start: Start, fit_args: dict):
        from ..core.training import extend_history

        history: dict = {}
        for h in fit_from(start.model, start.data, start.state["sched"], fit_args, run.cfg.hyper.train.seed):
            extend_history(history, h)
        heldout = start.state["heldout_callback"]
        run.clock.move(heldout.seconds, "train", "validation")
        history.update(epoch=[float(e) for e in heldout.epochs], heldout_loss=heldout.loss,
                       heldout_accuracy=heldout.accuracy)
        return start.model, history

    def finish(self, run, start: Start, model, history: dict):
        cfg, sched = run.cfg, start.state["sched"]
        heldout = start.state["heldout_callback"]
        run.result["lottery"] = {"level": cfg.level, "control": cfg.control, "remaining": remaining(model),
                                 "rewind_steps": sched.rewind_steps, "start_step": sched.start_step,
                                 "steps_per_epoch": sched.steps_per_epoch, "total_steps": sched.total_steps,
                                 "heldout_examples": len(start.state["heldout"][1]),
                                 **early_stop(heldout, history, sched)}
        return model


LOTTERY = Lottery()
