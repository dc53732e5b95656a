"""The documentation that is generated or quoted stays true to the code."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_api_reference_is_generated_from_the_current_docstrings():
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "make_api.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_readme_quick_start_runs(tmp_path):
    """The README's Python quick start, as written (fewer epochs)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Quick start")
    block = text[text.index("```python", start) + len("```python"):]
    code = block[:block.index("```")]
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    code = code.replace("epochs=200", "epochs=3")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "sparse.fae").stat().st_size > 0
    assert (tmp_path / "features.png").stat().st_size > 0
