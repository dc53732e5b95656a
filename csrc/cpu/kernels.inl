// The fused elementwise kernels of a training step, templated on the float
// type and the activation so each loop is straight-line code the compiler
// vectorises. Included inside a per-instruction-set namespace.
//
// Conventions: matrices are row-major, `rows` × `n`; column sums are
// accumulated in double (they become db and ρ̂, and B can be large).

template <class T> struct Math;

template <> struct Math<float> {
  static float exp(float x) { return exp_f32(x); }
  // Through double: 1 - 2/(e^{2z}+1) cancels for small z, and float64 has the
  // digits to spare; the float64 exp vectorises like the float32 one.
  static float tanh(float z) {
    const double e = exp_f64(2.0 * static_cast<double>(z));
    return static_cast<float>(1.0 - 2.0 / (e + 1.0));
  }
  static float log1p_unit(float u) { return log1p_unit_f32(u); }
};

template <> struct Math<double> {
  static double exp(double x) { return exp_f64(x); }
  static double tanh(double z) { return std::tanh(z); }
  static double log1p_unit(double u) { return std::log1p(u); }
};

template <class T> static inline T max0(T v) { return v > T(0) ? v : T(0); }
template <class T> static inline T absval(T v) { return v < T(0) ? -v : v; }

template <class T, Activation A> static inline T act(T z) {
  if constexpr (A == Activation::Sigmoid) return T(1) / (T(1) + Math<T>::exp(-z));
  if constexpr (A == Activation::Tanh) return Math<T>::tanh(z);
  if constexpr (A == Activation::Relu) return max0(z);
  if constexpr (A == Activation::LeakyRelu) return z > T(0) ? z : T(kLeakyReluSlope) * z;
  if constexpr (A == Activation::Identity) return z;
}

// f'(z) written in terms of the output a = f(z): only A is kept.
template <class T, Activation A> static inline T dact(T a) {
  if constexpr (A == Activation::Sigmoid) return a * (T(1) - a);
  if constexpr (A == Activation::Tanh) return T(1) - a * a;
  if constexpr (A == Activation::Relu) return a > T(0) ? T(1) : T(0);
  if constexpr (A == Activation::LeakyRelu) return a > T(0) ? T(1) : T(kLeakyReluSlope);
  if constexpr (A == Activation::Identity) return T(1);
}

// Calls F::template run<A>(args...) for the activation chosen at run time.
template <class F, class... Args>
static inline auto with_activation(Activation a, Args&&... args) {
  switch (a) {
    case Activation::Sigmoid: return F::template run<Activation::Sigmoid>(args...);
    case Activation::Tanh: return F::template run<Activation::Tanh>(args...);
    case Activation::Relu: return F::template run<Activation::Relu>(args...);
    case Activation::LeakyRelu: return F::template run<Activation::LeakyRelu>(args...);
    case Activation::Identity: break;
  }
  return F::template run<Activation::Identity>(args...);
}

// Forward epilogue of a hidden (or inference) layer: C = f(C + b), and, for
// the sparse layer, ρ̂ column sums while the row is still in L1.
template <class T> struct BiasActivation {
  template <Activation A>
  static void run(T* c, std::int64_t rows, std::int64_t n, const T* b, double* rho_sum) {
    for (std::int64_t r = 0; r < rows; ++r) {
      T* row = c + r * n;
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) row[j] = act<T, A>(row[j] + b[j]);
      if (rho_sum) {
#pragma omp simd
        for (std::int64_t j = 0; j < n; ++j) rho_sum[j] += static_cast<double>(row[j]);
      }
    }
  }
};

// Forward epilogue of the output layer fused with the loss and its delta:
// C (= A_{L-1}·W_L) becomes δ_L = ∂J/∂Z_L (inv_b = 1/B of the whole batch),
// the loss summed over these rows is returned, and db_L's column sums are
// accumulated. Nothing of the output activations is
// kept: a training step never needs them.
template <class T, Loss Lo> struct OutputDelta {
  template <Activation A>
  static double run(T* c, std::int64_t rows, std::int64_t n, const T* b, const T* y, T inv_b,
                    double* colsum) {
    double loss = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
      T* row = c + r * n;
      const T* yr = y + r * n;
      double acc = 0.0;
#pragma omp simd reduction(+ : acc)
      for (std::int64_t j = 0; j < n; ++j) {
        const T z = row[j] + b[j];
        T d, l;
        if constexpr (Lo == Loss::BinaryCrossEntropy) {
          // From the logit: e = e^{-|z|} gives both σ(z) and the softplus tail,
          // so saturated outputs neither overflow nor take log(0).
          const T e = Math<T>::exp(-absval(z));
          const T inv = T(1) / (T(1) + e);
          const T a = z >= T(0) ? inv : e * inv;
          l = max0(z) - z * yr[j] + Math<T>::log1p_unit(e);
          d = a - yr[j];
        } else {
          const T a = act<T, A>(z);
          const T diff = a - yr[j];
          l = T(0.5) * diff * diff;
          d = diff * dact<T, A>(a);
        }
        acc += static_cast<double>(l);
        row[j] = d * inv_b;
      }
      loss += acc;
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) colsum[j] += static_cast<double>(row[j]);
    }
    return loss;  // summed over these rows; the caller divides by the batch size
  }
};

// Backward epilogue of a hidden layer: G (= δ_{l+1}·W_{l+1}ᵀ) becomes
// δ_l = (G + s) ⊙ f'(A_l), where s is the sparsity term of eq. 28 (corrected;
// null for layers without it), and db_l's column sums are accumulated.
template <class T> struct HiddenDelta {
  template <Activation A>
  static void run(T* g, std::int64_t rows, std::int64_t n, const T* a, const T* s,
                  double* colsum) {
    for (std::int64_t r = 0; r < rows; ++r) {
      T* gr = g + r * n;
      const T* ar = a + r * n;
      if (s) {
#pragma omp simd
        for (std::int64_t j = 0; j < n; ++j) gr[j] = (gr[j] + s[j]) * dact<T, A>(ar[j]);
      } else {
#pragma omp simd
        for (std::int64_t j = 0; j < n; ++j) gr[j] = gr[j] * dact<T, A>(ar[j]);
      }
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) colsum[j] += static_cast<double>(gr[j]);
    }
  }
};

// One optimizer sweep over a parameter segment. `decay` is λ for weights and 0
// for biases; the L2 gradient λ·p is added here instead of in a pass of its
// own, and Σp² (for the loss's (λ/2)Σ‖W‖²) is read off the same sweep.
template <class T>
static double optimizer_sweep(const OptimizerConfig& o, std::int64_t t, T* p, const T* g, T* s0,
                              T* s1, std::int64_t n, double decay) {
  const T lam = static_cast<T>(decay);
  const T lr = static_cast<T>(o.learning_rate);
  double sumsq = 0.0;
  if (decay > 0) {
#pragma omp simd reduction(+ : sumsq)
    for (std::int64_t i = 0; i < n; ++i) sumsq += static_cast<double>(p[i]) * p[i];
  }
  switch (o.kind) {
    case Optimizer::SGD:
#pragma omp simd
      for (std::int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + lam * p[i]);
      break;
    case Optimizer::Momentum: {
      const T mu = static_cast<T>(o.momentum);
#pragma omp simd
      for (std::int64_t i = 0; i < n; ++i) {
        const T v = mu * s0[i] + (g[i] + lam * p[i]);
        s0[i] = v;
        p[i] -= lr * v;
      }
      break;
    }
    case Optimizer::Adam: {
      // PyTorch's form: p -= lr·(m/(1-β1ᵗ)) / (sqrt(v/(1-β2ᵗ)) + eps).
      const T b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2);
      const T step = static_cast<T>(o.learning_rate / (1.0 - std::pow(o.beta1, double(t))));
      const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(1.0 - std::pow(o.beta2, double(t))));
      const T eps = static_cast<T>(o.eps);
#pragma omp simd
      for (std::int64_t i = 0; i < n; ++i) {
        const T gi = g[i] + lam * p[i];
        const T m = b1 * s0[i] + (T(1) - b1) * gi;
        const T v = b2 * s1[i] + (T(1) - b2) * gi * gi;
        s0[i] = m;
        s1[i] = v;
        p[i] -= step * m / (std::sqrt(v) * inv_sqrt_bc2 + eps);
      }
      break;
    }
  }
  return sumsq;
}

// Denoising corruption of a flat batch, x̃ = noise(x), drawn from
// Philox(seed, kNoise, stream = step): element e uses word e%4 of block e/4
// (Gaussian: words (0,1) and (2,3) are Box-Muller pairs). Salt is 1 and
// pepper 0: inputs are expected in [0, 1].
template <class T>
static void corrupt(const T* clean, T* noisy, std::int64_t count, Noise kind, double level,
                    std::uint64_t seed, std::uint32_t stream) {
  const std::int64_t blocks = (count + 3) / 4;
  for (std::int64_t k = 0; k < blocks; ++k) {
    const philox::U4 w = philox::block(seed, philox::kNoise, stream, static_cast<std::uint64_t>(k));
    double v[4];
    if (kind == Noise::Gaussian) {
      for (int h = 0; h < 2; ++h) {
        const double radius = std::sqrt(-2.0 * std::log(philox::uniform24_open0(w.v[2 * h])));
        const double theta = 6.283185307179586477 * philox::uniform24(w.v[2 * h + 1]);
        v[2 * h] = radius * std::cos(theta);
        v[2 * h + 1] = radius * std::sin(theta);
      }
    } else {
      for (int h = 0; h < 4; ++h) v[h] = philox::uniform24(w.v[h]);
    }
    const std::int64_t e0 = 4 * k;
    const int lanes = static_cast<int>(count - e0 < 4 ? count - e0 : 4);
    for (int h = 0; h < lanes; ++h) {
      const T x = clean[e0 + h];
      T out = x;
      switch (kind) {
        case Noise::Gaussian: out = x + static_cast<T>(level * v[h]); break;
        case Noise::Masking: out = v[h] < level ? T(0) : x; break;
        case Noise::SaltPepper: out = v[h] < 0.5 * level ? T(1) : (v[h] < level ? T(0) : x); break;
        case Noise::None: break;
      }
      noisy[e0 + h] = out;
    }
  }
}
