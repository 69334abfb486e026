"""What pruning keeps of the input: pictures of a study's saved first layers.

* MLP studies: ``pixels_weight.png``, how many first-layer connections each input pixel keeps under
  weight pruning (the dense network and each sparsity, one shared colour bar), and
  ``dead_pixels_neuron.png``, the pixels that feed no surviving unit under neuron pruning (no nonzero
  first-layer weight of theirs lies on an input-to-output path);
* CNN studies (the first weight layer is a convolution): ``filters_weight.png`` and
  ``filters_neuron.png``, the first convolution's filters, one row per sparsity (the dense network
  first) and one column per original filter; a removed filter is a grey, crossed-out panel.

The array functions are pure NumPy (no TensorFlow); ``interpretability_figures`` reads the saved models
(``model.keras``) of one replicate of a study and writes the figures its finished runs allow.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .. import paths  # noqa: E402
from ..deploy import shrink  # noqa: E402
from .figure import data_notice  # noqa: E402
from .results import read_result, read_all_results  # noqa: E402

# the figures' file names ({s}: the strategy whose runs they show); written where the caller says
WEIGHT, NEURON = "weight", "neuron"  # the strategies drawn: weight granularity, unit granularity
SPARSITIES = (50.0, 90.0, 97.0)  # the pruned runs drawn, after the dense one (k = 0)
DPI = 110  # as pruning.report.plots
DEAD_COLOR = "0.85"  # a removed filter's panel


# --------------------------------------------------------------------------- pure NumPy
def pixel_connections(first_kernel: np.ndarray, side: int = 28) -> np.ndarray:
    """(side, side) int map: the nonzero entries of each input pixel's row of the first layer's
    (side * side, units) effective kernel (kernel x mask), i.e. the connections the pixel keeps."""
    w = np.asarray(first_kernel)
    if w.ndim != 2 or w.shape[0] != side * side:
        raise ValueError(f"a first-layer kernel of shape {w.shape} does not read {side}x{side} pixels")
    return np.count_nonzero(w, axis=1).reshape(side, side).astype(np.int64)


def dead_pixels(kernels: list[np.ndarray], side: int = 28) -> np.ndarray:
    """(side, side) bool map: the pixel feeds no surviving unit, i.e. no entry of its first-layer row is
    nonzero and on an input-to-output path (``shrink.effective_entries``). ``kernels`` are the effective
    kernels of the whole network at full size (``shrink.expand_arrays``, kernel x mask)."""
    first = shrink.effective_entries([np.asarray(k) for k in kernels])[0]
    if first.ndim != 2 or first.shape[0] != side * side:
        raise ValueError(f"a first-layer kernel of shape {first.shape} does not read {side}x{side} pixels")
    return ~first.any(axis=1).reshape(side, side)


def filter_images(conv_kernel: np.ndarray, alive) -> list[np.ndarray]:
    """One (k, k) float image per filter of a (k, k, 1, F) kernel, in filter order; a filter that is not
    ``alive`` is all NaN (nothing to draw)."""
    w = np.asarray(conv_kernel, dtype=np.float64)
    alive = np.asarray(alive, dtype=bool).reshape(-1)
    if w.ndim != 4 or w.shape[2] != 1:
        raise ValueError(f"expected a (k, k, 1, filters) kernel, got {w.shape}")
    if alive.size != w.shape[-1]:
        raise ValueError(f"an alive mask of {alive.size} for {w.shape[-1]} filters")
    return [w[:, :, 0, f].copy() if alive[f] else np.full(w.shape[:2], np.nan) for f in range(w.shape[-1])]


# --------------------------------------------------------------------------- figures
def _k_label(k: float) -> str:
    return "dense" if float(k) == 0.0 else f"k = {paths.format_sparsity(k)}%"


def _save(fig, path, title: str | None, footer: str = "", notice: str | None = None) -> Path:
    """Title (the data notice in red above it, as pruning.report.plots does), footer, save, close."""
    heading = "\n".join(t for t in (notice, title) if t)
    if heading:
        st = fig.suptitle(heading, fontsize=11)
        if notice:
            st.set_color("firebrick")
    if footer:  # a figure-level label, so the constrained layout leaves room for it
        fig.supxlabel(footer, x=0.01, ha="left", fontsize=7, color="dimgray", wrap=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _panels(n: int, size: float = 2.6):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 1.2, size * rows + 1.0), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def pixel_map_figure(maps: dict, path, title: str, footer: str = "", notice: str | None = None) -> Path:
    """One panel per sparsity k (in the dict's order) of a (side, side) map, each with its own colour bar
    from 0 to its largest value (at k = 97 % a pixel keeps a few dozen connections of the dense
    network's 1,000: one shared scale would leave those panels black); a panel's title gives k and how
    many pixels are at 0 ("with none")."""
    if not maps:
        raise ValueError("no maps to draw")
    fig, axes = _panels(len(maps))
    for ax, (k, m) in zip(axes.flat, maps.items()):
        m = np.asarray(m)
        image = ax.imshow(m, cmap="viridis", vmin=0, vmax=max(1.0, float(m.max())), interpolation="nearest")
        ax.set_title(f"{_k_label(k)}: {int(np.count_nonzero(m == 0))} px with none", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.75, label="connections kept" if ax is axes.flat[0] else None)
    return _save(fig, path, title, footer, notice)


def dead_pixel_figure(maps: dict, path, title: str | None = None, footer: str = "",
                      notice: str | None = None) -> Path:
    """One panel per sparsity k of a (side, side) boolean map: dead pixels (feeding no surviving unit)
    black on white, their count in the panel's title."""
    if not maps:
        raise ValueError("no maps to draw")
    fig, axes = _panels(len(maps))
    for ax, (k, m) in zip(axes.flat, maps.items()):
        m = np.asarray(m, dtype=bool)
        ax.imshow(m, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{_k_label(k)}: {int(m.sum())} of {m.size} dead", fontsize=9)
    title = title or "input pixels that feed no surviving unit (black)"
    return _save(fig, path, title, footer, notice)


def filter_figure(filters_by_k: dict, path, title: str | None = None, footer: str = "",
                  notice: str | None = None) -> Path:
    """Rows: sparsities (the dict's order); columns: the original filters. ``filters_by_k[k]`` is
    ``(images, alive, indices)``: ``images[i]`` (a (k, k) array) is drawn in column ``indices[i]``, and
    ``alive`` (one flag per original filter) says which filters survive; a removed filter's panel is grey
    with a red X. Each row has its own symmetric colour scale (+-its largest |weight|) and colour bar."""
    if not filters_by_k:
        raise ValueError("no filters to draw")
    n_cols = max(len(np.asarray(alive).reshape(-1)) for _, alive, _ in filters_by_k.values())
    n_rows = len(filters_by_k)
    size = 0.9 if n_cols > 8 else 1.3
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(max(6.5, size * n_cols + 2.2), size * n_rows + 1.4),
                             squeeze=False, layout="constrained")
    for r, (k, (images, alive, indices)) in enumerate(filters_by_k.items()):
        alive = np.asarray(alive, dtype=bool).reshape(-1)
        by_col = {int(i): np.asarray(img, dtype=np.float64) for img, i in zip(images, indices)}
        values = [np.abs(img[np.isfinite(img)]) for c, img in by_col.items() if c < alive.size and alive[c]]
        vmax = max([float(v.max()) for v in values if v.size] + [0.0]) or 1.0
        image = None
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"#{c}", fontsize=8)
            if c == 0:
                ax.set_ylabel(_k_label(k), fontsize=9)
            if c < alive.size and alive[c] and c in by_col:
                image = ax.imshow(by_col[c], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            else:
                ax.set_facecolor(DEAD_COLOR)
                if c < alive.size:  # removed (a column past this row's filters is simply empty)
                    ax.plot([0, 1], [0, 1], color="firebrick", lw=1.2, transform=ax.transAxes)
                    ax.plot([0, 1], [1, 0], color="firebrick", lw=1.2, transform=ax.transAxes)
                ax.set_xlim(0, 1)
                ax.set_ylim(0, 1)
                ax.set_aspect("equal")
        if image is not None:
            fig.colorbar(image, ax=axes[r, :].tolist(), shrink=0.9, aspect=8, pad=0.01)
    title = title or "the first convolution's filters\nremoved: grey, crossed out; one colour scale per row"
    return _save(fig, path, title, footer, notice)


# --------------------------------------------------------------------------- a study's runs
def _replicate_dir(logdir: Path, seed_dir) -> Path:
    """The directory holding the runs: ``seed_dir`` (a seed number, or a directory, relative to
    ``logdir`` unless absolute), else the first seed's directory, else ``logdir`` itself."""
    if seed_dir is not None:
        if isinstance(seed_dir, (int, np.integer)):
            return paths.seed_dir(logdir, int(seed_dir))
        p = Path(seed_dir)
        return p if p.is_absolute() or not (logdir / p).is_dir() else logdir / p
    dirs = paths.seed_dirs(logdir)
    return dirs[0][1] if dirs else logdir


def _load(rdir: Path, name: str) -> list[np.ndarray] | None:
    """The effective kernels of a finished run (result.json says ok) at their places in the full-size
    network, read from its model.sparse (NumPy only: drawing the figures does not start TensorFlow);
    None when the run is missing or its file is damaged (the run then counts as missing)."""
    from ..deploy.sparse_format import SparseFormatError, full_size_kernels, load_sparse

    result = read_result(rdir, name)
    path = paths.sparse_model_file(rdir, name)
    if result is None or result.get("status") != "ok" or not path.is_file():
        return None
    try:
        return full_size_kernels(*load_sparse(path))
    except (SparseFormatError, OSError, KeyError, ValueError):  # damaged or foreign: counts as missing
        return None


def _conv_filters(kernels: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The first convolution's filters at their original indices: (images, alive, indices); a filter
    that is all zero (removed, or zeroed entirely by weight pruning) is gone."""
    full = kernels[0]
    alive = np.any(full != 0, axis=(0, 1, 2))
    return filter_images(full, alive), alive, np.arange(alive.size)


def interpretability_figures(logdir, out_dir, sparsities=SPARSITIES, seed_dir=None) -> list[Path]:
    """Write the study's interpretability figures to ``out_dir`` from one replicate's saved models (the
    first seed's unless ``seed_dir``, a seed number or directory, says otherwise): ``pixels_weight.png``
    and ``dead_pixels_neuron.png`` for an MLP, ``filters_weight.png`` and ``filters_neuron.png`` when the
    first weight layer is a convolution. Each has the dense run (k = 0) first, then ``sparsities`` (those
    whose run finished; the others are named in the footer). A figure with no finished pruned run is not
    written. Returns the files written."""
    logdir, out_dir = Path(logdir), Path(out_dir)
    rdir = _replicate_dir(logdir, seed_dir)
    if not rdir.is_dir():
        return []
    notice = data_notice(read_all_results(rdir))
    where = rdir.name if rdir != logdir else ""
    written: list[Path] = []
    loaded: dict[str, object] = {}  # run name -> model or None: the dense run is read once
    for strategy in (WEIGHT, NEURON):
        ks = [0.0] + sorted({float(k) for k in sparsities} - {0.0})
        models, missing = {}, []
        for k in ks:
            name = paths.run_name(strategy, k)
            if name not in loaded:
                loaded[name] = _load(rdir, name)
            model = loaded[name]
            if model is None:
                missing.append(name)
            else:
                models[k] = model
        if not any(k != 0.0 for k in models):
            continue
        footer = "; ".join(p for p in (f"runs: {where}" if where else "",
                                       "runs not found: " + ", ".join(missing) if missing else "") if p)
        shape = next(iter(models.values()))[0].shape
        if len(shape) == 4:  # a convolution reads the image
            if shape[2] != 1:
                continue  # several image channels: no single-channel filter pictures
            drawn = {k: _conv_filters(m) for k, m in models.items()}
            label = "weight pruning" if strategy == WEIGHT else "filter (neuron) pruning"
            written.append(filter_figure(drawn, out_dir / paths.FILTERS_PNG.format(s=strategy),
                                         f"the first convolution's filters under {label}\n"
                                         "removed: grey, crossed out; one colour scale per row", footer, notice))
            continue
        arrays = models
        pixels = next(iter(arrays.values()))[0].shape[0]
        side = math.isqrt(pixels)
        if side * side != pixels:
            continue  # not square images: no pixel map
        if strategy == WEIGHT:
            maps = {k: pixel_connections(a[0], side) for k, a in arrays.items()}
            written.append(pixel_map_figure(maps, out_dir / paths.PIXELS_PNG.format(s=strategy),
                                            "first-layer connections kept per input pixel (weight pruning)",
                                            footer, notice))
        else:
            maps = {k: dead_pixels(a, side) for k, a in arrays.items()}
            written.append(dead_pixel_figure(maps, out_dir / paths.DEAD_PIXELS_PNG.format(s=strategy),
                                             "input pixels that feed no surviving unit (black; neuron pruning)",
                                             footer, notice))
    return written
