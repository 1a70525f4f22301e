// The fused linear layer y = act(x @ w.T + b), as in torch.nn.Linear, and its backward.
#pragma once

#include "kernels/common.h"

namespace ag {

enum class Activation : int { None = 0, Relu = 1, Sigmoid = 2, Tanh = 3 };

// y (n, out) = act(x (n, in) @ w (out, in).T + b (out,)); b may be null (no bias). One gemm,
// a pass adding the bias, then the activation kernel in place: bit for bit what matmul, add and
// the activation kernel give. y must not alias x, w or b.
template <class T>
void linear(const T* x, const T* w, const T* b, T* y, index_t n, index_t in, index_t out,
            Activation act);

// Gradients of linear given its activated output `out` (n, out) and upstream `grad` (n, out):
// dz = grad * act'(out), written into dz_buf (n, out) (unused, may be null, for act == None);
// dx (n, in) = dz @ w; dw (out, in) = dz.T @ x; db (out,) = dz summed over rows (dx or db
// null: not computed).
// Outputs must not alias inputs or each other.
template <class T>
void linear_back(const T* x, const T* w, const T* out_act, const T* grad, T* dx, T* dw, T* db,
                 T* dz_buf, index_t n, index_t in, index_t out, Activation act);

}  // namespace ag
