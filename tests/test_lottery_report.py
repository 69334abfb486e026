"""pruning.report.lottery: a lottery study's rows, summary, tables and figures, from written results."""
import math

import pytest

from pruning import files, paths
from pruning.report import lottery, plots


def _result(seed, level, control, acc, stop_acc, stop_epoch, remaining, status="ok"):
    strategy = "none" if level == 0 else "weight"
    name = paths.run_name(strategy, 0.0 if level == 0 else 20.0, level, control)
    parent = None if level == 0 else ("dense" if level == 1 and control is None else
                                      paths.run_name("weight", 20.0, level - (control is None), None))
    return {
        "run": name, "status": status, "test_accuracy": acc, "train_accuracy": acc,
        "config": {"strategy": strategy, "sparsity": 0.0 if level == 0 else 20.0, "parent": parent, "level": level,
                   "control": control, "hyper": {"train": {"seed": seed}, "prune": {"protocol": "lottery"}}},
        "history": {"loss": [1.0, 0.5]},
        "lottery": {"level": level, "control": control, "remaining": {"weights": remaining, "prunable": remaining},
                    "early_stop_epoch": stop_epoch, "early_stop_step": 10 * stop_epoch,
                    "early_stop_test_accuracy": stop_acc, "early_stop_heldout_accuracy": stop_acc},
        "data": {"source": "synthetic", "train_examples": 100, "test_examples": 50},
    }


# three seeds; level 1's ticket accuracies 0.97, 0.98, 0.99 (mean 0.98, sd 0.01)
SEEDS = {
    0: [_result(0, 0, None, 0.96, 0.96, 9, 1.0), _result(0, 1, None, 0.97, 0.965, 8, 0.8),
        _result(0, 1, "reinit", 0.90, 0.90, 5, 0.8), _result(0, 1, "random_mask", 0.91, 0.91, 6, 0.8)],
    1: [_result(1, 0, None, 0.96, 0.96, 9, 1.0), _result(1, 1, None, 0.98, 0.975, 7, 0.8),
        _result(1, 1, "reinit", 0.92, 0.92, 5, 0.8), _result(1, 1, "random_mask", 0.92, 0.92, 6, 0.8)],
    2: [_result(2, 0, None, 0.96, 0.96, 9, 1.0), _result(2, 1, None, 0.99, 0.985, 9, 0.8),
        _result(2, 1, "reinit", 0.0, 0.0, 1, 0.8, status="failed"),
        _result(2, 1, "random_mask", 0.93, 0.93, 6, 0.8)],
}


@pytest.fixture()
def study_dir(tmp_path):
    for seed, results in SEEDS.items():
        sdir = paths.seed_dir(tmp_path, seed)
        for r in results:
            files.write_json(paths.result_file(sdir, r["run"]), r)
        files.write_json(paths.study_file(sdir), {"study": {"strategies": ["weight"]},
                                                  "runs": [r["run"] for r in results] + ["weight_L02"]})
    return tmp_path


def test_rows_name_each_runs_role_level_and_remaining_percent():
    rows = lottery.lottery_rows(list(reversed(SEEDS[0])), seed=0)
    assert [(r["role"], r["level"]) for r in rows] == [("dense", 0), ("ticket", 1), ("reinit", 1),
                                                        ("random_mask", 1)]
    assert rows[1]["remaining_percent"] == pytest.approx(80.0)
    assert rows[1]["early_stop_epoch"] == 8 and rows[1]["parent"] == "dense" and rows[2]["parent"] == "weight_L01"
    assert lottery.is_lottery(SEEDS[0])


def test_summary_is_the_mean_and_t_interval_over_the_finished_seeds():
    rows = [row for seed, rs in SEEDS.items() for row in lottery.lottery_rows(rs, seed)]
    by = {(r["role"], r["level"]): r for r in lottery.summarize(rows)}
    ticket = by[("ticket", 1)]
    assert ticket["n_ok"] == 3 and ticket["test_accuracy_mean"] == pytest.approx(0.98)
    assert ticket["test_accuracy_sd"] == pytest.approx(0.01)
    assert ticket["test_accuracy_ci95"] == pytest.approx(4.302653 * 0.01 / math.sqrt(3))  # t(0.975, 2), scipy.stats.t.ppf
    assert ticket["early_stop_epoch_mean"] == pytest.approx(8.0)
    reinit = by[("reinit", 1)]  # seed 2's failed: two seeds, t(0.975, 1) = 12.7062
    assert (reinit["seeds"], reinit["n_ok"]) == (3, 2)
    assert reinit["test_accuracy_mean"] == pytest.approx(0.91)
    assert reinit["test_accuracy_ci95"] == pytest.approx(12.7062 * math.sqrt(2e-4) / math.sqrt(2))


def test_markdown_has_a_row_per_level_and_a_column_per_role(study_dir):
    text = lottery.markdown(study_dir)
    assert "mean ± 95% confidence half-width over 3 seeds (0, 1, 2)" in text
    assert "| weight | 1 | 80.00 | 98.00 ± 2.48 | 91.00 ± 12.71 (2 of 3 seeds) | 92.00 ± 2.48 | 8.0 ± 2.5 |" in text
    assert "| dense | 0 | 100 | 96.00 ± 0.00 |" in text


def test_figures_are_written_and_name_the_runs_that_are_missing_or_failed(study_dir, tmp_path):
    out = tmp_path / "figs"
    written, missing = plots.make_figures(study_dir, out)
    assert sorted(p.name for p in written) == ["lottery_accuracy_weight.png", "lottery_early_stop_weight.png"]
    assert all(p.stat().st_size > 10_000 for p in written)
    assert missing == ["seed0/weight_L02", "seed1/weight_L02", "seed2/weight_L01_reinit", "seed2/weight_L02"]


def test_a_lottery_table_is_printed_again_from_its_committed_results_or_summary_csv(study_dir, tmp_path):
    """What plotting.py --logdir DIR --markdown prints, plotting.py --from-csv prints from the study's CSVs."""
    from pruning.report import results, tables
    from pruning.report.lottery import LOTTERY_COLUMNS, SUMMARY_COLUMNS

    rows = lottery.study_rows(study_dir)
    results.write_rows(tmp_path / "results.csv", rows, LOTTERY_COLUMNS)
    results.write_rows(tmp_path / "summary.csv", lottery.summarize(rows), SUMMARY_COLUMNS)
    from_logdir = lottery.markdown(study_dir).split("\n\n")
    for key, block in zip(("test_accuracy", "early_stop_test_accuracy"), (from_logdir[1], from_logdir[3])):
        for name in ("results.csv", "summary.csv"):
            command = f"python plotting.py --from-csv {tmp_path / name} --markdown --key {key}"
            assert tables.command_output(command) == block, (key, name)
    assert "| weight | 1 | 80.00 | 98.00 ± 2.48 |" in from_logdir[1]


def test_a_lottery_figures_footer_names_the_data_by_kind_and_size_not_by_path(study_dir):
    rows = lottery.study_rows(study_dir)
    results = [dict(r, data={"source": "idx:/home/someone/mnist", "train_examples": 60000, "test_examples": 10000})
               for rs in SEEDS.values() for r in rs]
    footer = lottery._footer(rows, [], results)
    assert footer.startswith("data: idx: mnist, 60000 train / 10000 test; 3 seed(s) (0, 1, 2)")
    assert "/home/someone" not in footer


def test_a_lottery_table_from_csv_shows_only_the_levels_asked_for(study_dir, tmp_path):
    from pruning.report import results, tables
    from pruning.report.lottery import LOTTERY_COLUMNS

    results.write_rows(tmp_path / "results.csv", lottery.study_rows(study_dir), LOTTERY_COLUMNS)
    text = tables.command_output(f"python plotting.py --from-csv {tmp_path / 'results.csv'} --markdown --levels 2")
    assert [line.split(" | ")[0] for line in text.splitlines()[2:]] == ["| dense"]  # level 1 left out
    text = tables.command_output(f"python plotting.py --from-csv {tmp_path / 'results.csv'} --markdown --levels 1")
    assert [line.split(" | ")[:2] for line in text.splitlines()[2:]] == [["| dense", "0"], ["| weight", "1"]]
