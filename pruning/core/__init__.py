"""What pruning is, independent of any study.

* ``masks``: strategies (score, granularity, scope) in a registry, and the pure mask functions
  ``(weights, k, ...) -> 0/1 mask``; imports NumPy only.
* ``layers``: ``MaskedDense``, the layer that owns its mask, and how the toolkit finds a model's
  prunable layers.
* ``callbacks``: masks computed on a Keras model and assigned to it (``prune``), and the
  ``MaskingCallback`` that does it along a schedule during ``fit``.
"""
