"""fusedae: autoencoders and generative networks on a fused C++ engine.

The estimators import the compiled engine lazily, so ``fusedae.reference``
(the plain NumPy specification) can be imported on its own.
"""
from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "Autoencoder": "fusedae.autoencoder",
    "SparseAutoencoder": "fusedae.autoencoder",
    "DenoisingAutoencoder": "fusedae.autoencoder",
    "TrainingDivergedError": "fusedae._errors",
}

__all__ = sorted(_LAZY) + ["reference", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name == "reference":
        return import_module("fusedae.reference")
    raise AttributeError(f"module 'fusedae' has no attribute {name!r}")


def __dir__():
    return __all__
