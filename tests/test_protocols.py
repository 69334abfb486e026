"""Protocols are plug-ins: the built-ins are registered objects the planner and the runner ask, a protocol
registered from the test suite runs through the whole study, and the package's imports run one way."""
import ast
import csv
from pathlib import Path

import pytest

from pruning import cli, files, paths, protocols
from pruning.config import ConfigError, Hyper, PruneConfig, RunConfig, StudyConfig
from helpers import REPO


def test_the_built_in_protocols_are_registered_and_students_are_chosen_by_their_strategy():
    assert protocols.names() == ("oneshot", "retrain", "scratch", "lottery")
    assert protocols.names(selectable=False) == ("oneshot", "retrain", "scratch", "lottery", "student")
    hyper = Hyper(prune=PruneConfig(protocol="scratch"))
    assert protocols.for_run(RunConfig(hyper, "weight", 50, None)).name == "scratch"
    assert protocols.for_run(RunConfig(hyper, "distill", 50, "dense")).name == "student"
    assert protocols.for_run(RunConfig(hyper, "none", 0.0, None)).name == "scratch"  # the dense run: the study's
    with pytest.raises(ConfigError, match="--protocol: unknown value 'student'; choose one of oneshot, retrain"):
        PruneConfig(protocol="student")


def _rows(path: Path) -> dict:
    with open(path) as f:
        return {r["run"]: r for r in csv.DictReader(f)}


def test_a_protocol_registered_by_the_test_suite_runs_through_the_study(mnist_dir, tmp_path, monkeypatch, capsys):
    import protocol_plugins

    monkeypatch.setitem(protocols.PROTOCOLS, "polish", protocols.ProtocolSpec(
        "polish", protocol_plugins.POLISH, "one epoch at lr / 10 (tests)"))
    logs = tmp_path / "logs"
    argv = ["--protocol", "polish", "--data-dir", str(mnist_dir), "--hidden", "16", "--epochs", "2", "--lr", "0.01",
            "--sparsities", "0,50,80", "--strategies", "weight,neuron", "--batch-size", "64", "--logdir", str(logs)]
    assert cli.study_main_guarded(argv) == 0, capsys.readouterr()
    seed0 = paths.seed_dir(logs, 0)
    for name in ("weight_k50", "weight_k80", "neuron_k50", "neuron_k80"):
        r = files.read_json(paths.result_file(seed0, name))
        assert r["status"] == "ok"
        assert r["config"]["parent"] == "dense"  # each k from the dense run: the plan of its base protocol
        assert len(r["history"]["loss"]) == 1  # one epoch, as the plug-in says
        assert RunConfig.from_dict(r["config"]).identity()["polish_lr"] == pytest.approx(0.001)
    assert len(files.read_json(paths.result_file(seed0, "dense"))["history"]["loss"]) == 2
    rows = _rows(logs / "results.csv")
    assert float(rows["weight_k80"]["weight_sparsity"]) == pytest.approx(10035 / 12544, abs=1e-6)  # round(0.8 x 12,544)
    assert rows["weight_k80"]["protocol"] == "polish"
    # the study resumes: the same command trains nothing
    assert cli.study_main_guarded(argv) == 0
    assert "resuming: 5 finished run(s) kept" in capsys.readouterr().out


def _package_imports():
    """module -> the package's modules it imports (every import, at the top or inside a function), and
    every imported name that is private (``_name``) to the module it comes from."""
    root = REPO / "pruning"
    mods = {}
    for f in root.rglob("*.py"):
        name = ".".join(f.relative_to(REPO).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    edges, private = {m: set() for m in mods}, []
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in mods or target in mods:
                        edges[m].add(sub if sub in mods else target)
                    if target.startswith("pruning") and alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"{m} imports {target}.{alias.name}")
            elif isinstance(node, ast.Import):
                edges[m] |= {a.name for a in node.names if a.name in mods}
    return edges, private


def test_the_packages_imports_run_one_way_and_take_no_private_names():
    edges, private = _package_imports()
    assert private == []
    # no cycle: a depth-first search finds no module it is already inside of
    state, cycles = {}, []

    def visit(m, path):
        state[m] = "open"
        for n in sorted(edges[m]):
            if n == m or n == "pruning":
                continue  # the package's lazy public API: it imports its modules only when a name is asked for
            if state.get(n) == "open":
                cycles.append(" -> ".join(path[path.index(n):] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert cycles == []
    # the runner names no protocol
    runner = (REPO / "pruning" / "study" / "run.py").read_text()
    for word in ("lottery", "student", "distill", "retrain", "oneshot", "scratch"):
        assert f'"{word}"' not in runner and f"lot." not in runner, word
