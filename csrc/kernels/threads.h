// One thread setting for the whole native core: the OpenMP team used by the elementwise,
// reduction and optimizer kernels, and OpenBLAS's own thread pool.
#pragma once

namespace ag {

// Sets both the OpenMP and the OpenBLAS thread count to n (n >= 1; checked by the caller).
void set_num_threads(int n);

// The current thread count (the OpenMP team size the kernels use).
int get_num_threads();

}  // namespace ag
