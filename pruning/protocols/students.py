"""The students' protocol (strategies ``student`` and ``distill``, ``pruning.protocols.distill``): at each k
a small dense network of the study's family, as many weights as the weight-pruned network keeps, trained
from a fresh initialisation for ``--epochs`` at ``--lr``, on the labels or distilled from the dense run."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import paths
from ..config import Hyper, RunConfig
from ..report.results import finished_result, load_parent_model
from .base import Protocol, RunContext, Start


class Students(Protocol):
    name = "student"

    def strategy_chains(self, hyper: Hyper, strategy: str, ks: list[float]) -> list[list[RunConfig]]:
        """Each k a chain of its own: a student is trained anew at each size; the dense run is its teacher."""
        return [[RunConfig(hyper, strategy, k, paths.DENSE)] for k in ks]

    def identity(self, cfg: RunConfig) -> dict:
        return {"distill": dataclasses.asdict(cfg.hyper.distill)} if cfg.strategy == "distill" else {}

    def start(self, run: RunContext) -> Start:
        """The small dense network, fresh; its training and test targets (the labels, or the labels packed
        with the teacher's logits for ``distill``); its loss and accuracy metric (None: the study's usual
        ones); and what result.json records about it (``student``)."""
        import keras

        from ..models import build_model
        from . import distill

        cfg, data = run.cfg, run.data
        teacher = finished_result(run.logdir, cfg.parent, role="teacher (the dense run)")
        seed = cfg.hyper.train.seed
        full = build_model(data.input_dim, cfg.hyper.model)
        target = distill.target_params(full, cfg.sparsity)
        student_cfg = distill.student_config(cfg.hyper.model, full, target)
        keras.utils.set_random_seed(seed)  # the student's initialisation depends on the seed only
        model = build_model(data.input_dim, student_cfg)
        run.result["student"] = {
            "hidden": list(student_cfg.hidden), "filters": list(student_cfg.filters),
            "params": int(sum(np.prod(w.shape) for w in model.trainable_weights)), "target_params": int(target),
            "dense_params": int(sum(np.prod(w.shape) for w in full.trainable_weights))}
        epochs = self.epochs(cfg)
        start = Start(model=model, data=data, epochs=epochs, lr=cfg.hyper.train.lr, parent=None,
                      steps=epochs * math.ceil(len(data.y_train) / cfg.hyper.train.batch_size))
        if cfg.strategy == "distill":
            net = load_parent_model(paths.model_file(run.logdir, teacher["run"]), "teacher (the dense run)")
            d = cfg.hyper.distill
            run.result["student"].update(temperature=d.temperature, alpha=d.distill_alpha)
            start.y_fit = distill.pack_targets(data.y_train, distill.teacher_logits(net, data.x_train))
            start.y_val = distill.pack_targets(data.y_test, distill.teacher_logits(net, data.x_test))
            start.loss = distill.distillation_loss(d.temperature, d.distill_alpha)
            start.accuracy = distill.packed_accuracy()
        return start

    def sizes(self, run: RunContext, start: Start, size: dict) -> None:
        """Its weights against the dense network's, as for the pruned networks."""
        size["effective_sparsity"] = 1.0 - size["params_nonzero"] / run.result["student"]["dense_params"]


STUDENTS = Students()
