"""A pruned network made smaller and faster, and measured.

* ``shrink``: dead units removed (and put back), effective sparsity and FLOPs.
* ``sparse_format``: the compact, checksummed file format; ``export``: a Keras model written in it.
* ``sparse_engine``: the Numba sparse inference engine; ``bench``: the benchmark's timings.
"""
