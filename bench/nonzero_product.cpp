// Times the engine's nonzero product (cpu/kernels.inl, sparse_times_dense) on
// the first layer of W-mnist: X (256 × 784, each entry nonzero with
// probability P, then U(0,1)) times W_1 (784 × N), from X's row lists, on one
// thread, AVX-512 build of the kernels. Prints the median time of 2000 calls,
// the nanoseconds per listed entry and per entry and 16-float vector of
// output (the kernel does one FMA per entry and vector), and the largest
// error of the first rows against a float64 sum.
//
// With K > 1 the calls cycle through K batches drawn alike, as an epoch's
// steps do: the loops' trip counts then change from call to call, which the
// branch predictor can learn when one batch repeats (bench/step.py's loop of
// train_step on one batch). With `copies`, the K batches are copies of the
// first: the same memory as K batches, the trip counts of one.
//
//   g++ -O3 -std=c++17 -mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma \
//       -mprefer-vector-width=512 -ffp-contract=fast -fno-math-errno -fopenmp-simd \
//       -Icsrc bench/nonzero_product.cpp -o /tmp/nonzero_product
//   /tmp/nonzero_product [N=196] [P=0.2] [K=1 [copies]]
//
// The AVX2 variant: the same command with `-mavx2 -mfma` in place of the
// AVX-512 and prefer-vector-width flags; the generic one: with none of them.
//
// For the A/B of a change to the kernel: build this before and after, and run
// the two binaries alternately (the host's speed drifts within minutes).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include <immintrin.h>

#include "cpu/blas.hpp"
#include "cpu/thread_pool.hpp"
#include "kernels_for_bench.hpp"

using namespace fusedae;
using namespace fusedae::cpu::isa_bench;

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int main(int argc, char** argv) {
  const std::int64_t B = 256, n0 = 784;
  const std::int64_t N = argc > 1 ? std::atoll(argv[1]) : 196;
  const double density = argc > 2 ? std::atof(argv[2]) : 0.2;
  const int K = argc > 3 ? std::atoi(argv[3]) : 1;
  const bool copies = argc > 4 && std::strcmp(argv[4], "copies") == 0;
  if (N < 1 || N > 4096 || !(density > 0 && density <= 1) || K < 1 || K > 64 ||
      (argc > 4 && !copies)) {
    std::fprintf(stderr, "usage: %s [N in 1..4096] [P in (0, 1]] [K in 1..64 [copies]]\n",
                 argv[0]);
    return 2;
  }
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> x(K * B * n0), w(n0 * N), out(B * N);
  for (float& v : w) v = u(gen) - 0.5f;
  for (float& v : x) v = u(gen) < density ? u(gen) : 0.0f;
  if (copies)
    for (int q = 1; q < K; ++q) std::copy(x.begin(), x.begin() + B * n0, x.begin() + q * B * n0);

  auto aligned = [](std::size_t bytes) {
    return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  };
  const std::int64_t stride = nz_stride(n0), nb = nz_bounds(n0);
  // Batch q's lists at q·B·stride entries and q·B·nb bounds.
  float* val = static_cast<float*>(aligned(sizeof(float) * K * B * stride));
  std::int32_t* col = static_cast<std::int32_t*>(aligned(4 * K * B * stride));
  std::vector<std::int64_t> bounds(K * B * nb);
  std::vector<std::int32_t> counts(n0 + 16);
  float* slab = static_cast<float*>(aligned(sizeof(float) * n0 * kSlabElems));
  float* acc = static_cast<float*>(aligned(sizeof(float) * kNzBlock * kSlabElems));
  std::int64_t nnz = 0;  // per batch, on average
  for (int q = 0; q < K; ++q)
    nnz += list_row_nonzeros(x.data() + q * B * n0, static_cast<const std::int64_t*>(nullptr), 0,
                             B, n0, stride, val + q * B * stride, col + q * B * stride,
                             bounds.data() + q * B * nb, counts.data());
  nnz /= K;
  auto product = [&](int q) {
    sparse_times_dense(val + q * B * stride, col + q * B * stride, bounds.data() + q * B * nb, nb,
                       0, B, w.data(), n0, N, out.data(), N, slab, acc);
  };

  std::vector<double> times;
  for (int rep = 0; rep < 2000; ++rep) {
    const double t0 = now();
    product(rep % K);
    times.push_back(now() - t0);
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  product(0);  // the first batch's output, for the check below

  double err = 0.0;
  for (std::int64_t m = 0; m < 4; ++m)
    for (std::int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      for (std::int64_t k = 0; k < n0; ++k)
        s += static_cast<double>(x[m * n0 + k]) * w[k * N + j];
      err = std::max(err, std::fabs(s - out[m * N + j]));
    }
  const double vectors = static_cast<double>((N + 15) / 16);
  std::printf("N %lld, %.3f nonzero, %d batch(es)%s: %.1f us, %.3f ns per entry, %.3f ns per entry and vector, "
              "%.1f GFLOP/s of nonzeros, max error %.1e\n",
              static_cast<long long>(N), static_cast<double>(nnz) / (B * n0), K,
              copies ? " (copies of one)" : "", t * 1e6,
              t * 1e9 / nnz, t * 1e9 / nnz / vectors, 2.0 * nnz * N / t * 1e-9, err);
  std::free(val);
  std::free(col);
  std::free(slab);
  std::free(acc);
  return err < 1e-3 ? 0 : 1;
}
