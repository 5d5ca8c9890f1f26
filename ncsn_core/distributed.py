"""Several processes, one training (torchrun + DistributedDataParallel): process group, ranks, collectives.

Every helper is a no-op (or the identity) in a single process, so training.py runs one code path."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# torchrun sets these in every worker; all four together mean "launched by torchrun"
TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")
_store = None  # the rendezvous store of setup(), for teardown's "left" marks (rank 0's process hosts its server)


def launched_by_torchrun() -> bool:
    return all(v in os.environ for v in TORCHRUN_VARS)


def restart_count() -> int:
    """How often torchrun (--max-restarts) has restarted this job: 0 on the first attempt."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def torchrun_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment, before the process group exists."""
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes: NCCL with this process on cuda:LOCAL_RANK when `device` is a
    CUDA device, else gloo on the CPU. Returns the device this rank trains on. A world of 1 needs no group."""
    rank, world, local = torchrun_world()
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"device {device} cannot train on several processes: use --device cpu (gloo) or cuda (NCCL)")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kw = {"device_id": device} if device.type == "cuda" else {}
        store, _, _ = next(dist.rendezvous("env://", rank, world))
        # a restarted job meets in the same store: without a per-attempt prefix, a rank can read the address of
        # a peer of the previous attempt (gloo: "connectFullMesh failed ... Connection refused")
        store = dist.PrefixStore(f"ncsn/attempt_{restart_count()}", store)
        global _store
        _store = store
        dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timedelta(minutes=30),
                                **kw)
    return device


def teardown(orderly: bool = False) -> None:
    """Leave the process group. After an error: at once (torchrun then stops the other ranks). At a normal end,
    `orderly`: every rank reaches this point, destroys its group and marks it in the store, and rank 0, whose
    process hosts the store's server (env:// rendezvous), leaves last. Without the order, rank 0 could exit and
    take the store down while a peer was still tearing down, and gloo aborted that peer ("terminate called
    without an active exception", seen once in CI)."""
    global _store
    if not dist.is_initialized():
        return
    rank, world = dist.get_rank(), dist.get_world_size()
    if orderly:
        dist.barrier()
    dist.destroy_process_group()
    store, _store = _store, None
    if not orderly or store is None:
        return
    try:
        if rank == 0:
            store.wait([f"left/{r}" for r in range(1, world)], timedelta(seconds=60))
        else:
            store.set(f"left/{rank}", "1")
    except (RuntimeError, dist.DistStoreError):  # a peer gone already: nothing left to wait for
        pass


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 alone writes the run folder)."""
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """The current process group's rank and size, or a world of one when there is none."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def rank_slice(batch_size: int, w: World) -> slice:
    """This rank's rows of the global batch: equal contiguous shares, so the mean of the ranks' means (what DDP's
    gradient average computes) is the global batch's mean."""
    if batch_size % w.size:
        raise ValueError(f"batch size {batch_size} does not divide among {w.size} processes: --batch-size is the "
                         f"global batch, give a multiple of {w.size} (e.g. {w.size * max(1, batch_size // w.size)})")
    share = batch_size // w.size
    return slice(w.rank * share, (w.rank + 1) * share)


def all_reduce_sum(t: torch.Tensor, w: World) -> torch.Tensor:
    """Sum of `t` over the ranks (a new tensor; `t` itself in a single process)."""
    if not w.distributed:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_mean(t: torch.Tensor, w: World) -> torch.Tensor:
    return all_reduce_sum(t, w) / w.size if w.distributed else t


def broadcast(values: tuple, w: World, device: torch.device) -> tuple:
    """Rank 0's `values` (numbers) on every rank: how its stop decision and time-budget share reach the others at
    the same step. Integers come back as integers."""
    if not w.distributed:
        return tuple(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return tuple(type(v)(x) for v, x in zip(values, t.tolist()))


def barrier(w: World) -> None:
    if w.distributed:
        dist.barrier()
