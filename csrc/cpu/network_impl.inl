// The CPU network: the fused training step built from BLAS GEMMs and the
// epilogues of kernels.inl. Included inside a per-instruction-set namespace.
//
// Step, for layers l = 1..L with A_0 = X:
//   forward   Z_l = A_{l-1}·W_l (GEMM), then one epilogue pass:
//             hidden: A_l = f(Z_l + b_l) [+ ρ̂ column sums on the sparse layer]
//             output: loss and δ_L = ∂J/∂Z_L in place, db_L column sums
//   sparsity  ρ̂ = sums/B clamped, KL added to the loss, s = β(-ρ/ρ̂ + (1-ρ)/(1-ρ̂))/B
//   backward  dW_l = A_{l-1}ᵀ·δ_l (GEMM, written straight into the gradient)
//             G = δ_l·W_lᵀ (GEMM), then one epilogue: δ_{l-1} = (G + s)⊙f'(A_{l-1}), db
//   update    one optimizer sweep per parameter segment, λW folded in

template <class T> class NetworkImpl final : public Network {
 public:
  explicit NetworkImpl(const NetworkConfig& cfg) : Network(cfg) {}  // storage: core/network.cpp

  const char* isa() const override { return FUSEDAE_ISA_NAME; }

  void init_params(std::uint64_t new_seed) override {
    seed = new_seed;
    T* p = P();
    for (int l = 1; l <= L_; ++l) {
      const double r = std::sqrt(6.0 / static_cast<double>(n_[l - 1] + n_[l] + 1));
      T* w = p + w_off_[l];
      const std::int64_t count = n_[l - 1] * n_[l];
      for (std::int64_t k = 0; k < count; k += 4) {
        const philox::U4 u = philox::block(seed, philox::kInit, static_cast<std::uint32_t>(l),
                                           static_cast<std::uint64_t>(k / 4));
        for (int h = 0; h < 4 && k + h < count; ++h)
          w[k + h] = static_cast<T>((2.0 * philox::uniform24(u.v[h]) - 1.0) * r);
      }
      T* b = p + b_off_[l];
      for (std::int64_t j = 0; j < n_[l]; ++j) b[j] = T(0);
    }
    reset_optimizer_state();
    noise_steps = 0;
    epochs = 0;
  }

  void forward(const void* xv, std::int64_t rows, int start, int stop, void* outv) override {
    blas::require();
    const T* x = static_cast<const T*>(xv);
    T* out = static_cast<T*>(outv);
    // Row chunks keep the workspace small when transforming a whole data set.
    const std::int64_t chunk = rows < kForwardChunk ? rows : kForwardChunk;
    reserve_rows(chunk);
    for (std::int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const std::int64_t m = rows - r0 < chunk ? rows - r0 : chunk;
      const T* a_prev = x + r0 * n_[start];
      for (int l = start + 1; l <= stop; ++l) {
        T* dst = l == stop ? out + r0 * n_[stop] : A(l);
        gemm_forward(a_prev, l, dst, m);
        with_activation<BiasActivation<T>>(cfg_.activations[l - 1], dst, m, n_[l], Bias(l),
                                           nullptr);
        a_prev = dst;
      }
    }
  }

  double loss_and_gradient(const void* xv, const void* yv, std::int64_t rows) override {
    blas::require();
    reserve_rows(rows);
    double loss = forward_backward(static_cast<const T*>(xv), static_cast<const T*>(yv), rows);
    const double lam = cfg_.weight_decay;
    if (lam > 0) {
      double sumsq = 0.0;
      for (int l = 1; l <= L_; ++l) {
        const T* w = P() + w_off_[l];
        T* g = G() + w_off_[l];
        const T tl = static_cast<T>(lam);
        const std::int64_t count = n_[l - 1] * n_[l];
        for (std::int64_t i = 0; i < count; ++i) {
          sumsq += static_cast<double>(w[i]) * w[i];
          g[i] += tl * w[i];
        }
      }
      loss += 0.5 * lam * sumsq;
    }
    return loss;
  }

  double train_step(const void* xv, const void* yv, std::int64_t rows) override {
    blas::require();
    reserve_rows(rows);
    return step(static_cast<const T*>(xv), static_cast<const T*>(yv), rows);
  }

  EpochResult fit_epoch(const void* xv, const void* yv, std::int64_t rows,
                        const EpochOptions& o) override {
    blas::require();
    const T* x = static_cast<const T*>(xv);
    const T* y = static_cast<const T*>(yv);  // null: the targets are the inputs
    const std::int64_t bs = o.batch_size < rows ? o.batch_size : rows;
    reserve_rows(bs);
    const bool gather = o.shuffle || o.noise != Noise::None;
    if (o.shuffle) shuffle(rows);
    ++epochs;

    const std::int64_t nin = n_[0], nout = n_[L_];
    T* bx = static_cast<T*>(batch_x_);
    T* by = static_cast<T*>(batch_y_);
    EpochResult res;
    double weighted = 0.0;
    std::int64_t seen = 0;
    for (std::int64_t r0 = 0; r0 < rows; r0 += bs) {
      const std::int64_t m = rows - r0 < bs ? rows - r0 : bs;
      const T* xin = x + r0 * nin;
      const T* yin = (y ? y : x) + r0 * nout;
      if (gather) {
        // Autoencoder with noise: the clean rows are the targets (by) and the
        // corrupted copy the input (bx). Otherwise inputs go to bx and given
        // targets to by; an autoencoder without noise uses bx for both.
        const bool noisy = o.noise != Noise::None;
        T* clean_x = noisy && !y ? by : bx;
        for (std::int64_t i = 0; i < m; ++i) {
          const std::int64_t src = o.shuffle ? perm_[r0 + i] : r0 + i;
          std::memcpy(clean_x + i * nin, x + src * nin, sizeof(T) * nin);
          if (y) std::memcpy(by + i * nout, y + src * nout, sizeof(T) * nout);
        }
        if (noisy) {
          corrupt(clean_x, bx, m * nin, o.noise, o.noise_level, seed,
                  static_cast<std::uint32_t>(noise_steps));
          ++noise_steps;
        }
        xin = bx;
        yin = (y || noisy) ? by : bx;
      }
      const double loss = step(xin, yin, m);
      if (!std::isfinite(loss)) {
        res.diverged = true;
        res.mean_loss = loss;
        return res;
      }
      weighted += loss * static_cast<double>(m);
      seen += m;
      ++res.steps;
    }
    res.mean_loss = seen ? weighted / static_cast<double>(seen) : 0.0;
    return res;
  }

 private:
  static constexpr std::int64_t kForwardChunk = 2048;

  T* P() { return static_cast<T*>(params_); }
  T* G() { return static_cast<T*>(grads_); }
  T* W(int l) { return P() + w_off_[l]; }
  T* Bias(int l) { return P() + b_off_[l]; }
  T* A(int l) { return static_cast<T*>(act_[l]); }

  void gemm_forward(const T* a_prev, int l, T* dst, std::int64_t m) {
    const int k = static_cast<int>(n_[l - 1]), n = static_cast<int>(n_[l]);
    blas::gemm(false, false, static_cast<int>(m), n, k, T(1), a_prev, k, W(l), n, T(0), dst, n);
  }

  void write_bias_grad(int l) {
    T* db = G() + b_off_[l];
    for (std::int64_t j = 0; j < n_[l]; ++j) db[j] = static_cast<T>(colsum_[j]);
  }

  void clear_colsum(std::int64_t n) {
    for (std::int64_t j = 0; j < n; ++j) colsum_[j] = 0.0;
  }

  bool sparse_active() const { return cfg_.sparsity_layer > 0 && cfg_.sparsity_weight > 0; }

  // Forward, loss, sparsity and backward for one batch; gradients (without
  // the λW term) land in grads(). Returns data loss + sparsity penalty.
  double forward_backward(const T* x, const T* y, std::int64_t B) {
    const int sl = sparse_active() ? cfg_.sparsity_layer : 0;
    double loss = 0.0;
    const T* a_prev = x;
    for (int l = 1; l <= L_; ++l) {
      T* dst = l < L_ ? A(l) : static_cast<T*>(out_);
      gemm_forward(a_prev, l, dst, B);
      if (l < L_) {
        double* rs = nullptr;
        if (l == sl) {
          rs = rho_sum_;
          for (std::int64_t j = 0; j < n_[l]; ++j) rs[j] = 0.0;
        }
        with_activation<BiasActivation<T>>(cfg_.activations[l - 1], dst, B, n_[l], Bias(l), rs);
      } else {
        clear_colsum(n_[l]);
        loss = cfg_.loss == Loss::BinaryCrossEntropy
                   ? with_activation<OutputDelta<T, Loss::BinaryCrossEntropy>>(
                         cfg_.activations[l - 1], dst, B, n_[l], Bias(l), y, colsum_)
                   : with_activation<OutputDelta<T, Loss::SquaredError>>(
                         cfg_.activations[l - 1], dst, B, n_[l], Bias(l), y, colsum_);
        write_bias_grad(l);
      }
      a_prev = dst;
    }
    if (sl) loss += sparsity_term(sl, B);

    T* delta = static_cast<T*>(out_);
    for (int l = L_; l >= 1; --l) {
      const T* a_in = l == 1 ? x : A(l - 1);
      const int k = static_cast<int>(n_[l - 1]), n = static_cast<int>(n_[l]);
      // dW_l = A_{l-1}ᵀ·δ_l, straight into the gradient buffer.
      blas::gemm(true, false, k, n, static_cast<int>(B), T(1), a_in, k, delta, n, T(0),
                 G() + w_off_[l], n);
      if (l == 1) break;  // no δ for the inputs
      T* g = delta == static_cast<T*>(ping_) ? static_cast<T*>(pong_) : static_cast<T*>(ping_);
      blas::gemm(false, true, static_cast<int>(B), k, n, T(1), delta, n, W(l), n, T(0), g, k);
      clear_colsum(k);
      const T* s = (l - 1 == sl) ? static_cast<const T*>(sparse_term_) : nullptr;
      with_activation<HiddenDelta<T>>(cfg_.activations[l - 2], g, B, n_[l - 1], A(l - 1), s,
                                      colsum_);
      write_bias_grad(l - 1);
      delta = g;
    }
    return loss;
  }

  // β·Σ KL(ρ‖ρ̂_n) and the per-unit term s_n of the backward epilogue, with ρ̂
  // clamped to [ε, 1-ε] (docs/sparsity.md).
  double sparsity_term(int sl, std::int64_t B) {
    const double rho = cfg_.sparsity_target, beta = cfg_.sparsity_weight;
    const double eps = cfg_.dtype == DType::Float32 ? kRhohatEpsFloat32 : kRhohatEpsFloat64;
    T* s = static_cast<T*>(sparse_term_);
    double kl = 0.0;
    for (std::int64_t j = 0; j < n_[sl]; ++j) {
      double rh = rho_sum_[j] / static_cast<double>(B);
      rh = rh < eps ? eps : (rh > 1.0 - eps ? 1.0 - eps : rh);
      kl += rho * std::log(rho / rh) + (1.0 - rho) * std::log((1.0 - rho) / (1.0 - rh));
      s[j] = static_cast<T>(beta * (-rho / rh + (1.0 - rho) / (1.0 - rh)) / static_cast<double>(B));
    }
    return beta * kl;
  }

  double step(const T* x, const T* y, std::int64_t B) {
    double loss = forward_backward(x, y, B);
    if (!std::isfinite(loss)) return loss;  // parameters and state untouched
    ++optimizer_steps;
    double sumsq = 0.0;
    T* s0 = static_cast<T*>(state0_);
    T* s1 = static_cast<T*>(state1_);
    for (int l = 1; l <= L_; ++l) {
      const std::int64_t wo = w_off_[l], bo = b_off_[l];
      sumsq += optimizer_sweep<T>(opt_, optimizer_steps, P() + wo, G() + wo, s0 + wo, s1 + wo,
                                  n_[l - 1] * n_[l], cfg_.weight_decay);
      optimizer_sweep<T>(opt_, optimizer_steps, P() + bo, G() + bo, s0 + bo, s1 + bo, n_[l], 0.0);
    }
    return loss + 0.5 * cfg_.weight_decay * sumsq;
  }

  // Fisher-Yates driven by Philox(seed, kShuffle, stream = epoch): draw k
  // picks j = floor(u·(i+1)/2^32) for i = rows-1-k (bias below rows/2^32).
  void shuffle(std::int64_t rows) {
    reserve_permutation(rows);
    for (std::int64_t i = 0; i < rows; ++i) perm_[i] = i;
    philox::U4 u{};
    for (std::int64_t k = 0; k < rows - 1; ++k) {
      if (k % 4 == 0)
        u = philox::block(seed, philox::kShuffle, static_cast<std::uint32_t>(epochs),
                          static_cast<std::uint64_t>(k / 4));
      const std::int64_t i = rows - 1 - k;
      const std::int64_t j = static_cast<std::int64_t>(
          (static_cast<std::uint64_t>(u.v[k % 4]) * static_cast<std::uint64_t>(i + 1)) >> 32);
      const std::int64_t t = perm_[i];
      perm_[i] = perm_[j];
      perm_[j] = t;
    }
  }
};
