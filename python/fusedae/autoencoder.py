"""Autoencoders of the chapter (§2, §3.7): plain, sparse and denoising.

One estimator, :class:`Autoencoder`, covers them all; the sparse and
denoising variants are presets with the matching defaults. Training runs in
the compiled engine: one C++ call per epoch (shuffle, minibatches, noise and
steps), with the GIL released.
"""
import contextlib
import math
import time

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _validation as v
from ._errors import TrainingDivergedError
from ._native import engine


def _set_params(estimator, values):
    """Store the constructor's arguments as attributes, unchanged.

    scikit-learn's contract: ``__init__`` only records hyperparameters (they
    are validated in ``fit``); ``get_params`` reads them back by name.
    """
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


@contextlib.contextmanager
def _engine_threads(n):
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


class Autoencoder(TransformerMixin, BaseEstimator):
    """A dense autoencoder X → code → X̂ trained by the fused engine.

    With ``n_hidden=N`` this is the chapter's two-layer network (D inputs, N
    hidden code units, D outputs); a tuple ``(h1, ..., hk)`` gives a deeper
    encoder D→h1→…→hk and the mirrored decoder hk→…→h1→D, the code being
    layer k.

    The loss minimised is, per batch of B rows,

        data(X̂, X) + (λ/2)·Σ_l ‖W_l‖² + β·Σ_n KL(ρ ‖ ρ̂_n)

    with data = (1/B)·Σ_m ½‖x̂_m − x_m‖² (``"squared_error"``, the chapter's
    eq. 22 averaged over the batch) or the binary cross entropy summed over
    features and averaged over rows (``"binary_cross_entropy"``, needs a
    sigmoid output and data in [0, 1]), ρ̂_n the batch mean of code unit n
    (eq. 23) and KL the Bernoulli divergence. ρ̂ is clamped to [ε, 1−ε]
    (ε = 2⁻²⁰ in float32, 2⁻⁴⁰ in float64) inside the sparsity term so that
    saturated units cannot make it infinite (docs/sparsity.md).

    Parameters
    ----------
    n_hidden : int or tuple of int, default=64
        Code width, or the encoder's widths (the decoder mirrors them).
    activation : {"sigmoid", "tanh", "relu", "leaky_relu", "identity"}, default="sigmoid"
        Activation of every hidden layer (code included).
    output_activation : same choices, default="sigmoid"
        Activation of the reconstruction layer.
    loss : {"squared_error", "binary_cross_entropy"}, default="squared_error"
    weight_decay : float >= 0, default=0.0
        λ of the L2 term (λ/2)·Σ‖W‖² (weights only, not biases).
    sparsity_target : float in (0, 1) or None, default=None
        ρ, the target mean activation of each code unit; None turns the
        sparsity term off. Needs a sigmoid code layer.
    sparsity_weight : float >= 0, default=0.0
        β, the weight of the sparsity term.
    noise : {"gaussian", "masking", "salt_pepper"} or None, default=None
        Corruption applied to the inputs (not the targets) at every step,
        drawn fresh by the engine's Philox stream: a denoising autoencoder.
    noise_level : float >= 0, default=0.0
        Standard deviation (gaussian) or corruption probability (masking,
        salt_pepper; salt is 1 and pepper 0).
    optimizer : {"adam", "sgd", "momentum", "lbfgs"}, default="adam"
        ``"lbfgs"`` runs scipy's L-BFGS-B on the full-batch fused
        :meth:`loss_and_gradient` for ``epochs`` iterations.
    learning_rate : float > 0, default=1e-3
    momentum : float in [0, 1), default=0.9
        Used by ``"momentum"`` (and as Adam's β1).
    batch_size : int >= 1, default=64
    epochs : int >= 1, default=50
    shuffle : bool, default=True
        Reshuffle the rows every epoch (Philox, reproducible).
    n_threads : int >= 1 or None, default=None
        Threads of the engine's pool during fit/transform; None keeps the
        pool's size (by default the CPUs this process may use).
    device : {"cpu"}, default="cpu"
    dtype : {"float32", "float64"}, default="float32"
    random_state : int, RandomState or None, default=None
        Seed of the engine's Philox stream (initial weights, shuffles,
        noise). The same integer gives the same model.
    verbose : bool, default=False
        Print the loss (and sparsity) after every epoch.

    Attributes
    ----------
    coefs_ : list of ndarray
        Weight matrices; ``coefs_[0]`` is D×N (input to first hidden layer).
    intercepts_ : list of ndarray
    loss_curve_ : list of float
        Mean training loss of each epoch (L-BFGS: of each iteration).
    mean_activation_ : ndarray
        ρ̂ of each code unit over the training data.
    n_features_in_ : int
    n_iter_ : int
        Epochs (or L-BFGS iterations) run.
    """

    def __init__(self, n_hidden=64, *, activation="sigmoid", output_activation="sigmoid",
                 loss="squared_error", weight_decay=0.0, sparsity_target=None,
                 sparsity_weight=0.0, noise=None, noise_level=0.0, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, batch_size=64, epochs=50, shuffle=True,
                 n_threads=None, device="cpu", dtype="float32", random_state=None,
                 verbose=False):
        _set_params(self, locals())

    # ------------------------------------------------------------------ setup
    def _checked_params(self):
        """Validate every hyperparameter; return the normalised ones."""
        p = {
            "hidden": v.check_hidden(self.n_hidden),
            "activation": v.check_choice("activation", self.activation, v.ACTIVATIONS),
            "output_activation": v.check_choice("output_activation", self.output_activation,
                                                v.ACTIVATIONS),
            "loss": v.check_choice("loss", self.loss, v.LOSSES),
            "weight_decay": v.check_real("weight_decay", self.weight_decay, low=0.0),
            "sparsity_weight": v.check_real("sparsity_weight", self.sparsity_weight, low=0.0),
            "optimizer": v.check_choice("optimizer", self.optimizer, v.OPTIMIZERS),
            "learning_rate": v.check_real("learning_rate", self.learning_rate, low=0.0,
                                          low_open=True),
            "momentum": v.check_real("momentum", self.momentum, low=0.0, high=1.0,
                                     high_open=True),
            "batch_size": v.check_int("batch_size", self.batch_size),
            "epochs": v.check_int("epochs", self.epochs),
            "device": v.check_device(self.device),
            "dtype": v.check_dtype(self.dtype),
        }
        if p["loss"] == "binary_cross_entropy" and p["output_activation"] != "sigmoid":
            raise ValueError("loss: 'binary_cross_entropy' needs output_activation='sigmoid'")
        rho = self.sparsity_target
        if rho is not None:
            rho = v.check_real("sparsity_target", rho, low=0.0, high=1.0, low_open=True,
                               high_open=True)
        elif p["sparsity_weight"] > 0:
            raise ValueError("sparsity_target: required (a value in (0, 1)) when "
                             "sparsity_weight > 0")
        p["sparsity_target"] = rho
        p["sparse"] = rho is not None and p["sparsity_weight"] > 0
        if p["sparse"] and p["activation"] != "sigmoid":
            raise ValueError("activation: the sparsity term compares mean activations with "
                             "a target in (0, 1) and needs activation='sigmoid'")
        if self.noise is not None:
            v.check_choice("noise", self.noise, v.NOISES)
        high = None if self.noise in (None, "gaussian") else 1.0
        p["noise_level"] = v.check_real("noise_level", self.noise_level, low=0.0, high=high)
        p["noise"] = "none" if self.noise is None or p["noise_level"] == 0 else self.noise
        if p["optimizer"] == "lbfgs" and p["noise"] != "none":
            raise ValueError("noise: L-BFGS trains on the fixed full batch; use a stochastic "
                             "optimizer ('adam', 'sgd', 'momentum') with noise")
        if self.n_threads is not None:
            v.check_int("n_threads", self.n_threads)
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise ValueError(f"shuffle: expected a bool, got {self.shuffle!r}")
        return p

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

    def _build(self, n_features, p):
        hidden = p["hidden"]
        sizes = [n_features, *hidden, *hidden[-2::-1], n_features]
        acts = [p["activation"]] * (len(sizes) - 2) + [p["output_activation"]]
        code = len(hidden)
        net = engine.Network(sizes, acts, p["loss"], p["dtype"], p["weight_decay"],
                             code if p["sparse"] else 0,
                             p["sparsity_target"] if p["sparse"] else 0.05,
                             p["sparsity_weight"] if p["sparse"] else 0.0)
        net.init_params(self._seed())
        if p["optimizer"] != "lbfgs":
            net.set_optimizer(p["optimizer"], p["learning_rate"], momentum=p["momentum"],
                              beta1=p["momentum"] if p["optimizer"] == "adam" else 0.9)
        self._net = net
        self._code_layer = code
        self._params_used = p
        self.n_features_in_ = n_features
        self.loss_curve_ = []
        self.n_iter_ = 0

    # -------------------------------------------------------------- training
    def fit(self, X, y=None):
        """Train on X (rows are samples) from a fresh initialisation.

        Returns
        -------
        self
        """
        p = self._checked_params()
        X = self._check_train_data(X, p, n_features=None)
        self._build(X.shape[1], p)
        if p["optimizer"] == "lbfgs":
            self._fit_lbfgs(X, p)
        else:
            for _ in range(p["epochs"]):
                self._epoch(X, p)
        self._finish(X)
        return self

    def partial_fit(self, X, y=None):
        """One epoch over X, initialising the model on the first call.

        Hyperparameters are read on the first call only (later calls keep
        the network they built).
        """
        first = not hasattr(self, "_net")
        p = self._checked_params() if first else self._params_used
        if p["optimizer"] == "lbfgs":
            raise ValueError("optimizer: partial_fit needs a stochastic optimizer, not 'lbfgs'")
        X = self._check_train_data(X, p, n_features=None if first else self.n_features_in_)
        if first:
            self._build(X.shape[1], p)
        self._epoch(X, p)
        self._finish(X)
        return self

    def _check_train_data(self, X, p, n_features):
        X = v.check_data(X, "X", p["dtype"], n_features=n_features)
        if p["loss"] == "binary_cross_entropy" and (X.min() < 0 or X.max() > 1):
            raise ValueError("X: loss='binary_cross_entropy' needs values in [0, 1]")
        return X

    def _epoch(self, X, p):
        t0 = time.perf_counter()
        with _engine_threads(self.n_threads):
            loss, steps, diverged = self._net.fit_epoch(
                X, None, batch_size=p["batch_size"], shuffle=bool(self.shuffle),
                noise=p["noise"], noise_level=p["noise_level"])
        if diverged:
            raise TrainingDivergedError(
                f"the training loss became {loss} in epoch {self.n_iter_} after {steps} steps; "
                "the model keeps its parameters from before that step (lower learning_rate?)",
                epoch=self.n_iter_, step=steps)
        self.loss_curve_.append(float(loss))
        self.n_iter_ += 1
        if self.verbose:
            self._report(X, loss, time.perf_counter() - t0, p)

    def _fit_lbfgs(self, X, p):
        from scipy.optimize import minimize
        from threadpoolctl import threadpool_limits

        net = self._net
        dtype = net.params.dtype

        # scipy's own BLAS (and NumPy's) are other OpenBLAS instances with thread
        # pools of their own; left at full width their idle threads spin while
        # the engine works and make each iteration ~10x slower on 2 cores.
        # L-BFGS-B's own linear algebra is tiny, so it gets one thread.
        engine_threads = self.n_threads or engine.get_num_threads()

        def fun(theta):
            net.params[:] = theta.astype(dtype, copy=False)
            with _engine_threads(engine_threads):
                loss = net.loss_and_gradient(X, X)
            return loss, net.grads.astype(np.float64)

        def callback(intermediate_result):
            self.loss_curve_.append(float(intermediate_result.fun))
            self.n_iter_ += 1
            if self.verbose:
                print(f"iteration {self.n_iter_:4d}  loss {intermediate_result.fun:.6g}")

        with threadpool_limits(1, user_api="blas"):
            res = minimize(fun, net.params.astype(np.float64), jac=True, method="L-BFGS-B",
                           callback=callback, options={"maxiter": p["epochs"]})
        net.params[:] = res.x.astype(dtype)
        self.lbfgs_result_ = res

    def _report(self, X, loss, seconds, p):
        line = f"epoch {self.n_iter_:4d}/{p['epochs']}  loss {loss:.6g}  ({seconds * 1e3:.1f} ms)"
        if p["sparse"]:
            rhohat = self.transform(X).mean(axis=0)
            line += f"  mean rho_hat {rhohat.mean():.4f} (target {p['sparsity_target']})"
        print(line, flush=True)

    def _finish(self, X):
        self.mean_activation_ = self.transform(X).mean(axis=0)

    # ------------------------------------------------------------- inference
    def _check_fitted(self):
        check_is_fitted(self, "loss_curve_")
        if not hasattr(self, "_net"):
            raise ValueError("this model has no network (it was fitted, then its state was "
                             "stripped); fit it again")

    def _forward(self, X, name, start, stop):
        self._check_fitted()
        width = self._net.sizes[start]
        X = v.check_data(X, name, self._net.dtype, n_features=width)
        with _engine_threads(self.n_threads):
            return self._net.forward(X, start, stop)

    def transform(self, X):
        """The code (hidden representation) of each row of X."""
        self._check_fitted()
        return self._forward(X, "X", 0, self._code_layer)

    def inverse_transform(self, X):
        """Decode codes back to the input space (the generative half)."""
        self._check_fitted()
        return self._forward(X, "X", self._code_layer, len(self._net.sizes) - 1)

    def predict(self, X):
        """The reconstruction X̂ of each row of X."""
        self._check_fitted()
        return self._forward(X, "X", 0, len(self._net.sizes) - 1)

    def reconstruction_error(self, X):
        """Mean over rows of the data loss (squared error or BCE) of X's reconstruction."""
        self._check_fitted()
        X = v.check_data(X, "X", self._net.dtype, n_features=self.n_features_in_)
        Xh = self.predict(X).astype(np.float64)
        X64 = X.astype(np.float64)
        if self._params_used["loss"] == "squared_error":
            return float(0.5 * np.sum((Xh - X64) ** 2) / X.shape[0])
        eps = np.finfo(self._net.dtype).tiny
        Xh = np.clip(Xh, eps, 1 - np.finfo(self._net.dtype).epsneg)
        return float(-np.sum(X64 * np.log(Xh) + (1 - X64) * np.log1p(-Xh)) / X.shape[0])

    def score(self, X, y=None):
        """Negative mean reconstruction loss of X (higher is better)."""
        return -self.reconstruction_error(X)

    def loss_and_gradient(self, X):
        """Full-batch loss (with the decay and sparsity terms) and its gradient.

        Evaluated at the current parameters, on X as given (no noise).

        Returns
        -------
        loss : float
        coef_grads : list of ndarray, shapes of ``coefs_``
        intercept_grads : list of ndarray, shapes of ``intercepts_``
        """
        self._check_fitted()
        X = v.check_data(X, "X", self._net.dtype, n_features=self.n_features_in_)
        with _engine_threads(self.n_threads):
            loss = self._net.loss_and_gradient(X, X)
        g = self._net.grads.copy()
        return float(loss), *self._split(g)

    # ------------------------------------------------------------ parameters
    def _split(self, flat):
        net = self._net
        sizes = net.sizes
        Ws, bs = [], []
        for l in range(1, len(sizes)):
            w0, b0 = net.weight_offset(l), net.bias_offset(l)
            Ws.append(flat[w0:b0].reshape(sizes[l - 1], sizes[l]))
            bs.append(flat[b0:b0 + sizes[l]])
        return Ws, bs

    @property
    def coefs_(self):
        """Weight matrices (views: writing to them changes the model)."""
        self._check_fitted()
        return self._split(self._net.params)[0]

    @property
    def intercepts_(self):
        """Bias vectors (views: writing to them changes the model)."""
        self._check_fitted()
        return self._split(self._net.params)[1]

    # --------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        net = state.pop("_net", None)
        if net is not None:
            state["_net_state"] = {
                "sizes": list(net.sizes), "params": net.params.copy(),
                "state0": net.optimizer_state(0).copy(), "state1": net.optimizer_state(1).copy(),
                "seed": net.seed, "optimizer_steps": net.optimizer_steps,
                "noise_steps": net.noise_steps, "epochs": net.epochs,
            }
        return state

    def __setstate__(self, state):
        saved = state.pop("_net_state", None)
        self.__dict__.update(state)
        if saved is not None:
            p = self._params_used
            self._build(saved["sizes"][0], p)
            self.__dict__.update({k: state[k] for k in ("loss_curve_", "n_iter_")})
            net = self._net
            net.params[:] = saved["params"]
            net.optimizer_state(0)[:] = saved["state0"]
            net.optimizer_state(1)[:] = saved["state1"]
            net.seed, net.optimizer_steps = saved["seed"], saved["optimizer_steps"]
            net.noise_steps, net.epochs = saved["noise_steps"], saved["epochs"]


class SparseAutoencoder(Autoencoder):
    """:class:`Autoencoder` with the KL sparsity term on (ρ = 0.05, β = 3).

    The chapter's §3.7: the code units are pushed to a mean activation ρ over
    the batch, so each sample lights up few of them.
    """

    def __init__(self, n_hidden=64, *, activation="sigmoid", output_activation="sigmoid",
                 loss="squared_error", weight_decay=0.0, sparsity_target=0.05,
                 sparsity_weight=3.0, noise=None, noise_level=0.0, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, batch_size=64, epochs=50, shuffle=True,
                 n_threads=None, device="cpu", dtype="float32", random_state=None,
                 verbose=False):
        _set_params(self, locals())


class DenoisingAutoencoder(Autoencoder):
    """:class:`Autoencoder` trained to undo input corruption (Gaussian σ = 0.3).

    Each step corrupts its minibatch afresh (engine Philox stream) and
    regresses the clean rows: the network learns to output a clean copy of a
    noisy signal (the chapter's Fig. 3).
    """

    def __init__(self, n_hidden=64, *, activation="sigmoid", output_activation="sigmoid",
                 loss="squared_error", weight_decay=0.0, sparsity_target=None,
                 sparsity_weight=0.0, noise="gaussian", noise_level=0.3, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, batch_size=64, epochs=50, shuffle=True,
                 n_threads=None, device="cpu", dtype="float32", random_state=None,
                 verbose=False):
        _set_params(self, locals())
