// The engine's CPU kernels (cpu/fastmath.inl, cpu/kernels.inl), compiled into
// namespace fusedae::cpu::isa_bench with whatever flags the including
// microbenchmark is built with, as csrc/cpu/network_isa.cpp.in compiles them
// once per instruction set. For bench/*.cpp only; the headers' build commands
// give the AVX-512 variant's flags.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <immintrin.h>

#include "core/errors.hpp"
#include "core/network.hpp"
#include "core/philox.hpp"

namespace fusedae {
namespace cpu {
namespace isa_bench {
#include "cpu/fastmath.inl"
#include "cpu/kernels.inl"
}  // namespace isa_bench
}  // namespace cpu
}  // namespace fusedae
