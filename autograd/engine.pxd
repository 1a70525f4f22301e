# C declarations for the compiled twin of engine.py (autograd._cengine): the graph's nodes and
# tensors are the C structs of autograd._ccore, so the walk reads their fields directly.
cimport cython
from autograd._ccore cimport Node, TensorBase


@cython.locals(node=Node, child=Node, t=TensorBase, slots=dict, slot=list, order=list,
               ready=list, left=Py_ssize_t)
cpdef list topological_order(root)

@cython.locals(node=Node, child=Node, t=TensorBase, slots=dict, stack=list, slot=list)
cpdef dict _slots(root)

@cython.locals(top=Node, node=Node, child=Node, t=TensorBase, slots=dict, slot=list,
               handed=set, ready=list, i=Py_ssize_t, left=Py_ssize_t, anomaly=bint,
               hooked=bint, inputs=tuple, needs=tuple)
cpdef _propagate(root, grad, retain_graph)
