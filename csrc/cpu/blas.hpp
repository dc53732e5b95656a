// GEMM through the OpenBLAS that pip installs (scipy-openblas32, the wheel
// NumPy's own BLAS comes from). The library is opened at run time from the
// path Python hands us, so the extension has no link-time dependency on a
// path inside some build environment, and OpenBLAS's own run-time CPU
// dispatch (DYNAMIC_ARCH) picks its kernels for the machine it runs on. It
// is called single-threaded: the engine's own pool splits the work.
#pragma once
#include <string>

namespace fusedae {
namespace blas {

// Row-major C = alpha * op(A) * op(B) + beta * C.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc);
void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a,
          int lda, const double* b, int ldb, double beta, double* c, int ldc);

void load(const std::string& path);  // throws BlasMissing
bool loaded();
std::string corename();
void require();  // throws BlasMissing when not loaded
// Puts OpenBLAS back to one thread if something (threadpoolctl, say, which
// reaches every BLAS in the process) raised it: the engine's pool already
// runs one GEMM per thread, and OpenBLAS threads on top would oversubscribe.
void keep_single_threaded();

}  // namespace blas
}  // namespace fusedae
