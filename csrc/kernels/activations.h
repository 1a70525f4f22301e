// Activation functions and their derivatives. Every kernel maps n contiguous elements; outputs
// may alias any input. Forward formulas match numpy_kernels exactly (same operation order).
#pragma once

#include <cmath>

#include "kernels/common.h"

namespace ag {

// y = 1 / (1 + e^-x), as e/(1+e) with e = e^-|x| for x < 0 (no overflow).
template <class T> void sigmoid(const T* x, T* y, index_t n);
// dx = grad * out * (1 - out), from the saved output.
template <class T> void sigmoid_back(const T* out, const T* grad, T* dx, index_t n);
template <class T> void tanh(const T* x, T* y, index_t n);
// dx = grad * (1 - out^2), from the saved output.
template <class T> void tanh_back(const T* out, const T* grad, T* dx, index_t n);
// y = max(x, 0) (nan stays nan).
template <class T> void relu(const T* x, T* y, index_t n);
// dx = 0 where x <= 0, else grad (NaN passes, as in PyTorch); x may be relu's input or output.
template <class T> void relu_back(const T* x, const T* grad, T* dx, index_t n);
// y = x if x > 0 else slope * x (slope rounded to T first).
template <class T> void leaky_relu(const T* x, T* y, index_t n, double slope);
template <class T> void leaky_relu_back(const T* x, const T* grad, T* dx, index_t n,
                                        double slope);
// GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <class T> void gelu(const T* x, T* y, index_t n);
// dx = grad * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)), from the input.
template <class T> void gelu_back(const T* x, const T* grad, T* dx, index_t n);
// GELU, erf form, PyTorch's default: 0.5 x (1 + erf(x / sqrt(2))); float's erf is A&S 7.1.26
// (|error| <= 1.5e-7, PyTorch's vectorized CPU formula), double's std::erf.
template <class T> void gelu_erf(const T* x, T* y, index_t n);
// dx = grad * (0.5 (1 + erf(x / sqrt(2))) + x exp(-x^2 / 2) / sqrt(2 pi)), from the input.
template <class T> void gelu_erf_back(const T* x, const T* grad, T* dx, index_t n);

// Pointwise helpers shared with the fused linear layer.
template <class T>
AG_INLINE inline T sigmoid1(T v) {
  const T e = m_exp(-std::fabs(v));
  return v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

}  // namespace ag
