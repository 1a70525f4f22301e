// Kernel families: for each, its parameters, its contract (`prep`: dtypes, shapes and attrs
// checked, result shapes computed) and its call into the math of csrc/kernels/ (`run`, without
// the GIL). No Python here: the front ends (bindings.cpp) turn Python arguments into a Call and
// KernelError into TypeError/ValueError. No math here either: `run` only calls a kernel.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/activations.h"
#include "kernels/blas.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/losses.h"
#include "kernels/optim.h"
#include "kernels/reductions.h"
#include "kernels/softmax.h"

namespace agt {

using ag::index_t;

enum class DT : int { F32 = 0, F64 = 1, I64 = 2 };
constexpr int kMaxDims = 32;

// One array argument or result: where it is and what it holds. Only shape[0, nd) is meaningful
// and every reader stops at nd, so `Arr a;` leaves the rest of `shape` uninitialised: zeroing
// it cost 20-30 ns of a ~250 ns eager call (its Call and arena hold ten Arrs, 2.9 KB). `Arr{}`
// and containers (std::vector<Arr>(n)) still zero it.
struct Arr {
  void* data = nullptr;
  DT dt = DT::F32;
  int nd = 0;
  index_t size = 1;
  bool writable = true;
  index_t shape[kMaxDims];
};

// One array parameter's arguments: one array, a sequence (optimizer lists), or none (None).
struct Span {
  Arr* a = nullptr;
  int n = 0;
  bool none = false;
};

// A non-array argument, converted once: float, int, bool, enum (reduction, activation), or an
// axis / shape tuple.
struct Attr {
  double f = 0;
  index_t i = 0;
  bool none = false;
  std::vector<index_t> tup;
};

enum class PK : int {
  In,
  InOpt,
  InSeq,
  InSeqOpt,
  Index,  // arrays (Index: int64 class ids)
  Float,
  Int,
  Bool,
  Reduction,
  Activation,
  Axis,
  Shape,  // attrs
};
inline bool is_array(PK k) { return k <= PK::Index; }

struct Param {
  std::string name;
  PK kind;
  bool has_default = false;
  Attr def;
};

struct Kernel;

constexpr int kMaxIn = 6, kMaxOut = 3, kMaxAttr = 8;

// One kernel call: the same structure for an eager call and a plan step.
struct Call {
  const Kernel* k = nullptr;
  DT dt = DT::F32;
  int nin = 0, nout = 0, nscratch = 0, nattr = 0;
  Span in[kMaxIn];
  Arr out[kMaxOut];
  Arr scratch[1];
  Attr attr[kMaxAttr];
  index_t dim[8] = {};
};

struct Kernel {
  std::string name, family;
  bool exact = false;
  std::vector<Param> params;
  int ret = 1;  // results returned: 0 = None (in place), 1 = one array, n = tuple
  void (*prep)(Call&) = nullptr;
  index_t (*run)(const Call&) = nullptr;  // -1, or a data error (cross_entropy: a bad row)
  void (*f32)() = nullptr;                // the kernel's math, for families with many members
  void (*f64)() = nullptr;
  int op = 0;  // the operator, for families that share one kernel (binary: ag::BinOp)
  // The family tests the per-call code makes, decided once in make(): comparing family names
  // on every call (strlen + memcmp each) cost ~20 ns of a ~200 ns eager call.
  bool optim = false, matmul = false, linear = false;
};

struct KernelError {
  bool type_error;
  std::string msg;
};

// ---------------------------------------------------------------------------------------------
// Contract helpers
// ---------------------------------------------------------------------------------------------

inline std::string shape_str(const index_t* s, int nd) {
  std::string out = "(";
  for (int i = 0; i < nd; ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (nd == 1 ? ",)" : ")");
}
inline std::string shape_str(const Arr& a) { return shape_str(a.shape, a.nd); }

[[noreturn]] inline void fail(const Call& c, const std::string& msg);
inline const char* pname(const Call& c, int array_index);

inline const Arr& A(const Call& c, int j) { return c.in[j].a[0]; }
inline bool same_shape(const Arr& a, const Arr& b) {
  return a.nd == b.nd && std::equal(a.shape, a.shape + a.nd, b.shape);
}
inline void need_same_shape(const Call& c, int i, int j) {
  if (!same_shape(A(c, i), A(c, j)))
    fail(c, std::string(pname(c, i)) + " and " + pname(c, j) + " must have the same shape, got " +
                shape_str(A(c, i)) + " and " + shape_str(A(c, j)));
}
inline void set_out(Call& c, int o, const index_t* shape, int nd) {
  Arr& r = c.out[o];
  r.dt = c.dt, r.nd = nd, r.size = 1;
  for (int i = 0; i < nd; ++i) r.shape[i] = shape[i], r.size *= shape[i];
  c.nout = std::max(c.nout, o + 1);
}
inline void out_like(Call& c, int o, const Arr& a) { set_out(c, o, a.shape, a.nd); }
// Result o (set) is not wanted: the call returns None in its place and `run` skips it (a
// negative nd marks it: no real result has one).
inline void no_result(Call& c, int o) { c.out[o].nd = -1, c.out[o].size = 0; }
inline bool is_result(const Call& c, int o) { return o < c.nout && c.out[o].nd >= 0; }
inline index_t last_dim(const Arr& a) { return a.nd ? a.shape[a.nd - 1] : 1; }
inline void need_last_axis(const Call& c, const Arr& x, index_t axis) {
  if (x.nd < 1 || (axis != -1 && axis != x.nd - 1))
    fail(c, "runs along the last axis only, got axis " + std::to_string(axis) + " for shape " +
                shape_str(x));
}

template <class T>
const T* ip(const Call& c, int j, int i = 0) {
  return static_cast<const T*>(c.in[j].a[i].data);
}
template <class T>
T* mp(const Call& c, int j, int i = 0) {
  return static_cast<T*>(c.in[j].a[i].data);
}
template <class T>
T* op(const Call& c, int o) {
  return static_cast<T*>(c.out[o].data);
}

// Calls f(T{}) with T the C++ type of the call's dtype.
template <class F>
index_t by_dtype(DT dt, F f) {
  if (dt == DT::F32) return f(float{});
  return f(double{});
}

template <class T>
using UnaryF = void (*)(const T*, T*, index_t);
template <class T>
using PairF = void (*)(const T*, const T*, T*, index_t);
template <class T>
using LossF = index_t (*)(const T*, const T*, T*, index_t, ag::Reduction);
template <class T>
using LossB = index_t (*)(const T*, const T*, const T*, T*, index_t, ag::Reduction);
template <class T>
using RowF = void (*)(const T*, T*, index_t, index_t);
template <class T>
using RowB = void (*)(const T*, const T*, T*, index_t, index_t);

template <template <class> class Sig, class T>
Sig<T> fn_of(const Call& c) {
  if constexpr (std::is_same_v<T, float>)
    return reinterpret_cast<Sig<float>>(c.k->f32);
  else
    return reinterpret_cast<Sig<double>>(c.k->f64);
}

inline Param P(const char* name, PK kind) { return Param{name, kind, false, {}}; }
inline Param Pd(const char* name, PK kind, double f, index_t i = 0, bool none = false) {
  Attr a;
  a.f = f, a.i = i, a.none = none;
  return Param{name, kind, true, a};
}
inline Kernel make(const char* name, const char* family, bool exact, std::vector<Param> params,
                   int ret, void (*prep)(Call&), index_t (*run)(const Call&)) {
  Kernel k;
  k.name = name, k.family = family, k.exact = exact, k.params = std::move(params);
  k.ret = ret, k.prep = prep, k.run = run;
  k.optim = k.family == "optim", k.matmul = k.family == "matmul", k.linear = k.family == "linear";
  return k;
}
template <class F32, class F64>
Kernel with_fns(Kernel k, F32 f32, F64 f64) {
  k.f32 = reinterpret_cast<void (*)()>(f32);
  k.f64 = reinterpret_cast<void (*)()>(f64);
  return k;
}

// ---------------------------------------------------------------------------------------------
// Elementwise: unary, its gradient, binary with broadcasting, leaky relu
// ---------------------------------------------------------------------------------------------

inline void prep_same(Call& c) {
  for (int j = 1; j < c.nin; ++j) need_same_shape(c, 0, j);
  out_like(c, 0, A(c, 0));
  c.dim[0] = A(c, 0).size;
}

template <class T>
index_t run_unary_t(const Call& c) {
  fn_of<UnaryF, T>(c)(ip<T>(c, 0), op<T>(c, 0), c.dim[0]);
  return -1;
}
inline index_t run_unary(const Call& c) {
  return by_dtype(c.dt, [&](auto t) { return run_unary_t<decltype(t)>(c); });
}
template <class T>
index_t run_pair_t(const Call& c) {
  fn_of<PairF, T>(c)(ip<T>(c, 0), ip<T>(c, 1), op<T>(c, 0), c.dim[0]);
  return -1;
}
inline index_t run_pair(const Call& c) {
  return by_dtype(c.dt, [&](auto t) { return run_pair_t<decltype(t)>(c); });
}

inline Kernel unary_kernel(const char* name, bool exact, UnaryF<float> f32, UnaryF<double> f64) {
  return with_fns(make(name, "unary", exact, {P("x", PK::In)}, 1, prep_same, run_unary), f32, f64);
}
inline Kernel unary_back_kernel(const char* name, const char* saved, bool exact, PairF<float> f32,
                                PairF<double> f64) {
  return with_fns(make(name, "unary_back", exact, {P(saved, PK::In), P("grad", PK::In)}, 1,
                       prep_same, run_pair),
                  f32, f64);
}

// True if `row` is a row of `full`: at most full's rank, last axes equal, all others 1.
inline bool is_row_of(const Arr& row, const Arr& full) {
  if (row.nd < 1 || row.nd > full.nd || last_dim(row) != last_dim(full)) return false;
  for (int i = 0; i + 1 < row.nd; ++i)
    if (row.shape[i] != 1) return false;
  return true;
}

inline void prep_binary(Call& c) {
  using ag::Bcast;
  const Arr &a = A(c, 0), &b = A(c, 1);
  Bcast ma = Bcast::Full, mb = Bcast::Full;
  const Arr* full = &a;
  if (same_shape(a, b)) {
  } else if (b.size == 1 && b.nd <= a.nd) {
    mb = Bcast::Scalar;
  } else if (a.size == 1 && a.nd <= b.nd) {
    ma = Bcast::Scalar, full = &b;
  } else if (is_row_of(b, a)) {
    mb = Bcast::Row;
  } else if (is_row_of(a, b)) {
    ma = Bcast::Row, full = &b;
  } else {
    fail(c, "shapes " + shape_str(a) + " and " + shape_str(b) +
                " are not same-shape, scalar or last-axis broadcastable");
  }
  out_like(c, 0, *full);
  const bool row = ma == Bcast::Row || mb == Bcast::Row;
  const index_t cols = last_dim(*full);
  c.dim[0] = static_cast<index_t>(ma), c.dim[1] = static_cast<index_t>(mb);
  c.dim[2] = row ? (cols ? full->size / cols : 0) : 1;
  c.dim[3] = row ? cols : full->size;
}
inline index_t run_binary(const Call& c) {
  return by_dtype(c.dt, [&](auto t) {
    using T = decltype(t);
    ag::binary<T>(static_cast<ag::BinOp>(c.k->op), ip<T>(c, 0), static_cast<ag::Bcast>(c.dim[0]),
                  ip<T>(c, 1), static_cast<ag::Bcast>(c.dim[1]), op<T>(c, 0), c.dim[2], c.dim[3]);
    return index_t{-1};
  });
}
inline Kernel binary_kernel(const char* name, ag::BinOp o, bool exact) {
  Kernel k =
      make(name, "binary", exact, {P("a", PK::In), P("b", PK::In)}, 1, prep_binary, run_binary);
  k.op = static_cast<int>(o);
  return k;
}

inline index_t run_leaky(const Call& c) {
  return by_dtype(c.dt, [&](auto t) {
    using T = decltype(t);
    if (c.nin == 1)
      ag::leaky_relu<T>(ip<T>(c, 0), op<T>(c, 0), c.dim[0], c.attr[0].f);
    else
      ag::leaky_relu_back<T>(ip<T>(c, 0), ip<T>(c, 1), op<T>(c, 0), c.dim[0], c.attr[0].f);
    return index_t{-1};
  });
}
inline Kernel leaky_relu_kernel() {
  return make("leaky_relu", "leaky", false, {P("x", PK::In), P("slope", PK::Float)}, 1, prep_same,
              run_leaky);
}
inline Kernel leaky_relu_back_kernel() {
  return make("leaky_relu_back", "leaky", false,
              {P("x", PK::In), P("grad", PK::In), P("slope", PK::Float)}, 1, prep_same, run_leaky);
}

// ---------------------------------------------------------------------------------------------
// Softmax-like: row-wise along the last axis
// ---------------------------------------------------------------------------------------------

inline void prep_rows(Call& c) {
  prep_same(c);
  const Arr& x = A(c, 0);
  need_last_axis(c, x, c.attr[0].i);
  c.dim[1] = last_dim(x), c.dim[0] = c.dim[1] ? x.size / c.dim[1] : 0;
}
template <class T>
index_t run_rows_t(const Call& c) {
  if (c.dim[0] == 0 || c.dim[1] == 0) return -1;  // an empty x gives an empty result
  if (c.nin == 1)
    fn_of<RowF, T>(c)(ip<T>(c, 0), op<T>(c, 0), c.dim[0], c.dim[1]);
  else
    fn_of<RowB, T>(c)(ip<T>(c, 0), ip<T>(c, 1), op<T>(c, 0), c.dim[0], c.dim[1]);
  return -1;
}
inline index_t run_rows(const Call& c) {
  return by_dtype(c.dt, [&](auto t) { return run_rows_t<decltype(t)>(c); });
}
inline Kernel rowwise_kernel(const char* name, RowF<float> f32, RowF<double> f64) {
  return with_fns(make(name, "rowwise", false, {P("x", PK::In), Pd("axis", PK::Int, 0, -1)}, 1,
                       prep_rows, run_rows),
                  f32, f64);
}
inline Kernel rowwise_back_kernel(const char* name, RowB<float> f32, RowB<double> f64) {
  return with_fns(make(name, "rowwise_back", false,
                       {P("out", PK::In), P("grad", PK::In), Pd("axis", PK::Int, 0, -1)}, 1,
                       prep_rows, run_rows),
                  f32, f64);
}

// logsumexp(x, axis, keepdims) and its gradient.
inline void prep_lse(Call& c) {
  const Arr& x = A(c, 0);
  const bool back = c.nin == 3;
  const Attr &axis = c.attr[0], &keep = c.attr[1];
  need_last_axis(c, x, axis.i);
  if (!back && x.shape[x.nd - 1] == 0)
    fail(c, "needs a non-empty last axis, got shape " + shape_str(x));
  index_t rows_shape[kMaxDims];
  std::copy(x.shape, x.shape + x.nd - 1, rows_shape);
  const int rnd = x.nd - 1 + (keep.i ? 1 : 0);
  if (keep.i) rows_shape[x.nd - 1] = 1;
  c.dim[1] = last_dim(x), c.dim[0] = c.dim[1] ? x.size / c.dim[1] : 0;
  if (back) {
    for (int j = 1; j < 3; ++j)
      if (A(c, j).nd != rnd || !std::equal(rows_shape, rows_shape + rnd, A(c, j).shape))
        fail(c, "out and grad must hold one value per row of x, got shapes " + shape_str(x) + ", " +
                    shape_str(A(c, 1)) + " and " + shape_str(A(c, 2)));
    if (x.shape[x.nd - 1] == 0) c.dim[0] = 0;
    out_like(c, 0, x);
  } else {
    set_out(c, 0, rows_shape, rnd);
  }
}
inline index_t run_lse(const Call& c) {
  return by_dtype(c.dt, [&](auto t) {
    using T = decltype(t);
    if (c.nin == 1)
      ag::logsumexp<T>(ip<T>(c, 0), op<T>(c, 0), c.dim[0], c.dim[1]);
    else if (c.dim[0] && c.dim[1])
      ag::logsumexp_back<T>(ip<T>(c, 0), ip<T>(c, 1), ip<T>(c, 2), op<T>(c, 0), c.dim[0], c.dim[1]);
    return index_t{-1};
  });
}
inline Kernel logsumexp_kernel() {
  return make("logsumexp", "logsumexp", false,
              {P("x", PK::In), Pd("axis", PK::Int, 0, -1), Pd("keepdims", PK::Bool, 0, 0)}, 1,
              prep_lse, run_lse);
}
inline Kernel logsumexp_back_kernel() {
  return make("logsumexp_back", "logsumexp", false,
              {P("x", PK::In), P("out", PK::In), P("grad", PK::In), Pd("axis", PK::Int, 0, -1),
               Pd("keepdims", PK::Bool, 0, 0)},
              1, prep_lse, run_lse);
}

// ---------------------------------------------------------------------------------------------
// Reductions: one contiguous run of axes, as x viewed (outer, n, inner) summed over n
// ---------------------------------------------------------------------------------------------

inline void set_run(Call& c, const Arr& x, int lo, int hi) {  // axes lo..hi (hi < lo: none)
  index_t outer = 1, n = 1, inner = 1;
  for (int i = 0; i < x.nd; ++i) (i < lo ? outer : i <= hi ? n : inner) *= x.shape[i];
  c.dim[0] = outer, c.dim[1] = n, c.dim[2] = inner;
}
inline void prep_sum(Call& c) {
  const Arr& x = A(c, 0);
  const Attr& axis = c.attr[0];
  std::vector<index_t> axes;
  if (axis.none)
    for (int i = 0; i < x.nd; ++i) axes.push_back(i);
  else if (axis.tup.empty() && axis.f == 0)
    axes.push_back(axis.i);  // one int (f marks tuple)
  else
    axes = axis.tup;
  for (index_t& a : axes) {
    if (a < -x.nd || a >= x.nd)
      fail(c, "axis " + std::to_string(a) + " is out of range for shape " + shape_str(x));
    a = (a + x.nd) % std::max(x.nd, 1);
  }
  std::sort(axes.begin(), axes.end());
  for (size_t i = 1; i < axes.size(); ++i)
    if (axes[i] != axes[i - 1] + 1)
      fail(c, "sums one run of consecutive axes, got axes for shape " + shape_str(x));
  const int lo = axes.empty() ? 0 : int(axes.front()), hi = axes.empty() ? -1 : int(axes.back());
  set_run(c, x, lo, hi);
  index_t shape[kMaxDims];
  int nd = 0;
  for (int i = 0; i < x.nd; ++i)
    if (i < lo || i > hi)
      shape[nd++] = x.shape[i];
    else if (c.attr[1].i)
      shape[nd++] = 1;
  set_out(c, 0, shape, nd);
}
inline void prep_sum_to(Call& c) {
  const Arr& g = A(c, 0);
  const std::vector<index_t>& s = c.attr[0].tup;
  const int lead = g.nd - int(s.size());
  std::vector<bool> reduced(static_cast<size_t>(std::max(lead, 0)), true);
  bool ok = lead >= 0 && s.size() <= size_t(kMaxDims);
  for (size_t i = 0; ok && i < s.size(); ++i) {
    const index_t gi = g.shape[i + lead];
    ok = s[i] == gi || s[i] == 1;
    reduced.push_back(s[i] == 1 && gi != 1);
  }
  int lo = -1, hi = -2;
  for (int i = 0; ok && i < g.nd; ++i)
    if (reduced[i]) hi = i, lo = lo < 0 ? i : lo;
  for (int i = std::max(lo, 0); ok && i <= hi; ++i) ok = reduced[i] || g.shape[i] == 1;
  if (!ok)
    fail(c, "cannot sum " + shape_str(g) + " to " + shape_str(s.data(), int(s.size())) +
                " over one run of axes");
  set_run(c, g, lo < 0 ? 0 : lo, hi);
  set_out(c, 0, s.data(), int(s.size()));
}
inline void prep_sum_axis(Call& c) {
  const index_t outer = c.attr[0].i, n = c.attr[1].i, inner = c.attr[2].i;
  index_t size = 0, total = 0;  // checked: with n == 0, outer * inner is not bounded by x
  if (outer < 0 || n < 0 || inner < 0 || __builtin_mul_overflow(outer, inner, &size) ||
      __builtin_mul_overflow(size, n, &total) || total != A(c, 0).size)
    fail(c, "(outer, n, inner) = (" + std::to_string(outer) + ", " + std::to_string(n) + ", " +
                std::to_string(inner) + ") does not cover x of shape " + shape_str(A(c, 0)));
  c.dim[0] = outer, c.dim[1] = n, c.dim[2] = inner;
  set_out(c, 0, &size, 1);
}
inline index_t run_sum(const Call& c) {
  return by_dtype(c.dt, [&](auto t) {
    using T = decltype(t);
    ag::sum_axis<T>(ip<T>(c, 0), op<T>(c, 0), c.dim[0], c.dim[1], c.dim[2]);
    return index_t{-1};
  });
}
inline Kernel sum_kernel() {
  return make("sum", "reduction", false,
              {P("x", PK::In), Pd("axis", PK::Axis, 0, 0, true), Pd("keepdims", PK::Bool, 0, 0)}, 1,
              prep_sum, run_sum);
}
inline Kernel sum_to_kernel() {
  return make("sum_to", "reduction", false, {P("grad", PK::In), P("shape", PK::Shape)}, 1,
              prep_sum_to, run_sum);
}
inline Kernel sum_axis_kernel() {
  return make("sum_axis", "reduction", false,
              {P("x", PK::In), P("outer", PK::Int), P("n", PK::Int), P("inner", PK::Int)}, 1,
              prep_sum_axis, run_sum);
}

// ---------------------------------------------------------------------------------------------
// Matrix products and the fused linear layer
// ---------------------------------------------------------------------------------------------

inline void need_blas_dims(const Call& c, std::initializer_list<index_t> dims) {
  for (index_t d : dims)
    if (d > ag::kBlasMaxDim)
      fail(c, "a dimension exceeds the 32-bit BLAS limit, shapes " + shape_str(A(c, 0)) + " and " +
                  shape_str(A(c, 1)));
}
inline void prep_matmul(Call& c) {
  const Arr &a = A(c, 0), &b = A(c, 1);
  const bool ta = c.attr[0].i, tb = c.attr[1].i;
  if (a.nd < 2 || b.nd < 2)
    fail(c,
         "both operands must be at least 2-D, got shapes " + shape_str(a) + " and " + shape_str(b));
  const index_t ar = a.shape[a.nd - 2], ac = a.shape[a.nd - 1];
  const index_t br = b.shape[b.nd - 2], bc = b.shape[b.nd - 1];
  const index_t m = ta ? ac : ar, k = ta ? ar : ac, kb = tb ? bc : br, n = tb ? br : bc;
  if (k != kb)
    fail(c, "inner dimensions differ: op(a) is " + std::to_string(m) + "x" + std::to_string(k) +
                " and op(b) is " + std::to_string(kb) + "x" + std::to_string(n) + " (shapes " +
                shape_str(a) + " and " + shape_str(b) + ", trans_a=" + (ta ? "True" : "False") +
                ", trans_b=" + (tb ? "True" : "False") + ")");
  if (a.nd > 2 && b.nd > 2 && (a.nd != b.nd || !std::equal(a.shape, a.shape + a.nd - 2, b.shape)))
    fail(c, "batch axes must be equal or one operand 2-D, got shapes " + shape_str(a) + " and " +
                shape_str(b));
  need_blas_dims(c, {m, n, k});
  const Arr& big = a.nd >= b.nd ? a : b;
  index_t shape[kMaxDims], batch_a = 1, batch_b = 1;
  for (int i = 0; i + 2 < a.nd; ++i) batch_a *= a.shape[i];
  for (int i = 0; i + 2 < b.nd; ++i) batch_b *= b.shape[i];
  std::copy(big.shape, big.shape + big.nd - 2, shape);
  shape[big.nd - 2] = m, shape[big.nd - 1] = n;
  set_out(c, 0, shape, big.nd);
  c.dim[0] = a.nd >= b.nd ? batch_a : batch_b, c.dim[1] = batch_a, c.dim[2] = batch_b;
  c.dim[3] = m, c.dim[4] = n, c.dim[5] = k;
}
inline index_t run_matmul(const Call& c) {
  return by_dtype(c.dt, [&](auto t) {
    using T = decltype(t);
    ag::matmul<T>(ip<T>(c, 0), ip<T>(c, 1), op<T>(c, 0), c.dim[0], c.dim[1], c.dim[2], c.dim[3],
                  c.dim[4], c.dim[5], c.attr[0].i, c.attr[1].i);
    return index_t{-1};
  });
}
inline Kernel matmul_kernel() {
  return make("matmul", "matmul", false,
              {P("a", PK::In), P("b", PK::In), Pd("trans_a", PK::Bool, 0, 0),
               Pd("trans_b", PK::Bool, 0, 0)},
              1, prep_matmul, run_matmul);
}

inline void prep_linear(Call& c) {
  const Arr &x = A(c, 0), &w = A(c, 1);
  if (x.nd != 2 || w.nd != 2 || x.shape[1] != w.shape[1])
    fail(c,
         "x must be (n, in) and w (out, in), got shapes " + shape_str(x) + " and " + shape_str(w));
  need_blas_dims(c, {x.shape[0], x.shape[1], w.shape[0]});
  const index_t n = x.shape[0], in = x.shape[1], out = w.shape[0];
  c.dim[0] = n, c.dim[1] = in, c.dim[2] = out;
  const index_t yshape[2] = {n, out};
  if (c.nin == 3) {  // forward: b (out,) or None
    if (!c.in[2].none && (A(c, 2).nd != 1 || A(c, 2).shape[0] != out))
      fail(c, "b must have shape (" + std::to_string(out) + ",) for w " + shape_str(w) + ", got " +
                  shape_str(A(c, 2)));
    set_out(c, 0, yshape, 2);
    return;
  }
  need_same_shape(c, 2, 3);
  if (A(c, 2).nd != 2 || A(c, 2).shape[0] != n || A(c, 2).shape[1] != out)
    fail(c, "out and grad must be (n, out) = (" + std::to_string(n) + ", " + std::to_string(out) +
                "), got " + shape_str(A(c, 2)));
  out_like(c, 0, x);
  if (!c.attr[2].i) no_result(c, 0);  // need_dx false: dx is None, its product never run
  out_like(c, 1, w);
  if (c.attr[1].i) set_out(c, 2, &out, 1);  // has_bias
  if (c.attr[0].i != 0) {                   // an activation: dz needs a buffer
    c.scratch[0] = c.out[0];
    std::copy(yshape, yshape + 2, c.scratch[0].shape);
    c.scratch[0].nd = 2, c.scratch[0].size = n * out, c.nscratch = 1;
  }
}
inline index_t run_linear(const Call& c) {
  return by_dtype(c.dt, [&](auto t) {
    using T = decltype(t);
    const auto act = static_cast<ag::Activation>(c.attr[0].i);
    if (c.nin == 3) {
      ag::linear<T>(ip<T>(c, 0), ip<T>(c, 1), c.in[2].none ? nullptr : ip<T>(c, 2), op<T>(c, 0),
                    c.dim[0], c.dim[1], c.dim[2], act);
    } else {
      ag::linear_back<T>(ip<T>(c, 0), ip<T>(c, 1), ip<T>(c, 2), ip<T>(c, 3),
                         is_result(c, 0) ? op<T>(c, 0) : nullptr, op<T>(c, 1),
                         c.nout > 2 ? op<T>(c, 2) : nullptr,
                         c.nscratch ? static_cast<T*>(c.scratch[0].data) : nullptr, c.dim[0],
                         c.dim[1], c.dim[2], act);
    }
    return index_t{-1};
  });
}
inline Kernel linear_kernel() {
  return make("linear", "linear", false,
              {P("x", PK::In), P("w", PK::In), P("b", PK::InOpt),
               Pd("activation", PK::Activation, 0, 0, true)},
              1, prep_linear, run_linear);
}
inline Kernel linear_back_kernel() {
  return make("linear_back", "linear", false,
              {P("x", PK::In), P("w", PK::In), P("out", PK::In), P("grad", PK::In),
               Pd("activation", PK::Activation, 0, 0, true), Pd("has_bias", PK::Bool, 0, 1),
               Pd("need_dx", PK::Bool, 0, 1)},
              3, prep_linear, run_linear);
}

// ---------------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------------

inline ag::Reduction red(const Call& c, int a) { return static_cast<ag::Reduction>(c.attr[a].i); }

inline void prep_loss(Call& c) {
  need_same_shape(c, 0, 1);
  const Arr& p = A(c, 0);
  c.dim[0] = p.size;
  if (c.nin == 3) {  // backward: grad of the reduced loss
    if (red(c, 0) == ag::Reduction::None)
      need_same_shape(c, 0, 2);
    else if (A(c, 2).size != 1)
      fail(c, "grad of a reduced loss must hold one value, got shape " + shape_str(A(c, 2)));
    out_like(c, 0, p);
  } else {
    set_out(c, 0, p.shape, red(c, 0) == ag::Reduction::None ? p.nd : 0);
  }
}
template <class T>
index_t run_loss_t(const Call& c) {
  // -1, or the first target a loss refuses (bce's outside [0, 1]): see data_error
  if (c.nin == 2)
    return fn_of<LossF, T>(c)(ip<T>(c, 0), ip<T>(c, 1), op<T>(c, 0), c.dim[0], red(c, 0));
  return fn_of<LossB, T>(c)(ip<T>(c, 0), ip<T>(c, 1), ip<T>(c, 2), op<T>(c, 0), c.dim[0],
                            red(c, 0));
}
inline index_t run_loss(const Call& c) {
  return by_dtype(c.dt, [&](auto t) { return run_loss_t<decltype(t)>(c); });
}
inline Kernel loss_kernel(const char* name, const char* pred, LossF<float> f32, LossF<double> f64) {
  return with_fns(make(name, "loss", false,
                       {P(pred, PK::In), P("target", PK::In),
                        Pd("reduction", PK::Reduction, 0, int(ag::Reduction::Mean))},
                       1, prep_loss, run_loss),
                  f32, f64);
}
inline Kernel loss_back_kernel(const char* name, const char* pred, LossB<float> f32,
                               LossB<double> f64) {
  return with_fns(make(name, "loss_back", false,
                       {P(pred, PK::In), P("target", PK::In), P("grad", PK::In),
                        Pd("reduction", PK::Reduction, 0, int(ag::Reduction::Mean))},
                       1, prep_loss, run_loss),
                  f32, f64);
}

// cross_entropy(logits, target, reduction) -> (loss, log_probs); _back(log_probs, target, grad).
inline void prep_xent(Call& c) {
  const Arr &x = A(c, 0), &t = A(c, 1);
  if (x.nd != 2)
    fail(c, std::string(pname(c, 0)) + " must be 2-D (n, classes), got shape " + shape_str(x));
  if (t.nd != 1 || t.shape[0] != x.shape[0])
    fail(c, "target must have shape (n,) for logits " + shape_str(x) + ", got " + shape_str(t));
  if (x.shape[1] == 0) fail(c, "needs at least one class, got shape " + shape_str(x));
  c.dim[0] = x.shape[0], c.dim[1] = x.shape[1];
  const bool none = red(c, 0) == ag::Reduction::None;
  if (c.nin == 2) {
    set_out(c, 0, x.shape, none ? 1 : 0);
    out_like(c, 1, x);
    return;
  }
  if (none ? A(c, 2).size != x.shape[0] : A(c, 2).size != 1)
    fail(c, "grad must hold " + std::string(none ? "one value per row" : "one value") +
                " for log_probs " + shape_str(x) + ", got shape " + shape_str(A(c, 2)));
  out_like(c, 0, x);
}
inline index_t run_xent(const Call& c) {
  return by_dtype(c.dt, [&](auto t) {
    using T = decltype(t);
    const auto* tg = static_cast<const std::int64_t*>(A(c, 1).data);
    if (c.nin == 2)
      return ag::cross_entropy<T>(ip<T>(c, 0), tg, op<T>(c, 0), op<T>(c, 1), c.dim[0], c.dim[1],
                                  red(c, 0));
    return ag::cross_entropy_back<T>(ip<T>(c, 0), tg, ip<T>(c, 2), op<T>(c, 0), c.dim[0], c.dim[1],
                                     red(c, 0));
  });
}
inline Kernel cross_entropy_kernel() {
  return make("cross_entropy", "cross_entropy", false,
              {P("logits", PK::In), P("target", PK::Index),
               Pd("reduction", PK::Reduction, 0, int(ag::Reduction::Mean))},
              2, prep_xent, run_xent);
}
inline Kernel cross_entropy_back_kernel() {
  return make("cross_entropy_back", "cross_entropy", false,
              {P("log_probs", PK::In), P("target", PK::Index), P("grad", PK::In),
               Pd("reduction", PK::Reduction, 0, int(ag::Reduction::Mean))},
              1, prep_xent, run_xent);
}

// ---------------------------------------------------------------------------------------------
// Optimizer updates, in place over lists of parameters (each its own dtype)
// ---------------------------------------------------------------------------------------------

inline void prep_optim(Call& c) {
  const Span& ps = c.in[0];
  for (int j = 1; j < c.nin; ++j) {
    if (c.in[j].none) continue;
    if (c.in[j].n != ps.n)
      fail(c, std::string(pname(c, j)) + " has " + std::to_string(c.in[j].n) + " arrays for " +
                  std::to_string(ps.n) + " params");
  }
  for (int i = 0; i < ps.n; ++i) {
    if (!ps.a[i].writable) fail(c, "params[" + std::to_string(i) + "] is read-only");
    for (int j = 1; j < c.nin; ++j) {
      if (c.in[j].none) continue;
      const Arr& s = c.in[j].a[i];
      // the element's name ("grads[2]"), built only for a message: every step calls this
      const auto nm = [&] { return std::string(pname(c, j)) + "[" + std::to_string(i) + "]"; };
      if (s.dt != ps.a[i].dt)
        throw KernelError{true, c.k->name + ": param and " + nm() + " must have the same dtype"};
      if (!same_shape(s, ps.a[i]))
        fail(c, "param and " + nm() + " must have the same shape, got " + shape_str(ps.a[i]) +
                    " and " + shape_str(s));
      if (j > 1 && !s.writable) fail(c, nm() + " is read-only");
    }
  }
}
inline index_t run_sgd(const Call& c) {
  const Attr* a = c.attr;  // lr, momentum, dampening, nesterov, weight_decay, first_step
  const bool bufs = a[1].f != 0;
  if (bufs && c.in[2].none) return 0;  // a live momentum turned on without buffers
  for (int i = 0; i < c.in[0].n; ++i)
    by_dtype(c.in[0].a[i].dt, [&](auto t) {
      using T = decltype(t);
      ag::sgd_step<T>(mp<T>(c, 0, i), ip<T>(c, 1, i), bufs ? mp<T>(c, 2, i) : nullptr,
                      c.in[0].a[i].size, a[0].f, a[1].f, a[2].f, a[3].i, a[4].f, a[5].i);
      return index_t{-1};
    });
  return -1;
}
inline index_t run_adam(const Call& c) {
  const Attr* a = c.attr;  // step, lr, beta1, beta2, eps, weight_decay, decoupled
  // the bias corrections exactly as numpy_kernels computes them (Python's float ** int is pow)
  const double bc1 = 1 - std::pow(a[2].f, double(a[0].i));
  const double bc2_sqrt = std::sqrt(1 - std::pow(a[3].f, double(a[0].i)));
  for (int i = 0; i < c.in[0].n; ++i)
    by_dtype(c.in[0].a[i].dt, [&](auto t) {
      using T = decltype(t);
      ag::adam_step<T>(mp<T>(c, 0, i), ip<T>(c, 1, i), mp<T>(c, 2, i), mp<T>(c, 3, i),
                       c.in[0].a[i].size, a[1].f, bc1, bc2_sqrt, a[2].f, a[3].f, a[4].f, a[5].f,
                       a[6].i);
      return index_t{-1};
    });
  return -1;
}
inline Kernel sgd_step_kernel() {
  return make(
      "sgd_step", "optim", false,
      {P("params", PK::InSeq), P("grads", PK::InSeq), P("bufs", PK::InSeqOpt), P("lr", PK::Float),
       Pd("momentum", PK::Float, 0), Pd("dampening", PK::Float, 0), Pd("nesterov", PK::Bool, 0, 0),
       Pd("weight_decay", PK::Float, 0), Pd("first_step", PK::Bool, 0, 0)},
      0, prep_optim, run_sgd);
}
inline Kernel adam_step_kernel() {
  return make(
      "adam_step", "optim", false,
      {P("params", PK::InSeq), P("grads", PK::InSeq), P("exp_avgs", PK::InSeq),
       P("exp_avg_sqs", PK::InSeq), P("step", PK::Int), P("lr", PK::Float),
       Pd("beta1", PK::Float, 0.9), Pd("beta2", PK::Float, 0.999), Pd("eps", PK::Float, 1e-8),
       Pd("weight_decay", PK::Float, 0), Pd("decoupled", PK::Bool, 0, 0)},
      0, prep_optim, run_adam);
}

// The name of the j-th array parameter, for messages.
inline const char* pname(const Call& c, int array_index) {
  for (const Param& p : c.k->params)
    if (is_array(p.kind) && array_index-- == 0) return p.name.c_str();
  return "?";
}
[[noreturn]] inline void fail(const Call& c, const std::string& msg) {
  throw KernelError{false, c.k->name + ": " + msg};
}

}  // namespace agt
