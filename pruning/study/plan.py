"""The study as a plan: which runs, in which chains, which of them are still to do, and how the
CPU cores are shared among the workers that run them.

A study is planned as *chains*: lists of runs that must run in order because each starts from
the previous one's model (iterative pruning). The dense run is a chain of its own and comes
first. A run whose ``result.json`` says ``ok`` (and whose files are there) is done; an unfinished
or failed one is redone, with every later run of its chain. Nothing here trains or imports
TensorFlow: the engine (``pruning.study.engine``) executes the plan.
"""
from __future__ import annotations

from pathlib import Path

from .. import paths, protocols
from ..config import Hyper, RunConfig, StudyConfig, diff, seedless, study_identity
from ..files import read_json
from ..core import masks
from ..report.results import damaged_files, describe_damage, read_result


class StudyError(Exception):
    """The study cannot go on as asked; the message names the problem and the fix."""


def dense_config(hyper: Hyper) -> RunConfig:
    return RunConfig(hyper, "none", 0.0, None)


def plan_study(hyper: Hyper, study: StudyConfig) -> list[list[RunConfig]]:
    """The dense run (a chain of its own, first), then the pruned runs grouped in chains, as the study's
    protocol plans them (``pruning.protocols``)."""
    return protocols.get(hyper.prune.protocol).chains(hyper, study)


def planned_epochs(cfg: RunConfig) -> int:
    """The epochs ``cfg`` trains, as its protocol says."""
    return protocols.for_run(cfg).epochs(cfg)


def check_existing(cfg: RunConfig, logdir, data_info: dict | None = None, notices: list | None = None,
                   deep: bool = False) -> str:
    """'todo' or 'done' for this run in ``logdir``; raises StudyError when a finished run
    there was made with another configuration or, given ``data_info`` (``Dataset.describe()``),
    on other data: it would be silently mixed in. A run is done only when its result says ok
    and every file the result names (model.keras, model.sparse) is there with the size it was
    written with (and, when ``deep``, the same SHA-256: for the runs other runs are about to read);
    otherwise it is 'todo', and a notice saying why is appended to ``notices``."""
    result = read_result(logdir, cfg.name)
    if result is None or result.get("status") != "ok":
        return "todo"
    damage = damaged_files(logdir, result, deep=deep)
    if damage:
        if notices is not None:
            gone = [f for f, why in damage.items() if why == "gone"]
            what = (f"{' and '.join(gone)} {'is' if len(gone) == 1 else 'are'} gone" if len(gone) == len(damage)
                    else describe_damage(damage))
            notices.append(f"{paths.run_dir(logdir, cfg.name)}: its result.json says finished, but {what}; "
                           f"redoing it (and the runs of its chain after it)")
        return "todo"
    theirs_data = result.get("data") or {}
    if data_info and not same_data(theirs_data, data_info):
        raise StudyError(
            f"{paths.run_dir(logdir, cfg.name)} holds a finished run trained on other data "
            f"({theirs_data.get('source')}, {theirs_data.get('train_examples')} train examples) than this one "
            f"({data_info['source']}, {data_info['train_examples']}). Pass --overwrite to retrain it, or "
            f"--logdir to write this study elsewhere."
        )
    theirs = RunConfig.from_dict(result["config"]).identity()
    ours = cfg.identity()
    if theirs != ours:
        diffs = diff(theirs, ours)
        raise StudyError(
            f"{paths.run_dir(logdir, cfg.name)} holds a finished run made with another configuration "
            f"({'; '.join(diffs[:4])}). Pass --overwrite to retrain it, or --logdir to write this study elsewhere."
        )
    return "done"


def same_data(a: dict, b: dict) -> bool:
    """Whether two ``Dataset.describe()`` records are of the same data: their fingerprints (of the data set,
    its labels and images, and of all the bytes of a copy that is not the published one) are equal."""
    return a.get("fingerprint") == b.get("fingerprint")


def _data_words(d: dict) -> str:
    return f"{d.get('dataset', 'mnist')}, {d.get('source')}, {d.get('train_examples')} train examples"


def check_parent(parent: dict, hyper: Hyper, logdir, data_info: dict | None = None) -> None:
    """Refuse (StudyError) to start a run of ``hyper`` from the finished run ``parent`` (its result) when
    that run was made with another configuration or on other data: ``train.py --from-run`` checks the run
    it starts from as the study checks its own chains."""
    where = paths.run_dir(logdir, parent["run"])
    theirs = RunConfig.from_dict(parent["config"])
    ours = RunConfig(hyper, theirs.strategy, theirs.sparsity, theirs.parent, theirs.level, theirs.control)
    diffs = diff(theirs.identity(), ours.identity())
    if diffs:
        raise StudyError(f"--from-run {parent['run']}: {where} was made with another configuration than this run's "
                         f"({'; '.join(diffs[:4])}). Pass the flags of the study that made it, or --logdir to a "
                         f"study of this configuration (or leave --from-run out to start from its dense run).")
    theirs_data = parent.get("data") or {}
    if data_info and not same_data(theirs_data, data_info):
        raise StudyError(f"--from-run {parent['run']}: {where} was trained on other data ({_data_words(theirs_data)}) "
                         f"than this run's ({_data_words(data_info)}). Pass the --dataset and --data-dir of the study "
                         f"that made it, or --logdir to a study of this data.")


def check_same_study(hyper: Hyper, logdir, seeds, overwrite: bool = False, data_info: dict | None = None) -> None:
    """Refuse (StudyError), before anything is trained, to add seeds ``seeds`` of ``hyper`` to the study in
    ``logdir`` when that study was made with another configuration (``config.study_identity``) or on other data:
    a log directory holds one study, whose seeds are averaged. The study's study.json and every seed's are
    compared (with ``overwrite``, the seeds about to be retrained are not), and the data of each seed's dense run."""
    logdir = Path(logdir)
    ours = study_identity(hyper)
    dirs = [(seed, d) for seed, d in paths.seed_dirs(logdir) if not (overwrite and seed in seeds)]
    written = [(d / paths.STUDY, None) for _, d in dirs]
    if not (overwrite and not dirs):
        written.insert(0, (paths.study_file(logdir), None))
    written += [(paths.result_file(d, paths.DENSE), "dense") for _, d in dirs]
    lottery = hyper.prune.protocol == "lottery"
    dense = seedless(RunConfig(hyper, "none", 0.0, None, level=0 if lottery else None).identity())
    for path, kind in written:
        if not path.is_file():
            continue
        try:
            record = read_json(path)
            theirs = (seedless(RunConfig.from_dict(record["config"]).identity()) if kind else
                      study_identity(Hyper.from_dict(record["hyper"])))
        except Exception:  # noqa: BLE001 - an unreadable or older file: the runs' own checks still apply
            continue
        diffs = diff(theirs, dense if kind else ours)
        where = path.relative_to(logdir)
        if diffs:
            raise StudyError(
                f"{logdir} holds a study made with another configuration ({where}: {'; '.join(diffs[:4])}). A log "
                f"directory holds one study, whose seeds are averaged: only --seeds, --strategies, --sparsities, the "
                f"lottery's --levels, --until-remaining and --controls, and how runs execute (--jobs, --engine, "
                f"--xla) may change. Pass that study's flags to add to it, or --logdir to start another study.")
        theirs_data = record.get("data")
        if data_info and theirs_data and not same_data(theirs_data, data_info):
            raise StudyError(
                f"{logdir} holds a study trained on other data ({where}: {_data_words(theirs_data)}) than this one "
                f"({_data_words(data_info)}). A log directory holds one study: pass its --dataset and --data-dir, or "
                f"--logdir to start another study.")


def runs_to_do(chains: list[list[RunConfig]], logdir, overwrite: bool = False,
               data_info: dict | None = None, notices: list | None = None) -> set[str]:
    """Names of the runs to (re)train: unfinished or failed ones, and every later run of the same
    chain (it starts from a model that will change), and a lottery run whose parent is redone (the
    first ticket's parent is the dense run, a control's its level's ticket). Raises StudyError on a configuration clash."""
    deep: set[str] = set()  # the finished runs that runs still to do will read: their files' hashes are checked
    while True:
        todo, found = set(), []
        for chain in chains:
            stale = False
            for c in chain:
                stale = (stale or overwrite or (c.level is not None and c.parent in todo)
                         or check_existing(c, logdir, data_info, found, deep=c.name in deep) == "todo")
                if stale:
                    todo.add(c.name)
        read = {c.parent for chain in chains for c in chain if c.name in todo and c.parent} - todo
        if todo - {paths.DENSE}:
            read |= {paths.DENSE} - todo  # every pruned run reads the dense model (its one-shot accuracy, a rewind)
        if read <= deep:
            break
        deep |= read  # a damaged file among them makes its run (and its chain after it) todo: look again
    if notices is not None:
        notices += found
    return todo


def run_cost(cfg: RunConfig) -> float:
    """Relative training cost of a run: epochs x the fraction of the dense network's hidden-layer
    weights it trains. Neuron runs train physically shrunk, so they cost about (1 - k)^2 of it, and a
    student about (1 - k)."""
    if cfg.sparsity == 0 or masks.get(cfg.strategy).granularity == "weight":
        return float(planned_epochs(cfg))
    keep = 1.0 - cfg.sparsity / 100.0
    if not masks.get(cfg.strategy).masks:  # a student: about (1 - k) of the dense network's weights
        return planned_epochs(cfg) * keep
    return planned_epochs(cfg) * keep * keep


def longest_first(chains: list[list[RunConfig]]) -> list[list[RunConfig]]:
    """The chains in the order the workers take them: the costliest first (``run_cost``; ties keep
    the plan's order), so the short ones (students, shrunk networks) fill the cores at the end
    instead of one long chain running alone while the other cores idle."""
    return sorted(chains, key=lambda chain: -sum(run_cost(c) for c in chain))


def chain_threads(chains: list[list[RunConfig]], cores: int) -> list[int]:
    """Threads per chain when each chain has its own worker: shares of the cores proportional to
    the chains' cost, at least one each. The sum can exceed ``cores`` (a cheap chain keeps one
    thread while the costly one gets all cores): the costly chain then runs at full speed once
    the cheap one is done, which is most of the study."""
    costs = [sum(run_cost(c) for c in chain) for chain in chains]
    total = sum(costs) or 1.0
    return [max(1, min(cores, round(cores * c / total))) for c in costs]


def worker_plan(first: list, rest: list, jobs: int, cores: int,
                threads: int | None = None) -> list[list[tuple[list, int, int]]]:
    """Phases of (chains, worker processes, threads per worker); a phase's pools run concurrently.
    ``first`` holds the dense chain (if it is to run), ``rest`` the pruned chains (lists of RunConfig
    dicts). The cores go to the workers that run: a chain left alone (a resume, one strategy) gets
    all of them; one worker per chain shares them by the chains' cost (``chain_threads``). ``threads``
    (``--threads``) gives every worker that many instead, whatever the study's shape."""
    if jobs == 1:
        phases = [[(first + rest, 1, cores)]]
    else:
        workers = min(jobs, max(1, len(rest)))
        phases = [[(first, 1, cores)], [(rest, workers, max(1, cores // workers))]]
        if 1 < len(rest) <= jobs:
            costs = chain_threads([[RunConfig.from_dict(d) for d in c] for c in rest], cores)
            phases[1] = [([c], 1, t) for c, t in zip(rest, costs)]
    if threads:
        phases = [[(chains, n, threads) for chains, n, _ in phase] for phase in phases]
    return phases
