"""The epoch loop every stochastic ``fit`` runs: progress, validation and
early stopping, callbacks, checkpoints, and Ctrl-C between epochs.

An estimator supplies what one epoch is (``_one_epoch``), how many a fit
has (``_total_epochs``) and, for early stopping, how it scores held-out data
(``_validation_score``); :func:`train` runs them. The loop keeps all of its
own state on the estimator (``n_iter_``, ``validation_scores_``, the best
parameters so far), so a model saved between two epochs and loaded again
continues exactly where it stopped (:meth:`resume_fit`).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from . import _validation as v

#: A callback: ``callback(model, logs)`` after every epoch; True stops the fit.
Callback = Callable[[Any, dict[str, Any]], object]
#: What ``fit(..., callbacks=...)`` takes: one callback or several.
Callbacks = Callback | Iterable[Callback]


# --------------------------------------------------------------- Ctrl-C
@contextlib.contextmanager
def deferred_interrupt() -> Iterator[dict[str, bool]]:
    """Turn the first SIGINT (Ctrl-C) into a flag read between epochs.

    The engine runs an epoch in C++ with the GIL released; a
    KeyboardInterrupt raised by Python's default handler would land in
    whatever bookkeeping line runs first after the epoch returns and could
    leave the estimator half-updated (an epoch trained but not counted).
    Instead the first Ctrl-C only sets a flag; the loop stops after the
    epoch in flight, finishes the model and then raises KeyboardInterrupt.
    A second Ctrl-C gets the previous handler (normally an immediate
    KeyboardInterrupt). A process that ignores SIGINT keeps ignoring it. Only the main thread may install signal handlers;
    elsewhere the loop runs without this and Python's own handling applies.
    """
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # the process ignores Ctrl-C: so does fit
        yield flag
        return

    def on_interrupt(signum, frame):
        flag["set"] = True
        signal.signal(signal.SIGINT, previous)

    try:
        signal.signal(signal.SIGINT, on_interrupt)
    except (ValueError, TypeError):  # an embedded interpreter without signal support
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------- progress
class Progress:
    """A tqdm bar over a fit's epochs with the epoch's losses as postfix;
    does nothing unless enabled."""

    def __init__(self, enabled, total, initial, description):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=total, initial=initial, desc=description, unit="epoch",
                             dynamic_ncols=True, leave=True)

    def update(self, logs):
        if self._bar is None:
            return
        shown = {k: (f"{val:.4g}" if isinstance(val, float) else val)
                 for k, val in logs.items() if k not in ("epoch",)}
        self._bar.set_postfix(shown, refresh=False)
        self._bar.update(1)

    def close(self):
        if self._bar is not None:
            self._bar.close()


# ------------------------------------------------------ early stopping
def check_early_stopping(est):
    """Validate the early-stopping hyperparameters; None when it is off."""
    if not isinstance(est.early_stopping, (bool, np.bool_)):
        raise ValueError(f"early_stopping: expected a bool, got {est.early_stopping!r}")
    if not est.early_stopping:
        return None
    return {
        "validation_fraction": v.check_real("validation_fraction", est.validation_fraction,
                                            low=0.0, high=1.0, low_open=True, high_open=True),
        "n_iter_no_change": v.check_int("n_iter_no_change", est.n_iter_no_change),
        "tol": v.check_real("tol", est.tol, low=0.0),
    }


def validation_split(n_rows: int, fraction: float, seed: int,
                     labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held-out) of a fixed split: the same seed, the same split.

    Stratified when ``labels`` (class indices) are given and every class
    has at least two rows.
    """
    from sklearn.model_selection import train_test_split

    n_val = int(np.ceil(fraction * n_rows))
    if n_val < 1 or n_rows - n_val < 1:
        raise ValueError(f"validation_fraction: {fraction} of {n_rows} rows leaves no "
                         "training or no validation rows")
    rows = np.arange(n_rows)
    stratify = None
    if labels is not None:
        counts = np.bincount(labels)
        if counts[counts > 0].min() >= 2 and n_val >= np.count_nonzero(counts):
            stratify = labels
    train, held = train_test_split(rows, test_size=n_val, random_state=seed % 2**32,
                                   stratify=stratify)
    return np.sort(train), np.sort(held)


# ----------------------------------------------------------- callbacks
def check_callbacks(callbacks: Any) -> list[Callback]:
    if callbacks is None:
        return []
    if callable(callbacks):
        callbacks = [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks: expected a callable or a list of callables, got "
                        f"{callbacks!r}") from None
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks: expected callables, got {cb!r}")
    return callbacks


# ---------------------------------------------------------------- loop
def train(est, train_data, val_data, p, callbacks):
    """Run epochs ``est.n_iter_ .. total`` of a fit; see the module docstring.

    Returns True when the fit ran to its end (all epochs, early stopping or
    a callback's stop), False when it was interrupted.
    """
    total = est._total_epochs(p)
    early = p.get("early_stopping")
    progress = Progress(bool(est.verbose), total, est.n_iter_, type(est).__name__)
    interrupted = False
    try:
        with deferred_interrupt() as flag:
            while est.n_iter_ < total and not est._fit_done:
                logs = est._one_epoch(train_data, p)
                logs = {"epoch": est.n_iter_, **logs}
                if early is not None:
                    stop = _early_stopping_step(est, val_data, early, logs)
                else:
                    stop = False
                for cb in callbacks:
                    if cb(est, dict(logs)) is True:
                        stop = True
                progress.update(logs)
                if stop:
                    est._fit_done = True
                if flag["set"]:
                    interrupted = True
                    break
            else:
                est._fit_done = True
    finally:
        progress.close()
    if est._fit_done and early is not None and est._best_snapshot is not None:
        est._restore_snapshot(est._best_snapshot)
    return not interrupted


def _early_stopping_step(est, val_data, early, logs):
    score = float(est._validation_score(val_data))
    est.validation_scores_.append(score)
    logs["val_score"] = score
    if est.best_validation_score_ is None or score > est.best_validation_score_ + early["tol"]:
        est.best_validation_score_ = score
        est._best_snapshot = est._snapshot()
        est._no_improvement = 0
    else:
        est._no_improvement += 1
    return est._no_improvement >= early["n_iter_no_change"]
