// Vectorisable elementary functions for the float32 hot path.
//
// Included *inside* a per-instruction-set namespace (see network_isa.cpp.in):
// every function is static, so each variant compiles its own copy with its own
// instructions. No calls, no branches, no errno: the loops around them
// vectorise under `#pragma omp simd`.

static inline float bits_to_float(std::uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline std::uint32_t float_to_bits(float f) { std::uint32_t u; std::memcpy(&u, &f, 4); return u; }
static inline double bits_to_double(std::uint64_t u) { double d; std::memcpy(&d, &u, 8); return d; }
static inline std::uint64_t double_to_bits(double d) { std::uint64_t u; std::memcpy(&u, &d, 8); return u; }

// e^x in float32. Cody-Waite reduction x = n·ln2 + r with |r| <= ln2/2, a
// degree-7 Taylor polynomial for e^r (truncation below 6e-9 relative, under
// one float32 ulp), and 2^n assembled in the exponent bits. Inputs are
// clamped to [-87, 88] so 2^n stays a normal number: e^-87 stands in for
// anything smaller, which is what sigmoid and log1p(e^-|z|) need.
static inline float exp_f32(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float shifter = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + shifter;
  const std::int32_t n = static_cast<std::int32_t>(float_to_bits(t) - float_to_bits(shifter));
  const float nf = t - shifter;
  float r = x - nf * 0.693145751953125f;         // ln2 high part (exact product)
  r = r - nf * 1.42860682030941723212e-06f;         // ln2 low part
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * bits_to_float(static_cast<std::uint32_t>(n + 127) << 23);
}

// e^x in float64, same scheme: degree-13 Taylor (truncation below 5e-18).
static inline double exp_f64(double x) {
  x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double shifter = 6755399441055744.0;  // 1.5·2^52
  const double t = x * 1.4426950408889634074 + shifter;
  const std::int64_t n = static_cast<std::int64_t>(double_to_bits(t) - double_to_bits(shifter));
  const double nf = t - shifter;
  double r = x - nf * 6.93147180369123816490e-01;  // ln2 high (fdlibm split)
  r = r - nf * 1.90821492927058770002e-10;          // ln2 low
  double p = 1.0 / 6227020800.0;                     // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p * bits_to_double(static_cast<std::uint64_t>(n + 1023) << 52);
}

// log(1 + f) for f in [-0.3, 0.42], float32: 2·atanh(s) with s = f/(2+f),
// |s| <= 0.1736, odd series to s^9 (truncation below 4e-9 relative).
static inline float log1p_small_f32(float f) {
  const float s = f / (2.0f + f);
  const float s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  return 2.0f * s + 2.0f * s * (s2 * p);
}

// log(1 + u) for u in [0, 1] (the softplus tail log1p(e^-|z|)), float32.
// For u > √2-1 we use 1+u = 2·(1 + (u-1)/2); small u is used as is (no 1+u
// rounding), so tiny tails keep full precision.
static inline float log1p_unit_f32(float u) {
  const bool big = u > 0.41421356f;
  const float f = big ? (u - 1.0f) * 0.5f : u;
  const float e = big ? 0.693147180559945309f : 0.0f;
  return e + log1p_small_f32(f);
}

// log(x) for a normal float32 x > 0: x = m·2^e with m in [√½, √2).
static inline float log_f32(float x) {
  const std::uint32_t bits = float_to_bits(x);
  std::int32_t e = static_cast<std::int32_t>(bits >> 23) - 127;
  float m = bits_to_float((bits & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  const bool high = m > 1.41421356f;
  m = high ? m * 0.5f : m;
  e = high ? e + 1 : e;
  return static_cast<float>(e) * 0.693147180559945309f + log1p_small_f32(m - 1.0f);
}

// sin(2πu) and cos(2πu) for u in [0, 1), float32: u = q/4 + r with |r| <= 1/8,
// Taylor polynomials on x = 2πr in [-π/4, π/4] (degree 9 and 10, truncation
// below 2e-9), then the quadrant q swaps and negates them.
static inline void sincos_2pi_f32(float u, float* sin_out, float* cos_out) {
  const float shifter = 12582912.0f;
  const float t = u * 4.0f + shifter;
  const std::int32_t q = static_cast<std::int32_t>(float_to_bits(t) - float_to_bits(shifter)) & 3;
  const float x = (u - (t - shifter) * 0.25f) * 6.28318530717958648f;
  const float x2 = x * x;
  float sp = 1.0f / 362880.0f;
  sp = sp * x2 - 1.0f / 5040.0f;
  sp = sp * x2 + 1.0f / 120.0f;
  sp = sp * x2 - 1.0f / 6.0f;
  const float sn = x + x * x2 * sp;
  float cp = -1.0f / 3628800.0f;
  cp = cp * x2 + 1.0f / 40320.0f;
  cp = cp * x2 - 1.0f / 720.0f;
  cp = cp * x2 + 1.0f / 24.0f;
  cp = cp * x2 - 0.5f;
  const float cs = 1.0f + x2 * cp;
  // θ = q·π/2 + x.
  const float s1 = (q & 1) ? cs : sn, c1 = (q & 1) ? sn : cs;
  *sin_out = (q & 2) ? -s1 : s1;
  *cos_out = ((q + 1) & 2) ? -c1 : c1;
}
