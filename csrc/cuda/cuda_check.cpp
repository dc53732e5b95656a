#include "cuda/cuda_check.hpp"

#include <cstring>

namespace fusedae {
namespace cuda {

namespace {
std::string where(const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  return std::string(base ? base + 1 : file) + ":" + std::to_string(line);
}
}  // namespace

void throw_cuda(cudaError_t err, const char* call, const char* file, int line) {
  // Clears the error state of a non-sticky error, so that the next call does
  // not report this one again.
  (void)cudaGetLastError();
  std::string msg = std::string(call) + " failed: " + cudaGetErrorName(err) + " (" +
                    cudaGetErrorString(err) + ") at " + where(file, line);
  if (err == cudaErrorMemoryAllocation) throw OutOfMemory("CUDA out of memory: " + msg);
  throw CudaError(msg);
}

const char* cublas_status_name(cublasStatus_t st) {
  switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

void throw_cublas(cublasStatus_t st, const char* call, const char* file, int line) {
  std::string msg = std::string(call) + " failed: " + cublas_status_name(st) + " at " +
                    where(file, line);
  if (st == CUBLAS_STATUS_ALLOC_FAILED) throw OutOfMemory("CUDA out of memory: " + msg);
  throw CudaError(msg);
}

void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda(err, kernel, file, line);
}

}  // namespace cuda
}  // namespace fusedae
