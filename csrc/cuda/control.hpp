// The device-resident control block of a call: what the host hands a step
// (counters, seed, optimizer settings) and what the steps report back (loss,
// steps applied, divergence). Captured graphs bake in pointers, never these
// values, so one graph serves every call whose shapes and pointers match:
// the host writes this block once per call (one copy), the kernels read it,
// and one copy back at the end of the call is its only synchronisation.
#pragma once
#include <cstdint>

namespace fusedae {
namespace cuda {

struct StepControl {
  // ---- written by the host before the call
  std::uint64_t seed;
  std::int64_t t0;             // optimizer_steps before the call (Adam's t = t0 + applied + 1)
  std::int64_t noise0;         // noise_steps before the call (batch k draws stream noise0 + k)
  std::int32_t opt_kind;       // Optimizer
  std::int32_t pad0;
  double lr, momentum, beta1, beta2, eps;

  // ---- written by the kernels (the host zeroes them)
  std::int64_t batch;          // batch of the epoch the next step works on
  std::int64_t applied;        // steps of this call whose update was applied
  std::int64_t seen;           // rows of those steps
  std::int32_t diverged;       // a step's loss was not finite: no later step of the call applies
  std::int32_t ok;             // the current step goes on to its backward pass and update
  std::int32_t bad_x, bad_y;   // NaN or infinity found in X / Y (train_step checks in-graph)
  double loss;                 // current step: data loss + sparsity term
  double total;                // current step: with the decay term (what the op returns)
  double weighted;             // Σ total·rows over the applied steps (fit_epoch's mean)
  double last_loss;            // the non-finite loss that stopped a fit
  double adam_step;            // lr / (1 − β1ᵗ) of the current step
  double adam_inv_sqrt_bc2;    // 1 / sqrt(1 − β2ᵗ)
};

// What a step does after its forward pass.
enum class StepMode : int {
  Update = 0,     // train_step, fit_epoch: backward, optimizer, counters
  Gradient = 1,   // loss_and_gradient: backward, λW into the gradient, no update
};

}  // namespace cuda
}  // namespace fusedae
