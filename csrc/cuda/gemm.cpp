#include "cuda/gemm.hpp"

#include "cuda/cuda_check.hpp"

namespace fusedae {
namespace cuda {

Gemm::Gemm() {
  int dev = 0;
  FUSEDAE_CUDA(cudaGetDevice(&dev));
  int major = 0;
  FUSEDAE_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  // cuBLAS's recommended workspace: 32 MiB on Hopper and later, 4 MiB before.
  workspace_bytes_ = major >= 9 ? (std::size_t(32) << 20) : (std::size_t(4) << 20);
  FUSEDAE_CUBLAS(cublasCreate(&handle_));
  try {
    FUSEDAE_CUDA(cudaMalloc(&workspace_, workspace_bytes_));
    FUSEDAE_CUBLAS(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_HOST));
    FUSEDAE_CUBLAS(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
    FUSEDAE_CUBLAS(cublasSetWorkspace(handle_, workspace_, workspace_bytes_));
  } catch (...) {
    if (workspace_) (void)cudaFree(workspace_);
    (void)cublasDestroy(handle_);
    throw;
  }
}

Gemm::~Gemm() {
  if (handle_) (void)cublasDestroy(handle_);
  if (workspace_) (void)cudaFree(workspace_);
}

void Gemm::set_stream(cudaStream_t stream) {
  if (stream_set_ && stream == stream_) return;
  FUSEDAE_CUBLAS(cublasSetStream(handle_, stream));
  FUSEDAE_CUBLAS(cublasSetWorkspace(handle_, workspace_, workspace_bytes_));
  stream_ = stream;
  stream_set_ = true;
}

void Gemm::rm(bool ta, bool tb, int m, int n, int k, const float* a, int lda,
                     const float* b, int ldb, float* c, int ldc) {
  const float one = 1.0f, zero = 0.0f;
  FUSEDAE_CUBLAS(cublasSgemm(handle_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                             n, m, k, &one, b, ldb, a, lda, &zero, c, ldc));
}

void Gemm::rm(bool ta, bool tb, int m, int n, int k, const double* a, int lda,
                      const double* b, int ldb, double* c, int ldc) {
  const double one = 1.0, zero = 0.0;
  FUSEDAE_CUBLAS(cublasDgemm(handle_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                             n, m, k, &one, b, ldb, a, lda, &zero, c, ldc));
}

}  // namespace cuda
}  // namespace fusedae
