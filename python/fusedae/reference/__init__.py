"""The specification: every model and op of the engine in plain NumPy.

float64-capable and gradient-checked by finite differences; the engine's
kernels are tested against these functions (tests/).
"""
from . import gan, mlp, ops, optim, philox, vae
from .gan import GANSpec
from .mlp import MLPSpec, forward, loss, loss_and_gradient
from .optim import SGD, Adam, Momentum, train_step
from .vae import VAESpec

__all__ = ["ops", "mlp", "optim", "philox", "vae", "gan", "MLPSpec",
           "VAESpec", "GANSpec", "forward", "loss", "loss_and_gradient",
           "train_step", "SGD", "Momentum", "Adam"]
