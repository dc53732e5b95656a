"""Command line: ``fusedae demo`` (or ``python -m fusedae demo``)."""
import argparse


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
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.epochs < 1 or args.hidden < 1 or args.seed < 0:
            parser.error("--epochs and --hidden must be >= 1, --seed >= 0")
        from .demo import run
        run(out=args.out, epochs=args.epochs, n_hidden=args.hidden, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
