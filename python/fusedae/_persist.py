"""Model files: ``model.save(path)`` and ``fusedae.load(path)``.

A model file is a ZIP archive (stored, not compressed) holding

- ``metadata.json``: format name and version, the fusedae version, the
  estimator's class, its hyperparameters, and its whole fitted state
  (curves, counters, label classes, random-stream counters) as JSON, where
  each array is a reference ``{"t": "array", "name": ...}`` to
- ``arrays/<name>.npy``: one NumPy ``.npy`` file per array (parameters,
  optimizer moments, ...), listed in the metadata with its dtype, shape and
  SHA-256.

No pickle anywhere: arrays are read with ``allow_pickle=False``, object
arrays are refused when saving and when loading, and the class is looked up
in a fixed table of fusedae's estimators, so loading a file executes no code
from it. Saving writes a temporary file in the destination folder and
renames it into place, so a reader (or a crash) never sees half a file.

Loading checks everything before it builds the model: the archive's CRCs,
each array's hash, dtype and shape against the metadata, sizes against
limits, the hyperparameters through the estimator's own validation, and
every network's arrays against the shapes the hyperparameters imply. A
file that fails any check raises :class:`ModelFileError` (a ValueError)
naming the file and what is wrong.

Devices: a model trained on a GPU (``device="cuda"``) is saved like any
other, its arrays copied to the host, and its ``device`` hyperparameter
kept. ``load(path)`` builds the model on the device it was saved with;
where that device cannot run (no GPU, no CuPy, a build without CUDA) it
raises :class:`~fusedae._validation.CudaUnavailableError`, which says so and
that ``load(path, device="cpu")`` reads the model on the CPU.
``load(path, device=...)`` moves the model to the given device: its
``device`` hyperparameter becomes that device, and the outputs are the same
to rounding (CPU and GPU run the same arithmetic in another order).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from . import _validation as _v
from ._files import check_path as _check_path
from ._files import write_atomically

if TYPE_CHECKING:
    from ._base import NetworkEstimator

FORMAT = "fusedae-model"
FORMAT_VERSION = 1
_METADATA = "metadata.json"
# Far above any model this library trains, far below what would exhaust memory.
MAX_METADATA_BYTES = 64 << 20
MAX_ARRAY_BYTES = 8 << 30
MAX_ARRAYS = 10_000
_ARRAY_KINDS = "biufU"  # bool, ints, floats, unicode strings: no objects

# Attributes never saved: scratch of a running fit, or objects that are
# not data (scipy's L-BFGS result keeps a Hessian operator).
_TRANSIENT = ("lbfgs_result_",)


class ModelFileError(ValueError):
    """A model file is corrupt, truncated, of another version, or not a
    fusedae model file."""


def _classes():
    from .autoencoder import Autoencoder, DenoisingAutoencoder, SparseAutoencoder
    from .classifier import Classifier
    from .gan import GAN
    from .generator import Generator
    from .vae import VAE, ConditionalVAE
    return {c.__name__: c for c in (Autoencoder, SparseAutoencoder, DenoisingAutoencoder,
                                     Classifier, Generator, VAE, ConditionalVAE, GAN)}


# ---------------------------------------------------------------- encoding
class _Encoder:
    """Python values → JSON values, arrays set aside by name."""

    def __init__(self):
        self.arrays = {}

    def __call__(self, value, where):
        if value is None or isinstance(value, (bool, str)):
            return value
        if _v.is_device_array(value):  # a CuPy array: files hold host arrays
            value = _v.to_host(value)
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (float, np.floating)):
            f = float(value)
            # JSON has no NaN or infinity; keep them (and every float's exact
            # bits: repr round-trips) as tagged strings.
            return f if math.isfinite(f) else {"t": "float", "v": repr(f)}
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in _ARRAY_KINDS or value.dtype.hasobject:
                raise TypeError(f"{where}: arrays of dtype {value.dtype} cannot be saved "
                                "(only numbers and strings)")
            name = f"a{len(self.arrays)}"
            self.arrays[name] = np.ascontiguousarray(value)
            return {"t": "array", "name": name}
        if isinstance(value, tuple):
            return {"t": "tuple", "v": [self(x, f"{where}[{i}]") for i, x in enumerate(value)]}
        if isinstance(value, list):
            return [self(x, f"{where}[{i}]") for i, x in enumerate(value)]
        if isinstance(value, dict):
            for k in value:
                if not isinstance(k, str):
                    raise TypeError(f"{where}: only string keys can be saved, got {k!r}")
            return {"t": "dict", "v": {k: self(x, f"{where}.{k}") for k, x in value.items()}}
        if isinstance(value, np.random.RandomState):
            kind, keys, pos, has_gauss, gauss = value.get_state()
            return {"t": "RandomState", "v": [kind, self(keys, where), int(pos),
                                              int(has_gauss), float(gauss)]}
        raise TypeError(f"{where}: a {type(value).__name__} cannot be saved in a model file")


def _decode(value, arrays, where):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(x, arrays, where) for x in value]
    if not isinstance(value, dict) or "t" not in value:
        raise ModelFileError(f"{where}: unexpected value {value!r}")
    tag = value["t"]
    if tag == "array":
        name = value.get("name")
        if name not in arrays:
            raise ModelFileError(f"{where}: refers to a missing array {name!r}")
        return arrays[name]
    if tag == "tuple":
        return tuple(_decode(x, arrays, where) for x in _list(value.get("v"), where))
    if tag == "dict":
        items = value.get("v")
        if not isinstance(items, dict):
            raise ModelFileError(f"{where}: expected a mapping")
        return {k: _decode(x, arrays, f"{where}.{k}") for k, x in items.items()}
    if tag == "float":
        text = value.get("v")
        if text not in ("nan", "inf", "-inf"):
            raise ModelFileError(f"{where}: expected 'nan', 'inf' or '-inf', got {text!r}")
        return float(text)
    if tag == "RandomState":
        kind, keys, pos, has_gauss, gauss = _list(value.get("v"), where)
        rs = np.random.RandomState()
        try:
            rs.set_state((kind, _decode(keys, arrays, where), pos, has_gauss, gauss))
        except (TypeError, ValueError) as err:
            raise ModelFileError(f"{where}: invalid RandomState ({err})") from None
        return rs
    raise ModelFileError(f"{where}: unknown tag {tag!r}")


def _list(value, where):
    if not isinstance(value, list):
        raise ModelFileError(f"{where}: expected a list")
    return value


# ------------------------------------------------------------------ saving
def save(estimator, path):
    """Write ``estimator`` (fitted or not) to ``path`` atomically."""
    name = type(estimator).__name__
    if _classes().get(name) is not type(estimator):
        raise TypeError(f"estimator: expected one of fusedae's estimators, got {name}")
    path = _check_path(path)
    state = estimator.__getstate__()
    state = {k: v for k, v in state.items() if k not in _TRANSIENT}
    encode = _Encoder()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fusedae_version": _version(),
        "class": name,
        "params": encode(estimator.get_params(deep=False), "params"),
        "state": encode(state, "state"),
    }
    buffers = {}
    listing = {}
    for key, arr in encode.arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr, allow_pickle=False)
        data = buf.getvalue()
        buffers[key] = data
        listing[key] = {"dtype": arr.dtype.str, "shape": list(arr.shape),
                        "sha256": hashlib.sha256(data).hexdigest()}
    meta["arrays"] = listing
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_METADATA, json.dumps(meta, indent=1, allow_nan=False))
        for key, data in buffers.items():
            zf.writestr(f"arrays/{key}.npy", data)
    write_atomically(path, out.getvalue())
    return path




def _version():
    from . import __version__
    return __version__


# ----------------------------------------------------------------- loading
def load(path: str | os.PathLike[str], device: str | None = None) -> NetworkEstimator:
    """Read a model written by ``save``; see the module docstring for the checks.

    Parameters
    ----------
    path : str or path-like
    device : {"cpu", "cuda", "cuda:N"} or None, default=None
        Where the loaded model runs. None: the device it was saved with
        (its ``device`` hyperparameter). A model saved on a GPU and loaded
        where CUDA cannot run raises CudaUnavailableError (a ValueError)
        saying so; ``device="cpu"`` loads it on the CPU, with the same
        outputs to rounding. A given device becomes the loaded model's
        ``device`` hyperparameter.

    Returns
    -------
    estimator
    """
    path = _check_path(path)
    if device is not None:
        device = _v.check_device(device)
    try:
        zf = zipfile.ZipFile(path, "r")
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ModelFileError(f"{path}: not a fusedae model file (not a readable ZIP "
                             f"archive: {err})") from None
    with zf:
        meta, arrays = _read(zf, path)
    cls = _classes()[meta["class"]]
    saved_device = None
    try:
        params = _decode(meta["params"], arrays, "params")
        state = _decode(meta["state"], arrays, "state")
        if not isinstance(params, dict) or not isinstance(state, dict):
            raise ModelFileError("params, state: expected mappings")
        saved_device = params.get("device")
        if device is not None:
            _move(params, state, device)
        est = cls(**params)
        if "_params_used" in state:
            _check_state(est, state)
            est.__setstate__(state)
            _check_fitted_model(est)
        elif set(state) - set(params):
            raise ModelFileError(f"state: an unfitted model holds only its hyperparameters, "
                                 f"got {sorted(set(state) - set(params))}")
    except ModelFileError as err:
        raise ModelFileError(f"{path}: {err}") from None
    except _v.CudaUnavailableError as err:
        raise _v.CudaUnavailableError(
            f"{err} (the model in {path} was saved with device={saved_device!r}; "
            f"fusedae.load(path, device='cpu') loads it on the CPU)") from None
    except RecursionError:
        raise ModelFileError(f"{path}: {_METADATA} is nested too deeply") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as err:
        raise ModelFileError(f"{path}: the saved model is inconsistent "
                             f"({type(err).__name__}: {err})") from None
    return est


def _move(params, state, device):
    """Make a decoded model run on ``device``: its hyperparameter, and the
    ones its fit recorded (which load checks against each other)."""
    params["device"] = device
    if "device" in state:  # a fitted model's state holds its hyperparameters too
        state["device"] = device
    for key in ("_fit_params", "_params_used"):
        if isinstance(state.get(key), dict) and "device" in state[key]:
            state[key]["device"] = device


def _read(zf, path):
    infos = {i.filename: i for i in zf.infolist()}
    meta_info = infos.get(_METADATA)
    if meta_info is None:
        raise ModelFileError(f"{path}: not a fusedae model file (no {_METADATA})")
    if meta_info.file_size > MAX_METADATA_BYTES:
        raise ModelFileError(f"{path}: {_METADATA} is {meta_info.file_size} bytes, more than "
                             f"the {MAX_METADATA_BYTES} allowed")
    try:
        meta = json.loads(_member(zf, meta_info, path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: {_METADATA} is not valid JSON ({err})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: {_METADATA} is nested too deeply") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fusedae model file (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: format_version {version!r} is not supported (this "
                             f"fusedae {_version()} reads version {FORMAT_VERSION})")
    if meta.get("class") not in _classes():
        raise ModelFileError(f"{path}: class {meta.get('class')!r} is not a fusedae "
                             f"estimator (expected one of {', '.join(sorted(_classes()))})")
    listing = meta.get("arrays")
    if not isinstance(listing, dict) or len(listing) > MAX_ARRAYS:
        raise ModelFileError(f"{path}: 'arrays' must map at most {MAX_ARRAYS} names to "
                             "descriptions")
    expected = {_METADATA} | {f"arrays/{k}.npy" for k in listing}
    if set(infos) != expected:
        extra, missing = set(infos) - expected, expected - set(infos)
        raise ModelFileError(f"{path}: archive members do not match the metadata (unexpected: "
                             f"{sorted(extra)}, missing: {sorted(missing)})")
    arrays = {k: _read_array(zf, infos[f"arrays/{k}.npy"], k, desc, path)
              for k, desc in listing.items()}
    return meta, arrays


def _member(zf, info, path):
    # save() writes plain stored members; anything else (compressed, encrypted)
    # is not ours, and zipfile would answer it with RuntimeError or
    # NotImplementedError.
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise ModelFileError(f"{path}: member {info.filename} is compressed or encrypted; "
                             "fusedae writes stored members only")
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zipfile.LargeZipFile,
            RuntimeError, NotImplementedError) as err:
        raise ModelFileError(f"{path}: member {info.filename} is corrupt ({err})") from None


def _read_array(zf, info, key, desc, path):
    where = f"{path}: array {key}"
    if not isinstance(desc, dict) or not {"dtype", "shape", "sha256"} <= set(desc):
        raise ModelFileError(f"{where}: expected dtype, shape and sha256 in the metadata")
    try:
        dtype = np.dtype(desc["dtype"])
    except TypeError:
        raise ModelFileError(f"{where}: unknown dtype {desc['dtype']!r}") from None
    shape = desc["shape"]
    if (dtype.kind not in _ARRAY_KINDS or dtype.hasobject or not isinstance(shape, list)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                       for n in shape)):
        raise ModelFileError(f"{where}: dtype {dtype} / shape {shape!r} is not allowed")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES or info.file_size > nbytes + 4096:
        raise ModelFileError(f"{where}: {info.file_size} bytes for shape {shape} and dtype "
                             f"{dtype} (at most {MAX_ARRAY_BYTES} bytes of data allowed)")
    data = _member(zf, info, path)
    if hashlib.sha256(data).hexdigest() != desc["sha256"]:
        raise ModelFileError(f"{where}: SHA-256 does not match the metadata (the file is "
                             "corrupt)")
    try:
        arr = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ModelFileError(f"{where}: not a valid .npy array ({err})") from None
    if arr.dtype != dtype or list(arr.shape) != shape:
        raise ModelFileError(f"{where}: holds dtype {arr.dtype} and shape {list(arr.shape)}, "
                             f"the metadata says {dtype} and {shape}")
    return arr


# What __setstate__ builds itself; a file must not replace them.
_BUILT = ("_net", "_model")


def _check_state(est, state):
    """Everything a fitted state must satisfy before the model is built.

    The hyperparameters pass the estimator's own checks and equal the ones
    the fit recorded; attribute names are plain; each saved network's
    parameter vector has exactly the length its layer sizes imply, so the
    sizes cannot ask for more memory than the file itself holds.
    """
    for key in state:
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("__") \
                or key in _BUILT:
            raise ModelFileError(f"state: attribute {key!r} cannot be loaded")
    used = state["_params_used"]
    if not isinstance(used, dict):
        raise ModelFileError("state: _params_used must be a mapping")
    # The fit ran with the hyperparameters it recorded in _fit_params; the
    # current ones (est's) may have been changed since by set_params.
    # (Current hyperparameters are not validated, as a constructor does not
    # validate them: set_params may store anything and the next fit says what
    # is wrong. Only the ones the networks were built with must be valid.)
    fit_params = state.get("_fit_params")
    if fit_params is None:
        est._checked_params()
    else:
        if not isinstance(fit_params, dict) or set(fit_params) != set(est.get_params()):
            raise ModelFileError("state: _fit_params must hold the estimator's "
                                 "hyperparameters")
        est = type(est)(**fit_params)
    checked = est._checked_params()
    if set(used) != set(checked):
        raise ModelFileError(f"state: _params_used has keys {sorted(used)}, expected "
                             f"{sorted(checked)}")
    for key, value in checked.items():
        if _normalise(used[key]) != _normalise(value):
            raise ModelFileError(f"state: _params_used[{key!r}] = {used[key]!r} does not "
                                 f"match the hyperparameter the fit ran with ({value!r})")
    nets = []
    if "_net_state" in state:
        nets.append(state["_net_state"])
    if "_model_state" in state:
        model = state["_model_state"]
        if not isinstance(model, dict) or not isinstance(model.get("nets"), list):
            raise ModelFileError("state: _model_state must hold a list of networks")
        nets.extend(model["nets"])
    if not nets:
        raise ModelFileError("state: a fitted model must hold its networks")
    for i, net in enumerate(nets):
        _check_network(net, f"network {i}")


def _check_network(net, where):
    if not isinstance(net, dict) or not {"sizes", "params", "state0", "state1"} <= set(net):
        raise ModelFileError(f"{where}: expected sizes, params and optimizer state")
    sizes = net["sizes"]
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                       for n in sizes)):
        raise ModelFileError(f"{where}: sizes must be a list of at least 2 positive "
                             f"integers, got {sizes!r}")
    count = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    for key in ("params", "state0", "state1"):
        arr = net[key]
        if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f" or arr.ndim != 1:
            raise ModelFileError(f"{where}: {key} must be a 1-D float array")
    if len(net["params"]) != count:
        raise ModelFileError(f"{where}: layer sizes {sizes} need {count} parameters, the file "
                             f"holds {len(net['params'])}")


def _floats(x):
    return isinstance(x, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in x)


def _count(x, low=0):
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def _epochs_list(x):
    return isinstance(x, list) and all(
        isinstance(e, tuple) and len(e) == 3 and isinstance(e[0], str) and _count(e[1])
        and _count(e[2]) for e in x)


def _history(x):
    return isinstance(x, dict) and set(x) == {"d_loss", "g_loss"} and all(
        _floats(v) for v in x.values())


def _vector(x):
    return isinstance(x, np.ndarray) and x.ndim == 1


# The fitted attributes a model file may hold, each with what it must be.
_FITTED_ATTRIBUTES = {
    "loss_curve_": _floats, "recon_curve_": _floats, "kl_curve_": _floats,
    "validation_scores_": _floats,
    "best_validation_score_": lambda x: x is None or isinstance(x, float),
    "n_iter_": _count, "n_features_in_": lambda x: _count(x, 1),
    "_samples_drawn": _count, "_no_improvement": _count, "_split_seed": _count,
    "_fit_done": lambda x: isinstance(x, bool),
    "history_": _history, "epochs_": _epochs_list,
    "mean_activation_": _vector, "classes_": _vector,
}


def _check_fitted_model(est):
    """After the model is built: its fitted attributes have their types, and
    the model answers a one-row call (so a label table or a width that does
    not fit the networks is refused here, not at the user's first call)."""
    for key, ok in _FITTED_ATTRIBUTES.items():
        if key in est.__dict__ and not ok(est.__dict__[key]):
            raise ModelFileError(f"state: {key} = {est.__dict__[key]!r:.80} is not what a "
                                 "fit leaves there")
    # The probe must not depend on hyperparameters changed after the fit
    # (n_threads is the only one inference reads).
    threads, est.n_threads = est.n_threads, None
    try:
        _probe(est)
    finally:
        est.n_threads = threads


def _probe(est):
    from .classifier import Classifier
    from .gan import GAN
    from .generator import Generator
    from .vae import VAE, ConditionalVAE
    row = np.zeros((1, est.n_features_in_))
    if isinstance(est, Classifier):
        if len(est.classes_) != est._net.sizes[-1]:
            raise ModelFileError(f"state: {len(est.classes_)} classes_ for a network with "
                                 f"{est._net.sizes[-1]} outputs")
        est.predict(row)
    elif isinstance(est, Generator):
        if len(est.classes_) != est._net.sizes[0]:
            raise ModelFileError(f"state: {len(est.classes_)} classes_ for a network with "
                                 f"{est._net.sizes[0]} inputs")
        est.generate(est.classes_[:1])
    elif isinstance(est, ConditionalVAE):
        est.sample(1, y=est.classes_[0], random_state=0)
    elif isinstance(est, (VAE, GAN)):
        est.sample(1, random_state=0)
    else:
        est.predict(row)
        if "mean_activation_" in est.__dict__ and \
                len(est.mean_activation_) != est._net.sizes[est._code_layer]:
            raise ModelFileError("state: mean_activation_ does not match the code width")


def _normalise(value):
    if isinstance(value, (list, tuple)):
        return [_normalise(x) for x in value]
    if isinstance(value, dict):
        return {k: _normalise(x) for k, x in value.items()}
    return value
