"""Write docs/api.md, the API reference, from fusedae's docstrings.

    python docs/make_api.py            # rewrite docs/api.md
    python docs/make_api.py --check    # exit 1 if docs/api.md is out of date

The page lists every public estimator with its signature and docstring,
then each public method, then the public functions of the submodules.
``tests/test_docs.py`` runs the check, so a changed docstring without a
regenerated page fails the tests.
"""
import argparse
import inspect
import sys
from pathlib import Path

import fusedae

ESTIMATORS = ("Autoencoder", "SparseAutoencoder", "DenoisingAutoencoder", "Classifier",
              "Generator", "VAE", "ConditionalVAE", "GAN")
FUNCTIONS = ("load",)
MODULES = ("callbacks", "datasets", "plot", "info", "metrics", "categories")
EXCEPTIONS = ("TrainingDivergedError", "ModelFileError")

OUT = Path(__file__).with_name("api.md")


def _doc(obj):
    return inspect.cleandoc(obj.__doc__ or "(no docstring)")


def _signature(name, obj):
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def _block(title, name, obj, level):
    return [f"{'#' * level} {title}", "", "```python", _signature(name, obj), "```", "",
            _doc(obj), ""]


def _public_methods(cls):
    """Methods and properties a user calls: defined in fusedae, not private,
    in the order of the class's source, inherited ones included."""
    seen = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("fusedae"):
            continue
        for key, value in vars(klass).items():
            if key.startswith("_"):
                continue
            if callable(value) or isinstance(value, property):
                seen[key] = getattr(cls, key) if not isinstance(value, property) else value
    return seen


def render():
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand.",
             ""]
    lines += ["## Estimators", ""]
    for name in ESTIMATORS:
        cls = getattr(fusedae, name)
        lines += _block(f"fusedae.{name}", name, cls, 3)
        for mname, member in _public_methods(cls).items():
            if isinstance(member, property):
                lines += [f"#### `{name}.{mname}` (property)", "", _doc(member), ""]
            else:
                lines += [f"#### `{name}.{mname}`", "", "```python",
                          _signature(mname, member), "```", "", _doc(member), ""]
    lines += ["## Functions", ""]
    for name in FUNCTIONS:
        lines += _block(f"fusedae.{name}", name, getattr(fusedae, name), 3)
    lines += ["## Exceptions", ""]
    for name in EXCEPTIONS:
        lines += [f"### fusedae.{name}", "", _doc(getattr(fusedae, name)), ""]
    for mod_name in MODULES:
        mod = getattr(fusedae, mod_name)
        lines += [f"## fusedae.{mod_name}", "", _doc(mod), ""]
        names = getattr(mod, "__all__", None) or sorted(
            k for k, v in vars(mod).items()
            if not k.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
            and getattr(v, "__module__", "") == mod.__name__)
        for name in names:
            value = getattr(mod, name)
            if callable(value):
                lines += _block(f"fusedae.{mod_name}.{name}", name, value, 3)
            else:
                lines += [f"### fusedae.{mod_name}.{name}", "", "```python",
                          f"{name} = {value!r}", "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/api.md differs from the docstrings")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print("docs/api.md is out of date: run python docs/make_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
