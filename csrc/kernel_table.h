// The kernel table: every kernel of autograd._C, declared once.
//
// Each row names a kernel (numpy_kernels' name and Python signature), its family and whether it
// is exact (bitwise the same result as the NumPy provider: one correctly rounded IEEE operation
// per element). A family (csrc/families.h) knows its parameters, asserts its contract (dtypes,
// shapes, attrs) and computes its result shapes in `prep`, and calls the math (csrc/kernels/)
// in `run`. Both front ends of bindings.cpp go through these two functions: the eager binding
// (_C.<name>(...), allocates its results) and the plan executor (_C.Plan, bound buffers).
//
// A new elementwise op is one X(...) line below, its math in csrc/kernels/ and in
// autograd/backend/numpy_kernels.py; autograd/backend/native.py picks it up by name.
#pragma once

#include "families.h"

// X(name, exact): y = f(x). (relu is not exact: max(-0, 0) is -0 here, +0 in NumPy.)
#define AG_UNARY(X) \
  X(neg, true)      \
  X(exp, false)     \
  X(log, false)     \
  X(sqrt, true)     \
  X(abs, true)      \
  X(sign, true)     \
  X(sigmoid, false) \
  X(tanh, false)    \
  X(relu, false)    \
  X(gelu, false)    \
  X(gelu_erf, false)

// X(name, saved argument, exact): dx = f(saved, grad).
#define AG_UNARY_BACK(X)        \
  X(sigmoid_back, "out", false) \
  X(tanh_back, "out", false)    \
  X(relu_back, "x", true)       \
  X(gelu_back, "x", false)      \
  X(gelu_erf_back, "x", false)

// X(name, BinOp, exact): a op b, same shape, one-element or last-axis (row) broadcast.
#define AG_BINARY(X)    \
  X(add, Add, true)     \
  X(sub, Sub, true)     \
  X(mul, Mul, true)     \
  X(div, Div, true)     \
  X(maximum, Max, true) \
  X(minimum, Min, true)

// X(name, prediction argument): reduced elementwise losses and their gradients (name##_back).
#define AG_LOSS(X) X(mse, "pred") X(bce, "prob") X(bce_with_logits, "logits")

// X(name, kernel): row-wise along the last axis (softmax-like), forward and backward.
#define AG_ROWWISE(X) X(softmax) X(log_softmax)

namespace agt {

// The table, built once from the lists above and the families' fixed rows.
inline const std::vector<Kernel>& kernel_table() {
  static const std::vector<Kernel> table = [] {
    std::vector<Kernel> t;
#define AG_ROW_UNARY(name, exact) \
  t.push_back(unary_kernel(#name, exact, &ag::name<float>, &ag::name<double>));
    AG_UNARY(AG_ROW_UNARY)
#define AG_ROW_UNARY_BACK(name, saved, exact) \
  t.push_back(unary_back_kernel(#name, saved, exact, &ag::name<float>, &ag::name<double>));
    AG_UNARY_BACK(AG_ROW_UNARY_BACK)
#define AG_ROW_BINARY(name, op, exact) t.push_back(binary_kernel(#name, ag::BinOp::op, exact));
    AG_BINARY(AG_ROW_BINARY)
#define AG_ROW_LOSS(name, pred)                                               \
  t.push_back(loss_kernel(#name, pred, &ag::name<float>, &ag::name<double>)); \
  t.push_back(                                                                \
      loss_back_kernel(#name "_back", pred, &ag::name##_back<float>, &ag::name##_back<double>));
    AG_LOSS(AG_ROW_LOSS)
#define AG_ROW_ROWWISE(name)                                               \
  t.push_back(rowwise_kernel(#name, &ag::name<float>, &ag::name<double>)); \
  t.push_back(                                                             \
      rowwise_back_kernel(#name "_back", &ag::name##_back<float>, &ag::name##_back<double>));
    AG_ROWWISE(AG_ROW_ROWWISE)
#undef AG_ROW_UNARY
#undef AG_ROW_UNARY_BACK
#undef AG_ROW_BINARY
#undef AG_ROW_LOSS
#undef AG_ROW_ROWWISE
    // One of a kind: each family below has a single member.
    for (Kernel k : {leaky_relu_kernel(), leaky_relu_back_kernel(), logsumexp_kernel(),
                     logsumexp_back_kernel(), sum_kernel(), sum_to_kernel(), sum_axis_kernel(),
                     matmul_kernel(), linear_kernel(), linear_back_kernel(), cross_entropy_kernel(),
                     cross_entropy_back_kernel(), sgd_step_kernel(), adam_step_kernel()})
      t.push_back(std::move(k));
    return t;
  }();
  return table;
}

}  // namespace agt
