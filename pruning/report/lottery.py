"""A lottery study's table, summary and figures (``--protocol lottery``), from its written results.

results.csv has one row per (seed, run): the dense run (level 0), every ticket level and every control;
summary.csv one row per (strategy, control, level) with the mean, sd and 95 % half-width over the seeds.
The figures put the percentage of weights remaining on a log axis (100 % on the left), the ticket
against its controls, with the dense network as a line.
"""
from __future__ import annotations

import math
from pathlib import Path

from .. import paths
from .results import IDENTITY_COLUMNS, identity, read_replicates
from .figure import data_label
from .stats import identity_of, mean_ci

ROLES = ("ticket", "reinit", "random_mask")  # the ticket and the controls (pruning.config.CONTROLS)
ROLE_STYLE = {"ticket": ("tab:blue", "o", "ticket (rewound survivors)"),
              "reinit": ("tab:red", "s", "reinit control (ticket's masks, fresh initialisation)"),
              "random_mask": ("tab:gray", "^", "random_mask control (random masks, ticket's initialisation)")}
LOTTERY_COLUMNS = ("seed", "strategy", "role", "level", "status", "remaining_percent", "remaining_prunable_percent",
                   "test_accuracy", "early_stop_test_accuracy", "early_stop_heldout_accuracy", "early_stop_epoch",
                   "early_stop_step", "train_accuracy", "epochs", "wall_time_s", "run", "parent", *IDENTITY_COLUMNS)
SUMMARY_KEYS = ("remaining_percent", "test_accuracy", "early_stop_test_accuracy", "early_stop_epoch")
SUMMARY_COLUMNS = ("strategy", "role", "level", "seeds", "n_ok",
                   *(f"{key}_{stat}" for key in SUMMARY_KEYS for stat in ("mean", "sd", "ci95")), *IDENTITY_COLUMNS)


def is_lottery(results: list[dict]) -> bool:
    return any(((r.get("config") or {}).get("hyper") or {}).get("prune", {}).get("protocol") == "lottery"
               for r in results)


def role(result: dict) -> str:
    cfg = result["config"]
    return "dense" if not cfg.get("level") else cfg.get("control") or "ticket"


def lottery_rows(results: list[dict], seed: int | None = None) -> list[dict]:
    """One row per run of one seed: the dense run first, then by strategy, level and role."""
    rows = []
    for r in results:
        cfg, lot = r["config"], r.get("lottery") or {}
        rem = lot.get("remaining") or {}
        rows.append({
            "seed": seed if seed is not None else cfg["hyper"]["train"]["seed"],
            "strategy": cfg["strategy"], "role": role(r), "level": int(cfg.get("level") or 0), "status": r["status"],
            "remaining_percent": None if rem.get("weights") is None else 100 * rem["weights"],
            "remaining_prunable_percent": None if rem.get("prunable") is None else 100 * rem["prunable"],
            "test_accuracy": r.get("test_accuracy"), "train_accuracy": r.get("train_accuracy"),
            **{k: lot.get(k) for k in ("early_stop_test_accuracy", "early_stop_heldout_accuracy", "early_stop_epoch",
                                       "early_stop_step")},
            "epochs": len((r.get("history") or {}).get("loss", [])), "wall_time_s": r.get("wall_time_s"),
            "run": r["run"], "parent": cfg.get("parent"), **identity(r),
        })
    order = {k: i for i, k in enumerate(("dense", *ROLES))}
    return sorted(rows, key=lambda row: (row["level"] > 0, row["strategy"], row["level"], order[row["role"]]))


def summarize(rows: list[dict]) -> list[dict]:
    """Per (strategy, role, level) over the seeds: seeds, finished ones, and mean, sd and 95 % half-width
    of ``SUMMARY_KEYS`` (accuracies as fractions, remaining in %, epochs) over the finished ones."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], r["role"], r["level"]), []).append(r)
    out = []
    for (strategy, rl, level), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        row = {"strategy": strategy, "role": rl, "level": level, "seeds": len(rs), "n_ok": len(ok)}
        for key in SUMMARY_KEYS:
            mean, sd, hw = mean_ci(r.get(key) for r in ok)
            row.update({f"{key}_mean": mean, f"{key}_sd": sd, f"{key}_ci95": hw})
        out.append({**row, **identity_of(rs)})
    return out


def _pm(r: dict | None, key: str, scale: float = 100.0, digits: int = 2, sep: str = " ± ") -> str:
    if r is None:
        return ""
    mean, hw = r[f"{key}_mean"], r[f"{key}_ci95"]
    if not (mean is not None and math.isfinite(mean)):
        return "failed" if r["n_ok"] == 0 else ""
    text = f"{scale * mean:.{digits}f}" + (f"{sep}{scale * hw:.{digits}f}" if hw is not None and math.isfinite(hw) else "")
    return text + (f" ({r['n_ok']} of {r['seeds']} seeds)" if r["n_ok"] < r["seeds"] else "")


def _grid(summary: list[dict]):
    """(strategies, the roles present, levels per strategy, {(strategy, role, level): row}, dense row)."""
    by = {(r["strategy"], r["role"], r["level"]): r for r in summary}
    dense = next((r for r in summary if r["role"] == "dense"), None)
    strategies = list(dict.fromkeys(r["strategy"] for r in summary if r["role"] != "dense"))
    roles = [rl for rl in ROLES if any(r["role"] == rl for r in summary)]
    levels = {s: sorted({r["level"] for r in summary if r["strategy"] == s and r["role"] != "dense"}) for s in strategies}
    return strategies, roles, levels, by, dense


def format_summary(summary: list[dict]) -> str:
    """The terminal table: per level, the weights remaining and each role's test accuracy (mean +- 95 %
    half-width over the seeds), and the ticket's early-stopping epoch."""
    strategies, roles, levels, by, dense = _grid(summary)
    head = f"{'strategy':<13} {'level':>5} {'remaining%':>10} " + " ".join(f"{rl:>17}" for rl in roles) + \
           f" {'ticket stop ep.':>16}"
    lines = [head, "-" * len(head)]
    if dense:
        lines.append(f"{'dense':<13} {0:>5} {100:>10.2f} {_pm(dense, 'test_accuracy', sep=' +- '):>17} "
                     f"{' ' * 18 * (len(roles) - 1)}{_pm(dense, 'early_stop_epoch', 1, 1, ' +- '):>16}")
    for s in strategies:
        for lv in levels[s]:
            t = by.get((s, "ticket", lv))
            rem = _pm(t, "remaining_percent", 1.0, 2, " +- ").split(" +- ")[0] if t else ""
            lines.append(f"{s:<13} {lv:>5} {rem:>10} " + " ".join(
                f"{_pm(by.get((s, rl, lv)), 'test_accuracy', sep=' +- '):>17}" for rl in roles) +
                f" {_pm(t, 'early_stop_epoch', 1, 1, ' +- '):>16}")
    lines.append("test accuracy at the end of each level's training, %, mean +- 95% confidence half-width over the "
                 "seeds; remaining: % of all weights; stop ep.: the epoch of lowest loss on the held-out split")
    return "\n".join(lines)


def study_rows(logdir) -> list[dict]:
    """results.csv's rows of every seed of the lottery study under ``logdir``."""
    return [row for rep in read_replicates(logdir) for row in lottery_rows(rep.results, rep.seed)]


def markdown(logdir) -> str:
    """The published tables: one row per level; the weights remaining, the test accuracy at the end of
    training and at the early-stopping epoch of the ticket and each control, and the ticket's
    early-stopping epoch; mean ± 95 % half-width over the seeds."""
    rows = study_rows(logdir)
    summary = summarize(rows)
    seeds = sorted({r["seed"] for r in rows})
    title = (f"mean ± 95% confidence half-width over {len(seeds)} seeds ({', '.join(map(str, seeds))})"
             if len(seeds) > 1 else f"one seed ({seeds[0]})")
    return "\n\n".join(f"{what}, %, {title}:\n\n{markdown_table(summary, key)}" for key, what in MARKDOWN_KEYS.items())


MARKDOWN_KEYS = {"test_accuracy": "Test accuracy at the end of training",
                 "early_stop_test_accuracy": "Test accuracy at the early-stopping epoch (lowest held-out loss)"}


def markdown_table(summary: list[dict], key: str = "test_accuracy", only_levels=None) -> str:
    """One Markdown table of a lottery study's ``summary`` rows (``summarize``, or its summary.csv read
    back): per level (``only_levels``: those alone; the dense run always), the weights left and ``key`` of
    the ticket and each control, and the ticket's early-stopping epoch (``plotting.py --from-csv
    .../summary.csv --markdown --key KEY --levels 1,3,5``)."""
    strategies, roles, levels, by, dense = _grid(summary)
    if only_levels:
        levels = {s: [lv for lv in lvs if lv in set(only_levels)] for s, lvs in levels.items()}
    lines = ["| strategy | level | weights left (%) | " + " | ".join(roles) + " | ticket's early-stop epoch |",
             "|---|---:|---:|" + "---:|" * len(roles) + "---:|"]
    if dense:
        lines.append(f"| dense | 0 | 100 | {_pm(dense, key)} |" + " |" * (len(roles) - 1) +
                     f" {_pm(dense, 'early_stop_epoch', 1, 1)} |")
    for s in strategies:
        for lv in levels[s]:
            t = by.get((s, "ticket", lv))
            rem = f"{t['remaining_percent_mean']:.2f}" if t and t.get("remaining_percent_mean") is not None and \
                math.isfinite(t["remaining_percent_mean"]) else ""
            lines.append(f"| {s} | {lv} | {rem} | " + " | ".join(_pm(by.get((s, rl, lv)), key) for rl in roles) +
                         f" | {_pm(t, 'early_stop_epoch', 1, 1)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- figures
def _series(rows, strategy, rl, key, scale):
    """(remaining %, mean, low, high) per level of one role, over the seeds' finished runs."""
    pts = []
    for lv in sorted({r["level"] for r in rows if r["strategy"] == strategy and r["role"] == rl}):
        mine = [r for r in rows if r["strategy"] == strategy and r["role"] == rl and r["level"] == lv
                and r["status"] == "ok" and r.get(key) is not None]
        if not mine:
            continue
        x = mean_ci(r["remaining_percent"] for r in mine)[0]
        mean, _, hw = mean_ci(scale * r[key] for r in mine)
        hw = hw if math.isfinite(hw) else 0.0
        pts.append((x, mean, mean - hw, mean + hw))
    return pts


def _axes_remaining(ax):
    import matplotlib.ticker

    ax.set_xscale("log")
    ax.invert_xaxis()
    ticks = [100, 50, 20, 10, 5, 3.6, 2, 1, 0.5, 0.2, 0.1]  # 3.6: where the paper's LeNet tickets still match
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("weights remaining (% of all weights, log scale)")
    ax.grid(True, which="major", alpha=0.3)


def _draw(ax, rows, strategy, key, scale, dense_key=None):
    for rl in ROLES:
        pts = _series(rows, strategy, rl, key, scale)
        if not pts:
            continue
        color, marker, label = ROLE_STYLE[rl]
        xs, ms, lo, hi = zip(*pts)
        ax.plot(xs, ms, marker=marker, color=color, label=label, ms=4)
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, lw=0)
    dense = [r for r in rows if r["role"] == "dense" and r["status"] == "ok" and r.get(dense_key or key) is not None]
    if dense:
        mean, _, hw = mean_ci(scale * r[dense_key or key] for r in dense)
        ax.axhline(mean, color="black", ls="--", lw=1, label=f"dense network ({mean:.2f})")
        if math.isfinite(hw):
            ax.axhspan(mean - hw, mean + hw, color="black", alpha=0.08, lw=0)
    _axes_remaining(ax)


def missing_runs(rows, logdir) -> list[str]:
    """The planned runs (each seed's study.json) without a finished result: unfinished or failed."""
    reps = read_replicates(logdir)
    planned = {(rep.seed, n) for rep in reps for n in (rep.study or {}).get("runs", [])}
    done = {(r["seed"], r["run"]) for r in rows if r["status"] == "ok"}
    several = len(reps) > 1  # named as the study's other lists name them: seed<N>/ only among several seeds
    return sorted(f"seed{s}/{n}" if several else n for s, n in planned - done)


def _footer(rows, missing: list[str], results: list[dict] | None = None) -> str:
    seeds = sorted({r["seed"] for r in rows})
    data = next(((r.get("data") or {}) for r in results or [] if r.get("data")), None)
    text = (f"data: {data_label(data)}; " if data else "") + \
        f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}); mean and 95% band over the seeds"
    return text + (f"; missing or failed: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}" if missing else "")


def figures(logdir, out) -> tuple[list[Path], list[str]]:
    """The lottery figures of the study under ``logdir``, written to ``out``: per strategy, test accuracy
    against the weights remaining (at the end of training, and at the early-stopping epoch), and the
    early-stopping epoch against the weights remaining. Returns (files, missing or failed runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .figure import data_notice, finish as _finish

    logdir, out = Path(logdir), Path(out)
    rows = study_rows(logdir)
    results = [r for rep in read_replicates(logdir) for r in rep.results]
    notice = data_notice(results)
    missing = missing_runs(rows, logdir)
    footer = _footer(rows, missing, results)
    files = []
    for s in dict.fromkeys(r["strategy"] for r in rows if r["role"] != "dense"):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for ax, key, title in ((axes[0], "test_accuracy", "at the end of training"),
                               (axes[1], "early_stop_test_accuracy", "at the early-stopping epoch")):
            _draw(ax, rows, s, key, 100.0)
            ax.set_title(f"{s}: test accuracy {title}")
        axes[0].set_ylabel("test accuracy (%)")
        axes[1].legend(fontsize=8, loc="lower left")
        files.append(_finish(fig, out / paths.LOTTERY_ACCURACY_PNG.format(s=s), footer, notice))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        _draw(ax, rows, s, "early_stop_epoch", 1.0)
        ax.set_ylabel("early-stopping epoch (lowest held-out loss)")
        ax.set_title(f"{s}: when each level stops learning")
        ax.legend(fontsize=8)
        files.append(_finish(fig, out / paths.LOTTERY_EARLYSTOP_PNG.format(s=s), footer, notice))
    return files, missing
