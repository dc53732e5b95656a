// Device versions of the CPU kernels' elementary functions (csrc/cpu/
// fastmath.inl) and activations (csrc/cpu/kernels.inl), with the same
// formulas in the same order of operations, so both backends clamp, saturate
// and round alike: float32 e^x clamps its argument to [-87, 88] like the CPU's,
// float32 tanh goes through the float64 e^x, the binary cross entropy's
// softplus tail and Box-Muller's log and sin/cos(2πu) are the same
// polynomials. (nvcc contracts a·b + c into an FMA as the AVX2 and AVX-512
// variants do, so results agree with those to the last bit or so.) float64
// uses CUDA's libm (tanh, log1p, log, sin, cos) where the CPU uses glibc's:
// equal to rounding.
#pragma once
#include <cstdint>

#include "core/network.hpp"

namespace fusedae {
namespace cuda {
namespace dev {

__device__ __forceinline__ float exp_f32(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float shifter = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + shifter;
  const std::int32_t n =
      static_cast<std::int32_t>(__float_as_uint(t) - __float_as_uint(shifter));
  const float nf = t - shifter;
  float r = x - nf * 0.693145751953125f;
  r = r - nf * 1.42860682030941723212e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * __uint_as_float(static_cast<std::uint32_t>(n + 127) << 23);
}

__device__ __forceinline__ double exp_f64(double x) {
  x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double shifter = 6755399441055744.0;  // 1.5·2^52
  const double t = x * 1.4426950408889634074 + shifter;
  const std::int64_t n = static_cast<std::int64_t>(
      static_cast<std::uint64_t>(__double_as_longlong(t)) -
      static_cast<std::uint64_t>(__double_as_longlong(shifter)));
  const double nf = t - shifter;
  double r = x - nf * 6.93147180369123816490e-01;
  r = r - nf * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p * __longlong_as_double(static_cast<long long>(static_cast<std::uint64_t>(n + 1023) << 52));
}

__device__ __forceinline__ float log1p_small_f32(float f) {
  const float s = f / (2.0f + f);
  const float s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  return 2.0f * s + 2.0f * s * (s2 * p);
}

__device__ __forceinline__ float log1p_unit_f32(float u) {
  const bool big = u > 0.41421356f;
  const float f = big ? (u - 1.0f) * 0.5f : u;
  const float e = big ? 0.693147180559945309f : 0.0f;
  return e + log1p_small_f32(f);
}

__device__ __forceinline__ float log_f32(float x) {
  const std::uint32_t bits = __float_as_uint(x);
  std::int32_t e = static_cast<std::int32_t>(bits >> 23) - 127;
  float m = __uint_as_float((bits & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  const bool high = m > 1.41421356f;
  m = high ? m * 0.5f : m;
  e = high ? e + 1 : e;
  return static_cast<float>(e) * 0.693147180559945309f + log1p_small_f32(m - 1.0f);
}

__device__ __forceinline__ void sincos_2pi_f32(float u, float* sin_out, float* cos_out) {
  const float shifter = 12582912.0f;
  const float t = u * 4.0f + shifter;
  const std::int32_t q =
      static_cast<std::int32_t>(__float_as_uint(t) - __float_as_uint(shifter)) & 3;
  const float x = (u - (t - shifter) * 0.25f) * 6.28318530717958648f;
  const float x2 = x * x;
  float sp = 1.0f / 362880.0f;
  sp = sp * x2 - 1.0f / 5040.0f;
  sp = sp * x2 + 1.0f / 120.0f;
  sp = sp * x2 - 1.0f / 6.0f;
  const float sn = x + x * x2 * sp;
  float cp = -1.0f / 3628800.0f;
  cp = cp * x2 + 1.0f / 40320.0f;
  cp = cp * x2 - 1.0f / 720.0f;
  cp = cp * x2 + 1.0f / 24.0f;
  cp = cp * x2 - 0.5f;
  const float cs = 1.0f + x2 * cp;
  const float s1 = (q & 1) ? cs : sn, c1 = (q & 1) ? sn : cs;
  *sin_out = (q & 2) ? -s1 : s1;
  *cos_out = ((q + 1) & 2) ? -c1 : c1;
}

template <class T> struct Math;
template <> struct Math<float> {
  static __device__ __forceinline__ float exp(float x) { return exp_f32(x); }
  static __device__ __forceinline__ float tanh(float z) {
    const double e = exp_f64(2.0 * static_cast<double>(z));
    return static_cast<float>(1.0 - 2.0 / (e + 1.0));
  }
  static __device__ __forceinline__ float log1p_unit(float u) { return log1p_unit_f32(u); }
  // Box-Muller's transcendentals (the CPU's NoiseMath<float>).
  static __device__ __forceinline__ float noise_log(float u) { return log_f32(u); }
  static __device__ __forceinline__ void sincos_2pi(float u, float* s, float* c) {
    sincos_2pi_f32(u, s, c);
  }
};
template <> struct Math<double> {
  static __device__ __forceinline__ double exp(double x) { return exp_f64(x); }
  static __device__ __forceinline__ double tanh(double z) { return ::tanh(z); }
  static __device__ __forceinline__ double log1p_unit(double u) { return ::log1p(u); }
  static __device__ __forceinline__ double noise_log(double u) { return ::log(u); }
  static __device__ __forceinline__ void sincos_2pi(double u, double* s, double* c) {
    const double x = 6.283185307179586477 * u;
    *s = ::sin(x);
    *c = ::cos(x);
  }
};

template <class T> __device__ __forceinline__ T max0(T v) { return v > T(0) ? v : T(0); }
template <class T> __device__ __forceinline__ T absval(T v) { return v < T(0) ? -v : v; }

template <class T, Activation A> __device__ __forceinline__ T act(T z) {
  if constexpr (A == Activation::Sigmoid) return T(1) / (T(1) + Math<T>::exp(-z));
  else if constexpr (A == Activation::Tanh) return Math<T>::tanh(z);
  else if constexpr (A == Activation::Relu) return max0(z);
  else if constexpr (A == Activation::LeakyRelu) return z > T(0) ? z : T(kLeakyReluSlope) * z;
  else return z;  // Identity
}

// f'(z) from the output a = f(z).
template <class T, Activation A> __device__ __forceinline__ T dact(T a) {
  if constexpr (A == Activation::Sigmoid) return a * (T(1) - a);
  else if constexpr (A == Activation::Tanh) return T(1) - a * a;
  else if constexpr (A == Activation::Relu) return a > T(0) ? T(1) : T(0);
  else if constexpr (A == Activation::LeakyRelu) return a > T(0) ? T(1) : T(kLeakyReluSlope);
  else return T(1);
}

}  // namespace dev
}  // namespace cuda
}  // namespace fusedae
