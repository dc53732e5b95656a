"""CPU benchmark: training steps per second of a softmax classifier.

What is measured
----------------
The throughput (steps per second) of one full training step -- forward
pass, softmax, categorical cross entropy, back-propagation and an SGD
update -- repeated on one fixed batch, for three implementations of the
same model:

1. ``fusedae``: the compiled engine (``fusedae._engine``),
   ``net.train_step(X, Y)`` on ``Network([D, H, K], ["relu", "softmax"],
   "categorical_cross_entropy", "float32")``;
2. ``numpy``: the NumPy reference (the specification),
   ``fusedae.reference.optim.train_step`` in float32;
3. ``torch``: PyTorch eager, ``nn.Linear``-ReLU-``nn.Linear``,
   ``F.cross_entropy(logits, labels)``, autograd and ``torch.optim.SGD``
   with ``zero_grad(set_to_none=True)`` (skipped, with a note, if torch
   cannot be imported).

The model is a D-H-K classifier: a ReLU hidden layer and a softmax output,
loss the categorical cross entropy averaged over the batch
``-(1/B) sum_m log softmax(z_m)_{y_m}`` with one-hot targets (the engine
and the reference take the (B, K) one-hot matrix Y, PyTorch the (B,) int64
labels), no weight decay, SGD with learning rate 0.1, float32.

All three start from the same parameters (the reference's Glorot init,
seed 0; ``nn.Linear`` gets the transposed weights, since it keeps them as
(out, in)) and the same batch: "MNIST-like" inputs, each entry nonzero
with probability 0.2, then U(0, 1), and labels uniform over the K classes.

Workloads (D, H, K, B): C-digits (64, 64, 10, 64), C-mnist
(784, 256, 10, 256), C-wide (1024, 1024, 100, 1024). The GFLOP/s column
counts the three matrix products forward and backward, two flops per
multiply-add, and nothing else (bias, ReLU, softmax and the update are
O(B (H + K)) or O(D H + H K)):

    forward   2 B (D H + H K)       X W1, A1 W2
    backward  2 B (D H + 2 H K)     A1^T dZ2, dZ2 W2^T, X^T dZ1
    per step  2 B (2 D H + 3 H K)

(no gradient is propagated to the inputs, so the first layer's backward
pass has one product, not two). The count is for dense products; the
engine skips the zero entries of X (80% of them here) in the two products
involving X, so its figure is a dense-equivalent rate, above what it
reaches on dense inputs.

How
---
For each thread count t (``--threads``), the engine gets
``engine.set_num_threads(t)``, NumPy ``threadpoolctl.threadpool_limits(t)``
and PyTorch ``torch.set_num_threads(t)``; all are restored afterwards.

Before any timing, each workload is checked once: every competitor takes
5 SGD steps from the same parameters on the same batch, and then the
loss at its parameters is evaluated. The engine's must be finite and
within 1e-3 (relative) of the reference's, or the run stops; PyTorch's is
compared the same way and a difference is reported, not fatal.

For each workload, every competitor is warmed up (at least 3 steps and
0.3 s), and its warm-up rate fixes how many steps fill one window of about
``--seconds``. Then, for each of ``--reps`` repetitions, the competitors
are timed one after another -- interleaved, the starting competitor
rotating each repetition -- so that slow drifts of a noisy machine hit all
of them alike. Each window yields one steps/s figure; the report gives the
median over repetitions (and min, max). Losses are collected inside the
timed loop and checked for non-finite values outside it. Each window also
records how many CPUs other processes kept busy meanwhile (from
/proc/stat), since on a small shared machine a single foreign process can
halve a two-thread measurement.

Usage::

    python bench/classifier.py [--reps 7] [--threads 1,2] [--seconds 0.5]
                               [--workloads C-digits,C-mnist,C-wide]
                               [--out PATH]

Prints one table per thread count and writes every raw measurement as JSON
(default ``bench/results/classifier-<YYYY-MM-DD>.json``).
"""
import datetime
import functools
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.ensure_fusedae_importable()
import fusedae  # noqa: E402
from fusedae._native import engine  # noqa: E402  (loads the engine's BLAS)
from fusedae.reference import mlp, optim  # noqa: E402

torch, TORCH_MISSING = _common.optional_torch()

WORKLOADS = {
    "C-digits": (64, 64, 10, 64),
    "C-mnist": (784, 256, 10, 256),
    "C-wide": (1024, 1024, 100, 1024),
}
LEARNING_RATE = 0.1
PARAM_SEED = 0
DATA_SEED = 1234
LABEL_SEED = 4321
VERIFY_STEPS = 5
VERIFY_RTOL = 1e-3
FLOPS_FORMULA = "2*B*(2*D*H + 3*H*K)"


def flops_per_step(D, H, K, B):
    """Forward 2B(DH + HK) plus backward 2B(DH + 2HK)."""
    return 2 * B * (2 * D * H + 3 * H * K)


def reference_spec(D, H, K):
    return mlp.MLPSpec(sizes=(D, H, K), activations=("relu", "softmax"),
                       loss="categorical_cross_entropy")


def initial_params(D, H, K):
    """The reference's initial (Ws, bs), float32, shared by all competitors."""
    return mlp.init_params(reference_spec(D, H, K),
                           np.random.default_rng(PARAM_SEED),
                           dtype=np.float32)


def make_batch(D, K, B):
    """(X float32 (B, D), labels int64 (B,), one-hot Y float32 (B, K))."""
    X = _common.mnist_like(B, D, DATA_SEED)
    labels, Y = _common.one_hot_labels(B, K, LABEL_SEED)
    return X, labels, Y


# ---------------------------------------------------------------- competitors
#
# Each make_* function returns (step, to_floats), as _common.time_competitors
# expects of its factories. The batch is (X, labels, Y).

def make_engine_network(D, H, K, Ws, bs):
    net = engine.Network([D, H, K], ["relu", "softmax"],
                         "categorical_cross_entropy", "float32")
    net.init_params(PARAM_SEED)
    net.params[:] = mlp.flatten(Ws, bs)  # [W1.ravel(), b1, W2.ravel(), b2]
    net.set_optimizer("sgd", LEARNING_RATE)
    return net


def make_fusedae(D, H, K, batch, Ws, bs):
    X, _, Y = batch
    net = make_engine_network(D, H, K, Ws, bs)

    def step():
        return net.train_step(X, Y)

    return step, _common.identity_floats


def make_numpy(D, H, K, batch, Ws, bs):
    X, _, Y = batch
    spec = reference_spec(D, H, K)
    Ws = [W.copy() for W in Ws]
    bs = [b.copy() for b in bs]
    opt = optim.SGD(LEARNING_RATE)

    def step():
        return optim.train_step(Ws, bs, X, Y, spec, opt)

    return step, _common.identity_floats


def make_torch_model(D, H, K, Ws, bs):
    model = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(),
                                torch.nn.Linear(H, K))
    with torch.no_grad():
        # nn.Linear keeps its weight as (out, in): the transpose of ours.
        for linear, W, b in zip((model[0], model[2]), Ws, bs):
            linear.weight.copy_(torch.from_numpy(W.T))
            linear.bias.copy_(torch.from_numpy(b))
    return model


def make_torch(D, H, K, batch, Ws, bs):
    X, labels, _ = batch
    model = make_torch_model(D, H, K, Ws, bs)
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    x = torch.from_numpy(X)
    y = torch.from_numpy(labels)
    cross_entropy = torch.nn.functional.cross_entropy

    def step():
        loss = cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def to_floats(losses):
        if not losses:
            return []
        return torch.stack(losses).tolist()

    return step, to_floats


def competitors():
    names = {"fusedae": make_fusedae, "numpy": make_numpy}
    if torch is not None:
        names["torch"] = make_torch
    return names


# --------------------------------------------------------------- verification

def _relative(a, b):
    return abs(a - b) / max(abs(b), np.finfo(np.float32).tiny)


def verify(name, D, H, K, batch):
    """Loss of each competitor after VERIFY_STEPS SGD steps against the
    reference's; exits if the engine's differs, reports if torch's does."""
    X, labels, Y = batch
    spec = reference_spec(D, H, K)
    Ws, bs = initial_params(D, H, K)

    net = make_engine_network(D, H, K, Ws, bs)
    ref_Ws = [W.copy() for W in Ws]
    ref_bs = [b.copy() for b in bs]
    opt = optim.SGD(LEARNING_RATE)
    engine_steps, reference_steps = [], []
    for _ in range(VERIFY_STEPS):
        engine_steps.append(float(net.train_step(X, Y)))
        reference_steps.append(
            float(optim.train_step(ref_Ws, ref_bs, X, Y, spec, opt)))
    engine_loss = float(net.loss_and_gradient(X, Y))
    reference_loss = float(mlp.loss(ref_Ws, ref_bs, X, Y, spec))
    rel = _relative(engine_loss, reference_loss)
    ok = (math.isfinite(engine_loss) and math.isfinite(reference_loss)
          and rel <= VERIFY_RTOL)
    result = {"engine_loss": engine_loss, "reference_loss": reference_loss,
              "relative_difference": rel, "steps": VERIFY_STEPS,
              "rtol": VERIFY_RTOL, "agree": ok,
              "engine_step_losses": engine_steps,
              "reference_step_losses": reference_steps}
    if not ok:
        sys.exit(f"FAIL {name}: after {VERIFY_STEPS} steps the engine's loss "
                 f"is {engine_loss!r}, the reference's {reference_loss!r} "
                 f"(relative difference {rel:.3g} > {VERIFY_RTOL})")
    line = (f"{name}: engine agrees (engine {engine_loss:.6g}, reference "
            f"{reference_loss:.6g}, relative difference {rel:.2e})")

    if torch is not None:
        model = make_torch_model(D, H, K, Ws, bs)
        topt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        x, y = torch.from_numpy(X), torch.from_numpy(labels)
        torch_steps = []
        for _ in range(VERIFY_STEPS):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            topt.zero_grad(set_to_none=True)
            loss.backward()
            topt.step()
            torch_steps.append(float(loss.detach()))
        with torch.no_grad():
            torch_loss = float(torch.nn.functional.cross_entropy(model(x), y))
        trel = _relative(torch_loss, reference_loss)
        tok = math.isfinite(torch_loss) and trel <= VERIFY_RTOL
        result.update({"torch_loss": torch_loss,
                       "torch_relative_difference": trel,
                       "torch_agree": tok,
                       "torch_step_losses": torch_steps})
        line += (f"; torch {'agrees' if tok else 'DIFFERS'} ({torch_loss:.6g}, "
                 f"relative difference {trel:.2e})")
    print(line + f" after {VERIFY_STEPS} steps")
    return result


# ------------------------------------------------------------------ measuring

def bench_workload(name, D, H, K, B, batch, reps, seconds):
    """Warm up, calibrate and time every competitor on one workload at the
    current thread settings. Returns a JSON-ready dict."""
    Ws, bs = initial_params(D, H, K)
    factories = {comp: functools.partial(make, D, H, K, batch, Ws, bs)
                 for comp, make in competitors().items()}
    flops = flops_per_step(D, H, K, B)
    out = {"D": D, "H": H, "K": K, "B": B, "flops_per_step": flops}
    out.update(_common.time_competitors(factories, reps, seconds, flops))
    return out


# ----------------------------------------------------------------------- main

def parse_args(argv=None):
    return _common.parse_args(
        argv, "Training steps/s of a softmax classifier: fusedae vs NumPy "
              "vs PyTorch (CPU).", WORKLOADS, "classifier")


def main(argv=None):
    args = parse_args(argv)
    today = datetime.date.today().isoformat()
    out_path = args.out or _common.default_out_path("classifier", today)

    machine = _common.machine_info()
    isa = make_engine_network(*WORKLOADS["C-digits"][:3],
                              *initial_params(*WORKLOADS["C-digits"][:3])).isa
    print(f"CPU: {machine['cpu_model']} ({machine['nproc']} logical CPUs)")
    print(f"numpy {np.__version__}, fusedae {fusedae.__version__} "
          f"(engine ISA {isa}, OpenBLAS core {engine.blas_corename()}), "
          + (f"torch {torch.__version__}" if torch is not None
             else f"torch not available ({TORCH_MISSING}): PyTorch skipped"))

    data = {}
    for name in args.workloads:
        D, _, K, B = WORKLOADS[name]
        data[name] = make_batch(D, K, B)

    print("\nverification (loss after "
          f"{VERIFY_STEPS} SGD steps vs the NumPy reference):")
    verification = {}
    for name in args.workloads:
        D, H, K, _ = WORKLOADS[name]
        verification[name] = verify(name, D, H, K, data[name])

    runs = []
    for t in args.threads:
        with _common.ThreadSettings(t, engine, torch) as settings:
            threads_seen = settings.seen()
            results = {}
            for name in args.workloads:
                D, H, K, B = WORKLOADS[name]
                print(f"  timing {name} with {t} thread(s)...", flush=True)
                results[name] = bench_workload(name, D, H, K, B, data[name],
                                               args.reps, args.seconds)
        _common.print_table(t, results)
        runs.append({"threads": t, "threads_seen": threads_seen,
                     "workloads": results})

    notes = []
    if torch is None:
        notes.append(f"PyTorch skipped ({TORCH_MISSING})")
    else:
        differ = [n for n, v in verification.items() if not v["torch_agree"]]
        if differ:
            notes.append("PyTorch's loss after the check's steps differs from "
                         "the reference's by more than "
                         f"{VERIFY_RTOL} (relative) on {', '.join(differ)}")
    for note in notes:
        print("note: " + note)

    report = {
        "date": today,
        "timestamp": datetime.datetime.now().astimezone().isoformat(),
        "command": [sys.executable] + sys.argv,
        "settings": {"reps": args.reps, "threads": args.threads,
                     "seconds_per_window": args.seconds,
                     "workloads": {n: dict(zip("DHKB", WORKLOADS[n]))
                                   for n in args.workloads},
                     "model": "D-H-K, relu hidden, softmax output, "
                              "categorical cross entropy (batch mean)",
                     "learning_rate": LEARNING_RATE, "weight_decay": 0.0,
                     "dtype": "float32", "param_seed": PARAM_SEED,
                     "data_seed": DATA_SEED, "label_seed": LABEL_SEED,
                     "data": "each entry nonzero with p=0.2, then U(0,1); "
                             "labels uniform over K, one-hot",
                     "flops_per_step": FLOPS_FORMULA},
        "machine": machine,
        "versions": _common.versions(machine, fusedae, torch),
        "engine": {"isa": isa, "supported_isas": list(engine.supported_isas()),
                   "blas_corename": engine.blas_corename()},
        "torch": _common.torch_info(torch, TORCH_MISSING),
        "verification": verification,
        "runs": runs,
        "notes": notes,
    }
    _common.write_report(report, out_path)


if __name__ == "__main__":
    main()
