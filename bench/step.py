"""Quick before/after check: steps/s of the engine alone on one workload.

    python bench/step.py D N B [--threads T] [--seconds S | --steps K] [--density P]
    python bench/step.py D N B --epoch ROWS [--in-order] [--noise KIND --level L] [--threads T] [--seconds S | --steps K] [--density P]
    python bench/step.py D N B --model vae | gan [--threads T] [--seconds S | --steps K]
    python bench/step.py ... --serve      # timed windows on request, for bench/ab.py --paired

Sparse autoencoder D-N-D (sigmoid/sigmoid, ρ = 0.05, β = 3, SGD lr 0.1,
float32) on a batch of B rows, each entry nonzero with probability P (0.2,
MNIST-like, by default; 1 gives dense inputs, which skip the engine's
nonzero path), ``train_step`` in a loop for S seconds after a warm-up.
``--epoch ROWS`` times shuffled ``fit_epoch`` calls over ROWS such rows
instead (batches of B; the figure is still steps per second, and --steps
counts epochs; ``--in-order`` keeps the rows' order), with
``--noise gaussian|masking|salt_pepper --level L`` the denoising corruption
of each batch.
``--model vae`` and ``--model gan`` time the VAE and GAN steps of
``bench/cpu.py --all`` instead (their sizes are fixed there, so D N B are
ignored: VAE 784-400-20, B 128, Adam; GAN 100-256-784 / 784-256-1, B 64, one
discriminator step and one generator step). For comparisons against NumPy,
PyTorch and JAX use bench/cpu.py; this is the fast loop for measuring one
change at a time, and bench/ab.py runs it alternately over two builds.
"""
import argparse
import os
import sys
import time

import numpy as np

import _common

_common.ensure_fusedae_importable()

from fusedae._native import engine  # noqa: E402


def check_build():
    """Exit unless the engine is the build bench/ab.py named (FUSEDAE_BENCH_BUILD)."""
    expected = os.environ.get("FUSEDAE_BENCH_BUILD")
    if not expected:
        return
    loaded = os.path.realpath(engine.__file__)
    if not loaded.startswith(os.path.realpath(expected) + os.sep):
        sys.exit(f"bench/step.py: the engine was imported from {loaded}, not from the build "
                 f"at {expected}: an editable install of fusedae comes before PYTHONPATH "
                 f"(install it with `pip install .`, or uninstall it)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("D", type=int)
    parser.add_argument("N", type=int)
    parser.add_argument("B", type=int)
    parser.add_argument("--threads", type=int, default=engine.get_num_threads())
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=0,
                        help="time exactly this many steps instead of --seconds (for A/B "
                             "runs of two builds: same work, so the loss printed must agree)")
    parser.add_argument("--density", type=float, default=0.2)
    parser.add_argument("--model", choices=["sparse", "vae", "gan"], default="sparse")
    parser.add_argument("--epoch", type=int, default=0, metavar="ROWS",
                        help="time fit_epoch calls over ROWS rows (batches of B), shuffled "
                             "unless --in-order")
    parser.add_argument("--in-order", action="store_true",
                        help="--epoch: batches in the rows' order instead of shuffled")
    parser.add_argument("--noise", default="none",
                        choices=["none", "gaussian", "masking", "salt_pepper"],
                        help="--epoch: the denoising corruption of each batch")
    parser.add_argument("--level", type=float, default=0.3, help="--noise: its level")
    parser.add_argument("--serve", action="store_true",
                        help="after the warm-up, read a count K per line on stdin, run K "
                             "calls and print their seconds (bench/ab.py --paired)")
    args = parser.parse_args(argv)
    check_build()
    engine.set_num_threads(args.threads)
    build = generative if args.model != "sparse" else sparse
    step, per_call, describe, last_loss = build(args)
    if args.serve:
        return serve(step, per_call, last_loss)
    rate = per_call * timed(step, args)
    print(describe(rate) + (f", loss after: {last_loss()}" if args.steps > 0 else ""))


def sparse(args):
    """The sparse autoencoder's train_step (or fit_epoch) of the module docstring:
    (the call, steps per call, the line for a rate, the loss after one more call)."""
    rng = np.random.default_rng(1234)
    rows = args.epoch or args.B
    X = np.where(rng.random((rows, args.D)) < args.density, rng.random((rows, args.D)), 0.0)
    X = np.ascontiguousarray(X, dtype=np.float32)
    net = engine.Network([args.D, args.N, args.D], ["sigmoid", "sigmoid"], "squared_error",
                         "float32", 0.0, 1, 0.05, 3.0)
    net.init_params(0)
    net.set_optimizer("sgd", 0.1)
    if args.epoch:
        per_call = -(-rows // args.B)
        level = args.level if args.noise != "none" else 0.0

        def step():
            return net.fit_epoch(X, None, args.B, not args.in_order, args.noise, level)

        step()

        def last_loss():
            return f"{step()[0]:.6f}"
    else:
        per_call = 1

        def step():
            return net.train_step(X, X)

        for _ in range(5):
            step()

        def last_loss():
            return f"{step():.6f}"
    flops = 10.0 * args.B * args.D * args.N

    def describe(rate):
        return (f"{args.D}-{args.N}-{args.D}, B={args.B}, density {args.density}"
                + (f", {'in-order' if args.in_order else 'shuffled'} epochs of {rows} rows"
                   if args.epoch else "")
                + (f", {args.noise} noise {args.level}"
                   if args.epoch and args.noise != "none" else "")
                + f", {args.threads} thread(s): {rate:,.1f} steps/s, "
                f"{rate * flops / 1e9:.1f} GFLOP/s (isa {net.isa}, "
                f"OpenBLAS {engine.blas_corename()})")

    return step, per_call, describe, last_loss


def timed(step, args):
    """Calls per second of `step`: exactly --steps calls, or as many as fit in --seconds."""
    steps, start = 0, time.perf_counter()
    if args.steps > 0:
        for _ in range(args.steps):
            step()
        steps = args.steps
    else:
        while time.perf_counter() - start < args.seconds:
            step()
            steps += 1
    return steps / (time.perf_counter() - start)


def serve(step, per_call, last_loss):
    """Timed windows on request: bench/ab.py --paired keeps one such process per
    build and alternates their windows, so that two builds' windows are a
    fraction of a second apart instead of a whole run. Prints "ready" and the
    steps per call, then the seconds of each window; an empty line (or the end
    of input) prints the loss after one more call and ends it."""
    print(f"ready {per_call}", flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        k = int(line)
        start = time.perf_counter()
        for _ in range(k):
            step()
        print(f"{time.perf_counter() - start:.9f}", flush=True)
    print(f"loss after: {last_loss()}", flush=True)


def generative(args):
    """The VAE or GAN step of bench/cpu.py --all (bench/peers_fusedae.py builds it)."""
    import cpu_workloads as wl
    import peers_fusedae
    if args.model == "vae":
        name, X = "VAE", wl.vae_data(wl.VAE["VAE"])
        runner = peers_fusedae.build_vae(name, X, False)
    else:
        name, X = "GAN", wl.gan_data(wl.GAN["GAN"])
        runner = peers_fusedae.build_gan(name, X, False)
    for _ in range(5):
        runner.step()
    flops = wl.flops_per_step(name)

    def describe(rate):
        return (f"{name}, {args.threads} thread(s): {rate:,.1f} steps/s, "
                f"{rate * flops / 1e9:.1f} GFLOP/s (OpenBLAS {engine.blas_corename()})")

    def last_loss():
        # The losses of one more step (the GAN's: discriminator, generator).
        return ",".join(f"{v:.9g}" for v in runner.to_floats([runner.step()]))

    return runner.step, 1, describe, last_loss


if __name__ == "__main__":
    main()
