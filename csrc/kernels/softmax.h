// The softmax family along the last axis of a (rows, cols) array, row by row, each numerically
// stable (the row max is subtracted first). All arrays are contiguous (rows, cols) unless noted;
// outputs must not alias inputs. cols >= 1 for the forward kernels (the caller rejects an empty
// reduction, as NumPy's max does).
#pragma once

#include "kernels/common.h"

namespace ag {

// y = exp(x - max) / sum(exp(x - max)).
template <class T> void softmax(const T* x, T* y, index_t rows, index_t cols);
// dx = out * (grad - sum(grad * out)).
template <class T> void softmax_back(const T* out, const T* grad, T* dx, index_t rows,
                                     index_t cols);
// y = x - logsumexp(x).
template <class T> void log_softmax(const T* x, T* y, index_t rows, index_t cols);
// dx = grad - exp(out) * sum(grad).
template <class T> void log_softmax_back(const T* out, const T* grad, T* dx, index_t rows,
                                         index_t cols);
// y (rows,) = log(sum(exp(x - m))) + m, m = row max (0 where it is not finite).
template <class T> void logsumexp(const T* x, T* y, index_t rows, index_t cols);
// dx = grad[r] * exp(x - out[r]); out and grad are (rows,).
template <class T> void logsumexp_back(const T* x, const T* out, const T* grad, T* dx,
                                       index_t rows, index_t cols);

}  // namespace ag
