// The composite models on CUDA: the VAE (and conditional VAE) and the GAN of
// core/composite.hpp, with the same configuration, counters, random streams,
// ops and semantics as the CPU's Vae and Gan, on two CudaNetworks and device
// memory, with the caller's device pointers and stream.
//
// A step is the CPU's sequence of network halves (CudaNetwork's
// enqueue_forward_keep / enqueue_backward_from / enqueue_step_with_input_grad)
// with the elementwise parts between them as kernels (composite_kernels.cuh),
// and whether it goes on (a non-finite KL or loss, refused inputs) is decided
// on the device: one control block per call (CompositeControl) beside the
// networks' own, written once and read once. So, as for a CudaNetwork, a step
// allocates nothing, is captured once as a CUDA graph (keyed by its pointers
// and shapes) and replayed, and costs the host one wait; a fit's steps run
// back to back without the host looking (docs/cuda.md).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/composite.hpp"
#include "cuda/network_cuda.hpp"

namespace fusedae {
namespace cuda {

class GraphCache;
struct GraphKey;
struct CompositeControl;
struct StepControl;

// What the VAE and the GAN share: two networks, the control block, the call
// protocol (stream order through both networks' events, one wait), the
// shuffle permutation and the graph cache.
class CudaComposite {
 public:
  CudaComposite(const CudaComposite&) = delete;
  CudaComposite& operator=(const CudaComposite&) = delete;

  int device_id() const { return device_; }
  DType dtype() const { return dtype_; }
  std::mutex& mutex() { return mutex_; }

  // The CPU's counters, same meaning.
  std::uint64_t seed = 0;
  std::int64_t latent_steps = 0;  // latent stream: one per step drawn
  std::int64_t epochs = 0;        // shuffle stream: one per epoch

  // The first network (encoder, generator) from Philox(seed), the second
  // from Philox(seed + 1), counters reset: the CPU's Vae / Gan::init_params.
  void init_params(std::uint64_t seed);

 protected:
  CudaComposite(int device_id, DType dtype);
  ~CudaComposite();
  // After the two networks exist: the composite's own device buffers.
  void setup(CudaNetwork* a, CudaNetwork* b);

  // One call: begin (the stream after both networks' last ops), upload (the
  // counters into the control blocks), the steps, download (the control
  // blocks back, and `extra` bytes from extra_src into the pinned extra
  // buffer) with the one wait. settle() on every error path after begin().
  void begin(cudaStream_t stream);
  void upload(cudaStream_t stream);
  void download(cudaStream_t stream, const void* extra_src = nullptr, std::size_t extra = 0);
  void settle(cudaStream_t stream) noexcept;
  bool read_control_now() noexcept;  // after settle(): the control blocks as the steps left them
  const CompositeControl& result() const;
  // Both networks' optimizer_steps += the updates their steps applied.
  void apply_network_counters();

  // NaN / infinity scan of up to three device arrays before any work (one
  // wait), the CPU's message naming the first bad one.
  void check_finite(cudaStream_t stream, const char* const names[], const std::uintptr_t ptrs[],
                    const std::int64_t counts[], int k);
  // Throws InvalidArgument naming `name` unless `bytes` of row buffers (the
  // networks' workspaces included) fit in the GPU's memory.
  void check_memory(const char* name, const std::string& what, double bytes) const;
  void reserve_permutation(std::int64_t rows);
  void reserve_extra(std::size_t bytes);  // a device and a pinned buffer for per-step results
  // Frees the composite's row buffers and carves `counts` elements of the
  // dtype each out of one new block (after every earlier op has finished).
  void carve(std::initializer_list<std::int64_t> counts, std::initializer_list<void**> out);
  void* device_alloc(std::size_t bytes, const char* what);
  // Runs one step's `enqueue` through the graph cache (key.generation is
  // filled in: the composite's buffers and both networks').
  void run(GraphKey& key, cudaStream_t stream, const std::function<void(cudaStream_t)>& enqueue);
  // One call of one step: begin, reserve(rows), upload, run, download. On an
  // error: settle and, when `counted` and the step was uploaded, the counters
  // the step moved before it failed (apply_counters).
  void run_step(GraphKey& key, std::int64_t rows, bool counted, cudaStream_t stream,
                const std::function<void(cudaStream_t)>& enqueue);
  // The row buffers for `rows` rows, and the counters a finished step moved.
  virtual void reserve(std::int64_t rows) = 0;
  virtual void apply_counters(const CompositeControl& c) = 0;

  CompositeControl* cc() const { return cc_; }
  double* partials() const { return partials_; }  // kPartials doubles, for per-block sums
  std::int64_t* perm() const { return perm_; }
  std::int64_t* host_perm() const { return h_perm_; }
  double* extra_device() const { return extra_; }
  const double* extra_host() const { return h_extra_; }

  int device_ = 0;
  DType dtype_ = DType::Float32;
  std::size_t es_ = 4;
  CudaNetwork* a_ = nullptr;
  CudaNetwork* b_ = nullptr;

 private:
  void release() noexcept;
  void wait_both() const;

  std::mutex mutex_;
  CompositeControl* cc_ = nullptr;    // device
  CompositeControl* h_cc_ = nullptr;  // pinned: [0] to the device, [1] from it
  void* rows_ = nullptr;              // the row buffers, one block
  std::int64_t perm_capacity_ = 0;
  std::int64_t* perm_ = nullptr;
  std::int64_t* h_perm_ = nullptr;
  std::size_t extra_capacity_ = 0;
  double* extra_ = nullptr;
  double* h_extra_ = nullptr;
  double* partials_ = nullptr;        // device: per-block partial sums of a step
  std::int32_t* flags_ = nullptr;     // device: the pre-call scan's results
  std::int32_t* h_flags_ = nullptr;   // pinned
  std::unique_ptr<GraphCache> graphs_;
  cudaStream_t capture_stream_ = nullptr;
  std::uint64_t generation_ = 1;      // bumped when a buffer of the composite moves
  std::uint64_t graphs_generation_ = 0;
};

// The VAE of core/composite.hpp (class Vae) on CUDA: encoder from
// Philox(seed), decoder from Philox(seed + 1); ε of step t from stream
// (kLatent, latent_steps); the same losses, gradients and updates, to rounding.
class CudaVae : public CudaComposite {
 public:
  // InvalidArgument for a bad configuration (the CPU's messages), CudaError
  // when device_id is not a GPU this build can run on.
  CudaVae(const VaeConfig& cfg, int device_id);
  ~CudaVae();

  const VaeConfig& config() const { return cfg_; }
  CudaNetwork& encoder() { return *enc_; }
  CudaNetwork& decoder() { return *dec_; }

  void set_optimizer(const OptimizerConfig& opt);  // both networks

  // Device pointers of C-contiguous rows of the model's dtype: X (rows × D),
  // Y (rows × C; 0 without conditions), ε (rows × Z).
  VaeLosses loss_and_gradient(std::uintptr_t x, std::uintptr_t y, std::uintptr_t eps,
                              std::int64_t rows, cudaStream_t stream);
  VaeLosses train_step(std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                       cudaStream_t stream);
  VaeEpoch fit_epoch(std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                     std::int64_t batch_size, bool shuffle, cudaStream_t stream);

 private:
  struct Args;
  template <class T> void enqueue(cudaStream_t stream, const Args& a);
  void check_inputs(std::uintptr_t x, std::uintptr_t y, std::int64_t rows) const;
  // The memory a step on `rows` rows needs (with `extra` bytes), checked
  // before any work; reserve() then grows the buffers to it.
  void check_room(std::int64_t rows, double extra) const;
  void reserve(std::int64_t rows) override;
  VaeLosses losses_of(const CompositeControl& c) const;
  void apply_counters(const CompositeControl& c) override;

  VaeConfig cfg_;
  std::unique_ptr<CudaNetwork> enc_, dec_;
  std::int64_t capacity_ = 0;
  void* enc_in_ = nullptr;          // rows × (D + C): [x | y]
  void* xb_ = nullptr;              // rows × D: a fit's gathered targets
  void* eps_ = nullptr;             // rows × Z
  void* sd_ = nullptr;              // rows × Z: σ
  void* dec_in_ = nullptr;          // rows × (Z + C): [z | y]
  void* d_dec_in_ = nullptr;        // rows × (Z + C): dJ/d[z | y]
  void* d_enc_out_ = nullptr;       // rows × 2Z: dJ/d[μ | log σ²]
};

// The GAN of core/composite.hpp (class Gan) on CUDA: generator from
// Philox(seed), discriminator from Philox(seed + 1); the latents of step t
// from stream (kLatent, latent_steps).
class CudaGan : public CudaComposite {
 public:
  CudaGan(const GanConfig& cfg, int device_id);
  ~CudaGan();

  const GanConfig& config() const { return cfg_; }
  CudaNetwork& generator() { return *g_; }
  CudaNetwork& discriminator() { return *d_; }

  void set_optimizers(const OptimizerConfig& g, const OptimizerConfig& d);

  double discriminator_step(std::uintptr_t real, std::int64_t rows, cudaStream_t stream);
  double generator_step(std::int64_t rows, cudaStream_t stream);
  double generator_loss_and_gradient(std::uintptr_t z, std::int64_t rows, cudaStream_t stream);
  GanEpoch fit_epoch(std::uintptr_t x, std::int64_t rows, std::int64_t batch_size, int d_per_g,
                     bool train_d, bool train_g, bool shuffle, cudaStream_t stream);

 private:
  struct DArgs;
  struct GArgs;
  template <class T> void enqueue_d(cudaStream_t stream, const DArgs& a);
  template <class T> void enqueue_g(cudaStream_t stream, const GArgs& a);
  // The CPU's row-count check naming `name` (2·rows must be a 32-bit count),
  // then the memory (with `extra` bytes), before any work; reserve() grows.
  void check_room(std::int64_t rows, const char* name, double extra) const;
  void reserve(std::int64_t rows) override;
  void apply_counters(const CompositeControl& c) override;

  GanConfig cfg_;
  std::unique_ptr<CudaNetwork> g_, d_;
  std::int64_t capacity_ = 0;
  void* z_ = nullptr;        // rows × Z
  void* stacked_ = nullptr;  // 2·rows × D: [real; fake]
  void* targets_ = nullptr;  // 2·rows × 1
  void* d_fake_ = nullptr;   // rows × D: dJ/d(fake)
};

}  // namespace cuda
}  // namespace fusedae
