"""The command line (fusedae.cli): train -> evaluate -> sample on the digits,
checkpoints and --resume, one-line errors, bench --quick.

Everything runs in-process through ``fusedae.cli.main`` (one real subprocess
checks ``python -m fusedae --help``); the models train for a few epochs only.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fusedae
from fusedae import cli
from fusedae.__main__ import main as program_main

EPOCHS = {"sparse": 4, "denoising": 4, "classifier": 5, "generator": 5, "vae": 4,
          "cvae": 4, "gan": 3}
FIGURES = {
    "sparse": ["features.png", "reconstructions.png", "loss.png"],
    "denoising": ["features.png", "reconstructions.png", "denoising.png", "loss.png"],
    "classifier": ["features.png", "loss.png"],
    "generator": ["classes.png", "loss.png"],
    "vae": ["samples.png", "interpolation.png", "reconstructions.png", "loss.png"],
    "cvae": ["classes.png", "interpolation.png", "loss.png"],
    "gan": ["samples.png", "loss.png"],
}
METRIC_KEYS = {
    "sparse": {"reconstruction_error", "mse_per_feature", "mean_code_activation",
               "sparsity_target", "mean_abs_sparsity_deviation"},
    "denoising": {"reconstruction_error", "mse_per_feature", "mean_code_activation",
                  "noisy_input_error", "denoised_error"},
    "classifier": {"accuracy", "log_loss"},
    "generator": {"class_mean_distance", "nearest_class_mean_accuracy", "squared_error"},
    "vae": {"negative_elbo"},
    "cvae": {"negative_elbo"},
    "gan": {"final_d_loss", "final_g_loss", "d_real", "d_fake", "sample_mean", "sample_std",
            "data_mean", "data_std", "mean_image_distance", "frechet_distance"},
}


def run(argv, capsys):
    """(exit status, stdout, stderr) of the command line on argv."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fusedae: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def assert_png_not_blank(path):
    import matplotlib.image

    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and min(image.shape[:2]) > 20, image.shape
    assert float(np.std(image[..., :3])) > 0.05, path


def no_temporaries(folder):
    return [p for p in os.listdir(folder) if p.startswith(".fusedae-")]


@pytest.fixture(scope="module")
def digits():
    return fusedae.datasets.load("digits", dtype="float32")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One short training run per model on the digits: {model: (out folder, stdout)}."""
    root = tmp_path_factory.mktemp("runs")
    done = {}
    for model, epochs in EPOCHS.items():
        out = root / model
        argv = ["train", model, "--data", "digits", "--epochs", str(epochs), "--out", str(out)]
        if model == "classifier":
            argv += ["--learning-rate", "0.01"]
        else:
            argv += ["--quiet"]  # the classifier's run shows the progress bar
        code = cli.main(argv)
        assert code == 0, model
        done[model] = out
    return done


# ----------------------------------------------------------------- help
def test_help_runs_as_a_program():
    res = subprocess.run([sys.executable, "-m", "fusedae", "--help"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    for word in ("train", "evaluate", "sample", "bench", "demo", "categories", "examples:"):
        assert word in res.stdout


@pytest.mark.parametrize("command", ["train", "evaluate", "sample", "bench", "demo",
                                     "categories"])
def test_each_command_has_help_with_an_example(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    assert f"usage: fusedae {command}" in out
    assert "example" in out and "default" in out
    if command == "train":  # the per-model defaults, read from the estimators
        assert "the models' defaults" in out and "0.0002" in out


def test_usage_errors_exit_2(capsys):
    assert run(["train", "nosuchmodel", "--data", "digits", "--out", "x"], capsys)[0] == 2
    assert run([], capsys)[0] == 2
    with pytest.raises(SystemExit) as exc:  # the console script's entry raises its status
        program_main(["sample"])
    assert exc.value.code == 2


# ---------------------------------------------------------------- train
@pytest.mark.parametrize("model", list(EPOCHS))
def test_train_writes_model_metrics_and_figures(runs, model, digits):
    out = runs[model]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == model and metrics["data"] == "digits"
    assert metrics["class"] == cli.MODELS[model][0]
    assert (metrics["n_train"], metrics["n_test"]) == (1437, 360)
    assert metrics["epochs_run"] == EPOCHS[model] and metrics["wall_seconds"] > 0
    assert metrics["hyperparameters"]["epochs"] == EPOCHS[model]
    assert metrics["hyperparameters"]["random_state"] == 0
    assert metrics["image_shape"] == [8, 8]
    for split in ("train", "test"):
        assert set(metrics[split]) == METRIC_KEYS[model], split
        assert all(v is not None and np.isfinite(v) for v in metrics[split].values())
    assert metrics["files"] == ["model.fae", "metrics.json"] + FIGURES[model]
    for name in FIGURES[model]:
        assert_png_not_blank(out / name)
    assert sorted(os.listdir(out)) == sorted(metrics["files"])
    assert not no_temporaries(out)

    loaded = fusedae.load(out / "model.fae")
    assert type(loaded).__name__ == cli.MODELS[model][0]
    assert loaded.verbose is False  # the saved model does not show progress bars
    test = metrics["test"]
    if model in ("sparse", "denoising"):
        assert 0 < test["mse_per_feature"] < 0.25
        assert 0 < test["mean_code_activation"] < 1
    if model == "sparse":
        assert test["sparsity_target"] == 0.05
    if model == "denoising":
        assert test["noisy_input_error"] > 0
    if model == "classifier":
        assert test["accuracy"] > 0.8 and 0 < test["log_loss"] < np.log(10)
    if model == "generator":
        assert 0 <= test["nearest_class_mean_accuracy"] <= 1
    if model in ("vae", "cvae"):
        assert 0 < test["negative_elbo"] < 64 * np.log(2) * 2
    if model == "gan":
        assert 0 < test["d_real"] < 1 and 0 < test["d_fake"] < 1
        assert test["frechet_distance"] >= 0


def test_train_prints_a_summary_and_shows_progress(tmp_path, capsys):
    code, out, err = run(["train", "sparse", "--data", "digits", "--epochs", "2",
                          "--hidden", "16", "--set", "learning_rate=0.01", "--out", tmp_path],
                         capsys)
    assert code == 0, err
    assert "SparseAutoencoder on digits" in out and "test:" in out
    assert str(tmp_path / "model.fae") in out
    assert "SparseAutoencoder" in err and "2/2" in err  # the tqdm bar, on stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["hyperparameters"]["n_hidden"] == 16
    assert metrics["hyperparameters"]["learning_rate"] == 0.01


def test_gan_options_reach_both_networks_and_test_fraction_0(tmp_path, capsys):
    code, _, err = run(["train", "gan", "--data", "digits", "--epochs", "1", "--hidden", "32",
                        "--learning-rate", "0.001", "--latent", "4", "--test-fraction", "0",
                        "--quiet", "--no-figures", "--out", tmp_path], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    hp = metrics["hyperparameters"]
    assert hp["g_hidden"] == hp["d_hidden"] == 32 and hp["n_latent"] == 4
    assert hp["g_learning_rate"] == hp["d_learning_rate"] == 0.001
    assert metrics["n_test"] == 0 and metrics["test"] is None and metrics["n_train"] == 1797
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "model.fae"]


def test_without_matplotlib_it_still_trains_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    code, out, err = run(["train", "sparse", "--data", "digits", "--epochs", "1", "--quiet",
                          "--out", tmp_path], capsys)
    assert code == 0, err
    hint = [ln for ln in out.splitlines() if "pip install" in ln]
    assert hint == ['figures need matplotlib: pip install "fusedae[plot]"']
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "model.fae"]


def test_npz_data_that_is_not_an_image_gets_no_figures(tmp_path, capsys, digits):
    X, y = digits
    np.savez(tmp_path / "wide.npz", X=X[:400, :50], y=y[:400])
    code, out, err = run(["train", "classifier", "--data", tmp_path / "wide.npz", "--epochs", "2",
                          "--quiet", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert "figures skipped: 50 features are not a square image" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_test"] == 80 and metrics["image_shape"] is None


# -------------------------------------------------------------- evaluate
def test_evaluate_computes_the_metrics_train_wrote(tmp_path, capsys):
    code, _, err = run(["train", "classifier", "--data", "digits", "--epochs", "2",
                        "--test-fraction", "0", "--quiet", "--no-figures", "--out", tmp_path],
                       capsys)
    assert code == 0, err
    code, out, err = run(["evaluate", tmp_path / "model.fae", "--data", "digits",
                          "--out", tmp_path / "eval.json"], capsys)
    assert code == 0, err
    assert "accuracy" in out and "log_loss" in out
    report = json.loads((tmp_path / "eval.json").read_text())
    trained = json.loads((tmp_path / "metrics.json").read_text())
    assert report["metrics"] == trained["train"]  # the same rows, the same numbers
    assert report["n_samples"] == 1797 and report["class"] == "Classifier"


@pytest.mark.parametrize("model", list(EPOCHS))
def test_evaluate_each_model(runs, model, capsys, tmp_path):
    path = tmp_path / "m.json"
    code, out, err = run(["evaluate", runs[model] / "model.fae", "--data", "digits",
                          "--out", path], capsys)
    assert code == 0, err
    report = json.loads(path.read_text())
    assert set(report["metrics"]) == METRIC_KEYS[model]
    assert report["model"] == model
    for key in METRIC_KEYS[model]:
        assert key in out


def test_evaluate_errors_are_one_line(runs, tmp_path, capsys, digits):
    X = digits[0]
    np.save(tmp_path / "narrow.npy", X[:, :16])
    code, _, err = run(["evaluate", runs["sparse"] / "model.fae", "--data",
                        tmp_path / "narrow.npy"], capsys)
    assert_one_line_error(code, err, "16 features", "64")
    code, _, err = run(["evaluate", tmp_path / "missing.fae", "--data", "digits"], capsys)
    assert_one_line_error(code, err, "missing.fae")
    (tmp_path / "corrupt.fae").write_bytes(b"not a model")
    code, _, err = run(["evaluate", tmp_path / "corrupt.fae", "--data", "digits"], capsys)
    assert_one_line_error(code, err, "corrupt.fae", "not a fusedae model file")
    np.save(tmp_path / "nolabels.npy", X)
    code, _, err = run(["evaluate", runs["classifier"] / "model.fae", "--data",
                        tmp_path / "nolabels.npy"], capsys)
    assert_one_line_error(code, err, "needs labels")


# ---------------------------------------------------------------- sample
@pytest.mark.parametrize("model", ["vae", "cvae", "gan"])
def test_sample_writes_samples(runs, model, tmp_path, capsys):
    out = tmp_path / "s"
    code, stdout, err = run(["sample", runs[model] / "model.fae", "--n", "12", "--seed", "3",
                             "--out", out], capsys)
    assert code == 0, err
    S = np.load(out / "samples.npy")
    assert S.shape == (12, 64) and np.all(np.isfinite(S))
    assert_png_not_blank(out / "samples.png")
    assert "12 samples" in stdout
    again = tmp_path / "again"
    assert cli.main(["sample", str(runs[model] / "model.fae"), "--n", "12", "--seed", "3",
                     "--out", str(again)]) == 0
    np.testing.assert_array_equal(np.load(again / "samples.npy"), S)  # same seed, same samples
    if model == "cvae":
        np.testing.assert_array_equal(np.load(out / "labels.npy"), np.arange(12) % 10)
    else:
        assert not (out / "labels.npy").exists()


def test_sample_a_class_of_the_conditional_vae(runs, tmp_path, capsys):
    code, _, err = run(["sample", runs["cvae"] / "model.fae", "--n", "5", "--label", "3",
                        "--out", tmp_path], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "labels.npy").tolist() == [3] * 5
    cvae = fusedae.load(runs["cvae"] / "model.fae")
    np.testing.assert_array_equal(np.load(tmp_path / "samples.npy"),
                                  cvae.sample(5, y=3, random_state=0))
    code, _, err = run(["sample", runs["cvae"] / "model.fae", "--label", "12", "--out",
                        tmp_path], capsys)
    assert_one_line_error(code, err, "--label", "12")


def test_sample_the_generator_gives_one_signal_per_label(runs, tmp_path, capsys):
    code, _, err = run(["sample", runs["generator"] / "model.fae", "--out", tmp_path], capsys)
    assert code == 0, err
    gen = fusedae.load(runs["generator"] / "model.fae")
    np.testing.assert_array_equal(np.load(tmp_path / "samples.npy"), gen.generate(np.arange(10)))
    assert_png_not_blank(tmp_path / "samples.png")


@pytest.mark.parametrize("model", ["classifier", "sparse"])
def test_sample_refuses_models_that_cannot_sample(runs, model, tmp_path, capsys):
    code, _, err = run(["sample", runs[model] / "model.fae", "--n", "4", "--out", tmp_path],
                       capsys)
    assert_one_line_error(code, err, cli.MODELS[model][0], "cannot sample")
    assert not os.listdir(tmp_path)


# ------------------------------------------------------ checkpoint, resume
class _Crash(BaseException):
    """Stands for the process dying (kill -9, power cut) right after a checkpoint."""


def test_resume_from_a_checkpoint_is_bit_for_bit(tmp_path, capsys, monkeypatch, digits):
    X = digits[0]
    common = ["--data", "digits", "--epochs", "8", "--quiet", "--no-figures", "--seed", "5"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert cli.main(["train", "denoising", *common, "--out", str(whole)]) == 0

    original = fusedae.callbacks.Checkpoint.__call__

    def save_then_die(self, model, logs):
        original(self, model, logs)
        if logs["epoch"] == 4:
            raise _Crash()

    monkeypatch.setattr(fusedae.callbacks.Checkpoint, "__call__", save_then_die)
    with pytest.raises(_Crash):
        cli.main(["train", "denoising", *common, "--checkpoint-every", "2", "--out",
                  str(broken)])
    monkeypatch.undo()
    assert fusedae.load(broken / "checkpoint.fae").n_iter_ == 4
    assert not (broken / "model.fae").exists()
    capsys.readouterr()

    # --data, --seed come from the checkpoint.json beside the checkpoint
    code, out, err = run(["train", "denoising", "--resume", broken / "checkpoint.fae",
                          "--quiet", "--no-figures", "--out", broken], capsys)
    assert code == 0, err
    assert "resumed at epoch 4: 4 more epoch(s)" in out
    a, b = fusedae.load(whole / "model.fae"), fusedae.load(broken / "model.fae")
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(wa, wb)
    assert a.loss_curve_ == b.loss_curve_
    resumed = json.loads((broken / "metrics.json").read_text())
    assert resumed["epochs_before_resume"] == 4 and resumed["epochs_run"] == 8
    assert resumed["test"] == json.loads((whole / "metrics.json").read_text())["test"]


def test_resume_refuses_changes(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "sparse", "--data", "digits", "--epochs", "2", "--quiet",
                     "--no-figures", "--checkpoint-every", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    ckpt = out / "checkpoint.fae"
    code, _, err = run(["train", "sparse", "--resume", ckpt, "--epochs", "5", "--out", out],
                       capsys)
    assert_one_line_error(code, err, "--resume", "--epochs")
    code, _, err = run(["train", "sparse", "--resume", ckpt, "--seed", "1", "--out", out],
                       capsys)
    assert_one_line_error(code, err, "training rows differ")
    code, _, err = run(["train", "vae", "--resume", ckpt, "--out", out], capsys)
    assert_one_line_error(code, err, "SparseAutoencoder", "fusedae train sparse")


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("options, needles", [
    (["--sparsity-target", "2"], ["sparsity_target", "--sparsity-target"]),
    (["--epochs", "0"], ["epochs"]),
    (["--hidden", "0"], ["n_hidden"]),
    (["--dtype", "float16"], ["dtype"]),
    (["--learning-rate", "-1"], ["learning_rate"]),
    (["--set", "activation=tanh"], ["activation"]),
    (["--set", "optimiser=sgd"], ["optimiser", "has no parameter"]),
    (["--set", "noise=pink"], ["noise"]),
    (["--latent", "4"], ["n_latent", "vae"]),
    (["--set", "random_state=1"], ["--seed"]),
    (["--test-fraction", "1.5"], ["--test-fraction"]),
])
def test_bad_hyperparameters_are_one_line_errors(options, needles, tmp_path, capsys):
    code, _, err = run(["train", "sparse", "--data", "digits", "--out", tmp_path / "x",
                        "--quiet", *options], capsys)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "x" / "model.fae").exists()


def test_data_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(["train", "sparse", "--data", tmp_path / "nope.npy", "--out", tmp_path],
                       capsys)
    assert_one_line_error(code, err, "nope.npy")
    code, _, err = run(["train", "cvae", "--data", "patches", "--out", tmp_path], capsys)
    if "Pillow" not in err:
        assert_one_line_error(code, err, "needs labels")
    np.save(tmp_path / "big.npy", np.full((10, 4), 3.0))
    code, _, err = run(["train", "sparse", "--data", tmp_path / "big.npy", "--out", tmp_path],
                       capsys)
    assert_one_line_error(code, err, "big.npy", "[0, 1]")
    code, _, err = run(["train", "sparse", "--out", tmp_path], capsys)
    assert_one_line_error(code, err, "--data")


def test_demo_and_categories_check_their_options(capsys):
    code, _, err = run(["demo", "--epochs", "0"], capsys)
    assert_one_line_error(code, err, "--epochs")
    code, _, err = run(["categories", "--hidden", "0"], capsys)
    assert_one_line_error(code, err, "--hidden")


# ----------------------------------------------------------------- bench
def test_bench_quick_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, err = run(["bench", "--quick", "--threads", "1", "--out", path], capsys)
    assert code == 0, err
    assert "W-tiny" in out and "W-mnist" in out and "fusedae/NumPy" in out
    report = json.loads(path.read_text())
    assert report["settings"]["quick"] is True and report["settings"]["threads"] == 1
    assert set(report["workloads"]) == {"W-tiny", "W-mnist"}
    for res in report["workloads"].values():
        assert res["verification"]["relative_difference"] <= 1e-3
        assert len(res["fusedae"]["windows"]) == len(res["numpy"]["windows"]) == 3
        assert res["fusedae"]["steps_per_s"]["median"] > 0 and res["speedup"] > 0


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, capsys, monkeypatch, digits):
    import signal

    from fusedae.autoencoder import Autoencoder

    X = digits[0]
    common = ["--data", "digits", "--epochs", "5", "--quiet", "--no-figures"]
    assert cli.main(["train", "sparse", *common, "--out", str(tmp_path / "whole")]) == 0
    original = Autoencoder._one_epoch

    def press_ctrl_c(self, data, p):
        logs = original(self, data, p)
        if self.n_iter_ == 2:
            signal.raise_signal(signal.SIGINT)  # the fit stops after this epoch
        return logs

    monkeypatch.setattr(Autoencoder, "_one_epoch", press_ctrl_c)
    out = tmp_path / "stopped"
    # Python's own handler, whatever the runner inherited (a background job
    # starts with SIGINT ignored, and fit then leaves it ignored).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code, _, err = run(["train", "sparse", *common, "--out", out], capsys)
    finally:
        signal.signal(signal.SIGINT, inherited)
    monkeypatch.undo()
    assert code == 130
    assert "interrupted after epoch 2" in err and "--resume" in err
    assert fusedae.load(out / "checkpoint.fae").n_iter_ == 2
    code, _, err = run(["train", "sparse", "--resume", out / "checkpoint.fae", "--quiet",
                        "--no-figures", "--out", out], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(fusedae.load(out / "model.fae").predict(X),
                                  fusedae.load(tmp_path / "whole" / "model.fae").predict(X))


def test_many_samples_draw_the_first_hundred(runs, tmp_path, capsys):
    code, _, err = run(["sample", runs["gan"] / "model.fae", "--n", "150", "--out", tmp_path],
                       capsys)
    assert code == 0, err
    assert np.load(tmp_path / "samples.npy").shape == (150, 64)
    assert_png_not_blank(tmp_path / "samples.png")


def _write_idx(path, array, type_code):
    import struct

    array = np.ascontiguousarray(array)
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def test_idx_files_with_labels(tmp_path, capsys, digits):
    X, y = digits
    images = np.round(X[:600] * 255).astype(np.uint8).reshape(-1, 8, 8)
    _write_idx(tmp_path / "images.idx", images, 0x08)
    _write_idx(tmp_path / "labels.idx", y[:600].astype(np.uint8), 0x08)
    code, _, err = run(["train", "classifier", "--data", tmp_path / "images.idx", "--labels",
                          tmp_path / "labels.idx", "--epochs", "2", "--quiet", "--no-figures",
                          "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["n_train"], metrics["n_test"]) == (480, 120)
    code, _, err = run(["evaluate", tmp_path / "run" / "model.fae", "--data",
                        tmp_path / "images.idx"], capsys)
    assert_one_line_error(code, err, "needs labels", "--labels")
    code, _, err = run(["train", "sparse", "--data", "digits", "--labels",
                        tmp_path / "labels.idx", "--out", tmp_path / "x"], capsys)
    assert_one_line_error(code, err, "--labels", "IDX")
