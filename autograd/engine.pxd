# C declarations for the compiled twin of engine.py (autograd._cengine): the graph's nodes and
# tensors are the C structs of autograd._ccore, so the walk reads their fields directly.
cimport cython
from autograd._ccore cimport Node, TensorBase, _DeclaredBackward

# True here (cython.compiled): the C shortcuts below replace the Python beside them.
cdef bint _COMPILED

# The C helpers of csrc/hot.h (declared in csrc/hot.pxd; this module has its own copy of their
# state).
from autograd._hot cimport (ag_hot_init, ag_is_array, ag_same_shape, ag_owns_writeable,
                            ag_state_get, ag_state_set, ag_state_flag, ag_kernel)


@cython.locals(node=Node, child=Node, t=TensorBase, slots=dict, slot=list, order=list,
               ready=list, left=Py_ssize_t)
cpdef list topological_order(root)

@cython.locals(node=Node, child=Node, t=TensorBase, slots=dict, stack=list, slot=list)
cpdef dict _slots(root)

@cython.locals(top=Node, node=Node, child=Node, nxt=Node, t=TensorBase, slots=dict, slot=list,
               handed=set, ready=list, i=Py_ssize_t, left=Py_ssize_t, anomaly=bint,
               hooked=bint, owned=bint, inputs=tuple, needs=tuple, declared=_DeclaredBackward)
cpdef _propagate(root, grad, retain_graph)
