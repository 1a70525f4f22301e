#include "kernels/threads.h"

#include <omp.h>

#include <cblas.h>

namespace ag {

void set_num_threads(int n) {
  omp_set_num_threads(n);
  scipy_openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace ag
