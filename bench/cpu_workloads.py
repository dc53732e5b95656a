"""The workloads of ``bench/cpu.py --all``: shapes, hyper-parameters, data,
initial parameters, the deterministic streams of the correctness checks and
the flop count of one step. Shared by the controller (names, flops) and by
every implementation (bench/peers_*.py), so that they all train the same
model on the same data from the same start.

Only the standard library is imported at module level; NumPy and fusedae are
imported by the functions that need them (a worker pins itself to its CPUs
before importing anything heavy).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DATA_SEED = 1234
PARAM_SEED = 0   # reference init (sparse AE) and engine Philox seed
CHECK_RTOL = 1e-3

# ---------------------------------------------------------------- sparse AE
RHO, BETA, SPARSE_LR = 0.05, 3.0, 0.1
SPARSE = {
    "W-tiny": {"D": 64, "N": 16, "B": 64},
    "W-mnist": {"D": 784, "N": 196, "B": 256},
    "W-wide": {"D": 1024, "N": 1024, "B": 1024},
}
SPARSE_CHECK_STEPS = 5

# --------------------------------------------------------------------- VAE
# The model of bench/vae_torch.py (the engine's VAE with the estimator's
# defaults): encoder D-H-2Z (ReLU, linear [mu | log var]), decoder Z-H-D
# (ReLU, sigmoid), BCE from the logits + Gaussian KL, Adam (PyTorch
# convention), float32, no weight decay.
VAE = {"VAE": {"D": 784, "H": 400, "Z": 20, "B": 128}}
VAE_ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
VAE_CHECK_STEPS = 5

# --------------------------------------------------------------------- GAN
# fusedae.GAN's defaults: G relu hidden, sigmoid output; D leaky_relu (0.01)
# hidden, one logit; non-saturating G loss; Adam lr 2e-4 for both, beta1 0.5,
# beta2 0.999, eps 1e-8. One step = one D step (real batch + as many fresh
# fakes, BCE over the 2B stacked rows) then one G step (B fresh latents,
# -log D(G(z)) through the frozen, just updated D).
GAN = {"GAN": {"Z": 100, "G": 256, "D": 784, "H": 256, "B": 64}}
GAN_ADAM = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "eps": 1e-8}
LEAKY_SLOPE = 0.01
GAN_CHECK_STEPS = 5

# ------------------------------------------------------------------ epochs
EPOCH_ROWS, EPOCH_SHAPE = 10240, SPARSE["W-mnist"]
EPOCH = {
    "E-inorder": {"shuffle": False, "noise": "none", "level": 0.0},
    "E-shuffled": {"shuffle": True, "noise": "none", "level": 0.0},
    "E-gaussian": {"shuffle": True, "noise": "gaussian", "level": 0.3},
}
EPOCH_CHECK_EPOCHS = 2
# Peak memory of a fit: 2 shuffled epochs without noise.
MEMORY = {"M-fit": {"epochs": 2, "shuffle": True, "noise": "none", "level": 0.0}}

FAMILIES = {
    "sparse": list(SPARSE),
    "vae": list(VAE),
    "gan": list(GAN),
    "epoch": list(EPOCH),
    "memory": list(MEMORY),
}
FAMILY_TITLES = {
    "sparse": "Sparse AE step (D-N-D, sigmoid/sigmoid, SGD)",
    "vae": "VAE step 784-400-20, B=128 (Adam)",
    "gan": "GAN step (G 100-256-784, D 784-256-1, B=64; D step + G step, Adam)",
    "epoch": "Whole epochs of fit: W-mnist on 10240 rows, batch 256, SGD",
    "memory": "Peak memory of a 2-epoch fit (10240 x 784, batch 256)",
}
ALL_WORKLOADS = {name: fam for fam, names in FAMILIES.items() for name in names}

STEP_IMPLS = ["fusedae", "numpy", "torch", "torch-compile", "jax"]
EPOCH_IMPLS = STEP_IMPLS + ["jax-scan"]


def family(workload):
    return ALL_WORKLOADS[workload]


MEMORY_IMPLS = ["fusedae", "fusedae-net"] + EPOCH_IMPLS[1:]


def impls_for(workload):
    fam = family(workload)
    if fam == "memory":
        return MEMORY_IMPLS
    return EPOCH_IMPLS if fam == "epoch" else STEP_IMPLS


def steps_per_epoch():
    return -(-EPOCH_ROWS // EPOCH_SHAPE["B"])


# ------------------------------------------------------------------- flops

def sparse_flops(D, N, B):
    """Two GEMMs forward, three backward (dW2, dH, dW1), 2 flops per FMA."""
    return 10 * B * D * N


def vae_flops(D, H, Z, B):
    """GEMMs of one VAE step: forward enc D-H-2Z and dec Z-H-D; backward
    through the decoder (weights and inputs) and the encoder (weights, and
    inputs of its second layer)."""
    fwd = D * H + H * 2 * Z + Z * H + H * D
    dec_bwd = 2 * H * D + 2 * Z * H
    enc_bwd = 2 * H * 2 * Z + D * H
    return 2 * B * (fwd + dec_bwd + enc_bwd)


def gan_flops(Z, G, D, H, B):
    """GEMMs of one D step and one G step (no gradient of D's weights in
    the G step, none of the latents)."""
    g_fwd = Z * G + G * D
    d_step = g_fwd + 2 * (D * H + H) + 2 * (H + H + D * H)
    g_step = g_fwd + (D * H + H) + (H + H * D) + (G * D + G * D + Z * G)
    return 2 * B * (d_step + g_step)


def flops_per_step(workload):
    """Flops of one timed step (an epoch for the epoch workloads)."""
    fam = family(workload)
    if fam == "sparse":
        w = SPARSE[workload]
        return sparse_flops(w["D"], w["N"], w["B"])
    if fam == "vae":
        w = VAE[workload]
        return vae_flops(w["D"], w["H"], w["Z"], w["B"])
    if fam == "gan":
        w = GAN[workload]
        return gan_flops(w["Z"], w["G"], w["D"], w["H"], w["B"])
    if fam == "epoch":
        s = EPOCH_SHAPE
        full, rest = divmod(EPOCH_ROWS, s["B"])
        return full * sparse_flops(s["D"], s["N"], s["B"]) + (
            sparse_flops(s["D"], s["N"], rest) if rest else 0)
    return None


def describe(workload):
    """JSON-ready settings of a workload."""
    fam = family(workload)
    if fam == "sparse":
        return {**SPARSE[workload], "rho": RHO, "beta": BETA, "sgd_lr": SPARSE_LR,
                "loss": "squared error + beta KL (sigmoid/sigmoid)"}
    if fam == "vae":
        return {**VAE[workload], "adam": VAE_ADAM, "loss": "BCE(logits) + KL"}
    if fam == "gan":
        return {**GAN[workload], "adam": GAN_ADAM, "leaky_slope": LEAKY_SLOPE,
                "g_loss": "non_saturating"}
    if fam == "epoch":
        return {**EPOCH_SHAPE, **EPOCH[workload], "rows": EPOCH_ROWS,
                "steps_per_epoch": steps_per_epoch(), "rho": RHO, "beta": BETA,
                "sgd_lr": SPARSE_LR}
    return {**EPOCH_SHAPE, **MEMORY[workload], "rows": EPOCH_ROWS}


# -------------------------------------------------------- data and params

def _common():
    import _common as c
    c.ensure_fusedae_importable()
    return c


def sparse_spec(D, N):
    from fusedae.reference import mlp
    return mlp.MLPSpec(sizes=(D, N, D), activations=("sigmoid", "sigmoid"),
                       loss="squared_error", sparsity_layer=1,
                       sparsity_target=RHO, sparsity_weight=BETA)


def sparse_init(D, N):
    """The reference's initial (Ws, bs), float32 (Glorot, seed 0), as the
    in-process bench/cpu.py has always used."""
    import numpy as np
    from fusedae.reference import mlp
    return mlp.init_params(sparse_spec(D, N), np.random.default_rng(PARAM_SEED),
                           dtype=np.float32)


def sparse_data(workload):
    w = SPARSE[workload]
    return _common().mnist_like(w["B"], w["D"], DATA_SEED)


def epoch_data():
    s = EPOCH_SHAPE
    return _common().mnist_like(EPOCH_ROWS, s["D"], DATA_SEED)


def vae_spec(w):
    from fusedae.reference import vae
    return vae.VAESpec(n_features=w["D"], hidden=(w["H"],), n_latent=w["Z"])


def vae_init(w):
    """((enc Ws, bs), (dec Ws, bs)) float32: the reference's Philox init with
    seed 0, which is what the engine's VAE.init_params(0) draws."""
    import numpy as np
    from fusedae.reference import vae
    return vae.init(vae_spec(w), PARAM_SEED, dtype=np.float32)


def vae_data(w):
    return _common().mnist_like(w["B"], w["D"], DATA_SEED)


def vae_check_eps(w, step):
    """ε of training step `step` as the engine draws it (seed 0)."""
    import numpy as np
    from fusedae.reference import philox
    return philox.normal((w["B"], w["Z"]), PARAM_SEED, step, dtype=np.float32)


def gan_spec(w):
    from fusedae.reference import gan
    return gan.GANSpec(n_latent=w["Z"], n_features=w["D"], g_hidden=(w["G"],),
                       d_hidden=(w["H"],))


def gan_init(w):
    """(G, D), each (Ws, bs) float32: Philox init with seed 0, as the
    engine's GAN.init_params(0)."""
    import numpy as np
    from fusedae.reference import gan
    return gan.init(gan_spec(w), PARAM_SEED, dtype=np.float32)


def gan_data(w):
    return _common().mnist_like(w["B"], w["D"], DATA_SEED)


def gan_check_latents(w, step):
    """(z of the D step, z of the G step) of GAN step `step`, as the engine
    draws them: one latent stream per network step, D first."""
    import numpy as np
    from fusedae.reference import philox
    shape = (w["B"], w["Z"])
    return (philox.normal(shape, PARAM_SEED, 2 * step, dtype=np.float32),
            philox.normal(shape, PARAM_SEED, 2 * step + 1, dtype=np.float32))


def epoch_check_schedule(workload, X, epochs=EPOCH_CHECK_EPOCHS):
    """What the engine's fit_epoch draws (seed 0) over `epochs` epochs:
    (list of permutations (int64 arrays) or None per epoch, list per step
    of the noise to add to that step's gathered batch (float32) or None)."""
    import numpy as np
    from fusedae.reference import philox
    cfg = EPOCH[workload]
    n, B = len(X), EPOCH_SHAPE["B"]
    perms, deltas, noise_step = [], [], 0
    for e in range(epochs):
        perm = philox.permutation(n, PARAM_SEED, e) if cfg["shuffle"] else None
        perms.append(perm)
        for r0 in range(0, n, B):
            if cfg["noise"] == "none":
                deltas.append(None)
                continue
            rows = perm[r0:r0 + B] if perm is not None else np.arange(r0, min(n, r0 + B))
            xb = X[rows]
            noisy = philox.corrupt(xb, cfg["noise"], cfg["level"], PARAM_SEED, noise_step)
            noise_step += 1
            deltas.append((noisy.astype(np.float64) - xb).astype(np.float32))
    return perms, deltas
