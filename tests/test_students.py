"""The distillation baselines in the study: strategies student and distill are small dense networks of the
pruned networks' sizes, planned after the dense run (their teacher), tabulated and plotted like every
strategy, and refused where they have no meaning."""
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from pruning import paths
from pruning.config import (ConfigError, DistillConfig, Hyper, ModelConfig, PruneConfig, RunConfig,
                            StudyConfig, TrainConfig)
from pruning.core import masks
from pruning.study.plan import check_existing, plan_study, planned_epochs, StudyError
from helpers import REPO, expected_pruned

HIDDEN = (16, 12)


def _hyper(**kw) -> Hyper:
    base = Hyper(model=ModelConfig(hidden=HIDDEN), train=TrainConfig(epochs=2, batch_size=32, lr=1e-2),
                 prune=PruneConfig(retrain_epochs=1, ramp_epochs=0))
    return replace(base, **kw)


def test_students_are_registered_as_strategies_without_masks():
    assert [s for s in masks.names() if not masks.get(s).masks] == ["student", "distill"]
    with pytest.raises(ValueError, match="no masks"):
        masks.compute_mask("student", np.ones((3, 3)), 50)


def test_students_run_once_per_sparsity_after_the_dense_run_for_the_dense_epochs():
    chains = plan_study(_hyper(), StudyConfig(sparsities=(0, 50, 90), strategies=("weight", "distill")))
    assert [[(c.name, c.parent) for c in chain] for chain in chains] == [
        [("dense", None)], [("weight_k50", "dense"), ("weight_k90", "weight_k50")],
        [("distill_k50", "dense")], [("distill_k90", "dense")]]
    assert [planned_epochs(c) for c in chains[2] + chains[3]] == [2, 2]


def test_only_distill_runs_depend_on_the_temperature():
    hot = _hyper(distill=DistillConfig(temperature=8.0))
    assert RunConfig(_hyper(), "distill", 50, "dense").identity() != RunConfig(hot, "distill", 50, "dense").identity()
    assert RunConfig(_hyper(), "student", 50, "dense").identity() == RunConfig(hot, "student", 50, "dense").identity()
    assert RunConfig(_hyper(), "weight", 50, "dense").identity() == RunConfig(hot, "weight", 50, "dense").identity()
    # and not on the retraining protocol, which they do not use
    other = _hyper(prune=PruneConfig(retrain_epochs=4))
    assert RunConfig(_hyper(), "student", 50, "dense").identity() == RunConfig(other, "student", 50, "dense").identity()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_a_temperature_that_is_not_positive_is_refused(bad):
    with pytest.raises(ConfigError, match="--temperature must be a positive number"):
        DistillConfig(temperature=bad)


@pytest.fixture(scope="module")
def student_study(tmp_path_factory, tiny_data):
    from pruning.study.run import train_run

    root = tmp_path_factory.mktemp("students")
    hyper = _hyper()
    logdir = root / "logs"
    out = {}
    for chain in plan_study(hyper, StudyConfig(sparsities=(0, 50, 90), strategies=("weight", "student", "distill"))):
        for cfg in chain:
            out[cfg.name] = train_run(cfg, logdir, tiny_data)
    return {"logdir": logdir, "hyper": hyper, "results": out, "data": tiny_data}


@pytest.mark.parametrize("k", [50.0, 90.0])
def test_a_student_has_as_many_weights_as_weight_pruning_leaves_within_one_unit_of_width(student_study, k):
    from pruning.core.layers import load_model, weight_layers

    shapes = [(100, 16), (16, 12), (12, 10)]  # 10x10 inputs
    target = sum(a * b - expected_pruned(a * b, k) for a, b in shapes[:-1]) + 120
    for strategy in ("student", "distill"):
        r = student_study["results"][paths.run_name(strategy, k)]
        assert r["status"] == "ok", r.get("reason")
        model = load_model(paths.model_file(student_study["logdir"], r["run"]))
        h1, h2 = r["student"]["hidden"]
        params = sum(int(np.prod(l.kernel.shape)) for l in weight_layers(model))
        assert [tuple(l.kernel.shape) for l in weight_layers(model)] == [(100, h1), (h1, h2), (h2, 10)]
        assert r["student"]["target_params"] == target and r["size"]["params_nonzero"] == params == r["student"]["params"]
        one_unit = max(100 + h2, h1 + 10)  # the most one unit of width more or less changes
        assert abs(params - target) <= one_unit
        assert r["size"]["effective_sparsity"] == pytest.approx(1 - params / sum(a * b for a, b in shapes))
    assert student_study["results"][paths.run_name("distill", k)]["student"]["temperature"] == 4.0


def test_a_student_is_dense_and_only_its_initialisation_differs_from_the_distilled_one(student_study):
    r = student_study["results"]
    assert r["student_k50"]["sparsity"]["weight_sparsity"] < 0.05  # no masks: (almost) no zero weights
    assert r["student_k50"]["student"]["hidden"] == r["distill_k50"]["student"]["hidden"]
    assert "oneshot_test_accuracy" not in r["student_k50"]
    assert r["distill_k50"]["test_accuracy"] != r["student_k50"]["test_accuracy"]


def test_students_appear_in_the_results_table_and_the_parameters_figure(student_study, tmp_path):
    from pruning.report.plots import make_figures
    from pruning.report.results import read_all_results, table_rows

    logdir = student_study["logdir"]
    rows = table_rows(read_all_results(logdir), ("weight", "student", "distill"), (0, 50, 90))
    assert [(r["strategy"], r["sparsity"]) for r in rows] == [(s, k) for s in ("weight", "student", "distill")
                                                              for k in (0.0, 50.0, 90.0)]
    assert all(r["status"] == "ok" and r["params_nonzero"] for r in rows)
    files, _ = make_figures(logdir, tmp_path / "figs")
    assert tmp_path / "figs" / paths.PARAMS_PNG in files


def test_changing_the_temperature_redoes_nothing_silently(student_study):
    hot = replace(student_study["hyper"], distill=DistillConfig(temperature=8.0))
    logdir = student_study["logdir"]
    assert check_existing(RunConfig(hot, "student", 50, "dense"), logdir) == "done"
    with pytest.raises(StudyError, match="distill.temperature: 4.0 there, 8.0 now"):
        check_existing(RunConfig(hot, "distill", 50, "dense"), logdir)


@pytest.mark.parametrize("argv, message", [
    (["main.py", "--protocol", "lottery", "--strategies", "weight,distill"], "not a way to prune a lottery"),
    (["train.py", "--strategy", "student", "--sparsity", "50"], "run it with main.py"),
    (["main.py", "--strategies", "weight,distill", "--temperature", "0"], "--temperature must be a positive"),
])
def test_the_command_line_refuses_students_where_they_have_no_meaning(tmp_path, argv, message):
    proc = subprocess.run([sys.executable, *argv, "--logdir", str(tmp_path / "logs"), "--data-source", "sample"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "logs").exists()
