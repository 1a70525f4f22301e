#include "kernels/losses.h"

#include <cmath>
#include <limits>

#include "kernels/activations.h"
#include "kernels/softmax.h"

namespace ag {
namespace {

// PyTorch clamps log(p) at -100 so that p = 0 or 1 gives a finite loss.
constexpr double kLogFloor = -100.0;

template <class T>
T reduce_result(double s, index_t n, Reduction r) {
  if (r == Reduction::Mean)
    return n ? static_cast<T>(s / static_cast<double>(n)) : std::numeric_limits<T>::quiet_NaN();
  return static_cast<T>(s);
}

// y = f(p, t) elementwise, or its sum/mean in y[0].
template <class T, class F>
void loss_forward(const T* p, const T* t, T* y, index_t n, Reduction r, F f) {
  if (r == Reduction::None) {
    map2(p, t, y, n, threshold_heavy(), f);
    return;
  }
  y[0] = reduce_result<T>(sum2(p, t, n, threshold_heavy(), f), n, r);
}

// dx = f(p, t) * grad, with grad per element (None) or one value (divided by n for Mean).
template <class T, class F>
void loss_backward(const T* p, const T* t, const T* grad, T* dx, index_t n, Reduction r, F f) {
  if (r == Reduction::None) {
    map3(p, t, grad, dx, n, threshold_heavy(), [f](T a, T b, T g) { return f(a, b) * g; });
    return;
  }
  T g = grad[0];
  if (r == Reduction::Mean && n) g = g / static_cast<T>(n);
  map2(p, t, dx, n, threshold_heavy(), [f, g](T a, T b) { return f(a, b) * g; });
}

// The first target outside [0, 1] (nan is), or -1.
template <class T>
index_t first_non_probability(const T* t, index_t n) {
  for (index_t i = 0; i < n; ++i)
    if (!(t[i] >= T(0) && t[i] <= T(1))) return i;
  return -1;
}

template <class T>
index_t first_bad_target(const std::int64_t* target, index_t rows, index_t cols) {
  for (index_t i = 0; i < rows; ++i)
    if (target[i] < 0 || target[i] >= cols) return i;
  return -1;
}

// Rows [lo, hi) of cross_entropy_back.
template <class T>
AG_CLONES void ce_back_rows(const T* log_probs, const std::int64_t* target, const T* grad, T* dx,
                            index_t lo, index_t hi, index_t cols, bool per_row, T scale) {
  for (index_t i = lo; i < hi; ++i) {
    const T* lp = log_probs + i * cols;
    T* d = dx + i * cols;
    const T g = per_row ? grad[i] : scale;
    const index_t t = target[i];
#pragma omp simd
    for (index_t c = 0; c < cols; ++c) d[c] = (m_exp(lp[c]) - T(c == t)) * g;
  }
}

}  // namespace

template <class T>
index_t mse(const T* p, const T* t, T* y, index_t n, Reduction r) {
  loss_forward(p, t, y, n, r, [](T a, T b) {
    const T d = a - b;
    return d * d;
  });
  return -1;
}

template <class T>
index_t mse_back(const T* p, const T* t, const T* grad, T* dx, index_t n, Reduction r) {
  loss_backward(p, t, grad, dx, n, r, [](T a, T b) { return T(2) * (a - b); });
  return -1;
}

template <class T>
index_t bce(const T* p, const T* t, T* y, index_t n, Reduction r) {
  const index_t bad = first_non_probability(t, n);
  if (bad >= 0) return bad;
  loss_forward(p, t, y, n, r, [](T a, T b) {
    T lp = m_log(a), l1p = m_log1p(-a);
    if (lp < T(kLogFloor)) lp = T(kLogFloor);
    if (l1p < T(kLogFloor)) l1p = T(kLogFloor);
    return -(b * lp + (T(1) - b) * l1p);
  });
  return -1;
}

template <class T>
index_t bce_back(const T* p, const T* t, const T* grad, T* dx, index_t n, Reduction r) {
  const index_t bad = first_non_probability(t, n);
  if (bad >= 0) return bad;
  loss_backward(p, t, grad, dx, n, r, [](T a, T b) {
    const T d = a * (T(1) - a);
    const T denom = d < T(1e-12) ? T(1e-12) : d;
    return (a - b) / denom;
  });
  return -1;
}

template <class T>
index_t bce_with_logits(const T* z, const T* t, T* y, index_t n, Reduction r) {
  loss_forward(z, t, y, n, r, [](T a, T b) {
    const T pos = a < T(0) ? T(0) : a;  // max(z, 0), nan stays nan
    return pos - a * b + m_log1p(m_exp(-std::fabs(a)));
  });
  return -1;
}

template <class T>
index_t bce_with_logits_back(const T* z, const T* t, const T* grad, T* dx, index_t n,
                             Reduction r) {
  loss_backward(z, t, grad, dx, n, r, [](T a, T b) { return sigmoid1(a) - b; });
  return -1;
}

template <class T>
index_t cross_entropy(const T* logits, const std::int64_t* target, T* loss, T* log_probs,
                      index_t rows, index_t cols, Reduction r) {
  const index_t bad = first_bad_target<T>(target, rows, cols);
  if (bad >= 0) return bad;
  log_softmax(logits, log_probs, rows, cols);
  if (r == Reduction::None) {
    for (index_t i = 0; i < rows; ++i) loss[i] = -log_probs[i * cols + target[i]];
    return -1;
  }
  double s = 0;
  for (index_t i = 0; i < rows; ++i) s += -log_probs[i * cols + target[i]];
  loss[0] = reduce_result<T>(s, rows, r);
  return -1;
}

template <class T>
index_t cross_entropy_back(const T* log_probs, const std::int64_t* target, const T* grad, T* dx,
                           index_t rows, index_t cols, Reduction r) {
  const index_t bad = first_bad_target<T>(target, rows, cols);
  if (bad >= 0) return bad;
  T scale = r == Reduction::None ? T(1) : grad[0];
  if (r == Reduction::Mean && rows) scale = scale / static_cast<T>(rows);
  parallel_blocks(rows, cols ? threshold_heavy() / cols : rows, [=](index_t lo, index_t hi) {
    ce_back_rows(log_probs, target, grad, dx, lo, hi, cols, r == Reduction::None, scale);
  });
  return -1;
}

#define AG_INSTANTIATE(T)                                                                     \
  template index_t mse<T>(const T*, const T*, T*, index_t, Reduction);                          \
  template index_t mse_back<T>(const T*, const T*, const T*, T*, index_t, Reduction);           \
  template index_t bce<T>(const T*, const T*, T*, index_t, Reduction);                          \
  template index_t bce_back<T>(const T*, const T*, const T*, T*, index_t, Reduction);           \
  template index_t bce_with_logits<T>(const T*, const T*, T*, index_t, Reduction);              \
  template index_t bce_with_logits_back<T>(const T*, const T*, const T*, T*, index_t, Reduction); \
  template index_t cross_entropy<T>(const T*, const std::int64_t*, T*, T*, index_t, index_t,  \
                                    Reduction);                                              \
  template index_t cross_entropy_back<T>(const T*, const std::int64_t*, const T*, T*, index_t, \
                                         index_t, Reduction);
AG_INSTANTIATE(float)
AG_INSTANTIATE(double)
#undef AG_INSTANTIATE

}  // namespace ag
