"""The generative network of the chapter (§1, Fig. 2): a category label → a
typical feature vector.

Trained with least squares on (label, sample) pairs, the network's output for
a one-hot label converges to the mean of that class's samples (the
minimiser of the squared error over a class is its mean); a probability
vector over the labels asks for a blend of the classes.
"""
from __future__ import annotations

# The methods rebind their array-like arguments to the validated arrays
# (X = v.check_data(X, ...)); let the name take the checked array's type.
# mypy: allow-redefinition

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _labels
from . import _validation as v
from ._base import _Self, NetworkEstimator, set_params_from_init
from ._training import Callbacks, check_callbacks


class Generator(NetworkEstimator):
    """Label → signal network trained by the fused engine.

    The input of the network is the one-hot indicator of a label (or a
    probability vector over the labels), its output a feature vector; the
    loss is, per batch of B (label, sample) pairs,

        (1/B)·Σ_m ½‖g(y_m) − x_m‖² + (λ/2)·Σ_l ‖W_l‖².

    Parameters
    ----------
    n_hidden : int or tuple of int, default=64
        Widths of the hidden layers, label side first; ``()`` gives a linear
        map, which reproduces the class means exactly.
    activation : {"sigmoid", "tanh", "relu", "leaky_relu", "identity"}, default="sigmoid"
        Activation of the hidden layers.
    output_activation : same choices, default="identity"
        Activation of the output layer: ``"sigmoid"`` for signals in [0, 1].
    weight_decay, optimizer, learning_rate, momentum, batch_size, epochs,
    shuffle, early_stopping, validation_fraction, n_iter_no_change, tol,
    n_threads, device, dtype, random_state, verbose
        As in :class:`fusedae.Classifier`; learning_rate defaults to 1e-2.
        With ``device="cuda"``, X (the signals) and y (labels or label
        probabilities, read on the host) may be CuPy arrays; generate
        answers a CuPy array for a CuPy y, a NumPy array otherwise.

    Attributes
    ----------
    classes_ : ndarray
        The labels, sorted; input k of the network is ``classes_[k]``.
    n_features_in_ : int
        Width of the generated signals (columns of X in fit).
    coefs_, intercepts_, loss_curve_, n_iter_
    """

    def __init__(self, n_hidden: int | Sequence[int] = 64, *, activation: str = "sigmoid",
                 output_activation: str = "identity", weight_decay: float = 0.0,
                 optimizer: str = "adam", learning_rate: float = 1e-2, momentum: float = 0.9,
                 batch_size: int = 64, epochs: int = 100, shuffle: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, n_threads: int | None = None,
                 device: str = "cpu", dtype: DTypeLike = "float32",
                 random_state: int | np.random.RandomState | None = None,
                 verbose: bool = False):
        set_params_from_init(self, locals())

    def __sklearn_tags__(self):
        # fit(X, y) needs the labels y: they are the network's input (X its
        # target), so the estimator is none of classifier, regressor or
        # transformer (and not a label transformer: fit takes X as well).
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def _checked_params(self):
        p = self._common_params()
        p["hidden"] = v.check_hidden(self.n_hidden, allow_empty=True)
        p["activation"] = v.check_choice("activation", self.activation, v.ACTIVATIONS)
        p["output_activation"] = v.check_choice("output_activation", self.output_activation,
                                                v.ACTIVATIONS)
        return p

    def _layout(self, n_in, n_out, p):
        sizes = [n_in, *p["hidden"], n_out]
        acts = [p["activation"]] * len(p["hidden"]) + [p["output_activation"]]
        return sizes, acts, "squared_error", 0

    def fit(self: _Self, X: ArrayLike, y: ArrayLike, *,
            callbacks: Callbacks | None = None) -> _Self:
        """Learn to generate the rows of X from their labels y.

        Parameters
        ----------
        X : array-like of shape (M, D)
            The samples (signals) to generate.
        y : array-like of shape (M,) or (M, K)
            Class labels, or rows of probabilities over K classes (then
            ``classes_`` is ``arange(K)``).
        callbacks : callable or list of callables, optional
            Called after every epoch as ``callback(model, logs)``; True
            stops the fit (see :meth:`fusedae.Autoencoder.fit`).

        Returns
        -------
        self
        """
        p = self._checked_params()
        X = v.check_data(X, "X", p["dtype"], device=p["device"])
        Y, classes = self._fit_targets(v.host_labels(y, device=p["device"]), p["dtype"])
        if len(Y) != len(X):
            raise ValueError(f"y: expected {len(X)} labels (one per row of X), got {len(Y)}")
        self._build(len(classes), X.shape[1], p)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        if p["optimizer"] == "lbfgs":
            if check_callbacks(callbacks):
                raise ValueError("callbacks: not available with optimizer='lbfgs' (scipy runs "
                                 "its iterations; a checkpoint could not resume them)")
            self._fit_lbfgs(Y, X, p)
            return self
        return self._train((Y, X), p, callbacks)

    def _training_data(self, X, y, p, resume=True):
        X = v.check_data(X, "X", p["dtype"], n_features=self.n_features_in_, estimator=self,
                         device=p["device"])
        Y = _labels.label_rows(v.host_labels(y, device=p["device"]), self.classes_,
                              p["dtype"])
        if len(Y) != len(X):
            raise ValueError(f"y: expected {len(X)} labels (one per row of X), got {len(Y)}")
        return Y, X

    def _validation_score(self, data):
        Y, X = data
        xp = v.array_module(X)
        diff = self._forward(Y, "y", 0, len(self._net.sizes) - 1).astype(np.float64) - X
        return -float(0.5 * xp.sum(diff * diff) / len(X))

    @staticmethod
    def _fit_targets(y, dtype):
        arr = np.asarray(y) if y is not None else None
        if arr is not None and arr.ndim == 2 and arr.shape[1] > 1:
            return _labels.probability_rows(arr, arr.shape[1], dtype), np.arange(arr.shape[1])
        classes, idx = _labels.fit_classes(y)
        return _labels.one_hot(idx, len(classes), dtype), classes

    def generate(self, y: ArrayLike) -> np.ndarray:
        """The typical signal of each label.

        Parameters
        ----------
        y : array-like of shape (M,) or (M, K)
            Labels from ``classes_``, or probability vectors over them (a
            soft label between classes asks for a signal between them).

        Returns
        -------
        ndarray of shape (M, n_features_in_)
        """
        self._check_fitted()
        on_device = v.is_device_array(y)
        Y = _labels.label_rows(v.host_labels(y, device=self._device), self.classes_,
                               self._net.dtype)
        if on_device:  # a CuPy y: generated on the GPU, answered as CuPy
            Y = self._net.to_device(Y)
        return self._forward(Y, "y", 0, len(self._net.sizes) - 1)

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Negative mean over rows of ½‖generate(y) − x‖² (higher is better)."""
        self._check_fitted()
        X = self._checked_input(X, "X", n_features=self.n_features_in_)
        G = self.generate(y)
        if len(G) != len(X):
            raise ValueError(f"y: expected {len(X)} labels (one per row of X), got {len(G)}")
        xp = v.array_module(X)
        G = xp.asarray(G) if xp is not np else v.to_host(G)  # where X lies
        diff = G.astype(np.float64) - X
        return -float(0.5 * xp.sum(diff * diff) / len(X))

    def loss_and_gradient(self, X: ArrayLike,
                          y: ArrayLike) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Full-batch loss (with the decay term) and its gradient at the
        current parameters."""
        self._check_fitted()
        X = self._checked_input(X, "X", n_features=self.n_features_in_)
        Y = _labels.label_rows(v.host_labels(y, device=self._device), self.classes_,
                               self._net.dtype)
        if len(Y) != len(X):
            raise ValueError(f"y: expected {len(X)} labels (one per row of X), got {len(Y)}")
        return self._loss_and_gradient(Y, X)
