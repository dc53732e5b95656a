"""Alternating A/B runs of bench/step.py over package copies of two (or more) builds.

    python bench/ab.py --paired ROUNDS "STEP ARGS" DIR_A DIR_B [...] [--window S] [--processes P]
    python bench/ab.py ROUNDS "STEP ARGS" DIR_A [DIR_B ...]

Each DIR is a directory holding a ``fusedae`` package (a copy of python/fusedae with that
build's extension modules in it). fusedae must not be installed in editable mode in the
environment that runs this: an editable install's import hook comes before PYTHONPATH,
so every process would time the installed engine (bench/step.py refuses to). Every
process runs from a fresh copy of its DIR in a temporary directory, with that copy first on PYTHONPATH and OPENBLAS_CORETYPE removed from
the environment (docs/design.md). The copy matters: processes of one build loaded from
the same files ran up to 4% faster or slower than those of an identical copy, in every
set of processes (the files' pages in the page cache stay where they are, so whatever
their placement costs is the same for every run from them), where fresh copies gave
1.0004 over 20 sets (docs/performance.md, 2026-12-04, later).

--paired (the one to use for a change of a few percent): P sets of processes (10 by
default), each set one ``bench/step.py STEP ARGS --serve`` process per build, started
afresh, that runs ROUNDS / P rounds of one timed window per build (about S seconds, 0.1
by default; the same count of calls for every build), in alternating order, A B then B A.
A set's ratio is the median over its rounds of each build's rate over the first build's;
the table gives each build's median rate, the median of the sets' ratios with their
quartiles, and in how many sets the build was the faster. The windows of a round are a
fraction of a second apart, so the host's drift over minutes cancels in their ratio, and
the sets average over the processes' own luck (where each one's memory lies). Every
build makes the same calls, so the loss after must agree between builds that keep the
order of the sums.

Whole runs: every round runs ``bench/step.py STEP ARGS`` once per build, in alternating
order, and the table gives each build's median, best and worst steps/s over the rounds.
Use --steps in STEP ARGS so that every run does the same work. Rounds are whole runs
apart, so the host's drift (up to 30% within minutes) enters each comparison; this is
how the A/B figures of docs/performance.md were taken up to 2026-12-04.

    python bench/ab.py --paired 300 "784 196 256 --threads 1" /tmp/ab/before /tmp/ab/after
    python bench/ab.py --paired 200 "784 256 64 --model gan --threads 2" /tmp/ab/before /tmp/ab/after
    python bench/ab.py 8 "784 196 256 --threads 1 --steps 600" /tmp/ab/before /tmp/ab/after
"""
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

STEP_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "step.py")


def fresh_copy(directory, scratch, name):
    """A copy of the build in `directory`, as scratch/name: every process runs
    from its own (the docstring says why)."""
    copy = os.path.join(scratch, name)
    shutil.copytree(directory, copy)
    return copy


def step_env(path):
    """bench/step.py's environment: the build at `path` first on PYTHONPATH,
    OPENBLAS_CORETYPE removed, and FUSEDAE_BENCH_BUILD naming `path`, so that
    step.py refuses to time an engine from anywhere else (an editable install
    of fusedae imports through a hook that comes before PYTHONPATH)."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(path),
               FUSEDAE_BENCH_BUILD=os.path.abspath(path))
    env.pop("OPENBLAS_CORETYPE", None)
    return env


def run_once(directory, step_args):
    scratch = tempfile.mkdtemp(prefix="fusedae-ab-")
    try:
        env = step_env(fresh_copy(directory, scratch, "build"))
        out = subprocess.run([sys.executable, STEP_PY, *step_args], capture_output=True,
                             text=True, env=env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    m = re.search(r"([0-9][0-9,.]*) steps/s", out.stdout)
    if out.returncode != 0 or not m:
        raise SystemExit(f"{directory}: bench/step.py failed (rc {out.returncode}):\n"
                         f"{out.stdout}{out.stderr}")
    loss = re.search(r"loss after: (\S+)", out.stdout)
    return float(m.group(1).replace(",", "")), loss.group(1) if loss else None


class Server:
    """One build's bench/step.py --serve process, run from `path` (a copy of
    the build in `directory`)."""

    def __init__(self, directory, path, step_args):
        self.directory = directory
        self.proc = subprocess.Popen([sys.executable, STEP_PY, *step_args, "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=step_env(path))
        self.steps_per_call = int(self._expect("ready"))

    def _expect(self, prefix):
        line = self.proc.stdout.readline()
        if not line.startswith(prefix):
            self.proc.kill()
            raise SystemExit(f"{self.directory}: bench/step.py --serve replied {line!r} "
                             f"(rc {self.proc.poll()})")
        return line[len(prefix):].strip()

    def window(self, calls):
        """Seconds of `calls` calls."""
        self.proc.stdin.write(f"{calls}\n")
        self.proc.stdin.flush()
        return float(self._expect(""))

    def finish(self):
        """The loss after one more call; ends the process."""
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        loss = self._expect("loss after:")
        self.proc.wait()
        return loss


def quartiles(x):
    q = statistics.quantiles(x, n=4) if len(x) > 1 else [x[0]] * 3
    return q[0], q[1], q[2]


def paired(rounds, step_args, dirs, window, processes):
    """`rounds` rounds of one window per build, spread over `processes` fresh
    sets of servers (see the module docstring)."""
    per_set = -(-rounds // processes)
    calls, counts = None, []
    rates = [[] for _ in dirs]
    set_ratios = [[] for _ in dirs]  # each set's median ratio to the first build
    losses = [set() for _ in dirs]
    for p in range(processes):
        start_order = list(range(len(dirs))) if p % 2 == 0 else list(reversed(range(len(dirs))))
        servers = [None] * len(dirs)
        scratch = tempfile.mkdtemp(prefix="fusedae-ab-")
        try:
            for i in start_order:
                servers[i] = Server(dirs[i], fresh_copy(dirs[i], scratch, str(i)), step_args)
            if calls is None:
                # Calls per window: doubled on the first build until a window
                # lasts half the target, then scaled.
                c = 1
                while True:
                    seconds = servers[0].window(c)
                    counts.append(c)
                    if seconds >= window / 2:
                        break
                    c *= 2
                calls = max(1, round(c * window / seconds))
                first = 1
            else:
                first = 0
            # Every server makes the same calls, so the losses after agree.
            for s in servers[first:]:
                for c in counts:
                    s.window(c)
            set_rates = [[] for _ in dirs]
            for r in range(per_set):
                order = range(len(dirs)) if r % 2 == 0 else reversed(range(len(dirs)))
                for i in order:
                    set_rates[i].append(calls * servers[i].steps_per_call
                                        / servers[i].window(calls))
            for i, s in enumerate(servers):
                losses[i].add(s.finish())
                rates[i] += set_rates[i]
                set_ratios[i].append(statistics.median(
                    a / b for a, b in zip(set_rates[i], set_rates[0])))
        finally:
            for s in servers:
                if s is not None and s.proc.poll() is None:
                    s.proc.kill()
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"bench/step.py {' '.join(step_args)}: {processes} sets of processes, "
          f"{per_set} alternating rounds each of one {calls}-call window per build "
          f"(a call is {servers[0].steps_per_call} step(s))")
    print(f"{'build':32s} {'steps/s':>11s} {'ratio':>7s} {'sets: quartiles':>16s} "
          f"{'faster':>7s}  loss after")
    for i, d in enumerate(dirs):
        lo, mid, hi = quartiles(set_ratios[i])
        faster = sum(x > 1 for x in set_ratios[i])
        print(f"{d:32s} {statistics.median(rates[i]):11,.2f} {mid:7.4f} "
              f"{f'{lo:.4f}-{hi:.4f}':>16s} {f'{faster}/{processes}' if i else '-':>7s}  "
              f"{', '.join(sorted(losses[i]))}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--paired":
        options = {"--window": 0.1, "--processes": 10}
        for name in options:
            if name in argv:
                at = argv.index(name)
                options[name] = type(options[name])(argv[at + 1])
                argv = argv[:at] + argv[at + 2:]
        if len(argv) < 4 or not argv[1].isdigit():
            raise SystemExit(__doc__)
        for d in argv[3:]:
            if not os.path.isdir(os.path.join(d, "fusedae")):
                raise SystemExit(f"{d}: expected a directory holding a fusedae package")
        return paired(int(argv[1]), shlex.split(argv[2]), argv[3:], options["--window"],
                      options["--processes"])
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
