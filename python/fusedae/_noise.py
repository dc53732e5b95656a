"""Input corruption drawn with NumPy, for pictures and metrics outside training.

The same kinds and levels as the engine's (docs/math.md): the draws come from
a NumPy Generator, not the engine's Philox stream, so they match training
noise in distribution, not bit for bit.
"""
from __future__ import annotations

import numpy as np


def corrupt(X: np.ndarray, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """``X`` with Gaussian noise of standard deviation ``level``, or with a
    share ``level`` of its entries set to 0 (``masking``) or to 1 and 0 in
    equal parts (``salt_pepper``)."""
    if kind == "gaussian":
        return X + level * rng.standard_normal(X.shape)
    u = rng.random(X.shape)
    if kind == "masking":
        return np.where(u < level, 0.0, X)
    return np.where(u < 0.5 * level, 1.0, np.where(u < level, 0.0, X))
