// The native core's one thread pool. Every parallel loop of the kernels and every parallel
// matrix product runs on it; OpenBLAS itself is kept single-threaded (or, in the "callback"
// BLAS mode, has its parallel sections routed onto this pool), so the process never holds
// more runnable threads of ours than the pool size, and the pool size never exceeds the CPUs
// the process may run on. NumPy's own OpenBLAS, when it has the threads callback, runs its
// parallel sections on this pool too (route_foreign_blas), so its threads stay asleep.
//
// The pool has n - 1 worker threads for a setting of n; the calling thread always takes part.
// Workers are created on the first parallel job (a program whose work stays under the size
// thresholds never starts one), spin for a short while after a job (so back-to-back kernels
// do not pay a wake-up), then block on a condition variable and use no CPU.
//
// Work is handed out as numbered tasks claimed dynamically: a worker that is descheduled by the
// OS delays at most the one task it holds, never the others (the caller claims what is left).
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <string>

namespace ag {

using pool_index_t = std::int64_t;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

// The largest accepted thread count: the CPUs this process may run on (sched_getaffinity).
int max_threads();

// Sets the pool size (and nothing else runs threads of ours). Throws std::invalid_argument,
// naming the accepted range, when n is outside [1, max_threads()]. Blocks until any job
// running on the pool has finished.
void set_num_threads(int n);

// The pool size (the calling thread included).
int get_num_threads();

// Worker threads that currently exist (0 until the first parallel job).
int live_workers();

// How long an idle worker spins before it blocks, in microseconds (0 = block at once).
void set_spin_us(int us);
int get_spin_us();

// Kernel families with their own size threshold: work at or below it runs on the calling
// thread alone. Cheap = one arithmetic op per element (add, relu, axpy, sums), Heavy = a
// transcendental or a multi-pass row (exp, tanh, softmax, Adam), Gemm = m * n * k of a product.
// GemmTile is not a threshold but the largest m * n * k of one tile of a large product (the
// grain at which a pending Ctrl-C is noticed; see blas.cpp).
enum class Family : int { Cheap = 0, Heavy = 1, Gemm = 2, GemmTile = 3 };
constexpr int kNumFamilies = 4;
void set_threshold(Family f, std::int64_t n);
std::int64_t threshold(Family f);

// ---------------------------------------------------------------------------------------------
// Running work
// ---------------------------------------------------------------------------------------------

// Runs task(t) for every t in [0, ntasks) on up to min(ntasks, pool size) threads, the
// calling thread included; returns when all have finished. Tasks must not call back into the
// pool (they run inline if they do). Jobs from different calling threads run one at a time.
// If a task throws, the remaining unclaimed tasks are skipped and the first exception is
// rethrown on the calling thread once every running task has returned.
void parallel_tasks(pool_index_t ntasks, const std::function<void(pool_index_t)>& task);

// As parallel_tasks, but every task runs on its own thread concurrently (OpenBLAS's parallel
// sections wait on each other, so two of them may never be run one after the other). ntasks
// must not exceed the pool size.
void concurrent_tasks(int ntasks, const std::function<void(int)>& task);

// ---------------------------------------------------------------------------------------------
// Interruption of long calls
// ---------------------------------------------------------------------------------------------

// Long kernels call interruption_point() between blocks of work on the calling thread; it asks
// the hook installed by the Python bindings whether a signal (Ctrl-C) is pending and, if so,
// throws Interrupted. The bindings turn Interrupted into the Python exception the signal
// handler raised (KeyboardInterrupt for Ctrl-C).
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted by a signal"; }
};
using InterruptHook = bool (*)();
void set_interrupt_hook(InterruptHook hook);
void interruption_point();

// ---------------------------------------------------------------------------------------------
// BLAS threading
// ---------------------------------------------------------------------------------------------

// "tiles": OpenBLAS runs single-threaded; large products are cut into tiles of C that the pool
// computes (see blas.cpp). "callback": OpenBLAS partitions each product itself and its parallel
// sections run on this pool through openblas_set_threads_callback_function.
enum class BlasMode : int { Tiles = 0, Callback = 1 };
void set_blas_mode(BlasMode mode);
BlasMode blas_mode();

// Another OpenBLAS in the process (NumPy's bundled libscipy_openblas64_) routed onto this pool
// through its openblas_set_threads_callback_function: its parallel sections then run on our
// workers (which block when idle) instead of on its own threads (which spin for a while after
// every call and take the core our next product needs). Its jobs are computed exactly as its
// own threads would compute them, so its results do not change.
struct ForeignBlas {
  bool routed = false;
  std::string path;     // the library as loaded
  std::string version;  // from its openblas_get_config, e.g. "0.3.31.188.0"
  std::string setter;   // the symbol that installed the callback
  std::string reason;   // why it is not routed (empty when routed)
};

// Routes (on = true) or unroutes the already-loaded OpenBLAS at `path`. Never loads a library:
// a path that is not loaded, not an OpenBLAS with the threads callback (>= 0.3.29, the first
// release whose callback mode allocates every job's buffer), or the engine's own BLAS is left
// alone and the reason returned. Only one foreign library is routed at a time.
ForeignBlas route_foreign_blas(const std::string& path, bool on);
ForeignBlas foreign_blas();
// Parallel sections of the foreign BLAS so far: run on the pool, and run on extra threads
// (when the pool was busy with another caller's job or smaller than the section).
std::int64_t foreign_sections_on_pool();
std::int64_t foreign_sections_on_extra_threads();

// Call once, at module import, before any BLAS call.
void init_threads();

}  // namespace ag
