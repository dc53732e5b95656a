"""The variational autoencoders (§4) on digits: ELBO, samples, interpolation,
the conditional model's classes and morphs, conventions, bad input."""
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split

from fusedae import Classifier, ConditionalVAE, VAE


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, stratify=y, random_state=0)


KW = dict(learning_rate=3e-3, epochs=100, random_state=0)


@pytest.fixture(scope="module")
def vae(digits):
    X_train = digits[0]
    return VAE(8, (64,), **KW).fit(X_train)


@pytest.fixture(scope="module")
def classifier(digits):
    X_train, _, y_train, _ = digits
    return Classifier(64, epochs=100, random_state=0).fit(X_train, y_train)


@pytest.fixture(scope="module")
def cvae(digits):
    X_train, _, y_train, _ = digits
    return ConditionalVAE(8, (64,), **KW).fit(X_train, y_train)


def test_held_out_negative_elbo_falls_by_a_third(digits, vae):
    X_train, X_test = digits[:2]
    start = VAE(8, (64,), epochs=0, random_state=0).fit(X_train)
    before, after = start.negative_elbo(X_test), vae.negative_elbo(X_test)
    assert after <= 0.7 * before, (before, after)
    assert vae.score(X_test) == -after
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]
    np.testing.assert_allclose(np.array(vae.loss_curve_),
                               np.array(vae.recon_curve_) + np.array(vae.kl_curve_), rtol=1e-9)


def test_samples_have_the_datas_shape_and_range(vae):
    S = vae.sample(50)
    assert S.shape == (50, 64) and S.dtype == np.float32
    assert S.min() >= 0 and S.max() <= 1
    assert S.std(axis=0).mean() > 0.02  # not one image repeated


def test_interpolation_is_smooth(digits, vae):
    # 16 decoded points between two codes: consecutive outputs change by a
    # bounded, roughly even amount (no step above twice the mean step, the
    # path at most 1.5× the straight distance).
    X_test = digits[1]
    for a, b in [(0, 1), (2, 3), (4, 5), (6, 7)]:
        path = vae.interpolate(X_test[a], X_test[b], 16).astype(np.float64)
        steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
        assert steps.max() <= 2.0 * steps.mean(), (a, b, steps)
        assert steps.sum() <= 1.5 * np.linalg.norm(path[-1] - path[0]), (a, b)
        mu = vae.transform(X_test[[a, b]])
        np.testing.assert_allclose(path[[0, -1]], vae.generate(mu), rtol=1e-5, atol=1e-6)


def test_same_seed_same_samples(digits):
    X_train = digits[0]
    a = VAE(4, (16,), epochs=3, random_state=5).fit(X_train)
    b = VAE(4, (16,), epochs=3, random_state=5).fit(X_train)
    c = VAE(4, (16,), epochs=3, random_state=6).fit(X_train)
    np.testing.assert_array_equal(a.sample(7), b.sample(7))
    np.testing.assert_array_equal(a.sample(7, random_state=1), b.sample(7, random_state=1))
    assert not np.array_equal(a.sample(7, random_state=1), c.sample(7, random_state=1))
    assert a.loss_curve_ == b.loss_curve_


def test_conditional_samples_are_their_class(cvae, classifier):
    for k in range(10):
        assert (classifier.predict(cvae.sample(50, y=k)) == k).mean() >= 0.8, k


def test_soft_label_morphs_one_class_into_the_other(cvae, classifier):
    # The same code decoded under labels moving from class a to class b: the
    # classifier's belief moves from a to b, ending in b.
    w = np.linspace(0, 1, 9)
    for a, b in [(1, 7), (3, 8), (0, 6)]:
        P = np.zeros((9, 10))
        P[:, a], P[:, b] = 1 - w, w
        proba = classifier.predict_proba(cvae.generate(np.zeros((9, 8)), P))
        assert proba[0, a] > 0.9 and proba[-1, b] > 0.9, (a, b)
        assert np.all(np.diff(proba[:, b]) > -0.05), (a, b, proba[:, b])


def test_conditional_elbo_and_interpolation(digits, cvae):
    X_train, X_test, y_train, y_test = digits
    assert cvae.negative_elbo(X_test, y_test) < VAE(8, (64,), **KW).fit(X_train).negative_elbo(
        X_test)
    path = cvae.interpolate(X_test[0], X_test[1], 5, y_a=y_test[0], y_b=y_test[1])
    assert path.shape == (5, 64)
    with pytest.raises(ValueError, match="y: a conditional VAE needs the labels"):
        cvae.negative_elbo(X_test)
    with pytest.raises(ValueError, match="y: label 11 is not one of the classes"):
        cvae.sample(2, y=11)


def test_pickle_resumes_bit_for_bit(digits):
    X_train = digits[0]
    kw = dict(epochs=2, random_state=3)
    straight = VAE(4, (16,), **kw).fit(X_train)
    straight.partial_fit(X_train)
    resumed = pickle.loads(pickle.dumps(VAE(4, (16,), **kw).fit(X_train)))
    resumed.partial_fit(X_train)
    for (wa, ba), (wb, bb) in [(straight.encoder_coefs_, resumed.encoder_coefs_),
                               (straight.decoder_coefs_, resumed.decoder_coefs_)]:
        for p, q in zip(wa + ba, wb + bb):
            np.testing.assert_array_equal(p, q)
    assert straight.loss_curve_ == resumed.loss_curve_


@pytest.mark.parametrize("params,name", [
    (dict(n_latent=0), "n_latent"),
    (dict(n_hidden=(8, 0)), "n_hidden"),
    (dict(loss="hinge"), "loss"),
    (dict(output_activation="identity"), "loss"),
    (dict(optimizer="lbfgs"), "optimizer"),
    (dict(epochs=-1), "epochs"),
    (dict(learning_rate=0.0), "learning_rate"),
])
def test_bad_hyperparameters_are_named(digits, params, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        VAE(**params).fit(digits[0])


def test_bad_data(digits, vae):
    X_train, X_test = digits[:2]
    with pytest.raises(ValueError, match=r"X: .*\[0, 1\]"):
        VAE(epochs=1).fit(X_train * 2)
    with pytest.raises(ValueError, match="X: expected 64 features"):
        vae.transform(X_test[:, :10])
    with pytest.raises(ValueError, match="Z: expected 8 features"):
        vae.generate(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="eps: expected 5 rows"):
        vae.loss_and_gradient(X_test[:5], np.zeros((4, 8)))
    with pytest.raises(ValueError, match="steps"):
        vae.interpolate(X_test[0], X_test[1], 1)
    with pytest.raises(NotFittedError):
        VAE().sample(2)
