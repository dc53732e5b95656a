#include "core/network.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>

#include <unistd.h>

#include "core/errors.hpp"
#include "core/limits.hpp"
#include "core/zeroed.hpp"
#include "cpu/thread_pool.hpp"

namespace fusedae {

namespace {

bool finite(double v) { return std::isfinite(v); }

}  // namespace

double physical_memory_bytes() {
  static const double bytes = [] {
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0) return 70368744177664.0;  // 2^46: unknown
    return static_cast<double>(pages) * static_cast<double>(page);
  }();
  return bytes;
}

std::string format_bytes(double bytes) {
  std::ostringstream o;
  o.precision(3);
  if (bytes >= 1099511627776.0) o << bytes / 1099511627776.0 << " TiB";
  else if (bytes >= 1073741824.0) o << bytes / 1073741824.0 << " GiB";
  else o << bytes / 1048576.0 << " MiB";
  return o.str();
}

void check_allocation(const std::string& name, const std::string& what, double bytes) {
  const double limit = physical_memory_bytes();
  if (!(bytes <= limit))
    throw InvalidArgument(name + ": " + what + " would need " + format_bytes(bytes) +
                          ", more than this machine's memory (" + format_bytes(limit) + ")");
}

void check_range(const std::string& name, std::int64_t v, std::int64_t lo, std::int64_t hi) {
  if (v < lo || v > hi)
    throw InvalidArgument(name + ": expected an integer in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "], got " + std::to_string(v));
}

Activation parse_activation(const std::string& s) {
  if (s == "sigmoid") return Activation::Sigmoid;
  if (s == "tanh") return Activation::Tanh;
  if (s == "relu") return Activation::Relu;
  if (s == "leaky_relu") return Activation::LeakyRelu;
  if (s == "identity") return Activation::Identity;
  if (s == "softmax") return Activation::Softmax;
  throw InvalidArgument("activation: expected one of 'sigmoid', 'tanh', 'relu', 'leaky_relu', "
                        "'identity', 'softmax', got '" + s + "'");
}

Loss parse_loss(const std::string& s) {
  if (s == "squared_error") return Loss::SquaredError;
  if (s == "binary_cross_entropy") return Loss::BinaryCrossEntropy;
  if (s == "categorical_cross_entropy") return Loss::CategoricalCrossEntropy;
  throw InvalidArgument("loss: expected 'squared_error', 'binary_cross_entropy' or "
                        "'categorical_cross_entropy', got '" + s + "'");
}

Optimizer parse_optimizer(const std::string& s) {
  if (s == "sgd") return Optimizer::SGD;
  if (s == "momentum") return Optimizer::Momentum;
  if (s == "adam") return Optimizer::Adam;
  throw InvalidArgument("optimizer: expected 'sgd', 'momentum' or 'adam', got '" + s + "'");
}

Noise parse_noise(const std::string& s) {
  if (s == "none") return Noise::None;
  if (s == "gaussian") return Noise::Gaussian;
  if (s == "masking") return Noise::Masking;
  if (s == "salt_pepper") return Noise::SaltPepper;
  throw InvalidArgument("noise: expected 'none', 'gaussian', 'masking' or 'salt_pepper', got '" +
                        s + "'");
}

void NetworkConfig::validate() const {
  const int L = n_layers();
  if (L < 1) throw InvalidArgument("activations: at least one layer is required");
  if (static_cast<int>(sizes.size()) != L + 1)
    throw InvalidArgument("sizes: expected len(activations) + 1 = " + std::to_string(L + 1) +
                          " entries, got " + std::to_string(sizes.size()));
  // BLAS takes 32-bit dimensions (scipy-openblas32).
  for (auto n : sizes)
    if (n < 1 || n > kMaxDim)
      throw InvalidArgument("sizes: every width must be in [1, 2^31), got " + std::to_string(n));
  // Parameters, gradients and two optimizer moments, each n_params long;
  // estimated in floating point first, so that no product can overflow.
  double params = 0.0;
  for (int l = 1; l <= L; ++l)
    params += (static_cast<double>(sizes[l - 1]) + 1.0) * static_cast<double>(sizes[l]);
  if (params * static_cast<double>(dtype_size(dtype)) * 4.0 > physical_memory_bytes()) {
    std::ostringstream what;
    what.precision(4);
    what << "a network of " << params << " parameters (their gradients and optimizer state "
         << "included)";
    check_allocation("sizes", what.str(), params * static_cast<double>(dtype_size(dtype)) * 4.0);
  }
  if (loss == Loss::BinaryCrossEntropy && activations.back() != Activation::Sigmoid)
    throw InvalidArgument("loss: 'binary_cross_entropy' needs a sigmoid output activation");
  if (loss == Loss::CategoricalCrossEntropy && activations.back() != Activation::Softmax)
    throw InvalidArgument("loss: 'categorical_cross_entropy' needs a softmax output activation");
  for (int l = 0; l + 1 < L; ++l)
    if (activations[l] == Activation::Softmax)
      throw InvalidArgument("activations: 'softmax' is allowed on the output layer only");
  if (activations.back() == Activation::Softmax && loss != Loss::CategoricalCrossEntropy)
    throw InvalidArgument("activations: a softmax output needs loss 'categorical_cross_entropy'");
  if (!finite(weight_decay) || weight_decay < 0)
    throw InvalidArgument("weight_decay: expected a finite value >= 0");
  if (sparsity_layer < 0 || sparsity_layer >= L)
    throw InvalidArgument("sparsity_layer: expected 0 (none) or a hidden layer in 1.." +
                          std::to_string(L - 1));
  if (!(sparsity_target > 0 && sparsity_target < 1))
    throw InvalidArgument("sparsity_target: expected a value in (0, 1)");
  if (!finite(sparsity_weight) || sparsity_weight < 0)
    throw InvalidArgument("sparsity_weight: expected a finite value >= 0");
}

void OptimizerConfig::validate() const {
  if (!finite(learning_rate) || learning_rate <= 0)
    throw InvalidArgument("learning_rate: expected a finite value > 0");
  if (!finite(momentum) || momentum < 0 || momentum >= 1)
    throw InvalidArgument("momentum: expected a value in [0, 1)");
  if (!finite(beta1) || beta1 < 0 || beta1 >= 1)
    throw InvalidArgument("beta1: expected a value in [0, 1)");
  if (!finite(beta2) || beta2 < 0 || beta2 >= 1)
    throw InvalidArgument("beta2: expected a value in [0, 1)");
  if (!finite(eps) || eps <= 0) throw InvalidArgument("eps: expected a finite value > 0");
}

std::int64_t NetworkConfig::layout(std::vector<std::int64_t>* w_off,
                                   std::vector<std::int64_t>* b_off) const {
  const int L = n_layers();
  w_off->assign(L + 1, 0);
  b_off->assign(L + 1, 0);
  std::int64_t off = 0;
  for (int l = 1; l <= L; ++l) {
    (*w_off)[l] = off;
    off += sizes[l - 1] * sizes[l];
    (*b_off)[l] = off;
    off += sizes[l];
  }
  return off;
}

Network::Network(const NetworkConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  L_ = cfg_.n_layers();
  n_ = cfg_.sizes.data();
  n_params_ = cfg_.layout(&w_off_, &b_off_);
  for (int l = 1; l <= L_; ++l) max_width_ = std::max(max_width_, n_[l]);
  const std::size_t bytes = static_cast<std::size_t>(n_params_) * dtype_size(cfg_.dtype);
  params_ = zeroed_alloc(bytes);
  grads_ = zeroed_alloc(bytes);
  state0_ = zeroed_alloc(bytes);
  state1_ = zeroed_alloc(bytes);
  act_.assign(L_ + 1, nullptr);
}

Network::~Network() {
  free_workspace();
  zeroed_free(params_);
  zeroed_free(grads_);
  zeroed_free(state0_);
  zeroed_free(state1_);
  zeroed_free(perm_);
  zeroed_free(partials_);
  zeroed_free(batch_x_);
  zeroed_free(batch_y_);
  zeroed_free(slab_);
}

void Network::set_optimizer(const OptimizerConfig& opt) {
  opt.validate();
  opt_ = opt;
  reset_optimizer_state();
}

void Network::reset_optimizer_state() {
  const std::size_t bytes = static_cast<std::size_t>(n_params_) * dtype_size(cfg_.dtype);
  // Only pages that were written: SGD's state stays unbacked.
  zeroed_clear(state0_, bytes);
  zeroed_clear(state1_, bytes);
  optimizer_steps = 0;
}

void Network::free_workspace() {
  for (void* p : owned_) zeroed_free(p);
  owned_.clear();
}

double Network::workspace_bytes(std::int64_t rows) const {
  // What reserve_rows, reserve_batch, reserve_permutation and reserve_threads
  // allocate for `rows` rows, in floating point (no overflow).
  const double r = static_cast<double>(rows), es = static_cast<double>(dtype_size(cfg_.dtype));
  double hidden = 0.0, hidden_max = 1.0;
  for (int l = 1; l < L_; ++l) {
    hidden += static_cast<double>(n_[l]);
    hidden_max = std::max(hidden_max, static_cast<double>(n_[l]));
  }
  const double n0 = static_cast<double>(n_[0]), nl = static_cast<double>(n_[L_]);
  double elems = r * (hidden + nl + 2.0 * hidden_max) + r * (n0 + nl);
  double bytes = elems * es + 8.0 * r;
  if (rows <= kSparseMaxRows && n0 * static_cast<double>(n_[1]) >= kSparseMinWeights) {
    const double lists = r * static_cast<double>(nz_stride(n_[0])) +
                         n0 * static_cast<double>(nz_stride(rows));
    bytes += lists * (es + 4.0) +
             8.0 * (r * static_cast<double>(nz_bounds(n_[0])) +
                    n0 * static_cast<double>(nz_bounds(rows)));
    bytes += static_cast<double>(ThreadPool::instance().size()) *
             ((std::max(n0, r) + static_cast<double>(kNzBlock)) * static_cast<double>(kSlabElems) * es +
              4.0 * n0 + 64.0);
  }
  // The GEMM panels (reserve_threads).
  bytes += static_cast<double>(ThreadPool::instance().size()) *
           static_cast<double>(kGemmPackFloats) * 4.0;
  return bytes;
}

void Network::check_rows(std::int64_t rows, const char* name) const {
  if (rows < 1 || rows > kMaxDim)
    throw InvalidArgument(std::string(name) + ": expected between 1 and 2^31-1 rows, got " +
                          std::to_string(rows));
  const double bytes = workspace_bytes(rows);
  if (bytes > physical_memory_bytes())
    check_allocation(name, std::to_string(rows) + " rows in this network (rows x layer widths of "
                     "working memory)", bytes);
}

void Network::reserve_rows(std::int64_t rows) {
  if (rows <= rows_capacity_) return;
  check_rows(rows, "X");
  free_workspace();
  const std::size_t es = dtype_size(cfg_.dtype);
  auto take = [&](std::int64_t elems) {
    void* p = zeroed_alloc(static_cast<std::size_t>(elems) * es);
    owned_.push_back(p);
    return p;
  };
  std::int64_t hidden_max = 1;
  for (int l = 1; l < L_; ++l) {
    act_[l] = take(rows * n_[l]);
    hidden_max = std::max(hidden_max, n_[l]);
  }
  out_ = take(rows * n_[L_]);
  ping_ = take(rows * hidden_max);
  pong_ = take(rows * hidden_max);
  rho_sum_ = static_cast<double*>(zeroed_alloc(sizeof(double) * (max_width_ + 1)));
  owned_.push_back(rho_sum_);
  sparse_term_ = take(max_width_ + 1);
  auto take_bytes = [&](std::int64_t bytes) {
    void* p = zeroed_alloc(static_cast<std::size_t>(bytes));
    owned_.push_back(p);
    return p;
  };
  const bool nonzero_path = rows <= kSparseMaxRows && n_[0] * n_[1] >= kSparseMinWeights;
  nz_row_val_ = nz_col_val_ = nullptr;
  nz_row_col_ = nz_col_row_ = nullptr;
  nz_row_end_ = nz_col_end_ = nullptr;
  if (nonzero_path) {
    const std::int64_t row_lists = rows * nz_stride(n_[0]), col_lists = n_[0] * nz_stride(rows);
    nz_row_val_ = take(row_lists);
    nz_row_col_ = static_cast<std::int32_t*>(take_bytes(4 * row_lists));
    nz_row_end_ = static_cast<std::int64_t*>(take_bytes(8 * rows * nz_bounds(n_[0])));
    nz_col_val_ = take(col_lists);
    nz_col_row_ = static_cast<std::int32_t*>(take_bytes(4 * col_lists));
    nz_col_end_ = static_cast<std::int64_t*>(take_bytes(8 * n_[0] * nz_bounds(rows)));
  }
  rows_capacity_ = rows;
}

namespace {

// No NaN or infinity: an exponent field of all ones marks both. An integer
// OR-reduction vectorises (a floating-point sum would not, without
// reassociation), so this costs a fraction of a step. This file is built for
// the baseline x86-64; the clones give the check AVX2 and AVX-512 bodies,
// picked at load time (on a W-tiny step the baseline's took 6% of the step).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FUSEDAE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FUSEDAE_CLONES
#endif

template <class T, class U>
inline bool all_finite(const void* data, std::int64_t n, U exponent) {
  const T* p = static_cast<const T*>(data);
  U bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    U u;
    std::memcpy(&u, p + i, sizeof u);  // the bits, without breaking aliasing rules
    bad |= U((u & exponent) == exponent);
  }
  return bad == 0;
}

FUSEDAE_CLONES bool all_finite_f32(const void* data, std::int64_t n) {
  return all_finite<float>(data, n, std::uint32_t(0x7F800000u));
}
FUSEDAE_CLONES bool all_finite_f64(const void* data, std::int64_t n) {
  return all_finite<double>(data, n, std::uint64_t(0x7FF0000000000000ull));
}

// Matrices from this many elements are scanned by the whole pool.
constexpr std::int64_t kPooledScan = std::int64_t(1) << 16;

// No NaN or infinity in m (C-contiguous). A large matrix read next by a step
// that runs on the pool (step_flops) is scanned by the pool, each thread the
// rows that step gives it (split_rows): half the time on 2 threads (an epoch's
// 10,240 × 784 floats: ~1.08 ms → ~0.56 ms; docs/performance.md). Waking the
// pool for a step the caller runs alone cost a 784-2-784 step (B 256, 2
// threads) a quarter of its rate, hence the condition.
bool all_finite_matrix(const MatrixView& m, DType dtype, double step_flops) {
  using Scan = bool (*)(const void*, std::int64_t);
  const Scan scan = dtype == DType::Float32 ? all_finite_f32 : all_finite_f64;
  const std::int64_t count = m.rows * m.cols;
  ThreadPool& pool = ThreadPool::instance();
  if (pool.size() == 1 || count < kPooledScan || step_flops < kParallelFlops)
    return scan(m.data, count);
  struct Job {
    const char* base;
    std::int64_t rows, row_bytes, cols;
    Scan scan;
    std::atomic<bool> bad;
  } job{static_cast<const char*>(m.data), m.rows,
        m.cols * static_cast<std::int64_t>(dtype_size(dtype)), m.cols, scan, {false}};
  pool.run(
      [](void* ctx, int tid, int nt) {
        Job& j = *static_cast<Job*>(ctx);
        std::int64_t a, b;
        split_rows(j.rows, tid, nt, &a, &b);
        if (b > a && !j.scan(j.base + a * j.row_bytes, (b - a) * j.cols))
          j.bad.store(true, std::memory_order_relaxed);
      },
      &job);
  return !job.bad.load(std::memory_order_relaxed);
}

}  // namespace

void check_matrix(const MatrixView& m, const char* name, DType dtype, std::int64_t cols,
                  bool require_finite, bool require_writeable, double step_flops) {
  const std::string n(name);
  if (m.device != Device::CPU) throw InvalidArgument(n + ": expected an array in CPU memory");
  if (m.dtype != dtype)
    throw InvalidArgument(n + ": expected dtype " + dtype_name(dtype) + ", got " +
                          dtype_name(m.dtype));
  if (m.rows < 1) throw InvalidArgument(n + ": expected at least one row");
  if (m.rows > std::numeric_limits<int>::max())
    throw InvalidArgument(n + ": more than 2^31-1 rows");
  if (cols >= 0 && m.cols != cols)
    throw InvalidArgument(n + ": expected " + std::to_string(cols) + " columns, got " +
                          std::to_string(m.cols));
  if (m.cols < 1) throw InvalidArgument(n + ": expected at least one column");
  // A stride along an axis of length 1 is never used (NumPy calls such arrays
  // contiguous whatever it holds, e.g. a column made with x[:, None]).
  if ((m.cols > 1 && m.col_stride != 1) || (m.rows > 1 && m.row_stride != m.cols))
    throw InvalidArgument(n + ": expected a C-contiguous array");
  if (!m.data) throw InvalidArgument(n + ": null data pointer");
  if (reinterpret_cast<std::uintptr_t>(m.data) % dtype_size(dtype) != 0)
    throw InvalidArgument(n + ": expected an aligned array");
  if (require_writeable && !m.writeable) throw InvalidArgument(n + ": expected a writeable array");
  if (require_finite) {
    if (!all_finite_matrix(m, dtype, step_flops)) throw InvalidArgument(n + ": contains NaN or infinity");
  }
}

void Network::forward(const MatrixView& x, int start, int stop, const MatrixView& out) {
  const int L = cfg_.n_layers();
  if (start < 0 || start >= L || stop <= start || stop > L)
    throw InvalidArgument("layers: expected 0 <= start < stop <= " + std::to_string(L));
  check_matrix(x, "X", cfg_.dtype, n_[start], true);
  check_matrix(out, "out", cfg_.dtype, n_[stop], false, true);
  if (out.rows != x.rows) throw InvalidArgument("out: expected as many rows as X");
  forward_rows(x.data, x.rows, start, stop, out.data);
}

namespace {
// step_rows: the rows of the step that follows (a batch of an epoch).
void check_pair(const Network& net, const MatrixView& x, const MatrixView& y,
                std::int64_t step_rows) {
  const auto& sizes = net.config().sizes;
  const double flops = net.forward_flops(step_rows);
  check_matrix(x, "X", net.dtype(), sizes.front(), true, false, flops);
  if (y.data != x.data || y.cols != x.cols)
    check_matrix(y, "Y", net.dtype(), sizes.back(), true, false, flops);
  else if (sizes.back() != x.cols)
    throw InvalidArgument("Y: expected " + std::to_string(sizes.back()) + " columns");
  if (y.rows != x.rows) throw InvalidArgument("Y: expected as many rows as X");
}
}  // namespace

double Network::loss_and_gradient(const MatrixView& x, const MatrixView& y) {
  check_pair(*this, x, y, x.rows);
  return loss_and_gradient_rows(x.data, y.data, x.rows);
}

double Network::train_step(const MatrixView& x, const MatrixView& y) {
  check_pair(*this, x, y, x.rows);
  return train_step_rows(x.data, y.data, x.rows);
}

EpochResult Network::fit_epoch(const MatrixView& x, const MatrixView* y, const EpochOptions& o) {
  // The whole data are scanned once, shared with the pool where its steps are.
  const std::int64_t step_rows = o.batch_size < x.rows ? o.batch_size : x.rows;
  if (y) {
    check_pair(*this, x, *y, step_rows);
  } else {
    check_matrix(x, "X", cfg_.dtype, n_[0], true, false, forward_flops(step_rows));
    if (n_[0] != n_[L_])
      throw InvalidArgument("Y: required when the output width differs from the input's");
  }
  if (o.batch_size < 1) throw InvalidArgument("batch_size: expected an integer >= 1");
  if (!std::isfinite(o.noise_level) || o.noise_level < 0 ||
      (o.noise != Noise::Gaussian && o.noise_level > 1))
    throw InvalidArgument("noise_level: expected a standard deviation >= 0 (gaussian) or a "
                          "probability in [0, 1] (masking, salt_pepper)");
  return fit_epoch_rows(x.data, y ? y->data : nullptr, x.rows, o);
}

namespace {
template <class T>
double decay_sweep(const Network& net, const T* p, T* g, double lam) {
  const auto& n = net.config().sizes;
  double sumsq = 0.0;
  for (int l = 1; l < static_cast<int>(n.size()); ++l) {
    const T* w = p + net.weight_offset(l);
    T* gw = g ? g + net.weight_offset(l) : nullptr;
    const std::int64_t count = n[l - 1] * n[l];
    for (std::int64_t i = 0; i < count; ++i) {
      sumsq += static_cast<double>(w[i]) * w[i];
      if (gw) gw[i] += static_cast<T>(lam) * w[i];
    }
  }
  return 0.5 * lam * sumsq;
}
}  // namespace

double Network::add_decay_gradient() {
  const double lam = cfg_.weight_decay;
  if (lam <= 0) return 0.0;
  return cfg_.dtype == DType::Float32
             ? decay_sweep(*this, static_cast<const float*>(params_), static_cast<float*>(grads_), lam)
             : decay_sweep(*this, static_cast<const double*>(params_), static_cast<double*>(grads_),
                           lam);
}

double Network::decay_term() const {
  const double lam = cfg_.weight_decay;
  if (lam <= 0) return 0.0;
  return cfg_.dtype == DType::Float32
             ? decay_sweep<float>(*this, static_cast<const float*>(params_), nullptr, lam)
             : decay_sweep<double>(*this, static_cast<const double*>(params_), nullptr, lam);
}

void Network::reserve_threads(int threads) {
  // Slabs: up to kSlabElems columns of W_1 (n0 rows) or δ_1 (rows_capacity_
  // rows), per thread, followed by the product's sums for a block of kNzBlock
  // rows (cpu/kernels.inl).
  const std::int64_t slab_rows = std::max(n_[0], rows_capacity_);
  if (nz_row_val_ && (threads > slab_threads_ || slab_rows > slab_rows_)) {
    zeroed_free(slab_);
    slab_ = nullptr;
    // Then n0 int32 counts (list_row_nonzeros), in whole cache lines of T.
    const std::int64_t es = static_cast<std::int64_t>(dtype_size(cfg_.dtype));
    const std::int64_t count_elems = ((n_[0] * 4 + es - 1) / es + 15) / 16 * 16;
    slab_stride_ = (slab_rows + kNzBlock) * kSlabElems + count_elems;
    slab_ = zeroed_alloc(static_cast<std::size_t>(threads * slab_stride_) *
                          dtype_size(cfg_.dtype));
    slab_threads_ = threads;
    slab_rows_ = slab_rows;
  }
  if (threads <= threads_capacity_) return;
  zeroed_free(partials_);
  partials_ = nullptr;
  threads_capacity_ = 0;
  part_stride_ = ((max_width_ + 1 + 7) / 8) * 8;  // whole cache lines per thread
  // Then the GEMM panels (gemm_pack), whose pages are touched only by float32
  // products on AVX-512 (cpu/gemm.inl).
  const std::int64_t doubles =
      3LL * threads * part_stride_ + 8LL * threads + threads * (kGemmPackFloats / 2);
  partials_ = static_cast<double*>(zeroed_alloc(sizeof(double) * doubles));
  threads_capacity_ = threads;
}

void Network::reserve_batch(std::int64_t rows) {
  reserve_rows(rows);
  if (rows <= batch_capacity_) return;
  zeroed_free(batch_x_);
  zeroed_free(batch_y_);
  batch_x_ = batch_y_ = nullptr;
  batch_capacity_ = 0;
  const std::size_t es = dtype_size(cfg_.dtype);
  batch_x_ = zeroed_alloc(static_cast<std::size_t>(rows * n_[0]) * es);
  batch_y_ = zeroed_alloc(static_cast<std::size_t>(rows * n_[L_]) * es);
  batch_capacity_ = rows;
}

void Network::reserve_permutation(std::int64_t rows) {
  if (rows <= perm_capacity_) return;
  zeroed_free(perm_);
  perm_ = nullptr;
  perm_capacity_ = 0;
  perm_ = static_cast<std::int64_t*>(zeroed_alloc(sizeof(std::int64_t) * rows));
  perm_capacity_ = rows;
}

}  // namespace fusedae
