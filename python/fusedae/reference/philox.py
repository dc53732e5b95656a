"""Philox4x32-10 and every random draw the engine makes, in NumPy.

The engine draws all its random numbers (weight init, epoch shuffles,
denoising noise) from Philox4x32-10 (Salmon et al., SC'11) as a pure function
of ``(seed, tag, stream, index)``. This module is the specification of each
draw; the tests compare the engine to it bit for bit (integers) or to
rounding (floats).

Counter layout: ``ctr = (block low 32, block high 32, stream, tag)``,
key ``(seed low 32, seed high 32)``; draw ``k`` of a stream is word ``k % 4``
of block ``k // 4``.
"""
import numpy as np

TAG_INIT, TAG_SHUFFLE, TAG_NOISE, TAG_LATENT = 1, 2, 3, 4

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter, seed):
    """Ten Philox rounds on each row of ``counter`` (uint32, shape (n, 4))."""
    c = np.asarray(counter, dtype=np.uint32).astype(np.uint64)
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    c0, c1, c2, c3 = (c[:, i].copy() for i in range(4))
    for _ in range(10):
        p0, p1 = _M0 * c0, _M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & _MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & _MASK
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


def draws(seed, tag, stream, count):
    """The first ``count`` uint32 draws of stream ``(tag, stream)``."""
    blocks = (count + 3) // 4
    idx = np.arange(blocks, dtype=np.uint64)
    ctr = np.zeros((blocks, 4), dtype=np.uint32)
    ctr[:, 0] = (idx & _MASK).astype(np.uint32)
    ctr[:, 1] = (idx >> np.uint64(32)).astype(np.uint32)
    ctr[:, 2] = np.uint32(stream & 0xFFFFFFFF)
    ctr[:, 3] = np.uint32(tag)
    return philox4x32_10(ctr, seed).reshape(-1)[:count]


def uniform24(u):
    """Uniform in [0, 1) from the top 24 bits: exact in float32 and float64."""
    return (np.asarray(u, dtype=np.uint32) >> np.uint32(8)).astype(np.float64) / 16777216.0


def uniform24_open0(u):
    """Uniform in (0, 1] (safe under a logarithm)."""
    return ((np.asarray(u, dtype=np.uint32) >> np.uint32(8)).astype(np.float64) + 1.0) / 16777216.0


def glorot_init(sizes, seed, dtype=np.float64):
    """Initial parameters: W_l ~ U(-r, r), r = sqrt(6/(n_{l-1}+n_l+1)), b_l = 0.

    Element k of W_l (C order) is draw k of stream ``(TAG_INIT, l)``.
    """
    Ws, bs = [], []
    for l in range(1, len(sizes)):
        n_in, n_out = sizes[l - 1], sizes[l]
        r = np.sqrt(6.0 / (n_in + n_out + 1))
        u = uniform24(draws(seed, TAG_INIT, l, n_in * n_out))
        Ws.append(((2.0 * u - 1.0) * r).astype(dtype).reshape(n_in, n_out))
        bs.append(np.zeros(n_out, dtype=dtype))
    return Ws, bs


def permutation(n, seed, epoch):
    """The engine's shuffle of ``range(n)`` for an epoch (Fisher-Yates).

    Draw k (stream ``(TAG_SHUFFLE, epoch)``) swaps position i = n-1-k with
    j = floor(u_k·(i+1) / 2^32).
    """
    perm = np.arange(n, dtype=np.int64)
    u = draws(seed, TAG_SHUFFLE, epoch, max(n - 1, 0)).astype(np.uint64)
    for k in range(n - 1):
        i = n - 1 - k
        j = int((int(u[k]) * (i + 1)) >> 32)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def corrupt(X, kind, level, seed, step):
    """Denoising corruption of a batch, drawn from stream ``(TAG_NOISE, step)``.

    Element e of the flattened batch uses draw e. ``gaussian`` adds
    ``level·N(0, 1)`` by Box-Muller on draws (4b, 4b+1) and (4b+2, 4b+3):
    r = sqrt(-2 ln u_open0), θ = 2π·u, giving r·cos θ and r·sin θ.
    ``masking`` zeroes an element with probability ``level``;
    ``salt_pepper`` sets it to 1 with probability level/2 and to 0 with
    probability level/2. Values are computed in float64 and cast to X's dtype.
    """
    X = np.asarray(X)
    flat = X.reshape(-1).astype(np.float64)
    n = flat.size
    u = draws(seed, TAG_NOISE, step, 4 * ((n + 3) // 4))
    if kind == "gaussian":
        pairs = u.reshape(-1, 2)
        radius = np.sqrt(-2.0 * np.log(uniform24_open0(pairs[:, 0])))
        theta = 2.0 * np.pi * uniform24(pairs[:, 1])
        z = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1).reshape(-1)[:n]
        out = flat + level * z
    elif kind == "masking":
        out = np.where(uniform24(u[:n]) < level, 0.0, flat)
    elif kind == "salt_pepper":
        v = uniform24(u[:n])
        out = np.where(v < 0.5 * level, 1.0, np.where(v < level, 0.0, flat))
    else:
        raise ValueError(f"kind: expected 'gaussian', 'masking' or 'salt_pepper', got {kind!r}")
    return out.astype(X.dtype).reshape(X.shape)


def normal(shape, seed, stream, dtype=np.float64):
    """Standard normal draws (latent variables) from stream ``(TAG_LATENT, stream)``.

    The Gaussian recipe of :func:`corrupt`: element e of the flattened
    (C-order) array uses position e of the sequence built by Box-Muller on
    draws (4b, 4b+1) and (4b+2, 4b+3) of the stream,
    r = sqrt(-2 ln u_open0(u_{2k})), θ = 2π·uniform24(u_{2k+1}), giving
    r·cos θ (position 2k) then r·sin θ (position 2k+1). Computed in float64 and
    cast to ``dtype``. ``stream`` is taken modulo 2^32, as in :func:`draws`.
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError:
        raise ValueError(f"shape must be an int or a sequence of ints, got {shape!r}") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"shape must hold sizes >= 0, got {shape!r}")
    n = int(np.prod(shape, dtype=np.int64))
    u = draws(seed, TAG_LATENT, stream, 4 * ((n + 3) // 4))
    pairs = u.reshape(-1, 2)
    radius = np.sqrt(-2.0 * np.log(uniform24_open0(pairs[:, 0])))
    theta = 2.0 * np.pi * uniform24(pairs[:, 1])
    z = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1).reshape(-1)[:n]
    return z.astype(dtype).reshape(shape)
