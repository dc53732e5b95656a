"""The estimators: the chapter's claims on real data, scikit-learn conventions."""
import pickle

import numpy as np
import pytest
from scipy.linalg import subspace_angles
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split

import fusedae
from conftest import rel_err
from fusedae import Autoencoder, DenoisingAutoencoder, SparseAutoencoder
from fusedae.reference import mlp


@pytest.fixture(scope="module")
def digits():
    X = load_digits().data / 16.0          # 1797 × 64, in [0, 1]
    return train_test_split(X, test_size=0.25, random_state=0)


# ---------------------------------------------------------------- the chapter
@pytest.mark.parametrize("optimizer,dtype,kw", [
    ("lbfgs", "float64", dict(epochs=500)),
    ("adam", "float32", dict(epochs=300, learning_rate=3e-3, batch_size=32)),
])
def test_linear_autoencoder_spans_the_pca_subspace(digits, optimizer, dtype, kw):
    # §2: trained with least squares, the autoencoder finds the principal subspace.
    X, _ = digits
    n = 8
    ae = Autoencoder(n, activation="identity", output_activation="identity",
                     optimizer=optimizer, dtype=dtype, random_state=0, **kw).fit(X)
    pca = PCA(n).fit(X)
    pca_err = 0.5 * np.sum((pca.inverse_transform(pca.transform(X)) - X) ** 2) / len(X)
    decoder_rows = ae.coefs_[1].astype(np.float64)          # N × D: the decoder's basis
    cosines = np.cos(subspace_angles(decoder_rows.T, pca.components_.T))
    assert cosines.min() >= 0.99
    assert ae.reconstruction_error(X) <= 1.01 * pca_err


def test_sparsity_reaches_its_target(digits):
    X, _ = digits
    rho = 0.05
    ae = SparseAutoencoder(25, sparsity_target=rho, sparsity_weight=3.0, epochs=100,
                           learning_rate=3e-3, random_state=0).fit(X)
    assert ae.mean_activation_.shape == (25,)
    assert np.mean(np.abs(ae.mean_activation_ - rho)) <= 0.02
    # Without the term the same network's code is far from sparse.
    dense = Autoencoder(25, epochs=100, learning_rate=3e-3, random_state=0).fit(X)
    assert np.mean(np.abs(dense.mean_activation_ - rho)) > 0.1


def test_denoising_autoencoder_cleans_held_out_digits(digits):
    X, X_test = digits
    sigma = 0.3
    dae = DenoisingAutoencoder(64, noise="gaussian", noise_level=sigma, epochs=100,
                               learning_rate=3e-3, random_state=0).fit(X)
    noisy = X_test + sigma * np.random.default_rng(1).standard_normal(X_test.shape)
    ratio = np.sum((dae.predict(noisy) - X_test) ** 2) / np.sum((noisy - X_test) ** 2)
    assert ratio <= 0.5


@pytest.mark.parametrize("noise,level", [("masking", 0.3), ("salt_pepper", 0.2)])
def test_other_corruptions_train_and_denoise(digits, noise, level):
    X, X_test = digits
    dae = DenoisingAutoencoder(64, noise=noise, noise_level=level, epochs=60,
                               learning_rate=3e-3, random_state=0).fit(X)
    rng = np.random.default_rng(2)
    drop = rng.uniform(size=X_test.shape) < level
    corrupted = np.where(drop, 0.0 if noise == "masking" else rng.integers(0, 2, X_test.shape),
                         X_test)
    assert np.sum((dae.predict(corrupted) - X_test) ** 2) < np.sum((corrupted - X_test) ** 2)


def test_ufldl_protocol_lbfgs_on_784_inputs(digits):
    # The UFLDL exercise: 784-196-784, ρ = 0.1, β = 3, λ = 3e-3, full-batch
    # L-BFGS-B driven by the fused loss_and_gradient. Inputs: digits upsampled
    # to 28 × 28 (bilinear), scaled to [0.1, 0.9] as in the exercise.
    from scipy.ndimage import zoom

    X, _ = digits
    X784 = zoom(X[:600].reshape(-1, 8, 8), (1, 3.5, 3.5), order=1).reshape(-1, 784)
    X784 = 0.1 + 0.8 * np.clip(X784, 0, 1)
    ae = SparseAutoencoder(196, sparsity_target=0.1, sparsity_weight=3.0, weight_decay=3e-3,
                           optimizer="lbfgs", epochs=60, dtype="float64", random_state=0)
    start = Autoencoder(196, sparsity_target=0.1, sparsity_weight=3.0, weight_decay=3e-3,
                        optimizer="lbfgs", epochs=1, dtype="float64", random_state=0)
    start.fit(X784)
    ae.fit(X784)
    assert ae.lbfgs_result_.nit >= 30
    assert ae.loss_curve_[-1] < 0.5 * start.loss_curve_[0]
    assert np.all(np.diff(ae.loss_curve_) <= 1e-12)           # L-BFGS-B never goes uphill
    assert np.mean(np.abs(ae.mean_activation_ - 0.1)) < np.mean(np.abs(start.mean_activation_ - 0.1))


# --------------------------------------------------------------- conventions
def test_fit_returns_self_and_shapes(digits):
    X, X_test = digits
    ae = Autoencoder((32, 12), epochs=3, random_state=0)
    assert ae.fit(X) is ae
    assert [w.shape for w in ae.coefs_] == [(64, 32), (32, 12), (12, 32), (32, 64)]
    assert [b.shape for b in ae.intercepts_] == [(32,), (12,), (32,), (64,)]
    code = ae.transform(X_test)
    assert code.shape == (len(X_test), 12) and code.dtype == np.float32
    assert ae.inverse_transform(code).shape == X_test.shape
    np.testing.assert_allclose(ae.inverse_transform(code), ae.predict(X_test), rtol=1e-6)
    assert len(ae.loss_curve_) == ae.n_iter_ == 3
    assert ae.n_features_in_ == 64
    assert ae.score(X_test) == pytest.approx(-ae.reconstruction_error(X_test))


def test_same_seed_same_model_different_seed_different(digits):
    X, _ = digits
    kw = dict(noise="gaussian", noise_level=0.2, sparsity_target=0.1, sparsity_weight=1.0,
              epochs=4)
    a = Autoencoder(16, random_state=7, **kw).fit(X)
    b = Autoencoder(16, random_state=7, **kw).fit(X)
    c = Autoencoder(16, random_state=8, **kw).fit(X)
    for wa, wb, wc in zip(a.coefs_, b.coefs_, c.coefs_):
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)
    assert a.loss_curve_ == b.loss_curve_


def test_partial_fit_is_one_epoch_of_fit(digits):
    X, _ = digits
    full = Autoencoder(16, epochs=3, random_state=3).fit(X)
    inc = Autoencoder(16, epochs=3, random_state=3)
    for _ in range(3):
        inc.partial_fit(X)
    for wf, wi in zip(full.coefs_, inc.coefs_):
        np.testing.assert_array_equal(wf, wi)
    with pytest.raises(ValueError, match="X: expected 64 features"):
        inc.partial_fit(X[:, :10])


def test_loss_and_gradient_matches_reference(digits):
    X, _ = digits
    ae = Autoencoder(10, sparsity_target=0.1, sparsity_weight=2.0, weight_decay=1e-3,
                     loss="binary_cross_entropy", dtype="float64", epochs=2,
                     random_state=0).fit(X)
    loss, gW, gb = ae.loss_and_gradient(X)
    spec = mlp.MLPSpec(sizes=(64, 10, 64), activations=("sigmoid", "sigmoid"),
                       loss="binary_cross_entropy", weight_decay=1e-3, sparsity_layer=1,
                       sparsity_target=0.1, sparsity_weight=2.0)
    ref_loss, rW, rb = mlp.loss_and_gradient(ae.coefs_, ae.intercepts_, X, X, spec)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for a, r in zip(gW + gb, rW + rb):
        assert rel_err(a, r) <= 1e-10


def test_pickle_resumes_bit_for_bit(digits):
    X, _ = digits
    kw = dict(noise="masking", noise_level=0.2, epochs=2, random_state=5)
    straight = Autoencoder(16, **kw).fit(X)
    straight.partial_fit(X)
    resumed = pickle.loads(pickle.dumps(Autoencoder(16, **kw).fit(X)))
    resumed.partial_fit(X)
    for ws, wr in zip(straight.coefs_, resumed.coefs_):
        np.testing.assert_array_equal(ws, wr)
    assert straight.loss_curve_ == resumed.loss_curve_


def test_clone_and_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    ae = Autoencoder(16, epochs=2, random_state=0)
    twin = clone(ae)
    assert twin.get_params() == ae.get_params()
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    pipe = make_pipeline(Autoencoder(24, epochs=20, random_state=0, learning_rate=3e-3),
                         LogisticRegression(max_iter=500)).fit(X, y)
    assert pipe.score(X, y) > 0.8


def test_presets_are_the_autoencoder_with_defaults():
    s, d = SparseAutoencoder(), DenoisingAutoencoder()
    assert (s.sparsity_target, s.sparsity_weight) == (0.05, 3.0)
    assert (d.noise, d.noise_level) == ("gaussian", 0.3)
    assert isinstance(s, Autoencoder) and isinstance(d, Autoencoder)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("params,name", [
    (dict(sparsity_target=0.0, sparsity_weight=1.0), "sparsity_target"),
    (dict(sparsity_target=1.0, sparsity_weight=1.0), "sparsity_target"),
    (dict(sparsity_target=1.5, sparsity_weight=1.0), "sparsity_target"),
    (dict(sparsity_weight=1.0), "sparsity_target"),
    (dict(sparsity_target=0.1, sparsity_weight=-1.0), "sparsity_weight"),
    (dict(sparsity_target=0.1, sparsity_weight=1.0, activation="relu"), "activation"),
    (dict(learning_rate=-0.1), "learning_rate"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(learning_rate=float("nan")), "learning_rate"),
    (dict(weight_decay=-1e-3), "weight_decay"),
    (dict(momentum=1.0), "momentum"),
    (dict(batch_size=0), "batch_size"),
    (dict(epochs=2.5), "epochs"),
    (dict(n_hidden=0), "n_hidden"),
    (dict(n_hidden=(8, -1)), "n_hidden"),
    (dict(activation="softplus"), "activation"),
    (dict(output_activation="relu", loss="binary_cross_entropy"), "loss"),
    (dict(loss="hinge"), "loss"),
    (dict(noise="speckle", noise_level=0.1), "noise"),
    (dict(noise="masking", noise_level=1.5), "noise_level"),
    (dict(noise="gaussian", noise_level=-0.1), "noise_level"),
    (dict(noise="gaussian", noise_level=0.1, optimizer="lbfgs"), "noise"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(dtype="float16"), "dtype"),
    (dict(device="cuda"), "device"),
    (dict(device="tpu"), "device"),
    (dict(n_threads=0), "n_threads"),
    (dict(random_state=-3), "random_state"),
])
def test_bad_hyperparameters_are_named(digits, params, name):
    X, _ = digits
    params = {"n_hidden": 8, **params}
    with pytest.raises(ValueError, match=rf"^{name}:"):
        Autoencoder(**params).fit(X)


@pytest.mark.parametrize("bad,exc,match", [
    (lambda X: X[0], ValueError, "2D array"),
    (lambda X: X[:, :, None], ValueError, "dim"),
    (lambda X: np.where(X == X.max(), np.nan, X), ValueError, "NaN"),
    (lambda X: np.where(X == X.max(), np.inf, X), ValueError, "infinity"),
    (lambda X: X.astype(str), (TypeError, ValueError), "X"),
    (lambda X: X + 1j, ValueError, "complex"),
    (lambda X: X[:0], ValueError, "sample"),
    (lambda X: None, ValueError, "X"),
])
def test_bad_data_is_refused_and_model_unchanged(digits, bad, exc, match):
    X, _ = digits
    ae = Autoencoder(8, epochs=1, random_state=0).fit(X)
    before = [w.copy() for w in ae.coefs_]
    with pytest.raises(exc, match=match):
        ae.fit(bad(X))
    with pytest.raises(exc, match=match):
        ae.transform(bad(X))
    for w, b in zip(ae.coefs_, before):
        np.testing.assert_array_equal(w, b)


def test_wrong_width_and_bce_range(digits):
    X, _ = digits
    ae = Autoencoder(8, epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X: expected 64 features"):
        ae.predict(X[:, :63])
    with pytest.raises(ValueError, match="X: expected 8 features"):
        ae.inverse_transform(X)
    with pytest.raises(ValueError, match=r"X: .*\[0, 1\]"):
        Autoencoder(8, loss="binary_cross_entropy").fit(X * 2)


def test_non_contiguous_and_read_only_inputs_are_accepted(digits):
    X, _ = digits
    Xf = np.asfortranarray(X)
    Xr = X.copy()
    Xr.setflags(write=False)
    strided = np.repeat(X, 2, axis=1)[:, ::2]
    models = [Autoencoder(8, epochs=2, random_state=0).fit(Z) for Z in (X, Xf, Xr, strided)]
    for m in models[1:]:
        np.testing.assert_array_equal(m.coefs_[0], models[0].coefs_[0])


def test_use_before_fit_is_refused():
    X = np.random.default_rng(0).uniform(size=(5, 4))
    for method in ("transform", "predict", "inverse_transform", "score", "loss_and_gradient"):
        with pytest.raises(NotFittedError):
            getattr(Autoencoder(3), method)(X)
    with pytest.raises(NotFittedError):
        Autoencoder(3).coefs_


def test_divergence_raises_and_keeps_last_finite_parameters(digits):
    X, _ = digits
    ae = Autoencoder(8, activation="identity", output_activation="identity", optimizer="sgd",
                     learning_rate=1e6, epochs=50, random_state=0)
    with pytest.raises(fusedae.TrainingDivergedError) as info:
        ae.fit(X)
    assert info.value.epoch >= 0
    assert all(np.isfinite(w).all() for w in ae.coefs_ + ae.intercepts_)


def test_engine_refuses_what_it_was_not_built_for():
    from fusedae._native import engine

    net = engine.Network([4, 3, 4], ["sigmoid", "sigmoid"], dtype="float32")
    net.init_params(0)
    net.set_optimizer("sgd", 0.1)
    good = np.zeros((5, 4), np.float32)
    before = net.params.copy()
    cases = [
        (good.astype(np.float64), TypeError, "X: expected dtype float32"),
        (good.astype(">f4"), TypeError, "X: expected dtype float32, got >f4"),
        (good.tolist(), TypeError, "X: expected a numpy.ndarray"),
        (np.zeros((5, 5), np.float32), ValueError, "X: expected 4 columns"),
        (np.zeros((5,), np.float32), ValueError, "X: expected a 2-D array"),
        (np.zeros((0, 4), np.float32), ValueError, "X: expected at least one row"),
        (np.asfortranarray(np.zeros((5, 4), np.float32)), ValueError, "C-contiguous"),
        (np.zeros((5, 8), np.float32)[:, ::2], ValueError, "C-contiguous"),
        (np.full((5, 4), np.nan, np.float32), ValueError, "X: contains NaN"),
    ]
    for x, exc, match in cases:
        for call in (lambda: net.train_step(x, good), lambda: net.fit_epoch(x),
                     lambda: net.forward(x, 0, 2), lambda: net.loss_and_gradient(x, good)):
            with pytest.raises(exc, match=match):
                call()
    # An equal dtype that is another object (metadata, a memory map, unpickling)
    # is the same dtype.
    tagged = good.astype(np.dtype(np.float32, metadata={"unit": "px"}))
    assert tagged.dtype is not good.dtype
    net.loss_and_gradient(tagged, tagged)
    assert net.forward(tagged, 0, 2).shape == (5, 4)
    # A one-column target made by slicing (stride 0 along its length-1 axis).
    col = engine.Network([4, 1], ["sigmoid"], "binary_cross_entropy")
    col.init_params(0)
    target = np.ones(5, np.float32)[:, None]
    assert target.strides[1] == 0 or target.flags.c_contiguous
    assert np.isfinite(col.loss_and_gradient(good, target))
    with pytest.raises(ValueError, match="Y: expected as many rows"):
        net.train_step(good, good[:3])
    with pytest.raises(ValueError, match="batch_size"):
        net.fit_epoch(good, None, 0)
    with pytest.raises(ValueError, match="noise_level"):
        net.fit_epoch(good, None, 2, True, "masking", 2.0)
    with pytest.raises(ValueError, match="layers"):
        net.forward(good, 1, 1)
    with pytest.raises(ValueError, match="sparsity_target"):
        engine.Network([4, 3, 4], ["sigmoid", "sigmoid"], sparsity_layer=1, sparsity_target=1.0)
    with pytest.raises(ValueError, match="sparsity_layer"):
        engine.Network([4, 3, 4], ["sigmoid", "sigmoid"], sparsity_layer=2)
    with pytest.raises(ValueError, match="learning_rate"):
        net.set_optimizer("adam", -1.0)
    with pytest.raises(ValueError, match="isa"):
        engine.Network([4, 3, 4], ["sigmoid", "sigmoid"], isa="neon")
    with pytest.raises(ValueError, match="sizes"):
        engine.Network([4, 0, 4], ["sigmoid", "sigmoid"])
    with pytest.raises(ValueError, match="binary_cross_entropy"):
        engine.Network([4, 3, 4], ["sigmoid", "relu"], "binary_cross_entropy")
    np.testing.assert_array_equal(net.params, before)
    assert not net.grads.flags.writeable
