"""The generative adversarial network of the chapter's §5, in plain NumPy.

Two networks of :mod:`~fusedae.reference.mlp`: a *generator* ``G`` mapping a
latent row ``z ~ N(0, I)`` of ``Z`` values to a fake data row of ``D``
values, and a *discriminator* ``D`` mapping a data row to the logit ``s`` of
the probability ``D(x) = sigma(s)`` that it is real.

The discriminator minimises the binary cross entropy of its logits over the
stacked batch ``[real; fake]`` with targets ``[1, ..., 1; 0, ..., 0]``,
averaged over all ``R + F`` rows of that batch:

.. math:: J_D = \\frac{1}{R + F} \\Bigl(\\sum_{r} \\mathrm{softplus}(-s_r)
          + \\sum_{f} \\mathrm{softplus}(s_f)\\Bigr)
          + \\frac{\\lambda}{2} \\sum_l \\lVert W^D_l \\rVert_F^2

so with as many fakes as real rows it is ``1/2 (mean over real + mean over
fake)``. (``softplus(-s) = -log sigma(s)``, ``softplus(s) = -log(1 -
sigma(s))``.)

The generator, against a *frozen* discriminator, minimises over a batch of
``B`` latent rows either the non-saturating loss (the default; DESIGN.md's
note on §5)

.. math:: J_G = \\frac{1}{B} \\sum_m \\mathrm{softplus}(-s_m)
          = -\\frac{1}{B} \\sum_m \\log D(G(z_m))

or the original minimax loss

.. math:: J_G = \\frac{1}{B} \\sum_m \\log\\bigl(1 - D(G(z_m))\\bigr)
          = -\\frac{1}{B} \\sum_m \\mathrm{softplus}(s_m)

plus ``(lambda/2) sum_l ||W^G_l||_F^2`` (the generator's weights only).
The minimax loss saturates: when ``D`` confidently rejects the fakes
(``s << 0``) its gradient ``-sigma(s)/B`` vanishes, whereas the
non-saturating one's, ``(sigma(s) - 1)/B``, tends to ``-1/B``.

A network's parameters are passed as a pair ``(Ws, bs)`` of lists, in the
layout of :mod:`~fusedae.reference.mlp`.
"""
from dataclasses import dataclass

import numpy as np

from . import mlp, philox
from .ops import (
    activation_derivative,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_gradient,
)
from .vae import (
    _as_size,
    _as_widths,
    _check_activation,
    _check_weight_decay,
    _child_seed,
)

__all__ = [
    "GENERATOR_LOSSES",
    "GANSpec",
    "init",
    "sample_latent",
    "generate",
    "discriminator_loss",
    "discriminator_loss_and_gradient",
    "generator_loss",
    "generator_loss_and_gradient",
]

#: Generator losses: the default first.
GENERATOR_LOSSES = ("non_saturating", "minimax")


@dataclass(frozen=True)
class GANSpec:
    """Architecture and objective of a GAN.

    Parameters
    ----------
    n_latent : int
        ``Z >= 1``, the generator's input width.
    n_features : int
        ``D >= 1``, the width of a data row.
    g_hidden : tuple of int
        The generator's hidden widths, each ``>= 1`` (possibly empty).
    d_hidden : tuple of int
        The discriminator's hidden widths, each ``>= 1`` (possibly empty).
    g_activation : str
        Activation of the generator's hidden layers, from
        :data:`~fusedae.reference.ops.ACTIVATIONS`.
    g_output_activation : str
        Activation of the generator's output layer (``"sigmoid"`` for data
        in ``[0, 1]``).
    d_activation : str
        Activation of the discriminator's hidden layers. Its output layer is
        always a single sigmoid unit, trained from the logit.
    weight_decay : float
        ``lambda >= 0``: each network's loss carries
        ``(lambda/2) sum_l ||W_l||_F^2`` of its own weights.

    Raises
    ------
    ValueError
        Naming the offending field.
    """

    n_latent: int
    n_features: int
    g_hidden: tuple
    d_hidden: tuple
    g_activation: str = "relu"
    g_output_activation: str = "sigmoid"
    d_activation: str = "leaky_relu"
    weight_decay: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "n_latent",
                           _as_size("n_latent", self.n_latent, 1))
        object.__setattr__(self, "n_features",
                           _as_size("n_features", self.n_features, 1))
        object.__setattr__(self, "g_hidden",
                           _as_widths("g_hidden", self.g_hidden))
        object.__setattr__(self, "d_hidden",
                           _as_widths("d_hidden", self.d_hidden))
        _check_activation("g_activation", self.g_activation)
        _check_activation("g_output_activation", self.g_output_activation)
        _check_activation("d_activation", self.d_activation)
        _check_weight_decay(self.weight_decay)

    @property
    def generator(self):
        """The generator's :class:`~fusedae.reference.mlp.MLPSpec`:
        ``Z -> g_hidden -> D``. Its loss (``"squared_error"``) is unused;
        its weight decay is this spec's."""
        return mlp.MLPSpec(
            (self.n_latent, *self.g_hidden, self.n_features),
            (self.g_activation,) * len(self.g_hidden)
            + (self.g_output_activation,),
            loss="squared_error", weight_decay=self.weight_decay)

    @property
    def discriminator(self):
        """The discriminator's :class:`~fusedae.reference.mlp.MLPSpec`:
        ``D -> d_hidden -> 1``, a sigmoid output with the binary cross
        entropy, and this spec's weight decay."""
        return mlp.MLPSpec(
            (self.n_features, *self.d_hidden, 1),
            (self.d_activation,) * len(self.d_hidden) + ("sigmoid",),
            loss="binary_cross_entropy", weight_decay=self.weight_decay)


def init(spec, seed, dtype=np.float64):
    """Initial parameters of both networks, from Philox.

    The generator is :func:`~fusedae.reference.philox.glorot_init` of
    ``spec.generator.sizes`` with key ``seed``; the discriminator is
    ``glorot_init`` of ``spec.discriminator.sizes`` with key
    ``(seed + 1) mod 2^64``. Biases are zero.

    Parameters
    ----------
    spec : GANSpec
    seed : int
        In ``[0, 2^64)``.
    dtype : dtype, default float64

    Returns
    -------
    G, D : tuple of (list of ndarray, list of ndarray)
        ``(Ws, bs)`` of the generator and of the discriminator.
    """
    G = philox.glorot_init(spec.generator.sizes, _child_seed(seed, 0), dtype)
    D = philox.glorot_init(spec.discriminator.sizes, _child_seed(seed, 1),
                           dtype)
    return G, D


def sample_latent(n, spec, seed, step, dtype=np.float64):
    """``n`` latent rows: ``philox.normal((n, Z), seed, step, dtype)``,
    i.e. stream ``(TAG_LATENT, step)`` under key ``seed``.

    Returns
    -------
    ndarray, shape (n, Z)
    """
    n = _as_size("n", n, 0)
    return philox.normal((n, spec.n_latent), seed, step, dtype=dtype)


def _check_latent(z, spec):
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != spec.n_latent or z.shape[0] < 1:
        raise ValueError(f"z must have shape (B, {spec.n_latent}) with "
                         f"B >= 1, got {z.shape}")
    return z


def generate(G, z, spec):
    """Fake rows ``G(z)``.

    Parameters
    ----------
    G : (list of ndarray, list of ndarray)
        The generator's ``(Ws, bs)``.
    z : ndarray, shape (B, Z)
    spec : GANSpec

    Returns
    -------
    ndarray, shape (B, D)
    """
    As, _ = mlp.forward(*G, _check_latent(z, spec), spec.generator)
    return As[-1]


def _stacked(real, fake, spec):
    real, fake = np.asarray(real), np.asarray(fake)
    for name, rows in (("real", real), ("fake", fake)):
        if rows.ndim != 2 or rows.shape[1] != spec.n_features:
            raise ValueError(f"{name} must have shape (rows, "
                             f"{spec.n_features}), got {rows.shape}")
    if real.shape[0] + fake.shape[0] == 0:
        raise ValueError("real and fake hold no rows between them")
    X = np.concatenate([real, fake], axis=0)
    T = np.zeros((X.shape[0], 1), dtype=X.dtype)
    T[:real.shape[0]] = 1
    return X, T


def discriminator_loss(D, real, fake, spec):
    """``J_D``: see :func:`discriminator_loss_and_gradient`.

    Returns
    -------
    float
    """
    X, T = _stacked(real, fake, spec)
    return mlp.loss(*D, X, T, spec.discriminator)


def discriminator_loss_and_gradient(D, real, fake, spec):
    """The discriminator's objective and gradient.

    Exactly :func:`~fusedae.reference.mlp.loss_and_gradient` of
    ``spec.discriminator`` on the stacked batch ``X = [real; fake]`` with
    targets ``T = [1; 0]`` (one column): the BCE of the logits averaged over
    all ``R + F`` rows (so ``1/2 (mean over real + mean over fake)`` when
    ``R = F``), plus ``(lambda/2) sum ||W^D_l||^2``; the gradients include
    ``lambda W``.

    Parameters
    ----------
    D : (list of ndarray, list of ndarray)
        The discriminator's ``(Ws, bs)``.
    real : ndarray, shape (R, D)
    fake : ndarray, shape (F, D)
        The generator's output, treated as data (no gradient flows to G).
    spec : GANSpec

    Returns
    -------
    loss : float
    dWs, dbs : list of ndarray
        The discriminator's gradients.
    """
    X, T = _stacked(real, fake, spec)
    return mlp.loss_and_gradient(*D, X, T, spec.discriminator)


def _generator_forward(G, D, z, spec, loss):
    if loss not in GENERATOR_LOSSES:
        raise ValueError(f"loss: unknown generator loss {loss!r}; expected "
                         f"one of {GENERATOR_LOSSES}")
    g_As, _ = mlp.forward(*G, _check_latent(z, spec), spec.generator)
    d_As, d_Zs = mlp.forward(*D, g_As[-1], spec.discriminator)
    logits = d_Zs[-1]
    if loss == "non_saturating":
        # softplus(-s) = BCE of the logit against target 1
        J = binary_cross_entropy_with_logits(logits, np.ones_like(logits))
    else:
        # log(1 - sigma(s)) = -softplus(s) = -BCE against target 0
        J = -binary_cross_entropy_with_logits(logits, np.zeros_like(logits))
    if spec.weight_decay > 0:
        J = J + 0.5 * spec.weight_decay * sum(np.sum(W * W) for W in G[0])
    return J, g_As, d_As, logits


def generator_loss(G, D, z, spec, loss="non_saturating"):
    """``J_G``: see :func:`generator_loss_and_gradient`.

    Returns
    -------
    float
    """
    return float(_generator_forward(G, D, z, spec, loss)[0])


def generator_loss_and_gradient(G, D, z, spec, loss="non_saturating"):
    """The generator's objective and its gradient, the discriminator frozen.

    With ``s`` the discriminator's logits of the fakes ``G(z)``, the error at
    the discriminator's output is

    .. math:: \\frac{\\partial J_G}{\\partial s} = \\frac{\\sigma(s) - 1}{B}
              \\quad\\text{(non-saturating)}, \\qquad
              \\frac{\\partial J_G}{\\partial s} = -\\frac{\\sigma(s)}{B}
              \\quad\\text{(minimax)};

    :func:`~fusedae.reference.mlp.backward` through the discriminator gives
    ``dJ/d fake`` (the discriminator's own parameter gradients are
    discarded); the generator's output error is ``dJ/d fake * f'_G(fake)``,
    back-propagated through the generator; ``lambda W`` is added to the
    generator's weight gradients.

    Parameters
    ----------
    G, D : (list of ndarray, list of ndarray)
        ``(Ws, bs)`` of the generator and of the discriminator (unchanged).
    z : ndarray, shape (B, Z)
        Latent rows.
    spec : GANSpec
    loss : str, default "non_saturating"
        ``"non_saturating"`` or ``"minimax"``.

    Returns
    -------
    loss : float
        ``J_G``, as :func:`generator_loss` computes it.
    dWs, dbs : list of ndarray
        The generator's gradients.
    """
    J, g_As, d_As, logits = _generator_forward(G, D, z, spec, loss)
    if loss == "non_saturating":
        delta = binary_cross_entropy_with_logits_gradient(
            logits, np.ones_like(logits))
    else:
        delta = -binary_cross_entropy_with_logits_gradient(
            logits, np.zeros_like(logits))
    _, _, d_fake = mlp.backward(D[0], d_As, delta, spec.discriminator,
                                input_grad=True)
    g_spec = spec.generator
    delta = d_fake * activation_derivative(g_As[-1], g_spec.activations[-1])
    dWs, dbs, _ = mlp.backward(G[0], g_As, delta, g_spec)
    if spec.weight_decay > 0:
        dWs = [dW + spec.weight_decay * W for dW, W in zip(dWs, G[0])]
    return float(J), dWs, dbs
