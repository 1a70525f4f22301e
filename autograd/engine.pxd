# C declarations for the compiled twin of engine.py (autograd._cengine): the graph's nodes and
# tensors are the C structs of autograd._ccore, so the walk reads their fields directly.
cimport cython
from autograd._ccore cimport Node, TensorBase, _DeclaredBackward

# True here (cython.compiled): the C shortcuts below replace the Python beside them.
cdef bint _COMPILED

# The C helpers of csrc/hot.h (as in _core.pxd; this module has its own copy of their state).
cdef extern from "hot.h":
    int ag_hot_init(object ndarray, object state) except -1
    bint ag_is_array(object o)
    bint ag_same_shape(object x, object y)
    bint ag_owns_writeable(object a)
    object ag_state_get(object name)
    int ag_state_set(object name, object value) except -1
    int ag_state_flag(object name) except -1
    object ag_kernel(object k, object name)


@cython.locals(node=Node, child=Node, t=TensorBase, slots=dict, slot=list, order=list,
               ready=list, left=Py_ssize_t)
cpdef list topological_order(root)

@cython.locals(node=Node, child=Node, t=TensorBase, slots=dict, stack=list, slot=list)
cpdef dict _slots(root)

@cython.locals(top=Node, node=Node, child=Node, nxt=Node, t=TensorBase, slots=dict, slot=list,
               handed=set, ready=list, i=Py_ssize_t, left=Py_ssize_t, anomaly=bint,
               hooked=bint, owned=bint, inputs=tuple, needs=tuple, declared=_DeclaredBackward)
cpdef _propagate(root, grad, retain_graph)
