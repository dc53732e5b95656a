"""PyTorch, eager and ``torch.compile``, on every workload of
``bench/cpu.py --all``.

Each workload has one step function written the ordinary PyTorch way:
forward, loss, ``opt.zero_grad(set_to_none=True)``, ``loss.backward()``,
``opt.step()`` with ``torch.optim.SGD`` / ``torch.optim.Adam`` (default
options: on CPU, the for-loop implementation). ``torch`` runs it eagerly;
``torch-compile`` runs ``torch.compile(step)`` -- the *whole* step function,
default mode and default Dynamo settings, which is what a PyTorch user
writes. Dynamo then splits the function at each ``loss.backward()``
(``trace_autograd_ops`` is off by default): the forward and the loss are one
Inductor graph whose backward AOTAutograd compiles too, and the optimizer
update after the break is another compiled graph. ``--torch-trace-autograd``
(worker environment ``FUSEDAE_BENCH_TORCH_TRACE_AUTOGRAD=1``) turns
``torch._dynamo.config.trace_autograd_ops`` on instead, which traces the
backward into one graph with the rest -- but with torch 2.13 the compiled
step then leaves the parameters unchanged (the loss stays at its initial
value), so that variant fails the correctness check and is excluded; it is
kept to show this, not for its timings.

- sparse AE: ``nn.Linear`` encoder/decoder, sigmoids, ``0.5 * mse(sum) / B +
  beta * KL`` (no clamp of rhohat), SGD;
- VAE: bench/vae_torch.py's ``TorchVAE`` (its ``loss``), Adam;
- GAN: G = Linear-ReLU-Linear-Sigmoid, D = Linear-LeakyReLU(0.01)-Linear
  (a logit); the D step's fakes under ``no_grad``, BCE-with-logits over
  ``cat([real, fake])``; the G step through D with D's parameters detached
  (so D's weight gradients are not computed, as in the engine), two Adams;
- epochs: the same loop as the NumPy reference with torch ops
  (``randperm``, ``index_select``, ``randn_like``), the step as above
  (compiled for ``torch-compile``; the gather and noise stay eager).

ε, latents, permutations and noise come from torch's generator when timed
(``torch.randn`` outside the step function, an argument to it), and from the
engine's Philox streams in the correctness check.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

import cpu_workloads as wl
from peers_common import Runner

TORCH_SEED = 7


def _maybe_compile(fn, compiled):
    if not compiled:
        return fn
    if os.environ.get("FUSEDAE_BENCH_TORCH_TRACE_AUTOGRAD") == "1":
        import torch._dynamo.config as dynamo_config
        dynamo_config.trace_autograd_ops = True
    return torch.compile(fn)


def _copy_linear(lin, W, b):
    """Our (in, out) weights into nn.Linear's (out, in)."""
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
        lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))


def _stack_floats(results):
    if not results:
        return []
    return torch.stack(results).reshape(-1).tolist()


# ---------------------------------------------------------------- sparse AE

class SparseAutoencoder(torch.nn.Module):
    """D-N-D autoencoder with sigmoid hidden and output layers."""

    def __init__(self, D, N):
        super().__init__()
        self.encoder = torch.nn.Linear(D, N)
        self.decoder = torch.nn.Linear(N, D)

    def forward(self, x):
        hidden = torch.sigmoid(self.encoder(x))
        return torch.sigmoid(self.decoder(hidden)), hidden


def sparse_autoencoder_loss(xhat, x, hidden, rho, beta):
    """(1/B) sum 1/2 ||xhat - x||^2 + beta sum KL(rho || rhohat), no clamp."""
    batch = x.shape[0]
    reconstruction = 0.5 * F.mse_loss(xhat, x, reduction="sum") / batch
    rhohat = hidden.mean(dim=0)
    kl = (rho * torch.log(rho / rhohat)
          + (1 - rho) * torch.log((1 - rho) / (1 - rhohat)))
    return reconstruction + beta * kl.sum()


def sparse_model(D, N):
    """(model, SGD) from the reference's initial parameters."""
    Ws, bs = wl.sparse_init(D, N)
    model = SparseAutoencoder(D, N)
    _copy_linear(model.encoder, Ws[0], bs[0])
    _copy_linear(model.decoder, Ws[1], bs[1])
    return model, torch.optim.SGD(model.parameters(), lr=wl.SPARSE_LR)


def sparse_step_fn(model, opt):
    def step(x_in, x_target):
        xhat, hidden = model(x_in)
        loss = sparse_autoencoder_loss(xhat, x_target, hidden, wl.RHO, wl.BETA)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def build_sparse(workload, X, check, compiled):
    w = wl.SPARSE[workload]
    model, opt = sparse_model(w["D"], w["N"])
    step_fn = _maybe_compile(sparse_step_fn(model, opt), compiled)
    x = torch.from_numpy(X)

    def step():
        return step_fn(x, x)

    return Runner(step, to_floats=_stack_floats, keep=(model, opt))


# --------------------------------------------------------------------- VAE

def build_vae(workload, X, check, compiled):
    from vae_torch import TorchVAE
    w = wl.VAE[workload]
    a = wl.VAE_ADAM
    model = TorchVAE(w, wl.vae_init(w))
    opt = torch.optim.Adam(model.parameters(), lr=a["lr"], betas=(a["beta1"], a["beta2"]),
                           eps=a["eps"])

    def step_fn(x, eps):
        loss = model.loss(x, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    step_fn = _maybe_compile(step_fn, compiled)
    x = torch.from_numpy(X)
    shape, counter = (w["B"], w["Z"]), [0]

    def step():
        if check:
            eps = torch.from_numpy(wl.vae_check_eps(w, counter[0]))
            counter[0] += 1
        else:
            eps = torch.randn(shape)
        return step_fn(x, eps)

    return Runner(step, to_floats=_stack_floats, keep=(model, opt))


# --------------------------------------------------------------------- GAN

class Generator(torch.nn.Module):
    def __init__(self, Z, G, D):
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(Z, G), torch.nn.Linear(G, D)

    def forward(self, z):
        return torch.sigmoid(self.l2(torch.relu(self.l1(z))))


class Discriminator(torch.nn.Module):
    def __init__(self, D, H):
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(D, H), torch.nn.Linear(H, 1)

    def forward(self, x):
        return self.l2(F.leaky_relu(self.l1(x), wl.LEAKY_SLOPE))

    def frozen(self, x):
        """The logit with D's parameters detached: gradients reach x only."""
        h = F.leaky_relu(F.linear(x, self.l1.weight.detach(), self.l1.bias.detach()),
                         wl.LEAKY_SLOPE)
        return F.linear(h, self.l2.weight.detach(), self.l2.bias.detach())


def build_gan(workload, X, check, compiled):
    w = wl.GAN[workload]
    a = wl.GAN_ADAM
    (gWs, gbs), (dWs, dbs) = wl.gan_init(w)
    G, D = Generator(w["Z"], w["G"], w["D"]), Discriminator(w["D"], w["H"])
    for lin, W, b in zip((G.l1, G.l2, D.l1, D.l2), gWs + dWs, gbs + dbs):
        _copy_linear(lin, W, b)
    betas = (a["beta1"], a["beta2"])
    opt_g = torch.optim.Adam(G.parameters(), lr=a["lr"], betas=betas, eps=a["eps"])
    opt_d = torch.optim.Adam(D.parameters(), lr=a["lr"], betas=betas, eps=a["eps"])
    B = w["B"]
    d_targets = torch.cat([torch.ones(B, 1), torch.zeros(B, 1)])
    g_targets = torch.ones(B, 1)

    def step_fn(x, z_d, z_g):
        with torch.no_grad():
            fake = G(z_d)
        d_loss = F.binary_cross_entropy_with_logits(D(torch.cat([x, fake])), d_targets)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(D.frozen(G(z_g)), g_targets)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return torch.stack([d_loss.detach(), g_loss.detach()])

    step_fn = _maybe_compile(step_fn, compiled)
    x = torch.from_numpy(X)
    shape, counter = (B, w["Z"]), [0]

    def step():
        if check:
            z_d, z_g = (torch.from_numpy(z) for z in wl.gan_check_latents(w, counter[0]))
            counter[0] += 1
        else:
            z_d, z_g = torch.randn(shape), torch.randn(shape)
        return step_fn(x, z_d, z_g)

    return Runner(step, to_floats=_stack_floats, keep=(G, D, opt_g, opt_d))


# ------------------------------------------------------------------ epochs

def build_epoch(workload, X, check, compiled):
    cfg = wl.EPOCH[workload]
    s = wl.EPOCH_SHAPE
    model, opt = sparse_model(s["D"], s["N"])
    step_fn = _maybe_compile(sparse_step_fn(model, opt), compiled)
    x = torch.from_numpy(X)
    n, B = len(X), s["B"]
    shuffle, noisy, level = cfg["shuffle"], cfg["noise"] != "none", cfg["level"]
    if check:
        perms, deltas = wl.epoch_check_schedule(workload, X)
        perms = [None if p is None else torch.from_numpy(p) for p in perms]
        deltas = [None if d is None else torch.from_numpy(d) for d in deltas]
    counter = [0, 0]  # epochs, steps

    def step():
        if shuffle:
            perm = perms[counter[0]] if check else torch.randperm(n)
        counter[0] += 1
        losses, sizes = [], []
        for r0 in range(0, n, B):
            xb = x.index_select(0, perm[r0:r0 + B]) if shuffle else x[r0:r0 + B]
            if noisy:
                xin = xb + (deltas[counter[1]] if check else level * torch.randn_like(xb))
            else:
                xin = xb
            counter[1] += 1
            losses.append(step_fn(xin, xb))
            sizes.append(xb.shape[0])
        return (torch.stack(losses) * torch.tensor(sizes, dtype=torch.float32)).sum() / n

    return Runner(step, to_floats=_stack_floats, keep=(model, opt))


def fit_for_memory(X, threads, epochs, compiled):
    runner = build_epoch("E-shuffled", X, False, compiled)
    return {"loop": "bench/peers_torch.py build_epoch('E-shuffled')",
            "losses": runner.to_floats([runner.step() for _ in range(epochs)])}


def info():
    out = {"torch_threads": torch.get_num_threads(),
           "torch_interop_threads": torch.get_num_interop_threads(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    try:
        import torch._dynamo.config as dynamo_config
        out["dynamo_trace_autograd_ops"] = bool(dynamo_config.trace_autograd_ops)
    except Exception:  # informational only
        pass
    return out


def graph_breaks():
    """Dynamo's graph-break counter (reasons -> count), for the report."""
    try:
        from torch._dynamo.utils import counters
        return {str(k).split("\n")[0]: v for k, v in counters["graph_break"].items()}
    except Exception:  # informational only
        return None


BUILDERS = {"sparse": build_sparse, "vae": build_vae, "gan": build_gan, "epoch": build_epoch}
