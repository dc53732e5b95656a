"""The engine's VAE and GAN steps against the NumPy reference.

Every kernel variant this CPU supports, float64 (≤ 1e-10 relative) and
float32 (≤ 1e-5, against the float64 reference fed the same float32 numbers):
the reparameterisation, the Gaussian KL and its gradient, the decoder's input
gradient, the adversarial deltas through a frozen discriminator, whole steps
and whole epochs with the engine's Philox draws.
"""
import numpy as np
import pytest

from conftest import KINKED, TOL, rel_err
from fusedae._native import engine
from fusedae.reference import gan as rgan
from fusedae.reference import mlp, optim, philox
from fusedae.reference import vae as rvae

ISAS = engine.supported_isas()
DTYPES = ["float64", "float32"]

# (D, hidden, Z, activation, output activation, loss, weight decay, C, B)
VAE_CASES = [
    (7, (), 3, "relu", "sigmoid", "binary_cross_entropy", 0.0, 0, 5),
    (9, (6,), 2, "tanh", "sigmoid", "binary_cross_entropy", 1e-3, 0, 1),
    (11, (8, 5), 4, "relu", "identity", "squared_error", 0.0, 0, 13),
    (10, (7,), 3, "sigmoid", "sigmoid", "binary_cross_entropy", 1e-2, 3, 9),
    (64, (48,), 8, "leaky_relu", "sigmoid", "binary_cross_entropy", 0.0, 10, 150),  # pooled
]
VAE_IDS = [f"D{c[0]}-h{'x'.join(map(str, c[1])) or 'none'}-Z{c[2]}-{c[3]}-{c[5][:3]}-C{c[7]}-B{c[8]}"
           for c in VAE_CASES]


def vae_problem(case, dtype, isa, rng, seed=11):
    D, hidden, Z, act, out, loss, wd, C, B = case
    spec = rvae.VAESpec(D, hidden, Z, act, out, loss, wd, C)
    model = engine.VAE(D, Z, list(hidden), act, out, loss, dtype, wd, C, isa=isa)
    model.init_params(seed)
    for net in (model.encoder, model.decoder):  # nonzero biases exercise the bias paths
        net.params[:] += rng.uniform(-0.1, 0.1, net.n_params).astype(dtype)
    X = rng.uniform(0, 1, (B, D)).astype(dtype)
    Y = np.eye(C, dtype=dtype)[rng.integers(0, C, B)] if C else None
    return spec, model, X, Y


def ref_params(net, mspec):
    return mlp.unflatten(net.params.astype(np.float64), mspec)


def as64(a):
    return None if a is None else a.astype(np.float64)


def test_latent_draws_are_the_references():
    for dtype in DTYPES:
        got = engine.latent_normal(123, 7, 5, 3, dtype)
        want = philox.normal((5, 3), 123, 7)
        assert got.dtype == np.dtype(dtype)
        assert rel_err(got, want) <= TOL[dtype] * 1e-2


# Sizes around the kernels' 64-draw groups (cpu/latent.inl), seeds and streams
# with high bits set, and enough draws to meet every branch of the quarter
# turns and the log's mantissa split many times.
LATENT_SHAPES = [(1, 1), (1, 3), (3, 21), (1, 64), (5, 13), (65, 1), (97, 100), (300, 333)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", LATENT_SHAPES, ids=[f"{r}x{c}" for r, c in LATENT_SHAPES])
def test_latent_draws_of_every_isa_are_the_references(isa, shape, rng):
    # Each instruction set's polynomial log, sine and cosine against NumPy's
    # libm in float64: a few units in the last place of the largest draw
    # (|z| < 6 at these sizes); float32 draws are rounded from those doubles.
    seed = int(rng.integers(0, 2**63))
    stream = int(rng.integers(0, 2**32))
    want = philox.normal(shape, seed, stream)
    got = engine.latent_normal(seed, stream, *shape, "float64", isa)
    assert np.max(np.abs(got - want)) <= 4e-15 * max(1.0, np.max(np.abs(want)))
    # float32: within one unit in the last place, or within the float64 bound
    # for draws next to 0. When u lands on a quarter turn exactly the engine's
    # reduction gives cos = 0 exactly, while libm's cos(2π·0.25) is ~6e-17
    # (2π·0.25 is not π/2 in double): a draw of 1e-17 against 0, which no
    # float32 ulp of 1e-17 covers (4 of 3,000 sets of 97 x 100 draws).
    got32 = engine.latent_normal(seed, stream, *shape, "float32", isa)
    want32 = want.astype(np.float32)
    ulp32 = np.spacing(np.abs(want32))
    near0 = 4e-15 * max(1.0, np.max(np.abs(want)))
    assert np.all(np.abs(got32.astype(np.float64) - want32) <= np.maximum(ulp32, near0))


def test_latent_draws_are_standard_normal():
    # 10^6 draws: mean and variance within 5 standard errors of 0 and 1, and
    # the tails where a sign or quarter-turn slip would show.
    z = engine.latent_normal(2024, 11, 1000, 1000, "float64").ravel()
    n = z.size
    assert abs(z.mean()) <= 5 / np.sqrt(n)
    assert abs(z.var() - 1) <= 5 * np.sqrt(2 / n)
    assert abs(np.mean(z > 1.96) - 0.025) <= 5 * np.sqrt(0.025 * 0.975 / n)
    assert abs(np.mean(z < -1.96) - 0.025) <= 5 * np.sqrt(0.025 * 0.975 / n)


def test_latent_draws_refuse_an_unknown_isa():
    with pytest.raises(ValueError, match="isa"):
        engine.latent_normal(0, 0, 2, 2, "float32", "sse9")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", VAE_CASES, ids=VAE_IDS)
def test_vae_loss_and_gradient(case, dtype, isa, rng):
    spec, model, X, Y = vae_problem(case, dtype, isa, rng)
    eps = rng.standard_normal((len(X), spec.n_latent)).astype(dtype)
    total, recon, kl, decay = model.loss_and_gradient(X, Y, eps)
    enc = ref_params(model.encoder, spec.encoder)
    dec = ref_params(model.decoder, spec.decoder)
    t = rvae.terms(enc, dec, as64(X), as64(eps), spec, as64(Y))
    for name, got in [("total", total), ("recon", recon), ("kl", kl), ("decay", decay)]:
        assert abs(got - t[name]) <= TOL[dtype] * max(abs(t["total"]), 1e-300), name
    J, (dWe, dbe), (dWd, dbd) = rvae.loss_and_gradient(enc, dec, as64(X), as64(eps), spec,
                                                       as64(Y))
    gWe, gbe = mlp.unflatten(model.encoder.grads.astype(np.float64), spec.encoder)
    gWd, gbd = mlp.unflatten(model.decoder.grads.astype(np.float64), spec.decoder)
    for name, got, want in [("enc dW", gWe, dWe), ("enc db", gbe, dbe), ("dec dW", gWd, dWd),
                            ("dec db", gbd, dbd)]:
        for l, (g, r) in enumerate(zip(got, want)):
            assert rel_err(g, r) <= TOL[dtype], f"{name}{l + 1}"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [VAE_CASES[i] for i in (1, 3, 4)],
                         ids=[VAE_IDS[i] for i in (1, 3, 4)])
def test_vae_train_steps(case, dtype, isa, rng):
    # Each step from the engine's own state (so float32 rounding does not
    # compound), ε from the engine's stream (kLatent, step). Adam's first step
    # moves a weight by lr·g/(|g| + eps): for a gradient near 0 that is a
    # ratio of rounding errors, so float32 runs with eps 1e-5, above the
    # gradients' rounding (~1e-9 here; with 1e-7 one weight of 4,048 whose
    # gradient was -1.9e-8 moved 1.7e-4 off the reference for 1 seed in 40).
    spec, model, X, Y = vae_problem(case, dtype, isa, rng)
    lr = 1e-2
    eps = 1e-7 if dtype == "float64" else 1e-5
    model.set_optimizer("adam", lr, beta1=0.9, beta2=0.99, eps=eps)
    for step in range(3):
        enc = ref_params(model.encoder, spec.encoder)
        dec = ref_params(model.decoder, spec.decoder)
        opts = []
        for net, mspec in ((model.encoder, spec.encoder), (model.decoder, spec.decoder)):
            o = optim.Adam(lr, 0.9, 0.99, eps)
            to_lists = lambda f: [a.copy() for a in sum(mlp.unflatten(f.astype(np.float64), mspec), [])]  # noqa: E731
            o.state.update(t=net.optimizer_steps, m=to_lists(net.optimizer_state(0)),
                           v=to_lists(net.optimizer_state(1)))
            opts.append(o)
        J = rvae.train_step(enc, dec, as64(X), spec, opts, model.seed, model.latent_steps,
                            as64(Y))
        total = model.train_step(X, Y)[0]
        assert abs(total - J) <= TOL[dtype] * abs(J), f"loss, step {step}"
        assert rel_err(model.encoder.params, mlp.flatten(*enc)) <= TOL[dtype], f"encoder {step}"
        assert rel_err(model.decoder.params, mlp.flatten(*dec)) <= TOL[dtype], f"decoder {step}"
    assert model.latent_steps == 3


@pytest.mark.parametrize("isa", ISAS)
def test_vae_fit_epoch_matches_reference_loop(isa, rng):
    # Shuffled minibatches (the last one short), ε per step, two epochs, float64.
    D, Z, C, rows, batch, seed = 12, 3, 4, 45, 16, 21
    spec = rvae.VAESpec(D, (9,), Z, "tanh", "sigmoid", "binary_cross_entropy", 1e-3, C)
    model = engine.VAE(D, Z, [9], "tanh", "sigmoid", "binary_cross_entropy", "float64", 1e-3, C,
                       isa=isa)
    model.init_params(seed)
    model.set_optimizer("sgd", 0.05)
    X = rng.uniform(0, 1, (rows, D))
    Y = np.eye(C)[rng.integers(0, C, rows)]
    enc = ref_params(model.encoder, spec.encoder)
    dec = ref_params(model.decoder, spec.decoder)
    opts = (optim.SGD(0.05), optim.SGD(0.05))
    step = 0
    for epoch in range(2):
        (total, recon, kl, _), steps, diverged = model.fit_epoch(X, Y, batch, True)
        perm = philox.permutation(rows, seed, epoch)
        parts = []
        for r0 in range(0, rows, batch):
            idx = perm[r0:r0 + batch]
            parts.append((rvae.train_step(enc, dec, X[idx], spec, opts, seed, step, Y[idx]),
                          len(idx)))
            step += 1
        ref = sum(j * n for j, n in parts) / rows
        assert (steps, diverged) == (len(parts), False)
        assert abs(total - ref) <= 1e-10 * abs(ref)
    assert rel_err(model.encoder.params, mlp.flatten(*enc)) <= 1e-10
    assert rel_err(model.decoder.params, mlp.flatten(*dec)) <= 1e-10


# (Z, D, g_hidden, d_hidden, g_act, g_out, d_act, weight decay, B)
GAN_CASES = [
    (3, 5, (), (), "relu", "identity", "leaky_relu", 0.0, 4),
    (4, 6, (7,), (5,), "relu", "sigmoid", "leaky_relu", 1e-3, 9),
    (2, 3, (6, 4), (5, 3), "tanh", "tanh", "sigmoid", 0.0, 1),
    (16, 64, (96,), (80,), "leaky_relu", "sigmoid", "leaky_relu", 0.0, 160),  # pooled
]
GAN_IDS = [f"Z{c[0]}-D{c[1]}-g{'x'.join(map(str, c[2])) or 'none'}-d{'x'.join(map(str, c[3])) or 'none'}-B{c[8]}"
           for c in GAN_CASES]


def keep_off_kinks(net, mspec, X, margin=1e-4):
    """Shifts the biases of `net`'s ReLU and leaky-ReLU hidden units so that no
    pre-activation of the rows X lies within `margin` of the kink at 0.

    At the kink f' jumps (1 to 0 for ReLU, to 0.01 for leaky ReLU), and a
    pre-activation within float32 rounding of 0 can fall on one side in the
    engine and on the other in the float64 reference: the unit's δ for that row
    then differs by most of its value, which no rounding tolerance covers
    (float32, the 16-64 case: test_discriminator_step failed for 33 of 100,000
    random seeds, test_generator_loss_and_gradient for 4 of 6,000)."""
    Ws, bs = ref_params(net, mspec)
    for l, name in enumerate(mspec.activations[:-1]):
        if name not in KINKED:
            continue
        Z = mlp.forward(Ws, bs, X, mspec)[1][l]
        for j in range(Z.shape[1]):
            for shift in margin * np.array([0, 2, -2, 4, -4, 8, -8, 16, -16, 32, -32]):
                if np.min(np.abs(Z[:, j] + shift)) >= margin:
                    break
            bs[l][j] += shift
    net.params[:] = mlp.flatten(Ws, bs).astype(net.params.dtype)


def gan_problem(case, dtype, isa, rng, minimax=False, seed=4):
    Z, D, gh, dh, ga, go, da, wd, B = case
    spec = rgan.GANSpec(Z, D, gh, dh, ga, go, da, wd)
    model = engine.GAN(Z, D, list(gh), list(dh), ga, go, da, dtype, wd, minimax, isa=isa)
    model.init_params(seed)
    for net in (model.generator, model.discriminator):
        net.params[:] += rng.uniform(-0.1, 0.1, net.n_params).astype(dtype)
    return spec, model, B


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["non_saturating", "minimax"])
@pytest.mark.parametrize("case", GAN_CASES, ids=GAN_IDS)
def test_generator_loss_and_gradient(case, loss, dtype, isa, rng):
    spec, model, B = gan_problem(case, dtype, isa, rng, minimax=loss == "minimax")
    z = rng.standard_normal((B, spec.n_latent)).astype(dtype)
    # G's gradient goes back through D's units and G's own (keep_off_kinks).
    keep_off_kinks(model.generator, spec.generator, as64(z))
    fake = rgan.generate(ref_params(model.generator, spec.generator), as64(z), spec)
    keep_off_kinks(model.discriminator, spec.discriminator, fake)
    d_before = model.discriminator.params.copy()
    got = model.generator_loss_and_gradient(z)
    G = ref_params(model.generator, spec.generator)
    Dp = ref_params(model.discriminator, spec.discriminator)
    J, dWs, dbs = rgan.generator_loss_and_gradient(G, Dp, as64(z), spec, loss)
    assert abs(got - J) <= TOL[dtype] * abs(J)
    gW, gb = mlp.unflatten(model.generator.grads.astype(np.float64), spec.generator)
    for l, (g, r) in enumerate(zip(gW + gb, dWs + dbs)):
        assert rel_err(g, r) <= TOL[dtype], l
    np.testing.assert_array_equal(model.discriminator.params, d_before)  # frozen


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", GAN_CASES, ids=GAN_IDS)
def test_discriminator_step(case, dtype, isa, rng):
    # The step draws z from (kLatent, latent_steps), makes fakes with G and
    # takes one SGD step of D on [real; fake]; G is untouched.
    spec, model, B = gan_problem(case, dtype, isa, rng)
    model.set_optimizers("sgd", 0.1, 0.1)
    real = rng.uniform(0, 1, (B, spec.n_features)).astype(dtype)
    G = ref_params(model.generator, spec.generator)
    Dp = ref_params(model.discriminator, spec.discriminator)
    g_before = model.generator.params.copy()
    z = philox.normal((B, spec.n_latent), model.seed, model.latent_steps).astype(dtype)
    fake = rgan.generate(G, as64(z), spec).astype(dtype)
    keep_off_kinks(model.discriminator, spec.discriminator, np.vstack([as64(real), as64(fake)]))
    Dp = ref_params(model.discriminator, spec.discriminator)
    J, dWs, dbs = rgan.discriminator_loss_and_gradient(Dp, as64(real), as64(fake), spec)
    got = model.discriminator_step(real)
    assert abs(got - J) <= TOL[dtype] * abs(J)
    optim.SGD(0.1).step(Dp[0] + Dp[1], dWs + dbs)
    assert rel_err(model.discriminator.params, mlp.flatten(*Dp)) <= TOL[dtype]
    np.testing.assert_array_equal(model.generator.params, g_before)
    assert model.latent_steps == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", GAN_CASES, ids=GAN_IDS)
def test_discriminator_loss_and_gradient(case, dtype, rng):
    # Unequal real and fake counts: the mean runs over all stacked rows.
    spec, model, B = gan_problem(case, dtype, "auto", rng)
    real = rng.uniform(0, 1, (B, spec.n_features)).astype(dtype)
    fake = rng.uniform(0, 1, (B + 2, spec.n_features)).astype(dtype)
    S = np.vstack([real, fake])
    T = np.concatenate([np.ones(B), np.zeros(B + 2)]).astype(dtype)[:, None]
    got = model.discriminator.loss_and_gradient(S, T)
    Dp = ref_params(model.discriminator, spec.discriminator)
    J, dWs, dbs = rgan.discriminator_loss_and_gradient(Dp, as64(real), as64(fake), spec)
    assert abs(got - J) <= TOL[dtype] * abs(J)
    gW, gb = mlp.unflatten(model.discriminator.grads.astype(np.float64), spec.discriminator)
    for l, (g, r) in enumerate(zip(gW + gb, dWs + dbs)):
        if l == len(gW + gb) - 1:
            # The output bias's gradient is mean(σ(z) − t) over real (t = 1) and
            # fake (t = 0) rows, which cancel: its float32 rounding error scales
            # with mean |σ(z) − t|, not with the (possibly tiny) mean itself.
            As, _ = mlp.forward(Dp[0], Dp[1], as64(S), spec.discriminator)
            scale = np.abs(As[-1] - T).mean()
            assert np.abs(g - r).max() <= TOL[dtype] * scale, l
        else:
            assert rel_err(g, r) <= TOL[dtype], l


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("loss", ["non_saturating", "minimax"])
def test_gan_fit_epoch_matches_reference_loop(loss, isa, rng):
    # One alternating epoch in float64: per minibatch a D step on fresh fakes,
    # then (every d_per_g minibatches) a G step on fresh latents.
    Z, D, rows, batch, seed, d_per_g = 3, 6, 50, 16, 8, 2
    spec = rgan.GANSpec(Z, D, (7,), (5,), "relu", "sigmoid", "leaky_relu", 1e-3)
    model = engine.GAN(Z, D, [7], [5], "relu", "sigmoid", "leaky_relu", "float64", 1e-3,
                       loss == "minimax", isa=isa)
    model.init_params(seed)
    model.set_optimizers("sgd", 0.05, 0.1)
    X = rng.uniform(0, 1, (rows, D))
    G = ref_params(model.generator, spec.generator)
    Dp = ref_params(model.discriminator, spec.discriminator)
    d_losses, g_losses = model.fit_epoch(X, batch, d_per_g, True, True, True)[:2]
    perm = philox.permutation(rows, seed, 0)
    step, ref_d, ref_g = 0, [], []
    for k, r0 in enumerate(range(0, rows, batch), start=1):
        real = X[perm[r0:r0 + batch]]
        fake = rgan.generate(G, philox.normal((len(real), Z), seed, step), spec)
        step += 1
        J, dWs, dbs = rgan.discriminator_loss_and_gradient(Dp, real, fake, spec)
        optim.SGD(0.1).step(Dp[0] + Dp[1], dWs + dbs)
        ref_d.append(J)
        if k % d_per_g == 0:
            J, dWs, dbs = rgan.generator_loss_and_gradient(G, Dp, philox.normal((batch, Z), seed,
                                                                                step), spec, loss)
            step += 1
            optim.SGD(0.05).step(G[0] + G[1], dWs + dbs)
            ref_g.append(J)
    np.testing.assert_allclose(d_losses, ref_d, rtol=1e-10)
    np.testing.assert_allclose(g_losses, ref_g, rtol=1e-10)
    assert rel_err(model.generator.params, mlp.flatten(*G)) <= 1e-10
    assert rel_err(model.discriminator.params, mlp.flatten(*Dp)) <= 1e-10
    assert model.latent_steps == step


def test_composites_refuse_bad_arguments():
    v = engine.VAE(4, 2, [3], n_conditions=2)
    v.init_params(0)
    X = np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match="Y: required by a conditional VAE"):
        v.train_step(X)
    with pytest.raises(ValueError, match="Y: expected 2 columns"):
        v.train_step(X, np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="eps: expected 2 columns"):
        v.loss_and_gradient(X, np.zeros((5, 2), np.float32), np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="X: contains NaN"):
        v.train_step(np.full((5, 4), np.nan, np.float32), np.zeros((5, 2), np.float32))
    with pytest.raises(TypeError, match="X: expected dtype float32"):
        v.train_step(X.astype(np.float64), np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="n_latent"):
        engine.VAE(4, 0, [3])
    with pytest.raises(ValueError, match="softmax"):
        engine.VAE(4, 2, [3], activation="softmax")
    g = engine.GAN(2, 3, [4], [4])
    g.init_params(0)
    with pytest.raises(ValueError, match="X: expected 3 columns"):
        g.discriminator_step(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        g.generator_step(0)
    with pytest.raises(ValueError, match="d_steps"):
        g.fit_epoch(np.zeros((4, 3), np.float32), 2, 0)
    with pytest.raises(ValueError, match="nothing to train"):
        g.fit_epoch(np.zeros((4, 3), np.float32), 2, 1, False, False)
