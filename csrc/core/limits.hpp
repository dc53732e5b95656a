// Sizes the engine is asked for, checked before anything is allocated.
//
// Every buffer's size is a product of caller-chosen numbers (layer widths,
// rows, latent widths). Each request is first estimated in floating point,
// where no product can overflow, and refused with InvalidArgument when it
// exceeds the machine's physical memory; a request that passes is then at
// most a few tens of bits wide, so the exact integer arithmetic that follows
// cannot overflow either. (An absurd width or batch size used to end in
// std::bad_alloc, or in a wrapped size and a too-small buffer.)
#pragma once
#include <cstdint>
#include <limits>
#include <string>

namespace fusedae {

// BLAS takes 32-bit dimensions (scipy-openblas32): every width, row count and
// leading dimension handed to it must be below 2^31.
constexpr std::int64_t kMaxDim = std::numeric_limits<int>::max();

// Step counters (Adam's t, the Philox streams) are incremented by the
// engine; this bound keeps every increment far from overflow.
constexpr std::int64_t kMaxCounter = std::int64_t(1) << 62;

// Bytes of physical memory of this machine (sysconf); 2^46 if unknown.
double physical_memory_bytes();

// Throws InvalidArgument "<name>: <what> would need <bytes> (...), more than
// this machine's memory" when `bytes` exceeds physical memory.
void check_allocation(const std::string& name, const std::string& what, double bytes);

// Throws InvalidArgument "<name>: expected an integer in [lo, hi], got v".
void check_range(const std::string& name, std::int64_t v, std::int64_t lo, std::int64_t hi);

// "12.3 GiB"-style rendering of a byte count.
std::string format_bytes(double bytes);

}  // namespace fusedae
