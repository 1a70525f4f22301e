// autograd._C: the kernel table (kernel_table.h) behind two front ends, and the runtime.
//
// * Eager: each kernel is a vectorcall function _C.<name>(...) with numpy_kernels' signature.
//   It converts its arguments into a Call, lets the family's `prep` assert the contract,
//   allocates the results and runs the family's `run` (releasing the GIL for sizable work).
//   It never casts or copies an input: autograd/backend/native.py decides which calls come
//   here and makes inputs C-contiguous. native.py binds each kernel as a _C.Dispatch: the same
//   call without a Python frame, falling back to native.py's route where the contract refuses.
// * Plan: _C.Plan records steps (kernel name, buffer slots, attrs), binds buffers once (every
//   step's contract checked by the same `prep`) and runs all steps in one call, GIL released,
//   calling the same `run`. A replay therefore gives the eager call's bits.
// No math and no per-kernel code lives here: a kernel exists by its row in kernel_table.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <deque>
#include <memory>

#include "frontend.h"
#include "plan.h"
#include "runtime.h"

namespace py = pybind11;
using namespace agt_front;  // NOLINT: the front ends' shared vocabulary

namespace {

// ---------------------------------------------------------------------------------------------
// Eager front end: _C.<name>(*args, **kwargs) -> result(s)
// ---------------------------------------------------------------------------------------------

// The most parameters a kernel may have (checked for every row when the module loads).
constexpr size_t kMaxParams = 16;

// One call of kernel k. quiet: return NotImplemented instead of raising when the arguments do
// not fit the contract (checked before anything runs). The usual misfit, an array argument that
// is not a C-contiguous ndarray of a dtype its parameter takes (or a list argument that is not a
// list), returns without an exception, so such a fallback costs none; the arrays are converted
// first in every row, before any attr. (A separate pre-check of the arrays, redone by the
// conversion, cost a native call 10-40 ns.)
PyObject* run_eager(const Kernel& k, bool quiet, PyObject* const* args, Py_ssize_t nargs,
                    PyObject* kwnames) {
  ag_runtime::release_late_references();
  const size_t np_ = k.params.size();
  PyObject* given[kMaxParams];  // [0, np_) is set below, nothing past np_ is read (no memset)
  py::object results[agt::kMaxOut + 1];
  bool ran = false;
  try {
    if (static_cast<size_t>(nargs) > np_)
      kfail(true, k, "takes " + std::to_string(np_) + " arguments, got " + std::to_string(nargs));
    for (Py_ssize_t i = 0; i < nargs; ++i) given[i] = args[i];
    for (size_t i = nargs; i < np_; ++i) given[i] = nullptr;
    for (Py_ssize_t i = 0; kwnames && i < PyTuple_GET_SIZE(kwnames); ++i) {
      const char* kw = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, i));
      size_t j = 0;
      while (j < np_ && k.params[j].name != kw) ++j;
      if (j == np_ || given[j])
        kfail(true, k, std::string("unexpected or repeated argument '") + kw + "'");
      given[j] = args[nargs + i];
    }
    Call c;
    c.k = &k;
    Arr arena[agt::kMaxIn];
    // The elements of sequence arguments (optimizer lists), in order: in a fixed buffer up to
    // kSeqInline of them (an optimizer with a few parameter tensors), else in one heap block
    // grown by doubling. A std::vector grown element by element cost a third of an sgd_step
    // call in reallocations (memmove of 288-byte Arrs) and malloc/free.
    constexpr int kSeqInline = 16;
    Arr seq_inline[kSeqInline];
    std::unique_ptr<Arr[]> seq_heap;
    Arr* seq = seq_inline;
    int seq_n = 0, seq_cap = kSeqInline;
    int seq_at[agt::kMaxIn];
    for (size_t j = 0; j < np_; ++j) {
      const Param& p = k.params[j];
      PyObject* o = given[j];
      if (!o && !p.has_default && p.kind != PK::InOpt)
        kfail(true, k, "missing argument '" + p.name + "'");
      if (!agt::is_array(p.kind)) {
        if (o)
          to_attr(k, p, o, c.attr[c.nattr++]);
        else
          c.attr[c.nattr++] = p.def;
        continue;
      }
      agt::Span& s = c.in[c.nin];
      seq_at[c.nin++] = -1;
      if (!o || o == Py_None) {
        if (p.kind != PK::InOpt && p.kind != PK::InSeqOpt)
          kfail(true, k, p.name + " must not be None");
        s.none = true;
        continue;
      }
      // The array as an Arr, or false when quiet and it does not fit (else its error).
      const auto take = [&](PyObject* a, bool index, Arr& into, int item) {
        const Misfit m = fit_arr(a, index, into);
        if (m == Misfit::None) return true;
        if (quiet) return false;
        misfit_fail(k, p.name, item, a, index, m);
      };
      if (p.kind == PK::InSeq || p.kind == PK::InSeqOpt) {
        if (quiet && !PyList_Check(o)) Py_RETURN_NOTIMPLEMENTED;
        py::object fast = py::reinterpret_steal<py::object>(PySequence_Fast(o, "not a sequence"));
        if (!fast) {
          PyErr_Clear();
          kfail(true, k, p.name + " must be a list of ndarrays");
        }
        s.n = static_cast<int>(PySequence_Fast_GET_SIZE(fast.ptr()));
        if (s.n > seq_cap - seq_n) {
          seq_cap = std::max(2 * seq_cap, seq_n + s.n);
          std::unique_ptr<Arr[]> grown(new Arr[seq_cap]);
          std::copy(seq, seq + seq_n, grown.get());
          seq = grown.get(), seq_heap = std::move(grown);
        }
        seq_at[c.nin - 1] = seq_n;
        for (int i = 0; i < s.n; ++i)
          if (!take(PySequence_Fast_GET_ITEM(fast.ptr(), i), false, seq[seq_n++], i))
            Py_RETURN_NOTIMPLEMENTED;
        continue;
      }
      s.a = &arena[c.nin - 1], s.n = 1;
      if (!take(o, p.kind == PK::Index, *s.a, -1)) Py_RETURN_NOTIMPLEMENTED;
    }
    for (int j = 0; j < c.nin; ++j)  // `seq` has stopped moving: point the sequence spans in
      if (seq_at[j] >= 0) c.in[j].a = seq + seq_at[j];
    check_dtypes(c);
    k.prep(c);
    for (int o = 0; o < c.nout + c.nscratch; ++o) {
      Arr& a = o < c.nout ? c.out[o] : c.scratch[o - c.nout];
      if (a.nd < 0) continue;  // a result the call does not want (agt::no_result): None
      results[o] = py::reinterpret_steal<py::object>(new_array(a));
      if (!results[o]) throw py::error_already_set();
      a.data = py::detail::array_proxy(results[o].ptr())->data;
    }
    // A product may return while a pool worker still reads its operands (a tile stolen from a
    // preempted worker, kernels/threads.h): they, and the results and scratch the worker's
    // job may point into, are kept alive until it is done.
    auto keep_operands = [&] {
      if (!ag::late_workers_pending()) return;
      std::vector<PyObject*> objects;
      std::vector<py::object> lists;
      for (size_t j = 0; j < np_; ++j) {
        PyObject* o = given[j];
        if (!o || o == Py_None || !agt::is_array(k.params[j].kind)) continue;
        objects.push_back(o);
        if (k.params[j].kind == PK::InSeq || k.params[j].kind == PK::InSeqOpt) {
          lists.push_back(py::reinterpret_steal<py::object>(PySequence_Fast(o, "")));
          if (!lists.back()) continue;  // (it was a sequence when the call converted it)
          for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(lists.back().ptr()); ++i)
            objects.push_back(PySequence_Fast_GET_ITEM(lists.back().ptr(), i));
        }
      }
      for (const py::object& r : results)
        if (r) objects.push_back(r.ptr());
      ag_runtime::keep_for_late_workers(objects);
    };
    index_t bad;
    try {
      if (work_of(c) < kKeepGil) {
        bad = k.run(c);
      } else {
        py::gil_scoped_release nogil;
        bad = k.run(c);
      }
    } catch (...) {
      keep_operands();
      throw;
    }
    keep_operands();
    ran = true;
    if (bad >= 0) kfail(false, k, data_error(c, bad));
    if (k.ret == 0) Py_RETURN_NONE;
    if (k.ret == 1) return results[0].release().ptr();
    PyObject* t = PyTuple_New(k.ret);
    for (int o = 0; o < k.ret; ++o) {
      PyObject* r = o < c.nout && results[o] ? results[o].release().ptr()
                                             : (Py_INCREF(Py_None), Py_None);
      PyTuple_SET_ITEM(t, o, r);
    }
    return t;
  } catch (const KernelError& e) {
    if (quiet && !ran) Py_RETURN_NOTIMPLEMENTED;
    PyErr_SetString(e.type_error ? PyExc_TypeError : PyExc_ValueError, e.msg.c_str());
  } catch (...) {
    py::detail::try_translate_exceptions();  // Ctrl-C (runtime.cpp), error_already_set, std::
  }
  return nullptr;
}

// One function for every kernel: `self` is a capsule holding its Kernel; a capsule with a
// context is the quiet twin (_C.QUIET[name]).
PyObject* eager(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  const Kernel& k = *static_cast<const Kernel*>(PyCapsule_GetPointer(self, nullptr));
  return run_eager(k, PyCapsule_GetContext(self) != nullptr, args, nargs, kwnames);
}

// ---------------------------------------------------------------------------------------------
// _C.Dispatch: what autograd.backend.native binds as native.<name>. One C-level call (vectorcall,
// no Python frame) runs the kernel when its contract takes the arguments as they are, else calls
// `fallback` with the same arguments (native.py: the route, then _C on adapted inputs or NumPy).
// The instance has a __dict__ so native.py can give it the NumPy kernel's __doc__,
// __signature__ and __name__.
// ---------------------------------------------------------------------------------------------

struct Dispatch {
  PyObject_HEAD vectorcallfunc vectorcall;
  const Kernel* k;
  PyObject* fallback;
  PyObject* dict;
};

PyObject* dispatch_call(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  auto* d = reinterpret_cast<Dispatch*>(self);
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  PyObject* r = run_eager(*d->k, true, args, nargs, kwnames);
  if (r != Py_NotImplemented) return r;  // a result, or an error from a call that ran
  Py_DECREF(r);
  return PyObject_Vectorcall(d->fallback, args, nargsf, kwnames);
}

int dispatch_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* d = reinterpret_cast<Dispatch*>(self);
  Py_VISIT(d->fallback);
  Py_VISIT(d->dict);
  return 0;
}

int dispatch_clear(PyObject* self) {
  auto* d = reinterpret_cast<Dispatch*>(self);
  Py_CLEAR(d->fallback);
  Py_CLEAR(d->dict);
  return 0;
}

void dispatch_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  dispatch_clear(self);
  Py_TYPE(self)->tp_free(self);
}

PyObject* dispatch_repr(PyObject* self) {
  return PyUnicode_FromFormat("<native kernel %s>",
                              reinterpret_cast<Dispatch*>(self)->k->name.c_str());
}

// Pickled and copied by reference, like the functions it stands for: the global
// native.<name> (pickle looks it up in __module__; copy returns the object itself).
PyObject* dispatch_reduce(PyObject* self, PyObject*) {
  return PyUnicode_FromString(reinterpret_cast<Dispatch*>(self)->k->name.c_str());
}

PyMethodDef dispatch_methods[] = {
    {"__reduce__", dispatch_reduce, METH_NOARGS, "The global name: pickled by reference."},
    {nullptr, nullptr, 0, nullptr}};

PyTypeObject* dispatch_type() {
  static PyTypeObject t = [] {
    PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
    t.tp_name = "autograd._C.Dispatch";
    t.tp_basicsize = sizeof(Dispatch);
    t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL;
    t.tp_doc = "A native kernel with its fallback: _C.dispatch(name, fallback).";
    t.tp_vectorcall_offset = offsetof(Dispatch, vectorcall);
    t.tp_dictoffset = offsetof(Dispatch, dict);
    t.tp_call = PyVectorcall_Call;
    t.tp_traverse = dispatch_traverse;
    t.tp_clear = dispatch_clear;
    t.tp_dealloc = dispatch_dealloc;
    t.tp_repr = dispatch_repr;
    t.tp_methods = dispatch_methods;
    return t;
  }();
  return &t;
}

// _C.dispatch(name, fallback): native.<name> (see Dispatch).
py::object make_dispatch(const std::string& name, py::object fallback) {
  const auto it = by_name().find(name);
  if (it == by_name().end()) throw py::key_error("dispatch: no native kernel named '" + name + "'");
  if (!PyCallable_Check(fallback.ptr()))
    throw py::type_error("dispatch: the fallback for '" + name + "' must be callable");
  auto* d = PyObject_GC_New(Dispatch, dispatch_type());
  if (!d) throw py::error_already_set();
  d->vectorcall = dispatch_call;
  d->k = it->second;
  d->fallback = fallback.release().ptr();
  d->dict = nullptr;
  PyObject_GC_Track(d);
  return py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(d));
}

// "name(x: numpy.ndarray, axis: int = -1) -> numpy.ndarray": the first docstring line, which
// csrc/stubgen.py turns into the stub.
std::string signature(const Kernel& k) {
  static const char* types[] = {"numpy.ndarray",
                                "numpy.ndarray | None",
                                "list[numpy.ndarray]",
                                "list[numpy.ndarray] | None",
                                "numpy.ndarray",
                                "float",
                                "int",
                                "bool",
                                "str",
                                "str | None",
                                "int | tuple[int, ...] | None",
                                "tuple[int, ...]"};
  std::string s = k.name + "(";
  for (const Param& p : k.params) {
    s += (&p == &k.params[0] ? "" : ", ") + p.name + ": " + types[static_cast<int>(p.kind)];
    if (!p.has_default) continue;
    const Attr& d = p.def;
    std::string v = d.none                    ? "None"
                    : p.kind == PK::Float     ? std::string(py::repr(py::float_(d.f)))
                    : p.kind == PK::Bool      ? (d.i ? "True" : "False")
                    : p.kind == PK::Reduction ? "'mean'"
                                              : std::to_string(d.i);
    s += " = " + v;
  }
  return s + ") -> " +
         (k.ret == 0   ? "None"
          : k.ret == 1 ? "numpy.ndarray"
                       : "tuple") +
         "\n\n" + k.family +
         " kernel (csrc/kernel_table.h); the contract is asserted, not adapted.";
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "Native kernels of autograd (C++, OpenBLAS); use autograd.backend.native.";
  ag::init_threads();
  ag_runtime::bind(m);

  static std::deque<PyMethodDef> defs;
  static std::deque<std::string> docs;
  py::list table;
  py::dict quiet;
  static int quiet_tag;
  for (const Kernel& k : agt::kernel_table()) {
    if (k.params.size() > kMaxParams)
      throw std::logic_error(k.name + ": more parameters than the eager call takes (kMaxParams)");
    docs.push_back(signature(k));
    defs.push_back({k.name.c_str(),
                    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&eager)),
                    METH_FASTCALL | METH_KEYWORDS, docs.back().c_str()});
    py::capsule self(static_cast<const void*>(&k));
    py::object f = py::reinterpret_steal<py::object>(
        PyCFunction_NewEx(&defs.back(), self.ptr(), m.attr("__name__").ptr()));
    if (!f) throw py::error_already_set();
    m.add_object(k.name.c_str(), f);
    py::capsule qself(static_cast<const void*>(&k));
    PyCapsule_SetContext(qself.ptr(), &quiet_tag);
    quiet[k.name.c_str()] = py::reinterpret_steal<py::object>(
        PyCFunction_NewEx(&defs.back(), qself.ptr(), m.attr("__name__").ptr()));
    py::list params;
    for (const Param& p : k.params) params.append(p.name);
    table.append(py::make_tuple(k.name, k.family, k.exact, params));
  }
  m.attr("KERNELS") = py::tuple(table);  // (name, family, exact, parameter names) per kernel
  m.attr("QUIET") = quiet;  // name -> the kernel, returning NotImplemented where it refuses
  if (PyType_Ready(dispatch_type()) < 0) throw py::error_already_set();
  m.add_object("Dispatch", reinterpret_cast<PyObject*>(dispatch_type()));
  m.def("dispatch", &make_dispatch, py::arg("name"), py::arg("fallback"),
        "native.<name>: one C call running the kernel where its contract takes the arguments as "
        "they are, else fallback(*args, **kwargs).");
  agt_front::bind_plan(m);

  m.def(
      "blas_info",
      [] {
        const ag::BlasInfo info = ag::blas_info();
        py::dict d;
        d["library"] = "scipy-openblas32", d["corename"] = info.corename, d["config"] = info.config;
        d["num_threads"] = info.num_threads, d["num_procs"] = info.num_procs;
        return d;
      },
      "OpenBLAS core name, configuration and thread count.");
  m.def("set_num_threads", &ag::set_num_threads, py::arg("n"),
        "Threads for the BLAS and the native kernels.");
  m.def("get_num_threads", &ag::get_num_threads, "Threads used by the native kernels.");
}
