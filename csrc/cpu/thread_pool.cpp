#include "cpu/thread_pool.hpp"

#include <pthread.h>
#include <sched.h>

#include <cstdlib>
#include <new>

namespace fusedae {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// A worker spins this many polls for the next job before sleeping: long
// enough to bridge the gap between two steps of a training loop (a few
// microseconds of Python), short enough not to burn a core when idle.
constexpr int kSpinPolls = 1 << 16;

}  // namespace

int default_thread_count() {
  if (const char* env = std::getenv("FUSEDAE_NUM_THREADS")) {
    // strtol, not atoi: an out-of-range value is not undefined behaviour.
    const long n = std::strtol(env, nullptr, 10);
    if (n >= 1) return n < kMaxThreads ? static_cast<int>(n) : kMaxThreads;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n >= 1) return n < kMaxThreads ? n : kMaxThreads;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? (hw < static_cast<unsigned>(kMaxThreads) ? static_cast<int>(hw) : kMaxThreads) : 1;
}

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool;
  return pool;
}

ThreadPool::ThreadPool() {
  set_size(default_thread_count());
  pthread_atfork(nullptr, nullptr, [] { ThreadPool::instance().reset_after_fork(); });
}

void ThreadPool::reset_after_fork() {
  // The std::thread objects name threads that do not exist here: they are
  // moved into a vector that is deliberately never destroyed (destroying or
  // joining them would abort or hang). Locks are rebuilt in place.
  new std::vector<std::thread>(std::move(threads_));
  threads_ = std::vector<std::thread>();
  new (&run_mutex_) std::mutex();
  new (&sleep_mutex_) std::mutex();
  new (&wake_) std::condition_variable();
  stop_.store(false);
  pending_.store(0);
  arrived_.store(0);
}

void ThreadPool::ensure_workers() {
  if (static_cast<int>(threads_.size()) == size_ - 1) return;
  const std::uint64_t gen = generation_.load(std::memory_order_acquire);
  for (int id = static_cast<int>(threads_.size()) + 1; id < size_; ++id)
    threads_.emplace_back([this, id, gen] { worker(id, gen); });
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(sleep_mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  stop_.store(false);
}

void ThreadPool::set_size(int n) {
  if (n < 1) n = 1;
  if (n > kMaxThreads) n = kMaxThreads;
  std::lock_guard<std::mutex> lk(run_mutex_);
  if (n == size_ && static_cast<int>(threads_.size()) == n - 1) return;
  stop_workers();
  size_ = n;
  // The generation is read here, not in the new thread: a thread that starts
  // late would otherwise take a job published meanwhile as already seen.
  const std::uint64_t gen = generation_.load(std::memory_order_acquire);
  for (int id = 1; id < n; ++id) threads_.emplace_back([this, id, gen] { worker(id, gen); });
}

void ThreadPool::worker(int id, std::uint64_t seen) {
  for (;;) {
    int polls = 0;
    while (generation_.load(std::memory_order_acquire) == seen && !stop_.load()) {
      if (++polls < kSpinPolls) {
        cpu_relax();
      } else {
        std::unique_lock<std::mutex> lk(sleep_mutex_);
        wake_.wait(lk, [&] {
          return generation_.load(std::memory_order_acquire) != seen || stop_.load();
        });
      }
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    task_(ctx_, id, n_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(Task task, void* ctx) {
  std::lock_guard<std::mutex> lk(run_mutex_);
  const int n = size_;
  if (n == 1) {
    task(ctx, 0, 1);
    return;
  }
  ensure_workers();
  task_ = task;
  ctx_ = ctx;
  n_ = n;
  arrived_.store(0);
  pending_.store(n - 1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> sl(sleep_mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  task(ctx, 0, n);
  int polls = 0;
  while (pending_.load(std::memory_order_acquire) > 0) {
    if (++polls < kSpinPolls) cpu_relax();
    else std::this_thread::yield();
  }
}

void ThreadPool::barrier() {
  const std::uint64_t gen = barrier_generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    barrier_generation_.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  int polls = 0;
  while (barrier_generation_.load(std::memory_order_acquire) == gen) {
    if (++polls < kSpinPolls) cpu_relax();
    else std::this_thread::yield();
  }
}

}  // namespace fusedae
