"""``DistributedDataParallel``: the same model on every process, gradients averaged by MPI while
backward is still running.

How it works (PyTorch's reducer, on MPI): the trainable parameters are grouped into buckets of
about ``bucket_cap_mb``, in reverse order of ``parameters()`` because backward produces the last
layer's gradients first (the first bucket is kept small so communication starts early). Each
parameter carries a post-accumulate-grad hook; when the hook has copied the last gradient of a
bucket into the bucket's flat buffer, the bucket's ``MPI_Iallreduce`` is launched, always in
bucket order so every rank issues the same collectives in the same sequence. A callback queued
on the backward pass waits for the buckets and writes the averaged gradients back into ``.grad``
before ``backward()`` returns, so any optimizer then steps on identical gradients everywhere.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

import numpy as np

from .. import distributed as _dist
from .. import hooks as _hooks
from ..grad_mode import no_grad
from ..tensor import Tensor
from .module import Module

__all__ = ["DistributedDataParallel"]

_FIRST_BUCKET_BYTES = 1 << 20  # PyTorch's: the first bucket small, to start sending early


class _Bucket:
    """Gradients of some parameters of one dtype, reduced as one flat buffer."""

    __slots__ = ("index", "params", "offsets", "buffer", "pending", "request", "ready")

    def __init__(self, index: int, params: list, dtype: np.dtype) -> None:
        self.index = index
        self.params = params  # [(name, Parameter)]
        self.offsets = np.cumsum([0] + [p.size for _, p in params]).tolist()
        self.buffer = np.empty(self.offsets[-1], dtype=dtype)
        self.pending = len(params)
        self.request: Any = None
        self.ready = [False] * len(params)


class _Reducer:
    """The per-backward bookkeeping: which gradients arrived, which buckets are in flight."""

    def __init__(self, comm: Any, named_params: list, bucket_bytes: int,
                 find_unused_parameters: bool) -> None:
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = comm
        self.size = comm.Get_size()
        self.find_unused = find_unused_parameters
        self.buckets = _assign_buckets(named_params, bucket_bytes)
        self.where = {}  # id(param) -> (bucket, slot)
        for b in self.buckets:
            for slot, (_, p) in enumerate(b.params):
                self.where[id(p)] = (b, slot)
        self.enabled = True
        self.handles = []
        self._reset()
        # Timings of the last synchronised backward, for the benchmark.
        self.last_wait_s = 0.0
        self.last_bytes = sum(b.buffer.nbytes for b in self.buckets)

    def _reset(self) -> None:
        self.next_launch = 0
        self.queued = False
        for b in self.buckets:
            b.pending = len(b.params)
            b.ready = [False] * len(b.params)
            b.request = None

    def hook(self, param: Tensor) -> None:
        """A parameter's gradient is complete: stage it and launch what is ready."""
        if not self.enabled:
            return
        if not self.queued:
            _hooks.queue_callback(self.finalize)
            self.queued = True
        bucket, slot = self.where[id(param)]
        if bucket.ready[slot]:
            raise RuntimeError(f"DistributedDataParallel: parameter {bucket.params[slot][0]!r} "
                               f"got two gradients in one backward pass")
        self._stage(bucket, slot, param.grad._data)
        self._launch_ready()

    def _stage(self, bucket: _Bucket, slot: int, grad: np.ndarray | None) -> None:
        lo, hi = bucket.offsets[slot], bucket.offsets[slot + 1]
        if grad is None:
            bucket.buffer[lo:hi] = 0
        else:
            bucket.buffer[lo:hi] = grad.reshape(-1)
        bucket.ready[slot] = True
        bucket.pending -= 1

    def _launch_ready(self) -> None:
        buckets = self.buckets
        while self.next_launch < len(buckets) and buckets[self.next_launch].pending == 0:
            b = buckets[self.next_launch]
            b.request = self.comm.Iallreduce(self.MPI.IN_PLACE, b.buffer, op=self.MPI.SUM)
            self.next_launch += 1
        # MPI progresses a non-blocking collective only inside MPI calls: test the buckets in
        # flight so they advance while backward computes (a finished request becomes null).
        for b in buckets[:self.next_launch]:
            if b.request:
                b.request.Test()

    def finalize(self) -> None:
        """End of backward: launch what is left, wait, write the averages into ``.grad``."""
        try:
            missing = [(b, i) for b in self.buckets for i, r in enumerate(b.ready) if not r]
            if missing and not self.find_unused:
                # Complete what was launched (every rank launched the same), then refuse.
                self.MPI.Request.Waitall([b.request for b in self.buckets if b.request])
                names = [b.params[i][0] for b, i in missing]
                raise RuntimeError(
                    f"DistributedDataParallel: on rank {self.comm.Get_rank()}, these parameters "
                    f"received no gradient in this backward pass: {names}; every rank must "
                    f"reduce every bucket, so pass find_unused_parameters=True if parts of "
                    f"the model may go unused")
            for b, i in missing:
                self._stage(b, i, None)
            self._launch_ready()
            start = time.perf_counter()
            self.MPI.Request.Waitall([b.request for b in self.buckets])
            self.last_wait_s = time.perf_counter() - start
            # Every rank with find_unused_parameters makes this call, missing or not.
            used = self._used_anywhere(missing) if self.find_unused else None
            div = self.size
            for b in self.buckets:
                for slot, (_, p) in enumerate(b.params):
                    if used is not None and not used.get((b.index, slot), True):
                        continue  # unused on every rank: its .grad stays as it was
                    lo, hi = b.offsets[slot], b.offsets[slot + 1]
                    avg = b.buffer[lo:hi].reshape(p.shape)
                    g = p.grad
                    if g is None or not g._data.flags.writeable or g._data.shape != p.shape:
                        p.grad = Tensor._wrap(avg / b.buffer.dtype.type(div))
                    else:
                        np.divide(avg, b.buffer.dtype.type(div), out=g._data)
        finally:
            self._reset()

    def _used_anywhere(self, missing: list) -> dict:
        """For each parameter: whether some rank gave it a gradient (one small allreduce,
        which every rank makes whenever find_unused_parameters is on)."""
        slots = [(b.index, i) for b in self.buckets for i in range(len(b.params))]
        position = {key: k for k, key in enumerate(slots)}
        unused = np.zeros(len(slots), dtype=np.int32)
        for b, i in missing:
            unused[position[(b.index, i)]] = 1
        self.comm.Allreduce(self.MPI.IN_PLACE, unused, op=self.MPI.SUM)
        return {key: bool(unused[k] < self.size) for key, k in position.items()}

    def reduce_without_backward(self) -> None:
        """Join the gradient allreduce of a step this rank has no data for: contribute its
        current gradients (zeros where there are none), in the same collectives as the
        others, and receive the average."""
        if not self.enabled:
            return
        for b in self.buckets:
            for slot, (_, p) in enumerate(b.params):
                if not b.ready[slot]:
                    self._stage(b, slot, None if p.grad is None else p.grad._data)
        self._launch_ready()
        self.finalize()


def _assign_buckets(named_params: list, bucket_bytes: int) -> list[_Bucket]:
    """Reverse parameter order, one dtype per bucket, the first one capped at 1 MiB; buckets
    ordered by their first parameter (the order backward is expected to fill them)."""
    groups: list[tuple[int, np.dtype, list]] = []  # (position of first param, dtype, params)
    open_: dict[np.dtype, tuple[int, list]] = {}
    sizes: dict[np.dtype, int] = {}
    for pos, (name, p) in enumerate(reversed(named_params)):
        d = p.dtype
        cap = min(bucket_bytes, _FIRST_BUCKET_BYTES) if not groups else bucket_bytes
        if d in open_ and sizes[d] + p._data.nbytes > cap:
            groups.append(_closed(open_, sizes, d))
        if d not in open_:
            open_[d], sizes[d] = (pos, []), 0
        open_[d][1].append((name, p))
        sizes[d] += p._data.nbytes
    for d in list(open_):
        groups.append(_closed(open_, sizes, d))
    groups.sort(key=lambda g: g[0])
    return [_Bucket(i, params, d) for i, (_, d, params) in enumerate(groups)]


def _closed(open_: dict, sizes: dict, d: np.dtype) -> tuple[int, np.dtype, list]:
    first, params = open_.pop(d)
    sizes.pop(d)
    return first, d, params


class DistributedDataParallel(Module):
    """Data-parallel training of ``module`` over the process group (see
    :mod:`autograd.distributed`): construct it on every rank after
    :func:`~autograd.distributed.init_process_group`, call it like the module, and every
    ``backward()`` leaves the gradients averaged over the ranks.

    On construction the parameters and buffers of rank 0 are broadcast to every rank, after
    checking that all ranks hold parameters with the same names, shapes and dtypes (a mismatch
    raises on every rank, naming the rank and the parameter). ``broadcast_buffers`` re-sends
    rank 0's buffers (e.g. BatchNorm statistics) at each forward in training mode.

    Gradients are averaged (summed, then divided by the world size). With shards of different
    sizes, weight each rank's loss by ``world_size * local_samples / global_samples`` to get
    the gradient of the global mean. Every parameter must get a gradient in every backward
    unless ``find_unused_parameters=True``. :meth:`no_sync` skips the communication for
    gradient accumulation.
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25,
                 broadcast_buffers: bool = True, find_unused_parameters: bool = False) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got "
                            f"{type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got "
                             f"{bucket_cap_mb}")
        comm = _dist._group("DistributedDataParallel")
        self.module = module
        object.__setattr__(self, "broadcast_buffers", bool(broadcast_buffers))
        object.__setattr__(self, "require_backward_grad_sync", True)
        object.__setattr__(self, "_comm", comm)
        named = [(n, p) for n, p in module.named_parameters()]
        settings = {"bucket_cap_mb": float(bucket_cap_mb),
                    "find_unused_parameters": bool(find_unused_parameters),
                    "requires_grad": [n for n, p in named if p.requires_grad]}
        _check_same_everywhere(comm, named, list(module.named_buffers()), settings)
        with no_grad():
            for _, t in named + list(module.named_buffers()):
                _dist.broadcast(t, 0)
        trainable = [(n, p) for n, p in named if p.requires_grad]
        reducer = None
        if trainable:  # also at world size 1: one code path everywhere
            reducer = _Reducer(comm, trainable, int(bucket_cap_mb * (1 << 20)),
                               find_unused_parameters)
            for _, p in trainable:
                reducer.handles.append(p.register_post_accumulate_grad_hook(reducer.hook))
        object.__setattr__(self, "reducer", reducer)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped module; the backward of what it returns reduces the gradients
        unless this forward ran inside :meth:`no_sync`."""
        if self.reducer is not None:
            if self.broadcast_buffers and self.training:
                with no_grad():
                    for _, b in self.module.named_buffers():
                        _dist.broadcast(b, 0)
            self.reducer.enabled = self.require_backward_grad_sync
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside this block, forward/backward passes only accumulate local gradients; the
        first synchronised backward after it averages the accumulated ``.grad``."""
        old = self.require_backward_grad_sync
        object.__setattr__(self, "require_backward_grad_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "require_backward_grad_sync", old)

    def join_without_data(self) -> None:
        """Take part in this step's gradient average on a rank that has no samples for it
        (instead of forward and backward): contributes zero gradients."""
        if self.reducer is not None:
            self.reducer.enabled = self.require_backward_grad_sync
            self.reducer.reduce_without_backward()

    def remove_hooks(self) -> None:
        """Stop reducing: unregister the gradient hooks (the module trains locally again)."""
        if self.reducer is not None:
            for h in self.reducer.handles:
                h.remove()
            object.__setattr__(self, "reducer", None)

    def extra_repr(self) -> str:
        n = 0 if self.reducer is None else len(self.reducer.buckets)
        return f"world_size={self._comm.Get_size()}, buckets={n}"


def _check_same_everywhere(comm: Any, params: list, buffers: list, settings: dict) -> None:
    """Every rank must hold the same parameters and buffers (names, shapes, dtypes) and use
    the same settings (they decide the buckets, so the sequence of collectives)."""
    mine = [["parameter", n, list(t.shape), t.dtype.str] for n, t in params] + \
           [["buffer", n, list(t.shape), t.dtype.str] for n, t in buffers]
    everyone_settings = _dist.allgather_json(settings)
    for rank, theirs in enumerate(everyone_settings):
        for key, value in theirs.items():
            if value != everyone_settings[0][key]:
                raise ValueError(f"DistributedDataParallel: {key} is {value!r} on rank {rank} "
                                 f"but {everyone_settings[0][key]!r} on rank 0; every rank "
                                 f"must pass the same")
    everyone = _dist.allgather_json(mine)
    ref = {(k, n): (s, d) for k, n, s, d in everyone[0]}
    for rank, theirs in enumerate(everyone[1:], start=1):
        seen = {(k, n): (s, d) for k, n, s, d in theirs}
        for (kind, name), (shape, dtype) in seen.items():
            if (kind, name) not in ref:
                raise ValueError(f"DistributedDataParallel: rank {rank} has {kind} {name!r} "
                                 f"that rank 0 does not have; every rank must build the same "
                                 f"model")
            rshape, rdtype = ref[(kind, name)]
            if shape != rshape or dtype != rdtype:
                raise ValueError(f"DistributedDataParallel: {kind} {name!r} has shape "
                                 f"{tuple(shape)} and dtype {np.dtype(dtype)} on rank {rank} "
                                 f"but {tuple(rshape)} and {np.dtype(rdtype)} on rank 0")
        for kind, name in ref:
            if (kind, name) not in seen:
                raise ValueError(f"DistributedDataParallel: rank {rank} lacks {kind} "
                                 f"{name!r} that rank 0 has; every rank must build the same "
                                 f"model")
        order = [n for _, n, _, _ in theirs]
        if order != [n for _, n, _, _ in everyone[0]]:
            raise ValueError(f"DistributedDataParallel: rank {rank} lists its parameters in a "
                             f"different order from rank 0; build the model the same way "
                             f"everywhere")
