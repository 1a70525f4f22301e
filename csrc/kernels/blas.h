// Matrix products on OpenBLAS (scipy-openblas32: 32-bit BLAS integers, prefixed symbols).
#pragma once

#include <string>

#include "kernels/common.h"

namespace ag {

// Largest dimension or leading dimension a 32-bit BLAS can take; callers check against it.
constexpr index_t kBlasMaxDim = 2147483647;

// c (m, n) = alpha * op(a) @ op(b) + beta * c, row-major, op = transpose when the flag is set.
// a is (m, k) or, transposed, (k, m); b is (k, n) or (n, k); all contiguous with leading
// dimensions lda/ldb/ldc. Handles m, n or k == 0 (k == 0 gives beta * c). c must not alias
// a or b.
template <class T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc);

// Batched c[i] = op(a[i]) @ op(b[i]) for i < batch. a holds batch_a matrices, b holds batch_b,
// each 1 (shared by every product) or batch; shapes as in gemm, contiguous, stacked densely.
// c (batch, m, n) is written whole and must not alias a or b. A shared, untransposed b with a
// batched, untransposed a is done as one (batch * m, k) @ (k, n) product.
template <class T>
void matmul(const T* a, const T* b, T* c, index_t batch, index_t batch_a, index_t batch_b,
            index_t m, index_t n, index_t k, bool trans_a, bool trans_b);

struct BlasInfo {
  std::string corename;  // OpenBLAS kernel set in use, e.g. "SkylakeX" or "Haswell"
  std::string config;    // build configuration string
  int num_threads;       // OpenBLAS threads
  int num_procs;         // processors OpenBLAS detected
};

BlasInfo blas_info();

}  // namespace ag
