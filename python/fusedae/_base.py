"""What every estimator on the engine shares: one engine network, its
training loops (fused epochs or L-BFGS), parameter views and pickling.

A subclass says which network it wants (:meth:`NetworkEstimator._layout`)
and how its data map to the network's inputs and targets; everything else
is here.
"""
from __future__ import annotations

import contextlib
import os
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _validation as v
from ._errors import TrainingDivergedError
from ._exclusive import guard_public_methods
from ._native import engine
from ._training import (Callbacks, Progress, check_callbacks, check_early_stopping, train,
                        validation_split)

#: The estimator a method is called on (``fit`` and friends return it).
_Self = TypeVar("_Self", bound="NetworkEstimator")


def set_params_from_init(estimator, values):
    """Store the constructor's arguments as attributes, unchanged.

    scikit-learn's contract: ``__init__`` only records hyperparameters (they
    are validated in ``fit``); ``get_params`` reads them back by name.
    """
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


@contextlib.contextmanager
def engine_threads(n):
    """Run the engine's thread pool with ``n`` threads (None: leave it as it is).

    The pool is shared by the process; the previous size is restored after
    the call.
    """
    if n is None:
        yield
        return
    before = engine.get_num_threads()
    engine.set_num_threads(n)
    try:
        yield
    finally:
        engine.set_num_threads(before)


def split_params(net, flat):
    """A network's flat parameter-shaped vector as (weights, biases) views."""
    sizes = net.sizes
    Ws, bs = [], []
    for l in range(1, len(sizes)):
        w0, b0 = net.weight_offset(l), net.bias_offset(l)
        Ws.append(flat[w0:b0].reshape(sizes[l - 1], sizes[l]))
        bs.append(flat[b0:b0 + sizes[l]])
    return Ws, bs


def host_params(net):
    """A network's flat parameters as NumPy: its own buffer on the CPU (a
    writable view), a read-only host copy of a GPU network's."""
    params = net.params
    if v.is_device_array(params):
        params = params.get()
        params.flags.writeable = False
    return params


def split_gradients(net, on_device):
    """A network's gradients as (weights, biases): CuPy copies when the
    call's input was on the GPU, NumPy copies otherwise."""
    g = net.grads
    return split_params(net, g.copy() if on_device else v.host_copy(g))


def network_state(net):
    """What a network needs to resume training bit for bit (no workspace),
    as host arrays whatever the device the network is on."""
    return {"sizes": list(net.sizes), "params": v.host_copy(net.params),
            "state0": v.host_copy(net.optimizer_state(0)),
            "state1": v.host_copy(net.optimizer_state(1)),
            "seed": net.seed, "optimizer_steps": net.optimizer_steps,
            "noise_steps": net.noise_steps, "epochs": net.epochs}


def _assign(name, target, value):
    """``target[:] = value`` only for an array of exactly target's shape: a
    saved state of another shape must not broadcast into a model."""
    value = v.to_host(value)
    if value.shape != target.shape or value.dtype != target.dtype:
        raise ValueError(f"{name}: expected an array of shape {target.shape} and dtype "
                         f"{target.dtype}, got shape {value.shape} and dtype {value.dtype}")
    v.assign(target, value)  # a NumPy or a CuPy (device="cuda") target


def restore_network(net, state):
    if list(state["sizes"]) != list(net.sizes):
        raise ValueError(f"sizes: expected {list(net.sizes)}, got {list(state['sizes'])}")
    _assign("params", net.params, state["params"])
    _assign("state0", net.optimizer_state(0), state["state0"])
    _assign("state1", net.optimizer_state(1), state["state1"])
    net.seed, net.optimizer_steps = state["seed"], state["optimizer_steps"]
    net.noise_steps, net.epochs = state["noise_steps"], state["epochs"]


def dtype_tag(estimator):
    """The dtype an estimator computes in, for scikit-learn's tags: its
    ``dtype`` hyperparameter, or float32 (the default) while that is not
    valid (tags must not raise; ``fit`` reports the bad value)."""
    try:
        return v.check_dtype(estimator.dtype)
    except (ValueError, AttributeError):
        return "float32"


class NetworkEstimator(BaseEstimator):
    """Base of the estimators: hyperparameters common to all of them.

    Subclasses define ``_layout(n_in, n_out, p) -> (sizes, activations,
    loss, sparsity_layer)`` and call :meth:`_build`, :meth:`_run_epoch` or
    :meth:`_fit_lbfgs` from their ``fit``.

    Every public method a subclass defines runs under the model's own lock
    (:mod:`fusedae._exclusive`): one model used from several threads is
    served one call at a time.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        guard_public_methods(cls)

    def __sklearn_tags__(self):
        """What scikit-learn may assume (its Tags API): dense 2-D numeric
        input without NaN or infinity, no sparse matrices, no strings; every
        random draw (initialisation, shuffles, noise, latents) comes from the
        Philox stream seeded by ``random_state``, so a fixed seed gives the
        same model."""
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.two_d_array = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.input_tags.string = False
        tags.input_tags.categorical = False
        return tags

    # ------------------------------------------------------------------ setup
    def _common_params(self, min_epochs=1):
        """Validate the hyperparameters every estimator has."""
        p = {
            "weight_decay": v.check_real("weight_decay", self.weight_decay, low=0.0),
            "optimizer": v.check_choice("optimizer", self.optimizer, v.OPTIMIZERS),
            "learning_rate": v.check_real("learning_rate", self.learning_rate, low=0.0,
                                          low_open=True),
            "momentum": v.check_real("momentum", self.momentum, low=0.0, high=1.0,
                                     high_open=True),
            "batch_size": v.check_int("batch_size", self.batch_size),
            "epochs": v.check_int("epochs", self.epochs, low=min_epochs),
            "device": self._checked_device(),
            "dtype": v.check_dtype(self.dtype),
        }
        if self.n_threads is not None:
            v.check_int("n_threads", self.n_threads, high=engine.max_threads)
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise ValueError(f"shuffle: expected a bool, got {self.shuffle!r}")
        p["early_stopping"] = check_early_stopping(self)
        if p["early_stopping"] is not None and p["optimizer"] == "lbfgs":
            raise ValueError("early_stopping: not available with optimizer='lbfgs' (it runs "
                             "on the full batch); use a stochastic optimizer")
        return p

    def _checked_device(self):
        """``device``, normalised; for a CUDA device, also that CUDA can run
        here (fusedae._cuda.require), so a fit fails before it reads data."""
        device = v.check_device(self.device)
        if device != "cpu":
            from . import _cuda
            _cuda.require(device)
        return device

    @property
    def _device(self):
        """Where the fitted network runs ("cpu", "cuda" or "cuda:N")."""
        return self._params_used.get("device", "cpu")

    def _seed(self):
        rs = self.random_state
        if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
            if rs < 0:
                raise ValueError(f"random_state: expected an integer >= 0, got {rs}")
            return int(rs)
        try:
            return int(check_random_state(rs).randint(0, 2**31 - 1))
        except ValueError:
            raise ValueError(f"random_state: expected None, an int or a RandomState, "
                             f"got {rs!r}") from None

    def _build(self, n_in, n_out, p, seed=None):
        """A freshly initialised network for ``n_in`` inputs and ``n_out`` outputs."""
        sizes, acts, loss, sparse_layer = self._layout(n_in, n_out, p)
        sparse = sparse_layer > 0
        args = (sizes, acts, loss, p["dtype"], p["weight_decay"], sparse_layer,
                p["sparsity_target"] if sparse else 0.05, p["sparsity_weight"] if sparse else 0.0)
        if p["device"] == "cpu":
            net = engine.Network(*args)
        else:
            from ._cuda import CudaNetwork
            net = CudaNetwork(*args, device=p["device"])
        # seed: given when a saved state is restored (its parameters overwrite
        # the initial ones; the current random_state may have changed since).
        net.init_params(self._seed() if seed is None else seed)
        if p["optimizer"] != "lbfgs":
            net.set_optimizer(p["optimizer"], p["learning_rate"], momentum=p["momentum"],
                              beta1=p["momentum"] if p["optimizer"] == "adam" else 0.9)
        self._net = net
        self._params_used = p
        self._fit_params = self.get_params(deep=False)  # what the fit ran with
        self.n_features_in_ = n_in
        self.loss_curve_ = []
        self.n_iter_ = 0
        self._start_fit(net.seed)

    # ------------------------------------------------------- the epoch loop
    def _start_fit(self, seed):
        """Reset the epoch loop's state (see :mod:`fusedae._training`)."""
        self._fit_done = False
        self._split_seed = int(seed)
        self.validation_scores_ = []
        self.best_validation_score_ = None
        self._best_snapshot = None
        self._no_improvement = 0

    def _train(self, data, p, callbacks):
        """Run the remaining epochs of a fit on ``data`` (a tuple of arrays
        with one row per sample), then finish the model.

        With early stopping a fixed share of the rows (the same for the same
        seed, so a resumed fit holds out the same rows) is set aside and
        scored after every epoch. A Ctrl-C stops the loop after the epoch in
        flight: the model is finished and consistent, and KeyboardInterrupt
        is raised again; :meth:`resume_fit` continues it.
        """
        callbacks = check_callbacks(callbacks)
        train_data, val_data = data, None
        early = p.get("early_stopping")
        if early is not None:
            kept, held = validation_split(len(data[0]), early["validation_fraction"],
                                          self._split_seed, self._stratify_labels(data))
            train_data = tuple(_take_rows(a, kept) for a in data)
            val_data = tuple(_take_rows(a, held) for a in data)
        # On a GPU, the data are copied there once per fit (CuPy input stays).
        train_data = self._device_data(train_data)
        val_data = None if val_data is None else self._device_data(val_data)
        finished = train(self, train_data, val_data, p, callbacks)
        self._finish(train_data)
        if not finished:
            raise KeyboardInterrupt(
                f"fit interrupted after epoch {self.n_iter_}; the model is usable as it "
                "is, and resume_fit(X) continues the fit where it stopped")
        return self

    def resume_fit(self: _Self, X: ArrayLike, y: ArrayLike | None = None, *,
                   callbacks: Callbacks | None = None) -> _Self:
        """Run the epochs this model's fit has left, on the same data.

        For a model saved by a checkpoint (or stopped by Ctrl-C) part way
        through ``fit``: the step counters and random streams continue, so
        the result is bit for bit the uninterrupted fit's (on the CPU, with
        the same thread count). A fit that already ran to its end is left
        as it is.

        Returns
        -------
        self
        """
        self._check_fitted()
        if getattr(self, "_fit_done", True):
            return self
        data = self._training_data(X, y, self._params_used, resume=True)
        return self._train(data, self._params_used, callbacks)

    def _total_epochs(self, p):
        return p["epochs"]

    def _one_epoch(self, data, p):
        """Train epoch ``n_iter_``; return what the progress bar shows."""
        X, Y = data
        return {"loss": self._run_epoch(X, Y, p)}

    def _stratify_labels(self, data):
        return None

    def _validation_score(self, data):
        raise NotImplementedError

    def _finish(self, data):
        """Attributes computed from the training data once the loop ends."""

    def _snapshot(self):
        # A host copy on every device: it is saved with the model by a
        # checkpoint, and model files hold host arrays only.
        return v.host_copy(self._net.params)

    def _restore_snapshot(self, snapshot):
        v.assign(self._net.params, snapshot)

    def _device_data(self, data):
        """The arrays of ``data`` on the network's device: unchanged on the
        CPU; on a GPU, NumPy arrays are copied there (an array given twice,
        as X for the inputs and the targets, is copied once)."""
        if self._device == "cpu":
            return data
        out = []
        for a in data:
            same = next((d for a0, d in zip(data, out) if a0 is a), None)
            out.append(same if same is not None else self._to_device(a))
        return tuple(out)

    def _to_device(self, a):
        """``a`` on the GPU the fitted engine model runs on (see _device_data)."""
        return self._net.to_device(a)

    # -------------------------------------------------------------- training
    def _run_epoch(self, X, Y, p, noise="none", noise_level=0.0):
        """One fused epoch in the engine; Y None means the targets are X."""
        with engine_threads(self.n_threads):
            loss, steps, diverged = self._net.fit_epoch(
                X, Y, batch_size=p["batch_size"], shuffle=bool(self.shuffle), noise=noise,
                noise_level=noise_level)
        if diverged:
            raise TrainingDivergedError(
                f"the training loss became {loss} in epoch {self.n_iter_} after {steps} steps; "
                "the model keeps its parameters from before that step (lower learning_rate?)",
                epoch=self.n_iter_, step=steps)
        self.loss_curve_.append(float(loss))
        self.n_iter_ += 1
        return float(loss)

    def _fit_lbfgs(self, X, Y, p):
        """scipy's L-BFGS-B on the full-batch fused loss and gradient."""
        from scipy.optimize import minimize
        from threadpoolctl import threadpool_limits

        net = self._net
        dtype = net.params.dtype
        X, Y = self._device_data((X, Y))  # once per fit on a GPU

        # scipy's own BLAS (and NumPy's) are other OpenBLAS instances with thread
        # pools of their own; left at full width their idle threads spin while
        # the engine works and make each iteration ~10x slower on 2 cores.
        # L-BFGS-B's own linear algebra is tiny, so it gets one thread.
        engine_width = self.n_threads or engine.get_num_threads()

        def fun(theta):
            v.assign(net.params, theta.astype(dtype, copy=False))
            with engine_threads(engine_width):
                loss = net.loss_and_gradient(X, Y)
            return loss, v.to_host(net.grads).astype(np.float64)

        progress = Progress(bool(self.verbose), p["epochs"], 0, type(self).__name__)

        def callback(intermediate_result):
            self.loss_curve_.append(float(intermediate_result.fun))
            self.n_iter_ += 1
            progress.update({"loss": float(intermediate_result.fun)})

        try:
            with threadpool_limits(1, user_api="blas"):
                res = minimize(fun, v.to_host(net.params).astype(np.float64), jac=True,
                               method="L-BFGS-B", callback=callback,
                               options={"maxiter": p["epochs"]})
        finally:
            progress.close()
        v.assign(net.params, res.x.astype(dtype))
        self.lbfgs_result_ = res
        self._fit_done = True

    # ------------------------------------------------------------- inference
    def _check_fitted(self):
        check_is_fitted(self, "loss_curve_")
        if not hasattr(self, "_net"):
            raise ValueError("this model has no network (it was fitted, then its state was "
                             "stripped); fit it again")

    def _checked_input(self, X, name, n_features=None, dtype=None):
        """check_data for this fitted model: its dtype, and CuPy input
        accepted where the network is on a GPU."""
        return v.check_data(X, name, dtype or self._net.dtype, n_features=n_features,
                            estimator=self, device=self._device)

    def _forward(self, X, name, start, stop):
        """Layers start..stop of X: a CuPy array for CuPy input (device="cuda"),
        a NumPy array otherwise."""
        self._check_fitted()
        width = self._net.sizes[start]
        X = self._checked_input(X, name, n_features=width)
        with engine_threads(self.n_threads):
            return self._net.forward(X, start, stop)

    def _loss_and_gradient(self, X, Y):
        """(loss, weight gradients, bias gradients): CuPy arrays when X or Y
        is a CuPy array, NumPy arrays otherwise."""
        on_device = v.is_device_array(X) or v.is_device_array(Y)
        with engine_threads(self.n_threads):
            loss = self._net.loss_and_gradient(X, Y)
        g = self._net.grads
        g = g.copy() if on_device else v.host_copy(g)
        return float(loss), *self._split(g)

    def _host_params(self):
        """The parameters as NumPy: the network's own buffer on the CPU (a
        writable view), a read-only host copy of a GPU network's."""
        return host_params(self._net)

    # ------------------------------------------------------------ parameters
    def _split(self, flat):
        return split_params(self._net, flat)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices (views: writing to them changes the model).

        With ``device="cuda"``: read-only NumPy copies of the weights on
        the GPU (writing to them raises).
        """
        self._check_fitted()
        return self._split(self._host_params())[0]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors (views: writing to them changes the model; read-only
        copies with ``device="cuda"``)."""
        self._check_fitted()
        return self._split(self._host_params())[1]

    # ------------------------------------------------------------ model files
    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the model to ``path``: hyperparameters, parameters, optimizer
        state and random-stream counters, as JSON and ``.npy`` arrays in one
        ZIP file, no pickle (:mod:`fusedae._persist`).

        The file is written under a temporary name in the same folder and
        renamed into place: it appears complete or not at all, and a file
        already at ``path`` stays intact if saving fails. ``fusedae.load``
        reads it back; a fit saved part way (see
        :class:`fusedae.callbacks.Checkpoint`) continues with
        :meth:`resume_fit`. A model on a GPU is written the same way, with
        host copies of its arrays; ``fusedae.load(path, device="cpu")``
        reads it on a machine without one.

        Returns
        -------
        path : str
        """
        from ._persist import save
        return save(self, path)

    # --------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        net = state.pop("_net", None)
        if net is not None:
            state["_net_state"] = network_state(net)
        return state

    def __setstate__(self, state):
        saved = state.pop("_net_state", None)
        self.__dict__.update(state)
        if saved is not None:
            self._build(saved["sizes"][0], saved["sizes"][-1], self._params_used, seed=0)
            self.__dict__.update(state)  # _build resets curves and counters; the saved win
            restore_network(self._net, saved)


def _take_rows(a, rows):
    """Rows ``rows`` (host indices) of a NumPy or CuPy array, contiguous."""
    if v.is_device_array(a):
        xp = v.array_module(a)
        with a.device:
            return xp.ascontiguousarray(a[xp.asarray(rows)])
    return np.ascontiguousarray(a[rows])


guard_public_methods(NetworkEstimator)
