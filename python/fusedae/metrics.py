"""Measures of generated samples."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def frechet_distance(A: ArrayLike, B: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to the rows of A and of B.

    ‖μ_A − μ_B‖² + tr(Σ_A + Σ_B − 2·(Σ_A^{1/2} Σ_B Σ_A^{1/2})^{1/2}), the
    quantity behind FID when A and B are features of real and generated
    samples. The square roots are taken through symmetric eigendecompositions
    (negative eigenvalues from rounding are clipped to 0), so singular
    covariances, e.g. of ReLU features that are never active, are fine.

    Parameters
    ----------
    A, B : array-like of shape (n_a, d) and (n_b, d), at least 2 rows each

    Returns
    -------
    float
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1]:
        raise ValueError(f"A, B: expected 2-D arrays with the same number of columns, got "
                         f"shapes {A.shape} and {B.shape}")
    if len(A) < 2 or len(B) < 2:
        raise ValueError("A, B: expected at least 2 rows each (a covariance needs them)")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        raise ValueError("A, B: contain NaN or infinity")
    ma, mb = A.mean(axis=0), B.mean(axis=0)
    ca, cb = np.atleast_2d(np.cov(A, rowvar=False)), np.atleast_2d(np.cov(B, rowvar=False))
    w, V = np.linalg.eigh(ca)
    root_a = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
    cross = np.linalg.eigvalsh(root_a @ cb @ root_a)
    return float(np.sum((ma - mb) ** 2) + np.trace(ca) + np.trace(cb)
                 - 2 * np.sum(np.sqrt(np.clip(cross, 0, None))))
