#include "kernels/softmax.h"

#include <cmath>
#include <limits>

namespace ag {
namespace {

// Row max; nan if the row holds a nan (as np.max).
template <class T>
AG_INLINE inline T row_max(const T* x, index_t cols) {
  T m = x[0];
  bool nan = false;
#pragma omp simd reduction(max : m) reduction(| : nan)
  for (index_t c = 0; c < cols; ++c) {
    m = x[c] > m ? x[c] : m;
    nan |= x[c] != x[c];
  }
  return nan ? std::numeric_limits<T>::quiet_NaN() : m;
}

// Sum of a row, accumulated in double (float32 rows then match NumPy's pairwise sum closely).
template <class T>
AG_INLINE inline double row_sum(const T* x, index_t cols) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t c = 0; c < cols; ++c) s += x[c];
  return s;
}

template <class T>
AG_INLINE inline T lse_row(const T* x, index_t cols) {
  T m = row_max(x, cols);
  if (!std::isfinite(m)) m = T(0);
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t c = 0; c < cols; ++c) s += m_exp(x[c] - m);
  return static_cast<T>(m_log(static_cast<T>(s))) + m;
}

// f(r) for rows [lo, hi); f is inlined into each target clone.
template <class F>
AG_CLONES void rows_chunk(index_t lo, index_t hi, F f) {
  for (index_t r = lo; r < hi; ++r) f(r);
}

template <class F>
inline void for_rows(index_t rows, index_t cols, F f) {
  parallel_blocks(rows, cols ? threshold_heavy() / cols : rows,
                  [=](index_t lo, index_t hi) { rows_chunk(lo, hi, f); });
}

}  // namespace

template <class T>
void softmax(const T* x, T* y, index_t rows, index_t cols) {
  for_rows(rows, cols, [=](index_t r) AG_INLINE {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T m = row_max(xr, cols);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (index_t c = 0; c < cols; ++c) {
      const T e = m_exp(xr[c] - m);
      yr[c] = e;
      s += e;
    }
    const T st = static_cast<T>(s);
#pragma omp simd
    for (index_t c = 0; c < cols; ++c) yr[c] /= st;
  });
}

template <class T>
void softmax_back(const T* out, const T* grad, T* dx, index_t rows, index_t cols) {
  for_rows(rows, cols, [=](index_t r) AG_INLINE {
    const T* o = out + r * cols;
    const T* g = grad + r * cols;
    T* d = dx + r * cols;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (index_t c = 0; c < cols; ++c) s += static_cast<double>(g[c] * o[c]);
    const T st = static_cast<T>(s);
#pragma omp simd
    for (index_t c = 0; c < cols; ++c) d[c] = o[c] * (g[c] - st);
  });
}

template <class T>
void log_softmax(const T* x, T* y, index_t rows, index_t cols) {
  for_rows(rows, cols, [=](index_t r) AG_INLINE {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T l = lse_row(xr, cols);
    // A row holding +inf has no finite log-probabilities: PyTorch gives NaN for the whole row
    // (x - max is NaN at the inf), where x - lse would give -inf for the other entries.
    if (l == std::numeric_limits<T>::infinity()) l = std::numeric_limits<T>::quiet_NaN();
#pragma omp simd
    for (index_t c = 0; c < cols; ++c) yr[c] = xr[c] - l;
  });
}

template <class T>
void log_softmax_back(const T* out, const T* grad, T* dx, index_t rows, index_t cols) {
  for_rows(rows, cols, [=](index_t r) AG_INLINE {
    const T* o = out + r * cols;
    const T* g = grad + r * cols;
    T* d = dx + r * cols;
    const T s = static_cast<T>(row_sum(g, cols));
#pragma omp simd
    for (index_t c = 0; c < cols; ++c) d[c] = g[c] - m_exp(o[c]) * s;
  });
}

template <class T>
void logsumexp(const T* x, T* y, index_t rows, index_t cols) {
  for_rows(rows, cols, [=](index_t r) AG_INLINE { y[r] = lse_row(x + r * cols, cols); });
}

template <class T>
void logsumexp_back(const T* x, const T* out, const T* grad, T* dx, index_t rows, index_t cols) {
  for_rows(rows, cols, [=](index_t r) AG_INLINE {
    const T* xr = x + r * cols;
    T* d = dx + r * cols;
    const T o = out[r], g = grad[r];
#pragma omp simd
    for (index_t c = 0; c < cols; ++c) d[c] = g * m_exp(xr[c] - o);
  });
}

#define AG_INSTANTIATE(T)                                                                   \
  template void softmax<T>(const T*, T*, index_t, index_t);                                \
  template void softmax_back<T>(const T*, const T*, T*, index_t, index_t);                 \
  template void log_softmax<T>(const T*, T*, index_t, index_t);                            \
  template void log_softmax_back<T>(const T*, const T*, T*, index_t, index_t);             \
  template void logsumexp<T>(const T*, T*, index_t, index_t);                              \
  template void logsumexp_back<T>(const T*, const T*, const T*, T*, index_t, index_t);
AG_INSTANTIATE(float)
AG_INSTANTIATE(double)
#undef AG_INSTANTIATE

}  // namespace ag
