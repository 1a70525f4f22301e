// The front ends' shared half: Python arguments -> the table's Call (arrays, attrs), dtype
// agreement, result allocation and data-error messages. Used by the eager bindings
// (bindings.cpp) and the plan executor (plan.h); kernels themselves live in kernel_table.h.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernel_table.h"

namespace agt_front {

namespace py = pybind11;
using ag::index_t;
using agt::Arr;
using agt::Attr;
using agt::Call;
using agt::DT;
using agt::Kernel;
using agt::KernelError;
using agt::Param;
using agt::PK;

inline const py::detail::npy_api& npy() { return py::detail::npy_api::get(); }

inline PyObject* descr_of(DT dt) {
  static PyObject* d[3] = {npy().PyArray_DescrFromType_(py::detail::npy_api::NPY_FLOAT_),
                           npy().PyArray_DescrFromType_(py::detail::npy_api::NPY_DOUBLE_),
                           npy().PyArray_DescrFromType_(py::detail::npy_api::NPY_INT64_)};
  return d[static_cast<int>(dt)];
}

// The dtype of an array among those the table knows; false for any other dtype. Equivalence,
// not identity: unpickled arrays carry their own dtype objects; a non-native byte order is not
// equivalent and is rejected. The builtin descriptors are compared by identity first: asking
// NumPy whether float64 is equivalent to float32 before looking at float64 cost every float64
// argument a call into NumPy.
inline bool dtype_of(PyObject* descr, DT& dt) {
  for (DT t : {DT::F32, DT::F64, DT::I64})
    if (descr == descr_of(t)) return dt = t, true;
  for (DT t : {DT::F32, DT::F64, DT::I64})
    if (npy().PyArray_EquivTypes_(descr, descr_of(t))) return dt = t, true;
  return false;
}

inline std::string describe(PyObject* o) {
  const auto* p = py::detail::array_proxy(o);
  Arr a;
  a.nd = p->nd;
  for (int i = 0; i < p->nd && i < agt::kMaxDims; ++i) a.shape[i] = p->dimensions[i];
  return std::string(py::str(p->descr)) + " array of shape " + agt::shape_str(a);
}

[[noreturn]] inline void kfail(bool type, const Kernel& k, const std::string& msg) {
  throw KernelError{type, k.name + ": " + msg};
}

// Why an argument is not an array the table takes as it is; Misfit::None when it is.
enum class Misfit { None, NotArray, Dtype, Strided, Rank };

// An ndarray argument as an Arr, when it is one the table takes as it is: float32/float64
// (int64 for class indices), C-contiguous, at most 32 axes. Fills `a` only then.
inline Misfit fit_arr(PyObject* o, bool index, Arr& a) {
  if (!npy().PyArray_Check_(o)) return Misfit::NotArray;
  const auto* p = py::detail::array_proxy(o);
  if (!dtype_of(p->descr, a.dt) || (a.dt == DT::I64) != index) return Misfit::Dtype;
  if (!(p->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_)) return Misfit::Strided;
  if (p->nd > agt::kMaxDims) return Misfit::Rank;
  a.data = p->data, a.nd = p->nd, a.size = 1;
  a.writable = p->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  for (int i = 0; i < p->nd; ++i) a.size *= (a.shape[i] = p->dimensions[i]);
  return Misfit::None;
}

// The error for an argument fit_arr refused. item >= 0: the argument is element `item` of the
// list parameter `name`; its message name ("params[2]") is built only here (building it for
// every element of an optimizer's lists was a sixth of an sgd_step call).
[[noreturn]] inline void misfit_fail(const Kernel& k, const std::string& name, int item,
                                     PyObject* o, bool index, Misfit m) {
  const std::string nm = item < 0 ? name : name + "[" + std::to_string(item) + "]";
  switch (m) {
    case Misfit::NotArray:
      kfail(true, k, nm + " must be an ndarray, got " + std::string(py::str(Py_TYPE(o)->tp_name)));
    case Misfit::Dtype:
      kfail(true, k,
            nm + (index ? " must be int64" : " must be float32 or float64") + ", got a " +
                describe(o));
    case Misfit::Strided:
      kfail(false, k, nm + " must be C-contiguous, got a strided " + describe(o));
    default:
      kfail(false, k, nm + " has more than 32 axes");
  }
}

// An ndarray argument as an Arr (fit_arr), else the error naming it.
inline void to_arr(const Kernel& k, const std::string& name, PyObject* o, bool index, Arr& a,
                   int item = -1) {
  const Misfit m = fit_arr(o, index, a);
  if (m != Misfit::None) misfit_fail(k, name, item, o, index, m);
}

inline index_t to_int(const Kernel& k, const Param& p, PyObject* o) {
  PyObject* i = PyBool_Check(o) ? nullptr : PyNumber_Index(o);  // True is no axis
  if (!i) {
    PyErr_Clear();
    kfail(true, k, p.name + " must be an int, got " + std::string(py::repr(o)));
  }
  const long long v = PyLong_AsLongLong(i);
  Py_DECREF(i);
  if (v == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    kfail(false, k, p.name + " does not fit in int64");
  }
  return v;
}

inline std::vector<index_t> to_ints(const Kernel& k, const Param& p, PyObject* o) {
  if (!PyTuple_Check(o))
    kfail(true, k, p.name + " must be a tuple of ints, got " + std::string(py::repr(o)));
  std::vector<index_t> v;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(o); ++i)
    v.push_back(to_int(k, p, PySequence_Fast_GET_ITEM(o, i)));
  return v;
}

// The enum value of `o` when it is one of `names` (interned: Python's string constants are the
// same objects), else -1 and the caller compares the text. Saves the UTF-8 copy and string
// compares (50-70 ns) on every call that names an activation or reduction as a literal.
template <size_t N>
inline int interned_index(PyObject* o, PyObject* const (&names)[N]) {
  for (size_t v = 0; v < N; ++v)
    if (o == names[v]) return static_cast<int>(v);
  return -1;
}
inline PyObject* intern(const char* s) {
  PyObject* u = PyUnicode_InternFromString(s);  // kept for the process's life
  if (!u) throw py::error_already_set();
  return u;
}

// A non-array argument, converted once into `a`, a default-constructed Attr (the eager call's
// fresh slot: converting in place spares a temporary Attr and its move, ~5 ns an attr).
inline void to_attr(const Kernel& k, const Param& p, PyObject* o, Attr& a) {
  std::string s;
  // Indexed by the value each enum takes (kernels/: ag::Reduction, ag::Activation; 0 is None).
  static PyObject* const reductions[] = {intern("none"), intern("mean"), intern("sum")};
  static PyObject* const activations[] = {Py_None, intern("relu"), intern("sigmoid"),
                                          intern("tanh")};
  int fast = -1;
  switch (p.kind) {
    case PK::Float:
      a.f = PyFloat_AsDouble(o);
      if (a.f == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        kfail(true, k, p.name + " must be a float, got " + std::string(py::repr(o)));
      }
      a.i = static_cast<index_t>(a.f);
      break;
    case PK::Int:
      a.i = to_int(k, p, o), a.f = double(a.i);
      break;
    case PK::Bool:
      a.i = PyObject_IsTrue(o) == 1, a.f = double(a.i);
      break;
    case PK::Axis:
      if (o == Py_None)
        a.none = true;
      else if (PyTuple_Check(o))
        a.tup = to_ints(k, p, o), a.f = 1;
      else
        a.i = to_int(k, p, o);
      break;
    case PK::Shape:
      a.tup = to_ints(k, p, o);
      break;
    case PK::Reduction:
      if ((fast = interned_index(o, reductions)) >= 0) {
        a.i = fast;
        break;
      }
      if (PyUnicode_Check(o)) s = PyUnicode_AsUTF8(o);
      if (s == "none" || s == "mean" || s == "sum") {
        a.i = s == "none" ? 0 : s == "mean" ? 1 : 2;
        break;
      }
      kfail(false, k, "reduction must be 'mean', 'sum' or 'none', got " + std::string(py::repr(o)));
    case PK::Activation:
      if ((fast = interned_index(o, activations)) > 0) {
        a.i = fast;
        break;
      }
      if (o == Py_None) {
        a.none = true;
        break;
      }
      if (!PyUnicode_Check(o))
        kfail(true, k, "activation must be None or a string, got " + std::string(py::repr(o)));
      s = PyUnicode_AsUTF8(o);
      if (s == "relu" || s == "sigmoid" || s == "tanh") {
        a.i = s == "relu" ? 1 : s == "sigmoid" ? 2 : 3;
        break;
      }
      kfail(false, k, "unknown activation '" + s + "'; expected None, 'relu', 'sigmoid' or 'tanh'");
    default:
      break;
  }
}

// The same, returning the Attr (the plan converts its attrs here too).
inline Attr to_attr(const Kernel& k, const Param& p, PyObject* o) {
  Attr a;
  to_attr(k, p, o, a);
  return a;
}

// Every non-sequence float array shares the first one's dtype; that is the call's dtype.
inline void check_dtypes(Call& c) {
  const bool optim = c.k->optim;
  int first = -1;
  for (int j = 0; j < c.nin; ++j) {
    const agt::Span& s = c.in[j];
    if (s.none || s.a[0].dt == DT::I64 || optim) continue;
    if (first < 0) {
      first = j, c.dt = s.a[0].dt;
      continue;
    }
    if (s.a[0].dt != c.dt)
      kfail(true, *c.k,
            std::string(agt::pname(c, first)) + " and " + agt::pname(c, j) +
                " must have the same dtype, got a " + (c.dt == DT::F32 ? "float32" : "float64") +
                " array of shape " + agt::shape_str(agt::A(c, first)) + " and a " +
                (s.a[0].dt == DT::F32 ? "float32" : "float64") + " array of shape " +
                agt::shape_str(s.a[0]));
  }
}

// The message of a data error: what a kernel's run found wrong with the values of its arguments
// (`bad`, what it returned, is >= 0).
inline std::string data_error(const Call& c, index_t bad) {
  if (c.k->family == "loss" || c.k->family == "loss_back") {  // bce: the index of a target
    const void* t = agt::A(c, 1).data;
    const double v = c.dt == DT::F32 ? double(static_cast<const float*>(t)[bad])
                                     : static_cast<const double*>(t)[bad];
    char text[32] = "nan";  // Python's spelling of every nan (printf's may be "-nan")
    if (!std::isnan(v)) std::snprintf(text, sizeof text, "%g", v);
    return "target[" + std::to_string(bad) + "] = " + text +
           " is not in [0, 1]: binary cross-entropy takes target probabilities";
  }
  if (c.k->family != "cross_entropy") return "momentum is non-zero but bufs is None";
  const auto v = static_cast<const std::int64_t*>(agt::A(c, 1).data)[bad];
  return "target[" + std::to_string(bad) + "] = " + std::to_string(v) +
         " is not a class index in [0, " + std::to_string(c.dim[1]) + ")";
}

// Work below this many elements (multiply-adds for products) runs without releasing the GIL:
// releasing and retaking it costs more than such a kernel.
inline constexpr index_t kKeepGil = 4096;

inline index_t work_of(const Call& c) {
  if (c.k->matmul) return c.dim[0] * c.dim[3] * c.dim[4] * c.dim[5];
  if (c.k->linear) return c.dim[0] * c.dim[1] * c.dim[2];
  index_t w = 0;
  for (int j = 0; j < c.nin; ++j)
    for (int i = 0; i < c.in[j].n; ++i) w += c.in[j].a[i].size;
  return w;
}

inline PyObject* new_array(const Arr& a) {
  Py_intptr_t dims[agt::kMaxDims];
  for (int i = 0; i < a.nd; ++i) dims[i] = a.shape[i];
  PyObject* d = descr_of(a.dt);
  Py_INCREF(d);  // NewFromDescr steals it
  return npy().PyArray_NewFromDescr_(npy().PyArray_Type_, d, a.nd, dims, nullptr, nullptr, 0,
                                     nullptr);
}

inline const std::unordered_map<std::string, const Kernel*>& by_name() {
  static const auto m = [] {
    std::unordered_map<std::string, const Kernel*> out;
    for (const Kernel& k : agt::kernel_table()) out[k.name] = &k;
    return out;
  }();
  return m;
}

}  // namespace agt_front
