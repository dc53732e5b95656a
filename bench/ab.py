"""Alternating A/B runs of bench/step.py over package copies of two (or more) builds.

    python bench/ab.py ROUNDS "STEP ARGS" DIR_A [DIR_B ...]

Each DIR is a directory holding a ``fusedae`` package (a copy of python/fusedae with that
build's extension modules in it). Every round runs ``bench/step.py STEP ARGS`` once per
directory, with that directory first on PYTHONPATH and OPENBLAS_CORETYPE removed from the
environment (docs/design.md), in alternating order (A B, then B A, ...), and the table
gives each build's median, best and worst steps/s over the rounds. Use --steps in STEP
ARGS so that every run does the same work: the loss printed after it must then agree
between builds that keep the order of the sums. This is how the A/B figures of
docs/performance.md are taken: the machine is shared and its speed drifts within minutes,
so only alternating runs compare two builds fairly.

    python bench/ab.py 8 "784 196 256 --threads 1 --steps 600" /tmp/ab/before /tmp/ab/after
    python bench/ab.py 6 "784 196 256 --model gan --threads 2 --steps 1500" /tmp/ab/before /tmp/ab/after
"""
import os
import re
import shlex
import statistics
import subprocess
import sys

STEP_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "step.py")


def run_once(directory, step_args):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(directory))
    env.pop("OPENBLAS_CORETYPE", None)
    out = subprocess.run([sys.executable, STEP_PY, *step_args], capture_output=True, text=True,
                         env=env)
    m = re.search(r"([0-9][0-9,.]*) steps/s", out.stdout)
    if out.returncode != 0 or not m:
        raise SystemExit(f"{directory}: bench/step.py failed (rc {out.returncode}):\n"
                         f"{out.stdout}{out.stderr}")
    loss = re.search(r"loss after: (\S+)", out.stdout)
    return float(m.group(1).replace(",", "")), loss.group(1) if loss else None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or not argv[0].isdigit():
        raise SystemExit(__doc__)
    rounds, step_args, dirs = int(argv[0]), shlex.split(argv[1]), argv[2:]
    for d in dirs:
        if not os.path.isdir(os.path.join(d, "fusedae")):
            raise SystemExit(f"{d}: expected a directory holding a fusedae package")
    rates = {d: [] for d in dirs}
    losses = {d: set() for d in dirs}
    for r in range(rounds):
        for d in (dirs if r % 2 == 0 else dirs[::-1]):
            rate, loss = run_once(d, step_args)
            rates[d].append(rate)
            losses[d].add(loss)
    print(f"bench/step.py {' '.join(step_args)}: {rounds} alternating rounds")
    print(f"{'build':40s} {'median':>12s} {'best':>12s} {'worst':>12s}  loss after")
    for d in dirs:
        x = rates[d]
        print(f"{d:40s} {statistics.median(x):12,.1f} {max(x):12,.1f} {min(x):12,.1f}  "
              f"{', '.join(sorted(l for l in losses[d] if l)) or '-'}")


if __name__ == "__main__":
    main()
