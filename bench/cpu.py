"""CPU benchmark: training steps per second of a sparse autoencoder.

What is measured
----------------
The throughput (steps per second) of one full training step -- forward
pass, squared-error loss, KL sparsity penalty, back-propagation and an SGD
update -- repeated on one fixed batch, for three implementations of the
same model:

1. ``fusedae``: the compiled engine, ``net.train_step(X, X)``;
2. ``numpy``: the NumPy reference (the specification),
   ``fusedae.reference.optim.train_step`` in float32;
3. ``torch``: PyTorch eager with autograd and ``torch.optim.SGD`` (skipped,
   with a note, if torch cannot be imported).

The model is a D-N-D sparse autoencoder, sigmoid hidden and output layers,
loss ``(1/B) sum 1/2 ||xhat - x||^2 + beta sum_n KL(rho || rhohat_n)`` with
``rhohat`` the batch mean of the hidden activations, ``rho = 0.05``,
``beta = 3``, SGD with learning rate 0.1, float32. The engine and the
reference clamp ``rhohat`` away from 0 and 1 inside the KL term; the
PyTorch version is written the plain way, without a clamp, so it may go
non-finite (that is counted and reported, and timing carries on).

All three start from the same parameters (the reference's Glorot init,
seed 0) and the same "MNIST-like" batch: each entry nonzero with
probability 0.2, then U(0, 1).

Workloads (D, N, B): W-tiny (64, 16, 64), W-mnist (784, 196, 256),
W-wide (1024, 1024, 1024). A step costs about 10 B D N flops (two GEMMs
forward, three backward, two flops per multiply-add), which gives the
GFLOP/s column.

How
---
For each thread count t (``--threads``), the engine gets
``engine.set_num_threads(t)``, NumPy ``threadpoolctl.threadpool_limits(t)``
and PyTorch ``torch.set_num_threads(t)``; all are restored afterwards.

Before any timing, each workload is checked once: engine and reference
take 5 SGD steps from the same parameters, and the engine's loss must then
be finite and within 1e-3 (relative) of the reference's.

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

    python bench/cpu.py [--reps 7] [--threads 1,2] [--seconds 0.5]
                        [--workloads W-tiny,W-mnist,W-wide] [--out PATH]

Prints one table per thread count and writes every raw measurement as JSON
(default ``bench/results/cpu-<YYYY-MM-DD>.json``).

Every peer, every workload: ``--all``
-------------------------------------
``python bench/cpu.py --all`` runs fusedae, the NumPy reference and -- when
installed -- PyTorch eager, ``torch.compile`` and JAX ``jit`` on every
workload family, at 1 and 2 threads (bench/cpu_all.py; the implementations
are bench/peers_*.py, the workloads bench/cpu_workloads.py):

- ``sparse``: the three sparse AE steps above;
- ``vae``: one VAE step, 784-400-20, B=128, Adam (the model of
  bench/vae_torch.py);
- ``gan``: one GAN step (a D step and a G step), G 100-256-784,
  D 784-256-1, B=64, Adam (fusedae.GAN's defaults);
- ``epoch``: whole epochs of fit (``Network.fit_epoch``) of W-mnist on
  10240 rows, batch 256, SGD: in order (E-inorder), shuffled (E-shuffled),
  shuffled with Gaussian noise sigma=0.3 (E-gaussian), against the same
  epoch written plainly for each peer;
- ``memory``: the peak RSS of a 2-epoch fit (M-fit), against a bound.

Each implementation runs in its own worker process (bench/cpu_worker.py,
``python bench/cpu.py --worker IMPL WORKLOAD THREADS``), pinned to CPUs
0..t-1, with ``OPENBLAS_CORETYPE`` removed from its environment unless
``--keep-env``; the workers of one (workload, threads) group are checked
against the NumPy reference, warmed up, calibrated and then timed one at a
time in ``--reps`` interleaved rounds. Markdown tables go to stdout and to a
``.md`` beside the JSON (default ``bench/results/cpu-all-<YYYY-MM-DD>.json``).
``--workloads`` takes workload names or family names (``--workloads
vae,E-gaussian``) and ``--threads`` thread counts, to run single groups.

Usage::

    python bench/cpu.py --all [--reps 7] [--seconds 0.5] [--threads 1,2]
                        [--workloads sparse,vae,gan,epoch,memory]
                        [--keep-env] [--torch-trace-autograd] [--out PATH]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    # A worker of --all: it pins itself and sets its environment before
    # importing anything heavy, so nothing else is imported here.
    import cpu_worker
    sys.exit(cpu_worker.main(sys.argv[2:]))

import datetime  # noqa: E402
import functools  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402

import _common  # noqa: E402

_common.ensure_fusedae_importable()
import fusedae  # noqa: E402
from fusedae._native import engine  # noqa: E402
from fusedae.reference import mlp, optim  # noqa: E402

torch, TORCH_MISSING = _common.optional_torch()

WORKLOADS = {
    "W-tiny": (64, 16, 64),
    "W-mnist": (784, 196, 256),
    "W-wide": (1024, 1024, 1024),
}
RHO = 0.05
BETA = 3.0
LEARNING_RATE = 0.1
PARAM_SEED = 0
DATA_SEED = 1234
VERIFY_STEPS = 5
VERIFY_RTOL = 1e-3


def reference_spec(D, N):
    return mlp.MLPSpec(sizes=(D, N, D), activations=("sigmoid", "sigmoid"),
                       loss="squared_error", sparsity_layer=1,
                       sparsity_target=RHO, sparsity_weight=BETA)


def initial_params(D, N):
    """The reference's initial (Ws, bs), float32, shared by all competitors."""
    return mlp.init_params(reference_spec(D, N),
                           np.random.default_rng(PARAM_SEED),
                           dtype=np.float32)


# ---------------------------------------------------------------- competitors
#
# Each make_* function returns (step, to_floats), as _common.time_competitors
# expects of its factories: step() performs one training step and returns
# that step's loss in whatever form is cheapest to produce; to_floats(list of
# those) turns them into Python floats after the timer has stopped.


def make_engine_network(D, N, Ws, bs):
    net = engine.Network(sizes=[D, N, D], activations=["sigmoid", "sigmoid"],
                         loss="squared_error", dtype="float32",
                         weight_decay=0.0, sparsity_layer=1,
                         sparsity_target=RHO, sparsity_weight=BETA)
    net.init_params(PARAM_SEED)
    net.params[:] = mlp.flatten(Ws, bs)  # [W1.ravel(), b1, W2.ravel(), b2]
    net.set_optimizer("sgd", LEARNING_RATE)
    return net


def make_fusedae(D, N, X, Ws, bs):
    net = make_engine_network(D, N, Ws, bs)

    def step():
        return net.train_step(X, X)

    return step, _common.identity_floats


def make_numpy(D, N, X, Ws, bs):
    spec = reference_spec(D, N)
    Ws = [W.copy() for W in Ws]
    bs = [b.copy() for b in bs]
    opt = optim.SGD(LEARNING_RATE)

    def step():
        return optim.train_step(Ws, bs, X, X, spec, opt)

    return step, _common.identity_floats


if torch is not None:
    # The model and its loss (no clamp of rhohat), shared with --all.
    from peers_torch import SparseAutoencoder, sparse_autoencoder_loss  # noqa: E402,F401


def make_torch(D, N, X, Ws, bs):
    model = SparseAutoencoder(D, N)
    with torch.no_grad():
        # nn.Linear keeps its weight as (out, in): the transpose of ours.
        model.encoder.weight.copy_(torch.from_numpy(Ws[0].T))
        model.encoder.bias.copy_(torch.from_numpy(bs[0]))
        model.decoder.weight.copy_(torch.from_numpy(Ws[1].T))
        model.decoder.bias.copy_(torch.from_numpy(bs[1]))
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    x = torch.from_numpy(X)

    def step():
        xhat, hidden = model(x)
        loss = sparse_autoencoder_loss(xhat, x, hidden, RHO, BETA)
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

def verify(name, D, N, X):
    """Engine vs reference loss after VERIFY_STEPS SGD steps; exits on a
    mismatch."""
    spec = reference_spec(D, N)
    Ws, bs = initial_params(D, N)
    net = make_engine_network(D, N, Ws, bs)
    ref_Ws = [W.copy() for W in Ws]
    ref_bs = [b.copy() for b in bs]
    opt = optim.SGD(LEARNING_RATE)
    for _ in range(VERIFY_STEPS):
        net.train_step(X, X)
        optim.train_step(ref_Ws, ref_bs, X, X, spec, opt)
    engine_loss = float(net.loss_and_gradient(X, X))
    reference_loss = float(mlp.loss(ref_Ws, ref_bs, X, X, spec))
    rel = abs(engine_loss - reference_loss) / max(abs(reference_loss),
                                                  np.finfo(np.float32).tiny)
    ok = (math.isfinite(engine_loss) and math.isfinite(reference_loss)
          and rel <= VERIFY_RTOL)
    result = {"engine_loss": engine_loss, "reference_loss": reference_loss,
              "relative_difference": rel, "steps": VERIFY_STEPS,
              "rtol": VERIFY_RTOL, "agree": ok}
    if not ok:
        sys.exit(f"FAIL {name}: after {VERIFY_STEPS} steps the engine's loss "
                 f"is {engine_loss!r}, the reference's {reference_loss!r} "
                 f"(relative difference {rel:.3g} > {VERIFY_RTOL})")
    print(f"{name}: agree (engine {engine_loss:.6g}, reference "
          f"{reference_loss:.6g}, relative difference {rel:.2e} after "
          f"{VERIFY_STEPS} steps)")
    return result


# ---------------------------------------------------------- saturation check

SATURATION_STEPS = 3


def saturation_check():
    """W-wide fed dense U(0,1) inputs: the hidden units saturate in float32
    (rhohat exactly 0 or 1), where an unbounded KL term is infinite. Runs a
    few SGD steps of every competitor and reports each step's loss."""
    D, N, B = WORKLOADS["W-wide"]
    X = np.random.default_rng(DATA_SEED).uniform(0, 1, (B, D)).astype(np.float32)
    Ws, bs = initial_params(D, N)
    out = {}
    for comp, make in competitors().items():
        step, to_floats = make(D, N, X, Ws, bs)
        losses = to_floats([step() for _ in range(SATURATION_STEPS)])
        out[comp] = {"losses": losses,
                     "all_finite": all(math.isfinite(v) for v in losses)}
        shown = ", ".join(f"{v:.6g}" for v in losses)
        print(f"  {comp:8s} losses over {SATURATION_STEPS} steps: {shown}"
              f"  -> {'finite' if out[comp]['all_finite'] else 'NOT FINITE'}")
    return out


# ------------------------------------------------------------------ measuring

def bench_workload(name, D, N, B, X, reps, seconds):
    """Warm up, calibrate and time every competitor on one workload at the
    current thread settings. Returns a JSON-ready dict."""
    Ws, bs = initial_params(D, N)
    factories = {comp: functools.partial(make, D, N, X, Ws, bs)
                 for comp, make in competitors().items()}
    flops_per_step = 10 * B * D * N
    out = {"D": D, "N": N, "B": B, "flops_per_step": flops_per_step}
    out.update(_common.time_competitors(factories, reps, seconds,
                                        flops_per_step))
    return out


# ---------------------------------------------------------------- command line

def add_all_options(p):
    p.add_argument("--all", action="store_true",
                   help="every workload family (sparse, vae, gan, epoch, memory) against "
                        "every peer (NumPy, PyTorch eager, torch.compile, JAX), one worker "
                        "process each; see the module docstring")
    p.add_argument("--keep-env", action="store_true",
                   help="--all: leave OPENBLAS_CORETYPE in the workers' environment "
                        "(by default it is removed so that each OpenBLAS picks its kernels)")
    p.add_argument("--torch-trace-autograd", action="store_true",
                   help="--all: torch-compile with torch._dynamo.config."
                        "trace_autograd_ops = True (backward traced into the graph) instead "
                        "of the default graph break at loss.backward()")


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--all" in argv:
        import cpu_workloads
        return _common.parse_args(
            argv, "Training steps/s of fusedae vs NumPy, PyTorch (eager, compiled) "
                  "and JAX on every workload (CPU), one process each.",
            cpu_workloads.ALL_WORKLOADS, "cpu-all", extra=add_all_options,
            groups=cpu_workloads.FAMILIES)
    return _common.parse_args(
        argv, "Training steps/s of fusedae vs NumPy vs PyTorch (CPU). With --all: "
              "every workload family (sparse, vae, gan, epoch, memory) against every peer.",
        WORKLOADS, "cpu", extra=add_all_options)


def main(argv=None):
    args = parse_args(argv)
    if args.all:
        import cpu_all
        return cpu_all.run(args)
    today = datetime.date.today().isoformat()
    out_path = args.out or _common.default_out_path("cpu", today)

    machine = _common.machine_info()
    isa = make_engine_network(*WORKLOADS["W-tiny"][:2],
                              *initial_params(*WORKLOADS["W-tiny"][:2])).isa
    print(f"CPU: {machine['cpu_model']} ({machine['nproc']} logical CPUs)")
    print(f"numpy {np.__version__}, fusedae {fusedae.__version__} "
          f"(engine ISA {isa}, OpenBLAS core {engine.blas_corename()}), "
          + (f"torch {torch.__version__}" if torch is not None
             else f"torch not available ({TORCH_MISSING}): PyTorch skipped"))

    data = {name: _common.mnist_like(WORKLOADS[name][2], WORKLOADS[name][0],
                                     DATA_SEED)
            for name in args.workloads}

    print("\nverification (engine vs NumPy reference):")
    verification = {}
    for name in args.workloads:
        D, N, _ = WORKLOADS[name]
        verification[name] = verify(name, D, N, data[name])

    print("\nsaturation check (W-wide, dense U(0,1) inputs):")
    saturation = saturation_check()

    runs = []
    for t in args.threads:
        with _common.ThreadSettings(t, engine, torch) as settings:
            threads_seen = settings.seen()
            results = {}
            for name in args.workloads:
                D, N, B = WORKLOADS[name]
                print(f"  timing {name} with {t} thread(s)...", flush=True)
                results[name] = bench_workload(name, D, N, B, data[name],
                                               args.reps, args.seconds)
        _common.print_table(t, results)
        runs.append({"threads": t, "threads_seen": threads_seen,
                     "workloads": results})

    torch_notes = []
    for run in runs:
        for name, res in run["workloads"].items():
            tc = res["competitors"].get("torch")
            if tc and tc["first_nonfinite_step"] is not None:
                torch_notes.append(
                    f"{name} at {run['threads']} thread(s): PyTorch's loss "
                    f"went non-finite at step {tc['first_nonfinite_step']} "
                    f"(no clamp in its KL); timing continued on NaNs")
    if torch is not None and not torch_notes:
        torch_notes.append("PyTorch's loss stayed finite on every workload "
                           "and thread count (its KL has no clamp)")
    for note in torch_notes:
        print("note: " + note)
    if torch is None:
        print(f"note: PyTorch skipped ({TORCH_MISSING})")

    report = {
        "date": today,
        "timestamp": datetime.datetime.now().astimezone().isoformat(),
        "command": [sys.executable] + sys.argv,
        "settings": {"reps": args.reps, "threads": args.threads,
                     "seconds_per_window": args.seconds,
                     "workloads": {n: dict(zip("DNB", WORKLOADS[n]))
                                   for n in args.workloads},
                     "rho": RHO, "beta": BETA, "learning_rate": LEARNING_RATE,
                     "dtype": "float32", "param_seed": PARAM_SEED,
                     "data_seed": DATA_SEED,
                     "data": "each entry nonzero with p=0.2, then U(0,1)"},
        "saturation_check": saturation,
        "machine": machine,
        "versions": _common.versions(machine, fusedae, torch),
        "engine": {"isa": isa, "supported_isas": list(engine.supported_isas()),
                   "blas_corename": engine.blas_corename()},
        "torch": _common.torch_info(torch, TORCH_MISSING),
        "verification": verification,
        "runs": runs,
        "notes": torch_notes,
    }
    _common.write_report(report, out_path)


if __name__ == "__main__":
    sys.exit(main())
