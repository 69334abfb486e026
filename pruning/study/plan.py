"""The study as a plan: which runs, in which chains, which of them are still to do, and how the
CPU cores are shared among the workers that run them.

A study is planned as *chains*: lists of runs that must run in order because each starts from
the previous one's model (iterative pruning). The dense run is a chain of its own and comes
first. A run whose ``result.json`` says ``ok`` (and whose files are there) is done; an unfinished
or failed one is redone, with every later run of its chain. Nothing here trains or imports
TensorFlow: the engine (``pruning.study.engine``) executes the plan.
"""
from __future__ import annotations

from .. import paths
from ..config import Hyper, RunConfig, StudyConfig
from ..core import masks
from ..report.results import missing_files, read_result


class StudyError(Exception):
    """The study cannot go on as asked; the message names the problem and the fix."""


def dense_config(hyper: Hyper) -> RunConfig:
    return RunConfig(hyper, "none", 0.0, None)


def lottery_chains(hyper: Hyper, study: StudyConfig) -> list[list[RunConfig]]:
    """A lottery study: the dense run (level 0); per strategy, the chain of its tickets (level L starts
    from level L-1); and each control of each level, a run of its own whose parent is its level's ticket."""
    lot = hyper.lottery
    chains = [[RunConfig(hyper, "none", 0.0, None, level=0)]]
    controls = []
    for strategy in study.strategies:
        chain, parent = [], paths.DENSE
        for level in range(1, lot.n_levels() + 1):
            ticket = RunConfig(hyper, strategy, lot.nominal_sparsity(level), parent, level=level)
            chain.append(ticket)
            controls += [[RunConfig(hyper, strategy, ticket.sparsity, ticket.name, level, c)] for c in lot.controls]
            parent = ticket.name
        chains.append(chain)
    return chains + controls


def plan_study(hyper: Hyper, study: StudyConfig) -> list[list[RunConfig]]:
    """The dense run (a chain of its own, first), then the pruned runs grouped in chains."""
    ks = sorted({float(k) for k in study.sparsities if float(k) > 0})
    protocol = hyper.prune.protocol
    if protocol == "lottery":
        return lottery_chains(hyper, study)
    chains = [[dense_config(hyper)]]
    for strategy in study.strategies:
        if not masks.get(strategy).masks:  # a student: trained anew at each size; the dense run is its teacher
            chains += [[RunConfig(hyper, strategy, k, paths.DENSE)] for k in ks]
        elif protocol == "retrain" and hyper.prune.iterative:
            chain, parent = [], paths.DENSE
            for k in ks:
                chain.append(RunConfig(hyper, strategy, k, parent))
                parent = paths.run_name(strategy, k)
            chains.append(chain)
        else:
            parent = None if protocol == "scratch" else paths.DENSE
            chains += [[RunConfig(hyper, strategy, k, parent)] for k in ks]
    return [c for c in chains if c]


def planned_epochs(cfg: RunConfig) -> int:
    if cfg.hyper.prune.protocol == "lottery":  # a level trains from its rewind point (a part epoch counts)
        return cfg.hyper.train.epochs - (int(cfg.hyper.lottery.rewind_epoch) if cfg.level else 0)
    if cfg.sparsity == 0 or cfg.hyper.prune.protocol == "scratch" or not masks.get(cfg.strategy).masks:
        return cfg.hyper.train.epochs
    if cfg.hyper.prune.protocol == "retrain":
        return cfg.hyper.prune.retrain_epochs
    return 0


def check_existing(cfg: RunConfig, logdir, data_info: dict | None = None, notices: list | None = None) -> str:
    """'todo' or 'done' for this run in ``logdir``; raises StudyError when a finished run
    there was made with another configuration or, given ``data_info`` (``Dataset.describe()``),
    on other data: it would be silently mixed in. A run is done only when its result says ok
    and every file the result names (model.keras, model.sparse) is there; otherwise it is
    'todo', and a notice saying why is appended to ``notices``."""
    result = read_result(logdir, cfg.name)
    if result is None or result.get("status") != "ok":
        return "todo"
    gone = missing_files(logdir, result)
    if gone:
        if notices is not None:
            notices.append(f"{paths.run_dir(logdir, cfg.name)}: its result.json says finished, but "
                           f"{' and '.join(gone)} {'is' if len(gone) == 1 else 'are'} gone; redoing it "
                           f"(and the runs of its chain after it)")
        return "todo"
    theirs_data = result.get("data") or {}
    if data_info and theirs_data.get("fingerprint") != data_info["fingerprint"]:
        raise StudyError(
            f"{paths.run_dir(logdir, cfg.name)} holds a finished run trained on other data "
            f"({theirs_data.get('source')}, {theirs_data.get('train_examples')} train examples) than this one "
            f"({data_info['source']}, {data_info['train_examples']}). Pass --overwrite to retrain it, or "
            f"--logdir to write this study elsewhere."
        )
    theirs = RunConfig.from_dict(result["config"]).identity()
    ours = cfg.identity()
    if theirs != ours:
        diffs = _diff(theirs, ours)
        raise StudyError(
            f"{paths.run_dir(logdir, cfg.name)} holds a finished run made with another configuration "
            f"({'; '.join(diffs[:4])}). Pass --overwrite to retrain it, or --logdir to write this study elsewhere."
        )
    return "done"


def runs_to_do(chains: list[list[RunConfig]], logdir, overwrite: bool = False,
               data_info: dict | None = None, notices: list | None = None) -> set[str]:
    """Names of the runs to (re)train: unfinished or failed ones, and every later run of the same
    chain (it starts from a model that will change), and a lottery run whose parent is redone (the
    first ticket's parent is the dense run, a control's its level's ticket). Raises StudyError on a configuration clash."""
    todo = set()
    for chain in chains:
        stale = False
        for c in chain:
            stale = (stale or overwrite or (c.level is not None and c.parent in todo)
                     or check_existing(c, logdir, data_info, notices) == "todo")
            if stale:
                todo.add(c.name)
    return todo


def _diff(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} there, {b!r} now"]


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


def worker_plan(first: list, rest: list, jobs: int, cores: int) -> list[list[tuple[list, int, int]]]:
    """Phases of (chains, worker processes, threads per worker); a phase's pools run concurrently.
    ``first`` holds the dense chain (if it is to run), ``rest`` the pruned chains (lists of RunConfig
    dicts). The cores go to the workers that run: a chain left alone (a resume, one strategy) gets
    all of them; one worker per chain shares them by the chains' cost (``chain_threads``)."""
    if jobs == 1:
        return [[(first + rest, 1, cores)]]
    workers = min(jobs, max(1, len(rest)))
    phases = [[(first, 1, cores)], [(rest, workers, max(1, cores // workers))]]
    if 1 < len(rest) <= jobs:
        costs = chain_threads([[RunConfig.from_dict(d) for d in c] for c in rest], cores)
        phases[1] = [([c], 1, t) for c, t in zip(rest, costs)]
    return phases
