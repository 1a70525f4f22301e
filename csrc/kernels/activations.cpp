#include <cmath>

#include "kernels/activations.h"

namespace ag {
namespace {
constexpr double kGeluC = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluA = 0.044715;
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
  map2(x, grad, dx, n, threshold_cheap(), [](T v, T g) { return g * T(v > T(0)); });
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
  template void gelu_back<T>(const T*, const T*, T*, index_t);
AG_INSTANTIATE(float)
AG_INSTANTIATE(double)
#undef AG_INSTANTIATE

}  // namespace ag
