#include "kernels/linear.h"

#include "kernels/activations.h"
#include "kernels/blas.h"
#include "kernels/reductions.h"

namespace ag {
namespace {

// Rows [lo, hi) of y += b.
template <class T>
AG_CLONES void add_bias_rows(T* y, const T* b, index_t lo, index_t hi, index_t out) {
  for (index_t r = lo; r < hi; ++r) {
    T* yr = y + r * out;
#pragma omp simd
    for (index_t c = 0; c < out; ++c) yr[c] += b[c];
  }
}

}  // namespace

template <class T>
void linear(const T* x, const T* w, const T* b, T* y, index_t n, index_t in, index_t out,
            Activation act) {
  gemm<T>(false, true, n, out, in, T(1), x, in, w, in, T(0), y, out);
  if (b != nullptr) {
    parallel_blocks(n, out ? threshold_cheap() / out : n,
                    [=](index_t lo, index_t hi) { add_bias_rows(y, b, lo, hi, out); });
  }
  // The activation kernels themselves, over the whole output: the SIMD routines' results depend
  // on an element's position within a vector, so this keeps fused == unfused to the bit.
  const index_t size = n * out;
  switch (act) {
    case Activation::None: break;
    case Activation::Relu: relu(y, y, size); break;
    case Activation::Sigmoid: sigmoid(y, y, size); break;
    case Activation::Tanh: tanh(y, y, size); break;
  }
}

template <class T>
void linear_back(const T* x, const T* w, const T* out_act, const T* grad, T* dx, T* dw, T* db,
                 T* dz_buf, index_t n, index_t in, index_t out, Activation act) {
  const index_t size = n * out;
  const T* dz = grad;
  switch (act) {
    case Activation::None: break;
    case Activation::Relu: relu_back(out_act, grad, dz_buf, size); dz = dz_buf; break;
    case Activation::Sigmoid: sigmoid_back(out_act, grad, dz_buf, size); dz = dz_buf; break;
    case Activation::Tanh: tanh_back(out_act, grad, dz_buf, size); dz = dz_buf; break;
  }
  if (dx != nullptr) gemm<T>(false, false, n, in, out, T(1), dz, out, w, in, T(0), dx, in);
  gemm<T>(true, false, out, in, n, T(1), dz, out, x, in, T(0), dw, in);
  if (db != nullptr) sum_axis(dz, db, 1, n, out);
}

#define AG_INSTANTIATE(T)                                                                  \
  template void linear<T>(const T*, const T*, const T*, T*, index_t, index_t, index_t,    \
                          Activation);                                                    \
  template void linear_back<T>(const T*, const T*, const T*, const T*, T*, T*, T*, T*,    \
                               index_t, index_t, index_t, Activation);
AG_INSTANTIATE(float)
AG_INSTANTIATE(double)
#undef AG_INSTANTIATE

}  // namespace ag
