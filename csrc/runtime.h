// Python bindings of the native core's runtime: the thread pool, its settings, the BLAS
// threading mode and Ctrl-C handling for long calls. Kept apart from bindings.cpp (the kernels).
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <vector>

#include "kernels/threads.h"

namespace ag_runtime {

// Late workers (kernels/threads.h, run_tiles): a kernel call may return while a pool worker
// still computes a tile the caller stole from it, reading the call's operands. After the
// kernel, with the GIL held, the binding passes every array object of the call (borrowed) to
// keep_for_late_workers, which increfs them for the late workers when there are any; a worker
// that finishes hands them back and they are decref'd under the GIL, by a pending call
// (Py_AddPendingCall) or at the next kernel call (release_late_references).
void keep_for_late_workers(const std::vector<PyObject*>& objects);
void drain_released();
extern std::atomic<bool> g_released;  // references are waiting to be dropped
inline void release_late_references() {
  if (g_released.load(std::memory_order_relaxed)) drain_released();
}

// Adds the runtime functions to the module, installs the interrupt hook and the translator of
// ag::Interrupted into the Python exception that the signal handler raised.
void bind(pybind11::module_& m);

}  // namespace ag_runtime
