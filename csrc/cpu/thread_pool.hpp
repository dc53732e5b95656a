// The engine's one thread pool. OpenBLAS runs single-threaded inside it: a
// step splits its own work (batch rows for the forward pass and the deltas,
// weight rows for dW, parameter ranges for the optimizer) across the pool, so
// each thread's GEMM is followed by its epilogue on the rows it just wrote,
// and no second pool spins against this one.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace fusedae {

// Threads a pool may have: far more than any CPU this runs on has cores, far
// fewer than would exhaust the process's threads (each has its own stack).
constexpr int kMaxThreads = 1024;

class ThreadPool {
 public:
  using Task = void (*)(void* ctx, int tid, int nthreads);

  static ThreadPool& instance();

  int size() const { return size_; }
  void set_size(int n);  // threads including the caller; clamped to [1, kMaxThreads]

  // Runs task(ctx, tid, n) on every thread of the pool, n = size(), the
  // caller being tid 0; returns when all are done. Concurrent callers take
  // turns. (Work too small to split is run by the caller alone, without the
  // pool: every run() uses all threads, so no worker can see a half-published
  // job it does not take part in.) The workers run it in the caller's
  // floating-point mode (core/float_mode.hpp).
  void run(Task task, void* ctx);

  // Every thread of the current run() must call it; none returns until all
  // have arrived.
  void barrier();

  ~ThreadPool();

 private:
  ThreadPool();
  // In a child after fork() only the forking thread exists: forget the
  // parent's workers (and any lock another parent thread held); the next
  // run() starts new ones.
  void reset_after_fork();
  void ensure_workers();
  void worker(int id, std::uint32_t seen);
  // Spin-then-sleep wait for *word to differ from value, and its wake-up.
  void await_change(std::atomic<std::uint32_t>* word, std::uint32_t value);
  void publish_change(std::atomic<std::uint32_t>* word);
  void stop_workers();

  int size_ = 1;
  std::vector<std::thread> threads_;
  std::mutex run_mutex_;  // one run() at a time

  // Job slot, published by bumping generation_.
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  int n_ = 1;
  std::uint64_t mode_ = 0;  // the caller's floating-point control word
  // 32-bit words: a sleeping thread waits on them with a futex.
  std::atomic<std::uint32_t> generation_{0};
  std::atomic<std::uint32_t> pending_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> sleepers_{0};  // threads in (or entering) a futex wait

  // Barrier state.
  std::atomic<int> arrived_{0};
  std::atomic<std::uint32_t> barrier_generation_{0};
};

// FUSEDAE_NUM_THREADS, else the CPUs this process may use; in [1, kMaxThreads].
int default_thread_count();

}  // namespace fusedae
