#include "kernels/threads.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <climits>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AG_PAUSE() _mm_pause()
#else
#define AG_PAUSE() std::this_thread::yield()
#endif

namespace ag {
namespace {

// Per family: at or below this much work a loop runs on the calling thread. Elements for Cheap
// and Heavy, multiply-adds (m * n * k) for Gemm. Measured on the project's 2-core machine with
// `python benchmarks/bench_threads.py --thresholds` (see the README's performance section).
std::atomic<std::int64_t> g_threshold[kNumFamilies] = {
    {std::int64_t{1} << 17}, {std::int64_t{1} << 14}, {std::int64_t{1} << 20},
    {std::int64_t{1} << 31}};

std::atomic<InterruptHook> g_interrupt_hook{nullptr};
std::atomic<int> g_blas_mode{static_cast<int>(BlasMode::Tiles)};

// True on pool workers and on a caller while it runs a job: a nested parallel call runs inline.
thread_local bool t_in_job = false;

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// Job state packed in one word, so a claim is one compare-and-swap that also proves the job is
// still the one the claimer saw: epoch (32 bits) | number of chunks (16) | next chunk (16).
constexpr std::uint64_t kMaxChunks = 0xffff;
inline std::uint64_t pack(std::uint32_t epoch, std::uint64_t chunks, std::uint64_t next) {
  return (std::uint64_t{epoch} << 32) | (chunks << 16) | next;
}
inline std::uint32_t epoch_of(std::uint64_t s) { return static_cast<std::uint32_t>(s >> 32); }
// The top bit of the epoch marks a tile job (run_tiles): its "chunks" are tickets, one per
// worker invited to join; the job itself (tiles, claims, completion) lives on the heap.
constexpr std::uint32_t kTileJobBit = 0x80000000u;
inline std::uint64_t chunks_of(std::uint64_t s) { return (s >> 16) & 0xffff; }
inline std::uint64_t next_of(std::uint64_t s) { return s & 0xffff; }

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- scratch for workers' tiles ----------------------------------------------------------------

// A worker's tile result until the caller copies it out. Buffers are reused through a small
// free list (a fresh allocation of a large tile would page-fault on every call).
struct Scratch {
  void* p = nullptr;
  std::size_t bytes = 0;
};
constexpr std::size_t kScratchAlign = 64;
constexpr std::size_t kScratchKept = std::size_t{32} << 20;  // bytes the free list may hold
std::mutex g_scratch_mutex;
std::vector<Scratch> g_scratch_free;
std::size_t g_scratch_free_bytes = 0;

Scratch scratch_get(std::size_t bytes) {
  {
    std::lock_guard<std::mutex> lk(g_scratch_mutex);
    // The smallest free buffer that fits.
    size_t best = g_scratch_free.size();
    for (size_t i = 0; i < g_scratch_free.size(); ++i)
      if (g_scratch_free[i].bytes >= bytes &&
          (best == g_scratch_free.size() || g_scratch_free[i].bytes < g_scratch_free[best].bytes))
        best = i;
    if (best < g_scratch_free.size()) {
      const Scratch b = g_scratch_free[best];
      g_scratch_free.erase(g_scratch_free.begin() + static_cast<std::ptrdiff_t>(best));
      g_scratch_free_bytes -= b.bytes;
      return b;
    }
  }
  Scratch b;
  b.bytes = (bytes + 4095) / 4096 * 4096;
  b.p = ::operator new(b.bytes, std::align_val_t(kScratchAlign));
  return b;
}

void scratch_put(Scratch b) {
  if (b.p == nullptr) return;
  {
    std::lock_guard<std::mutex> lk(g_scratch_mutex);
    if (g_scratch_free_bytes + b.bytes <= kScratchKept) {
      g_scratch_free.push_back(b);
      g_scratch_free_bytes += b.bytes;
      return;
    }
  }
  ::operator delete(b.p, std::align_val_t(kScratchAlign));
}

// ---- late workers' operands -------------------------------------------------------------------

std::atomic<ReleaseHook> g_release_hook{nullptr};

// References a late worker's operands are held by; released (through the hook, by whichever
// thread drops the last job holding them) once no worker of any of those jobs is left.
struct Keep {
  std::vector<void*> objects;
  ~Keep() {
    const ReleaseHook hook = g_release_hook.load();
    if (!objects.empty() && hook != nullptr) hook(std::move(objects));
  }
};

std::atomic<std::int64_t> g_tiles_stolen{0}, g_steals_late{0};
std::atomic<int> g_tile_delay_us{0};
// Time per unit of TileJob::cost the last caller measured on its own tiles (see caller_tiles).
std::atomic<double> g_ns_per_cost{0.0};

// The calling thread's CPU-time clock (pthread_getcpuclockid), readable from other threads.
constexpr std::int64_t kNoClock = INT64_MIN;
std::int64_t my_cpu_clock() {
  thread_local const std::int64_t id = [] {
    clockid_t c;
    return pthread_getcpuclockid(pthread_self(), &c) == 0 ? std::int64_t{c} : kNoClock;
  }();
  return id;
}

// Tile states. A tile is claimed by taking its number from `next`; until a worker hands it
// over it is kHeld (also before the claimer got to it: the caller only looks at claimed tiles).
enum : std::uint8_t {
  kHeld = 0,      // claimed by a worker, not handed over
  kMine = 1,      // computed by the caller in place
  kReady = 2,     // a worker's result waits in scratch[t]
  kCopied = 3,    // ... and was copied into place by the caller
  kStealing = 4,  // the caller is recomputing it in place (the worker's result will be dropped)
  kStolen = 5,    // the caller recomputed it
};

}  // namespace

struct TileJob::State {
  explicit State(std::int64_t ntiles)
      : n(ntiles),
        tile(new std::atomic<std::uint8_t>[static_cast<size_t>(n)]),
        start_ns(new std::atomic<std::int64_t>[static_cast<size_t>(n)]),
        cpu_clock(new std::atomic<std::int64_t>[static_cast<size_t>(n)]),
        progress_at(new std::int64_t[static_cast<size_t>(n)]()),
        progress_cpu(new std::int64_t[static_cast<size_t>(n)]()),
        scratch(new Scratch[static_cast<size_t>(n)]) {
    for (std::int64_t t = 0; t < n; ++t)
      tile[t].store(kHeld), start_ns[t].store(0), cpu_clock[t].store(kNoClock);
  }
  ~State() {
    // Results handed over but never copied (the caller was interrupted).
    for (std::int64_t t = 0; t < n; ++t) scratch_put(scratch[t]);
  }

  const std::int64_t n;
  std::atomic<std::int64_t> next{0};                  // the next unclaimed tile
  std::unique_ptr<std::atomic<std::uint8_t>[]> tile;  // kHeld ... kStolen
  // When a worker claimed the tile (0 until it says; the caller then counts from first sight).
  std::unique_ptr<std::atomic<std::int64_t>[]> start_ns;
  // The claiming worker's CPU-time clock (kNoClock until it says), published by start_ns; and,
  // the caller's own notes, when it last saw that clock advance and its value then.
  std::unique_ptr<std::atomic<std::int64_t>[]> cpu_clock;
  std::unique_ptr<std::int64_t[]> progress_at, progress_cpu;
  // A worker's result; written before the worker's kHeld -> kReady exchange, which publishes
  // it. Owned by the worker until then (and again if the exchange fails), by the job after.
  std::unique_ptr<Scratch[]> scratch;

  std::mutex m;                // guards `keep` and the changes of `inside`
  std::atomic<int> inside{0};  // workers in the job (they may be reading its operands)
  std::vector<std::shared_ptr<Keep>> keep;
};

TileJob::TileJob(std::int64_t ntiles)
    : ntiles_(std::max<std::int64_t>(ntiles, 0)), state_(new State(ntiles_)) {}
TileJob::~TileJob() { delete state_; }

namespace {

// Jobs this thread's run_tiles calls returned from with a worker still in them.
thread_local std::vector<std::shared_ptr<TileJob>> t_late;

// The worker's part of a tile job: claim tiles until none is left, each computed into scratch
// and handed over unless the caller stole it meanwhile.
void work_tiles(TileJob& job) {
  TileJob::State& st = job.state();
  {
    std::lock_guard<std::mutex> lk(st.m);
    st.inside.fetch_add(1, std::memory_order_seq_cst);
  }
  for (;;) {
    const std::int64_t t = st.next.fetch_add(1, std::memory_order_acq_rel);
    if (t >= job.tiles()) break;
    st.cpu_clock[t].store(my_cpu_clock(), std::memory_order_relaxed);
    st.start_ns[t].store(now_ns(), std::memory_order_release);
    if (const int us = g_tile_delay_us.load(std::memory_order_relaxed); us > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(us));
    Scratch buf;
    try {
      buf = scratch_get(job.scratch_bytes(t));
      job.compute_into(t, buf.p);
    } catch (...) {
      // Out of memory for scratch: leave the tile held; the caller steals it after its grace.
      scratch_put(buf);
      break;
    }
    st.scratch[t] = buf;
    std::uint8_t expect = kHeld;
    if (!st.tile[t].compare_exchange_strong(expect, kReady, std::memory_order_acq_rel)) {
      // Stolen: the caller computes (or computed) it in place; drop ours.
      if (expect == kStealing) g_steals_late.fetch_add(1, std::memory_order_relaxed);
      st.scratch[t] = Scratch{};
      scratch_put(buf);
    }
  }
  std::vector<std::shared_ptr<Keep>> keep;
  {
    std::lock_guard<std::mutex> lk(st.m);
    if (st.inside.fetch_sub(1, std::memory_order_seq_cst) == 1) keep.swap(st.keep);
  }
  // `keep` goes out of scope here, outside the lock: the last reference releases the objects.
}

class Pool {
 public:
  Pool() : size_(max_threads()) {}
  ~Pool() { stop_workers(); }

  int size() const { return size_.load(std::memory_order_relaxed); }
  int live() const { return live_.load(std::memory_order_relaxed); }
  int spin_us() const { return spin_us_.load(std::memory_order_relaxed); }
  void set_spin_us(int us) { spin_us_.store(std::max(0, us), std::memory_order_relaxed); }

  void resize(int n) {
    // From inside a job (a Python signal handler run between tiles) the job lock is ours.
    if (t_in_job)
      throw std::runtime_error("set_num_threads: cannot resize the pool from inside a parallel "
                               "kernel (for example from a signal handler)");
    std::lock_guard<std::mutex> job(job_mutex_);
    if (n == size()) return;
    stop_workers();
    size_.store(n, std::memory_order_relaxed);
  }

  // Runs task over [0, ntasks) as up to kMaxChunks chunks; see parallel_tasks.
  void run(pool_index_t ntasks, const std::function<void(pool_index_t)>& task) {
    if (ntasks <= 0) return;
    const int n = size();
    if (ntasks == 1 || n == 1 || t_in_job) {
      for (pool_index_t t = 0; t < ntasks; ++t) task(t);
      return;
    }
    std::unique_lock<std::mutex> job(job_mutex_);
    run_locked(job, ntasks, task);
  }

  // As run, with at most one task per thread, but only if the pool is free now (no other
  // caller's job, no resize) and has a thread per task; false (nothing run) otherwise.
  bool try_run_concurrent(int ntasks, const std::function<void(pool_index_t)>& task) {
    if (t_in_job || ntasks > size()) return false;
    std::unique_lock<std::mutex> job(job_mutex_, std::try_to_lock);
    // A worker still finishing a tile whose job's caller has returned (it was stolen) cannot
    // join before it is done, and these tasks wait on each other: go to extra threads.
    if (!job.owns_lock() || ntasks > size() - late_workers_.load(std::memory_order_acquire))
      return false;
    run_locked(job, ntasks, task, /*caller_last=*/true);
    return true;
  }

  // See ag::run_tiles.
  void run_tiles(const std::shared_ptr<TileJob>& job) {
    const std::int64_t ntiles = job->tiles();
    if (ntiles <= 0) return;
    if (ntiles == 1 || size() == 1 || t_in_job) {
      for (std::int64_t t = 0; t < ntiles; ++t) {
        job->compute_in_place(t);
        interruption_point();
      }
      return;
    }
    std::unique_lock<std::mutex> lock(job_mutex_);
    ensure_workers();
    t_in_job = true;
    const std::uint32_t epoch = ((++epoch_counter_) & ~kTileJobBit) | kTileJobBit;
    {
      std::lock_guard<std::mutex> lk(tile_job_mutex_);
      tile_job_ = job;
      tile_job_epoch_ = epoch;
    }
    const std::uint64_t tickets =
        static_cast<std::uint64_t>(std::min<std::int64_t>(size() - 1, ntiles));
    state_.store(pack(epoch, tickets, 0), std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lk(sleep_mutex_); }
      work_cv_.notify_all();
    }
    std::exception_ptr err;
    try {
      caller_tiles(*job);
    } catch (...) {
      err = std::current_exception();
      abandon(*job);
    }
    {
      // Workers that take a ticket from now on find no job (they never touch this one).
      std::lock_guard<std::mutex> lk(tile_job_mutex_);
      tile_job_.reset();
      tile_job_epoch_ = 0;
    }
    t_in_job = false;
    lock.unlock();
    if (err) std::rethrow_exception(err);
    if (job->state().inside.load(std::memory_order_seq_cst) > 0) t_late.push_back(job);
  }

 private:
  // caller_last: the caller takes a task only once the workers have claimed all but one.
  // OpenBLAS's jobs spin-wait on each other; if the caller started first and its spin held
  // the only free core, the woken worker would wait a whole scheduler tick to run.
  void run_locked(std::unique_lock<std::mutex>& job, pool_index_t ntasks,
                  const std::function<void(pool_index_t)>& task, bool caller_last = false) {
    ensure_workers();
    t_in_job = true;
    const std::uint64_t chunks = std::min<std::uint64_t>(ntasks, kMaxChunks);
    task_ = &task;
    ntasks_ = ntasks;
    nchunks_ = static_cast<pool_index_t>(chunks);
    done_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    failed_.store(false, std::memory_order_relaxed);
    const std::uint32_t epoch = (++epoch_counter_) & ~kTileJobBit;
    state_.store(pack(epoch, chunks, 0), std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lk(sleep_mutex_); }
      work_cv_.notify_all();
    }
    if (caller_last) wait_claimed(epoch, chunks - 1);
    claim_and_run(epoch);
    wait_done(chunks);
    t_in_job = false;
    std::exception_ptr err = error_;
    error_ = nullptr;
    job.unlock();
    if (err) std::rethrow_exception(err);
  }

 public:

  // After fork() only the forking thread exists in the child: forget the workers (their
  // handles are leaked on purpose; joining them would wait forever) and reset the locks.
  void after_fork_in_child() {
    workers_.release_all();
    live_.store(0);
    sleepers_.store(0);
    stop_.store(false);
    caller_waiting_.store(false);
    new (&job_mutex_) std::mutex();
    new (&sleep_mutex_) std::mutex();
    // The parent's tile job is abandoned (its workers do not exist here); leaked on purpose,
    // its mutex may have been held by one of them.
    new (&tile_job_mutex_) std::mutex();
    new (&tile_job_) std::shared_ptr<TileJob>();
    tile_job_epoch_ = 0;
    late_workers_.store(0);
    new (&t_late) std::vector<std::shared_ptr<TileJob>>();
    new (&work_cv_) std::condition_variable();
    new (&done_cv_) std::condition_variable();
    t_in_job = false;
  }

 private:
  struct Workers {
    std::vector<std::thread*> threads;
    void release_all() { threads.clear(); }
  };

  void ensure_workers() {
    const int want = size() - 1;
    while (static_cast<int>(workers_.threads.size()) < want) {
      // A worker must not take the job being published as already seen: it starts from the
      // epoch before it.
      const std::uint32_t seen = epoch_of(state_.load());
      workers_.threads.push_back(new std::thread([this, seen] { worker_main(seen); }));
      live_.fetch_add(1);
    }
  }

  void stop_workers() {
    if (workers_.threads.empty()) return;
    {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      stop_.store(true, std::memory_order_seq_cst);
    }
    work_cv_.notify_all();
    for (std::thread* t : workers_.threads) {
      t->join();
      delete t;
    }
    workers_.threads.clear();
    live_.store(0);
    stop_.store(false);
  }

  void worker_main(std::uint32_t seen) {
    pthread_setname_np(pthread_self(), "autograd-pool");  // visible in top -H and /proc
    t_in_job = true;  // a task never starts a nested job from a worker
    for (;;) {
      if (!wait_for_job(seen)) return;
      seen = epoch_of(state_.load(std::memory_order_acquire));
      claim_and_run(seen);
    }
  }

  // Spin for spin_us, then block until a job newer than `seen` is published; false on stop.
  bool wait_for_job(std::uint32_t seen) {
    // seq_cst: pairs with the caller's store of state_ and load of sleepers_ (no lost wake-up).
    auto fresh = [&] { return epoch_of(state_.load(std::memory_order_seq_cst)) != seen; };
    const int us = spin_us();
    if (us > 0) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
      for (int i = 0;; ++i) {
        if (stop_.load(std::memory_order_relaxed)) return false;
        if (fresh()) return true;
        AG_PAUSE();
        if ((i & 255) == 255 && std::chrono::steady_clock::now() >= until) break;
      }
    }
    std::unique_lock<std::mutex> lk(sleep_mutex_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    work_cv_.wait(lk, [&] { return stop_.load(std::memory_order_seq_cst) || fresh(); });
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    return !stop_.load();
  }

  // The caller's part of a tile job: claim and compute tiles in place, copying the workers'
  // handed-over results in between; once none is left to claim, copy or steal the rest.
  void caller_tiles(TileJob& job) {
    TileJob::State& st = job.state();
    const std::int64_t ntiles = job.tiles();
    double ns_per_cost = 0.0;  // the caller's best time per unit of cost in this job
    std::int64_t lo = 0;       // tiles below lo are in place
    // Copies every handed-over tile in [lo, upto) into place; true if some are still held.
    auto collect = [&](std::int64_t upto, bool steal) {
      bool held = false;
      for (std::int64_t t = lo; t < upto; ++t) {
        std::uint8_t s = st.tile[t].load(std::memory_order_acquire);
        if (s == kReady) {
          job.commit(t, st.scratch[t].p);
          scratch_put(st.scratch[t]);
          st.scratch[t] = Scratch{};
          st.tile[t].store(kCopied, std::memory_order_relaxed);
        } else if (s == kHeld) {
          if (steal && overdue(job, t, ns_per_cost) &&
              st.tile[t].compare_exchange_strong(s, kStealing, std::memory_order_acq_rel)) {
            job.compute_in_place(t);
            st.tile[t].store(kStolen, std::memory_order_release);
            g_tiles_stolen.fetch_add(1, std::memory_order_relaxed);
          } else {
            held = true;  // (a failed exchange: handed over just now, copied on the next pass)
          }
        }
        if (!held) lo = t + 1;  // everything below t + 1 is in place
      }
      return held;
    };
    for (;;) {
      collect(std::min(st.next.load(std::memory_order_acquire), ntiles), false);
      const std::int64_t t = st.next.fetch_add(1, std::memory_order_acq_rel);
      if (t >= ntiles) break;
      const std::int64_t t0 = now_ns();
      job.compute_in_place(t);
      const double c = job.cost(t);
      if (c > 0) {
        const double rate = static_cast<double>(now_ns() - t0) / c;
        if (ns_per_cost == 0.0 || rate < ns_per_cost) ns_per_cost = rate;
      }
      st.tile[t].store(kMine, std::memory_order_relaxed);
      interruption_point();
    }
    // The expected time of a worker's tile: the caller's best rate in this job, or the previous
    // job's if that was better (a loop repeats one shape; with 2 tiles the caller times only
    // one, and an interrupt during it would stretch the grace). A better rate from another
    // shape can only make a steal earlier (a steal the worker would have made unnecessary
    // costs the caller one tile's time, never a wrong result).
    const double before = g_ns_per_cost.load(std::memory_order_relaxed);
    if (ns_per_cost > 0.0) g_ns_per_cost.store(ns_per_cost, std::memory_order_relaxed);
    if (before > 0.0 && (ns_per_cost == 0.0 || before < ns_per_cost)) ns_per_cost = before;
    while (collect(ntiles, true))
      for (int i = 0; i < 32; ++i) AG_PAUSE();  // (a pass may read a worker's CPU clock)
  }

  // Whether the worker holding tile t is late, so that the caller should recompute it. With
  // T the caller's own time for that much work (at least 10 us):
  // * not before 1.5 T since the worker claimed the tile: a worker that is merely a little
  //   slower (a colder cache, an interrupt) finishes within it;
  // * after that, once the worker's CPU clock has not advanced for T: it is off its core
  //   (preempted or asleep) and may stay off for a whole scheduler slice (3-4 ms). Waiting as
  //   long as the recomputation would take, then stealing, costs at most twice the best
  //   choice made knowing when it comes back. A worker that is running, only slowly (sharing
  //   its core), is left to hand its result over;
  // * in any case after 2.5 T: a worker that ran on and off (sharing its core) for that long is
  //   slower than the caller redoing its tile. A 2-tile product (the caller's median is about
  //   T) then takes at most about 3.5 T, never a scheduler slice.
  static bool overdue(TileJob& job, std::int64_t t, double ns_per_cost) {
    constexpr double kGraceFactor = 1.5, kGiveUpFactor = 2.5;
    constexpr double kMinTileNs = 10000;
    TileJob::State& st = job.state();
    const std::int64_t now = now_ns();
    std::int64_t start = st.start_ns[t].load(std::memory_order_acquire);
    if (start == 0) {
      // The worker has not said when it claimed the tile: count from now.
      std::int64_t zero = 0;
      st.start_ns[t].compare_exchange_strong(zero, now, std::memory_order_relaxed);
      return false;
    }
    const double expected = std::max(ns_per_cost * job.cost(t), kMinTileNs);
    if (now - start <= static_cast<std::int64_t>(kGraceFactor * expected)) return false;
    if (now - start > static_cast<std::int64_t>(kGiveUpFactor * expected)) return true;
    const std::int64_t clock = st.cpu_clock[t].load(std::memory_order_relaxed);
    timespec ts;
    if (clock == kNoClock || clock_gettime(static_cast<clockid_t>(clock), &ts) != 0) return true;
    const std::int64_t cpu = std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
    if (st.progress_at[t] == 0 || cpu != st.progress_cpu[t]) {
      st.progress_at[t] = now, st.progress_cpu[t] = cpu;  // running (or first look)
      return false;
    }
    return now - st.progress_at[t] > static_cast<std::int64_t>(expected);
  }

  // After an exception on the caller: no tile is claimed any more, and every worker still in
  // the job is waited for (it writes only its scratch, but reads the operands, which the caller's
  // binding frees once the exception has propagated).
  void abandon(TileJob& job) {
    TileJob::State& st = job.state();
    st.next.store(job.tiles(), std::memory_order_seq_cst);
    for (int i = 0; st.inside.load(std::memory_order_seq_cst) > 0; ++i) {
      if (i < 4096) {
        AG_PAUSE();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }

  // A worker's part of the tile job published as `epoch` (its ticket already taken).
  void join_tile_job(std::uint32_t epoch) {
    std::shared_ptr<TileJob> job;
    {
      std::lock_guard<std::mutex> lk(tile_job_mutex_);
      if (tile_job_epoch_ == epoch) job = tile_job_;
    }
    if (!job) return;  // the caller has finished it already
    late_workers_.fetch_add(1, std::memory_order_acq_rel);
    work_tiles(*job);
    late_workers_.fetch_sub(1, std::memory_order_acq_rel);
  }

  // Claims chunks of the job `epoch` until none is left.
  void claim_and_run(std::uint32_t epoch) {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      if (epoch_of(s) != epoch || next_of(s) >= chunks_of(s)) return;
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
      if (epoch & kTileJobBit) {
        // A ticket, not a chunk: the tile job decides its own completion (a worker finishing
        // late must not count towards a later job's done_).
        join_tile_job(epoch);
        s = state_.load(std::memory_order_acquire);
        continue;
      }
      const pool_index_t chunk = static_cast<pool_index_t>(next_of(s));
      const pool_index_t chunks = static_cast<pool_index_t>(chunks_of(s));
      // The job cannot finish while this chunk is unfinished, so its fields stay valid.
      if (!failed_.load(std::memory_order_relaxed)) {
        const pool_index_t lo = ntasks_ * chunk / chunks, hi = ntasks_ * (chunk + 1) / chunks;
        try {
          for (pool_index_t t = lo; t < hi; ++t) (*task_)(t);
        } catch (...) {
          std::lock_guard<std::mutex> lk(sleep_mutex_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true);
        }
      }
      if (done_.fetch_add(1, std::memory_order_seq_cst) + 1 == chunks &&
          caller_waiting_.load(std::memory_order_seq_cst)) {
        { std::lock_guard<std::mutex> lk(sleep_mutex_); }
        done_cv_.notify_all();
      }
      s = state_.load(std::memory_order_acquire);
    }
  }

  // Until `want` chunks of the job are claimed: a short spin, then yielding the core (the
  // workers that must claim them may be waiting for it).
  void wait_claimed(std::uint32_t epoch, std::uint64_t want) {
    for (int i = 0;; ++i) {
      const std::uint64_t s = state_.load(std::memory_order_acquire);
      if (epoch_of(s) != epoch || next_of(s) >= want) return;
      if (i < 2048) {
        AG_PAUSE();
      } else {
        sched_yield();
      }
    }
  }

  // The caller waits for the chunks that workers still hold: a short spin, then blocks.
  void wait_done(std::uint64_t chunks) {
    const pool_index_t want = static_cast<pool_index_t>(chunks);
    for (int i = 0; i < 4096; ++i) {
      if (done_.load(std::memory_order_acquire) == want) return;
      AG_PAUSE();
    }
    std::unique_lock<std::mutex> lk(sleep_mutex_);
    caller_waiting_.store(true, std::memory_order_seq_cst);
    done_cv_.wait(lk, [&] { return done_.load(std::memory_order_seq_cst) == want; });
    caller_waiting_.store(false, std::memory_order_seq_cst);
  }

  std::atomic<int> size_;
  std::atomic<int> live_{0};
  std::atomic<int> spin_us_{50};  // see the README (Threads): 0-50 beat 200-1000 under load
  std::mutex job_mutex_;    // one job at a time; held by the caller while its job runs
  std::mutex sleep_mutex_;  // guards the blocking waits (workers for jobs, caller for done)
  std::condition_variable work_cv_, done_cv_;
  std::atomic<std::uint64_t> state_{0};
  std::uint32_t epoch_counter_ = 0;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_waiting_{false};
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::atomic<pool_index_t> done_{0};
  // The tile job being run (run_tiles), handed to workers by shared_ptr under this mutex.
  std::mutex tile_job_mutex_;
  std::shared_ptr<TileJob> tile_job_;
  std::uint32_t tile_job_epoch_ = 0;
  // Workers inside a tile job. Counted as busy by try_run_concurrent: outside a job (the caller
  // holds job_mutex_) these are workers finishing a tile that was stolen from them.
  std::atomic<int> late_workers_{0};
  const std::function<void(pool_index_t)>* task_ = nullptr;
  pool_index_t ntasks_ = 0, nchunks_ = 0;
  std::exception_ptr error_;
  Workers workers_;
};

Pool& pool() {
  // Never destroyed: workers blocked at exit are left to the OS rather than joined from a
  // static destructor that may run after the interpreter (or OpenBLAS) has been torn down.
  static Pool* p = [] {
    Pool* created = new Pool();
    pthread_atfork(nullptr, nullptr, [] { pool().after_fork_in_child(); });
    return created;
  }();
  return *p;
}

void apply_blas_threads() {
  // Tiles: OpenBLAS must never start threads of its own; callback: it partitions for the pool.
  scipy_openblas_set_num_threads(blas_mode() == BlasMode::Tiles ? 1 : get_num_threads());
}

// The numjobs jobs of one OpenBLAS parallel section, as its threads callback hands them over.
// They must run at the same time: they wait on each other.
struct BlasJobs {
  openblas_dojob_callback dojob;
  char* base;
  size_t elsize;
  int data;
  void operator()(int i) const { dojob(i, base + static_cast<size_t>(i) * elsize, data); }
};

// Job 0 on the caller, every other job on a short-lived thread of its own: correct, not fast.
void run_on_extra_threads(int numjobs, const BlasJobs& job) {
  std::vector<std::thread> extra;
  for (int i = 1; i < numjobs; ++i) extra.emplace_back(job, i);
  job(0);
  for (std::thread& t : extra) t.join();
}

void pool_blas_callback(int /*sync*/, openblas_dojob_callback dojob, int numjobs,
                        size_t jobdata_elsize, void* jobdata, int dojob_data) {
  const BlasJobs job{dojob, static_cast<char*>(jobdata), jobdata_elsize, dojob_data};
  if (numjobs <= 1) {
    if (numjobs == 1) job(0);
    return;
  }
  if (t_in_job || numjobs > get_num_threads()) {
    // Only when someone raised OpenBLAS's thread count behind our back (e.g. a threadpoolctl
    // limit on libscipy_openblas) while a pool job calls BLAS.
    run_on_extra_threads(numjobs, job);
    return;
  }
  concurrent_tasks(numjobs, job);
}

// ---- a foreign OpenBLAS (NumPy's) routed onto the pool ----------------------------------------

using set_callback_fn = void (*)(openblas_threads_callback);
using get_config_fn = char* (*)();
using set_threads_fn = void (*)(int);
using get_threads_fn = int (*)();

std::mutex g_foreign_mutex;  // guards the g_foreign* state
ForeignBlas g_foreign;
set_callback_fn g_foreign_setter = nullptr;
set_threads_fn g_foreign_set_threads = nullptr;
int g_foreign_cap = 0;  // its thread count when routed (OPENBLAS_NUM_THREADS or its CPUs)
std::atomic<std::int64_t> g_foreign_on_pool{0}, g_foreign_on_extra{0};
std::mutex g_foreign_sections;

// Runs one parallel section of the foreign OpenBLAS. Its jobs wait on each other, so each needs
// a thread of its own at the same time. One section at a time: in callback mode the library
// gives job i the buffer of its thread i whoever calls, so two overlapping sections (two Python
// threads calling NumPy) would share buffers; its own server never does that. Never waits for
// the pool: the caller may hold the GIL (NumPy releases it around BLAS, but not every caller
// does) while our pool's job is waiting for the GIL to check signals; when the pool is busy or
// smaller than the section, the jobs run on short-lived extra threads instead (correct, slower).
void foreign_blas_callback(int /*sync*/, openblas_dojob_callback dojob, int numjobs,
                           size_t jobdata_elsize, void* jobdata, int dojob_data) {
  const BlasJobs job{dojob, static_cast<char*>(jobdata), jobdata_elsize, dojob_data};
  if (numjobs <= 1) {
    if (numjobs == 1) job(0);
    return;
  }
  std::lock_guard<std::mutex> one_at_a_time(g_foreign_sections);
  if (pool().try_run_concurrent(numjobs, [&](pool_index_t t) { job(static_cast<int>(t)); })) {
    g_foreign_on_pool.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  g_foreign_on_extra.fetch_add(1, std::memory_order_relaxed);
  run_on_extra_threads(numjobs, job);
}

// "OpenBLAS 0.3.31.188.0 DYNAMIC_ARCH ..." -> {0, 3, 31}; {0, 0, 0} when unreadable.
std::vector<int> parse_version(const std::string& config, std::string* text) {
  std::vector<int> v = {0, 0, 0};
  const std::string tag = "OpenBLAS ";
  const size_t at = config.find(tag);
  if (at == std::string::npos) return v;
  const size_t from = at + tag.size();
  const size_t end = config.find(' ', from);
  *text = config.substr(from, end == std::string::npos ? std::string::npos : end - from);
  int a = 0, b = 0, c = 0;
  if (std::sscanf(text->c_str(), "%d.%d.%d", &a, &b, &c) == 3) v = {a, b, c};
  return v;
}

}  // namespace

ForeignBlas route_foreign_blas(const std::string& path, bool on) {
  std::lock_guard<std::mutex> lk(g_foreign_mutex);
  if (!on) {
    if (g_foreign.routed && (path.empty() || path == g_foreign.path)) {
      {
        // No section of it may be running on the pool while the callback goes away.
        std::lock_guard<std::mutex> sections(g_foreign_sections);
        g_foreign_setter(nullptr);
      }
      g_foreign_set_threads(g_foreign_cap);  // its own threads again, as many as before
      g_foreign.routed = false;
      g_foreign.reason = "unrouted on request (its own threads run its parallel sections)";
    }
    return g_foreign;
  }
  ForeignBlas out;
  out.path = path;
  if (g_foreign.routed) {
    if (g_foreign.path == path) return g_foreign;
    out.reason = "another library is routed already: " + g_foreign.path;
    return out;
  }
  // RTLD_NOLOAD: only a library the process has loaded already; the handle is kept (never
  // closed) so the library cannot be unloaded while it holds a pointer into this module.
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) {
    out.reason = "not loaded in this process";
    g_foreign = out;
    return out;
  }
  set_callback_fn setter = nullptr;
  get_config_fn config = nullptr;
  set_threads_fn set_threads = nullptr;
  get_threads_fn get_threads = nullptr;
  for (const char* prefix : {"scipy_", ""}) {
    for (const char* suffix : {"64_", "_64", ""}) {
      const std::string p = prefix, x = suffix;
      if (set_threads == nullptr)
        set_threads = reinterpret_cast<set_threads_fn>(
            dlsym(h, (p + "openblas_set_num_threads" + x).c_str()));
      if (get_threads == nullptr)
        get_threads = reinterpret_cast<get_threads_fn>(
            dlsym(h, (p + "openblas_get_num_threads" + x).c_str()));
      if (setter == nullptr) {
        setter = reinterpret_cast<set_callback_fn>(
            dlsym(h, (p + "openblas_set_threads_callback_function" + x).c_str()));
        if (setter != nullptr) out.setter = p + "openblas_set_threads_callback_function" + x;
      }
      if (config == nullptr)
        config = reinterpret_cast<get_config_fn>(dlsym(h, (p + "openblas_get_config" + x).c_str()));
    }
  }
  if (config != nullptr) parse_version(config(), &out.version);
  if (setter == nullptr || config == nullptr || set_threads == nullptr ||
      get_threads == nullptr) {
    out.reason = (out.version.empty() ? std::string("not an OpenBLAS with")
                                      : "OpenBLAS " + out.version + " has no") +
                 " openblas_set_threads_callback_function (routing needs >= 0.3.29)";
  } else if (reinterpret_cast<void*>(setter) ==
             reinterpret_cast<void*>(&scipy_openblas_set_threads_callback_function)) {
    out.reason = "it is the engine's own BLAS";
  } else {
    const std::vector<int> v = parse_version(config(), &out.version);
    if (v < std::vector<int>{0, 3, 29}) {
      out.reason = "OpenBLAS " + (out.version.empty() ? std::string("of unknown version")
                                                      : out.version) +
                   " is older than 0.3.29 (its callback mode may run a job without a buffer)";
    } else {
      setter(&foreign_blas_callback);
      g_foreign_setter = setter;
      g_foreign_set_threads = set_threads;
      g_foreign_cap = std::max(1, get_threads());
      // Its sections now run on our pool, so they are cut for our pool's size (a section with
      // more jobs than pool threads would need extra threads, which start late under load).
      set_threads(std::min(g_foreign_cap, get_num_threads()));
      out.routed = true;
    }
  }
  g_foreign = out;
  return out;
}

// A routed foreign BLAS follows the pool's size (never above its own count when routed).
static void sync_foreign_threads(int n) {
  std::lock_guard<std::mutex> lk(g_foreign_mutex);
  if (g_foreign.routed) g_foreign_set_threads(std::min(g_foreign_cap, n));
}

ForeignBlas foreign_blas() {
  std::lock_guard<std::mutex> lk(g_foreign_mutex);
  return g_foreign;
}
std::int64_t foreign_sections_on_pool() { return g_foreign_on_pool.load(); }
std::int64_t foreign_sections_on_extra_threads() { return g_foreign_on_extra.load(); }

int max_threads() {
  static const int n = affinity_cpus();  // the CPUs at import; the range set_num_threads takes
  return n;
}

void set_num_threads(int n) {
  const int hi = max_threads();
  if (n < 1 || n > hi)
    throw std::invalid_argument("set_num_threads: n must be between 1 and " + std::to_string(hi) +
                                " (the CPUs this process may run on), got " + std::to_string(n));
  pool().resize(n);
  apply_blas_threads();
  sync_foreign_threads(n);
}

int get_num_threads() { return pool().size(); }
int live_workers() { return pool().live(); }
void set_spin_us(int us) { pool().set_spin_us(us); }
int get_spin_us() { return pool().spin_us(); }

void set_threshold(Family f, std::int64_t n) {
  const std::int64_t lo = f == Family::GemmTile ? 1 << 16 : 0;
  g_threshold[static_cast<int>(f)].store(std::max<std::int64_t>(lo, n), std::memory_order_relaxed);
}
std::int64_t threshold(Family f) {
  return g_threshold[static_cast<int>(f)].load(std::memory_order_relaxed);
}

void parallel_tasks(pool_index_t ntasks, const std::function<void(pool_index_t)>& task) {
  pool().run(ntasks, task);
}

void run_tiles(const std::shared_ptr<TileJob>& job) { pool().run_tiles(job); }

void set_release_hook(ReleaseHook hook) { g_release_hook.store(hook); }

bool late_workers_pending() { return !t_late.empty(); }

bool hold_for_late_workers(std::vector<void*>& objects) {
  auto keep = std::make_shared<Keep>();
  bool held = false;
  for (const std::shared_ptr<TileJob>& job : t_late) {
    TileJob::State& st = job->state();
    std::lock_guard<std::mutex> lk(st.m);
    if (st.inside.load(std::memory_order_seq_cst) == 0) continue;  // gone: nothing to hold
    if (!held) keep->objects.swap(objects), held = true;
    st.keep.push_back(keep);
  }
  t_late.clear();
  // If a job took it, the last of them releases it; if none did, `objects` is the caller's
  // again and `keep` dies empty here.
  return held;
}

std::int64_t tiles_stolen() { return g_tiles_stolen.load(); }
std::int64_t steals_worker_finished_first() { return g_steals_late.load(); }
void set_tile_worker_delay_us(int us) { g_tile_delay_us.store(std::max(0, us)); }

void concurrent_tasks(int ntasks, const std::function<void(int)>& task) {
  if (ntasks > get_num_threads())
    throw std::logic_error("concurrent_tasks: more tasks than pool threads");
  if (ntasks > 1 && t_in_job)
    throw std::logic_error("concurrent_tasks: called from inside a pool job");
  pool().run(ntasks, [&](pool_index_t t) { task(static_cast<int>(t)); });
}

void set_interrupt_hook(InterruptHook hook) { g_interrupt_hook.store(hook); }

void interruption_point() {
  const InterruptHook hook = g_interrupt_hook.load(std::memory_order_relaxed);
  if (hook != nullptr && hook()) throw Interrupted();
}

void set_blas_mode(BlasMode mode) {
  g_blas_mode.store(static_cast<int>(mode));
  apply_blas_threads();
}

BlasMode blas_mode() { return static_cast<BlasMode>(g_blas_mode.load(std::memory_order_relaxed)); }

void init_threads() {
  scipy_openblas_set_threads_callback_function(pool_blas_callback);
  pool();
  // A fork while another thread ran a NumPy section would leave these locked in the child,
  // whose only thread would then wait forever on its first NumPy product.
  pthread_atfork(nullptr, nullptr, [] {
    new (&g_foreign_mutex) std::mutex();
    new (&g_foreign_sections) std::mutex();
    new (&g_scratch_mutex) std::mutex();  // a worker of the parent may have held it
  });
  apply_blas_threads();
}

}  // namespace ag
