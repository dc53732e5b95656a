"""Helpers shared by the benchmarks: import path, inputs, machine facts,
thread control, timing and summary statistics."""
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
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
