// Sums along one (merged) axis.
#pragma once

#include "kernels/common.h"

namespace ag {

// y (outer, inner) = sum over j of x (outer, n, inner)[:, j, :]. x contiguous, y must not alias
// x. n == 0 gives zeros. Any single axis, any contiguous run of axes (sum_to, the bias gradient
// with outer == 1), and the full sum (outer == inner == 1) are this one kernel.
// Rows (inner == 1) accumulate in double; columns (inner > 1) accumulate in T, row after row,
// as NumPy does for that layout.
template <class T> void sum_axis(const T* x, T* y, index_t outer, index_t n, index_t inner);

}  // namespace ag
