"""fusedae: autoencoders and generative networks on a fused C++ engine.

The estimators import the compiled engine lazily, so ``fusedae.reference``
(the plain NumPy specification) and ``fusedae.info`` (information theory)
can be imported on their own.
"""
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from . import callbacks, categories, datasets, info, metrics, plot, reference
    from ._errors import TrainingDivergedError
    from ._persist import ModelFileError, load
    from ._validation import CudaUnavailableError
    from .autoencoder import Autoencoder, DenoisingAutoencoder, SparseAutoencoder
    from .classifier import Classifier
    from .gan import GAN
    from .generator import Generator
    from .vae import VAE, ConditionalVAE

__version__ = "0.1.0"

_LAZY = {
    "Autoencoder": "fusedae.autoencoder",
    "SparseAutoencoder": "fusedae.autoencoder",
    "DenoisingAutoencoder": "fusedae.autoencoder",
    "Classifier": "fusedae.classifier",
    "VAE": "fusedae.vae",
    "ConditionalVAE": "fusedae.vae",
    "GAN": "fusedae.gan",
    "Generator": "fusedae.generator",
    "TrainingDivergedError": "fusedae._errors",
    "load": "fusedae._persist",
    "ModelFileError": "fusedae._persist",
    "CudaUnavailableError": "fusedae._validation",
}

# Submodules reachable as attributes (``fusedae.info.entropy``).
_SUBMODULES = ("reference", "info", "categories", "metrics", "callbacks", "datasets", "plot")

__all__ = sorted(_LAZY) + list(_SUBMODULES) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return import_module(f"fusedae.{name}")
    raise AttributeError(f"module 'fusedae' has no attribute {name!r}")


def __dir__():
    return __all__
