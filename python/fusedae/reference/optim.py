"""First-order optimizers, with PyTorch's conventions, in plain NumPy.

Each optimizer updates a list of parameter arrays *in place* from a list of
gradient arrays of the same shapes, via ``optimizer.step(params, grads)``.
Per-parameter state (velocities, moments) is allocated lazily, as zeros of
each parameter's shape and dtype, on the first step, and is exposed as the
``state`` dict for the engine's tests to compare against.

The update rules, for a parameter ``p`` with gradient ``g``:

* SGD:       ``p <- p - lr g``
* Momentum:  ``v <- mu v + g``; ``p <- p - lr v``  (``v_0 = 0``; PyTorch's
  ``SGD(momentum=mu)`` without dampening or Nesterov)
* Adam:      ``t <- t + 1``; ``m <- b1 m + (1 - b1) g``;
  ``v <- b2 v + (1 - b2) g^2``;
  ``p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``

Weight decay is *not* an optimizer option here: it is part of the
objective (:mod:`fusedae.reference.mlp`), so its ``lambda W`` term is
already in the gradients.
"""
import math
import numbers

import numpy as np

from .mlp import loss_and_gradient

__all__ = ["SGD", "Momentum", "Adam", "train_step"]


def _check_real(name, value, low, high, low_inclusive, high_inclusive):
    """Raise ValueError naming `name` unless `value` is a finite real in the
    given interval."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value)
          and (value >= low if low_inclusive else value > low)
          and (value <= high if high_inclusive else value < high))
    if not ok:
        lo = "[" if low_inclusive else "("
        hi = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be a finite number in {lo}{low}, "
                         f"{high}{hi}, got {value!r}")
    return float(value)


def _check_lists(params, grads, state_like=None):
    """Check that params and grads pair up (and match existing state)."""
    params, grads = list(params), list(grads)
    if len(params) != len(grads):
        raise ValueError(f"got {len(params)} parameters but {len(grads)} "
                         f"gradients")
    for i, (p, g) in enumerate(zip(params, grads)):
        if not isinstance(p, np.ndarray):
            raise TypeError(f"params[{i}] must be an ndarray (it is updated "
                            f"in place), got {type(p).__name__}")
        if np.shape(g) != p.shape:
            raise ValueError(f"grads[{i}] has shape {np.shape(g)}, "
                             f"params[{i}] has shape {p.shape}")
    if state_like is not None and [s.shape for s in state_like] != [
            p.shape for p in params]:
        raise ValueError("params do not match the shapes the optimizer "
                         "state was allocated for")
    return params, grads


class SGD:
    """Plain stochastic gradient descent: ``p <- p - lr g``.

    Parameters
    ----------
    learning_rate : float
        ``lr > 0``, finite.

    Attributes
    ----------
    state : dict
        Empty: SGD keeps no state.
    """

    def __init__(self, learning_rate):
        self.learning_rate = _check_real("learning_rate", learning_rate,
                                         0.0, math.inf, False, False)
        self.state = {}

    def step(self, params, grads):
        """Update each array of `params` in place from `grads`."""
        params, grads = _check_lists(params, grads)
        for p, g in zip(params, grads):
            p -= self.learning_rate * g


class Momentum:
    """SGD with heavy-ball momentum, PyTorch convention.

    .. math:: v \\leftarrow \\mu v + g, \\qquad p \\leftarrow p - \\eta v

    with ``v = 0`` before the first step (so the first step is plain SGD).
    Note the learning rate multiplies the velocity, not the gradient inside
    it (the other common convention, ``v <- mu v + lr g``, differs once the
    learning rate changes).

    Parameters
    ----------
    learning_rate : float
        ``lr > 0``, finite.
    momentum : float, default 0.9
        ``0 <= mu < 1``.

    Attributes
    ----------
    state : dict
        ``{"v": list of ndarray or None}``: one velocity per parameter,
        None before the first step.
    """

    def __init__(self, learning_rate, momentum=0.9):
        self.learning_rate = _check_real("learning_rate", learning_rate,
                                         0.0, math.inf, False, False)
        self.momentum = _check_real("momentum", momentum, 0.0, 1.0,
                                    True, False)
        self.state = {"v": None}

    def step(self, params, grads):
        """Update each array of `params` in place from `grads`."""
        params, grads = _check_lists(params, grads, self.state["v"])
        if self.state["v"] is None:
            self.state["v"] = [np.zeros_like(p) for p in params]
        for p, g, v in zip(params, grads, self.state["v"]):
            v *= self.momentum
            v += g
            p -= self.learning_rate * v


class Adam:
    """Adam with bias correction, PyTorch convention (eps outside the root).

    .. math::
        t &\\leftarrow t + 1 \\\\
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g \\\\
        v &\\leftarrow \\beta_2 v + (1 - \\beta_2) g^2 \\\\
        p &\\leftarrow p - \\eta \\, \\frac{m / (1 - \\beta_1^t)}
                           {\\sqrt{v / (1 - \\beta_2^t)} + \\epsilon}

    with ``m = v = 0`` and ``t = 0`` before the first step.

    Parameters
    ----------
    learning_rate : float
        ``lr > 0``, finite.
    beta1 : float, default 0.9
        ``0 <= beta1 < 1``.
    beta2 : float, default 0.999
        ``0 <= beta2 < 1``.
    eps : float, default 1e-8
        ``eps > 0``, finite.

    Attributes
    ----------
    state : dict
        ``{"t": int, "m": list of ndarray or None, "v": list of ndarray or
        None}``: the step count and the first and second moment estimates
        (None before the first step).
    """

    def __init__(self, learning_rate, beta1=0.9, beta2=0.999, eps=1e-8):
        self.learning_rate = _check_real("learning_rate", learning_rate,
                                         0.0, math.inf, False, False)
        self.beta1 = _check_real("beta1", beta1, 0.0, 1.0, True, False)
        self.beta2 = _check_real("beta2", beta2, 0.0, 1.0, True, False)
        self.eps = _check_real("eps", eps, 0.0, math.inf, False, False)
        self.state = {"t": 0, "m": None, "v": None}

    def step(self, params, grads):
        """Update each array of `params` in place from `grads`."""
        params, grads = _check_lists(params, grads, self.state["m"])
        if self.state["m"] is None:
            self.state["m"] = [np.zeros_like(p) for p in params]
            self.state["v"] = [np.zeros_like(p) for p in params]
        self.state["t"] += 1
        t = self.state["t"]
        # Bias corrections in Python floats (float64), as PyTorch does; they
        # then scale arrays of the parameters' own dtype.
        correction1 = 1.0 - self.beta1**t
        correction2 = 1.0 - self.beta2**t
        for p, g, m, v in zip(params, grads, self.state["m"],
                              self.state["v"]):
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * (g * g)
            p -= (self.learning_rate * (m / correction1)
                  / (np.sqrt(v / correction2) + self.eps))


def train_step(Ws, bs, X, Y, spec, optimizer):
    """One optimisation step on one batch.

    Computes ``J`` and its gradient with
    :func:`~fusedae.reference.mlp.loss_and_gradient` (the gradients already
    contain the weight-decay term ``lambda W``) and then calls
    ``optimizer.step(Ws + bs, dWs + dbs)``, updating `Ws` and `bs` in place.

    Parameters
    ----------
    Ws, bs : list of ndarray
        Parameters, updated in place.
    X : ndarray, shape (B, n_0)
    Y : ndarray, shape (B, n_L)
    spec : MLPSpec
    optimizer : SGD, Momentum or Adam
        The same optimizer object must be passed on every step (it holds
        the state).

    Returns
    -------
    float
        ``J`` *before* the update.
    """
    J, dWs, dbs = loss_and_gradient(Ws, bs, X, Y, spec)
    optimizer.step(list(Ws) + list(bs), list(dWs) + list(dbs))
    return J
