"""One thread at a time per model.

Every public method of an estimator that reads or changes its networks runs
under that model's own re-entrant lock, so calls on one model from several
threads are serialised (a second ``fit`` waits for the first, a ``predict``
during a ``fit`` waits for it to end) and never see half an update. The
lock is re-entrant: a fit's own calls (``transform`` at the end of an
epoch, a callback that saves or scores the model) run inside it. Different
models do not share a lock and train in parallel. Python releases the GIL
while a thread waits for the lock, and the engine releases it while it
computes.
"""
from __future__ import annotations

import functools
import threading
import weakref

_locks: weakref.WeakKeyDictionary[object, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()

# Public methods that do not touch a model's networks.
_FREE = frozenset({"get_params", "set_params", "get_metadata_routing", "set_output",
                   "fit_transform", "fit_predict", "set_fit_request", "set_score_request",
                   "set_partial_fit_request", "set_transform_request",
                   "set_predict_request", "set_inverse_transform_request",
                   "set_resume_fit_request", "set_interpolate_request"})


def model_lock(model):
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


def exclusive(method):
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with model_lock(self):
            return method(self, *args, **kwargs)
    run.__fusedae_exclusive__ = True
    return run


def guard_public_methods(cls):
    """Wrap the public methods ``cls`` itself defines (see module docstring)."""
    for name, value in list(vars(cls).items()):
        if (name.startswith("_") or name in _FREE or not callable(value)
                or isinstance(value, (staticmethod, classmethod, property, type))
                or getattr(value, "__fusedae_exclusive__", False)):
            continue
        setattr(cls, name, exclusive(value))
