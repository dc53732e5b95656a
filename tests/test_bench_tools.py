"""bench/ab.py, the A/B runner the performance notes rely on: both of its
modes run a build against itself and report the same loss after the same
calls (what they do, not how fast: speed stays out of this suite)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import fusedae

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AB_PY = os.path.join(REPO, "bench", "ab.py")


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    """A directory holding a copy of the installed fusedae package."""
    d = tmp_path_factory.mktemp("build")
    shutil.copytree(os.path.dirname(fusedae.__file__), d / "fusedae")
    return str(d)


def rows(out, build):
    return [line.split() for line in out.splitlines() if line.startswith(build)]


def test_paired_mode_reports_equal_losses_for_one_build(build_dir):
    out = subprocess.run([sys.executable, AB_PY, "--paired", "4", "64 16 64 --threads 1",
                          build_dir, build_dir, "--processes", "2", "--window", "0.01"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 sets of processes, 2 alternating rounds each" in out.stdout
    table = rows(out.stdout, build_dir)
    assert len(table) == 2
    # build, steps/s, ratio, quartiles, faster, loss
    assert table[0][2] == "1.0000" and table[0][4] == "-"
    assert re.fullmatch(r"[0-2]/2", table[1][4])
    assert float(table[0][1].replace(",", "")) > 0
    assert table[0][5] == table[1][5]
    float(table[0][5])


def test_paired_mode_counts_steps_of_an_epoch_call(build_dir):
    out = subprocess.run([sys.executable, AB_PY, "--paired", "2",
                          "32 8 16 --epoch 64 --threads 1", build_dir, build_dir,
                          "--processes", "1", "--window", "0.01"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "(a call is 4 step(s))" in out.stdout


def test_whole_run_mode_reports_equal_losses_for_one_build(build_dir):
    out = subprocess.run([sys.executable, AB_PY, "2", "64 16 64 --threads 1 --steps 50",
                          build_dir, build_dir], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    table = rows(out.stdout, build_dir)
    assert len(table) == 2 and table[0][-1] == table[1][-1]


def test_a_directory_without_the_package_is_refused(tmp_path):
    out = subprocess.run([sys.executable, AB_PY, "--paired", "2", "64 16 64", str(tmp_path),
                          str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "expected a directory holding a fusedae package" in out.stderr


def test_step_refuses_an_engine_from_elsewhere_than_the_named_build(tmp_path):
    # bench/ab.py names each build in FUSEDAE_BENCH_BUILD; an engine imported
    # from anywhere else (an editable install's import hook comes before
    # PYTHONPATH) must not be timed as that build.
    env = dict(os.environ, FUSEDAE_BENCH_BUILD=str(tmp_path))
    out = subprocess.run([sys.executable, os.path.join(REPO, "bench", "step.py"), "64", "16",
                          "64", "--steps", "1"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode != 0
    assert "not from the build at " + str(tmp_path) in out.stderr
