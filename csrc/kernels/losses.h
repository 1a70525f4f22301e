// Losses, forward and derivative, over n contiguous elements (prediction first, target second,
// same shape). A forward writes n values for Reduction::None, else one value into y[0] (the
// mean of zero elements is nan). A backward takes grad with n elements for Reduction::None, else
// one (the upstream gradient of the reduced loss), and writes n values into dx. Outputs must not
// alias inputs. Reduced sums accumulate in double. Each returns -1, or (bce, bce_back: targets
// are probabilities, as PyTorch requires) the index of the first target outside [0, 1] (nan
// included), having written nothing.
#pragma once

#include "kernels/common.h"

namespace ag {

// (p - t)^2;  d/dp = 2 (p - t) grad.
template <class T> index_t mse(const T* p, const T* t, T* y, index_t n, Reduction r);
template <class T> index_t mse_back(const T* p, const T* t, const T* grad, T* dx, index_t n,
                                    Reduction r);
// -(t log p + (1 - t) log(1 - p)), logs clamped at -100;  d/dp = (p - t) / max(p (1-p), 1e-12).
template <class T> index_t bce(const T* p, const T* t, T* y, index_t n, Reduction r);
template <class T> index_t bce_back(const T* p, const T* t, const T* grad, T* dx, index_t n,
                                    Reduction r);
// max(z, 0) - z t + log(1 + e^-|z|);  d/dz = sigmoid(z) - t.
template <class T> index_t bce_with_logits(const T* z, const T* t, T* y, index_t n, Reduction r);
template <class T> index_t bce_with_logits_back(const T* z, const T* t, const T* grad, T* dx,
                                                index_t n, Reduction r);

// Softmax cross-entropy: logits (rows, cols), integer targets (rows,). Writes log_probs
// (rows, cols) and the loss (rows values for None, else one) and returns -1 when every target
// is valid; else returns the index of the first target outside [0, cols) and writes nothing.
template <class T> index_t cross_entropy(const T* logits, const std::int64_t* target, T* loss,
                                         T* log_probs, index_t rows, index_t cols, Reduction r);
// dx (rows, cols) = (exp(log_probs) - onehot(target)) * grad (grad per row for None, else one
// value, divided by rows for Mean). Returns the first invalid target index as the forward does
// (-1 when all are valid; dx is then written whole).
template <class T> index_t cross_entropy_back(const T* log_probs, const std::int64_t* target,
                                           const T* grad, T* dx, index_t rows, index_t cols,
                                           Reduction r);

}  // namespace ag
