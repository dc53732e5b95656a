"""CPU benchmark: training a VAE in fusedae and in PyTorch, side by side.

What is measured
----------------
The wall time of a whole training run (every epoch) of one variational
autoencoder, and the held-out negative ELBO it reaches, for two
implementations of the same model trained on the same minibatches with the
same noise:

1. ``fusedae``: the compiled engine (``fusedae._engine.VAE``), one
   ``fit_epoch(X, None, batch_size, shuffle=True)`` call per epoch (the
   engine shuffles, gathers the batches, draws ε and takes every step in
   C++);
2. ``torch``: PyTorch eager, an encoder ``nn.Linear``-ReLU-``nn.Linear`` and
   a decoder ``nn.Linear``-ReLU-``nn.Linear``, autograd and
   ``torch.optim.Adam`` with ``zero_grad(set_to_none=True)``.

If torch cannot be imported there is nothing to compare: the script says so
and exits (status 0) without timing anything.

The model (the chapter's §4, :mod:`fusedae.reference.vae`): an encoder
D -> H -> 2Z with a ReLU hidden layer and a linear output whose columns are
``[mu | log sigma^2]``, ``z = mu + exp(log sigma^2 / 2) * eps``, and a decoder
Z -> H -> D with a ReLU hidden layer and a sigmoid output. The loss of a
batch of B rows is

    (1/B) sum_m [ BCE(logits_m, x_m) summed over features
                  - 1/2 sum_j (1 + log sigma^2 - mu^2 - sigma^2) ]

(binary cross entropy from the decoder's logits; PyTorch computes it with
``F.binary_cross_entropy_with_logits(..., reduction="sum") / B``), no weight
decay, float32, Adam with learning rate 1e-3, betas (0.9, 0.999), eps 1e-8
(both use the PyTorch convention: eps outside the square root), batch 64
(the last batch of an epoch is the remainder), seed 0.

Workloads (D-H-Z, rows, default epochs):

- ``digits``: 64-32-8 on scikit-learn's digits (1797 rows of 8x8 images,
  pixel values / 16, so in [0, 1]), 50 epochs;
- ``mnist-like``: 784-400-20 on 5000 *synthetic* MNIST-like rows (each
  entry nonzero with probability 0.2, then U(0, 1); ``_common.mnist_like``,
  seed 1234) -- MNIST itself is not bundled -- 5 epochs.

Each is split once (a fixed permutation, seed 1234) into 80% training rows
and 20% held-out rows.

How
---
Same start, same batches, same noise: the engine is initialised by
``init_params(0)`` (Philox Glorot, encoder key 0, decoder key 1) and PyTorch's
``nn.Linear`` layers get copies of those parameters (``weight = W^T``, since
``nn.Linear`` keeps (out, in)). Epoch e of the engine shuffles the training
rows by ``fusedae.reference.philox.permutation(n, 0, e)`` and step s
(counted from 0 over the whole run) uses
``eps = fusedae.reference.philox.normal((B, Z), 0, s)``; PyTorch gets exactly
these permutations and these ε, computed in NumPy *before* its timer starts
(the engine draws them inside its timed epochs, so this favours PyTorch
slightly). Inside PyTorch's timer: the batch gather ``index_select``, the
forward and backward passes and the Adam step, each step's loss kept as a
tensor (converted to floats after the timer).

For each thread count t (``--threads``), the engine gets
``engine.set_num_threads(t)``, every BLAS threadpoolctl sees
``threadpool_limits(t)`` and PyTorch ``torch.set_num_threads(t)``
(``_common.ThreadSettings``); all are restored afterwards. Each competitor
first trains one untimed epoch (warm-up: allocations, lazy initialisation).
Then, ``--reps`` times, each trains a fresh model (built outside the timer)
for all epochs, the two interleaved, the one going first alternating
between repetitions; the report gives the median wall time (and min, max),
steps/s = total steps / median time, and the speed-up torch s / fusedae s.

Correctness, outside the timers:

- first step: the loss of the first training step (initial parameters,
  epoch 0's first batch, ε of step 0) of the engine (``train_step``), of
  PyTorch and of the NumPy reference in float64 must agree to 1e-4
  (relative); a ``WARNING`` line is printed otherwise;
- held-out: after training, each model's parameters (as float64) are fed to
  one NumPy function, ``fusedae.reference.vae.terms``, on the held-out rows
  with one fixed ε, ``philox.normal((n_test, Z), 0, 2**31)``; the reported
  held-out -ELBO is recon + KL there (and, for comparison, at the initial
  parameters). Same data, same ε, same start and the same optimizer, so the
  two should differ by float32 rounding only; their relative difference is
  reported. The per-epoch mean training losses of the two are compared the
  same way (JSON).

Usage::

    python bench/vae_torch.py [--threads 1,2] [--reps 3]
                              [--workload digits,mnist-like]
                              [--epochs N] [--out PATH]

``--epochs`` overrides the epochs of every selected workload. Prints one
table and writes every measurement as JSON (default
``bench/results/vae-torch-<YYYY-MM-DD>.json``).
"""
import argparse
import datetime
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.ensure_fusedae_importable()
import fusedae  # noqa: E402
from fusedae._base import split_params  # noqa: E402
from fusedae._native import engine  # noqa: E402  (loads the engine's BLAS)
from fusedae.reference import philox  # noqa: E402
from fusedae.reference import vae as ref_vae  # noqa: E402

torch, TORCH_MISSING = _common.optional_torch()

WORKLOADS = {
    "digits": {"D": 64, "H": 32, "Z": 8, "epochs": 50,
               "data": "sklearn load_digits (1797 rows), pixels / 16"},
    "mnist-like": {"D": 784, "H": 400, "Z": 20, "epochs": 5, "rows": 5000,
                   "data": "synthetic MNIST-like (MNIST is not bundled): "
                           "5000 rows, each entry nonzero with p=0.2, "
                           "then U(0,1)"},
}
SEED = 0
DATA_SEED = 1234
TRAIN_FRACTION = 0.8
BATCH = 64
LEARNING_RATE = 1e-3
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
HELDOUT_STREAM = 2**31
FIRST_STEP_RTOL = 1e-4


# ------------------------------------------------------------------- data

def load_data(name):
    """(X_train, X_test), float32 C-contiguous, values in [0, 1]."""
    w = WORKLOADS[name]
    if name == "digits":
        from sklearn.datasets import load_digits
        X = (load_digits().data / 16.0).astype(np.float32)
    else:
        X = _common.mnist_like(w["rows"], w["D"], DATA_SEED)
    order = np.random.default_rng(DATA_SEED).permutation(len(X))
    n_train = int(round(TRAIN_FRACTION * len(X)))
    return (np.ascontiguousarray(X[order[:n_train]]),
            np.ascontiguousarray(X[order[n_train:]]))


def schedule(n, epochs):
    """The engine's shuffles and ε: ([permutation of epoch e], [eps of
    step s]), steps counted from 0 over the whole run."""
    perms = [philox.permutation(n, SEED, e) for e in range(epochs)]
    sizes = [min(BATCH, n - r0) for r0 in range(0, n, BATCH)]
    return perms, sizes


def step_eps(sizes, epochs, Z):
    eps, s = [], 0
    for _ in range(epochs):
        for m in sizes:
            eps.append(philox.normal((m, Z), SEED, s, dtype=np.float32))
            s += 1
    return eps


# ----------------------------------------------------------------- models

def spec_of(w):
    return ref_vae.VAESpec(n_features=w["D"], hidden=(w["H"],),
                           n_latent=w["Z"])


def make_engine_vae(w):
    m = engine.VAE(w["D"], w["Z"], [w["H"]], "relu", "sigmoid",
                   "binary_cross_entropy", "float32", 0.0, 0)
    m.init_params(SEED)
    m.set_optimizer("adam", LEARNING_RATE, beta1=BETAS[0], beta2=BETAS[1],
                    eps=ADAM_EPS)
    return m


def engine_params(m):
    """((enc Ws, bs), (dec Ws, bs)) of an engine VAE, float64 copies."""
    out = []
    for net in (m.encoder, m.decoder):
        Ws, bs = split_params(net, net.params)
        out.append(([W.astype(np.float64) for W in Ws],
                    [b.astype(np.float64) for b in bs]))
    return tuple(out)


class TorchVAE(torch.nn.Module if torch is not None else object):
    def __init__(self, w, init):
        super().__init__()
        D, H, Z = w["D"], w["H"], w["Z"]
        self.Z = Z
        self.enc1, self.enc2 = torch.nn.Linear(D, H), torch.nn.Linear(H, 2 * Z)
        self.dec1, self.dec2 = torch.nn.Linear(Z, H), torch.nn.Linear(H, D)
        (eWs, ebs), (dWs, dbs) = init
        with torch.no_grad():
            # nn.Linear keeps its weight as (out, in): the transpose of ours.
            for lin, W, b in zip((self.enc1, self.enc2, self.dec1, self.dec2),
                                 eWs + dWs, ebs + dbs):
                lin.weight.copy_(torch.from_numpy(
                    np.ascontiguousarray(W.T, dtype=np.float32)))
                lin.bias.copy_(torch.from_numpy(b.astype(np.float32)))

    def loss(self, x, eps):
        relu = torch.nn.functional.relu
        e = self.enc2(relu(self.enc1(x)))
        mu, logvar = e[:, :self.Z], e[:, self.Z:]
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = self.dec2(relu(self.dec1(z)))
        B = x.shape[0]
        recon = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, x, reduction="sum") / B
        kl = -0.5 * torch.sum(1 + logvar - mu * mu - torch.exp(logvar)) / B
        return recon + kl

    def params64(self):
        """((enc Ws, bs), (dec Ws, bs)) in the reference's layout, float64."""
        def grab(lins):
            return ([lin.weight.detach().numpy().T.astype(np.float64)
                     for lin in lins],
                    [lin.bias.detach().numpy().astype(np.float64)
                     for lin in lins])
        return grab((self.enc1, self.enc2)), grab((self.dec1, self.dec2))


def make_torch_vae(w, init):
    model = TorchVAE(w, init)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=BETAS,
                           eps=ADAM_EPS)
    return model, opt


# --------------------------------------------------------------- training

def train_engine(w, X, epochs):
    """Fresh engine VAE trained for `epochs`: (model, seconds, per-epoch
    (total, recon, kl, decay) means, steps, diverged)."""
    m = make_engine_vae(w)
    fit_epoch = m.fit_epoch
    results = []
    start = time.perf_counter()
    for _ in range(epochs):
        results.append(fit_epoch(X, None, BATCH, True))
    elapsed = time.perf_counter() - start
    means = [r[0] for r in results]
    steps = sum(r[1] for r in results)
    return m, elapsed, means, steps, any(r[2] for r in results)


def train_torch(w, init, x, batches, eps, epochs):
    """Fresh PyTorch VAE trained on the precomputed batches (index tensors
    per step) and ε: (model, seconds, per-epoch mean losses, steps)."""
    model, opt = make_torch_vae(w, init)
    losses = []
    append = losses.append
    index_select = x.index_select
    start = time.perf_counter()
    for idx, e in zip(batches, eps):
        loss = model.loss(index_select(0, idx), e)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        append(loss.detach())
    elapsed = time.perf_counter() - start
    values = torch.stack(losses).tolist() if losses else []
    per_epoch = len(values) // epochs if epochs else 0
    sizes = [len(i) for i in batches[:per_epoch]]
    means = []
    for k in range(epochs):
        epoch = values[k * per_epoch:(k + 1) * per_epoch]
        means.append(sum(v * m for v, m in zip(epoch, sizes)) / sum(sizes))
    return model, elapsed, means, len(values)


def torch_batches(perms, sizes):
    out = []
    for perm in perms:
        r0 = 0
        for m in sizes:
            out.append(torch.from_numpy(np.ascontiguousarray(perm[r0:r0 + m])))
            r0 += m
    return out


# ------------------------------------------------------------ correctness

def heldout_neg_elbo(params, X_test, eps, spec):
    enc, dec = params
    t = ref_vae.terms(enc, dec, X_test.astype(np.float64), eps, spec)
    return t["recon"] + t["kl"]


def relative(a, b):
    return abs(a - b) / max(abs(b), np.finfo(np.float32).tiny)


def first_step(w, init, X_train, perm0, spec):
    """Loss of the first training step by the engine, PyTorch and the
    float64 reference; prints a WARNING if the first two differ."""
    m = min(BATCH, len(X_train))
    xb = np.ascontiguousarray(X_train[perm0[:m]])
    eps32 = philox.normal((m, w["Z"]), SEED, 0, dtype=np.float32)
    eng = make_engine_vae(w)
    engine_loss = float(eng.train_step(xb, None)[0])
    model, _ = make_torch_vae(w, init)
    with torch.no_grad():
        torch_loss = float(model.loss(torch.from_numpy(xb),
                                      torch.from_numpy(eps32)))
    enc, dec = init
    reference_loss = ref_vae.terms(enc, dec, xb.astype(np.float64),
                                   eps32.astype(np.float64), spec)["total"]
    rel = relative(torch_loss, engine_loss)
    ok = math.isfinite(engine_loss) and rel <= FIRST_STEP_RTOL
    return {"engine": engine_loss, "torch": torch_loss,
            "reference_float64": reference_loss,
            "relative_difference_torch_engine": rel,
            "relative_difference_engine_reference":
                relative(engine_loss, reference_loss),
            "rtol": FIRST_STEP_RTOL, "agree": ok}


# ------------------------------------------------------------------- main

def bench(name, w, epochs, reps, threads):
    """Time and check one workload at the current thread settings."""
    spec = spec_of(w)
    X_train, X_test = load_data(name)
    n = len(X_train)
    perms, sizes = schedule(n, epochs)
    eps_np = step_eps(sizes, epochs, w["Z"])
    batches = torch_batches(perms, sizes)
    eps_t = [torch.from_numpy(e) for e in eps_np]
    x_t = torch.from_numpy(X_train)
    steps_per_epoch = len(sizes)

    init = engine_params(make_engine_vae(w))
    test_eps = philox.normal((len(X_test), w["Z"]), SEED, HELDOUT_STREAM)
    initial = heldout_neg_elbo(init, X_test, test_eps, spec)

    check = first_step(w, init, X_train, perms[0], spec)
    if not check["agree"]:
        print(f"WARNING {name} ({threads} thread(s)): first-step loss "
              f"fusedae {check['engine']!r}, torch {check['torch']!r} "
              f"(relative difference "
              f"{check['relative_difference_torch_engine']:.3g} > "
              f"{FIRST_STEP_RTOL})")

    # Warm-up: one untimed epoch each.
    train_engine(w, X_train, 1)
    train_torch(w, init, x_t, batches[:steps_per_epoch],
                eps_t[:steps_per_epoch], 1)

    raw = {"fusedae": [], "torch": []}
    for rep in range(reps):
        order = ("fusedae", "torch") if rep % 2 == 0 else ("torch", "fusedae")
        for comp in order:
            counters = _common.cpu_counters()
            if comp == "fusedae":
                model, sec, means, steps, diverged = train_engine(
                    w, X_train, epochs)
                params = engine_params(model)
                epoch_losses = [float(m[0]) for m in means]
            else:
                model, sec, epoch_losses, steps = train_torch(
                    w, init, x_t, batches, eps_t, epochs)
                params = model.params64()
                diverged = not all(math.isfinite(v) for v in epoch_losses)
            foreign = _common.foreign_load(counters, _common.cpu_counters(),
                                           sec)
            raw[comp].append({
                "rep": rep, "seconds": sec, "steps": steps,
                "steps_per_s": steps / sec, "diverged": diverged,
                "foreign_cpus": foreign,
                "heldout_neg_elbo": heldout_neg_elbo(params, X_test,
                                                     test_eps, spec),
                "epoch_mean_losses": epoch_losses})

    out = {"D": w["D"], "H": w["H"], "Z": w["Z"], "epochs": epochs,
           "n_train": n, "n_test": len(X_test), "batch": BATCH,
           "steps_per_epoch": steps_per_epoch,
           "total_steps": steps_per_epoch * epochs,
           "data": w["data"], "first_step": check,
           "initial_heldout_neg_elbo": initial, "competitors": {}}
    for comp, runs in raw.items():
        secs = [r["seconds"] for r in runs]
        elbos = [r["heldout_neg_elbo"] for r in runs]
        out["competitors"][comp] = {
            "seconds": _common.summarize(secs),
            "steps_per_s": out["total_steps"] / statistics.median(secs),
            "heldout_neg_elbo": elbos[-1],
            "heldout_neg_elbo_same_every_rep": len(set(elbos)) == 1,
            "diverged": any(r["diverged"] for r in runs),
            "raw": runs}
    fus, tor = out["competitors"]["fusedae"], out["competitors"]["torch"]
    out["speedup_torch_over_fusedae"] = (tor["seconds"]["median"]
                                         / fus["seconds"]["median"])
    out["heldout_relative_difference"] = relative(tor["heldout_neg_elbo"],
                                                  fus["heldout_neg_elbo"])
    fl = fus["raw"][-1]["epoch_mean_losses"]
    tl = tor["raw"][-1]["epoch_mean_losses"]
    out["epoch_loss_relative_difference"] = {
        "first": relative(tl[0], fl[0]), "last": relative(tl[-1], fl[-1]),
        "max": max(relative(a, b) for a, b in zip(tl, fl))}
    return out


def print_table(rows):
    header = ["workload", "threads", "fusedae s", "torch s", "speed-up",
              "fusedae held-out -ELBO", "torch held-out -ELBO", "rel. diff",
              "initial held-out -ELBO"]
    body = []
    for name, t, r in rows:
        fus, tor = r["competitors"]["fusedae"], r["competitors"]["torch"]
        body.append([
            name, str(t), f"{fus['seconds']['median']:.3f}",
            f"{tor['seconds']['median']:.3f}",
            f"{r['speedup_torch_over_fusedae']:.2f}x",
            f"{fus['heldout_neg_elbo']:.4f}", f"{tor['heldout_neg_elbo']:.4f}",
            f"{r['heldout_relative_difference']:.1e}",
            f"{r['initial_heldout_neg_elbo']:.4f}"])
    widths = [max(len(header[i]), *(len(b[i]) for b in body))
              for i in range(len(header))]
    print("\n(median wall time of the whole training over reps; speed-up = "
          "torch s / fusedae s; -ELBO in nats per held-out row)")
    print(" | ".join(h.ljust(wd) for h, wd in zip(header, widths)))
    print("-+-".join("-" * wd for wd in widths))
    for b in body:
        print(" | ".join(v.ljust(wd) for v, wd in zip(b, widths)))
    print("steps/s (total steps / median time), min/max seconds, "
          "first-step losses:")
    for name, t, r in rows:
        fus, tor = r["competitors"]["fusedae"], r["competitors"]["torch"]
        fs = r["first_step"]
        print(f"  {name} t={t}: {r['total_steps']} steps "
              f"({r['epochs']} epochs x {r['steps_per_epoch']}); "
              f"fusedae {fus['steps_per_s']:.4g} steps/s "
              f"{_common.fmt_spread(fus['seconds'])} s, "
              f"torch {tor['steps_per_s']:.4g} steps/s "
              f"{_common.fmt_spread(tor['seconds'])} s; first step "
              f"fusedae {fs['engine']:.6g}, torch {fs['torch']:.6g} "
              f"(rel. {fs['relative_difference_torch_engine']:.1e}), "
              f"reference float64 {fs['reference_float64']:.6g}; "
              f"epoch-mean training loss max rel. diff "
              f"{r['epoch_loss_relative_difference']['max']:.1e}")
    loads = [x["foreign_cpus"] for _, _, r in rows
             for c in r["competitors"].values() for x in c["raw"]
             if x["foreign_cpus"] is not None]
    if loads:
        print(f"CPUs busy with other processes during the timed runs: "
              f"median {statistics.median(loads):.2f}, max {max(loads):.2f}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Whole-training wall time and held-out -ELBO of a VAE: "
                    "fusedae vs PyTorch (CPU), same init, batches and noise.")
    p.add_argument("--threads", default="1,2",
                   help="comma-separated thread counts (default 1,2)")
    p.add_argument("--reps", type=int, default=3,
                   help="timed training runs per competitor (default 3)")
    p.add_argument("--workload", default=",".join(WORKLOADS),
                   help="comma-separated subset of " + ", ".join(WORKLOADS)
                        + " (default: all)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of every selected workload (default: "
                        + ", ".join(f"{k} {v['epochs']}"
                                    for k, v in WORKLOADS.items()) + ")")
    p.add_argument("--out", default=None,
                   help="JSON output path (default "
                        "bench/results/vae-torch-<YYYY-MM-DD>.json)")
    args = p.parse_args(argv)
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        p.error(f"--threads: expected integers like 1,2, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        p.error("--threads: need at least one count >= 1")
    names = [s.strip().lower() for s in args.workload.split(",") if s.strip()]
    for s in names:
        if s not in WORKLOADS:
            p.error(f"--workload: unknown workload {s!r}; expected one of "
                    + ", ".join(WORKLOADS))
    if not names:
        p.error("--workload: name at least one workload")
    args.workload = names
    if args.reps < 1:
        p.error("--reps must be >= 1")
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if torch is None:
        print(f"PyTorch is not importable ({TORCH_MISSING}): nothing to "
              "compare fusedae's VAE with; skipped.")
        return 0
    today = datetime.date.today().isoformat()
    out_path = args.out or _common.default_out_path("vae-torch", today)

    machine = _common.machine_info()
    isa = make_engine_vae(WORKLOADS["digits"]).encoder.isa
    print(f"CPU: {machine['cpu_model']} ({machine['nproc']} logical CPUs)")
    print(f"numpy {np.__version__}, fusedae {fusedae.__version__} "
          f"(engine ISA {isa}, OpenBLAS core {engine.blas_corename()}), "
          f"torch {torch.__version__}")
    for name in args.workload:
        if name == "mnist-like":
            print("note: mnist-like is synthetic data (MNIST is not bundled)")

    rows, runs = [], []
    for t in args.threads:
        with _common.ThreadSettings(t, engine, torch) as settings:
            threads_seen = settings.seen()
            results = {}
            for name in args.workload:
                w = WORKLOADS[name]
                epochs = args.epochs or w["epochs"]
                print(f"  {name}: {epochs} epochs x {args.reps} reps with "
                      f"{t} thread(s)...", flush=True)
                results[name] = bench(name, w, epochs, args.reps, t)
                rows.append((name, t, results[name]))
        runs.append({"threads": t, "threads_seen": threads_seen,
                     "workloads": results})
    print_table(rows)

    notes = []
    for name, t, r in rows:
        if not r["first_step"]["agree"]:
            notes.append(f"{name}, {t} thread(s): first-step losses differ "
                         f"by more than {FIRST_STEP_RTOL} (relative)")
        for comp, c in r["competitors"].items():
            if c["diverged"]:
                notes.append(f"{name}, {t} thread(s): {comp} diverged")
            if not c["heldout_neg_elbo_same_every_rep"]:
                notes.append(f"{name}, {t} thread(s): {comp}'s held-out "
                             "-ELBO differs between repetitions")
    for note in notes:
        print("note: " + note)

    report = {
        "date": today,
        "timestamp": datetime.datetime.now().astimezone().isoformat(),
        "command": [sys.executable] + sys.argv,
        "settings": {
            "reps": args.reps, "threads": args.threads,
            "workloads": {n: {**WORKLOADS[n],
                              "epochs": args.epochs or WORKLOADS[n]["epochs"]}
                          for n in args.workload},
            "model": "encoder D-H-2Z (relu, identity output: [mu | log var]), "
                     "decoder Z-H-D (relu, sigmoid output); loss BCE from "
                     "logits summed over features + Gaussian KL, both "
                     "averaged over the batch",
            "optimizer": {"kind": "adam", "learning_rate": LEARNING_RATE,
                          "betas": list(BETAS), "eps": ADAM_EPS},
            "batch_size": BATCH, "shuffle": True, "weight_decay": 0.0,
            "dtype": "float32", "seed": SEED, "data_seed": DATA_SEED,
            "train_fraction": TRAIN_FRACTION,
            "heldout_eps": f"philox.normal((n_test, Z), {SEED}, "
                           f"{HELDOUT_STREAM})",
            "heldout_metric": "fusedae.reference.vae.terms recon + kl, "
                              "float64, on each model's parameters"},
        "machine": machine,
        "versions": _common.versions(machine, fusedae, torch),
        "engine": {"isa": isa, "supported_isas": list(engine.supported_isas()),
                   "blas_corename": engine.blas_corename()},
        "torch": _common.torch_info(torch, TORCH_MISSING),
        "runs": runs,
        "notes": notes,
    }
    _common.write_report(report, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
