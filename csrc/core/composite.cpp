#include "core/composite.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/errors.hpp"
#include "core/float_mode.hpp"
#include "core/limits.hpp"
#include "core/philox.hpp"

namespace fusedae {

namespace {

// Carves `count` arrays of the given element counts out of one block.
void carve(std::vector<double>& storage, DType dt, std::initializer_list<std::int64_t> counts,
           std::initializer_list<void**> out) {
  const std::size_t es = dtype_size(dt);
  std::size_t total = 0;
  for (auto c : counts) total += (static_cast<std::size_t>(c) * es + 63) / 64 * 64;
  storage.assign(total / sizeof(double) + 8, 0.0);
  char* base = reinterpret_cast<char*>(storage.data());
  base += (64 - reinterpret_cast<std::uintptr_t>(base) % 64) % 64;
  auto c = counts.begin();
  for (void** p : out) {
    *p = base;
    base += (static_cast<std::size_t>(*c) * es + 63) / 64 * 64;
    ++c;
  }
}

}  // namespace

// ---------------------------------------------------------------- the VAE

Vae::Vae(const VaeConfig& cfg, const std::string& isa) : cfg_(cfg) {
  cfg_.validate();
  enc_ = make_cpu_network(cfg_.encoder(), isa);
  dec_ = make_cpu_network(cfg_.decoder(), isa);
}

void Vae::init_params(std::uint64_t s) {
  seed = s;
  enc_->init_params(s);
  dec_->init_params(s + 1);
  latent_steps = 0;
  epochs = 0;
}

void Vae::set_optimizer(const OptimizerConfig& opt) {
  enc_->set_optimizer(opt);
  dec_->set_optimizer(opt);
}

void Vae::reserve(std::int64_t rows) {
  // Both networks' workspaces and the model's own row buffers, checked before
  // either network is touched (a step must not fail half-way).
  enc_->check_rows(rows, "X");
  dec_->check_rows(rows, "X");
  if (rows <= capacity_) return;
  const std::int64_t D = cfg_.n_features, Z = cfg_.n_latent, C = cfg_.n_conditions;
  {
    const double r = static_cast<double>(rows), d = static_cast<double>(D),
                 z = static_cast<double>(Z), c = static_cast<double>(C);
    const double bytes = r * (2 * d + 6 * z + 3 * c + 1) * static_cast<double>(dtype_size(cfg_.dtype)) +
                         enc_->workspace_bytes(rows) + dec_->workspace_bytes(rows);
    check_allocation("X", std::to_string(rows) + " rows in this VAE", bytes);
  }
  carve(storage_, cfg_.dtype,
        {rows * (D + C), rows * D, rows * C + 1, rows * Z, rows * Z, rows * (Z + C),
         rows * (Z + C), rows * 2 * Z},
        {&enc_in_, &xb_, &yb_, &eps_, &sd_, &dec_in_, &d_dec_in_, &d_enc_out_});
  capacity_ = rows;
}

void Vae::check_inputs(const MatrixView& x, const MatrixView* y) const {
  // The encoder's forward pass is the first to read X.
  check_matrix(x, "X", cfg_.dtype, cfg_.n_features, true, false, enc_->forward_flops(x.rows));
  if (cfg_.n_conditions > 0) {
    if (!y) throw InvalidArgument("Y: required by a conditional VAE (one row of labels per row of X)");
    check_matrix(*y, "Y", cfg_.dtype, cfg_.n_conditions, true);
    if (y->rows != x.rows) throw InvalidArgument("Y: expected as many rows as X");
  } else if (y) {
    throw InvalidArgument("Y: this VAE has no conditions (n_conditions = 0)");
  }
}

template <class T>
VaeLosses Vae::run(const T* x, const T* y, std::int64_t B, const T* eps, bool update) {
  // The latent layer's own arithmetic too, not only the networks' (which
  // set the same mode themselves).
  const FlushSubnormals mode(std::is_same<T, float>::value);
  const std::int64_t D = cfg_.n_features, Z = cfg_.n_latent, C = cfg_.n_conditions;
  const double inv_b = 1.0 / static_cast<double>(B);
  VaeLosses out;

  // Encoder input [x | y].
  const T* enc_in = x;
  if (C > 0) {
    T* e = static_cast<T*>(enc_in_);
    for (std::int64_t m = 0; m < B; ++m) {
      std::memcpy(e + m * (D + C), x + m * D, sizeof(T) * D);
      std::memcpy(e + m * (D + C) + D, y + m * C, sizeof(T) * C);
    }
    enc_in = e;
  }
  // The decay term at the parameters before the update (the decoder's fused
  // step adds its own to the loss it returns).
  const double dec_decay = update ? dec_->decay_term() : 0.0;
  if (update) out.decay = enc_->decay_term() + dec_decay;
  const T* E = static_cast<const T*>(enc_->forward_keep(enc_in, B));

  // Reparameterisation and the Gaussian KL in one pass: z = μ + σ·ε,
  // KL_m = −½ Σ_j (1 + log σ² − μ² − σ²).
  T* zin = static_cast<T*>(dec_in_);
  T* sd = static_cast<T*>(sd_);
  double kl = 0.0;
  for (std::int64_t m = 0; m < B; ++m) {
    const T* mu = E + m * 2 * Z;
    const T* lv = mu + Z;
    for (std::int64_t j = 0; j < Z; ++j) {
      const T s = std::exp(T(0.5) * lv[j]);
      sd[m * Z + j] = s;
      zin[m * (Z + C) + j] = mu[j] + s * eps[m * Z + j];
      kl += -0.5 * (1.0 + static_cast<double>(lv[j]) - static_cast<double>(mu[j]) * mu[j] -
                    static_cast<double>(s) * s);
    }
    if (C > 0) std::memcpy(zin + m * (Z + C) + Z, y + m * C, sizeof(T) * C);
  }
  out.kl = kl * inv_b;
  if (!std::isfinite(out.kl)) {
    out.total = out.kl;
    return out;
  }

  // Decoder: the fused step on ([z | y], x), with dJ/d[z | y] from its weights
  // before its update.
  T* dzin = static_cast<T*>(d_dec_in_);
  const double rec = dec_->step_with_input_grad(zin, x, B, dzin, update, true);
  if (!std::isfinite(rec)) {
    out.recon = out.total = rec;
    return out;
  }
  out.recon = rec - dec_decay;

  // The encoder's output delta, in one pass: dμ = dz + μ/B,
  // dlog σ² = dz·ε·σ/2 + (σ² − 1)/(2B).
  T* d = static_cast<T*>(d_enc_out_);
  const T tb = static_cast<T>(inv_b), half_b = static_cast<T>(0.5 * inv_b);
  for (std::int64_t m = 0; m < B; ++m) {
    const T* mu = E + m * 2 * Z;
    for (std::int64_t j = 0; j < Z; ++j) {
      const T dz = dzin[m * (Z + C) + j], s = sd[m * Z + j];
      d[m * 2 * Z + j] = dz + mu[j] * tb;
      d[m * 2 * Z + Z + j] = T(0.5) * dz * eps[m * Z + j] * s + (s * s - T(1)) * half_b;
    }
  }
  enc_->backward_from(d, B, nullptr, update);

  if (!update) out.decay = enc_->add_decay_gradient() + dec_->add_decay_gradient();
  out.total = out.recon + out.kl + out.decay;
  return out;
}

VaeLosses Vae::loss_and_gradient(const MatrixView& x, const MatrixView* y, const MatrixView& eps) {
  check_inputs(x, y);
  check_matrix(eps, "eps", cfg_.dtype, cfg_.n_latent, true);
  if (eps.rows != x.rows) throw InvalidArgument("eps: expected as many rows as X");
  reserve(x.rows);
  const void* yd = y ? y->data : nullptr;
  if (cfg_.dtype == DType::Float32)
    return run<float>(static_cast<const float*>(x.data), static_cast<const float*>(yd), x.rows,
                      static_cast<const float*>(eps.data), false);
  return run<double>(static_cast<const double*>(x.data), static_cast<const double*>(yd), x.rows,
                     static_cast<const double*>(eps.data), false);
}

VaeLosses Vae::train_step(const MatrixView& x, const MatrixView* y) {
  check_inputs(x, y);
  reserve(x.rows);
  const std::int64_t n = x.rows * cfg_.n_latent;
  const auto stream = static_cast<std::uint32_t>(latent_steps);
  const void* yd = y ? y->data : nullptr;
  VaeLosses r;
  if (cfg_.dtype == DType::Float32) {
    latent_normal(enc_->isa(), cfg_.dtype, seed, stream, n, eps_);
    r = run<float>(static_cast<const float*>(x.data), static_cast<const float*>(yd), x.rows,
                   static_cast<const float*>(eps_), true);
  } else {
    latent_normal(enc_->isa(), cfg_.dtype, seed, stream, n, eps_);
    r = run<double>(static_cast<const double*>(x.data), static_cast<const double*>(yd), x.rows,
                    static_cast<const double*>(eps_), true);
  }
  ++latent_steps;
  return r;
}

namespace {
template <class T>
void gather_rows(const T* src, std::int64_t cols, const std::int64_t* index, std::int64_t first,
                 std::int64_t rows, T* dst) {
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t r = index ? index[first + i] : first + i;
    std::memcpy(dst + i * cols, src + r * cols, sizeof(T) * cols);
  }
}
}  // namespace

VaeEpoch Vae::fit_epoch(const MatrixView& x, const MatrixView* y, std::int64_t batch_size,
                        bool shuffle) {
  check_inputs(x, y);
  if (batch_size < 1) throw InvalidArgument("batch_size: expected an integer >= 1");
  const std::int64_t rows = x.rows, bs = batch_size < rows ? batch_size : rows;
  const std::int64_t D = cfg_.n_features, Z = cfg_.n_latent, C = cfg_.n_conditions;
  reserve(bs);
  if (shuffle) {
    perm_.resize(static_cast<std::size_t>(rows));
    philox::permutation(seed, static_cast<std::uint32_t>(epochs), rows, perm_.data());
  }
  ++epochs;
  VaeEpoch res;
  double w_total = 0, w_recon = 0, w_kl = 0, w_decay = 0;
  for (std::int64_t r0 = 0; r0 < rows; r0 += bs) {
    const std::int64_t m = rows - r0 < bs ? rows - r0 : bs;
    const auto stream = static_cast<std::uint32_t>(latent_steps);
    VaeLosses l;
    auto one = [&](auto tag) {
      using T = decltype(tag);
      const T* xs = static_cast<const T*>(x.data);
      const T* ys = y ? static_cast<const T*>(y->data) : nullptr;
      const std::int64_t* idx = shuffle ? perm_.data() : nullptr;
      const T* xb = xs + r0 * D;
      const T* yb = ys ? ys + r0 * C : nullptr;
      if (shuffle) {
        gather_rows(xs, D, idx, r0, m, static_cast<T*>(xb_));
        xb = static_cast<T*>(xb_);
        if (ys) {
          gather_rows(ys, C, idx, r0, m, static_cast<T*>(yb_));
          yb = static_cast<T*>(yb_);
        }
      }
      latent_normal(enc_->isa(), cfg_.dtype, seed, stream, m * Z, eps_);
      l = run<T>(xb, yb, m, static_cast<const T*>(eps_), true);
    };
    if (cfg_.dtype == DType::Float32) one(float{});
    else one(double{});
    ++latent_steps;
    if (!std::isfinite(l.total)) {
      res.diverged = true;
      res.mean = l;
      return res;
    }
    const double w = static_cast<double>(m);
    w_total += l.total * w;
    w_recon += l.recon * w;
    w_kl += l.kl * w;
    w_decay += l.decay * w;
    ++res.steps;
  }
  const double inv = 1.0 / static_cast<double>(rows);
  res.mean = VaeLosses{w_total * inv, w_recon * inv, w_kl * inv, w_decay * inv};
  return res;
}

// ---------------------------------------------------------------- the GAN

Gan::Gan(const GanConfig& cfg, const std::string& isa) : cfg_(cfg) {
  cfg_.validate();
  g_ = make_cpu_network(cfg_.generator(), isa);
  d_ = make_cpu_network(cfg_.discriminator(), isa);
}

void Gan::init_params(std::uint64_t s) {
  seed = s;
  g_->init_params(s);
  d_->init_params(s + 1);
  latent_steps = 0;
  epochs = 0;
}

void Gan::set_optimizers(const OptimizerConfig& g, const OptimizerConfig& d) {
  g.validate();
  d.validate();
  g_->set_optimizer(g);
  d_->set_optimizer(d);
}

void Gan::reserve(std::int64_t rows, const char* name) {
  // A discriminator step stacks `rows` generated rows under as many real
  // ones: 2·rows must still be a 32-bit row count.
  if (rows < 1 || rows > kMaxDim / 2)
    throw InvalidArgument(std::string(name) + ": expected between 1 and 2^30-1 rows, got " +
                          std::to_string(rows));
  g_->check_rows(rows, name);
  d_->check_rows(2 * rows, name);
  if (rows <= capacity_) return;
  const std::int64_t D = cfg_.n_features, Z = cfg_.n_latent;
  {
    const double r = static_cast<double>(rows);
    const double bytes =
        r * (static_cast<double>(Z) + 3.0 * static_cast<double>(D) + 2.0) *
            static_cast<double>(dtype_size(cfg_.dtype)) +
        g_->workspace_bytes(rows) + d_->workspace_bytes(2 * rows);
    check_allocation(name, std::to_string(rows) + " rows in this GAN", bytes);
  }
  carve(storage_, cfg_.dtype, {rows * Z, 2 * rows * D, 2 * rows, rows * D},
        {&z_, &stacked_, &targets_, &d_fake_});
  capacity_ = rows;
}

template <class T>
double Gan::d_step(const T* real, std::int64_t m) {
  const FlushSubnormals mode(std::is_same<T, float>::value);
  const std::int64_t D = cfg_.n_features;
  T* st = static_cast<T*>(stacked_);
  T* tg = static_cast<T*>(targets_);
  T* z = static_cast<T*>(z_);
  if (real != st) std::memcpy(st, real, sizeof(T) * m * D);
  latent_normal(g_->isa(), cfg_.dtype, seed, static_cast<std::uint32_t>(latent_steps++),
                m * cfg_.n_latent, z);
  g_->forward_unchecked(z, m, st + m * D);
  for (std::int64_t i = 0; i < 2 * m; ++i) tg[i] = i < m ? T(1) : T(0);
  return d_->step_with_input_grad(st, tg, 2 * m, nullptr, true, true);
}

template <class T>
double Gan::g_step(const T* z, std::int64_t m, bool update) {
  const FlushSubnormals mode(std::is_same<T, float>::value);
  T* tg = static_cast<T*>(targets_);
  T* dfake = static_cast<T*>(d_fake_);
  const T* fake = static_cast<const T*>(g_->forward_keep(z, m));
  // Non-saturating: −log D(G(z)) = BCE against 1. Minimax: log(1 − D(G(z)))
  // = −BCE against 0, so its loss and dJ/d(fake) are the negated ones.
  const T target = cfg_.minimax ? T(0) : T(1);
  for (std::int64_t i = 0; i < m; ++i) tg[i] = target;
  double loss = d_->step_with_input_grad(fake, tg, m, dfake, false, false);
  if (!std::isfinite(loss)) return loss;
  if (cfg_.minimax) {
    loss = -loss;
    for (std::int64_t i = 0; i < m * cfg_.n_features; ++i) dfake[i] = -dfake[i];
  }
  if (update) {
    loss += g_->decay_term();
    g_->backward_from(dfake, m, nullptr, true);
  } else {
    g_->backward_from(dfake, m, nullptr, false);
    loss += g_->add_decay_gradient();
  }
  return loss;
}

double Gan::discriminator_step(const MatrixView& real) {
  check_matrix(real, "X", cfg_.dtype, cfg_.n_features, true, false,
               d_->forward_flops(real.rows));
  reserve(real.rows, "X");
  if (cfg_.dtype == DType::Float32) return d_step(static_cast<const float*>(real.data), real.rows);
  return d_step(static_cast<const double*>(real.data), real.rows);
}

double Gan::generator_step(std::int64_t rows) {
  reserve(rows, "batch_size");
  const auto stream = static_cast<std::uint32_t>(latent_steps++);
  latent_normal(g_->isa(), cfg_.dtype, seed, stream, rows * cfg_.n_latent, z_);
  if (cfg_.dtype == DType::Float32) return g_step(static_cast<const float*>(z_), rows, true);
  return g_step(static_cast<const double*>(z_), rows, true);
}

double Gan::generator_loss_and_gradient(const MatrixView& z) {
  check_matrix(z, "Z", cfg_.dtype, cfg_.n_latent, true);
  reserve(z.rows, "Z");
  if (cfg_.dtype == DType::Float32) return g_step(static_cast<const float*>(z.data), z.rows, false);
  return g_step(static_cast<const double*>(z.data), z.rows, false);
}

GanEpoch Gan::fit_epoch(const MatrixView& x, std::int64_t batch_size, int d_per_g, bool train_d,
                        bool train_g, bool shuffle) {
  check_matrix(x, "X", cfg_.dtype, cfg_.n_features, true, false,
               d_->forward_flops(batch_size > 0 && batch_size < x.rows ? batch_size : x.rows));
  if (batch_size < 1) throw InvalidArgument("batch_size: expected an integer >= 1");
  if (d_per_g < 1) throw InvalidArgument("d_steps: expected an integer >= 1");
  if (!train_d && !train_g) throw InvalidArgument("train_d, train_g: nothing to train");
  const std::int64_t rows = x.rows, bs = batch_size < rows ? batch_size : rows;
  const std::int64_t D = cfg_.n_features;
  reserve(bs, "batch_size");
  if (shuffle) {
    perm_.resize(static_cast<std::size_t>(rows));
    philox::permutation(seed, static_cast<std::uint32_t>(epochs), rows, perm_.data());
  }
  ++epochs;
  GanEpoch res;
  std::int64_t batches = 0;
  for (std::int64_t r0 = 0; r0 < rows; r0 += bs) {
    const std::int64_t m = rows - r0 < bs ? rows - r0 : bs;
    ++batches;
    if (train_d) {
      double l;
      if (cfg_.dtype == DType::Float32) {
        const float* xs = static_cast<const float*>(x.data);
        if (shuffle) gather_rows(xs, D, perm_.data(), r0, m, static_cast<float*>(stacked_));
        l = d_step(shuffle ? static_cast<const float*>(stacked_) : xs + r0 * D, m);
      } else {
        const double* xs = static_cast<const double*>(x.data);
        if (shuffle) gather_rows(xs, D, perm_.data(), r0, m, static_cast<double*>(stacked_));
        l = d_step(shuffle ? static_cast<const double*>(stacked_) : xs + r0 * D, m);
      }
      res.d_losses.push_back(l);
      if (!std::isfinite(l)) {
        res.diverged = true;
        return res;
      }
    }
    if (train_g && (!train_d || batches % d_per_g == 0)) {
      const double l = generator_step(bs);
      res.g_losses.push_back(l);
      if (!std::isfinite(l)) {
        res.diverged = true;
        return res;
      }
    }
  }
  return res;
}

}  // namespace fusedae
