"""Categories discovered by a sparse code (the chapter's §2 and §3.7), measured.

The chapter claims that the KL sparsity term makes the code "resemble a
one-hot coding vector for the independent categories of a training set".
This module turns that claim into numbers:

* each sample is assigned to its most active code unit (the one-hot reading
  of the code), and, separately, to a k-means cluster of the codes;
* each assignment is scored against the true labels by purity and
  normalized mutual information (NMI), beside k-means on the raw data;
* self-taught learning: a :class:`~fusedae.Classifier` trained on the codes
  versus one trained on the raw inputs.

:func:`category_report` runs the whole measurement; ``python -m fusedae
categories`` prints it (docs/categories.md has the numbers).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _labels

#: The measurement's defaults on scikit-learn's digits (1797 × 64, scaled to
#: [0, 1]); docs/categories.md explains the choices.
DEFAULTS = {
    "n_hidden": 64,
    "sparsity_target": 0.05,
    "sparsity_weight": 3.0,
    "weight_decay": 1e-4,
    "optimizer": "adam",
    "epochs": 300,
    "learning_rate": 3e-3,
    "batch_size": 64,
    "classifier_epochs": 100,
    "classifier_hidden": 64,
}


def most_active_unit(codes: ArrayLike) -> np.ndarray:
    """The one-hot reading of a code: index of each row's largest unit."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] < 1 or codes.shape[1] < 1:
        raise ValueError(f"codes: expected a non-empty 2-D array (rows are samples), "
                         f"got shape {codes.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError("codes: contains NaN or infinity")
    return np.argmax(codes, axis=1)


def purity(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    """Fraction of samples whose cluster's majority label is their own label.

    purity = (1/M)·Σ_clusters max_label |cluster ∩ label|. It is 1 for a
    perfect clustering, and also rises towards 1 as the number of clusters
    grows (M singletons are pure), so read it beside NMI, which does not.
    """
    _, t = _labels.fit_classes(labels_true, "labels_true")
    _, p = _labels.fit_classes(labels_pred, "labels_pred")
    if len(t) != len(p):
        raise ValueError(f"labels_pred: expected {len(t)} labels (as many as labels_true), "
                         f"got {len(p)}")
    table = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    return float(table.max(axis=1).sum() / len(t))


def score_assignment(labels_true: ArrayLike, labels_pred: ArrayLike) -> dict[str, float]:
    """Purity, NMI and the number of clusters used by an assignment."""
    from sklearn.metrics import normalized_mutual_info_score

    return {
        "purity": purity(labels_true, labels_pred),
        "nmi": float(normalized_mutual_info_score(labels_true, labels_pred)),
        "clusters": int(len(np.unique(labels_pred))),
    }


def category_scores(codes: ArrayLike, labels: ArrayLike, *, n_clusters: int | None = None,
                    random_state: int = 0) -> dict[str, dict[str, float]]:
    """Score a code's categories against the true labels.

    Parameters
    ----------
    codes : array-like of shape (M, N)
        Code vectors (e.g. ``SparseAutoencoder.transform(X)``).
    labels : array-like of shape (M,)
        True category of each row.
    n_clusters : int, optional
        Clusters for k-means on the codes; default: the number of classes.
    random_state : int

    Returns
    -------
    dict
        ``{"most_active_unit": {...}, "kmeans_codes": {...}}``, each with
        purity, nmi and clusters.
    """
    from sklearn.cluster import KMeans

    unit = most_active_unit(codes)
    classes, _ = _labels.fit_classes(labels, "labels")
    # fit_classes has checked that labels is a 1-D array-like, which has a len().
    if len(unit) != len(labels):  # type: ignore[arg-type]
        raise ValueError(f"labels: expected {len(unit)} labels (one per code row), "
                         f"got {len(labels)}")  # type: ignore[arg-type]
    k = len(classes) if n_clusters is None else n_clusters
    km = KMeans(k, n_init=10, random_state=random_state).fit_predict(np.asarray(codes))
    return {"most_active_unit": score_assignment(labels, unit),
            "kmeans_codes": score_assignment(labels, km)}


def load_digits_scaled() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, pixels scaled to [0, 1], and their labels."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def category_report(X: ArrayLike | None = None, y: ArrayLike | None = None, *,
                    random_state: int = 0, n_threads: int | None = None, verbose: bool = False,
                    **overrides: Any) -> dict[str, Any]:
    """The whole measurement: sparse code categories, baselines, self-taught learning.

    Trains a :class:`~fusedae.SparseAutoencoder` (and, as the control, the
    same network without the sparsity term) on X, scores the categories of
    their codes, k-means on X as the baseline, and classifiers on the codes
    versus on X (stratified 70/30 split; the autoencoders see only the
    training part).

    Parameters
    ----------
    X, y : arrays, optional
        Data in [0, 1] and labels; default :func:`load_digits_scaled`.
    random_state : int
    n_threads : int, optional
    verbose : bool
    **overrides
        Any key of :data:`DEFAULTS`.

    Returns
    -------
    dict
        ``rows``: one entry per method (name, purity, nmi, clusters,
        test_accuracy where it applies), ``params``: the hyperparameters,
        ``seconds``: wall time of each part.
    """
    from sklearn.cluster import KMeans
    from sklearn.model_selection import train_test_split

    from .autoencoder import Autoencoder, SparseAutoencoder
    from .classifier import Classifier

    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: not a parameter of the measurement; "
                         f"expected one of {sorted(DEFAULTS)}")
    params = {**DEFAULTS, **overrides}
    if X is None:
        X, y = load_digits_scaled()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=random_state)
    seconds = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - t0
        if verbose:
            print(f"{name}: {seconds[name]:.2f} s", flush=True)
        return out

    ae_kw = dict(epochs=params["epochs"], learning_rate=params["learning_rate"],
                 weight_decay=params["weight_decay"], optimizer=params["optimizer"],
                 batch_size=params["batch_size"], random_state=random_state,
                 n_threads=n_threads)
    sparse = timed("sparse autoencoder", lambda: SparseAutoencoder(
        params["n_hidden"], sparsity_target=params["sparsity_target"],
        sparsity_weight=params["sparsity_weight"], **ae_kw).fit(X_train))
    dense = timed("plain autoencoder", lambda: Autoencoder(params["n_hidden"], **ae_kw)
                  .fit(X_train))

    rows = []
    n_classes = len(np.unique(y))
    for name, model in (("sparse code", sparse), ("plain code (no sparsity term)", dense)):
        codes = model.transform(X)
        scores = category_scores(codes, y, random_state=random_state)
        rows.append({"method": f"{name}: most active unit", **scores["most_active_unit"]})
        rows.append({"method": f"{name}: k-means ({n_classes})", **scores["kmeans_codes"]})
    raw = timed("k-means raw", lambda: KMeans(n_classes, n_init=10, random_state=random_state)
                .fit_predict(X))
    rows.append({"method": f"raw pixels: k-means ({n_classes})", **score_assignment(y, raw)})

    clf_kw = dict(epochs=params["classifier_epochs"], random_state=random_state,
                  n_threads=n_threads)
    hidden = params["classifier_hidden"]
    on_raw = timed("classifier raw", lambda: Classifier(hidden, **clf_kw).fit(X_train, y_train))
    on_code = timed("classifier code", lambda: Classifier(hidden, **clf_kw).fit(
        sparse.transform(X_train), y_train))
    linear_raw = Classifier((), **clf_kw).fit(X_train, y_train)
    linear_code = Classifier((), **clf_kw).fit(sparse.transform(X_train), y_train)
    rows += [
        {"method": f"classifier ({hidden} hidden) on raw pixels",
         "test_accuracy": on_raw.score(X_test, y_test)},
        {"method": f"classifier ({hidden} hidden) on the sparse code",
         "test_accuracy": on_code.score(sparse.transform(X_test), y_test)},
        {"method": "softmax regression on raw pixels",
         "test_accuracy": linear_raw.score(X_test, y_test)},
        {"method": "softmax regression on the sparse code",
         "test_accuracy": linear_code.score(sparse.transform(X_test), y_test)},
    ]
    return {"rows": rows, "params": {**params, "random_state": random_state},
            "mean_activation": float(sparse.mean_activation_.mean()), "seconds": seconds}


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a plain-text table."""
    lines = [f"{'method':<52} {'purity':>7} {'NMI':>7} {'clusters':>8} {'test acc':>8}"]
    for r in report["rows"]:
        def cell(key, fmt):
            return format(r[key], fmt) if key in r else ""
        lines.append(f"{r['method']:<52} {cell('purity', '.3f'):>7} {cell('nmi', '.3f'):>7} "
                     f"{cell('clusters', 'd'):>8} {cell('test_accuracy', '.3f'):>8}")
    return "\n".join(lines)
