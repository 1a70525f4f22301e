// Elementwise arithmetic and unary math.
#pragma once

#include "kernels/common.h"

namespace ag {

enum class BinOp : int { Add = 0, Sub = 1, Mul = 2, Div = 3, Max = 4, Min = 5 };

// How an operand of a binary op is laid out against the (rows, cols) output:
//   Full   - the whole (rows, cols) array;
//   Row    - one row of cols elements, repeated for every row (last-axis broadcasting);
//   Scalar - one element.
enum class Bcast : int { Full = 0, Row = 1, Scalar = 2 };

// y (rows, cols) = a op b, IEEE semantics (x/0 gives inf or nan). a and b are laid out as their
// modes say; at most one of them is Row. y may alias a Full operand.
template <class T>
void binary(BinOp op, const T* a, Bcast mode_a, const T* b, Bcast mode_b, T* y, index_t rows,
            index_t cols);

// Unary maps over n contiguous elements; y may alias x.
template <class T> void neg(const T* x, T* y, index_t n);   // -x
template <class T> void exp(const T* x, T* y, index_t n);   // e^x (overflow gives inf)
template <class T> void log(const T* x, T* y, index_t n);   // ln x (-inf at 0, nan below)
template <class T> void sqrt(const T* x, T* y, index_t n);  // sqrt x (nan below 0)
template <class T> void abs(const T* x, T* y, index_t n);   // |x|
template <class T> void sign(const T* x, T* y, index_t n);  // -1, 0 or 1; NaN stays itself

}  // namespace ag
