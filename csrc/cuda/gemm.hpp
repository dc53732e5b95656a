// Row-major GEMMs on cuBLAS, one handle per network.
//
// cuBLAS is column-major; a row-major m×n matrix with leading dimension ld
// is, bit for bit, the column-major n×m matrix Cᵀ with the same ld. So the
// row-major C = op(A)·op(B) is computed as the column-major
// Cᵀ = op(B)ᵀ·op(A)ᵀ: operands swapped, transposition flags kept, m and n
// swapped. No data is ever transposed.
//
// Default math mode, compute type 32F for float32: no TF32, so float32
// results agree with the CPU's to float32 rounding (~1e-6 relative per
// product), not TF32's 1e-3.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace fusedae {
namespace cuda {

class Gemm {
 public:
  // Creates the handle and its workspace on the current device.
  Gemm();
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Every GEMM after this goes to `stream`. cublasSetStream resets the
  // workspace to cuBLAS's own pool, so ours is set again each time: a
  // captured GEMM must not take memory from a pool during capture.
  void set_stream(cudaStream_t stream);

  // Row-major C (m×n, ldc) = op(A)·op(B), op(A) m×k, op(B) k×n.
  void rm(bool trans_a, bool trans_b, int m, int n, int k, const float* a, int lda,
          const float* b, int ldb, float* c, int ldc);
  void rm(bool trans_a, bool trans_b, int m, int n, int k, const double* a, int lda,
          const double* b, int ldb, double* c, int ldc);

 private:
  cublasHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  cudaStream_t stream_ = nullptr;
  bool stream_set_ = false;
};

}  // namespace cuda
}  // namespace fusedae
