// What a 2-thread Adam sweep pays for weights that both threads have read.
//
// In a step split by batch rows, every thread reads all of a layer's weights
// (its rows' forward and δ·Wᵀ), then sweeps its share of them. This loop does
// the same with plain arrays: two pinned threads, each iteration a read phase,
// a barrier, then the sweep of the thread's half of p (Adam's arithmetic over
// p, g, m, v, as cpu/kernels.inl's optimizer_sweep), and a barrier. It prints
// the median sweep time of each thread and of the whole iteration (thread 0).
//
//   g++ -O3 -std=c++17 -mavx512f -mavx512dq -mavx512vl -mavx2 -mfma \
//       -mprefer-vector-width=512 -ffp-contract=fast -fno-math-errno -fopenmp-simd \
//       -pthread bench/shared_sweep.cpp -o /tmp/shared_sweep
//   /tmp/shared_sweep READ [N=651008] [THREADS=2] [stream]
//
// READ, what each thread reads before the sweep: `all` (all of p, as the
// step does), `own` (its own half), `other` (the other thread's half),
// `private` (its own half and as many floats again of an array of its own),
// `none`. `stream`: the new p by non-temporal stores. N defaults to the VAE's
// 651,008 parameters (784-400-20).
#include <immintrin.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

static std::atomic<int> arrived{0}, generation{0};

static void barrier(int nt) {
  const int g = generation.load();
  if (arrived.fetch_add(1) == nt - 1) {
    arrived.store(0);
    generation.fetch_add(1);
  } else {
    while (generation.load() == g) {
    }
  }
}

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

static float* filled_floats(long n, float value) {
  float* p = static_cast<float*>(std::aligned_alloc(64, ((n * 4 + 63) / 64) * 64));
  for (long i = 0; i < n; ++i) p[i] = value;
  return p;
}

static float sum(const float* x, long a, long b) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (long i = a; i < b; ++i) s += x[i];
  return s;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s all|own|other|private|none [N] [THREADS] [stream]\n", argv[0]);
    return 2;
  }
  const std::string read = argv[1];
  const long n = argc > 2 ? std::atol(argv[2]) / 16 * 16 : 651008;
  const int nt = argc > 3 ? std::atoi(argv[3]) : 2;
  const bool stream = argc > 4 && std::strcmp(argv[4], "stream") == 0;
  float* p = filled_floats(n, 0.01f);
  float* g = filled_floats(n, 0.001f);
  float* m = filled_floats(n, 0.0f);
  float* v = filled_floats(n, 0.0f);
  std::vector<float*> own_array(nt);
  for (int t = 0; t < nt; ++t) own_array[t] = filled_floats(n / nt, 1.0f);
  std::vector<double> sweep(nt), whole(nt);
  volatile float sink = 0.0f;
  const auto work = [&](int tid) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(tid, &set);
    sched_setaffinity(0, sizeof set, &set);
    const long a = n * tid / nt / 16 * 16, b = tid + 1 == nt ? n : n * (tid + 1) / nt / 16 * 16;
    const int other = (tid + 1) % nt;
    const long oa = n * other / nt / 16 * 16, ob = other + 1 == nt ? n : n * (other + 1) / nt / 16 * 16;
    std::vector<double> ts, tw;
    for (int it = 0; it < 400; ++it) {
      const double t0 = now();
      float s = 0.0f;
      if (read == "all") s = sum(p, 0, n);
      if (read == "own" || read == "private") s = sum(p, a, b);
      if (read == "private") s += sum(own_array[tid], 0, n / nt);
      if (read == "other") s = sum(p, oa, ob);
      sink = s;
      barrier(nt);
      const double t1 = now();
      const __m512 b1 = _mm512_set1_ps(0.9f), c1 = _mm512_set1_ps(0.1f);
      const __m512 b2 = _mm512_set1_ps(0.999f), c2 = _mm512_set1_ps(0.001f);
      const __m512 lr = _mm512_set1_ps(0.001f), bc = _mm512_set1_ps(1.01f), eps = _mm512_set1_ps(1e-8f);
      for (long i = a; i < b; i += 16) {
        const __m512 gi = _mm512_load_ps(g + i);
        const __m512 mi = _mm512_fmadd_ps(b1, _mm512_load_ps(m + i), _mm512_mul_ps(c1, gi));
        const __m512 vi =
            _mm512_fmadd_ps(b2, _mm512_load_ps(v + i), _mm512_mul_ps(c2, _mm512_mul_ps(gi, gi)));
        _mm512_store_ps(m + i, mi);
        _mm512_store_ps(v + i, vi);
        const __m512 step =
            _mm512_div_ps(_mm512_mul_ps(lr, mi), _mm512_fmadd_ps(_mm512_sqrt_ps(vi), bc, eps));
        const __m512 pi = _mm512_sub_ps(_mm512_load_ps(p + i), step);
        if (stream) _mm512_stream_ps(p + i, pi);
        else _mm512_store_ps(p + i, pi);
      }
      if (stream) _mm_sfence();
      const double t2 = now();
      barrier(nt);
      if (it >= 50) {
        ts.push_back(t2 - t1);
        tw.push_back(now() - t0);
      }
    }
    std::sort(ts.begin(), ts.end());
    std::sort(tw.begin(), tw.end());
    sweep[tid] = ts[ts.size() / 2];
    whole[tid] = tw[tw.size() / 2];
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < nt; ++t) threads.emplace_back(work, t);
  work(0);
  for (auto& t : threads) t.join();
  std::printf("read %s, %ld parameters, %d thread(s)%s: sweep", read.c_str(), n, nt,
              stream ? ", streamed" : "");
  for (int t = 0; t < nt; ++t) std::printf(" %.1f", sweep[t] * 1e6);
  std::printf(" us; whole iteration %.1f us\n", whole[0] * 1e6);
  return 0;
}
