"""The floating-point mode of CPU calls (csrc/core/float_mode.hpp).

float32 work flushes subnormal numbers to zero on every thread of the pool,
and float64 work runs in the caller's (IEEE) mode, workers included; the
caller's own mode is the same after a call as before it. Each product here is
subnormal (1e-20 · 1e-20 = 1e-40 in float32, 1e-160 · 1e-160 = 1e-320 in
float64) and so is their sum over a row, so a flushed product gives exactly 0
and an IEEE one does not.
"""

import numpy as np
import pytest

from fusedae._native import engine

ISAS = engine.supported_isas()
D, N, ROWS = 512, 512, 64   # 2·D·N·ROWS = 33.5 MFLOP: pooled on 2 threads


def identity_layer(dtype, isa, scale):
    net = engine.Network([D, N], ["identity"], "squared_error", dtype, 0.0, 0, 0.1, 0.0,
                         isa=isa)
    net.params[:] = 0
    net.params[net.weight_offset(1):net.weight_offset(1) + D * N] = scale
    return net


def callers_subnormals_work():
    tiny = np.float32(1e-39)
    return tiny * np.float32(1) == tiny and np.float64(1e-310) * 1.0 == np.float64(1e-310)


@pytest.fixture
def threads(request):
    before = engine.get_num_threads()
    engine.set_num_threads(request.param)
    yield request.param
    engine.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2, 3], indirect=True)
@pytest.mark.parametrize("density", [1.0, 0.2], ids=["dense", "mostly-zero"])
@pytest.mark.parametrize("isa", ISAS)
def test_float32_flushes_subnormals_and_float64_keeps_them(isa, density, threads, rng):
    mask = rng.uniform(size=(ROWS, D)) < density
    mask[:, 0] = True   # at least one product per row
    net32 = identity_layer("float32", isa, 1e-20)
    x32 = np.where(mask, 1e-20, 0.0).astype(np.float32)
    out = net32.forward(x32, 0, 1)
    # Every row, whichever thread computed it, is exactly zero.
    assert np.count_nonzero(out) == 0
    assert callers_subnormals_work()

    # Right after a flushing call, the workers are back in the caller's mode.
    net64 = identity_layer("float64", isa, 1e-160)
    x64 = np.where(mask, 1e-160, 0.0)
    out = net64.forward(x64, 0, 1)
    expect = mask.sum(axis=1, keepdims=True) * 1e-320 * np.ones((1, N))
    assert np.all(out > 0)
    np.testing.assert_allclose(out, expect, rtol=1e-2)
    assert callers_subnormals_work()


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("isa", ISAS)
def test_training_calls_restore_the_callers_mode(isa, threads, rng):
    # A step, an epoch and a refused call (the guard's restore on the way out
    # of an exception) leave the caller's subnormals working.
    net = engine.Network([256, 64, 256], ["sigmoid", "sigmoid"], "squared_error", "float32",
                         0.0, 1, 0.1, 3.0, isa=isa)
    net.init_params(0)
    net.set_optimizer("adam", 1e-3)
    X = rng.uniform(0, 1, (128, 256)).astype(np.float32)
    X64 = np.ascontiguousarray(X[:, :64])
    assert np.isfinite(net.train_step(X, X))
    assert callers_subnormals_work()
    net.fit_epoch(X, None, 32, True, "gaussian", 0.1)
    assert callers_subnormals_work()
    with pytest.raises(ValueError):
        net.train_step(X[:, :10], X)
    assert callers_subnormals_work()
    vae = engine.VAE(64, 4, [16], "relu", "sigmoid", "binary_cross_entropy", "float32", 0.0, 0,
                     isa=isa)
    vae.init_params(0)
    vae.train_step(X64, None)
    assert callers_subnormals_work()
    gan = engine.GAN(8, 64, [16], [16], "relu", "sigmoid", "leaky_relu", "float32", 0.0, False,
                     isa=isa)
    gan.init_params(0)
    gan.discriminator_step(X64[:32])
    gan.generator_step(32)
    assert callers_subnormals_work()
