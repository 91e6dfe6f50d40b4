"""DistributedDataParallel over 2 CPU processes (gloo): rings stay identical across ranks
and equal a single-process step over the same global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
from conftest import require

torch = require("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch import nn  # noqa: E402

from rpgcore.adapters import torch as rpg  # noqa: E402

BATCH = 8


def _model() -> nn.Module:
    # No batch norm: its statistics would differ between half batches and
    # the whole batch, which is not what this test is about. The classifier
    # stays an ordinary layer, initialised by torch: seed it the same everywhere.
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 3),
    )
    return rpg.rpgify(model, ring_size=150, seed=11)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(BATCH, 1, 8, 8, generator=generator), torch.randint(
        0, 3, (BATCH,), generator=generator
    )


def _step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()


def _worker(rank: int, port: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = nn.parallel.DistributedDataParallel(_model())
        images, labels = _data()
        half = slice(rank * BATCH // 2, (rank + 1) * BATCH // 2)
        _step(model, images[half], labels[half])
        np.save(
            os.path.join(folder, f"ring{rank}.npy"), model.module.rpg_ring_global.detach().numpy()
        )
        dist.barrier()  # neither rank tears gloo down while the other still talks
    finally:
        dist.destroy_process_group()
    # Reached only on success, with the ring on disk. gloo's threads can still be
    # winding down when the interpreter exits, and their C++ destructors then abort
    # the process now and then ("terminate called without an active exception",
    # SIGABRT); leave without running them.
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_ddp_on_two_processes_equals_one_process_over_the_global_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    first, second = (np.load(tmp_path / f"ring{rank}.npy", allow_pickle=False) for rank in (0, 1))
    assert np.array_equal(first, second)  # every rank holds the same ring
    single = _model()
    before = single.rpg_ring_global.detach().clone()
    _step(single, *_data())
    # DDP averages the two half-batch gradients; one process averages over the
    # whole batch: the same mean, summed in another order (float32 rounding).
    np.testing.assert_allclose(first, single.rpg_ring_global.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert not np.array_equal(first, before.numpy())  # the step did change the ring
