// Run-time choice of the kernel variant: the best instruction set this CPU
// (and its OS) supports, unless the caller names one (tests run them all).
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/network.hpp"

namespace fusedae {
namespace cpu {
#define FUSEDAE_DECLARE(isa)                                                                 \
  namespace isa_##isa {                                                                      \
  Network* make_network(const NetworkConfig& cfg);                                           \
  void latent_normal_draws(DType dtype, std::uint64_t seed, std::uint32_t stream, std::int64_t n, \
                           void* out);                                                       \
  void philox_block_words(std::uint64_t seed, std::uint32_t tag, std::uint32_t stream,       \
                          std::uint64_t first_block, std::uint32_t* out);                    \
  }
FUSEDAE_DECLARE(generic)
#ifdef FUSEDAE_HAVE_AVX2
FUSEDAE_DECLARE(avx2)
#endif
#ifdef FUSEDAE_HAVE_AVX512
FUSEDAE_DECLARE(avx512)
namespace isa_avx512 {
bool own_gemm_f32(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                  int lda, const float* b, int ldb, float beta, float* c, int ldc);
}
#endif
#undef FUSEDAE_DECLARE
#if defined(__x86_64__) || defined(_M_X64)
double fma_rate_256();
double fma_rate_512();
#endif
}  // namespace cpu

std::vector<std::string> supported_cpu_isas() {
  std::vector<std::string> out;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
#ifdef FUSEDAE_HAVE_AVX512
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    out.push_back("avx512");
#endif
#ifdef FUSEDAE_HAVE_AVX2
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back("avx2");
#endif
#endif
  out.push_back("generic");
  return out;
}

std::string preferred_blas_coretype() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx2") ||
      !__builtin_cpu_supports("fma"))
    return "";  // OpenBLAS's own choice is the only sensible one
  // 512-bit FMAs at (about) the 256-bit rate: the AVX2 kernels are the faster.
  if (cpu::fma_rate_512() < 1.4 * cpu::fma_rate_256()) return "Haswell";
#endif
  return "";
}

std::vector<std::pair<int, double>> fma_rates() {
  std::vector<std::pair<int, double>> out;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    out.emplace_back(256, cpu::fma_rate_256());
  if (__builtin_cpu_supports("avx512f")) out.emplace_back(512, cpu::fma_rate_512());
#endif
  return out;
}

// `return cpu::isa_<isa>::fn(...)` for the variant `isa` names (one of
// supported_cpu_isas(); generic for any other name).
#ifdef FUSEDAE_HAVE_AVX512
#define FUSEDAE_IF_AVX512(...) __VA_ARGS__
#else
#define FUSEDAE_IF_AVX512(...)
#endif
#ifdef FUSEDAE_HAVE_AVX2
#define FUSEDAE_IF_AVX2(...) __VA_ARGS__
#else
#define FUSEDAE_IF_AVX2(...)
#endif
#define FUSEDAE_RETURN_VARIANT(isa, fn, ...)                                        \
  FUSEDAE_IF_AVX512(if ((isa) == "avx512") return cpu::isa_avx512::fn(__VA_ARGS__);) \
  FUSEDAE_IF_AVX2(if ((isa) == "avx2") return cpu::isa_avx2::fn(__VA_ARGS__);)       \
  return cpu::isa_generic::fn(__VA_ARGS__)

namespace {
Network* make_variant_network(const std::string& isa, const NetworkConfig& cfg) {
  FUSEDAE_RETURN_VARIANT(isa, make_network, cfg);
}
}  // namespace

std::string resolve_cpu_isa(const std::string& isa) {
  const auto supported = supported_cpu_isas();
  const std::string pick = isa == "auto" ? supported.front() : isa;
  for (const auto& s : supported)
    if (s == pick) return pick;
  std::string list;
  for (const auto& s : supported) list += (list.empty() ? "'" : ", '") + s + "'";
  throw InvalidArgument("isa: '" + isa + "' is not available on this CPU; expected 'auto' or " +
                        list);
}

std::unique_ptr<Network> make_cpu_network(const NetworkConfig& cfg, const std::string& isa) {
  const std::string pick = resolve_cpu_isa(isa);
  cfg.validate();
  return std::unique_ptr<Network>(make_variant_network(pick, cfg));
}

void latent_normal(const std::string& isa, DType dtype, std::uint64_t seed, std::uint32_t stream,
                   std::int64_t n, void* out) {
  FUSEDAE_RETURN_VARIANT(isa, latent_normal_draws, dtype, seed, stream, n, out);
}

void philox_blocks(const std::string& isa, std::uint64_t seed, std::uint32_t tag,
                   std::uint32_t stream, std::uint64_t first_block, std::uint32_t* out) {
  FUSEDAE_RETURN_VARIANT(isa, philox_block_words, seed, tag, stream, first_block, out);
}

bool own_gemm_f32(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                  int lda, const float* b, int ldb, float beta, float* c, int ldc) {
#ifdef FUSEDAE_HAVE_AVX512
  for (const auto& s : supported_cpu_isas())
    if (s == "avx512")
      return cpu::isa_avx512::own_gemm_f32(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
                                           c, ldc);
#endif
  (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda;
  (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
  return false;
}

}  // namespace fusedae
