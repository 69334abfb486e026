"""The command-line entry points; train.py, main.py, main_alternate.py and plotting.py
are thin wrappers over these functions."""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import models, paths
from .core import masks
from .config import (ConfigError, OutputConfig, RunConfig, StudyConfig, add_flags, add_hyper_flags,
                     check_fits, check_lottery_data, check_sparsify, check_students, check_sparsity, from_args, hyper_from_args, parse_number)
from .data import DataError
from .deploy.sparse_format import SparseFormatError
from .files import OutputError, ResultError, explain_fs_error, is_fs_error
from .study.lock import LockError


USER_ERRORS = (ConfigError, DataError, ResultError, SparseFormatError, OutputError, LockError)
EXIT_USAGE = 2
STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: handled exactly like Ctrl-C (workers stopped, finished runs kept)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def guarded(fn):
    """Run ``fn``; a user error (bad input, a full disk, a read-only or busy directory) becomes a
    one-paragraph message and exit status 2; Ctrl-C, SIGTERM and SIGHUP stop it the same way,
    keeping finished runs, with exit status 128 + the signal's number."""
    from .study.plan import StudyError

    def wrapper(argv=None):
        import threading

        in_main = threading.current_thread() is threading.main_thread()  # only there can handlers be set
        # a signal the user chose to ignore stays ignored (nohup ignores SIGHUP; a background job, SIGINT)
        previous = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS
                    if in_main and signal.getsignal(s) is not signal.SIG_IGN}
        try:
            return fn(argv)
        except (*USER_ERRORS, StudyError) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as e:
            if not is_fs_error(e):
                raise
            print(f"error: {explain_fs_error(e)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as e:
            signum = e.signum if isinstance(e, Stopped) else signal.SIGINT
            print(f"\nstopped by {signal.Signals(signum).name}: every worker is stopped and finished runs are kept "
                  f"(a run cut short is redone); rerun the same command to resume.", file=sys.stderr)
            return 128 + signum
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    return wrapper


class Parser(argparse.ArgumentParser):
    """argparse, with a suggestion for a mistyped flag ("did you mean --sparsities?")."""

    def error(self, message):
        if message.startswith("unrecognized arguments:"):
            known = [o for o in self._option_string_actions if o.startswith("--")]
            hints = []
            for word in message.split(":", 1)[1].split():
                if word.startswith("-"):
                    close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.6)
                    if close:
                        hints.append(f"{word}: did you mean {close[0]}?")
            if hints:
                message += " (" + "; ".join(hints) + ")"
        super().error(message)


def _add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and C++ log lines (hidden by default)")


def _add_xla(p: argparse.ArgumentParser) -> None:
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=False,
                   help="compile the training steps with XLA (Keras jit_compile; off by default, as Keras has it "
                   "on CPUs): faster epochs, and the last digits of the numbers differ from a run without it. "
                   "How a run executes, not what it computes: recorded in result.json, not part of its "
                   "identity, so a study resumes across it")


def _add_engine(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "engine", "where the runs execute. How a run executes, not what it computes: recorded in each result.json's "
        "execution, not part of a run's identity, so a study resumes across engines")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): worker processes of this machine (--jobs). ray: one Ray task per run, on "
                   "this machine or a Ray cluster, as many at a time as the resources per run allow (--jobs is not "
                   "used); needs pip install -r requirements-ray.txt, and a log directory every node can read and "
                   "write (a shared file system), which is checked before any training")
    g.add_argument("--ray-address", metavar="ADDR", default=None,
                   help="the Ray cluster to run on (with --engine ray): its head's address, as ray start --head "
                   "printed it (default: $RAY_ADDRESS, else a cluster ray start made on this machine, else a local "
                   "Ray instance that the study starts and stops)")
    g.add_argument("--cpus-per-run", type=float, default=None, metavar="N",
                   help="CPUs each run reserves (with --engine ray; default 1); the run uses that many TensorFlow "
                   "threads (at least one)")
    g.add_argument("--gpus-per-run", type=float, default=None, metavar="G",
                   help="GPUs each run reserves (with --engine ray; default 0); fractions share a GPU: 0.5 trains "
                   "two models per GPU (memory growth is on, so they fit side by side)")


def _engine_options(args) -> dict:
    """run_seeds' engine arguments from the command line; ConfigError naming the flag and the fix."""
    given = [f for f, v in (("--ray-address", args.ray_address), ("--cpus-per-run", args.cpus_per_run),
                            ("--gpus-per-run", args.gpus_per_run)) if v is not None]
    if args.engine == "local":
        if given:
            raise ConfigError(f"{' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} to the Ray engine "
                              f"only; add --engine ray, or leave {'it' if len(given) == 1 else 'them'} out to run on "
                              f"this machine's process pool.")
        return {"engine": "local"}
    if getattr(args, "threads", None) is not None:
        raise ConfigError("--threads applies to the local engine only; with --engine ray a run uses the threads of "
                          "the CPUs it reserves: pass --cpus-per-run N instead.")
    cpus = 1.0 if args.cpus_per_run is None else args.cpus_per_run
    gpus = 0.0 if args.gpus_per_run is None else args.gpus_per_run
    if not (cpus >= 1e-4 and cpus < float("inf")):  # also false for nan
        raise ConfigError(f"--cpus-per-run must be a positive number of CPUs (fractions from 0.0001 are allowed), got "
                          f"{args.cpus_per_run:g}; pass for example --cpus-per-run 1 (the default).")
    if not (gpus == 0 or 1e-4 <= gpus <= 1 or (gpus > 1 and gpus < float("inf") and gpus.is_integer())):
        raise ConfigError(f"--gpus-per-run must be 0 (the default: no GPU), a fraction of one GPU from 0.0001 to 1 "
                          f"(0.5: two runs share a GPU) or a whole number of GPUs, got {args.gpus_per_run:g}; pass for "
                          f"example --gpus-per-run 0.5.")
    if args.ray_address is not None and not args.ray_address.strip():
        raise ConfigError("--ray-address is empty; pass the head node's address (host:port, as ray start --head "
                          "printed it), or leave it out for $RAY_ADDRESS or a local Ray instance.")
    from .study.ray_engine import RayOptions, require_ray, run_seeds_ray

    require_ray()  # before anything is loaded or written
    return {"engine": run_seeds_ray, "ray_options": RayOptions(args.ray_address, cpus, gpus)}


def _percent_notice(values) -> None:
    small = [v for v in values if 0 < v < 1]
    if small:
        shown = ", ".join(f"{v:g}" for v in small)
        print(f"note: sparsities are percentages: {shown} means {shown} % of the weights (or units), not "
              f"{', '.join(f'{100 * v:g}' for v in small)} %. Pass 90 (or 90%) for ninety percent.", flush=True)


def emptied_layers(model, strategies, sparsities) -> list[tuple[float, str, int]]:
    """(k, flag, width) for each layer a layer-wise unit strategy (neuron, random_neuron) would empty at
    k: it removes round(k% x units) of every layer, and that is all of a narrow layer's units at a high k
    (round(0.99 x 20) = 20). The layers are those of ``--filters`` and ``--hidden``, the widths a
    model's builder follows."""
    if not any(masks.get(s).granularity == "unit" for s in strategies):
        return []
    widths = [("--filters", w) for w in model.filters] + [("--hidden", w) for w in model.hidden]
    return [(k, flag, w) for k in sorted(set(sparsities)) if k > 0 for flag, w in widths
            if masks.n_pruned(w, k) == w]


def _print_emptied(names: str, what: str, where: list[str], ks) -> None:
    """The note that ``names`` would empty a layer at ``ks`` (``where``: each case, in words)."""
    print(f"note: {names} would remove every {what} of a layer ({'; '.join(where)}). That network can only "
          f"output a constant: its test accuracy will be one class's share, a consequence of the rounding, not of "
          f"what was pruned. Leave k = {', '.join(f'{k:g}' for k in sorted(set(ks)))} out for {names}, or widen "
          f"the layer.", flush=True)


def _emptied_notice(model, strategies, sparsities) -> None:
    emptied = emptied_layers(model, strategies, sparsities)
    if emptied:
        _print_emptied(",".join(s for s in strategies if masks.get(s).granularity == "unit"), "unit",
                       [f"at k = {k:g} %, {flag} width {w} (round({k / 100:g} x {w}) = {w})" for k, flag, w in emptied],
                       [k for k, _, _ in emptied])


def emptied_kernels(model, input_dim: int, strategies, sparsities, verbose: bool = False,
                    input_shape: tuple[int, ...] | None = None, num_classes: int = 10) -> list[tuple[float, str, int]]:
    """(k, layer, weights) for each prunable kernel a layer-wise weight strategy (weight, random) would
    empty at k: round(k% x its weights) = all of them, which happens only when it holds fewer than
    50 / (100 - k) weights (at 99.99 %: fewer than 5,000). The network is built to count its kernels only
    when one of its widths is that small (a kernel has at least as many weights as its layer has units)."""
    from .models import build_model

    layerwise = [s for s in strategies if masks.get(s).granularity == "weight" and masks.get(s).scope == "layer"]
    ks = sorted({k for k in sparsities if k > 0})
    widths = [*model.filters, *model.hidden]
    if not layerwise or not ks or (widths and min(widths) >= 50 / (100 - ks[-1])):
        return []
    from .tfsetup import import_tensorflow

    import_tensorflow(verbose)
    from .core.layers import masked_layers

    if models.get_model(model.name).user:  # a network of your own: its masked kernels, wherever they are
        from .graph import kernel_slots

        built = build_model(input_dim, model, input_shape, num_classes)
        sizes = [(layer.name if len(layer.KERNELS) == 1 else f"{layer.name}/{name}",
                  int(np.prod(getattr(layer, name).shape))) for layer, name in kernel_slots(built)]
    else:
        sizes = [(layer.name, int(np.prod(layer.kernel.shape))) for layer in masked_layers(build_model(input_dim, model))]
    return [(k, name, n) for k in ks for name, n in sizes if masks.n_pruned(n, k) == n]


def _emptied_kernels_notice(hyper, strategies, sparsities, input_dim: int, verbose: bool = False,
                            input_shape: tuple[int, ...] | None = None, num_classes: int = 10) -> None:
    emptied = emptied_kernels(hyper.model, input_dim, strategies, sparsities, verbose, input_shape, num_classes)
    if emptied:
        _print_emptied(",".join(s for s in strategies if masks.get(s).granularity == "weight"
                                and masks.get(s).scope == "layer"), "weight",
                       [f"at k = {k:g} %, layer {name} of {n:,} weights (round({k / 100:g} x {n}) = {n})"
                        for k, name, n in emptied], [k for k, _, _ in emptied])


def _precision_notice(precision: str, cpuinfo: str = "/proc/cpuinfo") -> None:
    from .tfsetup import BFLOAT16_CPU_FLAGS, cpu_has_bfloat16

    if precision == "bfloat16" and cpu_has_bfloat16(cpuinfo) is False:
        print(f"note: --precision bfloat16 on a CPU whose {cpuinfo} lists none of "
              f"{', '.join(BFLOAT16_CPU_FLAGS)}: TensorFlow emulates bfloat16 products there, usually more slowly "
              f"than float32. Leave --precision out (float32) unless the runs use a GPU with bfloat16 support.",
              flush=True)


def _sparsity(text: str) -> float:
    try:
        return check_sparsity(parse_number(text))
    except (ValueError, ConfigError) as e:
        raise argparse.ArgumentTypeError(str(e) if isinstance(e, ConfigError) else
                                         f"sparsity must be a number in [0, 100) (a trailing % is accepted), "
                                         f"got {text!r}") from None


def _hyper(parser, args):
    try:
        return hyper_from_args(args)
    except ConfigError as e:
        parser.error(str(e))


def _check_runner_support(hyper, data) -> None:
    """ConfigError, before anything is written, for what the runner cannot train: more classes than a built-in
    network's 10 outputs. A network of your own sizes its own outputs (``models.check_input`` has checked that
    they are the data's classes), and the runner trains it in the data's example shape."""
    if models.get_model(hyper.model.name).user:
        return
    if data.num_classes > 10:
        raise ConfigError(
            f"the data has {data.num_classes} classes, but --model {hyper.model.name} has 10 outputs and the study "
            f"does not size a built-in network's outputs to the data. Use data of at most 10 classes (labels 0-9) "
            f"with it, or pass a network of your own whose last layer gives one score per class (--model "
            f"FILE.py:FUNCTION, called with num_classes; docs/your-model.md).")


def _load_data(hyper, verbose: bool = False):
    """The data set, validated, before anything is written: bad data changes nothing."""
    _precision_notice(hyper.train.precision)  # every entry point that trains or times loads data first
    import os

    from . import data as datasets
    from .tfsetup import import_tensorflow

    user = datasets.user_dataset(hyper.data.dataset)  # npz:PATH or tfds:NAME
    if (user and user[0] == "tfds") or (not user and (
            hyper.data.data_source == "tfds" or not (hyper.data.data_dir or os.environ.get(datasets.env_var(
                hyper.data.dataset)) or hyper.data.data_source != "auto"))):
        import_tensorflow(verbose)  # tensorflow-datasets imports TensorFlow: keep its start-up quiet

    data = datasets.load(hyper.data)  # the one data path: the study's workers load it the same way
    spec = models.get_model(hyper.model.name)
    if spec.check_input is not None or spec.user:
        import_tensorflow(verbose)  # the check may import its model's module, and with it TensorFlow: quietly
    # e.g. a CNN needs square images large enough; a model of your own, the data's example shape and classes
    models.check_input(data.input_dim, hyper.model, input_shape=data.input_shape, num_classes=data.num_classes)
    _check_runner_support(hyper, data)
    d = data.describe()
    name = f"{d['dataset']}, " if "dataset" in d else ""  # described when it is not MNIST
    print(f"data: {name}{d['source']} ({d['train_examples']} train / {d['test_examples']} test)", flush=True)
    notice = datasets.content_notice(data)
    if notice:
        print(f"note: {notice}", flush=True)
    return data


# --------------------------------------------------------------------------- train.py
def train_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="train.py",
        description="Train, prune and evaluate one model of the MNIST pruning study. Under --protocol "
        "retrain or oneshot the model starts from the study's dense run (--from-run), which is trained "
        "first if the log directory does not hold it yet. Writes <logdir>/seed<SEED>/<run>/result.json, "
        "model.keras and TensorBoard events (the layout of main.py's replicates).",
    )
    g = p.add_argument_group("run")
    g.add_argument("--strategy", choices=masks.names(), default="weight", type=masks.canonical,
                   help="what is pruned (default: weight): " + "; ".join(
                       f"{s.name}: {s.help}" for s in masks.STRATEGIES.values()).replace("%", "%%"))
    g.add_argument("--sparsity", type=_sparsity, default=0.0, metavar="K",
                   help="percent of each hidden layer's weights (or units) removed, 0 <= K < 100 (default: 0, the dense run)")
    g.add_argument("--from-run", default=paths.DENSE, metavar="NAME",
                   help="the finished run in LOGDIR/seed<SEED>/ whose model is pruned (retrain and oneshot protocols; "
                   "default: dense, trained first if missing)")
    add_hyper_flags(p)
    _add_xla(p)
    _add_verbose(p)
    return p


@guarded
def train_main(argv=None) -> int:
    p = train_parser()
    args = p.parse_args(argv)
    hyper = _hyper(p, args)
    out = from_args(args, OutputConfig)
    if hyper.prune.protocol == "lottery":
        p.error("--protocol lottery is a study of levels and controls, each starting from another run: run it "
                "with main.py (for example python main.py --protocol lottery --levels 5), not train.py.")
    if args.sparsity > 0 and not masks.get(args.strategy).masks:
        p.error(f"--strategy {args.strategy} trains a small dense student whose teacher and size come from the "
                f"study's dense run: run it with main.py (for example python main.py --strategies weight,"
                f"{args.strategy}), not train.py.")
    try:
        if args.sparsity > 0:
            check_fits(hyper.model, [args.strategy], "--strategy")
        hyper = check_sparsify(hyper, [args.strategy], "--strategy")
    except ConfigError as e:
        p.error(str(e))
    _percent_notice([args.sparsity])
    _emptied_notice(hyper.model, [args.strategy], [args.sparsity])
    from .study.lock import hold

    data = _load_data(hyper, args.verbose)  # bad data changes nothing
    _emptied_kernels_notice(hyper, [args.strategy], [args.sparsity], data.input_dim, args.verbose,
                                data.input_shape, data.num_classes)
    with hold(out.logdir):
        return _train(args, hyper, out, data)


def _train(args, hyper, out, data) -> int:
    from .report.results import damaged_files, describe_damage, read_result
    from .study.engine import ProgressPrinter
    from .study.plan import check_existing, check_parent, check_same_study, dense_config
    from .study.run import train_run
    from .tfsetup import import_tensorflow

    logdir = paths.seed_dir(out.logdir, hyper.train.seed)  # a study's replicate of this seed
    check_same_study(hyper, out.logdir, [hyper.train.seed], out.overwrite, data.describe())
    scratch = hyper.prune.protocol == "scratch"
    target = RunConfig(hyper, args.strategy, args.sparsity, None if scratch or args.sparsity == 0 else args.from_run)
    info = data.describe()
    plan = [target]
    if target.parent == paths.DENSE:
        plan.insert(0, dense_config(hyper))
    elif target.parent is not None:
        parent = read_result(logdir, target.parent)
        if parent is None or parent.get("status") != "ok":
            raise ConfigError(f"--from-run {target.parent}: {paths.run_dir(logdir, target.parent)} holds no "
                              f"finished run (no result.json saying ok). Name a finished run of --logdir {logdir}, "
                              f"or leave --from-run out.")
        damage = damaged_files(logdir, parent, deep=True)
        if damage:
            raise ConfigError(f"--from-run {target.parent}: in {paths.run_dir(logdir, target.parent)}, "
                              f"{describe_damage(damage)}, so it cannot be started from. Rerun the study (or the "
                              f"train.py command) that made it: it redoes a run whose files are damaged.")
        check_parent(parent, hyper, logdir, info)  # the configuration and the data it was made with
    import_tensorflow(args.verbose)  # this process trains
    notices: list[str] = []
    todo = [c for c in plan
            if (out.overwrite and c is target) or check_existing(c, logdir, info, notices) == "todo"]
    for line in notices:
        print(f"notice: {line}", flush=True)
    if not todo:
        print(f"{paths.run_dir(logdir, target.name)} is already finished; pass --overwrite to retrain it.")
        return _print_run(logdir, target.name)
    printer = ProgressPrinter(todo, jobs=1)
    for cfg in todo:
        printer({"event": "start", "run": cfg.name, "threads": "all"})
        r = train_run(cfg, logdir, data, progress=printer, xla=args.xla)
        if r["status"] != "ok":
            return 1
    return _print_run(logdir, target.name)


def _print_run(logdir, name) -> int:
    from .report.results import read_result

    r = read_result(logdir, name)
    line = f"{name}: test accuracy {100 * r['test_accuracy']:.2f}%, train accuracy {100 * r['train_accuracy']:.2f}%"
    if r.get("sparsity"):
        line += f", prunable weights zero {100 * r['sparsity']['weight_sparsity']:.2f}%"
    if r.get("oneshot_test_accuracy") is not None and r["config"]["sparsity"] > 0:
        line += f", one-shot {100 * r['oneshot_test_accuracy']:.2f}%"
    print(line + f"\nresult: {paths.result_file(logdir, name)}")
    return 0


# --------------------------------------------------------------------------- main.py
def study_parser(alternate: bool) -> argparse.ArgumentParser:
    prog = "main_alternate.py" if alternate else "main.py"
    how = "one model at a time, with all CPU cores" if alternate else "--jobs models at a time (default 2)"
    p = Parser(
        prog=prog,
        description=f"The pruning study on MNIST, {how}: trains the dense network once per seed, "
        "prunes and retrains it at every --sparsities with every --strategies, writes per-run TensorBoard logs "
        "and result.json, results.csv at the log directory's root, prints the table and writes the figures. "
        "Rerunning resumes: finished runs are skipped.",
    )
    add_hyper_flags(p)
    add_flags(p, StudyConfig, title="study", skip=("jobs",) if alternate else ())
    p.add_argument("--plots", "--out", dest="plots", default=None, metavar="DIR",
                   help="where the study's figures go (default: LOGDIR/plots, inside the study; the README's "
                   "figures are made with python plotting.py --logdir logs --plots docs/figures)")
    _add_xla(p)
    _add_engine(p)
    _add_verbose(p)
    return p


def study_main(argv=None, alternate: bool = False) -> int:
    from .study.lock import hold
    from .files import check_writable_dir

    p = study_parser(alternate)
    args = p.parse_args(argv)
    hyper = _hyper(p, args)
    out = from_args(args, OutputConfig)
    try:
        study = from_args(args, StudyConfig, **({"jobs": 1} if alternate else {}))
        check_fits(hyper.model, study.strategies)
        check_students(hyper, study.strategies)
        hyper = check_sparsify(hyper, study.strategies)
        args.engine_options = _engine_options(args)
    except ConfigError as e:
        p.error(str(e))
    if hyper.prune.protocol != "lottery":
        _percent_notice(study.sparsities)
        _emptied_notice(hyper.model, study.strategies, study.sparsities)
    data = _load_data(hyper, args.verbose)  # fail fast on bad data, and show which source the study uses
    check_lottery_data(hyper, len(data.y_train))
    if hyper.prune.protocol != "lottery":
        _emptied_kernels_notice(hyper, study.strategies, study.sparsities, data.input_dim, args.verbose,
                                data.input_shape, data.num_classes)
    with hold(out.logdir):  # one study per log directory; checks that it can be written
        # before any training: a study must not find out after hours that its figures cannot be written
        plots = check_writable_dir(args.plots or paths.plots_dir(out.logdir), "--plots", create=False)
        return _study(args, hyper, out, study, plots, data)


def _study(args, hyper, out, study, plots: Path, data) -> int:
    from .report.plots import data_notice, make_figures
    from .report import lottery as lot
    from .report.results import CSV_COLUMNS, format_table, read_all_results, table_rows, write_rows
    from .report.stats import SUMMARY_COLUMNS, format_summary, summarize
    from .report.timing import dense_epoch_s, format_timing, started_since
    from .study.engine import run_seeds
    from . import files

    t0, started = time.perf_counter(), time.time()
    planned = run_seeds(hyper, study, out.logdir, overwrite=out.overwrite, data_info=data.describe(),
                        verbose=args.verbose, xla=args.xla, **args.engine_options)
    wall = time.perf_counter() - t0
    rows, results = [], []
    lottery = hyper.prune.protocol == "lottery"
    # every seed of the study (those run now and those added before: one configuration, so the same runs)
    names = {c.name for runs in planned.values() for c in runs}
    seeds = files.read_json(paths.study_file(out.logdir)).get("seeds") or sorted(planned)
    for seed in seeds:
        mine = [r for r in read_all_results(paths.seed_dir(out.logdir, seed)) if r["run"] in names]
        results += mine
        rows += lot.lottery_rows(mine, seed) if lottery else table_rows(mine, study.strategies, study.sparsities,
                                                                         seed=seed)
    write_rows(paths.results_csv(out.logdir), rows, lot.LOTTERY_COLUMNS if lottery else CSV_COLUMNS)
    from .report.tables import read_csv

    # summarized from results.csv as written (6 significant digits), so that the committed summary.csv is
    # exactly what `plotting.py --from-csv results.csv` recomputes
    summary = (lot.summarize if lottery else summarize)(read_csv(paths.results_csv(out.logdir)))
    write_rows(paths.summary_csv(out.logdir), summary, lot.SUMMARY_COLUMNS if lottery else SUMMARY_COLUMNS)
    notice = data_notice(results)
    table = (lot.format_summary(summary) if lottery else
             format_table(rows) if len(seeds) == 1 else format_summary(summary))
    print("\n" + table + (f"\n{notice}" if notice else ""))
    files, missing = make_figures(out.logdir, plots)
    print(f"\nstudy wall time {wall / 60:.1f} min; tables: {paths.results_csv(out.logdir)}, "
          f"{paths.summary_csv(out.logdir)}; figures: {len(files)} in {plots}/; TensorBoard: tensorboard "
          f"--logdir {out.logdir}")
    print(format_timing(started_since(results, started), wall, dense_epoch_s(results)))
    several = len(paths.seed_dirs(out.logdir)) > 1  # runs are named as the figures name them
    failed = [f"seed{r['seed']}/{r['run']}" if several else r["run"] for r in rows if r["status"] != "ok"]
    if failed or missing:
        print(f"not ok: {', '.join(sorted(set(failed + missing)))} (see each run's result.json for the reason)")
        return 1
    return 0


study_main_guarded = guarded(lambda argv=None: study_main(argv, alternate=False))
alternate_main_guarded = guarded(lambda argv=None: study_main(argv, alternate=True))


# --------------------------------------------------------------------------- plotting.py
@guarded
def plotting_main(argv=None) -> int:
    from .report.plots import FIGURES, make_figures
    from .report.results import read_study_results

    from .files import check_writable_dir

    p = Parser(
        prog="plotting.py",
        description="Draw the study's figures from the runs' written results (result.json): "
        + "; ".join(FIGURES.values()) + ". With runs missing, plots what exists and names what is missing.",
    )
    p.add_argument("--logdir", default="logs", help="the study's log directory (default: logs)")
    p.add_argument("--plots", "--out", dest="plots", default=paths.PLOTS, metavar="DIR",
                   help="where the PNG figures go (default: plots; --out is the old name). The README's "
                   "figures: --logdir logs --plots docs/figures")
    p.add_argument("--markdown", action="store_true",
                   help="also print the final, one-shot and effective-sparsity tables in Markdown: one row per "
                   "k, one column per strategy, mean ± 95%% confidence half-width over the seeds (the README's tables)")
    from .report import tables

    tables.add_arguments(p)  # --from-csv: the published tables again, from committed CSV files
    args = p.parse_args(argv)
    if args.from_csv:
        try:
            lines = [t for t in (args.table_strategies or "").split(",") if t] or None
            if args.figure in tables.STUDY_FIGURES:  # one study's figure, from its results.csv
                from .report.plots import csv_figure

                if len(args.from_csv) != 1 or args.key:
                    p.error(f"--figure {args.figure} draws one study's figure: one --from-csv results.csv, no --key")
                print(csv_figure(args.from_csv[0], args.figure, lines, args.figure_out))
                return 0
            if args.figure:  # several studies in one figure
                from .report.compare import compare_figure

                print(compare_figure(args.from_csv, args.figure, args.key or "test_accuracy", lines,
                                     args.figure_out or f"compare_{args.figure}.png"))
                return 0
            print(tables.render(args))
        except (OSError, KeyError, ValueError) as e:
            p.error(f"--from-csv: {e}")
        return 0
    if not read_study_results(args.logdir):
        raise ResultError(f"{args.logdir} holds no finished run (no */{paths.RESULT} or seed*/*/{paths.RESULT}). Run python main.py "
                          f"first, or pass --logdir to a study's log directory.")
    check_writable_dir(args.plots, "--plots", create=False)
    files, missing = make_figures(args.logdir, args.plots)
    for f in files:
        print(f)
    if missing:
        print(f"missing or failed runs (not plotted): {', '.join(missing)}")
    if args.markdown:
        from .report import lottery
        from .report.stats import study_markdown

        print(lottery.markdown(args.logdir) if lottery.is_lottery(read_study_results(args.logdir))
              else study_markdown(args.logdir))
    return 0


# --------------------------------------------------------------------------- benchmark.py
def _batches(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(b) for b in text.split(","))
    except ValueError:
        out = ()
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, comma-separated, got {text!r}")
    return out


def benchmark_parser() -> argparse.ArgumentParser:
    from .deploy.bench import ENGINE_HELP

    p = Parser(
        prog="benchmark.py",
        description="Measure what pruning buys on this machine, for every finished run of a study: inference "
        "latency at each batch size of " + "; ".join(f"{k} ({v})" for k, v in ENGINE_HELP.items()) + ". "
        "Each is a ratio to dense measured in the same run (warm-up, then the median of interleaved repeats). "
        "First checks that the sparse and shrunk logits match the masked model's (else exit status 1, nothing "
        "written). Also measures the float32 matmul peak and the dense training throughput as a fraction of it. "
        "Marks noisy rows (repeats spread widely) and suspect ratios (faster than the FLOP ratio allows), and "
        "warns when the load average exceeds the usable cores. Writes <logdir>/benchmark.csv, benchmark.json "
        "and a figure.",
    )
    p.add_argument("--logdir", default="logs", help="a study's log directory (default: logs)")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST IDX directory: the inputs timed, and the data the "
                   "training throughput is measured on (default: the source the study used, found as train.py does)")
    p.add_argument("--batches", type=_batches, default=(1, 100, 1000), metavar="B1,B2,...",
                   help="batch sizes (default: 1,100,1000)")
    p.add_argument("--repeats", type=int, default=15, help="timed calls per engine and batch (default: 15)")
    p.add_argument("--no-training", action="store_true",
                   help="skip the dense training throughput measurement (about a minute)")
    p.add_argument("--plots", "--out", dest="plots", default=None, metavar="DIR",
                   help="where the figure goes (default: <logdir>/plots/); --out is an alias")
    _add_verbose(p)
    return p


@guarded
def benchmark_main(argv=None) -> int:
    from .deploy.bench import BenchmarkError, finished_runs
    from .files import check_writable_dir
    from .report.results import read_result
    from .study.lock import hold
    from .tfsetup import import_tensorflow

    p = benchmark_parser()
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    root = Path(args.logdir)
    replicates = paths.seed_dirs(root)
    if replicates:  # a study of replicates: benchmark one seed's runs (each seed's networks are alike)
        args.logdir = str(replicates[0][1])
        if len(replicates) > 1:
            print(f"benchmarking {args.logdir} (the first of {len(replicates)} seeds; pass --logdir "
                  f"{root}/seed<N> for another)", flush=True)
    notices: list[str] = []
    try:
        runs = finished_runs(args.logdir, notices)
    except BenchmarkError as e:  # a study the engines cannot run (a CNN's)
        p.error(str(e))
    if not runs or runs[0]["run"] != paths.DENSE:
        raise ResultError(f"{args.logdir} holds no finished study (no finished {paths.DENSE} run with its "
                          f"{paths.RESULT}, {paths.MODEL} and {paths.SPARSE_MODEL}). Run python main.py --logdir "
                          f"{args.logdir} first (it redoes a run whose files are gone), or pass --logdir to a "
                          f"finished study.")
    dense = read_result(args.logdir, paths.DENSE)
    hyper = RunConfig.from_dict(dense["config"]).hyper
    if args.data_dir:  # else the data the study trained on, as its dense run records it
        hyper = dataclasses.replace(hyper, data=dataclasses.replace(hyper.data, data_dir=args.data_dir, data_source="idx"))
    data = _load_data(hyper, args.verbose)
    for line in notices:
        print(f"notice: {line}", flush=True)
    with hold(root):  # not while a study writes (or another benchmark times) in it
        plots = check_writable_dir(Path(args.plots) if args.plots else paths.plots_dir(args.logdir), "--plots",
                                   create=False)
        import_tensorflow(args.verbose)
        return _benchmark(args, data, hyper, plots)


def _benchmark(args, data, hyper, plots: Path) -> int:
    from .deploy.bench import (ENGINES, NOISY_SPREAD, SUSPECT_MARGIN, SUSPECT_MARGIN_BATCH_1, TOLERANCE, BenchmarkError,
                        benchmark_summary, dense_training_throughput, format_benchmark, latency_rows,
                        load_warning, machine_load, matmul_peak, summary_line)
    from .files import write_json
    from .report.plots import speedup_figure
    from .report.results import write_rows

    load = {"start": machine_load()}
    for line in filter(None, [load_warning(load["start"], "at the start")]):
        print(line, flush=True)
    # the engines' agreement is checked first, before a minute of peak and training measurements
    try:
        rows = latency_rows(args.logdir, data.x_test, args.batches, args.repeats)
    except BenchmarkError as e:  # the engines disagree: no timing is worth writing
        print(f"error: {e}", file=sys.stderr)
        return 1
    bf16 = hyper.train.precision == "bfloat16"
    peak = matmul_peak(bfloat16=bf16)
    print(f"float32 matmul peak: {peak['peak']:.1f} GFLOP/s ({peak['n']}^3 product; NumPy {peak['numpy']:.1f}, "
          f"TensorFlow {peak['tensorflow']:.1f})"
          + (f"; bfloat16 (TensorFlow): {peak['tensorflow_bfloat16']:.1f} GFLOP/s" if bf16 else ""), flush=True)
    report = {"matmul": peak}
    if not args.no_training:
        train = dense_training_throughput(data, hyper)
        train["fraction_of_peak"] = train["gflops"] / peak["peak"]
        report["dense_training"] = train
        print(f"dense training ({train['precision']}): {train['epoch_s']:.2f} s/epoch at batch {train['batch_size']}, "
              f"{train['gflops']:.1f} GFLOP/s = {100 * train['fraction_of_peak']:.0f}% of the float32 matmul peak",
              flush=True)
    load["end"] = machine_load()
    summary = benchmark_summary(rows, args.repeats)
    report.update({
        "engines": ENGINES, "load": load, "summary": summary,
        "thresholds": {"tolerance": TOLERANCE, "noisy_spread": NOISY_SPREAD, "suspect_margin": SUSPECT_MARGIN,
                       "suspect_margin_batch_1": SUSPECT_MARGIN_BATCH_1},
    })
    write_json(paths.benchmark_json(args.logdir), report)
    write_rows(paths.benchmark_csv(args.logdir), rows)
    print("\n" + format_benchmark(rows))
    fig = speedup_figure(rows, plots / paths.BENCHMARK_PNG)
    print(f"\ntable: {paths.benchmark_csv(args.logdir)}; figure: {fig}")
    for line in filter(None, [load_warning(load["start"], "at the start"), load_warning(load["end"], "at the end")]):
        print(line)
    print(summary_line(summary))
    return 0
