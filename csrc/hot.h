// C helpers of the compiled hot path (autograd._ccore and autograd._cengine, declared in
// autograd/_core.pxd and autograd/engine.pxd). Only the compiled twins call these; the pure twin
// reads the same facts through Python (``a.shape``, ``a.dtype``, ``state.grad_enabled``), and
// every helper here answers exactly what that Python would, or says it cannot (then the caller
// takes the Python path).
//
// Plain C with no NumPy headers: the build has no NumPy (it is not a build requirement), so an
// ndarray's leading fields are read through the same mirror of NumPy's PyArrayObject that
// pybind11 uses (pybind11/numpy.h, array_proxy): that layout is NumPy's stable ABI, unchanged
// from 1.7 through 2.x. Each compiled module includes this header and gets its own copy of the
// static state below, set by its own ag_hot_init call at import.
#pragma once

#include <Python.h>
#include <stdint.h>

typedef struct {
  PyObject_HEAD
  char* data;
  int nd;
  Py_intptr_t* dimensions;
  Py_intptr_t* strides;
  PyObject* base;
  PyObject* descr;
  int flags;
} ag_ndarray_head;

static PyTypeObject* ag_ndarray_type = NULL;  // numpy.ndarray (strong reference)
static PyObject* ag_state = NULL;             // autograd.grad_mode.state (strong reference)
static PyObject* ag_thread_dict = NULL;       // that state's dict for the thread below (strong)
static uint64_t ag_thread_id = 0;             // 0: none yet (CPython's ids start at 1)
static PyObject* ag_dict_name = NULL;         // "__dict__"
static PyObject* ag_empty_tuple = NULL;       // ()

// Called once at import with numpy.ndarray and grad_mode.state.
static inline int ag_hot_init(PyObject* ndarray, PyObject* state) {
  if (!PyType_Check(ndarray)) {
    PyErr_SetString(PyExc_TypeError, "ag_hot_init: ndarray must be a type");
    return -1;
  }
  ag_dict_name = PyUnicode_InternFromString("__dict__");
  ag_empty_tuple = PyTuple_New(0);
  if (!ag_dict_name || !ag_empty_tuple) return -1;
  Py_INCREF(ndarray);
  Py_INCREF(state);
  ag_ndarray_type = (PyTypeObject*)ndarray;
  ag_state = state;
  return 0;
}

// An exact numpy.ndarray (a subclass may override shape or dtype: those take the Python path).
static inline int ag_is_array(PyObject* o) { return Py_TYPE(o) == ag_ndarray_type; }

// a.shape == b.shape for two exact ndarrays, without building the two tuples (~60 ns).
static inline int ag_same_shape(PyObject* a, PyObject* b) {
  const ag_ndarray_head* x = (const ag_ndarray_head*)a;
  const ag_ndarray_head* y = (const ag_ndarray_head*)b;
  if (x->nd != y->nd) return 0;
  for (int i = 0; i < x->nd; ++i)
    if (x->dimensions[i] != y->dimensions[i]) return 0;
  return 1;
}

// ``a.base is None and a.flags.writeable`` for an exact ndarray: an array that owns its memory
// and may be written, read from its struct (``a.flags`` builds a new flags object per call).
// NPY_ARRAY_WRITEABLE is 0x0400 in every NumPy since 1.7 (ndarraytypes.h).
static inline int ag_owns_writeable(PyObject* a) {
  const ag_ndarray_head* x = (const ag_ndarray_head*)a;
  return x->base == NULL && (x->flags & 0x0400) != 0;
}

// a.dtype of an exact ndarray, borrowed: the very object ``a.dtype`` returns (its descr).
static inline PyObject* ag_dtype(PyObject* a) { return ((const ag_ndarray_head*)a)->descr; }

// ``y.dtype is x.dtype and (x.dtype is f32 or x.dtype is f64)`` for two exact ndarrays.
static inline int ag_same_float(PyObject* x, PyObject* y, PyObject* f32, PyObject* f64) {
  PyObject* d = ag_dtype(x);
  return d == ag_dtype(y) && (d == f32 || d == f64);
}

// The calling thread's attribute dict of grad_mode.state (a threading.local), borrowed, or NULL
// with an exception set. The dict is the one ``state.__dict__`` gives in this thread: a
// threading.local keeps one dict per thread for the thread's life. It is cached for the thread
// that asked last, recognised by its PyThreadState id, which CPython never reuses (a thread
// ident can be reused once its thread ends). Reading the dict itself, not values copied from
// it, means no write to the state ever needs to tell this cache. The cached dict is kept alive
// until another thread reads (a finished thread's dict, with its flags and provider, outlives
// the thread by that long; a dead thread's dict is never read: its id does not come back).
static inline PyObject* ag_state_dict(void) {
  const uint64_t id = PyThreadState_GetID(PyThreadState_Get());
  if (id == ag_thread_id && ag_thread_dict) return ag_thread_dict;
  PyObject* d = PyObject_GetAttr(ag_state, ag_dict_name);
  if (!d) return NULL;
  if (!PyDict_Check(d)) {
    Py_DECREF(d);
    PyErr_SetString(PyExc_TypeError, "grad_mode.state.__dict__ is not a dict");
    return NULL;
  }
  Py_XSETREF(ag_thread_dict, d);
  ag_thread_id = id;
  return d;
}

// state.<name> in the calling thread, a new reference (NULL with an exception set): the value
// this thread set, else the class attribute every thread starts with (_State's defaults). The
// same lookup order as ``state.<name>``: _State defines no data descriptors, and a class
// attribute that is a descriptor of any kind takes the generic path.
static inline PyObject* ag_state_get(PyObject* name) {
  PyObject* d = ag_state_dict();
  if (!d) return NULL;
  PyObject* v = PyDict_GetItemWithError(d, name);
  if (v) {
    Py_INCREF(v);
    return v;
  }
  if (PyErr_Occurred()) return NULL;
  v = _PyType_Lookup(Py_TYPE(ag_state), name);  // borrowed; the type attribute cache
  if (v && !Py_TYPE(v)->tp_descr_get) {
    Py_INCREF(v);
    return v;
  }
  return PyObject_GetAttr(ag_state, name);
}

// ``state.<name> = value`` in the calling thread: a write into the thread's dict, which is what
// the attribute write does (_State defines no data descriptors, see ag_state_get). 0, or -1 with
// an exception set.
static inline int ag_state_set(PyObject* name, PyObject* value) {
  PyObject* d = ag_state_dict();
  if (!d) return -1;
  return PyDict_SetItem(d, name, value);
}

// bool(state.<name>) in the calling thread: 1, 0, or -1 with an exception set.
static inline int ag_state_flag(PyObject* name) {
  PyObject* v = ag_state_get(name);
  if (!v) return -1;
  const int r = v == Py_True ? 1 : v == Py_False ? 0 : PyObject_IsTrue(v);
  Py_DECREF(v);
  return r;
}

// ``base.__new__(cls)`` for a class ``cls`` derived from the extension type ``base`` (the caller
// checked that once): base's tp_new on cls, as type.__new__'s wrapper would call it, without
// looking up ``__new__`` by name and checking the pair on every call (~40 ns of a new Tensor).
static inline PyObject* ag_new(PyObject* base, PyObject* cls) {
  return ((PyTypeObject*)base)->tp_new((PyTypeObject*)cls, ag_empty_tuple, NULL);
}

// ``getattr(k, name)`` for a kernel provider: read from the module's dict when ``k`` is a plain
// module (what module attribute lookup finds first for a name that is no attribute of the
// module type itself, as no kernel name is), else the generic lookup (a provider object, or a
// module's __getattr__ for a name its dict lacks). A new reference, or NULL with an error set.
static inline PyObject* ag_kernel(PyObject* k, PyObject* name) {
  if (PyModule_CheckExact(k)) {
    PyObject* v = PyDict_GetItemWithError(PyModule_GetDict(k), name);
    if (v) {
      Py_INCREF(v);
      return v;
    }
    if (PyErr_Occurred()) return NULL;
  }
  return PyObject_GetAttr(k, name);
}
