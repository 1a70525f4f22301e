# C declarations for the compiled twin of _core.py (autograd._ccore): the same source, with the
# storage of a Tensor and of a Node as C structs and the hot functions' locals typed.
cimport cython

cdef object _ADD, _SUB, _MUL, _DIV
# C globals: read on every op without a module dictionary lookup.
cdef object _Tensor, _ndarray, _UNARY
cdef tuple _NEEDS1, _NEEDS2
cdef dict _NO_PARAMS
# True here (cython.compiled): the C shortcuts below replace the Python beside them.
cdef bint _COMPILED


# C helpers of the compiled hot path (csrc/hot.h, declared once in csrc/hot.pxd): each answers
# what the Python it stands in for would (shape and dtype of exact ndarrays; grad_mode.state of
# the calling thread).
from autograd._hot cimport (ag_hot_init, ag_is_array, ag_same_shape, ag_same_float,
                            ag_state_get, ag_state_flag, ag_new, ag_kernel)


cdef class TensorBase:
    cdef public object _data
    cdef public object _node
    cdef public bint _requires_grad
    cdef public object grad
    cdef public object _vc
    cdef object __weakref__
    cpdef _accumulate_grad(self, g)


# final: Node's cpdef methods are called directly, without a look for a Python override; the
# free list saves an allocation per recorded op.
@cython.final
@cython.freelist(64)
cdef class Node:
    cdef public object op
    cdef public tuple inputs
    cdef public tuple needs
    cdef public object saved
    cdef public tuple versions
    cdef public object trace
    cdef public bint freed
    cdef public object params
    cpdef check_versions(self)
    cpdef release(self)


@cython.final
@cython.freelist(8)
cdef class _Scratch:
    cdef public object saved


@cython.locals(t=TensorBase)
cpdef wrap(array, node=*)

@cython.locals(t=TensorBase, u=TensorBase, w=TensorBase, needs=list, versions=list, n=Py_ssize_t)
cdef _record(Node node, op, tuple inputs)

@cython.locals(t=TensorBase, arrays=list, record=bint, node=Node)
cdef _apply(op, tuple inputs, dict params)

@cython.locals(node=Node)
cdef _apply2(op, TensorBase a, TensorBase b)

@cython.final
cdef class _DeclaredForward:
    cdef str kernel
    cdef int mode
    cdef readonly bint general
    cdef tuple names, defaults
    cdef Py_ssize_t arity
    cdef readonly tuple declared_kernels
    cdef run(self, ctx, x, y)
    @cython.locals(n=Py_ssize_t, mode=int)
    cdef run_general(self, ctx, inputs, dict params)


@cython.final
cdef class _DeclaredBackward:
    cdef Py_ssize_t n, i0, j0, i1, j1
    cdef object k0, k1
    cdef bint same, general
    cdef tuple specs, names, defaults
    cdef object joint
    cdef readonly tuple declared_kernels
    @cython.locals(node=Node)
    cdef tuple run(self, ctx, g)


# the codes of a general row's arguments (C constants: read on every argument)
cdef Py_ssize_t _ATTR_CODE, _WANTS_CODE

@cython.locals(j=Py_ssize_t, i=Py_ssize_t, n=Py_ssize_t, st=tuple)
cdef inline _arg_value(Py_ssize_t code, g, saved, dict params, tuple needs, tuple names,
                       tuple defaults)

@cython.locals(args=list, m=Py_ssize_t, code=Py_ssize_t)
cdef _call_codes(k, str kernel, tuple codes, g, saved, dict params, tuple needs, tuple names,
                 tuple defaults)

@cython.locals(n=Py_ssize_t, i=Py_ssize_t, out=list)
cdef tuple _backward_general(k, ctx, g, tuple needs, saved, dict params, tuple specs, joint,
                             tuple names, tuple defaults)

cdef _one_gradient(k, ctx, g, tuple needs, Py_ssize_t i, spec, saved, dict params,
                   tuple names, tuple defaults)

@cython.locals(args=list, n=Py_ssize_t, j=Py_ssize_t, matched=Py_ssize_t)
cdef _forward_general(k, str kernel, ctx, inputs, params, int mode, tuple names,
                      tuple defaults, Py_ssize_t arity)


cdef _kernel_on(k, kernel, g, saved, Py_ssize_t i, Py_ssize_t j)

cdef _env(g, saved, Py_ssize_t i)

@cython.locals(node=Node)
cdef _save(ctx, value)

@cython.locals(node=Node, forward=_DeclaredForward)
cdef _apply2_c(op, TensorBase a, TensorBase b)

@cython.locals(node=Node)
cdef _record_c(op, tuple inputs, dict params, list arrays, bint record)

@cython.locals(t=TensorBase, x=TensorBase)
cdef _output(out, node, tuple inputs)

@cython.locals(n=Py_ssize_t)
cdef _forward(op, ctx, list arrays, dict params)

@cython.locals(n=Py_ssize_t, forward=_DeclaredForward)
cdef _forward_c(op, ctx, list arrays, dict params)

cpdef tuple pair(a, b)

@cython.locals(t=TensorBase, versions=tuple, i=Py_ssize_t)
cdef _check_versions(Node node)

cdef _accumulate(TensorBase t, g)

@cython.locals(grad=TensorBase)
cpdef _accumulate_now(TensorBase t, g)

@cython.locals(t=TensorBase)
cpdef bump_versions(list tensors)

@cython.locals(t=TensorBase)
cdef bint _same_float(TensorBase a, b)

cdef bint _same_shape(x, y)
