// pybind11 bindings of the kernel library as the module autograd._C.
//
// This file only binds: it checks dtypes (TypeError) and shapes/layout (ValueError, with the
// shapes in the message), allocates outputs, releases the GIL and calls a kernel. It never
// casts or copies an input: the Python adapter (autograd/backend/native.py) makes inputs
// C-contiguous and decides which calls come here. No math lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/activations.h"
#include "kernels/blas.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/losses.h"
#include "kernels/optim.h"
#include "kernels/reductions.h"
#include "kernels/softmax.h"
#include "kernels/threads.h"
#include "runtime.h"

namespace py = pybind11;
using ag::index_t;

namespace {

// ---------------------------------------------------------------------------------------------
// Argument checking helpers
// ---------------------------------------------------------------------------------------------

enum class DType { F32, F64 };

py::arg A(const char* name) { return py::arg(name).noconvert(); }

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

std::string describe(const py::array& a) {
  return std::string(py::str(a.dtype())) + " array of shape " + shape_str(a);
}

[[noreturn]] void value_error(const std::string& fn, const std::string& msg) {
  throw py::value_error(fn + ": " + msg);
}

[[noreturn]] void type_error(const std::string& fn, const std::string& msg) {
  throw py::type_error(fn + ": " + msg);
}

// The float dtype of a C-contiguous array; TypeError for any other dtype, ValueError if strided.
DType float_dtype(const std::string& fn, const char* arg, const py::array& a) {
  // Equivalence, not identity: unpickled arrays carry their own dtype objects; a non-native
  // byte order is not equivalent and is rejected.
  DType dt;
  if (py::isinstance<py::array_t<float>>(a)) {
    dt = DType::F32;
  } else if (py::isinstance<py::array_t<double>>(a)) {
    dt = DType::F64;
  } else {
    type_error(fn, std::string(arg) + " must be float32 or float64, got a " + describe(a));
  }
  if (!(a.flags() & py::array::c_style))
    value_error(fn, std::string(arg) + " must be C-contiguous, got a strided " + describe(a));
  return dt;
}

// Checks that b has a's dtype (TypeError) and is C-contiguous.
void same_dtype(const std::string& fn, const char* an, const py::array& a, const char* bn,
                const py::array& b) {
  DType da = float_dtype(fn, an, a), db = float_dtype(fn, bn, b);
  if (da != db)
    type_error(fn, std::string(an) + " and " + bn + " must have the same dtype, got a " +
                       describe(a) + " and a " + describe(b));
}

std::vector<py::ssize_t> shape_vec(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

py::array new_array(DType dt, const std::vector<py::ssize_t>& shape) {
  if (dt == DType::F32) return py::array_t<float>(shape);
  return py::array_t<double>(shape);
}

// Calls f(T{}) with T the C++ type of dt.
template <class F>
decltype(auto) dispatch(DType dt, F&& f) {
  if (dt == DType::F32) return f(float{});
  return f(double{});
}

template <class T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}

template <class T>
T* mptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());  // raises ValueError for a read-only array
}

// ---------------------------------------------------------------------------------------------
// Matrix products
// ---------------------------------------------------------------------------------------------

py::array matmul(const py::array& a, const py::array& b, bool trans_a, bool trans_b) {
  const std::string fn = "matmul";
  same_dtype(fn, "a", a, "b", b);
  const DType dt = float_dtype(fn, "a", a);
  if (a.ndim() < 2 || b.ndim() < 2)
    value_error(fn, "both operands must be at least 2-D, got shapes " + shape_str(a) + " and " +
                        shape_str(b));
  const index_t ar = a.shape(a.ndim() - 2), ac = a.shape(a.ndim() - 1);
  const index_t br = b.shape(b.ndim() - 2), bc = b.shape(b.ndim() - 1);
  const index_t m = trans_a ? ac : ar, k = trans_a ? ar : ac;
  const index_t kb = trans_b ? bc : br, n = trans_b ? br : bc;
  if (k != kb)
    value_error(fn, "inner dimensions differ: op(a) is " + std::to_string(m) + "x" +
                        std::to_string(k) + " and op(b) is " + std::to_string(kb) + "x" +
                        std::to_string(n) + " (shapes " + shape_str(a) + " and " + shape_str(b) +
                        ", trans_a=" + (trans_a ? "True" : "False") +
                        ", trans_b=" + (trans_b ? "True" : "False") + ")");
  // Batch axes: equal, or one operand 2-D (shared by the whole batch).
  std::vector<py::ssize_t> batch_shape;
  index_t batch_a = 1, batch_b = 1;
  for (py::ssize_t i = 0; i + 2 < a.ndim(); ++i) batch_a *= a.shape(i);
  for (py::ssize_t i = 0; i + 2 < b.ndim(); ++i) batch_b *= b.shape(i);
  if (a.ndim() > 2 && b.ndim() > 2) {
    if (a.ndim() != b.ndim() ||
        !std::equal(a.shape(), a.shape() + a.ndim() - 2, b.shape()))
      value_error(fn, "batch axes must be equal or one operand 2-D, got shapes " + shape_str(a) +
                          " and " + shape_str(b));
  }
  const py::array& big = a.ndim() >= b.ndim() ? a : b;
  batch_shape.assign(big.shape(), big.shape() + big.ndim() - 2);
  const index_t batch = a.ndim() >= b.ndim() ? batch_a : batch_b;
  if (m > ag::kBlasMaxDim || n > ag::kBlasMaxDim || k > ag::kBlasMaxDim)
    value_error(fn, "a dimension exceeds the 32-bit BLAS limit, shapes " + shape_str(a) + " and " +
                        shape_str(b));
  batch_shape.push_back(m);
  batch_shape.push_back(n);
  py::array out = new_array(dt, batch_shape);
  dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* pa = cptr<T>(a);
    const T* pb = cptr<T>(b);
    T* pc = mptr<T>(out);
    py::gil_scoped_release nogil;
    ag::matmul<T>(pa, pb, pc, batch, batch_a, batch_b, m, n, k, trans_a, trans_b);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Elementwise kernels
// ---------------------------------------------------------------------------------------------

void same_shape(const std::string& fn, const char* an, const py::array& a, const char* bn,
                const py::array& b) {
  if (a.ndim() != b.ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), b.shape()))
    value_error(fn, std::string(an) + " and " + bn + " must have the same shape, got " +
                        shape_str(a) + " and " + shape_str(b));
}

template <class T>
using Unary = void (*)(const T*, T*, index_t);
template <class T>
using Pair = void (*)(const T*, const T*, T*, index_t);

// y = f(x), same shape and dtype.
py::array unary(const std::string& fn, const py::array& x, Unary<float> f32, Unary<double> f64) {
  const DType dt = float_dtype(fn, "x", x);
  py::array y = new_array(dt, shape_vec(x));
  const index_t n = x.size();
  dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* px = cptr<T>(x);
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    if constexpr (std::is_same_v<T, float>) f32(px, py_, n); else f64(px, py_, n);
  });
  return y;
}

// dx = f(a, grad), both the same shape and dtype.
py::array pair(const std::string& fn, const char* an, const py::array& a, const py::array& grad,
               Pair<float> f32, Pair<double> f64) {
  same_dtype(fn, an, a, "grad", grad);
  same_shape(fn, an, a, "grad", grad);
  const DType dt = float_dtype(fn, an, a);
  py::array y = new_array(dt, shape_vec(a));
  const index_t n = a.size();
  dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* pa = cptr<T>(a);
    const T* pg = cptr<T>(grad);
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    if constexpr (std::is_same_v<T, float>) f32(pa, pg, py_, n); else f64(pa, pg, py_, n);
  });
  return y;
}

// True if `row` is a row of `full`: at most full's rank, last axes equal, all others 1.
bool is_row_of(const py::array& row, const py::array& full) {
  if (row.ndim() < 1 || row.ndim() > full.ndim()) return false;
  if (row.shape(row.ndim() - 1) != full.shape(full.ndim() - 1)) return false;
  for (py::ssize_t i = 0; i + 1 < row.ndim(); ++i)
    if (row.shape(i) != 1) return false;
  return true;
}

// a op b for same-shape, scalar (one element, rank <= the other's) and row (last-axis)
// broadcasting; any other pattern is a ValueError (the adapter sends those to NumPy).
py::array binary(const std::string& fn, ag::BinOp op, const py::array& a, const py::array& b) {
  using ag::Bcast;
  same_dtype(fn, "a", a, "b", b);
  const DType dt = float_dtype(fn, "a", a);
  Bcast ma, mb;
  const py::array* full;
  if (a.ndim() == b.ndim() && std::equal(a.shape(), a.shape() + a.ndim(), b.shape())) {
    ma = mb = Bcast::Full, full = &a;
  } else if (b.size() == 1 && b.ndim() <= a.ndim()) {
    ma = Bcast::Full, mb = Bcast::Scalar, full = &a;
  } else if (a.size() == 1 && a.ndim() <= b.ndim()) {
    ma = Bcast::Scalar, mb = Bcast::Full, full = &b;
  } else if (is_row_of(b, a)) {
    ma = Bcast::Full, mb = Bcast::Row, full = &a;
  } else if (is_row_of(a, b)) {
    ma = Bcast::Row, mb = Bcast::Full, full = &b;
  } else {
    value_error(fn, "shapes " + shape_str(a) + " and " + shape_str(b) +
                        " are not same-shape, scalar or last-axis broadcastable");
  }
  py::array y = new_array(dt, shape_vec(*full));
  const index_t size = full->size();
  const index_t cols = full->ndim() ? full->shape(full->ndim() - 1) : 1;
  const index_t rows = (ma == Bcast::Row || mb == Bcast::Row) ? (cols ? size / cols : 0) : 1;
  const index_t width = (ma == Bcast::Row || mb == Bcast::Row) ? cols : size;
  dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* pa = cptr<T>(a);
    const T* pb = cptr<T>(b);
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    ag::binary<T>(op, pa, ma, pb, mb, py_, rows, width);
  });
  return y;
}

template <class F32, class F64>
py::array leaky(const std::string& fn, const py::array& x, const py::array* grad, double slope,
                F32 f32, F64 f64) {
  const DType dt = float_dtype(fn, "x", x);
  if (grad) {
    same_dtype(fn, "x", x, "grad", *grad);
    same_shape(fn, "x", x, "grad", *grad);
  }
  py::array y = new_array(dt, shape_vec(x));
  const index_t n = x.size();
  dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* px = cptr<T>(x);
    const T* pg = grad ? cptr<T>(*grad) : nullptr;
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    if constexpr (std::is_same_v<T, float>) f32(px, pg, py_, n, slope); else f64(px, pg, py_, n, slope);
  });
  return y;
}

// ---------------------------------------------------------------------------------------------
// Softmax family and reductions (last axis; the adapter moves other axes or delegates)
// ---------------------------------------------------------------------------------------------

struct Rows {
  index_t rows, cols;
};

Rows last_axis(const std::string& fn, const py::array& x) {
  if (x.ndim() < 1) value_error(fn, "x must be at least 1-D, got shape " + shape_str(x));
  const index_t cols = x.shape(x.ndim() - 1);
  return {cols ? x.size() / cols : 0, cols};
}

template <class F>
py::array rowwise(const std::string& fn, const py::array& x, const py::array* grad, F f) {
  const DType dt = float_dtype(fn, grad ? "out" : "x", x);
  if (grad) {
    same_dtype(fn, "out", x, "grad", *grad);
    same_shape(fn, "out", x, "grad", *grad);
  }
  const Rows r = last_axis(fn, x);  // an empty x gives an empty result, as in NumPy
  py::array y = new_array(dt, shape_vec(x));
  dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* px = cptr<T>(x);
    const T* pg = grad ? cptr<T>(*grad) : nullptr;
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    if (r.rows && r.cols) f(px, pg, py_, r.rows, r.cols);
  });
  return y;
}

py::array logsumexp(const py::array& x) {
  const std::string fn = "logsumexp";
  const DType dt = float_dtype(fn, "x", x);
  if (x.ndim() < 1 || x.shape(x.ndim() - 1) == 0)
    value_error(fn, "needs a non-empty last axis, got shape " + shape_str(x));
  const Rows r = last_axis(fn, x);
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim() - 1);
  py::array y = new_array(dt, shape);
  dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* px = cptr<T>(x);
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    ag::logsumexp<T>(px, py_, r.rows, r.cols);
  });
  return y;
}

py::array logsumexp_back(const py::array& x, const py::array& out, const py::array& grad) {
  const std::string fn = "logsumexp_back";
  same_dtype(fn, "x", x, "out", out);
  same_dtype(fn, "x", x, "grad", grad);
  const DType dt = float_dtype(fn, "x", x);
  const Rows r = last_axis(fn, x);
  index_t rows = 1;
  for (py::ssize_t i = 0; i + 1 < x.ndim(); ++i) rows *= x.shape(i);
  if (out.size() != rows || grad.size() != rows)
    value_error(fn, "out and grad must hold one value per row of x, got shapes " + shape_str(x) +
                        ", " + shape_str(out) + " and " + shape_str(grad));
  py::array y = new_array(dt, shape_vec(x));
  dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T *px = cptr<T>(x), *po = cptr<T>(out), *pg = cptr<T>(grad);
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    if (r.rows && r.cols) ag::logsumexp_back<T>(px, po, pg, py_, r.rows, r.cols);
  });
  return y;
}

// Flat (outer * inner,) sums of x viewed as (outer, n, inner).
py::array sum_axis(const py::array& x, index_t outer, index_t n, index_t inner) {
  const std::string fn = "sum_axis";
  const DType dt = float_dtype(fn, "x", x);
  // Checked products: with n == 0, outer * inner is not bounded by x's size.
  index_t size = 0, total = 0;  // outer * inner (the result) and outer * inner * n (x)
  if (outer < 0 || n < 0 || inner < 0 || __builtin_mul_overflow(outer, inner, &size) ||
      __builtin_mul_overflow(size, n, &total) || total != x.size())
    value_error(fn, "(outer, n, inner) = (" + std::to_string(outer) + ", " + std::to_string(n) +
                        ", " + std::to_string(inner) + ") does not cover x of shape " +
                        shape_str(x));
  py::array y = new_array(dt, {static_cast<py::ssize_t>(size)});
  dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* px = cptr<T>(x);
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    ag::sum_axis<T>(px, py_, outer, n, inner);
  });
  return y;
}

// ---------------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------------

ag::Reduction reduction_of(const std::string& fn, const std::string& r) {
  if (r == "mean") return ag::Reduction::Mean;
  if (r == "sum") return ag::Reduction::Sum;
  if (r == "none") return ag::Reduction::None;
  value_error(fn, "reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

template <class T>
using LossF = void (*)(const T*, const T*, T*, index_t, ag::Reduction);
template <class T>
using LossB = void (*)(const T*, const T*, const T*, T*, index_t, ag::Reduction);

py::array loss(const std::string& fn, const py::array& p, const py::array& t,
               const std::string& reduction, LossF<float> f32, LossF<double> f64) {
  same_dtype(fn, "pred", p, "target", t);
  same_shape(fn, "pred", p, "target", t);
  const DType dt = float_dtype(fn, "pred", p);
  const ag::Reduction r = reduction_of(fn, reduction);
  py::array y = new_array(dt, r == ag::Reduction::None ? shape_vec(p)
                                                       : std::vector<py::ssize_t>{});
  const index_t n = p.size();
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T *pp = cptr<T>(p), *pt = cptr<T>(t);
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    if constexpr (std::is_same_v<T, float>) f32(pp, pt, py_, n, r); else f64(pp, pt, py_, n, r);
  });
  return y;
}

py::array loss_back(const std::string& fn, const py::array& p, const py::array& t,
                    const py::array& grad, const std::string& reduction, LossB<float> f32,
                    LossB<double> f64) {
  same_dtype(fn, "pred", p, "target", t);
  same_dtype(fn, "pred", p, "grad", grad);
  same_shape(fn, "pred", p, "target", t);
  const DType dt = float_dtype(fn, "pred", p);
  const ag::Reduction r = reduction_of(fn, reduction);
  if (r == ag::Reduction::None) {
    same_shape(fn, "pred", p, "grad", grad);
  } else if (grad.size() != 1) {
    value_error(fn, "grad of a reduced loss must hold one value, got shape " + shape_str(grad));
  }
  py::array y = new_array(dt, shape_vec(p));
  const index_t n = p.size();
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T *pp = cptr<T>(p), *pt = cptr<T>(t), *pg = cptr<T>(grad);
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    if constexpr (std::is_same_v<T, float>) f32(pp, pt, pg, py_, n, r); else f64(pp, pt, pg, py_, n, r);
  });
  return y;
}

void check_targets(const std::string& fn, const py::array& logits, const py::array& target) {
  if (logits.ndim() != 2)
    value_error(fn, "logits must be 2-D (n, classes), got shape " + shape_str(logits));
  if (!py::isinstance<py::array_t<std::int64_t>>(target))
    type_error(fn, "target must be int64, got a " + describe(target));
  if (!(target.flags() & py::array::c_style))
    value_error(fn, "target must be C-contiguous, got shape " + shape_str(target));
  if (target.ndim() != 1 || target.shape(0) != logits.shape(0))
    value_error(fn, "target must have shape (n,) for logits " + shape_str(logits) + ", got " +
                        shape_str(target));
}

[[noreturn]] void bad_target(const std::string& fn, const py::array& target, index_t i,
                             index_t cols) {
  const std::int64_t v = static_cast<const std::int64_t*>(target.data())[i];
  value_error(fn, "target[" + std::to_string(i) + "] = " + std::to_string(v) +
                      " is not a class index in [0, " + std::to_string(cols) + ")");
}

py::tuple cross_entropy(const py::array& logits, const py::array& target,
                        const std::string& reduction) {
  const std::string fn = "cross_entropy";
  const DType dt = float_dtype(fn, "logits", logits);
  check_targets(fn, logits, target);
  const ag::Reduction r = reduction_of(fn, reduction);
  const index_t rows = logits.shape(0), cols = logits.shape(1);
  py::array loss = new_array(dt, r == ag::Reduction::None ? std::vector<py::ssize_t>{rows}
                                                          : std::vector<py::ssize_t>{});
  py::array logp = new_array(dt, shape_vec(logits));
  index_t bad = -1;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* pl = cptr<T>(logits);
    const auto* pt = static_cast<const std::int64_t*>(target.data());
    T *ploss = mptr<T>(loss), *plogp = mptr<T>(logp);
    py::gil_scoped_release nogil;
    bad = ag::cross_entropy<T>(pl, pt, ploss, plogp, rows, cols, r);
  });
  if (bad >= 0) bad_target(fn, target, bad, cols);
  return py::make_tuple(loss, logp);
}

py::array cross_entropy_back(const py::array& log_probs, const py::array& target,
                             const py::array& grad, const std::string& reduction) {
  const std::string fn = "cross_entropy_back";
  same_dtype(fn, "log_probs", log_probs, "grad", grad);
  const DType dt = float_dtype(fn, "log_probs", log_probs);
  check_targets(fn, log_probs, target);
  const ag::Reduction r = reduction_of(fn, reduction);
  const index_t rows = log_probs.shape(0), cols = log_probs.shape(1);
  if (r == ag::Reduction::None ? grad.size() != rows : grad.size() != 1)
    value_error(fn, "grad must hold " +
                        std::string(r == ag::Reduction::None ? "one value per row" : "one value") +
                        " for log_probs " + shape_str(log_probs) + ", got shape " +
                        shape_str(grad));
  py::array dx = new_array(dt, shape_vec(log_probs));
  index_t bad = -1;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T *pl = cptr<T>(log_probs), *pg = cptr<T>(grad);
    const auto* pt = static_cast<const std::int64_t*>(target.data());
    T* pd = mptr<T>(dx);
    py::gil_scoped_release nogil;
    bad = ag::cross_entropy_back<T>(pl, pt, pg, pd, rows, cols, r);
  });
  if (bad >= 0) bad_target(fn, target, bad, cols);
  return dx;
}

// ---------------------------------------------------------------------------------------------
// Fused linear layer
// ---------------------------------------------------------------------------------------------

ag::Activation activation_of(const std::string& fn, const py::object& act) {
  if (act.is_none()) return ag::Activation::None;
  if (!py::isinstance<py::str>(act))
    type_error(fn, "activation must be None or a string, got " + std::string(py::repr(act)));
  const std::string a = act.cast<std::string>();
  if (a == "relu") return ag::Activation::Relu;
  if (a == "sigmoid") return ag::Activation::Sigmoid;
  if (a == "tanh") return ag::Activation::Tanh;
  value_error(fn, "unknown activation '" + a + "'; expected None, 'relu', 'sigmoid' or 'tanh'");
}

void check_linear(const std::string& fn, const py::array& x, const py::array& w) {
  same_dtype(fn, "x", x, "w", w);
  if (x.ndim() != 2 || w.ndim() != 2 || x.shape(1) != w.shape(1))
    value_error(fn, "x must be (n, in) and w (out, in), got shapes " + shape_str(x) + " and " +
                        shape_str(w));
  for (py::ssize_t i = 0; i < 2; ++i)
    if (x.shape(i) > ag::kBlasMaxDim || w.shape(i) > ag::kBlasMaxDim)
      value_error(fn, "a dimension exceeds the 32-bit BLAS limit, shapes " + shape_str(x) +
                          " and " + shape_str(w));
}

py::array linear(const py::array& x, const py::array& w, const py::object& b,
                 const py::object& activation) {
  const std::string fn = "linear";
  check_linear(fn, x, w);
  const DType dt = float_dtype(fn, "x", x);
  const ag::Activation act = activation_of(fn, activation);
  const index_t n = x.shape(0), in = x.shape(1), out = w.shape(0);
  py::array bias;
  if (!b.is_none()) {
    if (!py::isinstance<py::array>(b))
      type_error(fn, "b must be an ndarray or None, got " + std::string(py::repr(b)));
    bias = b.cast<py::array>();
    same_dtype(fn, "x", x, "b", bias);
    if (bias.ndim() != 1 || bias.shape(0) != out)
      value_error(fn, "b must have shape (" + std::to_string(out) + ",) for w " + shape_str(w) +
                          ", got " + shape_str(bias));
  }
  py::array y = new_array(dt, {static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(out)});
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T *px = cptr<T>(x), *pw = cptr<T>(w);
    const T* pb = b.is_none() ? nullptr : cptr<T>(bias);
    T* py_ = mptr<T>(y);
    py::gil_scoped_release nogil;
    ag::linear<T>(px, pw, pb, py_, n, in, out, act);
  });
  return y;
}

py::tuple linear_back(const py::array& x, const py::array& w, const py::array& out,
                      const py::array& grad, const py::object& activation, bool has_bias) {
  const std::string fn = "linear_back";
  check_linear(fn, x, w);
  same_dtype(fn, "x", x, "out", out);
  same_dtype(fn, "x", x, "grad", grad);
  same_shape(fn, "out", out, "grad", grad);
  const DType dt = float_dtype(fn, "x", x);
  const ag::Activation act = activation_of(fn, activation);
  const index_t n = x.shape(0), in = x.shape(1), nout = w.shape(0);
  if (out.ndim() != 2 || out.shape(0) != n || out.shape(1) != nout)
    value_error(fn, "out and grad must be (n, out) = (" + std::to_string(n) + ", " +
                        std::to_string(nout) + "), got " + shape_str(out));
  py::array dx = new_array(dt, shape_vec(x));
  py::array dw = new_array(dt, shape_vec(w));
  py::array db = has_bias ? new_array(dt, {static_cast<py::ssize_t>(nout)}) : py::array();
  py::array dz = act != ag::Activation::None ? new_array(dt, shape_vec(out)) : py::array();
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    const T *px = cptr<T>(x), *pw = cptr<T>(w), *po = cptr<T>(out), *pg = cptr<T>(grad);
    T *pdx = mptr<T>(dx), *pdw = mptr<T>(dw);
    T* pdb = has_bias ? mptr<T>(db) : nullptr;
    T* pdz = act != ag::Activation::None ? mptr<T>(dz) : nullptr;
    py::gil_scoped_release nogil;
    ag::linear_back<T>(px, pw, po, pg, pdx, pdw, pdb, pdz, n, in, nout, act);
  });
  return py::make_tuple(dx, dw, has_bias ? py::object(db) : py::object(py::none()));
}

// ---------------------------------------------------------------------------------------------
// Optimizer steps over lists of parameters
// ---------------------------------------------------------------------------------------------

// The i-th array of a list, checked against the parameter it belongs to.
py::array state_at(const std::string& fn, const char* what, const py::list& l, size_t i,
                   const py::array& p, bool writable) {
  const py::handle h = l[i];
  if (!py::isinstance<py::array>(h))
    type_error(fn, std::string(what) + "[" + std::to_string(i) + "] must be an ndarray");
  py::array a = py::reinterpret_borrow<py::array>(h);
  const std::string name = std::string(what) + "[" + std::to_string(i) + "]";
  same_dtype(fn, "param", p, name.c_str(), a);
  same_shape(fn, "param", p, name.c_str(), a);
  if (writable && !a.writeable()) value_error(fn, name + " is read-only");
  return a;
}

std::vector<py::array> params_of(const std::string& fn, const py::list& params,
                                 const std::vector<const py::list*>& others,
                                 const std::vector<const char*>& names) {
  for (size_t j = 0; j < others.size(); ++j)
    if (others[j]->size() != params.size())
      value_error(fn, std::string(names[j]) + " has " + std::to_string(others[j]->size()) +
                          " arrays for " + std::to_string(params.size()) + " params");
  std::vector<py::array> out;
  for (size_t i = 0; i < params.size(); ++i) {
    const py::handle h = params[i];
    if (!py::isinstance<py::array>(h))
      type_error(fn, "params[" + std::to_string(i) + "] must be an ndarray");
    py::array p = py::reinterpret_borrow<py::array>(h);
    float_dtype(fn, "param", p);
    if (!p.writeable()) value_error(fn, "params[" + std::to_string(i) + "] is read-only");
    out.push_back(p);
  }
  return out;
}

void sgd_step(const py::list& params, const py::list& grads, const py::object& bufs, double lr,
              double momentum, double dampening, bool nesterov, double weight_decay,
              bool first_step) {
  const std::string fn = "sgd_step";
  const bool use_bufs = momentum != 0;
  py::list buf_list = use_bufs ? bufs.cast<py::list>() : py::list();
  std::vector<const py::list*> others{&grads};
  std::vector<const char*> names{"grads"};
  if (use_bufs) others.push_back(&buf_list), names.push_back("bufs");
  const std::vector<py::array> ps = params_of(fn, params, others, names);
  std::vector<py::array> gs, bs;
  for (size_t i = 0; i < ps.size(); ++i) {
    gs.push_back(state_at(fn, "grads", grads, i, ps[i], false));
    if (use_bufs) bs.push_back(state_at(fn, "bufs", buf_list, i, ps[i], true));
  }
  for (size_t i = 0; i < ps.size(); ++i) {
    py::array p = ps[i];
    dispatch(float_dtype(fn, "param", p), [&](auto tag) {
      using T = decltype(tag);
      T* pp = mptr<T>(p);
      const T* pg = cptr<T>(gs[i]);
      T* pb = use_bufs ? mptr<T>(bs[i]) : nullptr;
      py::gil_scoped_release nogil;
      ag::sgd_step<T>(pp, pg, pb, p.size(), lr, momentum, dampening, nesterov, weight_decay,
                      first_step);
    });
  }
}

void adam_step(const py::list& params, const py::list& grads, const py::list& exp_avgs,
               const py::list& exp_avg_sqs, double lr, double bc1, double bc2_sqrt, double beta1,
               double beta2, double eps, double weight_decay, bool decoupled) {
  const std::string fn = "adam_step";
  const std::vector<py::array> ps = params_of(fn, params, {&grads, &exp_avgs, &exp_avg_sqs},
                                              {"grads", "exp_avgs", "exp_avg_sqs"});
  std::vector<py::array> gs, ms, vs;
  for (size_t i = 0; i < ps.size(); ++i) {
    gs.push_back(state_at(fn, "grads", grads, i, ps[i], false));
    ms.push_back(state_at(fn, "exp_avgs", exp_avgs, i, ps[i], true));
    vs.push_back(state_at(fn, "exp_avg_sqs", exp_avg_sqs, i, ps[i], true));
  }
  for (size_t i = 0; i < ps.size(); ++i) {
    py::array p = ps[i];
    dispatch(float_dtype(fn, "param", p), [&](auto tag) {
      using T = decltype(tag);
      T* pp = mptr<T>(p);
      const T* pg = cptr<T>(gs[i]);
      T *pm = mptr<T>(ms[i]), *pv = mptr<T>(vs[i]);
      py::gil_scoped_release nogil;
      ag::adam_step<T>(pp, pg, pm, pv, p.size(), lr, bc1, bc2_sqrt, beta1, beta2, eps,
                       weight_decay, decoupled);
    });
  }
}

py::dict blas_info() {
  const ag::BlasInfo info = ag::blas_info();
  py::dict d;
  d["library"] = "scipy-openblas32";
  d["corename"] = info.corename;
  d["config"] = info.config;
  d["num_threads"] = info.num_threads;
  d["num_procs"] = info.num_procs;
  return d;
}

void set_num_threads(int n) {
  ag::set_num_threads(n);  // std::invalid_argument (ValueError) naming the range
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "Native kernels of autograd (C++, OpenBLAS, OpenMP); use autograd.backend.native.";
  ag::init_threads();
  ag_runtime::bind(m);

  // Elementwise arithmetic: same shape, a scalar, or a row (last-axis) broadcast.
  const std::pair<const char*, ag::BinOp> binops[] = {
      {"add", ag::BinOp::Add}, {"sub", ag::BinOp::Sub}, {"mul", ag::BinOp::Mul},
      {"div", ag::BinOp::Div}};
  for (const auto& [name, op] : binops) {
    const std::string fn = name;
    const ag::BinOp o = op;
    m.def(name, [fn, o](const py::array& a, const py::array& b) { return binary(fn, o, a, b); },
          A("a"), A("b"));
  }

  // y = f(x).
  struct UnaryEntry {
    const char* name;
    Unary<float> f32;
    Unary<double> f64;
  };
  const UnaryEntry unaries[] = {
      {"neg", ag::neg<float>, ag::neg<double>},
      {"exp", ag::exp<float>, ag::exp<double>},
      {"log", ag::log<float>, ag::log<double>},
      {"sqrt", ag::sqrt<float>, ag::sqrt<double>},
      {"abs", ag::abs<float>, ag::abs<double>},
      {"sigmoid", ag::sigmoid<float>, ag::sigmoid<double>},
      {"tanh", ag::tanh<float>, ag::tanh<double>},
      {"relu", ag::relu<float>, ag::relu<double>},
      {"gelu", ag::gelu<float>, ag::gelu<double>},
      {"gelu_erf", ag::gelu_erf<float>, ag::gelu_erf<double>},
  };
  for (const auto& e : unaries) {
    const std::string fn = e.name;
    const auto f32 = e.f32;
    const auto f64 = e.f64;
    m.def(e.name, [fn, f32, f64](const py::array& x) { return unary(fn, x, f32, f64); }, A("x"));
  }

  // dx = f(saved, grad), both the same shape.
  struct PairEntry {
    const char* name;
    const char* saved;
    Pair<float> f32;
    Pair<double> f64;
  };
  const PairEntry pairs[] = {
      {"sigmoid_back", "out", ag::sigmoid_back<float>, ag::sigmoid_back<double>},
      {"tanh_back", "out", ag::tanh_back<float>, ag::tanh_back<double>},
      {"relu_back", "x", ag::relu_back<float>, ag::relu_back<double>},
      {"gelu_back", "x", ag::gelu_back<float>, ag::gelu_back<double>},
      {"gelu_erf_back", "x", ag::gelu_erf_back<float>, ag::gelu_erf_back<double>},
  };
  for (const auto& e : pairs) {
    const std::string fn = e.name;
    const char* saved = e.saved;
    const auto f32 = e.f32;
    const auto f64 = e.f64;
    m.def(e.name,
          [fn, saved, f32, f64](const py::array& a, const py::array& grad) {
            return pair(fn, saved, a, grad, f32, f64);
          },
          A(e.saved), A("grad"));
  }

  m.def("leaky_relu",
        [](const py::array& x, double slope) {
          return leaky("leaky_relu", x, nullptr, slope,
                       [](const float* x, const float*, float* y, index_t n, double s) {
                         ag::leaky_relu<float>(x, y, n, s);
                       },
                       [](const double* x, const double*, double* y, index_t n, double s) {
                         ag::leaky_relu<double>(x, y, n, s);
                       });
        },
        A("x"), py::arg("slope"));
  m.def("leaky_relu_back",
        [](const py::array& x, const py::array& grad, double slope) {
          return leaky("leaky_relu_back", x, &grad, slope, ag::leaky_relu_back<float>,
                       ag::leaky_relu_back<double>);
        },
        A("x"), A("grad"), py::arg("slope"));

  // Softmax family along the last axis.
  m.def("softmax", [](const py::array& x) {
    return rowwise("softmax", x, nullptr, [](auto px, auto, auto py_, index_t r, index_t c) {
      ag::softmax(px, py_, r, c);
    });
  }, A("x"));
  m.def("log_softmax", [](const py::array& x) {
    return rowwise("log_softmax", x, nullptr, [](auto px, auto, auto py_, index_t r, index_t c) {
      ag::log_softmax(px, py_, r, c);
    });
  }, A("x"));
  m.def("softmax_back", [](const py::array& out, const py::array& grad) {
    return rowwise("softmax_back", out, &grad, [](auto po, auto pg, auto py_, index_t r,
                                                  index_t c) { ag::softmax_back(po, pg, py_, r, c); });
  }, A("out"), A("grad"));
  m.def("log_softmax_back", [](const py::array& out, const py::array& grad) {
    return rowwise("log_softmax_back", out, &grad,
                   [](auto po, auto pg, auto py_, index_t r, index_t c) {
                     ag::log_softmax_back(po, pg, py_, r, c);
                   });
  }, A("out"), A("grad"));
  m.def("logsumexp", &logsumexp, A("x"), "log(sum(exp(x))) along the last axis.");
  m.def("logsumexp_back", &logsumexp_back, A("x"), A("out"), A("grad"));

  m.def("sum_axis", &sum_axis, A("x"), py::arg("outer"), py::arg("n"), py::arg("inner"),
        "Sums of x viewed as (outer, n, inner) over n, flat (outer * inner,).");

  // Losses.
  m.def("mse", [](const py::array& p, const py::array& t, const std::string& r) {
    return loss("mse", p, t, r, ag::mse<float>, ag::mse<double>);
  }, A("pred"), A("target"), py::arg("reduction") = "mean");
  m.def("mse_back", [](const py::array& p, const py::array& t, const py::array& g,
                       const std::string& r) {
    return loss_back("mse_back", p, t, g, r, ag::mse_back<float>, ag::mse_back<double>);
  }, A("pred"), A("target"), A("grad"), py::arg("reduction") = "mean");
  m.def("bce", [](const py::array& p, const py::array& t, const std::string& r) {
    return loss("bce", p, t, r, ag::bce<float>, ag::bce<double>);
  }, A("prob"), A("target"), py::arg("reduction") = "mean");
  m.def("bce_back", [](const py::array& p, const py::array& t, const py::array& g,
                       const std::string& r) {
    return loss_back("bce_back", p, t, g, r, ag::bce_back<float>, ag::bce_back<double>);
  }, A("prob"), A("target"), A("grad"), py::arg("reduction") = "mean");
  m.def("bce_with_logits", [](const py::array& p, const py::array& t, const std::string& r) {
    return loss("bce_with_logits", p, t, r, ag::bce_with_logits<float>,
                ag::bce_with_logits<double>);
  }, A("logits"), A("target"), py::arg("reduction") = "mean");
  m.def("bce_with_logits_back", [](const py::array& p, const py::array& t, const py::array& g,
                                   const std::string& r) {
    return loss_back("bce_with_logits_back", p, t, g, r, ag::bce_with_logits_back<float>,
                     ag::bce_with_logits_back<double>);
  }, A("logits"), A("target"), A("grad"), py::arg("reduction") = "mean");
  m.def("cross_entropy", &cross_entropy, A("logits"), A("target"),
        py::arg("reduction") = "mean");
  m.def("cross_entropy_back", &cross_entropy_back, A("log_probs"), A("target"), A("grad"),
        py::arg("reduction") = "mean");

  // Linear algebra and the fused layer.
  m.def("matmul", &matmul, A("a"), A("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false,
        "op(a) @ op(b) for C-contiguous float arrays; batch axes equal or one operand 2-D.");
  m.def("linear", &linear, A("x"), A("w"), py::arg("b").none(true),
        py::arg("activation").none(true) = py::none());
  m.def("linear_back", &linear_back, A("x"), A("w"), A("out"), A("grad"),
        py::arg("activation").none(true) = py::none(), py::arg("has_bias") = true);

  // Optimizers (in place).
  m.def("sgd_step", &sgd_step, py::arg("params"), py::arg("grads"), py::arg("bufs").none(true),
        py::arg("lr"), py::arg("momentum") = 0.0, py::arg("dampening") = 0.0,
        py::arg("nesterov") = false, py::arg("weight_decay") = 0.0,
        py::arg("first_step") = false);
  m.def("adam_step", &adam_step, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::arg("lr"), py::arg("bc1"), py::arg("bc2_sqrt"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("decoupled"));

  // Runtime.
  m.def("blas_info", &blas_info, "OpenBLAS core name, configuration and thread count.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Threads for the BLAS and the native kernels.");
  m.def("get_num_threads", &ag::get_num_threads, "Threads used by the native kernels.");
}
