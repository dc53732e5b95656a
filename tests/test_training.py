"""The epoch loop: callbacks, early stopping, checkpoints, Ctrl-C, progress."""
import os
import signal

import numpy as np
import pytest
from sklearn.datasets import load_digits

import fusedae
from fusedae.callbacks import Checkpoint


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.data / 16.0, d.target


def test_callbacks_see_every_epoch_and_can_stop(digits):
    X, _ = digits
    seen = []

    def record(model, logs):
        seen.append(dict(logs))
        assert model.n_iter_ == logs["epoch"]

    model = fusedae.Autoencoder(8, epochs=5, random_state=0).fit(X, callbacks=record)
    assert [s["epoch"] for s in seen] == [1, 2, 3, 4, 5]
    assert [s["loss"] for s in seen] == model.loss_curve_
    model = fusedae.GAN(3, (8,), (8,), epochs=6, d_pretrain_epochs=2, random_state=0).fit(
        X, callbacks=[lambda m, logs: seen.append(logs), lambda m, logs: logs["epoch"] == 4])
    assert model.n_iter_ == 4
    assert [s["phase"] for s in seen[5:]] == ["d_pretrain"] * 2 + ["alternating"] * 2
    assert "g_loss" not in seen[5] and "g_loss" in seen[8]


def test_bad_callbacks_are_named(digits):
    X, _ = digits
    with pytest.raises(TypeError, match="callbacks: expected callables"):
        fusedae.Autoencoder(4, epochs=1).fit(X, callbacks=[3])
    with pytest.raises(TypeError, match="callbacks: expected a callable or a list"):
        fusedae.Autoencoder(4, epochs=1).fit(X, callbacks=3)
    with pytest.raises(ValueError, match="callbacks: not available with optimizer='lbfgs'"):
        fusedae.Autoencoder(4, optimizer="lbfgs", epochs=1).fit(X, callbacks=[print])


def test_early_stopping_stops_and_keeps_the_best_epoch(digits):
    X, y = digits
    clf = fusedae.Classifier(16, epochs=300, early_stopping=True, n_iter_no_change=5,
                             random_state=0).fit(X, y)
    assert clf.n_iter_ < 300
    assert len(clf.validation_scores_) == clf.n_iter_
    # the best is the first score that beat every earlier one by tol
    assert clf.best_validation_score_ in clf.validation_scores_
    assert max(clf.validation_scores_) <= clf.best_validation_score_ + 1e-4
    # the kept parameters are those of the best epoch: rescoring the
    # held-out rows gives the best score, not the last one
    from fusedae._training import validation_split
    _, held = validation_split(len(X), 0.1, clf._split_seed, y)
    from sklearn.metrics import log_loss
    assert -log_loss(y[held], clf.predict_proba(X[held]), labels=clf.classes_) == \
        pytest.approx(clf.best_validation_score_, rel=1e-5)
    vae = fusedae.VAE(3, (16,), epochs=400, early_stopping=True, n_iter_no_change=3, tol=0.5,
                      random_state=0).fit(X)
    assert vae.n_iter_ < 400 and len(vae.validation_scores_) == vae.n_iter_


def test_validation_split_is_fixed_stratified_and_checked():
    from fusedae._training import validation_split
    labels = np.repeat(np.arange(4), 25)
    a = validation_split(100, 0.2, 7, labels)
    b = validation_split(100, 0.2, 7, labels)
    np.testing.assert_array_equal(a[1], b[1])
    assert np.bincount(labels[a[1]]).tolist() == [5, 5, 5, 5]
    assert sorted(np.concatenate(a).tolist()) == list(range(100))
    with pytest.raises(ValueError, match="validation_fraction: 0.5 of 1 rows leaves no"):
        validation_split(1, 0.5, 0)


@pytest.mark.parametrize("params, match", [
    ({"early_stopping": 1}, "early_stopping: expected a bool"),
    ({"early_stopping": True, "validation_fraction": 1.0}, "validation_fraction: expected"),
    ({"early_stopping": True, "n_iter_no_change": 0}, "n_iter_no_change: expected an integer"),
    ({"early_stopping": True, "tol": -1.0}, "tol: expected a value"),
    ({"early_stopping": True, "optimizer": "lbfgs"}, "early_stopping: not available"),
])
def test_bad_early_stopping_parameters_are_named(digits, params, match):
    with pytest.raises(ValueError, match=match):
        fusedae.Autoencoder(4, epochs=2, **params).fit(digits[0])


def test_checkpoint_every_n_epochs_with_numbered_files(digits, tmp_path):
    X, _ = digits
    ck = Checkpoint(tmp_path / "ae-{epoch}.fae", every=2)
    fusedae.Autoencoder(4, epochs=5, random_state=0).fit(X, callbacks=[ck])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae-2.fae", "ae-4.fae", "ae-5.fae"]
    assert fusedae.load(tmp_path / "ae-4.fae").n_iter_ == 4
    with pytest.raises(ValueError, match="every: expected an integer >= 1"):
        Checkpoint(tmp_path / "x", every=0)
    with pytest.raises(TypeError, match="path: expected a str"):
        Checkpoint(None)


def interrupt_at(epoch):
    """A callback that presses Ctrl-C at the given epoch (SIGINT to ourselves)."""
    def press(model, logs):
        if logs["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGINT)
    return press


@pytest.mark.parametrize("make, supervised", [
    (lambda: fusedae.SparseAutoencoder(8, epochs=8, random_state=0), False),
    (lambda: fusedae.ConditionalVAE(3, (8,), epochs=8, random_state=0), True),
    (lambda: fusedae.GAN(3, (8,), (8,), epochs=6, g_pretrain_epochs=2, random_state=0), False),
])
def test_ctrl_c_stops_between_epochs_leaves_a_usable_model_and_resumes_exactly(
        digits, make, supervised):
    X, y = digits
    args = (X, y) if supervised else (X,)
    whole = make().fit(*args)
    model = make()
    # Python's own handler, whatever the test runner inherited (a shell's
    # background job starts with SIGINT ignored).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt, match="interrupted after epoch 3"):
            model.fit(*args, callbacks=interrupt_at(3))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert model.n_iter_ == 3
    if hasattr(model, "mean_activation_"):
        assert model.mean_activation_.shape == (8,)
    sample = model.sample(2, y=1) if supervised else (
        model.sample(2) if hasattr(model, "sample") else model.predict(X[:2]))
    assert np.all(np.isfinite(sample))
    model.resume_fit(*args)
    assert model.n_iter_ == whole.n_iter_
    if hasattr(whole, "history_"):
        assert model.history_ == whole.history_
    else:
        assert model.loss_curve_ == whole.loss_curve_


def test_a_process_that_ignores_ctrl_c_keeps_ignoring_it_during_fit(digits):
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        model = fusedae.Autoencoder(4, epochs=4, random_state=0)
        model.fit(digits[0], callbacks=interrupt_at(2))  # the signal is ignored
        assert model.n_iter_ == 4
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_verbose_shows_a_progress_bar_and_quiet_shows_nothing(digits, capsys):
    X, _ = digits
    fusedae.SparseAutoencoder(8, epochs=3, random_state=0).fit(X)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    fusedae.SparseAutoencoder(8, epochs=3, random_state=0, verbose=True).fit(X)
    err = capsys.readouterr().err
    assert "SparseAutoencoder" in err and "3/3" in err and "loss=" in err and "rho_hat=" in err
    fusedae.VAE(3, (8,), epochs=2, random_state=0, verbose=True).fit(X)
    err = capsys.readouterr().err
    assert "recon=" in err and "kl=" in err
    fusedae.GAN(3, (8,), (8,), epochs=2, random_state=0, verbose=True).fit(X)
    assert "d_loss=" in capsys.readouterr().err


@pytest.mark.parametrize("make", [
    lambda: fusedae.Autoencoder(8, activation="identity", output_activation="identity",
                                optimizer="sgd", learning_rate=1e6, epochs=20, random_state=0),
    lambda: fusedae.VAE(2, (8,), loss="squared_error", output_activation="identity",
                        optimizer="sgd", learning_rate=1e6, epochs=20, random_state=0),
    lambda: fusedae.GAN(2, (8,), (8,), g_output_activation="identity", optimizer="sgd",
                        g_learning_rate=1e12, d_learning_rate=1e12, epochs=20, random_state=0),
])
def test_divergence_is_named_and_the_model_keeps_its_last_finite_state(digits, make):
    X = digits[0] * 1e3
    model = make()
    with pytest.raises(fusedae.TrainingDivergedError) as info:
        model.fit(X)
    err = info.value
    assert "non-finite" in str(err) or "became" in str(err)
    assert err.epoch == model.n_iter_  # the diverging epoch was not counted
    nets = ([model._net] if hasattr(model, "_net") else
            [model._model.encoder, model._model.decoder] if hasattr(model._model, "encoder")
            else [model._model.generator, model._model.discriminator])
    for net in nets:
        assert np.all(np.isfinite(net.params))
        assert np.all(np.isfinite(net.optimizer_state(0)))
        assert np.all(np.isfinite(net.optimizer_state(1)))


def test_a_step_that_diverges_is_not_applied():
    """One step per epoch: the first step blows the weights up (finite but
    huge), the second step's loss is infinite and that step is not applied,
    so the parameters are exactly those after one epoch."""
    X = np.full((16, 4), 1e3)

    def make(epochs):
        return fusedae.Autoencoder(3, activation="identity", output_activation="identity",
                                   optimizer="sgd", learning_rate=1e30, batch_size=16,
                                   epochs=epochs, random_state=7)

    one = make(1).fit(X)
    assert np.all(np.isfinite(one._net.params))
    model = make(3)
    with pytest.raises(fusedae.TrainingDivergedError) as info:
        model.fit(X)
    assert (info.value.epoch, info.value.step) == (1, 0)
    np.testing.assert_array_equal(model._net.params, one._net.params)
    np.testing.assert_array_equal(model._net.optimizer_state(0), one._net.optimizer_state(0))
    assert model.loss_curve_ == one.loss_curve_
