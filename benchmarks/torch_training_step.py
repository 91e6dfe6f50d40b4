"""Training-step time of ResNet-18-RPG over the same vanilla ResNet-18 (PyTorch, CPU).

One SGD step (forward, loss, backward, optimizer step) on a CIFAR-shaped
batch of 128 (3x32x32, CIFAR stem), best of several runs, for the vanilla
network and for RPG versions with a 45K and a 5.6M ring; prints each time
and its ratio to the vanilla step measured in the same run. Run it with
``nox -s benchmarks_torch``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from rpgcore.adapters import torch as rpg


def step_time(model: nn.Module, repeats: int, batch: int) -> float:
    """Best time of one SGD step (momentum 0.9, weight decay 5e-4) on random data."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    model.train()
    times = []
    for _ in range(repeats + 1):  # the first step warms up the allocator
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, CIFAR stem")
    vanilla = step_time(rpg.models.resnet18(num_classes=10, stem="cifar"), args.repeats, args.batch)
    print(f"{'model':<22} {'step s':>8} {'x vanilla':>10}")
    print(f"{'ResNet-18 (vanilla)':<22} {vanilla:>8.3f} {1.0:>10.3f}")
    for ring_size in (45_000, 5_600_000):
        model = rpg.rpgify(rpg.models.resnet18(num_classes=10, stem="cifar"), ring_size=ring_size)
        seconds = step_time(model, args.repeats, args.batch)
        print(f"{f'ResNet-18-RPG {ring_size:,}':<22} {seconds:>8.3f} {seconds / vanilla:>10.3f}")


if __name__ == "__main__":
    main()
