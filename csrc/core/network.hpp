// The engine's one model: a stack of dense layers with a loss and optional
// terms (L2 weight decay, KL sparsity on one hidden layer), trained by a fused
// step. This header is the backend-neutral contract (op signatures); each
// backend derives from Network and implements the kernels.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace fusedae {

// Softmax is row-wise, not elementwise: it is allowed on the output layer
// only, paired with the categorical cross entropy (whose delta from the
// logits is softmax(Z)·Σy − y, so its Jacobian is never formed).
enum class Activation : int { Sigmoid = 0, Tanh, Relu, LeakyRelu, Identity, Softmax };
enum class Loss : int { SquaredError = 0, BinaryCrossEntropy, CategoricalCrossEntropy };
enum class Optimizer : int { SGD = 0, Momentum, Adam };
enum class Noise : int { None = 0, Gaussian, Masking, SaltPepper };

Activation parse_activation(const std::string& name);
Loss parse_loss(const std::string& name);
Optimizer parse_optimizer(const std::string& name);
Noise parse_noise(const std::string& name);

constexpr double kLeakyReluSlope = 0.01;

// ρ̂ is clamped to [eps, 1 - eps] inside the sparsity term and its derivative
// (see docs/sparsity.md): a saturated unit has ρ̂ exactly 0 or 1 in float32,
// where KL(ρ‖ρ̂) and its derivative are infinite.
constexpr double kRhohatEpsFloat32 = 1.0 / (1 << 20);       // 2^-20
constexpr double kRhohatEpsFloat64 = 1.0 / (1LL << 40);     // 2^-40

// Mostly-zero inputs take a nonzero path through the two GEMMs that read X
// (docs/design.md) when a batch is at most this dense, W_1 has at least this
// many weights, and the call has at most this many rows (the nonzero lists
// are the size of the batch: a full-batch call on a whole data set skips it).
constexpr double kSparseDensity = 0.3;
constexpr std::int64_t kSparseMinWeights = 1 << 14;
constexpr std::int64_t kSparseMaxRows = 8192;
// The nonzero lists are cut into tiles of this many columns of X (row lists)
// or rows of the batch (column lists); each list records where each tile ends
// (cpu/kernels.inl, slab_times_dense).
constexpr std::int64_t kNzTile = 128;
inline std::int64_t nz_tiles(std::int64_t n) { return (n + kNzTile - 1) / kNzTile; }
// Each list's bounds: where it starts, then where each of its tiles ends.
inline std::int64_t nz_bounds(std::int64_t n) { return nz_tiles(n) + 1; }
// The nonzero product's blocks of output rows, whose sums it keeps across the
// tiles in per-thread scratch of kNzBlock × kSlabElems elements (after the slab).
constexpr std::int64_t kNzBlock = 256;
// Elements of one row of a slab (and of a block sum) at most: five 64-byte
// vectors of float32 (cpu/kernels.inl: a last slab of five vectors instead of
// four and one), enough for four of float64.
constexpr std::int64_t kSlabElems = 80;
// Lists of up to n entries are reserved nz_stride(n) entries each: 16 more
// than n, room for the 16-entry stores that write a row's list (a thread
// packs its lists from the start of its region: cpu/kernels.inl).
inline std::int64_t nz_stride(std::int64_t n) { return n + 16; }
// The own float32 GEMM (cpu/gemm.inl) packs its right operand a panel of 64
// columns and at most kGemmKc rows at a time, into per-thread scratch.
constexpr std::int64_t kGemmKc = 256;
constexpr std::int64_t kGemmPackFloats = kGemmKc * 64;

struct NetworkConfig {
  std::vector<std::int64_t> sizes;        // n0 (inputs), n1, ..., nL
  std::vector<Activation> activations;    // one per layer, L entries
  Loss loss = Loss::SquaredError;
  DType dtype = DType::Float32;
  double weight_decay = 0.0;              // λ in (λ/2)·Σ‖W‖²
  int sparsity_layer = 0;                 // 0: none; else hidden layer 1..L-1
  double sparsity_target = 0.05;          // ρ
  double sparsity_weight = 0.0;           // β
  void validate() const;                  // throws InvalidArgument
  int n_layers() const { return static_cast<int>(activations.size()); }
  // The flat parameter layout every backend uses, [W1 (n0×n1), b1, W2, b2,
  // ...]: element offsets of W_l and b_l (l = 1..L; entry 0 unused) and the
  // parameter count.
  std::int64_t layout(std::vector<std::int64_t>* w_off, std::vector<std::int64_t>* b_off) const;
};

struct OptimizerConfig {
  Optimizer kind = Optimizer::Adam;
  double learning_rate = 1e-3;
  double momentum = 0.9;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  void validate() const;
};

struct EpochOptions {
  std::int64_t batch_size = 64;
  bool shuffle = true;
  Noise noise = Noise::None;
  double noise_level = 0.0;
};

struct EpochResult {
  double mean_loss = 0.0;     // row-weighted mean of the steps' losses
  std::int64_t steps = 0;     // steps applied
  bool diverged = false;      // a step's loss was not finite: it was not applied
};

// Below this many multiply-add flops (a forward pass over all layers) a CPU
// step runs on the calling thread alone: ~50 µs of work, where the pool's
// barriers would cost more than they save.
constexpr double kParallelFlops = 2.0e6;

// Thread tid's share [*a, *b) of n items (rows of a batch, rows of dW, tiles)
// split between nt threads: the split every pooled pass uses, so that a pass
// finds the rows an earlier one gave the same thread in its cache.
inline void split_rows(std::int64_t n, int tid, int nt, std::int64_t* a, std::int64_t* b) {
  *a = n * tid / nt;
  *b = n * (tid + 1) / nt;
}

// Storage and counters shared by every backend; kernels live in subclasses.
// All buffers are allocated here (never inside a step): parameters, gradients
// and optimizer state once at construction, the row workspace when a call
// needs more rows than any call before it.

class Network {
 public:
  explicit Network(const NetworkConfig& cfg);
  virtual ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  const NetworkConfig& config() const { return cfg_; }
  DType dtype() const { return cfg_.dtype; }
  // Multiply-add flops of a forward pass over `rows` rows, all layers.
  double forward_flops(std::int64_t rows) const {
    double f = 0.0;
    for (std::size_t l = 1; l < cfg_.sizes.size(); ++l)
      f += 2.0 * static_cast<double>(cfg_.sizes[l - 1]) * static_cast<double>(cfg_.sizes[l]);
    return f * static_cast<double>(rows);
  }
  std::int64_t n_params() const { return n_params_; }
  std::int64_t weight_offset(int layer) const { return w_off_[layer]; }  // layer 1..L
  std::int64_t bias_offset(int layer) const { return b_off_[layer]; }
  virtual const char* isa() const = 0;

  void* params() { return params_; }
  void* grads() { return grads_; }
  void* state(int k) { return k == 0 ? state0_ : state1_; }  // momentum/Adam m, Adam v

  const OptimizerConfig& optimizer() const { return opt_; }
  void set_optimizer(const OptimizerConfig& opt);  // resets the state
  void reset_optimizer_state();

  // Counters that make random draws and Adam's bias correction resumable.
  std::uint64_t seed = 0;
  std::int64_t optimizer_steps = 0;   // Adam's t
  std::int64_t noise_steps = 0;       // noise stream: one per step drawn
  std::int64_t epochs = 0;            // shuffle stream: one per epoch

  std::mutex& mutex() { return mutex_; }

  // Throws InvalidArgument naming `name` unless a call on `rows` rows is
  // possible: 1 <= rows < 2^31 and the row workspace it needs fits in the
  // machine's memory. Ops check this before they allocate or change anything.
  void check_rows(std::int64_t rows, const char* name) const;
  // Bytes of row workspace (every per-row buffer) a call on `rows` rows needs.
  double workspace_bytes(std::int64_t rows) const;

  // --- ops (one call each; the bindings release the GIL around them). Each
  // checks its arguments (shapes, dtype, device, contiguity, finite values,
  // options) and throws InvalidArgument naming the bad one before any work.
  // Glorot-uniform weights from Philox(seed, kInit, layer), zero biases.
  virtual void init_params(std::uint64_t seed) = 0;
  // Output of layer `stop` given the output of layer `start` (0 = inputs).
  void forward(const MatrixView& x, int start, int stop, const MatrixView& out);
  // Full-batch loss; the full gradient (with λW) is left in grads().
  double loss_and_gradient(const MatrixView& x, const MatrixView& y);
  // One optimizer step on this batch; returns the loss before the update.
  // A non-finite loss leaves parameters and optimizer state untouched.
  double train_step(const MatrixView& x, const MatrixView& y);
  // One epoch: shuffle, minibatches, noise, steps; y == nullptr means y = x.
  EpochResult fit_epoch(const MatrixView& x, const MatrixView* y, const EpochOptions& opt);

  // --- building blocks of composite models (core/composite.cpp): contiguous
  // rows of this network's dtype, already checked by the caller; no locking.
  // Forward keeping every layer's activations; returns the output
  // activations (rows × n_L, workspace: valid until the next call here).
  virtual void* forward_keep(const void* x, std::int64_t rows) = 0;
  // Backward of the last forward_keep from dJ/dA_L (rows × n_L): gradients,
  // dJ/dX into dx if not null, and an optimizer step if `update`. The output
  // activation must be elementwise (not softmax).
  virtual void backward_from(const void* d_out, std::int64_t rows, void* dx, bool update) = 0;
  // The fused step with dJ/dX into dx (if not null, from the weights before
  // the update). weight_grads false: δs and dx only (a frozen network), no
  // update. Returns the loss, with the decay term when it updates.
  virtual double step_with_input_grad(const void* x, const void* y, std::int64_t rows,
                                      void* dx, bool update, bool weight_grads) = 0;
  // Output of the whole stack for rows already checked.
  void forward_unchecked(const void* x, std::int64_t rows, void* out) {
    forward_rows(x, rows, 0, cfg_.n_layers(), out);
  }
  // Adds λ·W to the weight gradients and returns (λ/2)·Σ‖W‖².
  double add_decay_gradient();
  // (λ/2)·Σ‖W‖² at the current parameters.
  double decay_term() const;

 protected:
  // The kernels behind the ops, on arguments already checked.
  virtual void forward_rows(const void* x, std::int64_t rows, int start, int stop,
                            void* out) = 0;
  virtual double loss_and_gradient_rows(const void* x, const void* y, std::int64_t rows) = 0;
  virtual double train_step_rows(const void* x, const void* y, std::int64_t rows) = 0;
  virtual EpochResult fit_epoch_rows(const void* x, const void* y, std::int64_t rows,
                                     const EpochOptions& opt) = 0;

  void reserve_rows(std::int64_t rows);        // grows the workspace if needed
  // Grows the minibatch buffers (a fit's gathered, corrupted rows) too. Kept
  // apart so a full-batch loss_and_gradient does not allocate copies of X.
  void reserve_batch(std::int64_t rows);
  void reserve_permutation(std::int64_t rows);
  void reserve_threads(int threads);            // per-thread partial sums, slabs
  int slab_threads_ = 0;
  std::int64_t slab_rows_ = 0;

  // Per-thread partial sums of a parallel step, each on its own cache lines:
  // column sums (two sets, alternating between consecutive layers so one can
  // be reduced while the next is written), ρ̂ sums, and scalars (loss, Σw²).
  double* part_colsum(int parity, int tid) {
    return partials_ + (static_cast<std::int64_t>(parity) * threads_capacity_ + tid) * part_stride_;
  }
  double* part_rho(int tid) {
    return partials_ + (2LL * threads_capacity_ + tid) * part_stride_;
  }
  double* part_scalar(int tid) {
    return partials_ + 3LL * threads_capacity_ * part_stride_ + 8LL * tid;
  }
  // The own GEMM's panel of the right operand (cpu/gemm.inl), after the
  // scalars: kGemmPackFloats floats per thread, on whole cache lines.
  float* gemm_pack(int tid) {
    return reinterpret_cast<float*>(partials_ + 3LL * threads_capacity_ * part_stride_ +
                                    8LL * threads_capacity_) +
           static_cast<std::int64_t>(tid) * kGemmPackFloats;
  }

  NetworkConfig cfg_;
  OptimizerConfig opt_;
  int L_ = 0;
  const std::int64_t* n_ = nullptr;     // sizes, n_[0..L]
  std::int64_t max_width_ = 0;          // max over n_1..n_L
  std::int64_t n_params_ = 0;
  std::vector<std::int64_t> w_off_, b_off_;  // element offsets into params

  // Parameter-shaped buffers (n_params elements of dtype each).
  void* params_ = nullptr;
  void* grads_ = nullptr;
  void* state0_ = nullptr;
  void* state1_ = nullptr;

  // Row workspace, valid for `rows_capacity_` rows.
  std::int64_t rows_capacity_ = 0;
  std::vector<void*> act_;     // act_[l], l = 1..L-1: hidden outputs A_l
  void* out_ = nullptr;        // output layer: activations, or δ_L in a step
  void* ping_ = nullptr;       // backward deltas of hidden layers
  void* pong_ = nullptr;
  std::int64_t batch_capacity_ = 0;
  void* batch_x_ = nullptr;    // gathered (and noised) inputs of a minibatch
  void* batch_y_ = nullptr;    // gathered targets
  double* rho_sum_ = nullptr;  // sparse layer's ρ̂ sums over the batch
  void* sparse_term_ = nullptr;  // s_n of the sparse layer, dtype

  // Mostly-zero inputs (MNIST-like: 80% zeros) skip the zeros in the two
  // GEMMs that read X: X's nonzeros listed by rows (forward) and by columns
  // (dW_1). Each thread packs its lists into its own region, so no offsets
  // are shared: rows [r0, r1)'s from r0·nz_stride(n0), columns [k0, k1)'s
  // from k0·nz_stride(rows_capacity_). Only the written pages are resident.
  void* nz_row_val_ = nullptr;            // dtype, rows × nz_stride(n0)
  std::int32_t* nz_row_col_ = nullptr;
  std::int64_t* nz_row_end_ = nullptr;    // rows × nz_bounds(n0): row m's start and tile ends
  void* nz_col_val_ = nullptr;            // dtype, n0 × nz_stride(rows)
  std::int32_t* nz_col_row_ = nullptr;
  std::int64_t* nz_col_end_ = nullptr;    // n0 × nz_bounds(rows): the same for column k
  // Per-thread copy of a 64-column slab of W_1 or δ_1, contiguous: slab rows
  // of the original are 4 KiB apart in W-wide, which maps them onto a few L2
  // sets; packed, they share no sets.
  void* slab_ = nullptr;                  // dtype, threads × slab_stride_ (slab, then the block sums)
  std::int64_t slab_stride_ = 0;

  int threads_capacity_ = 0;
  std::int64_t part_stride_ = 0;
  double* partials_ = nullptr;

  std::int64_t perm_capacity_ = 0;
  std::int64_t* perm_ = nullptr;

 private:
  std::mutex mutex_;
  std::vector<void*> owned_;   // workspace blocks to free on growth
  void free_workspace();
};

// Picks the best kernel variant this CPU supports ("auto"), or the named one.
std::unique_ptr<Network> make_cpu_network(const NetworkConfig& cfg, const std::string& isa);
std::vector<std::string> supported_cpu_isas();  // best first
// The variant `isa` names ("auto": the best this CPU has); InvalidArgument,
// naming the CPU's variants, for one it lacks or does not know.
std::string resolve_cpu_isa(const std::string& isa);
// philox::normal(seed, stream, n, out) in `dtype`, by the vectorised kernels of
// instruction set `isa` (a name Network::isa() returns; cpu/latent.inl).
void latent_normal(const std::string& isa, DType dtype, std::uint64_t seed, std::uint32_t stream,
                   std::int64_t n, void* out);
// The words of kPhiloxTestBlocks Philox blocks from first_block on, as the
// kernels of `isa` (one of supported_cpu_isas()) draw them for the noise and
// the latent variables: out[4·i + k] is word k of block first_block + i. For
// the tests, which reach block numbers no batch does (the carry into the high
// word at 2^32).
constexpr int kPhiloxTestBlocks = 64;
void philox_blocks(const std::string& isa, std::uint64_t seed, std::uint32_t tag,
                   std::uint32_t stream, std::uint64_t first_block, std::uint32_t* out);
// Row-major C = alpha·op(A)·op(B) + beta·C by the own float32 GEMM of the
// AVX-512 kernels (cpu/gemm.inl), for its tests; false (nothing done) where
// this CPU or build has none.
bool own_gemm_f32(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                  int lda, const float* b, int ldb, float beta, float* c, int ldc);
// "Haswell" where 512-bit FMAs run at the 256-bit rate (OpenBLAS's AVX2
// kernels are then faster than its AVX-512 ones), "" otherwise.
std::string preferred_blas_coretype();
// Single-precision flop/s one core retires with 256- and 512-bit FMAs
// (vector bits, rate), measured on the calling thread; empty off x86-64.
std::vector<std::pair<int, double>> fma_rates();

}  // namespace fusedae
