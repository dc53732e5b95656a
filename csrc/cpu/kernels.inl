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
    case Activation::Softmax: break;  // row-wise: BiasSoftmax / SoftmaxCrossEntropyDelta
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
// Output epilogue: δ = f'(·)·dJ/dA / B in place of Z, the loss summed and
// δ's column sums added to colsum. Columns go one vector at a time, all rows
// of a vector's columns before the next, so the loss and column sums of that
// vector stay in registers: per-row sums ended every row with a horizontal
// reduction, and per-column sums in memory cost a load and a store per
// element (together a third of the epilogue on W-tiny's 64-wide rows). The
// sums of a vector's columns are kept in T over kFoldRows rows and then folded
// into double: converting every float element to double cost two conversions
// and a lane extract per vector and per sum, 8% of a W-tiny step; over 8 rows
// the float partial sums lose nothing a float32 gradient would keep. The
// last n mod (vector) columns keep their sums in `lsum` (n doubles).
template <class T, Loss Lo, Activation A, class S>
static inline void output_delta_element(T& zd, T bias, T yv, T inv_b, S& lsum, S& csum) {
  const T z = zd + bias;
  T d, l;
  if constexpr (Lo == Loss::BinaryCrossEntropy) {
    // From the logit: e = e^{-|z|} gives both σ(z) and the softplus tail,
    // so saturated outputs neither overflow nor take log(0).
    const T e = Math<T>::exp(-absval(z));
    const T inv = T(1) / (T(1) + e);
    const T a = z >= T(0) ? inv : e * inv;
    l = max0(z) - z * yv + Math<T>::log1p_unit(e);
    d = a - yv;
  } else {
    const T a = act<T, A>(z);
    const T diff = a - yv;
    l = T(0.5) * diff * diff;
    d = diff * dact<T, A>(a);
  }
  lsum += static_cast<S>(l);
  const T delta = d * inv_b;
  zd = delta;
  csum += static_cast<S>(delta);
}

template <class T, Loss Lo> struct OutputDelta {
  template <Activation A>
  static double run(T* c, std::int64_t rows, std::int64_t n, const T* b, const T* y, T inv_b,
                    double* colsum, double* lsum) {
    constexpr int CW = static_cast<int>(64 / sizeof(T));
    // float: 8 rows of float partial sums per fold; double: every row, which
    // is the plain double sum. Each fold's column sums go straight into
    // colsum, so a caller that cuts its rows into whole folds (the listed
    // targets of network_impl.inl) gets the same sums, bit for bit, as one
    // call over all of them.
    constexpr std::int64_t kFoldRows = sizeof(T) == 4 ? 8 : 1;
    double loss = 0.0;
    std::int64_t j0 = 0;
    for (; j0 + CW <= n; j0 += CW) {
      double la[CW] = {};
      for (std::int64_t f0 = 0; f0 < rows; f0 += kFoldRows) {
        const std::int64_t f1 = rows - f0 < kFoldRows ? rows : f0 + kFoldRows;
        T lf[CW] = {}, cf[CW] = {};
        for (std::int64_t r = f0; r < f1; ++r) {
          T* row = c + r * n + j0;
          const T* yr = y + r * n + j0;
#pragma omp simd
          for (int j = 0; j < CW; ++j)
            output_delta_element<T, Lo, A>(row[j], b[j0 + j], yr[j], inv_b, lf[j], cf[j]);
        }
#pragma omp simd
        for (int j = 0; j < CW; ++j) {
          la[j] += static_cast<double>(lf[j]);
          colsum[j0 + j] += static_cast<double>(cf[j]);
        }
      }
      for (int j = 0; j < CW; ++j) loss += la[j];
    }
    if (j0 == n) return loss;
    for (std::int64_t j = j0; j < n; ++j) lsum[j] = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
      T* row = c + r * n;
      const T* yr = y + r * n;
#pragma omp simd
      for (std::int64_t j = j0; j < n; ++j)
        output_delta_element<T, Lo, A>(row[j], b[j], yr[j], inv_b, lsum[j], colsum[j]);
    }
    for (std::int64_t j = j0; j < n; ++j) loss += lsum[j];
    return loss;  // summed over these rows; the caller divides by the batch size
  }
};

// Forward epilogue of a softmax output layer (inference): each row of C
// becomes softmax(C + b), shifted by the row's maximum so no exponent is
// positive.
template <class T>
static void bias_softmax(T* c, std::int64_t rows, std::int64_t n, const T* b) {
  for (std::int64_t r = 0; r < rows; ++r) {
    T* row = c + r * n;
    T mx = row[0] + b[0];
#pragma omp simd reduction(max : mx)
    for (std::int64_t j = 0; j < n; ++j) {
      row[j] += b[j];
      mx = row[j] > mx ? row[j] : mx;
    }
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (std::int64_t j = 0; j < n; ++j) {
      const T e = Math<T>::exp(row[j] - mx);
      row[j] = e;
      sum += static_cast<double>(e);
    }
    const T inv = static_cast<T>(1.0 / sum);
#pragma omp simd
    for (std::int64_t j = 0; j < n; ++j) row[j] *= inv;
  }
}

// Output epilogue for softmax + categorical cross entropy, from the logits:
// C (= A_{L-1}·W_L) becomes δ_L = (softmax(Z)·Σy − y)/B (the chapter's eq.
// 15-16 as corrected; softmax − y for one-hot or probability rows), the loss
// Σ_rows Σ_k y_k (logsumexp(z) − z_k) is returned, db_L column sums are
// accumulated. The loss is taken from the shifted logits (never log of a
// rounded probability), in double, so a confidently wrong row costs a large
// finite amount.
template <class T>
static double softmax_cross_entropy_delta(T* c, std::int64_t rows, std::int64_t n, const T* b,
                                          const T* y, T inv_b, double* colsum) {
  double loss = 0.0;
  for (std::int64_t r = 0; r < rows; ++r) {
    T* row = c + r * n;
    const T* yr = y + r * n;
    T mx = row[0] + b[0];
#pragma omp simd reduction(max : mx)
    for (std::int64_t j = 0; j < n; ++j) {
      row[j] += b[j];
      mx = row[j] > mx ? row[j] : mx;
    }
    double sum = 0.0, ysum = 0.0, yz = 0.0;
#pragma omp simd reduction(+ : sum, ysum, yz)
    for (std::int64_t j = 0; j < n; ++j) {
      const T shifted = row[j] - mx;
      const T e = Math<T>::exp(shifted);
      row[j] = e;
      sum += static_cast<double>(e);
      ysum += static_cast<double>(yr[j]);
      yz += static_cast<double>(yr[j]) * static_cast<double>(shifted);
    }
    loss += ysum * std::log(sum) - yz;
    const T scale = static_cast<T>(ysum / sum);
#pragma omp simd
    for (std::int64_t j = 0; j < n; ++j) {
      const T d = (row[j] * scale - yr[j]) * inv_b;
      row[j] = d;
      colsum[j] += static_cast<double>(d);
    }
  }
  return loss;  // summed over these rows; the caller divides by the batch size
}

// Output delta from a gradient given by the caller (a composite model's
// other half): A_L becomes δ_L = dJ/dA_L ⊙ f'(A_L), and db_L's column sums
// are accumulated.
template <class T> struct ScaleByDerivative {
  template <Activation A>
  static void run(T* a, std::int64_t rows, std::int64_t n, const T* d, double* colsum) {
    for (std::int64_t r = 0; r < rows; ++r) {
      T* ar = a + r * n;
      const T* dr = d + r * n;
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) ar[j] = dr[j] * dact<T, A>(ar[j]);
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) colsum[j] += static_cast<double>(ar[j]);
    }
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

// Box-Muller's transcendentals: float32 uses the vectorisable polynomials of
// fastmath.inl (the noise only needs float32 accuracy), float64 uses libm so
// it matches the reference to rounding.
template <class T> struct NoiseMath;
template <> struct NoiseMath<float> {
  static float log(float u) { return log_f32(u); }
  static void sincos_2pi(float u, float* s, float* c) { sincos_2pi_f32(u, s, c); }
};
template <> struct NoiseMath<double> {
  static double log(double u) { return std::log(u); }
  static void sincos_2pi(double u, double* s, double* c) {
    *s = std::sin(6.283185307179586477 * u);
    *c = std::cos(6.283185307179586477 * u);
  }
};

// Philox blocks b0 .. b0+nb-1 (nb <= N) of stream (tag, stream) under `seed`,
// structure of arrays: word k of block b0+i lands in w[k][i]. The loop over
// blocks vectorises (the denoising noise and the latent draws use it).
#ifdef __AVX512F__
// The high and low words of a·m for 16 lanes: vpmuludq multiplies the even
// lanes (and, shifted down, the odd ones) into 64 bits, and two blends sort
// the halves. The auto-vectorised loop widened every lane to 64 bits and
// multiplied with vpmullq, twice as many instructions per round.
static inline __m512i mulhilo16(__m512i a, __m512i m, __m512i* hi) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}
#elif defined(__AVX2__)
// The same for 8 lanes (vpmuludq on ymm; the scalar loop's 64-bit products
// were left to the auto-vectoriser, about 4x slower per draw than AVX-512).
static inline __m256i mulhilo8(__m256i a, __m256i m, __m256i* hi) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}
#endif

template <int N>
static inline void philox_blocks(std::uint64_t seed, std::uint32_t tag, std::uint32_t stream,
                                 std::uint64_t b0, std::int64_t nb, std::uint32_t (&w)[4][N]) {
  const std::uint32_t k0 = static_cast<std::uint32_t>(seed);
  const std::uint32_t k1 = static_cast<std::uint32_t>(seed >> 32);
#ifdef __AVX512F__
  if constexpr (N % 16 == 0) {
    // philox::philox4x32_10 on all N blocks at once, 16 to a vector (the
    // lanes past nb are computed and stored too: w has N of them). A round
    // is a chain of dependent instructions, so the N/16 vectors go through
    // each round together; the round keys are made once.
    constexpr int G = N / 16;
    (void)nb;
    const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
    const __m512i m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
    __m512i key0[10], key1[10];
    for (int r = 0; r < 10; ++r) {
      key0[r] = _mm512_set1_epi32(static_cast<int>(k0 + static_cast<std::uint32_t>(r) * 0x9E3779B9u));
      key1[r] = _mm512_set1_epi32(static_cast<int>(k1 + static_cast<std::uint32_t>(r) * 0xBB67AE85u));
    }
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i c0[G], c1[G], c2[G], c3[G];
    for (int g = 0; g < G; ++g) {
      const std::uint64_t blk = b0 + 16 * static_cast<std::uint64_t>(g);
      // The 64-bit block numbers blk + lane: low words, and high words with the carry.
      const __m512i base = _mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(blk)));
      c0[g] = _mm512_add_epi32(base, lanes);
      const __m512i high =
          _mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(blk >> 32)));
      c1[g] = _mm512_mask_add_epi32(high, _mm512_cmplt_epu32_mask(c0[g], base), high,
                                    _mm512_set1_epi32(1));
      c2[g] = _mm512_set1_epi32(static_cast<int>(stream));
      c3[g] = _mm512_set1_epi32(static_cast<int>(tag));
    }
    for (int r = 0; r < 10; ++r) {
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) {
        __m512i hi0, hi1;
        const __m512i lo0 = mulhilo16(c0[g], m0, &hi0);
        const __m512i lo1 = mulhilo16(c2[g], m1, &hi1);
        c0[g] = _mm512_xor_si512(_mm512_xor_si512(hi1, c1[g]), key0[r]);
        c1[g] = lo1;
        c2[g] = _mm512_xor_si512(_mm512_xor_si512(hi0, c3[g]), key1[r]);
        c3[g] = lo0;
      }
    }
    for (int g = 0; g < G; ++g) {
      _mm512_storeu_si512(w[0] + 16 * g, c0[g]);
      _mm512_storeu_si512(w[1] + 16 * g, c1[g]);
      _mm512_storeu_si512(w[2] + 16 * g, c2[g]);
      _mm512_storeu_si512(w[3] + 16 * g, c3[g]);
    }
    return;
  }
#elif defined(__AVX2__)
  if constexpr (N % 16 == 0) {
    // As above, 8 blocks to a vector, two vectors through each round
    // together (four state vectors each: 8 of the 16 ymm registers).
    constexpr int G = 2;
    (void)nb;
    const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
    const __m256i m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    for (int g0 = 0; g0 < N / 8; g0 += G) {
      __m256i c0[G], c1[G], c2[G], c3[G];
      for (int g = 0; g < G; ++g) {
        const std::uint64_t blk = b0 + 8 * static_cast<std::uint64_t>(g0 + g);
        const __m256i base = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(blk)));
        c0[g] = _mm256_add_epi32(base, lanes);
        // The carry where the low word wrapped (c0 < base, unsigned: compared
        // signed after flipping the sign bits); the all-ones lanes add 1.
        const __m256i wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(base, sign),
                                                   _mm256_xor_si256(c0[g], sign));
        c1[g] = _mm256_sub_epi32(
            _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(blk >> 32))), wrapped);
        c2[g] = _mm256_set1_epi32(static_cast<int>(stream));
        c3[g] = _mm256_set1_epi32(static_cast<int>(tag));
      }
      for (int r = 0; r < 10; ++r) {
        const __m256i key0 =
            _mm256_set1_epi32(static_cast<int>(k0 + static_cast<std::uint32_t>(r) * 0x9E3779B9u));
        const __m256i key1 =
            _mm256_set1_epi32(static_cast<int>(k1 + static_cast<std::uint32_t>(r) * 0xBB67AE85u));
        for (int g = 0; g < G; ++g) {
          __m256i hi0, hi1;
          const __m256i lo0 = mulhilo8(c0[g], m0, &hi0);
          const __m256i lo1 = mulhilo8(c2[g], m1, &hi1);
          c0[g] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[g]), key0);
          c1[g] = lo1;
          c2[g] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[g]), key1);
          c3[g] = lo0;
        }
      }
      for (int g = 0; g < G; ++g) {
        const int at = 8 * (g0 + g);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(w[0] + at), c0[g]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(w[1] + at), c1[g]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(w[2] + at), c2[g]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(w[3] + at), c3[g]);
      }
    }
    return;
  }
#endif
#pragma omp simd
  for (std::int64_t i = 0; i < nb; ++i) {
    const std::uint64_t blk = b0 + static_cast<std::uint64_t>(i);
    const philox::U4 r = philox::philox4x32_10(
        philox::U4{{static_cast<std::uint32_t>(blk), static_cast<std::uint32_t>(blk >> 32),
                    stream, tag}}, k0, k1);
    w[0][i] = r.v[0];
    w[1][i] = r.v[1];
    w[2][i] = r.v[2];
    w[3][i] = r.v[3];
  }
}

// Denoising corruption of elements [e_begin, e_end) of a flat batch,
// x̃ = noise(x), drawn from Philox(seed, kNoise, stream = step): element e uses
// word e%4 of block e/4 (Gaussian: words (0,1) and (2,3) are Box-Muller
// pairs). Salt is 1 and pepper 0: inputs are expected in [0, 1]. Any split of
// a batch into element ranges draws the same numbers, so threads can each
// corrupt their own rows. Blocks are processed in chunks, structure of
// arrays, so the Philox rounds and the noise formulas vectorise.
template <class T>
static void corrupt(const T* clean, T* noisy, std::int64_t e_begin, std::int64_t e_end,
                    Noise kind, double level, std::uint64_t seed, std::uint32_t stream) {
  constexpr int kChunk = 64;  // blocks per chunk: 256 elements
  const T lvl = static_cast<T>(level), half = static_cast<T>(0.5 * level);
  const T inv24 = static_cast<T>(1.0 / 16777216.0);
  for (std::int64_t b0 = e_begin / 4; 4 * b0 < e_end; b0 += kChunk) {
    const std::int64_t nb = (e_end + 3) / 4 - b0 < kChunk ? (e_end + 3) / 4 - b0 : kChunk;
    std::uint32_t w[4][kChunk];
    philox_blocks(seed, philox::kNoise, stream, static_cast<std::uint64_t>(b0), nb, w);
    T v[4][kChunk];
    if (kind == Noise::Gaussian) {
      for (int h = 0; h < 2; ++h) {
#pragma omp simd
        for (std::int64_t i = 0; i < nb; ++i) {
          // Uniforms from the top 24 bits: (0, 1] under the logarithm, [0, 1) for the angle.
          const T u0 = (static_cast<T>(w[2 * h][i] >> 8) + T(1)) * inv24;
          const T u1 = static_cast<T>(w[2 * h + 1][i] >> 8) * inv24;
          const T radius = std::sqrt(T(-2) * NoiseMath<T>::log(u0));
          T sn, cs;
          NoiseMath<T>::sincos_2pi(u1, &sn, &cs);
          v[2 * h][i] = lvl * radius * cs;
          v[2 * h + 1][i] = lvl * radius * sn;
        }
      }
    } else {
      for (int h = 0; h < 4; ++h) {
#pragma omp simd
        for (std::int64_t i = 0; i < nb; ++i) v[h][i] = static_cast<T>(w[h][i] >> 8) * inv24;
      }
    }
    // Into element order (element 4i + h from v[h][i]) before the elementwise
    // loop, so that loop runs over contiguous elements and vectorises: read
    // as v[e % 4][e / 4] it ran a scalar element at a time, and took longer
    // than the Philox rounds and Box-Muller together.
    T r[4 * kChunk];
#pragma omp simd
    for (std::int64_t i = 0; i < nb; ++i) {
      r[4 * i] = v[0][i];
      r[4 * i + 1] = v[1][i];
      r[4 * i + 2] = v[2][i];
      r[4 * i + 3] = v[3][i];
    }
    const std::int64_t lo = 4 * b0 > e_begin ? 4 * b0 : e_begin;
    const std::int64_t hi = 4 * (b0 + nb) < e_end ? 4 * (b0 + nb) : e_end;
    const std::int64_t e0 = 4 * b0;  // r[e - e0]: element e's draw
    const T* xc = clean;
    T* out = noisy;
    switch (kind) {
      case Noise::Gaussian:
#pragma omp simd
        for (std::int64_t e = lo; e < hi; ++e) out[e] = xc[e] + r[e - e0];
        break;
      case Noise::Masking:
#pragma omp simd
        for (std::int64_t e = lo; e < hi; ++e) out[e] = r[e - e0] < lvl ? T(0) : xc[e];
        break;
      case Noise::SaltPepper:
#pragma omp simd
        for (std::int64_t e = lo; e < hi; ++e)
          out[e] = r[e - e0] < half ? T(1) : (r[e - e0] < lvl ? T(0) : xc[e]);
        break;
      case Noise::None:
        for (std::int64_t e = lo; e < hi; ++e) out[e] = xc[e];
        break;
    }
  }
}

// ---- mostly-zero inputs ----------------------------------------------------
// MNIST-like inputs are ~80% zeros. The two GEMMs that read X (Z_1 = X·W_1 and
// dW_1 = Xᵀ·δ_1) can skip them: X's nonzeros are listed by rows (forward) and
// by columns (dW_1), and each output is built one slab of columns at a time
// from a contiguous copy of that slab of W_1 (or δ_1), which stays in L2 while
// the accumulators stay in registers. Same sums as the GEMM, in another order.

template <class T>
static std::int64_t count_nonzeros(const T* x, std::int64_t n) {
  std::int64_t c = 0;
#pragma omp simd reduction(+ : c)
  for (std::int64_t i = 0; i < n; ++i) c += x[i] != T(0);
  return c;
}

// The nonzero lists are cut into tiles of kNzTile columns of x (for X·W_1)
// or rows of the batch (for Xᵀ·δ_1): the rows of the dense operand a tile's
// entries read, 32 KiB of one slab (slab_times_dense). Each list records
// where it starts and where every tile's entries end, bounds[list·nb + t]
// (nb = nz_bounds(n): the start, then one end per tile), so the product's
// loops run a known count instead of testing each entry's index. A thread's
// lists are packed one after the other from the start of its region of the
// reservation (sized for a dense batch): an MNIST-like batch writes a fifth of
// those pages, and the rest are never made resident (core/zeroed.hpp).
// (kNzTile, nz_tiles and nz_bounds: core/network.hpp, which sizes the lists.)

// Lists the nonzeros of rows [r0, r1) of x (n0 columns; row m at
// x + rows_at[m]·n0 if rows_at is given) in column order, from
// r0·stride (stride = nz_stride(n0)) on, each row's list starting at a
// multiple of 16 entries: row m's run from bounds[m·nb] to
// bounds[m·nb + nb - 1]; counts[k] becomes the number of these rows' nonzeros
// in column k (which places the lists by columns). Returns the number of
// nonzeros listed. Branch-free: on these inputs a branch
// per entry is mispredicted about every third entry, which made this listing
// cost as much as the product it serves. Each chunk (or entry) is written at
// p whatever it holds and p advances by its nonzero count; a row's list and
// the chunk written past its end take at most n0 + 15 entries and the next
// row's starts within 15 of its end, so row j of the thread starts before
// (r0 + j)·stride and no write leaves the thread's region.
#if defined(__AVX2__) && !defined(__AVX512F__)
// AVX2 has no compress instruction: a chunk's nonzeros are moved to its front
// by a permute whose indices come from this table. Entry m lists the set bits
// of the 8-bit mask m, lowest first, as 4-bit lane numbers (lane j of the
// permute at bits 4j..4j+3; the lanes past the mask's count are 0).
struct CompressTable {
  std::uint32_t lanes[256];
};
constexpr CompressTable make_compress_table() {
  CompressTable t{};
  for (int m = 0; m < 256; ++m) {
    std::uint32_t packed = 0;
    int n = 0;
    for (int i = 0; i < 8; ++i)
      if ((m >> i) & 1) packed |= static_cast<std::uint32_t>(i) << (4 * n++);
    t.lanes[m] = packed;
  }
  return t;
}
constexpr CompressTable kCompressTable = make_compress_table();

// The permute's lane numbers for mask m, one per 32-bit lane.
static inline __m256i compress_lanes8(unsigned m) {
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  return _mm256_and_si256(
      _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(kCompressTable.lanes[m])), shifts),
      _mm256_set1_epi32(15));
}
#endif

// Rows of a shuffled batch are scattered over the data, which defeats the
// hardware prefetcher: the row this many rows ahead is fetched while one is
// listed or copied (W-mnist's shuffled epochs, 1 thread: 1% faster than one
// row ahead, docs/performance.md, 2026-12-06).
constexpr std::int64_t kRowsAhead = 4;

// Asks for every cache line of a row of n elements.
template <class T>
static inline void prefetch_row(const T* row, std::int64_t n) {
  const char* p = reinterpret_cast<const char*>(row);
  for (std::int64_t b = 0; b < n * static_cast<std::int64_t>(sizeof(T)); b += 64)
    __builtin_prefetch(p + b);
}

template <class T>
static std::int64_t list_row_nonzeros(const T* x, const std::int64_t* rows_at, std::int64_t r0,
                                      std::int64_t r1, std::int64_t n0, std::int64_t stride,
                                      T* val, std::int32_t* col, std::int64_t* bounds,
                                      std::int32_t* counts) {
  const std::int64_t nb = nz_bounds(n0);
  std::int64_t p = r0 * stride, listed = 0;
  for (std::int64_t k = 0; k < n0; ++k) counts[k] = 0;
  for (std::int64_t m = r0; m < r1; ++m) {
    const T* row = x + (rows_at ? rows_at[m] : m) * n0;
    // A row kRowsAhead ahead is fetched while this one is listed (one cache
    // line per 64 bytes of columns).
    const T* ahead =
        rows_at && m + kRowsAhead < r1 ? x + rows_at[m + kRowsAhead] * n0 : nullptr;
    std::int64_t* te = bounds + m * nb;
    te[0] = p;
    std::int64_t k = 0;
#ifdef __AVX512F__
    // kNzTile is a multiple of both chunk widths: a tile ends between chunks.
    if constexpr (sizeof(T) == 4) {
      const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
      for (; k + 16 <= n0; k += 16) {
        if (ahead) __builtin_prefetch(ahead + k);
        if (k > 0 && k % kNzTile == 0) te[k / kNzTile] = p;
        const __m512 v = _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k);
        const __mmask16 nz = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        const __m512i c = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int>(k)));
        _mm512_storeu_ps(reinterpret_cast<float*>(val) + p, _mm512_maskz_compress_ps(nz, v));
        _mm512_storeu_si512(col + p, _mm512_maskz_compress_epi32(nz, c));
        const __m512i n = _mm512_loadu_si512(counts + k);
        _mm512_storeu_si512(counts + k, _mm512_mask_add_epi32(n, nz, n, _mm512_set1_epi32(1)));
        p += __builtin_popcount(nz);
      }
    } else {
      const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      for (; k + 8 <= n0; k += 8) {
        if (ahead) __builtin_prefetch(ahead + k);
        if (k > 0 && k % kNzTile == 0) te[k / kNzTile] = p;
        const __m512d v = _mm512_loadu_pd(reinterpret_cast<const double*>(row) + k);
        const __mmask8 nz = _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_NEQ_UQ);
        const __m256i c = _mm256_add_epi32(lanes, _mm256_set1_epi32(static_cast<int>(k)));
        _mm512_storeu_pd(reinterpret_cast<double*>(val) + p, _mm512_maskz_compress_pd(nz, v));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(col + p), _mm256_maskz_compress_epi32(nz, c));
        __m256i* cp = reinterpret_cast<__m256i*>(counts + k);
        const __m256i n = _mm256_loadu_si256(cp);
        _mm256_storeu_si256(cp, _mm256_mask_add_epi32(n, nz, n, _mm256_set1_epi32(1)));
        p += __builtin_popcount(nz);
      }
    }
#elif defined(__AVX2__)
    // As above, 8 floats or 4 doubles a chunk, moved to the chunk's front by
    // a permute (compress_lanes8); the counts gain 1 where the compare's lane
    // is all ones (-1).
    if constexpr (sizeof(T) == 4) {
      for (; k + 8 <= n0; k += 8) {
        if (ahead && k % 16 == 0) __builtin_prefetch(ahead + k);
        if (k > 0 && k % kNzTile == 0) te[k / kNzTile] = p;
        const __m256 v = _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
        const __m256 nzv = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ);
        const unsigned nz = static_cast<unsigned>(_mm256_movemask_ps(nzv));
        const __m256i lanes = compress_lanes8(nz);
        _mm256_storeu_ps(reinterpret_cast<float*>(val) + p, _mm256_permutevar8x32_ps(v, lanes));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(col + p),
                            _mm256_add_epi32(lanes, _mm256_set1_epi32(static_cast<int>(k))));
        __m256i* cp = reinterpret_cast<__m256i*>(counts + k);
        _mm256_storeu_si256(cp, _mm256_sub_epi32(_mm256_loadu_si256(cp), _mm256_castps_si256(nzv)));
        p += __builtin_popcount(nz);
      }
    } else {
      for (; k + 4 <= n0; k += 4) {
        if (ahead && k % 8 == 0) __builtin_prefetch(ahead + k);
        if (k > 0 && k % kNzTile == 0) te[k / kNzTile] = p;
        const __m256d v = _mm256_loadu_pd(reinterpret_cast<const double*>(row) + k);
        const __m256d nzv = _mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_NEQ_UQ);
        const unsigned nz = static_cast<unsigned>(_mm256_movemask_pd(nzv));
        // Lane numbers of the 4 doubles (the table's first four), then the
        // pair of 32-bit lanes 2i, 2i + 1 that each double i spans.
        const __m128i lanes = _mm256_castsi256_si128(compress_lanes8(nz));
        const __m256i twice = _mm256_slli_epi64(_mm256_cvtepu32_epi64(lanes), 1);
        const __m256i pairs = _mm256_or_si256(
            twice, _mm256_slli_epi64(_mm256_add_epi64(twice, _mm256_set1_epi64x(1)), 32));
        _mm256_storeu_pd(reinterpret_cast<double*>(val) + p,
                         _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), pairs)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(col + p),
                         _mm_add_epi32(lanes, _mm_set1_epi32(static_cast<int>(k))));
        const __m128i ones = _mm_and_si128(
            _mm_srlv_epi32(_mm_set1_epi32(static_cast<int>(nz)), _mm_setr_epi32(0, 1, 2, 3)),
            _mm_set1_epi32(1));
        __m128i* cp = reinterpret_cast<__m128i*>(counts + k);
        _mm_storeu_si128(cp, _mm_add_epi32(_mm_loadu_si128(cp), ones));
        p += __builtin_popcount(nz);
      }
    }
#endif
    for (; k < n0; ++k) {
      if (ahead && k % (64 / sizeof(T)) == 0) __builtin_prefetch(ahead + k);
      if (k > 0 && k % kNzTile == 0) te[k / kNzTile] = p;
      val[p] = row[k];
      col[p] = static_cast<std::int32_t>(k);
      counts[k] += row[k] != T(0);
      p += row[k] != T(0);
    }
    te[nb - 1] = p;
    listed += p - te[0];
    p = (p + 15) & ~std::int64_t(15);  // the next list starts on a cache line (float)
  }
  return listed;
}

// Rows [r0, r1) of X, dense (n0 columns), into dst from their lists
// (list_row_nonzeros): an autoencoder's targets when its batch is read in
// place, a few rows at a time into cache-resident scratch.
template <class T>
static void expand_listed_rows(const T* val, const std::int32_t* col, const std::int64_t* bounds,
                               std::int64_t r0, std::int64_t r1, std::int64_t n0, T* dst) {
  const std::int64_t nb = nz_bounds(n0);
  for (std::int64_t m = r0; m < r1; ++m) {
    T* d = dst + (m - r0) * n0;
    for (std::int64_t k = 0; k < n0; ++k) d[k] = T(0);
    const std::int64_t* te = bounds + m * nb;
    for (std::int64_t p = te[0]; p < te[nb - 1]; ++p) d[col[p]] = val[p];
  }
}

// From the row lists of all B rows (list_row_nonzeros), lists the nonzeros
// of columns [i0, i1) (i0 a multiple of kNzTile, i1 one or n0), packed from
// i0·nz_stride(cap) on: column k's entries (row, value) run from
// bounds[k·nb] to bounds[k·nb + nz_tiles(B)] (nb = nz_bounds(cap)), rows
// ascending, cut into tiles of kNzTile batch rows. Each column's list is
// placed by its count: the sum over the nt threads that listed the rows of
// counts[t·count_stride + k] (list_row_nonzeros; a pass counting the tile's
// entries here instead was a third of this function on W-mnist, reading the
// other thread's row lists from its core's cache). One tile of columns at a
// time, from the row lists' tile ends: the entries go to 128 columns' lists
// at once, whose ends stay in L1 and whose pages stay in the TLB (all of
// [i0, i1) at once, with a binary search per row for i0, took 10 ns per
// entry on W-wide, where each column's list was 4 KiB from the next).
template <class T>
static void list_column_nonzeros(const T* rval, const std::int32_t* rcol,
                                 const std::int64_t* rbounds, std::int64_t B, std::int64_t n0,
                                 std::int64_t i0, std::int64_t i1, std::int64_t cap,
                                 const std::int32_t* counts, std::int64_t count_stride, int nt,
                                 T* val, std::int32_t* row, std::int64_t* bounds) {
  const std::int64_t rnb = nz_bounds(n0), nb = nz_bounds(cap);
  std::int64_t next = i0 * nz_stride(cap);  // where the next column's list starts
  for (std::int64_t t = i0 / kNzTile; t * kNzTile < i1; ++t) {
    const std::int64_t ka = t * kNzTile, kb = ka + kNzTile < i1 ? ka + kNzTile : i1;
    for (std::int64_t k = ka; k < kb; ++k) {
      bounds[k * nb] = bounds[k * nb + 1] = next;
      for (int h = 0; h < nt; ++h) next += counts[h * count_stride + k];
    }
    // bounds[k·nb + tm + 1]: column k's running end in row tile tm.
    for (std::int64_t m = 0; m < B; ++m) {
      const std::int64_t tm = m / kNzTile;
      if (m > 0 && m % kNzTile == 0) {
        for (std::int64_t k = ka; k < kb; ++k) bounds[k * nb + tm + 1] = bounds[k * nb + tm];
      }
      const std::int64_t* rte = rbounds + m * rnb;
      for (std::int64_t p = rte[t]; p < rte[t + 1]; ++p) {
        const std::int64_t q = bounds[rcol[p] * nb + tm + 1]++;
        val[q] = rval[p];
        row[q] = static_cast<std::int32_t>(m);
      }
    }
  }
}

// One 64-byte vector of T in GCC's generic vector extension, lowered to one
// zmm, two ymm or four xmm registers by each instruction-set variant. Explicit
// vectors keep the accumulators in registers across the nonzeros, which the
// auto-vectoriser does not do for a local array.
template <class T> struct Vec64 {
  typedef T type __attribute__((vector_size(64)));
  static constexpr int lanes = static_cast<int>(64 / sizeof(T));
};

// The variant's own vector registers: their width and how many there are.
// The nonzero product keeps a slab row's sums in registers, so how many sums
// fit decides its shape: with AVX2's sixteen 32-byte registers, the two sets
// of four 64-byte sums that AVX-512 holds in 8 of its 32 would take all 16
// and spill to the stack on every entry (on a host without AVX-512 this made
// the product two thirds of a W-mnist step, slower than dense GEMMs).
#if defined(__AVX512F__)
constexpr int kRegBytes = 64;
#elif defined(__AVX__)
constexpr int kRegBytes = 32;
#else
constexpr int kRegBytes = 16;
#endif
#if defined(__AVX512F__) || defined(__aarch64__)
constexpr int kVecRegs = 32;
#else
constexpr int kVecRegs = 16;
#endif
template <class T> struct RegVec {
  typedef T type __attribute__((vector_size(kRegBytes)));
  static constexpr int lanes = static_cast<int>(kRegBytes / sizeof(T));
};
// 64-byte vectors per slab of the nonzero product: four, or as many as leave
// two registers beside one set of sums (three on 16 xmm registers).
constexpr int kSlabVecsThatFit = (kVecRegs - 2) * kRegBytes / 64;
constexpr int kSlabVecs = kSlabVecsThatFit < 4 ? kSlabVecsThatFit : 4;

// Columns [c0, c0 + cw) of the rows × N matrix M into `slab` (rows × NV
// vectors), zero-padded. A memcpy of run-time length is `rep movs` here, whose
// start-up cost made this copy a seventh of the product (W-mnist's first
// layer): whole slabs go by fixed-size copies, the last one element by element.
template <class T, int NV>
static void copy_slab(const T* M, std::int64_t rows, std::int64_t N, std::int64_t c0,
                      std::int64_t cw, T* slab) {
  constexpr int C = NV * Vec64<T>::lanes;
  if (cw == C) {
    for (std::int64_t r = 0; r < rows; ++r) std::memcpy(slab + r * C, M + r * N + c0, sizeof(T) * C);
    return;
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    T* dst = slab + r * C;
    const T* src = M + r * N + c0;
    for (int j = 0; j < C; ++j) dst[j] = T(0);
    for (std::int64_t j = 0; j < cw; ++j) dst[j] = src[j];
  }
}

// One slab of sparse_times_dense (below): out[i, c0 : c0+cw] for i in
// [i0, i1) from the slab (m_rows × NV vectors, zero-padded past cw).
// The slab's rows are taken one tile (kNzTile rows, 32 KiB of four vectors:
// within L1d; a whole slab is L2-sized, and from L2 the loads, not the FMAs,
// set the pace) at a time; a block of up to kNzBlock output rows keeps its
// sums in `acc` (kNzBlock × NV vectors of the thread's workspace) across the
// tiles. A block of
// 256 rows (acc: 64 KiB, streamed from L2) reads each tile of the slab from L2
// once for all of a thread's rows on W-mnist; blocks of 32 read it 8 times
// (microbenchmark of X·W_1, 256 × 784 at 20% nonzeros times 784 × 196:
// 294-350 µs with 32, 250-276 µs with 256).
template <class T, int NV>
static void slab_times_dense(const T* val, const std::int32_t* idx, const std::int64_t* bounds,
                             std::int64_t nbounds, std::int64_t i0, std::int64_t i1, T* slab,
                             std::int64_t m_rows, const T* M, std::int64_t N, std::int64_t c0,
                             std::int64_t cw, bool per_tile, T* out, std::int64_t ldo,
                             T* acc_storage, bool update, T alpha, T beta) {
  using V = typename Vec64<T>::type;
  constexpr int W = Vec64<T>::lanes;
  constexpr int C = NV * W;
  static_assert(C <= kSlabElems, "a slab row is at most kSlabElems elements");
  // The sums in the variant's own registers: NR of RW lanes each, in two sets
  // where three times as many registers as one set holds (the sums, the
  // second set, the loads) leave two spare.
  using R = typename RegVec<T>::type;
  constexpr int RW = RegVec<T>::lanes;
  constexpr int NR = C / RW;
  constexpr bool kTwoSets = 3 * NR + 2 <= kVecRegs;
  const std::int64_t tiles = nz_tiles(m_rows);
  if (!per_tile) copy_slab<T, NV>(M, m_rows, N, c0, cw, slab);
  T (*acc)[C] = reinterpret_cast<T (*)[C]>(acc_storage);
  for (std::int64_t ib = i0; ib < i1; ib += kNzBlock) {
    const int nb = static_cast<int>(i1 - ib < kNzBlock ? i1 - ib : kNzBlock);
    for (std::int64_t t = 0; t < tiles; ++t) {
      // The slab holds the whole column slab of M, or just tile t's rows.
      const std::int64_t first = per_tile ? t * kNzTile : 0;
      if (per_tile)
        copy_slab<T, NV>(M + first * N,
                         (first + kNzTile < m_rows ? first + kNzTile : m_rows) - first, N, c0, cw,
                         slab);
      for (int r = 0; r < nb; ++r) {
        const std::int64_t* te = bounds + (ib + r) * nbounds;
        R a[NR];
#pragma GCC unroll 16
        for (int v = 0; v < NR; ++v) {
          if (t == 0) a[v] = R{};
          else std::memcpy(&a[v], &acc[r][v * RW], sizeof(R));
        }
        std::int64_t p = te[t];
        const std::int64_t stop = te[t + 1];
        if constexpr (kTwoSets) {
          // Two entries at a time into two sets of sums: one set is NR
          // chains of dependent FMAs, too few to fill both FMA pipes at their
          // latency.
          R b[NR];
#pragma GCC unroll 16
          for (int v = 0; v < NR; ++v) b[v] = R{};
          for (; p + 1 < stop; p += 2) {
            const T x0 = val[p], x1 = val[p + 1];
            const T* s0 = slab + (static_cast<std::int64_t>(idx[p]) - first) * C;
            const T* s1 = slab + (static_cast<std::int64_t>(idx[p + 1]) - first) * C;
#pragma GCC unroll 16
            for (int v = 0; v < NR; ++v) {
              R u, w;
              std::memcpy(&u, s0 + v * RW, sizeof u);
              std::memcpy(&w, s1 + v * RW, sizeof w);
              a[v] += x0 * u;
              b[v] += x1 * w;
            }
          }
#pragma GCC unroll 16
          for (int v = 0; v < NR; ++v) a[v] += b[v];
        }
        for (; p < stop; ++p) {
          const T x = val[p];
          const T* src = slab + (static_cast<std::int64_t>(idx[p]) - first) * C;
#pragma GCC unroll 16
          for (int v = 0; v < NR; ++v) {
            R u;
            std::memcpy(&u, src + v * RW, sizeof u);
            a[v] += x * u;
          }
        }
#pragma GCC unroll 16
        for (int v = 0; v < NR; ++v) std::memcpy(&acc[r][v * RW], &a[v], sizeof(R));
      }
    }
    // Whole vectors by vector stores (a memcpy of run-time length became
    // `rep movs`, whose start-up cost was a tenth of this function), then
    // the columns of a last, partial vector.
    const int full = static_cast<int>(cw / W);
    for (int r = 0; r < nb; ++r) {
      T* o = out + (ib + r - i0) * ldo;
      if (update) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v)
          if (v < full) {
            V a, c;
            std::memcpy(&a, &acc[r][v * W], sizeof(V));
            std::memcpy(&c, o + v * W, sizeof(V));
            c = beta * c + alpha * a;
            std::memcpy(o + v * W, &c, sizeof(V));
          }
        for (std::int64_t j = static_cast<std::int64_t>(full) * W; j < cw; ++j)
          o[j] = beta * o[j] + alpha * acc[r][j];
        continue;
      }
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        if (v < full) std::memcpy(o + v * W, &acc[r][v * W], sizeof(V));
      for (std::int64_t j = static_cast<std::int64_t>(full) * W; j < cw; ++j) o[j] = acc[r][j];
    }
  }
}

// out[i, :] = Σ_{p in entries of i} val[p] · M[idx[p], :] for i in [i0, i1), M
// having m_rows rows of N columns; list i runs from bounds[i·nbounds] in
// ascending idx, with the ends of its tiles of kNzTile idx values at
// bounds[i·nbounds + 1 + t] (list_row_nonzeros, list_column_nonzeros).
// Columns go in slabs of kSlabVecs 64-byte vectors (four: 64 floats, 32
// doubles; three on 16 xmm registers), each first copied, zero-padded, into
// `slab` (m_rows × kSlabElems elements, 64-byte aligned); `acc` is
// kNzBlock × kSlabElems elements of aligned scratch. With
// `update`, out = beta·out + alpha·product instead (an SGD step folded into
// dW_1: out is W_1).
template <class T>
static void sparse_times_dense(const T* val, const std::int32_t* idx, const std::int64_t* bounds,
                               std::int64_t nbounds, std::int64_t i0, std::int64_t i1,
                               const T* M, std::int64_t m_rows, std::int64_t N, T* out,
                               std::int64_t ldo, T* slab, T* acc, bool update = false,
                               T alpha = T(1), T beta = T(0)) {
  constexpr int W = Vec64<T>::lanes;
  // A last single vector joins the slab before it where the registers allow
  // (AVX-512's 32: five vectors of sums in two sets): every slab costs a pass
  // over all the entries, loads of the index and the value included, and a
  // pass for one vector cost a third of a four-vector one (W-mnist's 196
  // columns: 4 + 4 + 4 + 1 vectors, now 4 + 4 + 5).
#ifdef __AVX512F__
  constexpr bool merge_last = true;
#else
  constexpr bool merge_last = false;
#endif
  // One block of output rows reads each tile of a column slab once, so the
  // slab can be copied a tile at a time into the first kNzTile rows of its
  // buffer (40 KiB at most instead of W-mnist's 245 KiB of W_1's 784 rows,
  // whose pages then stay unbacked); several blocks reuse a whole copied slab.
  const bool per_tile = i1 - i0 <= kNzBlock && m_rows > 2 * kNzTile;
  const std::int64_t vecs = (N + W - 1) / W;
  for (std::int64_t v0 = 0; v0 < vecs;) {
    int nv = vecs - v0 < kSlabVecs ? static_cast<int>(vecs - v0) : kSlabVecs;
    if (merge_last && vecs - v0 == 5) nv = 5;
    const std::int64_t c0 = v0 * W;
    const std::int64_t cw = N - c0 < nv * W ? N - c0 : nv * W;
    T* o = out + c0;
#define FUSEDAE_SLAB(nv)                                                                   \
  slab_times_dense<T, nv>(val, idx, bounds, nbounds, i0, i1, slab, m_rows, M, N, c0, cw, \
                          per_tile, o, ldo, acc, update, alpha, beta)
    switch (nv) {
      case 1: FUSEDAE_SLAB(1); break;
      case 2: FUSEDAE_SLAB(2); break;
      case 3: FUSEDAE_SLAB(3); break;
      case 4: FUSEDAE_SLAB(4); break;
      default:
        if constexpr (merge_last) FUSEDAE_SLAB(5);
    }
#undef FUSEDAE_SLAB
    v0 += nv;
  }
}
