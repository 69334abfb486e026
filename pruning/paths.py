"""Every output file and directory name, defined once.

A study lives in one log directory (``--logdir``), one sub-directory per seed (replicate)::

    logs/
      study.json              the study's configuration and its seeds (main.py)
      results.csv             one row per (seed, strategy, sparsity)
      summary.csv             one row per (strategy, sparsity): mean, sd and 95% CI over the seeds
      plots/                  the study's figures (main.py), unless --plots names another place
      .lock                   held (flock) by the command writing the study; see pruning.study.lock
      seed0/                  one replicate (train.py --seed 0 writes here too):
        study.json            this seed's configuration and planned runs
        benchmark.csv/.json   inference latencies, matmul peak, training throughput (benchmark.py)
        plots/                benchmark.py's figure
        dense/                the dense network, shared by all pruned runs of this seed
          config.json         the resolved configuration, written when the run starts
          train/ validation/  TensorBoard event files (validation = the MNIST test set)
          model.keras         the final model (unit strategies: physically shrunk)
          model.sparse        the same weights in the compact sparse format (pruning.deploy.sparse_format)
          result.json         written last, atomically: with the files it names, marks the run finished
        weight_k90/ ...       one directory per (strategy, sparsity)
      seed1/ ...

A lottery study (``--protocol lottery``) has one directory per level instead: ``dense`` (level 0, with
``start.keras``, its initial weights, and ``rewind.keras`` when it rewinds to a later step),
``weight_L01``, ``weight_L02``, ... (the tickets) and ``weight_L01_reinit``, ``weight_L01_random_mask``,
... (the controls); every level also has ``start.keras``, the weights and masks it started training from,
and ``validation_split/``, the TensorBoard events of the held-out split that finds its early-stopping epoch.
"""
from __future__ import annotations

from pathlib import Path

DENSE = "dense"
RESULT = "result.json"
CONFIG = "config.json"
MODEL = "model.keras"
SPARSE_MODEL = "model.sparse"
# a network of the user's own (``pruning.prunable``): the run's model with its masks, what the runs that start
# from it load (model.keras is then the plain Keras network: shrunk, or with the pruned weights baked in)
MASKED_MODEL = "masked.keras"
START_MODEL = "start.keras"  # lottery: the weights (and masks) a level started training from
REWIND_MODEL = "rewind.keras"  # lottery: the dense run's weights at --rewind-epoch, when it is not 0
HELDOUT_EVENTS = "validation_split"  # lottery: TensorBoard events of the held-out part of the training set
TRAIN_EVENTS = "train"
TEST_EVENTS = "validation"  # Keras' name for the evaluation stream; it holds the test set
STUDY = "study.json"
RESULTS_CSV = "results.csv"
SUMMARY_CSV = "summary.csv"  # per (strategy, sparsity): mean and 95% confidence interval over the seeds
SEED_PREFIX = "seed"
BENCHMARK_CSV = "benchmark.csv"  # benchmark.py: latency of each engine for each run and batch size
BENCHMARK_JSON = "benchmark.json"  # benchmark.py: the machine's matmul peak and training throughput
BENCHMARK_PNG = "speedup_vs_sparsity.png"
# the study's figures (pruning.report.plots), in LOGDIR/plots/ or --plots DIR; {s} is a strategy's name
EPOCHS_PNG = "accuracy_vs_epoch_{s}.png"
SPARSITY_PNG = "accuracy_vs_sparsity_{s}.png"
COMPARE_TRAIN_PNG = "compare_train.png"
COMPARE_TEST_PNG = "compare_test.png"
ONESHOT_PNG = "oneshot_vs_retrained.png"
LAYER_SPARSITY_PNG = "layer_sparsity_{s}.png"
EFFECTIVE_PNG = "accuracy_vs_effective_sparsity.png"
PARAMS_PNG = "accuracy_vs_parameters.png"  # pruned or simply small: every strategy and student by nonzero weights
PIXELS_PNG = "pixels_{s}.png"  # MLP: first-layer connections kept per input pixel (pruning.report.interpret)
DEAD_PIXELS_PNG = "dead_pixels_{s}.png"  # MLP: input pixels that feed no surviving unit
FILTERS_PNG = "filters_{s}.png"  # CNN: the first convolution's filters, removed ones crossed out
LOTTERY_ACCURACY_PNG = "lottery_accuracy_{s}.png"  # ticket vs controls against the weights remaining
LOTTERY_EARLYSTOP_PNG = "lottery_early_stop_{s}.png"  # early-stopping epoch against the weights remaining
PLOTS = "plots"  # plotting.py's default output; a study's own figures go to <logdir>/plots


def format_sparsity(k: float) -> str:
    """90.0 -> '90', 97.5 -> '97.5' (no trailing zeros, no exponent)."""
    return f"{float(k):.6f}".rstrip("0").rstrip(".")


def run_name(strategy: str, sparsity: float, level: int | None = None, control: str | None = None) -> str:
    """The directory name of one run; every sparsity-0 run (and a lottery's level 0) is the shared dense
    run; a lottery level is <strategy>_L<level>, its controls <strategy>_L<level>_<control>."""
    if float(sparsity) == 0.0 or level == 0:
        return DENSE
    if level is not None:
        return f"{strategy}_L{int(level):02d}" + (f"_{control}" if control else "")
    return f"{strategy}_k{format_sparsity(sparsity)}"


def run_dir(logdir: str | Path, name: str) -> Path:
    return Path(logdir) / name


def result_file(logdir: str | Path, name: str) -> Path:
    return run_dir(logdir, name) / RESULT


def model_file(logdir: str | Path, name: str) -> Path:
    return run_dir(logdir, name) / MODEL


def sparse_model_file(logdir: str | Path, name: str) -> Path:
    return run_dir(logdir, name) / SPARSE_MODEL


def config_file(logdir: str | Path, name: str) -> Path:
    return run_dir(logdir, name) / CONFIG


def results_csv(logdir: str | Path) -> Path:
    return Path(logdir) / RESULTS_CSV


def benchmark_csv(logdir: str | Path) -> Path:
    return Path(logdir) / BENCHMARK_CSV


def benchmark_json(logdir: str | Path) -> Path:
    return Path(logdir) / BENCHMARK_JSON


def study_file(logdir: str | Path) -> Path:
    return Path(logdir) / STUDY


def plots_dir(logdir: str | Path) -> Path:
    """Where a study's figures go unless the user names another place: inside the study."""
    return Path(logdir) / PLOTS


def seed_dir(logdir: str | Path, seed: int) -> Path:
    """One replicate of a study: LOGDIR/seed<N>/ holds that seed's runs (and its own study.json)."""
    return Path(logdir) / f"{SEED_PREFIX}{int(seed)}"


def seed_dirs(logdir: str | Path) -> list[tuple[int, Path]]:
    """(seed, directory) of every replicate under ``logdir``, by seed; [] for a directory without them."""
    out = []
    root = Path(logdir)
    if root.is_dir():
        for sub in root.iterdir():
            tail = sub.name[len(SEED_PREFIX):]
            if sub.is_dir() and sub.name.startswith(SEED_PREFIX) and tail.isdigit():
                out.append((int(tail), sub))
    return sorted(out)


def summary_csv(logdir: str | Path) -> Path:
    return Path(logdir) / SUMMARY_CSV
