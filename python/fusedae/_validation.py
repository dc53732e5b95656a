"""Argument checking shared by the estimators.

Every message names the argument and says what was expected, so a user can
act on it without reading the source.
"""
import numbers

import numpy as np
from sklearn.utils import check_array

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
AUTOENCODER_LOSSES = ("squared_error", "binary_cross_entropy")
NOISES = ("gaussian", "masking", "salt_pepper")
OPTIMIZERS = ("sgd", "momentum", "adam", "lbfgs")
DTYPES = ("float32", "float64")


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_real(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """A finite real number within the stated bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    value = float(value)
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        span = f"in {lo or '(-inf'}, {hi or 'inf)'}"
        raise ValueError(f"{name}: expected a value {span}, got {value!r}")
    return value


def check_int(name, value, *, low=1, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {value!r}")
    return int(value)


def check_dtype(value):
    try:
        name = np.dtype(value).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {value!r}")
    return name


def check_device(value):
    if value == "cpu":
        return value
    if value == "cuda":
        raise ValueError("device: 'cuda' is not available in this build of fusedae "
                         "(it was compiled without the CUDA backend); use device='cpu'")
    raise ValueError(f"device: expected 'cpu' or 'cuda', got {value!r}")


def check_hidden(value, *, allow_empty=False, name="n_hidden"):
    """``n_hidden``: an int, or a tuple of ints (several hidden layers).

    An empty tuple (no hidden layer) only where ``allow_empty``.
    """
    widths = (value,) if isinstance(value, numbers.Integral) else value
    try:
        widths = tuple(widths)
    except TypeError:
        widths = None
    if (widths is None or (not widths and not allow_empty)
            or any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1
                   for w in widths)):
        what = "a tuple" if allow_empty else "a non-empty tuple"
        raise ValueError(f"{name}: expected a positive integer or {what} of positive "
                         f"integers, got {value!r}")
    return tuple(int(w) for w in widths)


def _is_complex(X):
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, np.dtype):
        return dtype.kind == "c"
    try:  # lists, and array-likes that only convert through __array__
        return np.asarray(X).dtype.kind == "c"
    except (TypeError, ValueError):
        return False  # ragged or otherwise unconvertible: check_array says why


def check_data(X, name, dtype, *, n_features=None, estimator=None) -> np.ndarray:
    """A finite 2-D float array of the model's dtype, C-contiguous.

    Lists, other float/int dtypes, non-contiguous and read-only arrays are
    accepted and converted (a copy only when needed): the engine never writes
    to its inputs. Strings, complex numbers, NaN and infinity are refused.

    Each message starts with ``name``; where scikit-learn's estimator checks
    expect their own wording (complex data, a wrong number of features) it
    follows in parentheses. ``estimator`` names the model in the latter.
    """
    if X is None:
        raise ValueError(f"{name}: expected a 2-D array of numbers, got None")
    kind = getattr(getattr(X, "dtype", None), "kind", None)
    if kind in ("U", "S", "V", "M", "m"):
        raise TypeError(f"{name}: expected numbers, got an array of dtype {X.dtype}")
    if _is_complex(X):
        raise ValueError(f"{name}: complex values are not supported (Complex data not "
                         "supported)")
    try:
        X = check_array(X, dtype=dtype, order="C", ensure_all_finite=True,
                        input_name=name, ensure_min_samples=1, ensure_min_features=1)
    except TypeError as err:
        raise TypeError(f"{name}: expected a numeric 2-D array ({err})") from None
    except ValueError as err:
        msg = str(err)
        raise ValueError(msg if msg.startswith(name) else f"{name}: {msg}") from None
    if n_features is not None and X.shape[1] != n_features:
        owner = type(estimator).__name__ if estimator is not None else "the model"
        raise ValueError(f"{name}: expected {n_features} features (columns), got {X.shape[1]} "
                         f"({name} has {X.shape[1]} features, but {owner} is expecting "
                         f"{n_features} features as input)")
    return X
