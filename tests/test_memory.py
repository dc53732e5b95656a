"""Repeated fit / transform / save / load cycles keep the process's resident
memory flat: nothing the engine or the model files allocate outlives its
model."""
import subprocess
import sys
import textwrap

CYCLES = 1000
# A leak of one small network per cycle (its parameters, gradients and
# optimizer state are ~25 kB) would grow RSS by ~25 MB over the cycles.
MARGIN_MB = 4.0

SCRIPT = textwrap.dedent(f"""
    import os, tempfile
    import numpy as np
    import fusedae

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    rng = np.random.default_rng(0)
    X = rng.random((256, 64))
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "m.fae")

    def cycle(i):
        model = fusedae.SparseAutoencoder(16, epochs=1, random_state=i).fit(X)
        model.transform(X)
        model.save(path)
        fusedae.load(path).predict(X)

    for i in range(100):       # warm-up: imports, allocator pools, caches
        cycle(i)
    before = rss_mb()
    for i in range({CYCLES}):
        cycle(i)
    after = rss_mb()
    print(f"{{before:.2f}} {{after:.2f}}")
""")


def test_rss_stays_flat_over_repeated_cycles():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    before, after = map(float, out.stdout.split())
    assert after - before < MARGIN_MB, (before, after)
