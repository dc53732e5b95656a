"""``device="cuda"``: the CUDA engine behind the interface of a CPU network.

Imported only when a model asks for a CUDA device. It loads the two optional
pieces a GPU model needs, each missing one answered by a
:class:`~fusedae._validation.CudaUnavailableError` that says what is missing
and how to get it:

- CuPy (``pip install "fusedae[cuda]"``), which holds the data and the
  parameters on the GPU for Python;
- ``fusedae._engine_cuda``, the compiled CUDA engine, present only in a
  build made with ``pip install . -C cmake.define.FUSEDAE_CUDA=ON``; it
  calls cuBLAS, found by its SONAME (``libcublas.so.13``), so the copy in
  the ``nvidia-cublas`` wheel is opened first when that wheel is installed;

and then asks the driver for the device (``no CUDA device`` otherwise).

:class:`CudaNetwork` wraps one ``_engine_cuda.Network`` and offers the
methods the estimators call on a CPU ``_engine.Network`` (forward,
loss_and_gradient, train_step, fit_epoch, params, grads, optimizer_state,
set_optimizer, init_params, the counters, ...). Its ops take NumPy or CuPy
arrays:

- a CuPy array is used where it lies (zero-copy: its device pointer goes to
  the engine), after checks of its dtype, shape, contiguity and device here
  and of its values (no NaN, no infinity) by the engine on the GPU, on
  CuPy's current stream (``cupy.cuda.get_current_stream()``);
- a NumPy array gets the same checks and is copied to the device once per
  call.

``forward`` answers a CuPy array for CuPy input and a NumPy array for NumPy
input. ``params``, ``grads`` and ``optimizer_state(k)`` are CuPy views of
the engine's device buffers (writing to them changes the network; they keep
the network alive); code that needs host arrays goes through
:func:`fusedae._validation.to_host` / :func:`~fusedae._validation.assign`.

:class:`CudaVAE` and :class:`CudaGAN` wrap ``_engine_cuda.VAE`` and
``_engine_cuda.GAN`` the same way, with the interface of the CPU's
``_engine.VAE`` and ``_engine.GAN`` (train_step, loss_and_gradient,
fit_epoch, discriminator_step, generator_step, ..., the counters); their
networks (``encoder``/``decoder``, ``generator``/``discriminator``) are
:class:`CudaNetwork` objects over the model's own engine networks.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import os
import threading
from typing import Any

import numpy as np

from ._validation import CudaUnavailableError, check_device

#: How to get each missing piece (also quoted by docs/cuda.md).
CUPY_HINT = 'pip install "fusedae[cuda]" (CuPy for CUDA 13)'
BUILD_HINT = ("rebuild it with the CUDA backend: pip install . -C cmake.define.FUSEDAE_CUDA=ON "
              "(from a source checkout, on a machine with the CUDA 13 toolkit)")
_MAX_ROWS = 2**31 - 1
_NOISES = ("none", "gaussian", "masking", "salt_pepper")

_preload_lock = threading.Lock()
_preload: dict[str, Any] = {"done": False, "handles": [], "error": None}


# ------------------------------------------------------------ loading
def cublas_libraries() -> list[str]:
    """Paths of ``libcublasLt.so.13`` and ``libcublas.so.13`` in the
    ``nvidia-cublas`` wheel (in load order), or [] without that wheel.

    Found with ``importlib.util.find_spec("nvidia")``, which imports nothing
    (``nvidia`` is a namespace package).
    """
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    for root in spec.submodule_search_locations:
        for sub in (os.path.join("cu13", "lib"), os.path.join("cublas", "lib")):
            lt = os.path.join(root, sub, "libcublasLt.so.13")
            blas = os.path.join(root, sub, "libcublas.so.13")
            if os.path.isfile(lt) and os.path.isfile(blas):
                return [lt, blas]
    return []


def preload_cublas() -> None:
    """Open the wheel's cuBLAS with RTLD_GLOBAL, once per process, so that
    the engine's ``libcublas.so.13`` dependency resolves to it (a library
    already loaded under a SONAME satisfies that SONAME). Without the wheel
    nothing is opened and the system's library path decides."""
    with _preload_lock:
        if _preload["done"]:
            return
        _preload["done"] = True
        for path in cublas_libraries():
            try:
                _preload["handles"].append(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL))
            except OSError as err:
                _preload["error"] = f"{path} could not be opened ({err})"
                break


def _import_engine():
    """(the fusedae._engine_cuda module, None) or (None, what is wrong)."""
    preload_cublas()
    try:
        return importlib.import_module("fusedae._engine_cuda"), None
    except ModuleNotFoundError as err:
        if err.name == "fusedae._engine_cuda":
            return None, ("this fusedae was built without its CUDA engine "
                          f"(fusedae._engine_cuda is missing); {BUILD_HINT}")
        problem = err
    except ImportError as err:  # the extension exists but its libraries do not load
        problem = err
    extra = f"; cuBLAS from the nvidia-cublas wheel: {_preload['error']}" \
        if _preload["error"] else ""
    return None, (f"fusedae's CUDA engine could not be loaded ({problem}{extra}); it needs "
                  "the CUDA 13 runtime and cuBLAS: pip install nvidia-cublas, or put a CUDA "
                  "13 toolkit's libraries on the library path")


def _import_cupy():
    """(the cupy module, None) or (None, what is wrong)."""
    try:
        import cupy
    except ModuleNotFoundError as err:
        if err.name == "cupy":
            return None, f"CuPy is not installed: {CUPY_HINT}"
        return None, f"CuPy could not be imported ({err}); reinstall it: {CUPY_HINT}"
    except Exception as err:  # noqa: BLE001 - any failure of CuPy's import is reported
        return None, (f"CuPy could not be imported ({type(err).__name__}: {err}); "
                      f"reinstall it: {CUPY_HINT}")
    return cupy, None


def require(device="cuda"):
    """The CUDA engine module, CuPy and the device index for ``device``
    ("cuda": CuPy's current device, "cuda:N": device N, or an int N).

    Raises CudaUnavailableError (a ValueError whose message starts with
    ``device:``) naming every missing piece and how to get it.
    """
    if isinstance(device, (int, np.integer)) and not isinstance(device, bool) and device >= 0:
        device = f"cuda:{int(device)}"
    device = check_device(device)
    if device == "cpu":
        raise ValueError("device: expected a CUDA device ('cuda' or 'cuda:N'), got 'cpu'")
    wanted = None if device == "cuda" else int(device.split(":")[1])
    engine, engine_problem = _import_engine()
    cupy, cupy_problem = _import_cupy()
    problems = [p for p in (engine_problem, cupy_problem) if p]
    if engine is not None:
        count = int(engine.device_count())
        if count < 1:
            problems.append("no CUDA device: the CUDA driver reports none (no GPU, no driver, "
                            "or CUDA_VISIBLE_DEVICES hides them)")
        elif wanted is not None and wanted >= count:
            problems.append(f"no CUDA device {wanted}: this machine has {count} "
                            f"(cuda:0 to cuda:{count - 1})")
    if problems:
        raise CudaUnavailableError(f"device: {device!r} cannot be used here: "
                                   + "; ".join(problems) + ". Use device='cpu' to run on the "
                                   "CPU.")
    index = wanted if wanted is not None else int(cupy.cuda.runtime.getDevice())
    return engine, cupy, index


def available(device="cuda") -> bool:
    """Whether ``device`` can run here (CuPy, the CUDA engine and the device)."""
    try:
        require(device)
    except ValueError:
        return False
    return True


def _build(device, make):
    """(make(engine module, device index), CuPy, the index) for ``device``,
    on that device; a GPU this build cannot run on (no code for its
    architecture, say) is as unusable as a missing one."""
    engine, cp, index = require(device)
    cuda_error = getattr(engine, "CudaError", ())
    try:
        with cp.cuda.Device(index):
            made = make(engine, index)
    except cuda_error as err:
        raise CudaUnavailableError(f"device: 'cuda:{index}' cannot be used here: {err}. "
                                   "Use device='cpu' to run on the CPU.") from err
    return made, cp, index


def _device_matrix(cp, a, name, cols, dtype, device_id):
    """(a as a device array, whether it came from the host), after the CPU
    engine's checks: type and dtype (TypeError), then 2-D, rows, columns and
    C order (ValueError); a CuPy array must also be on the model's device
    (``device_id``). Finite values are checked by the engine itself, on the
    device (one scan, before any work, or folded into a single step), with
    the CPU engine's message."""
    if isinstance(a, cp.ndarray):
        on_host = False
    elif isinstance(a, np.ndarray):
        on_host = True
    else:
        raise TypeError(f"{name}: expected a numpy.ndarray or a cupy.ndarray, got "
                        f"{type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype.name}, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got {a.ndim}-D")
    if not on_host and a.device.id != device_id:
        raise ValueError(f"{name}: expected an array on CUDA device {device_id} (the "
                         f"network's), got one on device {a.device.id}")
    rows, width = a.shape
    if rows < 1:
        raise ValueError(f"{name}: expected at least one row")
    if rows > _MAX_ROWS:
        raise ValueError(f"{name}: more than 2^31-1 rows")
    if width != cols:
        raise ValueError(f"{name}: expected {cols} columns, got {width}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array")
    return (cp.asarray(a), True) if on_host else (a, False)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size: expected an integer, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError("batch_size: expected an integer >= 1")
    return int(batch_size)


# ------------------------------------------------------------ network
class CudaNetwork:
    """One ``_engine_cuda.Network`` with the interface of ``_engine.Network``.

    The constructor takes the CPU network's arguments (the engine validates
    them the same way) and ``device``: "cuda", "cuda:N" or N. See the module
    docstring for how arrays are taken and given back.
    """

    def __init__(self, sizes, activations, loss="squared_error", dtype="float32",
                 weight_decay=0.0, sparsity_layer=0, sparsity_target=0.05, sparsity_weight=0.0,
                 device="cuda") -> None:
        net, cp, index = _build(device, lambda engine, i: engine.Network(
            list(sizes), list(activations), loss, dtype, weight_decay, sparsity_layer,
            sparsity_target, sparsity_weight, device_id=i))
        self._setup(net, cp, index)

    @classmethod
    def wrapping(cls, net, cp, device_id) -> CudaNetwork:
        """A CudaNetwork over an existing ``_engine_cuda.Network`` (one of a
        composite model's: the VAE's encoder, the GAN's generator, ...)."""
        self = cls.__new__(cls)
        self._setup(net, cp, int(device_id))
        return self

    def _setup(self, net, cp, index) -> None:
        self._cp = cp
        self.device_id = index
        self._net = net
        self._np_dtype = np.dtype(net.dtype)
        self._sizes = [int(n) for n in net.sizes]
        self._views: dict[object, Any] = {}

    # ----------------------------------------------------------- facts
    @property
    def engine_network(self):
        """The wrapped ``_engine_cuda.Network`` (pointer-level ops)."""
        return self._net

    @property
    def isa(self) -> str:
        return self._net.isa

    @property
    def dtype(self) -> str:
        return self._net.dtype

    @property
    def sizes(self) -> list[int]:
        return list(self._sizes)

    @property
    def n_params(self) -> int:
        return int(self._net.n_params)

    def weight_offset(self, layer):
        return self._net.weight_offset(layer)

    def bias_offset(self, layer):
        return self._net.bias_offset(layer)

    # Counters of the random streams and of Adam's t (host values).
    seed = property(lambda self: self._net.seed,
                    lambda self, v: setattr(self._net, "seed", v))
    optimizer_steps = property(lambda self: self._net.optimizer_steps,
                               lambda self, v: setattr(self._net, "optimizer_steps", v))
    noise_steps = property(lambda self: self._net.noise_steps,
                           lambda self, v: setattr(self._net, "noise_steps", v))
    epochs = property(lambda self: self._net.epochs,
                      lambda self, v: setattr(self._net, "epochs", v))

    # ----------------------------------------------------- device buffers
    @contextlib.contextmanager
    def _on_device(self):
        with self._cp.cuda.Device(self.device_id):
            yield self._cp.cuda.get_current_stream()

    def _view(self, key, ptr):
        """A CuPy view of n_params elements at device address ``ptr``; the
        memory's owner is the engine network, which the view keeps alive."""
        view = self._views.get(key)
        if view is None or view.data.ptr != ptr:
            cp = self._cp
            nbytes = self.n_params * self._np_dtype.itemsize
            mem = cp.cuda.UnownedMemory(int(ptr), nbytes, self._net, self.device_id)
            view = cp.ndarray((self.n_params,), self._np_dtype, cp.cuda.MemoryPointer(mem, 0))
            self._views[key] = view
        return view

    @property
    def params(self):
        """All parameters, one flat writable CuPy view: [W1 (n0×n1, C order), b1, W2, ...]."""
        return self._view("params", self._net.params_ptr)

    @property
    def grads(self):
        """Gradient of the last loss_and_gradient (with λW) or train_step, a
        CuPy view (CuPy has no read-only arrays: do not write to it)."""
        return self._view("grads", self._net.grads_ptr)

    def optimizer_state(self, k):
        """Momentum / Adam m (k=0) or Adam v (k=1), a writable CuPy view."""
        if isinstance(k, bool) or k not in (0, 1):
            raise ValueError("k: expected 0 (momentum / Adam m) or 1 (Adam v)")
        return self._view(("state", int(k)), self._net.state_ptr(int(k)))

    def _synchronized(self, op, *args, **kwargs):
        """An engine call that takes no stream (host copies, init_params,
        set_optimizer): after the work queued on the current stream, which
        may write the buffers it touches (through the CuPy views). The engine
        orders it after its own previous op and waits for it, so it has
        finished when it returns."""
        with self._on_device() as stream:
            stream.synchronize()
            return op(*args, **kwargs)

    def get_params(self) -> np.ndarray:
        return self._synchronized(self._net.get_params)

    def set_params(self, values) -> None:
        self._synchronized(self._net.set_params, np.ascontiguousarray(values,
                                                                      dtype=self._np_dtype))

    def get_optimizer_state(self, k) -> np.ndarray:
        return self._synchronized(self._net.get_optimizer_state, k)

    def set_optimizer_state(self, k, values) -> None:
        self._synchronized(self._net.set_optimizer_state, k,
                           np.ascontiguousarray(values, dtype=self._np_dtype))

    def set_optimizer(self, kind, learning_rate, momentum=0.9, beta1=0.9, beta2=0.999,
                      eps=1e-8):
        self._synchronized(self._net.set_optimizer, kind, learning_rate, momentum=momentum,
                           beta1=beta1, beta2=beta2, eps=eps)

    def init_params(self, seed):
        self._synchronized(self._net.init_params, seed)

    def to_device(self, a):
        """``a`` on this network's device: a CuPy array as it is, a NumPy
        array copied there (on the current stream)."""
        if isinstance(a, self._cp.ndarray):
            return a
        with self._on_device():
            return self._cp.asarray(a)

    # ----------------------------------------------------------- checks
    def _matrix(self, a, name, cols):
        """(a as a device array, whether it came from the host): see
        :func:`_device_matrix`."""
        return _device_matrix(self._cp, a, name, cols, self._np_dtype, self.device_id)

    def _pair(self, X, Y):
        x, _ = self._matrix(X, "X", self._sizes[0])
        if Y is X:
            if self._sizes[-1] != self._sizes[0]:
                raise ValueError(f"Y: expected {self._sizes[-1]} columns")
            return x, x
        y, _ = self._matrix(Y, "Y", self._sizes[-1])
        if y.shape[0] != x.shape[0]:
            raise ValueError("Y: expected as many rows as X")
        return x, y

    # -------------------------------------------------------------- ops
    def forward(self, X, start=0, stop=-1):
        """Output of layer ``stop`` (-1: the last) given the output of layer
        ``start`` (0: X): a CuPy array for CuPy X, a NumPy array for NumPy X."""
        L = len(self._sizes) - 1
        start, stop = int(start), int(stop)
        if stop < 0:
            stop += L + 1
        if start < 0 or start >= L or stop <= start or stop > L:
            raise ValueError(f"layers: expected 0 <= start < stop <= {L}")
        with self._on_device() as stream:
            x, on_host = self._matrix(X, "X", self._sizes[start])
            out = self._cp.empty((x.shape[0], self._sizes[stop]), dtype=self._np_dtype)
            self._net.forward(x.data.ptr, x.shape[0], start, stop, out.data.ptr, stream.ptr)
            return out.get() if on_host else out

    def loss_and_gradient(self, X, Y):
        """Full-batch loss; the full gradient (with λW) is left in ``grads``."""
        with self._on_device() as stream:
            x, y = self._pair(X, Y)
            return float(self._net.loss_and_gradient(x.data.ptr, y.data.ptr, x.shape[0],
                                                     stream.ptr))

    def train_step(self, X, Y):
        """One optimizer step on this batch; the loss before the update (a
        non-finite loss leaves parameters and optimizer state untouched)."""
        with self._on_device() as stream:
            x, y = self._pair(X, Y)
            return float(self._net.train_step(x.data.ptr, y.data.ptr, x.shape[0], stream.ptr))

    def fit_epoch(self, X, Y=None, batch_size=64, shuffle=True, noise="none", noise_level=0.0):
        """One epoch (shuffle, minibatches, noise, steps); Y None means Y = X.
        Returns (mean_loss, steps, diverged)."""
        with self._on_device() as stream:
            # The CPU's order: the arrays, the batch size, the noise.
            if Y is None:
                x, _ = self._matrix(X, "X", self._sizes[0])
                if self._sizes[0] != self._sizes[-1]:
                    raise ValueError("Y: required when the output width differs from the "
                                     "input's")
                y_ptr = 0
            else:
                x, y = self._pair(X, Y)
                y_ptr = y.data.ptr
            batch_size = _check_batch_size(batch_size)
            if noise not in _NOISES:
                raise ValueError("noise: expected 'none', 'gaussian', 'masking' or "
                                 f"'salt_pepper', got {noise!r}")
            level = float(noise_level)
            if not np.isfinite(level) or level < 0 or (noise != "gaussian" and level > 1):
                raise ValueError("noise_level: expected a standard deviation >= 0 (gaussian) "
                                 "or a probability in [0, 1] (masking, salt_pepper)")
            loss, steps, diverged = self._net.fit_epoch(
                x.data.ptr, y_ptr, x.shape[0], int(batch_size), bool(shuffle), noise, level,
                stream.ptr)
        return float(loss), int(steps), bool(diverged)

    def __repr__(self):
        return (f"CudaNetwork(sizes={self._sizes}, dtype={self.dtype!r}, "
                f"device='cuda:{self.device_id}', isa={self.isa!r})")


# ------------------------------------------------------------ composites
class _CudaComposite:
    """What :class:`CudaVAE` and :class:`CudaGAN` share: the engine model,
    its counters, host-synchronised setup calls and the array checks."""

    _model: Any
    _cp: Any
    device_id: int
    _np_dtype: np.dtype

    def _setup(self, model, cp, index):
        self._model, self._cp, self.device_id = model, cp, index
        self._np_dtype = np.dtype(model.dtype)

    @property
    def engine_model(self):
        """The wrapped ``_engine_cuda`` model (pointer-level ops)."""
        return self._model

    @property
    def dtype(self) -> str:
        return self._model.dtype

    # Counters of the random streams (host values).
    seed = property(lambda self: self._model.seed,
                    lambda self, v: setattr(self._model, "seed", v))
    latent_steps = property(lambda self: self._model.latent_steps,
                            lambda self, v: setattr(self._model, "latent_steps", v))
    epochs = property(lambda self: self._model.epochs,
                      lambda self, v: setattr(self._model, "epochs", v))

    @contextlib.contextmanager
    def _on_device(self):
        with self._cp.cuda.Device(self.device_id):
            yield self._cp.cuda.get_current_stream()

    def _synchronized(self, op, *args, **kwargs):
        """A call that takes no stream (init_params, set_optimizer): after the
        work queued on the current stream (see CudaNetwork._synchronized)."""
        with self._on_device() as stream:
            stream.synchronize()
            return op(*args, **kwargs)

    def init_params(self, seed):
        self._synchronized(self._model.init_params, seed)

    def to_device(self, a):
        """``a`` on this model's device: a CuPy array as it is, a NumPy array
        copied there (on the current stream)."""
        if isinstance(a, self._cp.ndarray):
            return a
        with self._on_device():
            return self._cp.asarray(a)

    def _matrix(self, a, name, cols):
        return _device_matrix(self._cp, a, name, cols, self._np_dtype, self.device_id)


class CudaVAE(_CudaComposite):
    """One ``_engine_cuda.VAE`` with the interface of ``_engine.VAE``.

    The constructor takes the CPU model's arguments and ``device`` ("cuda",
    "cuda:N" or N). ``encoder`` and ``decoder`` are :class:`CudaNetwork`
    objects over the model's own networks (parameters as CuPy views, the
    counters, ``forward``). The ops take NumPy or CuPy arrays as
    :class:`CudaNetwork`'s do (CuPy zero-copy on the current stream, NumPy
    copied for the call; the CPU engine's checks and messages); Y is the
    condition rows (None without conditions).
    """

    def __init__(self, n_features, n_latent, hidden, activation="relu",
                 output_activation="sigmoid", loss="binary_cross_entropy", dtype="float32",
                 weight_decay=0.0, n_conditions=0, device="cuda") -> None:
        model, cp, index = _build(device, lambda engine, i: engine.VAE(
            n_features, n_latent, list(hidden), activation, output_activation, loss, dtype,
            weight_decay, n_conditions, device_id=i))
        self._setup(model, cp, index)
        self.encoder = CudaNetwork.wrapping(model.encoder, cp, index)
        self.decoder = CudaNetwork.wrapping(model.decoder, cp, index)
        self._widths = (int(model.n_features), int(model.n_latent), int(model.n_conditions))

    def set_optimizer(self, kind, learning_rate, momentum=0.9, beta1=0.9, beta2=0.999,
                      eps=1e-8):
        self._synchronized(self._model.set_optimizer, kind, learning_rate, momentum=momentum,
                           beta1=beta1, beta2=beta2, eps=eps)

    def _inputs(self, X, Y):
        """(x, y pointer or 0, rows) after core/composite.cpp's checks, in its order."""
        D, _, C = self._widths
        x, _ = self._matrix(X, "X", D)
        if C > 0:
            if Y is None:
                raise ValueError("Y: required by a conditional VAE (one row of labels per row "
                                 "of X)")
            y, _ = self._matrix(Y, "Y", C)
            if y.shape[0] != x.shape[0]:
                raise ValueError("Y: expected as many rows as X")
            return x, y.data.ptr, y
        if Y is not None:
            raise ValueError("Y: this VAE has no conditions (n_conditions = 0)")
        return x, 0, None

    def loss_and_gradient(self, X, Y, eps):
        """(total, recon, kl, decay) at the given ε (rows × n_latent); the
        gradients (with λW) are left in each network's ``grads``."""
        with self._on_device() as stream:
            x, y_ptr, _y = self._inputs(X, Y)
            e, _ = self._matrix(eps, "eps", self._widths[1])
            if e.shape[0] != x.shape[0]:
                raise ValueError("eps: expected as many rows as X")
            out = self._model.loss_and_gradient(x.data.ptr, y_ptr, e.data.ptr, x.shape[0],
                                                stream.ptr)
        return tuple(float(v) for v in out)

    def train_step(self, X, Y=None):
        """One optimizer step of both networks (ε from the latent stream);
        (total, recon, kl, decay) before the update."""
        with self._on_device() as stream:
            x, y_ptr, _y = self._inputs(X, Y)
            out = self._model.train_step(x.data.ptr, y_ptr, x.shape[0], stream.ptr)
        return tuple(float(v) for v in out)

    def fit_epoch(self, X, Y=None, batch_size=64, shuffle=True):
        """One epoch; ((total, recon, kl, decay) means, steps, diverged)."""
        with self._on_device() as stream:
            x, y_ptr, _y = self._inputs(X, Y)
            batch_size = _check_batch_size(batch_size)
            losses, steps, diverged = self._model.fit_epoch(
                x.data.ptr, y_ptr, x.shape[0], batch_size, bool(shuffle), stream.ptr)
        return tuple(float(v) for v in losses), int(steps), bool(diverged)

    def __repr__(self):
        D, Z, C = self._widths
        return (f"CudaVAE(n_features={D}, n_latent={Z}, n_conditions={C}, "
                f"dtype={self.dtype!r}, device='cuda:{self.device_id}')")


class CudaGAN(_CudaComposite):
    """One ``_engine_cuda.GAN`` with the interface of ``_engine.GAN``.

    The constructor takes the CPU model's arguments and ``device``;
    ``generator`` and ``discriminator`` are :class:`CudaNetwork` objects over
    the model's own networks. Arrays are taken as :class:`CudaVAE`'s are.
    """

    def __init__(self, n_latent, n_features, g_hidden, d_hidden, g_activation="relu",
                 g_output_activation="sigmoid", d_activation="leaky_relu", dtype="float32",
                 weight_decay=0.0, minimax=False, device="cuda") -> None:
        model, cp, index = _build(device, lambda engine, i: engine.GAN(
            n_latent, n_features, list(g_hidden), list(d_hidden), g_activation,
            g_output_activation, d_activation, dtype, weight_decay, bool(minimax), device_id=i))
        self._setup(model, cp, index)
        self.generator = CudaNetwork.wrapping(model.generator, cp, index)
        self.discriminator = CudaNetwork.wrapping(model.discriminator, cp, index)
        self._widths = (int(model.n_latent), int(model.n_features))

    def set_optimizers(self, kind, g_learning_rate, d_learning_rate, momentum=0.9, beta1=0.5,
                       beta2=0.999, eps=1e-8):
        self._synchronized(self._model.set_optimizers, kind, g_learning_rate, d_learning_rate,
                           momentum=momentum, beta1=beta1, beta2=beta2, eps=eps)

    def discriminator_step(self, X):
        """D's step on the real rows X against as many fresh fakes; its loss."""
        with self._on_device() as stream:
            x, _ = self._matrix(X, "X", self._widths[1])
            return float(self._model.discriminator_step(x.data.ptr, x.shape[0], stream.ptr))

    def generator_step(self, batch_size):
        """G's step on ``batch_size`` fresh latents against the frozen D; its loss."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size: expected an integer, got {batch_size!r}")
        with self._on_device() as stream:
            return float(self._model.generator_step(int(batch_size), stream.ptr))

    def generator_loss_and_gradient(self, Z):
        """G's loss at latents Z and its gradient (with λW) in the generator's
        ``grads``; the discriminator is not touched."""
        with self._on_device() as stream:
            z, _ = self._matrix(Z, "Z", self._widths[0])
            return float(self._model.generator_loss_and_gradient(z.data.ptr, z.shape[0],
                                                                 stream.ptr))

    def fit_epoch(self, X, batch_size=64, d_steps=1, train_d=True, train_g=True, shuffle=True):
        """One pass over the real rows; (d_losses, g_losses, diverged)."""
        with self._on_device() as stream:
            x, _ = self._matrix(X, "X", self._widths[1])
            batch_size = _check_batch_size(batch_size)
            if isinstance(d_steps, bool) or not isinstance(d_steps, (int, np.integer)):
                raise TypeError(f"d_steps: expected an integer, got {d_steps!r}")
            d, g, diverged = self._model.fit_epoch(x.data.ptr, x.shape[0], batch_size,
                                                   int(d_steps), bool(train_d), bool(train_g),
                                                   bool(shuffle), stream.ptr)
        return [float(v) for v in d], [float(v) for v in g], bool(diverged)

    def __repr__(self):
        Z, D = self._widths
        return (f"CudaGAN(n_latent={Z}, n_features={D}, dtype={self.dtype!r}, "
                f"device='cuda:{self.device_id}')")
