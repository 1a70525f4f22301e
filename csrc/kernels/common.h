// Shared definitions for the kernel library: index type, reduction modes, threading thresholds
// and the loop helpers every elementwise kernel is built from.
//
// Conventions for every kernel in csrc/kernels:
//   * T is float or double; each template is explicitly instantiated for both in its .cpp.
//   * Arrays are dense, C-contiguous, and described by raw pointers plus sizes; shape and dtype
//     checks happen in csrc/bindings.cpp before a kernel is called (with the GIL released).
//   * "may alias" in a contract means an output may be the same buffer as that input (in-place);
//     any other overlap between inputs and outputs is not allowed.
//
// Vectorization: portable builds cannot assume AVX2/AVX-512, so the innermost loops
// (the *_chunk functions below and the kernels' row loops) are compiled three times with
// target_clones (x86-64-v4 = AVX-512, v3 = AVX2/FMA, baseline) and the loader picks the best
// one for the CPU. exp/log/tanh/log1p are declared as SIMD functions so those loops call glibc's
// libmvec vector variants, as NumPy's own SIMD loops do; without that, a scalar libm call per
// element runs ~5x slower than NumPy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/threads.h"

#if defined(AG_LIBMVEC)
// Same declarations as glibc's <bits/math-vector.h> makes under -ffast-math; here without
// fast-math, so inf/nan semantics stay IEEE.
extern "C" {
__attribute__((simd("notinbranch"))) double exp(double) noexcept;
__attribute__((simd("notinbranch"))) float expf(float) noexcept;
__attribute__((simd("notinbranch"))) double log(double) noexcept;
__attribute__((simd("notinbranch"))) float logf(float) noexcept;
__attribute__((simd("notinbranch"))) double tanh(double) noexcept;
__attribute__((simd("notinbranch"))) float tanhf(float) noexcept;
__attribute__((simd("notinbranch"))) double log1p(double) noexcept;
__attribute__((simd("notinbranch"))) float log1pf(float) noexcept;
}
#endif

// Forces a helper (or a lambda) into its caller, so it is compiled for each target clone.
#define AG_INLINE __attribute__((always_inline))

#if defined(AG_TARGET_CLONES)
#define AG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define AG_CLONES
#endif

namespace ag {

using index_t = std::int64_t;

// Loss reductions, as in PyTorch.
enum class Reduction : int { None = 0, Mean = 1, Sum = 2 };

// Loops run on the pool (kernels/threads.h) only above their family's threshold: below it the
// hand-off to a worker (a few microseconds, more when it has to be woken) costs more than the
// loop. Cheap ops (add, relu, axpy) need more elements per thread than transcendental ones (exp,
// tanh). The thresholds are run-time settings (backend.native.set_parallel_threshold).
inline index_t threshold_cheap() { return threshold(Family::Cheap); }
inline index_t threshold_heavy() { return threshold(Family::Heavy); }

// Scalar math by type, resolving to the SIMD-declared C functions above.
inline float m_exp(float x) { return ::expf(x); }
inline double m_exp(double x) { return ::exp(x); }
inline float m_log(float x) { return ::logf(x); }
inline double m_log(double x) { return ::log(x); }
inline float m_tanh(float x) { return ::tanhf(x); }
inline double m_tanh(double x) { return ::tanh(x); }
inline float m_log1p(float x) { return ::log1pf(x); }
inline double m_log1p(double x) { return ::log1p(x); }

// body(lo, hi) over [0, n) split into one contiguous block per pool thread, or on the calling
// thread alone when n <= threshold.
template <class F>
inline void parallel_blocks(index_t n, index_t threshold, F body) {
  const index_t nt = get_num_threads();
  if (n <= threshold || nt == 1) {
    if (n > 0) body(index_t{0}, n);
    return;
  }
  const index_t per = (n + nt - 1) / nt;
  parallel_tasks(nt, [&](index_t t) {
    const index_t lo = std::min(n, t * per), hi = std::min(n, lo + per);
    if (lo < hi) body(lo, hi);
  });
}

// The sum over blocks of body(lo, hi) -> double, added in block order. The blocks depend on n and
// the machine only (one per CPU, max_threads()), not on the thread setting, so the sum is the
// same to the bit with 1 thread or all of them.
template <class F>
inline double parallel_sum(index_t n, index_t threshold, F body) {
  const index_t nb = max_threads();
  if (n <= threshold || nb == 1) return n > 0 ? body(index_t{0}, n) : 0.0;
  const index_t per = (n + nb - 1) / nb;
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
  parallel_tasks(nb, [&](index_t t) {
    const index_t lo = std::min(n, t * per), hi = std::min(n, lo + per);
    if (lo < hi) part[static_cast<size_t>(t)] = body(lo, hi);
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

template <class T, class F>
AG_CLONES void map1_chunk(const T* x, T* y, index_t n, F f) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <class T, class F>
AG_CLONES void map2_chunk(const T* a, const T* b, T* y, index_t n, F f) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}

template <class T, class F>
AG_CLONES void map3_chunk(const T* a, const T* b, const T* c, T* y, index_t n, F f) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = f(a[i], b[i], c[i]);
}

// sum of f(a[i], b[i]) in double.
template <class T, class F>
AG_CLONES double sum2_chunk(const T* a, const T* b, index_t n, F f) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) s += static_cast<double>(f(a[i], b[i]));
  return s;
}

// y[i] = f(x[i]) for i < n. y may alias x.
template <class T, class F>
inline void map1(const T* x, T* y, index_t n, index_t threshold, F f) {
  parallel_blocks(n, threshold, [=](index_t lo, index_t hi) { map1_chunk(x + lo, y + lo, hi - lo, f); });
}

// y[i] = f(a[i], b[i]) for i < n. y may alias a or b.
template <class T, class F>
inline void map2(const T* a, const T* b, T* y, index_t n, index_t threshold, F f) {
  parallel_blocks(n, threshold,
                  [=](index_t lo, index_t hi) { map2_chunk(a + lo, b + lo, y + lo, hi - lo, f); });
}

// y[i] = f(a[i], b[i], c[i]) for i < n. y may alias any input.
template <class T, class F>
inline void map3(const T* a, const T* b, const T* c, T* y, index_t n, index_t threshold, F f) {
  parallel_blocks(n, threshold, [=](index_t lo, index_t hi) {
    map3_chunk(a + lo, b + lo, c + lo, y + lo, hi - lo, f);
  });
}

// sum over i < n of f(a[i], b[i]), accumulated in double.
template <class T, class F>
inline double sum2(const T* a, const T* b, index_t n, index_t threshold, F f) {
  return parallel_sum(n, threshold,
                      [=](index_t lo, index_t hi) { return sum2_chunk(a + lo, b + lo, hi - lo, f); });
}

}  // namespace ag
