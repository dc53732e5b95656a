"""Variational autoencoders (the chapter's §4): :class:`VAE` and
:class:`ConditionalVAE`.

The encoder maps x (and, conditionally, a label y) to the mean μ and the
log-variance log σ² of a Gaussian over the latent code; a code
z = μ + σ·ε (ε ~ N(0, I), drawn by the engine's Philox stream) is decoded
back. The loss per batch of B rows is

    (1/B)·Σ_m [ recon(x̂_m, x_m) + KL(N(μ_m, σ_m²) ‖ N(0, I)) ] + (λ/2)·Σ‖W‖²

with recon the binary cross entropy or ½‖x̂ − x‖² summed over features and
KL = −½·Σ_j (1 + log σ² − μ² − σ²). One engine call per step: encoder
forward, reparameterisation and KL in one pass, the decoder's fused step
(with the gradient w.r.t. z), the encoder's delta in one pass, the encoder's
backward and both optimizer sweeps.
"""
from __future__ import annotations

# The methods rebind their array-like arguments to the validated arrays
# (X = v.check_data(X, ...)); let the name take the checked array's type.
# mypy: allow-redefinition

from collections.abc import Sequence
from typing import NoReturn

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import _labels
from . import _validation as v
from ._base import (_Self, NetworkEstimator, dtype_tag, engine_threads, host_params,
                    network_state, restore_network, set_params_from_init, split_gradients,
                    split_params)
from ._errors import TrainingDivergedError
from ._native import engine
from ._training import Callbacks

# ε for score() comes from a stream of its own, far from the training steps'.
_SCORE_STREAM = 0xFFFFFFF0
_SAMPLE_STREAM_BASE = 0x80000000
_VAE_LOSSES = ("binary_cross_entropy", "squared_error")
# interpolate() decodes one row per step; far more than any picture needs.
MAX_STEPS = 1_000_000


class VAE(TransformerMixin, NetworkEstimator):
    """Variational autoencoder trained by the fused engine.

    Parameters
    ----------
    n_latent : int, default=8
        Dimension Z of the latent code.
    n_hidden : int or tuple of int, default=(64,)
        Encoder hidden widths (input side first); the decoder mirrors them.
        ``()``: linear encoder and decoder.
    activation : {"relu", "sigmoid", "tanh", "leaky_relu", "identity"}, default="relu"
    output_activation : same choices, default="sigmoid"
    loss : {"binary_cross_entropy", "squared_error"}, default="binary_cross_entropy"
        Reconstruction term, summed over features; BCE needs a sigmoid output
        and data in [0, 1].
    weight_decay : float >= 0, default=0.0
    optimizer : {"adam", "sgd", "momentum"}, default="adam"
    learning_rate : float > 0, default=1e-3
    momentum : float in [0, 1), default=0.9
    batch_size : int >= 1, default=64
    epochs : int >= 0, default=100
        0 initialises the networks without training (a baseline).
    shuffle : bool, default=True
    early_stopping, validation_fraction, n_iter_no_change, tol
        As in :class:`fusedae.Autoencoder`; the held-out score is
        :meth:`score` (minus the negative ELBO).
    n_threads, device, dtype, random_state, verbose
        As in :class:`fusedae.Autoencoder`. With ``device="cuda"`` both
        networks and every step run on the GPU: X (and y) may be CuPy
        arrays, and ``transform``, ``encode``, ``generate``, ``interpolate``
        and ``loss_and_gradient`` answer CuPy for CuPy input and NumPy for
        NumPy input (``sample`` follows ``y``, NumPy without one). The encoder is initialised from
        Philox(seed), the decoder from Philox(seed + 1); ε of step t from
        stream (latent, t), on either device.

    Attributes
    ----------
    loss_curve_ : list of float
        Mean training loss (negative ELBO + decay) per epoch.
    recon_curve_, kl_curve_ : list of float
        Its two data terms per epoch.
    n_features_in_, n_iter_
    """

    _n_conditions = 0

    def __init__(self, n_latent: int = 8, n_hidden: int | Sequence[int] = (64,), *,
                 activation: str = "relu", output_activation: str = "sigmoid",
                 loss: str = "binary_cross_entropy", weight_decay: float = 0.0,
                 optimizer: str = "adam", learning_rate: float = 1e-3, momentum: float = 0.9,
                 batch_size: int = 64, epochs: int = 100, shuffle: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, n_threads: int | None = None,
                 device: str = "cpu", dtype: DTypeLike = "float32",
                 random_state: int | np.random.RandomState | None = None,
                 verbose: bool = False):
        set_params_from_init(self, locals())

    def __sklearn_tags__(self):
        # A transformer (X -> mean latent code), in the model's dtype.
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = [dtype_tag(self)]
        return tags

    # ------------------------------------------------------------------ setup
    def _checked_params(self):
        p = self._common_params(min_epochs=0)
        if p["optimizer"] == "lbfgs":
            raise ValueError("optimizer: a VAE trains on fresh noise every step; use 'adam', "
                             "'sgd' or 'momentum'")
        p["n_latent"] = v.check_int("n_latent", self.n_latent)
        p["hidden"] = v.check_hidden(self.n_hidden, allow_empty=True)
        p["activation"] = v.check_choice("activation", self.activation, v.ACTIVATIONS)
        p["output_activation"] = v.check_choice("output_activation", self.output_activation,
                                                v.ACTIVATIONS)
        p["loss"] = v.check_choice("loss", self.loss, _VAE_LOSSES)
        if p["loss"] == "binary_cross_entropy" and p["output_activation"] != "sigmoid":
            raise ValueError("loss: 'binary_cross_entropy' needs output_activation='sigmoid'")
        return p

    def _build_vae(self, n_features, n_conditions, p, seed=None):
        args = (n_features, p["n_latent"], list(p["hidden"]), p["activation"],
                p["output_activation"], p["loss"], p["dtype"], p["weight_decay"], n_conditions)
        if p["device"] == "cpu":
            model = engine.VAE(*args)
        else:
            from ._cuda import CudaVAE
            model = CudaVAE(*args, device=p["device"])
        model.init_params(self._seed() if seed is None else seed)  # seed: see _build
        model.set_optimizer(p["optimizer"], p["learning_rate"], momentum=p["momentum"],
                            beta1=p["momentum"] if p["optimizer"] == "adam" else 0.9)
        self._model = model
        self._params_used = p
        self._fit_params = self.get_params(deep=False)  # what the fit ran with
        self.n_features_in_ = n_features
        self.loss_curve_, self.recon_curve_, self.kl_curve_ = [], [], []
        self.n_iter_ = 0
        self._samples_drawn = 0
        self._start_fit(model.seed)

    def _check_data(self, X, p, n_features=None, name="X"):
        X = v.check_data(X, name, p["dtype"], n_features=n_features, estimator=self,
                         device=p["device"])
        if p["loss"] == "binary_cross_entropy" and (X.min() < 0 or X.max() > 1):
            raise ValueError(f"{name}: loss='binary_cross_entropy' needs values in [0, 1]")
        return X

    # -------------------------------------------------------------- training
    def fit(self: _Self, X: ArrayLike, y: ArrayLike | None = None, *,
            callbacks: Callbacks | None = None) -> _Self:
        """Train on X (rows are samples) from a fresh initialisation.

        ``callbacks``: called after every epoch as ``callback(model, logs)``
        (logs: epoch, loss, recon, kl, and val_score with early stopping);
        True stops the fit.
        """
        p = self._checked_params()
        X = self._check_data(X, p)
        self._build_vae(X.shape[1], 0, p)
        return self._train((X,), p, callbacks)

    def partial_fit(self: _Self, X: ArrayLike, y: ArrayLike | None = None) -> _Self:
        """One epoch over X, initialising the model on the first call."""
        first = not hasattr(self, "_model")
        p = self._checked_params() if first else self._params_used
        X = self._check_data(X, p, None if first else self.n_features_in_)
        if first:
            self._build_vae(X.shape[1], 0, p)
        self._one_epoch((X,), p)
        return self

    def _training_data(self, X, y, p, resume=True):
        return (self._check_data(X, p, self.n_features_in_),)

    def _one_epoch(self, data, p):
        X, Y = data[0], (data[1] if len(data) > 1 else None)
        with engine_threads(self.n_threads):
            (total, recon, kl, _), steps, diverged = self._model.fit_epoch(
                X, Y, batch_size=p["batch_size"], shuffle=bool(self.shuffle))
        if diverged:
            raise TrainingDivergedError(
                f"the training loss became {total} in epoch {self.n_iter_} after {steps} steps; "
                "the model keeps its parameters from before that step (lower learning_rate?)",
                epoch=self.n_iter_, step=steps)
        self.loss_curve_.append(float(total))
        self.recon_curve_.append(float(recon))
        self.kl_curve_.append(float(kl))
        self.n_iter_ += 1
        return {"loss": float(total), "recon": float(recon), "kl": float(kl)}

    def _validation_score(self, data):
        X, Y = data[0], (data[1] if len(data) > 1 else None)
        _, recon, kl, _ = self._losses(X, Y, self._eps(len(X)))
        return -(recon + kl)

    def _snapshot(self):
        # Host copies on every device (a checkpoint saves them with the model).
        return (v.host_copy(self._model.encoder.params),
                v.host_copy(self._model.decoder.params))

    def _restore_snapshot(self, snapshot):
        v.assign(self._model.encoder.params, snapshot[0])
        v.assign(self._model.decoder.params, snapshot[1])

    def _to_device(self, a):
        return self._model.to_device(a)

    # ------------------------------------------------------------- inference
    def _check_fitted(self):
        check_is_fitted(self, "loss_curve_")
        if not hasattr(self, "_model"):
            raise ValueError("this model has no network; fit it again")

    def _encoder_input(self, X, y):
        return X

    def encode(self, X: ArrayLike, y: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean μ and log-variance log σ² of the latent code of each row
        (CuPy arrays for CuPy X, with ``device="cuda"``)."""
        self._check_fitted()
        X = v.check_data(X, "X", self._model.encoder.dtype, n_features=self.n_features_in_,
                         estimator=self, device=self._device)
        E = self._run(self._model.encoder, self._encoder_input(X, y))
        Z = self._params_used["n_latent"]
        return E[:, :Z], E[:, Z:]

    def transform(self, X: ArrayLike, y: ArrayLike | None = None) -> np.ndarray:
        """The mean μ of each row's latent code."""
        return self.encode(X, y)[0]

    def _run(self, net, A):
        xp = v.array_module(A)  # a CuPy A stays on the GPU (device="cuda")
        with engine_threads(self.n_threads):
            return net.forward(xp.ascontiguousarray(A, dtype=net.dtype), 0, -1)

    def _module_of(self, x_a, x_b):
        """CuPy when either signal is a CuPy array (refused by a CPU model), else NumPy."""
        if self._device == "cpu":
            v.refuse_device_array(x_a, "x_a")
            v.refuse_device_array(x_b, "x_b")
        return next((v.array_module(a) for a in (x_a, x_b) if v.is_device_array(a)), np)

    def _where(self, rows, like):
        """Host rows (labels, codes) moved to the GPU when ``like`` is a CuPy array."""
        return self._model.to_device(rows) if v.is_device_array(like) else rows

    def _decoder_input(self, Z, y):
        return Z

    def generate(self, Z: ArrayLike, y: ArrayLike | None = None) -> np.ndarray:
        """Decode latent codes Z (rows) into signals (a CuPy array for CuPy Z)."""
        self._check_fitted()
        Z = v.check_data(Z, "Z", self._model.decoder.dtype,
                         n_features=self._params_used["n_latent"], estimator=self,
                         device=self._device)
        return self._run(self._model.decoder, self._decoder_input(Z, y))

    def _latent(self, n, random_state):
        n = v.check_int("n_samples", n)
        if random_state is None:
            stream = _SAMPLE_STREAM_BASE + self._samples_drawn
            self._samples_drawn += 1
        else:
            stream = _SAMPLE_STREAM_BASE - 1 - v.check_int("random_state", random_state, low=0)
        return engine.latent_normal(self._model.seed, stream % 2**32, n,
                                    self._params_used["n_latent"], self._model.encoder.dtype)

    def sample(self, n_samples: int = 1, *, random_state: int | None = None) -> np.ndarray:
        """Signals decoded from codes z ~ N(0, I).

        The codes come from the model's Philox stream: the same seed and the
        same sequence of calls give the same samples; an integer
        ``random_state`` picks a fixed set of codes. A NumPy array, on either
        device.
        """
        self._check_fitted()
        return self.generate(self._latent(n_samples, random_state))

    def interpolate(self, x_a: ArrayLike, x_b: ArrayLike, steps: int = 8) -> np.ndarray:
        """Decoded points on the line between the codes (μ) of two signals.

        Returns ``steps`` rows: the first decodes μ(x_a), the last μ(x_b).
        """
        self._check_fitted()
        steps = v.check_int("steps", steps, low=2, high=MAX_STEPS)
        xp = self._module_of(x_a, x_b)  # CuPy when either is a CuPy array
        pair = v.check_data(xp.vstack([xp.ravel(xp.asarray(x_a)), xp.ravel(xp.asarray(x_b))]),
                            "x_a, x_b", self._model.encoder.dtype,
                            n_features=self.n_features_in_, estimator=self, device=self._device)
        mu = self.transform(pair)
        t = xp.linspace(0.0, 1.0, steps)[:, None]
        return self.generate((1 - t) * mu[0] + t * mu[1])

    def _losses(self, X, Y, eps):
        with engine_threads(self.n_threads):
            return self._model.loss_and_gradient(X, Y, eps)

    def _eps(self, rows):
        return engine.latent_normal(self._model.seed, _SCORE_STREAM, rows,
                                    self._params_used["n_latent"], self._model.encoder.dtype)

    def negative_elbo(self, X: ArrayLike, y: ArrayLike | None = None) -> float:
        """Mean over rows of recon + KL (nats), one ε draw per row from a fixed stream."""
        self._check_fitted()
        X = self._check_data(X, self._params_used, self.n_features_in_)
        _, recon, kl, _ = self._losses(X, self._condition_rows(y, len(X)), self._eps(len(X)))
        return recon + kl

    def score(self, X: ArrayLike, y: ArrayLike | None = None) -> float:
        """Negative of :meth:`negative_elbo` (higher is better)."""
        return -self.negative_elbo(X, y)

    def _condition_rows(self, y, rows):
        return None

    def loss_and_gradient(
            self, X: ArrayLike, eps: ArrayLike, y: ArrayLike | None = None
    ) -> tuple[float, tuple[list[np.ndarray], list[np.ndarray]],
               tuple[list[np.ndarray], list[np.ndarray]]]:
        """Full-batch loss at the given ε (rows × n_latent) and its gradient.

        Returns
        -------
        loss : float
            recon + KL + decay.
        encoder_grads, decoder_grads : tuple of (list of ndarray, list of ndarray)
            (weight gradients, bias gradients) of each network, with λW.
        """
        self._check_fitted()
        dt = self._model.encoder.dtype
        on_device = v.is_device_array(X) or v.is_device_array(eps)
        X = self._check_data(X, self._params_used, self.n_features_in_)
        eps = v.check_data(eps, "eps", dt, n_features=self._params_used["n_latent"],
                           estimator=self, device=self._device)
        if len(eps) != len(X):
            raise ValueError(f"eps: expected {len(X)} rows (one per row of X), got {len(eps)}")
        total, _, _, _ = self._losses(X, self._condition_rows(y, len(X)), eps)
        return (float(total), split_gradients(self._model.encoder, on_device),
                split_gradients(self._model.decoder, on_device))

    @property
    def encoder_coefs_(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Encoder (weights, biases), views (read-only copies with
        ``device="cuda"``)."""
        self._check_fitted()
        return split_params(self._model.encoder, host_params(self._model.encoder))

    @property
    def decoder_coefs_(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Decoder (weights, biases), views (read-only copies with
        ``device="cuda"``)."""
        self._check_fitted()
        return split_params(self._model.decoder, host_params(self._model.decoder))

    @property
    def coefs_(self) -> NoReturn:
        raise AttributeError("a VAE has two networks: see encoder_coefs_ and decoder_coefs_")

    @property
    def intercepts_(self) -> NoReturn:
        raise AttributeError("a VAE has two networks: see encoder_coefs_ and decoder_coefs_")

    # --------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("_model", None)
        if model is not None:
            state["_model_state"] = {
                "n_features": self.n_features_in_,
                "nets": [network_state(model.encoder), network_state(model.decoder)],
                "counters": (model.seed, model.latent_steps, model.epochs),
            }
        return state

    def __setstate__(self, state):
        saved = state.pop("_model_state", None)
        self.__dict__.update(state)
        if saved is not None:
            self._build_vae(saved["n_features"], self._n_conditions_of_state(), self._params_used,
                            seed=0)
            self.__dict__.update(state)  # the saved counters and curves win
            for net, s in zip((self._model.encoder, self._model.decoder), saved["nets"]):
                restore_network(net, s)
            self._model.seed, self._model.latent_steps, self._model.epochs = saved["counters"]

    def _n_conditions_of_state(self):
        return 0


class ConditionalVAE(VAE):
    """VAE of P(X | Y): the label enters the encoder and the decoder (§4).

    ``fit(X, y)`` takes class labels (or rows of probabilities over the
    classes); ``sample(n, y=...)`` draws signals of a class, and a soft label
    between two classes (e.g. ``[0.5, 0.5, 0, ...]``) morphs one into the
    other. Parameters as :class:`VAE`.

    Attributes
    ----------
    classes_ : ndarray
    """

    def __sklearn_tags__(self):
        # fit needs the labels: the condition enters encoder and decoder.
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # y is required here (the labels are the condition); VAE.fit ignores it.
    def fit(self: _Self, X: ArrayLike, y: ArrayLike, *,  # type: ignore[override]
            callbacks: Callbacks | None = None) -> _Self:
        """Train on (X, y) from a fresh initialisation (``callbacks`` as in
        :meth:`VAE.fit`)."""
        p = self._checked_params()
        X = self._check_data(X, p)
        Y, classes = _fit_label_rows(v.host_labels(y, device=p["device"]), p["dtype"])
        if len(Y) != len(X):
            raise ValueError(f"y: expected {len(X)} labels (one per row of X), got {len(Y)}")
        self._build_vae(X.shape[1], len(classes), p)
        self.classes_ = classes
        return self._train((X, Y), p, callbacks)

    def fit_transform(self, X: ArrayLike, y: ArrayLike, *,
                      callbacks: Callbacks | None = None) -> np.ndarray:
        """Fit on (X, y), then return the mean latent code μ of each row given
        its label (``transform(X, y)``; a Pipeline's fit passes y on)."""
        return self.fit(X, y, callbacks=callbacks).transform(X, y)

    def _training_data(self, X, y, p, resume=True):
        X = self._check_data(X, p, self.n_features_in_)
        Y = _labels.label_rows(v.host_labels(y, device=p["device"]), self.classes_, p["dtype"])
        if len(Y) != len(X):
            raise ValueError(f"y: expected {len(X)} labels (one per row of X), got {len(Y)}")
        return X, Y

    def _stratify_labels(self, data):
        return np.argmax(data[1], axis=1)

    # y is required here (the labels are the condition); VAE.partial_fit ignores it.
    def partial_fit(self: _Self, X: ArrayLike, y: ArrayLike,  # type: ignore[override]
                    classes: ArrayLike | None = None) -> _Self:
        """One epoch over (X, y), initialising the model on the first call."""
        first = not hasattr(self, "_model")
        p = self._checked_params() if first else self._params_used
        X = self._check_data(X, p, None if first else self.n_features_in_)
        y = v.host_labels(y, device=p["device"])
        classes = v.host_labels(classes, "classes", p["device"])
        # classes_ is set only once the call is accepted: a refused first call
        # leaves the model unfitted.
        known = (_labels.fit_classes(y if classes is None else classes, "classes")[0]
                 if first else self.classes_)
        Y = _labels.label_rows(y, known, p["dtype"])
        if len(Y) != len(X):
            raise ValueError(f"y: expected {len(X)} labels (one per row of X), got {len(Y)}")
        if first:
            self._build_vae(X.shape[1], len(known), p)
            self.classes_ = known
        self._one_epoch((X, Y), p)
        return self

    def _condition_rows(self, y, rows):
        if y is None:
            raise ValueError("y: a conditional VAE needs the labels of the rows")
        # Labels are read on the host (a CuPy y only where the model is on a GPU).
        y = np.asarray(v.host_labels(y, device=self._device))  # also __array__-only array-likes
        if y.ndim == 0:
            y = y.reshape(1)  # one label for every row
        Y = _labels.label_rows(y, self.classes_, self._model.encoder.dtype)
        if len(Y) == 1 and rows > 1:
            Y = np.repeat(Y, rows, axis=0)
        if len(Y) != rows:
            raise ValueError(f"y: expected {rows} labels (one per row), got {len(Y)}")
        return Y

    def _encoder_input(self, X, y):
        return v.array_module(X).hstack([X, self._where(self._condition_rows(y, len(X)), X)])

    def _decoder_input(self, Z, y):
        return v.array_module(Z).hstack([Z, self._where(self._condition_rows(y, len(Z)), Z)])

    def sample(self, n_samples: int = 1, *, y: ArrayLike | None = None,
               random_state: int | None = None) -> np.ndarray:
        """Signals of class ``y``.

        ``y``: one label for all samples, a 1-D array of labels (one per
        sample), or 2-D rows of probabilities over ``classes_`` (one row for
        all samples, or one per sample). A CuPy array for a CuPy ``y``
        (``device="cuda"``), else a NumPy array.
        """
        self._check_fitted()
        Z = self._latent(n_samples, random_state)
        if self._device != "cpu":
            Z = self._where(Z, y)  # follows y (a CPU model refuses a CuPy y below)
        return self.generate(Z, y)

    def interpolate(self, x_a: ArrayLike, x_b: ArrayLike, steps: int = 8, *,
                    y_a: ArrayLike | None = None, y_b: ArrayLike | None = None) -> np.ndarray:
        """Decoded points between (μ(x_a | y_a), y_a) and (μ(x_b | y_b), y_b)."""
        self._check_fitted()
        steps = v.check_int("steps", steps, low=2, high=MAX_STEPS)
        # np.ndim(None) is 0: a missing label goes on to _condition_rows, which reports it.
        Ya = self._condition_rows(
            y_a if np.ndim(y_a) == 0 else np.atleast_2d(y_a), 1)  # type: ignore[arg-type]
        Yb = self._condition_rows(
            y_b if np.ndim(y_b) == 0 else np.atleast_2d(y_b), 1)  # type: ignore[arg-type]
        xp = self._module_of(x_a, x_b)
        pair = v.check_data(xp.vstack([xp.ravel(xp.asarray(x_a)), xp.ravel(xp.asarray(x_b))]),
                            "x_a, x_b", self._model.encoder.dtype,
                            n_features=self.n_features_in_, estimator=self, device=self._device)
        mu = self.transform(pair, np.vstack([Ya, Yb]))
        t = np.linspace(0.0, 1.0, steps)[:, None]
        path = (1 - xp.asarray(t)) * mu[0] + xp.asarray(t) * mu[1]
        return self.generate(path, (1 - t) * Ya + t * Yb)

    def _n_conditions_of_state(self):
        return len(self.classes_)


def _fit_label_rows(y, dtype):
    arr = np.asarray(y) if y is not None else None
    if arr is not None and arr.ndim == 2 and arr.shape[1] > 1:
        return _labels.probability_rows(arr, arr.shape[1], dtype), np.arange(arr.shape[1])
    classes, idx = _labels.fit_classes(y)
    return _labels.one_hot(idx, len(classes), dtype), classes
