"""Generative adversarial network (the chapter's §5) on the fused engine.

A generator G (latent z ~ N(0, I) → signal) and a discriminator D (signal →
probability that it is real, sigmoid + binary cross entropy) are trained
against each other. The chapter's schedule is available as options:

1. ``d_pretrain_epochs``: D alone, on real data against the untrained
   generator's samples (pre-training on real data alone would teach D that
   everything is real);
2. ``g_pretrain_epochs``: G alone, against the frozen D;
3. ``epochs``: alternating, ``d_steps`` D steps (one per minibatch of real
   data) per G step.

Losses: D minimises the BCE over the stacked batch [real; fake] with targets
[1; 0] (the mean over its 2B rows). G minimises −log D(G(z)) by default
(``loss="non_saturating"``), or log(1 − D(G(z))) (``"minimax"``, the original
game, whose gradient vanishes while D wins). Each step is one engine call;
the G step back-propagates through the frozen D to D's inputs and on into G.
"""
from __future__ import annotations

# The methods rebind their array-like arguments to the validated arrays
# (X = v.check_data(X, ...)); let the name take the checked array's type.
# mypy: allow-redefinition

from collections.abc import Sequence
from typing import NoReturn

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from . import _validation as v
from ._base import (_Self, NetworkEstimator, engine_threads, host_params, network_state,
                    restore_network, set_params_from_init, split_gradients, split_params)
from ._errors import TrainingDivergedError
from ._native import engine
from ._training import Callbacks

_SAMPLE_STREAM_BASE = 0x80000000
_GAN_LOSSES = ("non_saturating", "minimax")


class GAN(NetworkEstimator, BaseEstimator):
    """Generator and discriminator MLPs trained adversarially.

    Parameters
    ----------
    n_latent : int, default=16
    g_hidden, d_hidden : int or tuple of int, default=(128,)
        Hidden widths of the generator (latent side first) and the
        discriminator (signal side first).
    g_activation : default="relu"
    g_output_activation : default="sigmoid"
        ``"sigmoid"`` for signals in [0, 1], ``"identity"`` for any real values.
    d_activation : default="leaky_relu"
    loss : {"non_saturating", "minimax"}, default="non_saturating"
    optimizer : {"adam", "sgd", "momentum"}, default="adam"
    g_learning_rate, d_learning_rate : float > 0, default=2e-4
    beta1 : float in [0, 1), default=0.5
        Adam's β1 (0.5 is the usual GAN setting; also the momentum of
        ``"momentum"``). β2 is 0.999.
    batch_size : int >= 1, default=64
    epochs : int >= 0, default=100
        Alternating epochs (passes over the real data).
    d_steps : int >= 1, default=1
        Discriminator steps per generator step in the alternating phase.
    d_pretrain_epochs, g_pretrain_epochs : int >= 0, default=0
    weight_decay : float >= 0, default=0.0
    shuffle, n_threads, device, dtype, random_state, verbose
        As in :class:`fusedae.Autoencoder`. With ``device="cuda"`` both
        networks and every step run on the GPU: X may be a CuPy array, and
        ``generate``, ``discriminate`` and the ``*_loss_and_gradient``
        methods answer CuPy for CuPy input and NumPy for NumPy input
        (``latent`` and ``sample`` give NumPy arrays). G is initialised from
        Philox(seed), D from Philox(seed + 1); the latents of step t from
        stream (latent, t), on either device.

    Attributes
    ----------
    history_ : dict of lists
        ``d_loss`` and ``g_loss`` per step, and ``phase`` ("d_pretrain",
        "g_pretrain", "alternating") and ``epoch`` of each epoch's entries in
        ``epochs_`` (a list of (phase, n_d_steps, n_g_steps)).
    n_features_in_, n_iter_
    """

    def __init__(self, n_latent: int = 16, g_hidden: int | Sequence[int] = (128,),
                 d_hidden: int | Sequence[int] = (128,), *, g_activation: str = "relu",
                 g_output_activation: str = "sigmoid", d_activation: str = "leaky_relu",
                 loss: str = "non_saturating", optimizer: str = "adam",
                 g_learning_rate: float = 2e-4, d_learning_rate: float = 2e-4, beta1: float = 0.5,
                 batch_size: int = 64, epochs: int = 100, d_steps: int = 1,
                 d_pretrain_epochs: int = 0, g_pretrain_epochs: int = 0, weight_decay: float = 0.0,
                 shuffle: bool = True, n_threads: int | None = None, device: str = "cpu",
                 dtype: DTypeLike = "float32",
                 random_state: int | np.random.RandomState | None = None,
                 verbose: bool = False):
        set_params_from_init(self, locals())

    def _checked_params(self):
        p = {
            "weight_decay": v.check_real("weight_decay", self.weight_decay, low=0.0),
            "optimizer": v.check_choice("optimizer", self.optimizer, ("adam", "sgd", "momentum")),
            "g_learning_rate": v.check_real("g_learning_rate", self.g_learning_rate, low=0.0,
                                            low_open=True),
            "d_learning_rate": v.check_real("d_learning_rate", self.d_learning_rate, low=0.0,
                                            low_open=True),
            "beta1": v.check_real("beta1", self.beta1, low=0.0, high=1.0, high_open=True),
            "batch_size": v.check_int("batch_size", self.batch_size),
            "epochs": v.check_int("epochs", self.epochs, low=0),
            "d_steps": v.check_int("d_steps", self.d_steps),
            "d_pretrain_epochs": v.check_int("d_pretrain_epochs", self.d_pretrain_epochs, low=0),
            "g_pretrain_epochs": v.check_int("g_pretrain_epochs", self.g_pretrain_epochs, low=0),
            "device": self._checked_device(),
            "dtype": v.check_dtype(self.dtype),
            "n_latent": v.check_int("n_latent", self.n_latent),
            "g_hidden": v.check_hidden(self.g_hidden, allow_empty=True, name="g_hidden"),
            "d_hidden": v.check_hidden(self.d_hidden, allow_empty=True, name="d_hidden"),
            "g_activation": v.check_choice("g_activation", self.g_activation, v.ACTIVATIONS),
            "g_output_activation": v.check_choice("g_output_activation",
                                                  self.g_output_activation, v.ACTIVATIONS),
            "d_activation": v.check_choice("d_activation", self.d_activation, v.ACTIVATIONS),
            "loss": v.check_choice("loss", self.loss, _GAN_LOSSES),
        }
        if self.n_threads is not None:
            v.check_int("n_threads", self.n_threads, high=engine.max_threads)
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise ValueError(f"shuffle: expected a bool, got {self.shuffle!r}")
        return p

    def _build_gan(self, n_features, p, seed=None):
        args = (p["n_latent"], n_features, list(p["g_hidden"]), list(p["d_hidden"]),
                p["g_activation"], p["g_output_activation"], p["d_activation"], p["dtype"],
                p["weight_decay"], p["loss"] == "minimax")
        if p["device"] == "cpu":
            model = engine.GAN(*args)
        else:
            from ._cuda import CudaGAN
            model = CudaGAN(*args, device=p["device"])
        model.init_params(self._seed() if seed is None else seed)  # seed: see _build
        model.set_optimizers(p["optimizer"], p["g_learning_rate"], p["d_learning_rate"],
                             momentum=p["beta1"], beta1=p["beta1"])
        self._model = model
        self._params_used = p
        self._fit_params = self.get_params(deep=False)  # what the fit ran with
        self.n_features_in_ = n_features
        self.history_ = {"d_loss": [], "g_loss": []}
        self.epochs_ = []
        self.n_iter_ = 0
        self._samples_drawn = 0
        self._start_fit(model.seed)

    def fit(self: _Self, X: ArrayLike, y: ArrayLike | None = None, *,
            callbacks: Callbacks | None = None) -> _Self:
        """Run the whole schedule on the real rows X from a fresh initialisation.

        ``callbacks``: called after every epoch as ``callback(model, logs)``
        (logs: epoch, phase, d_loss, g_loss: the epoch's mean losses);
        True stops the fit.
        """
        p = self._checked_params()
        X = v.check_data(X, "X", p["dtype"], device=p["device"])
        self._build_gan(X.shape[1], p)
        return self._train((X,), p, callbacks)

    def partial_fit(self: _Self, X: ArrayLike, y: ArrayLike | None = None) -> _Self:
        """One alternating epoch over X, initialising the model on the first call."""
        first = not hasattr(self, "_model")
        p = self._checked_params() if first else self._params_used
        X = v.check_data(X, "X", p["dtype"], n_features=None if first else self.n_features_in_,
                         estimator=self, device=p["device"])
        if first:
            self._build_gan(X.shape[1], p)
        self._gan_epoch(X, p, "alternating", train_d=True, train_g=True)
        return self

    def _training_data(self, X, y, p, resume=True):
        return (v.check_data(X, "X", p["dtype"], n_features=self.n_features_in_, estimator=self,
                             device=p["device"]),)

    def _to_device(self, a):
        return self._model.to_device(a)

    def _total_epochs(self, p):
        return p["d_pretrain_epochs"] + p["g_pretrain_epochs"] + p["epochs"]

    def _one_epoch(self, data, p):
        """Epoch ``n_iter_`` of the schedule: D pre-training, G pre-training,
        then alternating."""
        i = self.n_iter_
        if i < p["d_pretrain_epochs"]:
            return self._gan_epoch(data[0], p, "d_pretrain", train_d=True, train_g=False)
        if i < p["d_pretrain_epochs"] + p["g_pretrain_epochs"]:
            return self._gan_epoch(data[0], p, "g_pretrain", train_d=False, train_g=True)
        return self._gan_epoch(data[0], p, "alternating", train_d=True, train_g=True)

    def _gan_epoch(self, X, p, phase, *, train_d, train_g):
        with engine_threads(self.n_threads):
            d, g, diverged = self._model.fit_epoch(X, p["batch_size"], p["d_steps"], train_d,
                                                   train_g, bool(self.shuffle))
        self.history_["d_loss"].extend(d)
        self.history_["g_loss"].extend(g)
        self.epochs_.append((phase, len(d), len(g)))
        if diverged:
            raise TrainingDivergedError(
                f"a loss became non-finite in epoch {self.n_iter_} ({phase}); the model keeps "
                "its parameters from before that step (lower the learning rates?)",
                epoch=self.n_iter_, step=len(d) + len(g))
        self.n_iter_ += 1
        logs = {"phase": phase}
        if d:
            logs["d_loss"] = float(np.mean(d))
        if g:
            logs["g_loss"] = float(np.mean(g))
        return logs

    # ------------------------------------------------------------- inference
    def _check_fitted(self):
        check_is_fitted(self, "history_")
        if not hasattr(self, "_model"):
            raise ValueError("this model has no network; fit it again")

    def latent(self, n_samples: int = 1, *, random_state: int | None = None) -> np.ndarray:
        """Latent codes z ~ N(0, I) from the model's Philox stream (see :meth:`sample`)."""
        self._check_fitted()
        n = v.check_int("n_samples", n_samples)
        if random_state is None:
            stream = _SAMPLE_STREAM_BASE + self._samples_drawn
            self._samples_drawn += 1
        else:
            stream = _SAMPLE_STREAM_BASE - 1 - v.check_int("random_state", random_state, low=0)
        return engine.latent_normal(self._model.seed, stream % 2**32, n,
                                    self._params_used["n_latent"],
                                    self._model.generator.dtype)

    def generate(self, Z: ArrayLike) -> np.ndarray:
        """G(z) for each row of Z (a CuPy array for CuPy Z, with ``device="cuda"``)."""
        self._check_fitted()
        net = self._model.generator
        Z = v.check_data(Z, "Z", net.dtype, n_features=self._params_used["n_latent"],
                         estimator=self, device=self._device)
        with engine_threads(self.n_threads):
            return net.forward(Z, 0, -1)

    def sample(self, n_samples: int = 1, *, random_state: int | None = None) -> np.ndarray:
        """Generated signals (a NumPy array, on either device). The same seed
        and sequence of calls give the same samples; an integer
        ``random_state`` picks a fixed set of latents."""
        return self.generate(self.latent(n_samples, random_state=random_state))

    def discriminate(self, X: ArrayLike) -> np.ndarray:
        """D(x): the discriminator's probability that each row is real (a
        CuPy array for CuPy X)."""
        self._check_fitted()
        net = self._model.discriminator
        X = v.check_data(X, "X", net.dtype, n_features=self.n_features_in_, estimator=self,
                         device=self._device)
        with engine_threads(self.n_threads):
            return net.forward(X, 0, -1)[:, 0]

    def generator_loss_and_gradient(
            self, Z: ArrayLike) -> tuple[float, tuple[list[np.ndarray], list[np.ndarray]]]:
        """G's loss at latents Z against the current D, and its gradient
        (G's (weights, biases), with λW); D is not changed."""
        self._check_fitted()
        net = self._model.generator
        on_device = v.is_device_array(Z)
        Z = v.check_data(Z, "Z", net.dtype, n_features=self._params_used["n_latent"],
                         estimator=self, device=self._device)
        with engine_threads(self.n_threads):
            loss = self._model.generator_loss_and_gradient(Z)
        return float(loss), split_gradients(net, on_device)

    def discriminator_loss_and_gradient(
            self, X_real: ArrayLike, X_fake: ArrayLike
    ) -> tuple[float, tuple[list[np.ndarray], list[np.ndarray]]]:
        """D's loss on [real; fake] with targets [1; 0], and its gradient."""
        self._check_fitted()
        net = self._model.discriminator
        R = v.check_data(X_real, "X_real", net.dtype, n_features=self.n_features_in_,
                         estimator=self, device=self._device)
        F = v.check_data(X_fake, "X_fake", net.dtype, n_features=self.n_features_in_,
                         estimator=self, device=self._device)
        # On the GPU when either is a CuPy array (the other is copied there).
        on_device = v.is_device_array(R) or v.is_device_array(F)
        if on_device:
            R, F = self._model.to_device(R), self._model.to_device(F)
        xp = v.array_module(R)
        S = xp.ascontiguousarray(xp.vstack([R, F]))
        T = xp.asarray(np.concatenate([np.ones(len(R)), np.zeros(len(F))])
                       .astype(net.dtype)[:, None])
        with engine_threads(self.n_threads):
            loss = net.loss_and_gradient(S, T)
        return float(loss), split_gradients(net, on_device)

    @property
    def generator_coefs_(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Generator (weights, biases), views (read-only copies with
        ``device="cuda"``)."""
        self._check_fitted()
        return split_params(self._model.generator, host_params(self._model.generator))

    @property
    def discriminator_coefs_(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Discriminator (weights, biases), views (read-only copies with
        ``device="cuda"``)."""
        self._check_fitted()
        return split_params(self._model.discriminator, host_params(self._model.discriminator))

    @property
    def coefs_(self) -> NoReturn:
        raise AttributeError("a GAN has two networks: see generator_coefs_ and "
                             "discriminator_coefs_")

    @property
    def intercepts_(self) -> NoReturn:
        raise AttributeError("a GAN has two networks: see generator_coefs_ and "
                             "discriminator_coefs_")

    # --------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("_model", None)
        if model is not None:
            state["_model_state"] = {
                "n_features": self.n_features_in_,
                "nets": [network_state(model.generator), network_state(model.discriminator)],
                "counters": (model.seed, model.latent_steps, model.epochs),
            }
        return state

    def __setstate__(self, state):
        saved = state.pop("_model_state", None)
        self.__dict__.update(state)
        if saved is not None:
            self._build_gan(saved["n_features"], self._params_used, seed=0)
            self.__dict__.update(state)  # the saved counters and curves win
            for net, s in zip((self._model.generator, self._model.discriminator), saved["nets"]):
                restore_network(net, s)
            self._model.seed, self._model.latent_steps, self._model.epochs = saved["counters"]
