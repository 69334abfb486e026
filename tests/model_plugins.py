"""A second model builder, registered by tests only: it proves that the study needs no change outside
a model's own registration (pruning.models). Two layers, neither named like the MLP's: a prunable
``trunk`` of ``--hidden``'s first width, and a ``head`` that is not pruned and, unlike the MLP's
output, ends in a ReLU."""
from pruning.core.layers import mlp_from_specs


def build_two_layer(input_dim: int, cfg):
    return mlp_from_specs(input_dim, [
        dict(name="trunk", units=cfg.hidden[0], relu=True, prunable=True),
        dict(name="head", units=10, relu=True, prunable=False),
    ])
