// The deterministic block reduction both kernel files use: a fixed order of
// additions, so a sum over a block is the same on every run and replay.
// Device code only: include from .cu files.
#pragma once

namespace fusedae {
namespace cuda {
namespace kern {

// Sum of v over the 256 threads of a block (1-D or 2-D, warps being 32
// consecutive thread indices); the result is valid in thread 0. `sm` holds
// 8 doubles, and may be reused once this returns.
__device__ __forceinline__ double block_sum(double v, double* sm) {
  constexpr int kBlockThreads = 256;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if ((tid & 31) == 0) sm[tid >> 5] = v;
  __syncthreads();
  double t = 0.0;
  if (tid == 0)
    for (int w = 0; w < (kBlockThreads >> 5); ++w) t += sm[w];
  __syncthreads();
  return t;
}

}  // namespace kern
}  // namespace cuda
}  // namespace fusedae
