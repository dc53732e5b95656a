// Philox4x32-10 counter-based RNG (Salmon et al., SC'11, "Parallel random
// numbers: as easy as 1, 2, 3"). Every random number the engine draws is a
// pure function of (seed, purpose tag, stream, index), so CPU and GPU give the
// same numbers and a fit can resume mid-way without saving generator state.
//
// Counter layout used everywhere in fusedae:
//   ctr = { block index low 32, block index high 32, stream, tag }
//   key = { seed low 32, seed high 32 }
// where `tag` names the purpose (Tag below), `stream` separates uses within
// one purpose (a layer for init, an epoch for shuffles, a step for noise),
// and draw k of a stream is word k%4 of block k/4.
//
// Everything here is `static inline` so that each instruction-set variant of
// the kernels gets its own copy (no cross-variant symbol merging).
//
// The generator itself (philox4x32_10, block, uniform24) is also compiled for
// the GPU when nvcc reads this header (FUSEDAE_HD), so the CUDA backend draws
// the very same words; the annotation changes no arithmetic.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FUSEDAE_HD __host__ __device__
#else
#define FUSEDAE_HD
#endif

namespace fusedae {
namespace philox {

enum Tag : std::uint32_t { kInit = 1, kShuffle = 2, kNoise = 3, kLatent = 4 };

struct U4 { std::uint32_t v[4]; };

FUSEDAE_HD static inline std::uint32_t mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t* hi) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  return static_cast<std::uint32_t>(p);
}

FUSEDAE_HD static inline U4 philox4x32_10(U4 c, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    std::uint32_t hi0, hi1;
    const std::uint32_t lo0 = mulhilo(M0, c.v[0], &hi0);
    const std::uint32_t lo1 = mulhilo(M1, c.v[2], &hi1);
    c = U4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return c;
}

// Block `block` of stream (tag, stream) under `seed`.
FUSEDAE_HD static inline U4 block(std::uint64_t seed, std::uint32_t tag, std::uint32_t stream,
                       std::uint64_t block) {
  const U4 c{{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
              stream, tag}};
  return philox4x32_10(c, static_cast<std::uint32_t>(seed),
                       static_cast<std::uint32_t>(seed >> 32));
}

// Uniform in [0, 1) with 24 random bits: exact in float32 and float64 alike,
// so both precisions see the same values.
FUSEDAE_HD static inline double uniform24(std::uint32_t u) {
  return static_cast<double>(u >> 8) * (1.0 / 16777216.0);
}

// Fisher-Yates over 0..n-1 driven by stream (kShuffle, epoch): draw k picks
// j = floor(u·(i+1)/2^32) for i = n-1-k (bias below n/2^32).
static inline void permutation(std::uint64_t seed, std::uint32_t epoch, std::int64_t n,
                               std::int64_t* perm) {
  for (std::int64_t i = 0; i < n; ++i) perm[i] = i;
  U4 u{};
  for (std::int64_t k = 0; k < n - 1; ++k) {
    if (k % 4 == 0) u = block(seed, kShuffle, epoch, static_cast<std::uint64_t>(k / 4));
    const std::int64_t i = n - 1 - k;
    const std::int64_t j = static_cast<std::int64_t>(
        (static_cast<std::uint64_t>(u.v[k % 4]) * static_cast<std::uint64_t>(i + 1)) >> 32);
    const std::int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

// Standard normal draws for latent variables, stream (kLatent, stream):
// element e of `out` is Box-Muller on the word pair (2h, 2h+1) of block e/4,
// h = (e%4)/2 (cosine for even e, sine for odd), in double precision.
template <class T>
static inline void normal(std::uint64_t seed, std::uint32_t stream, std::int64_t n, T* out) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (std::int64_t b = 0; 4 * b < n; ++b) {
    const U4 u = block(seed, kLatent, stream, static_cast<std::uint64_t>(b));
    for (int h = 0; h < 2; ++h) {
      const double u0 = (static_cast<double>(u.v[2 * h] >> 8) + 1.0) * (1.0 / 16777216.0);
      const double u1 = uniform24(u.v[2 * h + 1]);
      const double r = std::sqrt(-2.0 * std::log(u0));
      const std::int64_t e = 4 * b + 2 * h;
      if (e < n) out[e] = static_cast<T>(r * std::cos(kTwoPi * u1));
      if (e + 1 < n) out[e + 1] = static_cast<T>(r * std::sin(kTwoPi * u1));
    }
  }
}

}  // namespace philox
}  // namespace fusedae
