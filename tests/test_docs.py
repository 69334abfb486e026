"""The documentation cannot drift from the repository: every relative link and image of README.md and
docs/**.md names a file that is there, and every published results table is printed again, from its
committed CSV, by the command in the marker above it (``python plotting.py --from-csv ... --markdown``)."""
import re
import subprocess
from pathlib import Path

import pytest

from helpers import REPO
from pruning.report import stats, tables

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
UNBACKED = re.compile(r"^<!-- unbacked table: (?P<why>.+?) -->\s*$")


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def _without_code(text: str) -> str:
    """The document with its fenced code blocks blanked (a link in an example is not a link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    assert "python -m pytest -q" in text  # CI runs the README's test command
    assert len(re.findall(r"!\[", text)) <= 3  # at most three figures


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_relative_link_and_image_resolves_to_a_file_in_the_repository(doc):
    bad = []
    for target in LINK.findall(_without_code(doc.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a web address, or an anchor in the same page
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or REPO.resolve() not in path.parents:
            bad.append(target)
    assert not bad, f"{_name(doc)} links to files that are not in the repository: {bad}"


PUBLISHED = [(doc, command, table) for doc in DOCS for command, table in tables.published_tables(doc.read_text())]


def _committed(name: str) -> list[Path]:
    """The files called ``name`` that git tracks (a study run in the work tree is not committed)."""
    out = subprocess.run(["git", "ls-files", f"*{name}"], cwd=REPO, capture_output=True, text=True, check=True)
    return [Path(line) for line in out.stdout.splitlines() if Path(line).name == name]


def test_the_docs_publish_tables_from_every_committed_summary():
    used = {Path(p) for _, command, _ in PUBLISHED for p in command.split() if p.endswith(".csv")}
    committed = set(_committed("summary.csv"))
    assert committed <= used, f"committed summaries no table is made from: {sorted(map(str, committed - used))}"


@pytest.mark.parametrize("doc, command, table", PUBLISHED, ids=[f"{_name(d)}: {c}" for d, c, _ in PUBLISHED])
def test_every_published_table_is_made_again_from_its_committed_csv(doc, command, table, monkeypatch):
    monkeypatch.chdir(REPO)
    assert table, f"{_name(doc)}: no table follows the marker of {command!r}"
    assert table == tables.command_output(command), f"{_name(doc)}: the table after {command!r} differs from what it prints"


def test_every_table_of_results_is_marked_as_made_from_a_csv_or_as_not_yet_backed():
    """A table of mean ± half-width cells is either made by a marker's command, or marked as one that no
    committed CSV backs yet (the lottery studies, whose log directories are gone): never typed silently."""
    for doc in DOCS:
        lines, marked = doc.read_text().splitlines(), None
        for i, line in enumerate(lines):
            if tables.MARKER.match(line) or UNBACKED.match(line):
                marked = i
            elif line.startswith("|") and re.search(r"\d ± \d", line):
                start = i
                while start > 0 and lines[start - 1].startswith("|"):
                    start -= 1
                between = [l for l in lines[(marked or 0) + 1:start] if l.strip()]
                assert marked is not None and not between, f"{_name(doc)}:{i + 1}: a table of results without a marker"


CSV_DIRS = sorted({REPO / p.parent for p in _committed("summary.csv") if (REPO / p.parent / "results.csv").exists()})


@pytest.mark.parametrize("folder", CSV_DIRS, ids=lambda p: _name(p) or ".")
def test_each_committed_summary_is_its_results_summarized(folder, tmp_path):
    """summary.csv is recomputed from results.csv beside it (the study's own code, Student t from SciPy),
    and carries the study's network, data set and protocol."""
    from pruning.report import lottery
    from pruning.report.results import write_rows

    rows = tables.read_csv(folder / "results.csv")
    study = lottery if "role" in rows[0] else stats  # a lottery study summarizes levels and roles
    write_rows(tmp_path / "summary.csv", study.summarize(rows), study.SUMMARY_COLUMNS)
    assert (tmp_path / "summary.csv").read_text() == (folder / "summary.csv").read_text()
    rows = tables.read_csv(folder / "summary.csv")
    assert all(r["model"] and r["dataset"] and r["protocol"] for r in rows)


# --------------------------------------------------------------------------- reading and rendering tables
def test_a_table_written_before_the_identity_columns_reads_as_before(tmp_path):
    old = tmp_path / "summary.csv"
    old.write_text("strategy,sparsity,seeds,n_ok,test_accuracy_mean,test_accuracy_sd,test_accuracy_ci95\n"
                   "weight,90,3,3,0.9869,0.0002,0.000496841\n")
    (row,) = tables.read_csv(old)
    assert row == {"strategy": "weight", "sparsity": 90, "seeds": 3, "n_ok": 3, "test_accuracy_mean": 0.9869,
                   "test_accuracy_sd": 0.0002, "test_accuracy_ci95": 0.000496841}
    assert tables.study_tables([row], "test_accuracy").splitlines()[2] == "| 90 | 98.69 ± 0.05 |"
    assert tables.study_label([row], old) == str(old)  # no model or data set to name it by


def test_summary_rows_carry_the_study_s_identity():
    rows = [{"seed": s, "strategy": "weight", "sparsity": 50.0, "status": "ok", "test_accuracy": a,
             "oneshot_test_accuracy": a, "effective_sparsity": 0.5, "model": "lenet5", "dataset": "mnist",
             "protocol": "retrain"} for s, a in enumerate((0.97, 0.98, 0.99))]
    (row,) = stats.summarize(rows)
    assert (row["model"], row["dataset"], row["protocol"]) == ("lenet5", "mnist", "retrain")
    assert row["effective_sparsity_sd"] == 0.0  # equal values: no spread, not a rounding error
    assert row["test_accuracy_ci95"] == pytest.approx(4.302653 * 0.01 / 3 ** 0.5)
    (mixed,) = stats.summarize([dict(rows[0], dataset="fashion_mnist"), *rows[1:]])
    assert mixed["dataset"] == "fashion_mnist+mnist"
    # a --sparsify study's strength names its rows: two strengths of one method are two rows, told apart
    (gl,) = stats.summarize([dict(r, sparsify="group_lasso", sparsify_strength=0.0003) for r in rows])
    assert float(gl["sparsify_strength"]) == 0.0003
    assert tables.study_label([gl], "x") == "LeNet-5, MNIST, group lasso 3e-4"
    assert tables.study_label([dict(gl, sparsify_strength="")], "x") == "LeNet-5, MNIST, group lasso"  # older tables


def test_a_table_across_studies_names_each_row_by_its_network_and_data_set(tmp_path):
    for name, model, dataset, acc in (("a", "mlp", "mnist", 0.98), ("b", "lenet5", "fashion_mnist", 0.9)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.csv").write_text(
            "strategy,sparsity,seeds,n_ok,test_accuracy_mean,test_accuracy_sd,test_accuracy_ci95,model,dataset,protocol\n"
            f"weight,0,1,1,{acc},,,{model},{dataset},retrain\nweight,97,1,1,{acc - 0.01},,,{model},{dataset},retrain\n")
    out = tables.across_table([tmp_path / "a" / "summary.csv", tmp_path / "b" / "summary.csv"],
                              tables.parse_columns("weight@0,weight@97,neuron@97"))
    assert out.splitlines() == ["| network, data | dense | weight, 97 % | neuron, 97 % |", "|---|---:|---:|---:|",
                                "| MLP, MNIST | 98.00 | 97.00 |  |", "| LeNet-5, Fashion-MNIST | 90.00 | 89.00 |  |"]


def test_plotting_prints_a_published_table_from_a_committed_csv(capsys, monkeypatch):
    from pruning.cli import plotting_main

    monkeypatch.chdir(REPO)
    command = "python plotting.py --from-csv summary.csv --markdown --key test_accuracy --sparsities 0,99"
    assert plotting_main(command.split()[2:]) == 0
    assert capsys.readouterr().out.strip() == tables.command_output(command)
    with pytest.raises(SystemExit) as e:
        plotting_main(["--from-csv", "summary.csv", "results.csv"])  # several files need --columns
    assert e.value.code == 2


def test_the_cost_and_strength_tables_are_printed_from_their_files(tmp_path):
    cost = tmp_path / "cost.csv"
    cost.write_text("model,method,examples,rounds,median_s,min_s,ratio\nmlp,plain,100,3,1.5,1.4,1.0\n"
                    "mlp,targeted_dropout (weights),100,3,3.0,2.9,2.0\nlenet5,plain,100,3,2.0,1.9,1.0\n"
                    "lenet5,l0,100,3,2.2,2.1,1.1\n")
    assert tables.cost_table(cost).splitlines() == [
        "| network | plain | targeted dropout, weights | L0 gates |", "|---|---:|---:|---:|",
        "| MLP | 1.500 s | 2.00x |  |", "| LeNet-5 | 2.000 s |  | 1.10x |"]
    choice = tmp_path / "strength.json"
    choice.write_text('{"chosen": 0.003, "at": 95.0, "strategy": "neuron", "candidates": ['
                      '{"strength": 0.0001, "dense": 0.98, "pruned": 0.125}, {"strength": 0.003, "dense": 0.97, "pruned": 0.5}]}')
    assert tables.strength_table(choice).splitlines() == [
        "| lambda | held-out accuracy, dense | held-out, neuron at 95 % one-shot |", "|---|---:|---:|",
        "| 1e-4 | 98.00 % | 12.50 % |", "| 3e-3 | 97.00 % | 50.00 % (chosen) |"]
    choice.write_text('{"chosen": 0.003, "at": 90.0, "strategy": "neuron", "candidates": ['
                      '{"strength": 0.003, "dense": 0.97, "pruned": 0.5, "units_alive": 1149}]}')
    assert tables.strength_table(choice).splitlines()[::2] == [
        "| lambda | held-out accuracy, dense | held-out, neuron at 90 % one-shot | hidden units alive, dense |",
        "| 3e-3 | 97.00 % | 50.00 % (chosen) | 1,149 |"]
