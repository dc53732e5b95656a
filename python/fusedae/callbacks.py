"""Callbacks for ``fit(..., callbacks=[...])``.

A callback is any callable ``callback(model, logs)`` called after every
epoch of a fit; ``logs`` holds the epoch number (1-based, epochs done so
far) and that epoch's losses, and ``val_score`` with early stopping.
Returning True stops the fit after that epoch.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._base import NetworkEstimator


class Checkpoint:
    """Save the model every ``every`` epochs (and after the last one).

    Each save replaces the previous file atomically (``model.save``), so
    ``path`` always holds a complete model: the state after the latest
    multiple of ``every``. ``fusedae.load(path).resume_fit(X)`` continues
    the fit from there, bit for bit as if it had not stopped.

    Parameters
    ----------
    path : str or os.PathLike
        File to write. ``{epoch}`` in the name is replaced by the epoch
        number, which keeps one file per checkpoint instead.
    every : int >= 1, default=1
    """

    def __init__(self, path: str | os.PathLike[str], every: int = 1):
        from ._files import check_path
        from ._validation import check_int
        self.path = check_path(path)
        self.every = check_int("every", every)
        self.saved: list[str] = []

    def __call__(self, model: NetworkEstimator, logs: Mapping[str, Any]) -> None:
        epoch = logs["epoch"]
        last = epoch >= model._total_epochs(model._params_used)
        if epoch % self.every == 0 or last:
            path = self.path.replace("{epoch}", str(epoch))
            model.save(path)
            self.saved.append(path)
        return None

    def __repr__(self) -> str:
        return f"Checkpoint({self.path!r}, every={self.every})"
