// One thread pool and one thread setting for the whole native core: the OpenMP team runs the
// elementwise, reduction and optimizer kernels, and OpenBLAS's parallel work too (through its
// threads callback), so the two never compete for cores with spinning threads of their own.
#pragma once

namespace ag {

// Routes OpenBLAS's parallel jobs onto the OpenMP team. Call once, at module import, before
// any BLAS call.
void init_threads();

// Sets both the OpenMP and the OpenBLAS thread count to n (n >= 1; checked by the caller).
void set_num_threads(int n);

// The current thread count (the OpenMP team size the kernels use).
int get_num_threads();

}  // namespace ag
