"""The NumPy reference (fusedae.reference, float32) on every workload of
``bench/cpu.py --all``: the specification the engine is tested against,
run as a NumPy user would run it.

- sparse AE: ``reference.optim.train_step`` (forward, loss, backward, SGD);
- VAE: ``reference.vae.loss_and_gradient`` + two ``reference.optim.Adam``;
- GAN: ``reference.gan``: fakes by ``generate``, the D step by
  ``discriminator_loss_and_gradient`` + Adam, the G step by
  ``generator_loss_and_gradient`` against the updated D + Adam;
- epochs: a plain loop: a permutation, gather a batch, add noise, step.

Noise (ε, latents, permutations, Gaussian corruption) comes from a
``numpy.random.Generator`` when timed, and from the engine's Philox streams
(fusedae.reference.philox) in the correctness check.
"""
import numpy as np

import cpu_workloads as wl
from peers_common import Runner

from fusedae.reference import gan as ref_gan  # noqa: E402  (cpu_workloads set the path)
from fusedae.reference import optim  # noqa: E402
from fusedae.reference import vae as ref_vae  # noqa: E402

RNG_SEED = 7


def _adam(cfg):
    return optim.Adam(cfg["lr"], beta1=cfg["beta1"], beta2=cfg["beta2"], eps=cfg["eps"])


def _apply(opt, params, grads):
    (Ws, bs), (dWs, dbs) = params, grads
    opt.step(list(Ws) + list(bs), list(dWs) + list(dbs))


def build_sparse(workload, X, check):
    w = wl.SPARSE[workload]
    spec = wl.sparse_spec(w["D"], w["N"])
    Ws, bs = wl.sparse_init(w["D"], w["N"])
    opt = optim.SGD(wl.SPARSE_LR)

    def step():
        return optim.train_step(Ws, bs, X, X, spec, opt)

    return Runner(step)


def build_vae(workload, X, check):
    w = wl.VAE[workload]
    spec = wl.vae_spec(w)
    enc, dec = wl.vae_init(w)
    opts = (_adam(wl.VAE_ADAM), _adam(wl.VAE_ADAM))
    rng = np.random.default_rng(RNG_SEED)
    shape, counter = (w["B"], w["Z"]), [0]

    def step():
        if check:
            eps = wl.vae_check_eps(w, counter[0])
            counter[0] += 1
        else:
            eps = rng.standard_normal(shape, dtype=np.float32)
        J, enc_g, dec_g = ref_vae.loss_and_gradient(enc, dec, X, eps, spec)
        _apply(opts[0], enc, enc_g)
        _apply(opts[1], dec, dec_g)
        return J

    return Runner(step)


def build_gan(workload, X, check):
    w = wl.GAN[workload]
    spec = wl.gan_spec(w)
    G, D = wl.gan_init(w)
    opt_g, opt_d = _adam(wl.GAN_ADAM), _adam(wl.GAN_ADAM)
    rng = np.random.default_rng(RNG_SEED)
    shape, counter = (w["B"], w["Z"]), [0]

    def step():
        if check:
            z_d, z_g = wl.gan_check_latents(w, counter[0])
            counter[0] += 1
        else:
            z_d = rng.standard_normal(shape, dtype=np.float32)
            z_g = rng.standard_normal(shape, dtype=np.float32)
        fake = ref_gan.generate(G, z_d, spec)
        d_loss, dWs, dbs = ref_gan.discriminator_loss_and_gradient(D, X, fake, spec)
        _apply(opt_d, D, (dWs, dbs))
        g_loss, gWs, gbs = ref_gan.generator_loss_and_gradient(G, D, z_g, spec)
        _apply(opt_g, G, (gWs, gbs))
        return (d_loss, g_loss)

    return Runner(step, to_floats=Runner.pairs_to_floats)


def build_epoch(workload, X, check):
    cfg = wl.EPOCH[workload]
    s = wl.EPOCH_SHAPE
    spec = wl.sparse_spec(s["D"], s["N"])
    Ws, bs = wl.sparse_init(s["D"], s["N"])
    opt = optim.SGD(wl.SPARSE_LR)
    n, B = len(X), s["B"]
    shuffle, noisy, level = cfg["shuffle"], cfg["noise"] != "none", np.float32(cfg["level"])
    rng = np.random.default_rng(RNG_SEED)
    if check:
        perms, deltas = wl.epoch_check_schedule(workload, X)
    counter = [0, 0]  # epochs, steps

    def step():
        if shuffle:
            perm = perms[counter[0]] if check else rng.permutation(n)
        counter[0] += 1
        total = 0.0
        for r0 in range(0, n, B):
            xb = X[perm[r0:r0 + B]] if shuffle else X[r0:r0 + B]
            if noisy:
                if check:
                    xin = xb + deltas[counter[1]]
                else:
                    xin = xb + level * rng.standard_normal(xb.shape, dtype=np.float32)
            else:
                xin = xb
            counter[1] += 1
            total += optim.train_step(Ws, bs, xin, xb, spec, opt) * len(xb)
        return total / n

    return Runner(step)


def fit_for_memory(X, threads, epochs):
    runner = build_epoch("E-shuffled", X, check=False)
    losses = [runner.step() for _ in range(epochs)]
    return {"loop": "bench/peers_numpy.py build_epoch('E-shuffled')", "losses": losses}


def info():
    return {}


BUILDERS = {"sparse": build_sparse, "vae": build_vae, "gan": build_gan, "epoch": build_epoch}
