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
#include <vector>

#include "kernels/blas.h"
#include "kernels/threads.h"

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
  DType dt;
  if (a.dtype().is(py::dtype::of<float>())) {
    dt = DType::F32;
  } else if (a.dtype().is(py::dtype::of<double>())) {
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
  if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
  ag::set_num_threads(n);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "Native kernels of autograd (C++, OpenBLAS, OpenMP); use autograd.backend.native.";

  m.def("matmul", &matmul, A("a"), A("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false,
        "op(a) @ op(b) for C-contiguous float arrays; batch axes equal or one operand 2-D.");
  m.def("blas_info", &blas_info, "OpenBLAS core name, configuration and thread count.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Threads for the BLAS and the native kernels.");
  m.def("get_num_threads", &ag::get_num_threads, "Threads used by the native kernels.");
}
