"""What every figure of the toolkit shares: the data notice heading it, the footer naming the data and the
missing runs, and the layout that saves it. ``plots``, ``lottery`` and ``interpret`` draw with these, so
that none of them imports another's figures."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else ("?" if n is None else str(n))


def data_notice(results) -> str | None:
    """The one-line warning that must head every figure (and table) of these results, or None when
    every run used the same full data. Offline-sample runs (data source "sample:...") are not
    full-MNIST results; runs on different data sets are not comparable with each other."""
    sets: dict[tuple, int] = {}
    for r in results:
        d = r.get("data") or {}
        if d:
            key = (str(d.get("source") or "?"), d.get("train_examples"), d.get("test_examples"))
            sets[key] = sets.get(key, 0) + 1
    if not sets:
        return None
    if len(sets) == 1:
        ((source, train, test),) = sets
        if not source.startswith("sample:"):
            return None
        return f"OFFLINE SAMPLE ({_count(train)} train / {_count(test)} test digits, {source}): not full-MNIST results"
    sample = any(source.startswith("sample:") for source, _, _ in sets)
    parts = "; ".join(f"{source} ({_count(train)} train / {_count(test)} test) in {n} run{'s' * (n != 1)}"
                      for (source, train, test), n in sorted(sets.items(), key=lambda kv: kv[0][0]))
    return f"MIXED DATA{', partly OFFLINE SAMPLE' if sample else ''}: {parts}: runs not comparable"


def data_label(data: dict) -> str:
    """A run's data as a figure footer names it: the kind of source, the data set and its size, never a
    path of the machine that drew it ("idx:/home/me/mnist" is "idx: mnist, 60000 train / 10000 test"; a data
    set of one's own named by its file, "npz:/home/me/mine.npz", is "npz: mine.npz, ...").

    >>> data_label({"source": "npz:/home/me/mine.npz", "dataset": "npz:/home/me/mine.npz", "train_examples": 300,
    ...             "test_examples": 100})
    'npz: mine.npz, 300 train / 100 test'
    """
    kind = str(data.get("source") or "?").split(":", 1)[0]
    name = str(data.get("dataset") or "mnist")
    if ":" in name:  # npz:PATH, tfds:NAME: the kind is said already; of a path, the file's name only
        name = name.split(":", 1)[1].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or name
    return f"{kind}: {name}, {data.get('train_examples', '?')} train / {data.get('test_examples', '?')} test"


def csv_data_label(rows: list[dict], name: str = "results.csv") -> str:
    """The data of a results.csv's ``rows`` as a figure footer names it: as ``data_label`` does, from the
    ``data_kind``, ``dataset``, ``train_examples`` and ``test_examples`` columns. A table written before those
    columns existed records only the data set: the footer says so rather than guess the rest, and names no
    path.

    >>> csv_data_label([{"dataset": "mnist", "data_kind": "idx", "train_examples": "60000", "test_examples": "10000"}])
    'idx: mnist, 60000 train / 10000 test'

    >>> csv_data_label([{"dataset": "fashion_mnist"}, {"dataset": "fashion_mnist"}])
    'fashion_mnist (results.csv records neither its source nor its size)'
    """
    if rows and all(r.get(c) not in (None, "") for r in rows for c in ("data_kind", "train_examples", "test_examples")):
        labels = dict.fromkeys(data_label({"source": r["data_kind"], "dataset": r.get("dataset") or "mnist",
                                           "train_examples": int(float(r["train_examples"])),
                                           "test_examples": int(float(r["test_examples"]))}) for r in rows)
        return "; ".join(labels)
    sets = list(dict.fromkeys(str(r["dataset"]) for r in rows if r.get("dataset") not in (None, "")))
    return f"{'+'.join(sets) or 'not recorded'} ({name} records neither its source nor its size)"


def shown_path(path) -> str:
    """A file as a figure footer names it: relative to the working directory when it lies inside it, else by its
    name alone, never by an absolute path of the machine that drew the figure.

    >>> shown_path("docs/figures/cnn-mnist/results.csv"), shown_path("/elsewhere/study/results.csv")
    ('docs/figures/cnn-mnist/results.csv', 'results.csv')
    """
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError):
        return p.name


FOOTER_PT = 7
MISSING_SHOWN = 8  # a footer names this many missing (or failed) runs, then counts the rest


def runs_list(kind: str, names: list[str]) -> str:
    """``missing runs: a, b, ... and N more`` (every name is in make_figures' return value)."""
    shown = ", ".join(names[:MISSING_SHOWN])
    more = f" and {len(names) - MISSING_SHOWN} more" if len(names) > MISSING_SHOWN else ""
    return f"{kind} runs ({len(names)}): {shown}{more}"


def finish(fig, path: Path, footer: str, notice: str | None = None) -> Path:
    """Footer, ``notice`` (data_notice) as the figure's title in red, layout, save, close."""
    if notice:
        fig.suptitle(notice, color="firebrick", fontweight="bold", fontsize=11)
    bottom = 0.0
    if footer:
        # wrapped here, not by matplotlib, so the layout can reserve exactly the lines it takes
        width_in, height_in = fig.get_size_inches()
        lines = textwrap.wrap(footer, width=max(40, int(width_in * 72 / (0.6 * FOOTER_PT))))
        fig.text(0.01, 0.005, "\n".join(lines), fontsize=FOOTER_PT, color="dimgray", va="bottom")
        bottom = min(0.5, (len(lines) * 1.25 * FOOTER_PT + 4) / (height_in * 72) + 0.02)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
