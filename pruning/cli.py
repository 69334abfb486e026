"""The command-line entry points; train.py, main.py, main_alternate.py and plotting.py
are thin wrappers over these functions."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import paths
from .config import (STRATEGIES, ConfigError, OutputConfig, RunConfig, StudyConfig, add_flags,
                     add_hyper_flags, check_sparsity, from_args, hyper_from_args)
from .data import DataError
from .results import ResultError

from .sparse_io import SparseFormatError

USER_ERRORS = (ConfigError, DataError, ResultError, SparseFormatError)
EXIT_USAGE = 2


def guarded(fn):
    """Run ``fn``; a user error becomes a one-paragraph message and exit status 2."""
    from .experiment import StudyError

    def wrapper(argv=None):
        try:
            return fn(argv)
        except (*USER_ERRORS, StudyError) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("\ninterrupted: finished runs are kept; rerun the same command to resume.", file=sys.stderr)
            return 130

    return wrapper


def _sparsity(text: str) -> float:
    try:
        return check_sparsity(float(text))
    except (ValueError, ConfigError) as e:
        raise argparse.ArgumentTypeError(str(e) if isinstance(e, ConfigError) else
                                         f"sparsity must be a number in [0, 100), got {text!r}") from None


def _hyper(parser, args):
    try:
        return hyper_from_args(args)
    except ConfigError as e:
        parser.error(str(e))


def _load_data(hyper):
    from .data import load_mnist

    data = load_mnist(hyper.data.data_dir, hyper.data.data_source)
    d = data.describe()
    print(f"data: {d['source']} ({d['train_examples']} train / {d['test_examples']} test)", flush=True)
    return data


# --------------------------------------------------------------------------- train.py
def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train, prune and evaluate one model of the MNIST pruning study. Under --protocol "
        "retrain or oneshot the model starts from the study's dense run (--from-run), which is trained "
        "first if the log directory does not hold it yet. Writes <logdir>/<run>/result.json, model.keras "
        "and TensorBoard events.",
    )
    g = p.add_argument_group("run")
    g.add_argument("--strategy", choices=STRATEGIES, default="weight", help="what is pruned (default: weight)")
    g.add_argument("--sparsity", type=_sparsity, default=0.0, metavar="K",
                   help="percent of each hidden layer's weights (or units) removed, 0 <= K < 100 (default: 0, the dense run)")
    g.add_argument("--from-run", default=paths.DENSE, metavar="NAME",
                   help="the finished run in --logdir whose model is pruned (retrain and oneshot protocols; default: dense)")
    add_hyper_flags(p)
    return p


@guarded
def train_main(argv=None) -> int:
    from .experiment import check_existing, dense_config, train_run, ProgressPrinter

    p = train_parser()
    args = p.parse_args(argv)
    hyper = _hyper(p, args)
    out = from_args(args, OutputConfig)
    scratch = hyper.prune.protocol == "scratch"
    target = RunConfig(hyper, args.strategy, args.sparsity, None if scratch or args.sparsity == 0 else args.from_run)
    plan = [target]
    if target.parent == paths.DENSE:
        plan.insert(0, dense_config(hyper))
    elif target.parent is not None:
        from .results import read_result

        if read_result(out.logdir, target.parent) is None:
            raise ConfigError(f"--from-run {target.parent}: {paths.run_dir(out.logdir, target.parent)} holds no "
                              f"finished run. Name a finished run of --logdir {out.logdir}, or leave --from-run out.")
    data = _load_data(hyper)
    info = data.describe()
    todo = [c for c in plan if (out.overwrite and c is target) or check_existing(c, out.logdir, info) == "todo"]
    if not todo:
        print(f"{paths.run_dir(out.logdir, target.name)} is already finished; pass --overwrite to retrain it.")
        return _print_run(out.logdir, target.name)
    printer = ProgressPrinter(todo, jobs=1)
    for cfg in todo:
        printer({"event": "start", "run": cfg.name, "threads": "all"})
        r = train_run(cfg, out.logdir, data, progress=printer)
        if r["status"] != "ok":
            return 1
    return _print_run(out.logdir, target.name)


def _print_run(logdir, name) -> int:
    from .results import read_result

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
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"The weight-vs-neuron pruning study on MNIST, {how}: trains the dense network once, "
        "prunes and retrains it at every --sparsities for both strategies, writes per-run TensorBoard logs "
        "and result.json, results.csv at the log directory's root, prints the table and writes the figures. "
        "Rerunning resumes: finished runs are skipped.",
    )
    add_hyper_flags(p)
    add_flags(p, StudyConfig, title="study", skip=("jobs",) if alternate else ())
    p.add_argument("--plots", default=paths.PLOTS, metavar="DIR", help="where the figures go (default: plots)")
    return p


def study_main(argv=None, alternate: bool = False) -> int:
    from .experiment import run_study
    from .plots import make_figures
    from .results import format_table, read_all_results, table_rows, write_table

    p = study_parser(alternate)
    args = p.parse_args(argv)
    hyper = _hyper(p, args)
    out = from_args(args, OutputConfig)
    try:
        study = from_args(args, StudyConfig, **({"jobs": 1} if alternate else {}))
    except ConfigError as e:
        p.error(str(e))
    data = _load_data(hyper)  # fail fast on bad data, and show which source the study uses
    t0 = time.perf_counter()
    runs = run_study(hyper, study, out.logdir, overwrite=out.overwrite, data_info=data.describe())
    wall = time.perf_counter() - t0
    results = [r for r in read_all_results(out.logdir) if r["run"] in {c.name for c in runs}]
    rows = table_rows(results, study.strategies, study.sparsities)
    write_table(paths.results_csv(out.logdir), rows)
    print("\n" + format_table(rows))
    files, missing = make_figures(out.logdir, args.plots)
    print(f"\nstudy wall time {wall / 60:.1f} min; table: {paths.results_csv(out.logdir)}; "
          f"figures: {len(files)} in {args.plots}/; TensorBoard: tensorboard --logdir {out.logdir}")
    failed = [r["run"] for r in rows if r["status"] != "ok"]
    if failed or missing:
        print(f"not ok: {', '.join(sorted(set(failed + missing)))} (see each run's result.json for the reason)")
        return 1
    return 0


study_main_guarded = guarded(lambda argv=None: study_main(argv, alternate=False))
alternate_main_guarded = guarded(lambda argv=None: study_main(argv, alternate=True))


# --------------------------------------------------------------------------- plotting.py
@guarded
def plotting_main(argv=None) -> int:
    from .plots import FIGURES, make_figures
    from .results import read_all_results

    p = argparse.ArgumentParser(
        prog="plotting.py",
        description="Draw the study's figures from the runs' written results (result.json): "
        + "; ".join(FIGURES.values()) + ". With runs missing, plots what exists and names what is missing.",
    )
    p.add_argument("--logdir", default="logs", help="the study's log directory (default: logs)")
    p.add_argument("--out", default=paths.PLOTS, help="where the PNG figures go (default: plots)")
    args = p.parse_args(argv)
    if not read_all_results(args.logdir):
        raise ResultError(f"{args.logdir} holds no finished run (no */{paths.RESULT}). Run python main.py "
                          f"first, or pass --logdir to a study's log directory.")
    files, missing = make_figures(args.logdir, args.out)
    for f in files:
        print(f)
    if missing:
        print(f"missing or failed runs (not plotted): {', '.join(missing)}")
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
    from .bench import ENGINE_HELP

    p = argparse.ArgumentParser(
        prog="benchmark.py",
        description="Measure what pruning buys on this machine, for every finished run of a study: inference "
        "latency at each batch size of " + "; ".join(f"{k} ({v})" for k, v in ENGINE_HELP.items()) + ". "
        "Each is a ratio to dense measured in the same run (warm-up, then the median of interleaved repeats). "
        "Also measures the float32 matmul peak and the dense training throughput as a fraction of it. "
        "Writes <logdir>/benchmark.csv, benchmark.json and a figure.",
    )
    p.add_argument("--logdir", default="logs", help="a study's log directory (default: logs)")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST IDX directory: the inputs timed, and the data the "
                   "training throughput is measured on (default: the source the study used, found as train.py does)")
    p.add_argument("--batches", type=_batches, default=(1, 100, 1000), metavar="B1,B2,...",
                   help="batch sizes (default: 1,100,1000)")
    p.add_argument("--repeats", type=int, default=15, help="timed calls per engine and batch (default: 15)")
    p.add_argument("--no-training", action="store_true",
                   help="skip the dense training throughput measurement (about a minute)")
    p.add_argument("--plots", default=paths.PLOTS, metavar="DIR", help="where the figure goes (default: plots)")
    return p


@guarded
def benchmark_main(argv=None) -> int:
    from .bench import ENGINES, dense_training_throughput, finished_runs, latency_rows, matmul_peak
    from .config import DataConfig
    from .data import load_mnist
    from .plots import speedup_figure
    from .results import read_result, write_json, write_rows

    p = benchmark_parser()
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    dense = read_result(args.logdir, paths.DENSE)
    if not finished_runs(args.logdir) or dense is None or dense.get("status") != "ok":
        raise ResultError(f"{args.logdir} holds no finished study (no finished {paths.DENSE}/{paths.RESULT}). "
                          f"Run python main.py --logdir {args.logdir} first, or pass --logdir to a finished study.")
    hyper = RunConfig.from_dict(dense["config"]).hyper
    data_cfg = DataConfig(args.data_dir, "idx" if args.data_dir else hyper.data.data_source)
    data = load_mnist(data_cfg.data_dir or hyper.data.data_dir, data_cfg.data_source)
    print(f"data: {data.describe()['source']}", flush=True)

    peak = matmul_peak()
    print(f"float32 matmul peak: {peak['peak']:.1f} GFLOP/s ({peak['n']}^3 product; NumPy {peak['numpy']:.1f}, "
          f"TensorFlow {peak['tensorflow']:.1f})", flush=True)
    report = {"matmul": peak}
    if not args.no_training:
        train = dense_training_throughput(data, hyper)
        train["fraction_of_peak"] = train["gflops"] / peak["peak"]
        report["dense_training"] = train
        print(f"dense training: {train['epoch_s']:.2f} s/epoch at batch {train['batch_size']}, "
              f"{train['gflops']:.1f} GFLOP/s = {100 * train['fraction_of_peak']:.0f}% of the matmul peak", flush=True)
    rows = latency_rows(args.logdir, data.x_test, args.batches, args.repeats)
    report["engines"] = ENGINES
    write_json(paths.benchmark_json(args.logdir), report)
    write_rows(paths.benchmark_csv(args.logdir), rows)
    print("\n" + format_benchmark(rows))
    fig = speedup_figure(rows, Path(args.plots) / paths.BENCHMARK_PNG)
    print(f"\ntable: {paths.benchmark_csv(args.logdir)}; figure: {fig}")
    return 0


def format_benchmark(rows: list[dict]) -> str:
    """Speedups over dense (x) per run and batch, for the terminal."""
    head = (f"{'run':<12} {'batch':>5} {'dense ms':>9} {'dense_tf':>8} {'masked':>7} {'sparse':>7} {'shrunk':>7} "
            f"{'FLOPs':>7}  sparse plan")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['run']:<12} {r['batch']:>5} {r['dense_ms']:>9.3f} {r['dense_tf_speedup']:>7.2f}x "
                     f"{r['masked_speedup']:>6.2f}x {r['sparse_speedup']:>6.2f}x {r['shrunk_speedup']:>6.2f}x "
                     f"{r['flop_ratio']:>6.1f}x  {r['sparse_plan']}")
    return "\n".join(lines)
