#include "kernels/reductions.h"

#include <algorithm>

namespace ag {
namespace {

template <class T>
AG_CLONES double sum_contiguous(const T* x, index_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) s += x[i];
  return s;
}

constexpr index_t kColBlock = 256;

// Tasks [lo, hi) of the column sums: task = (outer slice, block of kColBlock columns).
template <class T>
AG_CLONES void column_sums(const T* x, T* y, index_t lo, index_t hi, index_t blocks, index_t n,
                           index_t inner) {
  for (index_t task = lo; task < hi; ++task) {
    const index_t o = task / blocks, b = task % blocks;
    const index_t c0 = b * kColBlock, c1 = std::min(inner, c0 + kColBlock);
    T* yo = y + o * inner;
    for (index_t i = c0; i < c1; ++i) yo[i] = T(0);
    for (index_t j = 0; j < n; ++j) {
      const T* xr = x + (o * n + j) * inner;
#pragma omp simd
      for (index_t i = c0; i < c1; ++i) yo[i] += xr[i];
    }
  }
}

}  // namespace

template <class T>
void sum_axis(const T* x, T* y, index_t outer, index_t n, index_t inner) {
  const index_t total = outer * n * inner;
  if (inner == 1) {
    if (outer == 1) {
      // One long row: split across threads, partial sums in double.
      y[0] = static_cast<T>(parallel_sum(n, threshold_cheap(), [=](index_t lo, index_t hi) {
        return sum_contiguous(x + lo, hi - lo);
      }));
      return;
    }
    parallel_blocks(outer, n ? threshold_cheap() / n : outer, [=](index_t lo, index_t hi) {
      for (index_t o = lo; o < hi; ++o) y[o] = static_cast<T>(sum_contiguous(x + o * n, n));
    });
    return;
  }
  // Columns: each task owns a block of one outer slice's inner axis and walks the n rows.
  const index_t blocks = (inner + kColBlock - 1) / kColBlock;
  const index_t tasks = outer * blocks;
  if (tasks == 0) return;
  const index_t per_task = std::max<index_t>(total / tasks, 1);
  parallel_blocks(tasks, threshold_cheap() / per_task,
                  [=](index_t lo, index_t hi) { column_sums(x, y, lo, hi, blocks, n, inner); });
}

template void sum_axis<float>(const float*, float*, index_t, index_t, index_t);
template void sum_axis<double>(const double*, double*, index_t, index_t, index_t);

}  // namespace ag
