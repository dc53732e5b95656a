#include "cuda/device.hpp"

#include <mutex>
#include <sstream>

#include "core/errors.hpp"
#include "core/limits.hpp"
#include "cuda/cuda_check.hpp"

namespace fusedae {
namespace cuda {

int device_count() noexcept {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // no driver (cudaErrorInsufficientDriver) or no GPU
    return 0;
  }
  return n;
}

std::string device_name(int i) {
  const int n = device_count();
  if (i < 0 || i >= n)
    throw InvalidArgument("device: expected a device index in [0, " + std::to_string(n) +
                          "), got " + std::to_string(i) +
                          (n == 0 ? " (no CUDA device is usable on this machine)" : ""));
  cudaDeviceProp prop;
  FUSEDAE_CUDA(cudaGetDeviceProperties(&prop, i));
  return prop.name;
}

int runtime_version() {
  int v = 0;
  FUSEDAE_CUDA(cudaRuntimeGetVersion(&v));
  return v;
}

DeviceGuard::DeviceGuard(int device) {
  FUSEDAE_CUDA(cudaGetDevice(&previous_));
  // Set even when it is already the current device: cudaSetDevice also makes
  // its primary context current on this thread, which the driver entry point
  // of the pointer checks (cuMemGetAddressRange) needs on a fresh thread.
  FUSEDAE_CUDA(cudaSetDevice(device));
  restore_ = previous_ != device;
}

DeviceGuard::~DeviceGuard() {
  if (restore_) (void)cudaSetDevice(previous_);
}

namespace {

// cuMemGetAddressRange from the driver, found through the runtime (so nothing
// links libcuda): the base and size of the allocation an address lies in.
// Null where the driver does not provide it; the extent check is then skipped.
using AddressRangeFn = int (*)(unsigned long long* base, std::size_t* size,
                               unsigned long long ptr);

AddressRangeFn address_range_fn() {
  static AddressRangeFn fn = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &p, 12000, cudaEnableDefault,
                                         &q) == cudaSuccess &&
        q == cudaDriverEntryPointSuccess)
      fn = reinterpret_cast<AddressRangeFn>(p);
    else
      (void)cudaGetLastError();
  });
  return fn;
}

// Pieces of a mapped range followed by the extent check: 2^17 pieces of the
// smallest granularity (2 MiB) are 256 GiB, more than any GPU holds.
constexpr int kMaxPieces = 1 << 17;

std::string bytes_text(double b) {
  std::ostringstream o;
  o.precision(6);
  o << b << " bytes";
  return o.str();
}

}  // namespace

void check_device_pointer(const char* name, std::uintptr_t ptr, int device, std::size_t align,
                          double bytes, const std::string& what) {
  const std::string n(name);
  if (ptr == 0) throw InvalidArgument(n + ": null data pointer");
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(ptr));
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw InvalidArgument(n + ": not a pointer CUDA knows (" + cudaGetErrorString(err) +
                          "); expected device memory on device " + std::to_string(device));
  }
  switch (attr.type) {
    case cudaMemoryTypeDevice:
      if (attr.device != device)
        throw InvalidArgument(n + ": expected memory on device " + std::to_string(device) +
                              ", got memory on device " + std::to_string(attr.device));
      break;
    case cudaMemoryTypeManaged:
      break;  // migrates on demand to whichever device reads it
    case cudaMemoryTypeHost:
      throw InvalidArgument(n + ": expected device memory on device " + std::to_string(device) +
                            ", got page-locked host memory");
    default:
      throw InvalidArgument(n + ": expected device memory on device " + std::to_string(device) +
                            ", got host memory (a pointer CUDA does not know)");
  }
  if (ptr % align != 0) throw InvalidArgument(n + ": expected an aligned array");
  if (AddressRangeFn fn = address_range_fn()) {
    unsigned long long base = 0;
    std::size_t size = 0;
    if (fn(&base, &size, static_cast<unsigned long long>(ptr)) == 0) {
      // A virtual-memory (cuMemMap) allocation built from several physical
      // pieces reports only the piece that holds the address (PyTorch's
      // expandable segments map 2 MiB or 20 MiB pieces into one range): an
      // array that spans pieces continues into the next one, mapped without
      // a gap. Follow such pieces until the bytes are covered.
      unsigned long long end = base + size;
      for (int piece = 0; piece < kMaxPieces && static_cast<double>(end - ptr) < bytes; ++piece) {
        unsigned long long next = 0;
        std::size_t next_size = 0;
        if (fn(&next, &next_size, end) != 0 || next != end || next_size == 0) break;
        end = next + next_size;
      }
      const double avail = static_cast<double>(end - ptr);
      if (bytes > avail)
        throw InvalidArgument(n + ": " + what + " need " + bytes_text(bytes) +
                              " from this address, its device allocation holds " +
                              bytes_text(avail));
    }
  }
}

void check_stream(cudaStream_t stream, int device) {
  // The two special handles (legacy default, per-thread default) mean "this
  // thread's current device", which every op has made `device`.
  if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread) return;
  int d = -1;
  const cudaError_t err = cudaStreamGetDevice(stream, &d);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw InvalidArgument(std::string("stream: not a CUDA stream (") + cudaGetErrorString(err) +
                          ")");
  }
  if (d != device)
    throw InvalidArgument("stream: expected a stream of device " + std::to_string(device) +
                          ", got one of device " + std::to_string(d));
}

void check_not_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    // (The legacy stream while another stream captures in global mode: the
    // op's first call on it reports that, naming the call.)
    (void)cudaGetLastError();
    return;
  }
  if (status != cudaStreamCaptureStatusNone)
    throw InvalidArgument("stream: it is being captured into a CUDA graph; the engine's ops "
                          "wait for their results and cannot be captured (each op replays "
                          "its own graph)");
}

void* device_alloc(std::size_t bytes, const char* what, int device) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 256 : bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    throw OutOfMemory(std::string("CUDA out of memory: ") + format_bytes(static_cast<double>(bytes)) +
                      " of " + what + " on device " + std::to_string(device) + " (" +
                      cudaGetErrorString(err) + ")");
  }
  return p;
}

void grow_permutation(std::int64_t rows, int device, std::int64_t** dev, std::int64_t** host,
                      std::int64_t* capacity) {
  if (*dev) FUSEDAE_CUDA(cudaFree(*dev));
  if (*host) FUSEDAE_CUDA(cudaFreeHost(*host));
  *dev = nullptr;
  *host = nullptr;
  *capacity = 0;
  const std::size_t bytes = sizeof(std::int64_t) * static_cast<std::size_t>(rows);
  *dev = static_cast<std::int64_t*>(device_alloc(bytes, "shuffle permutation", device));
  FUSEDAE_CUDA(cudaMallocHost(reinterpret_cast<void**>(host), bytes));
  *capacity = rows;
}

}  // namespace cuda
}  // namespace fusedae
