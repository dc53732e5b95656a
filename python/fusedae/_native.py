"""Load the compiled engine and hand it its BLAS.

The engine calls OpenBLAS from the ``scipy-openblas32`` wheel (the BLAS NumPy
itself is built against). It is opened by path at import time rather than
linked at build time, so the extension never points into a build
environment that no longer exists.
"""
import os

import scipy_openblas32

from . import _engine

_lib = os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
_engine.load_blas(_lib)

engine = _engine

__all__ = ["engine"]
