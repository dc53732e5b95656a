"""The controller of ``bench/cpu.py --all``: every implementation of every
workload in its own worker process (bench/cpu_worker.py), timed one at a
time, interleaved.

For each (workload, threads) group:

1. start one worker per implementation (fusedae, numpy, torch,
   torch-compile, jax, and jax-scan for the epoch workloads); a library that
   cannot be imported is skipped with a note;
2. correctness: every worker trains a fresh model for a few steps (epochs)
   from the same initial parameters on the same data with the engine's
   noise; each one's losses must agree with the NumPy reference's to
   ``CHECK_RTOL`` (relative, float32), or it is reported and excluded;
3. warm-up and calibration: a fresh model per worker, its compilation and a
   few steps, and the steps (epochs) that fill one window of ``--seconds``;
4. ``--reps`` rounds: in each, one window per worker, one worker at a time,
   the starting worker rotating from round to round. A round in which other
   processes kept more than ``DISTURBED_CPUS`` busy during any window (each
   window measures it) is marked disturbed and another round is run, up to
   ``--reps`` more in all;
5. summaries: median steps/s with min and max, fusedae / peer ratios,
   GFLOP/s and percentage of the FMA ceiling, over the undisturbed rounds
   (over every round if fewer than half of ``--reps`` were undisturbed); the
   JSON keeps every window, marked.

The ceiling (``engine.fma_rates()`` in a worker pinned to one CPU, best of
several readings, the larger of the 256- and 512-bit rates, times the
threads) is measured first. The peak-memory measurement (workload M-fit)
starts a fresh worker per implementation and thread count.
"""
import datetime
import importlib.metadata
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

import _common
import cpu_report
import cpu_workloads as wl
from cpu_worker import IMPL_LIBRARY, worker_env

CPU_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu.py")
WARM_SECONDS = 0.3
PAUSE = 0.02          # between windows: lets the last worker's spinning threads sleep
DISTURBED_CPUS = 0.25  # foreign load (CPUs) above which a round is repeated
START_TIMEOUT = 600   # import, data, Philox schedules
STEP_TIMEOUT = 1200   # check and warm-up (torch.compile, XLA)
FMA_READINGS = 7


class WorkerFailed(RuntimeError):
    pass


class WorkerProcess:
    """A worker and its line protocol."""

    def __init__(self, impl, workload, threads, args, log_dir):
        self.impl, self.workload, self.threads = impl, workload, threads
        cmd = [sys.executable, CPU_PY, "--worker", impl, workload, str(threads)]
        if args.keep_env:
            cmd.append("--keep-env")
        env = worker_env(threads, args.keep_env)
        if args.torch_trace_autograd:
            env["FUSEDAE_BENCH_TORCH_TRACE_AUTOGRAD"] = "1"
        self.log_path = os.path.join(log_dir, f"{impl}-{workload}-{threads}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env, cwd=_common.REPO)
        self.buffer = b""

    def stderr_tail(self, n=1500):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def read(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerFailed(f"{self.impl}: no reply within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise WorkerFailed(f"{self.impl}: worker exited (rc {self.proc.poll()}); "
                                   f"stderr: {self.stderr_tail()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def request(self, line, timeout):
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerFailed(f"{self.impl}: worker gone; stderr: {self.stderr_tail()}")
        reply = self.read(timeout)
        if "error" in reply:
            raise WorkerFailed(f"{self.impl}: {line.split()[0]} failed: {reply['error']}")
        return reply["ok"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_workers(impls, workload, threads, args, log_dir, state):
    """Start a worker per implementation (all at once; no timing runs yet),
    then wait for each one's first line."""
    procs = {}
    for impl in impls:
        if state[impl]["status"] == "pending":
            procs[impl] = WorkerProcess(impl, workload, threads, args, log_dir)
    for impl, p in procs.items():
        try:
            first = p.read(START_TIMEOUT)
        except WorkerFailed as exc:
            fail(state, impl, "failed", str(exc))
            p.close()
            continue
        if "ready" in first:
            state[impl]["load_seconds"] = first.get("load_seconds")
            continue
        if "unavailable" in first:
            fail(state, impl, "skipped", f"not importable: {first['unavailable']}")
        else:
            fail(state, impl, "failed", f"start failed: {first.get('error')}")
        p.close()
    return {impl: p for impl, p in procs.items() if state[impl]["status"] == "pending"}


def fail(state, impl, status, note):
    state[impl]["status"] = status
    state[impl]["note"] = note
    print(f"    {impl}: {status}: {note.splitlines()[0] if note else ''}"
          + (" ..." if note and "\n" in note else ""), flush=True)


def relative_difference(a, b):
    tiny = 1.1754944e-38
    return max(abs(x - y) / max(abs(y), tiny) for x, y in zip(a, b))


def check_group(procs, workload, state):
    """Each worker's losses against the NumPy reference's; mismatches are
    excluded. Returns the JSON record of the check."""
    fam = wl.family(workload)
    n = {"sparse": wl.SPARSE_CHECK_STEPS, "vae": wl.VAE_CHECK_STEPS,
         "gan": wl.GAN_CHECK_STEPS, "epoch": wl.EPOCH_CHECK_EPOCHS}[fam]
    unit = "epochs" if fam == "epoch" else "steps"
    record = {"units": n, "unit": unit, "rtol": wl.CHECK_RTOL, "losses": {}}
    for impl, p in procs.items():
        try:
            record["losses"][impl] = p.request(f"check {n}", STEP_TIMEOUT)["losses"]
        except WorkerFailed as exc:
            fail(state, impl, "failed", str(exc))
    ref = record["losses"].get("numpy")
    record["reference"] = "numpy"
    for impl, losses in record["losses"].items():
        c = {"losses": losses}
        finite = all(v == v and abs(v) != float("inf") for v in losses)
        if ref is None:
            c.update(agree=None, note="no NumPy reference losses to compare with")
        else:
            rel = relative_difference(losses, ref) if len(losses) == len(ref) else float("inf")
            c.update(relative_difference=rel, agree=bool(finite and rel <= wl.CHECK_RTOL))
        state[impl]["check"] = c
        if c["agree"] is False:
            fail(state, impl, "excluded",
                 f"correctness check failed: losses {losses} vs NumPy {ref} "
                 f"(max relative difference {c['relative_difference']:.3g} > {wl.CHECK_RTOL})")
    return record


def time_group(procs, args, state, min_units):
    """Warm up and calibrate every worker, then args.reps interleaved rounds."""
    live = {}
    for impl, p in procs.items():
        if state[impl]["status"] != "pending":
            continue
        try:
            w = p.request(f"warm {WARM_SECONDS}", STEP_TIMEOUT)
        except WorkerFailed as exc:
            fail(state, impl, "failed", str(exc))
            continue
        state[impl]["warmup"] = w
        state[impl]["units_per_window"] = _common.steps_for(w["rate"], args.seconds, min_units)
        state[impl]["raw"] = []
        live[impl] = p
    order = list(live)
    rep = clean = 0
    # A round in which another process kept more than DISTURBED_CPUS busy during
    # any window is marked and one more round is run, up to args.reps more in
    # all: on 2 cores such a process shares a core with a 2-thread worker.
    while clean < args.reps and rep < 2 * args.reps:
        k = rep % len(order) if order else 0
        windows = []
        for impl in order[k:] + order[:k]:
            if state[impl]["status"] != "pending":
                continue
            s = state[impl]
            timeout = 120 + 20 * s["units_per_window"] / max(s["warmup"]["rate"], 1e-9)
            time.sleep(PAUSE)
            try:
                r = live[impl].request(f"run {s['units_per_window']}", timeout)
            except WorkerFailed as exc:
                fail(state, impl, "failed", str(exc))
                continue
            r["rep"] = rep
            s["raw"].append(r)
            windows.append(r)
        disturbed = any((r["foreign_cpus"] or 0.0) > DISTURBED_CPUS for r in windows)
        for r in windows:
            r["disturbed_round"] = disturbed
        clean += not disturbed
        rep += 1
        if not windows:
            break
    for impl, p in live.items():
        if state[impl]["status"] == "pending":
            try:
                state[impl]["worker"] = p.request("info", 60)
            except WorkerFailed as exc:
                state[impl]["worker"] = {"error": str(exc)}
            state[impl]["status"] = "timed"


def summarize_group(workload, threads, state, ceiling, reps):
    fam = wl.family(workload)
    per_unit_steps = wl.steps_per_epoch() if fam == "epoch" else 1
    flops = wl.flops_per_step(workload)
    peak = ceiling["per_core_flops"] * threads if ceiling else None
    # The summaries use the undisturbed rounds when at least half of the rounds
    # asked for are undisturbed, else every round (time_group).
    clean_reps = {r["rep"] for s in state.values() for r in s.get("raw", [])
                  if not r.get("disturbed_round")}
    wanted = {r["rep"] for s in state.values() for r in s.get("raw", [])}
    kept = clean_reps if 2 * len(clean_reps) >= reps else wanted
    for impl, s in state.items():
        if s["status"] != "timed" or not s.get("raw"):
            continue
        s["summarized_reps"] = sorted(r["rep"] for r in s["raw"] if r["rep"] in kept)
        windows = [r for r in s["raw"] if r["rep"] in kept]
        units = [r["units"] / r["seconds"] for r in windows]
        s["units_per_s"] = _common.summarize(units)
        s["steps_per_s"] = _common.summarize([u * per_unit_steps for u in units])
        if fam == "epoch":
            s["epochs_per_s"] = s["units_per_s"]
        s["gflops"] = {k: v * flops / 1e9 for k, v in s["units_per_s"].items()}
        s["percent_of_ceiling"] = (100 * s["gflops"]["median"] * 1e9 / peak if peak else None)
        s["nonfinite_losses"] = (s["warmup"]["nonfinite"]
                                 + sum(r["nonfinite"] for r in s["raw"]))
        s["first_nonfinite"] = s["raw"][-1].get("first_nonfinite")
        s["foreign_cpus"] = _common.summarize([r["foreign_cpus"] for r in windows
                                               if r["foreign_cpus"] is not None])
    ratios = {}
    base = state.get("fusedae")
    if base and base.get("units_per_s"):
        for impl, s in state.items():
            if impl == "fusedae" or not s.get("units_per_s"):
                continue
            by_rep = {r["rep"]: r["units"] / r["seconds"] for r in s["raw"] if r["rep"] in kept}
            paired = [r["units"] / r["seconds"] / by_rep[r["rep"]] for r in base["raw"]
                      if r["rep"] in by_rep]
            ratios[impl] = {"of_medians": base["units_per_s"]["median"]
                            / s["units_per_s"]["median"],
                            "paired": _common.summarize(paired)}
    return {"flops_per_unit": flops, "steps_per_unit": per_unit_steps, "ratios": ratios,
            "rounds": {"run": len(wanted), "disturbed": sorted(wanted - clean_reps),
                       "summarized": sorted(kept),
                       "disturbed_above_cpus": DISTURBED_CPUS}}


def available_libraries():
    out = {}
    for lib in ("torch", "jax"):
        out[lib] = importlib.util.find_spec(lib) is not None
    return out


def new_state(impls, avail):
    state = {}
    for impl in impls:
        lib = IMPL_LIBRARY.get(impl)
        if lib and not avail[lib]:
            state[impl] = {"status": "skipped", "note": f"{lib} is not installed"}
        else:
            state[impl] = {"status": "pending"}
    return state


def run_group(workload, threads, args, avail, ceiling, log_dir):
    impls = wl.impls_for(workload)
    state = new_state(impls, avail)
    t0 = time.perf_counter()
    print(f"\n[{workload}, {threads} thread(s)] {', '.join(impls)}", flush=True)
    for impl, s in state.items():
        if s["status"] == "skipped":
            print(f"    note: {impl} skipped ({s['note']})")
    procs = start_workers(impls, workload, threads, args, log_dir, state)
    try:
        check = check_group(procs, workload, state)
        for impl in procs:
            c = state[impl].get("check")
            if c and c.get("agree"):
                print(f"    check {impl}: agree (max rel. diff. "
                      f"{c['relative_difference']:.1e})", flush=True)
        min_units = 1 if wl.family(workload) == "epoch" else 2
        time_group(procs, args, state, min_units)
    finally:
        for p in procs.values():
            p.close()
    out = {"workload": workload, "family": wl.family(workload), "threads": threads,
           "settings": wl.describe(workload), "check": check,
           "seconds": time.perf_counter() - t0}
    out.update(summarize_group(workload, threads, state, ceiling, args.reps))
    out["impls"] = state
    print(cpu_report.group_line(out), flush=True)
    return out


def measure_ceiling(args, log_dir):
    p = WorkerProcess("ceiling", "-", 1, args, log_dir)
    try:
        first = p.read(START_TIMEOUT)
        if "ready" not in first:
            raise WorkerFailed(str(first))
        r = p.request(f"fma {FMA_READINGS}", 120)
        info = p.request("info", 60)
    except WorkerFailed as exc:
        print(f"note: the FMA ceiling could not be measured: {exc}")
        return None
    finally:
        p.close()
    best = {bits: max(float(x[bits]) for x in r["readings"]) for bits in r["readings"][0]}
    return {"readings": r["readings"], "best": best, "cpus": r["cpus"],
            "per_core_flops": max(best.values()), "worker": info,
            "method": "max over readings of engine.fma_rates() in a worker pinned "
                      "to one CPU; ceiling(t) = max(256-bit, 512-bit) x t"}


def memory_bound():
    s = wl.EPOCH_SHAPE
    D, N, B, f32 = s["D"], s["N"], s["B"], 4
    data = wl.EPOCH_ROWS * D * f32
    params = (D * N + N + N * D + D) * f32
    optimizer = 0  # SGD keeps no state
    activations = B * (D + N + D) * f32
    return {"data_bytes": data, "params_bytes": params, "optimizer_state_bytes": optimizer,
            "batch_activations_bytes": activations,
            "bound_bytes": data + params + optimizer + 2 * activations,
            "formula": "data + parameters + optimizer state (SGD: none) "
                       "+ 2 x one batch's activations (B x (D + N + D))"}


def run_memory(threads_list, args, avail, log_dir):
    out = {"bound": memory_bound(), "settings": wl.describe("M-fit"), "runs": []}
    epochs = wl.MEMORY["M-fit"]["epochs"]
    print(f"\n[M-fit] peak memory of a {epochs}-epoch fit, one fresh process each", flush=True)
    for t in threads_list:
        state = new_state(wl.impls_for("M-fit"), avail)
        for impl, s in state.items():
            if s["status"] == "skipped":
                out["runs"].append({"impl": impl, "threads": t, **s})
                continue
            p = WorkerProcess(impl, "M-fit", t, args, log_dir)
            rec = {"impl": impl, "threads": t}
            try:
                first = p.read(START_TIMEOUT)
                if "unavailable" in first:
                    rec.update(status="skipped", note=first["unavailable"])
                elif "ready" not in first:
                    rec.update(status="failed", note=str(first.get("error")))
                else:
                    rec.update(status="measured", **p.request(f"mem {epochs}", STEP_TIMEOUT))
                    rec["worker"] = p.request("info", 60)
            except WorkerFailed as exc:
                rec.update(status="failed", note=str(exc))
            finally:
                p.close()
            out["runs"].append(rec)
            print("    " + cpu_report.memory_line(rec, out["bound"]), flush=True)
    return out


def versions():
    def v(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None
    import numpy as np
    import fusedae
    return {"python": sys.version.split()[0], "fusedae": fusedae.__version__,
            "fusedae_path": os.path.dirname(fusedae.__file__),
            "numpy": np.__version__, "threadpoolctl": v("threadpoolctl"),
            "scipy-openblas32": v("scipy-openblas32"), "torch": v("torch"),
            "jax": v("jax"), "jaxlib": v("jaxlib")}


def selected_groups(args):
    steps = [w for w in args.workloads if wl.family(w) != "memory"]
    return steps, any(wl.family(w) == "memory" for w in args.workloads)


def run(args):
    t_start = time.perf_counter()
    today = datetime.date.today().isoformat()
    out_path = args.out or _common.default_out_path("cpu-all", today)
    md_path = os.path.splitext(out_path)[0] + ".md"
    avail = available_libraries()
    log_dir = tempfile.mkdtemp(prefix="fusedae-bench-")
    machine = _common.machine_info()
    env_choice = {
        "keep_env": args.keep_env,
        "OPENBLAS_CORETYPE_in_controller": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_CORETYPE_in_workers": (os.environ.get("OPENBLAS_CORETYPE")
                                         if args.keep_env else None),
        "note": ("workers keep the environment as given (--keep-env)" if args.keep_env else
                 "OPENBLAS_CORETYPE removed from every worker's environment: each OpenBLAS "
                 "picks its own kernels"),
    }
    report = {
        "date": today,
        "timestamp": datetime.datetime.now().astimezone().isoformat(),
        "command": [sys.executable] + sys.argv,
        "settings": {"reps": args.reps, "threads": args.threads,
                     "seconds_per_window": args.seconds, "workloads": args.workloads,
                     "warmup_seconds": WARM_SECONDS, "check_rtol": wl.CHECK_RTOL,
                     "torch_trace_autograd_ops": args.torch_trace_autograd,
                     "data": "MNIST-like: each entry nonzero with p=0.2, then U(0,1), "
                             f"float32, seed {wl.DATA_SEED}"},
        "environment": env_choice, "machine": machine, "versions": versions(),
        "libraries_available": avail,
    }
    print(cpu_report.header_text(report))
    for lib, ok in avail.items():
        if not ok:
            print(f"note: {lib} is not installed: its implementations are skipped")
    report["ceiling"] = measure_ceiling(args, log_dir)
    if report["ceiling"]:
        c = report["ceiling"]
        print("FMA ceiling per core: " + ", ".join(f"{b}-bit {v / 1e9:.1f} GFLOP/s"
                                                     for b, v in c["best"].items()))
    groups, memory = selected_groups(args)
    report["groups"] = []
    try:
        for workload in groups:
            for t in args.threads:
                report["groups"].append(run_group(workload, t, args, avail,
                                                  report["ceiling"], log_dir))
        if memory:
            report["memory"] = run_memory(args.threads, args, avail, log_dir)
    finally:
        report["elapsed_seconds"] = time.perf_counter() - t_start
        report["notes"] = cpu_report.notes(report)
        md = cpu_report.markdown(report)
        print("\n" + md)
        _common.write_report(report, out_path)
        os.makedirs(os.path.dirname(os.path.abspath(md_path)), exist_ok=True)
        with open(md_path, "w") as f:
            f.write(md + "\n")
        print(f"wrote {md_path}")
        print(f"total time {report['elapsed_seconds']:.0f} s")
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0
