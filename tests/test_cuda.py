"""device="cuda": the estimators' device parameter and the CUDA engine.

Two parts.

(a) Everywhere (CI has no GPU): the values ``device`` takes, the clear
    errors of a CUDA device where CuPy, the CUDA engine
    (``fusedae._engine_cuda``) or a GPU is missing (simulated by replacing
    modules in ``sys.modules``, so they run the same on a machine that has
    them), for every estimator the composites (VAEs, GAN) included, CuPy
    arrays given to CPU models, and loading a GPU model's file on the CPU.

(b) On a GPU (skipped otherwise, the reason naming what is missing): every
    op of the CUDA network against the NumPy reference (float64 to 1e-10,
    float32 to 1e-5 relative, as tests/test_engine.py does for the CPU
    engine) and against the CPU engine with the same seed and counters (same
    initialisation, shuffles and noise); zero-copy CuPy input on the
    current stream, a non-default stream, refused arrays, divergence; the
    estimators' quality bars of the CPU tests, CuPy in / CuPy out, and
    models saved on the GPU and loaded on the CPU. The composites (VAE,
    conditional VAE, GAN) the same way: every op of _engine_cuda.VAE and
    _engine_cuda.GAN against the CPU engine's with the same seed (losses and
    parameters after steps and epochs), zero copies, NaN, divergence, and
    their estimators.
"""
import gc
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import types
import zipfile

import numpy as np
import pytest
from scipy.linalg import subspace_angles
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

import fusedae
from conftest import NETWORK_CASES, TOL, TOL_TRAJECTORY, rel_err
from fusedae import _cuda
from fusedae import _validation as v
from fusedae._native import engine
from fusedae.reference import mlp, optim, philox

ENGINE_CUDA = "fusedae._engine_cuda"
CUDA_ESTIMATORS = ("Autoencoder", "SparseAutoencoder", "DenoisingAutoencoder", "Classifier",
                   "Generator")
COMPOSITES = ("VAE", "ConditionalVAE", "GAN")
ALL_ESTIMATORS = CUDA_ESTIMATORS + COMPOSITES


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _fit_args(name, X, y):
    return (X, y) if name in ("Classifier", "Generator", "ConditionalVAE") else (X,)


# =====================================================================
# (a) Runs everywhere
# =====================================================================
class FakeDeviceArray:
    """Stands for a cupy.ndarray where CuPy is not installed."""
    dtype = np.dtype("float32")
    shape = (3, 64)
    ndim = 2


@pytest.fixture
def fake_cuda(monkeypatch):
    """Replace CuPy and the CUDA engine in sys.modules: ``fake_cuda(cupy=False)``
    makes ``import cupy`` fail as if CuPy were not installed,
    ``engine=False`` makes fusedae._engine_cuda missing as in a build
    without CUDA, ``engine="broken"`` makes its import fail the way a
    missing libcublas does, ``devices=N`` is what the driver reports."""
    def install(cupy=True, engine=True, devices=1):
        if cupy:
            fake = types.ModuleType("cupy")
            fake.ndarray = FakeDeviceArray
            fake.cuda = types.SimpleNamespace(
                runtime=types.SimpleNamespace(getDevice=lambda: 0))
            monkeypatch.setitem(sys.modules, "cupy", fake)
        else:
            monkeypatch.setitem(sys.modules, "cupy", None)
        if engine is True:
            fake_engine = types.ModuleType(ENGINE_CUDA)
            fake_engine.device_count = lambda: devices
            monkeypatch.setitem(sys.modules, ENGINE_CUDA, fake_engine)
        elif engine == "broken":
            monkeypatch.delitem(sys.modules, ENGINE_CUDA, raising=False)
            monkeypatch.setattr(sys, "meta_path", [_BrokenEngine()] + sys.meta_path)
        else:
            monkeypatch.setitem(sys.modules, ENGINE_CUDA, None)
    return install


class _BrokenEngine(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds fusedae._engine_cuda and fails to load it, like an extension
    whose libcublas.so.13 is not on the library path."""

    def find_spec(self, name, path=None, target=None):
        if name == ENGINE_CUDA:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ImportError("libcublas.so.13: cannot open shared object file: No such file or "
                          "directory")

    def exec_module(self, module):  # pragma: no cover - create_module raises
        pass


def _estimator(name, **kw):
    small = {"epochs": 1, "random_state": 0}
    if name == "GAN":
        return fusedae.GAN(2, (4,), (4,), **small, **kw)
    if name in ("VAE", "ConditionalVAE"):
        return getattr(fusedae, name)(2, (4,), loss="squared_error", **small, **kw)
    return getattr(fusedae, name)(4, **small, **kw)


@pytest.mark.parametrize("name", ALL_ESTIMATORS)
@pytest.mark.parametrize("bad", ["tpu", "gpu", "CUDA", "cuda:", "cuda:-1", "cuda:1.5",
                                 "cuda: 0", "cuda:0:1", "cuda:x", "cpu:0", "", None, 0, 1.0,
                                 b"cuda", ["cuda"]])
def test_bad_device_is_named_with_the_accepted_values(digits, name, bad):
    X, y = digits
    with pytest.raises(ValueError, match=r"^device: expected 'cpu', 'cuda' or 'cuda:N'"):
        _estimator(name, device=bad).fit(*_fit_args(name, X[:40], y[:40]))


def test_device_values_are_normalised():
    assert v.check_device("cpu") == "cpu"
    assert v.check_device("cuda") == "cuda"
    assert v.check_device("cuda:0") == "cuda:0"
    assert v.check_device("cuda:007") == "cuda:7"
    assert v.check_device(np.str_("cuda:1")) == "cuda:1"


def test_every_model_has_a_cuda_backend():
    # The composites (VAE, conditional VAE, GAN) run on CUDA too: nothing is
    # refused as unsupported any more, only where CUDA cannot run.
    assert fusedae.CudaUnavailableError is v.CudaUnavailableError
    assert issubclass(fusedae.CudaUnavailableError, ValueError)
    assert not hasattr(v, "DeviceNotSupportedError") and not hasattr(v, "refuse_cuda")
    with pytest.raises(AttributeError):
        fusedae.DeviceNotSupportedError
    for name in ALL_ESTIMATORS:
        assert not hasattr(getattr(fusedae, name), "_runs_on_cuda")
    assert callable(_cuda.CudaVAE) and callable(_cuda.CudaGAN)


@pytest.mark.parametrize("name", ALL_ESTIMATORS)
def test_cuda_without_cupy_says_how_to_install_it(digits, fake_cuda, name):
    fake_cuda(cupy=False)
    X, y = digits
    model = _estimator(name, device="cuda")
    with pytest.raises(fusedae.CudaUnavailableError, match=r"^device: 'cuda' cannot be used") \
            as info:
        model.fit(*_fit_args(name, X, y))
    msg = str(info.value)
    assert "CuPy is not installed" in msg and 'pip install "fusedae[cuda]"' in msg
    assert "FUSEDAE_CUDA" not in msg and "no CUDA device" not in msg
    assert not hasattr(model, "_net") and not hasattr(model, "_model")
    assert not hasattr(model, "loss_curve_") and not hasattr(model, "history_")


def test_cuda_in_a_build_without_it_says_how_to_build(digits, fake_cuda):
    fake_cuda(engine=False)
    with pytest.raises(ValueError, match=r"^device: 'cuda:0' cannot be used") as info:
        fusedae.Autoencoder(4, epochs=1, device="cuda:0").fit(digits[0])
    msg = str(info.value)
    assert "built without its CUDA engine" in msg
    assert "pip install . -C cmake.define.FUSEDAE_CUDA=ON" in msg
    assert "CuPy" not in msg


def test_cuda_engine_that_does_not_load_says_why(digits, fake_cuda):
    fake_cuda(engine="broken")
    with pytest.raises(fusedae.CudaUnavailableError) as info:
        fusedae.Classifier(4, epochs=1, device="cuda").fit(*digits)
    msg = str(info.value)
    assert "could not be loaded" in msg and "libcublas.so.13" in msg
    assert "nvidia-cublas" in msg


def test_cuda_without_a_gpu_says_no_cuda_device(digits, fake_cuda):
    fake_cuda(devices=0)
    with pytest.raises(fusedae.CudaUnavailableError, match="no CUDA device") as info:
        fusedae.Generator(4, epochs=1, device="cuda").fit(*digits)
    assert "CuPy is not installed" not in str(info.value)


def test_cuda_device_index_past_the_last_gpu(digits, fake_cuda):
    fake_cuda(devices=2)
    with pytest.raises(fusedae.CudaUnavailableError,
                       match=r"no CUDA device 3: this machine has 2 \(cuda:0 to cuda:1\)"):
        fusedae.SparseAutoencoder(4, epochs=1, device="cuda:3").fit(digits[0])


def test_everything_missing_is_listed_at_once(digits, fake_cuda):
    fake_cuda(cupy=False, engine=False)
    with pytest.raises(fusedae.CudaUnavailableError) as info:
        fusedae.DenoisingAutoencoder(4, epochs=1, device="cuda").fit(digits[0])
    msg = str(info.value)
    assert "FUSEDAE_CUDA=ON" in msg and 'pip install "fusedae[cuda]"' in msg
    assert msg.endswith("Use device='cpu' to run on the CPU.")


def test_cuda_is_refused_before_the_data_are_read(fake_cuda):
    # A fit on an unusable device fails on the device, whatever X holds.
    fake_cuda(devices=0)
    with pytest.raises(fusedae.CudaUnavailableError):
        fusedae.Autoencoder(4, device="cuda").fit([["not", "numbers"]])


def test_require_and_available(fake_cuda):
    fake_cuda(devices=0)
    assert not _cuda.available("cuda")
    with pytest.raises(ValueError, match="^device: expected a CUDA device"):
        _cuda.require("cpu")
    fake_cuda(devices=2)
    eng, cupy, index = _cuda.require(1)
    assert index == 1 and eng is sys.modules[ENGINE_CUDA]
    assert _cuda.require("cuda")[2] == 0  # CuPy's current device
    assert _cuda.available("cuda:1") and not _cuda.available("cuda:2")


@pytest.mark.parametrize("name", COMPOSITES)
@pytest.mark.parametrize("missing", ["gpu", "engine", "broken", "cupy", "gpu 2"])
def test_composites_on_cuda_say_what_is_missing(digits, fake_cuda, name, missing):
    # The VAEs and the GAN need what the other models need, and say so the
    # same way, at fit and at partial_fit, before reading the data.
    fake_cuda(**{"gpu": dict(devices=0), "engine": dict(engine=False),
                 "broken": dict(engine="broken"), "cupy": dict(cupy=False),
                 "gpu 2": dict(devices=2)}[missing])
    device = "cuda:2" if missing == "gpu 2" else "cuda"
    expect = {"gpu": "no CUDA device: the CUDA driver reports none",
              "engine": "built without its CUDA engine", "broken": "could not be loaded",
              "cupy": "CuPy is not installed", "gpu 2": "no CUDA device 2: this machine has 2"}
    X, y = digits
    for method in ("fit", "partial_fit"):
        model = _estimator(name, device=device)
        with pytest.raises(fusedae.CudaUnavailableError,
                           match=rf"^device: '{device}' cannot be used here") as info:
            getattr(model, method)(*_fit_args(name, X, y))
        assert expect[missing] in str(info.value)
        assert str(info.value).endswith("Use device='cpu' to run on the CPU.")
        assert not hasattr(model, "_model")
    with pytest.raises(fusedae.CudaUnavailableError):  # whatever the data
        _estimator(name, device=device).fit(*_fit_args(name, [["not", "numbers"]], [0]))


@pytest.mark.parametrize("name", COMPOSITES)
def test_composite_engine_wrappers_say_what_is_missing(fake_cuda, name):
    fake_cuda(devices=0)
    with pytest.raises(fusedae.CudaUnavailableError, match="no CUDA device"):
        if name == "GAN":
            _cuda.CudaGAN(2, 4, [3], [3])
        else:
            _cuda.CudaVAE(4, 2, [3], n_conditions=3 if name == "ConditionalVAE" else 0)


@pytest.fixture
def fake_cupy_array(fake_cuda):
    fake_cuda()
    return FakeDeviceArray()


def test_cupy_arrays_on_a_cpu_model_are_refused(digits, fake_cupy_array):
    X, y = digits
    gpu = fake_cupy_array
    hint = r"device='cuda'.*cupy\.asnumpy"
    with pytest.raises(TypeError, match=rf"^X: got a CuPy array .*{hint}\(X\)"):
        fusedae.Autoencoder(4, epochs=1).fit(gpu)
    ae = fusedae.Autoencoder(4, epochs=1, random_state=0).fit(X)
    for method in ("transform", "predict", "score", "reconstruction_error",
                   "loss_and_gradient", "partial_fit"):
        with pytest.raises(TypeError, match=hint):
            getattr(ae, method)(gpu)
    with pytest.raises(TypeError, match=hint):
        ae.inverse_transform(gpu)
    clf = fusedae.Classifier(4, epochs=1, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match=rf"^y: got a CuPy array.*{hint}\(y\)"):
        fusedae.Classifier(4, epochs=1).fit(X, gpu)
    with pytest.raises(TypeError, match=hint):
        clf.predict(gpu)
    with pytest.raises(TypeError, match=rf"^y: .*{hint}"):
        clf.score(X, gpu)
    gen = fusedae.Generator(4, epochs=1, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match=rf"^y: .*{hint}"):
        gen.generate(gpu)
    with pytest.raises(TypeError, match=hint):
        fusedae.VAE(2, (4,), epochs=1).fit(gpu)
    with pytest.raises(TypeError, match=hint):
        fusedae.GAN(2, (4,), (4,), epochs=1).fit(gpu)
    # The composites' other methods, fitted on the CPU.
    vae = fusedae.VAE(2, (4,), loss="squared_error", epochs=1, random_state=0).fit(X)
    for call in (lambda: vae.transform(gpu), lambda: vae.encode(gpu), lambda: vae.score(gpu),
                 lambda: vae.generate(gpu), lambda: vae.partial_fit(gpu),
                 lambda: vae.interpolate(gpu, X[0]),
                 lambda: vae.loss_and_gradient(gpu, np.zeros((3, 2), np.float32)),
                 lambda: vae.loss_and_gradient(X[:3], gpu)):
        with pytest.raises(TypeError, match=hint):
            call()
    cvae = fusedae.ConditionalVAE(2, (4,), loss="squared_error", epochs=1,
                                  random_state=0).fit(X, y)
    for call in (lambda: cvae.fit(X, gpu), lambda: cvae.transform(X[:3], gpu),
                 lambda: cvae.sample(3, y=gpu)):
        with pytest.raises(TypeError, match=rf"^y: .*{hint}"):
            call()
    gan = fusedae.GAN(2, (4,), (4,), epochs=1, random_state=0).fit(X)
    for call in (lambda: gan.generate(gpu), lambda: gan.discriminate(gpu),
                 lambda: gan.partial_fit(gpu), lambda: gan.generator_loss_and_gradient(gpu),
                 lambda: gan.discriminator_loss_and_gradient(gpu, X[:3])):
        with pytest.raises(TypeError, match=hint):
            call()


# ------------------------------------------------------------ model files
def _rewrite_device(path, device):
    """The model file at path with its device hyperparameter (and the ones
    its fit recorded) set to ``device``, as a GPU-trained model's file is."""
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    meta = json.loads(members["metadata.json"])
    meta["params"]["v"]["device"] = device
    state = meta["state"]["v"]
    state["device"] = device  # the estimator's attributes, hyperparameters included
    for key in ("_fit_params", "_params_used"):
        state[key]["v"]["device"] = device
    members["metadata.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _outputs(name, m, X, y):
    """What a fitted model answers, for comparing two of them."""
    if name == "Generator":
        return [m.generate(y)]
    if name == "Classifier":
        return [m.predict_proba(X)]
    if name == "VAE":
        return [*m.encode(X), m.sample(5, random_state=0)]
    if name == "ConditionalVAE":
        return [*m.encode(X, y), m.sample(5, y=y[:5], random_state=0)]
    if name == "GAN":
        return [m.sample(5, random_state=0), m.discriminate(X)]
    return [m.predict(X), m.transform(X)]


@pytest.mark.parametrize("name", ALL_ESTIMATORS)
def test_gpu_model_file_loads_on_the_cpu_when_asked(digits, tmp_path, fake_cuda, name):
    X, y = digits
    model = _estimator(name).fit(*_fit_args(name, X, y))
    path = tmp_path / "m.fae"
    model.save(path)
    _rewrite_device(path, "cuda")
    fake_cuda(devices=0)
    with pytest.raises(fusedae.CudaUnavailableError) as info:
        fusedae.load(path)
    msg = str(info.value)
    assert msg.startswith("device: 'cuda' cannot be used here: no CUDA device")
    assert str(path) in msg and "device='cpu'" in msg and "saved with device='cuda'" in msg
    with pytest.raises(fusedae.CudaUnavailableError):
        fusedae.load(path, device="cuda:0")
    back = fusedae.load(path, device="cpu")
    assert back.get_params()["device"] == "cpu" and back._params_used["device"] == "cpu"
    for a, b in zip(_outputs(name, back, X, y), _outputs(name, model, X, y)):
        np.testing.assert_array_equal(a, b)
    back.save(path)  # and it is a CPU model's file again
    assert fusedae.load(path).get_params()["device"] == "cpu"


def test_load_checks_the_device_argument(digits, tmp_path, fake_cuda):
    X, _ = digits
    path = tmp_path / "m.fae"
    fusedae.Autoencoder(4, epochs=1, random_state=0).fit(X).save(path)
    with pytest.raises(ValueError, match=r"^device: expected 'cpu', 'cuda' or 'cuda:N'"):
        fusedae.load(path, device="gpu")
    assert fusedae.load(path, device="cpu").device == "cpu"
    # A composite moves to a GPU like any model: where there is none, the
    # error says so and how to load it on the CPU.
    fusedae.VAE(2, (4,), epochs=1, random_state=0).fit(X).save(path)
    fake_cuda(devices=0)
    with pytest.raises(fusedae.CudaUnavailableError, match="no CUDA device") as info:
        fusedae.load(path, device="cuda")
    assert str(path) in str(info.value) and "device='cpu'" in str(info.value)
    assert fusedae.load(path, device="cpu").device == "cpu"


def test_unfitted_gpu_model_file_loads_anywhere(tmp_path, fake_cuda):
    path = tmp_path / "u.fae"
    fusedae.Classifier(4, device="cuda:1").save(path)
    fake_cuda(cupy=False, engine=False)
    back = fusedae.load(path)  # nothing is built: the device is asked for at fit
    assert back.device == "cuda:1"
    assert fusedae.load(path, device="cpu").device == "cpu"


def test_clone_keeps_the_device():
    assert clone(fusedae.Classifier(device="cuda:1")).device == "cuda:1"


def test_cublas_wheel_is_found_by_its_layout(tmp_path, monkeypatch):
    root = tmp_path / "nvidia"
    lib = root / "cu13" / "lib"
    lib.mkdir(parents=True)
    spec = importlib.machinery.ModuleSpec("nvidia", None, is_package=True)
    spec.submodule_search_locations = [str(root)]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: spec if name == "nvidia" else real_find_spec(name, *a))
    assert _cuda.cublas_libraries() == []  # the folder without the libraries
    for name in ("libcublasLt.so.13", "libcublas.so.13"):
        (lib / name).write_bytes(b"")
    assert _cuda.cublas_libraries() == [str(lib / "libcublasLt.so.13"),
                                        str(lib / "libcublas.so.13")]
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nvidia" else real_find_spec(name, *a))
    assert _cuda.cublas_libraries() == []


# =====================================================================
# (b) On a GPU
# =====================================================================
def _why_no_gpu():
    """What keeps the GPU tests from running here, or None."""
    _, problem = _cuda._import_cupy()
    if problem:
        return f"no CuPy ({problem})"
    eng, problem = _cuda._import_engine()
    if problem:
        if "built without" in problem:
            return ("package built without CUDA (no fusedae._engine_cuda; build with pip "
                    "install . -C cmake.define.FUSEDAE_CUDA=ON)")
        return f"the CUDA engine does not load ({problem})"
    if eng.device_count() < 1:
        return "no GPU (the CUDA driver reports no device)"
    return None


NO_GPU = _why_no_gpu()
if NO_GPU is not None and os.environ.get("FUSEDAE_REQUIRE_GPU") == "1":
    # .ci/gpu sets this on a machine with a GPU: skipping would hide a broken build.
    raise RuntimeError(f"FUSEDAE_REQUIRE_GPU=1, but the GPU tests cannot run: {NO_GPU}")
needs_gpu = pytest.mark.skipif(NO_GPU is not None, reason=f"GPU tests skipped: {NO_GPU}")

if NO_GPU is None:
    import cupy as cp

    from fusedae._cuda import CudaNetwork

    if os.environ.get("FUSEDAE_CUPY_NO_POOL") == "1":
        # Under compute-sanitizer (.ci/gpu): every CuPy array its own
        # cudaMalloc, so an access past one is reported, not lost in a pool.
        cp.cuda.set_allocator(None)
        cp.cuda.set_pinned_memory_allocator(None)
else:  # the GPU tests are skipped; the names must still exist for collection
    cp = None
    CudaNetwork = None

DTYPES = ["float64", "float32"]
# (sizes, activations, loss, weight_decay, sparsity_layer, batch[, density]): every
# activation and loss, widths that are no multiple of a warp, 1-row batches,
# deep stacks, softmax, and the 784-196 shape of the benchmarks.
CASES = NETWORK_CASES + [
    ((20, 13, 10), ("sigmoid", "softmax"), "categorical_cross_entropy", 1e-3, 1, 9),
    ((9, 11, 7, 3), ("relu", "tanh", "softmax"), "categorical_cross_entropy", 0.0, None, 1),
    ((400, 150, 10), ("tanh", "softmax"), "categorical_cross_entropy", 1e-4, None, 130),
    ((784, 196, 784), ("sigmoid", "sigmoid"), "squared_error", 0.0, 1, 256, 0.2),
    ((300, 120, 300), ("sigmoid", "sigmoid"), "squared_error", 1e-3, 1, 97, 0.2),
]
CASE_IDS = [f"{'-'.join(map(str, c[0]))}/{'-'.join(c[1])}/{c[2][:3]}/wd{c[3]}/s{c[4]}/B{c[5]}"
            for c in CASES]
STEP_CASES = [1, 2, 9, 10, 11, 13, 14, 15]


def make_pair(case, dtype, rng, seed=3):
    """(reference spec, CPU network, CUDA network, X, Y): both networks from
    init_params(seed), then the same nonzero biases and perturbations."""
    sizes, acts, loss, wd, sl, B = case[:6]
    density = case[6] if len(case) > 6 else 1.0
    spec = mlp.MLPSpec(sizes=sizes, activations=acts, loss=loss, weight_decay=wd,
                       sparsity_layer=sl, sparsity_target=0.1,
                       sparsity_weight=3.0 if sl else 0.0)
    args = (list(sizes), list(acts), loss, dtype, wd, sl or 0, 0.1, 3.0 if sl else 0.0)
    cpu = engine.Network(*args)
    gpu = CudaNetwork(*args, device="cuda")
    cpu.init_params(seed)
    gpu.init_params(seed)
    np.testing.assert_array_equal(gpu.params.get(), cpu.params)
    cpu.params[:] += rng.uniform(-0.1, 0.1, cpu.n_params).astype(dtype)
    gpu.params.set(cpu.params)
    X = rng.uniform(0, 1, (B, sizes[0]))
    X = np.where(rng.uniform(size=X.shape) < density, X, 0.0).astype(dtype)
    Y = rng.uniform(0.05, 0.95, (B, sizes[-1])).astype(dtype)
    return spec, cpu, gpu, X, Y


def host(a):
    return a.get() if isinstance(a, cp.ndarray) else np.asarray(a)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_init_matches_cpu_and_reference(dtype):
    sizes = (13, 7, 5, 7, 13)
    gpu = CudaNetwork(list(sizes), ["tanh"] * 3 + ["sigmoid"], dtype=dtype, device="cuda")
    cpu = engine.Network(list(sizes), ["tanh"] * 3 + ["sigmoid"], dtype=dtype)
    for seed in (0, 2024, 2**40 + 5):
        gpu.init_params(seed)
        cpu.init_params(seed)
        Ws, bs = philox.glorot_init(sizes, seed, dtype=np.dtype(dtype))
        np.testing.assert_array_equal(gpu.params.get(), mlp.flatten(Ws, bs))
        np.testing.assert_array_equal(gpu.get_params(), cpu.params)
    assert gpu.isa.startswith("cuda:") and gpu.dtype == dtype and gpu.sizes == list(sizes)
    assert gpu.n_params == cpu.n_params
    assert [gpu.weight_offset(l) for l in range(1, 5)] == [cpu.weight_offset(l)
                                                          for l in range(1, 5)]


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_every_layer(case, dtype, rng):
    spec, cpu, gpu, X, _ = make_pair(case, dtype, rng)
    Ws, bs = mlp.unflatten(cpu.params.astype(np.float64), spec)
    As, _ = mlp.forward(Ws, bs, X.astype(np.float64), spec)
    L = len(spec.sizes) - 1
    for start in range(L):
        for stop in range(start + 1, L + 1):
            A = As[start].astype(dtype)
            ref, _ = mlp.forward(Ws[start:stop], bs[start:stop], A.astype(np.float64),
                                 mlp.MLPSpec(sizes=spec.sizes[start:stop + 1],
                                             activations=spec.activations[start:stop],
                                             loss=spec.loss if stop == L else "squared_error"))
            out_host = gpu.forward(A, start, stop)            # NumPy in: NumPy out
            out_dev = gpu.forward(cp.asarray(A), start, stop)  # CuPy in: CuPy out
            assert type(out_host) is np.ndarray and isinstance(out_dev, cp.ndarray)
            assert out_host.dtype == out_dev.dtype == np.dtype(dtype)
            assert rel_err(out_host, ref[-1]) <= TOL[dtype], (start, stop)
            np.testing.assert_array_equal(out_dev.get(), out_host)
            assert rel_err(out_host, cpu.forward(A, start, stop)) <= TOL[dtype]
    np.testing.assert_array_equal(gpu.forward(X, 0, -1), gpu.forward(X, 0, L))


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_loss_and_gradient(case, dtype, rng):
    spec, cpu, gpu, X, Y = make_pair(case, dtype, rng)
    Ws, bs = mlp.unflatten(cpu.params.astype(np.float64), spec)
    ref_loss, dWs, dbs = mlp.loss_and_gradient(Ws, bs, X.astype(np.float64),
                                               Y.astype(np.float64), spec)
    for inputs in ((X, Y), (cp.asarray(X), cp.asarray(Y)), (cp.asarray(X), Y)):
        loss = gpu.loss_and_gradient(*inputs)
        assert isinstance(loss, float)
        assert abs(loss - ref_loss) <= TOL[dtype] * abs(ref_loss)
        gWs, gbs = mlp.unflatten(gpu.grads.get().astype(np.float64), spec)
        for l, (g, r) in enumerate(zip(gWs + gbs, dWs + dbs)):
            assert rel_err(g, r) <= TOL[dtype], f"gradient {l}"
    assert abs(cpu.loss_and_gradient(X, Y) - loss) <= TOL[dtype] * abs(ref_loss)
    assert rel_err(gpu.grads.get(), cpu.grads) <= TOL[dtype]


def reference_optimizer(net, opt, lr, spec):
    """The reference optimizer with its state loaded from the network's."""
    def as_lists(flat):
        Ws, bs = mlp.unflatten(host(flat).astype(np.float64), spec)
        return [a.copy() for a in Ws + bs]

    if opt == "sgd":
        return optim.SGD(lr)
    if opt == "momentum":
        ref = optim.Momentum(lr, 0.8)
        ref.state["v"] = as_lists(net.optimizer_state(0))
        return ref
    ref = optim.Adam(lr, 0.9, 0.99, 1e-7)
    ref.state.update(t=net.optimizer_steps, m=as_lists(net.optimizer_state(0)),
                     v=as_lists(net.optimizer_state(1)))
    return ref


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("case", [CASES[i] for i in STEP_CASES],
                         ids=[CASE_IDS[i] for i in STEP_CASES])
def test_train_steps(case, opt, dtype, rng):
    # As tests/test_engine.py: each step checked from the network's own state,
    # with rates that keep units out of float32 saturation.
    spec, cpu, gpu, X, Y = make_pair(case, dtype, rng)
    cpu.loss_and_gradient(X, Y)
    gnorm = float(np.linalg.norm(cpu.grads.astype(np.float64)))
    lr = {"sgd": 0.5 * min(1.0, 1.0 / gnorm), "momentum": 0.2 * min(1.0, 1.0 / gnorm),
          "adam": 1e-2 * min(1.0, 64 / max(case[0]))}[opt]
    for net in (cpu, gpu):
        net.set_optimizer(opt, lr, momentum=0.8, beta1=0.9, beta2=0.99, eps=1e-7)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    Xd, Yd = cp.asarray(X), cp.asarray(Y)
    for step in range(4):
        theta = gpu.params.get().astype(np.float64)
        Ws, bs = mlp.unflatten(theta, spec)
        ref_opt = reference_optimizer(gpu, opt, lr, spec)
        ref_loss = optim.train_step(Ws, bs, X64, Y64, spec, ref_opt)
        loss = gpu.train_step(Xd, Yd) if step % 2 else gpu.train_step(X, Y)
        cpu.train_step(X, Y)
        assert abs(loss - ref_loss) <= TOL[dtype] * abs(ref_loss), f"loss, step {step}"
        assert rel_err(gpu.params.get(), theta) <= TOL[dtype], f"parameters, step {step}"
        for k in (0, 1):
            state = mlp.unflatten(gpu.optimizer_state(k).get().astype(np.float64), spec)
            if opt == "momentum" and k == 0:
                expect = ref_opt.state["v"]
            elif opt == "adam":
                expect = ref_opt.state["m" if k == 0 else "v"]
            else:
                continue
            assert rel_err(np.concatenate([a.ravel() for a in state[0] + state[1]]),
                           np.concatenate([a.ravel() for a in expect])) <= TOL[dtype]
    assert gpu.optimizer_steps == cpu.optimizer_steps == 4
    assert rel_err(gpu.params.get(), cpu.params) <= TOL_TRAJECTORY[dtype]


def reference_epoch(Ws, bs, X, spec, ref_opt, batch, seed, epoch, noise_step, kind, level):
    perm = philox.permutation(len(X), seed, epoch)
    losses = []
    for r0 in range(0, len(X), batch):
        clean = X[perm[r0:r0 + batch]]
        noisy = clean if kind == "none" else philox.corrupt(clean, kind, level, seed, noise_step)
        noise_step += kind != "none"
        losses.append((optim.train_step(Ws, bs, noisy, clean, spec, ref_opt), len(clean)))
    return sum(l * n for l, n in losses) / len(X), noise_step


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,level", [("none", 0.0), ("gaussian", 0.3), ("masking", 0.25),
                                        ("salt_pepper", 0.2)])
@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
@pytest.mark.parametrize("sizes,rows,batch,density", [
    ((10, 6, 10), 45, 16, 1.0),
    ((301, 200, 301), 150, 64, 0.2),
], ids=["small", "mnist-like"])
def test_fit_epoch_matches_cpu_and_reference(sizes, rows, batch, density, sparse, kind, level,
                                             dtype, rng):
    # Shuffles, minibatches (a short last one) and noise from the same Philox
    # streams on both engines: three epochs on each, compared epoch by epoch
    # with each other and with the reference loop.
    seed = 77
    sl, rho, beta, wd = (1, 0.2, 0.5, 1e-3) if sparse else (0, 0.05, 0.0, 0.0)
    spec = mlp.MLPSpec(sizes=sizes, activations=("sigmoid", "sigmoid"),
                       sparsity_layer=sl or None, sparsity_target=rho, sparsity_weight=beta,
                       weight_decay=wd)
    args = (list(sizes), ["sigmoid", "sigmoid"], "squared_error", dtype, wd, sl, rho, beta)
    cpu, gpu = engine.Network(*args), CudaNetwork(*args, device="cuda")
    lr = 1e-2 * min(1.0, 64 / sizes[0])
    kind_opt = "adam" if dtype == "float64" else "sgd"   # as tests/test_engine.py
    for net in (cpu, gpu):
        net.init_params(seed)
        net.set_optimizer(kind_opt, lr if kind_opt == "adam" else 10 * lr)
    X = rng.uniform(0, 1, (rows, sizes[0]))
    X = np.where(rng.uniform(size=X.shape) < density, X, 0.0).astype(dtype)
    Xd = cp.asarray(X)
    theta = cpu.params.astype(np.float64)
    Ws, bs = mlp.unflatten(theta, spec)
    ref_opt = optim.Adam(lr) if kind_opt == "adam" else optim.SGD(10 * lr)
    noise_step = 0
    for epoch in range(3):
        loss, steps, diverged = gpu.fit_epoch(Xd, None, batch, True, kind, level)
        cpu_loss, cpu_steps, _ = cpu.fit_epoch(X, None, batch, True, kind, level)
        ref_loss, noise_step = reference_epoch(Ws, bs, X.astype(np.float64), spec, ref_opt,
                                               batch, seed, epoch, noise_step, kind, level)
        assert (steps, diverged) == (cpu_steps, False) == (-(-rows // batch), False)
        assert abs(loss - ref_loss) <= TOL[dtype] * abs(ref_loss)
        assert abs(loss - cpu_loss) <= TOL[dtype] * abs(cpu_loss)
        assert rel_err(gpu.params.get(), cpu.params) <= TOL_TRAJECTORY[dtype], epoch
    assert rel_err(gpu.params.get(), theta) <= TOL_TRAJECTORY[dtype]
    for counter in ("epochs", "noise_steps", "optimizer_steps", "seed"):
        assert getattr(gpu, counter) == getattr(cpu, counter), counter
    assert gpu.epochs == 3 and gpu.noise_steps == noise_step


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_epoch_supervised_and_counters_resume(dtype, rng):
    # A classifier's epoch (targets follow the inputs' permutation), on
    # NumPy and CuPy input; then counters moved by hand on both engines.
    sizes, rows, batch, seed = (12, 9, 4), 45, 16, 5
    args = (list(sizes), ["tanh", "softmax"], "categorical_cross_entropy", dtype, 1e-3)
    cpu, gpu = engine.Network(*args), CudaNetwork(*args, device="cuda")
    X = rng.uniform(0, 1, (rows, sizes[0])).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], rows)]
    for net in (cpu, gpu):
        net.init_params(seed)
        net.set_optimizer("adam", 1e-2)
    for epoch, inputs in enumerate([(X, Y), (cp.asarray(X), cp.asarray(Y))]):
        loss, steps, _ = gpu.fit_epoch(*inputs, batch_size=batch, shuffle=True)
        cpu_loss, cpu_steps, _ = cpu.fit_epoch(X, Y, batch_size=batch, shuffle=True)
        assert steps == cpu_steps and abs(loss - cpu_loss) <= TOL[dtype] * abs(cpu_loss)
    assert rel_err(gpu.params.get(), cpu.params) <= TOL_TRAJECTORY[dtype]
    for net in (cpu, gpu):
        net.epochs, net.optimizer_steps, net.seed = 7, 40, 11
        net.fit_epoch(X, Y, batch_size=batch, shuffle=True)
    assert (gpu.epochs, gpu.optimizer_steps) == (cpu.epochs, cpu.optimizer_steps) == (8, 43)
    assert rel_err(gpu.params.get(), cpu.params) <= TOL_TRAJECTORY[dtype]


class _Recorder:
    """Stands in for the engine network and records the pointer-level calls."""

    def __init__(self, net):
        self._net = net
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self._net, name)
        if name in ("forward", "train_step", "loss_and_gradient", "fit_epoch"):
            def record(*args):
                self.calls.append((name, args))
                return attr(*args)
            return record
        return attr


@needs_gpu
def test_cupy_input_is_used_in_place_on_the_current_stream(rng):
    spec, cpu, gpu, X, Y = make_pair(CASES[15], "float32", rng)
    rec = gpu._net = _Recorder(gpu._net)
    Xd, Yd = cp.asarray(X), cp.asarray(Y)
    out = gpu.forward(Xd, 0, 1)
    name, (x_ptr, rows, start, stop, out_ptr, stream) = rec.calls[-1]
    assert (name, x_ptr, rows, start, stop) == ("forward", Xd.data.ptr, len(X), 0, 1)
    assert isinstance(out, cp.ndarray) and out.data.ptr == out_ptr
    assert out.shape == (len(X), spec.sizes[1])
    assert stream == cp.cuda.get_current_stream().ptr
    gpu.train_step(Xd, Yd)
    assert rec.calls[-1][1][:3] == (Xd.data.ptr, Yd.data.ptr, len(X))
    gpu.fit_epoch(Xd, Yd, batch_size=32)
    assert rec.calls[-1][1][:2] == (Xd.data.ptr, Yd.data.ptr)
    gpu.fit_epoch(Xd)  # Y = X: no target pointer
    assert rec.calls[-1][1][:2] == (Xd.data.ptr, 0)
    # NumPy input: copied to the device (a device pointer, not the host one).
    host_out = gpu.forward(X, 0, 1)
    assert rec.calls[-1][1][0] != X.ctypes.data and type(host_out) is np.ndarray
    # The parameter views are the engine's own buffers.
    eng = rec._net
    assert gpu.params.data.ptr == eng.params_ptr and gpu.grads.data.ptr == eng.grads_ptr
    assert gpu.optimizer_state(1).data.ptr == eng.state_ptr(1)
    gpu.params[:] = 0  # writing the view changes the network
    np.testing.assert_array_equal(gpu.get_params(), 0)
    assert float(abs(gpu.forward(Xd, 0, 1) - 0.5).max()) <= 1e-7  # sigmoid(0)


@needs_gpu
def test_a_non_default_stream_is_used(rng):
    spec, cpu, gpu, X, Y = make_pair(CASES[14], "float32", rng)
    twin = CudaNetwork(spec.sizes, spec.activations, spec.loss, "float32", 0.0, 1, 0.1, 3.0,
                       device="cuda")
    twin.params[:] = gpu.params
    for net in (gpu, twin):
        net.set_optimizer("sgd", 0.1)
    rec = gpu._net = _Recorder(gpu._net)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        Xd = cp.asarray(X)
        losses = [gpu.train_step(Xd, Xd) for _ in range(3)]
        out = gpu.forward(Xd)
        out_sum = float(out.sum())
    assert all(call[1][-1] == stream.ptr for call in rec.calls)
    ref = [twin.train_step(X, X) for _ in range(3)]
    np.testing.assert_allclose(losses, ref, rtol=1e-6)
    assert out_sum == pytest.approx(float(twin.forward(cp.asarray(X)).sum()), rel=1e-6)


@needs_gpu
@pytest.mark.parametrize("where", ["X", "Y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_and_nothing_changes(rng, where, bad):
    _, _, gpu, X, Y = make_pair(CASES[2], "float32", rng)
    gpu.set_optimizer("adam", 1e-3)
    before = gpu.get_params()
    (X if where == "X" else Y)[0, 3] = bad
    for data in ((X, Y), (cp.asarray(X), cp.asarray(Y))):
        for op in (gpu.train_step, gpu.loss_and_gradient,
                   lambda a, b: gpu.fit_epoch(a, b, batch_size=4)):
            with pytest.raises(ValueError, match=rf"^{where}: contains NaN or infinity"):
                op(*data)
        if where == "X":
            with pytest.raises(ValueError, match="^X: contains NaN or infinity"):
                gpu.forward(data[0])
    np.testing.assert_array_equal(gpu.get_params(), before)
    assert gpu.optimizer_steps == 0 and gpu.epochs == 0


@needs_gpu
def test_bad_arrays_are_refused_like_the_cpu_engine(rng):
    _, cpu, gpu, X, Y = make_pair(CASES[2], "float32", rng)
    Xd = cp.asarray(X)
    cases = [
        (TypeError, "X: expected dtype float32, got float64", Xd.astype(cp.float64)),
        (TypeError, "X: expected dtype float32, got float64", X.astype(np.float64)),
        (TypeError, "X: expected a numpy.ndarray or a cupy.ndarray, got list", X.tolist()),
        (ValueError, "X: expected a 2-D array, got 1-D", Xd[0]),
        (ValueError, "X: expected at least one row", Xd[:0]),
        (ValueError, "X: expected 33 columns, got 32", Xd[:, :32].copy()),
        (ValueError, "X: expected a C-contiguous array", cp.asfortranarray(Xd)),
        (ValueError, "X: expected a C-contiguous array", cp.tile(Xd, 2)[:, ::2]),
    ]
    for exc, msg, arr in cases:
        with pytest.raises(exc, match="^" + msg.replace("(", r"\(")):
            gpu.forward(arr)
        with pytest.raises(exc, match="^" + msg.replace("(", r"\(")):
            gpu.train_step(arr, Y)
    with pytest.raises(ValueError, match="^Y: expected as many rows as X"):
        gpu.train_step(Xd, cp.asarray(Y[:-1]))
    with pytest.raises(ValueError, match=r"^layers: expected 0 <= start < stop <= 2"):
        gpu.forward(Xd, 1, 1)
    with pytest.raises(ValueError, match="^k: expected 0"):
        gpu.optimizer_state(2)
    with pytest.raises(ValueError, match="^batch_size: expected an integer >= 1"):
        gpu.fit_epoch(Xd, batch_size=0)
    with pytest.raises(ValueError, match="^noise_level"):
        gpu.fit_epoch(Xd, noise="masking", noise_level=1.5)
    with pytest.raises(ValueError, match="^noise: expected"):
        gpu.fit_epoch(Xd, noise="speckle")
    # The CPU engine says the same (the messages are the contract).
    for arr, msg in ((X.astype(np.float64), "X: expected dtype float32"),
                     (X[:0], "X: expected at least one row")):
        with pytest.raises((TypeError, ValueError), match="^" + msg):
            cpu.forward(arr)


@needs_gpu
@pytest.mark.skipif(NO_GPU is None and cp.cuda.runtime.getDeviceCount() < 2,
                    reason="needs two GPUs")
def test_array_on_another_gpu_is_refused(rng):
    _, _, gpu, X, _ = make_pair(CASES[2], "float32", rng)
    with cp.cuda.Device(1):
        other = cp.asarray(X)
    with pytest.raises(ValueError, match="^X: expected an array on CUDA device 0"):
        gpu.forward(other)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_is_the_cpus(dtype):
    # As tests/test_training.py: the first step blows the weights up (finite),
    # the second's loss is not finite and that step is not applied.
    X = np.full((16, 4), 1e3, dtype=dtype)
    args = ([4, 3, 4], ["identity", "identity"], "squared_error", dtype)
    cpu, gpu = engine.Network(*args), CudaNetwork(*args, device="cuda")
    for net in (cpu, gpu):
        net.init_params(7)
        net.set_optimizer("sgd", 1e30 if dtype == "float32" else 1e200)
    results = {}
    for name, net in (("cpu", cpu), ("gpu", gpu)):
        first = net.fit_epoch(X, None, 16, True)
        after_first = host(net.params).copy()
        second = net.fit_epoch(X, None, 16, True)
        results[name] = (first, second, after_first, host(net.params).copy())
    (c1, c2, c_after, c_end), (g1, g2, g_after, g_end) = results["cpu"], results["gpu"]
    assert (g1[1], g1[2]) == (c1[1], c1[2]) == (1, False)
    assert (g2[1], g2[2]) == (c2[1], c2[2]) == (0, True)
    assert not np.isfinite(g2[0]) and not np.isfinite(c2[0])
    np.testing.assert_array_equal(g_end, g_after)  # the diverging step was not applied
    np.testing.assert_array_equal(c_end, c_after)  # as on the CPU
    assert np.isfinite(g_end).all()
    np.testing.assert_allclose(g_after, c_after, rtol=TOL[dtype])  # huge: no norms
    # train_step: a non-finite loss leaves parameters and state untouched
    before = gpu.get_params()
    assert not np.isfinite(gpu.train_step(X, X))
    np.testing.assert_array_equal(gpu.get_params(), before)


@needs_gpu
def test_views_keep_the_network_alive(rng):
    _, _, gpu, X, _ = make_pair(CASES[1], "float64", rng)
    params = gpu.params
    expected = params.get()
    del gpu
    gc.collect()
    cp.cuda.Device().synchronize()
    np.testing.assert_array_equal(params.get(), expected)


@needs_gpu
def test_optimizer_state_round_trips(rng):
    _, _, gpu, X, _ = make_pair(CASES[1], "float32", rng)
    gpu.set_optimizer("adam", 1e-3)
    gpu.train_step(X, X)
    m, vv = gpu.get_optimizer_state(0), gpu.get_optimizer_state(1)
    np.testing.assert_array_equal(gpu.optimizer_state(0).get(), m)
    gpu.set_optimizer_state(1, np.zeros_like(vv))
    np.testing.assert_array_equal(gpu.optimizer_state(1).get(), 0)
    gpu.set_params(np.ones(gpu.n_params, dtype=np.float32))
    np.testing.assert_array_equal(gpu.params.get(), 1)


# ------------------------------------------------------------ estimators
@pytest.fixture(scope="module")
def split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0)


@needs_gpu
def test_estimator_cpu_and_cuda_agree_with_the_same_seed(digits):
    X, _ = digits
    kw = dict(noise="gaussian", noise_level=0.2, sparsity_target=0.1, sparsity_weight=1.0,
              epochs=4, dtype="float64", random_state=7)
    cpu = fusedae.Autoencoder(16, **kw).fit(X)
    gpu = fusedae.Autoencoder(16, device="cuda", **kw).fit(X)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-9)
    for a, b in zip(gpu.coefs_ + gpu.intercepts_, cpu.coefs_ + cpu.intercepts_):
        assert rel_err(a, b) <= 1e-9
    assert rel_err(gpu.predict(X), cpu.predict(X)) <= 1e-9
    assert gpu.score(X) == pytest.approx(cpu.score(X), rel=1e-9)


@needs_gpu
def test_cupy_in_cupy_out_numpy_in_numpy_out(digits, monkeypatch):
    X, y = digits
    Xd = cp.asarray(X, dtype=cp.float32)
    seen = []
    real = CudaNetwork.fit_epoch

    def spy(self, X, Y=None, **kw):
        seen.append(X.data.ptr if isinstance(X, cp.ndarray) else None)
        return real(self, X, Y, **kw)

    monkeypatch.setattr(CudaNetwork, "fit_epoch", spy)
    ae = fusedae.Autoencoder(12, epochs=2, device="cuda", random_state=0).fit(Xd)
    assert seen == [Xd.data.ptr] * 2  # the CuPy data were trained on in place
    seen.clear()
    fusedae.Autoencoder(12, epochs=2, device="cuda", random_state=0).fit(X)
    assert len(seen) == 2 and seen[0] is not None and seen[0] == seen[1]  # copied once
    for method in ("transform", "predict"):
        out = getattr(ae, method)(Xd)
        assert isinstance(out, cp.ndarray) and out.dtype == cp.float32
        back = getattr(ae, method)(X)
        assert type(back) is np.ndarray
        np.testing.assert_allclose(out.get(), back, rtol=1e-6)
    code = ae.transform(Xd)
    assert isinstance(ae.inverse_transform(code), cp.ndarray)
    assert type(ae.inverse_transform(code.get())) is np.ndarray
    assert ae.score(Xd) == pytest.approx(ae.score(X), rel=1e-6)
    loss, gW, gb = ae.loss_and_gradient(Xd)
    assert isinstance(gW[0], cp.ndarray) and type(ae.loss_and_gradient(X)[1][0]) is np.ndarray
    assert type(ae.mean_activation_) is np.ndarray
    assert type(ae.coefs_[0]) is np.ndarray and not ae.coefs_[0].flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        ae.coefs_[0][0, 0] = 1.0

    clf = fusedae.Classifier(16, epochs=3, device="cuda", random_state=0)
    clf.fit(Xd, cp.asarray(y))
    P = clf.predict_proba(Xd)
    assert isinstance(P, cp.ndarray) and isinstance(clf.predict_log_proba(Xd), cp.ndarray)
    pred = clf.predict(Xd)
    assert isinstance(pred, cp.ndarray)
    np.testing.assert_array_equal(pred.get(), clf.predict(X))
    assert clf.score(Xd, cp.asarray(y)) == clf.score(X, y)
    labels = np.array(list("abcdefghij"))[y]
    named = fusedae.Classifier(16, epochs=1, device="cuda", random_state=0).fit(Xd, labels)
    assert type(named.predict(Xd)) is np.ndarray  # strings: CuPy cannot hold them

    gen = fusedae.Generator(16, epochs=3, device="cuda", random_state=0).fit(Xd, y)
    G = gen.generate(cp.asarray(np.arange(10)))
    assert isinstance(G, cp.ndarray)
    np.testing.assert_allclose(G.get(), gen.generate(np.arange(10)), rtol=1e-6)
    assert type(gen.generate(np.arange(10))) is np.ndarray
    assert gen.score(Xd, y) == pytest.approx(gen.score(X, y), rel=1e-6)


@needs_gpu
def test_bad_cupy_data_are_refused_by_the_estimators(digits):
    X, _ = digits
    ae = fusedae.Autoencoder(8, epochs=1, device="cuda", random_state=0).fit(X)
    before = ae.coefs_[0].copy()
    bad = cp.asarray(X)
    bad[0, 0] = cp.nan
    with pytest.raises(ValueError, match="^X: .*NaN"):
        ae.fit(bad)
    bad[0, 0] = cp.inf
    with pytest.raises(ValueError, match="^X: .*infinity"):
        ae.transform(bad)
    with pytest.raises(ValueError, match="^X: expected 64 features"):
        ae.predict(cp.asarray(X[:, :63]))
    with pytest.raises(ValueError, match="^X: expected a 2-D array"):
        ae.predict(cp.asarray(X[0]))
    with pytest.raises(ValueError, match="complex"):
        ae.predict(cp.asarray(X) + 1j)
    np.testing.assert_array_equal(ae.coefs_[0], before)
    # Another dtype or order is converted on the GPU, as NumPy input is on the CPU.
    np.testing.assert_allclose(ae.predict(cp.asfortranarray(cp.asarray(X))).get(),
                               ae.predict(X), rtol=1e-6)


# The CPU tests' quality bars (tests/test_autoencoder.py, test_classifier.py,
# test_generator.py), on the GPU.
@needs_gpu
def test_sparsity_reaches_its_target_on_cuda(split):
    X = cp.asarray(split[0])
    ae = fusedae.SparseAutoencoder(25, sparsity_target=0.05, sparsity_weight=3.0, epochs=100,
                                   learning_rate=3e-3, random_state=0, device="cuda").fit(X)
    assert np.mean(np.abs(ae.mean_activation_ - 0.05)) <= 0.02


@needs_gpu
def test_denoising_autoencoder_cleans_held_out_digits_on_cuda(split):
    X, X_test = split[0], split[1]
    dae = fusedae.DenoisingAutoencoder(64, noise="gaussian", noise_level=0.3, epochs=100,
                                       learning_rate=3e-3, random_state=0, device="cuda")
    dae.fit(X)
    noisy = X_test + 0.3 * np.random.default_rng(1).standard_normal(X_test.shape)
    ratio = np.sum((dae.predict(noisy) - X_test) ** 2) / np.sum((noisy - X_test) ** 2)
    assert ratio <= 0.5


@needs_gpu
@pytest.mark.parametrize("optimizer,dtype,kw", [
    ("lbfgs", "float64", dict(epochs=500)),
    ("adam", "float32", dict(epochs=300, learning_rate=3e-3, batch_size=32)),
])
def test_linear_autoencoder_spans_the_pca_subspace_on_cuda(split, optimizer, dtype, kw):
    X = split[0]
    ae = fusedae.Autoencoder(8, activation="identity", output_activation="identity",
                             optimizer=optimizer, dtype=dtype, random_state=0, device="cuda",
                             **kw).fit(X)
    pca = PCA(8).fit(X)
    pca_err = 0.5 * np.sum((pca.inverse_transform(pca.transform(X)) - X) ** 2) / len(X)
    cosines = np.cos(subspace_angles(ae.coefs_[1].astype(np.float64).T, pca.components_.T))
    assert cosines.min() >= 0.99
    assert ae.reconstruction_error(X) <= 1.01 * pca_err


@pytest.fixture(scope="module")
def labelled():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.3, stratify=y, random_state=0)


@needs_gpu
@pytest.mark.parametrize("kw", [
    dict(),
    dict(activation="sigmoid", learning_rate=3e-3),
    dict(optimizer="lbfgs", epochs=200, weight_decay=1e-3, dtype="float64"),
])
def test_digits_test_accuracy_on_cuda(labelled, kw):
    X_train, X_test, y_train, y_test = labelled
    clf = fusedae.Classifier(random_state=0, device="cuda", **kw)
    clf.fit(cp.asarray(X_train), y_train)
    assert clf.score(X_test, y_test) >= 0.95
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


@needs_gpu
def test_early_stopping_on_cuda_splits_and_scores_on_the_gpu(labelled):
    X_train, X_test, y_train, y_test = labelled
    clf = fusedae.Classifier(32, epochs=40, early_stopping=True, n_iter_no_change=5,
                             random_state=0, device="cuda").fit(cp.asarray(X_train), y_train)
    cpu = fusedae.Classifier(32, epochs=40, early_stopping=True, n_iter_no_change=5,
                             random_state=0).fit(X_train, y_train)
    assert len(clf.validation_scores_) == clf.n_iter_ > 0
    assert all(isinstance(s, float) for s in clf.validation_scores_)
    np.testing.assert_allclose(clf.validation_scores_[:5], cpu.validation_scores_[:5],
                               rtol=1e-3)
    assert clf.score(X_test, y_test) >= 0.9


@needs_gpu
def test_each_label_generates_nearest_its_class_mean_on_cuda(digits):
    X, y = digits
    means = np.stack([X[y == k].mean(axis=0) for k in range(10)])
    gen = fusedae.Generator(random_state=0, device="cuda").fit(X, y)
    G = gen.generate(np.arange(10))
    d = ((G[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_array_equal(d.argmin(axis=1), np.arange(10))
    spread = np.sqrt(((means[:, None] - means[None]) ** 2).sum(-1))
    assert np.sqrt(np.diag(d)).max() < 0.25 * spread[spread > 0].min()


@needs_gpu
def test_divergence_on_cuda_is_named_like_on_the_cpu():
    X = np.full((16, 4), 1e3)

    def make(epochs, device):
        return fusedae.Autoencoder(3, activation="identity", output_activation="identity",
                                   optimizer="sgd", learning_rate=1e30, batch_size=16,
                                   epochs=epochs, random_state=7, device=device)

    one = make(1, "cuda").fit(X)
    with pytest.raises(fusedae.TrainingDivergedError) as info:
        make(2, "cuda").fit(X)
    with pytest.raises(fusedae.TrainingDivergedError) as cpu_info:
        make(2, "cpu").fit(X)
    assert (info.value.epoch, info.value.step) == (cpu_info.value.epoch,
                                                   cpu_info.value.step) == (1, 0)
    assert np.isfinite(one.coefs_[0]).all()


# ------------------------------------------------------- files, pickles
def _on_gpu(model):
    """Whether a fitted model's engine object is the CUDA one."""
    engine_model = getattr(model, "_net", None) or model._model
    return isinstance(engine_model, (CudaNetwork, _cuda.CudaVAE, _cuda.CudaGAN))


@needs_gpu
@pytest.mark.parametrize("name", ALL_ESTIMATORS)
def test_saved_on_cuda_loads_on_the_cpu_with_the_same_outputs(digits, tmp_path, name):
    X, y = digits
    model = _estimator(name, device="cuda")
    model.set_params(epochs=3)
    model.fit(*_fit_args(name, X, y))
    path = tmp_path / "m.fae"
    model.save(path)

    def outputs(m):
        return _outputs(name, m, X, y)

    on_cpu = fusedae.load(path, device="cpu")
    assert on_cpu.device == "cpu" and not _on_gpu(on_cpu)
    for a, b in zip(outputs(on_cpu), outputs(model)):
        assert rel_err(a, b) <= TOL["float32"]
    again = fusedae.load(path)  # its own device: the same outputs exactly
    assert again.device == "cuda" and _on_gpu(again)
    for a, b in zip(outputs(again), outputs(model)):
        np.testing.assert_array_equal(a, b)
    to_gpu = fusedae.load(path, device="cuda:0")
    assert to_gpu.device == "cuda:0"
    for a, b in zip(outputs(to_gpu), outputs(model)):
        np.testing.assert_array_equal(a, b)
    # A CPU model moved to the GPU gives its outputs to rounding.
    on_cpu.save(path)
    moved = fusedae.load(path, device="cuda")
    for a, b in zip(outputs(moved), outputs(on_cpu)):
        assert rel_err(a, b) <= TOL["float32"]


@needs_gpu
def test_checkpoint_and_resume_on_cuda(digits, tmp_path):
    from fusedae.callbacks import Checkpoint
    X, _ = digits
    kw = dict(epochs=6, random_state=0, device="cuda", dtype="float64", early_stopping=True)
    whole = fusedae.SparseAutoencoder(12, **kw).fit(X)
    path = tmp_path / "ckpt.fae"
    fusedae.SparseAutoencoder(12, **kw).fit(X, callbacks=[Checkpoint(path, every=3),
                                                          lambda m, logs: logs["epoch"] >= 3])
    resumed = fusedae.load(path)
    assert resumed.n_iter_ == 3 and isinstance(resumed._net, CudaNetwork)
    resumed.resume_fit(cp.asarray(X))
    assert rel_err(resumed.predict(X), whole.predict(X)) <= TOL["float64"]
    np.testing.assert_allclose(resumed.loss_curve_, whole.loss_curve_, rtol=1e-10)


@needs_gpu
def test_pickle_and_partial_fit_on_cuda(digits):
    import pickle
    X, y = digits
    clf = fusedae.Classifier(8, epochs=2, random_state=0, device="cuda").fit(X, y)
    back = pickle.loads(pickle.dumps(clf))
    assert isinstance(back._net, CudaNetwork)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    part = fusedae.Classifier(8, random_state=0, device="cuda")
    part.partial_fit(cp.asarray(X), cp.asarray(y), classes=np.arange(10))
    part.partial_fit(X, y)
    assert part.n_iter_ == 2 and isinstance(part._net, CudaNetwork)


@needs_gpu
def test_lbfgs_on_cuda_matches_the_cpu(digits):
    X, y = digits
    kw = dict(optimizer="lbfgs", epochs=20, dtype="float64", random_state=0)
    cpu = fusedae.Classifier(8, **kw).fit(X, y)
    gpu = fusedae.Classifier(8, device="cuda", **kw).fit(cp.asarray(X), y)
    assert gpu.lbfgs_result_.nit == cpu.lbfgs_result_.nit
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-6)


# ------------------------------------------------- composites: the engine
# (D, hidden, Z, activation, output activation, loss, weight decay, C, B), as
# tests/test_engine_generative.py, plus the benchmark's 784-400-20 shape.
VAE_CASES = [
    (7, (), 3, "relu", "sigmoid", "binary_cross_entropy", 0.0, 0, 5),
    (9, (6,), 2, "tanh", "sigmoid", "binary_cross_entropy", 1e-3, 0, 1),
    (11, (8, 5), 4, "relu", "identity", "squared_error", 0.0, 0, 13),
    (10, (7,), 3, "sigmoid", "sigmoid", "binary_cross_entropy", 1e-2, 3, 9),
    (64, (48,), 8, "leaky_relu", "sigmoid", "binary_cross_entropy", 1e-4, 10, 150),
    (784, (400,), 20, "relu", "sigmoid", "binary_cross_entropy", 0.0, 0, 128),
]
VAE_IDS = [f"D{c[0]}-h{'x'.join(map(str, c[1])) or 'none'}-Z{c[2]}-{c[3]}-{c[5][:3]}"
           f"-wd{c[6]}-C{c[7]}-B{c[8]}" for c in VAE_CASES]
# (Z, D, g_hidden, d_hidden, g_act, g_out, d_act, weight decay, B)
GAN_CASES = [
    (3, 5, (), (), "relu", "identity", "leaky_relu", 0.0, 4),
    (4, 6, (7,), (5,), "relu", "sigmoid", "leaky_relu", 1e-3, 9),
    (2, 3, (6, 4), (5, 3), "tanh", "tanh", "sigmoid", 0.0, 1),
    (16, 64, (96,), (80,), "leaky_relu", "sigmoid", "leaky_relu", 1e-4, 160),
]
GAN_IDS = [f"Z{c[0]}-D{c[1]}-g{'x'.join(map(str, c[2])) or 'none'}"
           f"-d{'x'.join(map(str, c[3])) or 'none'}-B{c[8]}" for c in GAN_CASES]


def _same_start(cpu_nets, gpu_nets, dtype, rng):
    """Both models' networks from the same init (bit for bit), then the same
    nonzero biases and perturbations."""
    for c, g in zip(cpu_nets, gpu_nets):
        np.testing.assert_array_equal(g.get_params(), c.params)
        c.params[:] += rng.uniform(-0.1, 0.1, c.n_params).astype(dtype)
        g.params.set(np.ascontiguousarray(c.params))


def vae_pair(case, dtype, rng, seed=11):
    """(CPU engine VAE, CUDA VAE, X, Y) from init_params(seed)."""
    D, hidden, Z, act, out, loss, wd, C, B = case
    args = (D, Z, list(hidden), act, out, loss, dtype, wd, C)
    cpu, gpu = engine.VAE(*args), _cuda.CudaVAE(*args, device="cuda")
    for m in (cpu, gpu):
        m.init_params(seed)
    _same_start((cpu.encoder, cpu.decoder), (gpu.encoder, gpu.decoder), dtype, rng)
    X = rng.uniform(0, 1, (B, D)).astype(dtype)
    Y = np.eye(C, dtype=dtype)[rng.integers(0, C, B)] if C else None
    return cpu, gpu, X, Y


def gan_pair(case, dtype, rng, minimax=False, seed=4):
    """(CPU engine GAN, CUDA GAN, B) from init_params(seed)."""
    Z, D, gh, dh, ga, go, da, wd, B = case
    args = (Z, D, list(gh), list(dh), ga, go, da, dtype, wd, minimax)
    cpu, gpu = engine.GAN(*args), _cuda.CudaGAN(*args, device="cuda")
    for m in (cpu, gpu):
        m.init_params(seed)
    _same_start((cpu.generator, cpu.discriminator), (gpu.generator, gpu.discriminator), dtype,
                rng)
    return cpu, gpu, B


def _dev(a):
    return None if a is None else cp.asarray(a)


def _close(got, want, tol, what):
    assert abs(got - want) <= tol * max(abs(want), 1e-300), (what, got, want)


def _nets(model):
    if isinstance(model, (_cuda.CudaGAN, engine.GAN)):
        return model.generator, model.discriminator
    return model.encoder, model.decoder


def _assert_params_close(cpu, gpu, tol):
    for c, g in zip(_nets(cpu), _nets(gpu)):
        assert rel_err(g.get_params(), c.params) <= tol


def _assert_counters_equal(cpu, gpu):
    for counter in ("seed", "latent_steps", "epochs"):
        assert getattr(gpu, counter) == getattr(cpu, counter), counter
    for c, g in zip(_nets(cpu), _nets(gpu)):
        assert g.optimizer_steps == c.optimizer_steps


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_composites_init_like_the_cpu(dtype):
    # Encoder / generator from Philox(seed), decoder / discriminator from
    # Philox(seed + 1), bit for bit; the counters reset.
    for seed in (0, 5, 2**40 + 3):
        cpu = engine.VAE(10, 3, [7], "tanh", "sigmoid", "binary_cross_entropy", dtype, 0.0, 2)
        gpu = _cuda.CudaVAE(10, 3, [7], "tanh", "sigmoid", "binary_cross_entropy", dtype, 0.0, 2,
                            device="cuda")
        gpu.latent_steps, gpu.epochs = 4, 2
        for m in (cpu, gpu):
            m.init_params(seed)
        for c, g in zip(_nets(cpu), _nets(gpu)):
            np.testing.assert_array_equal(g.params.get(), c.params)
            assert g.sizes == c.sizes and g.dtype == dtype and g.isa.startswith("cuda:")
        _assert_counters_equal(cpu, gpu)
        cpu_g = engine.GAN(3, 5, [4], [6], dtype=dtype)
        gpu_g = _cuda.CudaGAN(3, 5, [4], [6], dtype=dtype, device="cuda")
        for m in (cpu_g, gpu_g):
            m.init_params(seed)
        for c, g in zip(_nets(cpu_g), _nets(gpu_g)):
            np.testing.assert_array_equal(g.params.get(), c.params)
        _assert_counters_equal(cpu_g, gpu_g)
    assert gpu.dtype == dtype and gpu.device_id == 0


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", VAE_CASES, ids=VAE_IDS)
def test_vae_loss_and_gradient_matches_cpu(case, dtype, rng):
    # The reparameterisation at a given ε, the KL and its gradient, the
    # decoder's input gradient, both networks' gradients with λW.
    cpu, gpu, X, Y = vae_pair(case, dtype, rng)
    eps = rng.standard_normal((len(X), case[2])).astype(dtype)
    want = cpu.loss_and_gradient(X, Y, eps)
    for inputs in ((X, Y, eps), (cp.asarray(X), _dev(Y), cp.asarray(eps)),
                   (cp.asarray(X), Y, eps)):
        got = gpu.loss_and_gradient(*inputs)
        assert len(got) == 4 and all(isinstance(v, float) for v in got)
        for name, g, w in zip(("total", "recon", "kl", "decay"), got, want):
            assert abs(g - w) <= TOL[dtype] * max(abs(want[0]), 1e-300), name
        for c, g in zip(_nets(cpu), _nets(gpu)):
            assert rel_err(g.grads.get(), c.grads) <= TOL[dtype]
    _assert_counters_equal(cpu, gpu)  # nothing drawn, nothing applied
    assert gpu.latent_steps == 0 and gpu.encoder.optimizer_steps == 0


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [VAE_CASES[i] for i in (1, 3, 4, 5)],
                         ids=[VAE_IDS[i] for i in (1, 3, 4, 5)])
def test_vae_steps_and_epochs_match_cpu(case, dtype, rng):
    # ε from the same stream (kLatent, latent_steps) and the same shuffles:
    # three train steps (NumPy and CuPy input), then two epochs (shuffled,
    # then not; a short last minibatch), losses, parameters and counters.
    cpu, gpu, X, Y = vae_pair(case, dtype, rng)
    scale = min(1.0, 64 / case[0])  # summed over features: smaller steps for wide data
    opt = ("adam", 1e-2 * scale) if dtype == "float64" else ("sgd", 0.05 * scale)
    for m in (cpu, gpu):
        m.set_optimizer(*opt)
    Xd, Yd = cp.asarray(X), _dev(Y)
    for step in range(3):
        want = cpu.train_step(X, Y)
        got = gpu.train_step(Xd, Yd) if step % 2 else gpu.train_step(X, Y)
        for name, g, w in zip(("total", "recon", "kl", "decay"), got, want):
            assert abs(g - w) <= TOL_TRAJECTORY[dtype] * abs(want[0]), (name, step)
        _assert_params_close(cpu, gpu, TOL_TRAJECTORY[dtype])
    batch = max(1, -(-len(X) // 3))
    for shuffle in (True, False):
        (wl, ws, wd) = cpu.fit_epoch(X, Y, batch, shuffle)
        (gl, gs, gd) = gpu.fit_epoch(Xd, Yd, batch_size=batch, shuffle=shuffle)
        assert (gs, gd) == (ws, wd) == (-(-len(X) // batch), False)
        for g, w in zip(gl, wl):
            _close(g, w, TOL_TRAJECTORY[dtype], "epoch mean")
        _assert_params_close(cpu, gpu, TOL_TRAJECTORY[dtype])
    _assert_counters_equal(cpu, gpu)
    assert gpu.latent_steps == 3 + 2 * -(-len(X) // batch) and gpu.epochs == 2
    # Counters moved by hand are followed on both (a resumed fit).
    for m in (cpu, gpu):
        m.latent_steps, m.epochs, m.seed = 40, 7, 12
        m.fit_epoch(X, Y, batch, True)
    _assert_params_close(cpu, gpu, TOL_TRAJECTORY[dtype])
    _assert_counters_equal(cpu, gpu)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["non_saturating", "minimax"])
@pytest.mark.parametrize("case", GAN_CASES, ids=GAN_IDS)
def test_gan_steps_match_cpu(case, loss, dtype, rng):
    # G's loss and gradient through the frozen D, then alternating D and G
    # steps from the same latent streams.
    cpu, gpu, B = gan_pair(case, dtype, rng, minimax=loss == "minimax")
    Z = rng.standard_normal((B, case[0])).astype(dtype)
    d_before, dg_before = gpu.discriminator.get_params(), gpu.discriminator.grads.get()
    want = cpu.generator_loss_and_gradient(Z)
    for z in (Z, cp.asarray(Z)):
        got = gpu.generator_loss_and_gradient(z)
        assert isinstance(got, float)
        _close(got, want, TOL[dtype], "generator loss")
        assert rel_err(gpu.generator.grads.get(), cpu.generator.grads) <= TOL[dtype]
    np.testing.assert_array_equal(gpu.discriminator.get_params(), d_before)  # frozen
    np.testing.assert_array_equal(gpu.discriminator.grads.get(), dg_before)
    assert gpu.latent_steps == 0
    opt = ("adam", 1e-2, 1e-2) if dtype == "float64" else ("sgd", 0.05, 0.1)
    for m in (cpu, gpu):
        m.set_optimizers(*opt)
    real = rng.uniform(0, 1, (B, case[1])).astype(dtype)
    for step in range(2):
        want_d = cpu.discriminator_step(real)
        got_d = gpu.discriminator_step(cp.asarray(real) if step else real)
        _close(got_d, want_d, TOL_TRAJECTORY[dtype], f"D loss {step}")
        want_g = cpu.generator_step(B)
        got_g = gpu.generator_step(B)
        _close(got_g, want_g, TOL_TRAJECTORY[dtype], f"G loss {step}")
        _assert_params_close(cpu, gpu, TOL_TRAJECTORY[dtype])
    _assert_counters_equal(cpu, gpu)
    assert gpu.latent_steps == 4


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["non_saturating", "minimax"])
def test_gan_fit_epoch_matches_cpu(loss, dtype, rng):
    # The schedule: D steps on every minibatch (the last one short), a G step
    # on every d_steps-th; D only (pre-training); G only; shuffled or not.
    cpu, gpu, _ = gan_pair(GAN_CASES[1], dtype, rng, minimax=loss == "minimax")
    opt = ("adam", 1e-3, 2e-3) if dtype == "float64" else ("sgd", 0.05, 0.1)
    for m in (cpu, gpu):
        m.set_optimizers(*opt)
    X = rng.uniform(0, 1, (50, GAN_CASES[1][1])).astype(dtype)
    Xd = cp.asarray(X)
    for schedule in [(16, 2, True, True, True), (16, 1, True, False, True),
                     (12, 1, False, True, True), (16, 3, True, True, False)]:
        bs, d_steps, train_d, train_g, shuffle = schedule
        wd, wg, wdiv = cpu.fit_epoch(X, bs, d_steps, train_d, train_g, shuffle)
        gd, gg, gdiv = gpu.fit_epoch(Xd, bs, d_steps, train_d, train_g, shuffle)
        assert (len(gd), len(gg), gdiv) == (len(wd), len(wg), wdiv), schedule
        assert not gdiv and len(gd) == (4 if train_d else 0)
        for g, w in zip(gd + gg, wd + wg):
            _close(g, w, TOL_TRAJECTORY[dtype], schedule)
        _assert_params_close(cpu, gpu, TOL_TRAJECTORY[dtype])
        _assert_counters_equal(cpu, gpu)
    assert gpu.epochs == 4


class _ModelRecorder:
    """Stands in for an engine model and records its pointer-level calls."""

    def __init__(self, model):
        self._model = model
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self._model, name)
        if name in ("train_step", "loss_and_gradient", "fit_epoch", "discriminator_step",
                    "generator_step", "generator_loss_and_gradient"):
            def record(*args):
                self.calls.append((name, args))
                return attr(*args)
            return record
        return attr


@needs_gpu
def test_composites_use_cupy_in_place_on_the_current_stream(rng):
    cpu, gpu, X, Y = vae_pair(VAE_CASES[3], "float32", rng)
    rec = gpu._model = _ModelRecorder(gpu._model)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        Xd, Yd = cp.asarray(X), cp.asarray(Y)
        eps = cp.asarray(rng.standard_normal((len(X), 3)).astype(np.float32))
        gpu.train_step(Xd, Yd)
        gpu.loss_and_gradient(Xd, Yd, eps)
        gpu.fit_epoch(Xd, Yd, batch_size=4)
        codes = gpu.encoder.forward(cp.hstack([Xd, Yd]))
    assert [c[0] for c in rec.calls] == ["train_step", "loss_and_gradient", "fit_epoch"]
    assert rec.calls[0][1] == (Xd.data.ptr, Yd.data.ptr, len(X), stream.ptr)
    assert rec.calls[1][1] == (Xd.data.ptr, Yd.data.ptr, eps.data.ptr, len(X), stream.ptr)
    assert rec.calls[2][1][:3] == (Xd.data.ptr, Yd.data.ptr, len(X))
    assert all(c[1][-1] == stream.ptr for c in rec.calls)
    assert isinstance(codes, cp.ndarray) and codes.shape == (len(X), 6)
    # NumPy input is copied for the call: device pointers, not the host ones.
    gpu.train_step(X, Y)
    assert rec.calls[-1][1][0] not in (0, X.ctypes.data) and rec.calls[-1][1][-1] == 0
    # The networks' views are the model's own buffers.
    eng = rec._model
    assert gpu.encoder.params.data.ptr == eng.encoder.params_ptr
    assert gpu.decoder.grads.data.ptr == eng.decoder.grads_ptr
    gpu.decoder.params[:] = 0  # writing a view changes the model
    np.testing.assert_array_equal(gpu.decoder.get_params(), 0)

    _, gan, B = gan_pair(GAN_CASES[1], "float32", rng)
    rec = gan._model = _ModelRecorder(gan._model)
    with stream:
        Rd = cp.asarray(rng.uniform(0, 1, (B, 6)).astype(np.float32))
        Zd = cp.asarray(rng.standard_normal((B, 4)).astype(np.float32))
        gan.discriminator_step(Rd)
        gan.generator_step(B)
        gan.generator_loss_and_gradient(Zd)
        gan.fit_epoch(Rd, batch_size=4, d_steps=2)
    assert rec.calls == [("discriminator_step", (Rd.data.ptr, B, stream.ptr)),
                         ("generator_step", (B, stream.ptr)),
                         ("generator_loss_and_gradient", (Zd.data.ptr, B, stream.ptr)),
                         ("fit_epoch", (Rd.data.ptr, B, 4, 2, True, True, True, stream.ptr))]


@needs_gpu
@pytest.mark.parametrize("where", ["X", "Y", "eps"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_vae_refuses_nan_and_changes_nothing(rng, where, bad):
    cpu, gpu, X, Y = vae_pair(VAE_CASES[3], "float32", rng)
    eps = rng.standard_normal((len(X), 3)).astype(np.float32)
    {"X": X, "Y": Y, "eps": eps}[where][0, 1] = bad
    for m in (cpu, gpu):
        m.set_optimizer("adam", 1e-3)
    before = [n.get_params() for n in _nets(gpu)]
    msg = rf"^{where}: contains NaN or infinity"
    for x, y, e in ((X, Y, eps), (cp.asarray(X), cp.asarray(Y), cp.asarray(eps))):
        ops = [lambda: gpu.loss_and_gradient(x, y, e)]
        if where != "eps":
            ops += [lambda: gpu.train_step(x, y), lambda: gpu.fit_epoch(x, y, batch_size=4)]
        for op in ops:
            with pytest.raises(ValueError, match=msg):
                op()
    with pytest.raises(ValueError, match=msg):  # the CPU engine's words
        cpu.loss_and_gradient(X, Y, eps)
    for b, n in zip(before, _nets(gpu)):
        np.testing.assert_array_equal(n.get_params(), b)
        assert n.optimizer_steps == 0
    assert (gpu.latent_steps, gpu.epochs) == (0, 0)


@needs_gpu
@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_gan_refuses_nan_and_changes_nothing(rng, bad):
    _, gan, B = gan_pair(GAN_CASES[1], "float64", rng)
    gan.set_optimizers("sgd", 0.1, 0.1)
    before = [n.get_params() for n in _nets(gan)]
    X = rng.uniform(0, 1, (B, 6))
    Z = rng.standard_normal((B, 4))
    X[2, 3] = Z[1, 0] = bad
    for x, z in ((X, Z), (cp.asarray(X), cp.asarray(Z))):
        with pytest.raises(ValueError, match="^X: contains NaN or infinity"):
            gan.discriminator_step(x)
        with pytest.raises(ValueError, match="^X: contains NaN or infinity"):
            gan.fit_epoch(x, batch_size=4)
        with pytest.raises(ValueError, match="^Z: contains NaN or infinity"):
            gan.generator_loss_and_gradient(z)
    for b, n in zip(before, _nets(gan)):
        np.testing.assert_array_equal(n.get_params(), b)
        assert n.optimizer_steps == 0
    assert (gan.latent_steps, gan.epochs) == (0, 0)


@needs_gpu
def test_composites_refuse_bad_arrays_like_the_cpu_engine(rng):
    cpu, gpu, X, Y = vae_pair(VAE_CASES[3], "float32", rng)
    Xd, Yd = cp.asarray(X), cp.asarray(Y)
    eps = cp.zeros((len(X), 3), cp.float32)
    for model, (exc, msg, call) in [(m, c) for m in (cpu, gpu) for c in [
        (TypeError, "X: expected dtype float32, got float64",
         lambda m: m.train_step(X.astype(np.float64), Y)),
        (ValueError, "Y: required by a conditional VAE", lambda m: m.train_step(X)),
        (ValueError, "Y: expected 3 columns, got 2", lambda m: m.train_step(X, Y[:, :2].copy())),
        (ValueError, "X: expected 10 columns, got 9", lambda m: m.train_step(X[:, :9].copy(), Y)),
        (ValueError, "Y: expected as many rows as X", lambda m: m.train_step(X, Y[:-1])),
        (ValueError, "eps: expected 3 columns, got 2",
         lambda m: m.loss_and_gradient(X, Y, np.zeros((len(X), 2), np.float32))),
        (ValueError, "batch_size: expected an integer >= 1", lambda m: m.fit_epoch(X, Y, 0)),
    ]]:
        with pytest.raises(exc, match="^" + msg):
            call(model)
    with pytest.raises(ValueError, match="^X: expected a C-contiguous array"):
        gpu.train_step(cp.asfortranarray(Xd), Yd)
    with pytest.raises(ValueError, match="^eps: expected as many rows as X"):
        gpu.loss_and_gradient(Xd, Yd, eps[:-1])
    plain = _cuda.CudaVAE(4, 2, [3], device="cuda")
    with pytest.raises(ValueError, match=r"^Y: this VAE has no conditions \(n_conditions = 0\)"):
        plain.train_step(cp.zeros((2, 4), cp.float32), cp.zeros((2, 1), cp.float32))
    g_cpu, g_gpu = engine.GAN(2, 3, [4], [4]), _cuda.CudaGAN(2, 3, [4], [4], device="cuda")
    for g in (g_cpu, g_gpu):
        g.init_params(0)
        with pytest.raises(ValueError, match="^X: expected 3 columns, got 2"):
            g.discriminator_step(np.zeros((4, 2), np.float32))
        with pytest.raises(ValueError, match="^batch_size: expected between 1 and 2\\^30-1 rows"):
            g.generator_step(0)
        with pytest.raises(ValueError, match="^d_steps: expected an integer >= 1"):
            g.fit_epoch(np.zeros((4, 3), np.float32), 2, 0)
        with pytest.raises(ValueError, match="^train_d, train_g: nothing to train"):
            g.fit_epoch(np.zeros((4, 3), np.float32), 2, 1, False, False)
        with pytest.raises(ValueError, match="^Z: expected 2 columns, got 3"):
            g.generator_loss_and_gradient(np.zeros((4, 3), np.float32))


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_vae_divergence_is_the_cpus(dtype, rng):
    # The first step blows the weights up (finite), the second's loss is not
    # finite: that step is not applied, the epoch reports it, and the
    # counters say what ran (its ε stream was drawn).
    args = (4, 2, [], "identity", "identity", "squared_error", dtype, 0.0, 0)
    cpu, gpu = engine.VAE(*args), _cuda.CudaVAE(*args, device="cuda")
    X = rng.uniform(0, 1, (16, 4)).astype(dtype)
    for m in (cpu, gpu):
        m.init_params(7)
        m.set_optimizer("sgd", 1e30 if dtype == "float32" else 1e200)
    results = {}
    for name, m in (("cpu", cpu), ("gpu", gpu)):
        first = m.fit_epoch(X, None, 16, True)
        after = [n.get_params() if name == "gpu" else n.params.copy() for n in _nets(m)]
        second = m.fit_epoch(X, None, 16, True)
        end = [n.get_params() if name == "gpu" else n.params.copy() for n in _nets(m)]
        step = m.train_step(X)
        results[name] = (first, second, after, end, step)
    (c1, c2, c_after, c_end, c_step), (g1, g2, g_after, g_end, g_step) = \
        results["cpu"], results["gpu"]
    assert (g1[1], g1[2]) == (c1[1], c1[2]) == (1, False)
    assert (g2[1], g2[2]) == (c2[1], c2[2]) == (0, True)
    assert not np.isfinite(g2[0][0]) and not np.isfinite(c2[0][0])
    assert not np.isfinite(g_step[0]) and not np.isfinite(c_step[0])
    for a, e in zip(g_after, g_end):
        np.testing.assert_array_equal(e, a)  # the diverging steps were not applied
        assert np.isfinite(e).all()
    for a, b in zip(g_after, c_after):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype])  # huge values: no norms
    _assert_counters_equal(cpu, gpu)
    assert gpu.latent_steps == 3 and gpu.encoder.optimizer_steps == 1


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gan_divergence_is_the_cpus(dtype, rng):
    args = (2, 4, [3], [5], "relu", "identity", "leaky_relu", dtype)
    cpu, gpu = engine.GAN(*args), _cuda.CudaGAN(*args, device="cuda")
    X = rng.uniform(0, 1, (16, 4)).astype(dtype)
    huge = 1e30 if dtype == "float32" else 1e200
    for m in (cpu, gpu):
        m.init_params(3)
        m.set_optimizers("sgd", huge, huge)
    got = {}
    for name, m in (("cpu", cpu), ("gpu", gpu)):
        d, g, diverged = m.fit_epoch(X, 8, 1, True, True, True)
        got[name] = (d, g, diverged, [n.get_params() if name == "gpu" else n.params.copy()
                                      for n in _nets(m)])
    (cd, cg, cdiv, cparams), (gd, gg, gdiv, gparams) = got["cpu"], got["gpu"]
    assert gdiv == cdiv is True
    assert (len(gd), len(gg)) == (len(cd), len(cg))
    # The same step diverged (the one non-finite loss, the last one run).
    assert list(np.isfinite(gd)) == list(np.isfinite(cd))
    assert list(np.isfinite(gg)) == list(np.isfinite(cg))
    assert sum(not np.isfinite(v) for v in gd + gg) == 1
    for a, b in zip(gparams, cparams):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=TOL[dtype])
    _assert_counters_equal(cpu, gpu)


# ------------------------------------------- composites: the estimators
def _composite(name, **kw):
    if name == "GAN":
        return fusedae.GAN(4, (32,), (32,), **kw)
    return getattr(fusedae, name)(4, (32,), **kw)


@needs_gpu
@pytest.mark.parametrize("name", COMPOSITES)
def test_composite_estimators_cpu_and_cuda_agree_with_the_same_seed(digits, name):
    X, y = digits
    kw = dict(epochs=3, batch_size=128, dtype="float64", random_state=7)
    args = _fit_args(name, X, y)
    cpu = _composite(name, **kw).fit(*args)
    gpu = _composite(name, device="cuda", **kw).fit(*args)
    assert isinstance(gpu._model, (_cuda.CudaVAE, _cuda.CudaGAN))
    if name == "GAN":
        for key in ("d_loss", "g_loss"):
            np.testing.assert_allclose(gpu.history_[key], cpu.history_[key], rtol=1e-9)
        assert gpu.epochs_ == cpu.epochs_
        pairs = [(gpu.generator_coefs_, cpu.generator_coefs_),
                 (gpu.discriminator_coefs_, cpu.discriminator_coefs_)]
    else:
        for curve in ("loss_curve_", "recon_curve_", "kl_curve_"):
            np.testing.assert_allclose(getattr(gpu, curve), getattr(cpu, curve), rtol=1e-9)
        pairs = [(gpu.encoder_coefs_, cpu.encoder_coefs_),
                 (gpu.decoder_coefs_, cpu.decoder_coefs_)]
        assert gpu.score(*args) == pytest.approx(cpu.score(*args), rel=1e-9)
    for (gW, gb), (cW, cb) in pairs:
        for a, b in zip(gW + gb, cW + cb):
            assert rel_err(a, b) <= 1e-9
            assert type(a) is np.ndarray and not a.flags.writeable
    for a, b in zip(_outputs(name, gpu, X, y), _outputs(name, cpu, X, y)):
        assert rel_err(a, b) <= 1e-9


@needs_gpu
def test_composite_estimators_cupy_in_cupy_out(digits, monkeypatch):
    X, y = digits
    Xd = cp.asarray(X, dtype=cp.float32)
    seen = []
    real = _cuda.CudaVAE.fit_epoch

    def spy(self, X, Y=None, **kw):
        seen.append(X.data.ptr if isinstance(X, cp.ndarray) else None)
        return real(self, X, Y, **kw)

    monkeypatch.setattr(_cuda.CudaVAE, "fit_epoch", spy)
    vae = fusedae.VAE(4, (32,), epochs=2, device="cuda", random_state=0).fit(Xd)
    assert seen == [Xd.data.ptr] * 2  # trained on the CuPy data in place
    seen.clear()
    fusedae.VAE(4, (32,), epochs=2, device="cuda", random_state=0).fit(X)
    assert len(seen) == 2 and seen[0] is not None and seen[0] == seen[1]  # copied once
    mu = vae.transform(Xd)
    assert isinstance(mu, cp.ndarray) and mu.dtype == cp.float32
    assert type(vae.transform(X)) is np.ndarray
    np.testing.assert_allclose(mu.get(), vae.transform(X), rtol=1e-6)
    assert all(isinstance(a, cp.ndarray) for a in vae.encode(Xd))
    assert isinstance(vae.generate(mu), cp.ndarray) and type(vae.generate(mu.get())) is np.ndarray
    assert type(vae.sample(3)) is np.ndarray
    path = vae.interpolate(Xd[0], Xd[1], steps=4)
    assert isinstance(path, cp.ndarray) and path.shape == (4, 64)
    np.testing.assert_allclose(path.get(), vae.interpolate(X[0], X[1], steps=4), rtol=1e-5)
    assert vae.score(Xd) == pytest.approx(vae.score(X), rel=1e-6)
    eps = np.zeros((5, 4), np.float32)
    _, (gW, gb), _ = vae.loss_and_gradient(Xd[:5], cp.asarray(eps))
    assert isinstance(gW[0], cp.ndarray) and isinstance(gb[0], cp.ndarray)
    assert type(vae.loss_and_gradient(X[:5], eps)[1][0][0]) is np.ndarray
    with pytest.raises(ValueError, match="read-only"):
        vae.encoder_coefs_[0][0][0, 0] = 1.0

    cvae = fusedae.ConditionalVAE(4, (32,), epochs=2, device="cuda", random_state=0)
    cvae.fit(Xd, cp.asarray(y))
    assert isinstance(cvae.transform(Xd, y), cp.ndarray)
    assert isinstance(cvae.transform(Xd, cp.asarray(y)), cp.ndarray)
    assert type(cvae.transform(X, y)) is np.ndarray
    assert isinstance(cvae.sample(3, y=cp.asarray([1, 2, 3])), cp.ndarray)
    assert type(cvae.sample(3, y=[1, 2, 3])) is np.ndarray
    np.testing.assert_allclose(cvae.sample(3, y=cp.asarray([1, 2, 3]), random_state=1).get(),
                               cvae.sample(3, y=[1, 2, 3], random_state=1), rtol=1e-6)
    walk = cvae.interpolate(Xd[0], Xd[1], steps=3, y_a=0, y_b=1)
    assert isinstance(walk, cp.ndarray) and walk.shape == (3, 64)
    assert cvae.score(Xd, y) == pytest.approx(cvae.score(X, y), rel=1e-6)

    gan = fusedae.GAN(4, (32,), (32,), epochs=2, device="cuda", random_state=0).fit(Xd)
    Z = gan.latent(5)
    assert type(Z) is np.ndarray and type(gan.sample(3)) is np.ndarray
    G = gan.generate(cp.asarray(Z))
    assert isinstance(G, cp.ndarray)
    np.testing.assert_allclose(G.get(), gan.generate(Z), rtol=1e-6)
    Dx = gan.discriminate(Xd)
    assert isinstance(Dx, cp.ndarray) and Dx.shape == (len(X),)
    _, (gW, _) = gan.generator_loss_and_gradient(cp.asarray(Z))
    assert isinstance(gW[0], cp.ndarray)
    assert type(gan.generator_loss_and_gradient(Z)[1][0][0]) is np.ndarray
    loss, (gW, _) = gan.discriminator_loss_and_gradient(Xd[:4], X[4:8])
    assert isinstance(gW[0], cp.ndarray)
    assert loss == pytest.approx(gan.discriminator_loss_and_gradient(X[:4], X[4:8])[0],
                                 rel=1e-6)


@needs_gpu
def test_composite_estimators_refuse_bad_cupy_data(digits):
    X, _ = digits
    vae = fusedae.VAE(4, (16,), epochs=1, device="cuda", random_state=0).fit(X)
    gan = fusedae.GAN(4, (16,), (16,), epochs=1, device="cuda", random_state=0).fit(X)
    before = vae.encoder_coefs_[0][0].copy()
    bad = cp.asarray(X)
    bad[0, 0] = cp.nan
    for call in (lambda: vae.fit(bad), lambda: vae.transform(bad), lambda: gan.fit(bad),
                 lambda: gan.discriminate(bad)):
        with pytest.raises(ValueError, match="^X: .*NaN"):
            call()
    with pytest.raises(ValueError, match="needs values in"):
        vae.partial_fit(cp.asarray(X) * 2)
    np.testing.assert_array_equal(vae.encoder_coefs_[0][0], before)


@needs_gpu
def test_composite_divergence_on_cuda_is_named_like_on_the_cpu(rng):
    X = rng.uniform(0, 1, (16, 4))
    kw = dict(optimizer="sgd", batch_size=16, epochs=2, random_state=7)
    errors = {}
    for device in ("cpu", "cuda"):
        with pytest.raises(fusedae.TrainingDivergedError) as info:
            fusedae.VAE(2, (), loss="squared_error", output_activation="identity",
                        activation="identity", learning_rate=1e30, device=device, **kw).fit(X)
        errors[device] = (info.value.epoch, info.value.step)
    assert errors["cuda"] == errors["cpu"] == (1, 0)


@needs_gpu
@pytest.mark.parametrize("name", COMPOSITES)
def test_composite_pickle_partial_fit_and_resume_on_cuda(digits, tmp_path, name):
    import pickle

    from fusedae.callbacks import Checkpoint
    X, y = digits
    args = _fit_args(name, X, y)
    model = _composite(name, epochs=2, device="cuda", dtype="float64", random_state=0).fit(*args)
    back = pickle.loads(pickle.dumps(model))
    assert _on_gpu(back)
    for a, b in zip(_outputs(name, back, X, y), _outputs(name, model, X, y)):
        np.testing.assert_array_equal(a, b)
    model.partial_fit(*args)
    back.partial_fit(*args)
    for a, b in zip(_outputs(name, back, X, y), _outputs(name, model, X, y)):
        np.testing.assert_array_equal(a, b)  # the same device: the same bits
    # A checkpoint part way through resumes to the uninterrupted fit.
    kw = dict(epochs=4, device="cuda", dtype="float64", random_state=0)
    whole = _composite(name, **kw).fit(*args)
    path = tmp_path / "ckpt.fae"
    _composite(name, **kw).fit(*args, callbacks=[Checkpoint(path, every=2),
                                                 lambda m, logs: logs["epoch"] >= 2])
    resumed = fusedae.load(path)
    assert resumed.n_iter_ == 2 and _on_gpu(resumed)
    resumed.resume_fit(cp.asarray(X), y if name == "ConditionalVAE" else None)
    for a, b in zip(_outputs(name, resumed, X, y), _outputs(name, whole, X, y)):
        assert rel_err(a, b) <= TOL["float64"]
