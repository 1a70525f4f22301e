#include "kernels/threads.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
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
    {std::int64_t{1} << 17}, {std::int64_t{1} << 14}, {std::int64_t{1} << 21},
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
inline std::uint64_t chunks_of(std::uint64_t s) { return (s >> 16) & 0xffff; }
inline std::uint64_t next_of(std::uint64_t s) { return s & 0xffff; }

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
    ensure_workers();
    t_in_job = true;
    const std::uint64_t chunks = std::min<std::uint64_t>(ntasks, kMaxChunks);
    task_ = &task;
    ntasks_ = ntasks;
    nchunks_ = static_cast<pool_index_t>(chunks);
    done_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    failed_.store(false, std::memory_order_relaxed);
    const std::uint32_t epoch = ++epoch_counter_;
    state_.store(pack(epoch, chunks, 0), std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lk(sleep_mutex_); }
      work_cv_.notify_all();
    }
    claim_and_run(epoch);
    wait_done(chunks);
    t_in_job = false;
    std::exception_ptr err = error_;
    error_ = nullptr;
    job.unlock();
    if (err) std::rethrow_exception(err);
  }

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

  // Claims chunks of the job `epoch` until none is left.
  void claim_and_run(std::uint32_t epoch) {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      if (epoch_of(s) != epoch || next_of(s) >= chunks_of(s)) return;
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
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

// OpenBLAS hands us numjobs jobs that must run at the same time (they wait on each other).
void pool_blas_callback(int /*sync*/, openblas_dojob_callback dojob, int numjobs,
                        size_t jobdata_elsize, void* jobdata, int dojob_data) {
  char* base = static_cast<char*>(jobdata);
  auto job = [=](int i) { dojob(i, base + static_cast<size_t>(i) * jobdata_elsize, dojob_data); };
  if (numjobs <= 1) {
    if (numjobs == 1) job(0);
    return;
  }
  if (t_in_job || numjobs > get_num_threads()) {
    // Only when someone raised OpenBLAS's thread count behind our back (e.g. a threadpoolctl
    // limit on libscipy_openblas) while a pool job calls BLAS: correct, not fast.
    std::vector<std::thread> extra;
    for (int i = 1; i < numjobs; ++i) extra.emplace_back(job, i);
    job(0);
    for (std::thread& t : extra) t.join();
    return;
  }
  concurrent_tasks(numjobs, job);
}

}  // namespace

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
  apply_blas_threads();
}

}  // namespace ag
