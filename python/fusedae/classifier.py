"""The discriminative network of the chapter (§1, Fig. 1): X → ŷ.

Dense hidden layers, a softmax output over the classes and the categorical
cross entropy (eq. 12-13, with eq. 14-16 as corrected), trained by the
engine's fused step: the softmax, the loss and its delta softmax(Z) − Y are
one pass over the output GEMM's result.
"""
from __future__ import annotations

# The methods rebind their array-like arguments to the validated arrays
# (X = v.check_data(X, ...)); let the name take the checked array's type.
# mypy: allow-redefinition

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from sklearn.base import ClassifierMixin

from . import _labels
from . import _validation as v
from ._base import _Self, NetworkEstimator, set_params_from_init
from ._training import Callbacks, check_callbacks


class Classifier(ClassifierMixin, NetworkEstimator):
    """A softmax classifier (multilayer perceptron) trained by the fused engine.

    The loss minimised is, per batch of B rows with one-hot targets y,

        (1/B)·Σ_m −log softmax(z_m)[y_m] + (λ/2)·Σ_l ‖W_l‖²

    in nats, where z_m are the output layer's logits.

    Parameters
    ----------
    n_hidden : int or tuple of int, default=64
        Widths of the hidden layers, input side first; ``()`` gives
        multinomial logistic regression (no hidden layer).
    activation : {"relu", "sigmoid", "tanh", "leaky_relu", "identity"}, default="relu"
        Activation of every hidden layer.
    weight_decay : float >= 0, default=0.0
        λ of the L2 term (weights only, not biases).
    optimizer : {"adam", "sgd", "momentum", "lbfgs"}, default="adam"
        ``"lbfgs"`` runs scipy's L-BFGS-B on the full-batch fused
        :meth:`loss_and_gradient` for ``epochs`` iterations.
    learning_rate : float > 0, default=1e-3
    momentum : float in [0, 1), default=0.9
        Used by ``"momentum"`` (and as Adam's β1).
    batch_size : int >= 1, default=64
    epochs : int >= 1, default=50
    shuffle : bool, default=True
    early_stopping, validation_fraction, n_iter_no_change, tol
        As in :class:`fusedae.Autoencoder`; the held-out rows are a
        stratified split and their score is minus their mean log loss
        (accuracy on a small split moves in steps too coarse to judge
        progress by).
    n_threads : int >= 1 or None, default=None
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        Where the network lives and trains (see :class:`fusedae.Autoencoder`).
        On a GPU, X may be a CuPy array; y (labels) may be one too and is
        read on the host. predict_proba answers a CuPy array for CuPy X;
        predict answers the labels as a CuPy array for CuPy X when the
        classes are numbers (a NumPy array for other labels, which CuPy
        cannot hold).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the parameters and of every computation. On the CPU,
        float32 calls flush subnormal numbers (below 1.2e-38) to zero, as
        XLA does, and restore the caller's floating-point mode afterwards;
        float64 keeps IEEE gradual underflow (docs/design.md, "Subnormals").
    random_state : int, RandomState or None, default=None
        Seed of the engine's Philox stream (initial weights, shuffles).
    verbose : bool, default=False
        Show a progress bar with the loss during ``fit``.

    Attributes
    ----------
    classes_ : ndarray
        The distinct labels seen in fit, sorted; column k of
        :meth:`predict_proba` is ``classes_[k]``.
    coefs_, intercepts_ : list of ndarray
    loss_curve_ : list of float
    n_features_in_ : int
    n_iter_ : int
    """

    def __init__(self, n_hidden: int | Sequence[int] = 64, *, activation: str = "relu",
                 weight_decay: float = 0.0, optimizer: str = "adam", learning_rate: float = 1e-3,
                 momentum: float = 0.9, batch_size: int = 64, epochs: int = 50,
                 shuffle: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10, tol: float = 1e-4,
                 n_threads: int | None = None, device: str = "cpu", dtype: DTypeLike = "float32",
                 random_state: int | np.random.RandomState | None = None,
                 verbose: bool = False):
        set_params_from_init(self, locals())

    def __sklearn_tags__(self):
        # ClassifierMixin: a classifier that requires y; any number of classes
        # (softmax output), one label per row (no multi-label, no multi-output).
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.target_tags.multi_output = False
        tags.target_tags.single_output = True
        return tags

    def _checked_params(self):
        p = self._common_params()
        p["hidden"] = v.check_hidden(self.n_hidden, allow_empty=True)
        p["activation"] = v.check_choice("activation", self.activation, v.ACTIVATIONS)
        return p

    def _layout(self, n_in, n_out, p):
        sizes = [n_in, *p["hidden"], n_out]
        acts = [p["activation"]] * len(p["hidden"]) + ["softmax"]
        return sizes, acts, "categorical_cross_entropy", 0

    # -------------------------------------------------------------- training
    def fit(self: _Self, X: ArrayLike, y: ArrayLike, *,
            callbacks: Callbacks | None = None) -> _Self:
        """Train on (X, y) from a fresh initialisation.

        Parameters
        ----------
        X : array-like of shape (M, D)
        y : array-like of shape (M,)
            Class labels (any sortable type); at least two distinct ones.
        callbacks : callable or list of callables, optional
            Called after every epoch as ``callback(model, logs)``; True
            stops the fit (see :meth:`fusedae.Autoencoder.fit`).

        Returns
        -------
        self
        """
        p = self._checked_params()
        X, Y, classes = self._checked_rows(X, y, p, None)
        data = (X, Y)
        self._build(X.shape[1], len(classes), p)
        self.classes_ = classes
        if p["optimizer"] == "lbfgs":
            if check_callbacks(callbacks):
                raise ValueError("callbacks: not available with optimizer='lbfgs' (scipy runs "
                                 "its iterations; a checkpoint could not resume them)")
            self._fit_lbfgs(X, Y, p)
            return self
        return self._train(data, p, callbacks)

    def _training_data(self, X, y, p, resume=True):
        X, Y, _ = self._checked_rows(X, y, p, self.classes_)
        return X, Y

    def _checked_rows(self, X, y, p, classes):
        """(X, one-hot Y, classes): the classes of ``y`` when ``classes`` is
        None (a new fit), else ``y`` read against the given ones."""
        X = v.check_data(X, "X", p["dtype"],
                         n_features=None if classes is None else self.n_features_in_,
                         estimator=self, device=p["device"])
        y = v.host_labels(y, device=p["device"])
        if classes is None:
            classes, idx = _labels.fit_classes(y)
            if len(classes) < 2:
                raise ValueError(f"y: expected at least 2 classes, got only {classes.tolist()} "
                                 "(1 class)")
        else:
            idx = _labels.label_indices(y, classes)
        self._check_rows(X, idx)
        return X, _labels.one_hot(idx, len(classes), p["dtype"]), classes

    def _stratify_labels(self, data):
        return np.argmax(data[1], axis=1)

    def _validation_score(self, data):
        # Minus the held-out log loss, not the accuracy: on a few hundred rows
        # accuracy moves in coarse steps and stops improving long before the
        # model does, so patience would run out early.
        X, Y = data
        xp = v.array_module(X)
        P = self.predict_proba(X).astype(np.float64)
        picked = xp.clip(xp.sum(P * Y, axis=1), np.finfo(np.float64).tiny, None)
        return float(xp.mean(xp.log(picked)))

    def partial_fit(self: _Self, X: ArrayLike, y: ArrayLike,
                    classes: ArrayLike | None = None) -> _Self:
        """One epoch over (X, y), initialising the model on the first call.

        Parameters
        ----------
        classes : array-like, optional
            Every label the model will see, required on the first call
            unless that call's ``y`` already holds them all; ignored later.
        """
        first = not hasattr(self, "_net")
        p = self._checked_params() if first else self._params_used
        if p["optimizer"] == "lbfgs":
            raise ValueError("optimizer: partial_fit needs a stochastic optimizer, not 'lbfgs'")
        X = v.check_data(X, "X", p["dtype"], n_features=None if first else self.n_features_in_,
                         estimator=self, device=p["device"])
        y = v.host_labels(y, device=p["device"])
        classes = v.host_labels(classes, "classes", p["device"])
        if first:
            all_classes = _labels.fit_classes(y if classes is None else classes, "classes")[0]
            if len(all_classes) < 2:
                raise ValueError(f"classes: expected at least 2 classes, got "
                                 f"{all_classes.tolist()}")
        else:
            all_classes = self.classes_
        idx = _labels.label_indices(y, all_classes)
        self._check_rows(X, idx)
        if first:
            self._build(X.shape[1], len(all_classes), p)
            self.classes_ = all_classes
        self._one_epoch((X, _labels.one_hot(idx, len(all_classes), p["dtype"])), p)
        return self

    @staticmethod
    def _check_rows(X, idx):
        if len(idx) != X.shape[0]:
            raise ValueError(f"y: expected {X.shape[0]} labels (one per row of X), "
                             f"got {len(idx)}")

    # ------------------------------------------------------------- inference
    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probability of each class (columns in ``classes_`` order) for each row."""
        self._check_fitted()
        return self._forward(X, "X", 0, len(self._net.sizes) - 1)

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Natural log of :meth:`predict_proba` (−inf where it underflows to 0)."""
        P = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return v.array_module(P).log(P)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most probable class of each row."""
        self._check_fitted()
        P = self.predict_proba(X)
        best = P.argmax(axis=1)
        if v.is_device_array(best):
            if self.classes_.dtype.kind in "biuf":  # numbers: labels stay on the GPU
                return v.array_module(best).asarray(self.classes_)[best]
            best = best.get()
        return self.classes_[best]

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Mean accuracy of :meth:`predict` on X against the labels y.

        As scikit-learn's ``ClassifierMixin.score``; X, y and sample_weight
        may be CuPy arrays on a GPU model (the accuracy is computed on the
        host).
        """
        from sklearn.metrics import accuracy_score
        predicted = v.to_host(self.predict(X))
        return float(accuracy_score(
            v.host_labels(y, device=self._device), predicted,
            sample_weight=v.host_labels(sample_weight, "sample_weight", self._device)))

    def loss_and_gradient(self, X: ArrayLike,
                          y: ArrayLike) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Full-batch loss (with the decay term) and its gradient at the
        current parameters.

        Returns
        -------
        loss : float
        coef_grads, intercept_grads : list of ndarray
        """
        self._check_fitted()
        X = self._checked_input(X, "X", n_features=self.n_features_in_)
        idx = _labels.label_indices(v.host_labels(y, device=self._device), self.classes_)
        self._check_rows(X, idx)
        Y = _labels.one_hot(idx, len(self.classes_), self._net.dtype)
        return self._loss_and_gradient(X, Y)
