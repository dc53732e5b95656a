// The small elementwise parts of the composite models' steps on the GPU
// (core/composite.cpp does them on the CPU, in one pass each): staging a
// minibatch, the latent draws, the VAE's reparameterisation with its Gaussian
// KL and the encoder's output delta, the GAN's targets and minimax negation,
// and the one-thread bookkeeping kernels between the networks' halves.
//
// A composite call has its own control block (CompositeControl) beside each
// network's StepControl: the host writes it once per call and reads it once at
// the end. The bookkeeping kernels decide, on the device, whether a step goes
// on (they set the networks' `ok` and `diverged` flags, which gate the
// networks' own kernels), record its losses and count it, so one graph serves
// every step of a call and the host never looks between steps. Like
// kernels.cuh: every launcher only enqueues (no allocation, no wait), and every
// sum has a fixed order (no atomics).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/control.hpp"

namespace fusedae {
namespace cuda {

struct CompositeControl {
  // ---- written by the host before the call
  std::uint64_t seed;
  std::int64_t latent0;        // latent_steps before the call: draw k uses stream latent0 + k

  // ---- written by the kernels (the host zeroes them)
  std::int64_t batch;          // fit: the minibatch the next (VAE or D) step gathers
  std::int64_t latent;         // latent streams used by this call's steps so far
  std::int64_t steps;          // VAE: steps applied
  std::int64_t d_count;        // GAN: discriminator losses written
  std::int64_t g_count;        // GAN: generator losses written
  std::int32_t diverged;       // a step's loss was not finite: nothing more of the call runs
  std::int32_t stop;           // the current step does not go on (refused input, or it failed)
  std::int32_t bad_x, bad_y;   // NaN or infinity in X (or Z) / Y (in-step scan)
  std::int32_t bad_e;          // NaN or infinity in a caller's ε (in-step scan)
  std::int32_t pad0;
  double kl;                   // VAE: the current step's KL (mean over rows)
  double decay_a, decay_b;     // (λ/2)·Σ‖W‖² of the first and second network in this step
  double loss;                 // GAN: the current step's loss
  double last[4];              // VAE: the current (or diverging) step's total, recon, kl, decay
  double sums[4];              // VAE: Σ losses·rows over the applied steps
};

namespace kern {

// ---- shared ------------------------------------------------------------------

// One thread: refuse the step when the in-step scan found NaN or infinity
// (cc->bad_x, bad_y or bad_e): stop, and both networks skip their kernels.
void composite_gate(CompositeControl* cc, StepControl* a, StepControl* b, cudaStream_t stream);

// n standard normal draws of stream (kLatent, latent0 + latent) under the
// seed: core/philox.hpp's `normal`, Box–Muller in double on the same words.
// Skipped once the step stopped or the call diverged.
template <class T>
void latent_normal(const CompositeControl* cc, T* out, std::int64_t n, cudaStream_t stream);

// ---- VAE -----------------------------------------------------------------------

// A step's rows, i < m: source row perm[batch·bs + i] (fit, shuffled),
// batch·bs + i (fit), or i (a caller's batch), of X (m × D) and Y (m × C):
// [x | y] into enc_in, x into xb, y into columns [Z, Z + C) of dec_in (each
// when not null). Skipped once the step stopped or the call diverged.
template <class T>
void vae_stage(const CompositeControl* cc, const T* x, const T* y, const std::int64_t* perm,
               bool fit, std::int64_t bs, std::int64_t m, std::int64_t D, std::int64_t C,
               std::int64_t Z, T* enc_in, T* xb, T* dec_in, cudaStream_t stream);

// Reparameterisation and the Gaussian KL in one pass over E = [μ | log σ²]
// (m × 2Z): σ = exp(½ log σ²) into sd, z = μ + σ·ε into columns [0, Z) of
// dec_in (m × (Z + C)), −½(1 + log σ² − μ² − σ²) summed per block into
// kl_part. Returns the number of partials.
template <class T>
int vae_reparameterise(const CompositeControl* cc, const T* E, const T* eps, T* sd, T* dec_in,
                       std::int64_t m, std::int64_t Z, std::int64_t C, double* kl_part,
                       cudaStream_t stream);

// One block: kl = Σ partials · (1/m); a KL that is not finite stops the step
// (both networks skip the rest of it).
void vae_kl(CompositeControl* cc, const double* kl_part, int n_part, std::int64_t m,
            StepControl* enc, StepControl* dec, cudaStream_t stream);

// One thread, after the decoder's step: a decoder loss that is not finite
// stops the step; the encoder's backward runs (enc->ok) only if the step goes on.
void vae_decoder_done(CompositeControl* cc, StepControl* enc, const StepControl* dec,
                      cudaStream_t stream);

// The encoder's output delta from dJ/dz (columns [0, Z) of dzin, m × (Z + C)),
// if enc->ok: dμ = dz + μ/m, dlog σ² = ½·dz·ε·σ + (σ² − 1)/(2m), into d (m × 2Z).
template <class T>
void vae_encoder_delta(const StepControl* enc, const T* E, const T* dzin, const T* eps,
                       const T* sd, T* d, std::int64_t m, std::int64_t Z, std::int64_t C,
                       cudaStream_t stream);

// One thread, last of a step: its losses into cc->last (as the CPU's Vae::run
// returns them), and, unless the call diverged before or the inputs were
// refused, the counters: a finite step is counted (steps, Σ losses·rows), a
// failed one makes the call diverged. `update`: the decays come from the
// optimizers (or the failed step's decay terms); `draws`: it used a latent
// stream; `fit`: it advances the minibatch.
void vae_end(CompositeControl* cc, StepControl* enc, StepControl* dec, std::int64_t m,
             bool update, bool draws, bool fit, cudaStream_t stream);

// ---- GAN -----------------------------------------------------------------------

// Rows i < m of X (D columns): perm[batch·bs + i], batch·bs + i (fit) or i,
// into dst. Skipped once the step stopped or the call diverged.
template <class T>
void gan_stage(const CompositeControl* cc, const T* x, const std::int64_t* perm, bool fit,
               std::int64_t bs, std::int64_t m, std::int64_t D, T* dst, cudaStream_t stream);

// t[i] = i < split ? a : b, i < n.
template <class T>
void fill_targets(T* t, std::int64_t n, std::int64_t split, double a, double b,
                  cudaStream_t stream);

// One thread, last of a discriminator step: its loss (with the decay term
// when finite) into cc->loss and losses[d_count++] (if not null); a loss that
// is not finite makes the call diverged. Nothing is counted for refused
// inputs.
void gan_d_end(CompositeControl* cc, StepControl* g, StepControl* d, double* losses, bool fit,
               cudaStream_t stream);

// One thread, after the frozen discriminator's pass of a generator step: the
// generator's backward runs (g->ok) only if that loss is finite.
void gan_g_mid(const CompositeControl* cc, StepControl* g, const StepControl* d,
               cudaStream_t stream);

// v = −v, n values, if g->ok (the minimax loss's dJ/d(fake)).
template <class T>
void negate(const StepControl* g, T* v, std::int64_t n, cudaStream_t stream);

// One thread, last of a generator step: its loss (negated for minimax, with
// the generator's decay term, when finite) into cc->loss and
// losses[g_count++] (if not null); not finite: the call diverged.
void gan_g_end(CompositeControl* cc, StepControl* g, StepControl* d, double* losses, bool minimax,
               bool draws, cudaStream_t stream);

}  // namespace kern
}  // namespace cuda
}  // namespace fusedae
