# C declarations for the compiled twin of _core.py (autograd._ccore): the same source, with the
# storage of a Tensor and of a Node as C structs and the hot functions' locals typed.
cimport cython

cdef object _ADD, _SUB, _MUL, _DIV


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

@cython.locals(t=TensorBase, x=TensorBase)
cdef _output(out, node, tuple inputs)

@cython.locals(n=Py_ssize_t)
cdef _forward(op, ctx, list arrays, dict params)

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
