"""Several studies in one figure, from their committed CSV files: ``python plotting.py --from-csv A/summary.csv
B/summary.csv --figure effective --figure-out FILE.png``.

One line per (study, strategy): ``--key`` (default: test accuracy after retraining) as its mean over the seeds,
with the 95 % confidence band, against the effective sparsity (``effective``), the fraction of hidden units
alive (``units``: what a unit-pruned network physically keeps) or the nominal k (``k``). A study is named by its
network, data set and ``--sparsify`` method (``tables.study_label``), so a plain study and one trained with a
sparsity-inducing method can be drawn side by side.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..core import masks  # noqa: E402
from .figure import finish, shown_path  # noqa: E402
from .tables import TITLES, read_summary, study_label  # noqa: E402

AXES = {"effective": ("effective_sparsity_mean", "effective sparsity (%): weights that can reach the output, removed"),
        "units": ("units_kept_mean", "hidden units kept (%)"),
        "k": ("sparsity", "nominal sparsity k (%)")}
STYLES = ("-", "--", ":", "-.")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def compare_figure(csv_paths, x: str = "effective", key: str = "test_accuracy", strategies=None,
                   out: str | Path = "compare.png", log_x: bool | None = None) -> Path:
    """Draw the studies of ``csv_paths`` (summary.csv or results.csv files) in one figure; returns ``out``."""
    if x not in AXES:
        raise ValueError(f"--figure {x!r}: choose one of {', '.join(AXES)}")
    column, xlabel = AXES[x]
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    drawn, used = 0, []
    for i, path in enumerate(csv_paths):
        rows = read_summary(path)
        label = study_label(rows, path)
        names = list(dict.fromkeys(r["strategy"] for r in rows))
        for s in [s for s in (strategies or names) if s in names]:
            pts = sorted((r for r in rows if r["strategy"] == s and _finite(r.get(column))
                          and _finite(r.get(f"{key}_mean"))), key=lambda r: r[column])
            if x == "effective":  # the dense point, and a network with nothing left (every unit of a layer
                # removed: a constant, which would stretch the log axis to 99.9999 %), are not drawn
                pts = [r for r in pts if float(r["sparsity"]) > 0 and r[column] < 0.99995] or pts
            if not pts:
                continue
            xs = [100 * r[column] if x != "k" else r[column] for r in pts]
            ys = [100 * r[f"{key}_mean"] for r in pts]
            hw = [100 * r[f"{key}_ci95"] if _finite(r.get(f"{key}_ci95")) else 0.0 for r in pts]
            strat = masks.STRATEGIES.get(s)
            color = f"C{drawn % 10}"
            ax.plot(xs, ys, STYLES[i % len(STYLES)], marker="o", ms=3.5, color=color,
                    label=f"{label} · {strat.label if strat else s}")
            ax.fill_between(xs, [max(0.0, y - h) for y, h in zip(ys, hw)], [min(100.0, y + h) for y, h in zip(ys, hw)],
                            color=color, alpha=0.15, lw=0)  # an accuracy's band, clipped to 0-100 %
            drawn += 1
            if path not in used:
                used.append(path)
    if not drawn:
        plt.close(fig)
        raise ValueError(f"no study of {', '.join(map(str, csv_paths))} has {column} and {key} to draw (units kept "
                         f"is in tables of studies run since it was recorded)")
    if x == "units":
        ax.invert_xaxis()  # fewer units to the right, as sparsity grows to the right
    if log_x if log_x is not None else x == "effective":
        ax.set_xscale("function", functions=(lambda v: -_log1m(v), lambda v: 100 - 100 * 10 ** (-v)))
        ax.set_xticks([0, 50, 80, 90, 95, 97, 99, 99.9])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{TITLES.get(key, key).split(' (')[0]} (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower left")
    footer = ("mean over the seeds with 95 % confidence band (Student t); from " +  # the files drawn, only
              ", ".join(shown_path(p) for p in used))
    return finish(fig, Path(out), footer)


def _log1m(v):
    import numpy as np

    return np.log10(np.maximum(1e-6, 1 - np.asarray(v, dtype=float) / 100))
