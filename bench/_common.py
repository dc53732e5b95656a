"""Helpers shared by the benchmarks: import path, inputs, machine facts,
thread control, timing and summary statistics, and (for the benchmarks
that race the engine against NumPy and PyTorch) interleaved timing of
competitors, their tables, command line and JSON report."""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_fusedae_importable():
    """Make ``import fusedae`` work from a source checkout.

    If fusedae is not installed, fall back to the repository's ``python/``
    folder (where the built ``_engine*.so`` sits).
    """
    try:
        import fusedae  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(REPO, "python"))
        import fusedae  # noqa: F401


def mnist_like(batch, dim, seed):
    """A float32 (batch, dim) C-contiguous batch: each entry is nonzero with
    probability 0.2, and then drawn from U(0, 1)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((batch, dim)) < 0.2
    values = rng.random((batch, dim))
    return np.ascontiguousarray(np.where(mask, values, 0.0), dtype=np.float32)


def cpu_model():
    """The 'model name' line of /proc/cpuinfo (or platform's guess)."""
    ensure_fusedae_importable()
    from fusedae.cli import cpu_model as model
    return model()


def machine_info():
    return {
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "sched_affinity": (len(os.sched_getaffinity(0))
                           if hasattr(os, "sched_getaffinity") else None),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def cpu_counters():
    """(CPU seconds the whole machine spent busy, CPU seconds this process
    used), or None where /proc/stat cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: all but idle and
    # iowait count as busy (steal: the hypervisor ran someone else).
    busy_ticks = sum(fields) - fields[3] - fields[4]
    own = os.times()
    return busy_ticks / os.sysconf("SC_CLK_TCK"), own.user + own.system


def foreign_load(before, after, seconds):
    """Average number of CPUs kept busy by *other* processes between two
    cpu_counters() readings taken `seconds` apart (None if unknown).
    The counters tick at 100 Hz, so this is rough for short windows."""
    if before is None or after is None or seconds <= 0:
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, others / seconds)


def time_steps(step, n_steps):
    """Run ``step()`` n_steps times.

    Returns (seconds, list of its results, foreign load: CPUs used by other
    processes meanwhile). The results (losses) are only collected inside
    the timed loop; checking them is left to the caller, outside the timer.
    """
    results = []
    append = results.append
    counters = cpu_counters()
    start = time.perf_counter()
    for _ in range(n_steps):
        append(step())
    elapsed = time.perf_counter() - start
    return elapsed, results, foreign_load(counters, cpu_counters(), elapsed)


def warm_up(step, min_steps=3, min_seconds=0.3):
    """Run ``step()`` at least min_steps times and for at least min_seconds.

    Returns (steps per second measured over the steps after the first, which
    absorbs one-off costs such as allocation; list of all results).
    """
    results = [step()]
    n, start = 0, time.perf_counter()
    while n < min_steps - 1 or time.perf_counter() - start < min_seconds:
        results.append(step())
        n += 1
    return n / (time.perf_counter() - start), results


def steps_for(rate, seconds, min_steps=2):
    """How many steps at `rate` steps/s fill a window of `seconds`."""
    return max(min_steps, int(round(rate * seconds)))


def summarize(values):
    """Median, min and max of a list of numbers (None if empty)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values),
            "max": max(values)}


def count_nonfinite(losses):
    return sum(1 for x in losses if not math.isfinite(x))


def finite_json(obj):
    """A copy of obj with non-finite floats replaced by strings ("nan",
    "inf", "-inf"), so that the JSON written is standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def one_hot_labels(batch, classes, seed):
    """(int64 labels of shape (batch,), uniform over range(classes); their
    float32 one-hot (batch, classes) C-contiguous matrix)."""
    labels = np.random.default_rng(seed).integers(0, classes, size=batch)
    onehot = np.zeros((batch, classes), dtype=np.float32)
    onehot[np.arange(batch), labels] = 1.0
    return labels.astype(np.int64), onehot


def optional_torch():
    """(the torch module, None), or (None, why it could not be imported)."""
    try:
        import torch
    except ImportError as exc:  # PyTorch is an optional competitor
        return None, f"{type(exc).__name__}: {exc}"
    return torch, None


def torch_blas_info(torch):
    """The BLAS/LAPACK/ISA lines of torch's build configuration."""
    try:
        config = torch.__config__.show()
    except Exception:  # best effort: informational only
        return None
    keep = [ln.strip() for ln in config.splitlines()
            if any(k in ln for k in ("BLAS_INFO", "LAPACK_INFO", "CPU capability",
                                     "OpenMP", "MKL", "oneDNN"))]
    return keep


def torch_info(torch, missing):
    """JSON-ready facts about torch's CPU build, or why it was skipped."""
    if torch is None:
        return {"skipped": missing}
    return {"blas": torch_blas_info(torch),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


class ThreadSettings:
    """Set the engine, every BLAS threadpoolctl sees and (if given) torch to
    t threads; restore the previous settings on exit."""

    def __init__(self, t, engine, torch=None):
        self.t = t
        self.engine = engine
        self.torch = torch

    def __enter__(self):
        import threadpoolctl
        self.saved_engine = self.engine.get_num_threads()
        self.saved_torch = (self.torch.get_num_threads()
                            if self.torch is not None else None)
        self.limits = threadpoolctl.threadpool_limits(limits=self.t)
        # threadpool_limits reaches every BLAS it sees, the engine's
        # scipy-openblas32 included; set the engine and torch explicitly too.
        self.engine.set_num_threads(self.t)
        if self.torch is not None:
            self.torch.set_num_threads(self.t)
        return self

    def __exit__(self, *exc):
        self.limits.restore_original_limits()
        self.engine.set_num_threads(self.saved_engine)
        if self.torch is not None:
            self.torch.set_num_threads(self.saved_torch)
        return False

    def seen(self):
        """The thread counts in force, as each library reports them."""
        import threadpoolctl
        return {"engine": self.engine.get_num_threads(),
                "torch": (self.torch.get_num_threads()
                          if self.torch is not None else None),
                "threadpoolctl": threadpoolctl.threadpool_info()}


# ---------------------------------------------------- timing competitors
#
# A competitor is built by a factory: a callable of no arguments returning
# (step, to_floats), where step() performs one training step and returns
# that step's loss in whatever form is cheapest to produce, and
# to_floats(list of those) turns them into Python floats after the timer
# has stopped.

def identity_floats(losses):
    return [float(x) for x in losses]


def time_competitors(factories, reps, seconds, flops_per_step,
                     baseline="fusedae"):
    """Warm up, calibrate and time every competitor of one workload.

    factories: {name: factory}, in the order the first repetition runs
    them. Each competitor is built and warmed up (warm_up), its warm-up rate
    fixing the steps in one window of about `seconds`. Then, `reps` times,
    one window per competitor, interleaved, the starting competitor rotating
    each repetition. Returns a JSON-ready dict: per competitor its windows
    and summaries ("competitors"), the baseline's GFLOP/s and the ratios of
    the baseline's steps/s to every other's.
    """
    state = {}
    for comp, make in factories.items():
        step, to_floats = make()
        rate, warm_losses = warm_up(step)
        warm_losses = to_floats(warm_losses)
        state[comp] = {
            "step": step, "to_floats": to_floats,
            "warmup_steps_per_s": rate,
            "steps_per_window": steps_for(rate, seconds),
            "steps_done": len(warm_losses),
            "warmup_nonfinite": count_nonfinite(warm_losses),
            "first_nonfinite_step": next(
                (i for i, v in enumerate(warm_losses)
                 if not math.isfinite(v)), None),
            "last_loss": warm_losses[-1],
            "raw": [],
        }

    order = list(factories)
    for rep in range(reps):
        # Interleave: one window per competitor per repetition, rotating
        # which one goes first.
        k = rep % len(order)
        for comp in order[k:] + order[:k]:
            s = state[comp]
            elapsed, losses, foreign = time_steps(s["step"],
                                                  s["steps_per_window"])
            losses = s["to_floats"](losses)
            bad = count_nonfinite(losses)
            if bad and s["first_nonfinite_step"] is None:
                first = next(i for i, v in enumerate(losses)
                             if not math.isfinite(v))
                s["first_nonfinite_step"] = s["steps_done"] + first
            s["steps_done"] += len(losses)
            s["last_loss"] = losses[-1]
            s["raw"].append({"rep": rep, "steps": len(losses),
                             "seconds": elapsed,
                             "steps_per_s": len(losses) / elapsed,
                             "nonfinite_losses": bad,
                             "foreign_cpus": foreign})

    out = {"competitors": {}}
    for comp, s in state.items():
        rates = [r["steps_per_s"] for r in s["raw"]]
        out["competitors"][comp] = {
            "warmup_steps_per_s": s["warmup_steps_per_s"],
            "steps_per_window": s["steps_per_window"],
            "warmup_nonfinite_losses": s["warmup_nonfinite"],
            "timed_nonfinite_losses": sum(r["nonfinite_losses"]
                                          for r in s["raw"]),
            "first_nonfinite_step": s["first_nonfinite_step"],
            "total_steps": s["steps_done"],
            "final_loss": s["last_loss"],
            "steps_per_s": summarize(rates),
            "foreign_cpus": summarize(
                [r["foreign_cpus"] for r in s["raw"]
                 if r["foreign_cpus"] is not None]),
            "raw": s["raw"],
        }
    base = out["competitors"][baseline]
    out[f"{baseline}_gflops"] = {k: v * flops_per_step / 1e9
                                 for k, v in base["steps_per_s"].items()}
    out["ratios"] = {}
    for other, o in out["competitors"].items():
        if other == baseline:
            continue
        # Ratio of medians (the table's figure) and the median of the
        # per-repetition ratios (windows timed close together).
        paired = [a["steps_per_s"] / b["steps_per_s"]
                  for a, b in zip(base["raw"], o["raw"])]
        out["ratios"][f"{baseline}/{other}"] = {
            "of_medians": (base["steps_per_s"]["median"]
                           / o["steps_per_s"]["median"]),
            "paired": summarize(paired),
        }
    return out


# ------------------------------------------------------------- reporting

LABELS = {"fusedae": "fusedae", "numpy": "NumPy", "torch": "PyTorch"}
SHORT_LABELS = {"fusedae": "fus", "numpy": "np", "torch": "torch"}


def fmt_rate(summary):
    return "-" if summary is None else f"{summary['median']:.4g}"


def fmt_spread(summary):
    if summary is None:
        return "-"
    return f"[{summary['min']:.4g}, {summary['max']:.4g}]"


def print_table(t, results, baseline="fusedae"):
    """One thread count's table from {workload: time_competitors() result}:
    median steps/s per competitor, baseline/other ratios of medians, the
    baseline's GFLOP/s and non-finite loss counts; then min/max steps/s
    and the CPUs other processes kept busy."""
    comps = list(next(iter(results.values()))["competitors"])
    others = [c for c in comps if c != baseline]
    label = LABELS.get
    header = (["workload"]
              + [f"{label(c, c)} steps/s" for c in comps]
              + [f"{label(baseline, baseline)}/{label(c, c)}" for c in others]
              + [f"{label(baseline, baseline)} GFLOP/s",
                 "non-finite losses ("
                 + "/".join(SHORT_LABELS.get(c, c) for c in comps) + ")"])
    rows = []
    spreads = []
    for name, res in results.items():
        c = res["competitors"]
        row = [name] + [fmt_rate(c[comp]["steps_per_s"]) for comp in comps]
        row += [f"{res['ratios'][f'{baseline}/{o}']['of_medians']:.2f}x"
                for o in others]
        row.append(f"{res[f'{baseline}_gflops']['median']:.1f}")
        counts = []
        for comp in comps:
            n = (c[comp]["warmup_nonfinite_losses"]
                 + c[comp]["timed_nonfinite_losses"])
            counts.append(f"{n}/{c[comp]['total_steps']}" if n else "0")
        row.append(" / ".join(counts))
        rows.append(row)
        spreads.append((name, {comp: c[comp]["steps_per_s"] for comp in c}))

    widths = [max(len(header[i]), *(len(r[i]) for r in rows))
              for i in range(len(header))]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths))
    print(f"\nthreads = {t}  (median steps/s over reps)")
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(v.ljust(w) for v, w in zip(r, widths)))
    print("min/max steps/s over reps:")
    for name, per in spreads:
        print(f"  {name}: " + ", ".join(f"{comp} {fmt_spread(s)}"
                                        for comp, s in per.items()))
    loads = [r["foreign_cpus"] for res in results.values()
             for c in res["competitors"].values() for r in c["raw"]
             if r["foreign_cpus"] is not None]
    if loads:
        busy = sum(1 for x in loads if x > 0.25)
        print(f"CPUs busy with other processes during the timed windows: "
              f"median {summarize(loads)['median']:.2f}, max "
              f"{max(loads):.2f}; {busy} of {len(loads)} windows above 0.25")


# ------------------------------------------------- command line, report

def parse_args(argv, description, workloads, out_prefix, extra=None, groups=None):
    """The competitor benchmarks' options: --reps --threads --workloads
    --seconds --out. `workloads` is {name: shape}; a workload may also be
    named without its "X-" prefix, in any case. Returns the parsed args with
    threads a list of ints and workloads a list of names.

    extra: a callable given the parser, to add a script's own options;
    groups: {alias: [workload names]}, aliases --workloads also accepts
    (e.g. a family of workloads)."""
    p = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(p)
    p.add_argument("--reps", type=int, default=7,
                   help="timed windows per competitor and workload (default 7)")
    p.add_argument("--threads", default="1,2",
                   help="comma-separated thread counts (default 1,2)")
    p.add_argument("--workloads", default=",".join(workloads),
                   help="comma-separated subset of " + ", ".join(workloads)
                        + (" or of the groups " + ", ".join(groups) if groups else ""))
    p.add_argument("--seconds", type=float, default=0.5,
                   help="target length of one timed window (default 0.5)")
    p.add_argument("--out", default=None,
                   help="JSON output path (default "
                        f"bench/results/{out_prefix}-<YYYY-MM-DD>.json)")
    args = p.parse_args(argv)
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        p.error(f"--threads: expected integers like 1,2, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        p.error("--threads: need at least one count >= 1")
    by_lower = {k.lower(): k for k in workloads}
    by_short = {k.lower().split("-", 1)[-1]: k for k in workloads}
    by_group = {k.lower(): v for k, v in (groups or {}).items()}
    names = []
    for w in args.workloads.split(","):
        w = w.strip()
        if not w:
            continue
        if w.lower() in by_group:
            names += [k for k in by_group[w.lower()] if k not in names]
            continue
        key = by_lower.get(w.lower()) or by_short.get(w.lower())
        if key is None:
            p.error(f"--workloads: unknown workload {w!r}; expected one of "
                    f"{', '.join(list(workloads) + list(groups or ()))}")
        if key not in names:
            names.append(key)
    args.workloads = names
    if args.reps < 1:
        p.error("--reps must be >= 1")
    if not args.seconds > 0:
        p.error("--seconds must be > 0")
    return args


def default_out_path(prefix, date):
    return os.path.join(REPO, "bench", "results", f"{prefix}-{date}.json")


def versions(machine, fusedae, torch):
    """Versions of what was timed, JSON-ready."""
    import threadpoolctl
    return {
        "python": machine["python"],
        "numpy": np.__version__,
        "threadpoolctl": threadpoolctl.__version__,
        "fusedae": fusedae.__version__,
        "fusedae_path": os.path.dirname(fusedae.__file__),
        "torch": torch.__version__ if torch is not None else None,
    }


def write_report(report, path):
    """Write the report as standard JSON (non-finite floats as strings)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(finite_json(report), f, indent=1, default=str,
                  allow_nan=False)
    print(f"\nwrote {path}")
