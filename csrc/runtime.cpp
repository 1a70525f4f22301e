#include "runtime.h"

#include <link.h>
#include <pybind11/stl.h>

#include <pthread.h>

#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/threads.h"

namespace py = pybind11;

// C entry points for threadpoolctl (autograd/backend/threadpool.py finds the loaded _C module by
// these symbols and sets the pool size through them, as it does for OpenBLAS or OpenMP).
// Out-of-range requests are clamped: threadpoolctl passes whatever limit its user asked for.
extern "C" {
__attribute__((visibility("default"))) int autograd_pool_get_num_threads() {
  return ag::get_num_threads();
}
__attribute__((visibility("default"))) void autograd_pool_set_num_threads(int n) {
  const int hi = ag::max_threads();
  ag::set_num_threads(n < 1 ? 1 : (n > hi ? hi : n));
}
}

namespace ag_runtime {

std::atomic<bool> g_released{false};

namespace {

// References late workers are done with, waiting for the GIL (see keep_for_late_workers).
std::mutex g_released_mutex;
std::vector<PyObject*> g_released_objects;
// Set at interpreter exit (atexit): no pending call is scheduled any more, and references a
// worker releases after that are left to the OS.
std::atomic<bool> g_finalizing{false};

int drain_pending(void*) {
  drain_released();
  return 0;
}

// The release hook (threads.h): called by the last late worker of a call, without the GIL (or
// by the binding, with it). Never touches a reference count: queues them for the GIL.
void release_hook(std::vector<void*>&& objects) {
  {
    std::lock_guard<std::mutex> lk(g_released_mutex);
    for (void* o : objects) g_released_objects.push_back(static_cast<PyObject*>(o));
    g_released.store(true, std::memory_order_release);
  }
  // Needs neither the GIL nor a thread state; if its queue is full, the next kernel call drains.
  if (!g_finalizing.load()) Py_AddPendingCall(&drain_pending, nullptr);
}

// The thread that may handle signals: Python runs signal handlers on the main thread only.
unsigned long g_main_thread = 0;

// The exception a signal handler raised while a kernel ran, kept until the translator restores
// it on the same thread.
thread_local PyObject* t_exc_type = nullptr;
thread_local PyObject* t_exc_value = nullptr;
thread_local PyObject* t_exc_tb = nullptr;

// Called by long kernels between blocks, without the GIL: takes it briefly and runs the pending
// signal handlers. True when a handler raised (Ctrl-C: KeyboardInterrupt).
bool check_signals() {
  if (PyThread_get_thread_ident() != g_main_thread) return false;
  const PyGILState_STATE st = PyGILState_Ensure();
  const bool raised = PyErr_CheckSignals() != 0;
  if (raised) {
    Py_XDECREF(t_exc_type);
    Py_XDECREF(t_exc_value);
    Py_XDECREF(t_exc_tb);
    PyErr_Fetch(&t_exc_type, &t_exc_value, &t_exc_tb);
  }
  PyGILState_Release(st);
  return raised;
}

const std::map<std::string, ag::Family>& families() {
  static const std::map<std::string, ag::Family> f = {
      {"elementwise", ag::Family::Cheap}, {"transcendental", ag::Family::Heavy},
      {"gemm", ag::Family::Gemm}, {"gemm_tile", ag::Family::GemmTile}};
  return f;
}

ag::Family family(const std::string& name) {
  const auto it = families().find(name);
  if (it == families().end())
    throw std::invalid_argument("unknown kernel family '" + name +
                                "': expected 'elementwise', 'transcendental', 'gemm' or "
                                "'gemm_tile'");
  return it->second;
}

py::dict foreign_dict(const ag::ForeignBlas& f) {
  py::dict d;
  d["routed"] = f.routed;
  d["library"] = f.path;
  d["version"] = f.version;
  d["setter"] = f.setter;
  d["reason"] = f.reason;
  return d;
}

// Paths of the shared objects loaded in the process, in load order.
std::vector<std::string> loaded_libraries() {
  std::vector<std::string> out;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        if (info->dlpi_name != nullptr && info->dlpi_name[0] != '\0')
          static_cast<std::vector<std::string>*>(data)->emplace_back(info->dlpi_name);
        return 0;
      },
      &out);
  return out;
}

const char* mode_name(ag::BlasMode m) { return m == ag::BlasMode::Tiles ? "tiles" : "callback"; }

}  // namespace

void drain_released() {
  std::vector<PyObject*> objects;
  {
    std::lock_guard<std::mutex> lk(g_released_mutex);
    objects.swap(g_released_objects);
    g_released.store(false, std::memory_order_relaxed);
  }
  for (PyObject* o : objects) Py_DECREF(o);
}

void keep_for_late_workers(const std::vector<PyObject*>& objects) {
  if (!ag::late_workers_pending()) return;
  std::vector<void*> refs;
  refs.reserve(objects.size());
  for (PyObject* o : objects) {
    if (o == nullptr) continue;
    Py_INCREF(o);
    refs.push_back(o);
  }
  if (!ag::hold_for_late_workers(refs))
    for (void* o : refs) Py_DECREF(static_cast<PyObject*>(o));  // every worker had finished
}

void bind(py::module_& m) {
  g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident")
                      .cast<unsigned long>();
  ag::set_interrupt_hook(&check_signals);
  ag::set_release_hook(&release_hook);
  py::module_::import("atexit").attr("register")(
      py::cpp_function([] { g_finalizing.store(true); }));
  pthread_atfork(nullptr, nullptr, [] { new (&g_released_mutex) std::mutex(); });
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ag::Interrupted&) {
      if (t_exc_type != nullptr) {
        PyErr_Restore(t_exc_type, t_exc_value, t_exc_tb);
        t_exc_type = t_exc_value = t_exc_tb = nullptr;
      } else {
        PyErr_SetNone(PyExc_KeyboardInterrupt);
      }
    }
  });

  m.def("max_threads", &ag::max_threads,
        "The largest accepted thread count: the CPUs this process may run on.");
  m.def("live_workers", &ag::live_workers,
        "Worker threads of the pool that exist now (0 until the first parallel job).");
  m.def("set_spin_us", &ag::set_spin_us, py::arg("us"),
        "How long an idle worker spins before it blocks, in microseconds.");
  m.def("get_spin_us", &ag::get_spin_us);
  m.def("set_parallel_threshold",
        [](const std::string& name, std::int64_t n) {
          if (n < 0)
            throw std::invalid_argument("set_parallel_threshold: " + name +
                                        " threshold must be >= 0, got " + std::to_string(n));
          ag::set_threshold(family(name), n);
        },
        py::arg("family"), py::arg("n"),
        "Work at or below n (elements; m*n*k multiply-adds for 'gemm') runs on the calling "
        "thread.");
  m.def("get_parallel_thresholds", [] {
    std::map<std::string, std::int64_t> out;
    for (const auto& [name, f] : families()) out[name] = ag::threshold(f);
    return out;
  });
  m.def("set_blas_mode",
        [](const std::string& mode) {
          if (mode == "tiles") {
            ag::set_blas_mode(ag::BlasMode::Tiles);
          } else if (mode == "callback") {
            ag::set_blas_mode(ag::BlasMode::Callback);
          } else {
            throw std::invalid_argument("set_blas_mode: expected 'tiles' or 'callback', got '" +
                                        mode + "'");
          }
        },
        py::arg("mode"));
  m.def("get_blas_mode", [] { return std::string(mode_name(ag::blas_mode())); });
  m.def("tile_steals", [] {
    std::map<std::string, std::int64_t> out;
    out["tiles_stolen"] = ag::tiles_stolen();
    out["worker_finished_first"] = ag::steals_worker_finished_first();
    return out;
  }, "Tiles of products the calling thread recomputed because the worker holding them was late "
     "(preempted), and how many of those the worker still finished first.");
  m.def("_set_tile_worker_delay_us", &ag::set_tile_worker_delay_us, py::arg("us"),
        "Test knob: a worker sleeps this long after claiming a tile of a product (0: never), so "
        "that the caller steals it.");
  m.def("loaded_libraries", &loaded_libraries,
        "Paths of the shared libraries loaded in this process (to find NumPy's BLAS).");
  m.def("route_foreign_blas",
        [](const std::string& path, bool on) {
          ag::ForeignBlas f;
          {
            py::gil_scoped_release nogil;  // unrouting waits for a running section to end
            f = ag::route_foreign_blas(path, on);
          }
          return foreign_dict(f);
        },
        py::arg("path"), py::arg("on") = true,
        "Route the parallel sections of another, already loaded OpenBLAS (NumPy's) onto the "
        "engine's pool (on=False: give them back to its own threads). Returns the state as a "
        "dict: routed, library, version, setter, reason.");
  m.def("foreign_blas", [] {
    py::dict d = foreign_dict(ag::foreign_blas());
    d["sections_on_pool"] = ag::foreign_sections_on_pool();
    d["sections_on_extra_threads"] = ag::foreign_sections_on_extra_threads();
    return d;
  }, "NumPy's (another OpenBLAS's) routing state, and how many of its parallel sections ran on "
     "the pool and on extra threads.");
}

}  // namespace ag_runtime
