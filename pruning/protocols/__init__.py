"""Training protocols beyond one run's prune-and-retrain (``pruning.study.run``): ``lottery``."""
