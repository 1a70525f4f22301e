# Cython's declaration of csrc/hot.h, the compiled twins' C helpers (cimported by _core.pxd,
# engine.pxd and optim/_fused.pxd as autograd._hot; CMakeLists.txt copies it there). Each helper
# answers what the Python it stands in for would: shape, dtype and ownership of exact ndarrays,
# grad_mode.state of the calling thread, a provider's kernel. hot.h's functions are static, so
# each module that cimports them keeps its own copy of their state (set by ag_hot_init).
cdef extern from "hot.h":
    int ag_hot_init(object ndarray, object state) except -1
    bint ag_is_array(object o)
    bint ag_same_shape(object x, object y)
    bint ag_owns_writeable(object a)
    bint ag_same_float(object x, object y, object f32, object f64)
    object ag_state_get(object name)
    int ag_state_set(object name, object value) except -1
    int ag_state_flag(object name) except -1
    object ag_new(object base, object cls)
    object ag_kernel(object k, object name)
