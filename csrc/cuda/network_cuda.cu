// CudaNetwork: argument checks, buffers, and the order of a step's kernels
// and GEMMs (the kernels themselves are in kernels.cu).
//
// Step on B rows, layers l = 1..L, A_0 = X (as the CPU's, network_impl.inl):
//   forward   Z_l = A_{l-1}·W_l (cuBLAS), then one epilogue kernel:
//             hidden: A_l = f(Z_l + b_l) [+ ρ̂ chunk sums on the sparse layer]
//             output: loss partials and δ_L = ∂J/∂Z_L in place [+ db_L partials]
//   finalize  one block: loss, ρ̂ → KL and s, ok = finite and clean, Adam's factors
//   backward  db_L; dW_l = A_{l-1}ᵀ·δ_l (cuBLAS, straight into the gradient);
//             G = δ_l·W_lᵀ (cuBLAS), one epilogue δ_{l-1} = (G + s)⊙f'(A_{l-1})
//             with db partials, then db_{l-1}
//   update    one optimizer kernel over the flat parameters, λW folded in
//   step_end  one block: the returned loss, counters, divergence, next batch
#include "cuda/network_cuda.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/errors.hpp"
#include "core/limits.hpp"
#include "core/philox.hpp"
#include "cuda/control.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/device.hpp"
#include "cuda/gemm.hpp"
#include "cuda/graph.hpp"
#include "cuda/kernels.cuh"

#ifndef FUSEDAE_CUDA_ARCHS
#define FUSEDAE_CUDA_ARCHS "unknown"
#endif

namespace fusedae {
namespace cuda {

namespace {

// forward() transforms a data set in chunks of rows, so its workspace stays
// a few layer widths × this many rows whatever the data set's size.
constexpr std::int64_t kForwardChunk = 1 << 16;

enum GraphKind : int { kGraphTrain = 1, kGraphGradient = 2, kGraphFit = 3 };

std::size_t align_up(std::size_t b) { return (b + 255) / 256 * 256; }

std::string shape_text(std::int64_t rows, std::int64_t cols, DType dt) {
  return std::to_string(rows) + " rows x " + std::to_string(cols) + " columns of " +
         dtype_name(dt);
}

}  // namespace

struct CudaNetwork::StepArgs {
  const void* x = nullptr;   // the step's inputs (caller's, or the batch buffer)
  const void* y = nullptr;   // its targets
  std::int64_t rows = 0;
  StepMode mode = StepMode::Update;
  bool check_inputs = false;  // NaN scan of x (and y if it differs) inside the step
  // fit_epoch: gather the batch from the caller's arrays first
  bool gather = false;
  const void* src_x = nullptr;
  const void* src_y = nullptr;  // null: targets are the inputs
  const std::int64_t* perm = nullptr;
  std::int64_t batch_size = 0;
  Noise noise = Noise::None;
  double noise_level = 0.0;
};

// ---- construction -----------------------------------------------------------

CudaNetwork::CudaNetwork(const NetworkConfig& cfg, int device_id) : cfg_(cfg), device_(device_id) {
  cfg_.validate();
  L_ = cfg_.n_layers();
  n_ = cfg_.sizes;
  es_ = dtype_size(cfg_.dtype);
  n_params_ = cfg_.layout(&w_off_, &b_off_);
  for (int l = 1; l <= L_; ++l) {
    max_width_ = std::max(max_width_, n_[l]);
    if (l < L_) hidden_max_ = std::max(hidden_max_, n_[l]);
  }
  sparse_layer_ = cfg_.sparsity_layer > 0 && cfg_.sparsity_weight > 0 ? cfg_.sparsity_layer : 0;
  act_.assign(L_ + 1, nullptr);

  // The device: one that exists, and that can run what this build compiled.
  int count = 0;
  const cudaError_t cerr = cudaGetDeviceCount(&count);
  if (cerr != cudaSuccess) {
    (void)cudaGetLastError();
    const char* why = cerr == cudaErrorInsufficientDriver
                          ? "no NVIDIA driver is loaded, or it is older than this CUDA runtime "
                            "needs"
                          : (cerr == cudaErrorNoDevice ? "no CUDA GPU was found" : "");
    throw CudaError(std::string("device_id: no CUDA GPU is usable on this machine: ") + why +
                    (*why ? " (" : "(") + cudaGetErrorName(cerr) + ": " +
                    cudaGetErrorString(cerr) + ")");
  }
  if (device_id < 0 || device_id >= count)
    throw CudaError("device_id: expected a CUDA device in [0, " + std::to_string(count) +
                    "), got " + std::to_string(device_id) +
                    (count == 0 ? " (this machine has no usable CUDA GPU)" : ""));
  DeviceGuard guard(device_);
  cudaDeviceProp prop;
  FUSEDAE_CUDA(cudaGetDeviceProperties(&prop, device_));
  isa_ = std::string("cuda:") + prop.name;
  device_memory_ = static_cast<double>(prop.totalGlobalMem);
  const cudaError_t perr = kern::probe_kernel_image();
  if (perr != cudaSuccess)
    throw CudaError("device_id: device " + std::to_string(device_) + " (" + prop.name +
                    ", compute capability " + std::to_string(prop.major) + "." +
                    std::to_string(prop.minor) + ") cannot run this build's kernels (built for " +
                    FUSEDAE_CUDA_ARCHS + "; rebuild with -DCMAKE_CUDA_ARCHITECTURES=" +
                    std::to_string(prop.major * 10 + prop.minor) + "): " +
                    cudaGetErrorString(perr));

  // Parameters, gradients and two moments: checked against the GPU's memory
  // in floating point first (core/limits.hpp's rule), then allocated.
  const double pbytes = static_cast<double>(n_params_) * static_cast<double>(es_);
  if (4.0 * pbytes > device_memory_)
    throw InvalidArgument("sizes: a network of " + std::to_string(n_params_) +
                          " parameters (their gradients and optimizer state included) would "
                          "need " + format_bytes(4.0 * pbytes) + ", more than this GPU's memory (" +
                          format_bytes(device_memory_) + ")");
  try {
    FUSEDAE_CUDA(cudaStreamCreateWithFlags(&capture_stream_, cudaStreamNonBlocking));
    FUSEDAE_CUDA(cudaStreamCreateWithFlags(&host_stream_, cudaStreamNonBlocking));
    FUSEDAE_CUDA(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    const std::size_t pb = static_cast<std::size_t>(n_params_) * es_;
    params_ = device_alloc(pb, "parameters");
    grads_ = device_alloc(pb, "gradients");
    state0_ = device_alloc(pb, "optimizer state");
    state1_ = device_alloc(pb, "optimizer state");
    // Zeroed on the host-copy stream and waited for below: a plain
    // cudaMemset could still be running when the first op starts on a
    // non-blocking stream of the caller's.
    FUSEDAE_CUDA(cudaMemsetAsync(params_, 0, pb, host_stream_));
    FUSEDAE_CUDA(cudaMemsetAsync(grads_, 0, pb, host_stream_));
    FUSEDAE_CUDA(cudaMemsetAsync(state0_, 0, pb, host_stream_));
    FUSEDAE_CUDA(cudaMemsetAsync(state1_, 0, pb, host_stream_));

    std::int64_t col = 1;
    for (int l = 1; l <= L_; ++l) col = std::max(col, kern::max_chunks(n_[l]) * n_[l]);
    const std::int64_t ns = sparse_layer_ ? n_[sparse_layer_] : 1;
    const std::int64_t rho = sparse_layer_ ? kern::max_chunks(ns) * ns : 1;
    const std::int64_t lossp = kern::max_loss_partials(n_[L_]);
    col_part_ = static_cast<double*>(device_alloc(sizeof(double) * col, "column partial sums"));
    rho_part_ = static_cast<double*>(device_alloc(sizeof(double) * rho, "column partial sums"));
    loss_part_ = static_cast<double*>(device_alloc(sizeof(double) * lossp, "loss partial sums"));
    sumsq_part_ = static_cast<double*>(
        device_alloc(sizeof(double) * kern::kFlatBlocks, "partial sums"));
    sparse_term_ = device_alloc(es_ * ns, "sparsity term");
    segs_ = static_cast<std::int64_t*>(device_alloc(sizeof(std::int64_t) * 2 * L_, "offsets"));
    ctl_ = static_cast<StepControl*>(device_alloc(sizeof(StepControl), "control block"));
    flags_ = static_cast<std::int32_t*>(device_alloc(2 * sizeof(std::int32_t), "flags"));
    FUSEDAE_CUDA(cudaMemsetAsync(ctl_, 0, sizeof(StepControl), host_stream_));
    std::vector<std::int64_t> segs;
    for (int l = 1; l <= L_; ++l) {
      segs.push_back(w_off_[l]);
      segs.push_back(b_off_[l]);
    }
    FUSEDAE_CUDA(cudaMemcpyAsync(segs_, segs.data(), sizeof(std::int64_t) * segs.size(),
                                 cudaMemcpyHostToDevice, host_stream_));
    // Page-locked, so the per-call copies of the control block are truly
    // asynchronous and can be ordered on the caller's stream.
    FUSEDAE_CUDA(cudaMallocHost(reinterpret_cast<void**>(&h_ctl_), 2 * sizeof(StepControl)));
    FUSEDAE_CUDA(cudaMallocHost(reinterpret_cast<void**>(&h_flags_), 2 * sizeof(std::int32_t)));
    std::memset(h_ctl_, 0, 2 * sizeof(StepControl));

    gemm_ = std::make_unique<Gemm>();
    graphs_ = std::make_unique<GraphCache>();
    end(host_stream_);
    wait_idle();  // the zeroing and the offsets are in place before any op
    fixed_bytes_ = 4.0 * pbytes + 8.0 * static_cast<double>(col + rho + lossp);
  } catch (...) {
    release();
    throw;
  }
}

CudaNetwork::~CudaNetwork() {
  try {
    DeviceGuard guard(device_);
    if (done_ && have_last_) (void)cudaEventSynchronize(done_);
    release();
  } catch (...) {
    // A destructor must not throw; a device in an error state frees what it can.
    release();
  }
}

void CudaNetwork::release() noexcept {
  if (graphs_) graphs_->clear();
  graphs_.reset();
  gemm_.reset();
  for (void* p : {params_, grads_, state0_, state1_, static_cast<void*>(rho_part_),
                  static_cast<void*>(col_part_), static_cast<void*>(loss_part_),
                  static_cast<void*>(sumsq_part_), sparse_term_, static_cast<void*>(segs_),
                  static_cast<void*>(ctl_), static_cast<void*>(flags_), ws_, batch_,
                  static_cast<void*>(perm_)})
    if (p) (void)cudaFree(p);
  params_ = grads_ = state0_ = state1_ = sparse_term_ = ws_ = batch_ = nullptr;
  rho_part_ = col_part_ = loss_part_ = sumsq_part_ = nullptr;
  segs_ = perm_ = nullptr;
  ctl_ = nullptr;
  flags_ = nullptr;
  if (h_ctl_) (void)cudaFreeHost(h_ctl_);
  if (h_flags_) (void)cudaFreeHost(h_flags_);
  if (h_perm_) (void)cudaFreeHost(h_perm_);
  h_ctl_ = nullptr;
  h_flags_ = nullptr;
  h_perm_ = nullptr;
  if (capture_stream_) (void)cudaStreamDestroy(capture_stream_);
  if (host_stream_) (void)cudaStreamDestroy(host_stream_);
  if (done_) (void)cudaEventDestroy(done_);
  capture_stream_ = host_stream_ = nullptr;
  done_ = nullptr;
  (void)cudaGetLastError();
}

void* CudaNetwork::device_alloc(std::size_t bytes, const char* what) {
  return cuda::device_alloc(bytes, what, device_);
}

// ---- stream order -------------------------------------------------------------
// Each op records done_ on its stream when its work is issued; the next op,
// on whatever stream, waits for that event first. So two calls on different
// streams never overlap on the network's buffers, and no call ever
// synchronises the device or a stream that is not its own.

void CudaNetwork::begin(cudaStream_t stream) {
  check_stream(stream, device_);
  check_not_capturing(stream);
  // Even on the stream of the previous op: a destroyed stream's handle may
  // come back as a new stream's, which owes nothing to the old one's order.
  if (have_last_) FUSEDAE_CUDA(cudaStreamWaitEvent(stream, done_, 0));
}

void CudaNetwork::end(cudaStream_t stream) {
  FUSEDAE_CUDA(cudaEventRecord(done_, stream));
  have_last_ = true;
}

void CudaNetwork::wait_idle() const {
  if (have_last_) FUSEDAE_CUDA(cudaEventSynchronize(done_));
}

void CudaNetwork::host_copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  DeviceGuard guard(device_);
  begin(host_stream_);
  try {
    FUSEDAE_CUDA(cudaMemcpyAsync(dst, src, bytes, kind, host_stream_));
    end(host_stream_);
    wait_idle();
  } catch (...) {
    settle(host_stream_);
    throw;
  }
}

void CudaNetwork::upload_control(cudaStream_t stream) {
  StepControl& c = h_ctl_[0];
  std::memset(&c, 0, sizeof c);
  c.seed = seed;
  c.t0 = optimizer_steps;
  c.noise0 = noise_steps;
  c.opt_kind = static_cast<std::int32_t>(opt_.kind);
  c.lr = opt_.learning_rate;
  c.momentum = opt_.momentum;
  c.beta1 = opt_.beta1;
  c.beta2 = opt_.beta2;
  c.eps = opt_.eps;
  FUSEDAE_CUDA(cudaMemcpyAsync(ctl_, &c, sizeof c, cudaMemcpyHostToDevice, stream));
}

void CudaNetwork::download_control(cudaStream_t stream) {
  FUSEDAE_CUDA(cudaMemcpyAsync(&h_ctl_[1], ctl_, sizeof(StepControl), cudaMemcpyDeviceToHost,
                               stream));
  end(stream);
  wait_idle();
}

void CudaNetwork::settle(cudaStream_t stream) noexcept {
  if (cudaEventRecord(done_, stream) == cudaSuccess) {
    have_last_ = true;
    if (cudaEventSynchronize(done_) == cudaSuccess) {
      (void)cudaGetLastError();
      return;
    }
  }
  (void)cudaStreamSynchronize(stream);
  (void)cudaGetLastError();
}

bool CudaNetwork::read_control_now() noexcept {
  // After settle(): the steps' work has finished, so the private stream
  // needs no ordering after the op's.
  if (cudaMemcpyAsync(&h_ctl_[1], ctl_, sizeof(StepControl), cudaMemcpyDeviceToHost,
                      host_stream_) == cudaSuccess &&
      cudaStreamSynchronize(host_stream_) == cudaSuccess)
    return true;
  (void)cudaGetLastError();
  return false;
}

void CudaNetwork::apply_fit_counters(const StepControl& r, Noise noise) {
  optimizer_steps += r.applied;
  // Like the CPU: a noisy step draws its stream whether or not it applies.
  if (noise != Noise::None) noise_steps += r.applied + (r.diverged ? 1 : 0);
}

// ---- checks -------------------------------------------------------------------

double CudaNetwork::workspace_bytes(std::int64_t rows, bool batch) const {
  // In floating point: no product can overflow (core/limits.hpp).
  const double r = static_cast<double>(rows), es = static_cast<double>(es_);
  double hidden = 0.0;
  for (int l = 1; l < L_; ++l) hidden += static_cast<double>(n_[l]);
  const double nl = static_cast<double>(n_[L_]), n0 = static_cast<double>(n_[0]);
  double elems = r * (hidden + nl + 2.0 * static_cast<double>(hidden_max_));
  if (batch) elems += r * (n0 + nl);
  return elems * es;
}

void CudaNetwork::check_row_count(std::int64_t rows, const char* name) const {
  // The CPU's check_matrix (core/network.cpp) words it so.
  if (rows < 1) throw InvalidArgument(std::string(name) + ": expected at least one row");
  if (rows > kMaxDim) throw InvalidArgument(std::string(name) + ": more than 2^31-1 rows");
}

void CudaNetwork::check_memory(std::int64_t rows, const char* name, double bytes) const {
  if (bytes + fixed_bytes_ > device_memory_)
    throw InvalidArgument(std::string(name) + ": " + std::to_string(rows) +
                          " rows in this network (rows x layer widths of GPU working memory) "
                          "would need " + format_bytes(bytes) + ", more than this GPU's memory (" +
                          format_bytes(device_memory_) + ")");
}

void CudaNetwork::check_matrix(const char* name, std::uintptr_t p, std::int64_t rows,
                               std::int64_t cols) const {
  check_device_pointer(name, p, device_, es_,
                       static_cast<double>(rows) * static_cast<double>(cols) *
                           static_cast<double>(es_),
                       shape_text(rows, cols, cfg_.dtype));
}

void CudaNetwork::check_pair(std::uintptr_t x, std::uintptr_t y, std::int64_t rows) const {
  check_matrix("X", x, rows, n_[0]);
  if (y == x) {
    // The same array as inputs and targets (an autoencoder): one width.
    if (n_[L_] != n_[0])
      throw InvalidArgument("Y: expected " + std::to_string(n_[L_]) + " columns");
  } else {
    check_matrix("Y", y, rows, n_[L_]);
  }
}

void CudaNetwork::check_finite(cudaStream_t stream, std::uintptr_t x, std::int64_t nx,
                               std::uintptr_t y, std::int64_t ny) {
  FUSEDAE_CUDA(cudaMemsetAsync(flags_, 0, 2 * sizeof(std::int32_t), stream));
  if (cfg_.dtype == DType::Float32) {
    kern::nonfinite(reinterpret_cast<const float*>(x), nx, flags_, stream);
    if (y) kern::nonfinite(reinterpret_cast<const float*>(y), ny, flags_ + 1, stream);
  } else {
    kern::nonfinite(reinterpret_cast<const double*>(x), nx, flags_, stream);
    if (y) kern::nonfinite(reinterpret_cast<const double*>(y), ny, flags_ + 1, stream);
  }
  FUSEDAE_CUDA(cudaMemcpyAsync(h_flags_, flags_, 2 * sizeof(std::int32_t),
                               cudaMemcpyDeviceToHost, stream));
  end(stream);
  wait_idle();  // the one synchronisation the input check costs
  if (h_flags_[0]) throw InvalidArgument("X: contains NaN or infinity");
  if (h_flags_[1]) throw InvalidArgument("Y: contains NaN or infinity");
}

// ---- buffers that grow --------------------------------------------------------
// Before any buffer a graph may bake in is freed, every op issued so far has
// finished (wait_idle) and the graphs are dropped (a new generation).

void CudaNetwork::reserve_rows(std::int64_t rows) {
  if (rows <= rows_capacity_) return;
  wait_idle();
  graphs_->clear();
  ++generation_;
  if (ws_) FUSEDAE_CUDA(cudaFree(ws_));
  ws_ = nullptr;
  rows_capacity_ = 0;
  std::vector<std::size_t> sizes;
  for (int l = 1; l < L_; ++l) sizes.push_back(align_up(rows * n_[l] * es_));
  sizes.push_back(align_up(rows * n_[L_] * es_));
  sizes.push_back(align_up(rows * hidden_max_ * es_));
  sizes.push_back(align_up(rows * hidden_max_ * es_));
  std::size_t total = 0;
  for (auto s : sizes) total += s;
  ws_ = device_alloc(total, (std::to_string(rows) + "-row workspace").c_str());
  char* p = static_cast<char*>(ws_);
  std::size_t k = 0;
  for (int l = 1; l < L_; ++l) {
    act_[l] = p;
    p += sizes[k++];
  }
  out_ = p;
  p += sizes[k++];
  ping_ = p;
  p += sizes[k++];
  pong_ = p;
  rows_capacity_ = rows;
}

void CudaNetwork::reserve_batch(std::int64_t rows) {
  reserve_rows(rows);
  if (rows <= batch_capacity_) return;
  wait_idle();
  graphs_->clear();
  ++generation_;
  if (batch_) FUSEDAE_CUDA(cudaFree(batch_));
  batch_ = nullptr;
  batch_capacity_ = 0;
  const std::size_t bx = align_up(rows * n_[0] * es_), by = align_up(rows * n_[L_] * es_);
  batch_ = device_alloc(bx + by, "minibatch buffers");
  batch_x_ = batch_;
  batch_y_ = static_cast<char*>(batch_) + bx;
  batch_capacity_ = rows;
}

void CudaNetwork::reserve_permutation(std::int64_t rows) {
  if (rows <= perm_capacity_) return;
  wait_idle();
  graphs_->clear();
  ++generation_;
  grow_permutation(rows, device_, &perm_, &h_perm_, &perm_capacity_);
}

// ---- host-side state ------------------------------------------------------------

void CudaNetwork::set_optimizer(const OptimizerConfig& opt) {
  opt.validate();
  opt_ = opt;
  reset_optimizer_state();
}

void CudaNetwork::reset_optimizer_state() {
  DeviceGuard guard(device_);
  const std::size_t bytes = static_cast<std::size_t>(n_params_) * es_;
  begin(host_stream_);
  try {
    FUSEDAE_CUDA(cudaMemsetAsync(state0_, 0, bytes, host_stream_));
    FUSEDAE_CUDA(cudaMemsetAsync(state1_, 0, bytes, host_stream_));
    end(host_stream_);
    wait_idle();
  } catch (...) {
    settle(host_stream_);
    throw;
  }
  optimizer_steps = 0;
}

void CudaNetwork::get_params(void* host) {
  host_copy(host, params_, static_cast<std::size_t>(n_params_) * es_, cudaMemcpyDeviceToHost);
}
void CudaNetwork::set_params(const void* host) {
  host_copy(params_, host, static_cast<std::size_t>(n_params_) * es_, cudaMemcpyHostToDevice);
}
void CudaNetwork::get_state(int k, void* host) {
  host_copy(host, state(k), static_cast<std::size_t>(n_params_) * es_, cudaMemcpyDeviceToHost);
}
void CudaNetwork::set_state(int k, const void* host) {
  host_copy(state(k), host, static_cast<std::size_t>(n_params_) * es_, cudaMemcpyHostToDevice);
}

template <class T>
void CudaNetwork::fill_init(std::uint64_t init_seed, void* host) const {
  // The CPU's NetworkImpl::init_params, value for value.
  T* p = static_cast<T*>(host);
  for (int l = 1; l <= L_; ++l) {
    const double r = std::sqrt(6.0 / static_cast<double>(n_[l - 1] + n_[l] + 1));
    T* w = p + w_off_[l];
    const std::int64_t count = n_[l - 1] * n_[l];
    for (std::int64_t k = 0; k < count; k += 4) {
      const philox::U4 u = philox::block(init_seed, philox::kInit,
                                         static_cast<std::uint32_t>(l),
                                         static_cast<std::uint64_t>(k / 4));
      for (int h = 0; h < 4 && k + h < count; ++h)
        w[k + h] = static_cast<T>((2.0 * philox::uniform24(u.v[h]) - 1.0) * r);
    }
    T* b = p + b_off_[l];
    for (std::int64_t j = 0; j < n_[l]; ++j) b[j] = T(0);
  }
}

void CudaNetwork::init_params(std::uint64_t new_seed) {
  // The counters change only once the new parameters are in place: a failed
  // copy leaves the network as it was.
  std::vector<unsigned char> host(static_cast<std::size_t>(n_params_) * es_);
  if (cfg_.dtype == DType::Float32) fill_init<float>(new_seed, host.data());
  else fill_init<double>(new_seed, host.data());
  set_params(host.data());
  seed = new_seed;
  noise_steps = 0;
  epochs = 0;
  reset_optimizer_state();
}

// ---- the step -------------------------------------------------------------------

template <class T>
void CudaNetwork::enqueue_step(cudaStream_t st, const StepArgs& a) {
  gemm_->set_stream(st);
  StepControl* ctl = ctl_;
  const std::int64_t m = a.rows;
  const int mi = static_cast<int>(m);
  auto n = [&](int l) { return static_cast<int>(n_[l]); };
  T* P = static_cast<T*>(params_);
  T* G = static_cast<T*>(grads_);
  auto act = [&](int l) { return static_cast<T*>(act_[l]); };

  const T* x = static_cast<const T*>(a.x);
  const T* y = static_cast<const T*>(a.y);
  if (a.gather) {
    // The CPU's stage_rows: an autoencoder with noise trains on corrupted
    // inputs (batch X) against the clean rows (batch Y); given targets go to
    // batch Y; an autoencoder without noise uses batch X for both.
    T* bx = static_cast<T*>(batch_x_);
    T* by = static_cast<T*>(batch_y_);
    const bool noisy = a.noise != Noise::None;
    kern::gather<T>(ctl, static_cast<const T*>(a.src_x), static_cast<const T*>(a.src_y), a.perm,
                    a.batch_size, m, n_[0], n_[L_], a.noise, a.noise_level, bx,
                    noisy && !a.src_y ? by : nullptr, a.src_y ? by : nullptr, st);
    x = bx;
    y = (a.src_y || noisy) ? by : bx;
  }
  if (a.check_inputs) {
    kern::nonfinite<T>(x, m * n_[0], &ctl->bad_x, st);
    if (y != x) kern::nonfinite<T>(y, m * n_[L_], &ctl->bad_y, st);
  }

  // Forward.
  const int sl = sparse_layer_;
  kern::Tiling rho_tiling;
  kern::OutputPartials outp;
  const T* a_prev = x;
  for (int l = 1; l <= L_; ++l) {
    T* dst = l < L_ ? act(l) : static_cast<T*>(out_);
    gemm_->rm(false, false, mi, n(l), n(l - 1), a_prev, n(l - 1), P + w_off_[l], n(l), dst, n(l));
    if (l < L_) {
      const kern::Tiling t = kern::bias_act<T>(cfg_.activations[l - 1], dst, m, n_[l],
                                               P + b_off_[l], l == sl ? rho_part_ : nullptr, ctl, st);
      if (l == sl) rho_tiling = t;
    } else {
      outp = kern::output_delta<T>(cfg_.activations[L_ - 1], cfg_.loss, dst, y, m, n_[L_],
                                   P + b_off_[L_], col_part_, loss_part_, ctl, st);
    }
    a_prev = dst;
  }
  const double eps = cfg_.dtype == DType::Float32 ? kRhohatEpsFloat32 : kRhohatEpsFloat64;
  kern::finalize<T>(ctl, loss_part_, outp.loss_partials, m, sl ? rho_part_ : nullptr,
                    rho_tiling.chunks, sl ? n_[sl] : 0, cfg_.sparsity_target, cfg_.sparsity_weight,
                    eps, static_cast<T*>(sparse_term_), a.mode, a.check_inputs, st);
  kern::finish_colsum<T>(col_part_, outp.col.chunks, n_[L_], G + b_off_[L_], ctl, st);

  // Backward (every dW from the weights before the update).
  backward_impl<T>(st, x, static_cast<T*>(out_), m, nullptr, true, sl);

  const double lam = cfg_.weight_decay;
  int n_sq = 0;
  if (a.mode == StepMode::Update || lam > 0)
    n_sq = kern::optimizer<T>(ctl, P, G, static_cast<T*>(state0_), static_cast<T*>(state1_),
                              n_params_, segs_, 2 * L_, lam, sumsq_part_, a.mode, st);
  kern::step_end(ctl, sumsq_part_, n_sq, lam, m, a.mode, st);
}

template <class T>
void CudaNetwork::enqueue_forward(cudaStream_t st, const void* xv, std::int64_t rows, int start,
                                  int stop, void* outv) {
  gemm_->set_stream(st);
  const T* P = static_cast<const T*>(params_);
  auto n = [&](int l) { return static_cast<int>(n_[l]); };
  const std::int64_t chunk = std::min(rows, kForwardChunk);
  for (std::int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const std::int64_t m = std::min(chunk, rows - r0);
    const T* a_prev = static_cast<const T*>(xv) + r0 * n_[start];
    for (int l = start + 1; l <= stop; ++l) {
      T* dst = l == stop ? static_cast<T*>(outv) + r0 * n_[l] : static_cast<T*>(act_[l]);
      gemm_->rm(false, false, static_cast<int>(m), n(l), n(l - 1), a_prev, n(l - 1), P + w_off_[l],
                n(l), dst, n(l));
      if (cfg_.activations[l - 1] == Activation::Softmax)
        kern::bias_softmax<T>(dst, m, n_[l], P + b_off_[l], st);
      else
        kern::bias_act<T>(cfg_.activations[l - 1], dst, m, n_[l], P + b_off_[l], nullptr, nullptr,
                          st);
      a_prev = dst;
    }
  }
}

// ---- ops ------------------------------------------------------------------------
// Checks in the CPU's order (core/network.cpp): the arrays (rows, pointers,
// then their values), the options, then the memory the call needs. Every op
// that throws after begin() settles its stream first (settle()), and an op
// whose steps may have applied before the error keeps the counters true to
// the parameters (train_step, fit_epoch).

void CudaNetwork::forward(std::uintptr_t x, std::int64_t rows, int start, int stop,
                          std::uintptr_t out, cudaStream_t stream) {
  if (start < 0 || start >= L_ || stop <= start || stop > L_)
    throw InvalidArgument("layers: expected 0 <= start < stop <= " + std::to_string(L_));
  check_row_count(rows, "X");
  DeviceGuard guard(device_);
  check_matrix("X", x, rows, n_[start]);
  check_matrix("out", out, rows, n_[stop]);
  const std::int64_t chunk = rows < kForwardChunk ? rows : kForwardChunk;
  check_memory(rows, "X", workspace_bytes(chunk, false));
  begin(stream);
  try {
    check_finite(stream, x, rows * n_[start], 0, 0);
    reserve_rows(chunk);
    if (cfg_.dtype == DType::Float32)
      enqueue_forward<float>(stream, reinterpret_cast<const void*>(x), rows, start, stop,
                             reinterpret_cast<void*>(out));
    else
      enqueue_forward<double>(stream, reinterpret_cast<const void*>(x), rows, start, stop,
                              reinterpret_cast<void*>(out));
    end(stream);  // no wait: the output is the caller's to order on its stream
  } catch (...) {
    settle(stream);
    throw;
  }
}

void CudaNetwork::run_step(GraphKey key, const StepArgs& a, cudaStream_t stream) {
  key.generation = generation_;
  graphs_->run(key, stream, capture_stream_, [&](cudaStream_t st) {
    if (cfg_.dtype == DType::Float32) enqueue_step<float>(st, a);
    else enqueue_step<double>(st, a);
  });
}

double CudaNetwork::loss_and_gradient(std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                                      cudaStream_t stream) {
  check_row_count(rows, "X");
  DeviceGuard guard(device_);
  check_pair(x, y, rows);
  check_memory(rows, "X", workspace_bytes(rows, false));
  begin(stream);
  try {
    check_finite(stream, x, rows * n_[0], y == x ? 0 : y, rows * n_[L_]);
    reserve_rows(rows);
    upload_control(stream);
    StepArgs a;
    a.x = reinterpret_cast<const void*>(x);
    a.y = reinterpret_cast<const void*>(y);
    a.rows = rows;
    a.mode = StepMode::Gradient;
    GraphKey key;
    key.kind = kGraphGradient;
    key.x = x;
    key.y = y;
    key.rows = rows;
    run_step(key, a, stream);
    download_control(stream);
  } catch (...) {
    settle(stream);
    throw;
  }
  return h_ctl_[1].total;
}

double CudaNetwork::train_step(std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                               cudaStream_t stream) {
  check_row_count(rows, "X");
  DeviceGuard guard(device_);
  check_pair(x, y, rows);
  check_memory(rows, "X", workspace_bytes(rows, false));
  begin(stream);
  bool uploaded = false;
  try {
    reserve_rows(rows);
    upload_control(stream);
    uploaded = true;
    StepArgs a;
    a.x = reinterpret_cast<const void*>(x);
    a.y = reinterpret_cast<const void*>(y);
    a.rows = rows;
    a.mode = StepMode::Update;
    // The NaN scan runs inside the step (one synchronisation per step instead
    // of two): a bad input stops the step before its update, and is reported.
    a.check_inputs = true;
    GraphKey key;
    key.kind = kGraphTrain;
    key.x = x;
    key.y = y;
    key.rows = rows;
    run_step(key, a, stream);
    download_control(stream);
  } catch (...) {
    settle(stream);
    // A step that was applied before the error is part of the parameters now.
    if (uploaded && read_control_now()) optimizer_steps += h_ctl_[1].applied;
    throw;
  }
  const StepControl& r = h_ctl_[1];
  if (r.bad_x) throw InvalidArgument("X: contains NaN or infinity");
  if (r.bad_y) throw InvalidArgument("Y: contains NaN or infinity");
  optimizer_steps += r.applied;
  return r.total;
}

EpochResult CudaNetwork::fit_epoch(std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                                   const EpochOptions& o, cudaStream_t stream) {
  // The CPU's checks, in its order: arrays (with their values), batch size,
  // noise level, then the memory the epoch needs.
  check_row_count(rows, "X");
  DeviceGuard guard(device_);
  if (y) {
    check_pair(x, y, rows);
  } else {
    check_matrix("X", x, rows, n_[0]);
    if (n_[0] != n_[L_])
      throw InvalidArgument("Y: required when the output width differs from the input's");
  }
  begin(stream);
  try {
    check_finite(stream, x, rows * n_[0], y == x ? 0 : y, rows * n_[L_]);
  } catch (...) {
    settle(stream);
    throw;
  }
  if (o.batch_size < 1) throw InvalidArgument("batch_size: expected an integer >= 1");
  if (!std::isfinite(o.noise_level) || o.noise_level < 0 ||
      (o.noise != Noise::Gaussian && o.noise_level > 1))
    throw InvalidArgument("noise_level: expected a standard deviation >= 0 (gaussian) or a "
                          "probability in [0, 1] (masking, salt_pepper)");
  const std::int64_t bs = o.batch_size < rows ? o.batch_size : rows;
  check_memory(rows, "X",
               workspace_bytes(bs, true) + (o.shuffle ? 8.0 * static_cast<double>(rows) : 0.0));

  const std::int64_t epochs_before = epochs;
  bool uploaded = false;
  try {
    reserve_batch(bs);
    if (o.shuffle) {
      // The CPU's permutation, computed on the host with its code (Fisher-Yates
      // is sequential) and copied once per epoch.
      reserve_permutation(rows);
      philox::permutation(seed, static_cast<std::uint32_t>(epochs), rows, h_perm_);
      FUSEDAE_CUDA(cudaMemcpyAsync(perm_, h_perm_, sizeof(std::int64_t) * rows,
                                   cudaMemcpyHostToDevice, stream));
    }
    ++epochs;
    upload_control(stream);
    uploaded = true;

    StepArgs a;
    a.mode = StepMode::Update;
    a.gather = true;
    a.src_x = reinterpret_cast<const void*>(x);
    a.src_y = reinterpret_cast<const void*>(y);
    a.perm = o.shuffle ? perm_ : nullptr;
    a.batch_size = bs;
    a.noise = o.noise;
    a.noise_level = o.noise_level;
    GraphKey key;
    key.kind = kGraphFit;
    key.x = x;
    key.y = y;
    key.batch = bs;
    key.shuffle = o.shuffle ? 1 : 0;
    key.noise = static_cast<int>(o.noise);
    key.noise_level = o.noise_level;
    const std::int64_t batches = (rows + bs - 1) / bs;
    // Batches run back to back without the host looking: every kernel reads
    // the batch index, the counters and the divergence flag from the control
    // block, so the same graph serves every full batch (and one more the
    // shorter last batch).
    for (std::int64_t b = 0; b < batches; ++b) {
      a.rows = b + 1 < batches ? bs : rows - b * bs;
      key.rows = a.rows;
      run_step(key, a, stream);
    }
    download_control(stream);
  } catch (...) {
    settle(stream);
    // Steps that ran before the error are part of the parameters: the
    // counters say so, as after a diverged epoch. An epoch of which nothing
    // ran leaves them as they were.
    if (uploaded && read_control_now() && (h_ctl_[1].applied > 0 || h_ctl_[1].diverged))
      apply_fit_counters(h_ctl_[1], o.noise);
    else
      epochs = epochs_before;
    throw;
  }
  const StepControl& r = h_ctl_[1];
  apply_fit_counters(r, o.noise);
  EpochResult res;
  res.steps = r.applied;
  res.diverged = r.diverged != 0;
  if (res.diverged) res.mean_loss = r.last_loss;
  else res.mean_loss = r.seen ? r.weighted / static_cast<double>(r.seen) : 0.0;
  return res;
}

}  // namespace cuda
}  // namespace fusedae

// ---- building blocks of composite models ------------------------------------------
// The CPU's forward_keep / backward_from / step_with_input_grad (cpu/network_impl.inl,
// phases ForwardOnly, BackwardOnly and Full), kernel for kernel as enqueue_step
// above, gated on this network's control block; the composite that calls them
// (cuda/composite_cuda.cu) owns the call around them.

namespace fusedae {
namespace cuda {

template <class T>
void CudaNetwork::forward_keep_impl(cudaStream_t st, const void* xv, std::int64_t m) {
  gemm_->set_stream(st);
  const int mi = static_cast<int>(m);
  auto n = [&](int l) { return static_cast<int>(n_[l]); };
  T* P = static_cast<T*>(params_);
  const T* a_prev = static_cast<const T*>(xv);
  for (int l = 1; l <= L_; ++l) {
    T* dst = l < L_ ? static_cast<T*>(act_[l]) : static_cast<T*>(out_);
    gemm_->rm(false, false, mi, n(l), n(l - 1), a_prev, n(l - 1), P + w_off_[l], n(l), dst, n(l));
    kern::bias_act<T>(cfg_.activations[l - 1], dst, m, n_[l], P + b_off_[l], nullptr, ctl_, st);
    a_prev = dst;
  }
}

void* CudaNetwork::enqueue_forward_keep(cudaStream_t stream, const void* x, std::int64_t rows) {
  if (cfg_.dtype == DType::Float32) forward_keep_impl<float>(stream, x, rows);
  else forward_keep_impl<double>(stream, x, rows);
  kept_x_ = x;
  kept_rows_ = rows;
  return out_;
}

template <class T>
void CudaNetwork::forward_into_impl(cudaStream_t st, const void* xv, std::int64_t m, void* outv) {
  gemm_->set_stream(st);
  const int mi = static_cast<int>(m);
  auto n = [&](int l) { return static_cast<int>(n_[l]); };
  T* P = static_cast<T*>(params_);
  const T* a_prev = static_cast<const T*>(xv);
  for (int l = 1; l <= L_; ++l) {
    T* dst = l < L_ ? static_cast<T*>(act_[l]) : static_cast<T*>(outv);
    gemm_->rm(false, false, mi, n(l), n(l - 1), a_prev, n(l - 1), P + w_off_[l], n(l), dst, n(l));
    if (cfg_.activations[l - 1] == Activation::Softmax)
      kern::bias_softmax<T>(dst, m, n_[l], P + b_off_[l], st);
    else
      kern::bias_act<T>(cfg_.activations[l - 1], dst, m, n_[l], P + b_off_[l], nullptr, ctl_, st);
    a_prev = dst;
  }
}

void CudaNetwork::enqueue_forward_into(cudaStream_t stream, const void* x, std::int64_t rows,
                                       void* out) {
  if (cfg_.dtype == DType::Float32) forward_into_impl<float>(stream, x, rows, out);
  else forward_into_impl<double>(stream, x, rows, out);
}

// From δ_L (in out_, db_L done) down to dW_1 and dX: enqueue_step's backward,
// with the sparsity term s on layer `sl` (0: none).
template <class T>
void CudaNetwork::backward_impl(cudaStream_t st, const T* x, T* delta, std::int64_t m, T* dx,
                                bool weight_grads, int sl) {
  const int mi = static_cast<int>(m);
  auto n = [&](int l) { return static_cast<int>(n_[l]); };
  T* P = static_cast<T*>(params_);
  T* G = static_cast<T*>(grads_);
  for (int l = L_; l >= 1; --l) {
    const T* a_in = l == 1 ? x : static_cast<const T*>(act_[l - 1]);
    if (weight_grads)
      gemm_->rm(true, false, n(l - 1), n(l), mi, a_in, n(l - 1), delta, n(l), G + w_off_[l], n(l));
    if (l == 1) {
      // dX = δ_1·W_1ᵀ, from W_1 as it was in the forward pass (no update yet).
      if (dx) gemm_->rm(false, true, mi, n(0), n(1), delta, n(1), P + w_off_[1], n(1), dx, n(0));
      break;
    }
    T* g = delta == static_cast<T*>(ping_) ? static_cast<T*>(pong_) : static_cast<T*>(ping_);
    gemm_->rm(false, true, mi, n(l - 1), n(l), delta, n(l), P + w_off_[l], n(l), g, n(l - 1));
    const kern::Tiling t = kern::hidden_delta<T>(
        cfg_.activations[l - 2], g, static_cast<const T*>(act_[l - 1]), m, n_[l - 1],
        l - 1 == sl ? static_cast<const T*>(sparse_term_) : nullptr, col_part_, ctl_, st);
    if (weight_grads)
      kern::finish_colsum<T>(col_part_, t.chunks, n_[l - 1], G + b_off_[l - 1], ctl_, st);
    delta = g;
  }
}

template <class T>
void CudaNetwork::backward_from_impl(cudaStream_t st, const void* d_out, std::int64_t m, void* dx,
                                     bool update, double* decay) {
  gemm_->set_stream(st);
  T* P = static_cast<T*>(params_);
  T* G = static_cast<T*>(grads_);
  T* delta = static_cast<T*>(out_);
  // The CPU's BackwardOnly phase: δ_L = dJ/dA_L ⊙ f'(A_L) on the kept
  // output activations; no sparsity term on this path.
  const kern::Tiling t = kern::scale_by_derivative<T>(cfg_.activations[L_ - 1], delta,
                                                      static_cast<const T*>(d_out), m, n_[L_],
                                                      col_part_, ctl_, st);
  kern::finish_colsum<T>(col_part_, t.chunks, n_[L_], G + b_off_[L_], ctl_, st);
  backward_impl<T>(st, static_cast<const T*>(kept_x_), delta, m, static_cast<T*>(dx), true, 0);
  if (!update) return;
  kern::update_begin(ctl_, st);
  const double lam = cfg_.weight_decay;
  const int n_sq = kern::optimizer<T>(ctl_, P, G, static_cast<T*>(state0_),
                                      static_cast<T*>(state1_), n_params_, segs_, 2 * L_, lam,
                                      sumsq_part_, StepMode::Update, st);
  kern::decay_end(ctl_, sumsq_part_, n_sq, lam, true, decay, st);
}

void CudaNetwork::enqueue_backward_from(cudaStream_t stream, const void* d_out, std::int64_t rows,
                                        void* dx, bool update, double* decay) {
  if (!kept_x_ || rows != kept_rows_)
    throw InvalidArgument("backward_from: expected the rows of the last forward_keep");
  if (cfg_.dtype == DType::Float32) backward_from_impl<float>(stream, d_out, rows, dx, update, decay);
  else backward_from_impl<double>(stream, d_out, rows, dx, update, decay);
}

template <class T>
void CudaNetwork::step_with_input_grad_impl(cudaStream_t st, const void* xv, const void* yv,
                                            std::int64_t m, void* dx, bool update,
                                            bool weight_grads, double* decay) {
  gemm_->set_stream(st);
  StepControl* ctl = ctl_;
  const int mi = static_cast<int>(m);
  auto n = [&](int l) { return static_cast<int>(n_[l]); };
  T* P = static_cast<T*>(params_);
  T* G = static_cast<T*>(grads_);
  const T* x = static_cast<const T*>(xv);
  const T* y = static_cast<const T*>(yv);
  const bool applies = update && weight_grads;

  // Forward, loss and δ_L: enqueue_step's.
  const int sl = sparse_layer_;
  kern::Tiling rho_tiling;
  kern::OutputPartials outp;
  const T* a_prev = x;
  for (int l = 1; l <= L_; ++l) {
    T* dst = l < L_ ? static_cast<T*>(act_[l]) : static_cast<T*>(out_);
    gemm_->rm(false, false, mi, n(l), n(l - 1), a_prev, n(l - 1), P + w_off_[l], n(l), dst, n(l));
    if (l < L_) {
      const kern::Tiling t = kern::bias_act<T>(cfg_.activations[l - 1], dst, m, n_[l],
                                               P + b_off_[l], l == sl ? rho_part_ : nullptr, ctl,
                                               st);
      if (l == sl) rho_tiling = t;
    } else {
      outp = kern::output_delta<T>(cfg_.activations[L_ - 1], cfg_.loss, dst, y, m, n_[L_],
                                   P + b_off_[L_], col_part_, loss_part_, ctl, st);
    }
    a_prev = dst;
  }
  const double eps = cfg_.dtype == DType::Float32 ? kRhohatEpsFloat32 : kRhohatEpsFloat64;
  kern::finalize<T>(ctl, loss_part_, outp.loss_partials, m, sl ? rho_part_ : nullptr,
                    rho_tiling.chunks, sl ? n_[sl] : 0, cfg_.sparsity_target, cfg_.sparsity_weight,
                    eps, static_cast<T*>(sparse_term_),
                    applies ? StepMode::Update : StepMode::Gradient, false, st);
  if (weight_grads)
    kern::finish_colsum<T>(col_part_, outp.col.chunks, n_[L_], G + b_off_[L_], ctl, st);
  backward_impl<T>(st, x, static_cast<T*>(out_), m, static_cast<T*>(dx), weight_grads, sl);
  if (!applies) return;
  const double lam = cfg_.weight_decay;
  const int n_sq = kern::optimizer<T>(ctl, P, G, static_cast<T*>(state0_),
                                      static_cast<T*>(state1_), n_params_, segs_, 2 * L_, lam,
                                      sumsq_part_, StepMode::Update, st);
  kern::decay_end(ctl, sumsq_part_, n_sq, lam, true, decay, st);
}

void CudaNetwork::enqueue_step_with_input_grad(cudaStream_t stream, const void* x, const void* y,
                                               std::int64_t rows, void* dx, bool update,
                                               bool weight_grads, double* decay) {
  if (cfg_.dtype == DType::Float32)
    step_with_input_grad_impl<float>(stream, x, y, rows, dx, update, weight_grads, decay);
  else
    step_with_input_grad_impl<double>(stream, x, y, rows, dx, update, weight_grads, decay);
}

template <class T>
void CudaNetwork::add_decay_gradient_impl(cudaStream_t st, double* decay) {
  const double lam = cfg_.weight_decay;
  int n_sq = 0;
  if (lam > 0)
    n_sq = kern::optimizer<T>(ctl_, static_cast<T*>(params_), static_cast<T*>(grads_),
                              static_cast<T*>(state0_), static_cast<T*>(state1_), n_params_,
                              segs_, 2 * L_, lam, sumsq_part_, StepMode::Gradient, st);
  kern::decay_end(ctl_, sumsq_part_, n_sq, lam, false, decay, st);
}

void CudaNetwork::enqueue_add_decay_gradient(cudaStream_t stream, double* decay) {
  if (cfg_.dtype == DType::Float32) add_decay_gradient_impl<float>(stream, decay);
  else add_decay_gradient_impl<double>(stream, decay);
}

void CudaNetwork::enqueue_decay_term(cudaStream_t stream, const std::int32_t* gate,
                                     double* decay) {
  const double lam = cfg_.weight_decay;
  if (cfg_.dtype == DType::Float32)
    kern::weights_sumsq<float>(static_cast<const float*>(params_), n_params_, segs_, 2 * L_, lam,
                               gate, decay, stream);
  else
    kern::weights_sumsq<double>(static_cast<const double*>(params_), n_params_, segs_, 2 * L_,
                                lam, gate, decay, stream);
}

}  // namespace cuda
}  // namespace fusedae
