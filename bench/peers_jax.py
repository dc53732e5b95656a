"""JAX (``jax.jit``, CPU) on every workload of ``bench/cpu.py --all``.

Each step is one ``jax.jit`` function ``(state, inputs) -> (new state,
loss)`` built on ``jax.value_and_grad``, with the state (parameters and, for
Adam, its moments and step count) donated (``donate_argnums=0``). Adam is
written out (PyTorch's convention: eps outside the square root, bias
corrections), since optax is not a dependency.

- sparse AE: sigmoid/sigmoid, ``0.5 sum (xhat - x)^2 / B + beta KL`` (no
  clamp), SGD;
- VAE: the model of bench/vae_torch.py, BCE from the logits (``softplus(l) -
  x l``) + Gaussian KL, Adam; ε drawn inside the jitted step from a key that
  is part of the state;
- GAN: the D step on ``concat([real, stop_gradient(G(z_d))])``, then the G
  step through the updated D, differentiating with respect to G only (XLA
  drops D's weight gradients), two Adams, in one jitted function;
- epochs, two ways: ``jax`` runs a jitted step (gather of the batch rows by
  the epoch's permutation and the noise inside it) in a Python loop, one
  call per batch; ``jax-scan`` jits the whole epoch as a ``lax.scan`` over
  the batches of the permuted epoch. Both draw the permutation with
  ``jax.random.permutation`` and the noise with ``jax.random.normal``.

In the correctness check the noise (ε, latents, permutations, corruption)
is the engine's Philox streams, passed in as arrays.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

import cpu_workloads as wl
from peers_common import Runner

JAX_SEED = 7


def _floats(results):
    return [float(v) for r in results for v in np.asarray(r).reshape(-1)]


def _sync(state_ref):
    def sync(last):
        jax.block_until_ready((state_ref[0], last))
    return sync


def adam_init(params):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return {"m": zeros, "v": jax.tree_util.tree_map(jnp.zeros_like, params),
            "t": jnp.zeros((), jnp.float32)}


def adam_update(params, grads, state, cfg):
    b1, b2, lr, eps = cfg["beta1"], cfg["beta2"], cfg["lr"], cfg["eps"]
    t = state["t"] + 1
    m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
    v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], grads)
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v)
    return params, {"m": m, "v": v, "t": t}


def _put(tree):
    return jax.tree_util.tree_map(jnp.asarray, tree)


# ---------------------------------------------------------------- sparse AE

def sparse_loss(p, x_in, x_target):
    W1, b1, W2, b2 = p
    h = jax.nn.sigmoid(x_in @ W1 + b1)
    xhat = jax.nn.sigmoid(h @ W2 + b2)
    recon = 0.5 * jnp.sum((xhat - x_target) ** 2) / x_in.shape[0]
    rhohat = jnp.mean(h, axis=0)
    rho = wl.RHO
    kl = rho * jnp.log(rho / rhohat) + (1 - rho) * jnp.log((1 - rho) / (1 - rhohat))
    return recon + wl.BETA * jnp.sum(kl)


def sparse_update(p, x_in, x_target):
    loss, g = jax.value_and_grad(sparse_loss)(p, x_in, x_target)
    return tuple(a - wl.SPARSE_LR * b for a, b in zip(p, g)), loss


def sparse_params(D, N):
    Ws, bs = wl.sparse_init(D, N)
    return _put((Ws[0], bs[0], Ws[1], bs[1]))


def build_sparse(workload, X, check):
    w = wl.SPARSE[workload]
    state = [sparse_params(w["D"], w["N"])]
    x = jnp.asarray(X)
    update = jax.jit(sparse_update, donate_argnums=0)

    def step():
        state[0], loss = update(state[0], x, x)
        return loss

    return Runner(step, to_floats=_floats, sync=_sync(state), keep=state)


# --------------------------------------------------------------------- VAE

def vae_loss(p, x, eps):
    (eW1, eb1, eW2, eb2), (dW1, db1, dW2, db2) = p
    Z = eps.shape[1]
    e = jax.nn.relu(x @ eW1 + eb1) @ eW2 + eb2
    mu, logvar = e[:, :Z], e[:, Z:]
    z = mu + jnp.exp(0.5 * logvar) * eps
    logits = jax.nn.relu(z @ dW1 + db1) @ dW2 + db2
    B = x.shape[0]
    recon = jnp.sum(jax.nn.softplus(logits) - x * logits) / B
    kl = -0.5 * jnp.sum(1 + logvar - mu * mu - jnp.exp(logvar)) / B
    return recon + kl


def vae_update(state, x, eps):
    loss, g = jax.value_and_grad(vae_loss)(state["p"], x, eps)
    p, opt = adam_update(state["p"], g, state["opt"], wl.VAE_ADAM)
    return {**state, "p": p, "opt": opt}, loss


def vae_update_random(state, x):
    key, sub = jax.random.split(state["key"])
    eps = jax.random.normal(sub, (x.shape[0], state["p"][1][0].shape[0]), jnp.float32)
    state, loss = vae_update({**state, "key": key}, x, eps)
    return state, loss


def build_vae(workload, X, check):
    w = wl.VAE[workload]
    (eWs, ebs), (dWs, dbs) = wl.vae_init(w)
    p = _put(((eWs[0], ebs[0], eWs[1], ebs[1]), (dWs[0], dbs[0], dWs[1], dbs[1])))
    state = [{"p": p, "opt": adam_init(p), "key": jax.random.PRNGKey(JAX_SEED)}]
    x = jnp.asarray(X)
    counter = [0]
    if check:
        update = jax.jit(vae_update, donate_argnums=0)

        def step():
            eps = jnp.asarray(wl.vae_check_eps(w, counter[0]))
            counter[0] += 1
            state[0], loss = update(state[0], x, eps)
            return loss
    else:
        update = jax.jit(vae_update_random, donate_argnums=0)

        def step():
            state[0], loss = update(state[0], x)
            return loss

    return Runner(step, to_floats=_floats, sync=_sync(state), keep=state)


# --------------------------------------------------------------------- GAN

def g_forward(G, z):
    W1, b1, W2, b2 = G
    return jax.nn.sigmoid(jax.nn.relu(z @ W1 + b1) @ W2 + b2)


def d_logit(D, x):
    W1, b1, W2, b2 = D
    return jax.nn.leaky_relu(x @ W1 + b1, wl.LEAKY_SLOPE) @ W2 + b2


def bce_logits(logits, target):
    """Mean binary cross entropy from logits against a 0/1 target."""
    return jnp.mean(jax.nn.softplus(logits) - target * logits)


def d_loss_fn(D, real, fake):
    logits = d_logit(D, jnp.concatenate([real, fake]))
    target = jnp.concatenate([jnp.ones((real.shape[0], 1)), jnp.zeros((fake.shape[0], 1))])
    return bce_logits(logits, target)


def g_loss_fn(G, D, z):
    return jnp.mean(jax.nn.softplus(-d_logit(D, g_forward(G, z))))


def gan_update(state, x, z_d, z_g):
    G, D = state["G"], state["D"]
    fake = jax.lax.stop_gradient(g_forward(G, z_d))
    d_loss, d_grads = jax.value_and_grad(d_loss_fn)(D, x, fake)
    D, opt_d = adam_update(D, d_grads, state["opt_d"], wl.GAN_ADAM)
    g_loss, g_grads = jax.value_and_grad(g_loss_fn)(G, D, z_g)
    G, opt_g = adam_update(G, g_grads, state["opt_g"], wl.GAN_ADAM)
    new = {**state, "G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d}
    return new, jnp.stack([d_loss, g_loss])


def gan_update_random(state, x):
    key, k_d, k_g = jax.random.split(state["key"], 3)
    shape = (x.shape[0], state["G"][0].shape[0])
    z_d = jax.random.normal(k_d, shape, jnp.float32)
    z_g = jax.random.normal(k_g, shape, jnp.float32)
    return gan_update({**state, "key": key}, x, z_d, z_g)


def build_gan(workload, X, check):
    w = wl.GAN[workload]
    (gWs, gbs), (dWs, dbs) = wl.gan_init(w)
    G = _put((gWs[0], gbs[0], gWs[1], gbs[1]))
    D = _put((dWs[0], dbs[0], dWs[1], dbs[1]))
    state = [{"G": G, "D": D, "opt_g": adam_init(G), "opt_d": adam_init(D),
              "key": jax.random.PRNGKey(JAX_SEED)}]
    x = jnp.asarray(X)
    counter = [0]
    if check:
        update = jax.jit(gan_update, donate_argnums=0)

        def step():
            z_d, z_g = (jnp.asarray(z) for z in wl.gan_check_latents(w, counter[0]))
            counter[0] += 1
            state[0], losses = update(state[0], x, z_d, z_g)
            return losses
    else:
        update = jax.jit(gan_update_random, donate_argnums=0)

        def step():
            state[0], losses = update(state[0], x)
            return losses

    return Runner(step, to_floats=_floats, sync=_sync(state), keep=state)


# ------------------------------------------------------------------ epochs

def _batch(X, perm, i, B):
    """Rows i*B .. i*B+B-1 of the epoch: gathered through perm, or a slice."""
    if perm is None:
        return jax.lax.dynamic_slice_in_dim(X, i * B, B, axis=0)
    return jnp.take(X, jax.lax.dynamic_slice_in_dim(perm, i * B, B), axis=0)


def _epoch_step(p, X, perm, i, delta, key, B, level):
    """One batch of an epoch: gather, noise (delta given, or drawn from
    key), SGD step."""
    xb = _batch(X, perm, i, B)
    if delta is not None:
        x_in = xb + delta
    elif key is not None:
        x_in = xb + level * jax.random.normal(jax.random.fold_in(key, i), xb.shape, xb.dtype)
    else:
        x_in = xb
    return sparse_update(p, x_in, xb)


def build_epoch(workload, X, check, scan=False):
    cfg = wl.EPOCH[workload]
    s = wl.EPOCH_SHAPE
    n, B = len(X), s["B"]
    if n % B:
        raise ValueError("the JAX epochs assume equal batches")
    steps = n // B
    shuffle, noisy, level = cfg["shuffle"], cfg["noise"] != "none", cfg["level"]
    state = [sparse_params(s["D"], s["N"])]
    x = jnp.asarray(X)
    if check:
        perms, deltas = wl.epoch_check_schedule(workload, X)
        perms = [None if q is None else jnp.asarray(q.astype(np.int32)) for q in perms]
        deltas = [None if d is None else jnp.asarray(d) for d in deltas]
    base_key = jax.random.PRNGKey(JAX_SEED)
    counter = [0]

    def epoch_inputs():
        e = counter[0]
        counter[0] += 1
        key = jax.random.fold_in(base_key, e)
        if check:
            perm = perms[e]
            d = deltas[e * steps:(e + 1) * steps]
            return perm, (None if d[0] is None else d), None
        perm = jax.random.permutation(jax.random.fold_in(key, 1), n) if shuffle else None
        return perm, None, (key if noisy else None)

    if scan:
        @functools.partial(jax.jit, donate_argnums=0)
        def run_epoch(p, X, perm, deltas, key):
            def body(p, i_delta):
                i, delta = i_delta
                return _epoch_step(p, X, perm, i, delta, key, B, level)
            return jax.lax.scan(body, p, (jnp.arange(steps), deltas))

        def step():
            perm, d, key = epoch_inputs()
            d = None if d is None else jnp.stack(d)
            state[0], losses = run_epoch(state[0], x, perm, d, key)
            return losses
    else:
        @functools.partial(jax.jit, donate_argnums=0)
        def batch_step(p, X, perm, i, delta, key):
            return _epoch_step(p, X, perm, i, delta, key, B, level)

        def step():
            perm, d, key = epoch_inputs()
            losses = []
            for i in range(steps):
                state[0], loss = batch_step(state[0], x, perm, i,
                                            None if d is None else d[i], key)
                losses.append(loss)
            return losses

    def to_floats(results):
        return [float(np.mean([np.asarray(v) for v in r])) for r in results]

    return Runner(step, to_floats=to_floats, sync=_sync(state), keep=state)


def fit_for_memory(X, threads, epochs, scan=False):
    runner = build_epoch("E-shuffled", X, False, scan=scan)
    return {"loop": f"bench/peers_jax.py build_epoch('E-shuffled', scan={scan})",
            "losses": runner.to_floats([runner.step() for _ in range(epochs)])}


def info():
    return {"jax_devices": [str(d) for d in jax.devices()],
            "jax_default_backend": jax.default_backend()}


BUILDERS = {"sparse": build_sparse, "vae": build_vae, "gan": build_gan, "epoch": build_epoch}
