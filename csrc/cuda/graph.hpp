// CUDA graphs of a network's steps, keyed by what a captured step bakes in:
// the kind of step, the caller's X and Y pointers, the rows, the epoch
// options of a fit, and the generation of the network's own buffers (bumped
// whenever one is reallocated). Counters, the seed and optimizer settings are
// not in the key: the kernels read them from the control block.
//
// A key whose capture or instantiation fails (a routine that cannot be
// captured, no memory for the executable graph) runs eagerly from then on:
// a capture only records work, so nothing of the failed attempt ran, and the
// eager run issues the very same kernels.
//
// The caller's stream is not in the key either: every capture runs on the
// network's private capture stream (the legacy default stream cannot be
// captured at all) and the graph is then launched on whatever stream the
// call names, ordered after the work already there.
//
// A key seen for the first time runs eagerly; the second time it is
// captured, instantiated and launched; after that it is replayed. The eager
// first run means a caller whose pointers change every call never pays for a
// capture, and that every kernel and cuBLAS routine the step uses has been
// loaded and run once, outside any capture, before it is captured.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <functional>

namespace fusedae {
namespace cuda {

struct GraphKey {
  int kind = 0;                 // which op
  std::uintptr_t x = 0, y = 0;  // caller pointers the step reads
  std::int64_t rows = 0;        // rows of the step
  std::int64_t batch = 0;       // fit: batch size
  int shuffle = 0, noise = 0;   // fit: options baked into the gather
  double noise_level = 0.0;
  std::uint64_t generation = 0; // network buffers
  bool operator==(const GraphKey& o) const {
    return kind == o.kind && x == o.x && y == o.y && rows == o.rows && batch == o.batch &&
           shuffle == o.shuffle && noise == o.noise && noise_level == o.noise_level &&
           generation == o.generation;
  }
};

class GraphCache {
 public:
  // A fit replays two graphs (full batches and the last, shorter one) and
  // train_step one: four slots keep a fit and a train_step loop both warm.
  static constexpr int kSlots = 4;

  GraphCache() = default;
  ~GraphCache();
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  // Runs `enqueue` (which issues one step's work on the stream it is given)
  // for `key` on `stream`: eagerly, or captured on `capture_stream` and
  // launched, or replayed (see above).
  void run(const GraphKey& key, cudaStream_t stream, cudaStream_t capture_stream,
           const std::function<void(cudaStream_t)>& enqueue);
  // Drops every graph (their buffers are about to be reallocated).
  void clear() noexcept;

 private:
  struct Slot {
    GraphKey key;
    cudaGraphExec_t exec = nullptr;  // null: seen once, not captured yet
    bool eager = false;              // its capture failed: it runs eagerly from now on
    std::uint64_t last_use = 0;
    bool used = false;
  };
  std::array<Slot, kSlots> slots_{};
  std::uint64_t clock_ = 0;
};

}  // namespace cuda
}  // namespace fusedae
