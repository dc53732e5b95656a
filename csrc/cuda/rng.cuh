// Denoising noise on the GPU: the CPU's corrupt() (csrc/cpu/kernels.inl) one
// Philox block at a time. Element e of the flattened batch uses word e%4 of
// block e/4 of stream (kNoise, step) under the network's seed, through the
// very philox4x32_10 of core/philox.hpp (compiled for the device there), so
// the uniforms are the CPU's bit for bit; Gaussian noise is Box-Muller on
// the word pairs (0,1) and (2,3) with the CPU's formulas (device_math.cuh).
#pragma once
#include <cstdint>

#include "core/network.hpp"
#include "core/philox.hpp"
#include "cuda/device_math.cuh"

namespace fusedae {
namespace cuda {
namespace dev {

// The four noise values of block `blk`: Gaussian offsets (level·N(0,1)) or
// uniforms in [0, 1) for masking and salt-and-pepper.
template <class T>
__device__ __forceinline__ void noise_block(Noise kind, T level, std::uint64_t seed,
                                            std::uint32_t stream, std::uint64_t blk, T v[4]) {
  const philox::U4 w = philox::philox4x32_10(
      philox::U4{{static_cast<std::uint32_t>(blk), static_cast<std::uint32_t>(blk >> 32), stream,
                  philox::kNoise}},
      static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  const T inv24 = static_cast<T>(1.0 / 16777216.0);
  if (kind == Noise::Gaussian) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      // (0, 1] under the logarithm, [0, 1) for the angle.
      const T u0 = (static_cast<T>(w.v[2 * h] >> 8) + T(1)) * inv24;
      const T u1 = static_cast<T>(w.v[2 * h + 1] >> 8) * inv24;
      const T radius = sqrt(T(-2) * Math<T>::noise_log(u0));
      T sn, cs;
      Math<T>::sincos_2pi(u1, &sn, &cs);
      v[2 * h] = level * radius * cs;
      v[2 * h + 1] = level * radius * sn;
    }
  } else {
#pragma unroll
    for (int h = 0; h < 4; ++h) v[h] = static_cast<T>(w.v[h] >> 8) * inv24;
  }
}

// x̃ from x and its noise value r (salt is 1, pepper 0: inputs in [0, 1]).
template <class T>
__device__ __forceinline__ T corrupt_one(Noise kind, T x, T r, T level, T half) {
  switch (kind) {
    case Noise::Gaussian: return x + r;
    case Noise::Masking: return r < level ? T(0) : x;
    case Noise::SaltPepper: return r < half ? T(1) : (r < level ? T(0) : x);
    case Noise::None: break;
  }
  return x;
}

}  // namespace dev
}  // namespace cuda
}  // namespace fusedae
