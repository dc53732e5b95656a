"""GPU benchmark: training steps per second of a sparse autoencoder on CUDA.

What is measured
----------------
The throughput (steps per second) of one full training step -- forward
pass, squared-error loss, KL sparsity penalty, back-propagation and an SGD
update -- repeated on one fixed batch resident on the GPU, for:

1. ``fusedae``: the CUDA engine's op on device pointers,
   ``_engine_cuda.Network.train_step(x_ptr, x_ptr, B, stream)`` (it returns
   the loss as a float, so every step ends with one device-to-host copy);
2. ``fusedae_py``: the same step through the Python wrapper the estimators
   use, ``fusedae._cuda.CudaNetwork.train_step(X, X)`` on a CuPy array (its
   argument checks included);
3. ``torch_eager``: PyTorch eager on CUDA with autograd and
   ``torch.optim.SGD`` (the model of bench/cpu.py: the KL term written the
   plain way, without a clamp);
4. ``torch_graph``: the same PyTorch step -- forward, loss, backward and the
   optimizer step -- captured once with ``torch.cuda.graph``
   (``torch.cuda.CUDAGraph``, after warm-up iterations on a side stream, as
   in PyTorch's "whole network capture" recipe) and replayed;
5. ``cupy_reference``: the NumPy reference step run on CuPy. The reference
   (``fusedae.reference``) calls ``numpy`` by name, so it cannot take CuPy
   arrays; this is a faithful port of ``reference.optim.train_step`` for
   this model (``reference.mlp.loss_and_gradient`` with ``ops.sigmoid``,
   ``ops.squared_error``, ``ops.clamp_rhohat``, ``ops.sparsity_penalty``
   and ``ops.sparsity_delta``, then ``optim.SGD``), written once for an
   array module ``xp`` and checked against the reference itself (with
   ``xp = numpy`` on the host, bit for bit the reference's formulas) before
   any timing;
6. ``gemm_floor``: the step's five cuBLAS GEMMs alone -- Z1 = X W1,
   Z2 = A1 W2 (forward), dW2 = A1^T d2, d2 W2^T, dW1 = X^T d1 (backward) --
   on the step's shapes with ``cupy.cublas.gemm`` into preallocated
   outputs, captured in one CUDA graph so that Python's launch overhead is
   not counted (plain launches if capture fails; the report says which).
   No step can be faster than this: it is the floor the goals refer to.

The model: D-N-D, sigmoid hidden and output layers, loss
``(1/B) sum 1/2 ||xhat - x||^2 + beta sum_n KL(rho || rhohat_n)``,
``rho = 0.05``, ``beta = 3``, SGD with learning rate 0.1, float32, from the
reference's Glorot initialisation (seed 0) shared by all competitors, on an
"MNIST-like" batch (each entry nonzero with probability 0.2, then U(0, 1);
bench/_common.mnist_like). Workloads (D, N): W-mnist (784, 196) and W-wide
(1024, 1024), at B = 256, 1024 and 8192. A step costs about 10 B D N flops.
Matrix products run in true float32 everywhere: TF32 stays off in PyTorch
(``torch.backends.cuda.matmul.allow_tf32 = False``) and CuPy (unless
``CUPY_TF32=1`` is set, which the report records).

How
---
Before any timing, each case is checked: fusedae, the CuPy reference and
PyTorch take 5 SGD steps from the same parameters and their losses must
agree within 1e-3 (relative) with the CuPy reference's, which is itself
checked against the NumPy reference on the host once per workload (B=256).

Every competitor is warmed up (at least 3 steps and ``--warmup`` seconds,
graph captures done before), its warm-up rate fixing the steps in one
window of about ``--seconds``. Then, ``--reps`` times, one window per
competitor, interleaved with the starting competitor rotating each
repetition. A window is timed with CUDA events recorded on the stream all
competitors run on (the legacy default stream), so its time is the GPU
timeline's from the first launch to the end of the last step, gaps
included. Each window gives one steps/s figure; the report gives the median
over repetitions (and min, max) and the ratios of medians.

Goals (printed PASS / FAIL, recorded in the JSON):

- W-mnist, B=256: fusedae >= 5x PyTorch eager and >= 1.5x PyTorch graphed;
- every case with B >= 8192: fusedae's step within 1.2x of its GEMM floor
  (floor steps/s / fusedae steps/s <= 1.2).

Usage::

    python bench/gpu.py [--quick] [--reps 7] [--seconds 0.25] [--warmup 0.2]
                        [--workloads W-mnist,W-wide] [--batches 256,1024,8192]
                        [--device 0] [--out PATH] [--strict]

Composites (no competitors, no goals; ``--no-composites`` skips them): the
steps/s of the CUDA engine's composite models on the same kind of data at
B = 128 -- a VAE 784-400-20 (relu, sigmoid output, binary cross entropy,
Adam) ``_engine_cuda.VAE.train_step``, and a GAN 100-256-784 / 784-256-1
step (one ``discriminator_step`` and one ``generator_step``, Adam) -- timed
like the others (warm-up, windows, median over ``--reps``).

Prints a markdown table and the goals, and writes every raw measurement as
JSON (default ``bench/results/gpu-<YYYY-MM-DD>.json``) with the table beside
it (``.md``). ``--quick``: 3 repetitions of 0.1 s windows after 0.05 s
warm-ups (about 20 s of timing on an H200). ``--strict`` exits with status 3
when a goal fails (otherwise 0 whenever the benchmark ran). Needs a CUDA GPU,
CuPy and a fusedae built with its CUDA engine; PyTorch is optional (its
competitors and goals are skipped, with a note, without a CUDA PyTorch).
"""
import argparse
import datetime
import math
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

WORKLOADS = {"W-mnist": (784, 196), "W-wide": (1024, 1024)}
BATCHES = (256, 1024, 8192)
# The CPU bench's model, data and check settings (bench/cpu_workloads.py).
from cpu_workloads import BETA, DATA_SEED, PARAM_SEED, RHO  # noqa: E402
from cpu_workloads import CHECK_RTOL as VERIFY_RTOL  # noqa: E402
from cpu_workloads import SPARSE_CHECK_STEPS as VERIFY_STEPS  # noqa: E402
from cpu_workloads import SPARSE_LR as LEARNING_RATE  # noqa: E402
COMPETITORS = ("fusedae", "fusedae_py", "torch_eager", "torch_graph", "cupy_reference",
               "gemm_floor")
LABELS = {"fusedae": "fusedae", "fusedae_py": "fusedae (Python)", "torch_eager": "PyTorch eager",
          "torch_graph": "PyTorch CUDA graph", "cupy_reference": "CuPy reference",
          "gemm_floor": "GEMM floor"}
GOALS = {"eager": ("W-mnist", 256, 5.0), "graph": ("W-mnist", 256, 1.5),
         "floor_batch": 8192, "floor_ratio": 1.2}


# ------------------------------------------------------------ command line
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Training steps/s of fusedae's CUDA engine vs PyTorch (eager and CUDA "
                    "graph), the NumPy reference on CuPy and the step's GEMM floor.")
    p.add_argument("--quick", action="store_true",
                   help="3 repetitions of 0.1 s windows, 0.05 s warm-ups (a smoke run)")
    p.add_argument("--reps", type=int, default=None,
                   help="timed windows per competitor and case (default 7; 3 with --quick)")
    p.add_argument("--seconds", type=float, default=None,
                   help="target length of one timed window (default 0.25; 0.1 with --quick)")
    p.add_argument("--warmup", type=float, default=None,
                   help="minimum warm-up per competitor in seconds (default 0.2; 0.05 with "
                        "--quick)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help="comma-separated subset of " + ", ".join(WORKLOADS))
    p.add_argument("--batches", default=",".join(map(str, BATCHES)),
                   help="comma-separated batch sizes (default 256,1024,8192)")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    p.add_argument("--out", default=None,
                   help="JSON output path (default bench/results/gpu-<YYYY-MM-DD>.json); "
                        "the markdown table goes beside it (.md)")
    p.add_argument("--strict", action="store_true", help="exit with status 3 if a goal fails")
    p.add_argument("--no-composites", dest="composites", action="store_false",
                   help="skip the VAE and GAN step timings")
    args = p.parse_args(argv)
    args.reps = args.reps if args.reps is not None else (3 if args.quick else 7)
    args.seconds = args.seconds if args.seconds is not None else (0.1 if args.quick else 0.25)
    args.warmup = args.warmup if args.warmup is not None else (0.05 if args.quick else 0.2)
    if args.reps < 1:
        p.error("--reps must be >= 1")
    if not args.seconds > 0 or not args.warmup >= 0:
        p.error("--seconds must be > 0 and --warmup >= 0")
    by_short = {k.lower().split("-", 1)[-1]: k for k in WORKLOADS}
    names = []
    for w in args.workloads.split(","):
        w = w.strip()
        if w:
            key = next((k for k in WORKLOADS if k.lower() == w.lower()), by_short.get(w.lower()))
            if key is None:
                p.error(f"--workloads: unknown workload {w!r}; expected one of "
                        f"{', '.join(WORKLOADS)}")
            names.append(key)
    args.workloads = names
    try:
        args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        p.error(f"--batches: expected integers like 256,1024, got {args.batches!r}")
    if not args.batches or min(args.batches) < 1:
        p.error("--batches: need at least one batch size >= 1")
    return args


# --------------------------------------------------- the reference, ported
def _sigmoid(xp, z):
    # reference.ops.sigmoid: only exp(-|z|) is evaluated.
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def reference_step(xp, Ws, bs, X, lr=LEARNING_RATE, rho=RHO, beta=BETA):
    """reference.optim.train_step(Ws, bs, X, X, spec, SGD(lr)) for the D-N-D
    sigmoid/sigmoid sparse autoencoder with the squared error, on the array
    module ``xp`` (numpy or cupy). Updates Ws, bs in place; returns J before
    the update (a 0-d array of X's dtype)."""
    B = X.shape[0]
    eps = 2.0**-20 if X.dtype == np.float32 else 2.0**-40   # reference.ops.RHOHAT_EPS
    eps = X.dtype.type(eps)
    A0 = X
    Z1 = A0 @ Ws[0] + bs[0]
    A1 = _sigmoid(xp, Z1)
    Z2 = A1 @ Ws[1] + bs[1]
    A2 = _sigmoid(xp, Z2)
    diff = A2 - X
    J = 0.5 * xp.sum(diff * diff) / B                                  # ops.squared_error
    rhohat = A1.mean(axis=0)
    rc = xp.clip(rhohat, eps, 1 - eps)                                 # ops.clamp_rhohat
    J = J + beta * xp.sum(rho * xp.log(rho / rc)
                          + (1 - rho) * xp.log((1 - rho) / (1 - rc)))  # ops.sparsity_penalty
    delta = (diff / B) * (A2 * (1 - A2))           # squared_error_gradient * f'(A_2)
    dW2 = A1.T @ delta
    db2 = delta.sum(axis=0)
    back = delta @ Ws[1].T
    back = back + beta * (-rho / rc + (1 - rho) / (1 - rc)) / B        # ops.sparsity_delta
    delta = back * (A1 * (1 - A1))
    dW1 = A0.T @ delta
    db1 = delta.sum(axis=0)
    for p, g in zip((Ws[0], Ws[1], bs[0], bs[1]), (dW1, dW2, db1, db2)):   # optim.SGD
        p -= lr * g
    return J


def check_port_on_host(D, N, B):
    """The port with xp = numpy against fusedae.reference itself (float32
    inputs, float64 arithmetic in both); the largest relative difference
    of the loss and parameters over VERIFY_STEPS steps."""
    from fusedae.reference import mlp, optim
    spec = _spec(D, N)
    Ws, bs = mlp.init_params(spec, np.random.default_rng(PARAM_SEED), dtype=np.float64)
    X = _common.mnist_like(B, D, DATA_SEED).astype(np.float64)
    ours = ([W.copy() for W in Ws], [b.copy() for b in bs])
    opt = optim.SGD(LEARNING_RATE)
    worst = 0.0
    for _ in range(VERIFY_STEPS):
        J_ref = optim.train_step(Ws, bs, X, X, spec, opt)
        J = float(reference_step(np, *ours, X))
        worst = max(worst, abs(J - J_ref) / abs(J_ref))
    for a, b in zip(ours[0] + ours[1], Ws + bs):
        worst = max(worst, float(np.linalg.norm(a - b) / np.linalg.norm(b)))
    return worst


def _spec(D, N):
    from fusedae.reference import mlp
    return mlp.MLPSpec(sizes=(D, N, D), activations=("sigmoid", "sigmoid"),
                       loss="squared_error", sparsity_layer=1, sparsity_target=RHO,
                       sparsity_weight=BETA)


def initial_params(D, N):
    from fusedae.reference import mlp
    return mlp.init_params(_spec(D, N), np.random.default_rng(PARAM_SEED), dtype=np.float32)


# -------------------------------------------------------------- competitors
# Each make_* returns (step, to_floats): step() runs one training step and
# returns its loss in whatever form is cheapest (or None), to_floats(list)
# turns a window's results into Python floats after its timer has stopped.

def make_fusedae(ctx, D, N, X, Ws, bs, wrapper=False):
    from fusedae._cuda import CudaNetwork
    from fusedae.reference import mlp
    cp = ctx["cp"]
    net = CudaNetwork([D, N, D], ["sigmoid", "sigmoid"], "squared_error", "float32", 0.0, 1,
                      RHO, BETA, device=ctx["device"])
    net.set_params(mlp.flatten(Ws, bs).astype(np.float32))
    net.set_optimizer("sgd", LEARNING_RATE)
    Xd = cp.asarray(X)
    if wrapper:
        def step():
            return net.train_step(Xd, Xd)
    else:
        raw, ptr, rows = net.engine_network, Xd.data.ptr, X.shape[0]
        stream = cp.cuda.get_current_stream().ptr

        def step():
            return raw.train_step(ptr, ptr, rows, stream)
    step.keep = (net, Xd)
    return step, lambda losses: [float(v) for v in losses]


def make_cupy_reference(ctx, D, N, X, Ws, bs):
    cp = ctx["cp"]
    Wd = [cp.asarray(W) for W in Ws]
    bd = [cp.asarray(b) for b in bs]
    Xd = cp.asarray(X)

    def step():
        return reference_step(cp, Wd, bd, Xd)

    def to_floats(losses):
        return cp.stack(losses).get().astype(float).tolist() if losses else []
    return step, to_floats


def make_gemm_floor(ctx, D, N, X, Ws, bs):
    cp = ctx["cp"]
    from cupy import cublas
    B = X.shape[0]
    Xd, W1, W2 = cp.asarray(X), cp.asarray(Ws[0]), cp.asarray(Ws[1])
    A1 = cp.empty((B, N), cp.float32)
    Z2 = cp.empty((B, D), cp.float32)
    d2 = cp.asarray(_common.mnist_like(B, D, DATA_SEED + 1))
    d1 = cp.empty((B, N), cp.float32)
    dW2 = cp.empty((N, D), cp.float32)
    dW1 = cp.empty((D, N), cp.float32)
    cublas.gemm("N", "N", Xd, W1, out=A1)

    def gemms():
        cublas.gemm("N", "N", Xd, W1, out=A1)    # Z1 = X W1         (B x N)
        cublas.gemm("N", "N", A1, W2, out=Z2)    # Z2 = A1 W2        (B x D)
        cublas.gemm("T", "N", A1, d2, out=dW2)   # dW2 = A1^T d2     (N x D)
        cublas.gemm("N", "T", d2, W2, out=d1)    # d2 W2^T           (B x N)
        cublas.gemm("T", "N", Xd, d1, out=dW1)   # dW1 = X^T d1      (D x N)

    step = gemms
    ctx.setdefault("floor_mode", {})
    try:
        capture = cp.cuda.Stream(non_blocking=True)
        with capture:
            gemms()  # cuBLAS's first call on this stream outside the capture
            capture.synchronize()
            capture.begin_capture()
            try:
                gemms()
            finally:
                graph = capture.end_capture()

        def step():
            graph.launch()
        mode = "CUDA graph of the 5 GEMMs"
    except Exception as exc:  # noqa: BLE001 - the plain launches are the fallback
        mode = f"plain launches (graph capture failed: {type(exc).__name__}: {exc})"
    ctx["floor_mode"][f"{D}x{N}x{B}"] = mode
    step.keep = (Xd, W1, W2, A1, Z2, d2, d1, dW2, dW1)
    return step, lambda losses: []


def _torch_model(torch, D, N, Ws, bs):
    """The CPU bench's PyTorch model (bench/peers_torch.py) on the GPU."""
    from peers_torch import SparseAutoencoder, _copy_linear
    model = SparseAutoencoder(D, N)
    _copy_linear(model.encoder, Ws[0], bs[0])
    _copy_linear(model.decoder, Ws[1], bs[1])
    return model.cuda()


def _torch_loss(torch, xhat, x, hidden):
    """(1/B) sum 1/2 ||xhat - x||^2 + beta sum KL(rho || rhohat), no clamp (bench/cpu.py)."""
    from peers_torch import sparse_autoencoder_loss
    return sparse_autoencoder_loss(xhat, x, hidden, RHO, BETA)


def make_torch_eager(ctx, D, N, X, Ws, bs):
    torch = ctx["torch"]
    model = _torch_model(torch, D, N, Ws, bs)
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    x = torch.from_numpy(X).cuda()

    def step():
        xhat, hidden = model(x)
        loss = _torch_loss(torch, xhat, x, hidden)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def to_floats(losses):
        return torch.stack(losses).tolist() if losses else []
    step.keep = (model, opt, x)
    return step, to_floats


def make_torch_graph(ctx, D, N, X, Ws, bs):
    torch = ctx["torch"]
    model = _torch_model(torch, D, N, Ws, bs)
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    x = torch.from_numpy(X).cuda()

    def body():
        xhat, hidden = model(x)
        loss = _torch_loss(torch, xhat, x, hidden)
        loss.backward()
        opt.step()
        return loss

    # PyTorch's whole-network capture: warm up on a side stream, then capture
    # with the gradients allocated inside the graph's pool.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = body()
    torch.cuda.synchronize()
    # The gradients were None at capture, so the captured backward writes
    # (does not accumulate into) its static .grad tensors: each replay is one
    # whole step.

    def step():
        graph.replay()

    def to_floats(results):  # only the window's last loss is kept
        return [float(static_loss.item())] if results else []
    step.keep = (model, opt, x, graph, static_loss)
    step.static_loss = static_loss
    return step, to_floats


FACTORIES = {"fusedae": make_fusedae,
             "fusedae_py": lambda ctx, *a: make_fusedae(ctx, *a, wrapper=True),
             "torch_eager": make_torch_eager, "torch_graph": make_torch_graph,
             "cupy_reference": make_cupy_reference, "gemm_floor": make_gemm_floor}


# ---------------------------------------------------------------- timing
def time_window(ctx, step, n_steps):
    """(GPU seconds from the first launch to the end of the last of n_steps
    steps, measured with CUDA events on the current stream; the results)."""
    cp = ctx["cp"]
    stream = cp.cuda.get_current_stream()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    results = []
    append = results.append
    start.record(stream)
    for _ in range(n_steps):
        append(step())
    end.record(stream)
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) / 1e3, results


def warm_up(ctx, step, min_seconds, min_steps=3):
    """Run step() at least min_steps times and min_seconds (GPU time);
    returns steps per second over the last run."""
    n, rate = min_steps, None
    total = 0.0
    while True:
        seconds, _ = time_window(ctx, step, n)
        total += seconds
        rate = n / max(seconds, 1e-9)
        if total >= min_seconds:
            return rate
        n = max(n, int(rate * (min_seconds - total)) + 1)


def _summary(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_case(ctx, name, D, N, B, args, names):
    X = _common.mnist_like(B, D, DATA_SEED)
    Ws, bs = initial_params(D, N)
    state = {}
    for comp in names:
        step, to_floats = FACTORIES[comp](ctx, D, N, X, Ws, bs)
        rate = warm_up(ctx, step, args.warmup)
        state[comp] = {"step": step, "to_floats": to_floats, "warmup_steps_per_s": rate,
                       "steps_per_window": max(3, int(round(rate * args.seconds))),
                       "raw": [], "nonfinite": 0, "last_loss": None}
    for rep in range(args.reps):
        k = rep % len(names)
        for comp in names[k:] + names[:k]:
            s = state[comp]
            seconds, results = time_window(ctx, s["step"], s["steps_per_window"])
            losses = s["to_floats"](results)
            s["nonfinite"] += sum(1 for v in losses if not math.isfinite(v))
            if losses:
                s["last_loss"] = losses[-1]
            s["raw"].append({"rep": rep, "steps": s["steps_per_window"], "seconds": seconds,
                             "steps_per_s": s["steps_per_window"] / seconds})
    flops = 10 * B * D * N
    out = {"workload": name, "D": D, "N": N, "B": B, "flops_per_step": flops,
           "competitors": {}, "ratios": {}}
    for comp, s in state.items():
        rates = [r["steps_per_s"] for r in s["raw"]]
        out["competitors"][comp] = {
            "steps_per_s": _summary(rates), "warmup_steps_per_s": s["warmup_steps_per_s"],
            "steps_per_window": s["steps_per_window"], "nonfinite_losses": s["nonfinite"],
            "last_loss": s["last_loss"],
            "tflops": statistics.median(rates) * flops / 1e12, "raw": s["raw"]}
    base = out["competitors"]["fusedae"]
    for other, o in out["competitors"].items():
        if other == "fusedae":
            continue
        paired = [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(base["raw"], o["raw"])]
        out["ratios"][f"fusedae/{other}"] = {
            "of_medians": base["steps_per_s"]["median"] / o["steps_per_s"]["median"],
            "paired": _summary(paired)}
    del state
    _free(ctx)
    return out


def _free(ctx):
    import gc
    gc.collect()
    ctx["cp"].get_default_memory_pool().free_all_blocks()
    if ctx.get("torch") is not None:
        ctx["torch"].cuda.empty_cache()


# ------------------------------------------------------------ verification
def verify_case(ctx, D, N, B, names):
    """Losses after VERIFY_STEPS steps from the same parameters: each
    competitor that computes the step against the CuPy reference."""
    X = _common.mnist_like(B, D, DATA_SEED)
    Ws, bs = initial_params(D, N)
    ref_step, ref_floats = make_cupy_reference(ctx, D, N, X, Ws, bs)
    ref = ref_floats([ref_step() for _ in range(VERIFY_STEPS)])
    out = {"cupy_reference_losses": ref}
    for comp in names:
        if comp in ("cupy_reference", "gemm_floor"):
            continue
        step, to_floats = FACTORIES[comp](ctx, D, N, X, Ws, bs)
        if comp == "torch_graph":
            # Its 3 warm-up steps ran before the capture: replay k is step 3 + k.
            losses = []
            for _ in range(VERIFY_STEPS - 3):
                step()
                losses.append(float(step.static_loss.item()))
            rel = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(losses, ref[3:]))
            ok = all(math.isfinite(v) for v in losses) and rel <= VERIFY_RTOL
        else:
            losses = to_floats([step() for _ in range(VERIFY_STEPS)])
            rel = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(losses, ref))
            ok = all(math.isfinite(v) for v in losses) and rel <= VERIFY_RTOL
        out[comp] = {"losses": losses, "max_relative_difference": rel, "agree": ok}
        del step
    _free(ctx)
    return out


# ---------------------------------------------------------------- report
def markdown_table(results, names):
    cols = ["workload", "B"] + [f"{LABELS[c]} steps/s" for c in names]
    cols += [f"fusedae/{LABELS[c]}" for c in names if c != "fusedae"]
    cols += ["fusedae TFLOP/s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        c = r["competitors"]
        row = [r["workload"], str(r["B"])]
        row += [f"{c[n]['steps_per_s']['median']:.4g}" for n in names]
        row += [f"{r['ratios'][f'fusedae/{n}']['of_medians']:.2f}x" for n in names
                if n != "fusedae"]
        row += [f"{c['fusedae']['tflops']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def evaluate_goals(results, names):
    goals = []
    by_case = {(r["workload"], r["B"]): r for r in results}
    for key, label in (("eager", "torch_eager"), ("graph", "torch_graph")):
        workload, B, need = GOALS[key]
        name = f"{workload} B={B}: fusedae >= {need}x {LABELS[label]}"
        r = by_case.get((workload, B))
        if r is None or label not in names:
            goals.append({"goal": name, "status": "skipped",
                          "why": "case not run" if r is None else f"{label} not available"})
            continue
        value = r["ratios"][f"fusedae/{label}"]["of_medians"]
        goals.append({"goal": name, "value": value, "threshold": need,
                      "status": "PASS" if value >= need else "FAIL"})
    floor_cases = [r for r in results if r["B"] >= GOALS["floor_batch"]]
    for r in floor_cases:
        value = 1.0 / r["ratios"]["fusedae/gemm_floor"]["of_medians"]  # fusedae time / floor
        need = GOALS["floor_ratio"]
        goals.append({"goal": f"{r['workload']} B={r['B']}: fusedae's step <= {need}x its "
                              "GEMM floor", "value": value, "threshold": need,
                      "status": "PASS" if value <= need else "FAIL"})
    if not floor_cases:
        goals.append({"goal": f"B >= {GOALS['floor_batch']}: within {GOALS['floor_ratio']}x "
                              "of the GEMM floor", "status": "skipped", "why": "case not run"})
    return goals


# ------------------------------------------------------------------ main
COMPOSITE_BATCH = 128


def bench_composites(ctx, args):
    """Steps/s of the composite models' steps on device data (see the module
    docstring); one entry per case, with the loss of its last step."""
    cp, engine = ctx["cp"], ctx["engine"]
    B = COMPOSITE_BATCH
    X = cp.asarray(_common.mnist_like(B, 784, DATA_SEED))
    stream = cp.cuda.get_current_stream().ptr
    vae = engine.VAE(784, 20, [400], "relu", "sigmoid", "binary_cross_entropy", "float32", 0.0,
                     0, device_id=ctx["index"])
    vae.init_params(PARAM_SEED)
    vae.set_optimizer("adam", 1e-3)
    gan = engine.GAN(100, 784, [256], [256], "relu", "sigmoid", "leaky_relu", "float32", 0.0,
                     False, device_id=ctx["index"])
    gan.init_params(PARAM_SEED)
    gan.set_optimizers("adam", 2e-4, 2e-4)
    steps = {
        "VAE 784-400-20 train_step": lambda: vae.train_step(X.data.ptr, 0, B, stream)[0],
        "GAN 100-256-784 D+G step": lambda: (gan.discriminator_step(X.data.ptr, B, stream)
                                             + gan.generator_step(B, stream)),
    }
    out = []
    for label, step in steps.items():
        rate = warm_up(ctx, step, args.warmup)
        n = max(3, int(rate * args.seconds))
        rates, last, nonfinite = [], None, 0
        for _ in range(args.reps):
            seconds, losses = time_window(ctx, step, n)
            rates.append(n / max(seconds, 1e-9))
            nonfinite += sum(not math.isfinite(v) for v in losses)
            last = losses[-1]
        out.append({"case": label, "B": B, "steps_per_window": n,
                    "steps_per_second": _summary(rates), "last_loss": last,
                    "nonfinite_losses": nonfinite})
    return out


def composites_table(rows):
    lines = ["| composite step | B | steps/s (median) | min | max |", "|---|---|---|---|---|"]
    for r in rows:
        s = r["steps_per_second"]
        lines.append(f"| {r['case']} | {r['B']} | {s['median']:.0f} | {s['min']:.0f} | "
                     f"{s['max']:.0f} |")
    return "\n".join(lines)


def _setup(device):
    """CuPy, PyTorch (or None and why), fusedae's CUDA engine; exits with a
    message naming what is missing."""
    _common.ensure_fusedae_importable()
    from fusedae import _cuda
    try:
        engine, cp, index = _cuda.require(f"cuda:{device}")
    except ValueError as err:
        sys.exit(f"bench/gpu.py needs CUDA: {err}")
    cp.cuda.Device(index).use()
    torch, torch_missing = _common.optional_torch()
    if torch is not None and not torch.cuda.is_available():
        torch, torch_missing = None, f"torch {torch.__version__} has no CUDA device"
    if torch is not None:
        torch.cuda.set_device(index)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return {"cp": cp, "torch": torch, "torch_missing": torch_missing, "engine": engine,
            "device": f"cuda:{index}", "index": index}


def main(argv=None):
    args = parse_args(argv)
    ctx = _setup(args.device)
    cp, torch, engine = ctx["cp"], ctx["torch"], ctx["engine"]
    import fusedae
    today = datetime.date.today().isoformat()
    out_path = args.out or os.path.join(_common.REPO, "bench", "results", f"gpu-{today}.json")
    names = [c for c in COMPETITORS if torch is not None or not c.startswith("torch")]
    gpu_name = engine.device_name(ctx["index"])
    print(f"GPU {ctx['index']}: {gpu_name} (CUDA runtime {engine.runtime_version()}, engine "
          f"architectures {getattr(engine, 'cuda_architectures', '?')}), CuPy {cp.__version__}, "
          + (f"torch {torch.__version__} (CUDA {torch.version.cuda})" if torch is not None
             else f"PyTorch skipped ({ctx['torch_missing']})"))
    notes = []
    if torch is None:
        notes.append(f"PyTorch competitors and goals skipped: {ctx['torch_missing']}")

    print("\nverification:")
    verification = {}
    failed = []
    for name in args.workloads:
        D, N = WORKLOADS[name]
        port = check_port_on_host(D, N, 256)
        port_ok = port <= 1e-12
        print(f"  {name}: CuPy port = NumPy reference on the host to {port:.1e} "
              f"({'agree' if port_ok else 'DISAGREE'})")
        verification[name] = {"port_vs_reference_float64": port, "port_agrees": port_ok}
        if not port_ok:
            failed.append(f"{name}: port")
        for B in args.batches:
            v = verify_case(ctx, D, N, B, names)
            verification[f"{name}/B={B}"] = v
            for comp, res in v.items():
                if isinstance(res, dict):
                    rel = res["max_relative_difference"]
                    print(f"  {name} B={B} {comp}: {'agree' if res['agree'] else 'DISAGREE'} "
                          f"(relative difference {rel:.2e})")
                    if not res["agree"]:
                        failed.append(f"{name} B={B} {comp}")
    if failed:
        notes.append("verification failed: " + ", ".join(failed))

    results = []
    for name in args.workloads:
        D, N = WORKLOADS[name]
        for B in args.batches:
            print(f"  timing {name} B={B}...", flush=True)
            results.append(bench_case(ctx, name, D, N, B, args, names))

    composites = []
    if args.composites:
        print("  timing the composites...", flush=True)
        composites = bench_composites(ctx, args)

    table = markdown_table(results, names)
    goals = evaluate_goals(results, names)
    print("\nmedian steps/s over reps (CUDA events; ratios of medians):\n")
    print(table)
    if composites:
        print("\n" + composites_table(composites))
    print("\ngoals:")
    for g in goals:
        shown = f" ({g['value']:.2f}, threshold {g['threshold']})" if "value" in g else \
            f" ({g.get('why', '')})"
        print(f"  {g['status']}: {g['goal']}{shown}")
    for r in results:
        for comp, c in r["competitors"].items():
            if c["nonfinite_losses"]:
                notes.append(f"{r['workload']} B={r['B']}: {comp} had {c['nonfinite_losses']} "
                             "non-finite losses (timing continued)")
    for r in composites:
        if r["nonfinite_losses"]:
            notes.append(f"{r['case']}: {r['nonfinite_losses']} non-finite losses (timing "
                         "continued)")
    for note in notes:
        print("note: " + note)

    report = {
        "date": today,
        "timestamp": datetime.datetime.now().astimezone().isoformat(),
        "command": [sys.executable] + (sys.argv if argv is None else ["bench/gpu.py"] + argv),
        "settings": {"reps": args.reps, "seconds_per_window": args.seconds,
                     "warmup_seconds": args.warmup, "quick": args.quick,
                     "workloads": {n: dict(zip("DN", WORKLOADS[n])) for n in args.workloads},
                     "batches": args.batches, "rho": RHO, "beta": BETA,
                     "learning_rate": LEARNING_RATE, "dtype": "float32",
                     "param_seed": PARAM_SEED, "data_seed": DATA_SEED,
                     "data": "each entry nonzero with p=0.2, then U(0,1)",
                     "timing": "CUDA events on the legacy default stream, interleaved reps",
                     "torch_graph": "torch.cuda.graph (CUDAGraph) of forward+backward+SGD step",
                     "cupy_reference": "port of fusedae.reference's step to an array module",
                     "gemm_floor": ctx.get("floor_mode", {})},
        "gpu": {"index": ctx["index"], "name": gpu_name,
                "runtime_version": engine.runtime_version(),
                "engine_architectures": getattr(engine, "cuda_architectures", None),
                "cupy": cp.__version__, "cupy_tf32": os.environ.get("CUPY_TF32", "0"),
                "torch": None if torch is None else torch.__version__,
                "torch_cuda": None if torch is None else torch.version.cuda,
                "torch_allow_tf32": None if torch is None else
                torch.backends.cuda.matmul.allow_tf32},
        "machine": _common.machine_info(),
        "fusedae": fusedae.__version__,
        "verification": verification,
        "results": results,
        "composites": composites,
        "goals": goals,
        "notes": notes,
    }
    _common.write_report(report, out_path)
    md_path = os.path.splitext(out_path)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(f"# GPU benchmark, {today}: {gpu_name}\n\n{table}\n\n")
        if composites:
            f.write(composites_table(composites) + "\n\n")
        f.write("## Goals\n\n")
        for g in goals:
            shown = f" ({g['value']:.2f}, threshold {g['threshold']})" if "value" in g else ""
            f.write(f"- {g['status']}: {g['goal']}{shown}\n")
        for note in notes:
            f.write(f"\nNote: {note}\n")
    print(f"wrote {md_path}")
    if args.strict and any(g["status"] == "FAIL" for g in goals):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
