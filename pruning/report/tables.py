"""Published tables, made again from committed CSV files: ``python plotting.py --from-csv CSV --markdown``.

A study's ``summary.csv`` (or its ``results.csv``, summarized the same way) is enough to print its
Markdown tables; no log directory is needed. Every results table in ``README.md`` and ``docs/`` is
printed by such a command, and the command itself stands in an HTML comment on the line before the
table, so that ``tests/test_docs.py`` can run it again and fail on any difference::

    <!-- table: python plotting.py --from-csv docs/figures/cnn-mnist/summary.csv --markdown --key test_accuracy -->
    | k (%) | weight | ... |

Options (the same on the command line and in a marker):

* ``--key`` one of ``pruning.report.stats.SUMMARY_KEYS`` (default: all three tables, with their titles);
* ``--strategies weight,neuron`` the columns, in this order (default: the CSV's strategies, in its order);
* ``--sparsities 0,90,99`` the rows (default: every k of the CSV);
* several CSV files and ``--columns weight@0,weight@97,neuron@97``: one row per CSV (named by its
  ``model`` and ``dataset`` columns), one column per (strategy, k);
* a results.csv and ``--runs weight@90,neuron@90`` (``--seed N``, default the first): what those runs of
  one seed cost: accuracy, effective sparsity, nonzero weights, ``model.sparse``'s size and how much
  smaller than the dense float32 weights it is, before and after gzip;
* a benchmark.csv and ``--runs weight@90,neuron@90``: those runs' inference speedups over dense NumPy.
"""
from __future__ import annotations

import argparse
import csv
import re
import shlex
from pathlib import Path

from .. import paths
from .stats import SUMMARY_KEYS, markdown_table, pm_cell, summarize

# how a table names the networks and data sets of its ``model`` and ``dataset`` columns
MODEL_LABELS = {"mlp": "MLP", "lenet5": "LeNet-5"}
DATASET_LABELS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
TITLES = {"test_accuracy": "Test accuracy after retraining",
          "oneshot_test_accuracy": "Test accuracy one-shot (the dense network pruned to k, not retrained)",
          "effective_sparsity": "Effective sparsity (weights that can no longer reach the output count as pruned)"}
# plotting.py --from-csv ... --figure KIND: several studies in one figure (pruning.report.compare), or one study's
# own figure of that file name drawn again from its results.csv (pruning.report.plots.csv_figure)
COMPARE_FIGURES = ("effective", "units", "k")
STUDY_FIGURES = ("accuracy_vs_parameters", "accuracy_vs_sparsity", "compare_train", "compare_test",
                 "oneshot_vs_retrained", "accuracy_vs_effective_sparsity")
_TEXT = {"strategy", "status", "run", "parent", "model", "dataset", "protocol", "role", "sparsify", "units_alive"}
MARKER = re.compile(r"^<!-- table: (?P<command>.*?) -->\s*$")


def _value(column: str, text: str):
    if column in _TEXT:
        return text
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text  # a column of words (a benchmark's plan, "ddssd")


def read_csv(path: str | Path) -> list[dict]:
    """The rows of a results.csv or summary.csv (or any table the study writes) as written: numbers as int
    or float, an empty cell as None, text as text. Tables written before the ``model``, ``dataset`` and
    ``protocol`` columns existed read as they always did, without those keys."""
    with open(path, newline="") as f:
        return [{k: _value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_summary(path: str | Path) -> list[dict]:
    """A summary.csv's rows; a results.csv (one row per seed) is summarized first, as the study does."""
    rows = read_csv(path)
    return summarize(rows) if rows and "seed" in rows[0] else rows


def _names(rows: list[dict], column: str) -> list:
    return list(dict.fromkeys(r.get(column) for r in rows))


def study_tables(rows: list[dict], key: str | None = None, strategies=None, sparsities=None) -> str:
    """Markdown of one study's summary ``rows``: the table of ``key`` alone, or (``key`` None) the three
    tables of ``SUMMARY_KEYS`` under their titles, as ``plotting.py --logdir DIR --markdown`` prints them."""
    strategies = list(strategies or _names(rows, "strategy"))
    if key is not None:
        return markdown_table(rows, key, strategies, sparsities)
    seeds = max((r["seeds"] for r in rows), default=0)
    title = f"mean ± 95% confidence half-width over {seeds} seeds" if seeds > 1 else "one seed"
    return "\n\n".join(f"{TITLES[k]}, %, {title}:\n\n{markdown_table(rows, k, strategies, sparsities)}"
                       for k in SUMMARY_KEYS)


def study_label(rows: list[dict], path) -> str:
    """"MLP, MNIST": a summary's network and data set from its ``model`` and ``dataset`` columns (the
    file's path when it has none), and its ``--sparsify`` method when it has one, with its strength when
    the table records it ("MLP, MNIST, L1 1e-5"; "MLP, MNIST, L1" from a table made before that column)."""
    model, dataset, method = (_names(rows, c) for c in ("model", "dataset", "sparsify"))
    if len(model) != 1 or len(dataset) != 1 or None in model + dataset:
        return str(path)
    label = f"{MODEL_LABELS.get(model[0], model[0])}, {DATASET_LABELS.get(dataset[0], dataset[0])}"
    if len(method) == 1 and method[0] not in (None, "none"):
        from ..sparsify import methods

        label += f", {methods.METHODS[method[0]].label if method[0] in methods.METHODS else method[0]}"
        strength = _names(rows, "sparsify_strength")
        if len(strength) == 1 and strength[0] not in (None, ""):
            label += f" {_strength(float(strength[0]))}"
    return label


def parse_columns(text: str) -> list[tuple[str, float]]:
    """"weight@0,neuron@97" -> [("weight", 0.0), ("neuron", 97.0)]."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        strategy, at, k = part.partition("@")
        if not at:
            raise ValueError(f"{part!r} is not STRATEGY@K (for example weight@97)")
        out.append((strategy, float(k)))
    return out


def across_table(csv_paths, columns: list[tuple[str, float]], key: str = "test_accuracy") -> str:
    """One row per study (a summary.csv or results.csv each), one column per (strategy, k): ``key`` as
    mean ± 95 % half-width in percent. A k = 0 column is the dense network ("dense")."""
    head = ["network, data", *("dense" if k == 0 else f"{s}, {paths.format_sparsity(k)} %" for s, k in columns)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * len(columns)]
    for path in csv_paths:
        rows = read_summary(path)
        by = {(r["strategy"], float(r["sparsity"])): r for r in rows}
        lines.append(f"| {study_label(rows, path)} | " + " | ".join(pm_cell(by.get((s, k)), key) for s, k in columns)
                     + " |")
    return "\n".join(lines)


def sizes_table(results_csv, runs: list[tuple[str, float]], seed: int | None = None) -> str:
    """One row per (strategy, k) of ``runs``, of one seed of a results.csv (``seed`` None: its first): test
    accuracy, effective sparsity, nonzero weights, the ``model.sparse`` file's bytes, and the dense
    float32 weights' bytes divided by it, and by its gzipped size. A unit strategy's run is "(shrunk)"."""
    from ..core import masks

    rows = read_csv(results_csv)
    seed = rows[0]["seed"] if seed is None else seed
    by = {(r["strategy"], float(r["sparsity"])): r for r in rows if r["seed"] == seed}
    lines = ["| run | test acc. | effective sparsity | nonzero params | `model.sparse` | smaller than dense | after gzip |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s, k in runs:
        r = by[(s, k)]
        shrunk = " (shrunk)" if s in masks.STRATEGIES and masks.get(s).shrinks else ""
        lines.append(f"| {s} k = {paths.format_sparsity(k)}{shrunk} | {100 * r['test_accuracy']:.2f} % | "
                     f"{100 * r['effective_sparsity']:.2f} % | {r['params_nonzero']:,} | {r['sparse_bytes']:,} B | "
                     f"{r['dense_bytes'] / r['sparse_bytes']:.1f}x | {r['dense_bytes'] / r['sparse_gzip_bytes']:.1f}x |")
    return "\n".join(lines)


def units_table(results_csv, runs: list[tuple[str, float]]) -> str:
    """One row per (strategy, k) of ``runs`` and seed of a results.csv: the hidden units alive in each hidden
    layer of the run's final network (its ``units_alive`` column, "8-13-88"), its test accuracy after
    retraining and one-shot. What a per-layer target ("at most 8 and 13 filters") is read from."""
    rows = read_csv(results_csv)
    if not rows or "units_alive" not in rows[0]:
        raise ValueError(f"{results_csv} has no units_alive column (results.csv files written since 2026-12-07 "
                         f"have it; python main.py with the study's command rewrites an older one from its runs)")
    lines = ["| run | seed | hidden units alive, per layer | test acc. | one-shot test acc. |",
             "|---|---:|---|---:|---:|"]
    for s, k in runs:
        found = [r for r in rows if r["strategy"] == s and float(r["sparsity"]) == k]
        if not found:
            raise ValueError(f"{results_csv} has no run {s}@{paths.format_sparsity(k)}")
        for r in sorted(found, key=lambda r: r["seed"]):
            one = r.get("oneshot_test_accuracy")
            lines.append(f"| {s} k = {paths.format_sparsity(k)} | {r['seed']} | {r['units_alive']} | "
                         f"{100 * r['test_accuracy']:.2f} % | " + (f"{100 * one:.2f} % |" if one not in (None, "") else "|"))
    return "\n".join(lines)


def speedup_table(benchmark_csv, runs: list[tuple[str, float]]) -> str:
    """One row per (strategy, k) of ``runs`` of a benchmark.csv (``benchmark.py``): the FLOP ratio and the
    speedups over dense NumPy of the sparse engine and the shrunk network at batch 100 and 1000, and of
    the masked model as trained at batch 1000."""
    by = {(r["strategy"], float(r["sparsity"]), r["batch"]): r for r in read_csv(benchmark_csv)}
    lines = ["| run | FLOP ratio | sparse, batch 100 | sparse, batch 1000 | shrunk, batch 100 | shrunk, batch 1000 | "
             "masked (as trained), b. 1000 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for s, k in runs:
        at = {b: by[(s, k, b)] for b in (100, 1000)}
        cells = [f"{at[100]['flop_ratio']:.1f}x", *(f"{at[b][f'{e}_speedup']:.2f}x" for e in ("sparse", "shrunk")
                                                      for b in (100, 1000)), f"{at[1000]['masked_speedup']:.2f}x"]
        lines.append(f"| {s} k = {paths.format_sparsity(k)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(cost_csv) -> str:
    """One row per network of a cost.csv (``benchmarks/sparsify_cost.py``): plain training's median seconds
    per epoch, then each method's ratio to it (a blank cell: the method was not timed on that network)."""
    from ..sparsify import methods

    rows = read_csv(cost_csv)
    names = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "plain"))

    def header(name: str) -> str:  # "targeted_dropout (weights)" -> "targeted dropout, weights"
        base, _, target = name.partition(" (")
        label = methods.get(base).label if base in methods.METHODS else base
        return f"{label}, {target.rstrip(')')}" if target else label

    lines = ["| network | plain | " + " | ".join(map(header, names)) + " |", "|---|" + "---:|" * (len(names) + 1)]
    for model in dict.fromkeys(r["model"] for r in rows):
        at = {r["method"]: r for r in rows if r["model"] == model}
        cells = [f"{at['plain']['median_s']:.3f} s", *(f"{at[n]['ratio']:.2f}x" if n in at else "" for n in names)]
        lines.append(f"| {MODEL_LABELS.get(model, model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _strength(x: float) -> str:
    """A penalty's strength as people write it: 1e-5, 3e-3, 0."""
    mantissa, exponent = f"{x:e}".split("e")
    return "0" if x == 0 else f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def strength_table(strength_json, max_dense_drop: float | None = None) -> str:
    """The candidates of a strength.json (``python -m pruning.sparsify.choose``): each strength's held-out
    accuracy, dense and pruned one-shot, which one was chosen, and (where recorded) the hidden units alive in
    each dense network, in all and per hidden layer. With ``max_dense_drop`` the choice is made again from
    the recorded accuracies by that rule (``pruning.sparsify.pick_strength``), and the candidates it leaves
    out are marked."""
    import json

    from ..sparsify.hooks import eligible_strengths, pick_strength

    with open(strength_json) as f:
        choice = json.load(f)
    rows = choice["candidates"]
    left_out = set()
    if max_dense_drop is not None:
        dense = {c["strength"]: c["dense"] for c in rows}
        choice["chosen"] = pick_strength({c["strength"]: c["pruned"] for c in rows}, dense, max_dense_drop)
        left_out = set(dense) - set(eligible_strengths(dense, max_dense_drop))
    at = f"{choice['strategy']} at {paths.format_sparsity(float(choice['at']))} % one-shot"
    alive = all("units_alive" in c for c in choice["candidates"])  # recorded since 2026-12-07
    lines = [f"| lambda | held-out accuracy, dense | held-out, {at} |" + (" hidden units alive, dense |" if alive else ""),
             "|---|---:|---:|" + ("---:|" if alive else "")]
    for c in rows:
        mark = " (chosen)" if c["strength"] == choice["chosen"] else ""
        dense_mark = ""
        if c["strength"] in left_out:
            dense_mark = f" (> {max_dense_drop:g} points below the best: left out)"
        per_layer = c.get("units_alive_per_layer")
        lines.append(f"| {_strength(c['strength'])} | {100 * c['dense']:.2f} %{dense_mark} | {100 * c['pruned']:.2f} %{mark} |"
                     + (f" {c['units_alive']:,}" + (f" ({'-'.join(map(str, per_layer))})" if per_layer else "") + " |"
                        if alive else ""))
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``plotting.py --from-csv`` (and of a table marker)."""
    p.add_argument("--from-csv", nargs="+", metavar="CSV",
                   help="print the Markdown tables from a committed summary.csv (or results.csv) instead of a "
                   "log directory; several files with --columns: one row per study. Also a benchmark.csv (with "
                   "--runs), a cost.csv of benchmarks/sparsify_cost.py, or a strength.json of "
                   "python -m pruning.sparsify.choose")
    p.add_argument("--key", choices=(*SUMMARY_KEYS, "early_stop_test_accuracy"),
                   help="with --from-csv: only this table (a lottery study's: test_accuracy, the default, or "
                   "early_stop_test_accuracy)")
    p.add_argument("--strategies", dest="table_strategies", metavar="S,S",
                   help="with --from-csv: the columns, in this order (default: the file's strategies)")
    p.add_argument("--sparsities", dest="table_sparsities", metavar="K,K",
                   help="with --from-csv: the rows (default: every k of the file)")
    p.add_argument("--levels", dest="table_levels", metavar="L,L",
                   help="with a lottery study's CSV: the levels (rows) shown, besides the dense run (default: all)")
    p.add_argument("--columns", metavar="S@K,S@K", help="with several --from-csv files: the (strategy, k) columns")
    p.add_argument("--runs", metavar="S@K,S@K", help="with a results.csv: the sizes table of these runs of one seed; with a benchmark.csv: their speedups")
    p.add_argument("--seed", dest="table_seed", type=int, help="with --runs: the seed (default: the file's first)")
    p.add_argument("--max-dense-drop", dest="table_max_dense_drop", type=float, metavar="P",
                   help="with a strength.json: choose again from its recorded accuracies, letting only candidates "
                   "within P points of the best dense held-out accuracy compete (choose's --max-dense-drop)")
    p.add_argument("--units", action="store_true",
                   help="with a results.csv and --runs: every seed's hidden units alive per layer and accuracies, "
                   "instead of the sizes table")
    p.add_argument("--figure", choices=(*COMPARE_FIGURES, *STUDY_FIGURES),
                   help="with --from-csv: draw a figure instead (--figure-out). effective, units, k: the studies "
                   "in one figure, --key (default: test_accuracy) against the effective sparsity, the hidden units "
                   "kept, or k. " + ", ".join(STUDY_FIGURES) + ": that figure of one study, drawn again from its "
                   "results.csv as plotting.py --logdir draws it (accuracy_vs_sparsity: of the one strategy "
                   "--strategies names). --strategies: which lines")
    p.add_argument("--figure-out", metavar="FILE.png", help="with --figure: the PNG written (default: compare_FIGURE.png "
                   "for several studies, the study's own file name for one)")


def render(args) -> str:
    """What ``plotting.py --from-csv ...`` prints."""
    split = lambda text: [t for t in (text or "").split(",") if t]  # noqa: E731
    if str(args.from_csv[0]).endswith(".json"):  # a strength.json of pruning.sparsify.choose
        return strength_table(args.from_csv[0], args.table_max_dense_drop)
    first = read_csv(args.from_csv[0])[0]  # its columns say what kind of table it is
    if "ratio" in first and "method" in first:  # a cost.csv
        return cost_table(args.from_csv[0])
    if args.runs:
        if "flop_ratio" in first:  # a benchmark.csv
            return speedup_table(args.from_csv[0], parse_columns(args.runs))
        if args.units:
            return units_table(args.from_csv[0], parse_columns(args.runs))
        return sizes_table(args.from_csv[0], parse_columns(args.runs), args.table_seed)
    if args.columns or len(args.from_csv) > 1:
        if not args.columns:
            raise ValueError("several --from-csv files need --columns STRATEGY@K,... (for example weight@0,weight@97)")
        return across_table(args.from_csv, parse_columns(args.columns), args.key or "test_accuracy")
    rows = read_csv(args.from_csv[0])
    if rows and "role" in rows[0]:  # a lottery study's table: levels, the ticket and its controls
        from . import lottery

        summary = lottery.summarize(rows) if "seed" in rows[0] else rows
        return lottery.markdown_table(summary, args.key or "test_accuracy",
                                      [int(v) for v in split(args.table_levels)] or None)
    ks = [float(k) for k in split(args.table_sparsities)] or None
    return study_tables(read_summary(args.from_csv[0]), args.key, split(args.table_strategies) or None, ks)


def command_output(command: str) -> str:
    """The table a marker's command prints (``python plotting.py --from-csv ... --markdown ...``), read
    from the files under the current directory."""
    argv = shlex.split(command)
    if argv[:2] != ["python", "plotting.py"]:
        raise ValueError(f"a table marker runs python plotting.py --from-csv ...; not {command!r}")
    p = argparse.ArgumentParser(prog="plotting.py", add_help=False)
    p.add_argument("--markdown", action="store_true")
    add_arguments(p)
    args = p.parse_args(argv[2:])
    if not args.from_csv:
        raise ValueError(f"a table marker needs --from-csv: {command!r}")
    return render(args)


def published_tables(text: str) -> list[tuple[str, str]]:
    """(command, the table printed after it) for every marker in a Markdown document: the table is the
    block of lines starting with "|" that follows the marker (blank lines between them are allowed)."""
    lines, out = text.splitlines(), []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        block = []
        while j < len(lines) and lines[j].startswith("|"):
            block.append(lines[j])
            j += 1
        out.append((m.group("command"), "\n".join(block)))
    return out
