"""A protocol registered by tests only: it proves that a new protocol is one module and one registration,
with no change to the planner, the runner or the engines (pruning.protocols). ``polish`` prunes the dense
network to k at once and retrains it for exactly one epoch at a tenth of --lr, each k from the dense run."""
from pruning.protocols.pruning import OneShot


class Polish(OneShot):
    name = "polish"

    def pruned_epochs(self, cfg):
        return 1

    def lr(self, cfg):
        return cfg.hyper.train.lr / 10

    def identity(self, cfg):
        return {"protocol": "polish", "polish_lr": self.lr(cfg)} if cfg.sparsity > 0 else {}


POLISH = Polish()
