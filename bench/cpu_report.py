"""Markdown of ``bench/cpu.py --all``: the header, one table per workload
family and thread count, the peak-memory table and the notes."""
import cpu_workloads as wl

MIB = 1024 * 1024


def _g(x, digits=4):
    return "-" if x is None else f"{x:.{digits}g}"


def header_lines(r):
    v = r["versions"]
    m = r["machine"]
    lines = [
        f"- date: {r['date']} ({r['timestamp']})",
        f"- CPU: {m['cpu_model']} ({m['nproc']} logical CPUs, {m['sched_affinity']} allowed)",
        "- versions: " + ", ".join(f"{k} {v[k]}" for k in
                                   ("fusedae", "numpy", "torch", "jax", "jaxlib",
                                    "scipy-openblas32", "threadpoolctl", "python")
                                   if v.get(k)),
    ]
    missing = [k for k, ok in r.get("libraries_available", {}).items() if not ok]
    if missing:
        lines.append("- not installed (skipped): " + ", ".join(missing))
    c = r.get("ceiling")
    if c:
        per = ", ".join(f"{b}-bit {x / 1e9:.1f}" for b, x in c["best"].items())
        ts = ", ".join(f"{t} thread(s) {c['per_core_flops'] * t / 1e9:.1f}"
                       for t in r["settings"]["threads"])
        lines.append(f"- FMA ceiling (engine.fma_rates(), one pinned CPU, best of "
                     f"{len(c['readings'])}): per core {per} GFLOP/s; ceiling = max x "
                     f"threads: {ts} GFLOP/s")
    elif "ceiling" in r:
        lines.append("- FMA ceiling: not measured")
    e = r["environment"]
    lines.append(f"- environment: {e['note']} (controller had OPENBLAS_CORETYPE="
                 f"{e['OPENBLAS_CORETYPE_in_controller']})")
    kernels = blas_kernels(r)
    if kernels:
        lines.append("- OpenBLAS kernels the workers ended up with: " + kernels)
    s = r["settings"]
    lines.append(f"- method: one process per implementation, pinned to CPUs 0..t-1; "
                 f"{s['reps']} interleaved rounds of ~{s['seconds_per_window']} s windows, "
                 f"one worker at a time, starting worker rotating; median and min-max of "
                 f"the windows; correctness vs the NumPy reference to {s['check_rtol']} "
                 f"(relative) before timing")
    if "elapsed_seconds" in r:
        lines.append(f"- run time: {r['elapsed_seconds']:.0f} s")
    return lines


def blas_kernels(r):
    """The OpenBLAS core names the workers reported, by library."""
    seen = {}
    workers = [s.get("worker") for g in r.get("groups", []) for s in g["impls"].values()]
    if r.get("ceiling"):
        workers.append(r["ceiling"].get("worker"))
    for w in workers:
        if not w or "error" in w:
            continue
        seen.setdefault("engine (blas_corename)", set()).add(w.get("engine_blas_corename"))
        for d in w.get("threadpoolctl", []):
            if d.get("internal_api") == "openblas":
                seen.setdefault(_pool_name(d), set()).add(d.get("architecture"))
    return "; ".join(f"{k} {'/'.join(sorted(str(x) for x in v))}" for k, v in seen.items())


def header_text(r):
    return "\n".join(["fusedae CPU benchmark against every peer (bench/cpu.py --all)"]
                     + header_lines(r))


def _pool_name(d):
    lib = d.get("library") or d.get("internal_api") or "?"
    return lib.split(".so")[0].split("-")[0].removeprefix("lib").rstrip("_")


def threads_seen(w):
    """Compact thread counts a worker reported: its CPUs, the engine's pool,
    the thread pools threadpoolctl sees (BLAS, OpenMP), torch's."""
    if not w or "error" in w:
        return "-"
    parts = [f"cpus {','.join(str(c) for c in w['affinity'])}",
             f"engine {w['engine_threads']}"]
    pools = [(_pool_name(d), d.get("num_threads")) for d in w.get("threadpoolctl", [])]
    if pools:
        counts = {}
        for name, k in pools:
            counts.setdefault(k, []).append(name)
        if len(counts) == 1:
            k, names = next(iter(counts.items()))
            parts.append(f"{len(names)} BLAS/OpenMP pools {k}")
        else:
            parts.append("pools " + ", ".join(f"{'+'.join(sorted(set(n)))} {k}"
                                              for k, n in sorted(counts.items())))
    if "torch_threads" in w:
        parts.append(f"torch {w['torch_threads']}")
    if "jax_devices" in w:
        parts.append(f"OS threads {w['os_threads']}")
    return " · ".join(parts)


def check_cell(s):
    c = s.get("check")
    if s["status"] == "excluded":
        return "**failed: excluded**"
    if not c:
        return "-"
    if c.get("agree") is None:
        return "not compared"
    return f"ok ({c['relative_difference']:.0e})"


def group_rows(g):
    fam = g["family"]
    rows = []
    for impl, s in g["impls"].items():
        name = f"{g['workload']}"
        if s["status"] != "timed" or not s.get("steps_per_s"):
            rows.append([name, impl] + ["-"] * (4 if fam == "epoch" else 3)
                        + ["-", "-", "-", check_cell(s), "-", s["status"] + (
                            f": {s['note'].splitlines()[0][:80]}" if s.get("note") else "")])
            continue
        sp = s["steps_per_s"]
        ratio = g["ratios"].get(impl)
        cells = [name, impl]
        if fam == "epoch":
            cells.append(_g(s["epochs_per_s"]["median"]))
        cells += [_g(sp["median"]), f"{_g(sp['min'])}–{_g(sp['max'])}",
                  "1" if impl == "fusedae" else (f"{ratio['of_medians']:.2f}x" if ratio else "-")]
        fc = s.get("foreign_cpus")
        cells += [f"{s['gflops']['median']:.1f}",
                  "-" if s["percent_of_ceiling"] is None else f"{s['percent_of_ceiling']:.0f}%",
                  str(s["nonfinite_losses"]) if s["nonfinite_losses"] else "0",
                  check_cell(s), "-" if not fc else f"{fc['median']:.2f}",
                  threads_seen(s.get("worker"))]
        rows.append(cells)
    return rows


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def group_header(fam):
    head = ["workload", "implementation"]
    if fam == "epoch":
        head.append("epochs/s")
    return head + ["steps/s (median)", "min–max", "fusedae / impl", "GFLOP/s",
                   "% of ceiling", "non-finite losses", "check", "other load (CPUs)",
                   "threads in force"]


def group_line(g):
    """One line per group for the console while the run goes on."""
    parts = []
    for impl, s in g["impls"].items():
        if s.get("steps_per_s"):
            parts.append(f"{impl} {s['steps_per_s']['median']:.4g}")
        else:
            parts.append(f"{impl} {s['status']}")
    return ("    steps/s: " + ", ".join(parts)
            + f"   ({g['seconds']:.0f} s)")


def memory_line(rec, bound):
    if rec.get("status") != "measured":
        return f"{rec['impl']} ({rec['threads']} thr.): {rec.get('status')}: {rec.get('note')}"
    return (f"{rec['impl']} ({rec['threads']} thr.): peak RSS increase "
            f"{rec['hwm_increase_bytes'] / MIB:.1f} MiB (bound {bound['bound_bytes'] / MIB:.1f}"
            f" MiB), of which the fit {rec['fit_increase_bytes'] / MIB:.1f} MiB")


def memory_table(mem):
    b = mem["bound"]
    lines = [f"Bound = {b['formula']} = {b['data_bytes'] / MIB:.2f} + "
             f"{b['params_bytes'] / MIB:.2f} + {b['optimizer_state_bytes'] / MIB:.2f} + 2 x "
             f"{b['batch_activations_bytes'] / MIB:.2f} = **{b['bound_bytes'] / MIB:.2f} MiB** "
             f"({b['bound_bytes']} bytes). Peak RSS increase = the data's bytes + the fit's "
             "increase (VmHWM after the fit - VmRSS once the data exists; the high-water mark "
             "is reset after the data is made, so the temporaries of making it do not "
             "count). fusedae is the estimator "
             "`fusedae.SparseAutoencoder(n_hidden=196, optimizer='sgd', learning_rate=0.1, "
             "batch_size=256, epochs=2, shuffle=True)`, after a tiny fit of the same estimator "
             "before the baseline (its first fit imports scikit-learn and SciPy and starts "
             "the engine's threads, each with its OpenBLAS buffer: the 'imports' column, not "
             "counted); fusedae-net is the engine alone (`Network.fit_epoch` twice, after a "
             "tiny fit_epoch); the peers are their shuffled epoch loops, for "
             "context (their figures include what tracing and compiling allocate).", ""]
    head = ["implementation", "threads", "peak RSS increase (MiB)", "bytes",
            "increase / bound", "fit only (MiB)", "imports before (MiB)", "fit s"]
    rows = []
    for rec in mem["runs"]:
        if rec.get("status") != "measured":
            rows.append([rec["impl"], str(rec["threads"]), "-", "-", "-", "-", "-",
                         str(rec.get("status")) + ": " + str(rec.get("note", ""))[:60]])
            continue
        inc = rec["hwm_increase_bytes"]
        rows.append([rec["impl"], str(rec["threads"]), f"{inc / MIB:.1f}", str(inc),
                     f"{inc / b['bound_bytes']:.2f}",
                     f"{rec['fit_increase_bytes'] / MIB:.1f}"
                     + ("" if rec["hwm_reset"] else " (HWM not reset)"),
                     f"{rec['prepare_rss_bytes'] / MIB:.1f}" if rec.get("prepared") else "-",
                     f"{rec['fit_seconds']:.1f}"])
    return lines + table(head, rows)


def notes(r):
    out = []
    breaks = {}
    for g in r.get("groups", []):
        for impl, s in g["impls"].items():
            where = f"{g['workload']} at {g['threads']} thread(s)"
            if s["status"] in ("excluded", "failed"):
                out.append(f"{where}: {impl} {s['status']}: {s.get('note', '')[:400]}")
            if s.get("nonfinite_losses"):
                out.append(f"{where}: {impl} had {s['nonfinite_losses']} non-finite losses "
                           f"(first at step {s.get('first_nonfinite')})")
            w = s.get("worker") or {}
            want = g["threads"]
            if w.get("torch_threads") not in (None, want):
                out.append(f"{where}: {impl} ran with torch.get_num_threads() = "
                           f"{w['torch_threads']}, not {want}")
            if w.get("engine_threads") not in (None, want):
                out.append(f"{where}: {impl}'s engine has {w['engine_threads']} threads")
            if w.get("dynamo_graph_breaks"):
                key = "; ".join(f"{k} x{v}" for k, v in w["dynamo_graph_breaks"].items())
                breaks.setdefault(key, []).append(where)
    faster = []
    for g in r.get("groups", []):
        a, b = (g["impls"].get(k, {}).get("steps_per_s") for k in ("jax", "jax-scan"))
        if a and b:
            best = "jax-scan" if b["median"] > a["median"] else "jax"
            faster.append(f"{g['workload']} at {g['threads']}: {best} "
                          f"({max(a['median'], b['median']) / min(a['median'], b['median']):.2f}x)")
    if faster:
        out.append("JAX epochs, Python loop of jitted steps (jax) vs one jitted lax.scan "
                   "(jax-scan), the faster: " + "; ".join(faster))
    for key, wheres in breaks.items():
        out.append(f"torch-compile graph breaks (Dynamo's counter) {key}: "
                   + ", ".join(wheres))
    busy = [(g["workload"], g["threads"], s["foreign_cpus"]["median"])
            for g in r.get("groups", []) for s in g["impls"].values()
            if s.get("foreign_cpus")]
    if busy:
        loaded = sorted({f"{w} at {t}" for w, t, f in busy if f > 0.25})
        out.append("other processes kept a median "
                   f"{sorted(f for *_, f in busy)[len(busy) // 2]:.2f} CPUs busy during the "
                   "timed windows (column 'other load'); groups above 0.25: "
                   + (", ".join(loaded) if loaded else "none")
                   + ". On 2 cores a 2-thread window then shares a core with them")
    repeated = []
    for g in r.get("groups", []):
        rounds = g.get("rounds")
        if rounds and rounds["disturbed"]:
            used = ("the others summarized" if len(rounds["summarized"]) < rounds["run"]
                    else "too few undisturbed: every round summarized")
            repeated.append(f"{g['workload']} at {g['threads']}: {len(rounds['disturbed'])} of "
                            f"{rounds['run']} ({used})")
    if repeated:
        out.append("rounds repeated because another process kept more than "
                   f"{r['groups'][0]['rounds']['disturbed_above_cpus']} CPUs busy during a "
                   "window: " + "; ".join(repeated))
    skipped = sorted({f"{impl} ({s.get('note')})" for g in r.get("groups", [])
                      for impl, s in g["impls"].items() if s["status"] == "skipped"})
    out += [f"skipped: {x}" for x in skipped]
    return out


def markdown(r):
    lines = ["# fusedae CPU benchmark against every peer", "",
             "`" + " ".join(r["command"][1:]) + "`", ""]
    lines += header_lines(r)
    by = {}
    for g in r.get("groups", []):
        by.setdefault((g["family"], g["threads"]), []).append(g)
    for (fam, t), groups in by.items():
        lines += ["", f"## {wl.FAMILY_TITLES[fam]}, {t} thread(s)", ""]
        if fam == "epoch":
            lines.append(f"A step is one minibatch ({wl.steps_per_epoch()} per epoch); "
                         "E-inorder: no shuffle, no noise; E-shuffled: shuffled; E-gaussian: "
                         "shuffled + Gaussian noise σ=0.3 (denoising). jax = jitted step in "
                         "a Python loop, jax-scan = the whole epoch as one jitted lax.scan.")
            lines.append("")
        rows = [row for g in groups for row in group_rows(g)]
        lines += table(group_header(fam), rows)
    if r.get("memory"):
        lines += ["", "## " + wl.FAMILY_TITLES["memory"], ""] + memory_table(r["memory"])
    if r.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines)
