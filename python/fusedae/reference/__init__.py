"""The specification: every model and op of the engine in plain NumPy.

float64-capable and gradient-checked by finite differences; the engine's
kernels are tested against these functions (tests/).
"""
from . import mlp, ops, optim, philox
from .mlp import MLPSpec, forward, loss, loss_and_gradient
from .optim import SGD, Adam, Momentum, train_step

__all__ = ["ops", "mlp", "optim", "philox", "MLPSpec", "forward", "loss",
           "loss_and_gradient", "train_step", "SGD", "Momentum", "Adam"]
