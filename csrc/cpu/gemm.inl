// The engine's own float32 GEMM for AVX-512: a layer's forward product A·W,
// its weight gradient Aᵀ·δ (with SGD's update folded in, beta·W + alpha·Aᵀ·δ)
// and the delta it passes back, δ·Wᵀ. Included inside a per-instruction-set
// namespace, after kernels.inl.
//
// Why not OpenBLAS for these: on W-mnist's shapes (256 × 196 × 784 and
// 98 × 256 × 784 per thread) its kernel ran at 220-228 GFLOP/s of the core's
// 262, and it packs both operands on every call. A plain register tile of 6
// rows by 4 vectors (24 sums; per k, 4 vector loads of the packed right
// operand and 6 broadcasts of the left one feed 24 FMAs, so the FMAs, not the
// loads, set the pace) reached 231-241 on the same shapes, 206 against 199 on
// the VAE's 128 × 400 × 784 and 207-216 against 178-197 on W-wide's 512 ×
// 1024 × 1024 alone (docs/performance.md; inside the step W-wide still ran
// faster on OpenBLAS, so own_gemm_fits leaves it there). The left operand is
// read in place (its 6 rows are 6 sequential streams of broadcasts); only the
// right one is packed,
// one panel of 64 columns and up to kGemmKc rows at a time, into the thread's
// kGemmPackFloats of scratch. Each element of C is a sum over k in order, in
// the same order whatever the rows split between threads.
//
// (kGemmKc, kGemmPackFloats: core/network.hpp, which reserves the scratch.)

#ifdef __AVX512F__
constexpr bool kOwnGemm = true;

// Rows [0, MR) and vectors [0, NV) of a tile of C: alpha · Σ_k A(r, k)·P[k]
// (A(r, k) at a[r·sar + k·sak], P the packed panel, 64 floats a row) plus
// beta·C on the first block of k (C alone after it; nothing of C is read
// where beta is 0, so it may hold anything). `last` masks the columns of the
// last vector.
template <int MR, int NV>
static inline void gemm_tile(const float* a, std::int64_t sar, std::int64_t sak,
                             const float* panel, std::int64_t kc, float* c, std::int64_t ldc,
                             __mmask16 last, float alpha, float beta, bool first) {
  __m512 s[MR][NV];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) s[r][v] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (std::int64_t k = 0; k < kc; ++k) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(panel + k * 64 + 16 * v);
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * sar + k * sak]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) s[r][v] = _mm512_fmadd_ps(x, b[v], s[r][v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? last : __mmask16(0xFFFF);
      float* p = c + r * ldc + 16 * v;
      __m512 out = _mm512_mul_ps(va, s[r][v]);
      if (!first) out = _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), out);
      else if (beta != 0.0f) out = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, p), out);
      _mm512_mask_storeu_ps(p, m, out);
    }
}

// All row tiles of one panel: 6 rows a tile, then the rows left over. A
// panel of one or two vectors (the last of 784 columns is one) takes 12 rows
// a tile: 6 sums of one vector are too few chains of FMAs to fill both pipes.
template <int NV>
static void gemm_panel(const float* a, std::int64_t sar, std::int64_t sak, std::int64_t m,
                       const float* panel, std::int64_t kc, float* c, std::int64_t ldc,
                       __mmask16 last, float alpha, float beta, bool first) {
  std::int64_t i = 0;
#define FUSEDAE_TILE(mr) \
  gemm_tile<mr, NV>(a + i * sar, sar, sak, panel, kc, c + i * ldc, ldc, last, alpha, beta, first)
  if constexpr (NV <= 2)
    for (; i + 12 <= m; i += 12) FUSEDAE_TILE(12);
  for (; i + 6 <= m; i += 6) FUSEDAE_TILE(6);
  switch (m - i) {
    case 1: FUSEDAE_TILE(1); break;
    case 2: FUSEDAE_TILE(2); break;
    case 3: FUSEDAE_TILE(3); break;
    case 4: FUSEDAE_TILE(4); break;
    case 5: FUSEDAE_TILE(5); break;
    default: break;
  }
#undef FUSEDAE_TILE
}

// 16 rows of 16 floats (r[i]: row i) into their transpose (r[j]: column j):
// pairs of rows interleaved by 32 and then 64 bits, then 128-bit lanes swapped
// between vectors 4 and then 8 apart.
static inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
  }
}

// The panel of rows k0 .. k0+kc and columns j0 .. j0+w of op(B), zero-padded
// to nv whole vectors, 64 floats a row. op(B) = B (k × n, row stride ldb): row
// by row (a memcpy of run-time length would be `rep movs`). op(B) = Bᵀ (B:
// n × k): 16 × 16 blocks of B transposed in registers (element by element,
// the strided stores cost an eighth of the product).
static void pack_panel(bool trans_b, const float* b, int ldb, std::int64_t k0, std::int64_t kc,
                       std::int64_t j0, int w, int nv, float* pack) {
  if (!trans_b) {
    for (std::int64_t r = 0; r < kc; ++r) {
      const float* src = b + (k0 + r) * ldb + j0;
      float* dst = pack + r * 64;
      if (w == 64) {
        std::memcpy(dst, src, 64 * sizeof(float));
      } else {
        for (int j = 0; j < 16 * nv; ++j) dst[j] = j < w ? src[j] : 0.0f;
      }
    }
    return;
  }
  for (int g = 0; g < nv; ++g) {
    for (std::int64_t r0 = 0; r0 < kc; r0 += 16) {
      const int rows = kc - r0 < 16 ? static_cast<int>(kc - r0) : 16;
      const __mmask16 rm = rows == 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
      __m512 v[16];
      for (int q = 0; q < 16; ++q) {
        const int j = 16 * g + q;
        v[q] = j < w ? _mm512_maskz_loadu_ps(rm, b + (j0 + j) * ldb + k0 + r0) : _mm512_setzero_ps();
      }
      transpose16(v);
      for (int q = 0; q < rows; ++q) _mm512_storeu_ps(pack + (r0 + q) * 64 + 16 * g, v[q]);
    }
  }
}

// Columns [j0, j0 + WC) of rows [0, RB) of C = alpha·A·Bᵀ + beta·C, for the
// few columns a product's last panel would leave (own_gemm): both operands
// have those rows contiguous along k, so each element is a dot product, 16
// k at a time in one vector of sums and added up at the end. A tile would
// spend a whole vector of FMAs on them: W-mnist's δ₁ = δ₂·W₂ᵀ (196 = 3 × 64
// + 4 columns) took 757-765 µs that way against 703-719 for its first 192
// columns alone, and 719-726 with these (docs/performance.md, 2026-12-04).
template <int RB, int WC>
static inline void dot_tile(const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                            std::int64_t k, float* c, std::int64_t ldc, float alpha, float beta) {
  __m512 s[RB][WC];
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < WC; ++j) s[r][j] = _mm512_setzero_ps();
  for (std::int64_t q = 0; q < k; q += 16) {
    const __mmask16 m = k - q >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k - q)) - 1);
    __m512 x[RB], y[WC];
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) x[r] = _mm512_maskz_loadu_ps(m, a + r * lda + q);
#pragma GCC unroll 4
    for (int j = 0; j < WC; ++j) y[j] = _mm512_maskz_loadu_ps(m, b + j * ldb + q);
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < WC; ++j) s[r][j] = _mm512_fmadd_ps(x[r], y[j], s[r][j]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < WC; ++j) {
      float* out = c + r * ldc + j;
      const float v = alpha * _mm512_reduce_add_ps(s[r][j]);
      *out = beta != 0.0f ? v + beta * *out : v;
    }
}

// WC columns of C = alpha·A·Bᵀ + beta·C (c: their first; b: their first row
// of B) by dot_tile: 4 rows at a time (with WC = 4, 16 sums and 8 loads per
// 16 FMAs), then the rows left.
template <int WC>
static void dot_columns(int m, int k, float alpha, const float* a, int lda, const float* b,
                        int ldb, float beta, float* c, int ldc) {
  int i = 0;
  for (; i + 4 <= m; i += 4)
    dot_tile<4, WC>(a + std::int64_t(i) * lda, lda, b, ldb, k, c + std::int64_t(i) * ldc, ldc,
                    alpha, beta);
  for (; i < m; ++i)
    dot_tile<1, WC>(a + std::int64_t(i) * lda, lda, b, ldb, k, c + std::int64_t(i) * ldc, ldc,
                    alpha, beta);
}

// Columns [j0, n) of C = alpha·A·Bᵀ + beta·C, four at a time.
static void dot_tail(int m, int n, int k, int j0, float alpha, const float* a, int lda,
                     const float* b, int ldb, float beta, float* c, int ldc) {
  for (int j = j0; j < n; j += 4) {
    const float* bj = b + std::int64_t(j) * ldb;
    float* cj = c + j;
    switch (n - j < 4 ? n - j : 4) {
      case 1: dot_columns<1>(m, k, alpha, a, lda, bj, ldb, beta, cj, ldc); break;
      case 2: dot_columns<2>(m, k, alpha, a, lda, bj, ldb, beta, cj, ldc); break;
      case 3: dot_columns<3>(m, k, alpha, a, lda, bj, ldb, beta, cj, ldc); break;
      default: dot_columns<4>(m, k, alpha, a, lda, bj, ldb, beta, cj, ldc);
    }
  }
}

// Up to this many columns past the last whole panel of an A·Bᵀ product go
// to dot_tail instead of a panel of one vector.
constexpr int kDotTailCols = 8;

// Row-major C (m × n) = alpha·op(A)·op(B) + beta·C, op(A) = A (m × k, row
// stride lda) or Aᵀ (A: k × m), op(B) = B (k × n, row stride ldb) or Bᵀ (B:
// n × k). `pack`: kGemmPackFloats of scratch.
static void own_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                     const float* a, int lda, const float* b, int ldb, float beta, float* c,
                     int ldc, float* pack) {
  const std::int64_t sar = trans_a ? 1 : lda, sak = trans_a ? lda : 1;
  // Blocks of k of equal length, none over kGemmKc: 784 is 4 × 196, not 3 × 256 + 16.
  const std::int64_t blocks = (static_cast<std::int64_t>(k) + kGemmKc - 1) / kGemmKc;
  // A few columns past the last whole panel of A·Bᵀ: by dot products.
  const int tail = !trans_a && trans_b && n % 64 <= kDotTailCols ? n % 64 : 0;
  if (tail > 0) dot_tail(m, n, k, n - tail, alpha, a, lda, b, ldb, beta, c, ldc);
  n -= tail;
  for (std::int64_t j0 = 0; j0 < n; j0 += 64) {
    const int w = n - j0 < 64 ? static_cast<int>(n - j0) : 64;
    const int nv = (w + 15) / 16;
    const __mmask16 last = w % 16 == 0 ? __mmask16(0xFFFF) : __mmask16((1u << (w % 16)) - 1);
    for (std::int64_t kb = 0; kb < blocks; ++kb) {
      const std::int64_t k0 = k * kb / blocks, kc = k * (kb + 1) / blocks - k0;
      // Packed either way: read in place, B's rows 3 KiB apart made the tiles
      // a tenth slower than the copy costs (W-mnist, `perf`).
      pack_panel(trans_b, b, ldb, k0, kc, j0, w, nv, pack);
      const float* ak = a + k0 * sak;
      float* cj = c + j0;
      const bool first = kb == 0;
#define FUSEDAE_PANEL(nv) \
  gemm_panel<nv>(ak, sar, sak, m, pack, kc, cj, ldc, last, alpha, beta, first)
      switch (nv) {
        case 1: FUSEDAE_PANEL(1); break;
        case 2: FUSEDAE_PANEL(2); break;
        case 3: FUSEDAE_PANEL(3); break;
        default: FUSEDAE_PANEL(4);
      }
#undef FUSEDAE_PANEL
    }
  }
}

// Where the tile pays over OpenBLAS: enough work to amortise the packing,
// panels at least half full (W-tiny's 16-wide products stay on OpenBLAS), and
// not the large products, which OpenBLAS's cache blocking serves better (in
// the step, W-wide's 512 × 1024 × 1024 per thread ran at 37.1 steps/s against
// 39.5 with OpenBLAS).
static inline bool own_gemm_fits(int m, int n, int k) {
  const double work = static_cast<double>(m) * n * k;
  return m >= 1 && n >= 32 && k >= 16 && work >= double(1 << 20) && work < double(1 << 27);
}
#else
constexpr bool kOwnGemm = false;
static inline void own_gemm(bool, bool, int, int, int, float, const float*, int, const float*,
                            int, float, float*, int, float*) {}
static inline bool own_gemm_fits(int, int, int) { return false; }
#endif
