#include "kernels/threads.h"

#include <omp.h>

#include <cstddef>

#include <cblas.h>

namespace ag {
namespace {

// OpenBLAS hands us numjobs independent jobs; run them as one OpenMP parallel loop.
void omp_blas_callback(int /*sync*/, openblas_dojob_callback dojob, int numjobs,
                       size_t jobdata_elsize, void* jobdata, int dojob_data) {
  char* base = static_cast<char*>(jobdata);
#pragma omp parallel for schedule(static) num_threads(numjobs)
  for (int i = 0; i < numjobs; ++i) dojob(i, base + static_cast<size_t>(i) * jobdata_elsize,
                                          dojob_data);
}

}  // namespace

void init_threads() {
  scipy_openblas_set_threads_callback_function(omp_blas_callback);
  scipy_openblas_set_num_threads(omp_get_max_threads());
}

void set_num_threads(int n) {
  omp_set_num_threads(n);
  scipy_openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace ag
