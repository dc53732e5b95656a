// Times the engine's output epilogue (cpu/kernels.inl, OutputDelta: bias,
// activation, squared-error loss and δ, δ's column sums) on one rows × n
// block, on one thread, AVX-512 build of the kernels, beside loops that do a
// part of its work: the same epilogue with the identity activation (no exp, no
// division), exp_f32 alone and the sigmoid alone over the block. Prints TSC
// ticks per 16-float vector, best of 200 runs, with the block's refill from a
// saved copy (a memcpy, timed on its own) taken off. TSC ticks are not core
// cycles (this host's TSC runs at 2.6 GHz); compare the columns with each
// other, or two builds of this file, not with instruction latencies.
//
//   g++ -O3 -std=c++17 -mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma \
//       -mprefer-vector-width=512 -ffp-contract=fast -fno-math-errno -fno-trapping-math \
//       -fopenmp-simd -Icsrc bench/output_epilogue.cpp -o /tmp/output_epilogue
//   taskset -c 0 /tmp/output_epilogue [ROWS=64] [N=64]     # W-tiny's block
//   taskset -c 0 /tmp/output_epilogue 256 784              # W-mnist's
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <x86intrin.h>

#include "kernels_for_bench.hpp"

using fusedae::Activation;
using fusedae::Loss;
using namespace fusedae::cpu::isa_bench;

// Fewest TSC ticks of `reps` calls of f.
template <class F>
static double best_ticks(F f, int reps) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const unsigned long long a = __rdtsc();
    f();
    t.push_back(static_cast<double>(__rdtsc() - a));
  }
  return *std::min_element(t.begin(), t.end());
}

int main(int argc, char** argv) {
  const long rows = argc > 1 ? std::atol(argv[1]) : 64, n = argc > 2 ? std::atol(argv[2]) : 64;
  if (rows < 1 || n < 16) {
    std::fprintf(stderr, "expected ROWS >= 1 and N >= 16\n");
    return 2;
  }
  const long size = rows * n;
  std::vector<float> c(size), saved(size), y(size), b(n);
  // Logits of either sign up to |3|, MNIST-like targets (a fifth nonzero).
  for (long i = 0; i < size; ++i) {
    saved[i] = 3.0f * std::sin(0.37f * static_cast<float>(i));
    y[i] = i % 5 == 0 ? std::fabs(std::cos(0.1f * static_cast<float>(i))) : 0.0f;
  }
  for (long j = 0; j < n; ++j) b[j] = 0.01f * static_cast<float>(j);
  std::vector<double> colsum(n), lsum(n);
  volatile double sink = 0.0;
  const float inv_b = 1.0f / static_cast<float>(rows);
  const auto refill = [&] { std::memcpy(c.data(), saved.data(), sizeof(float) * size); };
  const auto epilogue = [&](auto act_tag) {
    constexpr Activation A = decltype(act_tag)::value;
    refill();
    sink = sink + OutputDelta<float, Loss::SquaredError>::run<A>(
                      c.data(), rows, n, b.data(), y.data(), inv_b, colsum.data(), lsum.data());
  };
  using Sig = std::integral_constant<Activation, Activation::Sigmoid>;
  using Id = std::integral_constant<Activation, Activation::Identity>;
  const double vectors = static_cast<double>(size) / 16.0;
  const double copy = best_ticks(refill, 200);
  const double sigmoid_epilogue = best_ticks([&] { epilogue(Sig{}); }, 200);
  const double identity_epilogue = best_ticks([&] { epilogue(Id{}); }, 200);
  const double exp_only = best_ticks([&] {
    refill();
#pragma omp simd
    for (long i = 0; i < size; ++i) c[i] = exp_f32(-c[i]);
    sink = sink + c[3];
  }, 200);
  const double sigmoid_only = best_ticks([&] {
    refill();
#pragma omp simd
    for (long i = 0; i < size; ++i) c[i] = act<float, Activation::Sigmoid>(c[i]);
    sink = sink + c[3];
  }, 200);
  std::printf("%ld x %ld, TSC ticks per 16-float vector (refill %.1f taken off): "
              "sigmoid epilogue %.1f, identity epilogue %.1f, exp alone %.1f, sigmoid alone %.1f\n",
              rows, n, copy / vectors, (sigmoid_epilogue - copy) / vectors,
              (identity_epilogue - copy) / vectors, (exp_only - copy) / vectors,
              (sigmoid_only - copy) / vectors);
  return 0;
}
