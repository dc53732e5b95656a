"""The multilayer perceptron the engine trains, in plain NumPy.

A network of ``L`` dense layers maps a batch ``X`` of shape ``(B, n_0)`` to
``A_L`` of shape ``(B, n_L)``:

.. math:: A_0 = X, \\qquad Z_l = A_{l-1} W_l + b_l, \\qquad
          A_l = f_l(Z_l), \\qquad l = 1, \\dots, L

with ``W_l`` of shape ``(n_{l-1}, n_l)`` (row-major; the first weight
matrix is D x N for D inputs and N hidden units) and ``b_l`` of shape
``(n_l,)``. The objective is

.. math:: J = \\mathcal{L}(A_L \\text{ or } Z_L, Y)
          + \\frac{\\lambda}{2} \\sum_l \\lVert W_l \\rVert_F^2
          + \\beta \\sum_n \\mathrm{KL}(\\rho \\,\\|\\,
            \\mathrm{clamp}(\\hat\\rho_n)),
          \\qquad \\hat\\rho_n = \\frac{1}{B} \\sum_m (A_s)_{m,n}

where the data loss is :func:`~fusedae.reference.ops.squared_error` of
``A_L``, :func:`~fusedae.reference.ops.binary_cross_entropy_with_logits`
or :func:`~fusedae.reference.ops.categorical_cross_entropy_with_logits`
of ``Z_L``, weight decay applies to weights only (never biases), and the
KL term is present only when a sparsity layer ``s`` is set and
``beta > 0``.

The engine's flat parameter vector is ``[W_1 (C order), b_1, W_2, b_2,
...]``; see :func:`flatten` and :func:`unflatten`.
"""
import math
import numbers
import operator
from dataclasses import dataclass

import numpy as np

from .ops import (
    ACTIVATIONS,
    LOSS_OUTPUT,
    LOSSES,
    OUTPUT_ACTIVATIONS,
    activation,
    activation_derivative,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_gradient,
    categorical_cross_entropy_with_logits,
    categorical_cross_entropy_with_logits_gradient,
    sparsity_delta,
    sparsity_penalty,
    squared_error,
    squared_error_gradient,
)

__all__ = [
    "MLPSpec",
    "init_params",
    "forward",
    "loss",
    "loss_and_gradient",
    "backward",
    "flatten",
    "unflatten",
    "n_params",
    "mean_activation",
]


@dataclass(frozen=True)
class MLPSpec:
    """Architecture and objective of a network.

    Parameters
    ----------
    sizes : tuple of int
        ``(n_0, n_1, ..., n_L)``: ``n_0`` inputs and ``L >= 1`` dense layers,
        each size ``>= 1``.
    activations : tuple of str
        ``L`` names from :data:`~fusedae.reference.ops.ACTIVATIONS`;
        ``activations[l-1]`` is layer ``l``'s. The output layer may also be
        ``"softmax"`` (with the categorical cross entropy only).
    loss : str
        ``"squared_error"``, ``"binary_cross_entropy"`` (needs a
        ``"sigmoid"`` output layer) or ``"categorical_cross_entropy"``
        (needs a ``"softmax"`` output layer); the cross entropies are
        computed from the logits ``Z_L``.
    weight_decay : float
        ``lambda >= 0``; adds ``(lambda/2) sum_l ||W_l||_F^2``.
    sparsity_layer : int or None
        Index ``s`` in ``1..L-1`` of the hidden layer whose output ``A_s``
        carries the KL sparsity term, or None.
    sparsity_target : float
        ``rho``, in ``(0, 1)``.
    sparsity_weight : float
        ``beta >= 0``.

    Raises
    ------
    ValueError
        Naming the offending field, if any of the above is violated.
    """

    sizes: tuple
    activations: tuple
    loss: str = "squared_error"
    weight_decay: float = 0.0
    sparsity_layer: "int | None" = None
    sparsity_target: float = 0.05
    sparsity_weight: float = 0.0

    def __post_init__(self):
        # Normalise lists to tuples so that specs stay hashable and immutable.
        try:
            sizes = tuple(_as_int(n) for n in self.sizes)
        except TypeError:
            raise ValueError(f"sizes must be a sequence of ints, got "
                             f"{self.sizes!r}") from None
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(f"sizes must hold at least two sizes, each >= 1, "
                             f"got {sizes!r}")
        object.__setattr__(self, "sizes", sizes)

        if isinstance(self.activations, str):
            raise ValueError("activations must be a sequence of names, "
                             "not a single string")
        activations = tuple(self.activations)
        n_layers = len(sizes) - 1
        if len(activations) != n_layers:
            raise ValueError(f"activations must name {n_layers} activations "
                             f"(one per layer), got {len(activations)}")
        for l, name in enumerate(activations, start=1):
            allowed = OUTPUT_ACTIVATIONS if l == n_layers else ACTIVATIONS
            if name not in allowed:
                raise ValueError(f"activations: unknown activation {name!r} "
                                 f"for layer {l}; expected one of {allowed}")
        object.__setattr__(self, "activations", activations)

        if self.loss not in LOSSES:
            raise ValueError(f"loss: unknown loss {self.loss!r}; expected one "
                             f"of {LOSSES}")
        needed = LOSS_OUTPUT[self.loss]
        if needed is not None and activations[-1] != needed:
            raise ValueError(f"loss {self.loss!r} needs a {needed!r} "
                             f"output layer, got activations[-1] = "
                             f"{activations[-1]!r}")
        if activations[-1] == "softmax" and self.loss != "categorical_cross_entropy":
            raise ValueError("activations: a 'softmax' output layer needs "
                             "loss 'categorical_cross_entropy'")

        if not _finite_at_least_zero(self.weight_decay):
            raise ValueError(f"weight_decay must be finite and >= 0, got "
                             f"{self.weight_decay!r}")

        if self.sparsity_layer is not None:
            try:
                s = _as_int(self.sparsity_layer)
            except TypeError:
                s = None
            if s is None or not 1 <= s <= n_layers - 1:
                raise ValueError(f"sparsity_layer must be a hidden layer "
                                 f"index in 1..{n_layers - 1} or None, got "
                                 f"{self.sparsity_layer!r}")
            object.__setattr__(self, "sparsity_layer", s)
        rho = self.sparsity_target
        if not (isinstance(rho, numbers.Real) and 0 < rho < 1):
            raise ValueError(f"sparsity_target must lie in (0, 1), got "
                             f"{rho!r}")
        if not _finite_at_least_zero(self.sparsity_weight):
            raise ValueError(f"sparsity_weight must be finite and >= 0, got "
                             f"{self.sparsity_weight!r}")

    @property
    def n_layers(self):
        """``L``, the number of dense layers."""
        return len(self.sizes) - 1


def _as_int(n):
    # operator.index accepts Python and NumPy integers but not floats; bools
    # are ints to Python but never a meaningful size here.
    if isinstance(n, bool):
        raise TypeError("bool is not a size")
    return operator.index(n)


def _finite_at_least_zero(x):
    return (isinstance(x, numbers.Real) and not isinstance(x, bool)
            and math.isfinite(x) and x >= 0)


def _active_sparsity_layer(spec):
    """The sparse layer's index if the KL term is present, else None."""
    if spec.sparsity_layer is not None and spec.sparsity_weight > 0:
        return spec.sparsity_layer
    return None


def _check_params(Ws, bs, spec):
    L = spec.n_layers
    if len(Ws) != L or len(bs) != L:
        raise ValueError(f"expected {L} weight matrices and {L} bias "
                         f"vectors, got {len(Ws)} and {len(bs)}")
    for l in range(1, L + 1):
        w_shape = (spec.sizes[l - 1], spec.sizes[l])
        if np.shape(Ws[l - 1]) != w_shape:
            raise ValueError(f"W_{l} must have shape {w_shape}, got "
                             f"{np.shape(Ws[l - 1])}")
        if np.shape(bs[l - 1]) != (spec.sizes[l],):
            raise ValueError(f"b_{l} must have shape {(spec.sizes[l],)}, got "
                             f"{np.shape(bs[l - 1])}")


def n_params(spec):
    """Number of scalar parameters: ``sum_l (n_{l-1} + 1) n_l``.

    Parameters
    ----------
    spec : MLPSpec

    Returns
    -------
    int
    """
    return sum((n_in + 1) * n_out
               for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:]))


def init_params(spec, rng, dtype=np.float64):
    """Random initial parameters.

    .. math:: (W_l)_{ij} \\sim U(-r_l, r_l), \\quad
              r_l = \\sqrt{\\frac{6}{n_{l-1} + n_l + 1}}, \\qquad b_l = 0

    Parameters
    ----------
    spec : MLPSpec
    rng : numpy.random.Generator or int
        Source of randomness (an int is used as a seed).
    dtype : dtype, default float64
        float32 or float64.

    Returns
    -------
    Ws : list of ndarray
        ``W_l`` of shape ``(n_{l-1}, n_l)``.
    bs : list of ndarray
        ``b_l`` of shape ``(n_l,)``, zeros.
    """
    rng = np.random.default_rng(rng)
    Ws, bs = [], []
    for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:]):
        r = math.sqrt(6.0 / (n_in + n_out + 1))
        Ws.append(rng.uniform(-r, r, size=(n_in, n_out)).astype(dtype))
        bs.append(np.zeros(n_out, dtype=dtype))
    return Ws, bs


def forward(Ws, bs, X, spec):
    """Forward pass.

    .. math:: A_0 = X, \\quad Z_l = A_{l-1} W_l + b_l, \\quad
              A_l = f_l(Z_l)

    Parameters
    ----------
    Ws, bs : list of ndarray
        Parameters, as from :func:`init_params`.
    X : ndarray, shape (B, n_0)
        Input batch.
    spec : MLPSpec

    Returns
    -------
    As : list of ndarray
        ``[A_0 = X, A_1, ..., A_L]``, ``A_l`` of shape ``(B, n_l)``.
    Zs : list of ndarray
        ``[Z_1, ..., Z_L]`` (so ``Zs[l-1]`` is ``Z_l``).
    """
    _check_params(Ws, bs, spec)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != spec.sizes[0]:
        raise ValueError(f"X must have shape (B, {spec.sizes[0]}), got "
                         f"{X.shape}")
    As, Zs = [X], []
    for W, b, name in zip(Ws, bs, spec.activations):
        Z = As[-1] @ W + b
        Zs.append(Z)
        As.append(activation(Z, name))
    return As, Zs


def _objective(Ws, As, Zs, Y, spec):
    """``J`` from a finished forward pass, as a NumPy scalar."""
    if spec.loss == "squared_error":
        J = squared_error(As[-1], Y)
    elif spec.loss == "binary_cross_entropy":
        J = binary_cross_entropy_with_logits(Zs[-1], Y)
    else:
        J = categorical_cross_entropy_with_logits(Zs[-1], Y)
    if spec.weight_decay > 0:
        J = J + 0.5 * spec.weight_decay * sum(np.sum(W * W) for W in Ws)
    s = _active_sparsity_layer(spec)
    if s is not None:
        rhohat = As[s].mean(axis=0)
        J = J + sparsity_penalty(rhohat, spec.sparsity_target,
                                 spec.sparsity_weight)
    return J


def loss(Ws, bs, X, Y, spec):
    """Total objective ``J`` (data loss + weight decay + sparsity).

    See the module docstring for the formula.

    Parameters
    ----------
    Ws, bs : list of ndarray
    X : ndarray, shape (B, n_0)
        Inputs.
    Y : ndarray, shape (B, n_L)
        Targets (``X`` itself, or the clean inputs, for an autoencoder).
    spec : MLPSpec

    Returns
    -------
    float
    """
    As, Zs = forward(Ws, bs, X, spec)
    return float(_objective(Ws, As, Zs, np.asarray(Y), spec))


def loss_and_gradient(Ws, bs, X, Y, spec):
    """Objective ``J`` and its gradient, by back-propagation as the engine
    does it.

    Output error:

    .. math:: \\delta_L = \\frac{A_L - Y}{B} \\odot f_L'(A_L)
              \\quad\\text{(squared error)}, \\qquad
              \\delta_L = \\frac{\\sigma(Z_L) - Y}{B}
              \\quad\\text{(BCE on the logits)}

    and for the categorical cross entropy on a softmax output
    ``delta_L = (softmax(Z_L) * rowsum(Y) - Y) / B`` (``(softmax(Z_L) - Y)/B``
    for one-hot or probability rows).

    Then for ``l = L, ..., 1``:

    .. math:: \\frac{\\partial J}{\\partial W_l} = A_{l-1}^T \\delta_l
              + \\lambda W_l, \\qquad
              \\frac{\\partial J}{\\partial b_l} = \\sum_{m} (\\delta_l)_{m,:}

    .. math:: \\delta_{l-1} = \\Bigl(\\delta_l W_l^T + [l - 1 = s]\\,
              \\frac{\\beta}{B}\\Bigl(-\\frac{\\rho}{\\hat\\rho_c}
              + \\frac{1-\\rho}{1-\\hat\\rho_c}\\Bigr)\\Bigr)
              \\odot f_{l-1}'(A_{l-1})

    with ``rhohat_c`` the clamped mean activation of the sparse layer ``s``
    (:func:`~fusedae.reference.ops.sparsity_delta`).

    This is the chapter's eq. 28 with its errata fixed: the KL term sits
    *inside* the parentheses, so it is multiplied by the hidden layer's own
    derivative ``f'(z^(1))`` (eq. 28 prints ``f'(z^(2))``), and it carries
    the factor ``1/B`` like the batch-averaged data loss (eq. 25 dropped
    the ``1/M``; without it the KL term's weight would grow with the batch
    size relative to the data term). Where ``rhohat`` is clamped, the KL
    derivative is evaluated at the clamped value (see
    :func:`~fusedae.reference.ops.clamp_rhohat`), which is the engine's
    deliberate choice rather than the derivative of the clamp.

    Parameters
    ----------
    Ws, bs : list of ndarray
    X : ndarray, shape (B, n_0)
    Y : ndarray, shape (B, n_L)
    spec : MLPSpec

    Returns
    -------
    loss : float
        ``J``, as :func:`loss` computes it.
    dWs : list of ndarray
        ``dJ/dW_l``, shapes of ``Ws``.
    dbs : list of ndarray
        ``dJ/db_l``, shapes of ``bs``.
    """
    As, Zs = forward(Ws, bs, X, spec)
    Y = np.asarray(Y)
    J = float(_objective(Ws, As, Zs, Y, spec))
    L = spec.n_layers
    B = As[0].shape[0]
    s = _active_sparsity_layer(spec)

    if spec.loss == "squared_error":
        delta = (squared_error_gradient(As[L], Y)
                 * activation_derivative(As[L], spec.activations[L - 1]))
    elif spec.loss == "binary_cross_entropy":
        # Sigmoid output + cross-entropy: f'_L cancels against dL/dA_L.
        delta = binary_cross_entropy_with_logits_gradient(Zs[L - 1], Y)
    else:
        # Softmax output + categorical cross entropy: the softmax Jacobian
        # contracted with dL/dA_L collapses to softmax(Z) - Y.
        delta = categorical_cross_entropy_with_logits_gradient(Zs[L - 1], Y)

    dWs, dbs = [None] * L, [None] * L
    for l in range(L, 0, -1):
        W = Ws[l - 1]
        dW = As[l - 1].T @ delta
        if spec.weight_decay > 0:
            dW = dW + spec.weight_decay * W
        dWs[l - 1] = dW
        dbs[l - 1] = delta.sum(axis=0)
        if l > 1:
            back = delta @ W.T
            if l - 1 == s:
                rhohat = As[s].mean(axis=0)
                back = back + sparsity_delta(rhohat, spec.sparsity_target,
                                             spec.sparsity_weight, B)
            delta = back * activation_derivative(As[l - 1],
                                                 spec.activations[l - 2])
    return J, dWs, dbs


def backward(Ws, As, delta, spec, *, input_grad=False):
    """Back-propagation from a given output error ``delta_L = dJ/dZ_L``.

    The building block of models that chain networks (the variational
    autoencoder's decoder into its encoder, the GAN's discriminator into its
    generator): the caller supplies the output error, which already carries
    any ``1/B`` of a batch-averaged loss. For ``l = L, ..., 1``:

    .. math:: \\frac{\\partial J}{\\partial W_l} = A_{l-1}^T \\delta_l,
              \\qquad
              \\frac{\\partial J}{\\partial b_l} = \\sum_m (\\delta_l)_{m,:},
              \\qquad
              \\delta_{l-1} = (\\delta_l W_l^T) \\odot f_{l-1}'(A_{l-1})

    and, if `input_grad`, the gradient with respect to the input batch

    .. math:: \\frac{\\partial J}{\\partial A_0} = \\delta_1 W_1^T.

    These are the gradients of the data term only: the weight-decay term
    ``lambda W_l`` and the sparsity term of :func:`loss_and_gradient` are
    *not* included, whatever `spec` says (the caller adds decay where its
    objective has it). For a spec without decay and sparsity, fed the output
    error of its loss, the result is exactly that of
    :func:`loss_and_gradient`.

    Parameters
    ----------
    Ws : list of ndarray
        ``W_l`` of shape ``(n_{l-1}, n_l)``.
    As : list of ndarray
        ``[A_0 = X, A_1, ..., A_L]``, as returned by :func:`forward`.
    delta : ndarray, shape (B, n_L)
        ``dJ/dZ_L``.
    spec : MLPSpec
    input_grad : bool, default False
        Whether to return ``dJ/dA_0``.

    Returns
    -------
    dWs : list of ndarray
        ``dJ/dW_l`` of the data term, shapes of `Ws`.
    dbs : list of ndarray
        ``dJ/db_l``, shapes ``(n_l,)``.
    dX : ndarray of shape (B, n_0), or None
        ``delta_1 W_1^T`` if `input_grad`, else None.
    """
    L = spec.n_layers
    if len(Ws) != L:
        raise ValueError(f"Ws: expected {L} weight matrices, got {len(Ws)}")
    for l in range(1, L + 1):
        w_shape = (spec.sizes[l - 1], spec.sizes[l])
        if np.shape(Ws[l - 1]) != w_shape:
            raise ValueError(f"W_{l} must have shape {w_shape}, got "
                             f"{np.shape(Ws[l - 1])}")
    if len(As) != L + 1:
        raise ValueError(f"As: expected the {L + 1} arrays [A_0, ..., A_L] "
                         f"of forward(), got {len(As)}")
    B = np.shape(As[0])[0] if np.ndim(As[0]) == 2 else None
    for l, A in enumerate(As):
        if np.shape(A) != (B, spec.sizes[l]):
            raise ValueError(f"As: A_{l} must have shape "
                             f"(B, {spec.sizes[l]}), got {np.shape(A)}")
    delta = np.asarray(delta)
    if delta.shape != (B, spec.sizes[-1]):
        raise ValueError(f"delta must have shape ({B}, {spec.sizes[-1]}), "
                         f"got {delta.shape}")

    dWs, dbs = [None] * L, [None] * L
    dX = None
    for l in range(L, 0, -1):
        W = Ws[l - 1]
        dWs[l - 1] = As[l - 1].T @ delta
        dbs[l - 1] = delta.sum(axis=0)
        if l > 1:
            delta = (delta @ W.T) * activation_derivative(
                As[l - 1], spec.activations[l - 2])
        elif input_grad:
            dX = delta @ W.T
    return dWs, dbs, dX


def flatten(Ws, bs):
    """Concatenate parameters into the engine's flat layout.

    ``theta = [W_1.ravel() (C order), b_1, W_2.ravel(), b_2, ...]``.

    Parameters
    ----------
    Ws, bs : list of ndarray

    Returns
    -------
    ndarray, 1-D
        A new array of length :func:`n_params`.
    """
    pieces = []
    for W, b in zip(Ws, bs):
        pieces.append(np.ravel(W, order="C"))
        pieces.append(np.ravel(b))
    return np.concatenate(pieces)


def unflatten(theta, spec):
    """Split a flat parameter vector into ``(Ws, bs)`` *views*.

    The inverse of :func:`flatten`: writing into the returned arrays writes
    into `theta` (and vice versa), which is how the engine's optimizer state
    and parameters share one buffer.

    Parameters
    ----------
    theta : ndarray, 1-D, length ``n_params(spec)``
    spec : MLPSpec

    Returns
    -------
    Ws, bs : list of ndarray
        Views into `theta`.
    """
    if not isinstance(theta, np.ndarray) or theta.ndim != 1:
        raise ValueError("theta must be a 1-D ndarray")
    if theta.size != n_params(spec):
        raise ValueError(f"theta has {theta.size} elements, spec needs "
                         f"{n_params(spec)}")
    Ws, bs = [], []
    offset = 0
    for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:]):
        # Basic slicing and reshape of a 1-D slice never copy.
        Ws.append(theta[offset:offset + n_in * n_out].reshape(n_in, n_out))
        offset += n_in * n_out
        bs.append(theta[offset:offset + n_out])
        offset += n_out
    return Ws, bs


def mean_activation(Ws, bs, X, spec, layer):
    """Mean activation ``rhohat`` of one layer over the rows of ``X``.

    .. math:: \\hat\\rho_n = \\frac{1}{B} \\sum_{m=1}^{B} (A_l)_{m,n}

    Parameters
    ----------
    Ws, bs : list of ndarray
    X : ndarray, shape (B, n_0)
    spec : MLPSpec
    layer : int
        ``l`` in ``1..L``.

    Returns
    -------
    ndarray, shape (n_l,)
    """
    if not 1 <= layer <= spec.n_layers:
        raise ValueError(f"layer must be in 1..{spec.n_layers}, got {layer}")
    As, _ = forward(Ws, bs, X, spec)
    return As[layer].mean(axis=0)
