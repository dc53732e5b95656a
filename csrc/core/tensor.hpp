// Backend-neutral descriptions of the data the engine works on.
#pragma once
#include <cstdint>
#include <cstddef>

namespace fusedae {

enum class DType : int { Float32 = 0, Float64 = 1 };
enum class Device : int { CPU = 0, CUDA = 1 };

inline std::size_t dtype_size(DType t) { return t == DType::Float32 ? 4 : 8; }
inline const char* dtype_name(DType t) { return t == DType::Float32 ? "float32" : "float64"; }

// A dense row-major matrix view: the engine never owns caller memory.
// `row_stride` is in elements; the bindings only hand over C-contiguous
// arrays, so it equals `cols` everywhere today.
struct MatrixView {
  const void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t row_stride = 0;
  DType dtype = DType::Float32;
  Device device = Device::CPU;
};

}  // namespace fusedae
