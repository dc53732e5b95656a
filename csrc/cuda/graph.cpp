#include "cuda/graph.hpp"

#include <exception>

#include "cuda/cuda_check.hpp"

namespace fusedae {
namespace cuda {

GraphCache::~GraphCache() { clear(); }

void GraphCache::clear() noexcept {
  for (Slot& s : slots_) {
    if (s.exec) (void)cudaGraphExecDestroy(s.exec);
    s = Slot{};
  }
}

namespace {

// Ends a capture that an exception interrupted, so the capture stream is
// usable again and the half-built graph is freed.
struct CaptureScope {
  cudaStream_t stream;
  bool open = true;
  explicit CaptureScope(cudaStream_t s) : stream(s) {
    // Thread-local mode: only this thread's unsafe calls (an allocation, a
    // synchronisation) are refused while it captures; other threads driving
    // other networks are not disturbed.
    FUSEDAE_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  }
  cudaGraph_t end() {
    cudaGraph_t g = nullptr;
    open = false;
    FUSEDAE_CUDA(cudaStreamEndCapture(stream, &g));
    return g;
  }
  ~CaptureScope() {
    if (!open) return;
    cudaGraph_t g = nullptr;
    if (cudaStreamEndCapture(stream, &g) == cudaSuccess && g) (void)cudaGraphDestroy(g);
    (void)cudaGetLastError();
  }
};

}  // namespace

void GraphCache::run(const GraphKey& key, cudaStream_t stream, cudaStream_t capture_stream,
                     const std::function<void(cudaStream_t)>& enqueue) {
  ++clock_;
  Slot* slot = nullptr;
  for (Slot& s : slots_)
    if (s.used && s.key == key) slot = &s;
  if (!slot) {
    // First sight of this key: take the least recently used slot, run eagerly.
    for (Slot& s : slots_)
      if (!s.used) {
        slot = &s;
        break;
      }
    if (!slot) {
      slot = &slots_[0];
      for (Slot& s : slots_)
        if (s.last_use < slot->last_use) slot = &s;
    }
    if (slot->exec) (void)cudaGraphExecDestroy(slot->exec);
    *slot = Slot{};
    slot->key = key;
    slot->used = true;
    slot->last_use = clock_;
    enqueue(stream);
    return;
  }
  slot->last_use = clock_;
  if (!slot->exec && !slot->eager) {
    try {
      cudaGraph_t graph = nullptr;
      {
        CaptureScope capture(capture_stream);
        enqueue(capture_stream);
        graph = capture.end();
      }
      cudaGraphExec_t exec = nullptr;
      const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
      (void)cudaGraphDestroy(graph);
      check_cuda(err, "cudaGraphInstantiate", __FILE__, __LINE__);
      slot->exec = exec;
    } catch (const std::exception&) {
      // Nothing was run (see graph.hpp); an error that is the device's, not
      // the capture's, comes back from the eager run.
      (void)cudaGetLastError();
      slot->eager = true;
    }
  }
  if (slot->eager) {
    enqueue(stream);
    return;
  }
  FUSEDAE_CUDA(cudaGraphLaunch(slot->exec, stream));
}

}  // namespace cuda
}  // namespace fusedae
