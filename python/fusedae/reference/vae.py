"""The variational autoencoder of the chapter's §4, in plain NumPy.

Two networks of :mod:`~fusedae.reference.mlp`: an *encoder* mapping an input
row ``x`` (and, for a conditional VAE, a label row ``y``) to the mean and log
variance of a Gaussian code, and a *decoder* mapping a code ``z`` (and ``y``)
back to a reconstruction:

.. math:: [\\mu, \\log\\sigma^2] = \\mathrm{enc}([x, y]), \\qquad
          \\sigma = e^{\\log\\sigma^2 / 2}, \\qquad
          z = \\mu + \\sigma \\odot \\varepsilon, \\quad
          \\varepsilon \\sim N(0, I), \\qquad
          \\hat x = \\mathrm{dec}([z, y])

(the reparameterisation of Kingma and Welling, ref. [4] of the chapter). The
encoder's output layer is linear (``identity``) with ``2 Z`` units for a
latent size ``Z``: columns ``[:, :Z]`` are ``mu`` and ``[:, Z:]`` are
``log sigma^2``. The decoder has the mirrored hidden widths. For a batch of
``B`` rows the objective (the negative evidence lower bound, averaged over
rows, plus weight decay) is

.. math:: J = \\underbrace{\\mathcal{L}(\\hat x, x)}_{\\text{recon}}
          \\; \\underbrace{- \\frac{1}{B} \\sum_m \\frac12 \\sum_j
          \\bigl(1 + \\log\\sigma^2_{mj} - \\mu_{mj}^2
          - \\sigma^2_{mj}\\bigr)}_{\\text{KL}}
          \\; + \\underbrace{\\frac{\\lambda}{2}\\Bigl(\\sum
          \\lVert W^{enc}_l \\rVert_F^2 + \\sum
          \\lVert W^{dec}_l \\rVert_F^2\\Bigr)}_{\\text{decay}}

with the reconstruction loss ``L`` :func:`~fusedae.reference.ops.squared_error`
of ``xhat`` or :func:`~fusedae.reference.ops.binary_cross_entropy_with_logits`
of the decoder's logits (summed over features, averaged over rows), and the
KL term the closed form of ``KL(N(mu, sigma^2) || N(0, I))`` (DESIGN.md's
note on §4; ``sigma^2`` is evaluated as ``exp(log sigma^2)``). Weight decay
applies to weights only, never biases.

A network's parameters are passed as a pair ``(Ws, bs)`` of lists, in the
layout of :mod:`~fusedae.reference.mlp`.
"""
import math
import numbers
import operator
from dataclasses import dataclass

import numpy as np

from . import mlp, philox
from .ops import (
    ACTIVATIONS,
    activation_derivative,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_gradient,
    squared_error,
    squared_error_gradient,
)

__all__ = [
    "VAE_LOSSES",
    "VAESpec",
    "init",
    "encode",
    "decode",
    "kl_divergence",
    "terms",
    "loss",
    "loss_and_gradient",
    "train_step",
]

#: Reconstruction losses a VAE may have.
VAE_LOSSES = ("binary_cross_entropy", "squared_error")


def _as_size(name, value, minimum):
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an int >= {minimum}, got "
                         f"{value!r}") from None
    if n < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return n


def _as_widths(name, value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a sequence of ints >= 1 (possibly "
                         f"empty), got {value!r}")
    widths = tuple(value)
    for n in widths:
        _as_size(name, n, 1)
    return tuple(operator.index(n) for n in widths)


def _check_activation(name, value):
    if value not in ACTIVATIONS:
        raise ValueError(f"{name}: unknown activation {value!r}; expected "
                         f"one of {ACTIVATIONS}")


def _check_weight_decay(value):
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0):
        raise ValueError(f"weight_decay must be finite and >= 0, got "
                         f"{value!r}")


def _child_seed(seed, offset):
    """``(seed + offset) mod 2^64``, after checking `seed`."""
    if isinstance(seed, bool):
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
    try:
        s = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed must be an int in [0, 2**64), got "
                         f"{seed!r}") from None
    if not 0 <= s < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
    return (s + offset) % 2**64


def _apply(optimizer, params, grads):
    """One optimizer update of a network, in the layout of
    :func:`fusedae.reference.optim.train_step`: ``[W_1..W_L, b_1..b_L]``."""
    (Ws, bs), (dWs, dbs) = params, grads
    optimizer.step(list(Ws) + list(bs), list(dWs) + list(dbs))


@dataclass(frozen=True)
class VAESpec:
    """Architecture and objective of a (conditional) variational autoencoder.

    Parameters
    ----------
    n_features : int
        ``D >= 1``, the width of an input row.
    hidden : tuple of int
        The encoder's hidden widths, each ``>= 1``; may be empty (the encoder
        and decoder are then single linear-in-the-input layers). The decoder
        uses them in reverse order.
    n_latent : int
        ``Z >= 1``, the latent size.
    activation : str
        Activation of every hidden layer, from
        :data:`~fusedae.reference.ops.ACTIVATIONS`.
    output_activation : str
        Activation of the decoder's output layer.
    loss : str
        Reconstruction loss: ``"binary_cross_entropy"`` (computed from the
        logits; needs a ``"sigmoid"`` output) or ``"squared_error"``.
    weight_decay : float
        ``lambda >= 0``, on the weights of both networks.
    n_conditions : int
        ``C >= 0``. With ``C > 0`` the VAE is conditional: a label row ``y``
        of ``C`` values (one-hot or probabilities) is appended to the
        encoder's input, ``[x, y]``, and to the decoder's, ``[z, y]``.

    Raises
    ------
    ValueError
        Naming the offending field.
    """

    n_features: int
    hidden: tuple
    n_latent: int
    activation: str = "relu"
    output_activation: str = "sigmoid"
    loss: str = "binary_cross_entropy"
    weight_decay: float = 0.0
    n_conditions: int = 0

    def __post_init__(self):
        object.__setattr__(self, "n_features",
                           _as_size("n_features", self.n_features, 1))
        object.__setattr__(self, "hidden", _as_widths("hidden", self.hidden))
        object.__setattr__(self, "n_latent",
                           _as_size("n_latent", self.n_latent, 1))
        _check_activation("activation", self.activation)
        _check_activation("output_activation", self.output_activation)
        if self.loss not in VAE_LOSSES:
            raise ValueError(f"loss: unknown loss {self.loss!r}; expected "
                             f"one of {VAE_LOSSES}")
        if (self.loss == "binary_cross_entropy"
                and self.output_activation != "sigmoid"):
            raise ValueError(f"loss 'binary_cross_entropy' needs "
                             f"output_activation 'sigmoid', got "
                             f"{self.output_activation!r}")
        _check_weight_decay(self.weight_decay)
        object.__setattr__(self, "n_conditions",
                           _as_size("n_conditions", self.n_conditions, 0))

    @property
    def encoder(self):
        """The encoder's :class:`~fusedae.reference.mlp.MLPSpec`:
        ``(D + C) -> hidden -> 2Z`` with a linear output layer. Its loss
        (``"squared_error"``) is unused; its weight decay is this spec's."""
        return mlp.MLPSpec(
            (self.n_features + self.n_conditions, *self.hidden,
             2 * self.n_latent),
            (self.activation,) * len(self.hidden) + ("identity",),
            loss="squared_error", weight_decay=self.weight_decay)

    @property
    def decoder(self):
        """The decoder's :class:`~fusedae.reference.mlp.MLPSpec`:
        ``(Z + C) -> reversed(hidden) -> D`` with the output activation and
        the reconstruction loss; its weight decay is this spec's."""
        return mlp.MLPSpec(
            (self.n_latent + self.n_conditions, *reversed(self.hidden),
             self.n_features),
            (self.activation,) * len(self.hidden) + (self.output_activation,),
            loss=self.loss, weight_decay=self.weight_decay)


def init(spec, seed, dtype=np.float64):
    """Initial parameters of both networks, from Philox.

    The encoder is :func:`~fusedae.reference.philox.glorot_init` of
    ``spec.encoder.sizes`` with key ``seed``; the decoder is ``glorot_init``
    of ``spec.decoder.sizes`` with key ``(seed + 1) mod 2^64``. (Within each,
    ``W_l`` uses stream ``(TAG_INIT, l)``; biases are zero.)

    Parameters
    ----------
    spec : VAESpec
    seed : int
        In ``[0, 2^64)``.
    dtype : dtype, default float64

    Returns
    -------
    enc, dec : tuple of (list of ndarray, list of ndarray)
        ``(Ws, bs)`` of the encoder and of the decoder.
    """
    enc = philox.glorot_init(spec.encoder.sizes, _child_seed(seed, 0), dtype)
    dec = philox.glorot_init(spec.decoder.sizes, _child_seed(seed, 1), dtype)
    return enc, dec


def _check_batch(X, Y, spec):
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != spec.n_features:
        raise ValueError(f"X must have shape (B, {spec.n_features}), got "
                         f"{X.shape}")
    B = X.shape[0]
    if spec.n_conditions == 0:
        if Y is not None:
            raise ValueError("Y must be None for a VAE without conditions "
                             "(n_conditions = 0)")
        return X, None
    if Y is None:
        raise ValueError(f"Y is required: the VAE is conditional "
                         f"(n_conditions = {spec.n_conditions})")
    Y = np.asarray(Y)
    if Y.shape != (B, spec.n_conditions):
        raise ValueError(f"Y must have shape ({B}, {spec.n_conditions}), got "
                         f"{Y.shape}")
    return X, Y


def _with_conditions(A, Y):
    return A if Y is None else np.concatenate([A, Y], axis=1)


def encode(enc, X, spec, Y=None):
    """Mean and log variance of the code of each row.

    .. math:: [\\mu, \\log\\sigma^2] = \\mathrm{enc}([X, Y])

    Parameters
    ----------
    enc : (list of ndarray, list of ndarray)
        The encoder's ``(Ws, bs)``.
    X : ndarray, shape (B, D)
    spec : VAESpec
    Y : ndarray of shape (B, C), or None
        Label rows, required exactly when ``spec.n_conditions > 0``.

    Returns
    -------
    mu, logvar : ndarray, shape (B, Z)
    """
    X, Y = _check_batch(X, Y, spec)
    As, _ = mlp.forward(*enc, _with_conditions(X, Y), spec.encoder)
    Z = spec.n_latent
    return As[-1][:, :Z], As[-1][:, Z:]


def decode(dec, z, spec, Y=None):
    """The decoder's output ``xhat = dec([z, Y])`` for codes `z`.

    Parameters
    ----------
    dec : (list of ndarray, list of ndarray)
        The decoder's ``(Ws, bs)``.
    z : ndarray, shape (B, Z)
    spec : VAESpec
    Y : ndarray of shape (B, C), or None
        Required exactly when ``spec.n_conditions > 0``.

    Returns
    -------
    ndarray, shape (B, D)
    """
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != spec.n_latent:
        raise ValueError(f"z must have shape (B, {spec.n_latent}), got "
                         f"{z.shape}")
    if spec.n_conditions == 0:
        if Y is not None:
            raise ValueError("Y must be None for a VAE without conditions "
                             "(n_conditions = 0)")
    else:
        if Y is None or np.shape(Y) != (z.shape[0], spec.n_conditions):
            raise ValueError(f"Y must have shape ({z.shape[0]}, "
                             f"{spec.n_conditions}), got "
                             f"{None if Y is None else np.shape(Y)}")
        Y = np.asarray(Y)
    As, _ = mlp.forward(*dec, _with_conditions(z, Y), spec.decoder)
    return As[-1]


def kl_divergence(mu, logvar):
    """Row-averaged KL divergence of ``N(mu, sigma^2)`` from ``N(0, I)``.

    .. math:: \\mathrm{KL} = -\\frac{1}{B} \\sum_{m=1}^{B} \\frac12
              \\sum_j \\bigl(1 + \\log\\sigma^2_{mj} - \\mu_{mj}^2
              - e^{\\log\\sigma^2_{mj}}\\bigr)

    It is 0 exactly when ``mu = 0`` and ``log sigma^2 = 0``, positive
    otherwise.

    Parameters
    ----------
    mu, logvar : ndarray, shape (B, Z)

    Returns
    -------
    scalar
        A NumPy scalar of the inputs' dtype.
    """
    mu, logvar = np.asarray(mu), np.asarray(logvar)
    if mu.ndim != 2 or logvar.shape != mu.shape:
        raise ValueError(f"mu and logvar must be 2-D arrays of one shape, "
                         f"got {mu.shape} and {logvar.shape}")
    return -0.5 * np.sum(1 + logvar - mu * mu - np.exp(logvar)) / mu.shape[0]


def _forward(enc, dec, X, eps, spec, Y):
    """Both networks' forward passes and every term, as NumPy scalars."""
    X, Y = _check_batch(X, Y, spec)
    B, Z = X.shape[0], spec.n_latent
    eps = np.asarray(eps)
    if eps.shape != (B, Z):
        raise ValueError(f"eps must have shape ({B}, {Z}), got {eps.shape}")
    enc_As, _ = mlp.forward(*enc, _with_conditions(X, Y), spec.encoder)
    mu, logvar = enc_As[-1][:, :Z], enc_As[-1][:, Z:]
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * eps
    dec_As, dec_Zs = mlp.forward(*dec, _with_conditions(z, Y), spec.decoder)
    if spec.loss == "squared_error":
        recon = squared_error(dec_As[-1], X)
    else:
        recon = binary_cross_entropy_with_logits(dec_Zs[-1], X)
    kl = kl_divergence(mu, logvar)
    decay = 0.5 * spec.weight_decay * (sum(np.sum(W * W) for W in enc[0])
                                       + sum(np.sum(W * W) for W in dec[0]))
    state = dict(X=X, Y=Y, eps=eps, mu=mu, logvar=logvar, sigma=sigma,
                 enc_As=enc_As, dec_As=dec_As, dec_Zs=dec_Zs)
    return (recon, kl, decay), state


def terms(enc, dec, X, eps, spec, Y=None):
    """The objective's terms at given noise ``eps``.

    Parameters
    ----------
    enc, dec : (list of ndarray, list of ndarray)
        ``(Ws, bs)`` of the encoder and of the decoder.
    X : ndarray, shape (B, D)
        Inputs, which are also the reconstruction targets.
    eps : ndarray, shape (B, Z)
        The standard normal draws of the reparameterisation.
    spec : VAESpec
    Y : ndarray of shape (B, C), or None
        Label rows, required exactly when ``spec.n_conditions > 0``.

    Returns
    -------
    dict
        ``{"recon", "kl", "decay", "total"}`` as floats, ``total = recon +
        kl + decay`` (summed in the inputs' dtype); see the module docstring.
    """
    (recon, kl, decay), _ = _forward(enc, dec, X, eps, spec, Y)
    return {"recon": float(recon), "kl": float(kl), "decay": float(decay),
            "total": float(recon + kl + decay)}


def loss(enc, dec, X, eps, spec, Y=None):
    """Total objective ``J = recon + KL + decay`` at given noise ``eps``.

    See :func:`terms` for the arguments and the module docstring for the
    formula.

    Returns
    -------
    float
    """
    return terms(enc, dec, X, eps, spec, Y)["total"]


def loss_and_gradient(enc, dec, X, eps, spec, Y=None):
    """Objective ``J`` and its gradient w.r.t. both networks' parameters.

    With ``eps`` held fixed, back-propagation runs through the decoder, the
    reparameterisation and the encoder:

    1. the decoder's output error, ``(xhat - x)/B * f'(xhat)`` (squared
       error) or ``(sigma(Z_L) - x)/B`` (BCE on the logits), back-propagated
       by :func:`~fusedae.reference.mlp.backward` with the input gradient;
       ``dJ/dz`` is its first ``Z`` columns (the label columns of a
       conditional decoder's input are data, not parameters, and are dropped);
    2. the encoder's output error (its output layer is linear):

       .. math:: \\frac{\\partial J}{\\partial \\mu} =
                 \\frac{\\partial J}{\\partial z} + \\frac{\\mu}{B},
                 \\qquad
                 \\frac{\\partial J}{\\partial \\log\\sigma^2} =
                 \\frac{\\partial J}{\\partial z} \\odot \\varepsilon \\odot
                 \\frac{\\sigma}{2} + \\frac{e^{\\log\\sigma^2} - 1}{2B}

       (the second summand of each is the KL term's), back-propagated by
       :func:`~fusedae.reference.mlp.backward`;
    3. ``lambda W`` added to every weight gradient of both networks.

    Parameters
    ----------
    enc, dec, X, eps, spec, Y
        As for :func:`terms`.

    Returns
    -------
    loss : float
        ``J``, as :func:`loss` computes it.
    enc_grads : (list of ndarray, list of ndarray)
        ``(dWs, dbs)`` of the encoder.
    dec_grads : (list of ndarray, list of ndarray)
        ``(dWs, dbs)`` of the decoder.
    """
    (recon, kl, decay), st = _forward(enc, dec, X, eps, spec, Y)
    J = float(recon + kl + decay)
    X, B, Z = st["X"], st["X"].shape[0], spec.n_latent

    dec_spec = spec.decoder
    if spec.loss == "squared_error":
        delta = (squared_error_gradient(st["dec_As"][-1], X)
                 * activation_derivative(st["dec_As"][-1],
                                         dec_spec.activations[-1]))
    else:
        # Sigmoid output + cross entropy: f'_L cancels against dL/dxhat.
        delta = binary_cross_entropy_with_logits_gradient(st["dec_Zs"][-1], X)
    dec_dWs, dec_dbs, d_dec_in = mlp.backward(dec[0], st["dec_As"], delta,
                                              dec_spec, input_grad=True)
    dz = d_dec_in[:, :Z]

    mu, logvar, sigma, eps = st["mu"], st["logvar"], st["sigma"], st["eps"]
    d_mu = dz + mu / B
    d_logvar = dz * eps * sigma * 0.5 + (np.exp(logvar) - 1) / (2 * B)
    # The encoder's output layer is the identity, so dJ/dZ_L = dJ/dA_L.
    delta = np.concatenate([d_mu, d_logvar], axis=1)
    enc_dWs, enc_dbs, _ = mlp.backward(enc[0], st["enc_As"], delta,
                                       spec.encoder)

    if spec.weight_decay > 0:
        enc_dWs = [dW + spec.weight_decay * W
                   for dW, W in zip(enc_dWs, enc[0])]
        dec_dWs = [dW + spec.weight_decay * W
                   for dW, W in zip(dec_dWs, dec[0])]
    return J, (enc_dWs, enc_dbs), (dec_dWs, dec_dbs)


def train_step(enc, dec, X, spec, optimizers, seed, step, Y=None):
    """One optimisation step of both networks on one batch.

    Draws ``eps = philox.normal((B, Z), seed, step)`` (stream
    ``(TAG_LATENT, step)`` under key ``seed``, cast to the dtype of the
    encoder's first weight matrix), computes :func:`loss_and_gradient` and
    updates each network in place with its own optimizer, as
    :func:`fusedae.reference.optim.train_step` does for one network
    (``optimizer.step([W_1..W_L, b_1..b_L], [dW_1..dW_L, db_1..db_L])``).

    Parameters
    ----------
    enc, dec : (list of ndarray, list of ndarray)
        ``(Ws, bs)`` of both networks, updated in place.
    X : ndarray, shape (B, D)
    spec : VAESpec
    optimizers : (optimizer, optimizer)
        Two distinct optimizer objects of :mod:`~fusedae.reference.optim`,
        for the encoder and the decoder; the same pair must be passed on
        every step (they hold the state).
    seed : int
        Philox key of the noise.
    step : int
        The step's stream number (one per training step).
    Y : ndarray of shape (B, C), or None

    Returns
    -------
    float
        ``J`` *before* the update.
    """
    try:
        opt_enc, opt_dec = optimizers
    except (TypeError, ValueError):
        raise ValueError("optimizers must be a pair: (the encoder's, the "
                         "decoder's)") from None
    if opt_enc is opt_dec:
        raise ValueError("optimizers: the encoder and the decoder need two "
                         "distinct optimizer objects (each holds the state "
                         "of its own network)")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (B, {spec.n_features}), got "
                         f"{X.shape}")
    eps = philox.normal((X.shape[0], spec.n_latent), seed, step,
                        dtype=np.asarray(enc[0][0]).dtype)
    J, enc_grads, dec_grads = loss_and_gradient(enc, dec, X, eps, spec, Y)
    _apply(opt_enc, enc, enc_grads)
    _apply(opt_dec, dec, dec_grads)
    return J
