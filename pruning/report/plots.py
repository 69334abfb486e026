"""Figures from a study's written results (result.json files), never its internals.

``make_figures(logdir, out)`` writes every figure it can from the runs that exist and
returns (written files, missing run names). Missing runs are named in the figures'
footers and in the return value.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from .. import paths  # noqa: E402
from ..core import masks  # noqa: E402
from .figure import FOOTER_PT, MISSING_SHOWN, csv_data_label, data_label, data_notice, shown_path  # noqa: E402,F401
from .figure import finish as _finish, runs_list as _runs_list  # noqa: E402
from .results import read_replicates, strategies_found  # noqa: E402
from .stats import mean_ci  # noqa: E402

class _FromRegistry(dict):
    """A strategy's colour or label, read from the strategy registry (pruning.core.masks) when asked."""

    def __init__(self, attr: str):
        super().__init__()
        self.attr = attr

    def __missing__(self, name: str) -> str:
        return getattr(masks.get(name), self.attr)


COLORS = _FromRegistry("color")
LABELS = _FromRegistry("label")


def _ok(results):
    return [r for r in results if r.get("status") == "ok"]


def _by_k(results, strategy, value) -> dict[float, list[float]]:
    """{k: [value(r) of each seed's run]} for one strategy's finished runs, the dense runs as k = 0."""
    out: dict[float, list[float]] = {}
    for r in _ok(results):
        v = value(r) if r["config"]["strategy"] in (strategy, "none") else None
        if v is not None:
            out.setdefault(float(r["config"]["sparsity"]), []).append(float(v))
    return dict(sorted(out.items()))


def _mean_band(groups: dict[float, list[float]]):
    """(xs, means, band): band is (lows, highs) of the 95 % confidence interval over the seeds, or
    None when no k has two seeds (one seed: the plain curve of before)."""
    xs = list(groups)
    stats = [mean_ci(v) for v in groups.values()]
    means = [m for m, _, _ in stats]
    if all(len(v) < 2 for v in groups.values()):
        return xs, means, None
    hws = [0.0 if not math.isfinite(h) else h for _, _, h in stats]
    return xs, means, ([m - h for m, h in zip(means, hws)], [m + h for m, h in zip(means, hws)])


def _curve(results, strategy, key):
    """(sparsities, values in %) for one strategy, the dense run as k = 0, sorted by sparsity; with
    several seeds, the mean over them."""
    xs, ys, _ = _mean_band(_by_k(results, strategy, lambda r: None if r.get(key) is None else 100 * r[key]))
    return xs, ys


def _band(results, strategy, key):
    """The 95 % band over the seeds of ``_curve``'s values (accuracies in %), or None with one seed.
    With three seeds a t-interval can reach past 0 or 100 %, where no accuracy lies: it is drawn
    clipped to [0, 100]."""
    band = _mean_band(_by_k(results, strategy, lambda r: None if r.get(key) is None else 100 * r[key]))[2]
    if band is None:
        return None
    return [max(0.0, v) for v in band[0]], [min(100.0, v) for v in band[1]]


ZOOM_WITHIN = 5.0  # the zoom panel shows every accuracy within this many points of the best
ZOOM_MIN_SPAN = 1.0  # and never spans fewer points than this (one point, or all equal)
ZOOM_MIN_POINTS = 3  # and at least this many of the highest values, however spread out they are
ZOOM_PAD = 0.06  # margin below and above, as a fraction of the span


def zoom_range(values, within: float = ZOOM_WITHIN, min_span: float = ZOOM_MIN_SPAN,
               min_points: int = ZOOM_MIN_POINTS) -> tuple[float, float]:
    """(low, high) accuracy (%) of a zoom panel, chosen from the plotted ``values`` (%): from a little
    below the lowest value within ``within`` points of the best (or below the ``min_points``-th
    highest value, if lower) to a little above the best, so the high-accuracy region where
    strategies differ fills the panel; values further down fall below ``low`` (the caller marks
    them). Never empty nor degenerate; None and NaN are ignored."""
    vals = sorted((float(v) for v in values if v is not None and math.isfinite(float(v))), reverse=True)
    if not vals:
        return 0.0, 100.0
    best = vals[0]
    lowest = min(min(v for v in vals if v >= best - within), vals[min(min_points, len(vals)) - 1])
    if best - lowest < min_span:
        mid = (best + lowest) / 2
        lowest, best = mid - min_span / 2, mid + min_span / 2
    pad = ZOOM_PAD * (best - lowest)
    return lowest - pad, best + pad


def _zoom(ax, series, what: str = "accuracy") -> None:
    """Set ``ax``'s y range from the plotted ``series`` (xs, ys, color) with zoom_range; points below
    it are drawn as ▼ on the panel's floor, and the title gives the range and their count."""
    low, high = zoom_range([y for _, ys, _ in series for y in ys])
    ax.set_ylim(low, high)
    below = 0
    for xs, ys, color in series:
        clipped = [x for x, y in zip(xs, ys) if y < low]
        below += len(clipped)
        if clipped:
            ax.plot(clipped, [low + 0.015 * (high - low)] * len(clipped), "v", color=color, ms=7, clip_on=False)
    note = f"; {below} point{'s' * (below != 1)} below, marked ▼" if below else ""
    ax.set_title(f"zoom: {what} {low:.1f}-{high:.1f} %{note}")


def _sparsity_plot(series, title: str, path: Path, footer: str, notice: str | None = None, bands=None) -> Path:
    """Accuracy against sparsity: the full range on the left, on the right a zoom on the accuracies
    near the best (zoom_range; where the strategies differ at high sparsity), a legend on each.
    ``series``: (xs, ys, style, color, label); ``notice``: data_notice, the figure's title; ``bands``:
    per series, (lows, highs) of a 95 % band over the seeds, or None."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    bands = bands or [None] * len(series)
    for ax in axes:
        for (xs, ys, style, color, label), band in zip(series, bands):
            ax.plot(xs, ys, style, marker="o", color=color, label=label)
            if band is not None:
                ax.fill_between(xs, [max(0.0, v) for v in band[0]], [min(100.0, v) for v in band[1]], color=color,
                                alpha=0.18, lw=0)  # clipped to 0-100 %
        ax.set_xlabel("sparsity of each hidden layer (% of weights or units removed)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    _zoom(axes[1], [(xs, ys, color) for xs, ys, _, color, _ in series])
    if series:
        for ax in axes:
            ax.legend(fontsize=8)
    return _finish(fig, path, footer, notice)


def _epoch_offsets(results) -> dict[str, int]:
    """Where each run's first epoch sits on a shared axis: after all epochs of its parent chain."""
    by_name = {r["run"]: r for r in results}
    offsets: dict[str, int] = {}

    def offset(name, depth=0):
        if name in offsets:
            return offsets[name]
        r = by_name.get(name)
        parent = r["config"].get("parent") if r else None
        if parent is None or parent not in by_name or depth > 100:
            offsets[name] = 0
        else:
            p = by_name[parent]
            offsets[name] = offset(parent, depth + 1) + len((p.get("history") or {}).get("loss", []))
        return offsets[name]

    for name in by_name:
        offset(name)
    return offsets


EPOCH_MARKERS = "os^Dv<>pPXh*d"  # with tab10's colours: neighbouring k differ in colour and marker


def epoch_style(i: int) -> dict:
    """Line style of the i-th k (sorted) in the per-epoch figure: tab10 colour i mod 10 (neighbours
    always differ), its own marker, and a new line style after every ten."""
    return {"color": plt.get_cmap("tab10")(i % 10), "marker": EPOCH_MARKERS[i % len(EPOCH_MARKERS)],
            "linestyle": ("-", "--", ":", "-.")[(i // 10) % 4]}


def epochs_figure(results, strategy, path, footer="") -> Path:
    """Accuracy per epoch, each k in its colour and marker (epoch_style), on one epoch axis: a run
    that starts from another run's model (retraining, iterative chains) is drawn after that run's
    epochs. A legend on each panel."""
    runs = sorted(
        (r for r in _ok(results) if r["config"]["strategy"] in (strategy, "none") and r.get("history")),
        key=lambda r: float(r["config"]["sparsity"]),
    )
    offsets = _epoch_offsets(_ok(results))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for i, r in enumerate(runs):
        k = paths.format_sparsity(r["config"]["sparsity"])
        start = offsets.get(r["run"], 0)
        for ax, key in zip(axes, ("accuracy", "test_accuracy")):
            ys = [100 * v for v in r["history"].get(key, [])]
            ax.plot(range(start + 1, start + len(ys) + 1), ys, ms=4, label=f"k = {k}%", **epoch_style(i))
    for ax, which in zip(axes, ("train (running mean over each epoch)", "test")):
        ax.set_xlabel("epoch (a retrained run follows the run it started from)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{LABELS[strategy]}: {which} accuracy")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if runs:
        for ax in axes:
            ax.legend(fontsize=7, ncol=2)
    return _finish(fig, path, footer, data_notice(results))


def _seeds_note(results) -> str:
    n = len({(r.get("config") or {}).get("hyper", {}).get("train", {}).get("seed") for r in results})
    return f" (mean of {n} seeds, 95% band)" if n > 1 else ""


def sparsity_figure(results, strategy, path, footer="") -> Path:
    keys = (("train_accuracy", "--", "train"), ("test_accuracy", "-", "test"))
    series = [(*_curve(results, strategy, key), style, COLORS[strategy], f"{label} (retrained)")
              for key, style, label in keys]
    return _sparsity_plot(series, f"{LABELS[strategy]}: accuracy against sparsity{_seeds_note(results)}", path,
                          footer, data_notice(results), [_band(results, strategy, key) for key, _, _ in keys])


def compare_figure(results, strategies, key, path, footer="") -> Path:
    which = "train" if key == "train_accuracy" else "test"
    series = [(*_curve(results, s, key), "-", COLORS[s], LABELS[s]) for s in strategies]
    who = " vs ".join(strategies) if len(strategies) <= 2 else "the strategies"
    return _sparsity_plot(series, f"{who}: {which} accuracy (retrained){_seeds_note(results)}", path, footer,
                          data_notice(results), [_band(results, s, key) for s in strategies])


def oneshot_figure(results, strategies, path, footer="") -> Path:
    pairs = [(s, key, style, label) for s in strategies
             for key, style, label in (("oneshot_test_accuracy", ":", "one-shot"), ("test_accuracy", "-", "retrained"))]
    series = [(*_curve(results, s, key), style, COLORS[s], f"{LABELS[s]}, {label}") for s, key, style, label in pairs]
    return _sparsity_plot(series, f"one-shot vs retrained: test accuracy{_seeds_note(results)}",
                          path, footer, data_notice(results), [_band(results, s, key) for s, key, _, _ in pairs])


def _effective_curve(results, strategy):
    """(effective sparsity %, test accuracy %) of one strategy's retrained runs and the dense run
    (with several seeds, the means over them at each k)."""
    eff = lambda r: None if (r.get("size") or {}).get("effective_sparsity") is None else 100 * r["size"]["effective_sparsity"]  # noqa: E731
    _, xs, _ = _mean_band(_by_k(results, strategy, eff))
    acc = _by_k(results, strategy, lambda r: None if eff(r) is None else 100 * r["test_accuracy"])
    _, ys, _ = _mean_band(acc)
    return xs, ys


def layer_sparsity_figure(results, strategy, path, footer="") -> Path:
    """The sparsity a global strategy chose for each prunable layer (result.json's measured
    ``sparsity.per_layer``) against its overall k, with k itself dashed: where one threshold over
    all layers cuts hardest."""
    runs = [r for r in _ok(results) if r["config"]["strategy"] == strategy and (r.get("sparsity") or {})]
    fig, ax = plt.subplots(figsize=(10, 4.6))
    layers = list(runs[0]["sparsity"]["per_layer"]) if runs else []
    for i, name in enumerate(layers):  # the mean over the seeds at each k
        xs, ys, _ = _mean_band(_by_k(runs, strategy, lambda r: 100 * r["sparsity"]["per_layer"].get(name, math.nan)))
        ax.plot(xs, ys, **epoch_style(i), label=name)
    ax.plot([0, 100], [0, 100], "--", color="gray", lw=0.8, label="k (every layer alike: layer-wise pruning)")
    ax.set_xlabel("overall sparsity k of the prunable weights (%)")
    ax.set_ylabel("sparsity of the layer (%)")
    ax.set_title(f"{LABELS[strategy]}: the sparsity it chose per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path, footer, data_notice(results))


def effective_figure(results, strategies, path, footer="") -> Path:
    """Test accuracy against *effective* sparsity: the fraction of the dense network's weights that
    are zero or can no longer reach the output. Neuron pruning at k% removes more than k% of the
    weights (a dead unit takes its outgoing row too), so this is the like-for-like comparison."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    zoomed = []
    for s in strategies:
        xs, ys = _effective_curve(results, s)
        axes[0].plot(xs, ys, "-", marker="o", color=COLORS[s], label=LABELS[s])
        left = [(100 - x, y) for x, y in zip(xs, ys) if 100 - x > 0]  # a log axis cannot show 0 % left
        zoomed.append(([p[0] for p in left], [p[1] for p in left], COLORS[s]))
        axes[1].plot(zoomed[-1][0], zoomed[-1][1], "-", marker="o", color=COLORS[s], label=LABELS[s])
    axes[0].set_xlabel("effective sparsity (% of the dense network's weights gone or unable to matter)")
    axes[0].set_title("test accuracy against effective sparsity")
    axes[1].set_xscale("log")
    axes[1].invert_xaxis()
    axes[1].set_xlabel("weights that still matter (% of dense, log scale)")
    _zoom(axes[1], zoomed, "test accuracy")
    for ax in axes:
        ax.set_ylabel("test accuracy (%), retrained")
        ax.grid(alpha=0.3, which="both")
        if strategies:
            ax.legend(fontsize=8)
    return _finish(fig, path, footer, data_notice(results))


def params_figure(results, strategies, path, footer="") -> Path:
    """Test accuracy (mean, 95 % band over the seeds) against the nonzero weights the network keeps, on
    a log axis: pruned networks beside the small dense students of the same size (strategies student
    and distill), the one figure that answers "pruned, or simply small?". The dense network is the
    rightmost point of every curve; the right panel zooms on the high accuracies."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    zoomed = []
    for s in strategies:
        size = _by_k(results, s, lambda r: (r.get("size") or {}).get("params_nonzero"))
        acc = _by_k(results, s, lambda r: None if (r.get("size") or {}).get("params_nonzero") is None
                    else 100 * r["test_accuracy"])
        xs = [mean_ci(size[k])[0] for k in size]
        _, ys, band = _mean_band(acc)
        zoomed.append((xs, ys, COLORS[s]))
        for ax in axes:
            ax.plot(xs, ys, "-", marker="o", color=COLORS[s], label=LABELS[s])
            if band is not None:
                ax.fill_between(xs, [max(0.0, v) for v in band[0]], [min(100.0, v) for v in band[1]],
                                color=COLORS[s], alpha=0.2, lw=0)
    axes[0].set_title("pruned, or simply small? test accuracy against the weights kept")
    _zoom(axes[1], zoomed, "test accuracy")
    for ax in axes:
        if any(x > 0 for xs, _, _ in zoomed for x in xs):  # a log axis needs a point (no finished run: none)
            ax.set_xscale("log")
        ax.set_xlabel("nonzero weights kept (log scale; the dense network is the rightmost point)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        if strategies:
            ax.legend(fontsize=8)
    return _finish(fig, path, footer, data_notice(results))


FIGURES = {
    paths.EPOCHS_PNG: "train and test accuracy per epoch for each k, one figure per strategy",
    paths.SPARSITY_PNG: "train and test accuracy against sparsity, one figure per strategy",
    paths.COMPARE_TRAIN_PNG: "the strategies compared, train accuracy",
    paths.COMPARE_TEST_PNG: "the strategies compared, test accuracy",
    paths.ONESHOT_PNG: "one-shot against retrained test accuracy, every strategy",
    paths.LAYER_SPARSITY_PNG: "the sparsity a global strategy chose for each layer against k (global strategies)",
    paths.EFFECTIVE_PNG: "test accuracy against effective sparsity (weights that can no longer reach the "
                         "output count as pruned), every strategy",
    paths.PARAMS_PNG: "test accuracy against the nonzero weights kept (log axis), every strategy and the small "
                      "dense students of the same sizes",
    paths.PIXELS_PNG: "MLP, weight pruning: how many first-layer connections each input pixel keeps, at a few k",
    paths.DEAD_PIXELS_PNG: "MLP, neuron pruning: the input pixels that feed no surviving unit, at a few k",
    paths.FILTERS_PNG: "CNN: the first convolution's filters at a few k (removed filters crossed out)",
}


def _replicates(logdir: Path) -> list[tuple[list[dict], list[str], list[str] | None, int | None]]:
    """Per replicate of a study (LOGDIR/seed<N>/, or LOGDIR itself when it has none): its results,
    its planned runs (from its study.json, [] when unknown) and its strategies (None when unknown), and its seed."""
    return [(rep.results, (rep.study or {}).get("runs", []), rep.study["study"]["strategies"] if rep.study else None,
             rep.seed) for rep in read_replicates(logdir)]


def make_figures(logdir, out) -> tuple[list[Path], list[str]]:
    """Write every figure from the runs under ``logdir`` (every seed's, with their mean and 95 % band
    when there are several); return (files, missing run names)."""
    from . import lottery

    logdir, out = Path(logdir), Path(out)
    replicates = _replicates(logdir)
    several = len(replicates) > 1
    results = [r for rs, _, _, _ in replicates for r in rs]
    if lottery.is_lottery(results):  # levels and controls, not sparsities: figures of their own
        return lottery.figures(logdir, out)
    # the strategies of the study, else those of the runs found
    strategies = next((st for _, _, st, _ in replicates if st), None) or strategies_found(results)
    missing, failed = [], []
    for rs, expected, _, seed in replicates:
        tag = (lambda n, s=seed: f"seed{s}/{n}") if several else (lambda n: n)
        finished = {r["run"] for r in _ok(rs)}
        bad = sorted(r["run"] for r in rs if r.get("status") != "ok")
        missing += [tag(n) for n in expected if n not in finished and n not in bad]
        failed += [tag(n) for n in bad]
    parts = []
    if results:
        d = results[0].get("data") or {}
        parts.append(f"data: {data_label(d)}")
        sp = (((results[0].get("config") or {}).get("hyper") or {}).get("sparsify") or {})
        if sp.get("method", "none") != "none":  # a --sparsify study: its method and hyper-parameters
            parts.append(f"trained with --sparsify {sp['method']} (" + ", ".join(
                f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in (sp.get("params") or {}).items()) + ")")
    if several:
        parts.append(f"{len(replicates)} seeds; per-epoch figures: the first seed")
    if missing:
        parts.append(_runs_list("missing", missing))
    if failed:
        parts.append(_runs_list("failed", failed))
    footer = "; ".join(parts)
    first = replicates[0][0] if replicates else []
    files = []
    for s in strategies:
        files.append(epochs_figure(first, s, out / paths.EPOCHS_PNG.format(s=s), footer))
        files.append(sparsity_figure(results, s, out / paths.SPARSITY_PNG.format(s=s), footer))
    files.append(compare_figure(results, strategies, "train_accuracy", out / paths.COMPARE_TRAIN_PNG, footer))
    files.append(compare_figure(results, strategies, "test_accuracy", out / paths.COMPARE_TEST_PNG, footer))
    files.append(oneshot_figure(results, strategies, out / paths.ONESHOT_PNG, footer))
    files.append(effective_figure(results, strategies, out / paths.EFFECTIVE_PNG, footer))
    files.append(params_figure(results, strategies, out / paths.PARAMS_PNG, footer))
    from .interpret import interpretability_figures  # what survives: pixels (MLP) or filters (CNN)

    files += interpretability_figures(logdir, out)
    for s in strategies:
        if masks.get(s).scope == "global":
            files.append(layer_sparsity_figure(results, s, out / paths.LAYER_SPARSITY_PNG.format(s=s), footer))
    return files, missing + failed


def csv_results(rows: list[dict]) -> list[dict]:
    """A results.csv's rows (``tables.read_csv``) as the results the figures read (``read_all_results``'): one per
    row, that is per (seed, strategy, k), with the row's accuracies, its effective sparsity and nonzero weights.
    The table lists the dense run under each strategy at k = 0, so each strategy's curve starts from it, as in
    the figures drawn from the runs."""
    return [{"run": r.get("run"), "status": r.get("status"),
             "config": {"strategy": r["strategy"], "sparsity": float(r["sparsity"]), "parent": r.get("parent"),
                        "hyper": {"train": {"seed": r.get("seed")}}},
             **{k: r.get(k) for k in ("test_accuracy", "train_accuracy", "oneshot_test_accuracy")},
             "size": {k: r.get(k) for k in ("effective_sparsity", "params_nonzero")}} for r in rows]


# plotting.py --from-csv results.csv --figure KIND (tables.STUDY_FIGURES): the columns it reads, its file name among
# a study's figures, and how it is drawn (results, strategies, out, footer)
CSV_FIGURES = {
    "accuracy_vs_parameters": (("test_accuracy", "params_nonzero"), paths.PARAMS_PNG, params_figure),
    "accuracy_vs_sparsity": (("train_accuracy", "test_accuracy"), paths.SPARSITY_PNG,
                             lambda res, st, out, footer: sparsity_figure(res, st[0], out, footer)),
    "compare_train": (("train_accuracy",), paths.COMPARE_TRAIN_PNG,
                      lambda res, st, out, footer: compare_figure(res, st, "train_accuracy", out, footer)),
    "compare_test": (("test_accuracy",), paths.COMPARE_TEST_PNG,
                     lambda res, st, out, footer: compare_figure(res, st, "test_accuracy", out, footer)),
    "oneshot_vs_retrained": (("oneshot_test_accuracy", "test_accuracy"), paths.ONESHOT_PNG, oneshot_figure),
    "accuracy_vs_effective_sparsity": (("effective_sparsity", "test_accuracy"), paths.EFFECTIVE_PNG, effective_figure),
}


def csv_figure(csv_path, kind: str, strategies=None, out=None) -> Path:
    """One of a study's figures (``kind``, a key of ``CSV_FIGURES``) drawn again from its results.csv alone, as
    ``make_figures`` draws it from the runs: every seed's row, their mean and 95 % band. ``strategies``: the
    lines, in this order (default: the table's, in its order; ``accuracy_vs_sparsity`` draws exactly one).
    ``out``: the PNG (default: the study's own file name). The footer names the data as the table records it
    (``csv_data_label``: kind, data set and size; the data set alone in a table written before the data
    columns), the seeds, the failed runs and the table, never an absolute path. Returns ``out``."""
    from .tables import read_csv

    columns, name, draw = CSV_FIGURES[kind]
    rows = read_csv(csv_path)
    shown = shown_path(csv_path)
    if not rows or "seed" not in rows[0] or "role" in rows[0]:
        raise ValueError(f"--figure {kind} draws a study's figure from its results.csv (one row per seed, strategy "
                         f"and k); {shown} is not one (a summary.csv has no seeds to draw the band from; a "
                         f"lottery study's figures are drawn from its log directory)")
    lacking = [c for c in columns if c not in rows[0]]
    if lacking:
        raise ValueError(f"--figure {kind} needs the column(s) {', '.join(lacking)}, which {shown} has not")
    found = list(dict.fromkeys(r["strategy"] for r in rows))
    strategies = list(strategies or found)
    unknown = [s for s in strategies if s not in found]
    if unknown:
        raise ValueError(f"{shown} has no strategy {', '.join(unknown)} (it has {', '.join(found)})")
    if kind == "accuracy_vs_sparsity" and len(strategies) != 1:
        raise ValueError(f"--figure {kind} draws one strategy: name it with --strategies (one of {', '.join(found)})")
    seeds = list(dict.fromkeys(r["seed"] for r in rows))
    parts = [f"data: {csv_data_label(rows, Path(csv_path).name)}"]
    methods = [m for m in dict.fromkeys(r.get("sparsify") for r in rows) if m not in (None, "", "none")]
    if methods:
        parts.append(f"trained with --sparsify {'+'.join(methods)}")
    if len(seeds) > 1:
        parts.append(f"{len(seeds)} seeds")
    failed = [f"seed{r['seed']}/{r['run']}" if len(seeds) > 1 else str(r["run"]) for r in rows
              if r.get("status") != "ok" and r["strategy"] in strategies]
    if failed:
        parts.append(_runs_list("failed", list(dict.fromkeys(failed))))
    parts.append(f"drawn from {shown}")
    out = Path(out) if out else Path(name.format(s=strategies[0]))
    return draw(csv_results(rows), strategies, out, "; ".join(parts))


def speedup_figure(rows: list[dict], path: Path, footer: str = "") -> Path:
    """Inference speedup over the dense network against k, one panel per batch size (from
    benchmark.py's rows): each strategy's best engine and its masked form, with the FLOP ratio
    (the ideal) dashed. A point whose row is noisy (``noisy``: its repeats spread widely) or whose
    ratio is suspect (the engine is named in ``suspect``: faster than its FLOP ratio allows) is
    circled in red (hollow marker): its timing is unreliable."""
    batches = sorted({r["batch"] for r in rows if r["batch"] > 1}) or sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 4.6), squeeze=False)
    flagged_any = False
    for ax, b in zip(axes[0], batches):
        for s in sorted({r["strategy"] for r in rows} - {"none"}, key=masks.names().index):
            engine = "shrunk" if masks.get(s).shrinks else "sparse"
            pts = sorted((r["sparsity"], r) for r in rows if r["batch"] == b and r["strategy"] in (s, "none"))
            xs = [k for k, _ in pts]
            ax.plot(xs, [r[f"{engine}_speedup"] for _, r in pts], "-", marker="o", color=COLORS[s],
                    label=f"{LABELS[s]}: {engine}")
            ax.plot(xs, [r["masked_speedup"] for _, r in pts], ":", marker=".", color=COLORS[s],
                    label=f"{LABELS[s]}: masked (as trained)")
            ax.plot(xs, [r["flop_ratio"] for _, r in pts], "--", color=COLORS[s], alpha=0.5,
                    label=f"{LABELS[s]}: FLOP ratio (ideal)")
            noisy = [str(r.get("noisy")) == "True" for _, r in pts]
            flagged = [(k, r[f"{engine}_speedup"]) for (k, r), n in zip(pts, noisy)
                       if n or engine in str(r.get("suspect") or "").split()]
            flagged += [(k, r["masked_speedup"]) for (k, r), n in zip(pts, noisy) if n]
            if flagged:
                flagged_any = True
                ax.scatter(*zip(*flagged), s=110, facecolors="none", edgecolors="red", linewidths=1.5, zorder=5)
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("sparsity k (%)")
        ax.set_ylabel("speedup over the dense network (x)")
        ax.set_title(f"inference, batch {b}")
        ax.grid(alpha=0.3, which="both")
    if flagged_any:  # one legend entry, in the panel that has the legend
        axes[0][0].scatter([], [], s=110, facecolors="none", edgecolors="red", linewidths=1.5,
                           label="unreliable: noisy repeats, or faster than the FLOP ratio allows")
    axes[0][0].legend(fontsize=7)
    return _finish(fig, path, footer)
