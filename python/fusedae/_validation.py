"""Argument checking shared by the estimators.

Every message names the argument and says what was expected, so a user can
act on it without reading the source.
"""
import numbers
import re
import sys

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


#: What ``device`` accepts: the CPU, the current CUDA device or CUDA device N.
DEVICES = ("cpu", "cuda", "cuda:N")


class CudaUnavailableError(ValueError):
    """``device='cuda'`` was asked for where it cannot run: CuPy is not
    installed, this fusedae was built without its CUDA engine, or the
    machine has no (such) CUDA device. The message says which, and what to
    do about it."""


def check_device(value):
    """``device``: "cpu", "cuda" (CuPy's current device) or "cuda:N".

    Only the value is checked here; whether CUDA can run is asked when a
    model is built (:func:`fusedae._cuda.require`).
    """
    if isinstance(value, str):
        if value in ("cpu", "cuda"):
            return str(value)
        m = re.fullmatch(r"cuda:([0-9]{1,4})", value)
        if m:
            return f"cuda:{int(m.group(1))}"
    raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N' (N the index of a CUDA "
                     f"device, 0 for the first), got {value!r}")


# ------------------------------------------------------------ GPU arrays
def is_device_array(X):
    """Whether X is a CuPy array (without importing CuPy: if it has not
    been imported, no CuPy array can exist)."""
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(X, getattr(cp, "ndarray", ()))


def array_module(X):
    """``cupy`` for a CuPy array, else ``numpy``."""
    return sys.modules["cupy"] if is_device_array(X) else np


def to_host(a):
    """``a`` as a NumPy array: a copy off the GPU for a CuPy array, else
    ``np.asarray(a)`` (no copy for a NumPy array)."""
    if is_device_array(a):
        return a.get()
    return np.asarray(a)


def host_copy(a):
    """A NumPy copy of ``a`` (a NumPy or a CuPy array)."""
    return a.get() if is_device_array(a) else np.array(a, copy=True)


def assign(target, value):
    """``target[:] = value`` for a NumPy or a CuPy ``target`` (a network's
    parameters or optimizer state) and a host or device ``value`` of its
    shape."""
    if not is_device_array(target):
        target[...] = value
    elif is_device_array(value):
        target[...] = value
    else:
        target.set(np.ascontiguousarray(np.broadcast_to(value, target.shape),
                                        dtype=target.dtype))


def refuse_device_array(X, name):
    """The error for a CuPy array given to a model that runs on the CPU."""
    if is_device_array(X):
        raise TypeError(f"{name}: got a CuPy array (GPU memory), but this model runs on the "
                        f"CPU (device='cpu'); pass device='cuda' to the estimator to train "
                        f"and predict on the GPU, or convert it with cupy.asnumpy({name})")


def host_labels(y, name="y", device="cpu"):
    """Labels (or rows of label probabilities) on the host: a CuPy array is
    copied off the GPU (labels are small) for a model on a GPU and refused
    for one on the CPU; anything else is left as it is."""
    if is_device_array(y):
        if device == "cpu":
            refuse_device_array(y, name)
        return y.get()
    return y


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


def check_data(X, name, dtype, *, n_features=None, estimator=None, device="cpu"):
    """A finite 2-D float array of the model's dtype, C-contiguous.

    Lists, other float/int dtypes, non-contiguous and read-only arrays are
    accepted and converted (a copy only when needed): the engine never writes
    to its inputs. Strings, complex numbers, NaN and infinity are refused.

    ``device`` is where the model runs: a CuPy array is accepted (and stays
    on the GPU, converted there when needed) only by a model with a CUDA
    ``device``; on the CPU it is refused with a TypeError that says what
    to do. NumPy input is checked here whatever the device.

    Each message starts with ``name``; where scikit-learn's estimator checks
    expect their own wording (complex data, a wrong number of features) it
    follows in parentheses. ``estimator`` names the model in the latter.
    """
    if is_device_array(X):
        if device == "cpu":
            refuse_device_array(X, name)
        X = _check_device_data(X, name, dtype)
        _check_width(X, name, n_features, estimator)
        return X
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
    _check_width(X, name, n_features, estimator)
    return X


def _check_width(X, name, n_features, estimator):
    if n_features is not None and X.shape[1] != n_features:
        owner = type(estimator).__name__ if estimator is not None else "the model"
        raise ValueError(f"{name}: expected {n_features} features (columns), got {X.shape[1]} "
                         f"({name} has {X.shape[1]} features, but {owner} is expecting "
                         f"{n_features} features as input)")


def _check_device_data(X, name, dtype):
    """check_data for a CuPy array: the same rules, on the GPU. The array is
    used as it is when it already has the model's dtype and is C-contiguous;
    otherwise it is converted on its own device."""
    cp = sys.modules["cupy"]
    kind = X.dtype.kind
    if kind == "c":
        raise ValueError(f"{name}: complex values are not supported (Complex data not "
                         "supported)")
    if kind not in "biuf":
        raise TypeError(f"{name}: expected numbers, got an array of dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got a {X.ndim}-D array of shape "
                         f"{X.shape}")
    if X.shape[0] < 1:
        raise ValueError(f"{name}: found an array with 0 sample(s) (shape={X.shape}) while "
                         "a minimum of 1 is required")
    if X.shape[1] < 1:
        raise ValueError(f"{name}: found an array with 0 feature(s) (shape={X.shape}) while "
                         "a minimum of 1 is required")
    with X.device:
        X = cp.ascontiguousarray(X, dtype=dtype)
        finite = cp.isfinite(X)
        if not bool(finite.all()):
            what = "NaN" if bool(cp.isnan(X).any()) else "infinity"
            raise ValueError(f"{name}: Input {name} contains {what}.")
    return X
