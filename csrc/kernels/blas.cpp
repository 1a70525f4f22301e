#include "kernels/blas.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <thread>

#include <cblas.h>

#include "kernels/threads.h"

namespace ag {
namespace {

inline CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }

inline void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k,
                      float alpha, const float* a, blasint lda, const float* b, blasint ldb,
                      float beta, float* c, blasint ldc) {
  scipy_cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

inline void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k,
                      double alpha, const double* a, blasint lda, const double* b, blasint ldb,
                      double beta, double* c, blasint ldc) {
  scipy_cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Rows and columns of a tile are multiples of this (OpenBLAS's sgemm/dgemm micro-kernels work
// on blocks of 4 to 16 rows or columns; a tile edge inside a block would run the edge kernels).
constexpr index_t kTileAlign = 16;

template <class T>
void gemm_one(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
              index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  // BLAS requires leading dimensions >= 1 even for empty operands.
  gemm_call(flag(trans_a), flag(trans_b), static_cast<blasint>(m), static_cast<blasint>(n),
            static_cast<blasint>(k), alpha, a, static_cast<blasint>(std::max<index_t>(lda, 1)), b,
            static_cast<blasint>(std::max<index_t>(ldb, 1)), beta, c,
            static_cast<blasint>(std::max<index_t>(ldc, 1)));
}

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// The tiles of one product as a stealable job (threads.h): tile t is rows [i0, i0 + tm) and
// columns [j0, j0 + tn) of C, one single-threaded OpenBLAS call whoever computes it, so a tile
// gives the same bits in place or in a worker's scratch. Holds copies of every parameter (a
// worker may still run after gemm returned); the operands' owners are kept alive by the
// binding (late_workers_pending).
template <class T>
class GemmTiles final : public TileJob {
 public:
  GemmTiles(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
            index_t lda, const T* b, index_t ldb, T* c, index_t ldc, index_t tm, index_t tn)
      : TileJob(ceil_div(m, tm) * ceil_div(n, tn)), ta_(trans_a), tb_(trans_b), m_(m), n_(n),
        k_(k), alpha_(alpha), a_(a), lda_(lda), b_(b), ldb_(ldb), c_(c), ldc_(ldc), tm_(tm),
        tn_(tn), gn_(ceil_div(n, tn)) {}

  void compute_in_place(std::int64_t t) override {
    const Box x = box(t);
    run(x, c_ + x.i0 * ldc_ + x.j0, ldc_);
  }
  std::size_t scratch_bytes(std::int64_t t) const override {
    const Box x = box(t);
    return static_cast<std::size_t>(x.mi * x.nj) * sizeof(T);
  }
  void compute_into(std::int64_t t, void* scratch) override {
    const Box x = box(t);
    run(x, static_cast<T*>(scratch), x.nj);
  }
  void commit(std::int64_t t, const void* scratch) override {
    const Box x = box(t);
    const T* from = static_cast<const T*>(scratch);
    for (index_t i = 0; i < x.mi; ++i)
      std::copy(from + i * x.nj, from + (i + 1) * x.nj, c_ + (x.i0 + i) * ldc_ + x.j0);
  }
  double cost(std::int64_t t) const override {
    const Box x = box(t);
    return static_cast<double>(x.mi) * static_cast<double>(x.nj) * static_cast<double>(k_);
  }

 private:
  struct Box {
    index_t i0, j0, mi, nj;
  };
  Box box(std::int64_t t) const {
    const index_t i0 = (t / gn_) * tm_, j0 = (t % gn_) * tn_;
    return {i0, j0, std::min(tm_, m_ - i0), std::min(tn_, n_ - j0)};
  }
  void run(const Box& x, T* out, index_t ldo) const {
    // Row block i0 of op(a): a is (m, k) row-major, or (k, m) when transposed.
    const T* at = ta_ ? a_ + x.i0 : a_ + x.i0 * lda_;
    // Column block j0 of op(b): b is (k, n), or (n, k) when transposed.
    const T* bt = tb_ ? b_ + x.j0 * ldb_ : b_ + x.j0;
    gemm_one<T>(ta_, tb_, x.mi, x.nj, k_, alpha_, at, lda_, bt, ldb_, T(0), out, ldo);
  }

  const bool ta_, tb_;
  const index_t m_, n_, k_;
  const T alpha_;
  const T* const a_;
  const index_t lda_;
  const T* const b_;
  const index_t ldb_;
  T* const c_;
  const index_t ldc_, tm_, tn_, gn_;
};

// A worker's tile is computed into scratch and copied; above this size (a product with a very
// short k, whose tiles are wide and cheap per element) the plain pool job is used instead, so
// scratch never holds more than this per tile. Such a tile takes milliseconds anyway.
constexpr std::size_t kMaxStealableTileBytes = std::size_t{8} << 20;

// Splits `len` into about `parts` pieces whose size is a multiple of kTileAlign.
index_t piece(index_t len, index_t parts) {
  const index_t p = ceil_div(ceil_div(len, std::max<index_t>(parts, 1)), kTileAlign) * kTileAlign;
  return std::min(len, std::max<index_t>(p, kTileAlign));
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    // BLAS quick-return rules for k == 0 differ between implementations; do it here.
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  // The largest tile: 2^31 multiply-adds by default, about 20 ms on one core of the project
  // machine when it is quiet. Small enough that a pending Ctrl-C is seen within 0.2 s (the caller
  // checks between its tiles), large enough that re-packing the operands per tile costs a few
  // percent at 4096 (2^30 cost ~6-15% there, measured with benchmarks/bench_threads.py
  // --tile-work under load; the loss shrinks as the tile's side grows).
  const double tile_work = static_cast<double>(threshold(Family::GemmTile));
  const index_t nt = get_num_threads();
  const bool tiles_mode = blas_mode() == BlasMode::Tiles;
  // threadpoolctl limits every BLAS it finds, libscipy_openblas included; in tiles mode ours
  // must stay single-threaded (the pool is limited through its own controller instead).
  if (tiles_mode && scipy_openblas_get_num_threads() != 1) scipy_openblas_set_num_threads(1);
  // One call: small products (on the calling thread; in callback mode OpenBLAS may still use the
  // pool), and anything short enough to need no interruption point when one thread does it all.
  const bool big = tiles_mode && work > static_cast<double>(threshold(Family::Gemm));
  if (!big && work <= tile_work) {
    gemm_one<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Tiles of C: at least one per CPU (dynamic claiming, so a descheduled worker delays only its
  // own tile), at most tile_work each; as square as the aspect of C allows. OpenBLAS rounds a
  // tile's elements slightly differently from a whole product's, so the tiling depends on the
  // shape and the machine only, never on the thread setting: 1 thread or all of them give the
  // same numbers to the bit.
  const index_t want = std::max<index_t>(big ? max_threads() : 1,
                                         static_cast<index_t>(std::ceil(work / tile_work)));
  index_t gm, gn;
  if (m >= n) {
    gn = std::max<index_t>(1, std::min<index_t>(want, static_cast<index_t>(std::lround(
                                                          std::sqrt(double(want) * n / m)))));
    gm = ceil_div(want, gn);
  } else {
    gm = std::max<index_t>(1, std::min<index_t>(want, static_cast<index_t>(std::lround(
                                                          std::sqrt(double(want) * m / n)))));
    gn = ceil_div(want, gm);
  }
  const index_t tm = piece(m, gm), tn = piece(n, gn);
  gm = ceil_div(m, tm);
  gn = ceil_div(n, tn);
  if (tiles_mode && nt > 1 && beta == T(0) &&
      static_cast<std::size_t>(tm * tn) * sizeof(T) <= kMaxStealableTileBytes) {
    // Stealable: no call waits for a preempted worker (see run_tiles).
    run_tiles(std::make_shared<GemmTiles<T>>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c,
                                             ldc, tm, tn));
    return;
  }
  // beta != 0 (a worker's scratch would need C's old values, which a thief overwrites) or huge
  // tiles: a plain pool job, which waits for every tile.
  const std::thread::id caller = std::this_thread::get_id();
  auto tile = [&](index_t t) {
    const index_t i0 = (t / gn) * tm, j0 = (t % gn) * tn;
    const index_t mi = std::min(tm, m - i0), nj = std::min(tn, n - j0);
    // Row block i0 of op(a): a is (m, k) row-major, or (k, m) when transposed.
    const T* at = trans_a ? a + i0 : a + i0 * lda;
    // Column block j0 of op(b): b is (k, n), or (n, k) when transposed.
    const T* bt = trans_b ? b + j0 * ldb : b + j0;
    gemm_one<T>(trans_a, trans_b, mi, nj, k, alpha, at, lda, bt, ldb, beta, c + i0 * ldc + j0,
                ldc);
    if (std::this_thread::get_id() == caller) interruption_point();
  };
  if (tiles_mode && nt > 1) {
    parallel_tasks(gm * gn, tile);
  } else {
    for (index_t t = 0; t < gm * gn; ++t) tile(t);  // callback mode: OpenBLAS threads each tile
  }
}

template <class T>
void matmul(const T* a, const T* b, T* c, index_t batch, index_t batch_a, index_t batch_b,
            index_t m, index_t n, index_t k, bool trans_a, bool trans_b) {
  const index_t lda = trans_a ? m : k;
  const index_t ldb = trans_b ? k : n;
  if (batch > 1 && batch_b == 1 && !trans_a && batch * m <= kBlasMaxDim) {
    // (batch, m, k) stacked row-major is one (batch * m, k) matrix.
    gemm<T>(false, trans_b, batch * m, n, k, T(1), a, lda, b, ldb, T(0), c, n);
    return;
  }
  const index_t sa = batch_a == 1 ? 0 : m * k;
  const index_t sb = batch_b == 1 ? 0 : k * n;
  for (index_t i = 0; i < batch; ++i)
    gemm<T>(trans_a, trans_b, m, n, k, T(1), a + i * sa, lda, b + i * sb, ldb, T(0), c + i * m * n,
            n);
}

BlasInfo blas_info() {
  BlasInfo info;
  info.corename = scipy_openblas_get_corename();
  info.config = scipy_openblas_get_config();
  info.num_threads = scipy_openblas_get_num_threads();
  info.num_procs = scipy_openblas_get_num_procs();
  return info;
}

template void gemm<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t,
                          const float*, index_t, float, float*, index_t);
template void gemm<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t);
template void matmul<float>(const float*, const float*, float*, index_t, index_t, index_t, index_t,
                            index_t, index_t, bool, bool);
template void matmul<double>(const double*, const double*, double*, index_t, index_t, index_t,
                             index_t, index_t, index_t, bool, bool);

}  // namespace ag
