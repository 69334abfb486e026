"""The error a model the graph toolkit cannot read gets."""
from __future__ import annotations


class UnsupportedLayerError(ValueError):
    """A layer (or model) whose channels the graph toolkit has no rule for.

    Its message is one paragraph naming the layer, its class and what is supported; a
    ``ValueError``, so callers that already catch bad arguments catch it too::

        try:
            pruning.prunable(model)
        except pruning.UnsupportedLayerError as err:
            print(err)          # ... or pass exclude=("that_layer",) to leave it alone

    ``layer_name``: the name to pass in ``exclude`` (None when no single layer is to blame, e.g. a
    subclassed model).
    """

    def __init__(self, message: str, layer_name: str | None = None):
        super().__init__(message)
        self.layer_name = layer_name

