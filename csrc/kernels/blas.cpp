#include "kernels/blas.h"

#include <algorithm>

#include <cblas.h>

namespace ag {
namespace {

inline CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }

inline void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k,
                      float alpha, const float* a, blasint lda, const float* b, blasint ldb,
                      float beta, float* c, blasint ldc) {
  scipy_cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

inline void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k,
                      double alpha, const double* a, blasint lda, const double* b, blasint ldb,
                      double beta, double* c, blasint ldc) {
  scipy_cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    // BLAS quick-return rules for k == 0 differ between implementations; do it here.
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  // BLAS requires leading dimensions >= 1 even for empty operands.
  gemm_call(flag(trans_a), flag(trans_b), static_cast<blasint>(m), static_cast<blasint>(n),
            static_cast<blasint>(k), alpha, a, static_cast<blasint>(std::max<index_t>(lda, 1)), b,
            static_cast<blasint>(std::max<index_t>(ldb, 1)), beta, c,
            static_cast<blasint>(std::max<index_t>(ldc, 1)));
}

template <class T>
void matmul(const T* a, const T* b, T* c, index_t batch, index_t batch_a, index_t batch_b,
            index_t m, index_t n, index_t k, bool trans_a, bool trans_b) {
  const index_t lda = trans_a ? m : k;
  const index_t ldb = trans_b ? k : n;
  if (batch > 1 && batch_b == 1 && !trans_a && batch * m <= kBlasMaxDim) {
    // (batch, m, k) stacked row-major is one (batch * m, k) matrix.
    gemm<T>(false, trans_b, batch * m, n, k, T(1), a, lda, b, ldb, T(0), c, n);
    return;
  }
  const index_t sa = batch_a == 1 ? 0 : m * k;
  const index_t sb = batch_b == 1 ? 0 : k * n;
  for (index_t i = 0; i < batch; ++i)
    gemm<T>(trans_a, trans_b, m, n, k, T(1), a + i * sa, lda, b + i * sb, ldb, T(0), c + i * m * n,
            n);
}

BlasInfo blas_info() {
  BlasInfo info;
  info.corename = scipy_openblas_get_corename();
  info.config = scipy_openblas_get_config();
  info.num_threads = scipy_openblas_get_num_threads();
  info.num_procs = scipy_openblas_get_num_procs();
  return info;
}

template void gemm<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t,
                          const float*, index_t, float, float*, index_t);
template void gemm<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t);
template void matmul<float>(const float*, const float*, float*, index_t, index_t, index_t, index_t,
                            index_t, index_t, bool, bool);
template void matmul<double>(const double*, const double*, double*, index_t, index_t, index_t,
                             index_t, index_t, index_t, bool, bool);

}  // namespace ag
