"""Where a study's time went, from the runs' written ``timing`` (``pruning.study.run.Clock``): the
epochs (training and the per-epoch validation) against everything else a run does."""
from __future__ import annotations

import statistics
from datetime import datetime

EPOCH_KINDS = ("train", "validation")
OVERHEAD_KINDS = ("eval", "masks", "io", "other")
LABELS = {"train": "training", "validation": "per-epoch validation", "eval": "evaluation",
          "masks": "masks", "io": "I/O and sizes", "other": "other"}


def started_since(results: list[dict], t0: float) -> list[dict]:
    """The results of runs that started at or after ``t0`` (``time.time()``): those trained now."""
    def start(r):
        try:
            return datetime.strptime(r.get("started", ""), "%Y-%m-%dT%H:%M:%S%z").timestamp()
        except ValueError:
            return -1.0
    return [r for r in results if r.get("timing") and start(r) >= int(t0)]


def totals(results: list[dict]) -> dict[str, float]:
    """Seconds per kind of work, summed over the runs (which overlap when workers run side by side)."""
    out = dict.fromkeys(EPOCH_KINDS + OVERHEAD_KINDS, 0.0)
    for r in results:
        for kind in out:
            out[kind] += float((r.get("timing") or {}).get(f"{kind}_s", 0.0))
    return out


def dense_epoch_s(results: list[dict]) -> float | None:
    """The median wall time of a dense run's epochs (validation included), or None."""
    epochs = [e for r in results if r.get("run") == "dense" for e in (r.get("timing") or {}).get("epoch_s", [])]
    return statistics.median(epochs) if epochs else None


def format_timing(results: list[dict], wall_s: float, dense_epoch: float | None) -> str:
    """The study's closing lines on time: the runs' time by kind, the share that is not an epoch, and
    the study's wall time in dense epochs (a ratio that does not depend on the machine's speed)."""
    t = totals(results)
    runs = sum(t.values())
    if not results or runs <= 0:
        return "time: no run was trained by this command"
    overhead = sum(t[k] for k in OVERHEAD_KINDS)
    parts = ", ".join(f"{LABELS[k]} {t[k] / 60:.1f}" for k in EPOCH_KINDS + OVERHEAD_KINDS)
    lines = [f"time in the {len(results)} run(s) trained now, summed over runs (workers overlap), in min: {parts}; "
             f"outside the epochs: {100 * overhead / runs:.0f}% of the runs' time"]
    if dense_epoch:
        lines.append(f"study wall time {wall_s / 60:.1f} min = {wall_s / dense_epoch:.0f} dense epochs "
                     f"(median dense epoch {dense_epoch:.1f} s, validation included)")
    return "\n".join(lines)
