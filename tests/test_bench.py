"""pruning.deploy.bench without a study: timing spread, row marks, the engines' agreement check, the
terminal table and the load warning. Timings are only compared with generous margins: these tests
check behaviour, not speed."""
import itertools
import time

import pytest

from pruning.deploy.bench import BenchmarkError, ENGINES, NOISY_SPREAD, SUSPECT_MARGIN, TOLERANCE, Timing, benchmark_summary, check_agreement, format_benchmark, load_warning, machine_load, mark_row, relative_spread, summary_line, timed_rounds


def _row(run="weight_k90", batch=100, flop_ratio=10.0, spread=0.02, **speedups) -> dict:
    """A benchmark row as latency_rows builds it, before mark_row."""
    row = {"run": run, "strategy": run.split("_")[0], "sparsity": 90.0, "batch": batch, "flop_ratio": flop_ratio,
           "sparse_plan": "ssssd", "dense_ms": 5.0}
    for k in ENGINES:
        row[f"{k}_speedup"] = speedups.get(k, 1.0)
        row[f"{k}_ms"] = 5.0 / row[f"{k}_speedup"]
        row[f"{k}_spread"] = spread
    row.update(sparse_max_abs_diff=1e-6, shrunk_max_abs_diff=1e-6)
    return row


# ---------------------------------------------------------------------------- spread


def test_relative_spread_is_the_interquartile_range_over_the_median():
    assert relative_spread([2.0] * 9) == 0.0
    assert relative_spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((4 - 2) / 3)
    assert relative_spread([1.0]) == 0.0
    # a lone hiccup moves neither the median nor the quartiles much
    assert relative_spread([1.0] * 15 + [50.0]) == 0.0


def test_timed_rounds_reports_a_large_spread_for_an_erratic_function_and_a_small_one_for_a_steady_one():
    calls = itertools.count()

    def erratic():
        time.sleep(0.001 if next(calls) % 2 else 0.02)

    t = timed_rounds({"erratic": erratic, "steady": lambda: time.sleep(0.01)}, repeats=20, warmup=0, pause=0)
    assert isinstance(t["erratic"], Timing) and t["erratic"].repeats == t["steady"].repeats == 20
    assert t["erratic"].spread > 0.8  # about (20 - 1) / 10.5 = 1.8 on any machine
    assert t["steady"].spread < 0.5
    assert t["steady"].median >= 0.01 and t["erratic"].median >= 0.001


def test_timed_rounds_times_at_least_one_call_per_round():
    n = itertools.count()
    t = timed_rounds({"f": lambda: next(n)}, repeats=1, warmup=1, rounds=3, pause=0)
    assert t["f"].repeats == 3 and next(n) == 6 and t["f"].median >= 0


# ---------------------------------------------------------------------------- row marks


def test_a_speedup_above_the_flop_ratio_is_suspect():
    row = mark_row(_row(flop_ratio=10.0, sparse=25.0, shrunk=10.5, masked=30.0))
    # shrunk is within the margin; masked and dense_tf do not shrink their FLOPs and are never suspect
    assert row["suspect"] == "sparse" and row["noisy"] is False
    assert mark_row(_row(flop_ratio=10.0, sparse=11.5, shrunk=12.0))["suspect"] == "sparse shrunk"
    assert mark_row(_row(flop_ratio=10.0, sparse=SUSPECT_MARGIN * 10.0 * 0.99))["suspect"] == ""


def test_batch_1_allows_a_wider_margin_over_the_flop_ratio():
    assert mark_row(_row(batch=1, flop_ratio=1.6, sparse=1.9))["suspect"] == ""  # measured on an idle machine
    assert mark_row(_row(batch=1, flop_ratio=1.0, sparse=1543.0))["suspect"] == "sparse"


def test_a_row_is_noisy_when_any_engine_spreads_above_the_threshold():
    row = _row()
    assert mark_row(dict(row))["noisy"] is False
    row["dense_tf_spread"] = NOISY_SPREAD + 0.01
    assert mark_row(row)["noisy"] is True


# ---------------------------------------------------------------------------- agreement


def test_engines_within_the_tolerance_pass():
    check_agreement("weight_k90", 100, {"sparse": 1.7e-5, "shrunk": 0.0})
    check_agreement("weight_k90", 100, {k: v for k, v in TOLERANCE.items()})


@pytest.mark.parametrize("diff", (436.957, float("nan")))
def test_a_disagreement_raises_naming_run_engine_batch_difference_and_fix(diff):
    with pytest.raises(BenchmarkError) as info:
        check_agreement("weight_k95", 1000, {"sparse": 1e-6, "shrunk": diff}, run_dir="logs/weight_k95")
    message = str(info.value)
    assert "\n" not in message
    for part in ("run weight_k95", "engine shrunk", "batch 1000", f"{diff:.4g}", f"tolerance of {TOLERANCE['shrunk']:g}",
                 "Delete logs/weight_k95", "--overwrite"):
        assert part in message, part


def test_the_first_engine_over_its_tolerance_is_named():
    with pytest.raises(BenchmarkError, match="engine sparse, batch 7"):
        check_agreement("neuron_k50", 7, {"sparse": 1.0, "shrunk": 1e-7}, tolerance={"sparse": 0.5, "shrunk": 0.5})


# ---------------------------------------------------------------------------- report


def test_format_benchmark_marks_a_noisy_row_and_a_suspect_ratio():
    calm = mark_row(_row(run="weight_k50", flop_ratio=2.0, sparse=1.5, shrunk=1.1))
    busy = _row(run="weight_k90", flop_ratio=10.0, sparse=25.0, shrunk=1.2)
    busy["dense_spread"] = 1.4
    mark_row(busy)
    lines = format_benchmark([calm, busy]).splitlines()
    calm_line = next(l for l in lines if l.startswith("weight_k50"))
    busy_line = next(l for l in lines if l.startswith("weight_k90"))
    assert "*" not in calm_line and "!" not in calm_line and "2%" in calm_line
    assert "140%*" in busy_line and "25.00x!" in busy_line and "1.20x " in busy_line
    legend = "\n".join(lines[-2:])
    assert "noisy" in legend and "FLOP ratio" in legend
    # the columns line up with the header
    assert lines[0].index("sparse plan") == calm_line.index("ssssd") == busy_line.index("ssssd")
    assert lines[0].index("spread") + len("spread") == busy_line.index("%") + 1


def test_summary_counts_noisy_rows_and_suspect_ratios_with_advice():
    rows = [mark_row(_row(flop_ratio=2.0, sparse=3.0, shrunk=3.0, spread=0.5)), mark_row(_row())]
    summary = benchmark_summary(rows, repeats=15)
    assert summary == {"rows": 2, "noisy_rows": 1, "suspect_ratios": 2, "repeats": 15}
    line = summary_line(summary)
    assert "1 of 2 rows noisy" in line and "2 suspect ratios" in line and "idle machine" in line
    assert "--repeats (this run: 15)" in line
    assert "no noisy row" in summary_line(benchmark_summary([mark_row(_row())]))


def test_load_warning_when_the_load_exceeds_the_usable_cores():
    load = machine_load()
    assert load["usable_cores"] >= 1 and (load["loadavg"] is None or len(load["loadavg"]) == 3)
    assert load_warning({"loadavg": [1.5, 1, 1], "usable_cores": 2, "cpu_count": 2}, "at the start") is None
    warning = load_warning({"loadavg": [6.5, 3, 2], "usable_cores": 2, "cpu_count": 8}, "at the end")
    assert "6.50" in warning and "2 usable cores" in warning and "unreliable" in warning and "at the end" in warning
    assert load_warning({"loadavg": None, "usable_cores": 2, "cpu_count": 2}, "at the end") is None


def test_the_figure_defaults_to_the_logdir_and_out_is_an_alias_of_plots():
    from pruning.cli import benchmark_parser

    p = benchmark_parser()
    assert p.parse_args([]).plots is None
    assert p.parse_args(["--out", "figs"]).plots == p.parse_args(["--plots", "figs"]).plots == "figs"
    assert "<logdir>/plots/" in p.format_help() and "--out" in p.format_help()


def test_speedup_figure_circles_noisy_and_suspect_points_and_names_them_in_the_legend(tmp_path, monkeypatch):
    from pruning.report import plots

    def rows(marked: bool):
        out = []
        for run, k, flops in (("dense", 0.0, 1.0), ("weight_k90", 90.0, 10.0), ("neuron_k90", 90.0, 25.0)):
            row = _row(run=run, batch=100, flop_ratio=flops, sparse=min(flops, 3.0), shrunk=min(flops, 4.0))
            row.update(strategy=run.split("_")[0].replace("dense", "none"), sparsity=k)
            if marked:
                mark_row(row)
            out.append(row)
        if marked:
            out[1]["sparse_speedup"], out[1]["suspect"] = 40.0, "sparse"
            out[2]["noisy"] = True
        return out

    legends = []
    finish = plots._finish
    monkeypatch.setattr(plots, "_finish", lambda fig, path, footer, *a: (
        legends.append([t.get_text() for t in fig.axes[0].get_legend().get_texts()]), finish(fig, path, footer, *a))[1])
    assert plots.speedup_figure(rows(True), tmp_path / "marked.png").read_bytes()[:4] == b"\x89PNG"
    assert plots.speedup_figure(rows(False), tmp_path / "plain.png").exists()  # rows without the marks
    assert any(t.startswith("unreliable") for t in legends[0])
    assert not any(t.startswith("unreliable") for t in legends[1])
