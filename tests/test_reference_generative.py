"""Tests of the reference generative models: the VAE and the GAN.

Every gradient is checked against central finite differences of the whole
objective, in float64, for every parameter element (with the step and
tolerance of test_reference.py); the conventions (Philox streams and seeds,
input ordering of a conditional VAE, batch averaging) are pinned by
hand-computed values.
"""
import itertools
import math

import numpy as np
import pytest

from conftest import KINKED
from fusedae.reference import gan, mlp, ops, optim, philox, vae
from fusedae.reference.gan import GANSpec
from fusedae.reference.mlp import MLPSpec
from fusedae.reference.vae import VAESpec

FD_STEP = 1e-5
FD_RTOL = 1e-7


# --------------------------------------------------------------------------
# helpers


def fd_gradients(f, arrays, h=FD_STEP):
    """Central differences of ``f()`` w.r.t. every element of each array
    (perturbed in place)."""
    grads = []
    for a in arrays:
        g = np.empty_like(a)
        flat, g_flat = a.reshape(-1), g.reshape(-1)
        assert np.shares_memory(flat, a)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            j_plus = f()
            flat[i] = old - h
            j_minus = f()
            flat[i] = old
            g_flat[i] = (j_plus - j_minus) / (2 * h)
        grads.append(g)
    return grads


def assert_matches_fd(names, grads, fd):
    assert len(names) == len(grads) == len(fd)
    for name, g, g_fd in zip(names, grads, fd):
        assert g.shape == g_fd.shape, name
        norm = np.linalg.norm(g)
        err = np.linalg.norm(g_fd - g)
        if norm == 0.0:
            assert err < 1e-10, f"{name}: zero gradient but fd norm {err}"
        else:
            assert err / norm <= FD_RTOL, (
                f"{name}: relative error {err / norm:.3g}")


def param_names(prefix, n_layers):
    return ([f"{prefix} dW_{l}" for l in range(1, n_layers + 1)]
            + [f"{prefix} db_{l}" for l in range(1, n_layers + 1)])


def away_from_kinks(Zs, activations):
    return all(np.min(np.abs(Z)) > 1e-3
               for Z, f in zip(Zs, activations) if f in KINKED)


def random_biases(bs, rng):
    return [rng.uniform(-0.5, 0.5, b.shape).astype(b.dtype) for b in bs]


def make_vae_problem(spec, batch, seed):
    """Philox-initialised networks with random non-zero biases, inputs in
    (0, 1), probability rows as labels and fixed noise; seeds are skipped
    while a relu/leaky_relu pre-activation lies within 1e-3 of the kink."""
    for s in itertools.count(seed * 1000):
        rng = np.random.default_rng(s)
        (eW, eb), (dW, db) = vae.init(spec, s)
        enc = (eW, random_biases(eb, rng))
        dec = (dW, random_biases(db, rng))
        X = rng.uniform(0.0, 1.0, (batch, spec.n_features))
        Y = (rng.dirichlet(np.ones(spec.n_conditions), batch)
             if spec.n_conditions else None)
        eps = rng.standard_normal((batch, spec.n_latent))
        enc_in = X if Y is None else np.hstack([X, Y])
        _, enc_Zs = mlp.forward(*enc, enc_in, spec.encoder)
        mu, logvar = vae.encode(enc, X, spec, Y)
        z = mu + np.exp(logvar / 2) * eps
        dec_in = z if Y is None else np.hstack([z, Y])
        _, dec_Zs = mlp.forward(*dec, dec_in, spec.decoder)
        if (away_from_kinks(enc_Zs, spec.encoder.activations)
                and away_from_kinks(dec_Zs, spec.decoder.activations)):
            return enc, dec, X, Y, eps
    raise AssertionError("unreachable")


def make_gan_problem(spec, batch, seed, weight_scale=2.0):
    """Networks with random non-zero biases and latent rows, away from the
    kinks of the generator and of the discriminator on the fakes.

    The Glorot weights are scaled up (doubled by default): through a deep
    discriminator at its initial scale the generator's gradient is ~1e-4,
    where the ~1e-11 absolute rounding error of the finite differences would
    already cost 1e-7 relative.
    """
    for s in itertools.count(seed * 1000):
        rng = np.random.default_rng(s)
        (gW, gb), (dW, db) = gan.init(spec, s)
        gW = [weight_scale * W for W in gW]
        dW = [weight_scale * W for W in dW]
        G = (gW, random_biases(gb, rng))
        D = (dW, random_biases(db, rng))
        z = rng.standard_normal((batch, spec.n_latent))
        g_As, g_Zs = mlp.forward(*G, z, spec.generator)
        _, d_Zs = mlp.forward(*D, g_As[-1], spec.discriminator)
        if (away_from_kinks(g_Zs, spec.generator.activations)
                and away_from_kinks(d_Zs, spec.discriminator.activations)):
            return G, D, z
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# mlp.backward


BACKWARD_SPECS = [
    MLPSpec((5, 4, 3, 5), ("tanh", "relu", "sigmoid")),
    MLPSpec((5, 4, 5), ("leaky_relu", "identity")),
    MLPSpec((5, 6, 4, 5), ("sigmoid", "tanh", "sigmoid"),
            loss="binary_cross_entropy"),
    MLPSpec((5, 4, 3), ("relu", "softmax"), loss="categorical_cross_entropy"),
    MLPSpec((5, 3), ("sigmoid",), loss="binary_cross_entropy"),
]


def output_delta(As, Zs, Y, spec):
    if spec.loss == "squared_error":
        return (ops.squared_error_gradient(As[-1], Y)
                * ops.activation_derivative(As[-1], spec.activations[-1]))
    if spec.loss == "binary_cross_entropy":
        return ops.binary_cross_entropy_with_logits_gradient(Zs[-1], Y)
    return ops.categorical_cross_entropy_with_logits_gradient(Zs[-1], Y)


def mlp_problem(spec, batch, seed):
    for s in itertools.count(seed * 1000):
        rng = np.random.default_rng(s)
        Ws, bs = mlp.init_params(spec, rng)
        bs = random_biases(bs, rng)
        X = rng.uniform(0.0, 1.0, (batch, spec.sizes[0]))
        Y = rng.uniform(0.05, 0.95, (batch, spec.sizes[-1]))
        _, Zs = mlp.forward(Ws, bs, X, spec)
        if away_from_kinks(Zs, spec.activations):
            return Ws, bs, X, Y


@pytest.mark.parametrize("spec", BACKWARD_SPECS,
                         ids=lambda s: f"{s.sizes}-{s.loss}")
def test_backward_reproduces_loss_and_gradient(spec):
    Ws, bs, X, Y = mlp_problem(spec, 6, 0)
    _, dWs, dbs = mlp.loss_and_gradient(Ws, bs, X, Y, spec)
    As, Zs = mlp.forward(Ws, bs, X, spec)
    bWs, bbs, dX = mlp.backward(Ws, As, output_delta(As, Zs, Y, spec), spec)
    assert dX is None
    for g, b in zip(dWs + dbs, bWs + bbs):
        assert g.shape == b.shape
        np.testing.assert_allclose(b, g, rtol=1e-15, atol=0)


@pytest.mark.parametrize("spec", BACKWARD_SPECS,
                         ids=lambda s: f"{s.sizes}-{s.loss}")
def test_backward_input_gradient_matches_fd(spec):
    Ws, bs, X, Y = mlp_problem(spec, 4, 1)
    As, Zs = mlp.forward(Ws, bs, X, spec)
    _, _, dX = mlp.backward(Ws, As, output_delta(As, Zs, Y, spec), spec,
                            input_grad=True)
    X = X.copy()
    fd = fd_gradients(lambda: mlp.loss(Ws, bs, X, Y, spec), [X])
    assert_matches_fd(["dX"], [dX], fd)


def test_backward_excludes_decay_and_sparsity():
    spec = MLPSpec((5, 4, 5), ("sigmoid", "sigmoid"), weight_decay=0.3,
                   sparsity_layer=1, sparsity_weight=0.8)
    plain = MLPSpec((5, 4, 5), ("sigmoid", "sigmoid"))
    Ws, bs, X, Y = mlp_problem(spec, 5, 2)
    As, Zs = mlp.forward(Ws, bs, X, spec)
    delta = output_delta(As, Zs, Y, spec)
    got = mlp.backward(Ws, As, delta, spec)
    _, dWs, dbs = mlp.loss_and_gradient(Ws, bs, X, Y, plain)
    for g, b in zip(dWs + dbs, got[0] + got[1]):
        np.testing.assert_array_equal(b, g)


def test_backward_rejects_bad_shapes():
    spec = BACKWARD_SPECS[0]
    Ws, bs, X, Y = mlp_problem(spec, 3, 0)
    As, _ = mlp.forward(Ws, bs, X, spec)
    with pytest.raises(ValueError, match="delta"):
        mlp.backward(Ws, As, np.zeros((3, 4)), spec)
    with pytest.raises(ValueError, match="As"):
        mlp.backward(Ws, As[:-1], np.zeros((3, 5)), spec)
    with pytest.raises(ValueError, match="Ws"):
        mlp.backward(Ws[:-1], As, np.zeros((3, 5)), spec)


# --------------------------------------------------------------------------
# philox.normal


def test_normal_is_the_gaussian_recipe_of_corrupt(monkeypatch):
    seed, stream, shape = 12345, 7, (5, 7)  # 35 elements: a partial block
    z = philox.normal(shape, seed, stream)
    assert z.shape == shape and z.dtype == np.float64
    # corrupt's Gaussian noise on zeros at level 1, from the latent tag
    monkeypatch.setattr(philox, "TAG_NOISE", philox.TAG_LATENT)
    np.testing.assert_array_equal(
        philox.corrupt(np.zeros(shape), "gaussian", 1.0, seed, stream), z)
    monkeypatch.undo()
    assert not np.array_equal(
        philox.corrupt(np.zeros(shape), "gaussian", 1.0, seed, stream), z)
    # ... and the formula, element by element, from the raw draws
    u = philox.draws(seed, philox.TAG_LATENT, stream, 36)
    flat = z.reshape(-1)
    for e in (0, 1, 2, 3, 17, 34):
        k = e // 2
        r = math.sqrt(-2.0 * math.log(((int(u[2 * k]) >> 8) + 1) / 2**24))
        theta = 2.0 * math.pi * (int(u[2 * k + 1]) >> 8) / 2**24
        expected = r * (math.cos(theta) if e % 2 == 0 else math.sin(theta))
        assert flat[e] == pytest.approx(expected, rel=1e-15, abs=1e-15)


def test_normal_moments_streams_and_dtype():
    z = philox.normal(100_000, 3, 0)
    assert z.shape == (100_000,)
    assert abs(z.mean()) < 0.015  # sd of the mean is 0.0032
    assert abs(z.var() - 1.0) < 0.02  # sd of the variance is 0.0045
    assert not np.array_equal(philox.normal(8, 3, 1), philox.normal(8, 3, 2))
    assert not np.array_equal(philox.normal(8, 3, 1), philox.normal(8, 4, 1))
    z32 = philox.normal((4, 3), 3, 1, dtype=np.float32)
    assert z32.dtype == np.float32
    np.testing.assert_array_equal(
        z32, philox.normal((4, 3), 3, 1).astype(np.float32))
    # a prefix of the flattened array does not depend on the shape
    np.testing.assert_array_equal(philox.normal((2, 3), 9, 5).reshape(-1),
                                  philox.normal(7, 9, 5)[:6])
    assert philox.normal((0, 3), 1, 1).shape == (0, 3)


# --------------------------------------------------------------------------
# VAE: gradients


def _vae_cases():
    for loss_name in vae.VAE_LOSSES:
        for hidden in ((), (5,), (6, 4)):
            for decay in (0.0, 0.2):
                for C in (0, 3):
                    yield pytest.param(
                        loss_name, hidden, decay, C,
                        id=f"{loss_name}-h{hidden}-decay{decay}-C{C}")


@pytest.mark.parametrize("loss_name, hidden, decay, C", list(_vae_cases()))
def test_vae_gradient_matches_fd(loss_name, hidden, decay, C):
    spec = VAESpec(4, hidden, 2, loss=loss_name, weight_decay=decay,
                   n_conditions=C)
    assert_vae_gradient(spec, batch=5)


@pytest.mark.parametrize("spec, batch", [
    (VAESpec(5, (4,), 3, activation="tanh", output_activation="identity",
             loss="squared_error"), 6),
    (VAESpec(4, (5, 3), 2, activation="leaky_relu",
             output_activation="tanh", loss="squared_error",
             weight_decay=0.1, n_conditions=2), 4),
    (VAESpec(3, (4,), 1, activation="sigmoid"), 1),
], ids=["tanh-identity", "leaky-tanh-conditional", "sigmoid-B1"])
def test_vae_gradient_other_activations(spec, batch):
    assert_vae_gradient(spec, batch)


def assert_vae_gradient(spec, batch):
    enc, dec, X, Y, eps = make_vae_problem(spec, batch, 0)
    J, (eWs, ebs), (dWs, dbs) = vae.loss_and_gradient(enc, dec, X, eps,
                                                      spec, Y)
    assert J == vae.loss(enc, dec, X, eps, spec, Y)
    arrays = enc[0] + enc[1] + dec[0] + dec[1]
    fd = fd_gradients(lambda: vae.loss(enc, dec, X, eps, spec, Y), arrays)
    names = (param_names("enc", spec.encoder.n_layers)
             + param_names("dec", spec.decoder.n_layers))
    assert_matches_fd(names, eWs + ebs + dWs + dbs, fd)


def test_vae_matches_torch_autograd():
    torch = pytest.importorskip(
        "torch", reason="torch is not installed; the autograd cross-check "
                        "needs it")
    spec = VAESpec(5, (4,), 2, activation="tanh", weight_decay=0.05,
                   n_conditions=3)
    enc, dec, X, Y, eps = make_vae_problem(spec, 6, 0)
    J, (eWs, ebs), (dWs, dbs) = vae.loss_and_gradient(enc, dec, X, eps,
                                                      spec, Y)
    params = [torch.tensor(a, requires_grad=True)
              for a in enc[0] + enc[1] + dec[0] + dec[1]]
    eW, eb, dW, db = params[0:2], params[2:4], params[4:6], params[6:8]
    tX, tY, teps = torch.tensor(X), torch.tensor(Y), torch.tensor(eps)
    h = torch.tanh(torch.cat([tX, tY], 1) @ eW[0] + eb[0])
    out = h @ eW[1] + eb[1]
    mu, logvar = out[:, :2], out[:, 2:]
    z = mu + torch.exp(0.5 * logvar) * teps
    h = torch.tanh(torch.cat([z, tY], 1) @ dW[0] + db[0])
    logits = h @ dW[1] + db[1]
    B = X.shape[0]
    recon = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, tX, reduction="sum") / B
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp()) / B
    decay = 0.025 * sum((W**2).sum() for W in eW + dW)
    total = recon + kl + decay
    total.backward()
    assert J == pytest.approx(total.item(), rel=1e-12)
    for g, t in zip(eWs + ebs + dWs + dbs, params):
        ref = t.grad.numpy()
        assert np.linalg.norm(g - ref) <= 1e-12 * np.linalg.norm(ref)


# --------------------------------------------------------------------------
# VAE: terms and conventions


def _linear_encoder(spec, mu, logvar):
    """A hidden-less encoder whose output is the constant [mu, logvar]."""
    W = np.zeros((spec.n_features + spec.n_conditions, 2 * spec.n_latent))
    return [W], [np.concatenate([mu, logvar])]


def test_vae_kl_term_by_hand():
    spec = VAESpec(3, (), 2)
    mu, logvar = np.array([0.5, -1.0]), np.array([0.2, -0.3])
    expected = -0.5 * ((1 + 0.2 - 0.25 - math.exp(0.2))
                       + (1 - 0.3 - 1.0 - math.exp(-0.3)))
    assert vae.kl_divergence(mu[None], logvar[None]) == pytest.approx(
        expected, rel=1e-15)
    enc = _linear_encoder(spec, mu, logvar)
    dec = vae.init(spec, 0)[1]
    X = np.array([[0.2, 0.9, 0.5]])
    eps = np.array([[0.3, -1.2]])
    t = vae.terms(enc, dec, X, eps, spec)
    assert t["kl"] == pytest.approx(expected, rel=1e-15)
    # the decoder sees z = mu + exp(logvar/2) eps
    z = mu + np.exp(logvar / 2) * eps
    _, Zs = mlp.forward(*dec, z, spec.decoder)
    assert t["recon"] == pytest.approx(
        ops.binary_cross_entropy_with_logits(Zs[-1], X), rel=1e-15)
    assert t["decay"] == 0.0
    assert t["total"] == t["recon"] + t["kl"]
    np.testing.assert_allclose(vae.decode(dec, z, spec),
                               ops.sigmoid(Zs[-1]), rtol=1e-15)


def test_vae_kl_zero_at_standard_normal():
    spec = VAESpec(3, (), 2)
    enc = _linear_encoder(spec, np.zeros(2), np.zeros(2))
    dec = vae.init(spec, 1)[1]
    X = np.full((4, 3), 0.5)
    eps = np.ones((4, 2))
    assert vae.terms(enc, dec, X, eps, spec)["kl"] == 0.0
    assert vae.kl_divergence(np.zeros((4, 2)), np.zeros((4, 2))) == 0.0
    assert vae.kl_divergence(np.full((1, 2), 0.1), np.zeros((1, 2))) > 0


def test_vae_decay_and_squared_error_terms():
    spec = VAESpec(4, (3,), 2, output_activation="identity",
                   loss="squared_error", weight_decay=0.3)
    enc, dec, X, Y, eps = make_vae_problem(spec, 5, 0)
    t = vae.terms(enc, dec, X, eps, spec)
    expected_decay = 0.15 * sum(np.sum(W**2) for W in enc[0] + dec[0])
    assert t["decay"] == pytest.approx(expected_decay, rel=1e-14)
    mu, logvar = vae.encode(enc, X, spec)
    xhat = vae.decode(dec, mu + np.exp(logvar / 2) * eps, spec)
    assert t["recon"] == pytest.approx(
        0.5 * np.sum((xhat - X)**2) / 5, rel=1e-14)
    assert vae.loss(enc, dec, X, eps, spec) == t["total"]


def test_conditional_vae_input_order():
    # encoder input [X, Y], decoder input [z, Y]: with the X (resp. z) rows
    # of the first weight matrix zero, the output depends on Y alone through
    # the *last* C rows.
    spec = VAESpec(3, (), 2, output_activation="identity",
                   loss="squared_error", n_conditions=2)
    rng = np.random.default_rng(0)
    We = np.zeros((5, 4))
    We[3:] = rng.standard_normal((2, 4))
    be = rng.standard_normal(4)
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7]])
    X = rng.uniform(0, 1, (3, 3))
    mu, logvar = vae.encode(([We], [be]), X, spec, Y)
    np.testing.assert_allclose(np.hstack([mu, logvar]), Y @ We[3:] + be,
                               rtol=1e-15)
    Wd = np.zeros((4, 3))
    Wd[2:] = rng.standard_normal((2, 3))
    bd = rng.standard_normal(3)
    xhat = vae.decode(([Wd], [bd]), rng.standard_normal((3, 2)), spec, Y)
    np.testing.assert_allclose(xhat, Y @ Wd[2:] + bd, rtol=1e-15)
    assert spec.encoder.sizes == (5, 4) and spec.decoder.sizes == (4, 3)


def test_vae_sub_specs():
    spec = VAESpec(10, [8, 6], 3, activation="tanh", weight_decay=0.01,
                   n_conditions=4)
    assert spec.hidden == (8, 6)
    assert spec.encoder == MLPSpec((14, 8, 6, 6), ("tanh", "tanh", "identity"),
                                   loss="squared_error", weight_decay=0.01)
    assert spec.decoder == MLPSpec((7, 6, 8, 10), ("tanh", "tanh", "sigmoid"),
                                   loss="binary_cross_entropy",
                                   weight_decay=0.01)
    hash(spec)


def test_vae_init_seed_convention():
    spec = VAESpec(6, (4,), 2, n_conditions=1)
    for seed in (0, 41, 2**64 - 1):
        (eW, eb), (dW, db) = vae.init(spec, seed, np.float32)
        rW, rb = philox.glorot_init(spec.encoder.sizes, seed, np.float32)
        sW, sb = philox.glorot_init(spec.decoder.sizes, (seed + 1) % 2**64,
                                    np.float32)
        for a, b in zip(eW + eb + dW + db, rW + rb + sW + sb):
            assert a.dtype == np.float32
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="seed"):
        vae.init(spec, -1)
    with pytest.raises(ValueError, match="seed"):
        vae.init(spec, 2**64)


def test_vae_bad_inputs():
    spec = VAESpec(4, (3,), 2, n_conditions=2)
    enc, dec, X, Y, eps = make_vae_problem(spec, 3, 0)
    with pytest.raises(ValueError, match="Y"):
        vae.loss(enc, dec, X, eps, spec)
    with pytest.raises(ValueError, match="Y"):
        vae.loss(enc, dec, X, eps, spec, Y[:, :1])
    with pytest.raises(ValueError, match="eps"):
        vae.loss(enc, dec, X, eps[:, :1], spec, Y)
    with pytest.raises(ValueError, match="X"):
        vae.loss(enc, dec, X[:, :3], eps, spec, Y)
    plain = VAESpec(4, (3,), 2)
    enc, dec, X, _, eps = make_vae_problem(plain, 3, 0)
    with pytest.raises(ValueError, match="Y"):
        vae.loss(enc, dec, X, eps, plain, np.ones((3, 2)))


# --------------------------------------------------------------------------
# VAE: training


def test_vae_train_step_is_one_sgd_step_per_network():
    spec = VAESpec(5, (4,), 2, weight_decay=0.01, n_conditions=2)
    enc, dec, X, Y, _ = make_vae_problem(spec, 6, 0)
    seed, step = 99, 3
    eps = philox.normal((6, 2), seed, step)
    J, (eWs, ebs), (dWs, dbs) = vae.loss_and_gradient(enc, dec, X, eps,
                                                      spec, Y)
    expected = ([p - 0.1 * g for p, g in zip(enc[0] + enc[1], eWs + ebs)]
                + [p - 0.2 * g for p, g in zip(dec[0] + dec[1], dWs + dbs)])
    params = enc[0] + enc[1] + dec[0] + dec[1]
    got = vae.train_step(enc, dec, X, spec, (optim.SGD(0.1), optim.SGD(0.2)),
                         seed, step, Y)
    assert got == J
    for p, e in zip(params, expected):
        np.testing.assert_array_equal(p, e)


def test_vae_sgd_training_reduces_loss():
    spec = VAESpec(8, (6,), 2)
    enc, dec = vae.init(spec, 5)
    X = (np.random.default_rng(0).uniform(0, 1, (16, 8)) > 0.5).astype(float)
    eps_eval = philox.normal((16, 2), 5, 10**6)  # a stream no step uses
    before = vae.loss(enc, dec, X, eps_eval, spec)
    opts = (optim.SGD(0.5), optim.SGD(0.5))
    for step in range(30):
        vae.train_step(enc, dec, X, spec, opts, seed=5, step=step)
    after = vae.loss(enc, dec, X, eps_eval, spec)
    assert after < 0.9 * before


def test_vae_train_step_needs_two_optimizers():
    spec = VAESpec(4, (), 2)
    enc, dec = vae.init(spec, 0)
    X = np.full((2, 4), 0.5)
    opt = optim.SGD(0.1)
    with pytest.raises(ValueError, match="optimizers"):
        vae.train_step(enc, dec, X, spec, (opt, opt), 0, 0)
    with pytest.raises(ValueError, match="optimizers"):
        vae.train_step(enc, dec, X, spec, opt, 0, 0)


def test_vae_float32_stays_float32():
    spec = VAESpec(6, (5,), 2, weight_decay=0.01, n_conditions=2)
    enc, dec, X, Y, eps = make_vae_problem(spec, 4, 0)
    f32 = [[a.astype(np.float32) for a in part] for part in enc + dec]
    enc32, dec32 = (f32[0], f32[1]), (f32[2], f32[3])
    X32, Y32, eps32 = (a.astype(np.float32) for a in (X, Y, eps))
    J32, eg, dg = vae.loss_and_gradient(enc32, dec32, X32, eps32, spec, Y32)
    J, eg64, dg64 = vae.loss_and_gradient(enc, dec, X, eps, spec, Y)
    assert isinstance(J32, float) and J32 == pytest.approx(J, rel=1e-5)
    g32 = eg[0] + eg[1] + dg[0] + dg[1]
    g64 = eg64[0] + eg64[1] + dg64[0] + dg64[1]
    for g, r in zip(g32, g64):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=1e-4,
                                   atol=1e-6 * np.abs(r).max())
    for part in f32:
        assert all(a.dtype == np.float32 for a in part)
    vae.train_step(enc32, dec32, X32, spec, (optim.Adam(1e-3),
                                             optim.Adam(1e-3)), 1, 0, Y32)
    assert all(a.dtype == np.float32 for part in f32 for a in part)


@pytest.mark.parametrize("kwargs, field", [
    (dict(n_features=0, hidden=(3,), n_latent=2), "n_features"),
    (dict(n_features=2.0, hidden=(3,), n_latent=2), "n_features"),
    (dict(n_features=4, hidden=(3, 0), n_latent=2), "hidden"),
    (dict(n_features=4, hidden="3", n_latent=2), "hidden"),
    (dict(n_features=4, hidden=3, n_latent=2), "hidden"),
    (dict(n_features=4, hidden=(3,), n_latent=0), "n_latent"),
    (dict(n_features=4, hidden=(3,), n_latent=2, activation="gelu"),
     "activation"),
    (dict(n_features=4, hidden=(3,), n_latent=2, output_activation="softmax"),
     "output_activation"),
    (dict(n_features=4, hidden=(3,), n_latent=2, loss="hinge"), "loss"),
    (dict(n_features=4, hidden=(3,), n_latent=2,
          loss="categorical_cross_entropy"), "loss"),
    (dict(n_features=4, hidden=(3,), n_latent=2, output_activation="tanh"),
     "sigmoid"),
    (dict(n_features=4, hidden=(3,), n_latent=2, weight_decay=-0.1),
     "weight_decay"),
    (dict(n_features=4, hidden=(3,), n_latent=2, weight_decay=math.inf),
     "weight_decay"),
    (dict(n_features=4, hidden=(3,), n_latent=2, n_conditions=-1),
     "n_conditions"),
    (dict(n_features=4, hidden=(3,), n_latent=2, n_conditions=True),
     "n_conditions"),
])
def test_vae_spec_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        VAESpec(**kwargs)


# --------------------------------------------------------------------------
# GAN


@pytest.mark.parametrize("d_hidden, decay, n_real, n_fake", [
    ((), 0.0, 4, 4),
    ((5,), 0.0, 3, 5),
    ((6, 4), 0.3, 5, 5),
    ((5,), 0.1, 6, 0),
])
def test_gan_discriminator_gradient_matches_fd(d_hidden, decay, n_real,
                                               n_fake):
    spec = GANSpec(3, 4, (5,), d_hidden, weight_decay=decay)
    for s in itertools.count():
        rng = np.random.default_rng(s)
        Ws, bs = gan.init(spec, s)[1]
        bs = random_biases(bs, rng)
        real = rng.uniform(0, 1, (n_real, 4))
        fake = rng.uniform(0, 1, (n_fake, 4))
        _, Zs = mlp.forward(Ws, bs, np.vstack([real, fake]),
                            spec.discriminator)
        if away_from_kinks(Zs, spec.discriminator.activations):
            break
    D = (Ws, bs)
    J, dWs, dbs = gan.discriminator_loss_and_gradient(D, real, fake, spec)
    assert J == gan.discriminator_loss(D, real, fake, spec)
    fd = fd_gradients(lambda: gan.discriminator_loss(D, real, fake, spec),
                      Ws + bs)
    assert_matches_fd(param_names("D", len(Ws)), dWs + dbs, fd)


def test_gan_discriminator_loss_convention():
    spec = GANSpec(2, 3, (), (4,), weight_decay=0.2)
    rng = np.random.default_rng(1)
    Ws, bs = gan.init(spec, 7)[1]
    bs = random_biases(bs, rng)
    real, fake = rng.uniform(0, 1, (5, 3)), rng.uniform(0, 1, (5, 3))
    _, Z_real = mlp.forward(Ws, bs, real, spec.discriminator)
    _, Z_fake = mlp.forward(Ws, bs, fake, spec.discriminator)

    def softplus(x):
        return np.log1p(np.exp(x))

    half = 0.5 * (np.mean(softplus(-Z_real[-1]))
                  + np.mean(softplus(Z_fake[-1])))
    decay = 0.1 * sum(np.sum(W**2) for W in Ws)
    J = gan.discriminator_loss((Ws, bs), real, fake, spec)
    assert J == pytest.approx(half + decay, rel=1e-14)
    # it is the MLP's loss on the stacked batch with targets [1; 0]
    T = np.vstack([np.ones((5, 1)), np.zeros((5, 1))])
    ref = mlp.loss_and_gradient(Ws, bs, np.vstack([real, fake]), T,
                                spec.discriminator)
    got = gan.discriminator_loss_and_gradient((Ws, bs), real, fake, spec)
    assert got[0] == ref[0]
    for a, b in zip(got[1] + got[2], ref[1] + ref[2]):
        np.testing.assert_array_equal(a, b)


def _generator_cases():
    for loss_name in gan.GENERATOR_LOSSES:
        for g_hidden, d_hidden in (((), ()), ((5,), (4,)), ((6, 4), (5, 3))):
            for decay in (0.0, 0.2):
                yield pytest.param(
                    loss_name, g_hidden, d_hidden, decay,
                    id=f"{loss_name}-g{g_hidden}-d{d_hidden}-decay{decay}")


@pytest.mark.parametrize("loss_name, g_hidden, d_hidden, decay",
                         list(_generator_cases()))
def test_gan_generator_gradient_matches_fd(loss_name, g_hidden, d_hidden,
                                           decay):
    spec = GANSpec(3, 4, g_hidden, d_hidden, weight_decay=decay)
    G, D, z = make_gan_problem(spec, 6, 1)
    D_before = [a.copy() for a in D[0] + D[1]]
    J, dWs, dbs = gan.generator_loss_and_gradient(G, D, z, spec, loss_name)
    assert J == gan.generator_loss(G, D, z, spec, loss_name)
    for a, b in zip(D[0] + D[1], D_before):  # D is frozen
        np.testing.assert_array_equal(a, b)
    fd = fd_gradients(lambda: gan.generator_loss(G, D, z, spec, loss_name),
                      G[0] + G[1])
    assert_matches_fd(param_names("G", len(G[0])), dWs + dbs, fd)


def test_gan_generator_loss_values():
    spec = GANSpec(2, 3, (4,), (5,), g_activation="tanh", weight_decay=0.4)
    G, D, z = make_gan_problem(spec, 7, 1)
    fake = gan.generate(G, z, spec)
    _, Zs = mlp.forward(*D, fake, spec.discriminator)
    p = ops.sigmoid(Zs[-1])
    decay = 0.2 * sum(np.sum(W**2) for W in G[0])
    assert gan.generator_loss(G, D, z, spec) == pytest.approx(
        -np.mean(np.log(p)) + decay, rel=1e-13)
    assert gan.generator_loss(G, D, z, spec, "minimax") == pytest.approx(
        np.mean(np.log(1 - p)) + decay, rel=1e-13)
    with pytest.raises(ValueError, match="loss"):
        gan.generator_loss(G, D, z, spec, "wasserstein")


def test_gan_generator_matches_torch_autograd():
    torch = pytest.importorskip(
        "torch", reason="torch is not installed; the autograd cross-check "
                        "needs it")
    spec = GANSpec(3, 4, (5,), (6,), weight_decay=0.1)
    G, D, z = make_gan_problem(spec, 8, 2)
    for loss_name in gan.GENERATOR_LOSSES:
        J, dWs, dbs = gan.generator_loss_and_gradient(G, D, z, spec,
                                                      loss_name)
        tG = [torch.tensor(a, requires_grad=True) for a in G[0] + G[1]]
        tD = [torch.tensor(a) for a in D[0] + D[1]]
        h = torch.relu(torch.tensor(z) @ tG[0] + tG[2])
        fake = torch.sigmoid(h @ tG[1] + tG[3])
        h = torch.nn.functional.leaky_relu(fake @ tD[0] + tD[2], 0.01)
        s = h @ tD[1] + tD[3]
        if loss_name == "non_saturating":
            total = -torch.nn.functional.logsigmoid(s).mean()
        else:
            total = torch.log1p(-torch.sigmoid(s)).mean()
        total = total + 0.05 * sum((W**2).sum() for W in tG[:2])
        total.backward()
        assert J == pytest.approx(total.item(), rel=1e-12)
        for g, t in zip(dWs + dbs, tG):
            ref = t.grad.numpy()
            assert np.linalg.norm(g - ref) <= 1e-12 * np.linalg.norm(ref)


def test_gan_sub_specs_init_and_latents():
    spec = GANSpec(3, 7, [8], (6, 4), weight_decay=0.05)
    assert spec.g_hidden == (8,)
    assert spec.generator == MLPSpec((3, 8, 7), ("relu", "sigmoid"),
                                     weight_decay=0.05)
    assert spec.discriminator == MLPSpec(
        (7, 6, 4, 1), ("leaky_relu", "leaky_relu", "sigmoid"),
        loss="binary_cross_entropy", weight_decay=0.05)
    hash(spec)
    (gW, gb), (dW, db) = gan.init(spec, 11)
    rW, rb = philox.glorot_init(spec.generator.sizes, 11)
    sW, sb = philox.glorot_init(spec.discriminator.sizes, 12)
    for a, b in zip(gW + gb + dW + db, rW + rb + sW + sb):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(gan.sample_latent(5, spec, 11, 4),
                                  philox.normal((5, 3), 11, 4))
    assert gan.sample_latent(5, spec, 11, 4, np.float32).dtype == np.float32


def test_gan_float32_stays_float32():
    spec = GANSpec(3, 4, (5,), (4,), weight_decay=0.01)
    G, D, z = make_gan_problem(spec, 5, 0)
    G32 = ([a.astype(np.float32) for a in G[0]],
           [a.astype(np.float32) for a in G[1]])
    D32 = ([a.astype(np.float32) for a in D[0]],
           [a.astype(np.float32) for a in D[1]])
    z32 = z.astype(np.float32)
    J, dWs, dbs = gan.generator_loss_and_gradient(G32, D32, z32, spec)
    J64, dWs64, dbs64 = gan.generator_loss_and_gradient(G, D, z, spec)
    assert J == pytest.approx(J64, rel=1e-5)
    for g, r in zip(dWs + dbs, dWs64 + dbs64):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=1e-4,
                                   atol=1e-6 * np.abs(r).max())
    fake = gan.generate(G32, z32, spec)
    assert fake.dtype == np.float32
    _, gW, gb = gan.discriminator_loss_and_gradient(D32, fake, fake, spec)
    assert all(g.dtype == np.float32 for g in gW + gb)


@pytest.mark.parametrize("kwargs, field", [
    (dict(n_latent=0), "n_latent"),
    (dict(n_latent=1.5), "n_latent"),
    (dict(n_features=0), "n_features"),
    (dict(g_hidden=(4, 0)), "g_hidden"),
    (dict(g_hidden="4"), "g_hidden"),
    (dict(d_hidden=(-1,)), "d_hidden"),
    (dict(d_hidden=None), "d_hidden"),
    (dict(g_activation="swish"), "g_activation"),
    (dict(g_output_activation="softmax"), "g_output_activation"),
    (dict(d_activation="elu"), "d_activation"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(weight_decay=float("nan")), "weight_decay"),
])
def test_gan_spec_validation(kwargs, field):
    args = dict(n_latent=2, n_features=3, g_hidden=(4,), d_hidden=(4,))
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        GANSpec(**args)


def test_gan_bad_inputs():
    spec = GANSpec(2, 3, (4,), (4,))
    G, D = gan.init(spec, 0)
    with pytest.raises(ValueError, match="real"):
        gan.discriminator_loss(D, np.zeros((2, 4)), np.zeros((2, 3)), spec)
    with pytest.raises(ValueError, match="fake"):
        gan.discriminator_loss(D, np.zeros((2, 3)), np.zeros(3), spec)
    with pytest.raises(ValueError, match="z"):
        gan.generator_loss(G, D, np.zeros((2, 3)), spec)
