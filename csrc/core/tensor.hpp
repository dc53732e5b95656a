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
// Strides are in elements. The engine's kernels take C-contiguous matrices
// (col_stride 1, row_stride == cols); check_matrix() refuses anything else.
struct MatrixView {
  void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t row_stride = 0;
  std::int64_t col_stride = 1;
  DType dtype = DType::Float32;
  Device device = Device::CPU;
  bool writeable = false;
};

// Throws InvalidArgument naming `name` unless `m` is a CPU matrix of `dtype`
// with `cols` columns (any width if cols < 0), 1 <= rows < 2^31, contiguous,
// and (if asked) writeable and free of NaN and infinity. `step_flops`: the
// forward flops of the pooled step that reads m next (0: none); the NaN scan
// of a large m is shared with the pool only where that step is
// (kParallelFlops, core/network.hpp), since waking the pool for a step that
// runs on the caller alone would cost more than the scan.
void check_matrix(const MatrixView& m, const char* name, DType dtype, std::int64_t cols,
                  bool require_finite, bool require_writeable = false, double step_flops = 0.0);

}  // namespace fusedae
