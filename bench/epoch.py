"""Whole-epoch throughput of the engine: ``fit_epoch`` with and without noise.

One call trains an epoch in C++ (shuffle, minibatches, denoising noise drawn
by Philox, fused steps). This measures steps/s over an epoch of MNIST-like
data (10240 × 784, each entry nonzero with probability 0.2, then U(0, 1)) for
the W-mnist model (784-196-784, sigmoid/sigmoid, ρ = 0.05, β = 3, SGD lr 0.1,
float32, batch 256), with no noise and with each corruption, shuffled or not.
Configurations are interleaved over ``--reps`` repetitions; the median is
reported.

Usage::

    python bench/epoch.py [--reps 5] [--threads 2] [--out PATH]
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time

import _common

_common.ensure_fusedae_importable()

from fusedae._native import engine  # noqa: E402

D, N, B, ROWS = 784, 196, 256, 10240
CONFIGS = [("none", 0.0), ("gaussian", 0.3), ("masking", 0.3), ("salt_pepper", 0.2)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    today = datetime.date.today().isoformat()
    out = args.out or os.path.join(_common.REPO, "bench", "results", f"epoch-{today}.json")

    saved = engine.get_num_threads()
    engine.set_num_threads(args.threads)
    X = _common.mnist_like(ROWS, D, seed=1234)
    net = engine.Network([D, N, D], ["sigmoid", "sigmoid"], "squared_error", "float32", 0.0,
                         1, 0.05, 3.0)
    net.init_params(0)
    net.set_optimizer("sgd", 0.1)
    steps = -(-ROWS // B)
    cases = [(noise, level, shuffle) for noise, level in CONFIGS for shuffle in (False, True)]
    for noise, level, shuffle in cases:   # warm up every path once
        net.fit_epoch(X, None, B, shuffle, noise, level)
    raw = {f"{n}/{'shuffled' if s else 'in order'}": [] for n, _, s in cases}
    for _ in range(args.reps):
        for noise, level, shuffle in cases:
            t0 = time.perf_counter()
            net.fit_epoch(X, None, B, shuffle, noise, level)
            raw[f"{noise}/{'shuffled' if shuffle else 'in order'}"].append(
                steps / (time.perf_counter() - t0))
    engine.set_num_threads(saved)

    base = statistics.median(raw["none/in order"])
    print(f"fit_epoch, {ROWS} x {D} MNIST-like rows, {D}-{N}-{D}, batch {B}, "
          f"{args.threads} thread(s), median of {args.reps}")
    print(f"{'noise/order':24s} | steps/s | vs no noise, in order")
    for key, values in raw.items():
        med = statistics.median(values)
        print(f"{key:24s} | {med:7.1f} | {med / base:5.2f}x")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"date": today, "command": [sys.executable] + sys.argv,
                   "machine": _common.machine_info(), "threads": args.threads,
                   "isa": net.isa, "blas_corename": engine.blas_corename(),
                   "steps_per_epoch": steps, "raw_steps_per_s": raw,
                   "median_steps_per_s": {k: statistics.median(v) for k, v in raw.items()}},
                  f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
