// Fused optimizer updates for one parameter of n contiguous elements, in place. Formulas and
// the order of operations follow torch.optim and numpy_kernels (scalars rounded to T first).
// p, g and the state buffers must be distinct arrays of the same size.
#pragma once

#include "kernels/common.h"

namespace ag {

// SGD: g' = g + wd p; with momentum, buf = g' (first step) or mu buf + (1 - dampening) g',
// g' = g' + mu buf (Nesterov) or buf; p -= lr g'. buf is unused (may be null) when mu == 0.
// g is read only.
template <class T>
void sgd_step(T* p, const T* g, T* buf, index_t n, double lr, double momentum, double dampening,
              bool nesterov, double weight_decay, bool first_step);

// Adam / AdamW: with decay, p *= 1 - lr wd (decoupled) or g' = g + wd p; m = b1 m + (1 - b1) g';
// v = b2 v + (1 - b2) g'^2; p -= (lr / bc1) m / (sqrt(v) / bc2_sqrt + eps), where the bias
// corrections bc1 = 1 - b1^t and bc2_sqrt = sqrt(1 - b2^t) come from the caller. g is read only.
template <class T>
void adam_step(T* p, const T* g, T* m, T* v, index_t n, double lr, double bc1, double bc2_sqrt,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled);

}  // namespace ag
