// The CUDA backend of the engine's Network: the same model, ops and
// semantics as the CPU's (core/network.hpp, cpu/network_impl.inl), on device
// memory, with the caller's device pointers and stream.
//
// It does not derive from fusedae::Network, whose constructor allocates host
// buffers; it reuses the contract's pieces instead: NetworkConfig and its
// validation, OptimizerConfig, EpochOptions, EpochResult, the parse_*
// functions, the errors and the limits.
//
// Every buffer lives on the device and is allocated at construction
// (parameters, gradients, optimizer state, reduction partials, the control
// block) or before a call that needs more rows than any before it (the row
// workspace, a fit's batch buffers and permutation), never inside a step: a
// step is a fixed sequence of kernels and cuBLAS calls, which is what lets it
// be captured once as a CUDA graph and replayed (docs/cuda.md).
//
// Synchronisation: train_step, loss_and_gradient and fit_epoch copy their
// control block back once at the end and wait for that copy (the loss is
// returned); forward, loss_and_gradient and fit_epoch also wait once for the
// NaN/infinity scan of their inputs before any work. forward returns with
// its work still running on the caller's stream.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/network.hpp"

namespace fusedae {
namespace cuda {

class Gemm;
class GraphCache;
struct GraphKey;
struct StepControl;

class CudaNetwork {
 public:
  // Throws InvalidArgument for a bad configuration and CudaError when
  // `device_id` is not a GPU this build can run on.
  CudaNetwork(const NetworkConfig& cfg, int device_id);
  ~CudaNetwork();
  CudaNetwork(const CudaNetwork&) = delete;
  CudaNetwork& operator=(const CudaNetwork&) = delete;

  const NetworkConfig& config() const { return cfg_; }
  DType dtype() const { return cfg_.dtype; }
  int n_layers() const { return L_; }
  std::int64_t n_params() const { return n_params_; }
  std::int64_t weight_offset(int layer) const { return w_off_[layer]; }  // layer 1..L
  std::int64_t bias_offset(int layer) const { return b_off_[layer]; }
  int device_id() const { return device_; }
  const std::string& isa() const { return isa_; }  // "cuda:<device name>"

  // The flat device buffers, laid out like the CPU's: [W1 (n0×n1), b1, W2, ...].
  void* params() const { return params_; }
  void* grads() const { return grads_; }
  void* state(int k) const { return k == 0 ? state0_ : state1_; }  // momentum/Adam m, Adam v

  const OptimizerConfig& optimizer() const { return opt_; }
  void set_optimizer(const OptimizerConfig& opt);  // resets the state
  void reset_optimizer_state();

  // The CPU's counters, same meaning (resumable draws, Adam's t).
  std::uint64_t seed = 0;
  std::int64_t optimizer_steps = 0;
  std::int64_t noise_steps = 0;
  std::int64_t epochs = 0;

  std::mutex& mutex() { return mutex_; }

  // Host copies of n_params() elements of the network's dtype (synchronous).
  void get_params(void* host);
  void set_params(const void* host);
  void get_state(int k, void* host);
  void set_state(int k, const void* host);

  // Glorot-uniform weights from Philox(seed, kInit, layer), zero biases: the
  // CPU's values, computed on the host with the same code and copied.
  void init_params(std::uint64_t seed);

  // ---- ops on device pointers (C-contiguous rows of the network's dtype) and
  // the caller's stream. Each checks its arguments first and throws
  // InvalidArgument naming the bad one before any work, like the CPU's.
  void forward(std::uintptr_t x, std::int64_t rows, int start, int stop, std::uintptr_t out,
               cudaStream_t stream);
  double loss_and_gradient(std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                           cudaStream_t stream);
  double train_step(std::uintptr_t x, std::uintptr_t y, std::int64_t rows, cudaStream_t stream);
  // y == 0: the targets are the inputs.
  EpochResult fit_epoch(std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                        const EpochOptions& opt, cudaStream_t stream);

  // Device bytes of row workspace a step on `rows` rows needs (with a fit's
  // batch buffers if `batch`).
  double workspace_bytes(std::int64_t rows, bool batch) const;

  // ---- building blocks of composite models (cuda/composite_cuda.cu): the
  // CPU's (core/network.hpp: forward_keep, backward_from,
  // step_with_input_grad, add_decay_gradient, decay_term) on device
  // pointers of this network's dtype, rows already checked and the row
  // workspace already reserved (for `rows`) by the caller, which owns the
  // call: its stream order, control-block upload and download, and the one
  // wait. Each only enqueues on `stream` (no check, allocation or
  // synchronisation), so a composite's whole step can be captured as one
  // CUDA graph. They read this network's control block as its own steps do:
  // forward epilogues are skipped once `diverged` is set, everything after a
  // forward pass (deltas, bias sums, the optimizer) runs only while `ok` is
  // set; step_with_input_grad sets `ok` itself (a finite loss, as the CPU's
  // step), backward_from and add_decay_gradient read the `ok` a composite
  // kernel left. Scalars go to device doubles the caller names (null: not
  // wanted), written only when `ok`.
  //
  // Forward keeping every layer's activations (the output layer's
  // activation must be elementwise); returns the output activations (rows ×
  // n_L, workspace: valid until the next call here).
  void* enqueue_forward_keep(cudaStream_t stream, const void* x, std::int64_t rows);
  // Forward of the whole stack into `out` (the CPU's forward_unchecked), in
  // the row workspace, skipped like the steps once `diverged` is set.
  void enqueue_forward_into(cudaStream_t stream, const void* x, std::int64_t rows, void* out);
  // Backward of the last enqueue_forward_keep from dJ/dA_L (rows × n_L):
  // gradients, dJ/dX into dx if not null (from the weights before any
  // update), and an optimizer step if `update` (Adam's t from the control
  // block; counted in its `applied`), with (λ/2)·Σ‖W‖² before the update
  // into *decay.
  void enqueue_backward_from(cudaStream_t stream, const void* d_out, std::int64_t rows, void* dx,
                             bool update, double* decay);
  // The fused step with dJ/dX into dx (if not null, from the weights before
  // the update); weight_grads false: δs and dx only (a frozen network), no
  // gradient written, no update. Sets `ok` and `loss` (data + sparsity
  // term) in the control block; with an update (update && weight_grads)
  // also the decay term into *decay and `applied`.
  void enqueue_step_with_input_grad(cudaStream_t stream, const void* x, const void* y,
                                    std::int64_t rows, void* dx, bool update, bool weight_grads,
                                    double* decay);
  // λ·W added to the weight gradients, (λ/2)·Σ‖W‖² into *decay (when `ok`).
  void enqueue_add_decay_gradient(cudaStream_t stream, double* decay);
  // (λ/2)·Σ‖W‖² at the current parameters into *decay, only where *gate is
  // nonzero when the kernel runs (a composite's failed step, whose
  // optimizer sweeps, which would have summed it, did not run).
  void enqueue_decay_term(cudaStream_t stream, const std::int32_t* gate, double* decay);
  // The device control block these read (for a composite's kernels).
  StepControl* control() const { return ctl_; }

 private:
  // The composites drive their networks' calls: stream order (begin/end),
  // control-block copies, buffer growth and the counters.
  friend class CudaVae;
  friend class CudaGan;
  friend class CudaComposite;

  struct StepArgs;
  template <class T> void forward_keep_impl(cudaStream_t stream, const void* x, std::int64_t rows);
  template <class T> void forward_into_impl(cudaStream_t stream, const void* x, std::int64_t rows,
                                            void* out);
  template <class T> void backward_impl(cudaStream_t stream, const T* x, T* delta,
                                        std::int64_t rows, T* dx, bool weight_grads, int sl);
  template <class T> void backward_from_impl(cudaStream_t stream, const void* d_out,
                                             std::int64_t rows, void* dx, bool update,
                                             double* decay);
  template <class T> void step_with_input_grad_impl(cudaStream_t stream, const void* x,
                                                    const void* y, std::int64_t rows, void* dx,
                                                    bool update, bool weight_grads,
                                                    double* decay);
  template <class T> void add_decay_gradient_impl(cudaStream_t stream, double* decay);
  template <class T> void enqueue_step(cudaStream_t stream, const StepArgs& a);
  // enqueue_step through the graph cache under `key` (its generation filled in).
  void run_step(GraphKey key, const StepArgs& a, cudaStream_t stream);
  template <class T> void enqueue_forward(cudaStream_t stream, const void* x, std::int64_t rows,
                                          int start, int stop, void* out);
  template <class T> void fill_init(std::uint64_t init_seed, void* host) const;

  void release() noexcept;
  // Rows in [1, 2^31) (the CPU's check_matrix wording), then the workspace
  // `bytes` they need within the GPU's memory.
  void check_row_count(std::int64_t rows, const char* name) const;
  void check_memory(std::int64_t rows, const char* name, double bytes) const;
  void check_matrix(const char* name, std::uintptr_t p, std::int64_t rows, std::int64_t cols) const;
  void check_pair(std::uintptr_t x, std::uintptr_t y, std::int64_t rows) const;
  void check_finite(cudaStream_t stream, std::uintptr_t x, std::int64_t nx, std::uintptr_t y,
                    std::int64_t ny);
  void reserve_rows(std::int64_t rows);
  void reserve_batch(std::int64_t rows);
  void reserve_permutation(std::int64_t rows);
  void wait_idle() const;  // every op issued so far has finished
  void begin(cudaStream_t stream);  // orders `stream` after the previous op
  void end(cudaStream_t stream);    // marks the end of this op's work on `stream`
  void upload_control(cudaStream_t stream);
  void download_control(cudaStream_t stream);  // and waits: the op's one sync
  // An op that throws after begin(stream) may have issued work there that
  // done_ does not cover: settle() records done_ after it and waits for it
  // (so the next op, on any stream, is ordered after it, and no page-locked
  // buffer is reused under a copy still pending). Never throws.
  void settle(cudaStream_t stream) noexcept;
  // The control block as the steps left it, copied back synchronously after
  // settle(); false if the device cannot say.
  bool read_control_now() noexcept;
  // The CPU's counters after a fit's steps (as reported in `r`).
  void apply_fit_counters(const StepControl& r, Noise noise);
  void host_copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
  void* device_alloc(std::size_t bytes, const char* what);

  NetworkConfig cfg_;
  OptimizerConfig opt_;
  int L_ = 0;
  std::vector<std::int64_t> n_;
  std::vector<std::int64_t> w_off_, b_off_;
  std::int64_t n_params_ = 0, max_width_ = 0, hidden_max_ = 1;
  int sparse_layer_ = 0;            // 0: no sparsity term
  std::size_t es_ = 4;              // element size

  int device_ = 0;
  std::string isa_;
  double device_memory_ = 0.0;      // bytes, the GPU's total
  double fixed_bytes_ = 0.0;        // what construction allocated

  std::mutex mutex_;

  void* params_ = nullptr;
  void* grads_ = nullptr;
  void* state0_ = nullptr;
  void* state1_ = nullptr;
  double* rho_part_ = nullptr;      // ρ̂ chunk partials of the sparse layer
  double* col_part_ = nullptr;      // db chunk partials
  double* loss_part_ = nullptr;     // per-block loss sums
  double* sumsq_part_ = nullptr;    // per-block Σ W²
  void* sparse_term_ = nullptr;     // s of the sparse layer, dtype
  std::int64_t* segs_ = nullptr;    // [w_1, b_1, ..., w_L, b_L]
  StepControl* ctl_ = nullptr;      // device control block
  std::int32_t* flags_ = nullptr;   // device: X, Y non-finite
  StepControl* h_ctl_ = nullptr;    // pinned: [0] to the device, [1] from it
  std::int32_t* h_flags_ = nullptr; // pinned

  std::int64_t rows_capacity_ = 0;
  void* ws_ = nullptr;              // one block: A_1..A_{L-1}, out, ping, pong
  std::vector<void*> act_;
  void* out_ = nullptr;
  void* ping_ = nullptr;
  void* pong_ = nullptr;
  std::int64_t batch_capacity_ = 0;
  void* batch_ = nullptr;           // one block: batch X, batch Y
  void* batch_x_ = nullptr;
  void* batch_y_ = nullptr;
  std::int64_t perm_capacity_ = 0;
  std::int64_t* perm_ = nullptr;    // device
  std::int64_t* h_perm_ = nullptr;  // pinned
  std::uint64_t generation_ = 1;    // bumped when a buffer a graph bakes in moves
  const void* kept_x_ = nullptr;    // inputs of the last enqueue_forward_keep
  std::int64_t kept_rows_ = 0;

  std::unique_ptr<Gemm> gemm_;
  std::unique_ptr<GraphCache> graphs_;
  cudaStream_t capture_stream_ = nullptr;  // captures only
  cudaStream_t host_stream_ = nullptr;     // host copies (get/set_params, init)
  cudaEvent_t done_ = nullptr;             // end of the latest op's work (on its stream)
  bool have_last_ = false;                 // done_ has been recorded
};

}  // namespace cuda
}  // namespace fusedae
