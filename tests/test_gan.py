"""The GAN (§5): modes of a 2-D mixture, digits judged by a classifier and a
Fréchet distance, the schedule options, reproducibility, bad input."""
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from fusedae import GAN, Classifier
from fusedae.metrics import frechet_distance

RING = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1) * 2.0
MIXTURE_KW = dict(n_latent=4, g_hidden=(64, 64), d_hidden=(64, 64), g_output_activation="identity",
                  g_learning_rate=1e-3, d_learning_rate=1e-3, batch_size=256, epochs=200)


def mixture(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    return RING[rng.integers(0, 8, n)] + 0.05 * rng.standard_normal((n, 2))


def modes(samples, radius=0.3):
    d = np.linalg.norm(samples[:, None, :] - RING[None], axis=-1)
    near = d.min(axis=1) < radius
    return near.mean(), np.bincount(d.argmin(axis=1)[near], minlength=8)


@pytest.fixture(scope="module")
def ring_gan():
    return GAN(random_state=0, **MIXTURE_KW).fit(mixture())


def test_mixture_modes_are_covered(ring_gan):
    # 8 Gaussians (σ = 0.05) on a circle of radius 2: at least 7 modes get at
    # least 1% of 2000 samples, and most samples lie within 6σ of a mode.
    near, counts = modes(ring_gan.sample(2000, random_state=0).astype(np.float64))
    assert (counts >= 20).sum() >= 7, counts
    assert near >= 0.8
    untrained = GAN(random_state=0, **{**MIXTURE_KW, "epochs": 0}).fit(mixture())
    assert modes(untrained.sample(2000, random_state=0).astype(np.float64))[0] < 0.2


def test_history_follows_the_schedule():
    X = mixture(512)
    g = GAN(4, (16,), (16,), g_output_activation="identity", batch_size=128, epochs=2,
            d_steps=2, d_pretrain_epochs=1, g_pretrain_epochs=1, random_state=0).fit(X)
    # 4 minibatches per epoch: D pre-training 4 D steps; G pre-training 4 G
    # steps; alternating 4 D steps and 2 G steps per epoch.
    assert g.epochs_ == [("d_pretrain", 4, 0), ("g_pretrain", 0, 4), ("alternating", 4, 2),
                         ("alternating", 4, 2)]
    assert len(g.history_["d_loss"]) == 12 and len(g.history_["g_loss"]) == 8
    assert np.all(np.isfinite(g.history_["d_loss"] + g.history_["g_loss"]))


def test_pretrained_discriminator_tells_real_from_the_initial_fakes():
    X = mixture(2000)
    g = GAN(4, (32,), (32,), g_output_activation="identity", epochs=0, d_pretrain_epochs=20,
            d_learning_rate=1e-3, batch_size=128, random_state=0).fit(X)
    real, fake = g.discriminate(X).mean(), g.discriminate(g.sample(500)).mean()
    assert real > 0.8 and real - fake > 0.5, (real, fake)
    # the generator's loss against it is high (it has learnt nothing yet)
    loss, _ = g.generator_loss_and_gradient(g.latent(256))
    assert loss > -np.log(0.5)


def test_minimax_loss_is_the_negated_bce_against_fake():
    X = mixture(512)
    kw = dict(n_latent=4, g_hidden=(16,), d_hidden=(16,), g_output_activation="identity",
              epochs=1, random_state=0, dtype="float64")
    ns = GAN(**kw).fit(X)
    mm = GAN(loss="minimax", **kw)
    mm.fit(X)
    Z = ns.latent(64, random_state=0)
    # same networks: copy the non-saturating model's into the minimax one
    for (w1, b1), (w2, b2) in [(ns.generator_coefs_, mm.generator_coefs_),
                               (ns.discriminator_coefs_, mm.discriminator_coefs_)]:
        for p, q in zip(w1 + b1, w2 + b2):
            q[...] = p
    d = ns.discriminate(ns.generate(Z))
    assert ns.generator_loss_and_gradient(Z)[0] == pytest.approx(-np.mean(np.log(d)), rel=1e-10)
    assert mm.generator_loss_and_gradient(Z)[0] == pytest.approx(np.mean(np.log1p(-d)),
                                                                 rel=1e-10)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def test_digits_gan_makes_every_digit_and_matches_their_features(digits):
    X, y = digits
    clf = Classifier(64, epochs=100, random_state=0).fit(X, y)

    def features(A):  # the classifier's hidden layer
        return np.maximum(A @ clf.coefs_[0] + clf.intercepts_[0], 0).astype(np.float64)

    kw = dict(n_latent=16, g_hidden=(128,), d_hidden=(128,), g_learning_rate=1e-3,
              d_learning_rate=1e-3, random_state=0)
    trained = GAN(epochs=200, **kw).fit(X)
    untrained = GAN(epochs=0, **kw).fit(X)
    S = trained.sample(1000, random_state=0)
    assert S.shape == (1000, 64) and S.min() >= 0 and S.max() <= 1
    counts = np.bincount(clf.predict(S), minlength=10)
    assert np.all(counts >= 20), counts  # every class, none starved
    fd_trained = frechet_distance(features(X), features(S))
    fd_untrained = frechet_distance(features(X), features(untrained.sample(1000, random_state=0)))
    assert fd_trained <= 0.1 * fd_untrained, (fd_trained, fd_untrained)


def test_same_seed_same_samples():
    X = mixture(512)
    kw = dict(n_latent=4, g_hidden=(16,), d_hidden=(16,), epochs=3, random_state=9,
              g_output_activation="identity")
    a, b = GAN(**kw).fit(X), GAN(**kw).fit(X)
    np.testing.assert_array_equal(a.sample(10), b.sample(10))
    assert a.history_ == b.history_
    c = GAN(**{**kw, "random_state": 10}).fit(X)
    assert not np.array_equal(a.sample(10, random_state=0), c.sample(10, random_state=0))
    resumed = pickle.loads(pickle.dumps(a))
    a.partial_fit(X)
    resumed.partial_fit(X)
    np.testing.assert_array_equal(a.sample(10, random_state=2), resumed.sample(10, random_state=2))


@pytest.mark.parametrize("params,name", [
    (dict(loss="wasserstein"), "loss"),
    (dict(d_steps=0), "d_steps"),
    (dict(g_hidden=(0,)), "g_hidden"),
    (dict(d_hidden="wide"), "d_hidden"),
    (dict(g_learning_rate=-1.0), "g_learning_rate"),
    (dict(beta1=1.0), "beta1"),
    (dict(optimizer="lbfgs"), "optimizer"),
    (dict(d_pretrain_epochs=-1), "d_pretrain_epochs"),
])
def test_bad_hyperparameters_are_named(params, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        GAN(**params).fit(mixture(64))


def test_bad_input(ring_gan):
    with pytest.raises(ValueError, match="X: expected 2 features"):
        ring_gan.discriminate(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="Z: expected 4 features"):
        ring_gan.generate(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        GAN(epochs=1).fit(np.full((8, 2), np.nan))
    with pytest.raises(NotFittedError):
        GAN().sample(3)


def test_frechet_distance_by_hand():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4000, 3))
    assert frechet_distance(A, A) == pytest.approx(0.0, abs=1e-9)
    # shifted by (1, 2, 2): the distance is ‖shift‖² = 9 (same covariance)
    assert frechet_distance(A, A + [1, 2, 2]) == pytest.approx(9.0, rel=1e-9)
    # N(0, I) against N(0, 4I) in 3-D: tr(I + 4I − 2·2I) = 3
    B = rng.standard_normal((200000, 3)) * 2
    C = rng.standard_normal((200000, 3))
    assert frechet_distance(C, B) == pytest.approx(3.0, rel=0.02)
    with pytest.raises(ValueError, match="A, B: expected 2-D arrays with the same"):
        frechet_distance(A, A[:, :2])
