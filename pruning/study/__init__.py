"""The study runner: many runs (strategies x sparsities x seeds), resumable, on worker processes.

* ``plan``: the runs as chains (each iterative run starts from the one before), what is left to do
  (resume), and how the cores are shared; no TensorFlow.
* ``run``: one run, from its configuration to its written result.
* ``engine``: the local engine that executes a plan on worker processes, once per seed.
* ``lock``: one writer per log directory.
"""
