// Python bindings of the native core's runtime: the thread pool, its settings, the BLAS
// threading mode and Ctrl-C handling for long calls. Kept apart from bindings.cpp (the kernels).
#pragma once

#include <pybind11/pybind11.h>

namespace ag_runtime {

// Adds the runtime functions to the module, installs the interrupt hook and the translator of
// ag::Interrupted into the Python exception that the signal handler raised.
void bind(pybind11::module_& m);

}  // namespace ag_runtime
