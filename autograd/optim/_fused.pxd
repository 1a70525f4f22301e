# C declarations for the compiled twin of _fused.py (autograd.optim._cfused): a parameter and its
# gradient are the C structs of autograd._ccore, read directly.
cimport cython
from autograd._ccore cimport TensorBase, bump_versions

# True here (cython.compiled): the C shortcuts below replace the Python beside them.
cdef bint _COMPILED
cdef object _F32, _F64, _bump

# The C helpers of csrc/hot.h (declared in csrc/hot.pxd; this module has its own copy of their
# state).
from autograd._hot cimport (ag_hot_init, ag_is_array, ag_same_shape, ag_same_float,
                            ag_state_get, ag_kernel)


@cython.locals(t=TensorBase)
cpdef zero_grad(self, set_to_none=*)

cpdef step(self, closure=*)

@cython.locals(arrays=list, grads=list, skipped=bint)
cpdef update_groups(opt)

@cython.locals(skipped=bint)
cdef bint _gather(opt, params, list arrays, list grads) except -1

@cython.locals(t=TensorBase, u=TensorBase, skipped=bint)
cdef bint _gather_c(opt, params, list arrays, list grads) except -1

@cython.locals(i=Py_ssize_t, bufs=list, fresh=list)
cpdef sgd_update(self, group, params, arrays, grads)

@cython.locals(i=Py_ssize_t, n=Py_ssize_t, exp_avgs=list, exp_avg_sqs=list, shared=bint,
               by_step=dict, lists=tuple)
cpdef adam_update(self, group, params, arrays, grads)
