// CUDA and cuBLAS status codes as C++ exceptions. Every runtime and cuBLAS
// call of the backend goes through FUSEDAE_CUDA / FUSEDAE_CUBLAS, so a failure
// reaches Python as an exception naming the call that failed (and where),
// never as a status code someone forgot to read.
#pragma once
#include <cuda_runtime_api.h>
#include <cublas_v2.h>

#include <stdexcept>
#include <string>

namespace fusedae {
namespace cuda {

// A CUDA runtime or cuBLAS call failed (Python: fusedae._engine_cuda.CudaError,
// a RuntimeError). Errors of the arguments are InvalidArgument, as on the CPU.
struct CudaError : std::runtime_error {
  explicit CudaError(const std::string& what) : std::runtime_error(what) {}
};

// The device could not provide the memory asked for (Python: a MemoryError).
// Kept apart from CudaError so that callers can catch it and retry smaller.
struct OutOfMemory : std::runtime_error {
  explicit OutOfMemory(const std::string& what) : std::runtime_error(what) {}
};

[[noreturn]] void throw_cuda(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t st, const char* call, const char* file, int line);

inline void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err != cudaSuccess) throw_cuda(err, call, file, line);
}
inline void check_cublas(cublasStatus_t st, const char* call, const char* file, int line) {
  if (st != CUBLAS_STATUS_SUCCESS) throw_cublas(st, call, file, line);
}

// A kernel launch reports its configuration errors through cudaGetLastError.
void check_launch(const char* kernel, const char* file, int line);

const char* cublas_status_name(cublasStatus_t st);

}  // namespace cuda
}  // namespace fusedae

#define FUSEDAE_CUDA(call) ::fusedae::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define FUSEDAE_CUBLAS(call) ::fusedae::cuda::check_cublas((call), #call, __FILE__, __LINE__)
#define FUSEDAE_LAUNCHED(name) ::fusedae::cuda::check_launch(name, __FILE__, __LINE__)
