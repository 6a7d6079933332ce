"""Run a function in several gloo processes on the CPU and collect what each returns."""
from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, port: int, fn: Callable, args: tuple, out_dir: str) -> None:
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, world_size=world, is_master=False, timeout=timedelta(seconds=60))
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    try:
        result = fn(rank, world, *args)
        torch.save(result, os.path.join(out_dir, f"{rank}.pt"))
        # no process tears gloo down while a peer still talks to it: without this barrier a worker
        # now and then died with SIGABRT ("terminate called without an active exception")
        dist.barrier()
    except BaseException:
        dist.destroy_process_group()
        raise
    dist.destroy_process_group()
    # nor does one exit (closing its sockets) while a peer is still tearing its own gloo pairs
    # down: the barrier alone still let that SIGABRT through, rarely, under load
    store.set(f"left/{rank}", "1")
    store.wait([f"left/{r}" for r in range(world)])


def run_distributed(fn: Callable[..., Any], *args: Any, world_size: int = 2) -> list[Any]:
    """``fn(rank, world_size, *args)`` in ``world_size`` processes; returns their results by rank.
    ``fn`` must be defined at module level (it is pickled into spawned processes) and return
    tensors, numbers or containers of them."""
    # The parent serves the rendezvous store on a port the OS picks and keeps it bound until every
    # worker has joined: no free port is picked and released for the workers to bind (a race).
    store = dist.TCPStore("127.0.0.1", 0, world_size=None, is_master=True, wait_for_workers=False)
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(world_size, store.port, fn, args, out_dir), nprocs=world_size, join=True)
        return [torch.load(os.path.join(out_dir, f"{r}.pt"), weights_only=True) for r in range(world_size)]


def ddp_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_matches_one_process(results: list[dict], loss: torch.Tensor, model: torch.nn.Module, atol: float) -> None:
    """The processes' mean loss equals the one-process ``loss`` and every process's (DDP-averaged)
    gradients equal the one-process gradients held in ``model``."""
    mean_loss = sum(r["loss"] for r in results) / len(results)
    assert abs(mean_loss.item() - loss.item()) <= atol, (mean_loss.item(), loss.item())
    for name, p in model.named_parameters():
        for r in results:
            torch.testing.assert_close(r["grads"][name], p.grad, atol=atol, rtol=0)
