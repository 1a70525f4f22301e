// Shared definitions for the kernel library: index type, reduction modes, threading thresholds
// and the parallel loop helpers every elementwise kernel is built from.
//
// Conventions for every kernel in csrc/kernels:
//   * T is float or double; each template is explicitly instantiated for both in its .cpp.
//   * Arrays are dense, C-contiguous, and described by raw pointers plus sizes; shape and dtype
//     checks happen in csrc/bindings.cpp before a kernel is called (with the GIL released).
//   * "may alias" in a contract means an output may be the same buffer as that input (in-place);
//     any other overlap between inputs and outputs is not allowed.
#pragma once

#include <cstdint>

namespace ag {

using index_t = std::int64_t;

// Loss reductions, as in PyTorch.
enum class Reduction : int { None = 0, Mean = 1, Sum = 2 };

// Elementwise loops run on OpenMP threads only above these element counts: below them the
// fork/join (a few microseconds on this class of machine) costs more than the loop itself.
// Cheap ops (add, relu, axpy) need more elements per thread than transcendental ones (exp, tanh).
constexpr index_t kParallelCheap = index_t{1} << 17;
constexpr index_t kParallelHeavy = index_t{1} << 14;

// y[i] = f(x[i]) for i < n. y may alias x.
template <class T, class F>
inline void map1(const T* x, T* y, index_t n, index_t threshold, F f) {
#pragma omp parallel for simd schedule(static) if (n > threshold)
  for (index_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// y[i] = f(a[i], b[i]) for i < n. y may alias a or b.
template <class T, class F>
inline void map2(const T* a, const T* b, T* y, index_t n, index_t threshold, F f) {
#pragma omp parallel for simd schedule(static) if (n > threshold)
  for (index_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}

// y[i] = f(a[i], b[i], c[i]) for i < n. y may alias any input.
template <class T, class F>
inline void map3(const T* a, const T* b, const T* c, T* y, index_t n, index_t threshold, F f) {
#pragma omp parallel for simd schedule(static) if (n > threshold)
  for (index_t i = 0; i < n; ++i) y[i] = f(a[i], b[i], c[i]);
}

}  // namespace ag
