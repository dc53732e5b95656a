"""The engine's own float32 GEMM (csrc/cpu/gemm.inl) against NumPy in float64.

A float32 training step on AVX-512 takes its dense products through this
kernel (own_gemm_fits: big enough shapes); here it is called directly, on
shapes that reach every tile (6 and 12 rows, the rows left over, panels of one
to four vectors, a last vector cut short) and every block of k (one, several of
equal length), both transposes, and alpha and beta.
"""
import numpy as np
import pytest

from fusedae._native import engine

pytestmark = pytest.mark.skipif("avx512" not in engine.supported_isas(),
                                reason="the own GEMM is the AVX-512 kernels'")

EPS32 = np.finfo(np.float32).eps


def reference(a, b, c, trans_a, trans_b, alpha, beta):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a64 = a64.T if trans_a else a64
    b64 = b64.T if trans_b else b64
    exact = alpha * (a64 @ b64) + (beta * c.astype(np.float64) if beta != 0 else 0.0)
    # Each element is a float32 sum of k products (FMAs, in order) and one
    # rounding for alpha and beta: within (k + 2)·eps of the sum of magnitudes.
    k = a64.shape[1]
    scale = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0:
        scale = scale + abs(beta) * np.abs(c.astype(np.float64))
    return exact, (k + 2) * EPS32 * scale + 1e-30


# Last panels of 1, 2, 3 and 4 vectors (n mod 64: 1, 3, 16, 17, 36, 26, 40,
# 64, 4, 2, 6, 8), tiles of 6 and 12 rows and the rows left over. With Bᵀ,
# up to 8 columns past the last whole panel (n mod 64: 1, 3, 1, 4, 2, 6, 8)
# are dot products instead, 4 rows at a time and then the rows left (m mod
# 4: 1, 1, 0, 0, 0, 3, 2), over k in vectors of 16 and a shorter last one.
SHAPES = [(1, 1, 1), (5, 3, 7), (6, 16, 16), (7, 17, 33), (13, 64, 196), (12, 65, 257),
          (25, 196, 784), (98, 784, 256), (256, 196, 784), (40, 130, 513), (30, 100, 300),
          (37, 90, 300), (13, 40, 513), (7, 70, 100), (30, 136, 49)]


@pytest.mark.parametrize("m,n,k", SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SHAPES])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_own_gemm_matches_float64(m, n, k, trans_a, trans_b, rng):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    for alpha, beta in [(1.0, 0.0), (-0.1, 0.999), (0.5, 1.0)]:
        out = engine.own_gemm(a, b, c, trans_a, trans_b, alpha, beta)
        exact, bound = reference(a, b, c, trans_a, trans_b, alpha, beta)
        assert out.dtype == np.float32 and out.shape == (m, n)
        err = np.abs(out.astype(np.float64) - exact)
        assert np.all(err <= bound), (alpha, beta, float((err / bound).max()))


@pytest.mark.parametrize("trans_b", [False, True])
def test_own_gemm_beta_zero_reads_nothing_of_c(trans_b, rng):
    # beta = 0 overwrites C: what it held (NaN here) must not leak in (with
    # Bᵀ, 70 = 64 + 6 columns: the dot products' columns too).
    a = rng.standard_normal((30, 200)).astype(np.float32)
    b = rng.standard_normal((70, 200) if trans_b else (200, 70)).astype(np.float32)
    c = np.full((30, 70), np.nan, dtype=np.float32)
    out = engine.own_gemm(a, b, c, False, trans_b, 2.0, 0.0)
    op_b = b.T if trans_b else b
    np.testing.assert_allclose(out, 2.0 * (a.astype(np.float64) @ op_b), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("trans_a,trans_b", [(True, False), (False, True), (True, True)])
def test_own_gemm_beta_zero_over_several_blocks_of_k(trans_a, trans_b, rng):
    # k = 784: four blocks of k, the later ones adding to what the first wrote.
    m, n, k = 30, 70, 784
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, dtype=np.float32)
    out = engine.own_gemm(a, b, c, trans_a, trans_b, 1.0, 0.0)
    exact, bound = reference(a, b, c, trans_a, trans_b, 1.0, 0.0)
    assert np.all(np.abs(out.astype(np.float64) - exact) <= bound)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_own_gemm_reads_blocks_of_wider_matrices(trans_a, trans_b, rng):
    # As a step passes them: a block of columns of a wider matrix, its row
    # stride (the leading dimension) longer than the block (the weight
    # gradient's A_{l-1}[:, i0:i1] with beta ≠ 0, over several blocks of k).
    m, n, k = 29, 75, 600
    a_full = rng.standard_normal((k, m + 40) if trans_a else (m, k + 40)).astype(np.float32)
    b_full = rng.standard_normal((n, k + 24) if trans_b else (k, n + 24)).astype(np.float32)
    a = a_full[:, 17:17 + m] if trans_a else a_full[:, 17:17 + k]
    b = b_full[:, 5:5 + k] if trans_b else b_full[:, 5:5 + n]
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    c = rng.standard_normal((m, n)).astype(np.float32)
    out = engine.own_gemm(a, b, c, trans_a, trans_b, -0.1, 0.999)
    exact, bound = reference(a, b, c, trans_a, trans_b, -0.1, 0.999)
    assert np.all(np.abs(out.astype(np.float64) - exact) <= bound)
    # Other layouts (a transposed view, a reversed one) are copied, not misread.
    out_t = engine.own_gemm(np.asfortranarray(a), np.flip(np.flip(b, 0).copy(), 0), c,
                            trans_a, trans_b, -0.1, 0.999)
    np.testing.assert_array_equal(out_t, out)


@pytest.mark.parametrize("n,trans_b", [(90, False), (68, True)])
def test_own_gemm_sums_in_the_same_order_whatever_the_rows(n, trans_b, rng):
    # Each element is one sum over k in an order of its own, so a row computed
    # in a tile of 6, of 12 or among the rows left over (with Bᵀ and 68 = 64 +
    # 4 columns: the dot products' 4 rows at a time or the rows left) comes out
    # the same bits: the result does not depend on how a step splits its rows
    # between threads.
    a = rng.standard_normal((37, 300)).astype(np.float32)
    b = rng.standard_normal((n, 300) if trans_b else (300, n)).astype(np.float32)
    c = np.zeros((37, n), dtype=np.float32)
    whole = engine.own_gemm(a, b, c, False, trans_b)
    for r0, r1 in [(0, 1), (3, 10), (11, 37), (30, 37)]:
        part = engine.own_gemm(a[r0:r1], b, c[r0:r1], False, trans_b)
        np.testing.assert_array_equal(part, whole[r0:r1])


def test_own_gemm_rejects_mismatched_shapes():
    a = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="b: expected op"):
        engine.own_gemm(a, np.zeros((6, 3), np.float32), np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"c: expected shape \(4, 3\)"):
        engine.own_gemm(a, np.zeros((5, 3), np.float32), np.zeros((3, 3), np.float32))
