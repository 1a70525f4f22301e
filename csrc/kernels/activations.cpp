#include <cmath>

#include "kernels/activations.h"

namespace ag {
namespace {
constexpr double kGeluC = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluA = 0.044715;
constexpr double kSqrtHalf = 0.7071067811865476;    // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.3989422804014327;  // 1 / sqrt(2 pi)
}  // namespace

template <class T>
void sigmoid(const T* x, T* y, index_t n) {
  map1(x, y, n, threshold_heavy(), [](T v) { return sigmoid1(v); });
}

template <class T>
void sigmoid_back(const T* out, const T* grad, T* dx, index_t n) {
  map2(out, grad, dx, n, threshold_cheap(), [](T o, T g) { return g * o * (T(1) - o); });
}

template <class T>
void tanh(const T* x, T* y, index_t n) {
  map1(x, y, n, threshold_heavy(), [](T v) { return m_tanh(v); });
}

template <class T>
void tanh_back(const T* out, const T* grad, T* dx, index_t n) {
  map2(out, grad, dx, n, threshold_cheap(), [](T o, T g) { return g * (T(1) - o * o); });
}

template <class T>
void relu(const T* x, T* y, index_t n) {
  map1(x, y, n, threshold_cheap(), [](T v) { return v < T(0) ? T(0) : v; });
}

template <class T>
void relu_back(const T* x, const T* grad, T* dx, index_t n) {
  // PyTorch's rule: zero where the value is <= 0, so a NaN input passes its gradient on
  map2(x, grad, dx, n, threshold_cheap(), [](T v, T g) { return v <= T(0) ? T(0) : g; });
}

template <class T>
void leaky_relu(const T* x, T* y, index_t n, double slope) {
  const T s = static_cast<T>(slope);
  map1(x, y, n, threshold_cheap(), [s](T v) { return v > T(0) ? v : v * s; });
}

template <class T>
void leaky_relu_back(const T* x, const T* grad, T* dx, index_t n, double slope) {
  const T s = static_cast<T>(slope);
  map2(x, grad, dx, n, threshold_cheap(), [s](T v, T g) { return g * (v > T(0) ? T(1) : s); });
}

template <class T>
void gelu(const T* x, T* y, index_t n) {
  const T c = T(kGeluC), a = T(kGeluA);
  map1(x, y, n, threshold_heavy(), [c, a](T v) {
    const T t = m_tanh(c * (v + a * v * v * v));
    return T(0.5) * v * (T(1) + t);
  });
}

template <class T>
void gelu_back(const T* x, const T* grad, T* dx, index_t n) {
  const T c = T(kGeluC), a = T(kGeluA), a3 = T(3 * kGeluA);
  map2(x, grad, dx, n, threshold_heavy(), [c, a, a3](T v, T g) {
    const T t = m_tanh(c * (v + a * v * v * v));
    const T dt = (T(1) - t * t) * c * (T(1) + a3 * v * v);
    return g * (T(0.5) * (T(1) + t) + T(0.5) * v * dt);
  });
}

// erf. float: Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7 (about one float32 ulp of erf near
// 1), in arithmetic and exp that vectorize; it is also PyTorch's vectorized CPU float erf.
// std::erf is a scalar call, ~150x slower than the tanh form here. double: std::erf (exact).
AG_INLINE inline float erf1(float v) {
  const float a = std::fabs(v);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly =
      t * (0.254829592f +
           t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float e = 1.0f - poly * m_exp(-a * a);
  return v < 0.0f ? -e : e;
}
AG_INLINE inline double erf1(double v) { return std::erf(v); }

template <class T>
void gelu_erf(const T* x, T* y, index_t n) {
  const T r = T(kSqrtHalf);
  map1(x, y, n, threshold_heavy(), [r](T v) { return T(0.5) * v * (T(1) + erf1(v * r)); });
}

template <class T>
void gelu_erf_back(const T* x, const T* grad, T* dx, index_t n) {
  const T r = T(kSqrtHalf), p = T(kInvSqrt2Pi);
  map2(x, grad, dx, n, threshold_heavy(), [r, p](T v, T g) {
    const T cdf = T(0.5) * (T(1) + erf1(v * r));
    return g * (cdf + v * p * m_exp(T(-0.5) * v * v));
  });
}

#define AG_INSTANTIATE(T)                                                        \
  template void sigmoid<T>(const T*, T*, index_t);                              \
  template void sigmoid_back<T>(const T*, const T*, T*, index_t);               \
  template void tanh<T>(const T*, T*, index_t);                                 \
  template void tanh_back<T>(const T*, const T*, T*, index_t);                  \
  template void relu<T>(const T*, T*, index_t);                                 \
  template void relu_back<T>(const T*, const T*, T*, index_t);                  \
  template void leaky_relu<T>(const T*, T*, index_t, double);                   \
  template void leaky_relu_back<T>(const T*, const T*, T*, index_t, double);    \
  template void gelu<T>(const T*, T*, index_t);                                 \
  template void gelu_back<T>(const T*, const T*, T*, index_t);                  \
  template void gelu_erf<T>(const T*, T*, index_t);                             \
  template void gelu_erf_back<T>(const T*, const T*, T*, index_t);
AG_INSTANTIATE(float)
AG_INSTANTIATE(double)
#undef AG_INSTANTIATE

}  // namespace ag
