"""fusedae.plot: every figure renders, is written atomically as a PNG that is
not blank, shows what it says (the feature normalisation, the model's
outputs), and bad arguments are refused with the argument's name."""
import ast
import inspect
import os
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib.image as mpimg
from fusedae._noise import corrupt
from fusedae import (
    GAN,
    VAE,
    Autoencoder,
    Classifier,
    ConditionalVAE,
    DenoisingAutoencoder,
    Generator,
    SparseAutoencoder,
    plot,
)
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


@pytest.fixture(scope="module")
def models(digits):
    X, y = digits
    kw = {"learning_rate": 3e-3, "random_state": 0}
    return {
        "sparse": SparseAutoencoder(16, epochs=3, **kw).fit(X),
        "denoising": DenoisingAutoencoder(16, epochs=3, **kw).fit(X),
        "masking": DenoisingAutoencoder(16, noise="masking", noise_level=0.3, epochs=3,
                                        **kw).fit(X),
        "salt_pepper": DenoisingAutoencoder(16, noise="salt_pepper", noise_level=0.2,
                                            epochs=3, **kw).fit(X),
        "plain": Autoencoder(16, epochs=2, **kw).fit(X),
        "lbfgs": Autoencoder(16, optimizer="lbfgs", epochs=5, random_state=0).fit(X),
        "classifier": Classifier(16, epochs=2, **kw).fit(X, y),
        "early_ae": Autoencoder(16, epochs=4, early_stopping=True, **kw).fit(X),
        "early_classifier": Classifier(16, epochs=4, early_stopping=True, **kw).fit(X, y),
        "generator": Generator(8, epochs=2, **kw).fit(X, y),
        "vae": VAE(4, (16,), epochs=3, **kw).fit(X),
        "cvae": ConditionalVAE(4, (16,), epochs=3, **kw).fit(X, y),
        "gan": GAN(8, (16,), (16,), epochs=2, d_pretrain_epochs=1, g_pretrain_epochs=1,
                   random_state=0).fit(X),
    }


def _draw(kind, models, X, y, **kw):
    m = models
    return {
        "features": lambda: plot.feature_grid(m["sparse"], **kw),
        "features_classifier": lambda: plot.feature_grid(m["classifier"], **kw),
        "features_vae": lambda: plot.feature_grid(m["cvae"], **kw),
        "features_gan": lambda: plot.feature_grid(m["gan"], cols=4, **kw),
        "features_array": lambda: plot.feature_grid(m["plain"].coefs_[0], (4, 16), **kw),
        "reconstructions": lambda: plot.reconstructions(m["sparse"], X, **kw),
        "reconstructions_vae": lambda: plot.reconstructions(m["vae"], X, n=15, **kw),
        "denoising": lambda: plot.denoising(m["denoising"], X, **kw),
        "denoising_masking": lambda: plot.denoising(m["masking"], X, n=14, **kw),
        "denoising_salt_pepper": lambda: plot.denoising(m["salt_pepper"], X, **kw),
        "loss_autoencoder": lambda: plot.loss_curves(m["sparse"], **kw),
        "loss_lbfgs": lambda: plot.loss_curves(m["lbfgs"], **kw),
        "loss_classifier": lambda: plot.loss_curves(m["classifier"], **kw),
        "loss_generator": lambda: plot.loss_curves(m["generator"], **kw),
        "loss_early_stopping": lambda: plot.loss_curves(m["early_ae"], **kw),
        "loss_classifier_early_stopping": lambda: plot.loss_curves(m["early_classifier"],
                                                                   **kw),
        "loss_vae": lambda: plot.loss_curves(m["vae"], **kw),
        "loss_gan": lambda: plot.loss_curves(m["gan"], **kw),
        "samples_vae": lambda: plot.samples(m["vae"], **kw),
        "samples_cvae": lambda: plot.samples(m["cvae"], 12, y=3, cols=6, **kw),
        "samples_gan": lambda: plot.samples(m["gan"], 20, **kw),
        "interpolation": lambda: plot.interpolation(m["vae"], X[0], X[1], **kw),
        "interpolation_cvae": lambda: plot.interpolation(m["cvae"], X[0], X[1], 5,
                                                         y_a=y[0], y_b=y[1], **kw),
        "class_samples": lambda: plot.class_samples(m["cvae"], 5, **kw),
    }[kind]()


KINDS = ["features", "features_classifier", "features_vae", "features_gan", "features_array",
         "reconstructions", "reconstructions_vae", "denoising", "denoising_masking",
         "denoising_salt_pepper", "loss_autoencoder", "loss_lbfgs", "loss_classifier",
         "loss_generator", "loss_early_stopping", "loss_classifier_early_stopping", "loss_vae", "loss_gan", "samples_vae", "samples_cvae",
         "samples_gan", "interpolation", "interpolation_cvae", "class_samples"]


def assert_not_blank(path):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50, img.shape
    gray = img[..., :3].mean(axis=-1)
    # A blank page has std 0 and a page holding only a title about 0.02.
    assert gray.std() > 0.08, gray.std()
    assert len(np.unique(gray)) >= 20


def canvas_of(fig):
    """The mosaic a figure shows (one image on its first axes), NaN between tiles."""
    im = fig.axes[0].images[0]
    return np.ma.filled(im.get_array().astype(np.float64), np.nan), im


def tile(canvas, r, c, h=8, w=8, pad=1, y0=0, x0=0):
    y, x = pad + y0 + r * (h + pad), pad + x0 + c * (w + pad)
    return canvas[y:y + h, x:x + w]


# ------------------------------------------------------------- every figure
@pytest.mark.parametrize("kind", KINDS)
def test_writes_a_png_that_is_not_blank(kind, models, digits, tmp_path):
    path = tmp_path / f"{kind}.png"
    fig = _draw(kind, models, *digits, path=path)
    assert isinstance(fig, Figure)
    assert isinstance(fig.canvas, FigureCanvasAgg)
    assert path.is_file() and path.stat().st_size > 1000
    assert_not_blank(path)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left


def test_path_none_writes_nothing(models, digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for kind in KINDS:
        assert isinstance(_draw(kind, models, *digits), Figure)
    assert os.listdir(tmp_path) == []
    fig = plot.class_samples(models["cvae"], 2)
    fig.canvas.draw()  # the returned figure renders on its own canvas
    assert fig.canvas.buffer_rgba().shape[2] == 4


def test_path_accepts_str_and_overwrites(models, tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    plot.loss_curves(models["vae"], path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matplotlib_is_imported_only_inside_the_functions():
    def imported(nodes):
        names = []
        for n in nodes:
            if isinstance(n, ast.Import):
                names += [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                names += [f"{n.module}.{a.name}" for a in n.names]
        return names

    tree = ast.parse(inspect.getsource(plot))
    top, everywhere = imported(tree.body), imported(ast.walk(tree))
    assert top and not any("matplotlib" in name for name in top), top
    assert any(name.startswith("matplotlib") for name in everywhere)
    assert not any("pyplot" in name for name in everywhere), everywhere


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "fusedae\[plot\]"'):
        plot._figure()


# ------------------------------------------------------- what they show
def test_feature_grid_normalises_each_filter_like_ufldl():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(64, 5)) * np.array([1.0, 10.0, 0.1, 3.0, 1.0]) + 2.0
    W[:, 4] = 0.0  # a dead unit: drawn as zeros, not NaN
    fig = plot.feature_grid(W, cols=3)
    canvas, im = canvas_of(fig)
    assert im.get_cmap().name.startswith("gray") and im.get_clim() == (-1.0, 1.0)
    for n in range(5):
        t = tile(canvas, *divmod(n, 3))
        f = W[:, n] - W[:, n].mean()
        f = f / max(np.abs(f).max(), np.finfo(float).tiny)
        np.testing.assert_allclose(t, f.reshape(8, 8), atol=1e-12)
    assert np.isnan(tile(canvas, 1, 2)).all()  # the empty sixth cell
    assert "5 hidden units" in " ".join(t.get_text() for t in fig.axes[0].texts)


def test_feature_grid_of_a_model_is_its_first_layer(models):
    ae = models["sparse"]
    a = canvas_of(plot.feature_grid(ae))[0]
    b = canvas_of(plot.feature_grid(np.array(ae.coefs_[0])))[0]
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1 + 4 * 9, 1 + 4 * 9)  # 16 units on ceil(sqrt(16)) = 4 columns


def test_reconstructions_show_inputs_above_predict(models, digits):
    X = digits[0][:6]
    ae = models["sparse"]
    canvas, im = canvas_of(plot.reconstructions(ae, X, n=6))
    assert im.get_clim() == (0.0, 1.0)
    Xh = np.clip(ae.predict(X), 0, 1)
    for c in range(6):
        np.testing.assert_allclose(tile(canvas, 0, c), X[c].reshape(8, 8))
        np.testing.assert_allclose(tile(canvas, 1, c), Xh[c].reshape(8, 8), rtol=1e-6)


def test_reconstructions_take_at_most_the_rows_given(models, digits):
    canvas, _ = canvas_of(plot.reconstructions(models["sparse"], digits[0][:3], n=10))
    assert canvas.shape[1] == 1 + 3 * 9


def test_denoising_rows_are_noisy_clean_denoised(models, digits):
    X = digits[0][:5]
    model = models["masking"]
    canvas, _ = canvas_of(plot.denoising(model, X, n=5, random_state=7))
    rng = np.random.default_rng(7)
    noisy = np.where(rng.random(X.shape) < 0.3, 0.0, X)
    out = np.clip(model.predict(noisy), 0, 1)
    for c in range(5):
        np.testing.assert_allclose(tile(canvas, 0, c), noisy[c].reshape(8, 8))
        # a 3-pixel gap under the noisy row leaves room for its errors
        np.testing.assert_allclose(tile(canvas, 1, c, y0=3), X[c].reshape(8, 8))
        np.testing.assert_allclose(tile(canvas, 2, c, y0=3), out[c].reshape(8, 8),
                                   rtol=1e-6)


def test_denoising_noise_is_clipped_for_display_only(models, digits):
    X = digits[0][:4]
    model = models["denoising"]
    canvas, _ = canvas_of(plot.denoising(model, X, n=4, noise_level=0.5, random_state=3))
    noisy = X + 0.5 * np.random.default_rng(3).standard_normal(X.shape)
    assert noisy.min() < 0 and noisy.max() > 1
    np.testing.assert_allclose(tile(canvas, 0, 0), np.clip(noisy[0], 0, 1).reshape(8, 8))
    out = np.clip(model.predict(noisy), 0, 1)  # the model saw the unclipped rows
    np.testing.assert_allclose(tile(canvas, 2, 0, y0=3), out[0].reshape(8, 8), rtol=1e-6)


@pytest.mark.parametrize("kind,level", [("gaussian", 0.3), ("masking", 0.4),
                                        ("salt_pepper", 0.4)])
def test_corruption_matches_the_engines_kinds(kind, level):
    X = np.full((200, 50), 0.5)
    N = corrupt(X, kind, level, np.random.default_rng(0))
    if kind == "gaussian":
        assert abs((N - X).std() - level) < 0.01 and abs((N - X).mean()) < 0.01
    elif kind == "masking":
        assert set(np.unique(N)) == {0.0, 0.5} and abs((N == 0).mean() - level) < 0.01
    else:
        assert set(np.unique(N)) == {0.0, 0.5, 1.0}
        assert abs((N == 1).mean() - level / 2) < 0.01 and abs((N == 0).mean() - level / 2) < 0.01


def test_denoising_a_plain_autoencoder_needs_a_level(models, digits):
    X = digits[0]
    fig = plot.denoising(models["plain"], X, noise_level=0.2)
    assert "Gaussian noise σ = 0.2" in " ".join(t.get_text() for t in fig.axes[0].texts)
    with pytest.raises(ValueError, match="noise_level"):
        plot.denoising(models["plain"], X)


def test_same_random_state_same_png(models, digits, tmp_path):
    X = digits[0]
    for i, rs in enumerate((1, 1, 2)):
        plot.denoising(models["denoising"], X, random_state=rs, path=tmp_path / f"d{i}.png")
        plot.samples(models["vae"], 10, random_state=rs, path=tmp_path / f"s{i}.png")
    png = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    assert png["d0.png"] == png["d1.png"] != png["d2.png"]
    assert png["s0.png"] == png["s1.png"] != png["s2.png"]


def test_samples_are_the_models_samples(models):
    vae, cvae = models["vae"], models["cvae"]
    canvas, _ = canvas_of(plot.samples(vae, 6, random_state=4, cols=3))
    S = vae.sample(6, random_state=4)
    np.testing.assert_allclose(tile(canvas, 1, 2), S[5].reshape(8, 8), rtol=1e-6)
    canvas, _ = canvas_of(plot.samples(cvae, 4, y=7, random_state=4))
    S = cvae.sample(4, y=7, random_state=4)
    np.testing.assert_allclose(tile(canvas, 0, 3), S[3].reshape(8, 8), rtol=1e-6)


def test_class_samples_one_row_per_class(models):
    cvae = models["cvae"]
    fig = plot.class_samples(cvae, 3, random_state=5)
    canvas, _ = canvas_of(fig)
    assert canvas.shape == (1 + 10 * 9, 1 + 3 * 9)
    labels = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("y=")]
    assert labels == [f"y={k}" for k in range(10)]
    np.testing.assert_allclose(tile(canvas, 6, 1),
                               cvae.sample(3, y=6, random_state=5)[1].reshape(8, 8), rtol=1e-6)


def test_interpolation_strip_is_x_a_path_x_b(models, digits):
    X = digits[0]
    vae = models["vae"]
    canvas, _ = canvas_of(plot.interpolation(vae, X[0], X[1], steps=4))
    P = vae.interpolate(X[0], X[1], steps=4)
    np.testing.assert_allclose(tile(canvas, 0, 0), X[0].reshape(8, 8))
    np.testing.assert_allclose(tile(canvas, 0, 2, x0=3), P[1].reshape(8, 8), rtol=1e-6)
    np.testing.assert_allclose(tile(canvas, 0, 5, x0=6), X[1].reshape(8, 8))


def test_loss_curves_show_each_models_losses(models):
    def legend(model):
        ax = plot.loss_curves(model).axes[0]
        return " ".join(t.get_text() for t in ax.get_legend().get_texts())

    assert "KL" in legend(models["vae"]) and "reconstruction" in legend(models["vae"])
    gan = legend(models["gan"])
    assert "D loss" in gan and "G loss" in gan and "log 2" in gan
    assert "cross entropy" in legend(models["classifier"])
    ax = plot.loss_curves(models["lbfgs"]).axes[0]
    assert ax.get_xlabel() == "iteration"
    lines = plot.loss_curves(models["sparse"]).axes[0].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), models["sparse"].loss_curve_)
    gan_ax = plot.loss_curves(models["gan"]).axes[0]
    raw_d = gan_ax.get_lines()[0].get_ydata()  # broken (NaN) while G pre-trains
    np.testing.assert_allclose(raw_d[np.isfinite(raw_d)], models["gan"].history_["d_loss"])
    assert any(abs(line.get_ydata()[0] - np.log(2)) < 1e-12 for line in gan_ax.get_lines())


def test_loss_curves_show_the_held_out_score(models):
    ae, clf = models["early_ae"], models["early_classifier"]
    assert len(ae.validation_scores_) == len(ae.loss_curve_) == 4
    ax = plot.loss_curves(ae).axes[0]
    held_out = [line for line in ax.get_lines() if line.get_label().startswith("held-out")]
    np.testing.assert_allclose(held_out[0].get_ydata(), -np.array(ae.validation_scores_))
    best = 1 + int(np.argmax(ae.validation_scores_))
    assert f"best held-out epoch: {best}" in " ".join(t.get_text() for t in
                                                      ax.get_legend().get_texts())
    fig = plot.loss_curves(clf)
    assert len(fig.axes) == 2  # accuracy on a second axis
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), clf.validation_scores_)
    assert fig.axes[1].get_ylabel() == "held-out accuracy"
    assert len(plot.loss_curves(models["classifier"]).axes) == 1  # none without early stopping


def test_loss_curves_need_a_curve(digits):
    X = digits[0]
    with pytest.raises(ValueError, match="model"):
        plot.loss_curves(VAE(4, (8,), epochs=0, random_state=0).fit(X))
    with pytest.raises(ValueError, match="model"):
        plot.loss_curves(GAN(4, (8,), (8,), epochs=0, random_state=0).fit(X))


# -------------------------------------------------------------- bad arguments
def test_models_of_the_wrong_kind_are_refused(models, digits):
    X = digits[0]
    m = models
    cases = [
        (lambda: plot.feature_grid("weights"), "model_or_weights"),
        (lambda: plot.feature_grid(m["generator"]), "model_or_weights"),
        (lambda: plot.feature_grid(SparseAutoencoder), "model_or_weights"),
        (lambda: plot.reconstructions(m["gan"], X), "model"),
        (lambda: plot.reconstructions(m["cvae"], X), "model"),
        (lambda: plot.denoising(m["vae"], X), "model"),
        (lambda: plot.loss_curves(object()), "model"),
        (lambda: plot.samples(m["sparse"]), "model"),
        (lambda: plot.interpolation(m["gan"], X[0], X[1]), "model"),
        (lambda: plot.class_samples(m["vae"]), "cvae"),
    ]
    for call, name in cases:
        with pytest.raises(TypeError, match=f"^{name}: expected"):
            call()


def test_unfitted_models_are_refused(digits):
    X = digits[0]
    cases = [
        (lambda: plot.feature_grid(SparseAutoencoder(8)), "model_or_weights"),
        (lambda: plot.reconstructions(Autoencoder(8), X), "model"),
        (lambda: plot.denoising(DenoisingAutoencoder(8), X), "model"),
        (lambda: plot.loss_curves(GAN()), "model"),
        (lambda: plot.samples(VAE()), "model"),
        (lambda: plot.interpolation(VAE(), X[0], X[1]), "model"),
        (lambda: plot.class_samples(ConditionalVAE()), "cvae"),
    ]
    for call, name in cases:
        with pytest.raises(NotFittedError, match=f"^{name}: .*unfitted"):
            call()


@pytest.mark.parametrize("call,name", [
    (lambda m, X, y: plot.feature_grid(np.ones(64)), "model_or_weights"),
    (lambda m, X, y: plot.feature_grid(np.full((64, 3), np.nan)), "model_or_weights"),
    (lambda m, X, y: plot.feature_grid(np.ones((10, 3))), "image_shape"),
    (lambda m, X, y: plot.feature_grid(np.ones((64, 3)), (4, 4)), "image_shape"),
    (lambda m, X, y: plot.feature_grid(np.ones((64, 3)), (8, 8.0)), "image_shape"),
    (lambda m, X, y: plot.feature_grid(np.ones((64, 3)), 8), "image_shape"),
    (lambda m, X, y: plot.feature_grid(np.ones((64, 3)), cols=0), "cols"),
    (lambda m, X, y: plot.reconstructions(m["sparse"], X[:, :10]), "X"),
    (lambda m, X, y: plot.reconstructions(m["sparse"], X, n=0), "n"),
    (lambda m, X, y: plot.reconstructions(m["sparse"], X, (2, 3)), "image_shape"),
    (lambda m, X, y: plot.denoising(m["denoising"], X, noise_level=-0.1), "noise_level"),
    (lambda m, X, y: plot.denoising(m["masking"], X, noise_level=1.5), "noise_level"),
    (lambda m, X, y: plot.denoising(m["denoising"], X, random_state="x"), "random_state"),
    (lambda m, X, y: plot.denoising(m["denoising"], X, random_state=True), "random_state"),
    (lambda m, X, y: plot.denoising(m["denoising"], X, n=-1), "n"),
    (lambda m, X, y: plot.samples(m["cvae"]), "y"),
    (lambda m, X, y: plot.samples(m["cvae"], y=11), "y"),
    (lambda m, X, y: plot.samples(m["vae"], y=1), "y"),
    (lambda m, X, y: plot.samples(m["vae"], n=0), "n"),
    (lambda m, X, y: plot.samples(m["gan"], cols=0), "cols"),
    (lambda m, X, y: plot.samples(m["vae"], random_state=-1), "random_state"),
    (lambda m, X, y: plot.interpolation(m["vae"], X[0], X[1], steps=1), "steps"),
    (lambda m, X, y: plot.interpolation(m["vae"], X[0, :10], X[1]), "x_a"),
    (lambda m, X, y: plot.interpolation(m["vae"], X[0], X[:2]), "x_b"),
    (lambda m, X, y: plot.interpolation(m["vae"], X[0], X[1], y_a=0, y_b=1), "y_a, y_b"),
    (lambda m, X, y: plot.interpolation(m["cvae"], X[0], X[1]), "y_a, y_b"),
    (lambda m, X, y: plot.interpolation(m["cvae"], X[0], X[1], y_a=0, y_b=12), "y"),
    (lambda m, X, y: plot.class_samples(m["cvae"], 0), "n_per_class"),
    (lambda m, X, y: plot.loss_curves(m["vae"], path="curves.pdf"), "path"),
    (lambda m, X, y: plot.loss_curves(m["vae"], path=3), "path"),
    (lambda m, X, y: plot.loss_curves(m["vae"], path="/no/such/folder/f.png"), "path"),
])
def test_bad_arguments_name_the_argument(call, name, models, digits):
    with pytest.raises((TypeError, ValueError, FileNotFoundError), match=f"^{name}: "):
        call(models, *digits)


def test_bad_path_is_refused_before_any_work(tmp_path, monkeypatch):
    def boom(*args):
        raise AssertionError("the model was used")

    monkeypatch.setattr(plot, "_input_weights", boom)
    with pytest.raises(ValueError, match="^path: "):
        plot.feature_grid(np.ones((64, 2)), path=tmp_path / "f.jpg")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ValueError, match="^path: .*folder"):
        plot.feature_grid(np.ones((64, 2)), path=tmp_path / "d.png")


# --------------------------------------------------------------- atomicity
def test_failed_render_leaves_no_file(models, tmp_path, monkeypatch):
    def fail(self, *args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr(FigureCanvasAgg, "print_png", fail)
    path = tmp_path / "curves.png"
    with pytest.raises(RuntimeError, match="render failed"):
        plot.loss_curves(models["vae"], path=path)
    assert not path.exists()
    assert os.listdir(tmp_path) == []

    path.write_bytes(b"the old figure")
    with pytest.raises(RuntimeError, match="render failed"):
        plot.feature_grid(models["sparse"], path=path)
    assert path.read_bytes() == b"the old figure"
    assert os.listdir(tmp_path) == ["curves.png"]


def test_failed_write_leaves_no_temporary_file(models, tmp_path, monkeypatch):
    import fusedae._files

    class OsWhoseRenameFails:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def replace(src, dst):
            raise OSError("disk full")

    path = tmp_path / "samples.png"
    path.write_bytes(b"the old figure")
    monkeypatch.setattr(fusedae._files, "os", OsWhoseRenameFails())
    with pytest.raises(OSError, match="disk full"):
        plot.samples(models["vae"], 10, path=path)
    monkeypatch.undo()
    assert path.read_bytes() == b"the old figure"
    assert [f for f in os.listdir(tmp_path) if f.startswith(".fusedae-")] == []
    assert os.listdir(tmp_path) == ["samples.png"]
