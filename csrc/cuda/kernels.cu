// The CUDA backend's kernels: the fused epilogues of a training step, the
// optimizer, the minibatch gather with its noise, and the reductions that
// finish a step. Math follows csrc/cpu/kernels.inl line for line (activation,
// loss, delta, sparsity, optimizer formulas, in the float type T), so the two
// backends differ only in summation order and last-bit rounding.
#include "cuda/kernels.cuh"

#include <cuda_runtime.h>

#include "cuda/block_sum.cuh"
#include "cuda/cuda_check.hpp"
#include "cuda/device_math.cuh"
#include "cuda/rng.cuh"

namespace fusedae {
namespace cuda {
namespace kern {

namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

int flat_blocks(std::int64_t work, int per_block = kThreads) {
  const std::int64_t b = ceil_div(work, per_block);
  return static_cast<int>(b < 1 ? 1 : (b > kFlatBlocks ? kFlatBlocks : b));
}

// ---- block reductions (fixed order: deterministic) ------------------------

static_assert(kThreads == 256, "block_sum reduces 256-thread blocks");


// Column partial of a (32 × 8) tile block: Σ over the 8 row lanes of each
// column, written to part[blockIdx.y·n + c].
__device__ __forceinline__ void store_col_partial(double v, double (*sm)[kTileCols + 1],
                                                  double* part, std::int64_t n, std::int64_t c) {
  sm[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.y == 0 && c < n) {
    double s = 0.0;
#pragma unroll
    for (int k = 0; k < kTileRows; ++k) s += sm[k][threadIdx.x];
    part[static_cast<std::int64_t>(blockIdx.y) * n + c] = s;
  }
}

__device__ __forceinline__ bool diverged(const StepControl* ctl) { return ctl && ctl->diverged; }
__device__ __forceinline__ bool not_ok(const StepControl* ctl) { return ctl && !ctl->ok; }

// ---- forward epilogues ----------------------------------------------------

template <class T, Activation A>
__global__ void __launch_bounds__(kThreads)
bias_act_kernel(T* __restrict__ z, std::int64_t rows, std::int64_t n, const T* __restrict__ b,
                std::int64_t rpc, double* __restrict__ rho_part, const StepControl* ctl) {
  if (diverged(ctl)) return;
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kTileCols + threadIdx.x;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * rpc;
  const std::int64_t r1 = r0 + rpc < rows ? r0 + rpc : rows;
  double acc = 0.0;
  if (c < n) {
    const T bc = b[c];
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const std::int64_t i = r * n + c;
      const T v = dev::act<T, A>(z[i] + bc);
      z[i] = v;
      acc += static_cast<double>(v);
    }
  }
  if (rho_part) {
    __shared__ double sm[kTileRows][kTileCols + 1];
    store_col_partial(acc, sm, rho_part, n, c);
  }
}

// One warp per row (grid-stride over rows): the row's maximum, e^(z - max)
// and its sum, then the division; the same shifts as the CPU's bias_softmax.
// One warp, one row: row += b in place, and the row's maximum (after the
// bias) in every lane: the shift of a softmax, so no exponent is positive.
template <class T>
__device__ __forceinline__ T warp_add_bias_row_max(T* row, const T* b, std::int64_t n, int lane) {
  T mx = row[0] + b[0];
  __syncwarp();  // every lane has read row[0] before lane 0 overwrites it
  for (std::int64_t j = lane; j < n; j += 32) {
    const T v = row[j] + b[j];
    row[j] = v;
    mx = v > mx ? v : mx;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const T other = __shfl_xor_sync(0xffffffffu, mx, o);
    mx = other > mx ? other : mx;
  }
  return mx;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
bias_softmax_kernel(T* __restrict__ z, std::int64_t rows, std::int64_t n, const T* __restrict__ b) {
  const int lane = threadIdx.x & 31;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * (kThreads / 32);
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
       r < rows; r += warps) {
    T* row = z + r * n;
    const T mx = warp_add_bias_row_max(row, b, n, lane);
    double sum = 0.0;
    for (std::int64_t j = lane; j < n; j += 32) {
      const T e = dev::Math<T>::exp(row[j] - mx);
      row[j] = e;
      sum += static_cast<double>(e);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const T inv = static_cast<T>(1.0 / sum);
    for (std::int64_t j = lane; j < n; j += 32) row[j] *= inv;
  }
}

// ---- output epilogues -----------------------------------------------------

template <class T, Activation A, Loss Lo>
__global__ void __launch_bounds__(kThreads)
output_delta_kernel(T* __restrict__ z, const T* __restrict__ y, std::int64_t rows, std::int64_t n,
                    const T* __restrict__ b, T inv_b, std::int64_t rpc,
                    double* __restrict__ col_part, double* __restrict__ loss_part,
                    const StepControl* ctl) {
  if (diverged(ctl)) return;
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kTileCols + threadIdx.x;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * rpc;
  const std::int64_t r1 = r0 + rpc < rows ? r0 + rpc : rows;
  double csum = 0.0, lsum = 0.0;
  if (c < n) {
    const T bc = b[c];
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const std::int64_t i = r * n + c;
      const T zz = z[i] + bc;
      const T yy = y[i];
      T d, l;
      if constexpr (Lo == Loss::BinaryCrossEntropy) {
        // From the logit: e = e^{-|z|} gives σ(z) and the softplus tail at once.
        const T e = dev::Math<T>::exp(-dev::absval(zz));
        const T inv = T(1) / (T(1) + e);
        const T a = zz >= T(0) ? inv : e * inv;
        l = dev::max0(zz) - zz * yy + dev::Math<T>::log1p_unit(e);
        d = a - yy;
      } else {
        const T a = dev::act<T, A>(zz);
        const T diff = a - yy;
        l = T(0.5) * diff * diff;
        d = diff * dev::dact<T, A>(a);
      }
      lsum += static_cast<double>(l);
      const T out = d * inv_b;
      z[i] = out;
      csum += static_cast<double>(out);
    }
  }
  __shared__ double sm[kTileRows][kTileCols + 1];
  __shared__ double wsum[kThreads / 32];
  store_col_partial(csum, sm, col_part, n, c);
  const double total = block_sum(lsum, wsum);
  if (threadIdx.x == 0 && threadIdx.y == 0)
    loss_part[static_cast<std::int64_t>(blockIdx.y) * gridDim.x + blockIdx.x] = total;
}

// Softmax + categorical cross entropy from the logits, one warp per row:
// loss Σ_k y_k (logsumexp(z) − z_k) in double from the shifted logits, and
// δ = (softmax(Z)·Σy − y)/B (csrc/cpu/kernels.inl: softmax_cross_entropy_delta).
template <class T>
__global__ void __launch_bounds__(kThreads)
softmax_ce_kernel(T* __restrict__ z, const T* __restrict__ y, std::int64_t rows, std::int64_t n,
                  const T* __restrict__ b, T inv_b, double* __restrict__ loss_part,
                  const StepControl* ctl) {
  if (diverged(ctl)) return;
  const int lane = threadIdx.x & 31;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * (kThreads / 32);
  double lsum = 0.0;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
       r < rows; r += warps) {
    T* row = z + r * n;
    const T* yr = y + r * n;
    const T mx = warp_add_bias_row_max(row, b, n, lane);
    double sum = 0.0, ysum = 0.0, yz = 0.0;
    for (std::int64_t j = lane; j < n; j += 32) {
      const T shifted = row[j] - mx;
      const T e = dev::Math<T>::exp(shifted);
      row[j] = e;
      sum += static_cast<double>(e);
      ysum += static_cast<double>(yr[j]);
      yz += static_cast<double>(yr[j]) * static_cast<double>(shifted);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      sum += __shfl_xor_sync(0xffffffffu, sum, o);
      ysum += __shfl_xor_sync(0xffffffffu, ysum, o);
      yz += __shfl_xor_sync(0xffffffffu, yz, o);
    }
    if (lane == 0) lsum += ysum * log(sum) - yz;
    const T scale = static_cast<T>(ysum / sum);
    for (std::int64_t j = lane; j < n; j += 32) row[j] = (row[j] * scale - yr[j]) * inv_b;
  }
  __shared__ double wsum[kThreads / 32];
  const double total = block_sum(lsum, wsum);  // only lane 0 of each warp holds a sum
  if (threadIdx.x == 0) loss_part[blockIdx.x] = total;
}

// Plain column sums (db_L after the row-wise softmax epilogue).
template <class T>
__global__ void __launch_bounds__(kThreads)
colsum_kernel(const T* __restrict__ m, std::int64_t rows, std::int64_t n, std::int64_t rpc,
              double* __restrict__ part, const StepControl* ctl) {
  if (not_ok(ctl)) return;
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kTileCols + threadIdx.x;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * rpc;
  const std::int64_t r1 = r0 + rpc < rows ? r0 + rpc : rows;
  double acc = 0.0;
  if (c < n)
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows)
      acc += static_cast<double>(m[r * n + c]);
  __shared__ double sm[kTileRows][kTileCols + 1];
  store_col_partial(acc, sm, part, n, c);
}

// ---- backward epilogue ----------------------------------------------------

template <class T, Activation A>
__global__ void __launch_bounds__(kThreads)
hidden_delta_kernel(T* __restrict__ g, const T* __restrict__ a, std::int64_t rows, std::int64_t n,
                    const T* __restrict__ s, std::int64_t rpc, double* __restrict__ col_part,
                    const StepControl* ctl) {
  if (not_ok(ctl)) return;
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kTileCols + threadIdx.x;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * rpc;
  const std::int64_t r1 = r0 + rpc < rows ? r0 + rpc : rows;
  double acc = 0.0;
  if (c < n) {
    const T sc = s ? s[c] : T(0);
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const std::int64_t i = r * n + c;
      const T d = s ? (g[i] + sc) * dev::dact<T, A>(a[i]) : g[i] * dev::dact<T, A>(a[i]);
      g[i] = d;
      acc += static_cast<double>(d);
    }
  }
  __shared__ double sm[kTileRows][kTileCols + 1];
  store_col_partial(acc, sm, col_part, n, c);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
finish_colsum_kernel(const double* __restrict__ part, int chunks, std::int64_t n, T* __restrict__ out,
                     const StepControl* ctl) {
  if (not_ok(ctl)) return;
  for (std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < n;
       c += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (int k = 0; k < chunks; ++k) s += part[static_cast<std::int64_t>(k) * n + c];
    out[c] = static_cast<T>(s);
  }
}

// ---- end of the forward pass ----------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
finalize_kernel(StepControl* ctl, const double* __restrict__ loss_part, int n_loss_part,
                std::int64_t rows, const double* __restrict__ rho_part, int rho_chunks,
                std::int64_t ns, double rho, double beta, double eps, T* __restrict__ s,
                int mode, int check_inputs) {
  __shared__ double sm[kThreads / 32];
  if (ctl->diverged) {  // an earlier step of this fit diverged: nothing more applies
    if (threadIdx.x == 0) ctl->ok = 0;
    return;
  }
  const double B = static_cast<double>(rows);
  double v = 0.0;
  for (int i = threadIdx.x; i < n_loss_part; i += blockDim.x) v += loss_part[i];
  const double data = block_sum(v, sm);
  double kl = 0.0;
  if (ns > 0) {
    double part = 0.0;
    for (std::int64_t j = threadIdx.x; j < ns; j += blockDim.x) {
      double sum = 0.0;
      for (int k = 0; k < rho_chunks; ++k) sum += rho_part[static_cast<std::int64_t>(k) * ns + j];
      double rh = sum / B;
      rh = rh < eps ? eps : (rh > 1.0 - eps ? 1.0 - eps : rh);
      part += rho * log(rho / rh) + (1.0 - rho) * log((1.0 - rho) / (1.0 - rh));
      s[j] = static_cast<T>(beta * (-rho / rh + (1.0 - rho) / (1.0 - rh)) / B);
    }
    kl = block_sum(part, sm);
  }
  if (threadIdx.x == 0) {
    double loss = data / B;
    if (ns > 0) loss += beta * kl;
    ctl->loss = loss;
    const bool bad = check_inputs && (ctl->bad_x || ctl->bad_y);
    const bool ok = !bad && isfinite(loss);
    ctl->ok = ok ? 1 : 0;
    if (ok && mode == static_cast<int>(StepMode::Update)) {
      const double t = static_cast<double>(ctl->t0 + ctl->applied + 1);
      ctl->adam_step = ctl->lr / (1.0 - pow(ctl->beta1, t));
      ctl->adam_inv_sqrt_bc2 = 1.0 / sqrt(1.0 - pow(ctl->beta2, t));
    }
  }
}

// ---- optimizer --------------------------------------------------------------

// Is element i a weight? segs = [w_1, b_1, w_2, b_2, ...] ascending, segs[0] = 0.
__device__ __forceinline__ bool is_weight(const std::int64_t* __restrict__ segs, int n_segs,
                                          std::int64_t i) {
  int lo = 0, hi = n_segs - 1;  // last k with segs[k] <= i
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (segs[mid] <= i) lo = mid;
    else hi = mid - 1;
  }
  return (lo & 1) == 0;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
optimizer_kernel(const StepControl* ctl, T* __restrict__ p, T* __restrict__ g, T* __restrict__ s0,
                 T* __restrict__ s1, std::int64_t n, const std::int64_t* __restrict__ segs,
                 int n_segs, T lam, int decay, double* __restrict__ sumsq_part, int mode) {
  if (!ctl->ok) return;
  const int kind = ctl->opt_kind;
  const T lr = static_cast<T>(ctl->lr);
  const T mu = static_cast<T>(ctl->momentum);
  const T b1 = static_cast<T>(ctl->beta1), b2 = static_cast<T>(ctl->beta2);
  const T step = static_cast<T>(ctl->adam_step);
  const T inv_sqrt_bc2 = static_cast<T>(ctl->adam_inv_sqrt_bc2);
  const T eps = static_cast<T>(ctl->eps);
  double sq = 0.0;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const T pi = p[i];
    T li = T(0);
    if (decay && is_weight(segs, n_segs, i)) {
      li = lam;
      sq += static_cast<double>(pi) * static_cast<double>(pi);
    }
    if (mode == static_cast<int>(StepMode::Gradient)) {
      // The CPU's loss_and_gradient: g += λW on the weights, biases as they are.
      if (li != T(0)) g[i] = g[i] + li * pi;
      continue;
    }
    switch (kind) {
      case static_cast<int>(Optimizer::SGD):
        p[i] = pi - lr * (g[i] + li * pi);
        break;
      case static_cast<int>(Optimizer::Momentum): {
        const T v = mu * s0[i] + (g[i] + li * pi);
        s0[i] = v;
        p[i] = pi - lr * v;
        break;
      }
      default: {  // Adam, PyTorch's form (as the CPU)
        const T gi = g[i] + li * pi;
        const T m = b1 * s0[i] + (T(1) - b1) * gi;
        const T v = b2 * s1[i] + (T(1) - b2) * gi * gi;
        s0[i] = m;
        s1[i] = v;
        p[i] = pi - step * m / (sqrt(v) * inv_sqrt_bc2 + eps);
        break;
      }
    }
  }
  if (decay) {
    __shared__ double sm[kThreads / 32];
    const double total = block_sum(sq, sm);
    if (threadIdx.x == 0) sumsq_part[blockIdx.x] = total;
  }
}

__global__ void __launch_bounds__(kThreads)
step_end_kernel(StepControl* ctl, const double* __restrict__ sumsq_part, int n_part, double lam,
                std::int64_t rows, int mode) {
  __shared__ double sm[kThreads / 32];
  const bool was_diverged = ctl->diverged != 0;
  const bool ok = ctl->ok != 0;
  double v = 0.0;
  if (ok && lam > 0)
    for (int i = threadIdx.x; i < n_part; i += blockDim.x) v += sumsq_part[i];
  const double sumsq = block_sum(v, sm);  // every thread reached the barriers
  if (threadIdx.x != 0) return;
  ++ctl->batch;
  if (was_diverged) return;
  const double loss = ctl->loss;
  if (ok) {
    const double total = lam > 0 ? loss + 0.5 * lam * sumsq : loss;
    ctl->total = total;
    if (mode == static_cast<int>(StepMode::Update)) {
      ++ctl->applied;
      ctl->seen += rows;
      ctl->weighted += total * static_cast<double>(rows);
    }
  } else {
    ctl->total = loss;
    const bool bad_inputs = ctl->bad_x || ctl->bad_y;
    if (mode == static_cast<int>(StepMode::Update) && !bad_inputs) {
      ctl->diverged = 1;
      ctl->last_loss = loss;
    }
  }
}

// ---- minibatch gather and noise --------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
gather_kernel(const StepControl* ctl, const T* __restrict__ x, const T* __restrict__ y,
              const std::int64_t* __restrict__ perm, std::int64_t bs, std::int64_t m,
              std::int64_t nin, std::int64_t nout, int noise, T level, T half,
              T* __restrict__ inputs_out, T* __restrict__ clean_out, T* __restrict__ targets_out) {
  if (ctl->diverged) return;
  const std::int64_t first = ctl->batch * bs;
  const std::uint32_t stream = static_cast<std::uint32_t>(ctl->noise0 + ctl->batch);
  const std::uint64_t seed = ctl->seed;
  const Noise kind = static_cast<Noise>(noise);
  const std::int64_t ne = m * nin;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  // One Philox block (four consecutive elements of the flattened batch) per
  // thread and iteration, so each block's words are drawn once.
  for (std::int64_t blk = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       4 * blk < ne; blk += stride) {
    T v[4] = {T(0), T(0), T(0), T(0)};
    if (kind != Noise::None)
      dev::noise_block<T>(kind, level, seed, stream, static_cast<std::uint64_t>(blk), v);
#pragma unroll
    for (int h = 0; h < 4; ++h) {
      const std::int64_t e = 4 * blk + h;
      if (e >= ne) break;
      const std::int64_t i = e / nin, j = e - i * nin;
      const std::int64_t src = perm ? perm[first + i] : first + i;
      const T xv = x[src * nin + j];
      if (clean_out) clean_out[e] = xv;
      inputs_out[e] = kind == Noise::None ? xv : dev::corrupt_one(kind, xv, v[h], level, half);
    }
  }
  if (targets_out) {
    const std::int64_t nt = m * nout;
    for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < nt;
         e += stride) {
      const std::int64_t i = e / nout, j = e - i * nout;
      const std::int64_t src = perm ? perm[first + i] : first + i;
      targets_out[e] = y[src * nout + j];
    }
  }
}

// ---- input checks -----------------------------------------------------------

__device__ __forceinline__ bool bad_value(float v) {
  return (__float_as_uint(v) & 0x7F800000u) == 0x7F800000u;
}
__device__ __forceinline__ bool bad_value(double v) {
  return (static_cast<unsigned long long>(__double_as_longlong(v)) & 0x7FF0000000000000ull) ==
         0x7FF0000000000000ull;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
nonfinite_kernel(const T* __restrict__ p, std::int64_t n, std::int32_t* flag) {
  int bad = 0;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    bad |= bad_value(p[i]) ? 1 : 0;
  if (__syncthreads_or(bad) && threadIdx.x == 0) *flag = 1;
}

// ---- building blocks of composite models ------------------------------------

template <class T, Activation A>
__global__ void __launch_bounds__(kThreads)
scale_by_derivative_kernel(T* __restrict__ out, const T* __restrict__ d, std::int64_t rows,
                           std::int64_t n, std::int64_t rpc, double* __restrict__ col_part,
                           const StepControl* ctl) {
  if (not_ok(ctl)) return;
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kTileCols + threadIdx.x;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * rpc;
  const std::int64_t r1 = r0 + rpc < rows ? r0 + rpc : rows;
  double acc = 0.0;
  if (c < n) {
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const std::int64_t i = r * n + c;
      const T v = d[i] * dev::dact<T, A>(out[i]);
      out[i] = v;
      acc += static_cast<double>(v);
    }
  }
  __shared__ double sm[kTileRows][kTileCols + 1];
  store_col_partial(acc, sm, col_part, n, c);
}

__global__ void update_begin_kernel(StepControl* ctl) {
  if (!ctl->ok) return;
  const double t = static_cast<double>(ctl->t0 + ctl->applied + 1);
  ctl->adam_step = ctl->lr / (1.0 - pow(ctl->beta1, t));
  ctl->adam_inv_sqrt_bc2 = 1.0 / sqrt(1.0 - pow(ctl->beta2, t));
}

__global__ void __launch_bounds__(kThreads)
decay_end_kernel(StepControl* ctl, const double* __restrict__ sumsq_part, int n_part, double lam,
                 int count, double* decay) {
  __shared__ double sm[kThreads / 32];
  const bool ok = ctl->ok != 0;
  double v = 0.0;
  if (ok)
    for (int i = threadIdx.x; i < n_part; i += blockDim.x) v += sumsq_part[i];
  const double sumsq = block_sum(v, sm);  // every thread reaches the barriers
  if (threadIdx.x != 0 || !ok) return;
  if (decay) *decay = n_part > 0 ? 0.5 * lam * sumsq : 0.0;
  if (count) ++ctl->applied;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
weights_sumsq_kernel(const T* __restrict__ p, std::int64_t n, const std::int64_t* __restrict__ segs,
                     int n_segs, double lam, const std::int32_t* gate, double* decay) {
  __shared__ double sm[kThreads / 32];
  if (!*gate) return;  // the same for every thread: no barrier is skipped by some only
  double v = 0.0;
  for (int k = 0; k < n_segs; k += 2) {  // weight segment k: [segs[k], segs[k + 1])
    const std::int64_t a = segs[k], b = k + 1 < n_segs ? segs[k + 1] : n;
    for (std::int64_t i = a + threadIdx.x; i < b; i += blockDim.x)
      v += static_cast<double>(p[i]) * static_cast<double>(p[i]);
  }
  const double sumsq = block_sum(v, sm);
  if (threadIdx.x == 0) *decay = lam > 0 ? 0.5 * lam * sumsq : 0.0;
}

// Calls F::template run<A>(args...) for the activation chosen at run time
// (the CPU's with_activation); softmax never reaches an elementwise kernel.
template <class F, class... Args>
auto with_activation(Activation a, Args&&... args) {
  switch (a) {
    case Activation::Sigmoid: return F::template run<Activation::Sigmoid>(args...);
    case Activation::Tanh: return F::template run<Activation::Tanh>(args...);
    case Activation::Relu: return F::template run<Activation::Relu>(args...);
    case Activation::LeakyRelu: return F::template run<Activation::LeakyRelu>(args...);
    case Activation::Identity: break;
    case Activation::Softmax: break;
  }
  return F::template run<Activation::Identity>(args...);
}

dim3 tile_block() { return dim3(kTileCols, kTileRows); }
dim3 tile_grid(const Tiling& t) {
  return dim3(static_cast<unsigned>(t.ctiles), static_cast<unsigned>(t.chunks));
}

template <class T> struct LaunchBiasAct {
  template <Activation A>
  static void run(const Tiling& t, cudaStream_t st, T* z, std::int64_t rows, std::int64_t n,
                  const T* b, double* rho_part, const StepControl* ctl) {
    bias_act_kernel<T, A><<<tile_grid(t), tile_block(), 0, st>>>(z, rows, n, b, t.rows_per_chunk,
                                                                 rho_part, ctl);
  }
};

template <class T> struct LaunchOutputSE {
  template <Activation A>
  static void run(const Tiling& t, cudaStream_t st, T* z, const T* y, std::int64_t rows,
                  std::int64_t n, const T* b, T inv_b, double* col_part, double* loss_part,
                  const StepControl* ctl) {
    output_delta_kernel<T, A, Loss::SquaredError><<<tile_grid(t), tile_block(), 0, st>>>(
        z, y, rows, n, b, inv_b, t.rows_per_chunk, col_part, loss_part, ctl);
  }
};

template <class T> struct LaunchHiddenDelta {
  template <Activation A>
  static void run(const Tiling& t, cudaStream_t st, T* g, const T* a, std::int64_t rows,
                  std::int64_t n, const T* s, double* col_part, const StepControl* ctl) {
    hidden_delta_kernel<T, A><<<tile_grid(t), tile_block(), 0, st>>>(g, a, rows, n, s,
                                                                     t.rows_per_chunk, col_part, ctl);
  }
};

template <class T> struct LaunchScaleByDerivative {
  template <Activation A>
  static void run(const Tiling& t, cudaStream_t st, T* out, const T* d, std::int64_t rows,
                  std::int64_t n, double* col_part, const StepControl* ctl) {
    scale_by_derivative_kernel<T, A><<<tile_grid(t), tile_block(), 0, st>>>(
        out, d, rows, n, t.rows_per_chunk, col_part, ctl);
  }
};

}  // namespace

Tiling tiling(std::int64_t rows, std::int64_t n) {
  Tiling t;
  const std::int64_t ctiles = ceil_div(n, kTileCols);
  std::int64_t chunks = max_chunks(n);
  const std::int64_t by_rows = ceil_div(rows, kMinRowsPerChunk);
  if (by_rows < chunks) chunks = by_rows;
  if (chunks < 1) chunks = 1;
  t.rows_per_chunk = ceil_div(rows, chunks);
  t.chunks = static_cast<int>(ceil_div(rows, t.rows_per_chunk));  // no empty chunk
  t.ctiles = static_cast<int>(ctiles);
  return t;
}

std::int64_t max_chunks(std::int64_t n) {
  const std::int64_t ctiles = ceil_div(n, kTileCols);
  std::int64_t c = ceil_div(kTargetBlocks, ctiles);
  if (c > kMaxChunks) c = kMaxChunks;
  return c < 1 ? 1 : c;
}

std::int64_t max_loss_partials(std::int64_t n) {
  const std::int64_t tiles = ceil_div(n, kTileCols) * max_chunks(n);
  return tiles > kFlatBlocks ? tiles : kFlatBlocks;
}

template <class T>
Tiling bias_act(Activation a, T* z, std::int64_t rows, std::int64_t n, const T* b,
                double* rho_part, const StepControl* ctl, cudaStream_t stream) {
  const Tiling t = tiling(rows, n);
  with_activation<LaunchBiasAct<T>>(a, t, stream, z, rows, n, b, rho_part, ctl);
  FUSEDAE_LAUNCHED("bias_act_kernel");
  return t;
}

template <class T>
void bias_softmax(T* z, std::int64_t rows, std::int64_t n, const T* b, cudaStream_t stream) {
  bias_softmax_kernel<T><<<flat_blocks(rows, kThreads / 32), kThreads, 0, stream>>>(z, rows, n, b);
  FUSEDAE_LAUNCHED("bias_softmax_kernel");
}

template <class T>
OutputPartials output_delta(Activation a, Loss loss, T* z, const T* y, std::int64_t rows,
                            std::int64_t n, const T* b, double* col_part, double* loss_part,
                            const StepControl* ctl, cudaStream_t stream) {
  OutputPartials out;
  const T inv_b = T(1) / static_cast<T>(rows);
  out.col = tiling(rows, n);
  switch (loss) {
    case Loss::CategoricalCrossEntropy: {
      const int blocks = flat_blocks(rows, kThreads / 32);
      softmax_ce_kernel<T><<<blocks, kThreads, 0, stream>>>(z, y, rows, n, b, inv_b, loss_part, ctl);
      FUSEDAE_LAUNCHED("softmax_ce_kernel");
      colsum_kernel<T><<<tile_grid(out.col), tile_block(), 0, stream>>>(
          z, rows, n, out.col.rows_per_chunk, col_part, nullptr);
      FUSEDAE_LAUNCHED("colsum_kernel");
      out.loss_partials = blocks;
      return out;
    }
    case Loss::BinaryCrossEntropy:
      output_delta_kernel<T, Activation::Sigmoid, Loss::BinaryCrossEntropy>
          <<<tile_grid(out.col), tile_block(), 0, stream>>>(z, y, rows, n, b, inv_b,
                                                            out.col.rows_per_chunk, col_part,
                                                            loss_part, ctl);
      break;
    case Loss::SquaredError:
      with_activation<LaunchOutputSE<T>>(a, out.col, stream, z, y, rows, n, b, inv_b, col_part,
                                         loss_part, ctl);
      break;
  }
  FUSEDAE_LAUNCHED("output_delta_kernel");
  out.loss_partials = out.col.ctiles * out.col.chunks;
  return out;
}

template <class T>
Tiling hidden_delta(Activation a, T* g, const T* act, std::int64_t rows, std::int64_t n,
                    const T* s, double* col_part, const StepControl* ctl, cudaStream_t stream) {
  const Tiling t = tiling(rows, n);
  with_activation<LaunchHiddenDelta<T>>(a, t, stream, g, act, rows, n, s, col_part, ctl);
  FUSEDAE_LAUNCHED("hidden_delta_kernel");
  return t;
}

template <class T>
void finish_colsum(const double* part, int chunks, std::int64_t n, T* out, const StepControl* ctl,
                   cudaStream_t stream) {
  finish_colsum_kernel<T><<<flat_blocks(n), kThreads, 0, stream>>>(part, chunks, n, out, ctl);
  FUSEDAE_LAUNCHED("finish_colsum_kernel");
}

template <class T>
void finalize(StepControl* ctl, const double* loss_part, int n_loss_part, std::int64_t rows,
              const double* rho_part, int rho_chunks, std::int64_t n_sparse, double rho,
              double beta, double eps, T* s, StepMode mode, bool check_inputs,
              cudaStream_t stream) {
  finalize_kernel<T><<<1, kThreads, 0, stream>>>(ctl, loss_part, n_loss_part, rows, rho_part,
                                                 rho_chunks, n_sparse, rho, beta, eps, s,
                                                 static_cast<int>(mode), check_inputs ? 1 : 0);
  FUSEDAE_LAUNCHED("finalize_kernel");
}

template <class T>
int optimizer(StepControl* ctl, T* p, T* g, T* s0, T* s1, std::int64_t n,
              const std::int64_t* segs, int n_segs, double lam, double* sumsq_part,
              StepMode mode, cudaStream_t stream) {
  const int blocks = flat_blocks(n);
  optimizer_kernel<T><<<blocks, kThreads, 0, stream>>>(ctl, p, g, s0, s1, n, segs, n_segs,
                                                       static_cast<T>(lam), lam > 0 ? 1 : 0,
                                                       sumsq_part, static_cast<int>(mode));
  FUSEDAE_LAUNCHED("optimizer_kernel");
  return lam > 0 ? blocks : 0;
}

void step_end(StepControl* ctl, const double* sumsq_part, int n_part, double lam,
              std::int64_t rows, StepMode mode, cudaStream_t stream) {
  step_end_kernel<<<1, kThreads, 0, stream>>>(ctl, sumsq_part, n_part, lam, rows,
                                              static_cast<int>(mode));
  FUSEDAE_LAUNCHED("step_end_kernel");
}

template <class T>
void gather(const StepControl* ctl, const T* x, const T* y, const std::int64_t* perm,
            std::int64_t bs, std::int64_t m, std::int64_t nin, std::int64_t nout, Noise noise,
            double level, T* inputs_out, T* clean_out, T* targets_out, cudaStream_t stream) {
  const std::int64_t work = ceil_div(m * nin, 4) > m * nout ? ceil_div(m * nin, 4) : m * nout;
  gather_kernel<T><<<flat_blocks(work), kThreads, 0, stream>>>(
      ctl, x, y, perm, bs, m, nin, nout, static_cast<int>(noise), static_cast<T>(level),
      static_cast<T>(0.5 * level), inputs_out, clean_out, targets_out);
  FUSEDAE_LAUNCHED("gather_kernel");
}

template <class T>
void nonfinite(const T* p, std::int64_t n, std::int32_t* flag, cudaStream_t stream) {
  nonfinite_kernel<T><<<flat_blocks(n), kThreads, 0, stream>>>(p, n, flag);
  FUSEDAE_LAUNCHED("nonfinite_kernel");
}

template <class T>
Tiling scale_by_derivative(Activation a, T* out, const T* d_out, std::int64_t rows,
                           std::int64_t n, double* col_part, const StepControl* ctl,
                           cudaStream_t stream) {
  const Tiling t = tiling(rows, n);
  with_activation<LaunchScaleByDerivative<T>>(a, t, stream, out, d_out, rows, n, col_part, ctl);
  FUSEDAE_LAUNCHED("scale_by_derivative_kernel");
  return t;
}

void update_begin(StepControl* ctl, cudaStream_t stream) {
  update_begin_kernel<<<1, 1, 0, stream>>>(ctl);
  FUSEDAE_LAUNCHED("update_begin_kernel");
}

void decay_end(StepControl* ctl, const double* sumsq_part, int n_part, double lam, bool count,
               double* decay, cudaStream_t stream) {
  decay_end_kernel<<<1, kThreads, 0, stream>>>(ctl, sumsq_part, n_part, lam, count ? 1 : 0,
                                               decay);
  FUSEDAE_LAUNCHED("decay_end_kernel");
}

template <class T>
void weights_sumsq(const T* p, std::int64_t n, const std::int64_t* segs, int n_segs, double lam,
                   const std::int32_t* gate, double* decay, cudaStream_t stream) {
  weights_sumsq_kernel<T><<<1, kThreads, 0, stream>>>(p, n, segs, n_segs, lam, gate, decay);
  FUSEDAE_LAUNCHED("weights_sumsq_kernel");
}

cudaError_t probe_kernel_image() {
  cudaFuncAttributes attr;
  const cudaError_t err = cudaFuncGetAttributes(&attr, step_end_kernel);
  if (err != cudaSuccess) (void)cudaGetLastError();
  return err;
}

#define FUSEDAE_INSTANTIATE(T)                                                                  \
  template Tiling bias_act<T>(Activation, T*, std::int64_t, std::int64_t, const T*, double*,   \
                              const StepControl*, cudaStream_t);                                \
  template void bias_softmax<T>(T*, std::int64_t, std::int64_t, const T*, cudaStream_t);        \
  template OutputPartials output_delta<T>(Activation, Loss, T*, const T*, std::int64_t,          \
                                          std::int64_t, const T*, double*, double*,             \
                                          const StepControl*, cudaStream_t);                    \
  template Tiling hidden_delta<T>(Activation, T*, const T*, std::int64_t, std::int64_t,         \
                                  const T*, double*, const StepControl*, cudaStream_t);          \
  template void finish_colsum<T>(const double*, int, std::int64_t, T*, const StepControl*,      \
                                 cudaStream_t);                                                 \
  template void finalize<T>(StepControl*, const double*, int, std::int64_t, const double*, int, \
                            std::int64_t, double, double, double, T*, StepMode, bool,           \
                            cudaStream_t);                                                      \
  template int optimizer<T>(StepControl*, T*, T*, T*, T*, std::int64_t, const std::int64_t*,    \
                            int, double, double*, StepMode, cudaStream_t);                      \
  template void gather<T>(const StepControl*, const T*, const T*, const std::int64_t*,          \
                          std::int64_t, std::int64_t, std::int64_t, std::int64_t, Noise, double, \
                          T*, T*, T*, cudaStream_t);                                            \
  template void nonfinite<T>(const T*, std::int64_t, std::int32_t*, cudaStream_t);             \
  template Tiling scale_by_derivative<T>(Activation, T*, const T*, std::int64_t, std::int64_t,  \
                                         double*, const StepControl*, cudaStream_t);           \
  template void weights_sumsq<T>(const T*, std::int64_t, const std::int64_t*, int, double,      \
                                 const std::int32_t*, double*, cudaStream_t);

FUSEDAE_INSTANTIATE(float)
FUSEDAE_INSTANTIATE(double)
#undef FUSEDAE_INSTANTIATE

}  // namespace kern
}  // namespace cuda
}  // namespace fusedae
