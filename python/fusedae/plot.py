"""Figures of what the models learned and how they trained, drawn with matplotlib.

matplotlib is an optional extra (``pip install "fusedae[plot]"``); it is
imported when a function is called, not when this module is. Nothing here
uses ``matplotlib.pyplot``: every function builds a
:class:`matplotlib.figure.Figure` of its own on an Agg canvas (no global
state, no backend switching) and returns it, so it works the same in a
script, on a server without a display and in a notebook (where the returned
figure shows itself).

With ``path=`` the figure is also written as a PNG file that appears complete
or not at all: it is rendered in memory and then written to a temporary file
beside ``path`` that is renamed into place (:func:`fusedae._files.write_atomically`).

Images are drawn from rows of features: ``image_shape=(height, width)``, or,
when omitted, a square (64 features: the 8×8 digits). Data images use black
ink on white (0 white, 1 black); learned features use the classic display
of the sparse-autoencoder notes (mid-gray 0, white positive, black negative).

Functions
---------
feature_grid
    Each hidden unit's input weights as an image.
reconstructions
    Inputs above the model's reconstructions.
denoising
    Noisy inputs, the clean originals, and the model's denoised outputs.
loss_curves
    Training curves: loss per epoch; the VAE's two terms; the GAN's two
    losses per step.
samples
    Samples of a VAE, a ConditionalVAE (of a class) or a GAN.
interpolation
    A VAE's decoded path between the codes of two signals.
class_samples
    One row of samples per class of a ConditionalVAE.
"""
from __future__ import annotations

import io
import math
import numbers
import os
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from . import _validation as v
from ._files import write_atomically
from ._noise import corrupt

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

    from ._base import NetworkEstimator
    from .autoencoder import Autoencoder
    from .gan import GAN
    from .vae import VAE, ConditionalVAE

PathArg = str | os.PathLike[str] | None
ImageShape = tuple[int, int] | None

__all__ = ["class_samples", "denoising", "feature_grid", "interpolation", "loss_curves",
           "reconstructions", "samples"]

_DPI = 100
_TILE_INCHES = 0.5       # an image tile on the page, at most
_MAX_WIDTH_INCHES = 10.0
_MAX_HEIGHT_INCHES = 11.0
_DATA_CMAP = "gray_r"    # data: 0 white, 1 black (ink on paper)
_DATA_GRID = "#c8c8c8"   # between data tiles
_FEATURE_CMAP = "gray"   # features: -1 black, 0 mid-gray, +1 white
_FEATURE_GRID = "#5d7fb0"  # between feature tiles: no gray level, so no weight value
_TITLE_SIZE = 10
_NOTE_SIZE = 8
_LABEL_SIZE = 8
_SMALL_SIZE = 6.5


# ------------------------------------------------------------------ plumbing
def _figure(figsize: tuple[float, float] = (6.0, 4.0), **kwargs: Any) -> Figure:
    """A new :class:`matplotlib.figure.Figure` on an Agg canvas (no pyplot).

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError('fusedae.plot needs matplotlib, an optional extra: '
                          'pip install "fusedae[plot]"') from err
    fig = Figure(figsize=figsize, dpi=_DPI, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _check_path(path):
    """``None``, or ``path`` as a str naming a .png file in an existing folder."""
    if path is None:
        return None
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path: expected a str or os.PathLike naming a .png file, got "
                        f"{type(path).__name__}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if os.path.splitext(path)[1].lower() != ".png":
        raise ValueError(f"path: figures are written as PNG; expected a file name ending in "
                         f"'.png', got {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"path: {path!r} is a folder; expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: the folder {folder!r} does not exist")
    return path


def _finish(fig, path):
    """Write ``fig`` to ``path`` as PNG (when given), atomically; return ``fig``."""
    if path is not None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.1,
                    facecolor="white")
        write_atomically(path, buf.getvalue())
    return fig


def _describe(obj):
    if isinstance(obj, np.ndarray):
        return f"an array of shape {obj.shape}"
    if isinstance(obj, type):
        return f"the class {obj.__name__} (not an instance)"
    return type(obj).__name__


def _check_model(model, kinds, what, name="model"):
    """``model`` is an instance of ``kinds`` and fitted (sklearn's check_is_fitted)."""
    if isinstance(model, type) or not isinstance(model, kinds):
        raise TypeError(f"{name}: expected a fitted {what}, got {_describe(model)}")
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise NotFittedError(f"{name}: expected a fitted {what}, got an unfitted "
                             f"{type(model).__name__} (call fit first)") from None
    return model


def _models():
    # The estimators import the compiled engine; this module does not need it
    # until a model is passed.
    from .autoencoder import Autoencoder
    from .gan import GAN
    from .vae import VAE, ConditionalVAE
    return Autoencoder, VAE, ConditionalVAE, GAN


def _image_shape(image_shape, n_features):
    """(height, width) for images of ``n_features`` pixels; a square when None."""
    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(f"image_shape: {n_features} features are not a square image; "
                             f"pass image_shape=(height, width)")
        return side, side
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = ()
    if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral)
                              or s < 1 for s in shape):
        raise ValueError(f"image_shape: expected (height, width), two positive integers, "
                         f"got {image_shape!r}")
    h, w = int(shape[0]), int(shape[1])
    if h * w != n_features:
        raise ValueError(f"image_shape: {h}×{w} is {h * w} pixels, but the images have "
                         f"{n_features} features")
    return h, w


def _check_rng(random_state):
    if isinstance(random_state, bool):
        raise TypeError(f"random_state: expected None, an integer >= 0 or a "
                         f"numpy.random.Generator, got {random_state!r}")
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise ValueError(f"random_state: expected None, an integer >= 0 or a "
                         f"numpy.random.Generator, got {random_state!r}") from None


def _limits(*arrays):
    """Display range of data images: [0, 1] when they lie in it, else their span."""
    lo = min(float(np.min(a)) for a in arrays)
    hi = max(float(np.max(a)) for a in arrays)
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if hi <= lo:
        return lo - 0.5, lo + 0.5
    return lo, hi


def _fmt(x):
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


# ------------------------------------------------------------------- mosaics
class _Mosaic:
    """Image tiles on one canvas (one ``imshow``), with row and column gaps.

    ``rows`` is a list of rows, each a list of (h, w) tiles or None (a blank
    cell); ``col_gaps``/``row_gaps`` map a column/row to the extra pixels
    left before it. Pixel coordinates: column ``c`` starts at ``x[c]``, row ``r`` at
    ``y[r]``; ``centre_x(c)``/``centre_y(r)`` give tile centres for labels.
    """

    def __init__(self, rows, h, w, *, pad=1, col_gaps=None, row_gaps=None):
        col_gaps, row_gaps = col_gaps or {}, row_gaps or {}
        cols = max(len(r) for r in rows)
        self.h, self.w = h, w
        self.x, pos = [], pad
        for c in range(cols):
            pos += col_gaps.get(c, 0)
            self.x.append(pos)
            pos += w + pad
        width = pos
        self.y, pos = [], pad
        for r in range(len(rows)):
            pos += row_gaps.get(r, 0)
            self.y.append(pos)
            pos += h + pad
        self.canvas = np.full((pos, width), np.nan)
        for r, row in enumerate(rows):
            for c, tile in enumerate(row):
                if tile is not None:
                    self.canvas[self.y[r]:self.y[r] + h, self.x[c]:self.x[c] + w] = tile

    def centre_x(self, c):
        return self.x[c] + (self.w - 1) / 2

    def centre_y(self, r):
        return self.y[r] + (self.h - 1) / 2

    def draw(self, *, cmap, vmin, vmax, grid, margins=(0.7, 0.2, 0.7, 0.3)):
        """A figure sized to the canvas (square pixels); returns (fig, ax).

        ``margins`` (left, right, top, bottom), inches, leave room for
        labels; the saved PNG is cropped to what is drawn.
        """
        import matplotlib

        ph, pw = self.canvas.shape
        px = min(_TILE_INCHES / math.sqrt(self.h * self.w), _MAX_WIDTH_INCHES / pw,
                 _MAX_HEIGHT_INCHES / ph)
        left, right, top, bottom = margins
        W, H = pw * px + left + right, ph * px + top + bottom
        fig = _figure(figsize=(max(W, 3.0), H))
        W = fig.get_figwidth()
        ax = fig.add_axes([(left + (W - (pw * px + left + right)) / 2) / W, bottom / H,
                           pw * px / W, ph * px / H])
        colormap = matplotlib.colormaps[cmap].with_extremes(bad=grid)
        ax.imshow(np.ma.masked_invalid(self.canvas), cmap=colormap, vmin=vmin, vmax=vmax,
                  interpolation="nearest")
        ax.set_axis_off()
        return fig, ax

    def row_labels(self, ax, labels, rows=None, size=_LABEL_SIZE):
        for r, text in zip(range(len(self.y)) if rows is None else rows, labels):
            ax.text(-1.0, self.centre_y(r), text, ha="right", va="center", fontsize=size)


def _title_block(fig, ax, title, note=None, gap_points=4):
    """Title (and a smaller note under it) above ``ax``, placed in points so
    they clear labels drawn just above the images."""
    from matplotlib.transforms import offset_copy

    base = offset_copy(ax.transAxes, fig=fig, x=0, y=gap_points, units="points")
    if note:
        ax.text(0.5, 1.0, note, transform=base, ha="center", va="bottom",
                fontsize=_NOTE_SIZE, color="0.3")
        above = offset_copy(ax.transAxes, fig=fig, x=0,
                            y=gap_points + 1.35 * _NOTE_SIZE * (note.count("\n") + 1) + 2,
                            units="points")
    else:
        above = base
    ax.text(0.5, 1.0, title, transform=above, ha="center", va="bottom",
            fontsize=_TITLE_SIZE)


def _per_row(n, most=12):
    """Tiles per row for n images in blocks of at most ``most``, balanced (14: 7 + 7)."""
    return math.ceil(n / math.ceil(n / most))


def _grouped_rows(groups, per_row, *, block_gap=6, labelled=(), label_gap=3):
    """Interleave equal-length groups of tiles into blocks of rows.

    Block b holds tiles b·per_row … of every group, one row per group;
    ``block_gap`` pixels separate blocks and ``label_gap`` follow the rows of
    the groups in ``labelled`` (text goes under them). Returns (rows, gaps).
    """
    n = len(groups[0])
    rows, gaps = [], {}
    for b, start in enumerate(range(0, n, per_row)):
        if b:
            gaps[len(rows)] = block_gap
        for k, g in enumerate(groups):
            if k and k - 1 in labelled:
                gaps[len(rows)] = label_gap
            chunk = list(g[start:start + per_row])
            rows.append(chunk + [None] * (per_row - len(chunk)))
    return rows, gaps


# ------------------------------------------------------------------- figures
def feature_grid(model_or_weights: NetworkEstimator | ArrayLike,
                 image_shape: ImageShape = None, *, path: PathArg = None,
                 cols: int | None = None) -> Figure:
    """Each hidden unit's input weights as an image.

    Column n of the first weight matrix (D inputs × N units) is drawn as an
    image, normalised as in the classic sparse-autoencoder display: each
    filter has its mean removed and is divided by its largest magnitude, so
    mid-gray is 0, white the filter's strongest positive and black its
    strongest negative weight (gray colormap, limits ±1).

    Parameters
    ----------
    model_or_weights : Autoencoder, Classifier, VAE, GAN or array-like of shape (D, N)
        A fitted model (its ``coefs_[0]``; a VAE's encoder and a GAN's
        discriminator first layer, the signal's rows of it for a
        ConditionalVAE) or the weight matrix itself.
    image_shape : (int, int), optional
        (height, width) with height·width = D; by default a square.
    path : str or os.PathLike, optional
        Also write the figure there as PNG (atomically).
    cols : int, optional
        Tiles per row; by default ⌈√N⌉.

    Returns
    -------
    matplotlib.figure.Figure
    """
    path = _check_path(path)
    W, who = _input_weights(model_or_weights)
    D, N = W.shape
    h, w = _image_shape(image_shape, D)
    cols = math.ceil(math.sqrt(N)) if cols is None else v.check_int("cols", cols)
    cols = min(cols, N)
    F = W.T - W.T.mean(axis=1, keepdims=True)
    F = F / np.maximum(np.abs(F).max(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    tiles = list(F.reshape(N, h, w))
    rows = [tiles[i:i + cols] for i in range(0, N, cols)]
    rows[-1] = rows[-1] + [None] * (cols - len(rows[-1]))
    m = _Mosaic(rows, h, w)
    fig, ax = m.draw(cmap=_FEATURE_CMAP, vmin=-1.0, vmax=1.0, grid=_FEATURE_GRID,
                     margins=(0.2, 0.2, 0.75, 0.15))
    what = f"input weights of {N} hidden units ({D} inputs, {h}×{w})"
    _title_block(fig, ax, f"{who}: {what}" if who else what[0].upper() + what[1:],
                 "each filter: mean removed, divided by its max |w|\n"
                 "gray = 0, white = strongest +, black = strongest −")
    return _finish(fig, path)


def _input_weights(obj):
    """The (D, N) first-layer weights of a model or an array, float64, and the
    model's name (None for an array)."""
    from ._base import NetworkEstimator
    from .generator import Generator

    what = ("Autoencoder, Classifier, VAE or GAN, or a 2-D array of weights (D inputs × N "
            "units)")
    name = "model_or_weights"
    if isinstance(obj, NetworkEstimator) and not isinstance(obj, type):
        _, VAE, _, GAN = _models()
        if isinstance(obj, Generator):
            raise TypeError(f"{name}: expected a fitted {what}, got a Generator (its first "
                            f"layer reads labels, not images)")
        _check_model(obj, NetworkEstimator, what, name)
        if isinstance(obj, VAE):
            W = obj.encoder_coefs_[0][0][:obj.n_features_in_]
            who = f"{type(obj).__name__} encoder"
        elif isinstance(obj, GAN):
            W = obj.discriminator_coefs_[0][0]
            who = "GAN discriminator"
        else:
            W = obj.coefs_[0]
            who = type(obj).__name__
        return np.asarray(W, dtype=np.float64), who
    if isinstance(obj, (np.ndarray, list, tuple)) or hasattr(obj, "__array__"):
        try:
            W = np.asarray(obj, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected a fitted {what}, got {_describe(obj)} that is "
                            f"not numeric") from None
        if W.ndim != 2 or W.size == 0:
            raise ValueError(f"{name}: expected a non-empty 2-D array of weights (D inputs × "
                             f"N units), got shape {W.shape}")
        if not np.all(np.isfinite(W)):
            raise ValueError(f"{name}: the weights contain NaN or infinity")
        return W, None
    raise TypeError(f"{name}: expected a fitted {what}, got {_describe(obj)}")


def _check_rows(X, name, n_features, n=None) -> np.ndarray:
    X = v.check_data(X, name, "float64", n_features=n_features)
    return X if n is None else X[:n]


def reconstructions(model: Autoencoder | VAE, X: ArrayLike, image_shape: ImageShape = None,
                    *, n: int = 10, path: PathArg = None) -> Figure:
    """Inputs (top row) above the model's reconstructions (bottom row).

    Under each reconstruction: its error ½‖x̂ − x‖². More than 12 images
    wrap into several pairs of rows.

    Parameters
    ----------
    model : Autoencoder or VAE
        Fitted; an autoencoder's ``predict(X)``, a VAE's decoded mean code
        ``generate(transform(X))``.
    X : array-like of shape (M, D)
        The first ``n`` rows are drawn.
    image_shape : (int, int), optional
        (height, width); by default a square.
    n : int, default=10
        How many inputs (at most M).
    path : str or os.PathLike, optional
        Also write the figure there as PNG (atomically).

    Returns
    -------
    matplotlib.figure.Figure
    """
    path = _check_path(path)
    Autoencoder, VAE, ConditionalVAE, _ = _models()
    what = "Autoencoder (or a VAE)"
    if isinstance(model, ConditionalVAE):
        raise TypeError(f"model: expected a fitted {what}; a ConditionalVAE needs labels to "
                        f"reconstruct, got {_describe(model)}")
    _check_model(model, (Autoencoder, VAE), what)
    n = v.check_int("n", n)
    X = _check_rows(X, "X", model.n_features_in_, n)
    h, w = _image_shape(image_shape, X.shape[1])
    if isinstance(model, VAE):
        Xh = np.asarray(model.generate(model.transform(X)), dtype=np.float64)
        how = "decoded μ(x)"
    else:
        Xh = np.asarray(model.predict(X), dtype=np.float64)
        how = "predict(X)"
    err = 0.5 * np.sum((Xh - X) ** 2, axis=1)
    lo, hi = _limits(X)
    per_row = _per_row(len(X))
    rows, gaps = _grouped_rows([[np.clip(t, lo, hi) for t in A.reshape(-1, h, w)]
                                for A in (X, Xh)], per_row)
    m = _Mosaic(rows, h, w, row_gaps=gaps)
    fig, ax = m.draw(cmap=_DATA_CMAP, vmin=lo, vmax=hi, grid=_DATA_GRID,
                     margins=(0.9, 0.2, 0.7, 0.3))
    m.row_labels(ax, ["input", "output"] * len(rows))
    for i, e in enumerate(err):
        b, c = divmod(i, per_row)
        r = 2 * b + 1
        ax.text(m.centre_x(c), m.y[r] + m.h + 0.2, _fmt(e), ha="center", va="top",
                fontsize=_SMALL_SIZE, color="tab:red")
    _title_block(fig, ax, f"{type(model).__name__}: {len(X)} inputs and their reconstructions",
                 f"output = {how}; red: ½‖x̂ − x‖², mean {_fmt(err.mean())}")
    return _finish(fig, path)


def denoising(model: Autoencoder, X: ArrayLike, image_shape: ImageShape = None, *,
              noise_level: float | None = None, n: int = 8,
              random_state: int | np.random.Generator | None = 0,
              path: PathArg = None) -> Figure:
    """Noisy inputs, the clean originals and the model's outputs (three rows).

    The noise is of the model's own kind (``model.noise``: ``"gaussian"``
    adds σ·N(0, 1), ``"masking"`` zeroes each value with probability p,
    ``"salt_pepper"`` sets it to 1 or 0 with probability p/2 each), drawn
    with NumPy. The model sees the noisy rows as they are; they are clipped
    to the data's range (usually [0, 1]) for display only. Under the noisy
    and denoised rows: each image's error ½‖· − x‖² against the clean one.

    Parameters
    ----------
    model : Autoencoder
        Fitted; usually a :class:`fusedae.DenoisingAutoencoder`. A model
        trained without noise is corrupted with Gaussian noise of the given
        ``noise_level``.
    X : array-like of shape (M, D)
        Clean rows; the first ``n`` are drawn.
    image_shape : (int, int), optional
        (height, width); by default a square.
    noise_level : float, optional
        σ or p; by default ``model.noise_level``.
    n : int, default=8
        How many images (at most M). More than 12 wrap into blocks of rows.
    random_state : None, int or numpy.random.Generator, default=0
        Seed of the noise (``numpy.random.default_rng``).
    path : str or os.PathLike, optional
        Also write the figure there as PNG (atomically).

    Returns
    -------
    matplotlib.figure.Figure
    """
    path = _check_path(path)
    Autoencoder = _models()[0]
    _check_model(model, Autoencoder, "Autoencoder (a DenoisingAutoencoder, say)")
    kind = model.noise
    if kind is None:
        if noise_level is None:
            raise ValueError("noise_level: the model was trained without noise "
                             "(model.noise is None); pass noise_level to corrupt its inputs "
                             "with Gaussian noise")
        kind = "gaussian"
    else:
        v.check_choice("model.noise", kind, v.NOISES)
    name = "noise_level" if noise_level is not None else "model.noise_level"
    level = model.noise_level if noise_level is None else noise_level
    level = v.check_real(name, level, low=0.0, low_open=True,
                         high=None if kind == "gaussian" else 1.0)
    n = v.check_int("n", n)
    rng = _check_rng(random_state)
    X = _check_rows(X, "X", model.n_features_in_, n)
    h, w = _image_shape(image_shape, X.shape[1])
    noisy = corrupt(X, kind, level, rng)
    out = np.asarray(model.predict(noisy), dtype=np.float64)
    err_in = 0.5 * np.sum((noisy - X) ** 2, axis=1)
    err_out = 0.5 * np.sum((out - X) ** 2, axis=1)
    lo, hi = _limits(X)
    per_row = _per_row(len(X))
    rows, gaps = _grouped_rows([[np.clip(t, lo, hi) for t in A.reshape(-1, h, w)]
                                for A in (noisy, X, out)], per_row, labelled=(0,))
    m = _Mosaic(rows, h, w, row_gaps=gaps)
    fig, ax = m.draw(cmap=_DATA_CMAP, vmin=lo, vmax=hi, grid=_DATA_GRID,
                     margins=(0.9, 0.2, 0.75, 0.3))
    m.row_labels(ax, ["noisy", "clean", "denoised"] * len(rows))
    for i, (a, b) in enumerate(zip(err_in, err_out)):
        blk, c = divmod(i, per_row)
        for r, e in ((3 * blk, a), (3 * blk + 2, b)):
            ax.text(m.centre_x(c), m.y[r] + m.h + 0.2, _fmt(e), ha="center", va="top",
                    fontsize=_SMALL_SIZE, color="tab:red")
    what = {"gaussian": f"Gaussian noise σ = {level:g}",
            "masking": f"masking noise p = {level:g}",
            "salt_pepper": f"salt-and-pepper noise p = {level:g}"}[kind]
    _title_block(fig, ax, f"{type(model).__name__}: denoising, {what}",
                 f"red: ½‖· − x‖² to the clean image; mean {_fmt(err_in.mean())} noisy → "
                 f"{_fmt(err_out.mean())} denoised")
    return _finish(fig, path)


def _moving_mean(x, k):
    x = np.asarray(x, dtype=np.float64)
    if k <= 1 or len(x) < k:
        return np.arange(len(x)), x
    c = np.convolve(x, np.ones(k) / k, mode="valid")
    return np.arange(len(c)) + (k - 1) / 2, c


def _curve_axes(ax, ys, xlabel, ylabel):
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    from matplotlib.ticker import LogFormatter, MaxNLocator

    class PlainLogFormatter(LogFormatter):
        """LogFormatter's choice of ticks, written 0.3 rather than 3e-01."""

        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for y in ys:  # log scale when one curve falls (or rises) by more than 10x
        y = np.asarray(y, dtype=np.float64)
        y = y[np.isfinite(y)]
        if y.size and y.min() > 0 and y.max() / y.min() > 10:
            ax.set_yscale("log")
            # plain numbers (0.5, 2, 40), not 4×10¹; minor ticks labelled over ≤ 2 decades
            ax.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
            ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False,
                                                           minor_thresholds=(2, 0.5)))
            ax.tick_params(axis="y", which="minor", labelsize=7)
            ax.set_ylabel(f"{ylabel} (log scale)", fontsize=9)
            break


def loss_curves(model: NetworkEstimator, *, path: PathArg = None) -> Figure:
    """Training curves of a fitted model.

    - Autoencoder, Classifier, Generator: ``loss_curve_``, the mean training
      loss of each epoch (of each iteration with L-BFGS);
    - VAE, ConditionalVAE: the total (−ELBO), its reconstruction and KL terms
      per epoch;
    - with early stopping, the held-out rows' score after each epoch
      (``validation_scores_``: as a loss, or the classifier's accuracy on a
      second axis) and the best epoch, whose parameters the model keeps;
    - GAN: the discriminator's and the generator's loss of every step (thin)
      with a moving mean over about an epoch (thick), against the epochs
      (pre-training phases shaded), and the reference line log 2: both
      losses where D(x) = ½ everywhere.

    A curve that changes by more than a factor 10 is drawn on a log scale.

    Parameters
    ----------
    model : fitted fusedae estimator
    path : str or os.PathLike, optional
        Also write the figure there as PNG (atomically).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ._base import NetworkEstimator

    path = _check_path(path)
    _, VAE, _, GAN = _models()
    _check_model(model, NetworkEstimator,
                 "fusedae estimator (Autoencoder, Classifier, Generator, VAE or GAN)")
    name = type(model).__name__
    fig = _figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    if isinstance(model, GAN):
        _gan_curves(model, ax)
    elif isinstance(model, VAE):
        curves = [np.asarray(c, dtype=np.float64) for c in
                  (model.loss_curve_, model.recon_curve_, model.kl_curve_)]
        if not len(curves[0]):
            raise ValueError("model: has no training curve to draw (fitted with epochs=0)")
        p = getattr(model, "_params_used", {})
        recon = "BCE" if p.get("loss", model.loss) == "binary_cross_entropy" else "½‖x̂ − x‖²"
        total = "total (−ELBO" + (" + decay)" if p.get("weight_decay", 0) > 0 else ")")
        ep = np.arange(1, len(curves[0]) + 1)
        style: dict[str, Any] = {"marker": "o", "ms": 3} if len(ep) <= 30 else {}
        for c, label, color in zip(curves, (total, f"reconstruction ({recon})",
                                            "KL(q(z|x) ‖ N(0, I))"),
                                   ("k", "tab:blue", "tab:orange")):
            ax.plot(ep, c, color=color, label=f"{label}: {_fmt(c[-1])}", **style)
        held_out, twin = _validation_curve(model, ax, len(ep), "held-out −ELBO")
        _curve_axes(ax, curves + held_out, "epoch", "nats per sample" if recon == "BCE"
                    else "loss per sample")
        if ax.get_yscale() == "linear":
            ax.set_ylim(0, None)
        _legend(ax, twin, fontsize=8, title="last epoch", title_fontsize=8)
        ax.set_title(f"{name}: training loss per epoch (mean over the batches)",
                     fontsize=_TITLE_SIZE)
    else:
        curve = np.asarray(model.loss_curve_, dtype=np.float64)
        if not len(curve):
            raise ValueError("model: has no training curve to draw (loss_curve_ is empty)")
        p = getattr(model, "_params_used", {})
        unit = "iteration" if p.get("optimizer") == "lbfgs" else "epoch"
        ep = np.arange(1, len(curve) + 1)
        style = {"marker": "o", "ms": 3} if len(ep) <= 30 else {}
        ax.plot(ep, curve, color="tab:blue", label=f"{_loss_name(model, p)}", **style)
        ax.plot([ep[-1]], [curve[-1]], "o", color="tab:red",
                label=f"last {unit}: {_fmt(curve[-1])}")
        held_out, twin = _validation_curve(model, ax, len(ep), "held-out loss (−score)")
        _curve_axes(ax, [curve] + held_out, unit, "loss" if held_out else "training loss")
        _legend(ax, twin, fontsize=8)
        per = "iteration (L-BFGS)" if unit == "iteration" else "epoch (mean over the batches)"
        ax.set_title(f"{name}: training loss per {per}", fontsize=_TITLE_SIZE)
    return _finish(fig, path)


def _validation_curve(model, ax, n_epochs, loss_label):
    """Draw ``validation_scores_`` (when there are any) against the last epochs.

    Returns ([held-out loss], None) for models whose score is a negative
    loss, drawn on ``ax``; ([], twin axes) for the classifier's accuracy.
    """
    from .classifier import Classifier

    scores = np.asarray(getattr(model, "validation_scores_", None) or [], dtype=np.float64)
    if not len(scores) or len(scores) > n_epochs:
        return [], None
    ep = np.arange(n_epochs - len(scores) + 1, n_epochs + 1)
    best = int(ep[np.argmax(scores)])
    style = {"marker": "s", "ms": 3} if len(ep) <= 30 else {}
    kept = " (kept)" if getattr(model, "early_stopping", False) else ""
    ax.axvline(best, color="tab:green", ls=":", lw=1.0,
               label=f"best held-out epoch: {best}{kept}")
    if isinstance(model, Classifier):
        twin = ax.twinx()
        twin.plot(ep, scores, color="tab:green", ls="--",
                  label=f"held-out accuracy: {_fmt(scores[-1])}", **style)
        twin.set_ylabel("held-out accuracy", fontsize=9, color="tab:green")
        twin.tick_params(labelsize=8, colors="tab:green")
        twin.set_ylim(min(0.0, scores.min()), 1.0)
        return [], twin
    ax.plot(ep, -scores, color="tab:green", ls="--",
            label=f"{loss_label}: {_fmt(-scores[-1])}", **style)
    return [-scores], None


def _legend(ax, twin, **kwargs):
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
        ax.set_zorder(twin.get_zorder() + 1)  # the legend above the twin's curve
        ax.patch.set_visible(False)
        kwargs.setdefault("loc", "center right")  # "best" does not see the twin's curve
    ax.legend(handles, labels, **kwargs)


def _loss_name(model, p):
    from .classifier import Classifier
    from .generator import Generator

    if isinstance(model, Classifier):
        text = "cross entropy (nats)"
    elif isinstance(model, Generator):
        text = "½‖g(y) − x‖²"
    else:
        text = ("½‖x̂ − x‖²" if p.get("loss", getattr(model, "loss", None)) == "squared_error"
                else "binary cross entropy")
        if p.get("sparse"):
            text += " + β·ΣKL(ρ‖ρ̂)"
    if p.get("weight_decay", 0) > 0:
        text += " + (λ/2)‖W‖²"
    return text


def _runs(counts):
    """Runs of consecutive indices whose count is > 0: [[0, 1], [4, 5, 6]]."""
    runs, current = [], []
    for i, c in enumerate(counts):
        if c > 0:
            current.append(i)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def _gan_curves(model, ax):
    d = np.asarray(model.history_["d_loss"], dtype=np.float64)
    g = np.asarray(model.history_["g_loss"], dtype=np.float64)
    if not len(d) and not len(g):
        raise ValueError("model: has no training history to draw (no steps were run)")
    # Each epoch's steps spread over [e, e + 1): both losses share one axis. A
    # loss is drawn in runs of consecutive epochs that have steps of it (D has
    # none while G pre-trains), broken between runs.
    spans = [phase for phase, _, _ in model.epochs_]
    n_epochs = max(len(spans), 1)
    minimax = getattr(model, "_params_used", {}).get("loss", model.loss) == "minimax"
    g_name = "log(1 − D(G(z)))" if minimax else "−log D(G(z))"
    for y, col, color, label in ((d, 1, "tab:blue", "D loss: BCE on [real; fake]"),
                                 (g, 2, "tab:orange", f"G loss: {g_name}")):
        if not len(y):
            continue
        raw_x, raw_y, mean_x, mean_y = [], [], [], []
        first = 0
        for run in _runs([entry[col] for entry in model.epochs_]):
            steps = sum(model.epochs_[e][col] for e in run)
            x = np.concatenate([e + (np.arange(model.epochs_[e][col]) + 0.5)
                                / model.epochs_[e][col] for e in run])
            seg = y[first:first + steps]
            first += steps
            k = max(1, min(round(steps / len(run)), steps // 4))
            idx, mean = _moving_mean(seg, k)
            raw_x += [x, [np.nan]]
            raw_y += [seg, [np.nan]]
            mean_x += [np.interp(idx, np.arange(len(x)), x), [np.nan]]
            mean_y += [mean, [np.nan]]
        ax.plot(np.concatenate(raw_x), np.concatenate(raw_y), color=color, alpha=0.25,
                lw=0.6)
        ax.plot(np.concatenate(mean_x), np.concatenate(mean_y), color=color, lw=1.8,
                label=f"{label}: last {_fmt(y[-1])}")
    ax.axhline(np.log(2), color="k", ls="--", lw=0.8, label="log 2: D(x) = ½ everywhere")
    if minimax:
        ax.axhline(-np.log(2), color="k", ls=":", lw=0.8, label="−log 2")
    shades = {"d_pretrain": ("tab:blue", "D pre-training"),
              "g_pretrain": ("tab:orange", "G pre-training")}
    e = 0
    while e < len(spans):
        start = e
        while e < len(spans) and spans[e] == spans[start]:
            e += 1
        if spans[start] in shades:
            color, text = shades[spans[start]]
            ax.axvspan(start, e, color=color, alpha=0.08, lw=0)
            ax.text((start + e) / 2, 1.0, text, transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=7, color="0.3")
    _curve_axes(ax, [d, g], "epoch (each epoch's steps spread across it)",
                "loss (nats)")
    ax.set_yscale("linear")
    ax.set_xlim(0, n_epochs)
    ax.legend(fontsize=7.5, loc="best")
    ax.set_title("GAN: losses per step (thin) and their moving mean over ~1 epoch (thick)",
                 fontsize=_TITLE_SIZE - 1)


def _sample_grid(S, h, w, cols, lo, hi, title, note):
    tiles = [np.clip(t, lo, hi) for t in S.reshape(-1, h, w)]
    rows = [tiles[i:i + cols] for i in range(0, len(tiles), cols)]
    rows[-1] = rows[-1] + [None] * (cols - len(rows[-1]))
    m = _Mosaic(rows, h, w)
    fig, ax = m.draw(cmap=_DATA_CMAP, vmin=lo, vmax=hi, grid=_DATA_GRID,
                     margins=(0.2, 0.2, 0.7, 0.15))
    _title_block(fig, ax, title, note)
    return fig


def _label_text(y):
    arr = np.asarray(y)
    if arr.ndim == 0:
        return f"class {arr.item()!r}"
    if arr.ndim == 2 and arr.shape[0] == 1 and arr.shape[1] > 1:
        probs = ", ".join(f"{p:.2g}" for p in arr[0])
        return f"label [{probs}]" if len(probs) < 60 else "a soft label"
    return "the given labels"


def samples(model: VAE | GAN, n: int = 40, image_shape: ImageShape = None, *,
            y: Any = None, random_state: int | None = 0, path: PathArg = None,
            cols: int = 10) -> Figure:
    """Signals generated from random codes z ~ N(0, I).

    Parameters
    ----------
    model : VAE, ConditionalVAE or GAN
        Fitted. ``model.sample(n, random_state=...)``; a ConditionalVAE
        samples the class ``y``: ``model.sample(n, y=y, random_state=...)``.
    n : int, default=40
        How many samples.
    image_shape : (int, int), optional
        (height, width); by default a square.
    y : label, array of labels or probability rows, optional
        The class of a ConditionalVAE's samples (required for it, refused
        for the others): one of ``classes_``, one label per sample, or
        probability rows over ``classes_``.
    random_state : None or int >= 0, default=0
        An integer picks a fixed set of codes (the model's Philox stream);
        None draws the model's next codes.
    path : str or os.PathLike, optional
        Also write the figure there as PNG (atomically).
    cols : int, default=10
        Tiles per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    path = _check_path(path)
    _, VAE, ConditionalVAE, GAN = _models()
    _check_model(model, (VAE, GAN), "VAE, ConditionalVAE or GAN")
    n = v.check_int("n", n)
    cols = min(v.check_int("cols", cols), n)
    name = type(model).__name__
    if isinstance(model, ConditionalVAE):
        if y is None:
            raise ValueError("y: a ConditionalVAE samples a class; pass y= one of its "
                             f"classes_ {np.asarray(model.classes_).tolist()} (or a "
                             "probability row over them)")
        S = model.sample(n, y=y, random_state=random_state)
        title = f"{name}: {n} samples of {_label_text(y)}"
    else:
        if y is not None:
            raise ValueError(f"y: only a ConditionalVAE takes labels; a {name} samples "
                             f"without them")
        S = model.sample(n, random_state=random_state)
        title = f"{name}: {n} samples"
    S = np.asarray(S, dtype=np.float64)
    h, w = _image_shape(image_shape, S.shape[1])
    lo, hi = _limits(S)
    how = "G(z)" if isinstance(model, GAN) else "decoded"
    seed = "the model's next codes" if random_state is None else f"random_state={random_state}"
    fig = _sample_grid(S, h, w, cols, lo, hi, title, f"{how}, z ~ N(0, I), {seed}")
    return _finish(fig, path)


def interpolation(model: VAE, x_a: ArrayLike, x_b: ArrayLike, steps: int = 10,
                  image_shape: ImageShape = None, *, y_a: Any = None, y_b: Any = None,
                  path: PathArg = None) -> Figure:
    """A VAE's decoded path between the codes of two signals.

    The strip shows x_a, then ``model.interpolate(x_a, x_b, steps)``: the
    decoded (1 − t)·μ(x_a) + t·μ(x_b) for t from 0 to 1, then x_b.

    Parameters
    ----------
    model : VAE or ConditionalVAE
        Fitted.
    x_a, x_b : array-like of D values
        The two signals.
    steps : int >= 2, default=10
        Decoded points, both ends included.
    image_shape : (int, int), optional
        (height, width); by default a square.
    y_a, y_b : label or probability row, optional
        The labels of x_a and x_b, required for a ConditionalVAE (its path
        also moves from y_a to y_b), refused for a VAE.
    path : str or os.PathLike, optional
        Also write the figure there as PNG (atomically).

    Returns
    -------
    matplotlib.figure.Figure
    """
    path = _check_path(path)
    _, VAE, ConditionalVAE, _ = _models()
    _check_model(model, VAE, "VAE or ConditionalVAE")
    steps = v.check_int("steps", steps, low=2, high=10_000)
    D = model.n_features_in_
    ends = []
    for name, x in (("x_a", x_a), ("x_b", x_b)):
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected {D} numbers (one signal), got "
                             f"{_describe(x)}") from None
        if arr.size != D or (arr.ndim == 2 and arr.shape[0] != 1) or arr.ndim > 2:
            raise ValueError(f"{name}: expected one signal of {D} values, got shape "
                             f"{arr.shape}")
        ends.append(_check_rows(arr.reshape(1, D), name, D)[0])
    h, w = _image_shape(image_shape, D)
    if isinstance(model, ConditionalVAE):
        if y_a is None or y_b is None:
            raise ValueError("y_a, y_b: a ConditionalVAE needs the labels of x_a and x_b "
                             f"(from classes_ {np.asarray(model.classes_).tolist()})")
        path_rows = model.interpolate(ends[0], ends[1], steps, y_a=y_a, y_b=y_b)
        note = (f"decoded ((1−t)·μ(x_a|y_a) + t·μ(x_b|y_b), (1−t)·y_a + t·y_b), "
                f"y_a = {_short(y_a)}, y_b = {_short(y_b)}")
    else:
        if y_a is not None or y_b is not None:
            raise ValueError(f"y_a, y_b: only a ConditionalVAE takes labels; a "
                             f"{type(model).__name__} interpolates without them")
        path_rows = model.interpolate(ends[0], ends[1], steps)
        note = "decoded (1−t)·μ(x_a) + t·μ(x_b)"
    path_rows = np.asarray(path_rows, dtype=np.float64)
    lo, hi = _limits(ends[0], ends[1], path_rows)
    tiles = [np.clip(t, lo, hi) for t in
             np.vstack([ends[0], path_rows, ends[1]]).reshape(-1, h, w)]
    m = _Mosaic([tiles], h, w, col_gaps={1: 3, steps + 1: 3})
    fig, ax = m.draw(cmap=_DATA_CMAP, vmin=lo, vmax=hi, grid=_DATA_GRID,
                     margins=(0.2, 0.2, 0.9, 0.35))
    for c, text in ((0, "x_a"), (steps + 1, "x_b")):
        ax.text(m.centre_x(c), m.y[0] + m.h + 0.3, text, ha="center", va="top",
                fontsize=_LABEL_SIZE, style="italic")
    every = 1 if steps <= 12 else math.ceil(steps / 12)
    for i, t in enumerate(np.linspace(0.0, 1.0, steps)):
        if i % every == 0 or i == steps - 1:
            ax.text(m.centre_x(i + 1), m.y[0] + m.h + 0.3, f"t={t:.2g}", ha="center",
                    va="top", fontsize=_SMALL_SIZE, color="0.3")
    _title_block(fig, ax, f"{type(model).__name__}: interpolation in the latent space "
                 f"({steps} steps)", note)
    return _finish(fig, path)


def _short(y):
    arr = np.asarray(y)
    if arr.ndim == 0:
        return repr(arr.item())
    flat = arr.ravel()
    text = "[" + ", ".join(f"{p:.2g}" for p in flat[:6]) + (", …]" if flat.size > 6 else "]")
    return text


def class_samples(cvae: ConditionalVAE, n_per_class: int = 8, image_shape: ImageShape = None,
                  *, random_state: int | None = 0, path: PathArg = None) -> Figure:
    """One row of samples per class of a ConditionalVAE.

    Row k is ``cvae.sample(n_per_class, y=classes_[k], random_state=...)``;
    with an integer ``random_state`` every row decodes the same codes z, so
    a column shows one code under each label (style kept, class changed).

    Parameters
    ----------
    cvae : ConditionalVAE
        Fitted.
    n_per_class : int, default=8
        Samples (columns) per class.
    image_shape : (int, int), optional
        (height, width); by default a square.
    random_state : None or int >= 0, default=0
        An integer: the same codes in every row; None: the model's next
        codes, different in every row.
    path : str or os.PathLike, optional
        Also write the figure there as PNG (atomically).

    Returns
    -------
    matplotlib.figure.Figure
    """
    path = _check_path(path)
    ConditionalVAE = _models()[2]
    _check_model(cvae, ConditionalVAE, "ConditionalVAE", name="cvae")
    n = v.check_int("n_per_class", n_per_class)
    classes = np.asarray(cvae.classes_)
    rows = [np.asarray(cvae.sample(n, y=c, random_state=random_state), dtype=np.float64)
            for c in classes]
    h, w = _image_shape(image_shape, rows[0].shape[1])
    lo, hi = _limits(*rows)
    m = _Mosaic([[np.clip(t, lo, hi) for t in R.reshape(-1, h, w)] for R in rows], h, w)
    fig, ax = m.draw(cmap=_DATA_CMAP, vmin=lo, vmax=hi, grid=_DATA_GRID,
                     margins=(0.7, 0.2, 0.75, 0.15))
    m.row_labels(ax, [f"y={c.item()!r}" if classes.dtype.kind in "US" else f"y={c}"
                      for c in classes])
    if random_state is None:
        note = f"{n} samples of each label y (rows), fresh codes z in every row"
    else:
        note = f"{n} codes z ~ N(0, I) (columns, random_state={random_state}) decoded under " \
               f"each label y (rows)"
    _title_block(fig, ax, f"{type(cvae).__name__}: samples per class", note)
    return _finish(fig, path)
