#include "cpu/thread_pool.hpp"

#include "core/float_mode.hpp"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include <new>

namespace fusedae {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long a thread that waits (for a job, a barrier, or the workers of a
// run) spins before it sleeps. Long enough for the usual waits -- the
// imbalance at a barrier, a few microseconds of Python between two steps --
// and short enough that a waiter whose partner has lost its core to another
// process gives the core back at once: a spin of ~1 ms per wait (as this
// pool once had) made a 2-thread W-mnist step 13x slower than one thread
// whenever a single other process was running on a 2-core machine.
constexpr auto kSpin = std::chrono::microseconds(50);

// Spins until pred() holds or kSpin has passed; true if it holds.
template <class Pred>
bool spin_for(Pred pred) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= until) return pred();
  }
}

// Sleeps while *word == value (a futex on Linux; elsewhere a yield loop).
void wait_while_equal(std::atomic<std::uint32_t>* word, std::uint32_t value) {
#ifdef __linux__
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t), "futex word");
  while (word->load(std::memory_order_acquire) == value)
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, value,
            nullptr, nullptr, 0);
#else
  while (word->load(std::memory_order_acquire) == value) std::this_thread::yield();
#endif
}

void wake_all(std::atomic<std::uint32_t>* word) {
#ifdef __linux__
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX,
          nullptr, nullptr, 0);
#else
  (void)word;
#endif
}

}  // namespace

// Waits until *word != value: a spin, then sleep. `sleepers` counts the
// threads asleep (or about to be) so the waker can skip the system call when
// none is. Both sides use sequentially consistent operations: a waker that
// reads sleepers == 0 changed the word before the sleeper's increment, so the
// sleeper's futex call sees the new value and returns at once.
void ThreadPool::await_change(std::atomic<std::uint32_t>* word, std::uint32_t value) {
  if (spin_for([&] { return word->load(std::memory_order_acquire) != value; })) return;
  sleepers_.fetch_add(1);
  wait_while_equal(word, value);
  sleepers_.fetch_sub(1);
}

void ThreadPool::publish_change(std::atomic<std::uint32_t>* word) {
  if (sleepers_.load() > 0) wake_all(word);
}

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
  stop_.store(false);
  sleepers_.store(0);
  pending_.store(0);
  arrived_.store(0);
}

void ThreadPool::ensure_workers() {
  if (static_cast<int>(threads_.size()) == size_ - 1) return;
  const std::uint32_t gen = generation_.load(std::memory_order_acquire);
  for (int id = static_cast<int>(threads_.size()) + 1; id < size_; ++id)
    threads_.emplace_back([this, id, gen] { worker(id, gen); });
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  stop_.store(true);
  generation_.fetch_add(1);  // sleeping workers wake on a change of the word
  wake_all(&generation_);
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
  const std::uint32_t gen = generation_.load(std::memory_order_acquire);
  for (int id = 1; id < n; ++id) threads_.emplace_back([this, id, gen] { worker(id, gen); });
}

void ThreadPool::worker(int id, std::uint32_t seen) {
  for (;;) {
    while (generation_.load(std::memory_order_acquire) == seen && !stop_.load())
      await_change(&generation_, seen);
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    if (float_mode() != mode_) set_float_mode(mode_);
    task_(ctx_, id, n_);
    if (pending_.fetch_sub(1) == 1) publish_change(&pending_);
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
  mode_ = float_mode();
  arrived_.store(0);
  pending_.store(static_cast<std::uint32_t>(n - 1));
  generation_.fetch_add(1);
  publish_change(&generation_);
  task(ctx, 0, n);
  for (std::uint32_t left; (left = pending_.load(std::memory_order_acquire)) > 0;)
    await_change(&pending_, left);
}

void ThreadPool::barrier() {
  const std::uint32_t gen = barrier_generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    barrier_generation_.fetch_add(1);
    publish_change(&barrier_generation_);
    return;
  }
  while (barrier_generation_.load(std::memory_order_acquire) == gen)
    await_change(&barrier_generation_, gen);
}

}  // namespace fusedae
