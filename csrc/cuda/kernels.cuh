// Host-side launchers of the CUDA backend's kernels (kernels.cu). Each one
// enqueues on `stream` and returns at once; none allocates or synchronises,
// so a sequence of them can be captured into a CUDA graph.
//
// Column sums (db, ρ̂) are deterministic two-stage reductions: a "tile"
// kernel over a grid of (32-column tiles) × (row chunks) writes one double
// per (chunk, column) into a partial buffer, and a finishing kernel sums the
// chunks in order. Scalar sums (the loss, Σ‖W‖²) go through per-block
// partials summed in a fixed order by one block. No atomics: the same call
// gives the same bits every time.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/network.hpp"
#include "cuda/control.hpp"

namespace fusedae {
namespace cuda {
namespace kern {

constexpr int kTileCols = 32;          // threadIdx.x: consecutive columns, coalesced
constexpr int kTileRows = 8;           // threadIdx.y: rows of a chunk, strided
constexpr int kMaxChunks = 128;        // row chunks of a tile kernel, at most
constexpr int kTargetBlocks = 1024;    // enough 256-thread blocks to fill an H100/H200
constexpr int kMinRowsPerChunk = 32;   // each thread takes at least 4 rows
constexpr int kFlatBlocks = 1024;      // grid of the row-wise and flat kernels, at most
constexpr int kThreads = 256;

struct Tiling {
  int ctiles = 0;              // column tiles (gridDim.x)
  int chunks = 0;              // row chunks (gridDim.y)
  std::int64_t rows_per_chunk = 0;
};
Tiling tiling(std::int64_t rows, std::int64_t n);
// The most chunks tiling(rows, n) gives for any rows: partial buffers are
// sized from this once, at construction.
std::int64_t max_chunks(std::int64_t n);
// Loss partials an output epilogue over n columns writes, at most.
std::int64_t max_loss_partials(std::int64_t n);

// Hidden (or inference) forward epilogue: Z = f(Z + b) in place; with
// `rho_part`, the ρ̂ column sums of the sparse layer as chunk partials.
// Skipped when ctl says the call already diverged (ctl may be null).
template <class T>
Tiling bias_act(Activation a, T* z, std::int64_t rows, std::int64_t n, const T* b,
                double* rho_part, const StepControl* ctl, cudaStream_t stream);

// Inference epilogue of a softmax output layer: each row becomes softmax(Z + b).
template <class T>
void bias_softmax(T* z, std::int64_t rows, std::int64_t n, const T* b, cudaStream_t stream);

struct OutputPartials {
  Tiling col;             // db_L's chunk partials in col_part
  int loss_partials = 0;  // entries of loss_part written
};
// Output epilogue: Z = A_{L-1}·W_L becomes δ_L = ∂J/∂Z_L (with the 1/B of the
// batch) in place, the loss summed into loss_part, db_L's chunk partials into
// col_part. Softmax + categorical CE is row-wise (one warp a row), followed by
// a column-sum kernel for db_L.
template <class T>
OutputPartials output_delta(Activation a, Loss loss, T* z, const T* y, std::int64_t rows,
                            std::int64_t n, const T* b, double* col_part, double* loss_part,
                            const StepControl* ctl, cudaStream_t stream);

// Backward epilogue of hidden layer l: G = δ_{l+1}·W_{l+1}ᵀ becomes
// δ_l = (G + s) ⊙ f'(A_l) in place (s: the sparsity term, null on other
// layers), db_l's chunk partials into col_part. Skipped unless ctl->ok.
template <class T>
Tiling hidden_delta(Activation a, T* g, const T* act, std::int64_t rows, std::int64_t n,
                    const T* s, double* col_part, const StepControl* ctl, cudaStream_t stream);

// out[c] = Σ_chunks part[chunk·n + c] (a bias gradient). Skipped unless ctl->ok.
template <class T>
void finish_colsum(const double* part, int chunks, std::int64_t n, T* out,
                   const StepControl* ctl, cudaStream_t stream);

// One block: the step's loss (Σ loss partials / B, plus β·Σ KL(ρ‖ρ̂) with ρ̂
// clamped to [eps, 1-eps] and the sparsity term s written), whether the step
// goes on (ctl->ok: finite loss, clean inputs, no earlier divergence), and
// Adam's bias corrections for t = t0 + applied + 1.
template <class T>
void finalize(StepControl* ctl, const double* loss_part, int n_loss_part, std::int64_t rows,
              const double* rho_part, int rho_chunks, std::int64_t n_sparse, double rho,
              double beta, double eps, T* s, StepMode mode, bool check_inputs,
              cudaStream_t stream);

// The one optimizer kernel over the flat parameter vector (if ctl->ok):
// λ·W added on the fly to the weights' gradients (segs: the 2L ascending
// offsets w_1, b_1, w_2, b_2, ...; an element is a weight when the last
// offset at or below it is a w), Σ W² (before the update) into per-block
// partials, then SGD / momentum / Adam as ctl->opt_kind says. In Gradient
// mode only g += λW and the Σ W². Returns the number of partials written.
template <class T>
int optimizer(StepControl* ctl, T* p, T* g, T* s0, T* s1, std::int64_t n,
              const std::int64_t* segs, int n_segs, double lam, double* sumsq_part,
              StepMode mode, cudaStream_t stream);

// One block, last of a step: the returned loss (with (λ/2)·Σ‖W‖²), the
// counters (applied, seen rows, weighted loss), divergence, the next batch.
void step_end(StepControl* ctl, const double* sumsq_part, int n_part, double lam,
              std::int64_t rows, StepMode mode, cudaStream_t stream);

// A fit's minibatch: rows perm[k·bs + i] (or k·bs + i without perm) of X
// (and Y) for i < m, k = ctl->batch, into the batch buffers; with noise, the
// inputs corrupted from Philox(seed, kNoise, noise0 + k). clean_out (if not
// null) receives the clean inputs (a denoising autoencoder's targets),
// targets_out (if y) the rows of Y. Skipped once the call diverged.
template <class T>
void gather(const StepControl* ctl, const T* x, const T* y, const std::int64_t* perm,
            std::int64_t bs, std::int64_t m, std::int64_t nin, std::int64_t nout, Noise noise,
            double level, T* inputs_out, T* clean_out, T* targets_out, cudaStream_t stream);

// ---- building blocks of composite models (CudaNetwork::enqueue_*) ----------

// Output delta from a gradient given by a composite's other half (the CPU's
// ScaleByDerivative): A_L (in place) becomes δ_L = dJ/dA_L ⊙ f'(A_L), db_L's
// chunk partials into col_part. Skipped unless ctl->ok.
template <class T>
Tiling scale_by_derivative(Activation a, T* out, const T* d_out, std::int64_t rows,
                           std::int64_t n, double* col_part, const StepControl* ctl,
                           cudaStream_t stream);

// One thread: Adam's bias corrections for t = t0 + applied + 1 (as finalize
// does for a step), if ctl->ok; before an update that no finalize precedes.
void update_begin(StepControl* ctl, cudaStream_t stream);

// One block, after an optimizer kernel (or none: n_part 0): if ctl->ok,
// *decay = (λ/2)·Σ partials (0 without partials) when decay is not null,
// and ++ctl->applied when `count` (an update was applied).
void decay_end(StepControl* ctl, const double* sumsq_part, int n_part, double lam, bool count,
               double* decay, cudaStream_t stream);

// One block: *decay = (λ/2)·Σ W² over the weight segments of the flat
// parameters p (segs as for optimizer, n elements), only if *gate != 0.
template <class T>
void weights_sumsq(const T* p, std::int64_t n, const std::int64_t* segs, int n_segs, double lam,
                   const std::int32_t* gate, double* decay, cudaStream_t stream);

// cudaSuccess if the current device can run this build's kernels (an image
// for its architecture, or PTX it can compile), else the error a launch gives.
cudaError_t probe_kernel_image();

// *flag = 1 if any of the n values is NaN or infinite (left as is otherwise).
template <class T>
void nonfinite(const T* p, std::int64_t n, std::int32_t* flag, cudaStream_t stream);

}  // namespace kern
}  // namespace cuda
}  // namespace fusedae
