#include "kernels/optim.h"

#include <cmath>

namespace ag {
namespace {

template <class T>
AG_CLONES void sgd_chunk(T* p, const T* g, T* buf, index_t lo, index_t hi, T tlr, T mu, T damp,
                         T wd, bool use_wd, bool use_mu, bool nesterov, bool first_step) {
#pragma omp simd
  for (index_t i = lo; i < hi; ++i) {
    T gi = g[i];
    if (use_wd) gi = gi + wd * p[i];
    if (use_mu) {
      T b = first_step ? gi : buf[i] * mu + damp * gi;
      buf[i] = b;
      gi = nesterov ? gi + mu * b : b;
    }
    p[i] = p[i] - tlr * gi;
  }
}

template <class T>
AG_CLONES void adam_chunk(T* p, const T* g, T* m, T* v, index_t lo, index_t hi, T b1, T b2, T c1,
                          T c2, T step, T bc2, T teps, T shrink, T wd, bool use_wd,
                          bool decoupled) {
#pragma omp simd
  for (index_t i = lo; i < hi; ++i) {
    T gi = g[i];
    T pi = p[i];
    if (use_wd) {
      if (decoupled) {
        pi = pi * shrink;
      } else {
        gi = gi + wd * pi;
      }
    }
    const T mi = m[i] * b1 + c1 * gi;
    const T vi = v[i] * b2 + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step * mi / (std::sqrt(vi) / bc2 + teps);
  }
}

}  // namespace

template <class T>
void sgd_step(T* p, const T* g, T* buf, index_t n, double lr, double momentum, double dampening,
              bool nesterov, double weight_decay, bool first_step) {
  const T tlr = T(lr), mu = T(momentum), damp = T(1 - dampening), wd = T(weight_decay);
  const bool use_wd = weight_decay != 0, use_mu = momentum != 0;
  parallel_blocks(n, threshold_cheap(), [=](index_t lo, index_t hi) {
    sgd_chunk(p, g, buf, lo, hi, tlr, mu, damp, wd, use_wd, use_mu, nesterov, first_step);
  });
}

template <class T>
void adam_step(T* p, const T* g, T* m, T* v, index_t n, double lr, double bc1, double bc2_sqrt,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
  const T b1 = T(beta1), b2 = T(beta2), c1 = T(1 - beta1), c2 = T(1 - beta2);
  const T step = T(lr / bc1), bc2 = T(bc2_sqrt), teps = T(eps);
  const T shrink = T(1 - lr * weight_decay), wd = T(weight_decay);
  const bool use_wd = weight_decay != 0;
  parallel_blocks(n, threshold_heavy(), [=](index_t lo, index_t hi) {
    adam_chunk(p, g, m, v, lo, hi, b1, b2, c1, c2, step, bc2, teps, shrink, wd, use_wd,
               decoupled);
  });
}

#define AG_INSTANTIATE(T)                                                                    \
  template void sgd_step<T>(T*, const T*, T*, index_t, double, double, double, bool, double, \
                            bool);                                                          \
  template void adam_step<T>(T*, const T*, T*, T*, index_t, double, double, double, double,  \
                             double, double, double, bool);
AG_INSTANTIATE(float)
AG_INSTANTIATE(double)
#undef AG_INSTANTIATE

}  // namespace ag
