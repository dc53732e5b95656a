// How fast this core retires 256-bit and 512-bit FMAs. Some AVX-512 CPUs
// (AMD Zen 4, and Zen 5 parts with a 256-bit datapath) split each 512-bit
// FMA in two, so 512-bit code has no throughput over AVX2 there, and
// OpenBLAS's AVX2 kernels ran about 6% faster than its AVX-512 ones on such a
// machine (docs/design.md). Compiled with AVX-512 flags: call the 512-bit
// probe only where the CPU has AVX-512F.
#include <immintrin.h>

#include <chrono>
#include <cstring>

namespace fusedae {
namespace cpu {

namespace {

constexpr int kChains = 12;       // independent accumulators: enough to hide FMA latency
constexpr long kIterations = 1L << 16;

template <class V, V (*Fma)(V, V, V), V (*Set1)(float)>
double fma_rate(int lanes) {
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = Set1(static_cast<float>(i));
  const V mul = Set1(0.999999f), add = Set1(1e-7f);
  const auto t0 = std::chrono::steady_clock::now();
  for (long k = 0; k < kIterations; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = Fma(acc[i], mul, add);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Keep the result alive so the loop is not optimised away.
  volatile float sink = 0;
  float tmp[16];
  for (int i = 0; i < kChains; ++i) {
    std::memcpy(tmp, &acc[i], sizeof(float) * lanes);
    sink = sink + tmp[0];
  }
  return 2.0 * lanes * kChains * kIterations / s;
}

__m256 fma256(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
__m256 set256(float v) { return _mm256_set1_ps(v); }
__m512 fma512(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
__m512 set512(float v) { return _mm512_set1_ps(v); }

// Best of three, in flop/s (the first run may meet a core still clocking up).
template <double (*Rate)()>
double best_of_three() {
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    const double v = Rate();
    best = v > best ? v : best;
  }
  return best;
}

double rate_256() { return fma_rate<__m256, fma256, set256>(8); }
double rate_512() { return fma_rate<__m512, fma512, set512>(16); }

}  // namespace

double fma_rate_256() { return best_of_three<rate_256>(); }
double fma_rate_512() { return best_of_three<rate_512>(); }

}  // namespace cpu
}  // namespace fusedae
