"""Command line: ``fusedae demo`` and ``fusedae categories`` (or ``python -m fusedae ...``)."""
import argparse
import json


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fusedae",
        description="Autoencoders trained by a fused C++ engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="train a sparse autoencoder on scikit-learn's digits and draw what it learned",
        description="Train a sparse autoencoder (64-49-64, rho=0.05, beta=3) on the 8x8 digits "
                    "bundled with scikit-learn; print reconstruction error, sparsity and speed "
                    "against the NumPy reference; write features.png and reconstructions.png.")
    demo.add_argument("--out", default="fusedae-demo", help="folder for the PNG figures "
                      "(default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=200, help="training epochs (default: %(default)s)")
    demo.add_argument("--hidden", type=int, default=49, help="code units (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    cat = sub.add_parser(
        "categories", help="measure the categories a sparse code discovers on digits",
        description="Train a sparse autoencoder on scikit-learn's digits (70%% of it) and "
                    "score the categories of its code (most active unit, k-means) by purity "
                    "and NMI against the labels, beside the same network without the "
                    "sparsity term and k-means on the pixels; then classifiers on the code "
                    "versus on the pixels (self-taught learning). See docs/categories.md.")
    cat.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    cat.add_argument("--hidden", type=int, default=None, help="code units (default: 64)")
    cat.add_argument("--epochs", type=int, default=None, help="autoencoder epochs (default: 300)")
    cat.add_argument("--json", default=None, metavar="PATH",
                     help="also write the report as JSON to PATH")
    args = parser.parse_args(argv)
    if args.command == "categories":
        if args.seed < 0 or any(v is not None and v < 1 for v in (args.hidden, args.epochs)):
            parser.error("--hidden and --epochs must be >= 1, --seed >= 0")
        from .categories import category_report, format_report
        overrides = {k: v for k, v in (("n_hidden", args.hidden), ("epochs", args.epochs))
                     if v is not None}
        report = category_report(random_state=args.seed, **overrides)
        print(format_report(report))
        if args.json:
            from ._files import write_atomically
            write_atomically(args.json, json.dumps(report, indent=2).encode())
    if args.command == "demo":
        if args.epochs < 1 or args.hidden < 1 or args.seed < 0:
            parser.error("--epochs and --hidden must be >= 1, --seed >= 0")
        from .demo import run
        run(out=args.out, epochs=args.epochs, n_hidden=args.hidden, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
