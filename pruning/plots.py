"""Figures from a study's written results (result.json files), never its internals.

``make_figures(logdir, out)`` writes every figure it can from the runs that exist and
returns (written files, missing run names). Missing runs are named in the figures'
footers and in the return value.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from . import paths  # noqa: E402
from .results import read_all_results, read_json  # noqa: E402

COLORS = {"weight": "tab:blue", "neuron": "tab:orange"}
LABELS = {"weight": "weight pruning", "neuron": "neuron (unit) pruning"}


def _ok(results):
    return [r for r in results if r.get("status") == "ok"]


def _curve(results, strategy, key):
    """(sparsities, values) for one strategy, the dense run as k = 0, sorted by sparsity."""
    pts = sorted(
        (float(r["config"]["sparsity"]), r[key])
        for r in _ok(results)
        if (r["config"]["strategy"] in (strategy, "none")) and r.get(key) is not None
    )
    return [p[0] for p in pts], [100 * p[1] for p in pts]


def _finish(fig, path: Path, footer: str) -> Path:
    if footer:
        fig.text(0.01, 0.005, footer, fontsize=7, color="dimgray", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.04 if footer else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


ZOOM_FLOOR = 95.0  # the right-hand panel of accuracy-vs-sparsity figures shows 95-100 %


def _sparsity_plot(series, title: str, path: Path, footer: str) -> Path:
    """Accuracy against sparsity: the full range on the left, a zoom on 95-100 % on the right
    (where the strategies differ at high sparsity). ``series``: (xs, ys, style, color, label)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, zoom in zip(axes, (False, True)):
        for xs, ys, style, color, label in series:
            ax.plot(xs, ys, style, marker="o", color=color, label=label)
        ax.set_xlabel("sparsity of each hidden layer (% of weights or units removed)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title if not zoom else f"zoom on {ZOOM_FLOOR:g}-100 %")
        ax.grid(alpha=0.3)
        if zoom:
            ax.set_ylim(ZOOM_FLOOR, 100.2)
    if series:
        axes[0].legend(fontsize=8)
    return _finish(fig, path, footer)


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


def epochs_figure(results, strategy, path, footer="") -> Path:
    """Accuracy per epoch, each k in its colour, on one epoch axis: a run that starts from another
    run's model (retraining, iterative chains) is drawn after that run's epochs."""
    runs = sorted(
        (r for r in _ok(results) if r["config"]["strategy"] in (strategy, "none") and r.get("history")),
        key=lambda r: float(r["config"]["sparsity"]),
    )
    offsets = _epoch_offsets(_ok(results))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(runs):
        k = paths.format_sparsity(r["config"]["sparsity"])
        color = cmap(i / max(1, len(runs) - 1))
        start = offsets.get(r["run"], 0)
        for ax, key in zip(axes, ("accuracy", "test_accuracy")):
            ys = [100 * v for v in r["history"].get(key, [])]
            ax.plot(range(start + 1, start + len(ys) + 1), ys, marker=".", color=color, label=f"k = {k}%")
    for ax, which in zip(axes, ("train (running mean over each epoch)", "test")):
        ax.set_xlabel("epoch (a retrained run follows the run it started from)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{LABELS[strategy]}: {which} accuracy")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if runs:
        axes[1].legend(fontsize=7, ncol=2)
    return _finish(fig, path, footer)


def sparsity_figure(results, strategy, path, footer="") -> Path:
    series = [(*_curve(results, strategy, key), style, COLORS[strategy], f"{label} (retrained)")
              for key, style, label in (("train_accuracy", "--", "train"), ("test_accuracy", "-", "test"))]
    return _sparsity_plot(series, f"{LABELS[strategy]}: accuracy against sparsity", path, footer)


def compare_figure(results, strategies, key, path, footer="") -> Path:
    which = "train" if key == "train_accuracy" else "test"
    series = [(*_curve(results, s, key), "-", COLORS[s], LABELS[s]) for s in strategies]
    return _sparsity_plot(series, f"weight vs neuron pruning: {which} accuracy (retrained)", path, footer)


def oneshot_figure(results, strategies, path, footer="") -> Path:
    series = [(*_curve(results, s, key), style, COLORS[s], f"{LABELS[s]}, {label}")
              for s in strategies
              for key, style, label in (("oneshot_test_accuracy", ":", "one-shot"), ("test_accuracy", "-", "retrained"))]
    return _sparsity_plot(series, "one-shot (no retraining) against retrained: test accuracy", path, footer)


def _effective_curve(results, strategy):
    """(effective sparsity %, test accuracy %) of one strategy's retrained runs and the dense run."""
    pts = sorted(
        (100 * r["size"]["effective_sparsity"], 100 * r["test_accuracy"])
        for r in _ok(results)
        if r["config"]["strategy"] in (strategy, "none") and (r.get("size") or {}).get("effective_sparsity") is not None
    )
    return [p[0] for p in pts], [p[1] for p in pts]


def effective_figure(results, strategies, path, footer="") -> Path:
    """Test accuracy against *effective* sparsity: the fraction of the dense network's weights that
    are zero or can no longer reach the output. Neuron pruning at k% removes more than k% of the
    weights (a dead unit takes its outgoing row too), so this is the like-for-like comparison."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for s in strategies:
        xs, ys = _effective_curve(results, s)
        axes[0].plot(xs, ys, "-", marker="o", color=COLORS[s], label=LABELS[s])
        axes[1].plot([100 - x for x in xs], ys, "-", marker="o", color=COLORS[s], label=LABELS[s])
    axes[0].set_xlabel("effective sparsity (% of the dense network's weights gone or unable to matter)")
    axes[0].set_title("test accuracy against effective sparsity")
    axes[1].set_xscale("log")
    axes[1].invert_xaxis()
    axes[1].set_ylim(ZOOM_FLOOR, 100.2)
    axes[1].set_xlabel("weights that still matter (% of dense, log scale)")
    axes[1].set_title(f"the same, zoom on {ZOOM_FLOOR:g}-100 % accuracy")
    for ax in axes:
        ax.set_ylabel("test accuracy (%), retrained")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    return _finish(fig, path, footer)


FIGURES = {
    "accuracy_vs_epoch_{s}.png": "train and test accuracy per epoch for each k, one figure per strategy",
    "accuracy_vs_sparsity_{s}.png": "train and test accuracy against sparsity, one figure per strategy",
    "compare_train.png": "the two strategies compared, train accuracy",
    "compare_test.png": "the two strategies compared, test accuracy",
    "oneshot_vs_retrained.png": "one-shot against retrained test accuracy, both strategies",
    "accuracy_vs_effective_sparsity.png": "test accuracy against effective sparsity (weights that can no "
                                          "longer reach the output count as pruned), both strategies",
}


def make_figures(logdir, out) -> tuple[list[Path], list[str]]:
    """Write every figure from the runs under ``logdir``; return (files, missing run names)."""
    logdir, out = Path(logdir), Path(out)
    results = read_all_results(logdir)
    expected, strategies = [], ["weight", "neuron"]
    if paths.study_file(logdir).exists():
        study = read_json(paths.study_file(logdir))
        expected, strategies = study.get("runs", []), study["study"]["strategies"]
    finished = {r["run"] for r in _ok(results)}
    failed = sorted(r["run"] for r in results if r.get("status") != "ok")
    missing = [n for n in expected if n not in finished and n not in failed]
    parts = []
    if results:
        d = results[0].get("data") or {}
        parts.append(f"data: {d.get('source', '?')} ({d.get('train_examples', '?')} train / {d.get('test_examples', '?')} test)")
    if missing:
        parts.append("missing runs: " + ", ".join(missing))
    if failed:
        parts.append("failed runs: " + ", ".join(failed))
    footer = "; ".join(parts)
    files = []
    for s in strategies:
        files.append(epochs_figure(results, s, out / f"accuracy_vs_epoch_{s}.png", footer))
        files.append(sparsity_figure(results, s, out / f"accuracy_vs_sparsity_{s}.png", footer))
    files.append(compare_figure(results, strategies, "train_accuracy", out / "compare_train.png", footer))
    files.append(compare_figure(results, strategies, "test_accuracy", out / "compare_test.png", footer))
    files.append(oneshot_figure(results, strategies, out / "oneshot_vs_retrained.png", footer))
    files.append(effective_figure(results, strategies, out / "accuracy_vs_effective_sparsity.png", footer))
    return files, missing + failed


def speedup_figure(rows: list[dict], path: Path, footer: str = "") -> Path:
    """Inference speedup over the dense network against k, one panel per batch size (from
    benchmark.py's rows): each strategy's best engine and its masked form, with the FLOP ratio
    (the ideal) dashed."""
    batches = sorted({r["batch"] for r in rows if r["batch"] > 1}) or sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 4.6), squeeze=False)
    for ax, b in zip(axes[0], batches):
        for s, engine in (("weight", "sparse"), ("neuron", "shrunk")):
            pts = sorted((r["sparsity"], r) for r in rows if r["batch"] == b and r["strategy"] in (s, "none"))
            xs = [k for k, _ in pts]
            ax.plot(xs, [r[f"{engine}_speedup"] for _, r in pts], "-", marker="o", color=COLORS[s],
                    label=f"{LABELS[s]}: {engine}")
            ax.plot(xs, [r["masked_speedup"] for _, r in pts], ":", marker=".", color=COLORS[s],
                    label=f"{LABELS[s]}: masked (as trained)")
            ax.plot(xs, [r["flop_ratio"] for _, r in pts], "--", color=COLORS[s], alpha=0.5,
                    label=f"{LABELS[s]}: FLOP ratio (ideal)")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("sparsity k (%)")
        ax.set_ylabel("speedup over the dense network (x)")
        ax.set_title(f"inference, batch {b}")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7)
    return _finish(fig, path, footer)
