#include "kernels/linear.h"

#include "kernels/activations.h"
#include "kernels/blas.h"
#include "kernels/reductions.h"

namespace ag {

template <class T>
void linear(const T* x, const T* w, const T* b, T* y, index_t n, index_t in, index_t out,
            Activation act) {
  if (b != nullptr) {
#pragma omp parallel for schedule(static) if (n * out > kParallelCheap)
    for (index_t r = 0; r < n; ++r)
      for (index_t c = 0; c < out; ++c) y[r * out + c] = b[c];
  }
  gemm<T>(false, true, n, out, in, T(1), x, in, w, in, b != nullptr ? T(1) : T(0), y, out);
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
  gemm<T>(false, false, n, in, out, T(1), dz, out, w, in, T(0), dx, in);
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
