#!/usr/bin/env python
"""Hypothesis fuzzing of fusedae: the compiled engine, the estimators and model files.

    python tests/fuzz_driver.py --target {api,engine,files,all} --cases N --seed S --log PATH

Not a test module (pytest collects ``test_*.py`` only): ``tests/test_fuzz.py``
runs it in a subprocess, so that a crash of the engine (a segfault, an abort)
kills this process and not pytest, and is reported as a failure with the
last case written to the log.

Each target is one ``@given`` property over a *case*: a plain dict of
numbers, strings and lists that says what to build and what to call (arrays
are described by shape, dtype, memory layout and a fill, and built from that
description), so that every case has a short one-line ``repr``. The line is
appended to ``--log`` (and flushed) before the case runs; the log is fsynced
every so often.

engine
    The compiled entry points called directly (``fusedae._engine``): Network,
    VAE and GAN with random (often invalid) arguments, then a random sequence
    of their methods on arrays of every dtype, shape (0 and 1 rows/columns
    included), memory layout (non-contiguous, transposed, Fortran order,
    misaligned, broadcast, read-only) and content (NaN, infinity, huge,
    tiny); also a few absurd sizes (2^31, 2^40, 2^30 x 2^30, negative) that
    must be refused before anything is allocated.
api
    The public estimators with random hyperparameters (valid and invalid) and
    random data: fit, partial_fit, transform, predict, score, sample, ...,
    save and load, one or two epochs.
files
    ``fusedae.load`` on random mutations of valid model files: bit flips,
    truncations, insertions, edited ZIP members, edited metadata JSON, edited
    ``.npy`` headers and values (with the hashes made to match, so that the
    checks behind the hashes are reached too), then the loaded model used.

A case passes when every call returns or raises an expected exception
(ValueError or TypeError, their subclasses such as fusedae.ModelFileError and
scikit-learn's NotFittedError, fusedae.TrainingDivergedError, and
FileNotFoundError where a file is missing). Anything else is a finding:
hypothesis shrinks it, the minimal case is printed and the driver exits 1.
Known findings in code this driver does not own are kept out of the
assertion by KNOWN_FINDINGS below, each named and explained.
"""
import argparse
import gc
import io
import json
import math
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
import zlib

import numpy as np

try:
    import hypothesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - reported by the caller
    sys.stderr.write("fuzz_driver: hypothesis is not installed (pip install hypothesis)\n")
    sys.exit(3)

import fusedae
from fusedae import _native
from fusedae._errors import TrainingDivergedError

engine = _native.engine

NAN, INF = float("nan"), float("inf")
DEFAULT_THREADS = engine.get_num_threads()


# =====================================================================
# What a case may raise
# =====================================================================
EXPECTED = (ValueError, TypeError, TrainingDivergedError)


class Finding(Exception):
    """A call raised something no caller should see (the case's finding)."""


# Known findings in code outside this driver's remit (the estimator modules
# and fusedae._persist, edited elsewhere): each entry is (name, target,
# predicate(call, exc) -> bool, explanation). A matching exception is counted
# as "known" and the case goes on; anything else stays a finding. Remove an
# entry once its fix lands: the case will then pass or fail on its own.
KNOWN_FINDINGS = [
    # The other findings of the first long runs are fixed (docs/reliability.md);
    # this one is narrowed by load()'s attribute checks, kept while fuzzing
    # may still find an attribute they do not cover.
    # fusedae/_persist.py, _check_state(): the fitted state's attributes are
    # loaded with whatever JSON type and array shape the file gives them; only
    # the networks' arrays are checked. An edit that keeps the hashes valid
    # (history_["d_loss"] = 0, loss_curve_ = {}, a classes_ array one entry
    # short of the network's outputs, ...) loads, and the model's next method
    # fails inside with AttributeError / KeyError / IndexError ('int' object
    # has no attribute 'extend'; Classifier.predict: index 2 is out of bounds
    # for axis 0 with size 2). Expected: load() refuses such a file with
    # ModelFileError (check each fitted attribute's type, and classes_
    # against the output width, as it checks the networks).
    ("persist-unchecked-state", "files",
     lambda call, exc, case: " -> " in call
     and isinstance(exc, (AttributeError, KeyError, IndexError))
     and any(m["k"] in ("meta", "param", "npy_values", "npy_header")
             for m in case["mutations"]),
     "fusedae.load accepts fitted attributes of the wrong type; later methods fail "
     "with AttributeError/KeyError/IndexError"),
]


def _raised_in(exc, module):
    """Whether the innermost frame of exc's traceback is in `module`."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and os.path.basename(tb.tb_frame.f_code.co_filename) == module + ".py"


def known_finding(target, call, exc, case):
    for name, tgt, pred, _why in KNOWN_FINDINGS:
        if tgt == target:
            try:
                if pred(call, exc, case):
                    return name
            except Exception:  # noqa: BLE001 - a predicate must never hide a finding
                pass
    return None


class Runner:
    """Runs the calls of one case: expected exceptions end the call, known
    findings are counted, anything else becomes a Finding."""

    def __init__(self, target, stats):
        self.target = target
        self.stats = stats
        self.case = None

    def _known(self, what, exc):
        name = known_finding(self.target, what, exc, self.case)
        if name is not None:
            self.stats["known"][name] = self.stats["known"].get(name, 0) + 1
        return name is not None

    def call(self, what, fn, *args, expect=(), must_succeed=False, **kwargs):
        """(True, result), or (False, None) after an expected exception.
        must_succeed: even an expected exception is a finding (e.g. loading
        a file that save() has just written)."""
        outcomes = self.stats["outcomes"]
        try:
            result = fn(*args, **kwargs)
            outcomes[(what, "ok")] = outcomes.get((what, "ok"), 0) + 1
            return True, result
        except EXPECTED + tuple(expect) as exc:
            msg = re.sub(r"\S*fusedae-fuzz-\S*?/case/", "", str(exc))
            key = (what, f"{type(exc).__name__}: {msg[:70]}")
            outcomes[key] = outcomes.get(key, 0) + 1
            if must_succeed and not self._known(what, exc):
                raise Finding(f"{what}: must succeed, raised {type(exc).__name__}: {exc}") \
                    from exc
            return False, None
        except Exception as exc:  # noqa: BLE001 - this is the oracle
            if self._known(what, exc):
                return False, None
            raise Finding(f"{what}: {type(exc).__name__}: {exc}") from exc


# =====================================================================
# Arrays from descriptions
# =====================================================================
ODD_DTYPES = ("float16", "int8", "int32", "int64", "uint8", "uint64", "bool", "complex64",
              "complex128", "object", "<U3", "S2", ">f4", ">f8", "<f8", "<f4")
LAYOUTS = ("C", "F", "T", "rowstep", "colstep", "neg", "misaligned", "broadcast", "matrix",
           "offset")
FILLS = ("normal", "unit", "zeros", "ones", "sparse", "nan", "inf", "huge", "tiny", "mixed",
         "int", "big")
SPECIAL_VALUES = (0.0, -0.0, 1.0, -1.0, 0.5, 1e38, -1e38, 3.4028235e38, 3.5e38, 1e300, -1e300,
                  1e-45, 1e-310, 5e-324, 1e-38, 65504.0, 65520.0, NAN, INF, -INF, 2.0**63, 2.0**64)


def _fill(kind, n, rng):
    if kind == "normal":
        return rng.normal(size=n)
    if kind == "unit":
        return rng.random(n)
    if kind == "zeros":
        return np.zeros(n)
    if kind == "ones":
        return np.ones(n)
    if kind == "sparse":  # mostly zeros: the engine's nonzero path
        return rng.random(n) * (rng.random(n) < 0.15)
    if kind in ("nan", "inf"):
        v = rng.random(n)
        if n:
            v[rng.integers(0, n)] = NAN if kind == "nan" else (INF if rng.random() < 0.5 else -INF)
        return v
    if kind == "huge":
        return rng.choice([1e38, -1e38, 3.4e38, 1e300, -1e300, 1.7e308], n)
    if kind == "tiny":
        return rng.choice([1e-45, -1e-45, 1e-310, 5e-324, 1e-38, 0.0, -0.0], n)
    if kind == "mixed":
        return rng.choice(np.array(SPECIAL_VALUES), n)
    if kind == "int":
        return rng.integers(-3, 4, n).astype(np.float64)
    if kind == "big":
        return rng.normal(size=n) * 1e6
    raise AssertionError(kind)


def _cast(vals, dt):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind == "O":
            return vals.astype(object)
        return vals.astype(dt)


def build_array(spec):
    """The array (or non-array) a description asks for."""
    kind = spec["kind"]
    if kind == "none":
        return None
    if kind == "scalar":
        return 0.5
    if kind == "string":
        return "not an array"
    if kind == "dict":
        return {"a": 1}
    if kind == "ragged":
        return [[1.0, 2.0], [3.0]]
    if kind == "mixed_list":
        return [[1.0, "a"], [None, 2.0]]
    shape = tuple(spec["shape"])
    n = math.prod(shape)
    rng = np.random.default_rng(spec["seed"])
    vals = _fill(spec["fill"], n, rng).reshape(shape)
    if kind == "list":
        return vals.tolist()
    dt = np.dtype(spec["dtype"])
    layout = spec["layout"]
    nd = len(shape)
    if layout == "F":
        a = np.asfortranarray(_cast(vals, dt))
    elif layout == "T":
        a = np.ascontiguousarray(_cast(vals.T, dt)).T
    elif layout == "rowstep" and nd >= 1:
        a = np.zeros((2 * shape[0],) + shape[1:], dt)[::2]
        a[...] = _cast(vals, dt)
    elif layout == "colstep" and nd >= 2:
        a = np.zeros(shape[:-1] + (2 * shape[-1],), dt)[..., ::2]
        a[...] = _cast(vals, dt)
    elif layout == "neg" and nd >= 1:
        a = _cast(vals, dt)[::-1]
    elif layout == "misaligned" and dt.kind != "O" and dt.itemsize > 1:
        buf = np.zeros(n * dt.itemsize + 1, np.uint8)
        a = buf[1:].view(dt).reshape(shape)
        a[...] = _cast(vals, dt)
    elif layout == "offset" and dt.kind != "O" and nd >= 1:
        # A C-contiguous view that starts inside a larger buffer.
        big = np.zeros((shape[0] + 1,) + shape[1:], dt)
        big[1:] = _cast(vals, dt)
        a = big[1:]
    elif layout == "broadcast" and nd == 2 and shape[0] >= 1:
        a = np.broadcast_to(_cast(vals[:1], dt), shape)
    elif layout == "matrix" and nd == 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.asmatrix(_cast(vals, dt))
    else:
        a = np.ascontiguousarray(_cast(vals, dt))
    if spec.get("readonly") and isinstance(a, np.ndarray) and a.flags.writeable:
        a.flags.writeable = False
    return a


def chance(draw, pct):
    """True with probability pct/100; shrinks towards True (the common case)."""
    return draw(st.integers(0, 99)) < pct


ENGINE_LAYOUTS = ("C", "C", "C", "offset", "matrix")  # what the engine takes as it is
API_LAYOUTS = ("C", "C", "C", "F", "T", "rowstep", "colstep", "neg", "offset")  # converted


def array_spec(rows, cols, dtype, fills=("normal", "unit", "zeros", "sparse", "int"),
               valid_pct=60, good_layouts=ENGINE_LAYOUTS):
    """A description of an array the callee expects to be rows x cols of
    `dtype`: exactly that (C order, values from `fills`) `valid_pct` of the
    time; otherwise that with one thing changed (3 cases in 4: every check
    is reached on its own), or anything at all."""

    def shapes(draw):
        s = draw(st.integers(0, 3))
        if s == 0:
            return (draw(st.integers(0, 6)), cols)
        if s == 1:
            return (rows, draw(st.integers(0, 42)))
        if s == 2:
            return (draw(st.integers(0, 5)), draw(st.integers(0, 5)))
        return draw(st.sampled_from([(), (rows,), (cols,), (rows, cols, 1), (1, rows, cols),
                                     (0,), (2, 0, 3)]))

    @st.composite
    def strat(draw):
        spec = {"kind": "array", "shape": [rows, cols], "dtype": dtype,
                "layout": draw(st.sampled_from(good_layouts)),
                "fill": draw(st.sampled_from(fills)), "readonly": not chance(draw, 85),
                "seed": draw(st.integers(0, 2**16))}
        mode = draw(st.integers(0, 99))
        if mode < valid_pct:
            return spec
        if mode < valid_pct + (100 - valid_pct) * 3 // 4:
            what = draw(st.sampled_from(["kind", "shape", "shape", "dtype", "layout", "fill"]))
        else:
            what = "all"
        if what in ("kind", "all") and chance(draw, 50 if what == "kind" else 10):
            other = draw(st.sampled_from(["none", "scalar", "string", "dict", "ragged",
                                          "mixed_list", "list", "list"]))
            if other != "list":
                return {"kind": other}
            spec["kind"] = "list"
        if what in ("shape", "all"):
            spec["shape"] = list(shapes(draw))
        if what in ("dtype", "all"):
            spec["dtype"] = draw(st.sampled_from(ODD_DTYPES + ("float32", "float64")))
        if what in ("layout", "all"):
            spec["layout"] = draw(st.sampled_from(LAYOUTS))
        if what in ("fill", "all"):
            spec["fill"] = draw(st.sampled_from(FILLS))
        return spec

    return strat()


# Integers that must be refused (or are out of a C type's range: TypeError).
BAD_INTS = (0, -1, -2**31, 2**31, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, -2**63, 2**64, 10**30)
BAD_SCALARS = (None, "1", 1.5, NAN, [1], True)
BAD_FLOATS = (0.0, -1.0, -0.0, NAN, INF, -INF, 1e300, -1e300, 5e-324, 1.0, 2.0, None, "0.1", [0.1],
              10**400)


def value(valid, bad=(), valid_pct=85):
    """One of `valid` most of the time, else one of `bad`."""
    valid, bad = tuple(valid), tuple(bad)

    @st.composite
    def strat(draw):
        if not bad or chance(draw, valid_pct):
            return draw(st.sampled_from(valid))
        return draw(st.sampled_from(bad))

    return strat()


# =====================================================================
# Target "engine": the compiled entry points
# =====================================================================
ELEMENTWISE = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
ACT_BAD = ("softmax", "bogus", "", "Sigmoid", None, 3)
OUTPUT_LOSS = (("identity", "squared_error"), ("sigmoid", "squared_error"),
               ("sigmoid", "binary_cross_entropy"), ("softmax", "categorical_cross_entropy"),
               ("tanh", "squared_error"), ("relu", "squared_error"), ("leaky_relu", "squared_error"))
DTYPE_NAMES = ("float32", "float64")
DTYPE_BAD = ("float16", "int32", "", "f4", None, 4)
ISAS = ("auto", "generic", "avx2", "avx512")
ISA_BAD = ("bogus", "", "AVX2", None)
# Layer-width lists whose parameters could never fit in memory, yet each
# width (but the overflowing ones) is valid: refused before any allocation.
ABSURD_SIZES = ([2**30, 2**30], [2**31 - 1, 2**31 - 1], [2**31 - 1] * 4, [2**20, 2**24, 2**20],
                [2**30, 2**30, 2**30])
WIDTH_BAD = (0, -1, 2**31, 2**40, 2**63 - 1, 2**63, -2**63)


def width(lo=1, hi=40):
    return st.integers(lo, hi)


@st.composite
def network_config(draw):
    """Arguments of engine.Network: a valid network most of the time, each
    field possibly replaced by an invalid value."""
    L = draw(st.integers(1, 4))
    sizes = [draw(width()) for _ in range(L + 1)]
    if not chance(draw, 92):  # wide input layer: the engine's nonzero path
        sizes[0] = draw(st.sampled_from([512, 600, 1024]))
        sizes[1] = max(sizes[1], 32)
    out_act, loss = draw(st.sampled_from(OUTPUT_LOSS))
    acts = [draw(st.sampled_from(ELEMENTWISE)) for _ in range(L - 1)] + [out_act]
    cfg = {
        "sizes": sizes, "activations": acts, "loss": loss,
        "dtype": draw(st.sampled_from(DTYPE_NAMES)),
        "weight_decay": draw(value([0.0, 0.0, 1e-3, 0.5])),
        "sparsity_layer": 0, "sparsity_target": 0.05, "sparsity_weight": 0.0,
        "isa": draw(st.sampled_from(ISAS)),
    }
    if L > 1 and not chance(draw, 70):
        cfg["sparsity_layer"] = draw(st.integers(1, L - 1))
        cfg["sparsity_target"] = draw(st.sampled_from([0.05, 0.5, 1e-9, 1 - 1e-9]))
        cfg["sparsity_weight"] = draw(st.sampled_from([0.0, 1.0, 3.0, 1e6]))
    # Break some of it.
    n_bad = 0 if chance(draw, 65) else draw(st.integers(1, 3))
    for _ in range(n_bad):
        field = draw(st.sampled_from(sorted(cfg)))
        if field == "sizes":
            cfg["sizes"] = draw(st.one_of(
                st.sampled_from(ABSURD_SIZES),
                st.just(sizes[:1]), st.just([]), st.just(sizes + [3]),
                st.builds(lambda i, w: sizes[:i] + [w] + sizes[i + 1:],
                          st.integers(0, len(sizes) - 1), st.sampled_from(WIDTH_BAD)),
                st.sampled_from([None, "abc", [1.5, 2.0], [3, "a"], [[3], [4]]])))
            if isinstance(cfg["sizes"], list) and cfg["sizes"] in ABSURD_SIZES:
                cfg["activations"] = ["identity"] * (len(cfg["sizes"]) - 1)
                cfg["loss"] = "squared_error"
        elif field == "activations":
            cfg["activations"] = draw(st.one_of(
                st.just(acts[:-1]), st.just(acts + ["relu"]),
                st.builds(lambda i, a: acts[:i] + [a] + acts[i + 1:],
                          st.integers(0, len(acts) - 1), st.sampled_from(ACT_BAD)),
                st.sampled_from([None, "relu", [1, 2]])))
        elif field == "loss":
            cfg["loss"] = draw(st.sampled_from(["squared_error", "binary_cross_entropy",
                                                "categorical_cross_entropy", "bogus", "", None]))
        elif field == "dtype":
            cfg["dtype"] = draw(st.sampled_from(DTYPE_BAD))
        elif field == "weight_decay":
            cfg["weight_decay"] = draw(st.sampled_from(BAD_FLOATS))
        elif field == "sparsity_layer":
            cfg["sparsity_layer"] = draw(st.sampled_from([-1, L, L + 3, 2**31, 1.5, None]))
        elif field == "sparsity_target":
            cfg["sparsity_target"] = draw(st.sampled_from(BAD_FLOATS))
        elif field == "sparsity_weight":
            cfg["sparsity_weight"] = draw(st.sampled_from(BAD_FLOATS))
        elif field == "isa":
            cfg["isa"] = draw(st.sampled_from(ISA_BAD))
    return cfg


def _dims(cfg, key, default):
    v = cfg.get(key)
    return v if isinstance(v, list) and v and all(isinstance(n, int) for n in v) else default


def _small(n, default=3):
    """A width to shape arrays with: n if it is one we can allocate."""
    return n if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 4096 else default


ROWS = st.one_of(st.integers(1, 8), st.sampled_from([0, 1, 16, 33, 64, 129, 257]))


OPTIMIZER_BAD = {"kind": ("bogus", "", "lbfgs", None), "lr": BAD_FLOATS + (1e30,),
                 "momentum": BAD_FLOATS, "beta1": BAD_FLOATS, "beta2": BAD_FLOATS,
                 "eps": BAD_FLOATS}


def optimizer_args(draw):
    args = {"kind": draw(st.sampled_from(["sgd", "momentum", "adam"])),
            "lr": draw(st.sampled_from([1e-3, 0.1, 1.0, 1e30])),
            "momentum": draw(st.sampled_from([0.9, 0.0])),
            "beta1": draw(st.sampled_from([0.9, 0.5, 0.0])),
            "beta2": draw(st.sampled_from([0.999, 0.0])),
            "eps": draw(st.sampled_from([1e-8, 1.0]))}
    return break_fields(draw, args, OPTIMIZER_BAD, 70)


COUNTER_VALUES = (0, 1, 7, 2**32 + 5, -1, 2**62, 2**62 + 1, 2**63 - 1, -2**63, 2**63, 1.5, None)
SEEDS = (0, 1, 12345, 2**32, 2**64 - 1, -1, 2**64, 1.5, None)


@st.composite
def network_ops(draw, sizes, dtype, n_ops=(1, 6)):
    """Method calls on an engine.Network of widths `sizes`."""
    n_in, n_out = _small(sizes[0]), _small(sizes[-1])
    L = max(len(sizes) - 1, 1)
    ops = []
    for _ in range(draw(st.integers(*n_ops))):
        name = draw(st.sampled_from(["train_step", "fit_epoch", "loss_and_gradient", "forward",
                                     "init_params", "set_optimizer", "offsets",
                                     "optimizer_state", "params", "counter", "threads"]))
        rows = draw(ROWS)
        op = {"op": name}
        if name in ("train_step", "loss_and_gradient"):
            op["X"] = draw(array_spec(rows, n_in, dtype))
            op["Y"] = "X" if n_in == n_out and chance(draw, 30) else \
                draw(array_spec(rows, n_out, dtype))
        elif name == "fit_epoch":
            op["X"] = draw(array_spec(rows, n_in, dtype))
            op["Y"] = draw(st.one_of(st.just(None), array_spec(rows, n_out, dtype)))
            op["batch_size"] = draw(value([1, 3, 64, 2**40], BAD_INTS + BAD_SCALARS))
            op["shuffle"] = draw(value([True, False], ["yes", None, 2]))
            op["noise"] = draw(value(["none", "gaussian", "masking", "salt_pepper"],
                                     ["bogus", None]))
            op["noise_level"] = draw(value([0.0, 0.1, 0.5, 1.0], BAD_FLOATS + (1.5, 1e30)))
        elif name == "forward":
            start = draw(st.one_of(st.integers(0, L - 1), st.sampled_from([-1, L, 2**31, None])))
            stop = draw(st.one_of(st.integers(-1, L), st.sampled_from([-L - 2, L + 1, 2**31])))
            w = _small(sizes[start]) if isinstance(start, int) and 0 <= start < len(sizes) else 3
            op.update(X=draw(array_spec(rows, w, dtype)), start=start, stop=stop)
        elif name == "init_params":
            op["seed"] = draw(st.sampled_from(SEEDS))
        elif name == "set_optimizer":
            op.update(optimizer_args(draw))
        elif name == "offsets":
            op["layer"] = draw(st.one_of(st.integers(-1, L + 1), st.sampled_from([2**31, None])))
        elif name == "optimizer_state":
            op["k"] = draw(st.sampled_from([0, 1, 2, -1, 2**31, None]))
            op["fill"] = draw(st.sampled_from([None, NAN, INF, 1e38, 0.0]))
        elif name == "params":
            op["fill"] = draw(st.sampled_from([None, NAN, INF, -1e38, 1e-45, 0.0]))
            op["write_grads"] = not chance(draw, 80)
        elif name == "counter":
            op["attr"] = draw(st.sampled_from(["seed", "optimizer_steps", "noise_steps", "epochs"]))
            op["value"] = draw(st.sampled_from(COUNTER_VALUES))
        elif name == "threads":
            op["n"] = draw(value([1, 2, 3], [0, -1, 1025, 10**6, 2**31, 2**63, None, 1.5]))
        ops.append(op)
    return ops


def run_network_op(run, net, op, where):
    name = op["op"]
    what = f"{where}.{name}"
    if name in ("train_step", "loss_and_gradient"):
        X = build_array(op["X"])
        Y = X if op["Y"] == "X" else build_array(op["Y"])
        run.call(what, getattr(net, name), X, Y)
    elif name == "fit_epoch":
        X, Y = build_array(op["X"]), (None if op["Y"] is None else build_array(op["Y"]))
        ok, res = run.call(what, net.fit_epoch, X, Y, op["batch_size"], op["shuffle"],
                           op["noise"], op["noise_level"])
        if ok and not (isinstance(res, tuple) and len(res) == 3):
            raise Finding(f"{what}: returned {res!r}")
    elif name == "forward":
        X = build_array(op["X"])
        ok, out = run.call(what, net.forward, X, op["start"], op["stop"])
        if ok and (not isinstance(out, np.ndarray) or out.ndim != 2
                   or out.shape[0] != np.shape(X)[0]):
            raise Finding(f"{what}: output {type(out).__name__} {getattr(out, 'shape', None)} "
                          f"for X of shape {np.shape(X)}")
    elif name == "init_params":
        run.call(what, net.init_params, op["seed"])
    elif name == "set_optimizer":
        run.call(what, net.set_optimizer, op["kind"], op["lr"], op["momentum"], op["beta1"],
                 op["beta2"], op["eps"])
    elif name == "offsets":
        ok, w = run.call(what, net.weight_offset, op["layer"])
        ok2, b = run.call(what, net.bias_offset, op["layer"])
        if ok and ok2 and not 0 <= w < b < net.n_params:
            raise Finding(f"{what}: offsets {w}, {b} of {net.n_params}")
    elif name == "optimizer_state":
        ok, s = run.call(what, net.optimizer_state, op["k"])
        if ok:
            if s.shape != (net.n_params,):
                raise Finding(f"{what}: shape {s.shape}, expected ({net.n_params},)")
            if op["fill"] is not None:
                s[...] = op["fill"]
    elif name == "params":
        p = net.params
        if p.shape != (net.n_params,):
            raise Finding(f"{what}: params shape {p.shape}, expected ({net.n_params},)")
        if op["fill"] is not None and p.size:
            p[p.size // 2] = op["fill"]
        g = net.grads
        if op["write_grads"]:
            run.call(what, g.__setitem__, 0, 1.0)  # read-only: ValueError
        float(np.asarray(g, np.float64).sum())
    elif name == "counter":
        run.call(what, setattr, net, op["attr"], op["value"])
    elif name == "threads":
        run.call(what, engine.set_num_threads, op["n"])
    else:
        raise AssertionError(name)


def break_fields(draw, cfg, bad, pct_intact=65):
    """Replace 1-3 fields of a valid configuration by values from bad[field]
    (1 - pct_intact of the time)."""
    if chance(draw, pct_intact):
        return cfg
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(sorted(bad)))
        cfg[field] = draw(st.sampled_from(bad[field]))
    return cfg


HIDDEN_BAD = ([0], [-1], [2**31], [2**30, 2**30], [2**63], None, [1.5], "4", ["a"])
VAE_BAD = {
    "n_features": BAD_INTS + (None, 1.5), "n_latent": BAD_INTS + (2**30, None),
    "n_conditions": (-1, 2**31, 2**40, 2**63 - 1, 2**63, None),
    "hidden": HIDDEN_BAD, "activation": ACT_BAD, "output_activation": ACT_BAD,
    "loss": ("categorical_cross_entropy", "bogus", None), "dtype": DTYPE_BAD,
    "weight_decay": BAD_FLOATS, "isa": ISA_BAD,
}


@st.composite
def vae_case(draw):
    loss = draw(st.sampled_from(["binary_cross_entropy", "squared_error"]))
    cfg = {"n_features": draw(st.sampled_from([1, 2, 5, 12])),
           "n_latent": draw(st.sampled_from([1, 2, 4])),
           "hidden": draw(st.lists(width(1, 16), max_size=2)),
           "activation": draw(st.sampled_from(ELEMENTWISE)),
           "output_activation": "sigmoid" if loss == "binary_cross_entropy" else
           draw(st.sampled_from(ELEMENTWISE)),
           "loss": loss, "dtype": draw(st.sampled_from(DTYPE_NAMES)),
           "weight_decay": draw(st.sampled_from([0.0, 0.0, 1e-3])),
           "n_conditions": draw(st.sampled_from([0, 0, 1, 3])),
           "isa": draw(st.sampled_from(ISAS))}
    cfg = break_fields(draw, cfg, VAE_BAD)
    D, Z, C = cfg["n_features"], cfg["n_latent"], cfg["n_conditions"]
    dt = cfg["dtype"] if cfg["dtype"] in DTYPE_NAMES else "float32"
    d, z, c = _small(D), _small(Z), _small(C, 0)
    fills = ("unit", "zeros", "ones", "sparse")
    ops = []
    for _ in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from(["train_step", "fit_epoch", "loss_and_gradient",
                                     "init_params", "set_optimizer", "counter", "encoder",
                                     "decoder"]))
        rows = draw(ROWS)
        op = {"op": name}
        if name in ("train_step", "fit_epoch", "loss_and_gradient"):
            op["X"] = draw(array_spec(rows, d, dt, fills))
            op["Y"] = draw(array_spec(rows, c, dt, fills)) \
                if (c > 0) == chance(draw, 85) else None
        if name == "loss_and_gradient":
            op["eps"] = draw(array_spec(rows, z, dt))
        elif name == "fit_epoch":
            op["batch_size"] = draw(value([1, 4, 64, 2**40], BAD_INTS + BAD_SCALARS))
            op["shuffle"] = draw(value([True, False], ["yes", None]))
        elif name == "init_params":
            op["seed"] = draw(st.sampled_from(SEEDS))
        elif name == "set_optimizer":
            op.update(optimizer_args(draw))
        elif name == "counter":
            op["attr"] = draw(st.sampled_from(["seed", "latent_steps", "epochs"]))
            op["value"] = draw(st.sampled_from(COUNTER_VALUES))
        elif name == "encoder":
            op["ops"] = draw(network_ops([d + c, *(_dims(cfg, "hidden", [])), 2 * z], dt, (1, 2)))
        elif name == "decoder":
            op["ops"] = draw(network_ops([z + c, *reversed(_dims(cfg, "hidden", [])), d], dt,
                                         (1, 2)))
        ops.append(op)
    return {"model": "VAE", "config": cfg, "ops": ops, "orphan": not chance(draw, 85)}


def run_vae(run, case):
    c = case["config"]
    ok, m = run.call("VAE()", engine.VAE, c["n_features"], c["n_latent"], c["hidden"],
                     c["activation"], c["output_activation"], c["loss"], c["dtype"],
                     c["weight_decay"], c["n_conditions"], c["isa"])
    if not ok:
        return
    for op in case["ops"]:
        name, what = op["op"], f"VAE.{op['op']}"
        if name in ("train_step", "loss_and_gradient", "fit_epoch"):
            X = build_array(op["X"])
            Y = None if op["Y"] is None else build_array(op["Y"])
            if name == "train_step":
                ok, res = run.call(what, m.train_step, X, Y)
            elif name == "loss_and_gradient":
                ok, res = run.call(what, m.loss_and_gradient, X, Y, build_array(op["eps"]))
            else:
                ok, res = run.call(what, m.fit_epoch, X, Y, op["batch_size"], op["shuffle"])
        elif name == "init_params":
            run.call(what, m.init_params, op["seed"])
        elif name == "set_optimizer":
            run.call(what, m.set_optimizer, op["kind"], op["lr"], op["momentum"], op["beta1"],
                     op["beta2"], op["eps"])
        elif name == "counter":
            run.call(what, setattr, m, op["attr"], op["value"])
        else:
            net = getattr(m, name)
            for sub in op["ops"]:
                run_network_op(run, net, sub, f"VAE.{name}")
    if case["orphan"]:
        enc = m.encoder
        del m
        gc.collect()
        float(np.asarray(enc.params, np.float64).sum())


GAN_BAD = {
    "n_latent": BAD_INTS + (None,), "n_features": BAD_INTS + (2**20, None),
    "g_hidden": HIDDEN_BAD, "d_hidden": HIDDEN_BAD, "g_activation": ACT_BAD,
    "g_output_activation": ACT_BAD, "d_activation": ACT_BAD, "dtype": DTYPE_BAD,
    "weight_decay": BAD_FLOATS, "minimax": ("yes", None), "isa": ISA_BAD,
}


@st.composite
def gan_case(draw):
    cfg = {"n_latent": draw(st.sampled_from([1, 2, 4])),
           "n_features": draw(st.sampled_from([1, 3, 8])),
           "g_hidden": draw(st.lists(width(1, 16), max_size=2)),
           "d_hidden": draw(st.lists(width(1, 16), max_size=2)),
           "g_activation": draw(st.sampled_from(ELEMENTWISE)),
           "g_output_activation": draw(st.sampled_from(ELEMENTWISE)),
           "d_activation": draw(st.sampled_from(ELEMENTWISE)),
           "dtype": draw(st.sampled_from(DTYPE_NAMES)),
           "weight_decay": draw(st.sampled_from([0.0, 0.0, 1e-3])),
           "minimax": draw(st.booleans()), "isa": draw(st.sampled_from(ISAS))}
    cfg = break_fields(draw, cfg, GAN_BAD)
    Z, D = cfg["n_latent"], cfg["n_features"]
    dt = cfg["dtype"] if cfg["dtype"] in DTYPE_NAMES else "float32"
    z, d = _small(Z), _small(D)
    ops = []
    for _ in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from(["discriminator_step", "generator_step",
                                     "generator_loss_and_gradient", "fit_epoch", "init_params",
                                     "set_optimizers", "counter", "generator", "discriminator"]))
        rows = draw(ROWS)
        op = {"op": name}
        if name in ("discriminator_step", "fit_epoch"):
            op["X"] = draw(array_spec(rows, d, dt, ("unit", "normal", "zeros")))
        if name == "generator_loss_and_gradient":
            op["Z"] = draw(array_spec(rows, z, dt))
        elif name == "generator_step":
            # Never 2^31-1 rows of a narrow model: a valid request, tens of GB.
            op["rows"] = draw(st.one_of(st.integers(1, 64), st.sampled_from(
                [0, -1, 2**30, 2**31, 2**40, 2**63 - 1, 2**63, None, 1.5])))
            if op["rows"] == 2**30 and D != 2**20:
                op["rows"] = 2**31
        elif name == "fit_epoch":
            op["batch_size"] = draw(value([1, 4, 64, 2**40], BAD_INTS + BAD_SCALARS))
            op["d_steps"] = draw(value([1, 2, 5], [0, -1, 2**31, None]))
            op["train_d"] = draw(value([True, False], [None, "x"]))
            op["train_g"] = draw(value([True, False], [None, "x"]))
            op["shuffle"] = draw(st.booleans())
        elif name == "init_params":
            op["seed"] = draw(st.sampled_from(SEEDS))
        elif name == "set_optimizers":
            op.update(optimizer_args(draw))
            op["d_lr"] = draw(value([1e-3, 0.1], BAD_FLOATS))
        elif name == "counter":
            op["attr"] = draw(st.sampled_from(["seed", "latent_steps", "epochs"]))
            op["value"] = draw(st.sampled_from(COUNTER_VALUES))
        elif name == "generator":
            op["ops"] = draw(network_ops([z, *_dims(cfg, "g_hidden", []), d], dt, (1, 2)))
        elif name == "discriminator":
            op["ops"] = draw(network_ops([d, *_dims(cfg, "d_hidden", []), 1], dt, (1, 2)))
        ops.append(op)
    return {"model": "GAN", "config": cfg, "ops": ops, "orphan": not chance(draw, 85)}


def run_gan(run, case):
    c = case["config"]
    ok, m = run.call("GAN()", engine.GAN, c["n_latent"], c["n_features"], c["g_hidden"],
                     c["d_hidden"], c["g_activation"], c["g_output_activation"],
                     c["d_activation"], c["dtype"], c["weight_decay"], c["minimax"], c["isa"])
    if not ok:
        return
    for op in case["ops"]:
        name, what = op["op"], f"GAN.{op['op']}"
        if name == "discriminator_step":
            run.call(what, m.discriminator_step, build_array(op["X"]))
        elif name == "generator_step":
            run.call(what, m.generator_step, op["rows"])
        elif name == "generator_loss_and_gradient":
            run.call(what, m.generator_loss_and_gradient, build_array(op["Z"]))
        elif name == "fit_epoch":
            run.call(what, m.fit_epoch, build_array(op["X"]), op["batch_size"], op["d_steps"],
                     op["train_d"], op["train_g"], op["shuffle"])
        elif name == "init_params":
            run.call(what, m.init_params, op["seed"])
        elif name == "set_optimizers":
            run.call(what, m.set_optimizers, op["kind"], op["lr"], op["d_lr"], op["momentum"],
                     op["beta1"], op["beta2"], op["eps"])
        elif name == "counter":
            run.call(what, setattr, m, op["attr"], op["value"])
        else:
            net = getattr(m, name)
            for sub in op["ops"]:
                run_network_op(run, net, sub, f"GAN.{name}")
    if case["orphan"]:
        d = m.discriminator
        del m
        gc.collect()
        float(np.asarray(d.params, np.float64).sum())


@st.composite
def network_case(draw):
    cfg = draw(network_config())
    sizes = _dims(cfg, "sizes", [3, 3])
    dt = cfg["dtype"] if cfg["dtype"] in DTYPE_NAMES else "float32"
    return {"model": "Network", "config": cfg, "ops": draw(network_ops(sizes, dt)),
            "orphan": not chance(draw, 85)}


def run_network(run, case):
    c = case["config"]
    ok, net = run.call("Network()", engine.Network, c["sizes"], c["activations"], c["loss"],
                       c["dtype"], c["weight_decay"], c["sparsity_layer"], c["sparsity_target"],
                       c["sparsity_weight"], c["isa"])
    if not ok:
        return
    for op in case["ops"]:
        run_network_op(run, net, op, "Network")
    if case["orphan"]:
        views = [net.params, net.grads, net.optimizer_state(0)]
        del net
        gc.collect()
        for v in views:
            float(np.asarray(v, np.float64).sum())


@st.composite
def free_case(draw):
    """Module-level functions: latent_normal, philox4x32, philox_blocks, the thread pool."""
    name = draw(st.sampled_from(["latent_normal", "philox4x32", "philox_blocks", "threads",
                                 "info"]))
    case = {"model": "function", "op": name}
    if name == "latent_normal":
        # Absurd sizes only where rows x cols could never fit (>= 2^50 bytes):
        # 2^31 x 1 draws would be a valid, 8 GB request.
        case["seed"] = draw(st.sampled_from(SEEDS))
        case["stream"] = draw(value([0, 7, 2**32 - 1], [-1, 2**32, None]))
        rc = draw(st.one_of(
            st.tuples(st.integers(0, 64), st.integers(1, 40)),
            st.sampled_from([(0, 0), (-1, 3), (3, -1), (3, 0), (2**50, 1), (1, 2**50),
                             (2**40, 2**40), (2**62, 2**62), (2**63 - 1, 2**63 - 1), (2**63, 1),
                             (None, 3), (1.5, 3)])))
        case["rows"], case["cols"] = rc
        case["dtype"] = draw(value(DTYPE_NAMES, DTYPE_BAD))
    elif name == "philox4x32":
        case["counter"] = draw(array_spec(draw(st.integers(0, 16)), 4, "uint32",
                                          ("int", "zeros", "normal", "huge"), 75))
        case["seed"] = draw(st.sampled_from(SEEDS))
    elif name == "philox_blocks":
        case["seed"] = draw(st.sampled_from(SEEDS))
        case["tag"] = draw(value([1, 3, 4, 2**32 - 1], [-1, 2**32, None]))
        case["stream"] = draw(value([0, 7, 2**32 - 1], [-1, 2**32, None]))
        case["first_block"] = draw(value([0, 2**32 - 5, 2**64 - 1], [-1, 2**64, None, 1.5]))
        case["isa"] = draw(st.sampled_from(["auto", "generic", "avx2", "avx512", "", "sse9"]))
    elif name == "threads":
        case["n"] = draw(value([1, 2, 3, 4], [0, -1, 1025, 10**6, 2**31, 2**63, None, "2", 1.5]))
    return case


def run_free(run, case):
    name = case["op"]
    if name == "latent_normal":
        ok, out = run.call(name, engine.latent_normal, case["seed"], case["stream"], case["rows"],
                           case["cols"], case["dtype"])
        if ok and out.shape != (case["rows"], case["cols"]):
            raise Finding(f"latent_normal: shape {out.shape}")
    elif name == "philox4x32":
        ctr = build_array(case["counter"])
        ok, out = run.call(name, engine.philox4x32, ctr, case["seed"])
        if ok and (out.ndim != 2 or out.shape[1] != 4 or out.dtype != np.uint32):
            raise Finding(f"philox4x32: output {out.dtype} {out.shape}")
    elif name == "philox_blocks":
        ok, out = run.call(name, engine.philox_blocks, case["seed"], case["tag"], case["stream"],
                           case["first_block"], case["isa"])
        if ok and (out.shape != (64, 4) or out.dtype != np.uint32):
            raise Finding(f"philox_blocks: output {out.dtype} {out.shape}")
    elif name == "threads":
        ok, _ = run.call(name, engine.set_num_threads, case["n"])
        if ok and engine.get_num_threads() != case["n"]:
            raise Finding(f"set_num_threads({case['n']}): pool has {engine.get_num_threads()}")
    else:
        engine.supported_isas()
        engine.blas_loaded()
        engine.blas_corename()
        engine.get_num_threads()


def engine_cases():
    return st.one_of(network_case(), vae_case(), gan_case(), free_case())


def run_engine_case(run, case):
    model = case["model"]
    if model == "Network":
        run_network(run, case)
    elif model == "VAE":
        run_vae(run, case)
    elif model == "GAN":
        run_gan(run, case)
    else:
        run_free(run, case)


# =====================================================================
# Target "api": the estimators
# =====================================================================
def _rs(v):
    return np.random.RandomState(0) if v == "RandomState(0)" else v


COMMON_PARAMS = {
    "weight_decay": ([0.0, 1e-4, 0.1], [-1.0, NAN, INF, "0", None]),
    "optimizer": (["adam", "sgd", "momentum", "lbfgs"], ["bogus", None, 1]),
    "learning_rate": ([1e-3, 1e-2, 0.1], [0, -1, NAN, INF, 1e300, "x", None]),
    "momentum": ([0.9, 0.0, 0.5], [1.0, -0.1, NAN, "x"]),
    "batch_size": ([1, 3, 64, 2**40], [0, -1, 1.5, "8", None, True]),
    "epochs": ([1, 2], [0, -1, 1.5, "2", None, True, NAN]),
    "shuffle": ([True, False], ["yes", None, 1]),
    "early_stopping": ([False, True], ["yes", None]),
    "validation_fraction": ([0.1, 0.5], [0, 1, -1, NAN, "x"]),
    "n_iter_no_change": ([1, 10], [0, -1, "x"]),
    "tol": ([1e-4, 0.0], [-1, NAN]),
    "n_threads": ([None, 1, 2], [0, -1, 1025, 10**6, 2**40, "2", 1.5]),
    "device": (["cpu"], ["cuda", "gpu", None, 0]),
    "dtype": (["float32", "float64"], ["float16", "int32", None, "x", "np.float64"]),
    "random_state": ([None, 0, 1, 12345, "RandomState(0)"], [-1, 2**64, 2**70, "x", 1.5]),
    "verbose": ([False], [True, 2, "x"]),
}
HIDDEN = ([2, 3, (3, 2), (4,), [3]], [0, -1, (), "3", 1.5, (2, 0), 2**31, 2**40, (2**20, 2**24),
                                      (2**30, 2**30), None, True])
ACTS = (list(ELEMENTWISE), ["softmax", "bogus", None, 1])
AE_PARAMS = dict(COMMON_PARAMS, **{
    "n_hidden": HIDDEN, "activation": ACTS, "output_activation": ACTS,
    "loss": (["squared_error", "binary_cross_entropy"], ["categorical_cross_entropy", "x", None]),
    "sparsity_target": ([None, 0.05, 0.5], [0, 1, -1, NAN, "x"]),
    "sparsity_weight": ([0.0, 3.0], [-1, NAN, INF]),
    "noise": ([None, "gaussian", "masking", "salt_pepper"], ["x", 1]),
    "noise_level": ([0.0, 0.1, 0.3, 1.0], [-1, 2.0, NAN, INF, 1e300]),
})
CLF_PARAMS = dict(COMMON_PARAMS, n_hidden=(HIDDEN[0] + [()], HIDDEN[1][:3] + HIDDEN[1][4:]),
                  activation=ACTS)
GEN_PARAMS = dict(CLF_PARAMS, output_activation=ACTS)
VAE_PARAMS = dict(COMMON_PARAMS, **{
    "n_latent": ([1, 2, 3], [0, -1, 2**30, 2**31, 2**40, "2", 1.5]),
    "n_hidden": (HIDDEN[0] + [()], HIDDEN[1][:3] + HIDDEN[1][4:]),
    "activation": ACTS, "output_activation": ACTS,
    "loss": (["binary_cross_entropy", "squared_error"], ["categorical_cross_entropy", "x"]),
    "epochs": ([0, 1, 2], [-1, 1.5, "2", None]),
    "optimizer": (["adam", "sgd", "momentum"], ["lbfgs", "bogus", None]),
})
GAN_PARAMS = {
    "n_latent": ([1, 2, 3], [0, -1, 2**31, 2**40, "2"]),
    "g_hidden": ([(), 3, (4,), (3, 2)], [0, -1, 2**31, (2**30, 2**30), "3", None]),
    "d_hidden": ([(), 3, (4,), (3, 2)], [0, -1, 2**31, (2**30, 2**30), "3", None]),
    "g_activation": ACTS, "g_output_activation": ACTS, "d_activation": ACTS,
    "loss": (["non_saturating", "minimax"], ["x", None]),
    "optimizer": (["adam", "sgd", "momentum"], ["lbfgs", "x"]),
    "g_learning_rate": ([2e-4, 0.1], [0, -1, NAN, INF, "x"]),
    "d_learning_rate": ([2e-4, 0.1], [0, -1, NAN, INF, "x"]),
    "beta1": ([0.5, 0.0], [1.0, -1, NAN]),
    "batch_size": COMMON_PARAMS["batch_size"],
    "epochs": ([0, 1, 2], [-1, 1.5, "2", None]),
    "d_steps": ([1, 2], [0, -1, 2**31, 2**40, "1", None]),
    "d_pretrain_epochs": ([0, 1], [-1, "1", None]),
    "g_pretrain_epochs": ([0, 1], [-1, "1", None]),
    "weight_decay": COMMON_PARAMS["weight_decay"], "shuffle": COMMON_PARAMS["shuffle"],
    "n_threads": COMMON_PARAMS["n_threads"], "device": COMMON_PARAMS["device"],
    "dtype": COMMON_PARAMS["dtype"], "random_state": COMMON_PARAMS["random_state"],
    "verbose": COMMON_PARAMS["verbose"],
}
ESTIMATORS = {
    "Autoencoder": AE_PARAMS, "SparseAutoencoder": AE_PARAMS, "DenoisingAutoencoder": AE_PARAMS,
    "Classifier": CLF_PARAMS, "Generator": GEN_PARAMS, "VAE": VAE_PARAMS,
    "ConditionalVAE": VAE_PARAMS, "GAN": GAN_PARAMS,
}
# Methods called after fit, per estimator, with what they take.
METHODS = {
    "Autoencoder": ["transform", "inverse_transform", "predict", "score",
                    "reconstruction_error", "loss_and_gradient", "partial_fit", "fit",
                    "fit_transform", "resume_fit", "coefs_", "save_load", "pickle", "clone",
                    "set_params"],
    "Classifier": ["predict", "predict_proba", "predict_log_proba", "score", "loss_and_gradient",
                   "partial_fit", "fit", "resume_fit", "coefs_", "save_load", "pickle", "clone",
                   "set_params"],
    "Generator": ["generate", "score", "loss_and_gradient", "fit", "resume_fit", "coefs_",
                  "save_load", "pickle", "set_params"],
    "VAE": ["encode", "transform", "generate", "sample", "interpolate", "negative_elbo", "score",
            "loss_and_gradient", "partial_fit", "fit", "fit_transform", "resume_fit",
            "encoder_coefs_", "save_load", "pickle", "clone", "set_params"],
    "GAN": ["latent", "generate", "sample", "discriminate", "generator_loss_and_gradient",
            "discriminator_loss_and_gradient", "partial_fit", "fit", "resume_fit",
            "generator_coefs_", "save_load", "pickle", "set_params"],
}
METHODS["SparseAutoencoder"] = METHODS["DenoisingAutoencoder"] = METHODS["Autoencoder"]
METHODS["ConditionalVAE"] = METHODS["VAE"]
NEEDS_Y = ("Classifier", "Generator", "ConditionalVAE")
DATA_FILLS = ("unit", "unit", "zeros", "sparse", "normal")


@st.composite
def labels_spec(draw, rows):
    kind = draw(value(["int", "str", "float_int", "bool", "prob", "column"],
                      ["none", "scalar", "continuous", "nan", "mixed", "short", "empty", "2d",
                       "complex", "prob_bad", "object_int"], 80))
    return {"kind": kind, "rows": rows, "k": draw(st.integers(2, 4)) if chance(draw, 90) else 1,
            "seed": draw(st.integers(0, 2**16))}


def build_labels(spec):
    kind, rows, k = spec["kind"], spec["rows"], spec["k"]
    rng = np.random.default_rng(spec["seed"])
    idx = rng.integers(0, k, rows)
    if rows >= k:
        idx[:k] = np.arange(k)  # every class present
    if kind == "int":
        return idx
    if kind == "str":
        return np.array(["abcd"[i] for i in idx])
    if kind == "float_int":
        return idx.astype(np.float64)
    if kind == "bool":
        return idx % 2 == 0
    if kind == "prob":
        p = rng.random((rows, max(k, 2)))
        return p / p.sum(axis=1, keepdims=True)
    if kind == "column":
        return idx[:, None]
    if kind == "none":
        return None
    if kind == "scalar":
        return 1
    if kind == "continuous":
        return rng.normal(size=rows)
    if kind == "nan":
        y = idx.astype(np.float64)
        if rows:
            y[0] = NAN
        return y
    if kind == "mixed":
        return np.array([1, "a"] * max(rows // 2, 1), dtype=object)[:max(rows, 1)]
    if kind == "short":
        return idx[:-1]
    if kind == "empty":
        return np.array([])
    if kind == "2d":
        return np.stack([idx, idx, idx], axis=1)
    if kind == "complex":
        return idx + 1j
    if kind == "prob_bad":
        p = rng.random((rows, max(k, 2)))
        return p  # rows do not sum to 1
    if kind == "object_int":
        return idx.astype(object)
    raise AssertionError(kind)


@st.composite
def api_case(draw):
    cls = draw(st.sampled_from(sorted(ESTIMATORS)))
    catalogue = ESTIMATORS[cls]
    params = {}
    for name in draw(st.lists(st.sampled_from(sorted(catalogue)), max_size=5, unique=True)):
        params[name] = draw(st.sampled_from(catalogue[name][0]))
    params = break_fields(draw, params, {k: v[1] for k, v in catalogue.items()}, 70)
    # Short runs: a small number of epochs unless set above (to something
    # that is refused, or small).
    for name in ("epochs",):
        params.setdefault(name, draw(st.sampled_from([1, 2])))
    if cls == "GAN":
        total = sum(p if isinstance(p, int) and not isinstance(p, bool) else 0
                    for p in (params.get("epochs"), params.get("d_pretrain_epochs"),
                              params.get("g_pretrain_epochs")))
        assert total <= 4
    rows = draw(st.one_of(st.integers(1, 12), st.sampled_from([0, 1, 2, 24])))
    cols = draw(st.integers(1, 6))
    dtype = params.get("dtype") if params.get("dtype") in DTYPE_NAMES else "float32"
    X = draw(array_spec(rows, cols, dtype, DATA_FILLS, 70, API_LAYOUTS))
    y = draw(labels_spec(rows)) if cls in NEEDS_Y or not chance(draw, 90) else None
    fit = draw(value(["fit", "fit", "partial_fit"], ["none"], 90))
    callbacks = draw(value([None], ["stop", "bad", "list_bad"], 90))
    calls = []
    for _ in range(draw(st.integers(0, 4))):
        m = draw(st.sampled_from(METHODS[cls]))
        r = draw(st.one_of(st.integers(1, 6), st.sampled_from([0, 12])))
        call = {"m": m, "X": draw(array_spec(r, cols, dtype, DATA_FILLS, 70, API_LAYOUTS)),
                "y": draw(labels_spec(r)) if cls in NEEDS_Y or not chance(draw, 90) else None}
        if m in ("sample", "latent"):
            call["n"] = draw(value([1, 3], [0, -1, 2**50, 2**62, 1.5, "2", None]))
            call["random_state"] = draw(value([None, 0, 5], [-1, 2**40, 2**64, "x"]))
        elif m == "interpolate":
            call["steps"] = draw(value([2, 5], [1, 0, -1, 2**40, 2**62, 1.5, None]))
        elif m == "save_load":
            call["path"] = draw(value(["ok"], ["missing_dir", "dir", "int", "none", "bytes"], 80))
        elif m == "set_params":
            name = draw(st.sampled_from(sorted(catalogue) + ["bogus"]))
            good, bad = catalogue.get(name, ([1], [None]))
            call["name"], call["value"] = name, draw(value(good, bad, 50))
            if name in ("epochs", "d_pretrain_epochs", "g_pretrain_epochs") and \
                    isinstance(call["value"], int) and call["value"] > 2:
                call["value"] = 2
        elif m in ("generate", "encode", "transform", "discriminate",
                   "generator_loss_and_gradient", "loss_and_gradient", "discriminator_loss_and_gradient"):
            # Latent-side inputs: n_latent columns (or something else).
            call["latent_cols"] = draw(st.sampled_from([None, 1, 2, 3]))
            call["eps"] = draw(array_spec(r, draw(st.sampled_from([1, 2, 3])), dtype))
        calls.append(call)
    return {"cls": cls, "params": params, "X": X, "y": y, "fit": fit, "callbacks": callbacks,
            "calls": calls}


def _callbacks(kind):
    if kind is None:
        return None
    if kind == "stop":
        return lambda model, logs: True
    if kind == "bad":
        return "not callable"
    return [print, 3]


def _latent_array(call, est, spec_key="X"):
    """Z for generate & co.: a random array with the model's n_latent columns."""
    n_latent = getattr(est, "_params_used", {}).get("n_latent")
    cols = call.get("latent_cols") or n_latent or 2
    spec = dict(call[spec_key])
    if spec.get("kind") in ("array", "list") and len(spec["shape"]) == 2:
        spec["shape"] = [spec["shape"][0], _small(cols, 2)]
    return build_array(spec)


def run_api_method(run, est, call, case, tmp):
    m, cls = call["m"], case["cls"]
    what = f"{cls}.{m}"
    X = build_array(call["X"])
    y = build_labels(call["y"]) if call["y"] is not None else None
    needs_y = cls in NEEDS_Y
    if m in ("fit", "partial_fit", "resume_fit", "fit_transform"):
        # Two epochs at most: keep the case short (the estimator's own epochs
        # hyperparameter is at most 2 here, a resumed fit has at most as many).
        if needs_y or m == "partial_fit" and y is not None and cls == "Classifier":
            run.call(what, getattr(est, m), X, y)
        else:
            run.call(what, getattr(est, m), X)
    elif m in ("transform", "predict", "predict_proba", "predict_log_proba",
               "reconstruction_error", "inverse_transform", "negative_elbo", "discriminate"):
        if m in ("transform", "negative_elbo") and cls == "ConditionalVAE":
            run.call(what, getattr(est, m), X, y)
        elif m == "inverse_transform":
            # Codes: as many columns as the code layer has units (if fitted).
            try:
                code = est._net.sizes[len(est._params_used["hidden"])]
            except (AttributeError, KeyError, TypeError):
                code = None
            run.call(what, est.inverse_transform,
                     _latent_array(dict(call, latent_cols=code), est) if code else X)
        else:
            run.call(what, getattr(est, m), X)
    elif m == "score":
        if needs_y:
            run.call(what, est.score, X, y)
        else:
            run.call(what, est.score, X)
    elif m == "encode":
        run.call(what, est.encode, X, y)
    elif m == "loss_and_gradient":
        if cls in ("VAE", "ConditionalVAE"):
            run.call(what, est.loss_and_gradient, X, build_array(call["eps"]), y)
        elif needs_y:
            run.call(what, est.loss_and_gradient, X, y)
        else:
            run.call(what, est.loss_and_gradient, X)
    elif m == "generate":
        if cls == "Generator":
            run.call(what, est.generate, y)
        elif cls == "ConditionalVAE":
            run.call(what, est.generate, _latent_array(call, est), y)
        else:
            run.call(what, est.generate, _latent_array(call, est))
    elif m in ("sample", "latent"):
        kwargs = {"random_state": call["random_state"]}
        if cls == "ConditionalVAE" and m == "sample":
            kwargs["y"] = y if y is None or np.ndim(y) == 0 else np.asarray(y)[:1]
        run.call(what, getattr(est, m), call["n"], **kwargs)
    elif m == "interpolate":
        x = np.asarray(X) if isinstance(X, np.ndarray) and X.ndim == 2 and len(X) >= 2 else None
        a, b = (x[0], x[1]) if x is not None else (X, X)
        if cls == "ConditionalVAE":
            ya = None if y is None or np.ndim(y) == 0 or len(y) == 0 else np.asarray(y)[0]
            run.call(what, est.interpolate, a, b, call["steps"], y_a=ya, y_b=ya)
        else:
            run.call(what, est.interpolate, a, b, call["steps"])
    elif m == "generator_loss_and_gradient":
        run.call(what, est.generator_loss_and_gradient, _latent_array(call, est))
    elif m == "discriminator_loss_and_gradient":
        run.call(what, est.discriminator_loss_and_gradient, X, build_array(call["eps"]))
    elif m in ("coefs_", "encoder_coefs_", "generator_coefs_"):
        run.call(what, getattr, est, m)
        if m == "coefs_":
            run.call(what, getattr, est, "intercepts_")
        elif m == "encoder_coefs_":
            run.call(what, getattr, est, "decoder_coefs_")
        else:
            run.call(what, getattr, est, "discriminator_coefs_")
    elif m == "save_load":
        kind = call["path"]
        path = {"ok": os.path.join(tmp, "model.fae"),
                "missing_dir": os.path.join(tmp, "missing", "model.fae"),
                "dir": tmp, "int": 3, "none": None,
                "bytes": os.path.join(tmp, "model2.fae").encode()}[kind]
        ok, _ = run.call(what + "(save)", est.save, path,
                         expect=(FileNotFoundError,) + ((IsADirectoryError,) if kind == "dir"
                                                        else ()))
        if ok:
            ok, loaded = run.call(what + "(load)", fusedae.load, path, must_succeed=True)
            if ok and type(loaded) is not type(est):
                raise Finding(f"{what}: loaded a {type(loaded).__name__}")
            if ok:
                use_loaded(run, loaded, cls, X, y, what + "(loaded)")
    elif m == "pickle":
        ok, blob = run.call(what, pickle.dumps, est)
        if ok:
            ok, back = run.call(what + "(loads)", pickle.loads, blob)
            if ok:
                use_loaded(run, back, cls, X, y, what + "(unpickled)")
    elif m == "clone":
        from sklearn.base import clone
        run.call(what, clone, est)
    elif m == "set_params":
        v = _rs(call["value"])
        if call["name"] == "dtype" and v == "np.float64":
            v = np.float64
        run.call(what, est.set_params, **{call["name"]: v})
    else:
        raise AssertionError(m)


def use_loaded(run, est, cls, X, y, what):
    """A prediction-like call on a model that came back from a file."""
    if cls in ("VAE", "ConditionalVAE"):
        run.call(what, est.sample, 2, **({"y": 0} if cls == "ConditionalVAE" else {}))
        run.call(what, est.transform, X, *(() if cls == "VAE" else (y,)))
    elif cls == "GAN":
        run.call(what, est.sample, 2)
    elif cls == "Generator":
        run.call(what, est.generate, y)
    else:
        run.call(what, est.predict, X)


def run_api_case(run, case, tmp):
    cls = getattr(fusedae, case["cls"])
    params = {}
    for k, v in case["params"].items():
        v = _rs(v)
        if k == "dtype" and v == "np.float64":
            v = np.float64
        params[k] = v
    ok, est = run.call(f"{case['cls']}()", cls, **params)
    if not ok:
        raise Finding(f"{case['cls']}(**{params!r}): the constructor must only record "
                      "hyperparameters")
    X = build_array(case["X"])
    y = build_labels(case["y"]) if case["y"] is not None else None
    cb = _callbacks(case["callbacks"])
    what = f"{case['cls']}.{case['fit']}"
    if case["fit"] == "fit":
        if case["cls"] in NEEDS_Y:
            run.call(what, est.fit, X, y, callbacks=cb)
        else:
            run.call(what, est.fit, X, callbacks=cb)
    elif case["fit"] == "partial_fit":
        if case["cls"] == "Generator":
            run.call(what, est.fit, X, y)
        elif case["cls"] in NEEDS_Y:
            run.call(what, est.partial_fit, X, y)
        else:
            run.call(what, est.partial_fit, X)
    for call in case["calls"]:
        run_api_method(run, est, call, case, tmp)


# =====================================================================
# Target "files": fusedae.load on mutated model files
# =====================================================================
def _base_models():
    """Small fitted (and one unfitted) models, as the bytes of their files."""
    rng = np.random.default_rng(0)
    X = rng.random((12, 5))
    y = np.arange(12) % 3
    F = fusedae
    models = [
        ("Autoencoder", F.Autoencoder(n_hidden=3, epochs=2, random_state=0), (X,)),
        ("SparseAutoencoder", F.SparseAutoencoder(n_hidden=(4, 3), epochs=1, random_state=0),
         (X,)),
        ("DenoisingAutoencoder", F.DenoisingAutoencoder(n_hidden=3, epochs=1, dtype="float64",
                                                        random_state=1), (X,)),
        ("Autoencoder-early", F.Autoencoder(n_hidden=3, epochs=2, early_stopping=True,
                                            validation_fraction=0.25, random_state=0), (X,)),
        ("Classifier", F.Classifier(n_hidden=(4,), epochs=2, random_state=0), (X, y)),
        ("Classifier-lbfgs", F.Classifier(n_hidden=(), optimizer="lbfgs", epochs=2,
                                          random_state=0), (X, np.array(list("abc") * 4))),
        ("Generator", F.Generator(n_hidden=3, epochs=2, random_state=0), (X, y)),
        ("VAE", F.VAE(n_latent=2, n_hidden=(4,), epochs=2, random_state=0), (X,)),
        ("ConditionalVAE", F.ConditionalVAE(n_latent=2, n_hidden=(4,), epochs=1, random_state=0),
         (X, y)),
        ("GAN", F.GAN(n_latent=2, g_hidden=(4,), d_hidden=(4,), epochs=1, random_state=0), (X,)),
        ("unfitted", F.Autoencoder(n_hidden=3), None),
    ]
    out = []
    tmp = tempfile.mkdtemp(prefix="fusedae-fuzz-base-")
    try:
        for name, est, data in models:
            if data is not None:
                est.fit(*data)
            path = os.path.join(tmp, name + ".fae")
            est.save(path)
            with open(path, "rb") as f:
                out.append((name, f.read(), X, y))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


_BASES = None


def base_models():
    global _BASES
    if _BASES is None:
        _BASES = _base_models()
    return _BASES


N_BASE_MODELS = 11

# Replacement values for metadata edits.
JSON_VALUES = (0, 1, -1, 2, 3, 2**31, 2**40, 2**63, -2**63, 10**30, 1.5, -0.5, 1e308, 0.0,
               "", "x", "nan", "float32", "Autoencoder", None, True, False, [], {}, [1, 2],
               [0, 0, 0], {"t": "array", "name": "a0"}, {"t": "array", "name": "zz"},
               {"t": "float", "v": "nan"}, {"t": "float", "v": "1e999"}, {"t": "tuple", "v": [1]},
               {"t": "tuple", "v": 3}, {"t": "dict", "v": {}}, {"t": "dict", "v": [1]},
               {"t": "RandomState", "v": []},
               {"t": "RandomState", "v": ["MT19937", {"t": "array", "name": "a0"}, 0, 0, 0.0]},
               {"t": "bogus"}, {"t": None}, {"x": 1}, [[[[]]]], {"t": "array"})


@st.composite
def mutation(draw):
    kind = draw(st.sampled_from(["flip", "byte", "truncate", "insert", "delete", "zip", "meta",
                                 "meta", "meta", "param", "npy_header", "npy_values"]))
    pos = draw(st.integers(0, 2**20))
    if kind == "flip":
        return {"k": kind, "pos": pos, "bit": draw(st.integers(0, 7))}
    if kind == "byte":
        return {"k": kind, "pos": pos, "value": draw(st.integers(0, 255))}
    if kind == "truncate":
        return {"k": kind, "pos": pos}
    if kind == "insert":
        return {"k": kind, "pos": pos, "data": draw(st.binary(min_size=1, max_size=8))}
    if kind == "delete":
        return {"k": kind, "pos": pos, "n": draw(st.integers(1, 64))}
    if kind == "zip":
        return {"k": kind, "member": draw(st.integers(0, 63)),
                "op": draw(st.sampled_from(["flip", "truncate", "drop", "dup", "rename", "extra",
                                            "empty", "junk", "swap", "deflate"])),
                "pos": pos, "fix_sha": draw(st.booleans())}
    if kind == "meta":
        return {"k": kind, "path": draw(st.integers(0, 2**16)),
                "op": draw(st.sampled_from(["set", "set", "set", "delete", "add", "deep",
                                            "wrap", "text"])),
                "value": draw(st.sampled_from(JSON_VALUES)), "pos": pos}
    if kind == "param":
        # The same hyperparameter in params and in the state's _params_used:
        # the file stays consistent and the value reaches the model.
        return {"k": kind, "name": draw(st.sampled_from(
            ["batch_size", "n_threads", "epochs", "learning_rate", "dtype", "n_hidden",
             "weight_decay", "noise_level", "random_state", "n_latent", "shuffle",
             "optimizer", "momentum", "d_steps", "n_iter_no_change"])),
            "value": draw(st.sampled_from(JSON_VALUES[:24] + (10**6, 1025, 2**30)))}
    if kind == "npy_header":
        return {"k": kind, "member": draw(st.integers(0, 63)),
                "edit": draw(st.sampled_from(["shape_grow", "shape_shrink", "shape_2d",
                                              "dtype_f2", "dtype_i8", "dtype_U", "fortran",
                                              "big_endian", "scalar"])),
                "sync": draw(st.booleans())}
    return {"k": kind, "member": draw(st.integers(0, 63)),
            "fill": draw(st.sampled_from(["nan", "inf", "huge", "zeros", "negative", "tiny"])),
            "counters": draw(st.sampled_from([None, "n_iter_", "optimizer_steps", "latent_steps",
                                              "seed", "epochs", "noise_steps"])),
            "counter_value": draw(st.sampled_from([-1, 0, 2**62, 2**63 - 1, 10**6, -10**12]))}


@st.composite
def files_case(draw):
    return {"base": draw(st.integers(0, N_BASE_MODELS - 1)),
            "mutations": draw(st.lists(mutation(), min_size=1, max_size=3)),
            "use": draw(st.sampled_from(["predict", "train", "save", "none"]))}


def _read_zip(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def _write_zip(members, compression=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(out, "w", compression=compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return out.getvalue()


def _json_paths(node, prefix=()):
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_json_paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_json_paths(v, prefix + (i,)))
    return out


def _get(node, path):
    for p in path:
        node = node[p]
    return node


def _edit_meta(members, fn):
    """Apply fn(meta) to metadata.json of a member list (a no-op if there is none)."""
    for i, (name, data) in enumerate(members):
        if name == "metadata.json":
            try:
                meta = json.loads(data)
            except (ValueError, RecursionError):
                return members
            try:
                meta = fn(meta)
            except (KeyError, IndexError, TypeError, AttributeError):
                return members  # an earlier mutation left nothing to edit there
            text = meta if isinstance(meta, (bytes, str)) else json.dumps(meta)
            members[i] = (name, text.encode() if isinstance(text, str) else text)
            return members
    return members


def _fix_sha(members):
    """Make the metadata's hashes, dtypes and shapes describe the members as they are."""
    import hashlib

    def fn(meta):
        listing = meta.get("arrays") if isinstance(meta, dict) else None
        if not isinstance(listing, dict):
            return meta
        for name, data in members:
            key = name[len("arrays/"):-len(".npy")] if name.startswith("arrays/") else None
            if key in listing and isinstance(listing[key], dict):
                listing[key]["sha256"] = hashlib.sha256(data).hexdigest()
                try:
                    arr = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
                    listing[key]["dtype"] = arr.dtype.str
                    listing[key]["shape"] = list(arr.shape)
                except Exception:  # noqa: BLE001 - an unreadable member stays as it is
                    pass
        return meta

    return _edit_meta(members, fn)


def _array_members(members):
    return [i for i, (n, _) in enumerate(members) if n.startswith("arrays/")]


def apply_mutation(data, mut):
    k = mut["k"]
    if k in ("flip", "byte", "truncate", "insert", "delete"):
        b = bytearray(data)
        pos = mut["pos"] % (len(b) + 1)
        if k == "flip" and b:
            b[pos % len(b)] ^= 1 << mut["bit"]
        elif k == "byte" and b:
            b[pos % len(b)] = mut["value"]
        elif k == "truncate":
            del b[pos:]
        elif k == "insert":
            b[pos:pos] = mut["data"]
        elif k == "delete":
            del b[pos:pos + mut["n"]]
        return bytes(b)
    try:
        members = _read_zip(data)
    except Exception:  # noqa: BLE001 - already broken by an earlier mutation
        return data
    if not members:
        return data
    if k == "zip":
        i = mut["member"] % len(members)
        name, content = members[i]
        op = mut["op"]
        if op == "flip" and content:
            c = bytearray(content)
            c[mut["pos"] % len(c)] ^= 0x10
            members[i] = (name, bytes(c))
        elif op == "truncate":
            members[i] = (name, content[:mut["pos"] % (len(content) + 1)])
        elif op == "drop":
            del members[i]
        elif op == "dup":
            members.append((name, content))
        elif op == "rename":
            members[i] = (name + "x", content)
        elif op == "extra":
            members.append(("arrays/extra.npy", content))
        elif op == "empty":
            members[i] = (name, b"")
        elif op == "junk":
            members[i] = (name, bytes(range(256)) * 4)
        elif op == "swap" and len(members) > 1:
            j = (i + 1) % len(members)
            members[i], members[j] = (name, members[j][1]), (members[j][0], content)
        if mut["fix_sha"]:
            members = _fix_sha(members)
        return _write_zip(members, zipfile.ZIP_DEFLATED if op == "deflate" else zipfile.ZIP_STORED)
    if k == "meta":
        def fn(meta):
            if mut["op"] == "text":  # not JSON any more
                text = json.dumps(meta)
                p = mut["pos"] % (len(text) + 1)
                return text[:p] + "}{\x00" + text[p:]
            if mut["op"] == "deep":  # nesting deeper than any parser's recursion limit
                return "[" * 100_000 + "]" * 100_000
            paths = _json_paths(meta)
            path = paths[mut["path"] % len(paths)]
            if not path:
                return mut["value"] if mut["op"] == "set" else meta
            parent, key = _get(meta, path[:-1]), path[-1]
            if mut["op"] == "set":
                parent[key] = mut["value"]
            elif mut["op"] == "delete":
                del parent[key]
            elif mut["op"] == "add" and isinstance(parent, dict):
                parent[f"extra_{key}"] = mut["value"]
            elif mut["op"] == "add":
                parent.append(mut["value"])
            elif mut["op"] == "wrap":
                node = parent[key]
                for _ in range(60):
                    node = [node]
                parent[key] = node
            return meta
        return _write_zip(_edit_meta(members, fn))
    if k == "param":
        def fn(meta):
            for where in (meta.get("params"), (meta.get("state") or {}).get("v", {})
                          .get("_params_used", {}).get("v") if isinstance(meta.get("state"), dict)
                          else None):
                if isinstance(where, dict) and "v" in where and isinstance(where["v"], dict):
                    where = where["v"]
                if isinstance(where, dict) and mut["name"] in where:
                    where[mut["name"]] = mut["value"]
            return meta
        return _write_zip(_edit_meta(members, fn))
    arrays = _array_members(members)
    if not arrays:
        return data
    i = arrays[mut["member"] % len(arrays)]
    name, content = members[i]
    try:
        arr = np.lib.format.read_array(io.BytesIO(content), allow_pickle=False)
    except Exception:  # noqa: BLE001
        return data
    if k == "npy_header":
        e = mut["edit"]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if e == "shape_grow":
                arr = np.concatenate([arr.ravel(), arr.ravel()[:1]]) if arr.size else arr
            elif e == "shape_shrink":
                arr = arr.ravel()[:-1]
            elif e == "shape_2d":
                arr = arr.reshape(1, -1)
            elif e == "dtype_f2":
                arr = arr.astype(np.float16) if arr.dtype.kind in "fiu" else arr
            elif e == "dtype_i8":
                arr = arr.astype(np.int64) if arr.dtype.kind in "fiub" else arr
            elif e == "dtype_U":
                arr = arr.astype("U8")
            elif e == "fortran" and arr.ndim >= 1:
                arr = np.asfortranarray(np.atleast_2d(arr).T)
            elif e == "big_endian" and arr.dtype.kind in "fiu":
                arr = arr.astype(arr.dtype.newbyteorder(">"))
            elif e == "scalar":
                arr = np.asarray(arr.ravel()[0] if arr.size else 0)
    else:
        if arr.dtype.kind == "f" and arr.size:
            fill = {"nan": NAN, "inf": INF, "huge": np.finfo(arr.dtype).max, "zeros": 0.0,
                    "negative": -1.0, "tiny": np.finfo(arr.dtype).smallest_subnormal}
            arr = arr.copy()
            flat = arr.reshape(-1)  # a view (arr is contiguous): 0-d arrays too
            flat[arr.size // 2:] = fill[mut["fill"]]
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    members[i] = (name, buf.getvalue())
    if k == "npy_header" and not mut["sync"]:
        return _write_zip(members)
    members = _fix_sha(members)
    if k == "npy_values" and mut["counters"]:
        def fn(meta, key=mut["counters"], v=mut["counter_value"]):
            def walk(node):
                if isinstance(node, dict):
                    for kk in node:
                        if kk == key and isinstance(node[kk], int):
                            node[kk] = v
                        else:
                            walk(node[kk])
                elif isinstance(node, list):
                    for x in node:
                        walk(x)
            walk(meta)
            return meta
        members = _edit_meta(members, fn)
    return _write_zip(members)


def _affordable(est):
    """Whether training `est` further stays a short case: its epoch counts
    (which a file may have edited) are small."""
    p = getattr(est, "_params_used", None)
    if not isinstance(p, dict):
        return False
    total = sum(p.get(k, 0) for k in ("epochs", "d_pretrain_epochs", "g_pretrain_epochs")
                if isinstance(p.get(k, 0), int))
    n_iter = getattr(est, "n_iter_", 0)
    batch = p.get("batch_size", 1)
    return total <= 4 and isinstance(n_iter, int) and 0 <= n_iter and isinstance(batch, int)


def run_files_case(run, case, tmp):
    name, data, X, y = base_models()[case["base"]]
    for mut in case["mutations"]:
        data = apply_mutation(data, mut)
    path = os.path.join(tmp, "mutated.fae")
    with open(path, "wb") as f:
        f.write(data)
    ok, est = run.call(f"load[{name}]", fusedae.load, path)
    if not ok or case["use"] == "none":
        return
    cls = type(est).__name__
    what = f"load[{name}] -> {cls}"
    if case["use"] == "save":
        ok, _ = run.call(what + ".save", est.save, os.path.join(tmp, "again.fae"))
        if ok:
            run.call(what + " reloaded", fusedae.load, os.path.join(tmp, "again.fae"))
        return
    if not hasattr(est, "_params_used"):
        return  # unfitted: nothing to predict with
    if case["use"] == "train":
        if _affordable(est):
            args = (X, y) if cls in NEEDS_Y else (X,)
            run.call(what + ".resume_fit", est.resume_fit, *args)
            if hasattr(est, "partial_fit"):
                run.call(what + ".partial_fit", est.partial_fit, *args)
        return
    use_loaded(run, est, cls, X, y, what)


# =====================================================================
# The driver
# =====================================================================
class CaseLog:
    """One line per case, written (and flushed) before the case runs."""

    FSYNC_EVERY = 50

    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="utf-8") if path else None
        self.n = 0

    def write(self, target, i, case):
        if self.f is None:
            return
        line = repr(case).replace("\n", "\\n")
        self.f.write(f"{target} #{i}: {line}\n")
        self.f.flush()
        self.n += 1
        if self.n % self.FSYNC_EVERY == 0:
            os.fsync(self.f.fileno())

    def close(self):
        if self.f is not None:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()


TARGETS = {
    "engine": (engine_cases, lambda run, case, tmp: run_engine_case(run, case)),
    "api": (api_case, run_api_case),
    "files": (files_case, run_files_case),
}


def run_target(target, n_cases, seed, log):
    strategy_fn, execute = TARGETS[target]
    stats = {"cases": 0, "known": {}, "failing": None, "outcomes": {}}
    runner = Runner(target, stats)
    tmp = tempfile.mkdtemp(prefix=f"fusedae-fuzz-{target}-")
    if target == "files":
        base_models()

    @hypothesis.seed(seed)
    @settings(max_examples=n_cases, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=False,
              report_multiple_bugs=False,
              phases=(Phase.generate, Phase.shrink))
    @given(strategy_fn())
    def prop(case):
        stats["cases"] += 1
        runner.case = case
        log.write(target, stats["cases"], case)
        if engine.get_num_threads() != DEFAULT_THREADS:
            engine.set_num_threads(DEFAULT_THREADS)
        case_dir = os.path.join(tmp, "case")
        os.makedirs(case_dir, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                execute(runner, case, case_dir)
        except Finding:
            stats["failing"] = case
            raise
        except Exception:
            # Raised by the driver itself, outside any checked call: a bug
            # here, reported as a finding all the same.
            stats["failing"] = case
            raise
        finally:
            shutil.rmtree(case_dir, ignore_errors=True)

    t0 = time.perf_counter()
    try:
        prop()
        failure = None
    except Exception as exc:  # noqa: BLE001 - hypothesis re-raises the minimal failure
        failure = exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t0
    return stats, failure, wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=["api", "engine", "files", "all"], default="all")
    ap.add_argument("--cases", type=int, default=100, help="cases per target")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", default=None, help="append one line per case here")
    ap.add_argument("--outcomes", type=int, default=0, metavar="K",
                    help="also print the K most frequent outcomes (call, result) per target: "
                         "what the cases reached")
    args = ap.parse_args(argv)
    targets = ["engine", "api", "files"] if args.target == "all" else [args.target]
    log = CaseLog(args.log)
    findings = 0
    try:
        for target in targets:
            stats, failure, wall = run_target(target, args.cases, args.seed, log)
            if failure is not None:
                findings += 1
                print(f"\n=== FINDING in target {target!r} (seed {args.seed}) ===")
                print("minimal case:")
                print(f"  {stats['failing']!r}")
                print("".join(traceback.format_exception(failure)), end="")
                print(f"{target}: {stats['cases']} cases, 1 finding ({wall:.1f} s)")
            else:
                known = "".join(f"; known {k}: {n}" for k, n in sorted(stats["known"].items()))
                print(f"{target}: {stats['cases']} cases, 0 findings ({wall:.1f} s{known})")
            if args.outcomes:
                ranked = sorted(stats["outcomes"].items(), key=lambda kv: -kv[1])
                for (what, res), n in ranked[:args.outcomes]:
                    print(f"  {n:6d}  {what}  ->  {res}")
            sys.stdout.flush()
    finally:
        log.close()
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
