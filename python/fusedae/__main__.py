"""``fusedae`` / ``python -m fusedae``: the command line (train, evaluate, sample,
bench, demo, categories).

A thin front: the parser and the commands live in :mod:`fusedae.cli`.
"""
import sys


def main(argv=None):
    """Run the command line like a program: return 0 on success, else raise
    ``SystemExit`` with the exit status (2 for a usage or input error).

    :func:`fusedae.cli.main` is the same but returns every status.
    """
    from .cli import main as cli_main

    status = cli_main(sys.argv[1:] if argv is None else argv)
    if status:
        raise SystemExit(status)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
