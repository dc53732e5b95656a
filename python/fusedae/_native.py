"""Load the compiled engine and hand it its BLAS.

The engine calls OpenBLAS from the ``scipy-openblas32`` wheel (the BLAS NumPy
itself is built against). It is opened by path at import time rather than
linked at build time, so the extension never points into a build
environment that no longer exists.
"""
import importlib.util
import os

from . import _engine


def _library_path():
    # Located without importing scipy_openblas32: its import loads (and so
    # initialises) the library, before we could choose OpenBLAS's kernels.
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("fusedae needs the scipy-openblas32 package (pip install "
                          "scipy-openblas32): it provides the BLAS the engine calls")
    lib_dir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    names = sorted(f for f in os.listdir(lib_dir) if f.startswith("libscipy_openblas"))
    if not names:
        raise ImportError(f"scipy-openblas32 has no library in {lib_dir}")
    return os.path.join(lib_dir, names[0])


_lib = _library_path()


def _load_blas():
    # On CPUs whose 512-bit FMAs run at the 256-bit rate, OpenBLAS's AVX2
    # kernels beat its AVX-512 ones (docs/design.md); the engine measures
    # this and asks for them. OPENBLAS_CORETYPE set by the user wins. The
    # variable is set only while our copy of OpenBLAS initialises.
    if _engine.blas_loaded():
        return
    if os.environ.get("OPENBLAS_CORETYPE"):
        _engine.load_blas(_lib)
        return
    core = _engine.preferred_blas_coretype()
    if core:
        os.environ["OPENBLAS_CORETYPE"] = core
    try:
        _engine.load_blas(_lib)
    finally:
        if core:
            del os.environ["OPENBLAS_CORETYPE"]


_load_blas()

engine = _engine

__all__ = ["engine"]
