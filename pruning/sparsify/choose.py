"""Choose a ``--sparsify`` method's strength (its lambda) on a held-out split of the training set.

``python -m pruning.sparsify.choose --sparsify l1 --candidates 1e-6,1e-5,1e-4 --strategy weight --at 95``
holds out ``--heldout`` training examples (chosen by ``--seed``, as the lottery protocol holds out its
``--validation-size``), trains one network per candidate on the rest with the study's flags (``--epochs``,
``--lr``, ...), prunes each one-shot to ``--at`` percent with ``--strategy`` (by the method's own scores where
it has them: ``l0``'s gates, ``sparse_vd``'s log alpha), and prints each candidate's held-out accuracy, dense
and pruned. The most accurate pruned network wins (ties: the earlier candidate); with ``--max-dense-drop P``
only candidates whose dense held-out accuracy is within P points of the best candidate's dense accuracy
compete (one-shot accuracy alone favours penalties that cost the dense and the retrained network). The
test set is never read.
It writes the choice, every accuracy and the command to ``--out`` (JSON) and prints the study command that
uses it (``python main.py`` with choose's flags but the choice's own, the chosen strength and ``--strategies``). The choice is made once, on one seed, and used unchanged for every seed of the study.
"""
from __future__ import annotations

import argparse
import sys
import time

from ..errors import ConfigError


def parser() -> argparse.ArgumentParser:
    from ..config import add_hyper_flags, parse_tuple
    from ..core import masks

    p = argparse.ArgumentParser(prog="python -m pruning.sparsify.choose", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("the choice")
    g.add_argument("--candidates", required=True, type=lambda s: parse_tuple(s, float), metavar="L,L,...",
                   help="the strengths to try (the method's lambda), e.g. 1e-6,1e-5,1e-4")
    g.add_argument("--strategy", default="weight", choices=masks.names(), type=masks.canonical,
                   help="the strategy whose one-shot pruned accuracy decides (default: %(default)s)")
    g.add_argument("--at", type=float, default=90.0, metavar="K",
                   help="the sparsity (percent) at which the pruned networks are compared (default: %(default)s)")
    g.add_argument("--max-dense-drop", type=float, default=None, metavar="P",
                   help="only candidates whose dense held-out accuracy is within P percentage points of the best "
                        "candidate's compete (default: no limit; 1 keeps a penalty from buying one-shot "
                        "robustness with the dense network's accuracy)")
    g.add_argument("--heldout", type=int, default=5000, metavar="N",
                   help="training examples held out to compare on (default: %(default)s, as --validation-size)")
    g.add_argument("--out", default=None, metavar="FILE.json",
                   help="where the choice is written (default: strength-METHOD.json in the current directory)")
    add_hyper_flags(p)
    return p


CHOICE_ONLY = ("candidates", "strategy", "at", "max_dense_drop", "heldout", "out", "seed", "logdir", "overwrite")


def study_command(p: argparse.ArgumentParser, argv: list[str], strength_dest: str, flag: str, chosen: float,
                  strategy: str) -> str:
    """The ``python main.py`` command of a study with the chosen strength: ``argv`` (choose's command line)
    without the options that only the choice uses (``CHOICE_ONLY``: the candidates, the held-out split, its
    seed, the output) and without any value of the strength flag, then ``flag chosen`` and ``--strategies
    strategy``. Abbreviated options (``--cand``) are recognised as argparse recognises them."""
    actions = p._option_string_actions
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        if name.startswith("--"):
            hits = [actions[name]] if name in actions else \
                list({id(a): a for o, a in actions.items() if o.startswith(name)}.values())
            if len(hits) == 1 and hits[0].dest in (*CHOICE_ONLY, strength_dest):
                skip = "=" not in token and hits[0].nargs != 0
                continue
        kept.append(token)
    return " ".join(["python main.py", *kept, flag, f"{chosen:g}", "--strategies", strategy])


def main(argv=None) -> int:
    from ..config import check_sparsify, check_sparsity, hyper_from_args

    p = parser()
    args = p.parse_args(argv)
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]  # the command, as written to --out
    try:
        hyper = hyper_from_args(args)
        if hyper.sparsify.method == "none":
            raise ConfigError("--sparsify METHOD is required: the method whose strength is chosen (e.g. --sparsify l1).")
        from . import methods

        m = methods.get(hyper.sparsify.method)
        if m.strength is None:
            raise ConfigError(f"--sparsify {m.name} has no strength to choose (its hyper-parameters are "
                              f"probabilities with the paper's defaults).")
        check_sparsity(args.at, "--at")
        hyper = check_sparsify(hyper, [args.strategy], "--strategy")
        if any(c < 0 for c in args.candidates) or not args.candidates:
            raise ConfigError(f"--candidates must be strengths >= 0, got {args.candidates}.")
        if args.max_dense_drop is not None and not 0 <= args.max_dense_drop <= 100:
            raise ConfigError(f"--max-dense-drop must be between 0 and 100 percentage points, got "
                              f"{args.max_dense_drop:g}; e.g. --max-dense-drop 1 lets only candidates within one "
                              f"point of the best dense held-out accuracy compete.")
    except ConfigError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    return choose(hyper, args)


def choose(hyper, args) -> int:
    import dataclasses
    import math

    from .. import data as datasets
    from ..core.callbacks import masks_applied
    from ..core.training import compile_model
    from ..files import write_json
    from ..models import build_model
    from ..protocols.lottery import split
    from ..tfsetup import import_tensorflow
    from . import hooks, methods
    from .hooks import pick_strength

    import_tensorflow(False)
    import keras

    data = datasets.load(hyper.data)
    if not 0 < args.heldout < len(data.y_train):
        print(f"error: --heldout {args.heldout} must be between 1 and the {len(data.y_train) - 1} training examples "
              f"less one.", file=sys.stderr)
        return 2
    rest, (x_held, y_held) = split(data, args.heldout, hyper.train.seed)
    method, train = hyper.sparsify.method, hyper.train
    steps = train.epochs * math.ceil(len(rest.y_train) / train.batch_size)
    rows = {}
    print(f"choosing --sparsify {method}'s strength: {len(args.candidates)} candidates, {train.epochs} epochs each on "
          f"{len(rest.y_train)} training examples, compared at {args.strategy} {args.at:g} % on {args.heldout} "
          f"held-out ones", flush=True)
    for strength in args.candidates:
        t0 = time.perf_counter()
        params = methods.with_strength(method, hyper.sparsify.typed(), strength)
        keras.utils.set_random_seed(train.seed)
        model = build_model(data.input_dim, hyper.model, data.input_shape, data.num_classes)
        model = hooks.apply(model, method, params, strategy=args.strategy, seed=train.seed)
        compile_model(model, train.lr, train.weight_decay, steps, False, 0, train.lr_schedule)
        hooks.exclude_from_weight_decay(model)
        model.fit(rest.x_train, rest.y_train, batch_size=train.batch_size, epochs=train.epochs, verbose=0)
        dense = hooks.heldout_accuracy(model, x_held, y_held)
        alive, units, per_layer = _units_alive(hooks.finalize(model))
        with masks_applied(model, hooks.compute_masks(model, method, args.strategy, args.at, train.seed)):
            pruned = hooks.heldout_accuracy(model, x_held, y_held)
        rows[float(strength)] = {"dense": dense, "pruned": pruned, "units_alive": alive,
                                 "units_alive_per_layer": per_layer, "seconds": time.perf_counter() - t0}
        print(f"  {m_name(method)} {strength:g}: held-out accuracy dense {100 * dense:.2f} %, at {args.at:g} % "
              f"{100 * pruned:.2f} %; hidden units alive in the dense network {alive} of {units} "
              f"({'-'.join(map(str, per_layer))}) "
              f"({rows[float(strength)]['seconds']:.0f} s)", flush=True)
    chosen = pick_strength({s: r["pruned"] for s, r in rows.items()}, {s: r["dense"] for s, r in rows.items()},
                           args.max_dense_drop)
    best = rows[chosen]["pruned"]
    flag = "--" + methods.get(method).strength.replace("_", "-")
    out = args.out or f"strength-{method}.json"
    settings = dataclasses.asdict(hyper)  # the study's settings, with the strength chosen (not the flag's default)
    settings["sparsify"]["params"][methods.get(method).strength] = chosen
    study = study_command(parser(), args.argv, methods.get(method).strength, flag, chosen, args.strategy)
    write_json(out, {"method": method, "strength_flag": flag, "chosen": chosen, "at": args.at,
                     "strategy": args.strategy, "max_dense_drop": args.max_dense_drop, "heldout": args.heldout, "seed": train.seed,
                     "candidates": [{"strength": s, **r} for s, r in rows.items()],
                     "hyper": settings, "command": " ".join(["python -m pruning.sparsify.choose", *args.argv]),
                     "study": study})
    print(f"chosen: {flag} {chosen:g} (held-out accuracy at {args.at:g} %: {100 * best:.2f} %); written to {out}\n"
          f"the study with it (add --seeds, --logdir): {study}", flush=True)
    return 0


def _units_alive(model) -> tuple[int, int, list[int]]:
    """(hidden units on an input-to-output path of nonzero weights, hidden units, the first per hidden
    layer) of a plain network: what the method has already removed before any pruning (l0's closed gates,
    say)."""
    from ..core.layers import weight_layers
    from ..deploy.shrink import alive_units

    kernels = [l.kernel.numpy() * (1 if l.mask is None else l.mask.numpy()) for l in weight_layers(model)]
    alive = alive_units(kernels)
    return int(sum(a.sum() for a in alive)), int(sum(a.size for a in alive)), [int(a.sum()) for a in alive]


def m_name(method: str) -> str:
    from . import methods

    return methods.get(method).strength or method


if __name__ == "__main__":
    sys.exit(main())
