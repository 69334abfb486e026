"""Replicates summarized: mean, sample standard deviation and 95 % confidence half-width (Student t)
per (strategy, sparsity), always recomputed from the per-seed rows of results.csv."""
from __future__ import annotations

import math

from .. import paths
from .results import IDENTITY_COLUMNS  # what a table describes; summary rows carry it as results.csv rows do

SUMMARY_KEYS = ("test_accuracy", "oneshot_test_accuracy", "effective_sparsity")
SUMMARY_COLUMNS = ("strategy", "sparsity", "seeds", "n_ok",
                   *(f"{key}_{stat}" for key in SUMMARY_KEYS for stat in ("mean", "sd", "ci95")), *IDENTITY_COLUMNS,
                   "units_kept_mean", "units_kept_sd", "units_kept_ci95")  # units: only when results.csv has them


def identity_of(rows: list[dict]) -> dict:
    """The ``IDENTITY_COLUMNS`` a group of results.csv rows shares: each column's value when every row
    that has one agrees, the distinct values joined by "+" when they differ, absent when no row has one
    (a table written before the columns existed)."""
    out = {}
    for col in IDENTITY_COLUMNS:
        values = list(dict.fromkeys(r[col] for r in rows if r.get(col) not in (None, "")))
        if values:
            out[col] = "+".join(map(str, values))
    return out

def t975(df: int) -> float:
    """t(0.975, df), the two-sided 95 % quantile of Student's t with ``df`` degrees of freedom
    (``scipy.stats.t.ppf``; NaN for df < 1). ``t975(2)`` is 4.3027: three seeds' half-width is
    2.48 standard deviations."""
    if df < 1:
        return math.nan
    from scipy.stats import t  # imported on first use: the command line starts without it

    return float(t.ppf(0.975, df))


def mean_ci(values) -> tuple[float, float, float]:
    """(mean, sample standard deviation, 95 % confidence half-width = t(0.975, n-1) x sd / sqrt(n)) of
    the values that are numbers; sd and half-width are NaN for fewer than two."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(v) / n
    if n < 2:
        return mean, math.nan, math.nan
    # equal values have no spread: exactly 0, not the rounding error of their mean (1e-17)
    sd = 0.0 if min(v) == max(v) else math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    return mean, sd, t975(n - 1) * sd / math.sqrt(n)


def summarize(rows: list[dict]) -> list[dict]:
    """One row per (strategy, sparsity) over the seeds of ``rows`` (results.csv rows): how many seeds,
    how many finished ok, and the mean, sd and 95 % half-width of each of ``SUMMARY_KEYS`` over the
    finished ones. Never stored by hand: always recomputed from the per-seed rows."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], float(r["sparsity"])), []).append(r)
    out = []
    for (strategy, k), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        row = {"strategy": strategy, "sparsity": k, "seeds": len(rs), "n_ok": len(ok)}
        for key in SUMMARY_KEYS:
            mean, sd, hw = mean_ci(r.get(key) for r in ok)
            row.update({f"{key}_mean": mean, f"{key}_sd": sd, f"{key}_ci95": hw})
        if any(r.get("units_kept") not in (None, "") for r in ok):  # the fraction of hidden units alive
            mean, sd, hw = mean_ci(r.get("units_kept") for r in ok)
            row.update({"units_kept_mean": mean, "units_kept_sd": sd, "units_kept_ci95": hw})
        out.append({**row, **identity_of(rs)})
    return out


def format_summary(rows: list[dict]) -> str:
    """The summary as aligned text: mean +- 95 % half-width in percent, over n seeds."""
    def pm(r, key):
        mean, hw = r[f"{key}_mean"], r[f"{key}_ci95"]
        if mean is None or not math.isfinite(mean):
            return ""
        return f"{100 * mean:.2f}" + (f" +- {100 * hw:.2f}" if hw is not None and math.isfinite(hw) else "")

    head = (f"{'strategy':<13} {'k%':>5} {'seeds':>5} {'one-shot':>15} {'final':>15} {'effective':>15}")
    lines = [head, "-" * len(head)]
    for r in rows:
        n = f"{r['n_ok']}" + ("" if r["n_ok"] == r["seeds"] else f"/{r['seeds']}")
        lines.append(f"{r['strategy']:<13} {paths.format_sparsity(r['sparsity']):>5} {n:>5} "
                     f"{pm(r, 'oneshot_test_accuracy'):>15} {pm(r, 'test_accuracy'):>15} "
                     f"{pm(r, 'effective_sparsity'):>15}")
    lines.append("mean +- 95% confidence half-width (Student t over the seeds), test accuracy in %; seeds: "
                 "finished / planned when some failed")
    return "\n".join(lines)


def pm_cell(r: dict | None, key: str) -> str:
    """One cell of a Markdown table: ``key``'s mean ± 95 % half-width of summary row ``r`` in percent
    (the mean alone for one seed; "(n of N seeds)" when some failed; "failed" when none finished)."""
    if r is None:
        return ""
    mean, hw = r[f"{key}_mean"], r[f"{key}_ci95"]
    if mean is None or not math.isfinite(mean):
        return "failed" if r["n_ok"] == 0 else ""
    text = f"{100 * mean:.2f}" + (f" ± {100 * hw:.2f}" if hw is not None and math.isfinite(hw) else "")
    return text + (f" ({r['n_ok']} of {r['seeds']} seeds)" if r["n_ok"] < r["seeds"] else "")


def markdown_table(rows: list[dict], key: str, strategies, sparsities=None) -> str:
    """``key`` (one of ``SUMMARY_KEYS``) of the summary ``rows`` as a Markdown table: one row per k (every
    k of ``rows``, or ``sparsities``), one column per strategy, each cell as ``pm_cell`` writes it."""
    by = {(r["strategy"], float(r["sparsity"])): r for r in rows}
    ks = sorted({k for _, k in by}) if sparsities is None else [float(k) for k in sparsities]
    lines = ["| k (%) | " + " | ".join(strategies) + " |", "|---:|" + "---:|" * len(strategies)]
    for k in ks:
        lines.append(f"| {paths.format_sparsity(k)} | " + " | ".join(pm_cell(by.get((s, k)), key) for s in strategies)
                     + " |")
    return "\n".join(lines)


def study_markdown(logdir) -> str:
    """The study's summary (recomputed from every seed's results) as the README's Markdown tables."""
    from .results import read_replicates, strategies_found, table_rows

    rows, strategies = [], []
    for rep in read_replicates(logdir):
        if rep.study is not None:
            strat, ks = rep.study["study"]["strategies"], rep.study["study"]["sparsities"]
        else:
            strat, ks = strategies_found(rep.results), sorted({float(r["config"]["sparsity"]) for r in rep.results})
        strategies += [s for s in strat if s not in strategies]
        mine = table_rows(rep.results, strat, ks, seed=rep.seed)
        found = {(r["strategy"], float(r["sparsity"])) for r in mine}
        # a planned run that has not finished counts as a seed without a number: "(2 of 3 seeds)"
        mine += [{"seed": rep.seed, "strategy": s, "sparsity": float(k), "status": "missing"}
                 for s in strat for k in ks if (s, float(k)) not in found]
        rows += mine
    summary = summarize(rows)
    seeds = sorted({r["seed"] for r in rows})
    title = (f"mean ± 95% confidence half-width over {len(seeds)} seeds ({', '.join(map(str, seeds))})"
             if len(seeds) > 1 else f"one seed ({seeds[0]})")
    return "\n\n".join(f"{what}, %, {title}:\n\n{markdown_table(summary, key, strategies)}" for what, key in (
        ("Test accuracy after retraining", "test_accuracy"),
        ("Test accuracy one-shot (the dense network pruned to k, not retrained)", "oneshot_test_accuracy"),
        ("Effective sparsity (weights that can no longer reach the output count as pruned)", "effective_sparsity")))
