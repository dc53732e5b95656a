#include "cpu/blas.hpp"

#include <dlfcn.h>

#include <atomic>
#include <mutex>

#include "core/errors.hpp"

namespace fusedae {
namespace blas {

namespace {

// CBLAS enums, fixed by the CBLAS standard.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using sgemm_t = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                         int, float, float*, int);
using dgemm_t = void (*)(int, int, int, int, int, int, double, const double*, int,
                         const double*, int, double, double*, int);
using set_threads_t = void (*)(int);
using get_threads_t = int (*)();
using corename_t = const char* (*)();

struct Table {
  sgemm_t sgemm = nullptr;
  dgemm_t dgemm = nullptr;
  set_threads_t set_threads = nullptr;
  get_threads_t get_threads = nullptr;
  corename_t corename = nullptr;
};

Table g_table;
std::atomic<bool> g_loaded{false};
std::mutex g_load_mutex;

void* symbol(void* handle, const char* prefixed, const char* plain) {
  void* p = dlsym(handle, prefixed);
  return p ? p : dlsym(handle, plain);
}

}  // namespace

void load(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  if (g_loaded.load()) return;
  // RTLD_LOCAL: our symbols never shadow NumPy's own BLAS or anyone else's.
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) throw BlasMissing(std::string("could not open the BLAS library: ") + dlerror());
  Table t;
  t.sgemm = reinterpret_cast<sgemm_t>(symbol(h, "scipy_cblas_sgemm", "cblas_sgemm"));
  t.dgemm = reinterpret_cast<dgemm_t>(symbol(h, "scipy_cblas_dgemm", "cblas_dgemm"));
  t.set_threads = reinterpret_cast<set_threads_t>(
      symbol(h, "scipy_openblas_set_num_threads", "openblas_set_num_threads"));
  t.get_threads = reinterpret_cast<get_threads_t>(
      symbol(h, "scipy_openblas_get_num_threads", "openblas_get_num_threads"));
  t.corename = reinterpret_cast<corename_t>(
      symbol(h, "scipy_openblas_get_corename", "openblas_get_corename"));
  if (!t.sgemm || !t.dgemm) {
    dlclose(h);
    throw BlasMissing("the library at '" + path + "' exports no cblas_sgemm/cblas_dgemm");
  }
  // The engine splits its own work across its thread pool
  // (cpu/thread_pool.hpp): OpenBLAS runs single-threaded inside it, so
  // there is one pool of threads, not two spinning against each other.
  if (t.set_threads) t.set_threads(1);
  g_table = t;
  g_loaded.store(true);
}

bool loaded() { return g_loaded.load(); }

void require() {
  if (!g_loaded.load())
    throw BlasMissing("no BLAS loaded: import fusedae (it loads scipy-openblas32) first");
}

std::string corename() {
  if (!loaded() || !g_table.corename) return "unknown";
  const char* s = g_table.corename();
  return s ? s : "unknown";
}

void keep_single_threaded() {
  if (g_table.get_threads && g_table.set_threads && g_table.get_threads() != 1)
    g_table.set_threads(1);
}

void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  g_table.sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, m, n, k, alpha, a,
                lda, b, ldb, beta, c, ldc);
}

void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc) {
  g_table.dgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, m, n, k, alpha, a,
                lda, b, ldb, beta, c, ldc);
}

}  // namespace blas
}  // namespace fusedae
