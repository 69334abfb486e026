"""SparseMLP (pruning.deploy.sparse_engine) against a plain NumPy forward of the masked network."""
import numpy as np
import pytest

from pruning.deploy.sparse_engine import SparseMLP, density_limit

SIZES = [784, 1000, 1000, 500, 200, 10]
RELUS = [True, True, True, True, False]
PLANS = ["dense", "sparse", "auto"]
BATCHES = [1, 7, 100]


def masked_net(k: float, seed: int = 0, sizes=SIZES) -> list[np.ndarray]:
    """float32 kernels; each hidden kernel has exactly k% zeros at random places, the last one is dense."""
    rng = np.random.default_rng(seed)
    kernels = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        if i < len(sizes) - 2:
            flat = w.reshape(-1)
            flat[rng.permutation(flat.size)[: int(round(k / 100 * flat.size))]] = 0.0
        kernels.append(w)
    return kernels


def reference(kernels, relus, x) -> np.ndarray:
    """The dense NumPy forward (float64 accumulation of the float32 weights)."""
    h = np.asarray(x, dtype=np.float64)
    for w, relu in zip(kernels, relus):
        h = h @ w.astype(np.float64)
        if relu:
            h = np.maximum(h, 0.0)
    return h


def rel_err(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), np.finfo(np.float64).tiny))


@pytest.mark.parametrize("k", [0, 50, 90, 99, 100])
def test_every_plan_matches_numpy(k):
    kernels = masked_net(k, seed=k)
    rng = np.random.default_rng(1)
    for plan in PLANS:
        m = SparseMLP(kernels, RELUS, plan)
        for b in BATCHES:
            x = rng.standard_normal((b, SIZES[0])).astype(np.float32)
            y = m.predict(x)
            assert y.shape == (b, SIZES[-1]) and y.dtype == np.float32 and y.flags.c_contiguous
            assert rel_err(y, reference(kernels, RELUS, x)) < 1e-5, (plan, b)
            assert len(m.plan_for(b)) == len(kernels) and set(m.plan_for(b)) <= {"dense", "sparse"}


def test_auto_plan_follows_density_rule():
    sparse99 = SparseMLP(masked_net(99), RELUS, "auto")
    assert sparse99.plan_for(100) == ["sparse"] * 5  # the 200x10 output layer follows the others
    assert sparse99.plan_for(1) == ["sparse"] * 5
    dense0 = SparseMLP(masked_net(0), RELUS, "auto")
    assert dense0.plan_for(100) == ["dense"] * 5
    k90 = SparseMLP(masked_net(90), RELUS, "auto")  # density 0.1: sparse from batch 2 on
    assert k90.plan_for(1) == ["dense"] * 5 and k90.plan_for(100) == ["sparse"] * 5
    assert density_limit(1) <= density_limit(7) <= density_limit(100) <= density_limit(10_000)


def test_nnz_and_flops():
    kernels = masked_net(90)
    m = SparseMLP(kernels, RELUS, "auto")
    assert m.nnz == [int(np.count_nonzero(w)) for w in kernels]
    assert SparseMLP(kernels, RELUS, "dense").flops_per_example() == 2 * sum(w.size for w in kernels)
    assert SparseMLP(kernels, RELUS, "sparse").flops_per_example() == 2 * sum(m.nnz)
    mixed = SparseMLP(kernels, RELUS, ["dense", "sparse", "sparse", "sparse", "dense"])
    assert mixed.flops_per_example() == 2 * (kernels[0].size + sum(m.nnz[1:4]) + kernels[4].size)


@pytest.mark.parametrize("plan", PLANS + [["dense", "sparse", "dense"], ["sparse", "dense", "sparse"]])
def test_layer_without_nonzeros_gives_zeros(plan):
    rng = np.random.default_rng(2)
    kernels = [rng.standard_normal(s).astype(np.float32) for s in [(30, 40), (40, 20), (20, 5)]]
    kernels[1][:] = 0.0
    m = SparseMLP(kernels, [True, True, False], plan)
    assert m.nnz[1] == 0
    for b in BATCHES:
        y = m.predict(rng.standard_normal((b, 30)).astype(np.float32))
        assert y.shape == (b, 5) and not y.any()
    last_plan = plan if isinstance(plan, str) else "sparse"
    m_last = SparseMLP(kernels[:1] + [np.zeros((40, 3), np.float32)], [True, False], last_plan)
    assert not m_last.predict(np.ones((4, 30), np.float32)).any()


@pytest.mark.parametrize("plan", PLANS)
def test_relu_flags_respected(plan):
    kernels = masked_net(90, sizes=[50, 40, 30, 10])
    x = np.random.default_rng(3).standard_normal((7, 50)).astype(np.float32)
    for relus in ([True, True, False], [True, False, False], [False, True, True], [False, False, False]):
        y = SparseMLP(kernels, relus, plan).predict(x)
        assert rel_err(y, reference(kernels, relus, x)) < 1e-5, relus
        assert (y < 0).any() != relus[-1]  # logits without a final ReLU go negative
    no_hidden_relu = SparseMLP(kernels, [False, True, False], plan).predict(x)
    assert rel_err(no_hidden_relu, reference(kernels, [True, True, False], x)) > 1e-3


@pytest.mark.parametrize("plan", ["dense", "sparse"])
def test_any_input_layout_and_dtype(plan):
    kernels = masked_net(95, sizes=[64, 48, 10])
    relus = [True, False]
    m = SparseMLP(kernels, relus, plan)
    rng = np.random.default_rng(4)
    wide = rng.standard_normal((9, 128))
    for x in (wide[:, ::2], np.asfortranarray(wide[:, :64]), wide[::2, :64], wide[:, :64].astype(np.float32)):
        assert rel_err(m.predict(x), reference(kernels, relus, np.asarray(x, np.float32))) < 1e-5
    assert m.predict(np.zeros((0, 64), np.float32)).shape == (0, 10)


@pytest.mark.parametrize("plan", ["dense", "sparse"])
@pytest.mark.parametrize("b", [1, 7])
def test_results_are_not_overwritten_by_the_next_call(plan, b):
    kernels = masked_net(95, sizes=[64, 48, 10])
    m = SparseMLP(kernels, [True, False], plan)
    rng = np.random.default_rng(5)
    x1, x2 = (rng.standard_normal((b, 64)).astype(np.float32) for _ in range(2))
    y1 = m.predict(x1)
    y1_copy = y1.copy()
    m.predict(x2)
    np.testing.assert_array_equal(y1, y1_copy)


@pytest.mark.parametrize("plan", ["Dense", "csr", "", ["dense", "sparse"], ["dense", "sparse", "fast"], None, 3,
                                  ["dense", "sparse", 1]])
def test_bad_plans_raise(plan):
    kernels = masked_net(50, sizes=[20, 10, 5, 3])
    with pytest.raises(ValueError):
        SparseMLP(kernels, [True, True, False], plan)


def test_bad_shapes_raise():
    kernels = masked_net(50, sizes=[20, 10, 5, 3])
    with pytest.raises(ValueError):
        SparseMLP(kernels, [True, False], "auto")  # one relu flag short
    with pytest.raises(ValueError):
        SparseMLP([kernels[0], kernels[2]], [True, False], "auto")  # 10 outputs feed 5 inputs
    m = SparseMLP(kernels, [True, True, False], "auto")
    with pytest.raises(ValueError):
        m.predict(np.zeros((4, 21), np.float32))
    with pytest.raises(ValueError):
        m.predict(np.zeros(20, np.float32))
