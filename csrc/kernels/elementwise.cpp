#include "kernels/elementwise.h"

#include <cmath>

namespace ag {
namespace {

struct AddOp { template <class T> T operator()(T a, T b) const { return a + b; } };
struct SubOp { template <class T> T operator()(T a, T b) const { return a - b; } };
struct MulOp { template <class T> T operator()(T a, T b) const { return a * b; } };
struct DivOp { template <class T> T operator()(T a, T b) const { return a / b; } };
// NumPy's maximum/minimum: a NaN in either operand wins; between equal values (-0 and +0) the
// second operand is returned.
struct MaxOp { template <class T> T operator()(T a, T b) const { return (a > b || a != a) ? a : b; } };
struct MinOp { template <class T> T operator()(T a, T b) const { return (a < b || a != a) ? a : b; } };

template <Bcast M, class T>
inline T load(const T* p, index_t c) {
  if constexpr (M == Bcast::Scalar) {
    return p[0];
  } else {
    return p[c];
  }
}

// Elements [lo, hi) of a flat (non-row) binary op.
template <class T, class Op, Bcast MA, Bcast MB>
AG_CLONES void binary_flat_chunk(const T* a, const T* b, T* y, index_t lo, index_t hi) {
  const Op op;
#pragma omp simd
  for (index_t i = lo; i < hi; ++i) y[i] = op(load<MA>(a, i), load<MB>(b, i));
}

// Rows [lo, hi) of a binary op with a row operand.
template <class T, class Op, Bcast MA, Bcast MB>
AG_CLONES void binary_rows_chunk(const T* a, const T* b, T* y, index_t lo, index_t hi,
                                 index_t cols) {
  const Op op;
  for (index_t r = lo; r < hi; ++r) {
    const T* ar = MA == Bcast::Full ? a + r * cols : a;
    const T* br = MB == Bcast::Full ? b + r * cols : b;
    T* yr = y + r * cols;
#pragma omp simd
    for (index_t c = 0; c < cols; ++c) yr[c] = op(load<MA>(ar, c), load<MB>(br, c));
  }
}

template <class T, class Op, Bcast MA, Bcast MB>
void binary_loop(const T* a, const T* b, T* y, index_t rows, index_t cols) {
  if constexpr (MA != Bcast::Row && MB != Bcast::Row) {
    parallel_blocks(rows * cols, threshold_cheap(), [=](index_t lo, index_t hi) {
      binary_flat_chunk<T, Op, MA, MB>(a, b, y, lo, hi);
    });
  } else {
    // threshold in rows: the same element count as for the flat case
    parallel_blocks(rows, cols ? threshold_cheap() / cols : rows, [=](index_t lo, index_t hi) {
      binary_rows_chunk<T, Op, MA, MB>(a, b, y, lo, hi, cols);
    });
  }
}

template <class T, class Op>
void binary_op(const T* a, Bcast ma, const T* b, Bcast mb, T* y, index_t rows, index_t cols) {
  using B = Bcast;
  if (ma == B::Full && mb == B::Full) return binary_loop<T, Op, B::Full, B::Full>(a, b, y, rows, cols);
  if (ma == B::Full && mb == B::Row) return binary_loop<T, Op, B::Full, B::Row>(a, b, y, rows, cols);
  if (ma == B::Full && mb == B::Scalar) return binary_loop<T, Op, B::Full, B::Scalar>(a, b, y, rows, cols);
  if (ma == B::Row && mb == B::Full) return binary_loop<T, Op, B::Row, B::Full>(a, b, y, rows, cols);
  if (ma == B::Scalar && mb == B::Full) return binary_loop<T, Op, B::Scalar, B::Full>(a, b, y, rows, cols);
  if (ma == B::Row && mb == B::Scalar) return binary_loop<T, Op, B::Row, B::Scalar>(a, b, y, rows, cols);
  if (ma == B::Scalar && mb == B::Row) return binary_loop<T, Op, B::Scalar, B::Row>(a, b, y, rows, cols);
  return binary_loop<T, Op, B::Scalar, B::Scalar>(a, b, y, rows, cols);
}

}  // namespace

template <class T>
void binary(BinOp op, const T* a, Bcast ma, const T* b, Bcast mb, T* y, index_t rows,
            index_t cols) {
  switch (op) {
    case BinOp::Add: return binary_op<T, AddOp>(a, ma, b, mb, y, rows, cols);
    case BinOp::Sub: return binary_op<T, SubOp>(a, ma, b, mb, y, rows, cols);
    case BinOp::Mul: return binary_op<T, MulOp>(a, ma, b, mb, y, rows, cols);
    case BinOp::Div: return binary_op<T, DivOp>(a, ma, b, mb, y, rows, cols);
    case BinOp::Max: return binary_op<T, MaxOp>(a, ma, b, mb, y, rows, cols);
    case BinOp::Min: return binary_op<T, MinOp>(a, ma, b, mb, y, rows, cols);
  }
}

template <class T>
void neg(const T* x, T* y, index_t n) {
  map1(x, y, n, threshold_cheap(), [](T v) { return -v; });
}

template <class T>
void exp(const T* x, T* y, index_t n) {
  map1(x, y, n, threshold_heavy(), [](T v) { return m_exp(v); });
}

template <class T>
void log(const T* x, T* y, index_t n) {
  map1(x, y, n, threshold_heavy(), [](T v) { return m_log(v); });
}

template <class T>
void sqrt(const T* x, T* y, index_t n) {
  map1(x, y, n, threshold_cheap(), [](T v) { return std::sqrt(v); });
}

template <class T>
void abs(const T* x, T* y, index_t n) {
  map1(x, y, n, threshold_cheap(), [](T v) { return std::fabs(v); });
}
template <class T>
void sign(const T* x, T* y, index_t n) {
  // as NumPy: +0 for either zero, and a NaN is returned as it is (payload and sign bit)
  map1(x, y, n, threshold_cheap(),
       [](T v) { return v > T(0) ? T(1) : v < T(0) ? T(-1) : v == T(0) ? T(0) : v; });
}

#define AG_INSTANTIATE(T)                                                           \
  template void binary<T>(BinOp, const T*, Bcast, const T*, Bcast, T*, index_t, index_t); \
  template void neg<T>(const T*, T*, index_t);                                     \
  template void exp<T>(const T*, T*, index_t);                                     \
  template void log<T>(const T*, T*, index_t);                                     \
  template void sqrt<T>(const T*, T*, index_t);                                    \
  template void abs<T>(const T*, T*, index_t);                                     \
  template void sign<T>(const T*, T*, index_t);
AG_INSTANTIATE(float)
AG_INSTANTIATE(double)
#undef AG_INSTANTIATE

}  // namespace ag
