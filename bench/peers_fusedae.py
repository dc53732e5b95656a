"""fusedae (the compiled engine) on every workload of ``bench/cpu.py --all``.

- sparse AE: ``engine.Network.train_step(X, X)``, started from the
  reference's initial parameters;
- VAE: ``engine.VAE.train_step(X)`` (ε drawn by the engine, Philox);
- GAN: ``engine.GAN.discriminator_step(X)`` then ``generator_step(B)``;
- epochs: ``engine.Network.fit_epoch`` (shuffle, gather, noise, steps, all
  in C++);
- memory: the estimator, ``fusedae.SparseAutoencoder(...).fit(X)``.

Each ``build_*`` returns a :class:`Runner`. The engine draws its own noise
from Philox with seed 0 both in the check and when timed, which is exactly
what the correctness checks feed the other implementations.
"""
from cpu_workloads import (BETA, EPOCH, EPOCH_SHAPE, GAN, GAN_ADAM, PARAM_SEED, RHO, SPARSE,
                           SPARSE_LR, VAE, VAE_ADAM, sparse_init)
from peers_common import Runner

import _common

_common.ensure_fusedae_importable()
from fusedae._native import engine  # noqa: E402
from fusedae.reference import mlp  # noqa: E402


def engine_network(D, N, Ws=None, bs=None, flat=None):
    net = engine.Network(sizes=[D, N, D], activations=["sigmoid", "sigmoid"],
                         loss="squared_error", dtype="float32",
                         weight_decay=0.0, sparsity_layer=1,
                         sparsity_target=RHO, sparsity_weight=BETA)
    net.init_params(PARAM_SEED)  # seed 0: shuffles and noise of fit_epoch
    if flat is not None:
        net.params[:] = flat
    else:
        if Ws is None:
            Ws, bs = sparse_init(D, N)
        net.params[:] = mlp.flatten(Ws, bs)
    net.set_optimizer("sgd", SPARSE_LR)
    return net


def build_sparse(workload, X, check):
    w = SPARSE[workload]
    net = engine_network(w["D"], w["N"])

    def step():
        return net.train_step(X, X)

    return Runner(step, keep=net)


def build_vae(workload, X, check):
    w = VAE[workload]
    m = engine.VAE(w["D"], w["Z"], [w["H"]], "relu", "sigmoid",
                   "binary_cross_entropy", "float32", 0.0, 0)
    m.init_params(PARAM_SEED)
    m.set_optimizer("adam", VAE_ADAM["lr"], beta1=VAE_ADAM["beta1"],
                    beta2=VAE_ADAM["beta2"], eps=VAE_ADAM["eps"])

    def step():
        return m.train_step(X, None)[0]

    return Runner(step, keep=m)


def build_gan(workload, X, check):
    w = GAN[workload]
    g = engine.GAN(w["Z"], w["D"], [w["G"]], [w["H"]], "relu", "sigmoid", "leaky_relu",
                   "float32", 0.0, False)
    g.init_params(PARAM_SEED)
    g.set_optimizers("adam", GAN_ADAM["lr"], GAN_ADAM["lr"], beta1=GAN_ADAM["beta1"],
                     beta2=GAN_ADAM["beta2"], eps=GAN_ADAM["eps"])
    B = w["B"]
    d_step, g_step = g.discriminator_step, g.generator_step

    def step():
        return (d_step(X), g_step(B))

    return Runner(step, to_floats=Runner.pairs_to_floats, keep=g)


def build_epoch(workload, X, check):
    cfg = EPOCH[workload]
    net = engine_network(EPOCH_SHAPE["D"], EPOCH_SHAPE["N"])
    B = EPOCH_SHAPE["B"]
    shuffle, noise, level = cfg["shuffle"], cfg["noise"], cfg["level"]

    def step():
        return net.fit_epoch(X, None, B, shuffle, noise, level)[0]

    return Runner(step, keep=net)


def _estimator(threads, epochs, n_hidden=EPOCH_SHAPE["N"], batch_size=EPOCH_SHAPE["B"]):
    import fusedae
    return fusedae.SparseAutoencoder(
        n_hidden=n_hidden, optimizer="sgd", learning_rate=SPARSE_LR, batch_size=batch_size,
        epochs=epochs, shuffle=True, random_state=PARAM_SEED, n_threads=threads)


# The engine's initial parameters for the memory workload (prepare_for_memory).
_MEMORY_INIT = None


def prepare_for_memory(threads, net=False):
    """Before the baseline: a tiny fit, so that what a process sets up once
    for its first fit is not counted as the fit's memory: the modules the
    estimator's first fit imports (scikit-learn, SciPy: ~100 MiB), the
    engine's pool threads and OpenBLAS's first buffer on each of them. The
    tiny fit's steps (256 x 64, 32 hidden units) are just large enough to run
    on every thread of the pool. For the engine alone, also the flat vector of
    the reference's initial parameters, which the measured fit copies into its
    network (making it there would count the NumPy temporaries of the
    initialisation as the fit's memory)."""
    import numpy as np
    X = np.random.default_rng(0).random((256, 64), dtype=np.float32)
    if not net:
        _estimator(threads, 1, n_hidden=32, batch_size=256).fit(X)
        return "a 256 x 64 fit of the same estimator (its lazy imports, the engine's threads)"
    global _MEMORY_INIT
    engine_network(64, 32).fit_epoch(X, None, 256, True, "none", 0.0)
    _MEMORY_INIT = mlp.flatten(*sparse_init(EPOCH_SHAPE["D"], EPOCH_SHAPE["N"]))
    return ("a 256 x 64 fit_epoch of an engine network (the engine's threads); the initial "
            "parameters (the reference's, flattened)")


def fit_for_memory(X, threads, epochs, net=False):
    """The estimator's fit (the user's view), SGD as in the epoch workloads;
    net=True: the engine alone, Network.fit_epoch per epoch."""
    if net:
        n = engine_network(EPOCH_SHAPE["D"], EPOCH_SHAPE["N"], flat=_MEMORY_INIT)
        losses = [n.fit_epoch(X, None, EPOCH_SHAPE["B"], True, "none", 0.0)[0]
                  for _ in range(epochs)]
        return {"loop": "engine.Network.fit_epoch", "losses": losses}
    model = _estimator(threads, epochs)
    model.fit(X)
    return {"estimator": repr(model), "n_iter": int(model.n_iter_),
            "note": "fit ends with transform(X) of all rows (mean_activation_)"}


def info():
    return {"engine_threads": engine.get_num_threads(),
            "blas_corename": engine.blas_corename(),
            "isa": engine_network(8, 4).isa,
            "supported_isas": list(engine.supported_isas())}


BUILDERS = {"sparse": build_sparse, "vae": build_vae, "gan": build_gan, "epoch": build_epoch}
