"""The tutorial's script: every model of docs/tutorial.md, its figures and its numbers.

Run from the repository root, with fusedae installed (``pip install ".[plot,images]"``)::

    python docs/tutorial.py

It trains every model of the tutorial in the order of the chapter, writes the
figures into ``docs/figures/tutorial/`` and a JSON file of every number it prints
into ``bench/results/tutorial-<YYYY-MM-DD>.json``. Every random choice is fixed
(``random_state=0`` everywhere, NumPy generators with fixed seeds), so a rerun
gives the same numbers, apart from the timings. The code of each section is the
code shown in the tutorial; only the printing, the JSON and two small figure
helpers (``image_rows``, ``rho_bars``) are extra.
"""
import datetime
import json
import os
import platform
import time

# numpy, sklearn and fusedae are imported in section 0, as the tutorial shows them.

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIG_DIR = os.path.join(HERE, "figures", "tutorial")
RESULTS = os.path.join(REPO, "bench", "results")

REPORT = {}      # every number printed, by section
SECONDS = {}     # wall time of each section


def record(section, **numbers):
    """Print numbers and keep them for the JSON report."""
    REPORT.setdefault(section, {}).update(numbers)
    for key, value in numbers.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list) and value and isinstance(value[0], float):
            value = "[" + ", ".join(f"{x:.3g}" for x in value) + "]"
        print(f"  {key}: {value}")


def section(name):
    """Start timing a section."""
    print(f"\n== {name}", flush=True)
    SECONDS[name] = time.perf_counter()


def done(name):
    SECONDS[name] = time.perf_counter() - SECONDS[name]


def to_builtin(x):
    """NumPy scalars and arrays as plain Python, for JSON."""
    if isinstance(x, dict):
        return {str(k): to_builtin(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_builtin(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_builtin(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    return x


# ------------------------------------------------------------------ figure helpers
def image_rows(rows, row_labels, title, path, *, col_labels=None, bottom_labels=None,
               note=None):
    """Rows of 8×8 images (ink black on white, values in [0, 1]) with a label per row;
    ``col_labels`` go above the first row, ``bottom_labels`` under the last."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    tile, left = 0.62, 1.2                                   # inches
    top = 0.35 + (0.2 if note else 0) + (0.18 if col_labels else 0)
    bottom = 0.25 if bottom_labels else 0.05
    width, height = tile * n_cols + left + 0.1, tile * n_rows + top + bottom
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(n_rows, n_cols, left=left / width, right=1 - 0.1 / width,
                            top=1 - top / height, bottom=bottom / height,
                            wspace=0.08, hspace=0.12)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(np.clip(np.asarray(image, float).reshape(8, 8), 0, 1), cmap="gray_r",
                      vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col_labels is not None:
                ax.set_title(col_labels[c], fontsize=7, pad=2)
            if r == n_rows - 1 and bottom_labels is not None:
                ax.set_xlabel(bottom_labels[c], fontsize=7, labelpad=2)
    fig.text(0.5, 1 - 0.08 / height, title, ha="center", va="top", fontsize=10)
    if note:
        fig.text(0.5, 1 - 0.33 / height, note, ha="center", va="top", fontsize=7.5,
                 color="0.3")
    fig.savefig(path, dpi=100, facecolor="white")


def rho_bars(rho_sparse, rho_plain, rho, path):
    """Mean activation ρ̂ of every code unit, with and without the sparsity term."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    units = np.arange(len(rho_sparse))
    ax.bar(units - 0.2, np.sort(rho_plain)[::-1], width=0.4, color="0.6",
           label="Autoencoder (no sparsity term)")
    ax.bar(units + 0.2, np.sort(rho_sparse)[::-1], width=0.4, color="tab:blue",
           label="SparseAutoencoder (β = 3)")
    ax.axhline(rho, color="tab:red", ls="--", lw=1, label=f"target ρ = {rho}")
    ax.set_xlabel("code unit (each model's units sorted by ρ̂)", fontsize=9)
    ax.set_ylabel("ρ̂: mean activation on\nthe training digits", fontsize=9)
    ax.set_ylim(0, 1)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8)
    ax.set_title("Mean activation of each of the 49 code units", fontsize=10)
    fig.savefig(path, dpi=100, facecolor="white")


# ------------------------------------------------------------------ the sections
t_start, cpu_start = time.perf_counter(), time.process_time()
os.chdir(REPO)                  # the figure paths below are relative to the repository
os.makedirs(FIG_DIR, exist_ok=True)
os.makedirs(RESULTS, exist_ok=True)

# ---------------------------------------------------------------- 0. data
section("0 data")
# --8<-- [start:data]
import os

import numpy as np
from sklearn.model_selection import train_test_split

import fusedae
from fusedae import plot
from fusedae.datasets import load_digits

FIG = "docs/figures/tutorial"
os.makedirs(FIG, exist_ok=True)
X, y = load_digits()          # 1797 digits, 8×8 pixels scaled to [0, 1], labels 0..9
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0)
# --8<-- [end:data]
record("data", n_train=len(X_train), n_test=len(X_test), n_features=X.shape[1])
done("0 data")

# ---------------------------------------------------------- 1. autoencoder
section("1 autoencoder")
# --8<-- [start:autoencoder]
ae = fusedae.Autoencoder(16, activation="sigmoid", output_activation="sigmoid",
                         loss="squared_error", learning_rate=1e-2, epochs=200,
                         random_state=0).fit(X_train)
print(ae.reconstruction_error(X_train), ae.reconstruction_error(X_test))
plot.reconstructions(ae, X_test, n=12, path=f"{FIG}/ae-reconstructions.png")
plot.loss_curves(ae, path=f"{FIG}/ae-loss.png")
# --8<-- [end:autoencoder]
# --8<-- [start:baselines]
from sklearn.decomposition import PCA

def mean_sq_error(X_hat, X):
    return 0.5 * np.sum((X_hat - X) ** 2) / len(X)      # eq. 22, averaged over rows

mean_image = mean_sq_error(X_train.mean(axis=0), X_test)    # predict the mean digit
pca16 = PCA(16).fit(X_train)
pca_error = mean_sq_error(pca16.inverse_transform(pca16.transform(X_test)), X_test)
# --8<-- [end:baselines]
record("1_autoencoder",
       train_error=ae.reconstruction_error(X_train),
       test_error=ae.reconstruction_error(X_test),
       mean_image_test_error=mean_image, pca16_test_error=pca_error,
       first_epoch_loss=ae.loss_curve_[0], last_epoch_loss=ae.loss_curve_[-1],
       epochs=ae.n_iter_)

# --8<-- [start:save]
import tempfile

path = os.path.join(tempfile.mkdtemp(), "ae16.fusedae")
ae.save(path)
same = fusedae.load(path)
print(np.array_equal(same.predict(X_test), ae.predict(X_test)))       # True
# --8<-- [end:save]
record("1_autoencoder", saved_bytes=os.path.getsize(path),
       loaded_predicts_identically=bool(np.array_equal(same.predict(X_test),
                                                       ae.predict(X_test))))
done("1 autoencoder")

# ------------------------------------------------------------------ 2. PCA
section("2 linear autoencoder = PCA")
# --8<-- [start:pca]
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

linear = fusedae.Autoencoder(8, activation="identity", output_activation="identity",
                             optimizer="lbfgs", epochs=500, dtype="float64",
                             random_state=0).fit(X_train)
pca = PCA(8).fit(X_train)
decoder = linear.coefs_[1]                  # 8 × 64: the rows span the code's image
cosines = np.cos(subspace_angles(decoder.T, pca.components_.T))
ratio = linear.reconstruction_error(X_train) / mean_sq_error(
    pca.inverse_transform(pca.transform(X_train)), X_train)
print(cosines.round(4), ratio)
# --8<-- [end:pca]
rows = decoder / np.linalg.norm(decoder, axis=1, keepdims=True)
gram = rows @ rows.T
best_match = np.abs(rows @ pca.components_.T).max(axis=1)
pca_test = mean_sq_error(pca.inverse_transform(pca.transform(X_test)), X_test)
record("2_pca",
       subspace_cosines=sorted(cosines.tolist()),
       error_ratio_train=ratio,
       error_ratio_test=linear.reconstruction_error(X_test) / pca_test,
       pca8_train_error=mean_sq_error(pca.inverse_transform(pca.transform(X_train)),
                                      X_train),
       lbfgs_iterations=linear.n_iter_,
       decoder_rows_largest_abs_cosine_between_rows=float(
           np.abs(gram - np.eye(8)).max()),
       decoder_rows_best_abs_cosine_with_a_pca_component=sorted(best_match.tolist()))
done("2 linear autoencoder = PCA")

# --------------------------------------------------------------- 3. sparsity
section("3a sparsity on digits")
# --8<-- [start:sparse]
sparse = fusedae.SparseAutoencoder(49, sparsity_target=0.05, sparsity_weight=3.0,
                                   weight_decay=1e-3, learning_rate=3e-3, epochs=300,
                                   random_state=0).fit(X_train)
plain = fusedae.Autoencoder(49, weight_decay=1e-3, learning_rate=3e-3, epochs=300,
                            random_state=0).fit(X_train)
print(sparse.mean_activation_.mean(), plain.mean_activation_.mean())
plot.feature_grid(sparse, path=f"{FIG}/sparse-digits-features.png")
# --8<-- [end:sparse]
rho_bars(sparse.mean_activation_, plain.mean_activation_, 0.05,
         f"{FIG}/sparse-digits-rho.png")
code_s, code_p = sparse.transform(X_test), plain.transform(X_test)
record("3a_sparse_digits",
       rho=0.05,
       rho_hat_mean_sparse=float(sparse.mean_activation_.mean()),
       rho_hat_min_sparse=float(sparse.mean_activation_.min()),
       rho_hat_max_sparse=float(sparse.mean_activation_.max()),
       mean_abs_rho_hat_minus_rho_sparse=float(np.abs(sparse.mean_activation_ - 0.05)
                                               .mean()),
       rho_hat_mean_plain=float(plain.mean_activation_.mean()),
       rho_hat_min_plain=float(plain.mean_activation_.min()),
       rho_hat_max_plain=float(plain.mean_activation_.max()),
       test_units_above_half_per_digit_sparse=float((code_s > 0.5).sum(1).mean()),
       test_units_above_half_per_digit_plain=float((code_p > 0.5).sum(1).mean()),
       test_largest_unit_mean_sparse=float(code_s.max(1).mean()),
       test_largest_unit_share_of_code_sum_sparse=float((code_s.max(1)
                                                         / code_s.sum(1)).mean()),
       test_largest_unit_share_of_code_sum_plain=float((code_p.max(1)
                                                        / code_p.sum(1)).mean()),
       test_error_sparse=sparse.reconstruction_error(X_test),
       test_error_plain=plain.reconstruction_error(X_test))
# Each unit's mean activation on the held-out digits of each class.
by_class = np.stack([code_s[y_test == k].mean(axis=0) for k in range(10)])    # 10 × 49
record("3a_sparse_digits",
       unit_preferred_class=by_class.argmax(axis=0).tolist(),
       unit_mean_on_preferred_class=by_class.max(axis=0).tolist(),
       unit_mean_on_other_classes_max=np.sort(by_class, axis=0)[-2].tolist())
# Why the weight decay: without it, the largest weight of a unit tends to sit on a
# border pixel that is 0 in nearly every digit.
no_decay = fusedae.SparseAutoencoder(49, sparsity_target=0.05, sparsity_weight=3.0,
                                     learning_rate=3e-3, epochs=300,
                                     random_state=0).fit(X_train)
rare = (X_train == 0).mean(axis=0) >= 0.95


def units_peaking_on_rare_pixels(model):
    W = model.coefs_[0] - model.coefs_[0].mean(axis=0)
    return int(rare[np.abs(W).argmax(axis=0)].sum())


record("3a_sparse_digits",
       pixels_zero_in_every_training_digit=int(((X_train == 0).mean(axis=0) == 1).sum()),
       pixels_zero_in_at_least_95pct=int(rare.sum()),
       units_largest_weight_on_such_pixel_decay_1e_3=units_peaking_on_rare_pixels(sparse),
       units_largest_weight_on_such_pixel_no_decay=units_peaking_on_rare_pixels(no_decay))
done("3a sparsity on digits")

section("3b UFLDL natural-image patches")
# --8<-- [start:patches]
import time

from fusedae.datasets import load_image_patches

patches = load_image_patches(10000, 8, random_state=0)   # 10000 × 64, in [0.1, 0.9]
ufldl = dict(sparsity_target=0.01, sparsity_weight=3.0, weight_decay=1e-4,
             activation="sigmoid", output_activation="sigmoid", loss="squared_error",
             random_state=0)
t0 = time.perf_counter()
edges = fusedae.SparseAutoencoder(25, optimizer="lbfgs", epochs=400, **ufldl).fit(patches)
t1 = time.perf_counter()
adam = fusedae.SparseAutoencoder(25, optimizer="adam", learning_rate=3e-3, epochs=300,
                                 **ufldl).fit(patches)
t2 = time.perf_counter()
for model in (edges, adam):
    objective = model.loss_and_gradient(patches)[0]     # eq. 23 + decay, full batch
    print(objective, model.reconstruction_error(patches), model.mean_activation_.mean())
print(t1 - t0, t2 - t1)                                  # seconds
plot.feature_grid(edges, path=f"{FIG}/patches-features-lbfgs.png")
plot.feature_grid(adam, path=f"{FIG}/patches-features-adam.png")
# --8<-- [end:patches]
t_lbfgs, t_adam = t1 - t0, t2 - t1
mean_patch = mean_sq_error(patches.mean(axis=0), patches)
pca25 = PCA(25).fit(patches)
for name, model, secs in (("lbfgs_400", edges, t_lbfgs), ("adam_300_epochs", adam, t_adam)):
    record(f"3b_patches_{name}",
           objective=model.loss_and_gradient(patches)[0],
           reconstruction_error=model.reconstruction_error(patches),
           rho_hat_mean=float(model.mean_activation_.mean()),
           mean_abs_rho_hat_minus_rho=float(np.abs(model.mean_activation_ - 0.01).mean()),
           iterations=model.n_iter_, fit_seconds=secs)
record("3b_patches", mean_patch_error=mean_patch,
       pca25_error=mean_sq_error(pca25.inverse_transform(pca25.transform(patches)),
                                 patches),
       lbfgs_message=str(edges.lbfgs_result_.message))
done("3b UFLDL natural-image patches")

# -------------------------------------------------------------- 4. denoising
section("4 denoising")
# --8<-- [start:denoising]
dae = fusedae.DenoisingAutoencoder(64, noise="gaussian", noise_level=0.3,
                                   learning_rate=3e-3, epochs=100,
                                   random_state=0).fit(X_train)
noisy = X_test + 0.3 * np.random.default_rng(1).standard_normal(X_test.shape)
ratio = mean_sq_error(dae.predict(noisy), X_test) / mean_sq_error(noisy, X_test)
print(ratio)
plot.denoising(dae, X_test, n=12, random_state=1, path=f"{FIG}/denoising.png")
# --8<-- [end:denoising]
# Control: the same network trained on clean digits only.
control = fusedae.Autoencoder(64, learning_rate=3e-3, epochs=100,
                              random_state=0).fit(X_train)
record("4_denoising",
       noisy_error=mean_sq_error(noisy, X_test),
       denoised_error=mean_sq_error(dae.predict(noisy), X_test),
       ratio_denoised_to_noisy=ratio,
       clean_input_error=mean_sq_error(dae.predict(X_test), X_test),
       control_trained_clean_ratio=mean_sq_error(control.predict(noisy), X_test)
       / mean_sq_error(noisy, X_test),
       control_clean_input_error=mean_sq_error(control.predict(X_test), X_test),
       section1_ae16_ratio=mean_sq_error(ae.predict(noisy), X_test)
       / mean_sq_error(noisy, X_test))
done("4 denoising")

# -------------------------------------------------------------- 5. categories
section("5 categories")
# --8<-- [start:categories]
from fusedae import categories

report = categories.category_report(random_state=0)
print(categories.format_report(report))
# --8<-- [end:categories]
REPORT["5_categories"] = {"rows": report["rows"], "params": report["params"]}
done("5 categories")

# ----------------------------------------------------- 6. classifier, generator
section("6 classifier and generator")
# --8<-- [start:classifier]
clf = fusedae.Classifier(64, epochs=100, random_state=0).fit(X_train, y_train)
print(clf.score(X_test, y_test))                           # accuracy
stopped = fusedae.Classifier(64, epochs=500, early_stopping=True, validation_fraction=0.2,
                             n_iter_no_change=30, random_state=0).fit(X_train, y_train)
print(stopped.n_iter_, stopped.best_validation_score_, stopped.score(X_test, y_test))
plot.loss_curves(stopped, path=f"{FIG}/classifier-early-stopping.png")
# --8<-- [end:classifier]
record("6_classifier",
       test_accuracy_100_epochs=clf.score(X_test, y_test),
       train_accuracy_100_epochs=clf.score(X_train, y_train),
       early_stopping_epochs_run=stopped.n_iter_,
       early_stopping_best_epoch=int(np.argmax(stopped.validation_scores_) + 1),
       early_stopping_best_held_out_accuracy=stopped.best_validation_score_,
       early_stopping_test_accuracy=stopped.score(X_test, y_test))
hasty = fusedae.Classifier(64, epochs=500, early_stopping=True,
                           random_state=0).fit(X_train, y_train)   # 10 %, patience 10
record("6_classifier",
       default_early_stopping_epochs_run=hasty.n_iter_,
       default_early_stopping_best_epoch=int(np.argmax(hasty.validation_scores_) + 1),
       default_early_stopping_best_held_out_accuracy=hasty.best_validation_score_,
       default_early_stopping_test_accuracy=hasty.score(X_test, y_test),
       default_early_stopping_held_out_accuracy_per_epoch=hasty.validation_scores_,
       early_stopping_held_out_accuracy_per_epoch=stopped.validation_scores_)

# --8<-- [start:generator]
gen = fusedae.Generator(64, output_activation="sigmoid", random_state=0).fit(X_train,
                                                                           y_train)
typical = gen.generate(np.arange(10))                      # one signal per label
means = np.stack([X_train[y_train == k].mean(axis=0) for k in range(10)])
w = np.linspace(0, 1, 10)
soft = np.zeros((10, 10))
soft[:, 3], soft[:, 8] = 1 - w, w                          # from "3" to "8"
between = gen.generate(soft)
# --8<-- [end:generator]
image_rows([typical, means, between],
           ["generate(k)", "class mean", "soft label\n3 → 8"],
           "Generator: label → typical signal (Fig. 2)",
           f"{FIG}/generator.png",
           col_labels=[f"k={k}" for k in range(10)],
           bottom_labels=[f"w={x:.2f}" for x in w],
           note="rows 1–2: the labels k = 0..9 (top); row 3: the soft label "
                "(1 − w)·e₃ + w·e₈ (w below)")
d = np.linalg.norm(typical[:, None, :] - means[None], axis=-1)
off = d[~np.eye(10, dtype=bool)].reshape(10, 9).min(axis=1)
t = (between - means[3]) @ (means[8] - means[3]) / np.sum((means[8] - means[3]) ** 2)
record("6_generator",
       nearest_class_mean_is_own=bool(np.all(d.argmin(axis=1) == np.arange(10))),
       distance_to_own_mean=np.diag(d).tolist(),
       distance_to_nearest_other_mean=off.tolist(),
       soft_3_to_8_projection_on_mean3_to_mean8=t.tolist(),
       soft_3_to_8_classified_as=clf.predict(between).tolist(),
       generated_classified_as=clf.predict(typical).tolist())
done("6 classifier and generator")

# ------------------------------------------------------------------- 7. VAE
section("7 VAE")
# --8<-- [start:vae]
vae = fusedae.VAE(8, (64,), learning_rate=3e-3, epochs=100, random_state=0).fit(X_train)
untrained = fusedae.VAE(8, (64,), epochs=0, random_state=0).fit(X_train)
print(untrained.negative_elbo(X_test), vae.negative_elbo(X_test))   # nats per digit
plot.samples(vae, 40, path=f"{FIG}/vae-samples.png")
first = {k: X_test[y_test == k][0] for k in range(10)}   # first held-out digit of each class
plot.interpolation(vae, first[6], first[9], steps=10, path=f"{FIG}/vae-interpolation.png")
plot.loss_curves(vae, path=f"{FIG}/vae-loss.png")

cvae = fusedae.ConditionalVAE(8, (64,), learning_rate=3e-3, epochs=100,
                              random_state=0).fit(X_train, y_train)
plot.class_samples(cvae, 8, path=f"{FIG}/cvae-classes.png")
judged = [float(np.mean(clf.predict(cvae.sample(100, y=k, random_state=k)) == k))
          for k in range(10)]                             # the classifier of § 6 as judge
print(cvae.negative_elbo(X_test, y_test), judged)
# --8<-- [end:vae]
mu, logvar = vae.encode(X_test)
kl_dim = (-0.5 * (1 + logvar - mu ** 2 - np.exp(logvar))).mean(axis=0)
vae_samples = vae.sample(1000, random_state=0)
record("7_vae",
       held_out_neg_elbo_untrained=untrained.negative_elbo(X_test),
       held_out_neg_elbo_trained=vae.negative_elbo(X_test),
       train_neg_elbo_trained=vae.negative_elbo(X_train),
       last_epoch_recon=vae.recon_curve_[-1], last_epoch_kl=vae.kl_curve_[-1],
       first_epoch_recon=vae.recon_curve_[0], first_epoch_kl=vae.kl_curve_[0],
       held_out_kl_per_latent_dim=sorted(kl_dim.tolist(), reverse=True),
       latent_dims_with_kl_above_0_1=int((kl_dim > 0.1).sum()),
       decoded_mu_classified_as_own_class=float(np.mean(
           clf.predict(vae.generate(mu)) == y_test)),
       samples_1000_class_counts=np.bincount(clf.predict(vae_samples),
                                             minlength=10).tolist(),
       interpolation_path_classified_as=clf.predict(
           vae.interpolate(first[6], first[9], 10)).tolist(),
       interpolation_2_to_7_classified_as=clf.predict(
           vae.interpolate(first[2], first[7], 10)).tolist(),
       first_held_out_digits_decoded_mu_read_as=clf.predict(
           vae.generate(vae.transform(np.stack([first[k] for k in range(10)])))).tolist())
record("7_cvae",
       held_out_neg_elbo=cvae.negative_elbo(X_test, y_test),
       samples_judged_own_class=[float(j) for j in judged])
done("7 VAE")

# ------------------------------------------------------------------- 8. GAN
section("8 GAN")
# --8<-- [start:gan]
gan = fusedae.GAN(n_latent=16, g_hidden=(128,), d_hidden=(128,), g_learning_rate=1e-3,
                  d_learning_rate=1e-3, epochs=0, random_state=0).fit(X)
snapshots = {0: gan.sample(12, random_state=0)}
for epoch in range(1, 201):
    gan.partial_fit(X)                                   # one alternating epoch
    if epoch in (10, 25, 50, 100, 200):
        snapshots[epoch] = gan.sample(12, random_state=0)
plot.loss_curves(gan, path=f"{FIG}/gan-loss.png")
fake = gan.sample(1000, random_state=1)
print(np.bincount(clf.predict(fake), minlength=10))      # which digits it draws
# --8<-- [end:gan]
image_rows(list(snapshots.values()), [f"epoch {e}" for e in snapshots],
           "GAN: the same 12 latent codes z decoded during training",
           f"{FIG}/gan-samples.png",
           bottom_labels=[f"read as {k}" for k in clf.predict(snapshots[200])],
           note="under the last row: the digit the classifier of section 6 reads")

def hidden(A):                # the classifier's 64 ReLU features
    W, b = clf.coefs_[0], clf.intercepts_[0]
    return np.maximum(A @ W + b, 0)

from fusedae.metrics import frechet_distance
untrained_gan = fusedae.GAN(n_latent=16, g_hidden=(128,), d_hidden=(128,), epochs=0,
                            random_state=0).fit(X)
d_loss, g_loss = np.array(gan.history_["d_loss"]), np.array(gan.history_["g_loss"])
steps = gan.epochs_[-1][1]
record("8_gan",
       epochs=gan.n_iter_, steps_per_epoch=steps,
       samples_1000_class_counts=np.bincount(clf.predict(fake), minlength=10).tolist(),
       frechet_trained=frechet_distance(hidden(X), hidden(fake)),
       frechet_untrained=frechet_distance(hidden(X),
                                          hidden(untrained_gan.sample(1000,
                                                                      random_state=1))),
       frechet_train_vs_test_digits=frechet_distance(hidden(X_train), hidden(X_test)),
       last_10_epochs_mean_d_loss=float(d_loss[-10 * steps:].mean()),
       last_10_epochs_mean_g_loss=float(g_loss[-10 * steps:].mean()),
       d_on_real_mean=float(gan.discriminate(X).mean()),
       d_on_fake_mean=float(gan.discriminate(fake).mean()),
       snapshot_classified_as={str(e): clf.predict(S).tolist()
                               for e, S in snapshots.items()})
done("8 GAN")

total = time.perf_counter() - t_start
date = datetime.date.today().isoformat()
out = {
    "command": "python docs/tutorial.py",
    "date": date,
    "wall_seconds_total": total,
    "cpu_seconds_total": time.process_time() - cpu_start,
    "wall_seconds_by_section": SECONDS,
    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                "platform": platform.platform()},
    "versions": {"fusedae": fusedae.__version__, "numpy": np.__version__},
    "results": REPORT,
}
path = os.path.join(RESULTS, f"tutorial-{date}.json")
with open(path + ".tmp", "w") as f:
    json.dump(to_builtin(out), f, indent=1)
os.replace(path + ".tmp", path)
print("\nsections: " + ", ".join(f"{k} {v:.1f} s" for k, v in SECONDS.items()))
print(f"total {total:.1f} s wall, {out['cpu_seconds_total']:.1f} s CPU; "
      f"numbers in {os.path.relpath(path, REPO)}, figures in {os.path.relpath(FIG_DIR, REPO)}/")

