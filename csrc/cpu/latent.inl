// Standard normal draws for latent variables: the numbers of philox::normal
// (core/philox.hpp, the plain version and the definition), 16 Philox blocks
// (64 draws) at a time in loops the compiler vectorises. Included inside a
// per-instruction-set namespace, after kernels.inl (philox_blocks).
//
// Why: the plain version calls libm's log, sin and cos once per pair of
// draws, about 12 ns per draw; a GAN step draws 2 × B × n_latent of them and
// spent 8% of its time there (perf, 100-256-784 / 784-256-1, B = 64).
//
// The arithmetic is double precision, as in the plain version; the log and
// the sine and cosine are polynomials accurate to a few units in the last
// place of a double, so every draw agrees with philox::normal's to about
// 1e-15 relative (and float32 draws, rounded from the same doubles, almost
// always bit for bit). tests/test_engine_generative.py compares each
// instruction set's draws with the NumPy reference's.

// ln(u) for u in [2^-24, 1] (what Box-Muller's radius takes): u = m·2^e with
// m in [√½, √2), ln m = 2·atanh(s), s = (m−1)/(m+1), |s| < 0.1716, odd series
// to s^23 (truncation below 2e-18 relative); m − 1 is exact.
static inline double log_unit_f64(double u) {
  const std::uint64_t bits = double_to_bits(u);
  std::int64_t e = static_cast<std::int64_t>(bits >> 52) - 1023;
  double m = bits_to_double((bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);
  const bool big = m > 1.4142135623730950488;
  m = big ? 0.5 * m : m;
  e = big ? e + 1 : e;
  const double s = (m - 1.0) / (m + 1.0);
  const double z = s * s;
  double q = 1.0 / 23.0;
  q = q * z + 1.0 / 21.0;
  q = q * z + 1.0 / 19.0;
  q = q * z + 1.0 / 17.0;
  q = q * z + 1.0 / 15.0;
  q = q * z + 1.0 / 13.0;
  q = q * z + 1.0 / 11.0;
  q = q * z + 1.0 / 9.0;
  q = q * z + 1.0 / 7.0;
  q = q * z + 1.0 / 5.0;
  q = q * z + 1.0 / 3.0;
  const double ef = static_cast<double>(e);
  // ln 2 split (fdlibm): e·ln2_hi is exact for |e| < 2^11.
  return ef * 6.93147180369123816490e-01 + (ef * 1.90821492927058770002e-10 + (2.0 * s + 2.0 * s * z * q));
}

// sin(2πu) and cos(2πu) for u = k·2^-24 in [0, 1): u = q/4 + f with q the
// nearest quarter, |f| <= 1/8, both exact; x = 2πf in [−π/4, π/4] from a
// 2π whose high part has 29 bits (f has 24, so f·hi is exact); Taylor series
// to x^17 and x^18 (truncation below 1e-19); the quarter turns pick and negate.
static inline void sincos_2pi_f64(double u, double* sin_out, double* cos_out) {
  const double q = __builtin_floor(4.0 * u + 0.5);
  const double f = u - 0.25 * q;
  const double x = f * 6.283185303211212 + f * 3.968374318722162e-09;  // 2π = hi + lo
  const double z = x * x;
  double sp = 1.0 / 355687428096000.0;  // 1/17!
  sp = sp * z - 1.0 / 1307674368000.0;
  sp = sp * z + 1.0 / 6227020800.0;
  sp = sp * z - 1.0 / 39916800.0;
  sp = sp * z + 1.0 / 362880.0;
  sp = sp * z - 1.0 / 5040.0;
  sp = sp * z + 1.0 / 120.0;
  sp = sp * z - 1.0 / 6.0;
  const double s = x + x * z * sp;
  double cp = 1.0 / 6402373705728000.0;  // 1/18!
  cp = cp * z - 1.0 / 20922789888000.0;
  cp = cp * z + 1.0 / 87178291200.0;
  cp = cp * z - 1.0 / 479001600.0;
  cp = cp * z + 1.0 / 3628800.0;
  cp = cp * z - 1.0 / 40320.0;
  cp = cp * z + 1.0 / 720.0;
  cp = cp * z - 1.0 / 24.0;
  cp = cp * z + 0.5;
  const double c = 1.0 - z * cp;
  const int quarter = static_cast<int>(q) & 3;
  // θ = quarter·π/2 + x
  const double sn = (quarter & 1) ? c : s;
  const double cs = (quarter & 1) ? s : c;
  *sin_out = (quarter & 2) ? -sn : sn;
  *cos_out = ((quarter + 1) & 2) ? -cs : cs;
}

// 64 draws: those of blocks b0 .. b0+15 of stream (kLatent, stream).
template <class T>
static inline void latent_normal64(std::uint64_t seed, std::uint32_t stream, std::uint64_t b0,
                                   T* out) {
  std::uint32_t w[4][16];
  philox_blocks(seed, philox::kLatent, stream, b0, 16, w);
  double zc[2][16], zs[2][16];
  for (int h = 0; h < 2; ++h) {
#pragma omp simd
    for (int i = 0; i < 16; ++i) {
      const double u0 = (static_cast<double>(w[2 * h][i] >> 8) + 1.0) * (1.0 / 16777216.0);
      const double u1 = static_cast<double>(w[2 * h + 1][i] >> 8) * (1.0 / 16777216.0);
      const double r = __builtin_sqrt(-2.0 * log_unit_f64(u0));
      double sn, cs;
      sincos_2pi_f64(u1, &sn, &cs);
      zc[h][i] = r * cs;
      zs[h][i] = r * sn;
    }
  }
  for (int i = 0; i < 16; ++i) {
    out[4 * i + 0] = static_cast<T>(zc[0][i]);
    out[4 * i + 1] = static_cast<T>(zs[0][i]);
    out[4 * i + 2] = static_cast<T>(zc[1][i]);
    out[4 * i + 3] = static_cast<T>(zs[1][i]);
  }
}

// philox::normal(seed, stream, n, out), 64 draws at a time; the last partial
// group is made whole in a local buffer and only its first draws copied.
template <class T>
static void latent_normal(std::uint64_t seed, std::uint32_t stream, std::int64_t n, T* out) {
  std::int64_t e = 0;
  for (; e + 64 <= n; e += 64)
    latent_normal64(seed, stream, static_cast<std::uint64_t>(e / 4), out + e);
  if (e < n) {
    T buf[64];
    latent_normal64(seed, stream, static_cast<std::uint64_t>(e / 4), buf);
    std::memcpy(out + e, buf, sizeof(T) * static_cast<std::size_t>(n - e));
  }
}
