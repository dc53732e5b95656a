"""Tests of ``fusedae.info``, the information theory of the chapter's §3.

The chapter's worked numbers (eq. 5, 7, 8, 9) are checked exactly; the
identities (eq. 18) and the agreement with SciPy and scikit-learn to 1e-12
relative in float64; the gradients (eq. 15-16 corrected, the sparsity term of
eq. 28) against central finite differences; and every bad input for a
ValueError or TypeError whose message names the argument.
"""
import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import log_loss

from conftest import rel_err

from fusedae import info

# Every log(0) and 0/0 must be handled inside the module, never leak a warning.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

# Agreement with SciPy / scikit-learn and the identity H(P,Q) = H(P) + KL(P||Q):
# the same sums in float64, so only a few ulps apart.
REL_TOL = 1e-12

# Central differences f'(x) ~ (f(x+h) - f(x-h)) / 2h: truncation ~ h^2 |f'''| / 6,
# rounding ~ eps_64 |f| / h. With h = 1e-6 and O(1) losses both are below 1e-9
# relative to the gradients here; the stated bound leaves a wide margin.
FD_STEP = 1e-6
FD_TOL = 1e-7

BASES = [2, np.e, 10]


def random_distributions(rng, n, k, *, zeros=False):
    """``n`` random probability vectors of length ``k`` (rows)."""
    p = rng.dirichlet(np.ones(k), size=n)
    if zeros:
        # Knock out about a third of the entries, keeping one per row.
        keep = rng.random((n, k)) > 0.3
        keep[np.arange(n), rng.integers(0, k, n)] = True
        p = p * keep
        p /= p.sum(axis=1, keepdims=True)
    return p


def central_difference(f, x, h=FD_STEP):
    """Gradient of the scalar function ``f`` at ``x`` by central differences."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad


def scipy_base(base):
    return None if base == np.e else base


# ---------------------------------------------------------------------------
# The chapter's worked numbers
# ---------------------------------------------------------------------------

def test_information_of_a_fair_coin_is_one_bit():  # eq. 5
    assert info.information(0.5) == 1.0


def test_information_of_one_in_eight_is_three_bits():
    assert info.information(1 / 8) == 3.0


def test_information_of_impossible_and_certain_events():
    assert info.information(0.0) == np.inf
    assert info.information(1.0) == 0.0
    assert np.array_equal(info.information([0.25, 0.5, 1.0]), [2.0, 1.0, 0.0])


def test_entropy_of_a_fair_coin_is_one_bit():  # eq. 7
    assert info.entropy([0.5, 0.5]) == 1.0


def test_entropy_of_four_and_eight_equal_values():  # eq. 8
    assert info.entropy([0.25] * 4) == 2.0
    assert info.entropy([1 / 8] * 8) == 3.0
    # The same from counts (an equal histogram).
    assert info.entropy([5, 5, 5, 5]) == 2.0


@pytest.mark.parametrize("n", [2, 3, 5, 7, 16, 100, 1000])
def test_entropy_of_uniform_is_log2_n(n):  # eq. 8, general N
    assert abs(info.entropy(np.full(n, 1.0 / n)) - np.log2(n)) <= 1e-15 * np.log2(n)
    assert abs(info.information(1.0 / n) - np.log2(n)) <= 1e-15 * np.log2(n)


def test_entropy_of_a_dirac_distribution_is_zero():  # eq. 9
    assert info.entropy([0.0, 0.0, 1.0, 0.0]) == 0.0
    assert info.entropy([0, 7, 0]) == 0.0


def test_scalar_results_are_python_floats_and_batches_are_arrays():
    assert type(info.entropy([0.5, 0.5])) is float
    assert type(info.kl_divergence([0.5, 0.5], [0.25, 0.75])) is float
    assert type(info.binary_cross_entropy([1, 0], [0.9, 0.2])) is float
    batch = info.entropy(np.full((3, 4), 0.25))
    assert isinstance(batch, np.ndarray) and batch.shape == (3,)
    assert batch.dtype == np.float64


# ---------------------------------------------------------------------------
# Cross entropy and KL divergence (eq. 17-18)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("base", BASES)
def test_cross_entropy_is_entropy_plus_kl(rng, base):  # eq. 18
    p = random_distributions(rng, 300, 7, zeros=True)
    q = random_distributions(rng, 300, 7)
    h_pq = info.cross_entropy(p, q, base=base, axis=1)
    h_p_plus_kl = (info.entropy(p, base=base, axis=1)
                   + info.kl_divergence(p, q, base=base, axis=1))
    assert np.all(np.abs(h_pq - h_p_plus_kl) <= REL_TOL * np.abs(h_pq))


def test_kl_is_nonnegative_and_zero_for_equal_distributions(rng):
    p = random_distributions(rng, 300, 5, zeros=True)
    q = random_distributions(rng, 300, 5)
    assert np.all(info.kl_divergence(p, q, axis=1) >= 0)
    assert np.all(info.kl_divergence(p, p, axis=1) == 0)
    assert np.array_equal(info.cross_entropy(p, p, axis=1), info.entropy(p, axis=1))


def test_kl_and_cross_entropy_are_infinite_where_q_misses_p():
    p = [0.5, 0.5, 0.0]
    assert info.kl_divergence(p, [1.0, 0.0, 0.0]) == np.inf
    assert info.cross_entropy(p, [1.0, 0.0, 0.0]) == np.inf
    # Q = 0 only where P = 0 as well: finite, those terms count 0.
    assert info.kl_divergence(p, [0.25, 0.75, 0.0]) == pytest.approx(
        0.5 * np.log2(2) + 0.5 * np.log2(0.5 / 0.75), rel=1e-15)


def test_kl_divergence_worked_value():
    # KL([1/2, 1/2] || [1/4, 3/4]) = 1/2 log2 2 + 1/2 log2(2/3), in bits.
    expected = 0.5 + 0.5 * np.log2(2 / 3)
    assert abs(info.kl_divergence([0.5, 0.5], [0.25, 0.75]) - expected) <= 1e-15


# ---------------------------------------------------------------------------
# Agreement with SciPy and scikit-learn
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("axis", [0, 1])
def test_entropy_and_kl_match_scipy(rng, base, axis):
    p = random_distributions(rng, 50, 6, zeros=True)
    q = random_distributions(rng, 50, 6)
    if axis == 0:
        p, q = p.T, q.T
    ours = info.entropy(p, base=base, axis=axis)
    theirs = scipy.stats.entropy(p, base=scipy_base(base), axis=axis)
    assert rel_err(ours, theirs) <= REL_TOL
    ours = info.kl_divergence(p, q, base=base, axis=axis)
    theirs = scipy.stats.entropy(p, q, base=scipy_base(base), axis=axis)
    assert rel_err(ours, theirs) <= REL_TOL


@pytest.mark.parametrize("base", BASES)
def test_entropy_of_counts_matches_scipy(rng, base):
    counts = rng.integers(0, 20, size=(40, 9))
    counts[:, 0] += 1  # every histogram non-empty
    ours = info.entropy(counts, base=base, axis=1)
    theirs = scipy.stats.entropy(counts, base=scipy_base(base), axis=1)
    assert rel_err(ours, theirs) <= REL_TOL


def test_binary_cross_entropy_matches_sklearn_log_loss(rng):
    y = rng.integers(0, 2, 200)
    a = rng.uniform(0.01, 0.99, 200)
    expected = log_loss(y, a)
    assert abs(info.binary_cross_entropy(y, a) - expected) <= REL_TOL * expected
    logits = np.log(a) - np.log1p(-a)
    assert abs(info.binary_cross_entropy(y, logits=logits) - expected) <= REL_TOL * expected
    in_bits = info.binary_cross_entropy(y, a, base=2)
    assert abs(in_bits - expected / np.log(2)) <= REL_TOL * in_bits
    total = info.binary_cross_entropy(y, a, reduction="sum")
    assert abs(total - 200 * expected) <= REL_TOL * total


def test_categorical_cross_entropy_matches_sklearn_log_loss(rng):
    m, k = 150, 5
    labels = rng.integers(0, k, m)
    probs = rng.dirichlet(np.ones(k), size=m)
    expected = log_loss(labels, probs, labels=np.arange(k))
    onehot = np.eye(k)[labels]
    for y in (labels, onehot):
        ours = info.categorical_cross_entropy(y, probs=probs)
        assert abs(ours - expected) <= REL_TOL * expected
    logits = rng.normal(0, 3, (m, k))
    expected = log_loss(labels, info.softmax(logits), labels=np.arange(k))
    ours = info.categorical_cross_entropy(labels, logits=logits)
    assert abs(ours - expected) <= REL_TOL * expected


def test_categorical_cross_entropy_reductions_and_base(rng):
    labels = rng.integers(0, 4, 30)
    logits = rng.normal(size=(30, 4))
    per_sample = info.categorical_cross_entropy(labels, logits=logits, reduction="none")
    assert per_sample.shape == (30,)
    assert info.categorical_cross_entropy(labels, logits=logits) == pytest.approx(
        per_sample.mean(), rel=1e-15)
    assert info.categorical_cross_entropy(labels, logits=logits, reduction="sum") == \
        pytest.approx(per_sample.sum(), rel=1e-15)
    in_bits = info.categorical_cross_entropy(labels, logits=logits, base=2, reduction="none")
    assert rel_err(in_bits, per_sample / np.log(2)) <= REL_TOL
    # eq. 14 corrected: with one-hot targets the loss is -log softmax_k(z).
    direct = -np.log(info.softmax(logits, axis=1)[np.arange(30), labels])
    assert rel_err(per_sample, direct) <= REL_TOL
    assert info.categorical_cross_entropy(labels, logits=logits, n_classes=4) == \
        pytest.approx(per_sample.mean(), rel=1e-15)


def test_binary_cross_entropy_formula_and_soft_targets(rng):
    # eq. 11 corrected: -[y log a + (1 - y) log(1 - a)], with soft targets too.
    y = rng.random((8, 5))
    a = rng.uniform(0.05, 0.95, (8, 5))
    expected = -(y * np.log(a) + (1 - y) * np.log(1 - a))
    assert rel_err(info.binary_cross_entropy(y, a, reduction="none"), expected) <= REL_TOL
    logits = np.log(a) - np.log1p(-a)
    from_logits = info.binary_cross_entropy(y, logits=logits, reduction="none")
    assert rel_err(from_logits, expected) <= REL_TOL


def test_binary_cross_entropy_is_not_clipped():
    assert info.binary_cross_entropy([1.0], [0.0]) == np.inf
    assert info.binary_cross_entropy([0.0], [1.0]) == np.inf
    assert info.binary_cross_entropy([1.0, 0.0], [1.0, 0.0]) == 0.0
    assert info.categorical_cross_entropy([0], probs=[[0.0, 1.0]]) == np.inf


# ---------------------------------------------------------------------------
# Gradients against central finite differences (float64)
# ---------------------------------------------------------------------------

def _categorical_targets(rng, kind, m, k):
    if kind == "integer":
        return rng.integers(0, k, m)
    if kind == "onehot":
        return np.eye(k)[rng.integers(0, k, m)]
    return rng.dirichlet(np.ones(k), size=m)


@pytest.mark.parametrize("targets", ["integer", "onehot", "soft"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_categorical_gradient_matches_finite_differences(rng, targets, reduction):
    m, k = 6, 4
    y = _categorical_targets(rng, targets, m, k)
    z = rng.normal(0, 2, (m, k))

    def loss(logits):
        return info.categorical_cross_entropy(y, logits=logits, reduction=reduction)

    analytic = info.categorical_cross_entropy_gradient(y, z, reduction=reduction)
    assert rel_err(analytic, central_difference(loss, z)) <= FD_TOL


def test_categorical_gradient_is_softmax_minus_onehot_exactly(rng):  # eq. 15-16
    labels = rng.integers(0, 5, 10)
    onehot = np.eye(5)[labels]
    z = rng.normal(0, 3, (10, 5))
    expected = info.softmax(z, axis=1) - onehot
    for y in (onehot, labels):
        assert np.array_equal(
            info.categorical_cross_entropy_gradient(y, z, reduction="sum"), expected)
        assert np.array_equal(
            info.categorical_cross_entropy_gradient(y, z, reduction="none"), expected)
        assert np.array_equal(info.categorical_cross_entropy_gradient(y, z), expected / 10)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_binary_gradient_matches_finite_differences(rng, reduction):
    y = rng.random((5, 3))
    z = rng.normal(0, 3, (5, 3))

    def loss(logits):
        return info.binary_cross_entropy(y, logits=logits, reduction=reduction)

    analytic = info.binary_cross_entropy_gradient(y, z)
    if reduction == "mean":
        analytic = analytic / y.size
    assert rel_err(analytic, central_difference(loss, z)) <= FD_TOL


def test_binary_gradient_is_sigmoid_minus_y():
    z = np.array([-800.0, -2.0, 0.0, 3.0, 800.0])
    y = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    grad = info.binary_cross_entropy_gradient(y, z)
    assert np.all(np.isfinite(grad))
    assert rel_err(grad, 1 / (1 + np.exp(-np.clip(z, -50, 50))) - y) <= 1e-15
    assert info.binary_cross_entropy_gradient(1.0, 0.0) == -0.5


@pytest.mark.parametrize("rho", [0.01, 0.05, 0.3])
def test_bernoulli_kl_gradient_matches_finite_differences(rng, rho):
    rhohat = rng.uniform(0.05, 0.95, 12)

    def total(r):
        return np.sum(info.bernoulli_kl(rho, r))

    analytic = info.bernoulli_kl_gradient(rho, rhohat)
    assert rel_err(analytic, central_difference(total, rhohat)) <= FD_TOL


def test_bernoulli_kl_values_and_endpoints():
    rho, rhohat = 0.05, np.array([0.0, 0.05, 0.2, 1.0])
    kl = info.bernoulli_kl(rho, rhohat)
    assert kl[0] == np.inf and kl[3] == np.inf and kl[1] == 0.0
    expected = rho * np.log(rho / 0.2) + (1 - rho) * np.log((1 - rho) / 0.8)
    assert abs(kl[2] - expected) <= 1e-15 * expected
    assert abs(info.bernoulli_kl(rho, 0.2, base=2) - expected / np.log(2)) <= 1e-15
    grad = info.bernoulli_kl_gradient(rho, rhohat)
    assert grad[0] == -np.inf and grad[3] == np.inf and grad[1] == pytest.approx(0, abs=1e-15)
    # The Bernoulli KL is the KL of eq. 17 on the two-point distributions.
    assert info.bernoulli_kl(0.3, 0.6) == pytest.approx(
        info.kl_divergence([0.3, 0.7], [0.6, 0.4], base=np.e), rel=1e-15)


# ---------------------------------------------------------------------------
# Numerical stability
# ---------------------------------------------------------------------------

def test_softmax_of_huge_logits_is_finite_and_correct():
    a = info.softmax([1000.0, 0.0, -1000.0])
    assert np.all(np.isfinite(a)) and a[0] == 1.0 and 0 <= a[1] < 1e-300 and a[2] == 0
    shifted = info.softmax([1e4 + 1.0, 1e4, 1e4 - 1.0])
    assert rel_err(shifted, info.softmax([1.0, 0.0, -1.0])) <= 1e-15
    batch = info.softmax(np.array([[1e4, -1e4], [-1e4, 1e4]]), axis=0)
    assert np.array_equal(batch, np.eye(2))


def test_log_softmax_of_huge_logits():
    out = info.log_softmax([1e4, 0.0, -1e4])
    assert np.array_equal(out, [0.0, -1e4, -2e4])
    z = np.array([[3.0, 1.0, -2.0], [1000.0, 999.0, 0.0]])
    expected = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - z.max(1, keepdims=True)
    assert rel_err(info.log_softmax(z, axis=1), expected) <= 1e-15
    assert rel_err(info.log_softmax(z.T, axis=0), expected.T) <= 1e-15


def test_cross_entropy_from_huge_logits_is_finite():
    assert info.categorical_cross_entropy([2], logits=[[1e4, 0.0, -1e4]]) == 2e4
    assert info.categorical_cross_entropy([0], logits=[[1e4, 0.0, -1e4]]) == 0.0


@pytest.mark.parametrize("z", [100.0, 1e4])
def test_binary_cross_entropy_from_large_logits_is_finite(z):
    losses = info.binary_cross_entropy([1.0, 0.0, 1.0, 0.0], logits=[z, -z, -z, z],
                                       reduction="none")
    assert np.all(np.isfinite(losses))
    assert losses[0] == losses[1] and 0 <= losses[0] <= np.exp(-z) * 1.0000001
    assert losses[2] == z and losses[3] == z


def test_entropy_with_zeros_is_finite():
    p = np.array([[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0]])
    h = info.entropy(p, axis=1)
    assert np.array_equal(h, [1.0, 0.0])


@pytest.mark.parametrize("n", [2, 3, 4, 10, 37, 256])
@pytest.mark.parametrize("base", [2, "e", 10, 3.5])
def test_normalized_entropy_of_uniform_is_one(n, base):
    h = info.entropy(np.full(n, 1.0 / n), base=base, normalized=True)
    assert abs(h - 1.0) <= 1e-15


def test_normalized_entropy_of_one_value_is_zero_and_in_unit_interval(rng):
    assert info.entropy([1.0], normalized=True) == 0.0
    h = info.entropy(random_distributions(rng, 100, 6, zeros=True), axis=1, normalized=True)
    assert np.all((h >= 0) & (h <= 1))


def test_float32_input_is_upcast():
    p32 = np.array([0.1, 0.2, 0.7], dtype=np.float32)
    h = info.entropy(p32)
    assert h == info.entropy(p32.astype(np.float64))
    assert info.softmax(p32).dtype == np.float64


# ---------------------------------------------------------------------------
# Histograms and probabilities (eq. 2-3)
# ---------------------------------------------------------------------------

def test_histogram_and_probabilities_of_samples():
    counts = info.histogram([1, 1, 2, 4], n_values=4)
    assert counts.dtype == np.int64 and np.array_equal(counts, [2, 1, 0, 1])
    assert np.array_equal(info.probabilities(counts), [0.5, 0.25, 0.0, 0.25])
    assert np.array_equal(info.probabilities([1, 1, 2, 4], kind="samples"),
                          [0.5, 0.25, 0.0, 0.25])
    # N defaults to the largest sample; a given N adds empty cells.
    assert np.array_equal(info.histogram([3, 1, 3]), [1, 0, 2])
    assert np.array_equal(info.histogram([1, 1, 2], 4), [2, 1, 0, 0])
    assert np.array_equal(info.probabilities([1, 1, 2], kind="samples", n_values=4),
                          [2 / 3, 1 / 3, 0.0, 0.0])
    # Integral floats are integer samples too.
    assert np.array_equal(info.histogram(np.array([1.0, 2.0, 2.0])), [1, 2])


def test_histogram_with_bins_matches_numpy(rng):
    x = rng.normal(size=500)
    assert np.array_equal(info.histogram(x, bins=12), np.histogram(x, bins=12)[0])
    edges = [-3.0, -1.0, 0.0, 0.5, 2.0]
    counts = info.histogram(x, bins=edges)
    assert counts.dtype == np.int64
    assert np.array_equal(counts, np.histogram(x, bins=edges)[0])


def test_histogram_probabilities_are_the_empirical_distribution(rng):
    samples = rng.integers(1, 7, 10_000)
    p = info.probabilities(samples, kind="samples")
    assert p.shape == (6,) and p.sum() == pytest.approx(1, abs=1e-15)
    assert np.array_equal(p, np.bincount(samples, minlength=7)[1:] / samples.size)


def test_probabilities_auto_detects_counts_and_probabilities():
    as_counts = info.probabilities([2, 1, 0, 1])
    as_probs = info.probabilities([0.5, 0.25, 0.0, 0.25])
    assert np.array_equal(as_counts, as_probs)
    # A probability vector is returned as given, not renormalised.
    p = np.array([0.3, 0.7 + 5e-7])
    assert np.array_equal(info.probabilities(p), p)
    # Non-integer values that do not sum to 1 are ambiguous: refused in auto ...
    with pytest.raises(ValueError, match="x: .*kind='counts'"):
        info.probabilities([0.2, 0.3])
    # ... and normalised when declared as counts (weights).
    assert np.allclose(info.probabilities([0.2, 0.3], kind="counts"), [0.4, 0.6],
                       rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="x: expected probability vectors summing to 1"):
        info.probabilities([2, 1, 0, 1], kind="probabilities")


def test_probabilities_batched_along_an_axis(rng):
    counts = rng.integers(1, 9, size=(5, 3))
    by_rows = info.probabilities(counts, axis=1)
    assert np.allclose(by_rows.sum(axis=1), 1, rtol=0, atol=1e-15)
    assert np.array_equal(info.probabilities(counts.T, axis=0), by_rows.T)
    samples = np.array([[1, 1, 2, 4], [3, 3, 3, 3]])
    p = info.probabilities(samples, axis=1, kind="samples")
    assert np.array_equal(p, [[0.5, 0.25, 0.0, 0.25], [0.0, 0.0, 1.0, 0.0]])
    assert np.array_equal(info.probabilities(samples.T, axis=0, kind="samples"), p.T)
    # The entropy of the rows of a batch equals that of each row on its own.
    h = info.entropy(counts, axis=1)
    assert np.array_equal(h, [info.entropy(row) for row in counts])


def test_sum_tolerance_depends_on_the_input_dtype():
    off = np.array([0.5, 0.5 + 1e-5])
    with pytest.raises(ValueError, match="x: .*tolerance 1e-06"):
        info.probabilities(off, kind="probabilities")
    p32 = info.probabilities(off.astype(np.float32), kind="probabilities")
    assert p32.dtype == np.float64
    with pytest.raises(ValueError, match="x: .*tolerance 0.0001"):
        info.probabilities(np.array([0.5, 0.51], dtype=np.float32), kind="probabilities")


# ---------------------------------------------------------------------------
# Bad input: ValueError / TypeError naming the argument
# ---------------------------------------------------------------------------

GOOD_LOGITS = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
GOOD_PROBS = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])

BAD_VALUES = [
    # negative counts or probabilities
    (info.entropy, ([-1, 2],), {}, "p:"),
    (info.probabilities, ([-0.5, 1.5],), {}, "x:"),
    (info.kl_divergence, ([0.5, 0.5], [1.5, -0.5]), {}, "q:"),
    (info.information, (-0.1,), {}, "p:"),
    (info.information, (1.5,), {}, "p:"),
    (info.categorical_cross_entropy, ([[-0.5, 1.5, 0.0]] * 2,), {"logits": GOOD_LOGITS}, "y:"),
    (info.categorical_cross_entropy, ([0, 1],), {"probs": [[-0.2, 0.7, 0.5]] * 2}, "probs:"),
    # probability vectors not summing to 1
    (info.probabilities, ([0.5, 0.4],), {"kind": "probabilities"}, "x:"),
    (info.cross_entropy, ([0.5, 0.5], [0.2, 0.3]), {}, "q:"),
    (info.categorical_cross_entropy, ([0, 1],), {"probs": [[0.5, 0.4, 0.0]] * 2}, "probs:"),
    (info.categorical_cross_entropy, ([[0.5, 0.4, 0.0]] * 2,), {"logits": GOOD_LOGITS}, "y:"),
    (info.categorical_cross_entropy_gradient, ([[0.5, 0.4, 0.0]] * 2, GOOD_LOGITS), {}, "y:"),
    (info.entropy, ([0, 0, 0],), {}, "p:"),  # counts with nothing counted
    # NaN / Inf
    (info.entropy, ([np.nan, 1.0],), {}, "p:"),
    (info.information, (np.inf,), {}, "p:"),
    (info.softmax, ([np.inf, 0.0],), {}, "z:"),
    (info.log_softmax, ([np.nan, 0.0],), {}, "z:"),
    (info.binary_cross_entropy, ([1.0],), {"logits": [np.nan]}, "logits:"),
    (info.binary_cross_entropy, ([np.inf],), {"logits": [0.0]}, "y:"),
    (info.categorical_cross_entropy, ([0, 1],), {"logits": [[np.inf, 0, 0], [0, 0, 0]]},
     "logits:"),
    (info.bernoulli_kl, (0.1, np.nan), {}, "rhohat:"),
    (info.bernoulli_kl_gradient, (np.inf, 0.5), {}, "rho:"),
    (info.histogram, ([1.0, np.inf],), {"bins": 3}, "samples:"),
    # mismatched shapes
    (info.kl_divergence, ([0.5, 0.5], [1 / 3] * 3), {}, "q:"),
    (info.cross_entropy, ([0.5, 0.5], [[0.5, 0.5]] * 2), {}, "q:"),
    (info.binary_cross_entropy, ([1, 0, 1], [0.5, 0.5]), {}, "a:"),
    (info.binary_cross_entropy, ([1, 0, 1],), {"logits": [0.5, 0.5]}, "logits:"),
    (info.binary_cross_entropy_gradient, ([1, 0, 1], [[0.5, 0.5, 0.5]]), {}, "logits:"),
    (info.categorical_cross_entropy, ([0, 1, 2],), {"logits": GOOD_LOGITS}, "y:"),
    (info.categorical_cross_entropy, (np.eye(4)[:2],), {"logits": GOOD_LOGITS}, "y:"),
    (info.categorical_cross_entropy, ([0, 1],), {"logits": [1.0, 2.0]}, "logits:"),
    (info.categorical_cross_entropy_gradient, ([0, 1, 2], GOOD_LOGITS), {}, "y:"),
    (info.bernoulli_kl, ([0.1, 0.2], [0.1, 0.2, 0.3]), {}, "rhohat:"),
    # labels out of range or not integers
    (info.categorical_cross_entropy, ([0, 3],), {"logits": GOOD_LOGITS}, "y:"),
    (info.categorical_cross_entropy, ([-1, 0],), {"probs": GOOD_PROBS}, "y:"),
    (info.categorical_cross_entropy, ([0, 0.5],), {"logits": GOOD_LOGITS}, "y:"),
    (info.categorical_cross_entropy_gradient, ([0, 5], GOOD_LOGITS), {}, "y:"),
    # values outside [0, 1]
    (info.binary_cross_entropy, ([1.5], [0.5]), {}, "y:"),
    (info.binary_cross_entropy, ([1.0], [1.5]), {}, "a:"),
    (info.bernoulli_kl, (0.0, 0.5), {}, "rho:"),
    (info.bernoulli_kl, (1.0, 0.5), {}, "rho:"),
    (info.bernoulli_kl, (0.1, 1.5), {}, "rhohat:"),
    # bad base
    (info.entropy, ([0.5, 0.5],), {"base": 0}, "base:"),
    (info.entropy, ([0.5, 0.5],), {"base": -2}, "base:"),
    (info.information, (0.5,), {"base": 1}, "base:"),
    (info.kl_divergence, ([0.5, 0.5], [0.5, 0.5]), {"base": 1.0}, "base:"),
    (info.cross_entropy, ([0.5, 0.5], [0.5, 0.5]), {"base": np.inf}, "base:"),
    (info.binary_cross_entropy, ([1.0], [0.5]), {"base": "two"}, "base:"),
    (info.categorical_cross_entropy, ([0, 1],), {"logits": GOOD_LOGITS, "base": 0.0}, "base:"),
    (info.bernoulli_kl, (0.1, 0.5), {"base": -1}, "base:"),
    # bad axis
    (info.entropy, (np.full((2, 2), 0.5),), {"axis": 2}, "axis:"),
    (info.entropy, ([0.5, 0.5],), {"axis": -2}, "axis:"),
    (info.entropy, ([0.5, 0.5],), {"axis": 0.5}, "axis:"),
    (info.softmax, ([0.5, 0.5],), {"axis": None}, "axis:"),
    (info.log_softmax, ([0.5, 0.5],), {"axis": 1}, "axis:"),
    (info.probabilities, ([1, 2],), {"axis": 3, "kind": "samples"}, "axis:"),
    (info.kl_divergence, ([0.5, 0.5], [0.5, 0.5]), {"axis": 1}, "axis:"),
    (info.entropy, (1.0,), {}, "axis:"),
    # bad reduction
    (info.binary_cross_entropy, ([1.0], [0.5]), {"reduction": "avg"}, "reduction:"),
    (info.categorical_cross_entropy, ([0, 1],), {"logits": GOOD_LOGITS, "reduction": None},
     "reduction:"),
    (info.categorical_cross_entropy_gradient, ([0, 1], GOOD_LOGITS), {"reduction": "MEAN"},
     "reduction:"),
    # empty input
    (info.entropy, ([],), {}, "p:"),
    (info.histogram, ([],), {}, "samples:"),
    (info.softmax, (np.zeros((0, 3)),), {}, "z:"),
    (info.binary_cross_entropy, ([], []), {}, "y:"),
    (info.categorical_cross_entropy, ([],), {"logits": np.zeros((0, 3))}, "logits:"),
    (info.bernoulli_kl, (0.1, []), {}, "rhohat:"),
    # n_classes
    (info.categorical_cross_entropy, ([0, 1],), {"logits": GOOD_LOGITS, "n_classes": 0},
     "n_classes:"),
    (info.categorical_cross_entropy, ([0, 1],), {"probs": GOOD_PROBS, "n_classes": 4},
     "n_classes:"),
    # histogram samples and parameters
    (info.histogram, ([0, 1],), {}, "samples:"),
    (info.histogram, ([1, 5],), {"n_values": 4}, "samples:"),
    (info.histogram, ([1.5, 2],), {}, "samples:"),
    (info.histogram, ([1, 2],), {"n_values": 0}, "n_values:"),
    (info.histogram, ([1, 2],), {"n_values": 2.5}, "n_values:"),
    (info.histogram, ([1.0, 2.0],), {"n_values": 3, "bins": 2}, "n_values:"),
    (info.histogram, ([1.0, 2.0],), {"bins": [1.0, 0.0]}, "bins:"),
    (info.histogram, ([1.0, 2.0],), {"bins": 0}, "bins:"),
    (info.probabilities, ([1, 7],), {"kind": "samples", "n_values": 4}, "samples:"),
    (info.probabilities, ([1, 2],), {"n_values": 4}, "n_values:"),
    # exactly one of the alternative inputs
    (info.binary_cross_entropy, ([1.0],), {}, "a, logits:"),
    (info.binary_cross_entropy, ([1.0], [0.5]), {"logits": [0.0]}, "a, logits:"),
    (info.categorical_cross_entropy, ([0, 1],), {}, "logits, probs:"),
    (info.categorical_cross_entropy, ([0, 1],), {"logits": GOOD_LOGITS, "probs": GOOD_PROBS},
     "logits, probs:"),
    # other options
    (info.probabilities, ([1, 2],), {"kind": "histogram"}, "kind:"),
    (info.entropy, ([0.5, 0.5],), {"normalized": "yes"}, "normalized:"),
]


@pytest.mark.parametrize(
    "func, args, kwargs, match", BAD_VALUES,
    ids=[f"{case[0].__name__}-{case[3].rstrip(':')}-{i}" for i, case in enumerate(BAD_VALUES)])
def test_bad_input_raises_value_error_naming_the_argument(func, args, kwargs, match):
    with pytest.raises(ValueError, match=f"^{match}"):
        func(*args, **kwargs)


BAD_TYPES = [
    (info.entropy, ("abc",), {}, "p:"),
    (info.entropy, ([1 + 1j, 0],), {}, "p:"),
    (info.information, (None,), {}, "p:"),
    (info.softmax, (["a", "b"],), {}, "z:"),
    (info.categorical_cross_entropy, (None,), {"logits": GOOD_LOGITS}, "y:"),
    (info.binary_cross_entropy, ([1.0],), {"logits": ["x"]}, "logits:"),
    (info.bernoulli_kl, ("0.1", 0.5), {}, "rho:"),
    (info.histogram, ([{"a": 1}],), {}, "samples:"),
    (info.entropy, ([0.5, 0.5],), {"base": None}, "base:"),
    (info.information, (0.5,), {"base": [2]}, "base:"),
]


@pytest.mark.parametrize(
    "func, args, kwargs, match", BAD_TYPES,
    ids=[f"{case[0].__name__}-{case[3].rstrip(':')}-{i}" for i, case in enumerate(BAD_TYPES)])
def test_non_numeric_input_raises_type_error_naming_the_argument(func, args, kwargs, match):
    with pytest.raises(TypeError, match=f"^{match}"):
        func(*args, **kwargs)


def test_ragged_input_raises_value_error():
    with pytest.raises(ValueError, match="^p:"):
        info.entropy([[0.5, 0.5], [1.0]])
