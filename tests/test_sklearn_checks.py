"""Every estimator against scikit-learn's estimator checks (CPU).

Small models and few epochs keep each check fast. The settings are chosen so
that the checks see what the estimators are meant to do: the classifier's
learning rate lets 5 epochs reach the training accuracy
``check_classifiers_train`` asks for, and the VAEs use tanh hidden layers and
a squared-error loss, because some checks train on N(100, 1) data (outside
the [0, 1] the default binary cross entropy needs, and large enough that
ReLU units push the log-variance past float32's exp overflow).

Expected failures are listed with the reason; see docs/sklearn.md.
"""
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import fusedae
from sklearn.utils.estimator_checks import parametrize_with_checks

_SMALL = {"epochs": 5, "random_state": 0}
_VAE = {"n_latent": 2, "n_hidden": (4,), "activation": "tanh", "loss": "squared_error",
        "output_activation": "identity", **_SMALL}

ESTIMATORS = [
    fusedae.Autoencoder(n_hidden=4, **_SMALL),
    fusedae.SparseAutoencoder(n_hidden=4, **_SMALL),
    fusedae.DenoisingAutoencoder(n_hidden=4, **_SMALL),
    fusedae.Classifier(n_hidden=8, learning_rate=1e-2, **_SMALL),
    fusedae.Generator(n_hidden=4, **_SMALL),
    fusedae.VAE(**_VAE),
    fusedae.ConditionalVAE(**_VAE),
    fusedae.GAN(n_latent=2, g_hidden=(4,), d_hidden=(4,), g_output_activation="identity",
                **_SMALL),
]


def _needs_y(what):
    return (f"{what} calls transform(X) without y; ConditionalVAE's code is the encoder "
            "q(z | x, y), which takes each row's label as input, so it needs transform(X, y) "
            "(fit_transform(X, y) passes y on)")


# ConditionalVAE is the only estimator with checks that cannot apply; every
# one of them stops at transform(X) without the labels.
_CONDITIONAL_VAE = {
    "check_estimators_dtypes": _needs_y("after fitting on each input dtype, the check"),
    "check_dtype_object": _needs_y("after fitting on an object array, the check"),
    "check_estimators_pickle": _needs_y("to compare outputs before and after pickling, the "
                                        "check"),
    "check_f_contiguous_array_estimator": _needs_y("on a Fortran-ordered X, the check"),
    "check_transformer_data_not_an_array": _needs_y("to compare with fit_transform(X, y), the "
                                                    "check"),
    "check_transformer_general": _needs_y("to compare with fit_transform(X, y), the check"),
    "check_transformer_preserve_dtypes": _needs_y("to read the output dtype, the check"),
    "check_methods_sample_order_invariance": _needs_y("on permuted rows, the check"),
    "check_methods_subset_invariance": _needs_y("on mini-batches of rows, the check"),
    "check_dict_unchanged": _needs_y("to see that it leaves the model's __dict__ alone, the "
                                     "check"),
    "check_fit_idempotent": _needs_y("to compare two fits' outputs, the check"),
    # Runs only with SCIPY_ARRAY_API=1 set (otherwise skipped, for every estimator).
    "check_array_api_input": _needs_y("to compare NumPy and array-API outputs, the check"),
}


def expected_failed_checks(estimator):
    if isinstance(estimator, fusedae.ConditionalVAE):
        return _CONDITIONAL_VAE
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------------ beyond the checks
def _blobs():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    X = rng.normal(size=(60, 5)) * 0.3 + np.eye(3, 5)[y] * 2
    return X, y


def test_pipeline_grid_search_and_clone():
    X, y = _blobs()
    pipe = Pipeline([("ae", fusedae.Autoencoder(n_hidden=3, **_SMALL)),
                     ("clf", fusedae.Classifier(n_hidden=(), learning_rate=5e-2, **_SMALL))])
    search = GridSearchCV(pipe, {"ae__n_hidden": [2, 3]}, cv=2).fit(X, y)
    assert search.best_params_["ae__n_hidden"] in (2, 3)
    assert search.predict(X).shape == (60,)
    twin = clone(search.best_estimator_).fit(X, y)  # same seed: same model
    np.testing.assert_array_equal(twin.predict_proba(X), search.best_estimator_.predict_proba(X))


def test_conditional_vae_fit_transform_passes_y():
    X, y = _blobs()
    cvae = fusedae.ConditionalVAE(**_VAE)
    codes = cvae.fit_transform(X, y)
    np.testing.assert_array_equal(codes, clone(cvae).fit(X, y).transform(X, y))


def test_messages_name_the_argument_first():
    X, y = _blobs()
    ae = fusedae.Autoencoder(n_hidden=2, **_SMALL).fit(X)
    with pytest.raises(ValueError, match=r"^X: expected 5 features \(columns\), got 1 \(X has "
                                         r"1 features, but Autoencoder is expecting 5"):
        ae.transform(X[:, :1])
    with pytest.raises(ValueError, match=r"^X: complex values are not supported \(Complex"):
        ae.fit(X + 1j)
    with pytest.raises(ValueError, match=r"^y: expected an array of class labels, got None "
                                         r"\(.*requires y to be passed"):
        fusedae.Classifier(**_SMALL).fit(X, None)
    with pytest.raises(ValueError, match=r"^y: expected at least 2 classes.*\(1 class\)"):
        fusedae.Classifier(**_SMALL).fit(X, np.zeros(len(X)))


def test_column_of_labels_warns_and_is_used_as_labels():
    X, y = _blobs()
    clf = fusedae.Classifier(n_hidden=4, **_SMALL)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        clf.fit(X, y[:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = clone(clf).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), flat.predict_proba(X))
