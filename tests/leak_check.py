"""LeakSanitizer over a small workload: every estimator fitted, saved and
loaded, and a refused input, 20 times over.

Run by .ci/sanitize with the sanitized engine and LeakSanitizer on:

    ASAN_OPTIONS=detect_leaks=1 PYTHONMALLOC=malloc LD_PRELOAD=... \\
        PYTHONPATH=build/sanitize-pkg python tests/leak_check.py --workload
    python tests/leak_check.py --report LOG

The interpreter itself does not free everything at exit, so LeakSanitizer
always reports some leaks; ``--report`` counts only those with a frame in
fusedae's compiled engine and exits 1 if there is any.
"""
import re
import sys


def workload():
    import os
    import tempfile

    import numpy as np

    import fusedae

    rng = np.random.default_rng(0)
    X = rng.random((300, 32))
    y = rng.integers(0, 3, 300)
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "m.fae")
    for i in range(20):
        for model, args in [
                (fusedae.SparseAutoencoder(8, epochs=2, random_state=i), (X,)),
                (fusedae.DenoisingAutoencoder(8, epochs=2, noise="masking", noise_level=0.2,
                                              random_state=i), (X,)),
                (fusedae.Autoencoder(8, optimizer="lbfgs", epochs=3, random_state=i), (X,)),
                (fusedae.Classifier(8, epochs=2, random_state=i), (X, y)),
                (fusedae.Generator(8, epochs=2, random_state=i), (X, y)),
                (fusedae.VAE(2, (8,), epochs=2, random_state=i), (X,)),
                (fusedae.ConditionalVAE(2, (8,), epochs=2, random_state=i), (X, y)),
                (fusedae.GAN(2, (8,), (8,), epochs=2, random_state=i), (X,))]:
            model.fit(*args)
            model.save(path)
            fusedae.load(path)
        try:
            fusedae.Autoencoder(8, epochs=1).fit(np.full((4, 4), np.nan))
        except ValueError:
            pass
    print("workload done")


def report(log_path):
    text = open(log_path).read()
    if "workload done" not in text:
        print(f"{log_path}: the workload did not finish")
        return 1
    blocks = re.split(r"\n(?=(?:Direct|Indirect) leak of)", text)
    leaks = [b for b in blocks if b.lstrip().startswith(("Direct leak", "Indirect leak"))]
    ours = [b for b in leaks if "_engine" in b]
    print(f"LeakSanitizer: {len(leaks)} leak reports, {len(ours)} with a frame in the engine")
    for b in ours:
        print(b)
    return 1 if ours else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--workload"]:
        workload()
    elif sys.argv[1:2] == ["--report"] and len(sys.argv) == 3:
        raise SystemExit(report(sys.argv[2]))
    else:
        raise SystemExit(__doc__)
