"""_C.Plan, the native plan executor (contract: PLAN.md between i10-table and i11-compile).

A plan step and the eager binding of the same kernel run the same C++ (csrc/kernel_table.h), so
a replay must equal the eager native calls bit for bit; binding checks every contract once; a
run allocates nothing and honours Ctrl-C between steps.
"""
from __future__ import annotations

import _thread
import threading
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

native = pytest.importorskip("autograd.backend.native")
_C = native._C

dtypes = st.sampled_from([np.float32, np.float64])


def mlp_plan(n, i, h, o, dtype, act, loss, rng):
    """A 2-layer MLP SGD step recorded as a plan, and the same step as eager _C calls."""
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    x, t = cast(rng.standard_normal((n, i))), cast(rng.random((n, o)))
    w1, b1 = cast(rng.standard_normal((h, i))), cast(rng.standard_normal(h))
    w2, b2 = cast(rng.standard_normal((o, h))), cast(rng.standard_normal(o))
    params = [w1, b1, w2, b2]
    eager = [p.copy() for p in params]
    # eager: the calls the op table makes on the native backend
    h1 = _C.linear(x, eager[0], eager[1], act)
    z = _C.matmul(h1, eager[2], trans_b=True)
    y = _C.sigmoid(_C.add(z, eager[3]))
    lv = getattr(_C, loss)(y, t, "mean")
    g = np.ones((), dtype)
    gy = getattr(_C, loss + "_back")(y, t, g, "mean")
    gz = _C.sigmoid_back(y, gy)
    gb2 = _C.sum_to(gz, (o,))
    gw2 = _C.matmul(gz, h1, trans_a=True)
    gh1 = _C.matmul(gz, eager[2])
    gx, gw1, gb1 = _C.linear_back(x, eager[0], h1, gh1, act, True)
    _C.sgd_step(eager, [gw1, gb1, gw2, gb2], None, 0.05)
    # the plan: one buffer per value
    e = lambda shape: np.empty(shape, dtype)  # noqa: E731
    bufs = [x, t, *params, e((n, h)), e((n, o)), e((n, o)), e((n, o)), e(()), g, e((n, o)),
            e((n, o)), e(o), e((o, h)), e((n, h)), e((n, i)), e((h, i)), e(h)]
    X, T, W1, B1, W2, B2, H1, Z, ZB, Y, L, G, GY, GZ, GB2, GW2, GH1, GX, GW1, GB1 = range(20)
    plan = _C.Plan()
    plan.add("linear", [X, W1, B1], [H1], [act])
    plan.add("matmul", [H1, W2], [Z], [False, True])
    plan.add("add", [Z, B2], [ZB])
    plan.add("sigmoid", [ZB], [Y])
    plan.add(loss, [Y, T], [L], ["mean"])
    plan.add(loss + "_back", [Y, T, G], [GY], ["mean"])
    plan.add("sigmoid_back", [Y, GY], [GZ])
    plan.add("sum_to", [GZ], [GB2], [(o,)])
    plan.add("matmul", [GZ, H1], [GW2], [True, False])
    plan.add("matmul", [GZ, W2], [GH1])
    plan.add("linear_back", [X, W1, H1, GH1], [GX, GW1, GB1], [act, True])
    plan.add("sgd_step", [[W1, B1, W2, B2], [GW1, GB1, GW2, GB2], None], [], [0.0], [(0, 0)])
    plan.bind(bufs)
    return plan, bufs, params, eager, lv


@settings(max_examples=40, deadline=None)
@given(dtype=dtypes, n=st.integers(1, 9), i=st.integers(1, 5), h=st.integers(1, 12),
       o=st.integers(1, 3), act=st.sampled_from([None, "relu", "sigmoid", "tanh"]),
       loss=st.sampled_from(["mse", "bce"]), seed=st.integers(0, 2**16))
def test_replay_equals_eager_bit_for_bit(dtype, n, i, h, o, act, loss, seed):
    plan, bufs, params, eager, lv = mlp_plan(n, i, h, o, dtype, act, loss,
                                             np.random.default_rng(seed))
    plan.run(np.array([0.05]))
    assert bufs[10].tobytes() == lv.tobytes()
    for got, want in zip(params, eager):
        assert got.tobytes() == want.tobytes()


@settings(max_examples=30, deadline=None)
@given(dtype=dtypes, rows=st.integers(1, 6), cols=st.integers(1, 7), seed=st.integers(0, 999),
       step=st.integers(1, 40))
def test_softmax_cross_entropy_adam_replay(dtype, rows, cols, seed, step):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)).astype(dtype)
    tgt = rng.integers(0, cols, rows)
    p, m, v = (rng.random((rows, cols)).astype(dtype) for _ in range(3))
    want = [_C.softmax(x, -1), _C.log_softmax(x, -1), *_C.cross_entropy(x, tgt, "sum")]
    want.append(_C.cross_entropy_back(want[3], tgt, np.ones((), dtype), "sum"))
    pe, me, ve = p.copy(), m.copy(), v.copy()
    _C.adam_step([pe], [want[4]], [me], [ve], step, 1e-2, 0.9, 0.999, 1e-8, 0.01, True)
    bufs = [x, tgt, np.ones((), dtype), p, m, v] + [np.empty_like(a) for a in want]
    plan = _C.Plan()
    plan.add("softmax", [0], [6], [-1])
    plan.add("log_softmax", [0], [7], [-1])
    plan.add("cross_entropy", [0, 1], [8, 9], ["sum"])
    plan.add("cross_entropy_back", [9, 1, 2], [10], ["sum"])
    plan.add("adam_step", [[3], [10], [4], [5]], [], [0, 1e-2, 0.9, 0.999, 1e-8, 0.01, True],
             [(0, 0)])
    plan.bind(bufs)
    plan.run(np.array([float(step)]))
    for got, w in zip(bufs[6:], want):
        assert got.tobytes() == w.tobytes()
    for got, w in zip((p, m, v), (pe, me, ve)):
        assert got.tobytes() == w.tobytes()


def test_plan_kernels_cover_the_small_mlp_and_match_numpy_names():
    names = set(_C.plan_kernels())
    assert {"matmul", "linear", "linear_back", "tanh", "tanh_back", "sigmoid", "sigmoid_back",
            "relu", "relu_back", "add", "sub", "mul", "div", "sum", "sum_to", "mse", "mse_back",
            "bce", "bce_back", "cross_entropy", "cross_entropy_back", "softmax",
            "softmax_back", "log_softmax", "log_softmax_back", "sgd_step",
            "adam_step"} <= names
    from autograd.backend import numpy_kernels
    assert all(hasattr(numpy_kernels, n) for n in names - {"sum_axis"})


def test_errors_name_the_kernel_and_step():
    plan = _C.Plan()
    with pytest.raises(KeyError, match="pow"):
        plan.add("pow", [0, 1], [2])
    with pytest.raises(ValueError, match="mse: plan step takes 2 array slots"):
        plan.add("mse", [0], [1])
    with pytest.raises(ValueError, match="reduction must be"):
        plan.add("mse", [0, 1], [2], ["avg"])
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        plan.add("linear", [0, 1, None], [2], ["gelu"])
    with pytest.raises(ValueError, match="cannot be live"):
        plan.add("sum", [0], [1], [None, False], [(1, 0)])
    with pytest.raises(ValueError, match="outs must be empty"):
        plan.add("sgd_step", [[0], [1], None], [2], [0.1])
    plan.add("tanh", [0], [1])
    plan.add("matmul", [0, 1], [2])
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"plan step 0 \(tanh: .*\(2, 3\).*\(3, 3\)"):
        plan.bind([x, np.empty((3, 3)), np.empty((2, 2))])
    with pytest.raises(ValueError, match=r"plan step 1 \(matmul: inner dimensions"):
        plan.bind([x, np.empty((2, 3)), np.empty((2, 2))])
    with pytest.raises(ValueError, match="C-contiguous"):
        plan.bind([x.T, np.empty((3, 2)), np.empty((2, 2))])
    ro = np.empty((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        plan.bind([x, ro, np.empty((2, 2))])
    with pytest.raises(ValueError, match="bind"):
        plan.run(np.empty(0))
    bad = _C.Plan()
    bad.add("cross_entropy", [0, 1], [2, 3], ["mean"])
    bad.bind([x, np.array([0, 5]), np.empty(()), np.empty((2, 3))])
    with pytest.raises(ValueError, match=r"plan step 0 \(cross_entropy\): target\[1\] = 5"):
        bad.run(np.empty(0))
    live = _C.Plan()
    live.add("leaky_relu", [0], [1], [0.1], [(0, 3)])
    live.bind([x, np.empty((2, 3))])
    with pytest.raises(ValueError, match=r"scalars\[3\]"):
        live.run(np.zeros(2))


def test_run_allocates_nothing():
    plan, bufs, params, _, _ = mlp_plan(8, 4, 16, 2, np.float64, "tanh", "mse",
                                        np.random.default_rng(0))
    lr = np.array([1e-3])
    for _ in range(100):
        plan.run(lr)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(2000):
        plan.run(lr)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 4096, f"{grown} bytes allocated over 2000 runs"


def test_ctrl_c_between_steps():
    a = np.random.default_rng(0).standard_normal((300, 300))
    plan = _C.Plan()
    for _ in range(3000):  # ~1 ms each: far longer than the interrupt delay
        plan.add("matmul", [0, 0], [1])
    plan.bind([a, np.empty_like(a)])
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        plan.run(np.empty(0))
    assert time.perf_counter() - t0 < 2.0
    timer.join()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_routes_native(dtype):
    x = np.ones((4, 3), dtype)
    assert native.routes_native("tanh", x)
    assert native.routes_native("sum", x, None)
    assert native.routes_native("sum_to", x, (3,))
    assert native.routes_native("mse", x, x, "mean")
    assert native.routes_native("linear", x, np.ones((2, 3), dtype), None, "tanh")
    assert native.routes_native("sgd_step", [x], [x], None, 0.1)
    assert not native.routes_native("softmax", x, 0)          # other axis: NumPy
    assert not native.routes_native("tanh", x.astype(np.int64))
    assert not native.routes_native("pow", x, x)               # no native kernel
    assert native.TABLE["add"][1] and not native.TABLE["exp"][1]  # exact / not exact


SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 1e-30, -1e-30, 3e38, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("name", sorted(n for n, (_, exact) in native.TABLE.items() if exact))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_exact_kernels_are_bitwise_numpys(name, dtype, seed):
    """What the table marks exact may run on either provider: it must give the same bits."""
    from autograd.backend import numpy_kernels
    rng = np.random.default_rng(seed)
    specials = np.array(SPECIAL, dtype)
    x = np.where(rng.random(60) < 0.5, rng.choice(specials, 60),
                 rng.standard_normal(60) * 10.0 ** rng.integers(-5, 5, 60)).astype(dtype)
    y = np.where(rng.random(60) < 0.5, rng.choice(specials, 60),
                 rng.standard_normal(60)).astype(dtype)
    args = (x, y)[:len(dict((k[0], k[3]) for k in _C.KERNELS)[name])]  # all params are arrays
    with np.errstate(all="ignore"):
        want = getattr(numpy_kernels, name)(*args)
    got = getattr(_C, name)(*args)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_table_rows_have_numpy_kernels_names_and_parameters():
    """One table, two providers: every native row is a numpy_kernels name with its parameters
    (so keyword calls and recorded attrs mean the same to both)."""
    import inspect

    from autograd.backend import numpy_kernels
    for name, family, exact, params in _C.KERNELS:
        if name == "sum_axis":  # the C++ primitive under sum/sum_to, not a kernel-API name
            continue
        want = list(inspect.signature(getattr(numpy_kernels, name)).parameters)
        assert list(params) == want, (name, family)


def test_eager_bindings_keep_reference_counts():
    """The vectorcall front end is hand-written C-API code: no call, result or refusal may leak
    or steal a reference (a leak here grows memory on every training step)."""
    import sys
    import weakref
    x, w = np.ones((4, 3)), np.ones((2, 3))
    t = np.array([0, 1, 2, 0])
    ps, gs = [np.ones(3)], [np.ones(3)]
    calls = [lambda: _C.tanh(x), lambda: _C.add(x, x[0]), lambda: _C.sum(x, (0, 1), True),
             lambda: _C.sum_to(x, (3,)), lambda: _C.matmul(x, w, trans_b=True),
             lambda: _C.linear_back(x, w, np.ones((4, 2)), np.ones((4, 2)), "tanh", False),
             lambda: _C.linear_back(x, w, np.ones((4, 2)), np.ones((4, 2)), "tanh", True, False),
             lambda: _C.cross_entropy(x, t, reduction="none"),
             lambda: _C.sgd_step(ps, gs, None, 0.0), lambda: _C.adam_step(ps, gs, ps, gs, 1, 0.0)]
    refused = [lambda: _C.tanh(x.T), lambda: _C.add(x, np.ones(2)), lambda: _C.sum(x, 5),
               lambda: _C.mse(x, x, "avg"), lambda: _C.cross_entropy(x, t + 5, "mean"),
               lambda: _C.linear(x, w, None, activation=3), lambda: _C.tanh(x, x)]
    for fn in calls + refused:
        before = [sys.getrefcount(a) for a in (x, w, t, ps[0], gs[0])]
        for _ in range(200):
            try:
                out = fn()
            except (TypeError, ValueError):
                continue
            refs = [weakref.ref(r) for r in (out if isinstance(out, tuple) else (out,))
                    if r is not None]
            del out
            assert all(r() is None for r in refs)  # results are owned by the caller alone
        assert [sys.getrefcount(a) for a in (x, w, t, ps[0], gs[0])] == before


def test_quiet_twins_refuse_without_raising_and_still_report_data_errors():
    """native.py tries _C.QUIET[name] first: a refusal must be NotImplemented (cheap, no
    exception), a call that fits must run, and a bad class index found while running is still
    an error, never a silent fallback."""
    q, x = _C.QUIET, np.ones((2, 3))
    assert q["exp"](x.T) is NotImplemented            # strided
    assert q["add"](x, 2.0) is NotImplemented         # a scalar operand
    assert q["add"](x, np.ones(2)) is NotImplemented  # a pattern the C++ does not cover
    assert q["mse"](x, x, "avg") is NotImplemented    # an attr it does not know
    assert q["tanh"](x.astype(np.int32)) is NotImplemented
    # list arguments: a tuple, an element that is strided, not an array, or of another dtype
    # (the 18th, past the fixed buffer the elements are kept in), and nothing is updated
    ps, gs = [np.ones(3) for _ in range(18)], [np.ones(3) for _ in range(18)]
    assert q["sgd_step"](tuple(ps), gs, None, 0.5) is NotImplemented
    for bad in (np.ones(6)[::2], [1.0, 1.0, 1.0], np.ones(3, np.int64)):
        assert q["sgd_step"](ps, gs[:17] + [bad], None, 0.5) is NotImplemented
    assert all((p == 1).all() for p in ps)
    assert q["sgd_step"](ps, gs, None, 0.5) is None
    assert all((p == 0.5).all() for p in ps)
    np.testing.assert_array_equal(q["add"](x, x), x + x)
    with pytest.raises(ValueError, match=r"target\[1\] = 9"):
        q["cross_entropy"](x, np.array([0, 9]), "mean")


def test_bind_refuses_results_over_their_arguments():
    a = np.ones((3, 3))
    plan = _C.Plan()
    plan.add("matmul", [0, 0], [1])
    with pytest.raises(ValueError, match="overlaps an argument"):
        plan.bind([a, a.reshape(9).reshape(3, 3)])  # an alias of slot 0, made by reshaping
    plan.bind([a, np.empty((3, 3))])


@pytest.mark.parametrize("threads", ["one", "all"])
def test_replay_equals_eager_on_threaded_paths(threads):
    """With the pool's thresholds at 0 every kernel splits its work across threads; the plan
    runs the same code, so it still gives the eager bits, with 1 thread and with all."""
    import autograd as ag
    saved_n, saved_t = ag.get_num_threads(), native.get_parallel_thresholds()
    try:
        ag.set_num_threads(1 if threads == "one" else _C.max_threads())
        for family in saved_t:
            native.set_parallel_threshold(family, 0)
        for dtype in (np.float32, np.float64):
            plan, bufs, params, eager, lv = mlp_plan(64, 33, 48, 3, dtype, "tanh", "mse",
                                                     np.random.default_rng(7))
            plan.run(np.array([0.05]))
            assert bufs[10].tobytes() == lv.tobytes()
            assert all(g.tobytes() == w.tobytes() for g, w in zip(params, eager))
    finally:
        ag.set_num_threads(saved_n)
        for family, v in saved_t.items():
            native.set_parallel_threshold(family, v)


# ---------------------------------------------------------------------------------------------
# _C.Dispatch: native.<name> as one C call, the Python route only where the contract refuses
# ---------------------------------------------------------------------------------------------

class _NotAModule:
    """_C seen through a plain object: native._kernel then builds the Python closure (the twin
    the C dispatcher must agree with)."""

    def __getattr__(self, name):
        return getattr(_C, name)


def _closure(name):
    return native._kernel(name, _NotAModule(), 0)


def test_bound_kernels_are_dispatchers_that_look_like_the_numpy_kernels():
    import inspect

    from autograd.backend import numpy_kernels
    bound = [n for n in native.TABLE if hasattr(numpy_kernels, n)]
    assert bound
    for name in bound:
        k, ref = getattr(native, name), getattr(numpy_kernels, name)
        assert type(k) is _C.Dispatch, name
        assert inspect.signature(k) == inspect.signature(ref), name
        assert k.__doc__ == ref.__doc__ and k.__name__ == name, name
    assert type(_closure("add")) is not _C.Dispatch  # the twin below really is the closure


def _cases():
    rng = np.random.default_rng(3)
    for dt in (np.float32, np.float64):
        x = rng.standard_normal((5, 4)).astype(dt)
        y = rng.standard_normal((5, 4)).astype(dt)
        t = np.array([0, 3, 1, 2, 0])
        yield "add", (x, y), {}
        yield "mul", (x, y[0]), {}                      # row broadcast, native
        yield "sub", (x, 2.0), {}                       # scalar operand: NumPy
        yield "add", (x.T, y.T), {}                     # strided: copied, then native
        yield "div", (x, y[:, :1]), {}                  # column broadcast: NumPy
        yield "mul", (x, y.astype(np.float64 if dt == np.float32 else np.float32)), {}
        yield "tanh", (x,), {}
        yield "tanh", (x[:, ::2],), {}
        yield "tanh_back", (x, y), {}
        yield "sum", (x,), {"axis": 0, "keepdims": True}
        yield "sum", (x, (0, 1)), {}
        yield "sum_to", (x, (1, 4)), {}
        yield "softmax", (x,), {"axis": -1}
        yield "matmul", (x, y), {"trans_b": True}
        yield "mse", (x, y), {"reduction": "sum"}
        yield "cross_entropy", (x, t), {}
        yield "cross_entropy", (x, t.astype(np.int32), "none"), {}  # widened, then native


def test_dispatch_gives_the_closures_bits():
    """Fast path and fallback alike: the same result, to the bit, as the Python closure."""
    for name, args, kwargs in _cases():
        got, want = getattr(native, name)(*args, **kwargs), _closure(name)(*args, **kwargs)
        got, want = (got, want) if type(want) is tuple else ((got,), (want,))
        assert type(got) is tuple and len(got) == len(want), name
        for g, w in zip(got, want):
            assert type(g) is type(w) and g.dtype == w.dtype and g.shape == w.shape, name
            assert g.tobytes() == w.tobytes(), (name, [getattr(a, "shape", a) for a in args])


def test_dispatch_errors_are_the_closures_errors():
    x = np.ones((2, 3))
    calls = [("add", (x, np.ones(2))), ("cross_entropy", (x, np.array([0, 9]))),
             ("tanh", (x, x)), ("sum_to", (x, (5,)))]
    for name, args in calls:
        errs = []
        for fn in (getattr(native, name), _closure(name)):
            with pytest.raises(Exception) as e:
                fn(*args)
            errs.append((type(e.value), str(e.value)))
        assert errs[0] == errs[1], (name, errs)
    with pytest.raises(ValueError, match=r"target\[1\] = 9"):  # found while running: no fallback
        native.cross_entropy(x, np.array([0, 9]))


def test_dispatch_keeps_reference_counts():
    import sys
    x, y = np.ones((4, 3)), np.ones((4, 3))
    calls = [lambda: native.add(x, y), lambda: native.add(x, 2.0), lambda: native.tanh(x.T),
             lambda: native.sum(x, axis=0, keepdims=True), lambda: native.sum(x, (0, 1)),
             lambda: native.mse(x, y, reduction="none"), lambda: native.add(a=x, b=y)]
    for fn in calls:
        fn()
        before = [sys.getrefcount(a) for a in (x, y)]
        for _ in range(200):
            fn()
        try:
            native.tanh(x, x)  # refused, then raised by the fallback
        except TypeError:
            pass
        assert [sys.getrefcount(a) for a in (x, y)] == before


def test_dispatch_rejects_unknown_kernels_and_bad_fallbacks():
    with pytest.raises(KeyError, match="no native kernel named 'nope'"):
        _C.dispatch("nope", print)
    with pytest.raises(TypeError, match="must be callable"):
        _C.dispatch("add", 3)
    assert repr(native.add) == "<native kernel add>"


def test_dispatchers_copy_and_pickle_by_reference_like_functions():
    import copy
    import pickle
    assert copy.copy(native.tanh) is native.tanh and copy.deepcopy(native.tanh) is native.tanh
    assert pickle.loads(pickle.dumps(native.tanh)) is native.tanh
    assert copy.deepcopy({"f": native.add})["f"] is native.add  # e.g. inside a deep-copied model


def test_a_result_left_out_by_a_flag_takes_no_slot():
    """linear_back(need_dx=False) computes no dx: in a plan that result takes slot -1 (the jit
    gives a None result no slot), the others equal the eager call's bits, and a slot given for
    the left-out result is refused rather than left unwritten."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((6, 3)), rng.standard_normal((4, 3))
    y = np.tanh(x @ w.T)
    g = rng.standard_normal((6, 4))
    dx, dw, db = _C.linear_back(x, w, y, g, "tanh", True, False)
    assert dx is None
    bufs = [x, w, y, g, np.empty((4, 3)), np.empty(4), np.empty((6, 3))]
    plan = _C.Plan()
    plan.add("linear_back", [0, 1, 2, 3], [-1, 4, 5], ["tanh", True, False])
    plan.bind(bufs)
    plan.run(np.zeros(1), -1)
    assert bufs[4].tobytes() == dw.tobytes() and bufs[5].tobytes() == db.tobytes()
    wrong = _C.Plan()
    wrong.add("linear_back", [0, 1, 2, 3], [6, 4, 5], ["tanh", True, False])
    with pytest.raises(ValueError, match="result 0 is not computed: its slot must be -1"):
        wrong.bind(bufs)
