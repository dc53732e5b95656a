import numpy as np
import pytest


def rel_err(actual, expected):
    """Norm-wise relative error ‖a − e‖ / ‖e‖ (absolute when e is 0)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    scale = np.linalg.norm(e)
    diff = np.linalg.norm(a - e)
    return diff / scale if scale > 0 else diff


# Stated tolerances for engine-vs-reference comparisons (norm-wise relative,
# per array): float64 to rounding, float32 against a float64 reference run on
# the same float32 inputs.
TOL = {"float64": 1e-10, "float32": 1e-5}
# Parameters after several Adam steps (whole epochs), float32 against the float64
# reference: each step divides by sqrt(v), which magnifies float32 rounding in
# the gradients of parameters whose v is small (1.08e-5 seen in one run over
# 2 epochs; tests/test_engine.py::test_fit_epoch_supervised_softmax_matches_reference).
TOL_TRAJECTORY = {"float64": 1e-10, "float32": 5e-5}


@pytest.fixture
def rng(request):
    # A fresh stream per test, reproducible from the test's name.
    seed = abs(hash(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)


def pytest_configure(config):
    config.addinivalue_line("markers", "long: long-running tests (fuzzing: FUSEDAE_LONG=1)")
