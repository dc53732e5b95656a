// The composite models' elementwise kernels and their bookkeeping
// (composite_kernels.cuh). The arithmetic is core/composite.cpp's, in the
// same float type and order: σ = exp(½ log σ²) with the standard library's
// exp (as the CPU's composite code, which does not use the engine's fast
// polynomials), the KL terms in double, the encoder delta in T, the latent
// draws by Box–Muller in double on core/philox.hpp's words.
#include "cuda/composite_kernels.cuh"

#include <cuda_runtime.h>

#include "core/philox.hpp"
#include "cuda/block_sum.cuh"
#include "cuda/cuda_check.hpp"

namespace fusedae {
namespace cuda {
namespace kern {

namespace {

constexpr int kThreads = 256;
static_assert(kThreads == 256, "block_sum reduces 256-thread blocks");
constexpr int kMaxBlocks = 1024;

int blocks_for(std::int64_t work) {
  const std::int64_t b = (work + kThreads - 1) / kThreads;
  return static_cast<int>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}


__device__ __forceinline__ bool skipped(const CompositeControl* cc) {
  return cc->diverged || cc->stop;
}

__device__ __forceinline__ float std_exp(float x) { return expf(x); }
__device__ __forceinline__ double std_exp(double x) { return exp(x); }

__device__ __forceinline__ std::int64_t grid_start() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_stride() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

// ---- shared ------------------------------------------------------------------

__global__ void composite_gate_kernel(CompositeControl* cc, StepControl* a, StepControl* b) {
  if (!cc->bad_x && !cc->bad_y && !cc->bad_e) return;
  cc->stop = 1;
  a->diverged = b->diverged = 1;
  a->ok = b->ok = 0;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
latent_normal_kernel(const CompositeControl* cc, T* __restrict__ out, std::int64_t n) {
  if (skipped(cc)) return;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const std::uint64_t seed = cc->seed;
  const std::uint32_t stream = static_cast<std::uint32_t>(cc->latent0 + cc->latent);
  for (std::int64_t b = grid_start(); 4 * b < n; b += grid_stride()) {
    const philox::U4 u = philox::block(seed, philox::kLatent, stream, static_cast<std::uint64_t>(b));
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const double u0 = (static_cast<double>(u.v[2 * h] >> 8) + 1.0) * (1.0 / 16777216.0);
      const double u1 = philox::uniform24(u.v[2 * h + 1]);
      const double r = sqrt(-2.0 * log(u0));
      const std::int64_t e = 4 * b + 2 * h;
      if (e < n) out[e] = static_cast<T>(r * cos(kTwoPi * u1));
      if (e + 1 < n) out[e + 1] = static_cast<T>(r * sin(kTwoPi * u1));
    }
  }
}

// ---- VAE -----------------------------------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
vae_stage_kernel(const CompositeControl* cc, const T* __restrict__ x, const T* __restrict__ y,
                 const std::int64_t* __restrict__ perm, int fit, std::int64_t bs, std::int64_t m,
                 std::int64_t D, std::int64_t C, std::int64_t Z, T* __restrict__ enc_in,
                 T* __restrict__ xb, T* __restrict__ dec_in) {
  if (skipped(cc)) return;
  const std::int64_t first = fit ? cc->batch * bs : 0;
  auto source = [&](std::int64_t i) { return perm ? perm[first + i] : first + i; };
  const std::int64_t W = D + C;
  if (enc_in)
    for (std::int64_t e = grid_start(); e < m * W; e += grid_stride()) {
      const std::int64_t i = e / W, j = e - i * W, r = source(i);
      enc_in[e] = j < D ? x[r * D + j] : y[r * C + (j - D)];
    }
  if (xb)
    for (std::int64_t e = grid_start(); e < m * D; e += grid_stride()) {
      const std::int64_t i = e / D, j = e - i * D;
      xb[e] = x[source(i) * D + j];
    }
  if (dec_in && C > 0)
    for (std::int64_t e = grid_start(); e < m * C; e += grid_stride()) {
      const std::int64_t i = e / C, j = e - i * C;
      dec_in[i * (Z + C) + Z + j] = y[source(i) * C + j];
    }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
vae_reparameterise_kernel(const CompositeControl* cc, const T* __restrict__ E,
                          const T* __restrict__ eps, T* __restrict__ sd, T* __restrict__ dec_in,
                          std::int64_t m, std::int64_t Z, std::int64_t C,
                          double* __restrict__ kl_part) {
  __shared__ double sm[kThreads / 32];
  if (skipped(cc)) return;  // the same for the whole block
  double kl = 0.0;
  for (std::int64_t e = grid_start(); e < m * Z; e += grid_stride()) {
    const std::int64_t i = e / Z, j = e - i * Z;
    const T mu = E[i * 2 * Z + j];
    const T lv = E[i * 2 * Z + Z + j];
    const T s = std_exp(T(0.5) * lv);
    sd[e] = s;
    dec_in[i * (Z + C) + j] = mu + s * eps[e];
    kl += -0.5 * (1.0 + static_cast<double>(lv) - static_cast<double>(mu) * mu -
                  static_cast<double>(s) * s);
  }
  const double total = block_sum(kl, sm);
  if (threadIdx.x == 0) kl_part[blockIdx.x] = total;
}

__global__ void __launch_bounds__(kThreads)
vae_kl_kernel(CompositeControl* cc, const double* __restrict__ kl_part, int n_part,
              std::int64_t m, StepControl* enc, StepControl* dec) {
  __shared__ double sm[kThreads / 32];
  if (skipped(cc)) return;
  double v = 0.0;
  for (int i = threadIdx.x; i < n_part; i += blockDim.x) v += kl_part[i];
  const double sum = block_sum(v, sm);
  if (threadIdx.x != 0) return;
  const double kl = sum * (1.0 / static_cast<double>(m));
  cc->kl = kl;
  if (!isfinite(kl)) {
    // The CPU returns before the decoder: neither network changes.
    cc->stop = 1;
    enc->diverged = dec->diverged = 1;
    enc->ok = dec->ok = 0;
  }
}

__global__ void vae_decoder_done_kernel(CompositeControl* cc, StepControl* enc,
                                        const StepControl* dec) {
  if (cc->diverged) {
    enc->ok = 0;
    return;
  }
  if (!cc->stop && !dec->ok) cc->stop = 1;  // the decoder's loss is not finite
  enc->ok = cc->stop ? 0 : 1;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
vae_encoder_delta_kernel(const StepControl* enc, const T* __restrict__ E,
                         const T* __restrict__ dzin, const T* __restrict__ eps,
                         const T* __restrict__ sd, T* __restrict__ d, std::int64_t m,
                         std::int64_t Z, std::int64_t C) {
  if (!enc->ok) return;
  const double inv_b = 1.0 / static_cast<double>(m);
  const T tb = static_cast<T>(inv_b), half_b = static_cast<T>(0.5 * inv_b);
  for (std::int64_t e = grid_start(); e < m * Z; e += grid_stride()) {
    const std::int64_t i = e / Z, j = e - i * Z;
    const T dz = dzin[i * (Z + C) + j], s = sd[e];
    d[i * 2 * Z + j] = dz + E[i * 2 * Z + j] * tb;
    d[i * 2 * Z + Z + j] = T(0.5) * dz * eps[e] * s + (s * s - T(1)) * half_b;
  }
}

__global__ void vae_end_kernel(CompositeControl* cc, StepControl* enc, StepControl* dec,
                               std::int64_t m, int update, int draws, int fit) {
  if (cc->diverged) return;           // an earlier step of the call failed
  if (cc->bad_x || cc->bad_y || cc->bad_e) return;  // refused: the host raises, nothing counted
  if (draws) ++cc->latent;
  if (fit) ++cc->batch;
  const double kl = cc->kl, da = cc->decay_a, db = cc->decay_b;
  double total, recon, decay;
  if (!cc->stop) {
    // Vae::run: recon = rec − dec_decay, where rec is the decoder's loss with
    // its decay term when it updated.
    recon = update ? (dec->loss + db) - db : dec->loss;
    decay = da + db;
    total = recon + kl + decay;
    const double w = static_cast<double>(m);
    cc->sums[0] += total * w;
    cc->sums[1] += recon * w;
    cc->sums[2] += kl * w;
    cc->sums[3] += decay * w;
    ++cc->steps;
  } else {
    // The step that failed: its losses as the CPU reports them, nothing applied.
    decay = update ? da + db : 0.0;
    if (!isfinite(kl)) {
      total = kl;
      recon = 0.0;
    } else {
      recon = total = dec->loss;
    }
    cc->diverged = 1;
    cc->stop = 0;
    enc->diverged = dec->diverged = 1;
    enc->ok = dec->ok = 0;
  }
  cc->last[0] = total;
  cc->last[1] = recon;
  cc->last[2] = kl;
  cc->last[3] = decay;
}

// ---- GAN -----------------------------------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
gan_stage_kernel(const CompositeControl* cc, const T* __restrict__ x,
                 const std::int64_t* __restrict__ perm, int fit, std::int64_t bs, std::int64_t m,
                 std::int64_t D, T* __restrict__ dst) {
  if (skipped(cc)) return;
  const std::int64_t first = fit ? cc->batch * bs : 0;
  for (std::int64_t e = grid_start(); e < m * D; e += grid_stride()) {
    const std::int64_t i = e / D, j = e - i * D;
    const std::int64_t r = perm ? perm[first + i] : first + i;
    dst[e] = x[r * D + j];
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
fill_targets_kernel(T* __restrict__ t, std::int64_t n, std::int64_t split, T a, T b) {
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) t[i] = i < split ? a : b;
}

__global__ void gan_d_end_kernel(CompositeControl* cc, StepControl* g, StepControl* d,
                                 double* losses, int fit) {
  if (cc->diverged || cc->bad_x) return;
  ++cc->latent;  // Gan::d_step draws its fakes' latents whatever follows
  if (fit) ++cc->batch;
  const bool ok = d->ok != 0;
  const double loss = ok ? d->loss + cc->decay_b : d->loss;
  cc->loss = loss;
  if (losses) losses[cc->d_count] = loss;
  ++cc->d_count;
  if (!ok) {
    cc->diverged = 1;
    g->diverged = d->diverged = 1;
    g->ok = d->ok = 0;
  }
}

__global__ void gan_g_mid_kernel(const CompositeControl* cc, StepControl* g,
                                 const StepControl* d) {
  g->ok = (!cc->diverged && !cc->stop && d->ok) ? 1 : 0;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
negate_kernel(const StepControl* g, T* __restrict__ v, std::int64_t n) {
  if (!g->ok) return;
  for (std::int64_t i = grid_start(); i < n; i += grid_stride()) v[i] = -v[i];
}

__global__ void gan_g_end_kernel(CompositeControl* cc, StepControl* g, StepControl* d,
                                 double* losses, int minimax, int draws) {
  if (cc->diverged || cc->bad_x) return;
  if (draws) ++cc->latent;
  const bool ok = d->ok != 0;
  double loss = d->loss;  // not finite: reported as the discriminator computed it
  if (ok) {
    if (minimax) loss = -loss;
    loss += cc->decay_a;
  }
  cc->loss = loss;
  if (losses) losses[cc->g_count] = loss;
  ++cc->g_count;
  if (!ok) {
    cc->diverged = 1;
    g->diverged = d->diverged = 1;
    g->ok = d->ok = 0;
  }
}

}  // namespace

// ---- launchers -------------------------------------------------------------------

void composite_gate(CompositeControl* cc, StepControl* a, StepControl* b, cudaStream_t stream) {
  composite_gate_kernel<<<1, 1, 0, stream>>>(cc, a, b);
  FUSEDAE_LAUNCHED("composite_gate_kernel");
}

template <class T>
void latent_normal(const CompositeControl* cc, T* out, std::int64_t n, cudaStream_t stream) {
  latent_normal_kernel<T><<<blocks_for((n + 3) / 4), kThreads, 0, stream>>>(cc, out, n);
  FUSEDAE_LAUNCHED("latent_normal_kernel");
}

template <class T>
void vae_stage(const CompositeControl* cc, const T* x, const T* y, const std::int64_t* perm,
               bool fit, std::int64_t bs, std::int64_t m, std::int64_t D, std::int64_t C,
               std::int64_t Z, T* enc_in, T* xb, T* dec_in, cudaStream_t stream) {
  const std::int64_t work = m * (D + C);
  vae_stage_kernel<T><<<blocks_for(work), kThreads, 0, stream>>>(
      cc, x, y, perm, fit ? 1 : 0, bs, m, D, C, Z, enc_in, xb, dec_in);
  FUSEDAE_LAUNCHED("vae_stage_kernel");
}

template <class T>
int vae_reparameterise(const CompositeControl* cc, const T* E, const T* eps, T* sd, T* dec_in,
                       std::int64_t m, std::int64_t Z, std::int64_t C, double* kl_part,
                       cudaStream_t stream) {
  const int blocks = blocks_for(m * Z);
  vae_reparameterise_kernel<T><<<blocks, kThreads, 0, stream>>>(cc, E, eps, sd, dec_in, m, Z, C,
                                                                kl_part);
  FUSEDAE_LAUNCHED("vae_reparameterise_kernel");
  return blocks;
}

void vae_kl(CompositeControl* cc, const double* kl_part, int n_part, std::int64_t m,
            StepControl* enc, StepControl* dec, cudaStream_t stream) {
  vae_kl_kernel<<<1, kThreads, 0, stream>>>(cc, kl_part, n_part, m, enc, dec);
  FUSEDAE_LAUNCHED("vae_kl_kernel");
}

void vae_decoder_done(CompositeControl* cc, StepControl* enc, const StepControl* dec,
                      cudaStream_t stream) {
  vae_decoder_done_kernel<<<1, 1, 0, stream>>>(cc, enc, dec);
  FUSEDAE_LAUNCHED("vae_decoder_done_kernel");
}

template <class T>
void vae_encoder_delta(const StepControl* enc, const T* E, const T* dzin, const T* eps,
                       const T* sd, T* d, std::int64_t m, std::int64_t Z, std::int64_t C,
                       cudaStream_t stream) {
  vae_encoder_delta_kernel<T><<<blocks_for(m * Z), kThreads, 0, stream>>>(enc, E, dzin, eps, sd,
                                                                          d, m, Z, C);
  FUSEDAE_LAUNCHED("vae_encoder_delta_kernel");
}

void vae_end(CompositeControl* cc, StepControl* enc, StepControl* dec, std::int64_t m,
             bool update, bool draws, bool fit, cudaStream_t stream) {
  vae_end_kernel<<<1, 1, 0, stream>>>(cc, enc, dec, m, update ? 1 : 0, draws ? 1 : 0,
                                      fit ? 1 : 0);
  FUSEDAE_LAUNCHED("vae_end_kernel");
}

template <class T>
void gan_stage(const CompositeControl* cc, const T* x, const std::int64_t* perm, bool fit,
               std::int64_t bs, std::int64_t m, std::int64_t D, T* dst, cudaStream_t stream) {
  gan_stage_kernel<T><<<blocks_for(m * D), kThreads, 0, stream>>>(cc, x, perm, fit ? 1 : 0, bs, m,
                                                                  D, dst);
  FUSEDAE_LAUNCHED("gan_stage_kernel");
}

template <class T>
void fill_targets(T* t, std::int64_t n, std::int64_t split, double a, double b,
                  cudaStream_t stream) {
  fill_targets_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(t, n, split, static_cast<T>(a),
                                                                 static_cast<T>(b));
  FUSEDAE_LAUNCHED("fill_targets_kernel");
}

void gan_d_end(CompositeControl* cc, StepControl* g, StepControl* d, double* losses, bool fit,
               cudaStream_t stream) {
  gan_d_end_kernel<<<1, 1, 0, stream>>>(cc, g, d, losses, fit ? 1 : 0);
  FUSEDAE_LAUNCHED("gan_d_end_kernel");
}

void gan_g_mid(const CompositeControl* cc, StepControl* g, const StepControl* d,
               cudaStream_t stream) {
  gan_g_mid_kernel<<<1, 1, 0, stream>>>(cc, g, d);
  FUSEDAE_LAUNCHED("gan_g_mid_kernel");
}

template <class T>
void negate(const StepControl* g, T* v, std::int64_t n, cudaStream_t stream) {
  negate_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(g, v, n);
  FUSEDAE_LAUNCHED("negate_kernel");
}

void gan_g_end(CompositeControl* cc, StepControl* g, StepControl* d, double* losses, bool minimax,
               bool draws, cudaStream_t stream) {
  gan_g_end_kernel<<<1, 1, 0, stream>>>(cc, g, d, losses, minimax ? 1 : 0, draws ? 1 : 0);
  FUSEDAE_LAUNCHED("gan_g_end_kernel");
}

#define FUSEDAE_INSTANTIATE(T)                                                                  \
  template void latent_normal<T>(const CompositeControl*, T*, std::int64_t, cudaStream_t);      \
  template void vae_stage<T>(const CompositeControl*, const T*, const T*, const std::int64_t*,  \
                             bool, std::int64_t, std::int64_t, std::int64_t, std::int64_t,      \
                             std::int64_t, T*, T*, T*, cudaStream_t);                           \
  template int vae_reparameterise<T>(const CompositeControl*, const T*, const T*, T*, T*,       \
                                     std::int64_t, std::int64_t, std::int64_t, double*,         \
                                     cudaStream_t);                                             \
  template void vae_encoder_delta<T>(const StepControl*, const T*, const T*, const T*,          \
                                     const T*, T*, std::int64_t, std::int64_t, std::int64_t,    \
                                     cudaStream_t);                                             \
  template void gan_stage<T>(const CompositeControl*, const T*, const std::int64_t*, bool,      \
                             std::int64_t, std::int64_t, std::int64_t, T*, cudaStream_t);       \
  template void fill_targets<T>(T*, std::int64_t, std::int64_t, double, double, cudaStream_t);  \
  template void negate<T>(const StepControl*, T*, std::int64_t, cudaStream_t);

FUSEDAE_INSTANTIATE(float)
FUSEDAE_INSTANTIATE(double)
#undef FUSEDAE_INSTANTIATE

}  // namespace kern
}  // namespace cuda
}  // namespace fusedae
