"""Category labels ↔ the rows a network trains on: one-hot indicators, or
probability vectors over the classes.

Shared by the discriminative network (labels are its targets) and the
generative one (labels are its inputs).
"""
import warnings

import numpy as np
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import type_of_target

from .info import PROBABILITY_SUM_TOL

def fit_classes(y, name="y"):
    """The sorted distinct labels of a 1-D label array and each row's index.

    Returns
    -------
    classes : ndarray
    indices : ndarray of int64, shape (M,)
    """
    y = _as_label_vector(y, name, warn=True)
    classes, indices = np.unique(y, return_inverse=True)
    return classes, indices.astype(np.int64)


def _as_label_vector(y, name, warn=False):
    """``warn``: a column of labels (M, 1) in fit gets scikit-learn's
    DataConversionWarning, as its own estimators give; it is used as (M,)."""
    if y is None:
        why = (" (this estimator requires y to be passed, but the target y is None)"
               if name == "y" else "")
        raise ValueError(f"{name}: expected an array of class labels, got None{why}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        if warn:
            warnings.warn("A column-vector y was passed when a 1d array was expected. "
                          f"Please change the shape of {name} to (n_samples, ), for "
                          "example using ravel().", DataConversionWarning, stacklevel=5)
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of class labels, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name}: expected at least one label, got an empty array")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{name}: labels contain NaN or infinity")
        if type_of_target(y) == "continuous":
            raise ValueError(f"{name}: expected class labels, got continuous values "
                             f"(e.g. {np.asarray(y[np.argmax(y != np.round(y))]).tolist()!r})")
    if y.dtype.kind in ("c", "V", "M", "m"):
        raise ValueError(f"{name}: expected class labels, got dtype {y.dtype}")
    return y


def label_indices(y, classes, name="y"):
    """Index into ``classes`` of each label of ``y``; unknown labels are refused."""
    y = _as_label_vector(y, name)
    try:
        idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
        unknown = classes[idx] != y
    except TypeError:  # e.g. integer labels against string classes
        raise ValueError(f"{name}: labels of dtype {y.dtype} cannot match the classes seen "
                         f"in fit (classes_ = {classes.tolist()})") from None
    if np.any(unknown):
        bad = y[np.argmax(unknown)]
        bad = bad.item() if isinstance(bad, np.generic) else bad  # object arrays hold Python values
        raise ValueError(f"{name}: label {bad!r} is not one of the classes seen in fit "
                         f"(classes_ = {classes.tolist()})")
    return idx.astype(np.int64)


def one_hot(indices, n_classes, dtype):
    out = np.zeros((len(indices), n_classes), dtype=dtype)
    out[np.arange(len(indices)), indices] = 1
    return out


def label_rows(y, classes, dtype, name="y"):
    """Rows for the network: one-hot for 1-D labels, checked probability rows for 2-D.

    A 2-D ``y`` of shape (M, K) is a probability vector over ``classes`` per
    row: finite, non-negative, each row summing to 1 within
    :data:`fusedae.info.PROBABILITY_SUM_TOL` of its dtype (float64 for other dtypes).
    """
    arr = np.asarray(y) if y is not None else None
    if arr is not None and arr.ndim == 2 and arr.shape[1] != 1:
        return probability_rows(arr, len(classes), dtype, name)
    return one_hot(label_indices(y, classes, name), len(classes), dtype)


def probability_rows(P, n_classes, dtype, name="y"):
    P = np.asarray(P)
    if P.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected numbers, got dtype {P.dtype}")
    if P.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got an empty array")
    if P.shape[1] != n_classes:
        raise ValueError(f"{name}: expected probability rows over the {n_classes} classes "
                         f"({n_classes} columns), got {P.shape[1]} columns")
    work = P.astype(np.float64) if P.dtype != np.float32 else P
    if not np.all(np.isfinite(work)):
        raise ValueError(f"{name}: probabilities contain NaN or infinity")
    if np.any(work < 0):
        raise ValueError(f"{name}: probabilities must be >= 0, got {work.min()!r}")
    tol = PROBABILITY_SUM_TOL[work.dtype.name]
    sums = work.sum(axis=1, dtype=np.float64)
    worst = int(np.argmax(np.abs(sums - 1)))
    if abs(sums[worst] - 1) > tol:
        raise ValueError(f"{name}: each row must be a probability vector summing to 1 "
                         f"(within {tol:g}); row {worst} sums to {sums[worst]!r}")
    return np.ascontiguousarray(work, dtype=dtype)
