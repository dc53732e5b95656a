"""Elementwise activations, data losses and the sparsity (KL) penalty.

This module is part of the plain-NumPy *specification* of the fused C++
engine: every kernel of the engine is tested against these functions, so
they are written for clarity and exactness rather than speed.

Conventions
-----------
* Batches are 2-D arrays of shape ``(B, n)``: one row per example.
* Every function computes in the dtype of its inputs (float32 or float64);
  nothing is silently promoted to float64.
* Losses are *summed over features and averaged over rows*, so their
  gradients carry a factor ``1/B``.
"""
import numpy as np

__all__ = [
    "LEAKY_RELU_SLOPE",
    "ACTIVATIONS",
    "OUTPUT_ACTIVATIONS",
    "LOSSES",
    "RHOHAT_EPS",
    "activation",
    "activation_derivative",
    "sigmoid",
    "squared_error",
    "squared_error_gradient",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_gradient",
    "softmax",
    "categorical_cross_entropy_with_logits",
    "categorical_cross_entropy_with_logits_gradient",
    "bernoulli_kl",
    "clamp_rhohat",
    "sparsity_penalty",
    "sparsity_delta",
]

#: Slope of ``leaky_relu`` for negative inputs.
LEAKY_RELU_SLOPE = 0.01

#: Elementwise activations: accepted by :func:`activation` and
#: :func:`activation_derivative`, on any layer.
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")

#: Activations an output layer may have: the elementwise ones, and the
#: row-wise softmax, which only goes with the categorical cross entropy (its
#: Jacobian is not diagonal, so it has no elementwise derivative; paired with
#: that loss the output delta is simply softmax(Z) - Y).
OUTPUT_ACTIVATIONS = ACTIVATIONS + ("softmax",)

#: Names of the data losses the engine implements.
LOSSES = ("squared_error", "binary_cross_entropy", "categorical_cross_entropy")

#: The output activation each loss needs (None: any elementwise one).
LOSS_OUTPUT = {"squared_error": None, "binary_cross_entropy": "sigmoid",
               "categorical_cross_entropy": "softmax"}

#: Clamp margin for the mean activation rho-hat, per dtype (see
#: :func:`clamp_rhohat`).
RHOHAT_EPS = {np.dtype(np.float32): 2.0**-20, np.dtype(np.float64): 2.0**-40}


def _check_activation(name, allowed=ACTIVATIONS):
    if name not in allowed:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {allowed}")


def _batch_size(x):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D batch (rows are examples), got "
                         f"an array of shape {x.shape}")
    return x.shape[0]


def sigmoid(z):
    """Logistic sigmoid, computed without overflow.

    .. math:: \\sigma(z) = \\frac{1}{1 + e^{-z}}

    Only ``exp(-|z|)`` is ever evaluated, which lies in ``(0, 1]``, so no
    overflow (and no warning) occurs for any finite ``z``:
    ``sigma(z) = 1 / (1 + e)`` for ``z >= 0`` and ``e / (1 + e)`` for
    ``z < 0``, with ``e = exp(-|z|)``.

    Parameters
    ----------
    z : ndarray
        Pre-activations, float32 or float64.

    Returns
    -------
    ndarray
        ``sigma(z)``, same shape and dtype as `z`.
    """
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def activation(z, name):
    """Apply the activation function ``name`` elementwise.

    ========== =====================================================
    name       f(z)
    ========== =====================================================
    sigmoid    1 / (1 + exp(-z))   (computed stably, see :func:`sigmoid`)
    tanh       tanh(z)
    relu       max(z, 0)
    leaky_relu z if z > 0 else LEAKY_RELU_SLOPE * z
    identity   z
    softmax    exp(z - max z) / sum(exp(z - max z)), along each row
    ========== =====================================================

    Parameters
    ----------
    z : ndarray
        Pre-activations ``Z = A_prev W + b``.
    name : str
        One of :data:`OUTPUT_ACTIVATIONS`.

    Returns
    -------
    ndarray
        ``f(z)``, same shape and dtype as `z`.

    Raises
    ------
    ValueError
        If `name` is not a known activation.
    """
    _check_activation(name, OUTPUT_ACTIVATIONS)
    z = np.asarray(z)
    if name == "softmax":
        return softmax(z)
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_RELU_SLOPE * z)
    return z.copy()  # identity: a copy, so callers may modify A freely


def activation_derivative(a, name):
    """Derivative f'(z) of an activation, expressed through ``a = f(z)``.

    The engine stores only the layer outputs ``A``, not ``Z``, so the
    derivative has to be recovered from the output:

    ========== =====================================================
    name       f'(z) in terms of a = f(z)
    ========== =====================================================
    sigmoid    a (1 - a)
    tanh       1 - a^2
    relu       1 where a > 0 else 0
    leaky_relu 1 where a > 0 else LEAKY_RELU_SLOPE
    identity   1
    ========== =====================================================

    For relu and leaky_relu, ``a > 0`` exactly when ``z > 0`` (the slope is
    positive), so the output determines the derivative; at the kink ``z = 0``
    the value from the left (0, resp. the slope) is used.

    Parameters
    ----------
    a : ndarray
        Activations ``A = f(Z)``.
    name : str
        One of :data:`ACTIVATIONS`.

    Returns
    -------
    ndarray
        ``f'(z)``, same shape and dtype as `a`.

    Raises
    ------
    ValueError
        If `name` is not a known activation.
    """
    _check_activation(name)
    a = np.asarray(a)
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "leaky_relu":
        return np.where(a > 0, a.dtype.type(1), a.dtype.type(LEAKY_RELU_SLOPE))
    return np.ones_like(a)


def squared_error(xhat, x):
    """Batch-averaged squared-error loss.

    .. math:: L = \\frac{1}{B} \\sum_{m=1}^{B} \\tfrac12
              \\lVert \\hat x_m - x_m \\rVert^2

    where ``B`` is the number of rows (examples).

    Parameters
    ----------
    xhat : ndarray, shape (B, n)
        Reconstructions.
    x : ndarray, shape (B, n)
        Targets.

    Returns
    -------
    scalar
        The loss, a NumPy scalar of the inputs' dtype.
    """
    diff = np.asarray(xhat) - np.asarray(x)
    return 0.5 * np.sum(diff * diff) / _batch_size(diff)


def squared_error_gradient(xhat, x):
    """Gradient of :func:`squared_error` with respect to ``xhat``.

    .. math:: \\frac{\\partial L}{\\partial \\hat x} = \\frac{\\hat x - x}{B}

    Parameters
    ----------
    xhat, x : ndarray, shape (B, n)

    Returns
    -------
    ndarray, shape (B, n)
    """
    diff = np.asarray(xhat) - np.asarray(x)
    return diff / _batch_size(diff)


def binary_cross_entropy_with_logits(z, y):
    """Batch-averaged binary cross-entropy of targets ``y`` given logits ``z``.

    .. math:: L = \\frac{1}{B} \\sum_{m,i} \\bigl[\\max(z_{mi}, 0)
              - z_{mi} y_{mi} + \\log(1 + e^{-|z_{mi}|})\\bigr]

    which equals

    .. math:: L = -\\frac{1}{B} \\sum_{m,i} \\bigl[y_{mi} \\log\\sigma(z_{mi})
              + (1 - y_{mi}) \\log(1 - \\sigma(z_{mi}))\\bigr],

    summed over features and averaged over rows. The first form never
    evaluates ``log(0)`` or ``exp`` of a large number, so it is finite for
    any finite logits (e.g. ``z = +-1000``), whereas the second form gives
    ``inf`` or ``nan`` once ``sigma(z)`` rounds to 0 or 1.

    Erratum: the chapter's eq. 11 prints the cross-entropy without the
    leading minus sign; that quantity is ``<= 0`` and would be *maximised*
    by a correct reconstruction. The minus sign above is the correct one:
    ``L >= 0`` and it is minimised.

    Targets may be any values in ``[0, 1]`` (not only 0/1); ``y`` need not be
    binary.

    Parameters
    ----------
    z : ndarray, shape (B, n)
        Logits (pre-activations of the sigmoid output layer).
    y : ndarray, shape (B, n)
        Targets in ``[0, 1]``.

    Returns
    -------
    scalar
        The loss, a NumPy scalar of the inputs' dtype.
    """
    z = np.asarray(z)
    y = np.asarray(y)
    terms = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return np.sum(terms) / _batch_size(z)


def binary_cross_entropy_with_logits_gradient(z, y):
    """Gradient of :func:`binary_cross_entropy_with_logits` w.r.t. ``z``.

    .. math:: \\frac{\\partial L}{\\partial z} = \\frac{\\sigma(z) - y}{B}

    Parameters
    ----------
    z, y : ndarray, shape (B, n)

    Returns
    -------
    ndarray, shape (B, n)
    """
    z = np.asarray(z)
    return (sigmoid(z) - np.asarray(y)) / _batch_size(z)


def softmax(z):
    """Row-wise softmax (the chapter's eq. 12), shifted by the row maximum.

    .. math:: a_{mk} = \\frac{e^{z_{mk} - \\max_j z_{mj}}}
              {\\sum_k e^{z_{mk} - \\max_j z_{mj}}}

    The shift leaves the value unchanged and keeps every exponent <= 0, so
    no logit overflows.

    Parameters
    ----------
    z : ndarray, shape (B, K)

    Returns
    -------
    ndarray, shape (B, K), rows summing to 1.
    """
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def categorical_cross_entropy_with_logits(z, y):
    """Batch-averaged categorical cross entropy of targets ``y`` given logits.

    .. math:: L = -\\frac{1}{B} \\sum_{m,k} y_{mk} \\log
              \\mathrm{softmax}(z_m)_k

    the chapter's eq. 13 averaged over rows. Each row of ``y`` is a one-hot
    indicator or a probability vector. Erratum: with a one-hot target of
    class k the loss is ``-log softmax_k(z)`` (eq. 14 prints
    ``softmax_k(z)`` itself, which would be *maximised*). The log-softmax is
    taken from the shifted logits, never as ``log`` of a rounded softmax, so
    a confidently wrong row costs a large finite amount instead of inf.

    Parameters
    ----------
    z : ndarray, shape (B, K)
        Logits (pre-activations of the softmax output layer).
    y : ndarray, shape (B, K)
        Targets: rows of non-negative weights (one-hot or probabilities).

    Returns
    -------
    scalar
        The loss, a NumPy scalar of the inputs' dtype.
    """
    z = np.asarray(z)
    return -np.sum(np.asarray(y) * _log_softmax(z)) / _batch_size(z)


def categorical_cross_entropy_with_logits_gradient(z, y):
    """Gradient of :func:`categorical_cross_entropy_with_logits` w.r.t. ``z``.

    .. math:: \\frac{\\partial L}{\\partial z_{mk}} =
              \\frac{\\mathrm{softmax}(z_m)_k \\sum_j y_{mj} - y_{mk}}{B}

    which is ``(softmax(z) - y) / B`` for one-hot or probability rows: the
    chapter's eq. 15 (true class, ``a_k - 1``) and eq. 16 (other classes,
    ``a_k``) as corrected in the errata; the printed equations call this
    ``da_k/dz_k`` and drop the minus of eq. 15's middle term.

    Parameters
    ----------
    z, y : ndarray, shape (B, K)

    Returns
    -------
    ndarray, shape (B, K)
    """
    z = np.asarray(z)
    y = np.asarray(y)
    return (softmax(z) * y.sum(axis=-1, keepdims=True) - y) / _batch_size(z)


def bernoulli_kl(rho, rhohat):
    """KL divergence between Bernoulli distributions, elementwise.

    .. math:: \\mathrm{KL}(\\rho \\,\\|\\, \\hat\\rho) =
              \\rho \\log\\frac{\\rho}{\\hat\\rho}
              + (1 - \\rho) \\log\\frac{1 - \\rho}{1 - \\hat\\rho}

    No clamping is done here: ``rhohat`` equal to 0 or 1 gives ``inf``
    (use :func:`clamp_rhohat` first). It is 0 when ``rhohat == rho`` and
    positive otherwise.

    Parameters
    ----------
    rho : float or ndarray
        Target mean activation, in ``(0, 1)``.
    rhohat : float or ndarray
        Mean activation(s), in ``(0, 1)``.

    Returns
    -------
    ndarray or scalar
        The divergence, in the dtype of `rhohat` when `rho` is a Python
        float.
    """
    rhohat = np.asarray(rhohat)
    return (rho * np.log(rho / rhohat)
            + (1 - rho) * np.log((1 - rho) / (1 - rhohat)))


def clamp_rhohat(rhohat):
    """Clip mean activations to ``[eps, 1 - eps]`` with ``eps = RHOHAT_EPS``.

    .. math:: \\hat\\rho_c = \\min(\\max(\\hat\\rho, \\varepsilon),
              1 - \\varepsilon), \\quad \\varepsilon = 2^{-20}
              \\text{ (float32)}, \\; 2^{-40} \\text{ (float64)}

    Why: a saturated sigmoid unit outputs exactly 1 (or 0) in float32 for
    every row, so its mean activation ``rhohat`` is exactly 1 (or 0). The
    KL term and its derivative are then ``+-inf`` and the next update turns
    the weights into NaN. This is what happens in PyTorch and JAX on a
    1024-wide sigmoid layer fed dense U(0, 1) inputs. With the clamp, both
    the penalty and its derivative are evaluated at the clamped value, so a
    saturated unit keeps a finite push back toward ``rho``: at
    ``rhohat = 1 - eps`` the derivative of the KL is
    ``-rho/(1-eps) + (1-rho)/eps``, about ``(1 - rho)/eps`` -- large but
    finite. (The clamp's own derivative, 0 outside the interval, is
    deliberately *not* applied: it would switch the push off exactly when
    it is needed.)

    The push is on the activations; back-propagation then multiplies it by
    the sigmoid's ``f' = a (1 - a)``. For a row where the unit's output has
    rounded to exactly 1 that factor is 0, so the push reaches the unit's
    weights only through rows where ``a < 1``. If every row is saturated,
    the unit gets no gradient at all: the clamp guarantees finite values,
    not recovery.

    ``eps = 2**-20`` is representable next to 1 in float32: the float32
    spacing just below 1 is ``2**-24``, so ``1 - 2**-20`` is exact and
    distinct from 1. For float64, ``2**-40`` plays the same role with room
    to spare (spacing below 1 is ``2**-53``).

    Parameters
    ----------
    rhohat : ndarray
        Mean activations, float32 or float64.

    Returns
    -------
    ndarray
        The clipped values, same shape and dtype.

    Raises
    ------
    TypeError
        If the dtype is neither float32 nor float64.
    """
    rhohat = np.asarray(rhohat)
    try:
        eps = RHOHAT_EPS[rhohat.dtype]
    except KeyError:
        raise TypeError(f"clamp_rhohat needs float32 or float64, got "
                        f"{rhohat.dtype}") from None
    eps = rhohat.dtype.type(eps)
    return np.clip(rhohat, eps, 1 - eps)


def sparsity_penalty(rhohat, rho, beta):
    """Sparsity penalty of one hidden layer.

    .. math:: P = \\beta \\sum_{n} \\mathrm{KL}(\\rho \\,\\|\\,
              \\hat\\rho_{c,n}), \\qquad \\hat\\rho_c =
              \\mathrm{clamp}(\\hat\\rho)

    where ``rhohat[n]`` is the mean activation of hidden unit ``n`` over the
    batch and the clamp is :func:`clamp_rhohat`.

    Parameters
    ----------
    rhohat : ndarray, shape (n,)
        Mean activations of the layer's units.
    rho : float
        Target mean activation, in ``(0, 1)``.
    beta : float
        Penalty weight, ``>= 0``.

    Returns
    -------
    scalar
        The penalty, a NumPy scalar of `rhohat`'s dtype.
    """
    return beta * np.sum(bernoulli_kl(rho, clamp_rhohat(rhohat)))


def sparsity_delta(rhohat, rho, beta, batch_size):
    """Sparsity term of the back-propagated error of the sparse layer.

    .. math:: \\frac{\\partial P}{\\partial a_{m,n}} = \\frac{\\beta}{B}
              \\left(-\\frac{\\rho}{\\hat\\rho_{c,n}}
              + \\frac{1 - \\rho}{1 - \\hat\\rho_{c,n}}\\right)

    with ``rhohat_c = clamp_rhohat(rhohat)``. Since ``rhohat_n`` is the mean
    over the ``B`` rows of ``a[:, n]``, each activation contributes
    ``1/B`` to it, hence the factor ``1/B``; the value is the same for every
    row ``m``. It is added to ``delta_next @ W_next.T`` *before* the
    multiplication by the sparse layer's ``f'`` (it broadcasts over rows).

    Parameters
    ----------
    rhohat : ndarray, shape (n,)
        Mean activations of the sparse layer over the batch.
    rho : float
        Target mean activation, in ``(0, 1)``.
    beta : float
        Penalty weight, ``>= 0``.
    batch_size : int
        ``B``, the number of rows the mean was taken over.

    Returns
    -------
    ndarray, shape (n,)
        In `rhohat`'s dtype.
    """
    rc = clamp_rhohat(rhohat)
    return beta * (-rho / rc + (1 - rho) / (1 - rc)) / batch_size
