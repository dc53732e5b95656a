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
//   update    layer by layer, each thread's rows of W_l as soon as its rows of
//             dW_l exist (momentum, Adam: a sweep with λW folded in), each bias
//             where its sums are reduced; plain SGD rides in the dW GEMMs
//             themselves (W ← (1-lr·λ)W - lr·A_{l-1}ᵀδ_l), no gradient written

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

  void forward_rows(const void* xv, std::int64_t rows, int start, int stop,
                    void* outv) override {
    blas::require();
    ForwardJob job{this, static_cast<const T*>(xv), static_cast<T*>(outv), 0, 0, start, stop};
    // Row chunks keep the workspace small when transforming a whole data set
    // (a per-row buffer is ~16 bytes per input column: the nonzero lists a
    // step needs; 2048-row chunks grew a W-mnist model's workspace by 26 MB at
    // the end of its fit). A fixed size, not the workspace's: OpenBLAS rounds
    // a row by where it falls in its blocking, so the outputs would depend on
    // what the model ran before (a saved and a loaded model must agree).
    const std::int64_t chunk = rows < kForwardChunk ? rows : kForwardChunk;
    reserve_rows(chunk);
    for (std::int64_t r0 = 0; r0 < rows; r0 += chunk) {
      job.r0 = r0;
      job.rows = rows - r0 < chunk ? rows - r0 : chunk;
      dispatch(job.rows, &ForwardJob::task, &job);
    }
  }

  double loss_and_gradient_rows(const void* xv, const void* yv, std::int64_t rows) override {
    blas::require();
    reserve_rows(rows);
    StepJob job{this, Batch::of(static_cast<const T*>(xv), static_cast<const T*>(yv)), rows,
                false};
    dispatch(rows, &StepJob::task, &job);
    double loss = job.loss;
    const double lam = cfg_.weight_decay;
    if (lam > 0 && std::isfinite(loss)) {
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

  double train_step_rows(const void* xv, const void* yv, std::int64_t rows) override {
    blas::require();
    reserve_rows(rows);
    return step(Batch::of(static_cast<const T*>(xv), static_cast<const T*>(yv)), rows);
  }

  void* forward_keep(const void* xv, std::int64_t rows) override {
    blas::require();
    reserve_rows(rows);
    const T* x = static_cast<const T*>(xv);
    StepJob job{this, Batch::of(x, x), rows, false};
    job.phase = Phase::ForwardOnly;
    kept_x_ = x;
    kept_rows_ = rows;
    dispatch(rows, &StepJob::task, &job);
    return out_;
  }

  void backward_from(const void* d_out, std::int64_t rows, void* dx, bool update) override {
    if (rows != kept_rows_ || !kept_x_)
      throw InvalidArgument("backward_from: expected the rows of the last forward_keep");
    StepJob job{this, Batch::of(kept_x_, kept_x_), rows, update};
    job.phase = Phase::BackwardOnly;
    job.d_out = static_cast<const T*>(d_out);
    job.dx = static_cast<T*>(dx);
    job.t = optimizer_steps + 1;
    job.loss = 0.0;
    dispatch(rows, &StepJob::task, &job);
    if (update) optimizer_steps = job.t;
    kept_x_ = nullptr;
  }

  double step_with_input_grad(const void* xv, const void* yv, std::int64_t rows, void* dx,
                              bool update, bool weight_grads) override {
    blas::require();
    reserve_rows(rows);
    StepJob job{this, Batch::of(static_cast<const T*>(xv), static_cast<const T*>(yv)), rows,
                update && weight_grads};
    job.dx = static_cast<T*>(dx);
    job.weight_grads = weight_grads;
    job.t = optimizer_steps + 1;
    dispatch(rows, &StepJob::task, &job);
    if (!std::isfinite(job.loss) || !job.update) return job.loss;
    optimizer_steps = job.t;
    double sumsq = 0.0;
    for (int t = 0; t < threads_used_; ++t) sumsq += part_scalar(t)[1];
    return job.loss + 0.5 * cfg_.weight_decay * sumsq;
  }

  EpochResult fit_epoch_rows(const void* xv, const void* yv, std::int64_t rows,
                             const EpochOptions& o) override {
    blas::require();
    const T* x = static_cast<const T*>(xv);
    const T* y = static_cast<const T*>(yv);  // null: the targets are the inputs
    const std::int64_t bs = o.batch_size < rows ? o.batch_size : rows;
    reserve_batch(bs);
    // Rows are copied into the batch buffers when they are shuffled or
    // corrupted; otherwise a step reads the caller's array in place.
    const bool gather = o.shuffle || o.noise != Noise::None;
    if (o.shuffle) shuffle(rows);
    ++epochs;

    EpochResult res;
    double weighted = 0.0;
    std::int64_t seen = 0;
    for (std::int64_t r0 = 0; r0 < rows; r0 += bs) {
      const std::int64_t m = rows - r0 < bs ? rows - r0 : bs;
      Batch batch{x, y, o.shuffle ? perm_ : nullptr, r0, gather, o.noise, o.noise_level,
                  static_cast<std::uint32_t>(noise_steps), true};
      if (o.noise != Noise::None) ++noise_steps;
      const double loss = step(batch, m);
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
  static constexpr std::int64_t kForwardChunk = 256;
  // Rows whose nonzeros first_layer_forward counts to choose between listing
  // a share of the batch at once and counting all of it first.
  static constexpr std::int64_t kProbeRows = 4;
  // Target rows expanded at a time for a batch read in place: whole folds of
  // the output epilogue's float sums (OutputDelta's 8 rows), so the column
  // sums are the same as for a copied batch; as many folds as the block-sum
  // scratch holds, up to three (W-mnist's epochs: 1.0–1.1% faster than one
  // fold a call on the Zen 5 host, docs/performance.md, 2026-12-06).
  static constexpr std::int64_t kTargetFoldRows = 8, kTargetFolds = 3;
  std::int64_t target_rows() const {
    const std::int64_t folds = kNzBlock * kSlabElems / (kTargetFoldRows * n_[L_]);
    return (folds < kTargetFolds ? folds : kTargetFolds) * kTargetFoldRows;
  }
  int threads_used_ = 1;  // threads of the last dispatch
  // At least one fold of targets fits the block-sum scratch they are expanded into.
  bool targets_fit() const { return target_rows() > 0; }
  const T* kept_x_ = nullptr;   // inputs of the last forward_keep, for backward_from
  std::int64_t kept_rows_ = 0;

  T* P() { return static_cast<T*>(params_); }
  T* G() { return static_cast<T*>(grads_); }
  T* W(int l) { return P() + w_off_[l]; }
  T* Bias(int l) { return P() + b_off_[l]; }
  T* A(int l) { return static_cast<T*>(act_[l]); }

  // dst (m × n_l) = a_prev (m × n_{l-1}) · W_l
  void gemm_rows(const T* a_prev, int l, T* dst, std::int64_t m, int tid) {
    const int k = static_cast<int>(n_[l - 1]), n = static_cast<int>(n_[l]);
    gemm(false, false, static_cast<int>(m), n, k, T(1), a_prev, k, W(l), n, T(0), dst, n, tid);
  }

  // C = alpha·op(A)·op(B) + beta·C: the own kernel where it has one for
  // these (float32 on AVX-512, shapes that repay it: cpu/gemm.inl), else
  // OpenBLAS.
  void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda,
            const T* b, int ldb, T beta, T* c, int ldc, int tid) {
    if constexpr (kOwnGemm && std::is_same<T, float>::value) {
      if (own_gemm_fits(m, n, k)) {
        own_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, gemm_pack(tid));
        return;
      }
    }
    blas::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

  bool sparse_active() const { return cfg_.sparsity_layer > 0 && cfg_.sparsity_weight > 0; }

  // ---- the parallel step ---------------------------------------------------
  // Every thread of the pool runs step_part() on its share: batch rows for the
  // forward pass, the output delta and the hidden deltas (each thread's GEMM is
  // followed by the epilogue on the rows it just wrote, while they are in
  // cache), rows of each dW (a GEMM over the whole batch), and a range of the
  // parameters for the optimizer. Column sums (db, ρ̂) and the loss are summed
  // per thread and reduced by thread 0. OpenBLAS itself runs single-threaded.

  // Where a step's rows come from: a caller's (X, Y) as they are, or rows
  // `index[first..first+B)` (or consecutive from `first`) copied into the
  // batch buffers and, for a denoising step, corrupted on the way.
  struct Batch {
    const T* x;
    const T* y;                   // null: the targets are the (clean) inputs
    const std::int64_t* index;    // null: consecutive rows
    std::int64_t first;
    bool gather;
    Noise noise;
    double noise_level;
    std::uint32_t noise_stream;
    // An epoch's batch, read once: its rows are out of cache by the output
    // epilogue, which then takes in-place targets from the row lists.
    bool read_once;
    static Batch of(const T* x, const T* y) {
      return Batch{x, y, nullptr, 0, false, Noise::None, 0.0, 0, false};
    }
  };

  // What a step job runs: the whole fused step, or its two halves for
  // composite models (core/composite.cpp), whose other parts sit between them.
  enum class Phase { Full, ForwardOnly, BackwardOnly };

  struct StepJob {
    NetworkImpl* net;
    Batch batch;
    std::int64_t B;
    bool update;            // false: loss and gradient only
    bool fused_sgd = false;  // an SGD update folded into the products; grads() untouched
    Phase phase = Phase::Full;
    T* dx = nullptr;        // if set: dJ/dX (B × n_0), from W_1 before any update
    bool weight_grads = true;   // false: only δs (and dx), no dW/db (a frozen network)
    const T* d_out = nullptr;   // BackwardOnly: dJ/dA_L, B × n_L
    std::int64_t t = 0;     // Adam's step number for this update
    double loss = 0.0;      // data + sparsity (set by thread 0)
    double sumsq = 0.0;     // Σ‖W‖² before the update (for the decay term)
    static void task(void* ctx, int tid, int nt) {
      auto* j = static_cast<StepJob*>(ctx);
      j->net->step_part(*j, tid, nt);
    }
  };

  struct ForwardJob {
    NetworkImpl* net;
    const T* x;
    T* out;
    std::int64_t r0, rows;
    int start, stop;
    static void task(void* ctx, int tid, int nt) {
      auto* j = static_cast<ForwardJob*>(ctx);
      j->net->forward_part(*j, tid, nt);
    }
  };


  static void sync(int nt) {
    if (nt > 1) ThreadPool::instance().barrier();
  }

  // Runs a job on the whole pool, or on the caller alone when the work is too
  // small to repay the barriers (W-tiny-sized steps); float32 with subnormals
  // flushed (core/float_mode.hpp).
  template <class Job>
  void dispatch(std::int64_t rows, void (*task)(void*, int, int), Job* job) {
    const FlushSubnormals mode(std::is_same<T, float>::value);
    ThreadPool& pool = ThreadPool::instance();
    blas::keep_single_threaded();
    const bool parallel = pool.size() > 1 && forward_flops(rows) >= kParallelFlops;
    reserve_threads(parallel ? pool.size() : 1);
    threads_used_ = parallel ? pool.size() : 1;
    if (parallel) pool.run(task, job);
    else task(job, 0, 1);
  }

  void forward_part(const ForwardJob& j, int tid, int nt) {
    std::int64_t a, b;
    split_rows(j.rows, tid, nt, &a, &b);
    const std::int64_t m = b - a;
    if (m <= 0) return;
    const std::int64_t r = j.r0 + a;
    const T* a_prev = j.x + r * n_[j.start];
    for (int l = j.start + 1; l <= j.stop; ++l) {
      T* dst = l == j.stop ? j.out + r * n_[l] : A(l) + a * n_[l];
      gemm_rows(a_prev, l, dst, m, tid);
      if (cfg_.activations[l - 1] == Activation::Softmax)
        bias_softmax(dst, m, n_[l], Bias(l));
      else
        with_activation<BiasActivation<T>>(cfg_.activations[l - 1], dst, m, n_[l], Bias(l),
                                           nullptr);
      a_prev = dst;
    }
  }

  void step_part(StepJob& j, int tid, int nt) {
    const int sl = sparse_active() ? cfg_.sparsity_layer : 0;
    const std::int64_t B = j.B;
    std::int64_t r0, r1;
    split_rows(B, tid, nt, &r0, &r1);
    const std::int64_t m = r1 - r0;
    const T* x;  // the whole batch's inputs and targets, once this thread's rows are in
    const T* y;
    if (j.phase == Phase::BackwardOnly) {
      x = kept_x_;
      // δ_L = dJ/dA_L ⊙ f'(A_L) on the output activations the forward half kept.
      T* out = static_cast<T*>(out_) + r0 * n_[L_];
      double* cs = part_colsum(0, tid);
      zero(cs, n_[L_]);
      with_activation<ScaleByDerivative<T>>(cfg_.activations[L_ - 1], out, m, n_[L_],
                                            j.d_out + r0 * n_[L_], cs);
      sync(nt);
      if (tid == 0 && j.weight_grads) reduce_bias_grad(L_, 0, nt);
      backward_part(j, tid, nt, x, r0, r1, 0);
      return;
    }
    // Set when this thread's rows are read in place, through the batch's
    // permutation (row i of the batch is row rows_at[i] of x).
    const std::int64_t* rows_at = nullptr;
    stage_rows(j.batch, r0, r1, tid, &x, &y, &rows_at);

    // Forward: every layer on this thread's rows; no thread waits for another.
    const T* a_prev = x + r0 * n_[0];
    double loss_sum = 0.0;
    bool rows_listed = false;  // this thread's input rows are in the row lists
    for (int l = 1; l <= L_; ++l) {
      T* dst = (l < L_ ? A(l) : static_cast<T*>(out_)) + r0 * n_[l];
      if (l == 1) rows_listed = first_layer_forward(x, rows_at, r0, r1, dst, tid);
      else if (m > 0) gemm_rows(a_prev, l, dst, m, tid);
      if (l < L_ || j.phase == Phase::ForwardOnly) {
        double* rs = nullptr;
        if (l == sl) {
          rs = part_rho(tid);
          zero(rs, n_[l]);
        }
        if (cfg_.activations[l - 1] == Activation::Softmax)
          bias_softmax(dst, m, n_[l], Bias(l));
        else
          with_activation<BiasActivation<T>>(cfg_.activations[l - 1], dst, m, n_[l], Bias(l),
                                             rs);
      } else {
        double* cs = part_colsum(0, tid);  // set 1 is scratch for the loss columns
        zero(cs, n_[l]);
        const T inv_b = T(1) / static_cast<T>(B);
        auto output_delta = [&](T* z, std::int64_t rows, const T* yr) -> double {
          switch (cfg_.loss) {
            case Loss::BinaryCrossEntropy:
              return with_activation<OutputDelta<T, Loss::BinaryCrossEntropy>>(
                  cfg_.activations[l - 1], z, rows, n_[l], Bias(l), yr, inv_b, cs,
                  part_colsum(1, tid));
            case Loss::CategoricalCrossEntropy:
              return softmax_cross_entropy_delta(z, rows, n_[l], Bias(l), yr, inv_b, cs);
            case Loss::SquaredError:
              return with_activation<OutputDelta<T, Loss::SquaredError>>(
                  cfg_.activations[l - 1], z, rows, n_[l], Bias(l), yr, inv_b, cs,
                  part_colsum(1, tid));
          }
          return 0.0;
        };
        // Targets that are the listed inputs (a batch read in place through
        // a permutation, or an in-order epoch's rows) are expanded from the
        // lists target_rows() at a time into the block-sum scratch (free once
        // the first layer's product is done), whole folds of the epilogue. An
        // epoch's rows have left L2 by now: read in place, the in-order
        // epoch's output epilogue took 12.6% of it against 5.3% shuffled
        // (`perf`, W-mnist, 1 thread). A train_step's X may still be in
        // cache (a benchmark's repeated batch is), and is read in place.
        const bool targets_listed =
            rows_at ||
            (rows_listed && j.batch.read_once && y == x && n_[l] == n_[0] && targets_fit());
        if (!targets_listed) {
          loss_sum = output_delta(dst, m, y + r0 * n_[l]);
        } else {
          T* scratch = block_sums(tid);
          const std::int64_t per_call = target_rows();
          for (std::int64_t g = r0; g < r1; g += per_call) {
            const std::int64_t g1 = r1 - g < per_call ? r1 : g + per_call;
            expand_listed_rows(static_cast<const T*>(nz_row_val_), nz_row_col_, nz_row_end_, g,
                               g1, n_[0], scratch);
            loss_sum += output_delta(dst + (g - r0) * n_[l], g1 - g, scratch);
          }
        }
      }
      a_prev = dst;
    }
    if (j.phase == Phase::ForwardOnly) return;
    part_scalar(tid)[0] = loss_sum;
    sync(nt);
    if (tid == 0) {
      double loss = 0.0;
      for (int t = 0; t < nt; ++t) loss += part_scalar(t)[0];
      loss /= static_cast<double>(B);
      if (j.weight_grads && !j.fused_sgd) reduce_bias_grad(L_, 0, nt);
      if (sl) {
        for (std::int64_t c = 0; c < n_[sl]; ++c) {
          double s = 0.0;
          for (int t = 0; t < nt; ++t) s += part_rho(t)[c];
          rho_sum_[c] = s;
        }
        loss += sparsity_term(sl, B);
      }
      j.loss = loss;
    }
    sync(nt);
    if (!std::isfinite(j.loss)) return;  // nothing more is written: no update follows
    // A batch read in place whose dW_1 is a dense GEMM after all (some
    // thread's share was not mostly zeros) is copied now: that GEMM reads X
    // whole. The condition reads what every thread wrote before the barrier.
    if (j.weight_grads && any_rows_in_place(nt) && !sparse_batch(B, nt)) {
      if (rows_at) copy_rows(j.batch, r0, r1, static_cast<T*>(batch_x_));
      sync(nt);
      x = static_cast<const T*>(batch_x_);
    }
    backward_part(j, tid, nt, x, r0, r1, sl);
  }

  // Backward from δ_L (in out_, db_L's partial sums in column-sum set 0) to
  // dW_1 (and dX when asked), with the optimizer step, if any, layer by layer.
  //
  // A step updates each thread's rows of W_l right after they are computed,
  // while that thread's rows of dW_l are in cache, and each bias where its
  // column sums are reduced: no pass over the whole parameter vector at the
  // end, and no barrier before it. A plain SGD step (j.fused_sgd) goes further
  // and folds the update into the product: each thread's rows of W_l become
  // (1 - lr·λ)·W_l - lr·A_{l-1}ᵀ·δ_l in one GEMM (beta and alpha), so no
  // gradient is written at all (its buffer's pages stay unbacked). Either
  // way W_l is updated only once every thread has read it for its δ_{l-1}.
  void backward_part(StepJob& j, int tid, int nt, const T* x, std::int64_t r0, std::int64_t r1,
                     int sl) {
    const std::int64_t B = j.B, m = r1 - r0;
    const bool update = j.update;  // implies weight_grads
    double sumsq = 0.0;
    if (update && tid == 0) update_bias(j, L_, 0, nt);  // the loss is finite
    T* delta = static_cast<T*>(out_);
    int parity = 1;
    for (int l = L_; l >= 1; --l) {
      // Gradients only (no step): dW_l at once, as δ_l is complete.
      if (j.weight_grads && !update) {
        std::int64_t i0, i1;
        const bool nonzero = weight_rows(l, tid, nt, B, &i0, &i1);
        weight_product(l, tid, nt, i0, i1, nonzero, l == 1 ? x : A(l - 1), delta, B,
                       G() + w_off_[l], false, T(1), T(0));
      }
      if (l == 1) {
        // dX = δ_1·W_1ᵀ, this thread's rows, from W_1 as it was in the forward pass
        // (the update waits for every thread below).
        const int k = static_cast<int>(n_[0]), n = static_cast<int>(n_[1]);
        if (j.dx && m > 0)
          gemm(false, true, static_cast<int>(m), k, n, T(1), delta + r0 * n, n, W(1), n, T(0),
               j.dx + r0 * k, k, tid);
        if (update) {
          if (j.dx) sync(nt);
          sumsq += update_weights(j, 1, tid, nt, x, delta);
        }
        break;
      }
      const int k = static_cast<int>(n_[l - 1]), n = static_cast<int>(n_[l]);
      T* g = delta == static_cast<T*>(ping_) ? static_cast<T*>(pong_) : static_cast<T*>(ping_);
      // g held δ_{l+2}, which a slower thread's update of W_{l+2} may still read.
      if (update && l <= L_ - 2) sync(nt);
      if (m > 0)
        gemm(false, true, static_cast<int>(m), k, n, T(1), delta + r0 * n, n, W(l), n, T(0),
             g + r0 * k, k, tid);
      double* cs = part_colsum(parity, tid);
      zero(cs, k);
      const T* s = (l - 1 == sl) ? static_cast<const T*>(sparse_term_) : nullptr;
      with_activation<HiddenDelta<T>>(cfg_.activations[l - 2], g + r0 * k, m, n_[l - 1],
                                      A(l - 1) + r0 * k, s, cs);
      sync(nt);
      // Every thread has read W_l: its rows can be updated.
      if (update) sumsq += update_weights(j, l, tid, nt, A(l - 1), delta);
      // Thread 0 reduces this layer's db while the others start on dW_{l-1};
      // the next layer writes the other set of partial sums.
      if (tid == 0 && j.weight_grads) {
        if (update) update_bias(j, l - 1, parity, nt);
        else reduce_bias_grad(l - 1, parity, nt);
      }
      parity ^= 1;
      delta = g;
    }
    if (update) part_scalar(tid)[1] = sumsq;
  }

  // The step on this thread's rows of W_l; returns Σw² of those rows before
  // the update (their share of the decay term).
  double update_weights(const StepJob& j, int l, int tid, int nt, const T* a_in, const T* delta) {
    const double lam = cfg_.weight_decay;
    std::int64_t i0, i1;
    const bool nonzero = weight_rows(l, tid, nt, j.B, &i0, &i1);
    const std::int64_t a = w_off_[l] + i0 * n_[l], count = (i1 - i0) * n_[l];
    if (!j.fused_sgd) {
      weight_product(l, tid, nt, i0, i1, nonzero, a_in, delta, j.B, G() + w_off_[l], false, T(1),
                     T(0));
      return optimizer_sweep<T>(opt_, j.t, P() + a, G() + a, static_cast<T*>(state0_) + a,
                                static_cast<T*>(state1_) + a, count, lam);
    }
    double sumsq = 0.0;
    if (lam > 0) {
      const T* w = P() + a;
      for (std::int64_t i = 0; i < count; ++i) sumsq += static_cast<double>(w[i]) * w[i];
    }
    const T lr = static_cast<T>(opt_.learning_rate);
    weight_product(l, tid, nt, i0, i1, nonzero, a_in, delta, j.B, W(l), true, -lr,
                   T(1) - lr * static_cast<T>(lam));
    return sumsq;
  }

  // The step of b_l from its column sums (parity: which set): SGD directly
  // (b ← b - lr·db); otherwise db is reduced into the gradient, if that was
  // not done already (b_L's, before the loss was known), and swept.
  void update_bias(const StepJob& j, int l, int parity, int nt) {
    if (j.fused_sgd) {
      apply_bias_grad(l, parity, nt, static_cast<T>(opt_.learning_rate));
      return;
    }
    if (l < L_) reduce_bias_grad(l, parity, nt);
    const std::int64_t a = b_off_[l];
    optimizer_sweep<T>(opt_, j.t, P() + a, G() + a, static_cast<T*>(state0_) + a,
                       static_cast<T*>(state1_) + a, n_[l], 0.0);
  }

  // The rows of dW_l this thread computes: a share of the n_{l-1}, or whole
  // tiles of X's columns on the nonzero path (list_column_nonzeros), which
  // it returns true for.
  bool weight_rows(int l, int tid, int nt, std::int64_t B, std::int64_t* i0, std::int64_t* i1) {
    if (l == 1 && sparse_batch(B, nt)) {
      std::int64_t t0, t1;
      split_rows(nz_tiles(n_[0]), tid, nt, &t0, &t1);
      *i0 = t0 * kNzTile;
      *i1 = t1 * kNzTile < n_[0] ? t1 * kNzTile : n_[0];
      return true;
    }
    split_rows(n_[l - 1], tid, nt, i0, i1);
    return false;
  }

  // Rows [i0, i1) of dst (n_{l-1} × n_l) = A_{l-1}ᵀ·δ_l over the whole batch,
  // or with `update` beta·dst + alpha·A_{l-1}ᵀ·δ_l; the rows and the path as
  // weight_rows gave them (nonzero: through X's lists).
  void weight_product(int l, int tid, int nt, std::int64_t i0, std::int64_t i1, bool nonzero,
                      const T* a_in, const T* delta, std::int64_t B, T* dst, bool update,
                      T alpha, T beta) {
    const int k = static_cast<int>(n_[l - 1]), n = static_cast<int>(n_[l]);
    if (nonzero) {
      list_column_nonzeros(static_cast<const T*>(nz_row_val_), nz_row_col_, nz_row_end_, B,
                           n_[0], i0, i1, rows_capacity_, col_counts(0),
                           slab_stride_ * static_cast<std::int64_t>(sizeof(T)) / 4, nt,
                           static_cast<T*>(nz_col_val_), nz_col_row_, nz_col_end_);
      sparse_times_dense(static_cast<const T*>(nz_col_val_), nz_col_row_, nz_col_end_,
                         nz_bounds(rows_capacity_), i0, i1, delta, B, n,
                         dst + i0 * n, n, slab(tid), block_sums(tid), update, alpha, beta);
    } else if (i1 > i0) {
      gemm(true, false, static_cast<int>(i1 - i0), n, static_cast<int>(B), alpha, a_in + i0, k,
           delta, n, update ? beta : T(0), dst + i0 * n, n, tid);
    }
  }

  T* slab(int tid) { return static_cast<T*>(slab_) + tid * slab_stride_; }
  // The nonzero product's block sums: after the slab in the thread's region.
  T* block_sums(int tid) { return slab(tid) + slab_rows_ * kSlabElems; }
  // The thread's count of its rows' nonzeros per column of X (n0 int32s),
  // after the block sums; thread t's at col_counts(0) + t·slab_stride_·sizeof(T)/4.
  std::int32_t* col_counts(int tid) {
    return reinterpret_cast<std::int32_t*>(block_sums(tid) + kNzBlock * kSlabElems);
  }

  // Z_1 rows [r0, r1) = X·W_1: through X's nonzeros when this thread's rows
  // are mostly zeros, else a GEMM. Records the count and the choice (part
  // scalars 2 and 3) for the dW_1 decision after the barrier. Rows read in
  // place (rows_at) were listed, and found mostly zeros, by stage_rows.
  // True when the rows are in the row lists (either way).
  bool first_layer_forward(const T* x, const std::int64_t* rows_at, std::int64_t r0,
                           std::int64_t r1, T* dst, int tid) {
    const std::int64_t m = r1 - r0, n0 = n_[0];
    if (!rows_at) {
      // The lists exist only where the path can pay (core/network.hpp).
      const bool possible = m > 0 && nz_row_val_ != nullptr;
      // Rows whose first few are mostly zeros are listed at once, which
      // counts them too (a share that is not mostly zeros after all is then a
      // GEMM, as below); otherwise they are counted first. Either way the
      // choice is the count's over all the rows. Listing at once saves a
      // pass over rows that an epoch reads from memory.
      auto list_share = [&] {
        return list_row_nonzeros(x, nullptr, r0, r1, n0, nz_stride(n0),
                                 static_cast<T*>(nz_row_val_), nz_row_col_, nz_row_end_,
                                 col_counts(tid));
      };
      std::int64_t nnz = m * n0;
      bool listed = false;
      if (possible) {
        const std::int64_t probe = m < kProbeRows ? m : kProbeRows;
        listed = static_cast<double>(count_nonzeros(x + r0 * n0, probe * n0)) <=
                 kSparseDensity * static_cast<double>(probe * n0);
        nnz = listed ? list_share() : count_nonzeros(x + r0 * n0, m * n0);
      }
      const bool sparse =
          possible && static_cast<double>(nnz) <= kSparseDensity * static_cast<double>(m * n0);
      part_scalar(tid)[2] = static_cast<double>(nnz);
      part_scalar(tid)[3] = sparse || m == 0 ? 1.0 : 0.0;
      if (m == 0) {
        // No rows: none of the columns' entries (the column listing sums every thread's).
        if (nz_row_val_)
          for (std::int64_t k = 0; k < n0; ++k) col_counts(tid)[k] = 0;
        return false;
      }
      if (!sparse) {
        gemm_rows(x + r0 * n0, 1, dst, m, tid);
        return false;
      }
      if (!listed) list_share();
    }
    sparse_times_dense(static_cast<const T*>(nz_row_val_), nz_row_col_, nz_row_end_,
                       nz_bounds(n0), r0, r1,
                       W(1), n0, n_[1], dst, n_[1], slab(tid), block_sums(tid));
    return true;
  }

  // dW_1 through X's nonzeros: every thread listed its rows' nonzeros and the
  // whole batch is mostly zeros.
  bool sparse_batch(std::int64_t B, int nt) {
    double nnz = 0.0;
    for (int t = 0; t < nt; ++t) {
      if (part_scalar(t)[3] == 0.0) return false;
      nnz += part_scalar(t)[2];
    }
    return nnz <= kSparseDensity * static_cast<double>(B * n_[0]);
  }

  // Copies (and corrupts) this thread's rows [r0, r1) of a gathered batch;
  // sets the base pointers of the whole batch's inputs and targets. Part
  // scalar 4 records whether the rows were read in place instead.
  //
  // An autoencoder's shuffled batch without noise whose rows are mostly
  // zeros is not copied: its nonzeros are listed straight from the caller's
  // rows (*rows_at set), and the loss expands its targets from those lists.
  // That saves writing a batch of inputs every step and reading it back, and
  // the copy's pages (W-mnist: 0.77 MiB, a fifth of the bound's workspace).
  void stage_rows(const Batch& b, std::int64_t r0, std::int64_t r1, int tid, const T** x,
                  const T** y, const std::int64_t** rows_at) {
    const std::int64_t nin = n_[0], nout = n_[L_];
    part_scalar(tid)[4] = 0.0;
    if (!b.gather) {
      *x = b.x + b.first * nin;
      *y = (b.y ? b.y : b.x) + b.first * nout;
      return;
    }
    if (b.index && b.noise == Noise::None && !b.y && nz_row_val_ && r1 > r0 && targets_fit()) {
      // Listed at once, which counts them too: the lists have room for a
      // dense batch, and a share that is not mostly zeros is copied below.
      const std::int64_t* at = b.index + b.first;
      const std::int64_t nnz =
          list_row_nonzeros(b.x, at, r0, r1, nin, nz_stride(nin), static_cast<T*>(nz_row_val_),
                            nz_row_col_, nz_row_end_, col_counts(tid));
      if (static_cast<double>(nnz) <= kSparseDensity * static_cast<double>((r1 - r0) * nin)) {
        part_scalar(tid)[2] = static_cast<double>(nnz);
        part_scalar(tid)[3] = 1.0;
        part_scalar(tid)[4] = 1.0;
        *x = *y = b.x;
        *rows_at = at;
        return;
      }
    }
    T* bx = static_cast<T*>(batch_x_);
    T* by = static_cast<T*>(batch_y_);
    // An autoencoder with noise: clean rows are the targets (by), the corrupted
    // copy the inputs (bx). Otherwise inputs go to bx and given targets to by;
    // an autoencoder without noise uses bx for both.
    const bool noisy = b.noise != Noise::None;
    T* clean_x = noisy && !b.y ? by : bx;
    copy_rows(b, r0, r1, clean_x);
    for (std::int64_t i = r0; i < r1 && b.y; ++i) {
      const std::int64_t src = b.index ? b.index[b.first + i] : b.first + i;
      std::memcpy(by + i * nout, b.y + src * nout, sizeof(T) * nout);
    }
    if (noisy)
      corrupt(clean_x, bx, r0 * nin, r1 * nin, b.noise, b.noise_level, seed, b.noise_stream);
    *x = bx;
    *y = (b.y || noisy) ? by : bx;
  }

  // Rows [r0, r1) of a gathered batch's inputs, uncorrupted, into dst; a
  // shuffled batch's rows fetched kRowsAhead rows before they are copied.
  void copy_rows(const Batch& b, std::int64_t r0, std::int64_t r1, T* dst) {
    const std::int64_t nin = n_[0];
    for (std::int64_t i = r0; i < r1; ++i) {
      if (b.index && i + kRowsAhead < r1)
        prefetch_row(b.x + b.index[b.first + i + kRowsAhead] * nin, nin);
      const std::int64_t src = b.index ? b.index[b.first + i] : b.first + i;
      std::memcpy(dst + i * nin, b.x + src * nin, sizeof(T) * nin);
    }
  }

  bool any_rows_in_place(int nt) {
    for (int t = 0; t < nt; ++t)
      if (part_scalar(t)[4] != 0.0) return true;
    return false;
  }

  static void zero(double* p, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) p[i] = 0.0;
  }

  // db_l's column c: the threads' partial sums (set `parity`) added up.
  T bias_grad(int parity, int nt, std::int64_t c) {
    double s = 0.0;
    for (int t = 0; t < nt; ++t) s += part_colsum(parity, t)[c];
    return static_cast<T>(s);
  }

  void reduce_bias_grad(int l, int parity, int nt) {
    T* db = G() + b_off_[l];
    for (std::int64_t c = 0; c < n_[l]; ++c) db[c] = bias_grad(parity, nt, c);
  }

  // The fused SGD step of b_l from the same sums: b ← b - lr·db.
  void apply_bias_grad(int l, int parity, int nt, T lr) {
    T* b = Bias(l);
    for (std::int64_t c = 0; c < n_[l]; ++c) b[c] -= lr * bias_grad(parity, nt, c);
  }

  // β·Σ KL(ρ‖ρ̂_n) and the per-unit term s_n of the backward epilogue, with ρ̂
  // clamped to [ε, 1-ε] (docs/math.md).
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

  double step(const Batch& batch, std::int64_t B) {
    StepJob job{this, batch, B, true};
    job.t = optimizer_steps + 1;
    job.fused_sgd = opt_.kind == Optimizer::SGD;
    dispatch(B, &StepJob::task, &job);
    if (!std::isfinite(job.loss)) return job.loss;  // parameters and state untouched
    optimizer_steps = job.t;
    const int nt = threads_used_;
    double sumsq = 0.0;
    for (int t = 0; t < nt; ++t) sumsq += part_scalar(t)[1];
    return job.loss + 0.5 * cfg_.weight_decay * sumsq;
  }

  void shuffle(std::int64_t rows) {
    reserve_permutation(rows);
    philox::permutation(seed, static_cast<std::uint32_t>(epochs), rows, perm_);
  }
};
