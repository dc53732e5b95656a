// CudaVae and CudaGan: argument checks, buffers, the call protocol, and the
// order of a step's network halves and kernels (core/composite.cpp's Vae::run,
// Gan::d_step and Gan::g_step, line for line).
//
// VAE step on B rows (the CPU's Vae::run):
//   [scan]    train_step / loss_and_gradient: NaN scan of X, Y (ε) in the step
//   stage     [x | y] for the encoder, y beside z for the decoder (a fit: the
//             minibatch's rows, gathered)
//   ε         stream (kLatent, latent_steps) (unless given)
//   encoder   forward keeping its activations: E = [μ | log σ²]
//   reparam   σ, z = μ + σ·ε, the KL partials; then the KL (not finite: stop)
//   decoder   the fused step on ([z | y], x) with dJ/d[z | y] (not finite: stop)
//   delta     dμ, dlog σ² for the encoder; its backward and update
//   end       the losses, counters, divergence
// GAN discriminator step: real rows (gathered), latents, G(z) under them,
// targets [1; 0], D's fused step, end. Generator step: latents, G forward
// keeping activations, D's frozen pass with dJ/d(fake) (negated for minimax),
// G's backward and update, end.
#include "cuda/composite_cuda.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/errors.hpp"
#include "core/limits.hpp"
#include "core/philox.hpp"
#include "cuda/composite_kernels.cuh"
#include "cuda/control.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/device.hpp"
#include "cuda/graph.hpp"
#include "cuda/kernels.cuh"

namespace fusedae {
namespace cuda {

namespace {

constexpr std::int64_t kPartials = 1024;  // per-block partials a step writes, at most

enum GraphKind : int {
  kVaeTrain = 11,
  kVaeGradient = 12,
  kVaeFit = 13,
  kGanD = 21,
  kGanG = 22,
  kGanGradient = 23,
  kGanFitD = 24,
  kGanFitG = 25,
};

std::size_t align_up(std::size_t b) { return (b + 255) / 256 * 256; }

}  // namespace

// ---- CudaComposite ----------------------------------------------------------------

CudaComposite::CudaComposite(int device_id, DType dtype)
    : device_(device_id), dtype_(dtype), es_(dtype_size(dtype)) {}

CudaComposite::~CudaComposite() {
  // Every op has finished when it returns (its one wait, or settle() on an
  // error), and the networks (destroyed first) waited for theirs.
  try {
    DeviceGuard guard(device_);
    release();
  } catch (...) {
    release();
  }
}

void CudaComposite::setup(CudaNetwork* a, CudaNetwork* b) {
  a_ = a;
  b_ = b;
  DeviceGuard guard(device_);
  try {
    FUSEDAE_CUDA(cudaStreamCreateWithFlags(&capture_stream_, cudaStreamNonBlocking));
    cc_ = static_cast<CompositeControl*>(device_alloc(sizeof(CompositeControl), "control block"));
    partials_ = static_cast<double*>(device_alloc(sizeof(double) * kPartials, "partial sums"));
    flags_ = static_cast<std::int32_t*>(device_alloc(3 * sizeof(std::int32_t), "flags"));
    FUSEDAE_CUDA(cudaMallocHost(reinterpret_cast<void**>(&h_cc_), 2 * sizeof(CompositeControl)));
    FUSEDAE_CUDA(cudaMallocHost(reinterpret_cast<void**>(&h_flags_), 3 * sizeof(std::int32_t)));
    std::memset(h_cc_, 0, 2 * sizeof(CompositeControl));
    graphs_ = std::make_unique<GraphCache>();
  } catch (...) {
    release();
    throw;
  }
}

void CudaComposite::release() noexcept {
  if (graphs_) graphs_->clear();
  graphs_.reset();
  for (void* p : {static_cast<void*>(cc_), static_cast<void*>(partials_),
                  static_cast<void*>(flags_), rows_, static_cast<void*>(perm_),
                  static_cast<void*>(extra_)})
    if (p) (void)cudaFree(p);
  cc_ = nullptr;
  partials_ = nullptr;
  flags_ = nullptr;
  rows_ = nullptr;
  perm_ = nullptr;
  extra_ = nullptr;
  for (void* p : {static_cast<void*>(h_cc_), static_cast<void*>(h_flags_),
                  static_cast<void*>(h_perm_), static_cast<void*>(h_extra_)})
    if (p) (void)cudaFreeHost(p);
  h_cc_ = nullptr;
  h_flags_ = nullptr;
  h_perm_ = nullptr;
  h_extra_ = nullptr;
  if (capture_stream_) (void)cudaStreamDestroy(capture_stream_);
  capture_stream_ = nullptr;
  (void)cudaGetLastError();
}

void* CudaComposite::device_alloc(std::size_t bytes, const char* what) {
  return cuda::device_alloc(bytes, what, device_);
}

// Stream order: a composite op waits for both networks' last ops (each
// network's own ops record its event, and so does every composite op, on
// both), so composite ops, and the networks' own ops between them (a
// forward on the encoder, say), never overlap on any buffer.
void CudaComposite::begin(cudaStream_t stream) {
  a_->begin(stream);
  b_->begin(stream);
}

void CudaComposite::wait_both() const {
  a_->wait_idle();
  b_->wait_idle();
}

void CudaComposite::upload(cudaStream_t stream) {
  CompositeControl& c = h_cc_[0];
  std::memset(&c, 0, sizeof c);
  c.seed = seed;
  c.latent0 = latent_steps;
  FUSEDAE_CUDA(cudaMemcpyAsync(cc_, &c, sizeof c, cudaMemcpyHostToDevice, stream));
  a_->upload_control(stream);
  b_->upload_control(stream);
}

void CudaComposite::download(cudaStream_t stream, const void* extra_src, std::size_t extra) {
  FUSEDAE_CUDA(cudaMemcpyAsync(&h_cc_[1], cc_, sizeof(CompositeControl), cudaMemcpyDeviceToHost,
                               stream));
  FUSEDAE_CUDA(cudaMemcpyAsync(&a_->h_ctl_[1], a_->ctl_, sizeof(StepControl),
                               cudaMemcpyDeviceToHost, stream));
  FUSEDAE_CUDA(cudaMemcpyAsync(&b_->h_ctl_[1], b_->ctl_, sizeof(StepControl),
                               cudaMemcpyDeviceToHost, stream));
  if (extra > 0)
    FUSEDAE_CUDA(cudaMemcpyAsync(h_extra_, extra_src, extra, cudaMemcpyDeviceToHost, stream));
  a_->end(stream);
  b_->end(stream);
  wait_both();  // the call's one wait (both events mark the same point)
}

void CudaComposite::settle(cudaStream_t stream) noexcept {
  a_->settle(stream);
  b_->settle(stream);
}

bool CudaComposite::read_control_now() noexcept {
  // After settle(): the steps have finished, any stream may copy.
  cudaStream_t hs = a_->host_stream_;
  if (cudaMemcpyAsync(&h_cc_[1], cc_, sizeof(CompositeControl), cudaMemcpyDeviceToHost, hs) ==
          cudaSuccess &&
      cudaMemcpyAsync(&a_->h_ctl_[1], a_->ctl_, sizeof(StepControl), cudaMemcpyDeviceToHost,
                      hs) == cudaSuccess &&
      cudaMemcpyAsync(&b_->h_ctl_[1], b_->ctl_, sizeof(StepControl), cudaMemcpyDeviceToHost,
                      hs) == cudaSuccess &&
      cudaStreamSynchronize(hs) == cudaSuccess)
    return true;
  (void)cudaGetLastError();
  return false;
}

const CompositeControl& CudaComposite::result() const { return h_cc_[1]; }

void CudaComposite::apply_network_counters() {
  a_->optimizer_steps += a_->h_ctl_[1].applied;
  b_->optimizer_steps += b_->h_ctl_[1].applied;
}

void CudaComposite::check_finite(cudaStream_t stream, const char* const names[],
                                 const std::uintptr_t ptrs[], const std::int64_t counts[],
                                 int k) {
  FUSEDAE_CUDA(cudaMemsetAsync(flags_, 0, 3 * sizeof(std::int32_t), stream));
  for (int i = 0; i < k; ++i) {
    if (!ptrs[i]) continue;
    if (dtype_ == DType::Float32)
      kern::nonfinite(reinterpret_cast<const float*>(ptrs[i]), counts[i], flags_ + i, stream);
    else
      kern::nonfinite(reinterpret_cast<const double*>(ptrs[i]), counts[i], flags_ + i, stream);
  }
  FUSEDAE_CUDA(cudaMemcpyAsync(h_flags_, flags_, 3 * sizeof(std::int32_t), cudaMemcpyDeviceToHost,
                               stream));
  a_->end(stream);
  b_->end(stream);
  wait_both();  // the one synchronisation the input check costs
  for (int i = 0; i < k; ++i)
    if (ptrs[i] && h_flags_[i])
      throw InvalidArgument(std::string(names[i]) + ": contains NaN or infinity");
}

void CudaComposite::check_memory(const char* name, const std::string& what, double bytes) const {
  const double total = a_->device_memory_;
  if (bytes + a_->fixed_bytes_ + b_->fixed_bytes_ > total)
    throw InvalidArgument(std::string(name) + ": " + what + " (rows x widths of GPU working "
                          "memory) would need " + format_bytes(bytes) +
                          ", more than this GPU's memory (" + format_bytes(total) + ")");
}

// Growth, as a CudaNetwork's: after every earlier op has finished, with the
// graphs dropped (a new generation: their pointers moved).
void CudaComposite::carve(std::initializer_list<std::int64_t> counts,
                          std::initializer_list<void**> out) {
  wait_both();
  graphs_->clear();
  ++generation_;
  if (rows_) FUSEDAE_CUDA(cudaFree(rows_));
  rows_ = nullptr;
  std::size_t total = 0;
  for (auto c : counts) total += align_up(static_cast<std::size_t>(c) * es_);
  rows_ = device_alloc(total, "row buffers");
  char* p = static_cast<char*>(rows_);
  auto c = counts.begin();
  for (void** slot : out) {
    *slot = p;
    p += align_up(static_cast<std::size_t>(*c) * es_);
    ++c;
  }
}

void CudaComposite::init_params(std::uint64_t s) {
  a_->init_params(s);
  b_->init_params(s + 1);
  seed = s;
  latent_steps = 0;
  epochs = 0;
}

void CudaComposite::reserve_permutation(std::int64_t rows) {
  if (rows <= perm_capacity_) return;
  wait_both();
  graphs_->clear();
  ++generation_;
  grow_permutation(rows, device_, &perm_, &h_perm_, &perm_capacity_);
}

void CudaComposite::reserve_extra(std::size_t bytes) {
  if (bytes <= extra_capacity_) return;
  wait_both();
  graphs_->clear();
  ++generation_;
  if (extra_) FUSEDAE_CUDA(cudaFree(extra_));
  if (h_extra_) FUSEDAE_CUDA(cudaFreeHost(h_extra_));
  extra_ = nullptr;
  h_extra_ = nullptr;
  extra_capacity_ = 0;
  extra_ = static_cast<double*>(device_alloc(bytes, "per-step losses"));
  FUSEDAE_CUDA(cudaMallocHost(reinterpret_cast<void**>(&h_extra_), bytes));
  extra_capacity_ = bytes;
}

void CudaComposite::run(GraphKey& key, cudaStream_t stream,
                        const std::function<void(cudaStream_t)>& enqueue) {
  // The networks' generations count too: their workspaces are in the graphs.
  const std::uint64_t gen = generation_ + a_->generation_ + b_->generation_;
  if (gen != graphs_generation_) {
    graphs_->clear();
    graphs_generation_ = gen;
  }
  key.generation = gen;
  graphs_->run(key, stream, capture_stream_, enqueue);
}

void CudaComposite::run_step(GraphKey& key, std::int64_t rows, bool counted, cudaStream_t stream,
                             const std::function<void(cudaStream_t)>& enqueue) {
  begin(stream);
  bool uploaded = false;
  try {
    reserve(rows);
    upload(stream);
    uploaded = true;
    run(key, stream, enqueue);
    download(stream);
  } catch (...) {
    settle(stream);
    if (counted && uploaded && read_control_now()) apply_counters(result());
    throw;
  }
}

// ---- CudaVae --------------------------------------------------------------------------

struct CudaVae::Args {
  const void* x = nullptr;    // X: the caller's batch, or (fit) the whole data set
  const void* y = nullptr;    // Y, likewise (null without conditions)
  const void* eps = nullptr;  // a caller's ε (loss_and_gradient); else drawn
  std::int64_t rows = 0;
  bool update = false;        // an optimizer step (train_step, fit) or gradients only
  bool draws = false;         // ε from the latent stream
  bool check_inputs = false;  // NaN scan inside the step
  bool fit = false;           // gather minibatch cc->batch
  const std::int64_t* perm = nullptr;
  std::int64_t bs = 0;
};

CudaVae::CudaVae(const VaeConfig& cfg, int device_id)
    : CudaComposite(device_id, cfg.dtype), cfg_(cfg) {
  cfg_.validate();
  enc_ = std::make_unique<CudaNetwork>(cfg_.encoder(), device_id);
  dec_ = std::make_unique<CudaNetwork>(cfg_.decoder(), device_id);
  setup(enc_.get(), dec_.get());
}

CudaVae::~CudaVae() = default;

void CudaVae::set_optimizer(const OptimizerConfig& opt) {
  opt.validate();
  enc_->set_optimizer(opt);
  dec_->set_optimizer(opt);
}

void CudaVae::check_inputs(std::uintptr_t x, std::uintptr_t y, std::int64_t rows) const {
  // core/composite.cpp's Vae::check_inputs, pointer by pointer (the values
  // are scanned on the device).
  enc_->check_row_count(rows, "X");
  enc_->check_matrix("X", x, rows, cfg_.n_features);
  if (cfg_.n_conditions > 0) {
    if (!y)
      throw InvalidArgument("Y: required by a conditional VAE (one row of labels per row of X)");
    enc_->check_matrix("Y", y, rows, cfg_.n_conditions);
  } else if (y) {
    throw InvalidArgument("Y: this VAE has no conditions (n_conditions = 0)");
  }
}

void CudaVae::check_room(std::int64_t rows, double extra) const {
  const double r = static_cast<double>(rows), d = static_cast<double>(cfg_.n_features),
               z = static_cast<double>(cfg_.n_latent), c = static_cast<double>(cfg_.n_conditions);
  const double bytes = r * (2 * d + 6 * z + 3 * c) * static_cast<double>(es_) +
                       enc_->workspace_bytes(rows, false) + dec_->workspace_bytes(rows, false) +
                       extra;
  check_memory("X", std::to_string(rows) + " rows in this VAE", bytes);
}

void CudaVae::reserve(std::int64_t rows) {
  enc_->reserve_rows(rows);
  dec_->reserve_rows(rows);
  if (rows <= capacity_) return;
  const std::int64_t D = cfg_.n_features, Z = cfg_.n_latent, C = cfg_.n_conditions;
  capacity_ = 0;
  carve({rows * (D + C), rows * D, rows * Z, rows * Z, rows * (Z + C), rows * (Z + C),
         rows * 2 * Z},
        {&enc_in_, &xb_, &eps_, &sd_, &dec_in_, &d_dec_in_, &d_enc_out_});
  capacity_ = rows;
}

template <class T>
void CudaVae::enqueue(cudaStream_t st, const Args& a) {
  const std::int64_t D = cfg_.n_features, Z = cfg_.n_latent, C = cfg_.n_conditions, m = a.rows;
  CompositeControl* c = cc();
  StepControl* ec = enc_->control();
  StepControl* dc = dec_->control();
  const T* x = static_cast<const T*>(a.x);
  const T* y = static_cast<const T*>(a.y);
  T* enc_in = static_cast<T*>(enc_in_);
  T* xb = static_cast<T*>(xb_);
  T* dec_in = static_cast<T*>(dec_in_);
  T* sd = static_cast<T*>(sd_);
  T* dzin = static_cast<T*>(d_dec_in_);
  T* d = static_cast<T*>(d_enc_out_);

  if (a.check_inputs) {
    kern::nonfinite<T>(x, m * D, &c->bad_x, st);
    if (C > 0) kern::nonfinite<T>(y, m * C, &c->bad_y, st);
    if (a.eps) kern::nonfinite<T>(static_cast<const T*>(a.eps), m * Z, &c->bad_e, st);
    kern::composite_gate(c, ec, dc, st);
  }
  // The encoder's input [x | y], the decoder's targets and its y columns.
  const T* enc_x = x;
  const T* targets = x;
  if (a.fit) {
    kern::vae_stage<T>(c, x, y, a.perm, true, a.bs, m, D, C, Z, C > 0 ? enc_in : nullptr, xb,
                       C > 0 ? dec_in : nullptr, st);
    enc_x = C > 0 ? enc_in : xb;
    targets = xb;
  } else if (C > 0) {
    kern::vae_stage<T>(c, x, y, nullptr, false, 0, m, D, C, Z, enc_in, nullptr, dec_in, st);
    enc_x = enc_in;
  }
  const T* eps = static_cast<const T*>(a.eps);
  if (a.draws) {
    kern::latent_normal<T>(c, static_cast<T*>(eps_), m * Z, st);
    eps = static_cast<const T*>(eps_);
  }

  const T* E = static_cast<const T*>(enc_->enqueue_forward_keep(st, enc_x, m));
  const int nk = kern::vae_reparameterise<T>(c, E, eps, sd, dec_in, m, Z, C, partials(), st);
  kern::vae_kl(c, partials(), nk, m, ec, dc, st);

  // The decoder's fused step on ([z | y], x): dJ/d[z | y] from its weights
  // before its update; its decay term (when it updates) into decay_b.
  dec_->enqueue_step_with_input_grad(st, dec_in, targets, m, dzin, a.update, true, &c->decay_b);
  kern::vae_decoder_done(c, ec, dc, st);

  kern::vae_encoder_delta<T>(ec, E, dzin, eps, sd, d, m, Z, C, st);
  enc_->enqueue_backward_from(st, d, m, nullptr, a.update, &c->decay_a);
  if (!a.update) {
    // loss_and_gradient: λW into both gradients, the decay terms reported.
    enc_->enqueue_add_decay_gradient(st, &c->decay_a);
    dec_->enqueue_add_decay_gradient(st, &c->decay_b);
  } else {
    // A step that stopped ran neither optimizer, which would have summed the
    // decay terms the CPU reports with its losses: computed here instead.
    enc_->enqueue_decay_term(st, &c->stop, &c->decay_a);
    dec_->enqueue_decay_term(st, &c->stop, &c->decay_b);
  }
  kern::vae_end(c, ec, dc, m, a.update, a.draws, a.fit, st);
}

VaeLosses CudaVae::losses_of(const CompositeControl& c) const {
  return VaeLosses{c.last[0], c.last[1], c.last[2], c.last[3]};
}

void CudaVae::apply_counters(const CompositeControl& c) {
  latent_steps += c.latent;
  apply_network_counters();
}

VaeLosses CudaVae::train_step(std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                              cudaStream_t stream) {
  DeviceGuard guard(device_);
  check_inputs(x, y, rows);
  check_room(rows, 0.0);
  Args a;
  a.x = reinterpret_cast<const void*>(x);
  a.y = reinterpret_cast<const void*>(y);
  a.rows = rows;
  a.update = true;
  a.draws = true;
  // The NaN scan runs inside the step (one wait per step, as a
  // CudaNetwork's train_step): a bad input stops it before any update.
  a.check_inputs = true;
  GraphKey key;
  key.kind = kVaeTrain;
  key.x = x;
  key.y = y;
  key.rows = rows;
  run_step(key, rows, true, stream, [&](cudaStream_t st) {
    if (dtype_ == DType::Float32) enqueue<float>(st, a);
    else enqueue<double>(st, a);
  });
  const CompositeControl& r = result();
  if (r.bad_x) throw InvalidArgument("X: contains NaN or infinity");
  if (r.bad_y) throw InvalidArgument("Y: contains NaN or infinity");
  apply_counters(r);
  return losses_of(r);
}

VaeLosses CudaVae::loss_and_gradient(std::uintptr_t x, std::uintptr_t y, std::uintptr_t eps,
                                     std::int64_t rows, cudaStream_t stream) {
  DeviceGuard guard(device_);
  check_inputs(x, y, rows);
  enc_->check_matrix("eps", eps, rows, cfg_.n_latent);
  check_room(rows, 0.0);
  Args a;
  a.x = reinterpret_cast<const void*>(x);
  a.y = reinterpret_cast<const void*>(y);
  a.eps = reinterpret_cast<const void*>(eps);
  a.rows = rows;
  a.check_inputs = true;
  GraphKey key;
  key.kind = kVaeGradient;
  key.x = x;
  key.y = y;
  key.batch = static_cast<std::int64_t>(eps);  // the ε pointer the graph reads
  key.rows = rows;
  run_step(key, rows, false, stream, [&](cudaStream_t st) {
    if (dtype_ == DType::Float32) enqueue<float>(st, a);
    else enqueue<double>(st, a);
  });
  const CompositeControl& r = result();
  if (r.bad_x) throw InvalidArgument("X: contains NaN or infinity");
  if (r.bad_y) throw InvalidArgument("Y: contains NaN or infinity");
  if (r.bad_e) throw InvalidArgument("eps: contains NaN or infinity");
  return losses_of(r);  // no counter moves: nothing was drawn or applied
}

VaeEpoch CudaVae::fit_epoch(std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                            std::int64_t batch_size, bool shuffle, cudaStream_t stream) {
  // The CPU's order: the arrays (with their values), the batch size, the
  // memory the epoch needs.
  DeviceGuard guard(device_);
  check_inputs(x, y, rows);
  begin(stream);
  try {
    const char* names[] = {"X", "Y"};
    const std::uintptr_t ptrs[] = {x, y};
    const std::int64_t counts[] = {rows * cfg_.n_features, rows * cfg_.n_conditions};
    check_finite(stream, names, ptrs, counts, 2);
  } catch (...) {
    settle(stream);
    throw;
  }
  if (batch_size < 1) throw InvalidArgument("batch_size: expected an integer >= 1");
  const std::int64_t bs = batch_size < rows ? batch_size : rows;
  check_room(bs, shuffle ? 8.0 * static_cast<double>(rows) : 0.0);

  const std::int64_t epochs_before = epochs;
  bool uploaded = false;
  try {
    reserve(bs);
    if (shuffle) {
      // The CPU's permutation, computed on the host with its code and
      // copied once per epoch (as a CudaNetwork's fit).
      reserve_permutation(rows);
      philox::permutation(seed, static_cast<std::uint32_t>(epochs), rows, host_perm());
      FUSEDAE_CUDA(cudaMemcpyAsync(perm(), host_perm(), sizeof(std::int64_t) * rows,
                                   cudaMemcpyHostToDevice, stream));
    }
    ++epochs;
    upload(stream);
    uploaded = true;
    Args a;
    a.x = reinterpret_cast<const void*>(x);
    a.y = reinterpret_cast<const void*>(y);
    a.update = true;
    a.draws = true;
    a.fit = true;
    a.perm = shuffle ? perm() : nullptr;
    a.bs = bs;
    GraphKey key;
    key.kind = kVaeFit;
    key.x = x;
    key.y = y;
    key.batch = bs;
    key.shuffle = shuffle ? 1 : 0;
    const std::int64_t batches = (rows + bs - 1) / bs;
    // Back to back: each step reads its minibatch, ε stream and whether the
    // epoch diverged from the control block; one graph serves every full
    // minibatch, one more the shorter last one.
    for (std::int64_t b = 0; b < batches; ++b) {
      a.rows = b + 1 < batches ? bs : rows - b * bs;
      key.rows = a.rows;
      run(key, stream, [&](cudaStream_t st) {
        if (dtype_ == DType::Float32) enqueue<float>(st, a);
        else enqueue<double>(st, a);
      });
    }
    download(stream);
  } catch (...) {
    settle(stream);
    // Steps that ran before the error are part of the parameters: the
    // counters say so. An epoch of which nothing ran leaves them as they were.
    if (uploaded && read_control_now() && (result().steps > 0 || result().diverged))
      apply_counters(result());
    else
      epochs = epochs_before;
    throw;
  }
  const CompositeControl& r = result();
  apply_counters(r);
  VaeEpoch res;
  res.steps = r.steps;
  res.diverged = r.diverged != 0;
  if (res.diverged) {
    res.mean = losses_of(r);
  } else {
    const double inv = 1.0 / static_cast<double>(rows);
    res.mean = VaeLosses{r.sums[0] * inv, r.sums[1] * inv, r.sums[2] * inv, r.sums[3] * inv};
  }
  return res;
}

// ---- CudaGan --------------------------------------------------------------------------

struct CudaGan::DArgs {
  const void* x = nullptr;  // real rows: the caller's batch, or (fit) the data set
  std::int64_t rows = 0;
  bool fit = false;
  bool check_inputs = false;
  const std::int64_t* perm = nullptr;
  std::int64_t bs = 0;
  double* losses = nullptr;  // fit: losses[d_count]
};

struct CudaGan::GArgs {
  const void* z = nullptr;   // a caller's latents (generator_loss_and_gradient); else drawn
  std::int64_t rows = 0;
  bool update = false;
  bool draws = false;
  bool check_inputs = false;
  double* losses = nullptr;  // fit: losses[g_count]
};

CudaGan::CudaGan(const GanConfig& cfg, int device_id)
    : CudaComposite(device_id, cfg.dtype), cfg_(cfg) {
  cfg_.validate();
  g_ = std::make_unique<CudaNetwork>(cfg_.generator(), device_id);
  d_ = std::make_unique<CudaNetwork>(cfg_.discriminator(), device_id);
  setup(g_.get(), d_.get());
}

CudaGan::~CudaGan() = default;

void CudaGan::set_optimizers(const OptimizerConfig& g, const OptimizerConfig& d) {
  g.validate();
  d.validate();
  g_->set_optimizer(g);
  d_->set_optimizer(d);
}

void CudaGan::check_room(std::int64_t rows, const char* name, double extra) const {
  // A discriminator step stacks `rows` generated rows under as many real
  // ones: 2·rows must still be a 32-bit row count (the CPU's Gan::reserve).
  if (rows < 1 || rows > kMaxDim / 2)
    throw InvalidArgument(std::string(name) + ": expected between 1 and 2^30-1 rows, got " +
                          std::to_string(rows));
  const double r = static_cast<double>(rows);
  const double bytes = r * (static_cast<double>(cfg_.n_latent) +
                            3.0 * static_cast<double>(cfg_.n_features) + 2.0) *
                           static_cast<double>(es_) +
                       g_->workspace_bytes(rows, false) + d_->workspace_bytes(2 * rows, false) +
                       extra;
  check_memory(name, std::to_string(rows) + " rows in this GAN", bytes);
}

void CudaGan::reserve(std::int64_t rows) {
  g_->reserve_rows(rows);
  d_->reserve_rows(2 * rows);
  if (rows <= capacity_) return;
  const std::int64_t D = cfg_.n_features, Z = cfg_.n_latent;
  capacity_ = 0;
  carve({rows * Z, 2 * rows * D, 2 * rows, rows * D}, {&z_, &stacked_, &targets_, &d_fake_});
  capacity_ = rows;
}

void CudaGan::apply_counters(const CompositeControl& c) {
  latent_steps += c.latent;
  apply_network_counters();
}

template <class T>
void CudaGan::enqueue_d(cudaStream_t st, const DArgs& a) {
  const std::int64_t D = cfg_.n_features, Z = cfg_.n_latent, m = a.rows;
  CompositeControl* c = cc();
  StepControl* gc = g_->control();
  StepControl* dc = d_->control();
  T* stacked = static_cast<T*>(stacked_);
  T* tg = static_cast<T*>(targets_);
  T* z = static_cast<T*>(z_);
  const T* x = static_cast<const T*>(a.x);
  if (a.check_inputs) {
    kern::nonfinite<T>(x, m * D, &c->bad_x, st);
    kern::composite_gate(c, gc, dc, st);
  }
  // Gan::d_step: [real; G(z)] against targets [1; 0], one step of D.
  kern::gan_stage<T>(c, x, a.perm, a.fit, a.bs, m, D, stacked, st);
  kern::latent_normal<T>(c, z, m * Z, st);
  g_->enqueue_forward_into(st, z, m, stacked + m * D);
  kern::fill_targets<T>(tg, 2 * m, m, 1.0, 0.0, st);
  d_->enqueue_step_with_input_grad(st, stacked, tg, 2 * m, nullptr, true, true, &c->decay_b);
  kern::gan_d_end(c, gc, dc, a.losses, a.fit, st);
}

template <class T>
void CudaGan::enqueue_g(cudaStream_t st, const GArgs& a) {
  const std::int64_t D = cfg_.n_features, Z = cfg_.n_latent, m = a.rows;
  CompositeControl* c = cc();
  StepControl* gc = g_->control();
  StepControl* dc = d_->control();
  T* tg = static_cast<T*>(targets_);
  T* dfake = static_cast<T*>(d_fake_);
  const T* z = static_cast<const T*>(a.z);
  if (a.check_inputs) {
    kern::nonfinite<T>(z, m * Z, &c->bad_x, st);
    kern::composite_gate(c, gc, dc, st);
  }
  if (a.draws) {
    kern::latent_normal<T>(c, static_cast<T*>(z_), m * Z, st);
    z = static_cast<const T*>(z_);
  }
  // Gan::g_step: G(z) keeping its activations; D's frozen pass against
  // target 1 (non-saturating) or 0 (minimax: the negated loss and delta);
  // G's backward from dJ/d(fake).
  const T* fake = static_cast<const T*>(g_->enqueue_forward_keep(st, z, m));
  kern::fill_targets<T>(tg, m, m, cfg_.minimax ? 0.0 : 1.0, 0.0, st);
  d_->enqueue_step_with_input_grad(st, fake, tg, m, dfake, false, false, nullptr);
  kern::gan_g_mid(c, gc, dc, st);
  if (cfg_.minimax) kern::negate<T>(gc, dfake, m * D, st);
  g_->enqueue_backward_from(st, dfake, m, nullptr, a.update, &c->decay_a);
  if (!a.update) g_->enqueue_add_decay_gradient(st, &c->decay_a);
  kern::gan_g_end(c, gc, dc, a.losses, cfg_.minimax, a.draws, st);
}

double CudaGan::discriminator_step(std::uintptr_t real, std::int64_t rows,
                                   cudaStream_t stream) {
  DeviceGuard guard(device_);
  d_->check_row_count(rows, "X");
  d_->check_matrix("X", real, rows, cfg_.n_features);
  check_room(rows, "X", 0.0);
  DArgs a;
  a.x = reinterpret_cast<const void*>(real);
  a.rows = rows;
  a.check_inputs = true;
  GraphKey key;
  key.kind = kGanD;
  key.x = real;
  key.rows = rows;
  run_step(key, rows, true, stream, [&](cudaStream_t st) {
    if (dtype_ == DType::Float32) enqueue_d<float>(st, a);
    else enqueue_d<double>(st, a);
  });
  const CompositeControl& r = result();
  if (r.bad_x) throw InvalidArgument("X: contains NaN or infinity");
  apply_counters(r);
  return r.loss;
}

double CudaGan::generator_step(std::int64_t rows, cudaStream_t stream) {
  DeviceGuard guard(device_);
  check_room(rows, "batch_size", 0.0);
  GArgs a;
  a.rows = rows;
  a.update = true;
  a.draws = true;
  GraphKey key;
  key.kind = kGanG;
  key.rows = rows;
  run_step(key, rows, true, stream, [&](cudaStream_t st) {
    if (dtype_ == DType::Float32) enqueue_g<float>(st, a);
    else enqueue_g<double>(st, a);
  });
  const CompositeControl& r = result();
  apply_counters(r);
  return r.loss;
}

double CudaGan::generator_loss_and_gradient(std::uintptr_t z, std::int64_t rows,
                                            cudaStream_t stream) {
  DeviceGuard guard(device_);
  g_->check_row_count(rows, "Z");
  g_->check_matrix("Z", z, rows, cfg_.n_latent);
  check_room(rows, "Z", 0.0);
  GArgs a;
  a.z = reinterpret_cast<const void*>(z);
  a.rows = rows;
  a.check_inputs = true;
  GraphKey key;
  key.kind = kGanGradient;
  key.x = z;
  key.rows = rows;
  run_step(key, rows, false, stream, [&](cudaStream_t st) {
    if (dtype_ == DType::Float32) enqueue_g<float>(st, a);
    else enqueue_g<double>(st, a);
  });
  const CompositeControl& r = result();
  if (r.bad_x) throw InvalidArgument("Z: contains NaN or infinity");
  return r.loss;  // no counter moves: the latents are given, nothing is applied
}

GanEpoch CudaGan::fit_epoch(std::uintptr_t x, std::int64_t rows, std::int64_t batch_size,
                            int d_per_g, bool train_d, bool train_g, bool shuffle,
                            cudaStream_t stream) {
  DeviceGuard guard(device_);
  d_->check_row_count(rows, "X");
  d_->check_matrix("X", x, rows, cfg_.n_features);
  begin(stream);
  try {
    const char* names[] = {"X"};
    const std::uintptr_t ptrs[] = {x};
    const std::int64_t counts[] = {rows * cfg_.n_features};
    check_finite(stream, names, ptrs, counts, 1);
  } catch (...) {
    settle(stream);
    throw;
  }
  if (batch_size < 1) throw InvalidArgument("batch_size: expected an integer >= 1");
  if (d_per_g < 1) throw InvalidArgument("d_steps: expected an integer >= 1");
  if (!train_d && !train_g) throw InvalidArgument("train_d, train_g: nothing to train");
  const std::int64_t bs = batch_size < rows ? batch_size : rows;
  const std::int64_t batches = (rows + bs - 1) / bs;
  const std::int64_t n_d = train_d ? batches : 0;
  const std::int64_t n_g = train_g ? (train_d ? batches / d_per_g : batches) : 0;
  const std::size_t loss_bytes = sizeof(double) * static_cast<std::size_t>(n_d + n_g);
  check_room(bs, "batch_size",
             (shuffle ? 8.0 * static_cast<double>(rows) : 0.0) + static_cast<double>(loss_bytes));

  const std::int64_t epochs_before = epochs;
  bool uploaded = false;
  try {
    reserve(bs);
    reserve_extra(loss_bytes);
    if (shuffle) {
      reserve_permutation(rows);
      philox::permutation(seed, static_cast<std::uint32_t>(epochs), rows, host_perm());
      FUSEDAE_CUDA(cudaMemcpyAsync(perm(), host_perm(), sizeof(std::int64_t) * rows,
                                   cudaMemcpyHostToDevice, stream));
    }
    ++epochs;
    upload(stream);
    uploaded = true;
    DArgs da;
    da.x = reinterpret_cast<const void*>(x);
    da.fit = true;
    da.perm = shuffle ? perm() : nullptr;
    da.bs = bs;
    da.losses = extra_device();
    GArgs ga;
    ga.rows = bs;  // Gan::fit_epoch: generator_step(bs), the last minibatch too
    ga.update = true;
    ga.draws = true;
    ga.losses = extra_device() + n_d;
    GraphKey dk;
    dk.kind = kGanFitD;
    dk.x = x;
    dk.y = reinterpret_cast<std::uintptr_t>(da.losses);  // baked into the graph
    dk.batch = bs;
    dk.shuffle = shuffle ? 1 : 0;
    GraphKey gk;
    gk.kind = kGanFitG;
    gk.y = reinterpret_cast<std::uintptr_t>(ga.losses);
    gk.rows = bs;
    for (std::int64_t b = 0; b < batches; ++b) {
      if (train_d) {
        da.rows = b + 1 < batches ? bs : rows - b * bs;
        dk.rows = da.rows;
        run(dk, stream, [&](cudaStream_t st) {
          if (dtype_ == DType::Float32) enqueue_d<float>(st, da);
          else enqueue_d<double>(st, da);
        });
      }
      if (train_g && (!train_d || (b + 1) % d_per_g == 0))
        run(gk, stream, [&](cudaStream_t st) {
          if (dtype_ == DType::Float32) enqueue_g<float>(st, ga);
          else enqueue_g<double>(st, ga);
        });
    }
    download(stream, extra_device(), loss_bytes);
  } catch (...) {
    settle(stream);
    if (uploaded && read_control_now() &&
        (result().d_count > 0 || result().g_count > 0 || result().diverged))
      apply_counters(result());
    else
      epochs = epochs_before;
    throw;
  }
  const CompositeControl& r = result();
  apply_counters(r);
  GanEpoch res;
  const double* h = extra_host();
  res.d_losses.assign(h, h + std::min<std::int64_t>(r.d_count, n_d));
  res.g_losses.assign(h + n_d, h + n_d + std::min<std::int64_t>(r.g_count, n_g));
  res.diverged = r.diverged != 0;
  return res;
}

}  // namespace cuda
}  // namespace fusedae
