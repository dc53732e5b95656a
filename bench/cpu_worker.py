"""One implementation of one workload at one thread count, in its own
process: the worker of ``bench/cpu.py --all``.

    python bench/cpu.py --worker IMPL WORKLOAD THREADS [--keep-env]

IMPL: fusedae, numpy, torch, torch-compile, jax, jax-scan (epoch workloads
only), or ``ceiling`` (workload ``-``: the FMA ceiling of one core).

Before anything heavy is imported the worker pins itself to the first
THREADS CPUs it may run on (``os.sched_setaffinity``), sets
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and the
XLA CPU flags to THREADS, and -- unless ``--keep-env`` -- removes
``OPENBLAS_CORETYPE`` from its environment, so that every OpenBLAS picks its
own kernels. After the imports: ``threadpoolctl.threadpool_limits(THREADS)``
(every BLAS it sees), ``engine.set_num_threads(THREADS)`` and, for torch,
``torch.set_num_threads(THREADS)``.

Protocol: one request per line on stdin, one JSON object per line in reply
(on the original stdout; anything else the libraries print goes to stderr).
The first line written is ``{"ready": ...}`` (or ``{"error"|"unavailable":
...}``). Requests:

- ``check N``: a fresh model, N steps (epochs) with the engine's Philox
  noise; replies the losses;
- ``warm S``: a fresh model for timing; two untimed steps (compilation),
  then runs of doubling length until one lasts S seconds; replies its rate;
- ``run N``: N steps of that model, timed (JAX: until the results are
  ready); replies seconds, the CPUs other processes kept busy meanwhile, and
  -- checked after the timer -- the count of non-finite losses;
- ``mem EPOCHS``: the peak-memory measurement (workload ``M-fit``): RSS
  before the data exists, the data made, the high-water mark reset, a fit
  of EPOCHS epochs, the high-water mark;
- ``fma N``: N readings of ``engine.fma_rates()`` (impl ``ceiling``);
- ``info``: thread counts and libraries as they ended up;
- ``quit``.
"""
import json
import math
import os
import sys
import time
import traceback

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
RECORDED_ENV = THREAD_ENV + ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "XLA_FLAGS",
                             "JAX_PLATFORMS", "TORCHINDUCTOR_COMPILE_THREADS",
                             "FUSEDAE_BENCH_TORCH_TRACE_AUTOGRAD", "OMP_WAIT_POLICY")
IMPL_MODULES = {"fusedae": "peers_fusedae", "numpy": "peers_numpy", "torch": "peers_torch",
                "torch-compile": "peers_torch", "jax": "peers_jax", "jax-scan": "peers_jax",
                "fusedae-net": "peers_fusedae"}
IMPL_LIBRARY = {"torch": "torch", "torch-compile": "torch", "jax": "jax", "jax-scan": "jax"}


def worker_env(threads, keep_env, base=None):
    """The environment of a worker with `threads` threads (also applied by
    the worker to itself)."""
    env = dict(os.environ if base is None else base)
    if not keep_env:
        env.pop("OPENBLAS_CORETYPE", None)
    for k in THREAD_ENV:
        env[k] = str(threads)
    multi = "true" if threads > 1 else "false"
    xla = env.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in xla:
        xla = (xla + f" --xla_cpu_multi_thread_eigen={multi}"
               f" intra_op_parallelism_threads={threads}").strip()
    env["XLA_FLAGS"] = xla
    env["JAX_PLATFORMS"] = "cpu"
    env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    return env


def pin(threads):
    """Pin this process to the first `threads` CPUs it may run on."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        raise SystemExit(f"--worker: {threads} threads but only {len(allowed)} CPUs allowed")
    os.sched_setaffinity(0, allowed[:threads])
    return allowed[:threads]


def proc_status(*keys):
    """Fields of /proc/self/status (kB for Vm*), as ints."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def reset_hwm():
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Worker:
    def __init__(self, impl, workload, threads, keep_env, cpus):
        self.impl, self.workload, self.threads = impl, workload, threads
        self.keep_env, self.cpus = keep_env, cpus
        self.runner = None
        self.steps_done = 0
        self.first_nonfinite = None

    # ------------------------------------------------------------ set-up
    def load(self):
        import numpy as np  # noqa: F401
        import threadpoolctl
        import _common
        _common.ensure_fusedae_importable()
        import cpu_workloads as wl
        from fusedae._native import engine
        self.limits = threadpoolctl.threadpool_limits(limits=self.threads)
        engine.set_num_threads(self.threads)
        self.engine, self.wl = engine, wl
        self.torch = None
        if self.impl == "ceiling":
            self.module = None
            return
        lib = IMPL_LIBRARY.get(self.impl)
        if lib is not None:
            try:
                __import__(lib)
            except Exception as exc:  # an optional peer
                raise ImportError(f"{lib}: {type(exc).__name__}: {exc}") from None
        if lib == "torch":
            import torch
            torch.set_num_threads(self.threads)
            torch.manual_seed(7)
            self.torch = torch
        self.module = __import__(IMPL_MODULES[self.impl])
        if self.workload in wl.ALL_WORKLOADS and wl.family(self.workload) != "memory":
            fam = wl.family(self.workload)
            if self.impl == "jax-scan" and fam != "epoch":
                raise ValueError("jax-scan runs the epoch workloads only")
            from peers_common import data_for
            self.X = data_for(self.workload)
            self.builder = self.module.BUILDERS[fam]

    def build(self, check):
        kw = {}
        if self.impl in ("torch", "torch-compile"):
            kw["compiled"] = self.impl == "torch-compile"
        if self.impl == "jax-scan":
            kw["scan"] = True
        return self.builder(self.workload, self.X, check, **kw)

    # ----------------------------------------------------------- requests
    def check(self, n):
        runner = self.build(check=True)
        results = [runner.step() for _ in range(n)]
        runner.sync(results[-1])
        return {"losses": runner.to_floats(results)}

    def _timed(self, n):
        import _common
        runner = self.runner
        step, results = runner.step, []
        append = results.append
        counters = _common.cpu_counters()
        start = time.perf_counter()
        for _ in range(n):
            append(step())
        runner.sync(results[-1])
        elapsed = time.perf_counter() - start
        foreign = _common.foreign_load(counters, _common.cpu_counters(), elapsed)
        return elapsed, runner.to_floats(results), foreign

    def _count(self, losses):
        bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
        if bad and self.first_nonfinite is None:
            self.first_nonfinite = self.steps_done + bad[0]
        self.steps_done += len(losses)
        return len(bad)

    def warm(self, seconds):
        self.runner = self.build(check=False)
        self.steps_done, self.first_nonfinite = 0, None
        t0 = time.perf_counter()
        first, losses, _ = self._timed(1)        # compilation, allocation
        second, more, _ = self._timed(1)         # recompilation, lazy state
        nonfinite = self._count(losses) + self._count(more)
        n = 2
        while True:
            elapsed, losses, _ = self._timed(n)
            nonfinite += self._count(losses)
            if elapsed >= seconds or n >= 1 << 20:
                break
            n = max(2 * n, int(math.ceil(n * 1.2 * seconds / max(elapsed, 1e-9))))
        return {"rate": n / elapsed, "last_run_units": n, "last_run_seconds": elapsed,
                "first_step_seconds": first, "second_step_seconds": second,
                "warm_seconds": time.perf_counter() - t0, "warm_units": self.steps_done,
                "nonfinite": nonfinite, "last_loss": losses[-1]}

    def run(self, n):
        elapsed, losses, foreign = self._timed(n)
        bad = self._count(losses)
        return {"seconds": elapsed, "units": n, "nonfinite": bad,
                "first_nonfinite": self.first_nonfinite, "last_loss": losses[-1],
                "foreign_cpus": foreign}

    def mem(self, epochs):
        import gc
        kw = {}
        if self.impl in ("torch", "torch-compile"):
            kw["compiled"] = self.impl == "torch-compile"
        if self.impl in ("jax", "jax-scan"):
            kw["scan"] = self.impl == "jax-scan"
        if self.impl in ("fusedae", "fusedae-net"):
            kw["net"] = self.impl == "fusedae-net"
        prepared, prepare_bytes = None, 0
        if hasattr(self.module, "prepare_for_memory"):
            r0 = proc_status("VmRSS").get("VmRSS", 0)
            prepared = self.module.prepare_for_memory(self.threads, **kw)
            gc.collect()
            prepare_bytes = (proc_status("VmRSS").get("VmRSS", 0) - r0) * 1024
        gc.collect()
        before = proc_status("VmRSS", "VmHWM")
        X = self.wl.epoch_data()
        gc.collect()
        reset = reset_hwm()
        with_data = proc_status("VmRSS", "VmHWM")
        t0 = time.perf_counter()
        detail = self.module.fit_for_memory(X, self.threads, epochs, **kw)
        seconds = time.perf_counter() - t0
        after = proc_status("VmRSS", "VmHWM")
        import resource
        kib = 1024
        fit_increase = (after.get("VmHWM", 0) - with_data.get("VmRSS", 0)) * kib
        return {"rss_before_data_bytes": before.get("VmRSS", 0) * kib,
                "rss_with_data_bytes": with_data.get("VmRSS", 0) * kib,
                "hwm_reset": reset,
                "hwm_after_bytes": after.get("VmHWM", 0) * kib,
                "rss_after_bytes": after.get("VmRSS", 0) * kib,
                # The data's own bytes plus what the fit adds to the RSS once
                # the data exists (the RSS growth from making the data also
                # holds the allocator's leftovers of its temporaries).
                "hwm_increase_bytes": int(X.nbytes) + fit_increase,
                "fit_increase_bytes": fit_increase,
                "rss_increase_from_data_bytes": (with_data.get("VmRSS", 0)
                                                 - before.get("VmRSS", 0)) * kib,
                "hwm_minus_rss_before_data_bytes": (after.get("VmHWM", 0)
                                                    - before.get("VmRSS", 0)) * kib,
                "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib,
                "data_bytes": int(X.nbytes), "epochs": epochs, "fit_seconds": seconds,
                "prepared": prepared, "prepare_rss_bytes": prepare_bytes,
                "detail": detail}

    def fma(self, n):
        return {"readings": [{str(k): v for k, v in self.engine.fma_rates().items()}
                             for _ in range(n)], "cpus": self.cpus}

    def info(self):
        import threadpoolctl
        out = {"impl": self.impl, "workload": self.workload, "threads": self.threads,
               "pid": os.getpid(), "affinity": sorted(os.sched_getaffinity(0)),
               "env": {k: os.environ.get(k) for k in RECORDED_ENV},
               "keep_env": self.keep_env,
               "os_threads": proc_status("Threads").get("Threads"),
               "engine_threads": self.engine.get_num_threads(),
               "engine_blas_corename": self.engine.blas_corename(),
               "threadpoolctl": [{k: d.get(k) for k in ("internal_api", "num_threads",
                                                        "architecture", "version",
                                                        "threading_layer")}
                                 | {"library": os.path.basename(d.get("filepath", ""))}
                                 for d in threadpoolctl.threadpool_info()]}
        if self.module is not None and hasattr(self.module, "info"):
            out.update(self.module.info())
        if self.impl == "torch-compile":
            out["dynamo_graph_breaks"] = self.module.graph_breaks()
        return out


def main(argv):
    keep_env = "--keep-env" in argv
    args = [a for a in argv if a != "--keep-env"]
    if len(args) != 3:
        raise SystemExit("usage: cpu.py --worker IMPL WORKLOAD THREADS [--keep-env]")
    impl, workload, threads = args[0], args[1], int(args[2])
    cpus = pin(threads)
    env = worker_env(threads, keep_env)
    os.environ.clear()
    os.environ.update(env)

    # The protocol gets the real stdout; fd 1 (and sys.stdout) now go to
    # stderr, so that nothing a library prints can garble a reply.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(obj):
        proto.write(json.dumps(obj, default=str) + "\n")
        proto.flush()

    if impl not in IMPL_MODULES and impl != "ceiling":
        reply({"error": f"unknown implementation {impl!r}"})
        return 2
    w = Worker(impl, workload, threads, keep_env, cpus)
    t0 = time.perf_counter()
    try:
        w.load()
    except ImportError as exc:
        reply({"unavailable": str(exc)})
        return 0
    except Exception:
        reply({"error": traceback.format_exc(limit=8)})
        return 1
    reply({"ready": True, "load_seconds": time.perf_counter() - t0})

    commands = {"check": lambda a: w.check(int(a)), "warm": lambda a: w.warm(float(a)),
                "run": lambda a: w.run(int(a)), "mem": lambda a: w.mem(int(a)),
                "fma": lambda a: w.fma(int(a)), "info": lambda a: w.info()}
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if not cmd:
            continue
        if cmd == "quit":
            break
        try:
            reply({"ok": commands[cmd](arg)})
        except Exception:
            reply({"error": traceback.format_exc(limit=8)})
    return 0
