"""Autoencoders of the chapter (§2, §3.7): plain, sparse and denoising.

One estimator, :class:`Autoencoder`, covers them all; the sparse and
denoising variants are presets with the matching defaults. Training runs in
the compiled engine: one C++ call per epoch (shuffle, minibatches, noise and
steps), with the GIL released.
"""
from __future__ import annotations

# The methods rebind their array-like arguments to the validated arrays
# (X = v.check_data(X, ...)); let the name take the checked array's type.
# mypy: allow-redefinition

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from sklearn.base import TransformerMixin

from . import _validation as v
from ._base import _Self, NetworkEstimator, dtype_tag, set_params_from_init
from ._training import Callbacks, check_callbacks


class Autoencoder(TransformerMixin, NetworkEstimator):
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
    saturated units cannot make it infinite (docs/math.md).

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
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (a fixed split for a
        given seed), score them after every epoch and stop when the score
        has not improved by ``tol`` for ``n_iter_no_change`` epochs; the
        model keeps the parameters of its best epoch.
    validation_fraction : float in (0, 1), default=0.1
    n_iter_no_change : int >= 1, default=10
    tol : float >= 0, default=1e-4
    n_threads : int >= 1 or None, default=None
        Threads of the engine's pool during fit/transform; None keeps the
        pool's size (by default the CPUs this process may use).
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        Where the network lives and trains. ``"cuda"`` is CuPy's current
        GPU, ``"cuda:N"`` GPU N; it needs CuPy (``pip install
        "fusedae[cuda]"``) and a fusedae built with its CUDA engine
        (docs/cuda.md). On a GPU, fit, partial_fit, transform, predict,
        inverse_transform, score and loss_and_gradient also take CuPy
        arrays, used where they lie, and answer CuPy arrays for CuPy input
        and NumPy arrays for NumPy input (NumPy data are copied to the GPU
        once per call, once per fit); the same seed gives the CPU's model
        to rounding. A CuPy array given to a CPU model is refused with a
        TypeError.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the parameters and of every computation. On the CPU,
        float32 calls flush subnormal numbers (below 1.2e-38) to zero, as
        XLA does, and restore the caller's floating-point mode afterwards;
        float64 keeps IEEE gradual underflow (docs/design.md, "Subnormals").
    random_state : int, RandomState or None, default=None
        Seed of the engine's Philox stream (initial weights, shuffles,
        noise). The same integer gives the same model.
    verbose : bool, default=False
        Show a progress bar with the loss (and the mean code activation when
        sparse) during ``fit``.

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
    validation_scores_ : list of float
        Score of the held-out rows after each epoch (early stopping only).
    best_validation_score_ : float or None
    """

    def __init__(self, n_hidden: int | Sequence[int] = 64, *, activation: str = "sigmoid",
                 output_activation: str = "sigmoid", loss: str = "squared_error",
                 weight_decay: float = 0.0, sparsity_target: float | None = None,
                 sparsity_weight: float = 0.0, noise: str | None = None, noise_level: float = 0.0,
                 optimizer: str = "adam", learning_rate: float = 1e-3, momentum: float = 0.9,
                 batch_size: int = 64, epochs: int = 50, shuffle: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, n_threads: int | None = None,
                 device: str = "cpu", dtype: DTypeLike = "float32",
                 random_state: int | np.random.RandomState | None = None,
                 verbose: bool = False):
        set_params_from_init(self, locals())

    def __sklearn_tags__(self):
        # A transformer (X -> code); the code, the reconstruction and the
        # decoded rows come out in the model's dtype whatever the input's.
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = [dtype_tag(self)]
        return tags

    # ------------------------------------------------------------------ setup
    def _checked_params(self):
        """Validate every hyperparameter; return the normalised ones."""
        p = self._common_params()
        p.update({
            "hidden": v.check_hidden(self.n_hidden),
            "activation": v.check_choice("activation", self.activation, v.ACTIVATIONS),
            "output_activation": v.check_choice("output_activation", self.output_activation,
                                                v.ACTIVATIONS),
            "loss": v.check_choice("loss", self.loss, v.AUTOENCODER_LOSSES),
            "sparsity_weight": v.check_real("sparsity_weight", self.sparsity_weight, low=0.0),
        })
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
        return p

    def _layout(self, n_in, n_out, p):
        hidden = p["hidden"]
        sizes = [n_in, *hidden, *hidden[-2::-1], n_out]
        acts = [p["activation"]] * (len(sizes) - 2) + [p["output_activation"]]
        return sizes, acts, p["loss"], len(hidden) if p["sparse"] else 0

    @property
    def _code_layer(self):
        return len(self._params_used["hidden"])

    # -------------------------------------------------------------- training
    def fit(self: _Self, X: ArrayLike, y: ArrayLike | None = None, *,
            callbacks: Callbacks | None = None) -> _Self:
        """Train on X (rows are samples) from a fresh initialisation.

        Parameters
        ----------
        X : array-like of shape (M, D)
        y : ignored
        callbacks : callable or list of callables, optional
            Each is called after every epoch as ``callback(model, logs)``
            (``logs``: epoch, loss, and val_score with early stopping);
            returning True stops the fit. :class:`fusedae.callbacks.Checkpoint`
            saves the model every N epochs.

        Returns
        -------
        self
        """
        p = self._checked_params()
        X = self._training_data(X, None, p)[0]
        self._build(X.shape[1], X.shape[1], p)
        if p["optimizer"] == "lbfgs":
            if check_callbacks(callbacks):
                raise ValueError("callbacks: not available with optimizer='lbfgs' (scipy runs "
                                 "its iterations; a checkpoint could not resume them)")
            self._fit_lbfgs(X, X, p)
            self._finish((X,))
            return self
        return self._train((X,), p, callbacks)

    def partial_fit(self: _Self, X: ArrayLike, y: ArrayLike | None = None) -> _Self:
        """One epoch over X, initialising the model on the first call.

        Hyperparameters are read on the first call only (later calls keep
        the network they built).
        """
        first = not hasattr(self, "_net")
        p = self._checked_params() if first else self._params_used
        if p["optimizer"] == "lbfgs":
            raise ValueError("optimizer: partial_fit needs a stochastic optimizer, not 'lbfgs'")
        X = self._training_data(X, None, p, resume=not first)[0]
        if first:
            self._build(X.shape[1], X.shape[1], p)
        self._one_epoch((X,), p)
        self._finish((X,))
        return self

    def _training_data(self, X, y, p, resume=False):
        X = v.check_data(X, "X", p["dtype"], n_features=self.n_features_in_ if resume else None,
                         estimator=self, device=p["device"])
        if p["loss"] == "binary_cross_entropy" and (X.min() < 0 or X.max() > 1):
            raise ValueError("X: loss='binary_cross_entropy' needs values in [0, 1]")
        return (X,)

    def _one_epoch(self, data, p):
        X = data[0]
        logs = {"loss": self._run_epoch(X, None, p, p["noise"], p["noise_level"])}
        if p["sparse"] and self.verbose:
            logs["rho_hat"] = float(self.transform(X).mean())
        return logs

    def _validation_score(self, data):
        return self.score(data[0])

    # Rows per forward call when mean_activation_ is computed: the codes of a
    # whole data set at once (10240 × 196 floats for W-mnist) would be the
    # largest allocation of a fit after the data, and 4096 rows' codes (3.1
    # MiB) were still a third of what a W-mnist fit adds to its data. 256
    # rows (the engine's own forward chunk) are 0.2 MiB; 40 calls instead of
    # 3 cost about a millisecond.
    _FINISH_CHUNK = 256

    def _finish(self, data):
        X = data[0]
        total = None
        for start in range(0, X.shape[0], self._FINISH_CHUNK):
            part = self.transform(X[start:start + self._FINISH_CHUNK]).sum(axis=0,
                                                                           dtype=np.float64)
            total = part if total is None else total + part
        # A host array whatever the device (fitted attributes are saved as NumPy).
        self.mean_activation_ = v.to_host(total / X.shape[0]).astype(X.dtype)

    # ------------------------------------------------------------- inference
    def transform(self, X: ArrayLike) -> np.ndarray:
        """The code (hidden representation) of each row of X."""
        self._check_fitted()
        return self._forward(X, "X", 0, self._code_layer)

    def inverse_transform(self, X: ArrayLike) -> np.ndarray:
        """Decode codes back to the input space (the generative half)."""
        self._check_fitted()
        return self._forward(X, "X", self._code_layer, len(self._net.sizes) - 1)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The reconstruction X̂ of each row of X."""
        self._check_fitted()
        return self._forward(X, "X", 0, len(self._net.sizes) - 1)

    def reconstruction_error(self, X: ArrayLike) -> float:
        """Mean over rows of the data loss (squared error or BCE) of X's reconstruction."""
        self._check_fitted()
        X = self._checked_input(X, "X", n_features=self.n_features_in_)
        xp = v.array_module(X)  # CuPy for CuPy input: computed where X lies
        Xh = self.predict(X).astype(np.float64)
        X64 = X.astype(np.float64)
        if self._params_used["loss"] == "squared_error":
            return float(0.5 * xp.sum((Xh - X64) ** 2) / X.shape[0])
        eps = np.finfo(self._net.dtype).tiny
        Xh = xp.clip(Xh, eps, 1 - np.finfo(self._net.dtype).epsneg)
        return float(-xp.sum(X64 * xp.log(Xh) + (1 - X64) * xp.log1p(-Xh)) / X.shape[0])

    def score(self, X: ArrayLike, y: ArrayLike | None = None) -> float:
        """Negative mean reconstruction loss of X (higher is better)."""
        return -self.reconstruction_error(X)

    def loss_and_gradient(self, X: ArrayLike) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Full-batch loss (with the decay and sparsity terms) and its gradient.

        Evaluated at the current parameters, on X as given (no noise).

        Returns
        -------
        loss : float
        coef_grads : list of ndarray, shapes of ``coefs_``
        intercept_grads : list of ndarray, shapes of ``intercepts_``
        """
        self._check_fitted()
        X = self._checked_input(X, "X", n_features=self.n_features_in_)
        return self._loss_and_gradient(X, X)


class SparseAutoencoder(Autoencoder):
    """:class:`Autoencoder` with the KL sparsity term on (ρ = 0.05, β = 3).

    The chapter's §3.7: the code units are pushed to a mean activation ρ over
    the batch, so each sample lights up few of them.
    """

    def __init__(self, n_hidden: int | Sequence[int] = 64, *, activation: str = "sigmoid",
                 output_activation: str = "sigmoid", loss: str = "squared_error",
                 weight_decay: float = 0.0, sparsity_target: float | None = 0.05,
                 sparsity_weight: float = 3.0, noise: str | None = None, noise_level: float = 0.0,
                 optimizer: str = "adam", learning_rate: float = 1e-3, momentum: float = 0.9,
                 batch_size: int = 64, epochs: int = 50, shuffle: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, n_threads: int | None = None,
                 device: str = "cpu", dtype: DTypeLike = "float32",
                 random_state: int | np.random.RandomState | None = None,
                 verbose: bool = False):
        set_params_from_init(self, locals())


class DenoisingAutoencoder(Autoencoder):
    """:class:`Autoencoder` trained to undo input corruption (Gaussian σ = 0.3).

    Each step corrupts its minibatch afresh (engine Philox stream) and
    regresses the clean rows: the network learns to output a clean copy of a
    noisy signal (the chapter's Fig. 3).
    """

    def __init__(self, n_hidden: int | Sequence[int] = 64, *, activation: str = "sigmoid",
                 output_activation: str = "sigmoid", loss: str = "squared_error",
                 weight_decay: float = 0.0, sparsity_target: float | None = None,
                 sparsity_weight: float = 0.0, noise: str | None = "gaussian",
                 noise_level: float = 0.3, optimizer: str = "adam", learning_rate: float = 1e-3,
                 momentum: float = 0.9, batch_size: int = 64, epochs: int = 50,
                 shuffle: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10, tol: float = 1e-4,
                 n_threads: int | None = None, device: str = "cpu", dtype: DTypeLike = "float32",
                 random_state: int | np.random.RandomState | None = None,
                 verbose: bool = False):
        set_params_from_init(self, locals())
