"""The discriminative network (Fig. 1): accuracy on digits, the reference's
loss and gradient, scikit-learn conventions, bad labels."""
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.metrics import log_loss
from sklearn.model_selection import cross_val_score, train_test_split

from conftest import rel_err
from fusedae import Classifier, info
from fusedae.reference import mlp


@pytest.fixture(scope="module")
def split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.3, stratify=y, random_state=0)


@pytest.mark.parametrize("kw", [
    dict(),                                                    # the defaults
    dict(activation="sigmoid", learning_rate=3e-3),            # the chapter's units
    dict(optimizer="lbfgs", epochs=200, weight_decay=1e-3, dtype="float64"),
])
def test_digits_test_accuracy(split, kw):
    X_train, X_test, y_train, y_test = split
    clf = Classifier(random_state=0, **kw).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_probabilities_and_labels(split):
    X_train, X_test, y_train, y_test = split
    labels = np.array(list("abcdefghij"))[y_train]  # any sortable labels
    clf = Classifier(32, epochs=10, random_state=0).fit(X_train, labels)
    np.testing.assert_array_equal(clf.classes_, list("abcdefghij"))
    P = clf.predict_proba(X_test)
    assert P.shape == (len(X_test), 10) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-5)
    assert np.all(P >= 0)
    np.testing.assert_array_equal(clf.predict(X_test), clf.classes_[P.argmax(axis=1)])
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X_test)), P, rtol=1e-6)


def test_training_loss_is_the_log_loss(split):
    # The engine's categorical cross entropy (nats, mean over rows) is
    # scikit-learn's log_loss of predict_proba, at the same parameters.
    X_train, _, y_train, _ = split
    clf = Classifier(16, epochs=5, dtype="float64", random_state=0).fit(X_train, y_train)
    loss, _, _ = clf.loss_and_gradient(X_train, y_train)
    P = clf.predict_proba(X_train)
    assert loss == pytest.approx(log_loss(y_train, P, labels=clf.classes_), rel=1e-12)
    assert loss == pytest.approx(info.categorical_cross_entropy(y_train, probs=P), rel=1e-12)


def test_loss_and_gradient_matches_reference(split):
    X_train, _, y_train, _ = split
    clf = Classifier((20, 12), activation="tanh", weight_decay=1e-3, dtype="float64",
                     epochs=2, random_state=0).fit(X_train, y_train)
    loss, gW, gb = clf.loss_and_gradient(X_train, y_train)
    spec = mlp.MLPSpec(sizes=(64, 20, 12, 10), activations=("tanh", "tanh", "softmax"),
                       loss="categorical_cross_entropy", weight_decay=1e-3)
    Y = np.eye(10)[y_train]
    ref_loss, rW, rb = mlp.loss_and_gradient(clf.coefs_, clf.intercepts_, X_train, Y, spec)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for a, r in zip(gW + gb, rW + rb):
        assert rel_err(a, r) <= 1e-10
    P = mlp.forward(clf.coefs_, clf.intercepts_, X_train, spec)[0][-1]
    assert rel_err(clf.predict_proba(X_train), P) <= 1e-10


def test_no_hidden_layer_is_logistic_regression(split):
    X_train, X_test, y_train, y_test = split
    clf = Classifier((), epochs=60, learning_rate=1e-2, random_state=0).fit(X_train, y_train)
    assert [w.shape for w in clf.coefs_] == [(64, 10)]
    assert clf.score(X_test, y_test) >= 0.9


def test_conventions(split):
    X_train, X_test, y_train, _ = split
    clf = Classifier(16, epochs=3, random_state=1)
    assert clone(clf).get_params() == clf.get_params()
    assert clf.fit(X_train, y_train) is clf
    assert clf.n_features_in_ == 64 and clf.n_iter_ == len(clf.loss_curve_) == 3
    again = Classifier(16, epochs=3, random_state=1).fit(X_train, y_train)
    np.testing.assert_array_equal(clf.coefs_[0], again.coefs_[0])
    scores = cross_val_score(Classifier(16, epochs=30, random_state=0), X_train, y_train, cv=3)
    assert scores.min() > 0.8
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X_test), clf.predict_proba(X_test))


def test_partial_fit_is_one_epoch_of_fit(split):
    X_train, _, y_train, _ = split
    full = Classifier(16, epochs=3, random_state=3).fit(X_train, y_train)
    inc = Classifier(16, epochs=3, random_state=3)
    for _ in range(3):
        inc.partial_fit(X_train, y_train, classes=np.arange(10))
    for wf, wi in zip(full.coefs_, inc.coefs_):
        np.testing.assert_array_equal(wf, wi)
    # classes from the first call's labels, when they hold every class
    Classifier(16, random_state=3).partial_fit(X_train, y_train)
    with pytest.raises(ValueError, match="y: label 42 is not one of the classes"):
        inc.partial_fit(X_train[:2], [1, 42])


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("y,exc,match", [
    (lambda y: y[:-1], ValueError, "y: expected .* labels"),
    (lambda y: np.zeros_like(y), ValueError, "y: expected at least 2 classes"),
    (lambda y: y + 0.5, ValueError, "y: expected class labels"),
    (lambda y: np.where(y == 3, np.nan, y), ValueError, "y: labels contain NaN"),
    (lambda y: np.eye(10)[y], ValueError, "y: expected a 1-D array"),
    (lambda y: None, ValueError, "y: expected an array"),
    (lambda y: y[:0], ValueError, "y: expected at least one label"),
])
def test_bad_labels_are_named(split, y, exc, match):
    X_train, _, y_train, _ = split
    n = len(y_train)
    with pytest.raises(exc, match=match):
        Classifier(8, epochs=1).fit(X_train[:n], y(y_train))


@pytest.mark.parametrize("params,name", [
    (dict(n_hidden=(8, 0)), "n_hidden"),
    (dict(activation="softmax"), "activation"),
    (dict(learning_rate=0), "learning_rate"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(dtype="int8"), "dtype"),
    (dict(epochs=0), "epochs"),
])
def test_bad_hyperparameters_are_named(split, params, name):
    X_train, _, y_train, _ = split
    with pytest.raises(ValueError, match=rf"^{name}:"):
        Classifier(**params).fit(X_train, y_train)


def test_unfitted_and_wrong_width(split):
    X_train, X_test, y_train, y_test = split
    for method in ("predict", "predict_proba"):
        with pytest.raises(NotFittedError):
            getattr(Classifier(), method)(X_test)
    clf = Classifier(8, epochs=1, random_state=0).fit(X_train, y_train)
    with pytest.raises(ValueError, match="X: expected 64 features"):
        clf.predict(X_test[:, :60])
    with pytest.raises(ValueError, match="y: label 'a' is not one of the classes"):
        clf.loss_and_gradient(X_test, np.array(["a"] * len(X_test)))
