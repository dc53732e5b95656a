"""Exceptions fusedae raises beyond ValueError/TypeError."""
from __future__ import annotations


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite during ``fit``.

    The step that produced the non-finite loss was not applied: the model
    keeps the parameters and optimizer state it had before that step.

    Attributes
    ----------
    epoch : int
        The epoch (0-based) in which the loss diverged.
    step : int
        Steps applied in that epoch before the diverging one.
    """

    def __init__(self, message: str, *, epoch: int, step: int):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
