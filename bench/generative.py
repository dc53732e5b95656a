"""The generative models of the chapter (§4 VAE, §5 GAN) on small data:
numbers and figures.

What is measured
----------------
1. ``VAE(8, (64,), learning_rate=3e-3, epochs=100)`` on scikit-learn's
   digits (pixels / 16, a stratified 75/25 split with random_state=0):
   the held-out negative ELBO (nats per digit) of the untrained model
   (``epochs=0``) and of the trained one, and its fall in %. Figures: 40
   samples, interpolations between the codes of held-out digits of
   different classes, and the per-epoch training loss (total, recon, KL).
2. ``ConditionalVAE`` with the same settings, trained on (digit, label):
   100 samples per class, judged by a ``Classifier(64, epochs=100)``
   trained on the training split (its accuracy on the held-out digits is
   reported for scale). Figures: 8 samples per class (the same 8 latent
   codes in every row) and soft-label morphs from class a to class b at
   the latent code z = 0.
3. ``GAN`` on 4000 points of a ring of 8 Gaussians (radius 2, σ = 0.05),
   the settings of tests/test_gan.py, trained by ``partial_fit`` one
   alternating epoch at a time to 200 epochs; at every 10th epoch (and at
   the snapshot epochs) 2000 samples at fixed latents give the fraction of
   samples within 0.3 of a centre and the modes that hold at least 1% of
   the samples. Figures: samples at the snapshot epochs over the centres;
   D and G loss per step.
4. ``GAN(n_latent=16, g_hidden=(128,), d_hidden=(128,), lr 1e-3)`` on all
   1797 digits, trained the same way to 200 epochs; at the snapshot epochs
   1000 samples (fixed latents) are classified by a ``Classifier(64,
   epochs=100)`` trained on all digits (as in tests/test_gan.py), and the
   Fréchet distance between Gaussians fitted to that classifier's hidden
   ReLU features of the real digits and of the samples is computed; two
   random halves of the real digits give the real-vs-real scale. Figure:
   the same 16 latents decoded at the snapshot epochs.

Training one epoch at a time with ``partial_fit`` is the same computation
as ``fit`` with that many epochs (the engine's step counter carries on);
the script checks this for the final ring GAN against a direct ``fit``.

Every estimator runs with ``n_threads=1`` (``--threads``), so that the
run disturbs other work on a small machine little; the wall times are
those of this run and include whatever else the machine was doing.

Usage::

    PYTHONPATH=python python bench/generative.py [--seed 0]
        [--figures docs/figures] [--out-json PATH] [--threads 1]

Prints a summary table, writes the figures (PNG, each written to a
temporary file in the figures folder and renamed into place) and the JSON
report (default ``bench/results/generative-<YYYY-MM-DD>.json``).
"""
import argparse
import datetime
import io
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.ensure_fusedae_importable()
import fusedae  # noqa: E402
from fusedae import GAN, Classifier, ConditionalVAE, VAE  # noqa: E402
from fusedae._files import write_atomically  # noqa: E402
from fusedae.metrics import frechet_distance  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

DPI = 100

# ------------------------------------------------------------ settings
VAE_KW = dict(n_latent=8, n_hidden=(64,), learning_rate=3e-3, epochs=100)
CLF_KW = dict(n_hidden=64, epochs=100)
RING = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1) * 2.0
RING_N, RING_SIGMA, RING_RADIUS = 4000, 0.05, 0.3
RING_KW = dict(n_latent=4, g_hidden=(64, 64), d_hidden=(64, 64), g_output_activation="identity",
               g_learning_rate=1e-3, d_learning_rate=1e-3, batch_size=256)
DIGITS_GAN_KW = dict(n_latent=16, g_hidden=(128,), d_hidden=(128,), g_learning_rate=1e-3,
                     d_learning_rate=1e-3)
GAN_EPOCHS = 200
RING_SNAPSHOTS = (0, 10, 25, 50, 100, 200)
DIGITS_SNAPSHOTS = (0, 10, 25, 50, 100, 200)
DIGITS_FIGURE_EPOCHS = (0, 10, 50, 100, 200)
INTERPOLATION_CLASSES = ((0, 6), (2, 3), (4, 9))  # first held-out digit of each class
INTERPOLATION_STEPS = 10
MORPH_PAIRS = ((1, 7), (3, 8), (0, 6))
MORPH_STEPS = 9
CVAE_PER_CLASS = 100
N_VAE_SAMPLES = 40
N_RING_SAMPLES = 2000
N_DIGIT_SAMPLES = 1000


# ------------------------------------------------------------ measures
def ring_mixture(n=RING_N, seed=0):
    rng = np.random.default_rng(seed)
    return RING[rng.integers(0, 8, n)] + RING_SIGMA * rng.standard_normal((n, 2))


def ring_modes(samples, radius=RING_RADIUS):
    """(fraction of samples within `radius` of a centre, samples per centre
    among those)."""
    d = np.linalg.norm(samples[:, None, :] - RING[None], axis=-1)
    near = d.min(axis=1) < radius
    return float(near.mean()), np.bincount(d.argmin(axis=1)[near], minlength=8)


def ring_summary(samples):
    samples = samples.astype(np.float64)
    near, counts = ring_modes(samples)
    d = np.linalg.norm(samples[:, None, :] - RING[None], axis=-1).min(axis=1)
    radius = np.linalg.norm(samples[d >= RING_RADIUS], axis=1)
    return {"near_fraction": near, "per_mode": counts.tolist(),
            "modes_covered": int((counts >= 0.01 * len(samples)).sum()),
            # samples away from every centre but within RING_RADIUS of the circle
            "off_mode_on_circle_fraction": (float(np.mean(np.abs(radius - 2.0) < RING_RADIUS))
                                            if len(radius) else None)}


def mid_gray_share(A):
    """Share of pixels strictly between 0.1 and 0.9 (the rest is near-white or near-black)."""
    A = np.asarray(A, dtype=np.float64)
    return float(((A > 0.1) & (A < 0.9)).mean())


def hidden_features(clf, A):
    """The classifier's hidden ReLU layer on the rows of A, float64."""
    return np.maximum(A @ clf.coefs_[0] + clf.intercepts_[0], 0).astype(np.float64)


# ------------------------------------------------------------- figures
def save_figure(fig, path):
    """PNG of `fig` written to a temporary file beside `path`, renamed into place."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)
    write_atomically(path, buf.getvalue())
    os.chmod(path, 0o644)  # the temporary file was created private
    return os.path.relpath(path, _common.REPO)


PAD_VALUE = 0.25  # grid lines between tiles (white background, black ink)


def mosaic(tiles, rows, cols, pad=1, gaps=(), row_pad=None):
    """(rows*cols, 64) images in [0, 1] laid out on a grid of 8×8 tiles;
    `gaps`: column indices before which a wider gap is left; `row_pad`:
    pixels between rows (default `pad`). Returns (canvas, column x offsets)."""
    tiles = np.asarray(tiles, dtype=np.float64).reshape(-1, 8, 8)
    row_pad = pad if row_pad is None else row_pad
    col_x, x = [], pad
    for c in range(cols):
        if c in gaps:
            x += 3
        col_x.append(x)
        x += 8 + pad
    canvas = np.full((rows * (8 + row_pad) - row_pad + 2 * pad, x), PAD_VALUE)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        y = pad + r * (8 + row_pad)
        canvas[y:y + 8, col_x[c]:col_x[c] + 8] = t
    return canvas, col_x


def show_mosaic(ax, canvas):
    ax.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def row_centres(rows, pad=1, row_pad=None):
    row_pad = pad if row_pad is None else row_pad
    return [pad + r * (8 + row_pad) + 3.5 for r in range(rows)]


def fig_vae_samples(S, path):
    canvas, _ = mosaic(S, 5, 8)
    fig, ax = plt.subplots(figsize=(4.6, 3.3))
    show_mosaic(ax, canvas)
    ax.set_title(f"VAE: {len(S)} samples, z ~ N(0, I)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def fig_vae_interpolation(strips, ends, labels, path):
    """strips: list of (steps, 64); ends: list of (x_a, x_b); one row each."""
    steps = strips[0].shape[0]
    tiles = []
    for s, (a, b) in zip(strips, ends):
        tiles += [a, *s, b]
    cols = steps + 2
    canvas, col_x = mosaic(tiles, len(strips), cols, gaps=(1, cols - 1))
    fig, ax = plt.subplots(figsize=(7.2, 2.4))
    show_mosaic(ax, canvas)
    for y, (ca, cb) in zip(row_centres(len(strips)), labels):
        ax.text(-1.5, y, f"{ca}→{cb}", ha="right", va="center", fontsize=9)
    ax.text(col_x[0] + 4, -1.2, "x_a", ha="center", va="bottom", fontsize=8)
    ax.text(col_x[-1] + 4, -1.2, "x_b", ha="center", va="bottom", fontsize=8)
    ax.text((col_x[1] + col_x[-2] + 8) / 2, -1.2,
            f"decoded (1−t)·μ(x_a) + t·μ(x_b), t = 0 … 1 ({steps} steps)",
            ha="center", va="bottom", fontsize=8)
    ax.set_title("VAE: interpolation between held-out digits", fontsize=10, pad=14)
    fig.tight_layout()
    return save_figure(fig, path)


def fig_vae_loss(vae, test_nelbo, path):
    ep = np.arange(1, len(vae.loss_curve_) + 1)
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.plot(ep, vae.loss_curve_, label="total (−ELBO)", color="k")
    ax.plot(ep, vae.recon_curve_, label="reconstruction (BCE)", color="tab:blue")
    ax.plot(ep, vae.kl_curve_, label="KL(q(z|x) ‖ N(0, I))", color="tab:orange")
    ax.plot([ep[-1]], [test_nelbo], "o", color="tab:red", label="held-out −ELBO, trained")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per digit (training mean)")
    ax.set_ylim(0, None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("VAE on digits: training loss per epoch", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def fig_cvae_classes(rows_of_samples, accuracy, path):
    n_cols = rows_of_samples[0].shape[0]
    canvas, col_x = mosaic(np.vstack(rows_of_samples), len(rows_of_samples), n_cols)
    fig, ax = plt.subplots(figsize=(4.4, 4.9))
    show_mosaic(ax, canvas)
    for k, y in enumerate(row_centres(len(rows_of_samples))):
        ax.text(-1.5, y, f"y={k}", ha="right", va="center", fontsize=8)
        ax.text(col_x[-1] + 9.5, y, f"{100 * accuracy[k]:.0f}%", ha="left", va="center",
                fontsize=8)
    ax.text(col_x[-1] + 9.5, -1.2, "acc.", ha="left", va="bottom", fontsize=8)
    ax.set_title("Conditional VAE: 8 codes z (columns)\ndecoded under each label y (rows)",
                 fontsize=9, pad=12)
    fig.tight_layout()
    return save_figure(fig, path)


def fig_cvae_morph(strips, probs, pairs, path):
    steps = strips[0].shape[0]
    canvas, col_x = mosaic(np.vstack(strips), len(strips), steps, row_pad=4)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    show_mosaic(ax, canvas)
    ys = row_centres(len(strips), row_pad=4)
    for y, p, (a, b) in zip(ys, probs, pairs):
        ax.text(-1.5, y, f"{a}→{b}", ha="right", va="center", fontsize=9)
        for x, q in zip(col_x, p):
            ax.text(x + 4, y + 6.5, f"{q:.2f}", ha="center", va="center", fontsize=7,
                    color="tab:blue")
    w = np.linspace(0, 1, steps)
    for x, t in zip(col_x, w):
        ax.text(x + 4, -0.8, f"w={t:.2f}", ha="center", va="bottom", fontsize=6.5)
    ax.set_title("Conditional VAE at z = 0 under the label (1−w)·e_a + w·e_b\n"
                 "(blue: the classifier's P(b) for each image)", fontsize=9, pad=14)
    fig.tight_layout()
    return save_figure(fig, path)


def fig_gan_ring(real, snaps, summaries, path):
    n = len(snaps) + 1
    cols = 4 if n > 6 else (n + 1) // 2
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.4 * rows))
    axes = np.ravel(axes)
    lim = 3.2
    panels = [("real data", real, None)] + [(f"epoch {e}", S, summaries[e])
                                          for e, S in snaps.items()]
    for ax, (title, S, summ) in zip(axes, panels):
        inside = np.all(np.abs(S) <= lim, axis=1)
        ax.scatter(S[:, 0], S[:, 1], s=1.5, alpha=0.35, color="tab:blue", rasterized=True)
        ax.scatter(RING[:, 0], RING[:, 1], s=30, marker="x", color="tab:red", linewidths=1.2)
        for c in RING:
            ax.add_patch(plt.Circle(c, RING_RADIUS, fill=False, color="tab:red", lw=0.5,
                                    alpha=0.6))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        sub = ""
        if summ is not None:
            sub = f"\nnear {100 * summ['near_fraction']:.0f}%, modes {summ['modes_covered']}/8"
            if not inside.all():
                sub += f", {int((~inside).sum())} off-plot"
        ax.set_title(title + sub, fontsize=8)
    for ax in axes[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"GAN on a ring of 8 Gaussians: {N_RING_SAMPLES} samples at fixed latents "
                 f"(red: centres, radius-{RING_RADIUS} circles)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def moving_average(x, k):
    x = np.asarray(x, dtype=np.float64)
    if len(x) < k:
        return np.arange(len(x)), x
    c = np.convolve(x, np.ones(k) / k, mode="valid")
    return np.arange(k // 2, k // 2 + len(c)), c


def fig_gan_ring_loss(gan, steps_per_epoch, curve, path):
    d, g = gan.history_["d_loss"], gan.history_["g_loss"]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.0, 5.0), height_ratios=(3, 2))
    ax.plot(d, color="tab:blue", alpha=0.25, lw=0.5)
    ax.plot(g, color="tab:orange", alpha=0.25, lw=0.5)
    k = 5 * steps_per_epoch
    ax.plot(*moving_average(d, k), color="tab:blue", label="D loss (BCE on [real; fake])")
    ax.plot(*moving_average(g, k), color="tab:orange", label="G loss (−log D(G(z)))")
    ax.axhline(np.log(2), color="k", ls="--", lw=0.8, label="log 2 (D(x) = ½ everywhere)")
    ax.set_xlabel(f"step ({steps_per_epoch} per epoch); thick: mean over 5 epochs")
    ax.set_ylabel("loss (nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("GAN on the ring: losses per step", fontsize=10)
    ep = [e for e, _ in curve]
    ax2.plot(ep, [100 * s["near_fraction"] for _, s in curve], "o-", ms=3, color="tab:green",
             label=f"% of samples within {RING_RADIUS} of a centre")
    ax2.set_ylim(0, 105)
    ax2.set_ylabel("% near a centre", color="tab:green", fontsize=8)
    ax3 = ax2.twinx()
    ax3.step(ep, [s["modes_covered"] for _, s in curve], where="post", color="tab:purple")
    ax3.set_ylim(0, 8.5)
    ax3.set_ylabel("modes with ≥1% of samples", color="tab:purple", fontsize=8)
    ax2.set_xlabel("epoch")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def fig_gan_digits(snaps, path):
    epochs = list(snaps)
    n_cols = snaps[epochs[0]].shape[0]
    canvas, _ = mosaic(np.vstack([snaps[e] for e in epochs]), len(epochs), n_cols)
    fig, ax = plt.subplots(figsize=(7.4, 0.46 * len(epochs) + 0.6))
    show_mosaic(ax, canvas)
    for e, y in zip(epochs, row_centres(len(epochs))):
        ax.text(-1.5, y, f"epoch {e}", ha="right", va="center", fontsize=8)
    ax.set_title(f"GAN on digits: the same {n_cols} latents over training", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def fig_gan_digits_measures(by_epoch, fd_halves, path):
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.0, 3.2), width_ratios=(3, 2))
    shown = [e for e in ("10", "50", str(GAN_EPOCHS)) if e in by_epoch]
    width = 0.8 / len(shown)
    for i, e in enumerate(shown):
        counts = by_epoch[e]["class_counts"]
        ax.bar(np.arange(10) + (i - (len(shown) - 1) / 2) * width, counts, width,
               label=f"epoch {e}")
    ax.axhline(N_DIGIT_SAMPLES / 10, color="k", ls="--", lw=0.8, label="uniform")
    ax.set_xticks(range(10))
    ax.set_xlabel("class given by the classifier")
    ax.set_ylabel(f"of {N_DIGIT_SAMPLES} samples")
    ax.legend(fontsize=7)
    ax.set_title("GAN samples per class", fontsize=9)
    ep = sorted(int(e) for e in by_epoch)
    ax2.semilogy(ep, [by_epoch[str(e)]["frechet_distance"] for e in ep], "o-", ms=3,
                 label="real digits vs samples")
    ax2.axhline(fd_halves, color="k", ls="--", lw=0.8, label="real half vs real half")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("Fréchet distance (hidden features)")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=7)
    ax2.set_title("Fréchet distance over training", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------- parts
def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def latent_kl_per_dim(model, X, y=None):
    """Mean over rows of KL(N(μ_j, σ_j²) ‖ N(0, 1)) for each latent dimension j."""
    mu, logvar = (np.asarray(a, dtype=np.float64) for a in model.encode(X, y))
    return (-0.5 * (1 + logvar - mu ** 2 - np.exp(logvar))).mean(axis=0)


def part_vae(data, clf, seed, threads, figs):
    X_train, X_test, y_train, y_test = data
    kw = dict(VAE_KW, random_state=seed, n_threads=threads)
    untrained = VAE(**{**kw, "epochs": 0}).fit(X_train)
    vae, fit_s = timed(VAE(**kw).fit, X_train)
    before, after = untrained.negative_elbo(X_test), vae.negative_elbo(X_test)
    train_after = vae.negative_elbo(X_train)
    S = vae.sample(N_VAE_SAMPLES, random_state=0)
    # what the classifier makes of decoded codes: the held-out digits' μ, and samples
    recon_pred = clf.predict(vae.generate(vae.transform(X_test)))
    recon_ok = recon_pred == y_test
    S_many = vae.sample(N_DIGIT_SAMPLES, random_state=1)
    kl_dims = latent_kl_per_dim(vae, X_test)
    first = {k: int(np.flatnonzero(y_test == k)[0]) for k in range(10)}
    strips, ends = [], []
    for a, b in INTERPOLATION_CLASSES:
        xa, xb = X_test[first[a]], X_test[first[b]]
        strips.append(vae.interpolate(xa, xb, INTERPOLATION_STEPS))
        ends.append((xa, xb))
    files = [fig_vae_samples(S, os.path.join(figs, "vae-samples.png")),
             fig_vae_interpolation(strips, ends, INTERPOLATION_CLASSES,
                                   os.path.join(figs, "vae-interpolation.png")),
             fig_vae_loss(vae, after, os.path.join(figs, "vae-loss.png"))]
    return vae, {
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
        "held_out_negative_elbo": {"untrained": float(before), "trained": float(after),
                                   "fall_percent": float(100 * (before - after) / before)},
        "train_negative_elbo_trained": float(train_after),
        "final_epoch_loss": {"total": vae.loss_curve_[-1], "recon": vae.recon_curve_[-1],
                             "kl": vae.kl_curve_[-1]},
        "first_epoch_loss": {"total": vae.loss_curve_[0], "recon": vae.recon_curve_[0],
                             "kl": vae.kl_curve_[0]},
        "curves": {"loss": vae.loss_curve_, "recon": vae.recon_curve_, "kl": vae.kl_curve_},
        "samples_pixel_std_mean": float(S.std(axis=0).mean()),
        "decoded_mu_held_out_same_class": float(recon_ok.mean()),
        "decoded_mu_held_out_same_class_per_class": [float(recon_ok[y_test == k].mean())
                                                     for k in range(10)],
        "samples_class_counts": np.bincount(clf.predict(S_many), minlength=10).tolist(),
        "samples_mean_max_probability": float(clf.predict_proba(S_many).max(axis=1).mean()),
        "mid_gray_pixel_share": {"samples": mid_gray_share(S_many),
                                 "held_out_digits": mid_gray_share(X_test)},
        "held_out_mean_max_probability": float(clf.predict_proba(X_test).max(axis=1).mean()),
        "held_out_kl_per_latent_dim": kl_dims.tolist(),
        "latent_dims_with_kl_above_0.1": int((kl_dims > 0.1).sum()),
        "interpolation_test_indices": [[first[a], first[b]] for a, b in INTERPOLATION_CLASSES],
        "fit_seconds": fit_s,
        "figures": files,
    }


def part_cvae(data, clf, seed, threads, figs, vae_test_nelbo):
    X_train, X_test, y_train, y_test = data
    kw = dict(VAE_KW, random_state=seed, n_threads=threads)
    cvae, fit_s = timed(ConditionalVAE(**kw).fit, X_train, y_train)
    untrained = ConditionalVAE(**{**kw, "epochs": 0}).fit(X_train, y_train)
    acc, confusion = [], np.zeros((10, 10), dtype=int)
    for k in range(10):
        pred = clf.predict(cvae.sample(CVAE_PER_CLASS, y=k, random_state=1))
        acc.append(float((pred == k).mean()))
        confusion[k] = np.bincount(pred, minlength=10)
    # the figure: the same 8 codes (random_state=0) in every row
    rows = [cvae.sample(8, y=k, random_state=0) for k in range(10)]
    strips, probs, ends = [], [], []
    w = np.linspace(0, 1, MORPH_STEPS)
    for a, b in MORPH_PAIRS:
        P = np.zeros((MORPH_STEPS, 10))
        P[:, a], P[:, b] = 1 - w, w
        s = cvae.generate(np.zeros((MORPH_STEPS, VAE_KW["n_latent"])), P)
        p = clf.predict_proba(s)
        strips.append(s)
        probs.append(p[:, b])
        ends.append({"pair": [a, b], "p_a_at_start": float(p[0, a]),
                     "p_b_at_end": float(p[-1, b]), "p_b": p[:, b].tolist(),
                     "predicted": clf.predict(s).tolist()})
    files = [fig_cvae_classes(rows, acc, os.path.join(figs, "cvae-classes.png")),
             fig_cvae_morph(strips, probs, MORPH_PAIRS, os.path.join(figs, "cvae-morph.png"))]
    nelbo = float(cvae.negative_elbo(X_test, y_test))
    return {
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
        "held_out_kl_per_latent_dim": latent_kl_per_dim(cvae, X_test, y_test).tolist(),
        "samples_per_class": CVAE_PER_CLASS,
        "per_class_accuracy": acc,
        "mean_accuracy": float(np.mean(acc)),
        "confusion_rows_true_class": confusion.tolist(),
        "held_out_negative_elbo": {"untrained": float(untrained.negative_elbo(X_test, y_test)),
                                   "trained": nelbo, "unconditional_vae_trained": vae_test_nelbo},
        "morphs_at_z0": ends,
        "fit_seconds": fit_s,
        "figures": files,
    }


def part_gan_ring(seed, threads, figs):
    X = ring_mixture()
    kw = dict(RING_KW, random_state=seed, n_threads=threads)
    gan = GAN(**kw, epochs=0).fit(X)
    snaps, summaries, curve = {}, {}, []
    t0 = time.perf_counter()
    for e in range(GAN_EPOCHS + 1):
        if e > 0:
            gan.partial_fit(X)
        if e in RING_SNAPSHOTS or e % 10 == 0:
            S = gan.sample(N_RING_SAMPLES, random_state=0).astype(np.float64)
            summ = ring_summary(S)
            curve.append((e, summ))
            summaries[e] = summ
            if e in RING_SNAPSHOTS:
                snaps[e] = S
    train_s = time.perf_counter() - t0
    direct, direct_s = timed(GAN(**kw, epochs=GAN_EPOCHS).fit, X)
    same = bool(np.array_equal(direct.sample(N_RING_SAMPLES, random_state=0),
                               gan.sample(N_RING_SAMPLES, random_state=0)))
    steps_per_epoch = gan.epochs_[-1][1]
    d, g = np.array(gan.history_["d_loss"]), np.array(gan.history_["g_loss"])
    last = slice(-10 * steps_per_epoch, None)
    files = [fig_gan_ring(X[:N_RING_SAMPLES], snaps, summaries,
                          os.path.join(figs, "gan-ring.png")),
             fig_gan_ring_loss(gan, steps_per_epoch, curve,
                               os.path.join(figs, "gan-ring-loss.png"))]
    return {
        "params": {**{k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
                   "epochs": GAN_EPOCHS},
        "data": {"n": RING_N, "centres": "8 on a circle of radius 2", "sigma": RING_SIGMA,
                 "seed": 0},
        "near_radius": RING_RADIUS,
        "samples": N_RING_SAMPLES,
        "by_epoch": {str(e): s for e, s in curve},
        "final": summaries[GAN_EPOCHS],
        "steps_per_epoch": steps_per_epoch,
        "last_10_epochs_mean_loss": {"d": float(d[last].mean()), "g": float(g[last].mean())},
        "d_on_real_and_fake_final": {
            "real": float(gan.discriminate(X).mean()),
            "fake": float(gan.discriminate(gan.sample(N_RING_SAMPLES, random_state=0)).mean())},
        "partial_fit_equals_fit": same,
        "train_seconds_partial_fit_with_snapshots": train_s,
        "fit_seconds_direct": direct_s,
        "figures": files,
    }


def part_gan_digits(X, y, seed, threads, figs):
    clf, clf_s = timed(Classifier(**CLF_KW, random_state=seed, n_threads=threads).fit, X, y)
    F_real = hidden_features(clf, X)
    perm = np.random.default_rng(seed).permutation(len(X))
    half = len(X) // 2
    fd_halves = frechet_distance(F_real[perm[:half]], F_real[perm[half:]])
    kw = dict(DIGITS_GAN_KW, random_state=seed, n_threads=threads)
    gan = GAN(**kw, epochs=0).fit(X)
    by_epoch, fig_snaps, shown = {}, {}, {}
    t0 = time.perf_counter()
    for e in range(GAN_EPOCHS + 1):
        if e > 0:
            gan.partial_fit(X)
        if e in DIGITS_SNAPSHOTS or e % 10 == 0:
            S = gan.sample(N_DIGIT_SAMPLES, random_state=0)
            counts = np.bincount(clf.predict(S), minlength=10)
            by_epoch[str(e)] = {
                "class_counts": counts.tolist(),
                "frechet_distance": frechet_distance(F_real, hidden_features(clf, S)),
                "max_class_share": float(counts.max() / counts.sum()),
                "mid_gray_pixel_share": mid_gray_share(S),
                "mean_max_probability": float(clf.predict_proba(S).max(axis=1).mean())}
        if e in DIGITS_FIGURE_EPOCHS:
            fig_snaps[e] = gan.sample(16, random_state=2)
            shown[str(e)] = {"predicted": clf.predict(fig_snaps[e]).tolist(),
                             "max_probability": clf.predict_proba(fig_snaps[e]).max(axis=1)
                             .astype(np.float64).round(3).tolist()}
    train_s = time.perf_counter() - t0
    files = [fig_gan_digits(fig_snaps, os.path.join(figs, "gan-digits.png")),
             fig_gan_digits_measures(by_epoch, fd_halves,
                                     os.path.join(figs, "gan-digits-measures.png"))]
    final, start = by_epoch[str(GAN_EPOCHS)], by_epoch["0"]
    real_conf = float(clf.predict_proba(X).max(axis=1).mean())
    return {
        "params": {**{k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
                   "epochs": GAN_EPOCHS},
        "classifier": {"params": dict(CLF_KW, random_state=seed, n_threads=threads),
                       "trained_on": "all 1797 digits", "train_accuracy": float(clf.score(X, y)),
                       "mean_max_probability_on_real": real_conf, "fit_seconds": clf_s},
        "samples": N_DIGIT_SAMPLES,
        "class_counts_trained": final["class_counts"],
        "mid_gray_pixel_share": {"samples": final["mid_gray_pixel_share"],
                                 "real_digits": mid_gray_share(X)},
        "frechet_distance": {"trained": final["frechet_distance"],
                             "untrained": start["frechet_distance"],
                             "ratio_trained_untrained": final["frechet_distance"]
                             / start["frechet_distance"],
                             "real_half_vs_real_half": fd_halves,
                             "real_halves_rows": [half, len(X) - half]},
        "by_epoch": by_epoch,
        "figure_samples_classified": shown,
        "train_seconds_partial_fit_with_snapshots": train_s,
        "figures": files,
    }


# ----------------------------------------------------------------- main
def summary_rows(r):
    v, c, gr, gd = r["vae"], r["cvae"], r["gan_ring"], r["gan_digits"]
    e = v["held_out_negative_elbo"]
    rows = [
        ("VAE held-out −ELBO untrained (nats)", f"{e['untrained']:.2f}"),
        ("VAE held-out −ELBO trained (nats)", f"{e['trained']:.2f}"),
        ("VAE held-out −ELBO fall", f"{e['fall_percent']:.1f}%"),
        ("CVAE held-out −ELBO trained (nats)", f"{c['held_out_negative_elbo']['trained']:.2f}"),
        ("classifier held-out accuracy (real digits)",
         f"{100 * r['classifier']['held_out_accuracy']:.1f}%"),
        ("VAE decoded μ(held-out) judged its class",
         f"{100 * v['decoded_mu_held_out_same_class']:.1f}%"),
        ("VAE 1000 samples per class (classifier)",
         " ".join(str(n) for n in v["samples_class_counts"])),
        ("VAE latent dims with held-out KL > 0.1 nat", f"{v['latent_dims_with_kl_above_0.1']}/8"),
        ("CVAE samples judged their class, mean", f"{100 * c['mean_accuracy']:.1f}%"),
        ("CVAE per class 0..9 (%)",
         " ".join(f"{100 * a:.0f}" for a in c["per_class_accuracy"])),
        ("CVAE morphs P(a) start / P(b) end",
         ", ".join(f"{m['pair'][0]}→{m['pair'][1]} {m['p_a_at_start']:.2f}/{m['p_b_at_end']:.2f}"
                   for m in c["morphs_at_z0"])),
    ]
    for ep in ("0", "10", "50", str(GAN_EPOCHS)):
        s = gr["by_epoch"][ep]
        rows.append((f"ring GAN epoch {ep}: modes / near",
                     f"{s['modes_covered']}/8, {100 * s['near_fraction']:.1f}%"))
    rows.append((f"ring GAN epoch {GAN_EPOCHS}: samples per mode",
                 " ".join(str(n) for n in gr["final"]["per_mode"])))
    rows.append(("ring GAN partial_fit == fit", str(gr["partial_fit_equals_fit"])))
    fd = gd["frechet_distance"]
    rows += [
        ("digits GAN class counts (1000)", " ".join(str(n) for n in gd["class_counts_trained"])),
        ("digits GAN Fréchet trained", f"{fd['trained']:.2f}"),
        ("digits GAN Fréchet untrained", f"{fd['untrained']:.2f}"),
        ("digits GAN Fréchet trained/untrained", f"{fd['ratio_trained_untrained']:.4f}"),
        ("Fréchet real half vs real half", f"{fd['real_half_vs_real_half']:.2f}"),
    ]
    for ep in map(str, DIGITS_SNAPSHOTS):
        s = gd["by_epoch"][ep]
        rows.append((f"digits GAN epoch {ep}: Fréchet / top class share",
                     f"{s['frechet_distance']:.2f} / {100 * s['max_class_share']:.1f}%"))
    return rows


def print_summary(rows, walls):
    w = max(len(k) for k, _ in rows)
    print()
    for k, val in rows:
        print(f"{k.ljust(w)} | {val}")
    print("wall seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in walls.items()))


def main(argv=None):
    today = datetime.date.today().isoformat()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0,
                   help="random_state of every model (default 0); the data split and the "
                        "ring data are fixed")
    p.add_argument("--figures", default=os.path.join(_common.REPO, "docs", "figures"),
                   help="folder for the PNG figures (default docs/figures)")
    p.add_argument("--out-json", default=_common.default_out_path("generative", today),
                   help="JSON report (default bench/results/generative-<YYYY-MM-DD>.json)")
    p.add_argument("--threads", type=int, default=1,
                   help="n_threads of every estimator (default 1)")
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    os.makedirs(args.figures, exist_ok=True)

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    data = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)

    walls, report = {}, {}
    counters, start = _common.cpu_counters(), time.perf_counter()
    t = time.perf_counter()
    clf = Classifier(**CLF_KW, random_state=args.seed, n_threads=args.threads).fit(
        data[0], data[2])
    report["classifier"] = {"params": dict(CLF_KW, random_state=args.seed,
                                           n_threads=args.threads),
                            "trained_on": "training split",
                            "held_out_accuracy": float(clf.score(data[1], data[3])),
                            "fit_seconds": time.perf_counter() - t, "figures": []}
    walls["classifier"] = time.perf_counter() - t
    t = time.perf_counter()
    _, report["vae"] = part_vae(data, clf, args.seed, args.threads, args.figures)
    walls["vae"] = time.perf_counter() - t
    t = time.perf_counter()
    report["cvae"] = part_cvae(data, clf, args.seed, args.threads, args.figures,
                               report["vae"]["held_out_negative_elbo"]["trained"])
    walls["cvae"] = time.perf_counter() - t
    t = time.perf_counter()
    report["gan_ring"] = part_gan_ring(args.seed, args.threads, args.figures)
    walls["gan_ring"] = time.perf_counter() - t
    t = time.perf_counter()
    report["gan_digits"] = part_gan_digits(X, y, args.seed, args.threads, args.figures)
    walls["gan_digits"] = time.perf_counter() - t
    walls["total"] = time.perf_counter() - start
    foreign = _common.foreign_load(counters, _common.cpu_counters(), walls["total"])

    rows = summary_rows(report)
    print_summary(rows, walls)
    out = {
        "date": today,
        "command": "PYTHONPATH=python python bench/generative.py "
                   + " ".join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed,
        "threads": args.threads,
        "data": {"digits": "sklearn load_digits / 16, stratified 75/25 split, random_state=0",
                 "train_rows": len(data[0]), "test_rows": len(data[1])},
        "summary": dict(rows),
        "wall_seconds": walls,
        "foreign_cpus_during_run": foreign,
        "machine": _common.machine_info(),
        "versions": {"fusedae": fusedae.__version__, "numpy": np.__version__,
                     "matplotlib": matplotlib.__version__},
        **report,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out_json)), exist_ok=True)
    text = json.dumps(_common.finite_json(out), indent=1, default=str, allow_nan=False)
    write_atomically(args.out_json, (text + "\n").encode())
    os.chmod(args.out_json, 0o644)
    print(f"\nwrote {args.out_json}")
    for part in report.values():
        for f in part["figures"]:
            print(f"wrote {f}")


if __name__ == "__main__":
    main()
