"""Tests of the plain-NumPy reference (the specification of the engine).

The gradients are checked against central finite differences of the whole
objective, in float64, for every parameter element; the closed-form values,
the float32 saturation behaviour and the optimizer formulas are checked by
hand-computed numbers.
"""
import itertools
import math
import warnings

import numpy as np
import pytest

from conftest import KINKED
from fusedae.reference import ops, optim
from fusedae.reference.mlp import (
    MLPSpec,
    flatten,
    forward,
    init_params,
    loss,
    loss_and_gradient,
    mean_activation,
    n_params,
    unflatten,
)

# Central differences: truncation error ~ h^2 |J'''| / 6 and rounding error
# ~ eps_64 |J| / h balance near h = 1e-5 for these O(1) objectives. Over all
# the cases below the worst measured relative error is 4e-9 at h = 1e-5
# (4e-8 at h = 1e-6, 4e-7 at h = 1e-7), so 1e-7 leaves a 25-fold margin;
# every bug tried (wrong layer's f', KL term outside the parentheses,
# missing 1/B, BCE delta times f', ...) fails this check.
FD_STEP = 1e-5
FD_RTOL = 1e-7

SHALLOW = (7, 5, 7)
DEEP = (6, 4, 3, 6)


# --------------------------------------------------------------------------
# helpers


def finite_difference_gradient(Ws, bs, X, Y, spec, h=FD_STEP):
    """Central differences of the whole objective for every parameter."""
    theta = flatten(Ws, bs)
    W_view, b_view = unflatten(theta, spec)  # perturb theta through views
    g = np.empty_like(theta)
    for i in range(theta.size):
        old = theta[i]
        theta[i] = old + h
        j_plus = loss(W_view, b_view, X, Y, spec)
        theta[i] = old - h
        j_minus = loss(W_view, b_view, X, Y, spec)
        theta[i] = old
        g[i] = (j_plus - j_minus) / (2 * h)
    return unflatten(g, spec)


def make_problem(spec, batch, seed):
    """Random parameters (with non-zero biases), inputs and targets in (0,1).

    Seeds are skipped while a relu/leaky_relu pre-activation lies within
    1e-3 of the kink, so the finite differences never straddle it.
    """
    for s in itertools.count(seed * 1000):
        rng = np.random.default_rng(s)
        Ws, bs = init_params(spec, rng)
        bs = [rng.uniform(-0.5, 0.5, b.shape) for b in bs]
        X = rng.uniform(0.0, 1.0, (batch, spec.sizes[0]))
        Y = rng.uniform(0.05, 0.95, (batch, spec.sizes[-1]))
        _, Zs = forward(Ws, bs, X, spec)
        if all(np.min(np.abs(Z)) > 1e-3
               for Z, f in zip(Zs, spec.activations) if f in KINKED):
            return Ws, bs, X, Y
    raise AssertionError("unreachable")


def assert_gradient_matches_fd(spec, batch, seed=0):
    Ws, bs, X, Y = make_problem(spec, batch, seed)
    J, dWs, dbs = loss_and_gradient(Ws, bs, X, Y, spec)
    assert J == pytest.approx(loss(Ws, bs, X, Y, spec), rel=1e-15)
    fd_Ws, fd_bs = finite_difference_gradient(Ws, bs, X, Y, spec)
    pairs = [(f"dW_{l + 1}", dWs[l], fd_Ws[l]) for l in range(len(dWs))]
    pairs += [(f"db_{l + 1}", dbs[l], fd_bs[l]) for l in range(len(dbs))]
    for name, g, g_fd in pairs:
        assert g.shape == g_fd.shape, name
        norm = np.linalg.norm(g)
        err = np.linalg.norm(g_fd - g)
        if norm == 0.0:
            # e.g. a layer whose relu outputs are all inactive
            assert err < 1e-10, f"{name}: zero gradient but fd norm {err}"
        else:
            assert err / norm <= FD_RTOL, (
                f"{name}: relative error {err / norm:.3g}")


# --------------------------------------------------------------------------
# gradients vs. finite differences


@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("sizes", [SHALLOW, DEEP], ids=["shallow", "deep"])
@pytest.mark.parametrize("output", ops.ACTIVATIONS)
@pytest.mark.parametrize("hidden", ops.ACTIVATIONS)
def test_gradient_every_activation_squared_error(hidden, output, sizes,
                                                 batch):
    n_hidden = len(sizes) - 2
    spec = MLPSpec(sizes, (hidden,) * n_hidden + (output,))
    assert_gradient_matches_fd(spec, batch)


@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("sizes", [SHALLOW, DEEP], ids=["shallow", "deep"])
@pytest.mark.parametrize("hidden", ops.ACTIVATIONS)
def test_gradient_every_activation_bce(hidden, sizes, batch):
    n_hidden = len(sizes) - 2
    spec = MLPSpec(sizes, (hidden,) * n_hidden + ("sigmoid",),
                   loss="binary_cross_entropy")
    assert_gradient_matches_fd(spec, batch)


@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("sizes", [SHALLOW, DEEP], ids=["shallow", "deep"])
@pytest.mark.parametrize("hidden", ops.ACTIVATIONS)
def test_gradient_every_activation_softmax_cce(hidden, sizes, batch):
    # make_problem's targets are rows of arbitrary weights in (0.05, 0.95),
    # not probability vectors: the general form softmax*rowsum(Y) - Y is
    # what is checked here; one-hot rows are checked below.
    n_hidden = len(sizes) - 2
    spec = MLPSpec(sizes, (hidden,) * n_hidden + ("softmax",),
                   loss="categorical_cross_entropy")
    assert_gradient_matches_fd(spec, batch)


def test_cce_one_hot_loss_and_delta_by_hand():
    z = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]])
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    a = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    expected = -(np.log(a[0, 0]) + np.log(a[1, 2])) / 2
    assert ops.categorical_cross_entropy_with_logits(z, y) == pytest.approx(
        expected, rel=1e-15)
    # eq. 15/16 as corrected: a_k - 1 for the true class, a_k for the others
    np.testing.assert_allclose(
        ops.categorical_cross_entropy_with_logits_gradient(z, y), (a - y) / 2,
        rtol=1e-15, atol=1e-17)
    np.testing.assert_allclose(ops.activation(z, "softmax"), a, rtol=1e-15)


def test_softmax_cce_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    y = np.array([[0.0, 0.0, 1.0]], dtype=np.float32)
    with np.errstate(all="raise", under="ignore"):  # e^-2000 -> 0 is right
        a = ops.softmax(z)
        J = ops.categorical_cross_entropy_with_logits(z, y)
    np.testing.assert_array_equal(a, [[1.0, 0.0, 0.0]])
    assert J == pytest.approx(2000.0, rel=1e-6)  # finite, not log(0)


def test_softmax_only_as_output_with_cce():
    with pytest.raises(ValueError, match="softmax"):
        MLPSpec((4, 3, 2), ("softmax", "softmax"), loss="categorical_cross_entropy")
    with pytest.raises(ValueError, match="softmax"):
        MLPSpec((4, 3, 2), ("sigmoid", "softmax"))
    with pytest.raises(ValueError, match="softmax"):
        MLPSpec((4, 3, 2), ("sigmoid", "sigmoid"), loss="categorical_cross_entropy")
    with pytest.raises(ValueError, match="activation"):
        ops.activation_derivative(np.ones((2, 2)), "softmax")


def _regularized_cases():
    for sizes, sparse_layers in [(SHALLOW, (None, 1)), (DEEP, (None, 1, 2))]:
        for s in sparse_layers:
            for loss_name in ops.LOSSES:
                for decay in (0.0, 0.3):
                    for batch in (1, 9):
                        yield pytest.param(
                            sizes, s, loss_name, decay, batch,
                            id=f"{len(sizes) - 1}layers-sparse{s}-"
                               f"{loss_name}-decay{decay}-B{batch}")


@pytest.mark.parametrize("sizes, sparse, loss_name, decay, batch",
                         list(_regularized_cases()))
def test_gradient_with_decay_and_sparsity(sizes, sparse, loss_name, decay,
                                          batch):
    # The sparse layer is a sigmoid (rhohat inside (0, 1)); the other hidden
    # layer of the deep net is tanh so that f' of a non-sparse layer is
    # exercised next to the KL term.
    hidden = ["tanh"] * (len(sizes) - 2)
    if sparse is not None:
        hidden[sparse - 1] = "sigmoid"
    output = ops.LOSS_OUTPUT[loss_name] or "identity"
    spec = MLPSpec(sizes, tuple(hidden) + (output,), loss=loss_name,
                   weight_decay=decay, sparsity_layer=sparse,
                   sparsity_target=0.1,
                   sparsity_weight=0.0 if sparse is None else 0.7)
    assert_gradient_matches_fd(spec, batch)


def test_gradient_mixed_activations_all_terms():
    spec = MLPSpec((5, 6, 4, 3, 5),
                   ("leaky_relu", "sigmoid", "relu", "sigmoid"),
                   loss="binary_cross_entropy", weight_decay=0.05,
                   sparsity_layer=2, sparsity_target=0.2,
                   sparsity_weight=2.0)
    assert_gradient_matches_fd(spec, batch=7, seed=3)


def test_sparsity_term_present_only_with_layer_and_weight():
    base = MLPSpec(SHALLOW, ("sigmoid", "sigmoid"))
    Ws, bs, X, Y = make_problem(base, 4, 0)
    j = loss(Ws, bs, X, Y, base)
    no_weight = MLPSpec(SHALLOW, ("sigmoid", "sigmoid"), sparsity_layer=1,
                        sparsity_weight=0.0)
    no_layer = MLPSpec(SHALLOW, ("sigmoid", "sigmoid"), sparsity_weight=1.0)
    sparse = MLPSpec(SHALLOW, ("sigmoid", "sigmoid"), sparsity_layer=1,
                     sparsity_weight=1.5, sparsity_target=0.1)
    assert loss(Ws, bs, X, Y, no_weight) == j
    assert loss(Ws, bs, X, Y, no_layer) == j
    rhohat = mean_activation(Ws, bs, X, sparse, 1)
    expected = j + 1.5 * np.sum(ops.bernoulli_kl(0.1, rhohat))
    assert loss(Ws, bs, X, Y, sparse) == pytest.approx(expected, rel=1e-14)


def test_weight_decay_excludes_biases():
    spec = MLPSpec(SHALLOW, ("tanh", "identity"), weight_decay=0.4)
    plain = MLPSpec(SHALLOW, ("tanh", "identity"))
    Ws, bs, X, Y = make_problem(spec, 3, 1)
    expected = (loss(Ws, bs, X, Y, plain)
                + 0.2 * sum(np.sum(W**2) for W in Ws))
    assert loss(Ws, bs, X, Y, spec) == pytest.approx(expected, rel=1e-14)
    _, dWs, dbs = loss_and_gradient(Ws, bs, X, Y, spec)
    _, dWs0, dbs0 = loss_and_gradient(Ws, bs, X, Y, plain)
    for db, db0 in zip(dbs, dbs0):
        np.testing.assert_array_equal(db, db0)
    for dW, dW0, W in zip(dWs, dWs0, Ws):
        np.testing.assert_allclose(dW, dW0 + 0.4 * W, rtol=1e-14, atol=0)


def test_float32_stays_float32():
    spec = MLPSpec(DEEP, ("sigmoid", "leaky_relu", "sigmoid"),
                   loss="binary_cross_entropy", weight_decay=0.1,
                   sparsity_layer=1, sparsity_weight=0.5)
    Ws, bs = init_params(spec, np.random.default_rng(0), dtype=np.float32)
    X = np.random.default_rng(1).random((5, 6), dtype=np.float32)
    As, Zs = forward(Ws, bs, X, spec)
    assert all(a.dtype == np.float32 for a in As + Zs)
    J, dWs, dbs = loss_and_gradient(Ws, bs, X, X, spec)
    assert isinstance(J, float)
    assert all(g.dtype == np.float32 for g in dWs + dbs)
    assert mean_activation(Ws, bs, X, spec, 1).dtype == np.float32
    # ... and agrees with the float64 computation to float32 accuracy.
    W64 = [W.astype(np.float64) for W in Ws]
    b64 = [b.astype(np.float64) for b in bs]
    X64 = X.astype(np.float64)
    J64, dWs64, dbs64 = loss_and_gradient(W64, b64, X64, X64, spec)
    assert J == pytest.approx(J64, rel=1e-6)
    for g, g64 in zip(dWs + dbs, dWs64 + dbs64):
        np.testing.assert_allclose(g, g64, rtol=1e-4,
                                   atol=1e-6 * np.abs(g64).max())


# --------------------------------------------------------------------------
# elementwise ops and closed-form values


def test_activation_values():
    z = np.array([-2.0, -0.5, 0.5, 3.0])
    np.testing.assert_allclose(ops.activation(z, "sigmoid"),
                               1 / (1 + np.exp(-z)), rtol=1e-15)
    np.testing.assert_array_equal(ops.activation(z, "tanh"), np.tanh(z))
    np.testing.assert_array_equal(ops.activation(z, "relu"),
                                  [0.0, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(ops.activation(z, "leaky_relu"),
                               [-0.02, -0.005, 0.5, 3.0], rtol=1e-15)
    np.testing.assert_array_equal(ops.activation(z, "identity"), z)
    assert ops.LEAKY_RELU_SLOPE == 0.01


DERIVATIVE_IN_Z = {
    "sigmoid": lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2,
    "tanh": lambda z: 1 / np.cosh(z) ** 2,
    "relu": lambda z: np.where(z > 0, 1.0, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, 0.01),
    "identity": lambda z: np.ones_like(z),
}


@pytest.mark.parametrize("name", ops.ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_derivative_from_output(name, dtype):
    # f'(z) recovered from a = f(z) equals f'(z) written in terms of z.
    z = np.array([-3.0, -0.7, -0.1, 0.2, 0.9, 2.5])
    a = ops.activation(z.astype(dtype), name)
    d = ops.activation_derivative(a, name)
    assert a.dtype == dtype and d.dtype == dtype
    # 1 - a^2 and a (1 - a) cancel near saturation: at z = -3 the rounding
    # error of a is amplified ~100-fold, hence 2e-5 (not 1e-7) in float32.
    rtol = 2e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(d, DERIVATIVE_IN_Z[name](z), rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable(dtype):
    z = np.array([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise",
                                                invalid="raise"):
        warnings.simplefilter("error")
        a = ops.activation(z, "sigmoid")
    assert a.dtype == dtype
    assert a[0] == 0.0 and a[3] == 0.5 and a[-1] == 1.0
    assert np.all(np.diff(a) >= 0)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="softplus"):
        ops.activation(np.zeros(2), "softplus")
    with pytest.raises(ValueError, match="swish"):
        ops.activation_derivative(np.zeros(2), "swish")


def test_squared_error_by_hand():
    xhat = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = np.array([[0.0, 2.0], [3.0, 1.0]])
    # rows: 1/2 (1^2 + 0^2) = 0.5 and 1/2 (0^2 + 3^2) = 4.5; mean = 2.5
    assert ops.squared_error(xhat, x) == 2.5
    np.testing.assert_array_equal(ops.squared_error_gradient(xhat, x),
                                  [[0.5, 0.0], [0.0, 1.5]])
    assert ops.squared_error(xhat.astype(np.float32),
                             x.astype(np.float32)).dtype == np.float32


def test_bce_with_logits_equals_cross_entropy():
    rng = np.random.default_rng(0)
    z = rng.uniform(-6, 6, (4, 5))
    y = rng.uniform(0, 1, (4, 5))
    s = 1 / (1 + np.exp(-z))
    naive = -np.sum(y * np.log(s) + (1 - y) * np.log(1 - s)) / 4
    assert ops.binary_cross_entropy_with_logits(z, y) == pytest.approx(
        naive, rel=1e-13)
    np.testing.assert_allclose(
        ops.binary_cross_entropy_with_logits_gradient(z, y), (s - y) / 4,
        rtol=1e-13)


def test_bce_with_logits_finite_at_extreme_logits():
    z = np.array([[1000.0, -1000.0, 1000.0, -1000.0]])
    y = np.array([[1.0, 0.0, 0.0, 1.0]])
    with np.errstate(all="raise", under="ignore"):
        value = ops.binary_cross_entropy_with_logits(z, y)
        grad = ops.binary_cross_entropy_with_logits_gradient(z, y)
    # confident and right: 0; confident and wrong: |z| each
    assert value == 2000.0
    np.testing.assert_array_equal(grad, [[0.0, 0.0, 1.0, -1.0]])


def test_bernoulli_kl_closed_form():
    for rho in (0.01, 0.05, 0.3, 0.5, 0.9):
        assert ops.bernoulli_kl(rho, np.float64(rho)) == 0.0
        others = np.array([1e-6, 0.02, 0.2, 0.6, 0.99, 1 - 1e-6])
        others = others[others != rho]
        assert np.all(ops.bernoulli_kl(rho, others) > 0)
    # KL(0.5 || 0.25) = 0.5 ln 2 + 0.5 ln(2/3) = 0.5 ln(4/3)
    assert ops.bernoulli_kl(0.5, 0.25) == pytest.approx(0.5 * math.log(4 / 3),
                                                        rel=1e-15)
    with np.errstate(divide="ignore"):
        assert np.isinf(ops.bernoulli_kl(0.05, np.float32(1.0)))


def test_sparsity_delta_is_derivative_of_penalty():
    # d/d a_{m,n} of beta sum KL(rho || mean_m a_{m,n}), by finite differences
    rng = np.random.default_rng(2)
    A = rng.uniform(0.05, 0.95, (6, 4))
    rho, beta, h = 0.2, 1.3, 1e-6

    def penalty(A):
        return ops.sparsity_penalty(A.mean(axis=0), rho, beta)

    delta = ops.sparsity_delta(A.mean(axis=0), rho, beta, A.shape[0])
    for m, n in itertools.product(range(6), range(4)):
        Ap, Am = A.copy(), A.copy()
        Ap[m, n] += h
        Am[m, n] -= h
        fd = (penalty(Ap) - penalty(Am)) / (2 * h)
        assert delta[n] == pytest.approx(fd, rel=1e-8)


# --------------------------------------------------------------------------
# float32 saturation


def test_clamp_rhohat_float32_saturation():
    rhohat = np.array([0.0, 0.3, 1.0], dtype=np.float32)
    eps = 2.0**-20
    c = ops.clamp_rhohat(rhohat)
    assert c.dtype == np.float32
    np.testing.assert_array_equal(c, np.array([eps, 0.3, 1 - eps],
                                              dtype=np.float32))
    assert c[2] < 1  # 1 - 2^-20 is representable in float32
    rho, beta, B = 0.05, 3.0, 64
    penalty = ops.sparsity_penalty(rhohat, rho, beta)
    delta = ops.sparsity_delta(rhohat, rho, beta, B)
    assert np.isfinite(penalty) and np.all(np.isfinite(delta))
    assert penalty.dtype == np.float32 and delta.dtype == np.float32
    # a saturated unit is pushed back toward rho, hard but finitely
    push = beta * (-rho / (1 - eps) + (1 - rho) / eps) / B
    assert delta[2] == pytest.approx(push, rel=1e-6)
    assert delta[0] == pytest.approx(
        beta * (-rho / eps + (1 - rho) / (1 - eps)) / B, rel=1e-6)
    # without the clamp the same penalty is infinite
    with np.errstate(divide="ignore"):
        assert np.isinf(np.sum(ops.bernoulli_kl(rho, rhohat)))


def test_clamp_rhohat_float64():
    c = ops.clamp_rhohat(np.array([0.0, 0.5, 1.0]))
    np.testing.assert_array_equal(c, [2.0**-40, 0.5, 1 - 2.0**-40])
    assert ops.RHOHAT_EPS[np.dtype(np.float32)] == 2.0**-20
    with pytest.raises(TypeError):
        ops.clamp_rhohat(np.array([0.5], dtype=np.float16))


@pytest.mark.parametrize("loss_name", ops.LOSSES)
def test_saturated_wide_sigmoid_layer_stays_finite(loss_name):
    D, B = 1024, 64
    spec = MLPSpec((D, D, D), ("sigmoid", ops.LOSS_OUTPUT[loss_name] or "sigmoid"),
                   loss=loss_name,
                   sparsity_layer=1, sparsity_target=0.05,
                   sparsity_weight=3.0, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    Ws, bs = init_params(spec, rng, dtype=np.float32)
    Ws[0] = rng.uniform(0, 1, (D, D)).astype(np.float32)
    X = rng.uniform(0, 1, (B, D)).astype(np.float32)
    rhohat = mean_activation(Ws, bs, X, spec, 1)
    assert rhohat.dtype == np.float32
    assert np.all(rhohat == 1.0)  # every hidden unit saturated exactly
    with np.errstate(all="raise", under="ignore"):
        J, dWs, dbs = loss_and_gradient(Ws, bs, X, X, spec)
    assert math.isfinite(J)
    assert all(np.all(np.isfinite(g)) for g in dWs + dbs)
    # ... and so the weights stay finite after an update
    optim.train_step(Ws, bs, X, X, spec, optim.Adam(1e-3))
    assert all(np.all(np.isfinite(p)) for p in Ws + bs)
    assert math.isfinite(loss(Ws, bs, X, X, spec))


# --------------------------------------------------------------------------
# optimizers


def _tiny():
    p = [np.array([1.0, -2.0]), np.array([[0.5]])]
    g1 = [np.array([0.5, 0.25]), np.array([[-1.0]])]
    g2 = [np.array([-0.25, 0.25]), np.array([[2.0]])]
    return p, g1, g2


def test_sgd_by_hand():
    p, g1, g2 = _tiny()
    opt = optim.SGD(0.1)
    opt.step(p, g1)
    np.testing.assert_allclose(p[0], [0.95, -2.025], rtol=1e-15)
    np.testing.assert_allclose(p[1], [[0.6]], rtol=1e-15)
    opt.step(p, g2)
    np.testing.assert_allclose(p[0], [0.975, -2.05], rtol=1e-15)
    np.testing.assert_allclose(p[1], [[0.4]], rtol=1e-15)
    assert opt.state == {}


def test_momentum_by_hand():
    p, g1, g2 = _tiny()
    opt = optim.Momentum(0.1, momentum=0.9)
    assert opt.state["v"] is None
    opt.step(p, g1)
    # v1 = g1;  p1 = p0 - 0.1 g1
    np.testing.assert_allclose(opt.state["v"][0], [0.5, 0.25], rtol=1e-15)
    np.testing.assert_allclose(p[0], [0.95, -2.025], rtol=1e-15)
    np.testing.assert_allclose(p[1], [[0.6]], rtol=1e-15)
    opt.step(p, g2)
    # v2 = 0.9 v1 + g2 = [0.2, 0.475], [[1.1]];  p2 = p1 - 0.1 v2
    np.testing.assert_allclose(opt.state["v"][0], [0.2, 0.475], rtol=1e-15)
    np.testing.assert_allclose(opt.state["v"][1], [[1.1]], rtol=1e-15)
    np.testing.assert_allclose(p[0], [0.93, -2.0725], rtol=1e-15)
    np.testing.assert_allclose(p[1], [[0.49]], rtol=1e-14)


def test_adam_by_hand():
    p, g1, g2 = _tiny()
    opt = optim.Adam(0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    opt.step(p, g1)
    # t = 1: m = 0.1 g, v = 0.001 g^2; bias-corrected m_hat = g,
    # v_hat = g^2, so p1 = p0 - 0.1 g / (|g| + 1e-8)
    assert opt.state["t"] == 1
    np.testing.assert_allclose(opt.state["m"][0], [0.05, 0.025], rtol=1e-15)
    np.testing.assert_allclose(opt.state["v"][0], [0.00025, 0.0000625],
                               rtol=1e-15)
    p1 = [1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 - 0.1 * 0.25 / (0.25 + 1e-8)]
    np.testing.assert_allclose(p[0], p1, rtol=1e-15)
    np.testing.assert_allclose(p[1], [[0.5 + 0.1 * 1.0 / (1.0 + 1e-8)]],
                               rtol=1e-15)
    opt.step(p, g2)
    # t = 2, first element: m = 0.9*0.05 + 0.1*(-0.25) = 0.02,
    # v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225
    assert opt.state["t"] == 2
    np.testing.assert_allclose(opt.state["m"][0][0], 0.02, rtol=1e-14)
    np.testing.assert_allclose(opt.state["v"][0][0], 0.00031225, rtol=1e-14)
    m_hat = 0.02 / (1 - 0.9**2)
    v_hat = 0.00031225 / (1 - 0.999**2)
    np.testing.assert_allclose(
        p[0][0], p1[0] - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8), rtol=1e-14)


def test_optimizers_keep_float32():
    for opt in (optim.SGD(0.1), optim.Momentum(0.1), optim.Adam(0.1)):
        p = [np.ones(3, dtype=np.float32)]
        opt.step(p, [np.full(3, 0.5, dtype=np.float32)])
        assert p[0].dtype == np.float32
        for value in opt.state.values():
            if isinstance(value, list):
                assert all(s.dtype == np.float32 for s in value)


@pytest.mark.parametrize("make, name", [
    (lambda: optim.SGD(0.0), "learning_rate"),
    (lambda: optim.SGD(-0.1), "learning_rate"),
    (lambda: optim.SGD(float("inf")), "learning_rate"),
    (lambda: optim.SGD(float("nan")), "learning_rate"),
    (lambda: optim.Momentum(0.1, momentum=1.0), "momentum"),
    (lambda: optim.Momentum(0.1, momentum=-0.1), "momentum"),
    (lambda: optim.Momentum(0.0), "learning_rate"),
    (lambda: optim.Adam(0.1, beta1=1.0), "beta1"),
    (lambda: optim.Adam(0.1, beta1=-0.5), "beta1"),
    (lambda: optim.Adam(0.1, beta2=1.0), "beta2"),
    (lambda: optim.Adam(0.1, eps=0.0), "eps"),
    (lambda: optim.Adam(0.1, eps=-1e-8), "eps"),
    (lambda: optim.Adam(-1.0), "learning_rate"),
])
def test_bad_hyperparameters_raise(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_optimizer_rejects_mismatched_lists():
    opt = optim.Adam(0.1)
    with pytest.raises(ValueError):
        opt.step([np.zeros(2)], [np.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError):
        opt.step([np.zeros(2)], [np.zeros(3)])


def test_train_step_is_one_sgd_step():
    spec = MLPSpec(SHALLOW, ("sigmoid", "sigmoid"), weight_decay=0.1,
                   sparsity_layer=1, sparsity_weight=0.5)
    Ws, bs, X, Y = make_problem(spec, 5, 0)
    J, dWs, dbs = loss_and_gradient(Ws, bs, X, Y, spec)
    expected = [p - 0.3 * g for p, g in zip(Ws + bs, dWs + dbs)]
    params = Ws + bs
    assert optim.train_step(Ws, bs, X, Y, spec, optim.SGD(0.3)) == J
    for p, e in zip(params, expected):
        np.testing.assert_array_equal(p, e)


def test_adam_training_reduces_loss():
    spec = MLPSpec((8, 3, 8), ("sigmoid", "sigmoid"),
                   loss="binary_cross_entropy", sparsity_layer=1,
                   sparsity_weight=0.1, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    Ws, bs = init_params(spec, rng)
    X = rng.uniform(0, 1, (32, 8))
    opt = optim.Adam(0.05)
    first = optim.train_step(Ws, bs, X, X, spec, opt)
    for _ in range(200):
        last = optim.train_step(Ws, bs, X, X, spec, opt)
    assert last < 0.95 * first


# --------------------------------------------------------------------------
# parameter layout, initialisation, spec validation


def test_flatten_unflatten_round_trip_and_views():
    spec = MLPSpec(DEEP, ("tanh", "relu", "identity"))
    Ws, bs, _, _ = make_problem(spec, 1, 0)
    theta = flatten(Ws, bs)
    assert theta.shape == (n_params(spec),) == (6 * 4 + 4 + 4 * 3 + 3
                                                + 3 * 6 + 6,)
    # layout: W_1 in C order, then b_1, then W_2, ...
    np.testing.assert_array_equal(theta[:24], Ws[0].ravel())
    np.testing.assert_array_equal(theta[24:28], bs[0])
    np.testing.assert_array_equal(theta[28:40], Ws[1].ravel())
    W2, b2 = unflatten(theta, spec)
    for a, b in zip(Ws + bs, W2 + b2):
        np.testing.assert_array_equal(a, b)
        assert a.shape == b.shape
        assert np.shares_memory(b, theta)
    W2[1][2, 1] = 123.0
    b2[2][0] = -7.0
    assert theta[28 + 2 * 3 + 1] == 123.0
    assert theta[24 + 4 + 12 + 3 + 18] == -7.0
    with pytest.raises(ValueError):
        unflatten(theta[:-1], spec)


def test_init_params():
    spec = MLPSpec((20, 10, 20), ("sigmoid", "sigmoid"))
    Ws, bs = init_params(spec, np.random.default_rng(0), dtype=np.float32)
    assert [W.shape for W in Ws] == [(20, 10), (10, 20)]
    assert all(W.dtype == np.float32 for W in Ws + bs)
    r = math.sqrt(6 / (20 + 10 + 1))
    for W in Ws:
        assert np.all(np.abs(W) <= r) and np.abs(W).max() > 0.8 * r
    assert all(np.all(b == 0) for b in bs)


def test_forward_shapes_and_mean_activation():
    spec = MLPSpec(DEEP, ("sigmoid", "tanh", "identity"))
    Ws, bs, X, _ = make_problem(spec, 9, 0)
    As, Zs = forward(Ws, bs, X, spec)
    assert [a.shape for a in As] == [(9, 6), (9, 4), (9, 3), (9, 6)]
    assert As[0] is X or np.array_equal(As[0], X)
    np.testing.assert_array_equal(As[3], Zs[2])
    np.testing.assert_allclose(As[1], 1 / (1 + np.exp(-(X @ Ws[0] + bs[0]))),
                               rtol=1e-15)
    np.testing.assert_array_equal(mean_activation(Ws, bs, X, spec, 2),
                                  As[2].mean(axis=0))
    with pytest.raises(ValueError):
        mean_activation(Ws, bs, X, spec, 0)


@pytest.mark.parametrize("kwargs, field", [
    (dict(sizes=(7,), activations=()), "sizes"),
    (dict(sizes=(7, 0, 7), activations=("tanh", "tanh")), "sizes"),
    (dict(sizes=(7, 2.5, 7), activations=("tanh", "tanh")), "sizes"),
    (dict(sizes=(7, 5, 7), activations=("tanh",)), "activations"),
    (dict(sizes=(7, 5, 7), activations=("tanh", "gelu")), "activations"),
    (dict(sizes=(7, 5, 7), activations=("tanh", "tanh"), loss="hinge"),
     "loss"),
    (dict(sizes=(7, 5, 7), activations=("tanh", "identity"),
          loss="binary_cross_entropy"), "sigmoid"),
    (dict(sizes=(7, 5, 7), activations=("tanh", "tanh"), weight_decay=-1.0),
     "weight_decay"),
    (dict(sizes=(7, 5, 7), activations=("tanh", "tanh"), sparsity_layer=2),
     "sparsity_layer"),
    (dict(sizes=(7, 5, 7), activations=("tanh", "tanh"), sparsity_layer=0),
     "sparsity_layer"),
    (dict(sizes=(7, 5, 7), activations=("tanh", "tanh"),
          sparsity_target=0.0), "sparsity_target"),
    (dict(sizes=(7, 5, 7), activations=("tanh", "tanh"),
          sparsity_target=1.0), "sparsity_target"),
    (dict(sizes=(7, 5, 7), activations=("tanh", "tanh"),
          sparsity_weight=-0.1), "sparsity_weight"),
])
def test_spec_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MLPSpec(**kwargs)


def test_spec_normalises_to_tuples():
    spec = MLPSpec([3, 2, 3], ["relu", "sigmoid"], sparsity_layer=1)
    assert spec.sizes == (3, 2, 3) and spec.activations == ("relu", "sigmoid")
    hash(spec)


# --------------------------------------------------------------------------
# cross-check with an independent autodiff implementation


def test_matches_torch_autograd():
    torch = pytest.importorskip(
        "torch", reason="torch is not installed; the autograd cross-check "
                        "needs it")
    spec = MLPSpec((6, 5, 4, 6), ("sigmoid", "tanh", "sigmoid"),
                   loss="binary_cross_entropy", weight_decay=0.02,
                   sparsity_layer=1, sparsity_target=0.1,
                   sparsity_weight=1.5)
    Ws, bs, X, Y = make_problem(spec, 8, 0)
    J, dWs, dbs = loss_and_gradient(Ws, bs, X, Y, spec)

    tW = [torch.tensor(W, requires_grad=True) for W in Ws]
    tb = [torch.tensor(b, requires_grad=True) for b in bs]
    a = torch.tensor(X)
    acts = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}
    hidden_mean = None
    for l, (W, b, name) in enumerate(zip(tW, tb, spec.activations), start=1):
        z = a @ W + b
        a = acts[name](z)
        if l == spec.sparsity_layer:
            hidden_mean = a.mean(dim=0)
    B = X.shape[0]
    data = torch.nn.functional.binary_cross_entropy_with_logits(
        z, torch.tensor(Y), reduction="sum") / B
    rho = spec.sparsity_target
    kl = (rho * torch.log(rho / hidden_mean)
          + (1 - rho) * torch.log((1 - rho) / (1 - hidden_mean))).sum()
    total = (data + 0.5 * spec.weight_decay * sum((W**2).sum() for W in tW)
             + spec.sparsity_weight * kl)
    total.backward()

    assert J == pytest.approx(total.item(), rel=1e-12)
    for g, t in zip(dWs + dbs, tW + tb):
        ref = t.grad.numpy()
        assert np.linalg.norm(g - ref) <= 1e-12 * np.linalg.norm(ref)
