"""The generative network (Fig. 2): label → typical signal, on digits."""
import itertools
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from conftest import rel_err
from fusedae import Generator
from fusedae.reference import mlp


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    means = np.stack([X[y == k].mean(axis=0) for k in range(10)])
    return X, y, means


GENERATORS = {
    "default": dict(),
    "linear": dict(n_hidden=()),
    "sigmoid-output": dict(n_hidden=(32, 48), output_activation="sigmoid"),
}


@pytest.fixture(scope="module", params=list(GENERATORS))
def fitted(request, digits):
    X, y, _ = digits
    return Generator(random_state=0, **GENERATORS[request.param]).fit(X, y)


def test_each_label_generates_nearest_its_class_mean(fitted, digits):
    _, _, means = digits
    G = fitted.generate(np.arange(10))
    assert G.shape == (10, 64)
    d = ((G[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_array_equal(d.argmin(axis=1), np.arange(10))
    # and close to it, not merely nearer than the others
    spread = np.sqrt(((means[:, None] - means[None]) ** 2).sum(-1))
    assert np.sqrt(np.diag(d)).max() < 0.25 * spread[spread > 0].min()


def test_soft_label_generates_between_the_classes(fitted, digits):
    # For every pair of classes (a, b), the label ½a + ½b generates a signal
    # whose projection on the segment mean_a → mean_b lies in its middle
    # part and which stays close to that segment; sweeping the weight from a
    # to b moves the projection monotonically.
    _, _, means = digits
    for a, b in itertools.combinations(range(10), 2):
        d = means[b] - means[a]
        weights = np.linspace(0, 1, 5)
        P = np.zeros((5, 10))
        P[:, a], P[:, b] = 1 - weights, weights
        G = fitted.generate(P).astype(np.float64)
        t = (G - means[a]) @ d / (d @ d)
        off = np.linalg.norm(G - (means[a] + t[:, None] * d), axis=1) / np.linalg.norm(d)
        assert 0.2 <= t[2] <= 0.8, (a, b, t)
        assert off[2] <= 0.3, (a, b, off)
        assert np.all(np.diff(t) > 0), (a, b, t)


def test_linear_generator_is_exactly_the_class_means(digits):
    # Least squares with one-hot inputs and no hidden layer: W_k + b is the
    # class mean, reached here by L-BFGS in float64.
    X, y, means = digits
    g = Generator((), optimizer="lbfgs", epochs=500, dtype="float64", random_state=0).fit(X, y)
    np.testing.assert_allclose(g.generate(np.arange(10)), means, atol=1e-5)
    soft = np.full((1, 10), 0.1)
    np.testing.assert_allclose(g.generate(soft)[0], means.mean(axis=0), atol=1e-5)


def test_loss_and_gradient_matches_reference(digits):
    X, y, _ = digits
    g = Generator(16, activation="tanh", weight_decay=1e-3, dtype="float64", epochs=2,
                  random_state=0).fit(X, y)
    loss, gW, gb = g.loss_and_gradient(X, y)
    spec = mlp.MLPSpec(sizes=(10, 16, 64), activations=("tanh", "identity"),
                       weight_decay=1e-3)
    ref_loss, rW, rb = mlp.loss_and_gradient(g.coefs_, g.intercepts_, np.eye(10)[y], X, spec)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for a, r in zip(gW + gb, rW + rb):
        assert rel_err(a, r) <= 1e-10
    assert g.score(X, y) == pytest.approx(-(loss - 0.5e-3 * sum(np.sum(w * w) for w in g.coefs_)),
                                          rel=1e-10)


def test_probability_rows_as_training_labels(digits):
    X, y, means = digits
    P = np.eye(10)[y]
    g = Generator(random_state=0, epochs=20).fit(X, P)
    np.testing.assert_array_equal(g.classes_, np.arange(10))
    ref = Generator(random_state=0, epochs=20).fit(X, y)
    np.testing.assert_array_equal(g.coefs_[0], ref.coefs_[0])


def test_string_labels_and_pickle(digits):
    X, y, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    g = Generator(16, epochs=5, random_state=0).fit(X, names[y])
    G = g.generate(["seven", "one"])
    assert G.shape == (2, 64) and g.n_features_in_ == 64
    restored = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(restored.generate(["seven", "one"]), G)
    assert restored.n_features_in_ == 64


@pytest.mark.parametrize("labels,match", [
    ([10], "y: label 10 is not one of the classes"),
    ([-1], "y: label -1 is not one of the classes"),
    ([[0.5, 0.6] + [0.0] * 8], "y: each row must be a probability vector summing to 1"),
    ([[1.5, -0.5] + [0.0] * 8], "y: probabilities must be >= 0"),
    ([[0.5, 0.5]], "y: expected probability rows over the 10 classes"),
    ([[np.nan] + [0.0] * 9], "y: probabilities contain NaN"),
    ([2.5], "y: expected class labels"),
    ([], "y: expected at least one label"),
])
def test_bad_labels_are_named(fitted, labels, match):
    with pytest.raises(ValueError, match=match):
        fitted.generate(labels)


def test_bad_fit_input(digits):
    X, y, _ = digits
    with pytest.raises(ValueError, match="y: expected 1797 labels"):
        Generator(epochs=1).fit(X, y[:-1])
    with pytest.raises(ValueError, match="^n_hidden:"):
        Generator(n_hidden=(0,)).fit(X, y)
    with pytest.raises(ValueError, match="^output_activation:"):
        Generator(output_activation="softmax").fit(X, y)
    with pytest.raises(NotFittedError):
        Generator().generate([0])
