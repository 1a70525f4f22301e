#include "kernels/reductions.h"

#include <algorithm>

#include <omp.h>

namespace ag {
namespace {

template <class T>
double sum_contiguous(const T* x, index_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) s += x[i];
  return s;
}

}  // namespace

template <class T>
void sum_axis(const T* x, T* y, index_t outer, index_t n, index_t inner) {
  const index_t total = outer * n * inner;
  if (inner == 1) {
    if (outer == 1) {
      // One long row: split it across threads, combine the partial sums in order.
      double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > kParallelCheap)
      for (index_t b = 0; b < n; b += 4096) s += sum_contiguous(x + b, std::min<index_t>(4096, n - b));
      y[0] = static_cast<T>(s);
      return;
    }
#pragma omp parallel for schedule(static) if (total > kParallelCheap)
    for (index_t o = 0; o < outer; ++o) y[o] = static_cast<T>(sum_contiguous(x + o * n, n));
    return;
  }
  // Columns: each task owns a block of an (outer) slice's inner axis and walks the n rows.
  constexpr index_t kBlock = 256;
  const index_t blocks = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) schedule(static) if (total > kParallelCheap)
  for (index_t o = 0; o < outer; ++o) {
    for (index_t b = 0; b < blocks; ++b) {
      const index_t lo = b * kBlock, hi = std::min(inner, lo + kBlock);
      T* yo = y + o * inner;
      for (index_t i = lo; i < hi; ++i) yo[i] = T(0);
      for (index_t j = 0; j < n; ++j) {
        const T* xr = x + (o * n + j) * inner;
#pragma omp simd
        for (index_t i = lo; i < hi; ++i) yo[i] += xr[i];
      }
    }
  }
}

template void sum_axis<float>(const float*, float*, index_t, index_t, index_t);
template void sum_axis<double>(const double*, double*, index_t, index_t, index_t);

}  // namespace ag
