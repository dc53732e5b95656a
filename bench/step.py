"""Quick before/after check: steps/s of the engine alone on one workload.

    python bench/step.py D N B [--threads T] [--seconds S | --steps K] [--density P]
    python bench/step.py D N B --epoch ROWS [--in-order] [--noise KIND --level L] [--threads T] [--seconds S | --steps K] [--density P]
    python bench/step.py D N B --model vae | gan [--threads T] [--seconds S | --steps K]

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
import time

import numpy as np

import _common

_common.ensure_fusedae_importable()

from fusedae._native import engine  # noqa: E402


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
    args = parser.parse_args(argv)
    engine.set_num_threads(args.threads)
    if args.model != "sparse":
        return generative(args)
    rng = np.random.default_rng(1234)
    rows = args.epoch or args.B
    X = np.where(rng.random((rows, args.D)) < args.density, rng.random((rows, args.D)), 0.0)
    X = np.ascontiguousarray(X, dtype=np.float32)
    net = engine.Network([args.D, args.N, args.D], ["sigmoid", "sigmoid"], "squared_error",
                         "float32", 0.0, 1, 0.05, 3.0)
    net.init_params(0)
    net.set_optimizer("sgd", 0.1)
    if args.epoch:
        steps = -(-rows // args.B)
        level = args.level if args.noise != "none" else 0.0

        def epoch():
            return net.fit_epoch(X, None, args.B, not args.in_order, args.noise, level)

        epoch()
        rate = steps * timed(epoch, args)
        last = epoch()[0] if args.steps > 0 else None
    else:
        for _ in range(5):
            net.train_step(X, X)
        rate = timed(lambda: net.train_step(X, X), args)
        last = net.train_step(X, X) if args.steps > 0 else None
    flops = 10.0 * args.B * args.D * args.N
    print(f"{args.D}-{args.N}-{args.D}, B={args.B}, density {args.density}"
          + (f", {'in-order' if args.in_order else 'shuffled'} epochs of {rows} rows"
             if args.epoch else "")
          + (f", {args.noise} noise {args.level}" if args.epoch and args.noise != "none" else "")
          + ", "
          f"{args.threads} thread(s): {rate:,.1f} steps/s, "
          f"{rate * flops / 1e9:.1f} GFLOP/s (isa {net.isa}, OpenBLAS {engine.blas_corename()})"
          + (f", loss after: {last:.6f}" if last is not None else ""))


def timed(step, args):
    """Steps per second of `step`: exactly --steps calls, or as many as fit in --seconds."""
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
    rate = timed(runner.step, args)
    flops = wl.flops_per_step(name)
    # The losses of one more step (the GAN's: discriminator, generator).
    last = runner.to_floats([runner.step()]) if args.steps > 0 else None
    print(f"{name}, {args.threads} thread(s): {rate:,.1f} steps/s, "
          f"{rate * flops / 1e9:.1f} GFLOP/s (OpenBLAS {engine.blas_corename()})"
          + (f", loss after: {','.join(f'{v:.9g}' for v in last)}" if last else ""))


if __name__ == "__main__":
    main()
