"""--sparsify in the study (issue 24): flags, identity, the runner's hooks, a tiny study of each method that runs
end to end and resumes, and the held-out strength choice."""
import json

import numpy as np
import pytest

from pruning import cli, config, paths
from pruning.config import ConfigError, Hyper, ModelConfig, RunConfig, SparsifyConfig, check_sparsify, hyper_from_args


def _args(*argv):
    return cli.study_parser(False).parse_args(list(argv))


def test_sparsify_flags_make_a_validated_config_with_every_default_filled_in():
    h = hyper_from_args(_args("--sparsify", "l0", "--l0-lambda", "0.01"))
    assert h.sparsify.method == "l0"
    assert h.sparsify.params == {"l0_lambda": 0.01, "l0_beta": pytest.approx(2 / 3), "l0_gamma": -0.1, "l0_zeta": 1.1,
                                 "l0_droprate_init": 0.5, "l0_per_weight": False, "l0_gate_lr_mult": 1.0}
    assert hyper_from_args(_args()).sparsify == SparsifyConfig()


def test_a_hyper_parameter_of_another_method_is_refused_not_ignored():
    with pytest.raises(ConfigError, match=r"--l1-lambda is a hyper-parameter of --sparsify l1, but no --sparsify"):
        hyper_from_args(_args("--l1-lambda", "1e-4"))
    with pytest.raises(ConfigError, match=r"--td-gamma is a hyper-parameter of --sparsify targeted_dropout, but "
                                          r"--sparsify l1 was given"):
        hyper_from_args(_args("--sparsify", "l1", "--td-gamma", "0.3"))


def test_bad_values_and_misfits_exit_2_before_anything_is_written(tmp_path, capsys):
    logs = tmp_path / "logs"
    for argv, needle in [(["--sparsify", "l1", "--l1-lambda", "-1"], "--l1-lambda must be"),
                         (["--sparsify", "group_lasso", "--strategies", "weight"], "strategy weight prunes by weight"),
                         (["--sparsify", "l0", "--strategies", "neuron,student"], "student"),
                         (["--sparsify", "targeted_dropout", "--strategies", "weight,neuron"], "not both"),
                         (["--sparsify", "l1", "--protocol", "lottery"], "not supported")]:
        with pytest.raises(SystemExit) as e:
            cli.study_main(["--logdir", str(logs), "--data-source", "sample", *argv])
        assert e.value.code == 2
        assert needle in capsys.readouterr().err
    assert not logs.exists()


def test_targeted_dropouts_auto_target_is_settled_by_the_strategies_and_enters_the_identity():
    h = hyper_from_args(_args("--sparsify", "targeted_dropout"))
    assert h.sparsify.params["td_target"] == "auto"
    unit = check_sparsify(h, ["neuron", "random_neuron"])
    assert unit.sparsify.params["td_target"] == "unit"
    weight = check_sparsify(h, ["weight", "random"])
    dense_unit, dense_weight = RunConfig(unit).identity(), RunConfig(weight).identity()
    assert dense_unit["sparsify"]["granularity"] == "unit" and dense_weight["sparsify"]["granularity"] == "weight"
    assert dense_unit != dense_weight  # two dense networks: they train differently
    with pytest.raises(ConfigError, match="--td-target weight trains the network to lose weights"):
        check_sparsify(hyper_from_args(_args("--sparsify", "targeted_dropout", "--td-target", "weight")), ["neuron"])


def test_identity_has_the_method_only_when_it_is_on_and_diff_names_it():
    plain, l1 = Hyper(), hyper_from_args(_args("--sparsify", "l1"))
    assert "sparsify" not in RunConfig(plain).identity()  # runs from before --sparsify are the same runs
    ident = RunConfig(l1, "weight", 90.0, "dense").identity()
    assert ident["sparsify"] == {"method": "l1", "l1_lambda": 1e-5}
    lines = config.diff(RunConfig(plain).identity(), RunConfig(l1).identity())
    assert "sparsify.method: 'none' there, 'l1' now" in lines
    assert Hyper.from_dict(json.loads(json.dumps(RunConfig(l1).to_dict()))["hyper"]) == l1


STUDY = ["--hidden", "24,16", "--epochs", "1", "--retrain-epochs", "2", "--ramp-epochs", "1", "--sparsities",
         "0,50,80", "--seeds", "0", "--jobs", "1", "--batch-size", "64"]


@pytest.mark.parametrize("method, strategy, layer", [
    ("group_lasso", "neuron", "PenalizedDense"),
    ("l1", "weight", "PenalizedDense"),
    ("l0", "neuron", "GatedDense"),
    ("targeted_dropout", "neuron", "TargetedDropoutDense"),
    ("targeted_dropout", "weight", "TargetedDropoutDense"),
    ("sparse_vd", "weight", "SparseVDDense"),
])
def test_a_tiny_study_of_each_method_runs_end_to_end_and_resumes(method, strategy, layer, tmp_path, mnist_dir, capsys):
    import pruning

    logs = tmp_path / "logs"
    argv = ["--data-dir", str(mnist_dir), "--logdir", str(logs), "--strategies", strategy, "--sparsify", method, *STUDY]
    assert cli.study_main(argv) == 0
    seed = paths.seed_dir(logs, 0)
    for name in ("dense", f"{strategy}_k50", f"{strategy}_k80"):
        r = json.loads(paths.result_file(seed, name).read_text())
        assert r["status"] == "ok" and r["config"]["hyper"]["sparsify"]["method"] == method
        assert np.isfinite(r["test_loss"])
    # the dense run is saved with the method's layers (what a child prunes by: l0's gates, say)
    dense = pruning.load_model(paths.model_file(seed, "dense"))
    assert [type(l).__name__ for l in dense.layers[1:-1]] == [layer, layer]
    k80 = json.loads(paths.result_file(seed, f"{strategy}_k80").read_text())
    assert k80["sparsity"]["weight_sparsity"] >= 0.79  # measured on the finalized network
    from pruning.report import tables

    rows = tables.read_csv(logs / "results.csv")
    assert len(rows) == 3 and all(r["sparsify"] == method for r in rows)
    capsys.readouterr()
    assert cli.study_main(argv) == 0  # the rerun trains nothing
    assert "no run was trained by this command" in capsys.readouterr().out


def test_l0_prunes_the_units_of_smallest_gate_probability_and_saves_them_shrunk_with_their_gates(tmp_path, mnist_dir):
    import pruning
    from pruning.sparsify import layers

    logs = tmp_path / "logs"
    assert cli.study_main(["--data-dir", str(mnist_dir), "--logdir", str(logs), "--strategies", "neuron",
                           "--sparsify", "l0", "--protocol", "oneshot", *STUDY]) == 0
    seed = paths.seed_dir(logs, 0)
    dense = pruning.load_model(paths.model_file(seed, "dense"))
    pruned = pruning.load_model(paths.model_file(seed, "neuron_k50"))
    probs = layers.gate_scores(dense)
    for d, l in zip(dense.layers[1:-1], pruned.layers[1:-1]):
        assert isinstance(l, layers.GatedDense) and l.units == d.units // 2  # physically half, gates kept
        kept = np.asarray(l.kept_units)
        p = probs[l.name]
        assert p[kept].min() >= np.delete(p, kept).max()
        np.testing.assert_array_equal(l.log_alpha.numpy(), d.log_alpha.numpy()[kept])  # one-shot: untrained since
    assert json.loads(paths.result_file(seed, "neuron_k50").read_text())["shrink_max_logit_diff"] < 1e-4


def _table_args(csv, runs):
    import argparse

    from pruning.report import tables

    p = argparse.ArgumentParser()
    tables.add_arguments(p)
    return p.parse_args(["--from-csv", str(csv), "--runs", runs, "--units"])


def test_a_shrunk_group_lasso_run_keeps_its_penalty_and_the_logits_of_the_masked_network(tmp_path, mnist_dir):
    import pruning

    logs = tmp_path / "logs"
    assert cli.study_main(["--data-dir", str(mnist_dir), "--logdir", str(logs), "--strategies", "neuron",
                           "--sparsify", "group_lasso", "--group-lasso-lambda", "1e-3", *STUDY]) == 0
    seed = paths.seed_dir(logs, 0)
    r = json.loads(paths.result_file(seed, "neuron_k50").read_text())
    assert r["shrink_max_logit_diff"] < 1e-4
    alive = r["size"]["units_alive"]
    assert [alive[l] for l in sorted(alive)][:2] == [12, 8] and len(alive) == 3
    from pruning.report import tables

    rows = {r["run"]: r for r in tables.read_csv(logs / "results.csv")}
    assert rows["neuron_k50"]["units_kept"] == 0.5 and rows["dense"]["units_kept"] == 1.0  # of the 40 hidden units
    summary = {r["sparsity"]: r for r in tables.read_csv(logs / "summary.csv")}
    assert summary[80.0]["units_kept_mean"] == pytest.approx(8 / 40)  # round half up: 5 of 24 and 3 of 16 kept
    assert rows["neuron_k50"]["units_alive"] == "12-8" and rows["dense"]["units_alive"] == "24-16"
    assert rows["neuron_k80"]["units_alive"] == "5-3"
    table = tables.render(_table_args(logs / "results.csv", "neuron@50,neuron@80"))
    assert table.splitlines()[2].startswith("| neuron k = 50 | 0 | 12-8 | ")
    assert table.splitlines()[3].startswith("| neuron k = 80 | 0 | 5-3 | ")
    assert len(table.splitlines()) == 4  # one seed: one row per run
    model = pruning.load_model(paths.model_file(seed, "neuron_k50"))
    assert [l.units for l in model.layers[1:-1]] == [12, 8]  # physically half
    assert type(model.layers[1]).__name__ == "PenalizedDense" and model.layers[1].strength == 1e-3


def test_choose_picks_the_candidate_most_accurate_on_the_held_out_split_and_writes_every_accuracy(
        tmp_path, mnist_dir, capsys):
    from pruning.sparsify import choose

    out = tmp_path / "strength.json"
    code = choose.main(["--sparsify", "l1", "--candidates", "0,10", "--strategy", "weight", "--at", "50",
                        "--heldout", "100", "--data-dir", str(mnist_dir), "--hidden", "16", "--epochs", "1",
                        "--out", str(out)])
    assert code == 0
    written = json.loads(out.read_text())
    accs = {c["strength"]: c["pruned"] for c in written["candidates"]}
    assert set(accs) == {0.0, 10.0}
    assert written["chosen"] == max(accs, key=lambda s: (accs[s], -s))
    assert written["heldout"] == 100 and written["strength_flag"] == "--l1-lambda"
    alive = {c["strength"]: c["units_alive"] for c in written["candidates"]}
    assert alive[0.0] == 16 and 0 <= alive[10.0] <= 16  # plain training leaves every hidden unit alive
    assert {c["strength"]: c["units_alive_per_layer"] for c in written["candidates"]}[0.0] == [16]
    assert written["max_dense_drop"] is None
    # the command as one would type it again, not the path Python gives the module on this machine
    assert written["command"].startswith("python -m pruning.sparsify.choose --sparsify l1 --candidates 0,10 ")
    study = (f"python main.py --sparsify l1 --data-dir {mnist_dir} --hidden 16 --epochs 1 "
             f"--l1-lambda {written['chosen']:g} --strategies weight")
    assert written["study"] == study and study in capsys.readouterr().out
    # the settings written are the study's with the strength chosen, not the flag's default
    assert written["hyper"]["sparsify"]["params"]["l1_lambda"] == written["chosen"]
    assert choose.main(["--sparsify", "targeted_dropout", "--candidates", "1"]) == 2
    assert choose.main(["--sparsify", "l1", "--candidates", "1", "--max-dense-drop", "-1"]) == 2
    assert "--max-dense-drop must be between 0 and 100" in capsys.readouterr().err


def test_the_study_command_of_a_choice_drops_what_only_the_choice_uses():
    from pruning.sparsify import choose

    argv = ["--model", "lenet5", "--cand", "1e-4,1e-3", "--sparsify", "l0", "--at=90", "--l0-lambda", "5",
            "--no-overwrite", "--seed", "3", "--l0-gate-lr-mult", "10", "--max-dense-drop", "1", "--out", "x.json"]
    assert choose.study_command(choose.parser(), argv, "l0_lambda", "--l0-lambda", 1e-3, "neuron") == (
        "python main.py --model lenet5 --sparsify l0 --l0-gate-lr-mult 10 --l0-lambda 0.001 --strategies neuron")


def test_l0_with_global_neuron_ranks_every_layers_units_by_gate_probability_together():
    import keras

    import pruning
    from pruning import sparsify
    from pruning.sparsify import layers

    keras.utils.set_random_seed(0)
    model = sparsify.apply(pruning.build_mlp(16, ModelConfig(hidden=(8, 6))), "l0", strategy="global_neuron", seed=0)
    gated = [l for l in model.layers if isinstance(l, layers.GatedDense)]
    rng = np.random.default_rng(1)
    for l in gated:
        l.set_log_alpha(rng.normal(0, 2, l.log_alpha.shape).astype("float32"))
    mask_set = sparsify.compute_masks(model, "l0", "global_neuron", 50.0, 0)
    probs = layers.gate_scores(model)
    kept = {l.name: np.asarray(mask_set.masks[l.name]).any(axis=0) for l in gated}
    assert sum((~k).sum() for k in kept.values()) == 7  # half of 14 units, over both layers together
    assert all(k.any() for k in kept.values())
    pruned = np.concatenate([probs[n][~k] for n, k in kept.items()])
    best = {n: probs[n].argmax() for n in kept}  # each layer's best unit is kept whatever the others score
    assert all(kept[n][i] for n, i in best.items())
    others = np.concatenate([np.delete(probs[n][kept[n]], np.argmax(probs[n][kept[n]])) for n in kept])
    assert others.size and pruned.max() <= others.min()


def test_the_cost_benchmark_times_every_method_against_plain_training(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "sparsify_cost.py"
    spec = importlib.util.spec_from_file_location("sparsify_cost", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "cost.csv"
    assert bench.main(["--smoke", "--csv", str(out)]) == 0
    from pruning.report import tables

    rows = tables.read_csv(out)
    assert [r["method"] for r in rows] == [label for label, _, _ in bench.CASES["mlp"]]
    assert rows[0]["ratio"] == 1.0 and all(r["median_s"] > 0 and r["examples"] == 512 for r in rows)


def test_a_studys_summary_csv_is_exactly_its_results_csv_summarized(tmp_path, mnist_dir):
    from pruning.report import stats, tables
    from pruning.report.results import write_rows

    logs = tmp_path / "logs"
    two_seeds = [*STUDY[:STUDY.index("--seeds")], "--seeds", "0,1", *STUDY[STUDY.index("--seeds") + 2:]]
    assert cli.study_main(["--data-dir", str(mnist_dir), "--logdir", str(logs), "--strategies", "weight",
                           *two_seeds]) == 0
    write_rows(tmp_path / "again.csv", stats.summarize(tables.read_csv(logs / "results.csv")), stats.SUMMARY_COLUMNS)
    assert (tmp_path / "again.csv").read_text() == (logs / "summary.csv").read_text()


def test_the_units_table_of_an_older_results_csv_says_how_to_get_the_counts():
    from pathlib import Path

    from pruning.report import tables

    older = Path(__file__).resolve().parent.parent / "docs" / "figures" / "cnn-mnist" / "results.csv"
    with pytest.raises(ValueError, match="no units_alive column.*rewrites an older one"):
        tables.units_table(older, [("neuron", 90.0)])


def test_the_strength_table_chooses_again_with_max_dense_drop_from_the_recorded_accuracies(tmp_path):
    from pruning.report import tables

    recorded = {"method": "l0", "strategy": "neuron", "at": 90.0, "chosen": 0.01, "candidates": [
        {"strength": 1e-4, "dense": 0.9870, "pruned": 0.2584, "units_alive": 495},
        {"strength": 1e-3, "dense": 0.9836, "pruned": 0.5156, "units_alive": 403, "units_alive_per_layer": [9, 14, 380]},
        {"strength": 1e-2, "dense": 0.9578, "pruned": 0.6852, "units_alive": 73}]}
    path = tmp_path / "strength.json"
    path.write_text(json.dumps(recorded))
    as_chosen = tables.strength_table(path).splitlines()
    assert as_chosen[4] == "| 1e-2 | 95.78 % | 68.52 % (chosen) | 73 |"
    again = tables.strength_table(path, max_dense_drop=1).splitlines()
    assert again[3] == "| 1e-3 | 98.36 % | 51.56 % (chosen) | 403 (9-14-380) |"
    assert again[4] == "| 1e-2 | 95.78 % (> 1 points below the best: left out) | 68.52 % | 73 |"
    assert "(chosen)" not in again[2] and "left out" not in again[2]
