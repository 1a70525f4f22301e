"""Collectives across processes on MPI, shaped like ``torch.distributed``.

Run a script under ``mpiexec -n 4 python train.py`` (or the cluster's launcher); each process
calls :func:`init_process_group` and learns its rank and the world size from MPI's
``COMM_WORLD``. Started without ``mpiexec`` the same script runs as a world of size 1. The
collectives work in place on a Tensor's array through ``mpi4py``'s buffer interface (no pickling,
no copies for contiguous tensors); :class:`DistributedDataParallel` builds on them to average
gradients while backward runs.

``mpi4py`` is imported on the first call that needs it, never by ``import autograd``; install it
with ``pip install "autograd-engine[mpi]"`` (mpi4py and the ``mpich`` wheel) or build mpi4py
against the cluster's own MPI.

Faults are loud: once a group of more than one process is initialised, an uncaught exception on
any rank prints that rank's traceback and calls ``MPI_Abort``, which ends every rank, so a job
never hangs waiting for a process that died.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import numpy as np

from .tensor import Tensor

__all__ = ["init_process_group", "destroy_process_group", "is_available", "is_initialized",
           "get_rank", "get_world_size", "barrier", "all_reduce", "broadcast", "all_gather",
           "ReduceOp", "Work", "DistributedDataParallel"]  # noqa: F822 (module __getattr__)

_comm: Any = None  # the communicator once initialised (MPI.COMM_WORLD)
_hook_installed: Any = None  # the sys.excepthook we replaced, while ours is installed


class ReduceOp:
    """Names of the reductions :func:`all_reduce` takes (plain strings work as well)."""

    SUM = "sum"
    MEAN = "mean"
    AVG = "mean"
    MAX = "max"
    MIN = "min"


_OPS = ("sum", "mean", "max", "min")


_MPI: Any = None  # the mpi4py.MPI module, once imported


def _mpi() -> Any:
    global _MPI
    if _MPI is not None:
        return _MPI
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("autograd.distributed needs mpi4py: pip install "
                          "\"autograd-engine[mpi]\" (mpi4py with the mpich wheel), or on a "
                          "cluster build mpi4py against its MPI (see the README)") from None
    _MPI = MPI
    return MPI


def is_available() -> bool:
    """Whether mpi4py can be imported (without importing it)."""
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


def init_process_group(backend: str | None = "mpi", comm: Any = None) -> None:
    """Join the process group: every process started by ``mpiexec`` (``COMM_WORLD``), or a
    world of size 1 when started alone. Calling it again does nothing. ``backend`` may only be
    ``"mpi"`` (accepted for PyTorch's spelling); ``comm`` an mpi4py communicator to use instead
    of ``COMM_WORLD``.

    With several processes, an uncaught exception on any rank aborts them all (see the module
    docstring), and processes that share a machine share its cores: each gets
    ``cores // processes on this machine`` threads (at least 1), as ``torchrun`` does, unless
    ``OMP_NUM_THREADS`` is set (then :func:`autograd.set_num_threads` is left to you)."""
    global _comm
    if backend not in (None, "mpi"):
        raise ValueError(f"init_process_group: only the 'mpi' backend exists, got {backend!r}")
    if _comm is not None:
        return
    MPI = _mpi()
    _comm = comm if comm is not None else MPI.COMM_WORLD
    if _comm.Get_size() > 1:
        _install_excepthook()
        _share_cores(MPI)


def _share_cores(MPI: Any) -> None:
    """Give each process on a machine its share of the cores: N processes with all cores
    each would oversubscribe the machine N times over."""
    node = _comm.Split_type(MPI.COMM_TYPE_SHARED)  # the processes on this machine
    local = node.Get_size()
    node.Free()
    if "OMP_NUM_THREADS" in os.environ or local < 2:
        return
    from . import get_num_threads, set_num_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    share = max(1, cores // local)
    if share < get_num_threads():
        set_num_threads(share)


def destroy_process_group() -> None:
    """Leave the process group (MPI itself stays up until the interpreter exits, so a later
    :func:`init_process_group` works again)."""
    global _comm, _hook_installed
    if _hook_installed is not None and sys.excepthook is _abort_all:
        sys.excepthook = _hook_installed
    _hook_installed = None
    _comm = None


def is_initialized() -> bool:
    """Whether :func:`init_process_group` has been called (and not undone)."""
    return _comm is not None


def _group(what: str) -> Any:
    if _comm is None:
        raise RuntimeError(f"{what}: the process group is not initialised; call "
                           f"autograd.distributed.init_process_group() first")
    return _comm


def get_rank() -> int:
    """This process's index in the group, 0 .. world size - 1."""
    return _group("get_rank").Get_rank()


def get_world_size() -> int:
    """The number of processes in the group."""
    return _group("get_world_size").Get_size()


def barrier() -> None:
    """Wait until every process has reached this call."""
    _group("barrier").Barrier()


class Work:
    """A collective in flight (``async_op=True``): ``wait()`` completes it."""

    __slots__ = ("_request", "_finish")

    def __init__(self, request: Any, finish: Any = None) -> None:
        self._request, self._finish = request, finish

    def wait(self) -> bool:
        """Block until the collective is done (and its result is in the tensor)."""
        if self._request is not None:
            self._request.Wait()
            self._request = None
            if self._finish is not None:
                self._finish()
        return True

    def is_completed(self) -> bool:
        """Whether the collective has finished (finishing it if it just did)."""
        if self._request is not None and self._request.Test():
            self._request = None
            if self._finish is not None:
                self._finish()
        return self._request is None


def _buffer(tensor: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(the tensor's array, a contiguous array MPI may write): the same array when possible."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what}: expected a Tensor, got {type(tensor).__name__}")
    a = tensor._data
    if not a.flags.writeable:
        raise ValueError(f"{what}: the tensor's memory is read-only (a broadcast view?); "
                         f"pass a tensor that owns its array")
    return a, (a if a.flags.c_contiguous else np.ascontiguousarray(a))


def _mpi_op(MPI: Any, op: str, dtype: np.dtype, what: str) -> Any:
    kind = dtype.kind
    if kind == "f" and op in ("sum", "mean"):  # the common case first
        return MPI.SUM
    if op not in _OPS:
        raise ValueError(f"{what}: op must be one of {list(_OPS)}, got {op!r}")
    if op == "mean" and kind != "f":
        raise TypeError(f"{what}: op 'mean' needs a floating tensor, this one is {dtype}; "
                        f"use 'sum' and divide")
    if kind == "b":  # MPI reduces booleans with logical operators
        return MPI.LAND if op == "min" else MPI.LOR
    return MPI.SUM if op == "sum" else MPI.MAX if op == "max" else MPI.MIN


def all_reduce(tensor: Tensor, op: str = "sum", async_op: bool = False) -> Work | None:
    """Reduce ``tensor`` across all processes, in place: every rank ends with the same
    ``"sum"``, ``"mean"``, ``"max"`` or ``"min"`` (booleans: sum and max are *or*, min is
    *and*). Every rank must pass a tensor of the same shape and dtype. With ``async_op=True``
    returns a :class:`Work` to ``wait()`` on; the tensor holds the result only after that."""
    comm = _group("all_reduce")
    MPI = _mpi()
    a, buf = _buffer(tensor, "all_reduce")
    mpi_op = _mpi_op(MPI, op, a.dtype, "all_reduce")
    if async_op:
        request = comm.Iallreduce(MPI.IN_PLACE, buf, op=mpi_op)
        return Work(request, lambda: _reduced(tensor, a, buf, op, comm))
    comm.Allreduce(MPI.IN_PLACE, buf, op=mpi_op)
    _reduced(tensor, a, buf, op, comm)
    return None


def _reduced(tensor: Tensor, a: np.ndarray, buf: np.ndarray, op: str, comm: Any) -> None:
    """Finish an allreduce: the mean's division, the copy back, the version bump."""
    if op == "mean":
        np.divide(buf, buf.dtype.type(comm.Get_size()), out=buf)
    if buf is not a:
        a[...] = buf
    tensor._vc[0] += 1  # an in-place change: graphs that saved this array must know


def broadcast(tensor: Tensor, src: int = 0, async_op: bool = False) -> Work | None:
    """Overwrite ``tensor`` on every rank with rank ``src``'s values, in place."""
    comm = _group("broadcast")
    size = comm.Get_size()
    if not 0 <= src < size:
        raise ValueError(f"broadcast: src must be a rank in 0..{size - 1}, got {src}")
    a, buf = _buffer(tensor, "broadcast")

    def finish() -> None:
        if buf is not a:
            a[...] = buf
        tensor._vc[0] += 1

    if async_op:
        return Work(comm.Ibcast(buf, root=src), finish)
    comm.Bcast(buf, root=src)
    finish()
    return None


def all_gather(tensor_or_list: Any, tensor: Tensor | None = None) -> list[Tensor]:
    """Every rank's tensor, in rank order, on every rank: ``all_gather(t)`` returns the list;
    PyTorch's ``all_gather(tensor_list, t)`` fills ``tensor_list`` in place. Shapes may differ
    between ranks (dtypes may not)."""
    if tensor is None:
        out_list, tensor = None, tensor_or_list
    else:
        out_list = tensor_or_list
    comm = _group("all_gather")
    if not isinstance(tensor, Tensor):
        raise TypeError(f"all_gather: expected a Tensor, got {type(tensor).__name__}")
    a = np.ascontiguousarray(tensor._data)
    metas = allgather_json({"shape": list(a.shape), "dtype": a.dtype.str})
    dtypes = {m["dtype"] for m in metas}
    if len(dtypes) != 1:
        per_rank = ", ".join(f"rank {r}: {np.dtype(m['dtype'])}" for r, m in enumerate(metas))
        raise TypeError(f"all_gather: ranks pass different dtypes ({per_rank})")
    counts = [int(np.prod(m["shape"], dtype=np.int64)) for m in metas]
    flat = np.empty(sum(counts), dtype=a.dtype)
    comm.Allgatherv(a.reshape(-1), [flat, counts])
    out, start = [], 0
    for m, n in zip(metas, counts):
        out.append(Tensor._wrap(flat[start:start + n].reshape(m["shape"]).copy()))
        start += n
    if out_list is not None:
        if len(out_list) != len(out):
            raise ValueError(f"all_gather: tensor_list has {len(out_list)} entries for a world "
                             f"of {len(out)}")
        for dst, src in zip(out_list, out):
            if dst.shape != src.shape:
                raise ValueError(f"all_gather: tensor_list entry of shape {dst.shape} cannot "
                                 f"hold a gathered tensor of shape {src.shape}")
            dst.copy_(src)
    return out


def allgather_json(value: Any) -> list[Any]:
    """Every rank's JSON-serialisable ``value``, in rank order (small metadata only: the
    bytes of its JSON, never a pickle)."""
    comm = _group("allgather_json")
    data = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
    sizes = np.empty(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([data.size], dtype=np.int64), sizes)
    flat = np.empty(int(sizes.sum()), dtype=np.uint8)
    comm.Allgatherv(data, [flat, sizes.tolist()])
    out, start = [], 0
    for n in sizes.tolist():
        out.append(json.loads(flat[start:start + n].tobytes().decode()))
        start += n
    return out


# ------------------------------------------------------------------ faults
def _abort_all(exc_type: Any, exc: Any, tb: Any) -> None:
    """sys.excepthook under a group of several processes: show the traceback with the rank,
    then abort every rank (a rank that exits alone would leave the others waiting forever)."""
    comm = _comm
    try:
        rank, size = comm.Get_rank(), comm.Get_size()
        lines = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip().splitlines()
        text = "\n".join(f"[rank {rank}] {line}" for line in lines)
        sys.stderr.write(f"[rank {rank}] uncaught exception on rank {rank} of {size}; "
                         f"aborting all ranks\n{text}\n")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        comm.Abort(1)


def _install_excepthook() -> None:
    global _hook_installed
    if sys.excepthook is not _abort_all:
        _hook_installed = sys.excepthook
        sys.excepthook = _abort_all


def __getattr__(name: str) -> Any:
    # DistributedDataParallel lives in autograd.nn.parallel, which imports this module.
    if name == "DistributedDataParallel":
        from .nn.parallel import DistributedDataParallel
        return DistributedDataParallel
    raise AttributeError(f"module 'autograd.distributed' has no attribute {name!r}")
