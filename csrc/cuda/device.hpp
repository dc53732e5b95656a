// The GPU as the backend sees it: which devices exist, the current device
// around a call, and the checks on caller pointers (device memory, on this
// device, aligned, large enough) that every op makes before any work.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace fusedae {
namespace cuda {

// Number of usable GPUs; 0 when there is no driver or no GPU. Never throws:
// importing the module and asking must work on any machine.
int device_count() noexcept;
// The name of device `i` (InvalidArgument if there is no such device).
std::string device_name(int i);
// cudaRuntimeGetVersion of the runtime linked in (e.g. 13000), no driver needed.
int runtime_version();

// Makes `device` current for the calling thread during a scope and restores
// the previous one after: ops may be called from any thread, with any device
// current, and leave the caller's choice as it was.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  bool restore_ = false;
};

// cudaMalloc of `bytes` on the current device (which must be `device`), or
// OutOfMemory naming `what` and the device.
void* device_alloc(std::size_t bytes, const char* what, int device);

// A fit's shuffle permutation: the device array its gather reads and the
// pinned host array it is computed in (the CPU's code) and copied from,
// grown to `rows` entries; the caller has waited for its earlier ops.
void grow_permutation(std::int64_t rows, int device, std::int64_t** dev, std::int64_t** host,
                      std::int64_t* capacity);

// Throws InvalidArgument naming `name` unless `ptr` is device (or managed)
// memory usable on `device`, aligned to `align` bytes, with at least `bytes`
// bytes from `ptr` on in its allocation (`what` says what those bytes are,
// for the message).
void check_device_pointer(const char* name, std::uintptr_t ptr, int device, std::size_t align,
                          double bytes, const std::string& what);

// Throws InvalidArgument naming "stream" if `stream` belongs to another
// device than `device` (the legacy and per-thread default streams belong to
// the current device, which the caller has set).
void check_stream(cudaStream_t stream, int device);

// Throws InvalidArgument naming "stream" if `stream` is being captured into a
// CUDA graph (an op would wait on it, and its waits on the network's event
// would break the caller's capture).
void check_not_capturing(cudaStream_t stream);

}  // namespace cuda
}  // namespace fusedae
