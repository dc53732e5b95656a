"""``python -m fusedae demo``: a sparse autoencoder on scikit-learn's digits.

Trains the chapter's network (64 inputs, 49 sigmoid code units, ρ = 0.05,
β = 3) on 8×8 handwritten digits that ship with scikit-learn, shows progress,
prints reconstruction error, achieved sparsity, wall time and the speed
against the NumPy reference on the same data, and writes two PNG figures.
"""
import os
import sys
import time

import numpy as np


def _progress(epoch, total, loss, rhohat, width=30):
    done = int(width * epoch / total)
    bar = "#" * done + "-" * (width - done)
    end = "\n" if epoch == total else ""
    if sys.stdout.isatty():
        print(f"\r  [{bar}] epoch {epoch:3d}/{total}  loss {loss:.4f}  mean rho_hat {rhohat:.4f}",
              end=end, flush=True)
    elif epoch == total or epoch % max(1, total // 10) == 0:
        print(f"  epoch {epoch:3d}/{total}  loss {loss:.4f}  mean rho_hat {rhohat:.4f}", flush=True)


def _reference_steps_per_second(X, n_hidden, rho, beta, lam, lr, batch, seconds=2.0):
    """Time the NumPy reference's training step on the same data and model."""
    from .reference import mlp, optim

    spec = mlp.MLPSpec(sizes=(X.shape[1], n_hidden, X.shape[1]),
                       activations=("sigmoid", "sigmoid"), sparsity_layer=1,
                       sparsity_target=rho, sparsity_weight=beta, weight_decay=lam)
    Ws, bs = mlp.init_params(spec, np.random.default_rng(0), dtype=np.float32)
    opt = optim.Adam(lr)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for r0 in range(0, len(X), batch):
            xb = X[r0:r0 + batch]
            optim.train_step(Ws, bs, xb, xb, spec, opt)
            steps += 1
    return steps / (time.perf_counter() - start)


def run(out="fusedae-demo", epochs=200, n_hidden=49, seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from . import SparseAutoencoder
    from ._native import engine
    from .figures import feature_grid, reconstruction_rows, write_png

    os.makedirs(out, exist_ok=True)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test = train_test_split(X, test_size=0.2, random_state=seed, stratify=y)
    rho, beta, lam, lr, batch = 0.05, 3.0, 1e-4, 3e-3, 64
    print(f"fusedae demo: sparse autoencoder 64-{n_hidden}-64 on scikit-learn digits "
          f"({len(X_train)} train / {len(X_test)} test, 8x8 images in [0, 1])")
    print(f"  rho = {rho}, beta = {beta}, lambda = {lam}, Adam lr {lr}, batch {batch}, "
          f"{epochs} epochs; "
          f"engine kernels: {engine.supported_isas()[0]}, BLAS: OpenBLAS {engine.blas_corename()}")

    model = SparseAutoencoder(n_hidden, sparsity_target=rho, sparsity_weight=beta,
                              weight_decay=lam, learning_rate=lr, batch_size=batch, epochs=epochs,
                              random_state=seed)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.partial_fit(X_train)
        _progress(epoch, epochs, model.loss_curve_[-1], float(model.mean_activation_.mean()))
    wall = time.perf_counter() - start
    steps = epochs * -(-len(X_train) // batch)

    recon = model.predict(X_test)
    mse = float(np.mean((recon - X_test) ** 2))
    baseline = float(np.mean((X_test - X_train.mean(axis=0)) ** 2))
    rhohat = model.transform(X_test).mean(axis=0)
    print(f"reconstruction error (test): {mse:.5f} mean squared error per pixel "
          f"(predicting the mean image: {baseline:.5f})")
    print(f"achieved sparsity (test): mean rho_hat {rhohat.mean():.4f}, "
          f"mean |rho_hat - rho| {np.abs(rhohat - rho).mean():.4f} (target rho = {rho})")
    print(f"wall time: {wall:.2f} s for {steps} steps, progress reporting included")
    # Speed: a plain fit() of the same model (no per-epoch reporting) against
    # the NumPy reference's training step on the same data.
    start = time.perf_counter()
    SparseAutoencoder(n_hidden, sparsity_target=rho, sparsity_weight=beta, weight_decay=lam,
                      learning_rate=lr, batch_size=batch, epochs=epochs,
                      random_state=seed).fit(X_train)
    engine_rate = steps / (time.perf_counter() - start)
    ref_rate = _reference_steps_per_second(X_train, n_hidden, rho, beta, lam, lr, batch)
    print(f"speed: fusedae fit {engine_rate:,.0f} steps/s, NumPy reference {ref_rate:,.0f} "
          f"steps/s on the same data and model -> {engine_rate / ref_rate:.1f}x")

    features = os.path.join(out, "features.png")
    write_png(features, feature_grid(model.coefs_[0], (8, 8)))
    recons = os.path.join(out, "reconstructions.png")
    write_png(recons, reconstruction_rows(X_test[:16], recon[:16], image_shape=(8, 8)))
    print(f"wrote {features} (each code unit's input weights) and {recons} "
          f"(test digits above, reconstructions below)")
    return model
