"""Fuzzing (tests/fuzz_driver.py): random and invalid arguments to the engine,
the estimators and model files must end in a return or an expected
exception, never in a crash.

The driver runs in a subprocess, one per target, so that a segfault or an
abort in the compiled engine is a failed test (with the last case the
driver logged before it died) instead of a dead pytest. The default run is
a few hundred cases in all; ``FUSEDAE_LONG=1`` adds the long mode
(``-m long``), 10,000 cases per target (docs/reliability.md).
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis (pip install hypothesis)")

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "fuzz_driver.py"

# Cases per target in the default run: 650 in all, about 10 s on 2 idle cores.
QUICK = {"engine": 300, "api": 150, "files": 200}
LONG_CASES = int(os.environ.get("FUSEDAE_FUZZ_CASES", "10000"))
SEED = int(os.environ.get("FUSEDAE_FUZZ_SEED", "20240611"))

long_mode = pytest.mark.skipif(os.environ.get("FUSEDAE_LONG") != "1",
                               reason="long fuzzing: set FUSEDAE_LONG=1")


def _last_case(log):
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(no case was logged)"


def _tail(text, n=60):
    return "\n".join((text or "").splitlines()[-n:])


def run_driver(target, cases, seed, tmp_path, timeout):
    log = tmp_path / f"fuzz-{target}.log"
    cmd = [sys.executable, str(DRIVER), "--target", target, "--cases", str(cases),
           "--seed", str(seed), "--log", str(log)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"fuzz driver ({target}) ran past {timeout} s; last case:\n"
                    f"{_last_case(log)}\n{_tail(exc.stdout if isinstance(exc.stdout, str) else '')}")
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        pytest.fail(f"fuzz driver ({target}) was killed by {name}; the last case it "
                    f"logged:\n{_last_case(log)}\n--- stderr ---\n{_tail(proc.stderr)}")
    assert proc.returncode == 0, (
        f"fuzz driver ({target}) found something (exit {proc.returncode}):\n"
        f"{_tail(proc.stdout, 120)}\n--- stderr ---\n{_tail(proc.stderr)}")
    assert f"{target}: {cases} cases, 0 findings" in proc.stdout, proc.stdout
    return proc.stdout


@pytest.mark.parametrize("target", sorted(QUICK))
def test_fuzz_quick(target, tmp_path):
    run_driver(target, QUICK[target], 0, tmp_path, timeout=300)


@pytest.mark.long
@long_mode
@pytest.mark.parametrize("target", ["engine", "api", "files"])
def test_fuzz_long(target, tmp_path):
    out = run_driver(target, LONG_CASES, SEED, tmp_path, timeout=4 * 3600)
    print(out)
