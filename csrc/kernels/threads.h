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
// Matrix products go further (run_tiles): the caller redoes a tile whose worker is off its
// core, so a preempted worker delays no product at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

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
// Stealable tiles (issue 9)
// ---------------------------------------------------------------------------------------------

// A job of independent tiles that the calling thread can finish without waiting for a worker.
// On 2 cores every runnable thread of another process preempts one of ours for a scheduler
// slice (3-4 ms); when the preempted thread is a worker holding a tile, a plain job would wait
// for it. Here a worker computes its tile into scratch and hands it over (the caller copies it
// into the destination); a tile whose worker is late is redone by the caller (stolen) and the
// worker's result discarded. The same tile computed by anyone gives the same bits, so results
// do not depend on who computed what.
//
// The job lives on the heap and workers hold it by shared_ptr: a late worker never touches the
// caller's stack or the destination. It still reads the job's operands, which the caller must
// keep alive (see late_workers_pending below).
class TileJob {
 public:
  explicit TileJob(std::int64_t ntiles);
  virtual ~TileJob();
  TileJob(const TileJob&) = delete;
  TileJob& operator=(const TileJob&) = delete;

  std::int64_t tiles() const { return ntiles_; }
  // Tile t straight into the destination (the caller: its own tiles and the ones it steals).
  virtual void compute_in_place(std::int64_t t) = 0;
  // Bytes of scratch tile t needs, and tile t computed into it (a worker).
  virtual std::size_t scratch_bytes(std::int64_t t) const = 0;
  virtual void compute_into(std::int64_t t, void* scratch) = 0;
  // Copies a worker's finished scratch of tile t into the destination (the caller).
  virtual void commit(std::int64_t t, const void* scratch) = 0;
  // Work of tile t in any unit proportional to its time (a worker's expected time is predicted
  // from the caller's measured time per unit).
  virtual double cost(std::int64_t t) const = 0;

  struct State;  // claims, hand-over, late-worker bookkeeping (threads.cpp)
  State& state() { return *state_; }

 private:
  std::int64_t ntiles_;
  State* state_;
};

// Runs every tile of job on the pool and the calling thread and returns when each is in its
// destination. Tiles are claimed dynamically; when the caller has none left to claim, it copies
// the workers' results as they are handed over and steals a tile whose worker is late: past
// 1.5x the caller's own time for that much work since the claim, and off its core (its CPU
// clock still) for as long as the recomputation takes, or past 2.5x in any case (threads.cpp,
// overdue). With one thread, inside a pool job, or with one tile everything runs on the caller.
// If the caller is interrupted (interruption_point between its tiles), no further tile is
// claimed, every worker still in the job is waited for, and the exception is rethrown.
void run_tiles(const std::shared_ptr<TileJob>& job);

// Keeping the operands of a late worker alive. A worker whose tile was stolen may still be
// computing it after the call returned, reading the job's operands; the caller's binding owns
// those (Python arrays). After each kernel call, with the GIL held, it asks
// late_workers_pending() and, when true, passes new references to every array of the call to
// hold_for_late_workers(). The objects go to the release hook (from the last late worker's
// thread, without the GIL) once every such worker has left the job.
using ReleaseHook = void (*)(std::vector<void*>&& objects);
void set_release_hook(ReleaseHook hook);
// True when a run_tiles call on this thread returned with a worker still in its job (since the
// last hold_for_late_workers on this thread).
bool late_workers_pending();
// Gives `objects` to the jobs this thread left with a worker in them; true if some took them
// (`objects` is then emptied and belongs to the jobs), false if every worker has left already
// (the caller still owns them). Forgets this thread's late jobs either way.
bool hold_for_late_workers(std::vector<void*>& objects);

// Counters for backend.info(): tiles the caller stole, and steals where the worker handed its
// result over before the caller's recomputation was done (the grace was too short for it).
std::int64_t tiles_stolen();
std::int64_t steals_worker_finished_first();
// Test knob: a worker sleeps this long after claiming a tile, so that the caller steals it
// deterministically (0, the default: no delay).
void set_tile_worker_delay_us(int us);

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
