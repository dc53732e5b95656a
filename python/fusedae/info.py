"""Information theory for autoencoders: §3 of the chapter, eq. 2-18, in NumPy.

Histograms and probabilities (eq. 2-3), information (eq. 4), entropy
(eq. 6), cross entropy and the Kullback-Leibler divergence (eq. 17-18), the
binary and categorical cross-entropy losses with their gradients (eq. 10-16)
and the Bernoulli divergence of the sparsity penalty (eq. 18 second, 23, 28).

The chapter's errata are corrected here (see ``DESIGN.md``, "Errata"):

- eq. 11: the binary cross entropy is ``-[y log a + (1 - y) log(1 - a)]``;
  the chapter drops the minus sign.
- eq. 14: with a one-hot target for class ``k`` the loss is
  ``-log softmax_k(z)``, not ``softmax_k(z)``.
- eq. 15/16: the gradient of the categorical cross entropy with respect to
  the logits is ``softmax(z) - y`` (``a_k - 1`` for the true class and
  ``a_k`` for the others).
- eq. 18 (second) and 23: the sparsity divergence between a target ``rho``
  and a mean activation ``rhohat`` is the Bernoulli KL
  ``rho log(rho / rhohat) + (1 - rho) log((1 - rho) / (1 - rhohat))``.

Conventions shared by every function:

- All arithmetic is in float64. Integer, boolean, float16 and float32 inputs
  are converted to float64 (so are wider floats), and results are float64.
- Inputs must be non-empty, real and finite. Non-numeric input raises
  ``TypeError``; every other bad input raises ``ValueError``. Messages name
  the argument and say what was expected.
- ``0 log 0 = 0``, and ``p log(p / 0) = +inf`` for ``p > 0``: the functions
  return ``inf`` rather than clip, so a support mismatch is never hidden.
- A result reduced to a single number is a Python ``float``; batched or
  element-wise results are float64 arrays.
- Information measures default to bits (``base=2``, as in the chapter); the
  training losses default to nats (``base=np.e``), the unit in which the
  engine reports its training loss.
"""
from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "PROBABILITY_SUM_TOL",
    "histogram",
    "probabilities",
    "information",
    "entropy",
    "cross_entropy",
    "kl_divergence",
    "binary_cross_entropy",
    "binary_cross_entropy_gradient",
    "softmax",
    "log_softmax",
    "categorical_cross_entropy",
    "categorical_cross_entropy_gradient",
    "bernoulli_kl",
    "bernoulli_kl_gradient",
]

#: Largest accepted ``|sum(p) - 1|`` for a probability vector, keyed by the
#: dtype the caller passed. float64 (and integer) input gets 1e-6, loose
#: enough for probabilities rounded to six or more decimals; float16 and
#: float32 input gets 1e-4, about 840 float32 ulps of 1, which covers the
#: rounding of a float32 softmax over a thousand classes.
PROBABILITY_SUM_TOL = {"float64": 1e-6, "float32": 1e-4}

_KINDS = ("auto", "counts", "probabilities", "samples")
_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------
# Argument checking
# --------------------------------------------------------------------------

def _as_float_array(name, x):
    """``x`` as a non-empty, finite float64 array (a new array or a view)."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:  # ragged nested sequences
        raise ValueError(f"{name}: expected a rectangular array of real numbers "
                         f"({err})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got an array of dtype "
                        f"{arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {arr.shape}")
    out = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: expected finite values, found NaN or infinity")
    return out


def _sum_tolerance(x):
    """Tolerance on ``sum(p) = 1`` for the dtype the caller passed."""
    dtype = np.asarray(x).dtype
    narrow = dtype.kind == "f" and dtype.itemsize <= 4
    return PROBABILITY_SUM_TOL["float32" if narrow else "float64"]


def _check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def _check_axis(axis, ndim, name="axis"):
    """A valid axis of an ``ndim``-dimensional array, as a non-negative int."""
    if ndim == 0:
        raise ValueError(f"{name}: the input is 0-dimensional, expected at least "
                         f"one dimension to reduce over")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) \
            or not -ndim <= axis < ndim:
        raise ValueError(f"{name}: expected an integer in [{-ndim}, {ndim}) for an "
                         f"array with {ndim} dimension(s), got {axis!r}")
    return int(axis) % ndim


def _check_base(base):
    """The logarithm base as a float; accepts 2, 'e' (or np.e), 10, any b > 0, != 1."""
    if isinstance(base, str):
        if base == "e":
            return float(np.e)
        raise ValueError(f"base: expected 2, 'e', 10 or a real number > 0 and != 1, "
                         f"got {base!r}")
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise TypeError(f"base: expected a real number > 0 and != 1 (or 'e'), "
                        f"got {base!r}")
    b = float(base)
    if not np.isfinite(b) or b <= 0 or b == 1:
        raise ValueError(f"base: expected a real number > 0 and != 1, got {base!r}")
    return b


def _log_in_base(b):
    """log_b as a ufunc-like callable.

    The dedicated log2/log10 keep the chapter's numbers exact
    (``-log2(1/8) == 3``), which a division by ``ln 2`` would not guarantee.
    """
    if b == 2:
        return np.log2
    if b == np.e:
        return np.log
    if b == 10:
        return np.log10
    ln_b = np.log(b)
    return lambda v: np.log(v) / ln_b


def _nats_to_base(value, b):
    """Convert a quantity measured in nats into base-``b`` units."""
    return value if b == np.e else value / np.log(b)


def _check_unit_interval(name, x, what="probabilities"):
    if np.any(x < 0) or np.any(x > 1):
        raise ValueError(f"{name}: expected {what} in [0, 1], got values in "
                         f"[{x.min():.17g}, {x.max():.17g}]")


def _check_same_shape(name, x, ref_name, ref):
    if x.shape != ref.shape:
        raise ValueError(f"{name}: expected the same shape as {ref_name} "
                         f"{ref.shape}, got {x.shape}")


def _check_sums_to_one(name, p, axis, tol):
    """Each slice of ``p`` along ``axis`` must sum to 1 within ``tol``."""
    sums = p.sum(axis=axis)
    worst = np.max(np.abs(sums - 1.0))
    if worst > tol:
        raise ValueError(f"{name}: expected probability vectors summing to 1 along "
                         f"axis {axis} (tolerance {tol:g}), found a sum off by "
                         f"{worst:.3g}")


def _integer_valued(x):
    return bool(np.all(x == np.round(x)))


def _result(value):
    """A Python float for a 0-d result, the float64 array otherwise."""
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value


def _neg(x):
    """``0 - x``: unlike ``-x`` it turns a zero result into +0.0, never -0.0."""
    return 0.0 - x


def _xlogy(x, y, log):
    """``x * log(y)`` element-wise with ``0 * log(y) = 0``, also for ``y = 0``.

    ``x > 0`` with ``y = 0`` gives ``-inf``: the caller's support mismatch is
    reported, not hidden. ``x`` must be non-negative.
    """
    x, y = np.broadcast_arrays(x, y)
    out = np.zeros(x.shape)
    on = x > 0
    with np.errstate(divide="ignore"):
        out[on] = x[on] * log(y[on])
    return out


# --------------------------------------------------------------------------
# Histograms and probability distributions (eq. 2-3)
# --------------------------------------------------------------------------

def _check_samples(samples, n_values):
    """Integer samples in 1..N as an int64 array, and N."""
    x = _as_float_array("samples", samples)
    if not _integer_valued(x):
        raise ValueError("samples: expected integer values in 1..N, got non-integer "
                         "values")
    x = x.astype(np.int64)
    n = int(x.max()) if n_values is None else _check_positive_int("n_values", n_values)
    if x.min() < 1 or x.max() > n:
        raise ValueError(f"samples: expected integers in 1..N with N={n}, got values "
                         f"from {x.min()} to {x.max()}")
    return x, n


def histogram(samples: ArrayLike, n_values: int | None = None, *,
              bins: int | ArrayLike | None = None) -> np.ndarray:
    """Count how often each value occurs in a set of samples (eq. 2).

    Without ``bins`` this is the chapter's histogram of ``M`` integer samples
    with ``N`` possible values 1..N: ``h(x)`` is the number of samples equal
    to ``x``. With ``bins`` the samples may be real and are counted over the
    given bins exactly as :func:`numpy.histogram` does.

    Parameters
    ----------
    samples : array-like of int or float
        The samples; all of them are counted, whatever the shape (the array is
        flattened). Without ``bins`` they must be integer-valued (integer
        dtype, or floats with integral values) in ``1..N``.
    n_values : int, optional
        ``N``, the number of possible values. Defaults to ``max(samples)``.
        Not used with ``bins``.
    bins : int or array-like of float, optional
        Either the number of equal-width bins between the smallest and largest
        sample, or the increasing bin edges. Samples outside the edges are not
        counted (as in :func:`numpy.histogram`), so the counts may sum to less
        than ``M``.

    Returns
    -------
    counts : ndarray of int64, shape (N,) or (n_bins,)
        ``counts[x - 1] = h(x)`` for integer samples; ``counts[i]`` is the
        number of samples in bin ``i`` with ``bins``.

    Raises
    ------
    ValueError
        If ``samples`` is empty or not finite, if an integer sample lies
        outside ``1..N`` or is not an integer, if ``n_values < 1``, if
        ``n_values`` is combined with ``bins``, or if ``bins`` is invalid.
    TypeError
        If ``samples`` is not numeric.

    Examples
    --------
    >>> histogram([1, 1, 2, 4], n_values=4)
    array([2, 1, 0, 1])
    """
    if bins is None:
        x, n = _check_samples(samples, n_values)
        return np.bincount(x.ravel() - 1, minlength=n).astype(np.int64)
    if n_values is not None:
        raise ValueError("n_values: not used with bins; pass one or the other")
    x = _as_float_array("samples", samples)
    return np.histogram(x, bins=_check_bins(bins))[0].astype(np.int64)


def _check_bins(bins):
    """``bins`` as a positive int or as at least two increasing finite edges."""
    if isinstance(bins, numbers.Integral) and not isinstance(bins, bool):
        return _check_positive_int("bins", bins)
    try:
        edges = _as_float_array("bins", bins)
    except TypeError:
        raise TypeError(f"bins: expected an integer or an array of bin edges, got "
                        f"{bins!r}") from None
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins: expected a positive integer or at least two strictly "
                         "increasing bin edges")
    return edges


def probabilities(x: ArrayLike, *, axis: int = -1, kind: str = "auto",
                  n_values: int | None = None) -> np.ndarray:
    """Probability distribution from counts or samples, ``P(x) = h(x) / M`` (eq. 3).

    Parameters
    ----------
    x : array-like
        Counts, probability vectors or raw integer samples; each 1-D slice
        along ``axis`` is one distribution (or one set of samples).
    axis : int, default=-1
        The axis along which the values (or samples) of one distribution lie.
    kind : {"auto", "counts", "probabilities", "samples"}, default="auto"
        How to read ``x``:

        - ``"probabilities"``: non-negative slices that sum to 1 within
          :data:`PROBABILITY_SUM_TOL`; returned as given (in float64).
        - ``"counts"``: non-negative histograms ``h`` (real weights are
          accepted); each slice is divided by its sum ``M``, which must be
          positive.
        - ``"samples"``: integer samples in ``1..N``; each slice is turned into
          a histogram of ``N`` cells (eq. 2) and divided by its length ``M``.
          ``N`` is ``n_values`` or the largest sample in the whole array, so
          every slice gets the same ``N``. Samples are never detected
          automatically, only read as such when asked.
        - ``"auto"``: ``x`` must be non-negative. If every slice sums to 1
          within the tolerance it is read as probabilities; otherwise, if every
          value is an integer, as counts; otherwise a ``ValueError`` is
          raised, because a non-integer vector that does not sum to 1 is as
          likely a broken probability vector as a set of weights (pass
          ``kind="counts"`` to normalise weights). A count vector that
          happens to sum to 1 gives the same result read either way.

    n_values : int, optional
        ``N`` for ``kind="samples"``; not used by the other kinds.

    Returns
    -------
    p : ndarray of float64
        The distributions, same shape as ``x`` except that with
        ``kind="samples"`` the length along ``axis`` becomes ``N``.

    Raises
    ------
    ValueError
        For negative values, probability vectors not summing to 1, counts
        summing to 0, samples outside ``1..N``, non-finite or empty input, a
        bad ``axis``, ``kind`` or ``n_values``.
    TypeError
        If ``x`` is not numeric.

    Examples
    --------
    >>> probabilities([1, 1, 2, 4], kind="samples")
    array([0.5 , 0.25, 0.  , 0.25])
    >>> probabilities([2, 1, 0, 1])
    array([0.5 , 0.25, 0.  , 0.25])
    """
    _check_choice("kind", kind, _KINDS)
    if kind != "samples" and n_values is not None:
        raise ValueError("n_values: only used with kind='samples'")
    if kind == "samples":
        return _probabilities_from_samples(x, axis, n_values)
    return _to_probabilities("x", x, axis, kind)


def _probabilities_from_samples(samples, axis, n_values):
    x, n = _check_samples(samples, n_values)
    ax = _check_axis(axis, x.ndim)
    rows = np.moveaxis(x, ax, -1)
    m = rows.shape[-1]
    flat = rows.reshape(-1, m)
    # One bincount for all slices: slice r's value v goes to cell r*N + v - 1.
    cells = (np.arange(flat.shape[0])[:, None] * n + flat - 1).ravel()
    counts = np.bincount(cells, minlength=flat.shape[0] * n).reshape(flat.shape[0], n)
    p = (counts / m).reshape(rows.shape[:-1] + (n,))
    return np.moveaxis(p, -1, ax)


def _to_probabilities(name, x, axis, kind="auto"):
    """Read ``x`` as counts or probability vectors along ``axis`` (see probabilities)."""
    p = _as_float_array(name, x)
    ax = _check_axis(axis, p.ndim)
    tol = _sum_tolerance(x)
    if np.any(p < 0):
        raise ValueError(f"{name}: expected non-negative counts or probabilities, "
                         f"got a minimum of {p.min():.17g}")
    sums = p.sum(axis=ax, keepdims=True)
    if kind == "auto":
        if np.max(np.abs(sums - 1.0)) <= tol:
            kind = "probabilities"
        elif _integer_valued(p):
            kind = "counts"
        else:
            raise ValueError(
                f"{name}: values are neither probability vectors (a sum along axis "
                f"{ax} is off from 1 by {np.max(np.abs(sums - 1.0)):.3g}, tolerance "
                f"{tol:g}) nor integer counts; pass kind='counts' to normalise "
                f"non-integer weights")
    if kind == "probabilities":
        _check_sums_to_one(name, p, ax, tol)
        return p
    if np.any(sums == 0):
        raise ValueError(f"{name}: expected counts with a positive total along axis "
                         f"{ax}, found a slice summing to 0")
    return p / sums


# --------------------------------------------------------------------------
# Information, entropy, cross entropy, KL divergence (eq. 4-9, 17-18)
# --------------------------------------------------------------------------

def information(p: ArrayLike, *, base: float | str = 2) -> float | np.ndarray:
    """Information of an observation with probability ``p``, ``I = -log_b p`` (eq. 4).

    Parameters
    ----------
    p : float or array-like of float
        Probabilities in [0, 1], element-wise.
    base : float or "e", default=2
        Logarithm base: 2 gives bits (the chapter's unit), ``np.e`` or ``"e"``
        nats, 10 hartleys; any real ``> 0`` and ``!= 1`` is accepted.

    Returns
    -------
    float or ndarray of float64
        ``-log_base(p)``; ``+inf`` where ``p == 0`` (an impossible event).
        A float for scalar input.

    Examples
    --------
    >>> information(0.5)   # eq. 5
    1.0
    >>> information(1 / 8)
    3.0
    """
    log = _log_in_base(_check_base(base))
    x = _as_float_array("p", p)
    _check_unit_interval("p", x)
    with np.errstate(divide="ignore"):
        return _result(_neg(log(x)))


def entropy(p: ArrayLike, *, base: float | str = 2, axis: int = -1,
            normalized: bool = False) -> float | np.ndarray:
    """Entropy ``H(X) = -sum_x P(x) log_b P(x)`` (eq. 6), batched along ``axis``.

    Parameters
    ----------
    p : array-like
        Probability vectors or counts along ``axis``, read as by
        :func:`probabilities` with ``kind="auto"`` (counts are normalised).
    base : float or "e", default=2
        Logarithm base (2: bits, ``np.e``/``"e"``: nats, 10: hartleys, or any
        real ``> 0`` and ``!= 1``).
    axis : int, default=-1
        Axis holding the ``N`` values of each distribution.
    normalized : bool, default=False
        Divide by ``log_b N``, the entropy of the uniform distribution on the
        ``N`` values, so the result lies in [0, 1] whatever the base. With
        ``N = 1`` the normalised entropy is defined as 0.

    Returns
    -------
    float or ndarray of float64
        The entropy, with the convention ``0 log 0 = 0``. A float for 1-D
        input, else an array with ``axis`` removed.

    Examples
    --------
    >>> entropy([0.5, 0.5])          # eq. 7: a fair coin
    1.0
    >>> entropy([1, 0, 0])           # eq. 9: a Dirac distribution
    0.0
    """
    b = _check_base(base)
    if not isinstance(normalized, (bool, np.bool_)):
        raise ValueError(f"normalized: expected True or False, got {normalized!r}")
    probs = _to_probabilities("p", p, axis)
    ax = _check_axis(axis, probs.ndim)
    h = _neg(_xlogy(probs, probs, _log_in_base(b)).sum(axis=ax))
    if normalized:
        n = probs.shape[ax]
        h = np.zeros_like(h) if n == 1 else h / _log_in_base(b)(n)
    return _result(h)


def _pair(p, q, axis):
    """Two distributions of the same shape, read as by :func:`probabilities`."""
    P = _to_probabilities("p", p, axis)
    Q = _to_probabilities("q", q, axis)
    _check_same_shape("q", Q, "p", P)
    return P, Q, _check_axis(axis, P.ndim)


def cross_entropy(p: ArrayLike, q: ArrayLike, *, base: float | str = 2,
                  axis: int = -1) -> float | np.ndarray:
    """Cross entropy ``H(P, Q) = -sum_x P(x) log_b Q(x)`` (§3.3, eq. 18).

    Equal to ``H(P) + KL(P || Q)``; the minimum over ``Q`` is ``H(P)``,
    reached at ``Q = P``.

    Parameters
    ----------
    p, q : array-like of the same shape
        Probability vectors or counts along ``axis`` (counts are normalised),
        read as by :func:`probabilities` with ``kind="auto"``.
    base : float or "e", default=2
        Logarithm base (2: bits).
    axis : int, default=-1
        Axis holding the values of each distribution.

    Returns
    -------
    float or ndarray of float64
        The cross entropy: ``+inf`` where ``Q(x) = 0`` for some ``x`` with
        ``P(x) > 0``; terms with ``P(x) = 0`` contribute 0. A float for 1-D
        input, else an array with ``axis`` removed.
    """
    log = _log_in_base(_check_base(base))
    P, Q, ax = _pair(p, q, axis)
    return _result(_neg(_xlogy(P, Q, log).sum(axis=ax)))


def kl_divergence(p: ArrayLike, q: ArrayLike, *, base: float | str = 2,
                  axis: int = -1) -> float | np.ndarray:
    """Kullback-Leibler divergence ``KL(P || Q) = sum_x P(x) log_b(P(x) / Q(x))`` (eq. 17).

    Parameters
    ----------
    p, q : array-like of the same shape
        Probability vectors or counts along ``axis`` (counts are normalised),
        read as by :func:`probabilities` with ``kind="auto"``.
    base : float or "e", default=2
        Logarithm base (2: bits).
    axis : int, default=-1
        Axis holding the values of each distribution.

    Returns
    -------
    float or ndarray of float64
        The divergence, ``>= 0`` and ``0`` for ``Q = P``. It is ``+inf``
        where ``Q(x) = 0`` for some ``x`` with ``P(x) > 0`` (P is not
        absolutely continuous with respect to Q); terms with ``P(x) = 0``
        contribute 0. A float for 1-D input, else an array with ``axis``
        removed.
    """
    log = _log_in_base(_check_base(base))
    P, Q, ax = _pair(p, q, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = P / Q  # inf where Q = 0 < P; nan where both are 0, masked out
    return _result(_xlogy(P, ratio, log).sum(axis=ax))


# --------------------------------------------------------------------------
# Losses: binary (eq. 10-11) and categorical (eq. 12-16) cross entropy
# --------------------------------------------------------------------------

def _reduce(losses, reduction, n_samples):
    if reduction == "none":
        return _result(losses)
    total = float(np.sum(losses))
    return total / n_samples if reduction == "mean" else total


def _sigmoid(z):
    """Logistic function (eq. 10) without overflow: exp is only taken of -|z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def binary_cross_entropy(y: ArrayLike, a: ArrayLike | None = None, *,
                         logits: ArrayLike | None = None, base: float | str = np.e,
                         reduction: str = "mean") -> float | np.ndarray:
    """Binary cross entropy ``-[y log a + (1 - y) log(1 - a)]`` (eq. 10-11, corrected).

    The chapter's eq. 11 lacks the leading minus sign; this is the corrected
    loss, which is non-negative. Pass the sigmoid output ``a`` or the logits
    ``z`` with ``a = sigmoid(z)`` (eq. 10), exactly one of the two.

    Parameters
    ----------
    y : array-like
        Targets in [0, 1] (0/1 labels or soft targets such as pixel
        intensities).
    a : array-like, optional
        Predicted probabilities in [0, 1], same shape as ``y``. They are not
        clipped: ``a = 0`` where ``y > 0``, or ``a = 1`` where ``y < 1``,
        gives ``+inf``; ``0 log 0`` is taken as 0.
    logits : array-like, optional
        Finite logits ``z``, same shape as ``y``. The loss is computed as
        ``max(z, 0) - z y + log1p(exp(-|z|))``, which equals the formula
        above and neither overflows nor loses precision for large ``|z|``.
    base : float or "e", default=np.e
        Logarithm base. Nats by default because training losses are reported
        in nats; ``base=2`` gives bits.
    reduction : {"mean", "sum", "none"}, default="mean"
        ``"mean"``: the mean over all elements, which matches
        :func:`sklearn.metrics.log_loss` for 1-D binary input; ``"sum"``: the
        total; ``"none"``: the element-wise losses. The engine's training
        objective (per-sample sum averaged over the samples of a 2-D batch)
        is ``reduction="sum"`` divided by the number of rows.

    Returns
    -------
    float or ndarray of float64
        The loss; an array of ``y``'s shape for ``reduction="none"`` (a float
        for scalar input).

    Raises
    ------
    ValueError
        If not exactly one of ``a`` and ``logits`` is given, if shapes differ,
        values are out of [0, 1], non-finite or empty, or ``base`` or
        ``reduction`` is invalid.
    TypeError
        If an input is not numeric.
    """
    b = _check_base(base)
    _check_choice("reduction", reduction, _REDUCTIONS)
    if (a is None) == (logits is None):
        raise ValueError("a, logits: expected exactly one of a (probabilities) or "
                         "logits")
    t = _as_float_array("y", y)
    _check_unit_interval("y", t, "targets")
    if logits is not None:
        z = _as_float_array("logits", logits)
        _check_same_shape("logits", z, "y", t)
        nats = np.maximum(z, 0.0) - z * t + np.log1p(np.exp(-np.abs(z)))
        losses = _nats_to_base(nats, b)
    else:
        p = _as_float_array("a", a)
        _check_same_shape("a", p, "y", t)
        _check_unit_interval("a", p)
        log = _log_in_base(b)
        losses = _neg(_xlogy(t, p, log) + _xlogy(1.0 - t, 1.0 - p, log))
    return _reduce(losses, reduction, losses.size)


def binary_cross_entropy_gradient(y: ArrayLike, logits: ArrayLike) -> float | np.ndarray:
    """Gradient of the binary cross entropy w.r.t. the logits, ``sigmoid(z) - y``.

    Element-wise derivative of the unreduced loss of
    :func:`binary_cross_entropy` (in nats) with respect to each logit; divide
    by ``y.size`` for the gradient of ``reduction="mean"``.

    Parameters
    ----------
    y : array-like
        Targets in [0, 1].
    logits : array-like
        Finite logits, same shape as ``y``.

    Returns
    -------
    float or ndarray of float64
        ``sigmoid(logits) - y``, of ``y``'s shape (a float for scalar input).
    """
    t = _as_float_array("y", y)
    _check_unit_interval("y", t, "targets")
    z = _as_float_array("logits", logits)
    _check_same_shape("logits", z, "y", t)
    return _result(_sigmoid(z) - t)


def softmax(z: ArrayLike, *, axis: int = -1) -> np.ndarray:
    """Softmax ``a_k = exp(z_k) / sum_j exp(z_j)`` along ``axis`` (eq. 12).

    The maximum along ``axis`` is subtracted first: the value is unchanged and
    every exponent is ``<= 0``, so logits of any finite size (``1e4``,
    ``-1e4``) neither overflow nor give ``0 / 0``.

    Parameters
    ----------
    z : array-like
        Finite logits.
    axis : int, default=-1
        Axis over the classes.

    Returns
    -------
    ndarray of float64
        Probabilities of ``z``'s shape, summing to 1 along ``axis``.
    """
    x = _as_float_array("z", z)
    ax = _check_axis(axis, x.ndim)
    e = np.exp(x - x.max(axis=ax, keepdims=True))
    return e / e.sum(axis=ax, keepdims=True)


def log_softmax(z: ArrayLike, *, axis: int = -1) -> np.ndarray:
    """Logarithm of :func:`softmax`, ``z_k - log sum_j exp(z_j)``, along ``axis``.

    Computed as ``(z - max z) - log sum exp(z - max z)``: finite for all finite
    logits, including the log-probabilities of classes whose softmax
    underflows to 0.

    Parameters
    ----------
    z : array-like
        Finite logits.
    axis : int, default=-1
        Axis over the classes.

    Returns
    -------
    ndarray of float64
        Log-probabilities (natural log) of ``z``'s shape.
    """
    x = _as_float_array("z", z)
    ax = _check_axis(axis, x.ndim)
    shifted = x - x.max(axis=ax, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=ax, keepdims=True))


def _check_scores(name, scores, n_classes):
    """Logits or probabilities of shape (M, K), and K checked against n_classes."""
    s = _as_float_array(name, scores)
    if s.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_classes), got "
                         f"shape {s.shape}")
    if n_classes is not None:
        k = _check_positive_int("n_classes", n_classes)
        if k != s.shape[1]:
            raise ValueError(f"n_classes: expected {s.shape[1]}, the number of "
                             f"columns of {name}, got {k}")
    return s


def _check_targets(y, shape):
    """Targets as probability rows of ``shape`` (M, K), from labels or rows.

    Returns ``(rows, labels)``: ``labels`` is the int array for 1-D integer
    labels (``rows`` then holds their one-hot encoding), else ``None``.
    """
    m, k = shape
    t = _as_float_array("y", y)
    if t.ndim == 1:
        if t.shape[0] != m:
            raise ValueError(f"y: expected {m} integer labels (one per row of the "
                             f"scores), got {t.shape[0]}")
        if not _integer_valued(t) or t.min() < 0 or t.max() >= k:
            raise ValueError(f"y: expected integer class labels in [0, {k}), got "
                             f"values from {t.min():.17g} to {t.max():.17g}")
        labels = t.astype(np.int64)
        rows = np.zeros(shape)
        rows[np.arange(m), labels] = 1.0
        return rows, labels
    if t.shape != shape:
        raise ValueError(f"y: expected integer labels of shape ({m},) or probability "
                         f"rows of shape {shape}, got shape {t.shape}")
    if np.any(t < 0):
        raise ValueError(f"y: expected non-negative probability rows, got a minimum "
                         f"of {t.min():.17g}")
    _check_sums_to_one("y", t, 1, _sum_tolerance(y))
    return t, None


def categorical_cross_entropy(y: ArrayLike, *, logits: ArrayLike | None = None,
                              probs: ArrayLike | None = None, base: float | str = np.e,
                              reduction: str = "mean",
                              n_classes: int | None = None) -> float | np.ndarray:
    """Categorical cross entropy ``-sum_k y_k log a_k`` (eq. 13; eq. 14 corrected).

    With ``a = softmax(z)`` (eq. 12). For a one-hot target of class ``k`` the
    loss is ``-log softmax_k(z)`` (the chapter's eq. 14 drops the
    ``-log``). Pass exactly one of ``logits`` and ``probs``.

    Parameters
    ----------
    y : array-like
        Either integer class labels of shape (M,) in ``[0, K)``, or target
        rows of shape (M, K): one-hot or soft probability vectors, each
        summing to 1 within :data:`PROBABILITY_SUM_TOL`.
    logits : array-like of shape (M, K), optional
        Finite logits. The loss uses :func:`log_softmax`, so nothing is
        clipped and no logit is too large.
    probs : array-like of shape (M, K), optional
        Predicted probability rows, each summing to 1 within the tolerance.
        Not clipped: ``probs = 0`` where ``y > 0`` gives ``+inf``; terms with
        ``y = 0`` contribute 0.
    base : float or "e", default=np.e
        Logarithm base. Nats by default, the unit of training losses;
        ``base=2`` gives bits.
    reduction : {"mean", "sum", "none"}, default="mean"
        ``"mean"``: the mean over the M samples of the per-sample loss (this
        matches :func:`sklearn.metrics.log_loss`); ``"sum"``: the total;
        ``"none"``: the per-sample losses, shape (M,).
    n_classes : int, optional
        ``K``. Optional: ``K`` is the number of columns of the scores, and a
        given ``n_classes`` must equal it (a check that the labels were
        encoded for the model that produced the scores).

    Returns
    -------
    float or ndarray of float64 of shape (M,)
        The loss.

    Raises
    ------
    ValueError
        If not exactly one of ``logits`` and ``probs`` is given, shapes do not
        match, labels are not integers in ``[0, K)``, rows are negative or do
        not sum to 1, input is non-finite or empty, or ``base``,
        ``reduction`` or ``n_classes`` is invalid.
    TypeError
        If an input is not numeric.
    """
    b = _check_base(base)
    _check_choice("reduction", reduction, _REDUCTIONS)
    if (logits is None) == (probs is None):
        raise ValueError("logits, probs: expected exactly one of logits or probs")
    if logits is not None:
        z = _check_scores("logits", logits, n_classes)
        rows, labels = _check_targets(y, z.shape)
        log_a = log_softmax(z, axis=1)
        if labels is not None:
            nats = _neg(log_a[np.arange(z.shape[0]), labels])
        else:
            nats = _neg((rows * log_a).sum(axis=1))
        losses = _nats_to_base(nats, b)
    else:
        p = _check_scores("probs", probs, n_classes)
        if np.any(p < 0):
            raise ValueError(f"probs: expected non-negative probability rows, got a "
                             f"minimum of {p.min():.17g}")
        _check_sums_to_one("probs", p, 1, _sum_tolerance(probs))
        rows, _ = _check_targets(y, p.shape)
        losses = _neg(_xlogy(rows, p, _log_in_base(b)).sum(axis=1))
    return _reduce(losses, reduction, losses.shape[0])


def categorical_cross_entropy_gradient(y: ArrayLike, logits: ArrayLike, *,
                                       reduction: str = "mean") -> np.ndarray:
    """Gradient of the categorical cross entropy w.r.t. the logits (eq. 15-16, corrected).

    Row ``m`` is ``softmax(z_m) * sum_k y_mk - y_m``: for probability-vector
    targets ``softmax(z) - y``, i.e. ``a_k - 1`` for a one-hot true class and
    ``a_k`` for the others (the chapter's eq. 15/16 mislabel these as
    ``da_k/dz_k``). Keeping the factor ``sum_k y_mk`` makes this the exact
    derivative of the loss as computed, even for targets whose rows sum to 1
    only within the tolerance.

    Parameters
    ----------
    y : array-like
        Integer labels of shape (M,) or target rows of shape (M, K), as in
        :func:`categorical_cross_entropy`.
    logits : array-like of shape (M, K)
        Finite logits.
    reduction : {"mean", "sum", "none"}, default="mean"
        Which loss of :func:`categorical_cross_entropy` (in nats) to
        differentiate: ``"mean"`` divides every row by M; ``"sum"`` and
        ``"none"`` do not (with ``"none"`` row ``m`` is the gradient of
        sample ``m``'s own loss).

    Returns
    -------
    ndarray of float64, shape (M, K)
    """
    _check_choice("reduction", reduction, _REDUCTIONS)
    z = _check_scores("logits", logits, None)
    rows, _ = _check_targets(y, z.shape)
    grad = softmax(z, axis=1) * rows.sum(axis=1, keepdims=True) - rows
    return grad / z.shape[0] if reduction == "mean" else grad


# --------------------------------------------------------------------------
# Sparsity: Bernoulli KL divergence (eq. 18 second, 23, 28; corrected)
# --------------------------------------------------------------------------

def _check_sparsity(rho, rhohat):
    r = _as_float_array("rho", rho)
    if np.any(r <= 0) or np.any(r >= 1):
        raise ValueError(f"rho: expected a target sparsity in the open interval "
                         f"(0, 1), got values in [{r.min():.17g}, {r.max():.17g}]")
    h = _as_float_array("rhohat", rhohat)
    _check_unit_interval("rhohat", h, "mean activations")
    try:
        np.broadcast_shapes(r.shape, h.shape)
    except ValueError:
        raise ValueError(f"rhohat: expected a shape that broadcasts with rho "
                         f"{r.shape}, got {h.shape}") from None
    return r, h


def bernoulli_kl(rho: ArrayLike, rhohat: ArrayLike, *,
                 base: float | str = np.e) -> float | np.ndarray:
    """Sparsity divergence ``KL(rho || rhohat)`` between two Bernoulli distributions.

    .. math:: \\rho \\log\\frac{\\rho}{\\hat\\rho}
              + (1 - \\rho) \\log\\frac{1 - \\rho}{1 - \\hat\\rho}

    This is the penalty of eq. 23 per hidden unit (the chapter's second
    eq. 18 keeps only the first term), with ``rhohat_n`` the mean activation
    of unit ``n`` over the batch; sum over the units for eq. 23.

    Parameters
    ----------
    rho : float or array-like
        Target sparsity, in the open interval (0, 1).
    rhohat : float or array-like
        Mean activations in [0, 1], broadcastable with ``rho``. Not clipped:
        ``rhohat`` equal to 0 or 1 gives ``+inf``. (During training the
        engine clamps ``rhohat`` to ``[2**-20, 1 - 2**-20]`` in float32 and
        ``[2**-40, 1 - 2**-40]`` in float64 before evaluating the penalty.)
    base : float or "e", default=np.e
        Logarithm base (nats by default, as the training loss).

    Returns
    -------
    float or ndarray of float64
        The element-wise divergence, ``>= 0`` and ``0`` at ``rhohat == rho``
        (a float when both inputs are scalars).
    """
    log = _log_in_base(_check_base(base))
    r, h = _check_sparsity(rho, rhohat)
    with np.errstate(divide="ignore"):
        return _result(r * log(r / h) + (1.0 - r) * log((1.0 - r) / (1.0 - h)))


def bernoulli_kl_gradient(rho: ArrayLike, rhohat: ArrayLike) -> float | np.ndarray:
    """Derivative of :func:`bernoulli_kl` (nats) w.r.t. ``rhohat`` (eq. 28's term).

    ``-rho / rhohat + (1 - rho) / (1 - rhohat)``, element-wise.

    Parameters
    ----------
    rho : float or array-like
        Target sparsity in (0, 1).
    rhohat : float or array-like
        Mean activations in [0, 1], broadcastable with ``rho``. Not clipped:
        ``rhohat = 0`` gives ``-inf`` and ``rhohat = 1`` gives ``+inf`` (see
        :func:`bernoulli_kl` for the clamp the engine applies in training).

    Returns
    -------
    float or ndarray of float64
        The derivative (a float when both inputs are scalars).
    """
    r, h = _check_sparsity(rho, rhohat)
    with np.errstate(divide="ignore"):
        return _result(-r / h + (1.0 - r) / (1.0 - h))
