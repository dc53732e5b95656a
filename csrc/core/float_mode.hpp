// The floating-point mode a CPU call runs in: float32 work flushes subnormal
// numbers to zero, results and operands alike (x86's MXCSR FTZ and DAZ bits,
// AArch64's FPCR.FZ), for the length of the call, and restores the caller's
// mode after it.
//
// Why: on Intel cores an FMA or multiply that meets or makes a subnormal
// takes a microcode assist of ~100+ cycles. Training drives some values there
// as it goes: the VAE's Adam state for pixels that are zero in every image
// ends up subnormal after ~1,500 steps, and its 1-thread step fell from 340
// to 190 steps/s (Xeon with AVX-512; docs/performance.md, "subnormals").
// XLA runs its CPU code with the same flags, which is why JAX did not slow
// down. float64 work keeps the caller's mode: it is the precision the
// engine's results are checked in, and its subnormals (below 2.2e-308) are
// out of reach of these networks.
//
// The pool's workers take the mode of the thread that hands them a job
// (ThreadPool::run), so a result does not depend on which thread computed it.
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <xmmintrin.h>
#define FUSEDAE_FLOAT_MODE_X86 1
#endif

namespace fusedae {
// Internal linkage: the per-instruction-set objects include this too, and an
// inline function with external linkage compiled with -mavx512f (vstmxcsr)
// could be the copy the linker keeps for code that must run without AVX.
namespace {

// The thread's floating-point control word (MXCSR; FPCR on AArch64; 0 where
// neither is known, and setting it does nothing there).
inline std::uint64_t float_mode() {
#if defined(FUSEDAE_FLOAT_MODE_X86)
  return _mm_getcsr();
#elif defined(__aarch64__)
  std::uint64_t fpcr;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
  return fpcr;
#else
  return 0;
#endif
}

inline void set_float_mode(std::uint64_t mode) {
#if defined(FUSEDAE_FLOAT_MODE_X86)
  _mm_setcsr(static_cast<unsigned>(mode));
#elif defined(__aarch64__)
  __asm__ __volatile__("msr fpcr, %0" : : "r"(mode));
#else
  (void)mode;
#endif
}

// The control word with subnormals flushed to zero.
inline std::uint64_t flushing(std::uint64_t mode) {
#if defined(FUSEDAE_FLOAT_MODE_X86)
  return mode | 0x8040u;  // FTZ (bit 15): subnormal results; DAZ (bit 6): subnormal operands
#elif defined(__aarch64__)
  return mode | (std::uint64_t(1) << 24);  // FZ: both
#else
  return mode;
#endif
}

// Flushes subnormals on this thread from construction to destruction when
// `on`; otherwise leaves the mode alone. Nests: each restores what it found.
class FlushSubnormals {
 public:
  explicit FlushSubnormals(bool on) : saved_(float_mode()) {
    const std::uint64_t want = on ? flushing(saved_) : saved_;
    changed_ = want != saved_;
    if (changed_) set_float_mode(want);
  }
  ~FlushSubnormals() {
    if (changed_) set_float_mode(saved_);
  }
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;

 private:
  std::uint64_t saved_;
  bool changed_ = false;
};

}  // namespace
}  // namespace fusedae
