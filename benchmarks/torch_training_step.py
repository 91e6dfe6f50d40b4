"""Training-step time of ResNet-18-RPG over the same vanilla ResNet-18 (PyTorch, CPU).

One SGD step (forward, loss, backward, optimizer step) on a CIFAR-shaped
batch of 128 (3x32x32, CIFAR stem), best of several runs, for the vanilla
network and, with a 45K and a 5.6M ring, for:

- ``fused``: :func:`rpgcore.adapters.torch.rpgify` (one fused generation per
  ring and forward, its own deterministic backward);
- ``fused, gather``: the same with ``backward="gather"`` (the spec's inverse
  gather and ordered block sum; 8 bytes of index per generated parameter);
- ``naive``: the same plan generated per layer as ``ring[index] * sign``
  with int64 indices and float32 signs and autograd's default backward (an
  accumulating index-put), as in the paper's released code.

Prints each time and its ratio to the vanilla step measured in the same
run, and whether two fused steps from the same state give bitwise equal
ring gradients. Run it with ``nox -s benchmarks_torch``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

import rpgcore
from rpgcore.adapters import torch as rpg
from rpgcore.backends import torch as backend


def naive_rpg(model: nn.Module, plan: rpgcore.Plan) -> nn.Module:
    """Generate ``plan``'s kernels per layer with ``ring[index] * sign`` (the baseline)."""
    geometry = plan.geometry("global")
    indices = backend.ring_indices(geometry, 0, plan.generated_size).long()
    signs = backend.ring_signs(geometry, 0, plan.generated_size).float()
    ring = nn.Parameter(torch.from_numpy(plan.init_ring("global")))
    model.register_parameter("naive_ring", ring)
    for slot in plan.slots:
        layer = model.get_submodule(slot.name.removesuffix(".weight"))
        del layer._parameters["weight"]
        layer.register_buffer("index", indices[slot.offset : slot.offset + slot.size].clone())
        layer.register_buffer("sign", signs[slot.offset : slot.offset + slot.size].clone())

        def generate(
            module: nn.Module,
            _: object,
            shape: tuple[int, ...] = slot.shape,
            scale: float = slot.scale,
        ) -> None:
            module.weight = (ring[module.index] * module.sign).view(shape) * scale

        layer.register_forward_pre_hook(generate)
    return model


def ring_gradient(model: nn.Module, batch: int) -> torch.Tensor:
    """The ring gradient of one forward and backward on a fixed batch."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(images), labels).backward()
    return model.rpg_ring_global.grad.clone()


def stepper(model: nn.Module, batch: int) -> Callable[[], None]:
    """One SGD step (momentum 0.9, weight decay 5e-4) of ``model`` on a fixed random batch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    step()  # warms up the allocator and the convolution primitives
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, CIFAR stem")
    models: dict[str, nn.Module] = {
        "ResNet-18 (vanilla)": rpg.models.resnet18(num_classes=10, stem="cifar")
    }
    bitwise = {}
    for ring_size in (45_000, 5_600_000):
        model = rpg.rpgify(rpg.models.resnet18(num_classes=10, stem="cifar"), ring_size=ring_size)
        bitwise[ring_size] = torch.equal(ring_gradient(model, 32), ring_gradient(model, 32))
        models[f"RPG {ring_size:,} fused"] = model
        models[f"RPG {ring_size:,} fused, gather"] = rpg.rpgify(
            rpg.models.resnet18(num_classes=10, stem="cifar"),
            ring_size=ring_size,
            backward="gather",
        )
        naive = naive_rpg(rpg.models.resnet18(num_classes=10, stem="cifar"), rpg.plan_of(model))
        models[f"RPG {ring_size:,} naive"] = naive
    steps = {label: stepper(model, args.batch) for label, model in models.items()}
    # Round-robin: every model is timed once per round, so slow phases of a
    # shared machine hit them all alike; each keeps its best round.
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(args.repeats):
        for label, step in steps.items():
            start = time.perf_counter()
            step()
            best[label] = min(best[label], time.perf_counter() - start)
    vanilla = best["ResNet-18 (vanilla)"]
    print(f"{'model':<30} {'step s':>8} {'x vanilla':>10}")
    for label, seconds in best.items():
        print(f"{label:<30} {seconds:>8.3f} {seconds / vanilla:>10.3f}")
    for ring_size, equal in bitwise.items():
        print(f"ring {ring_size:,}: fused ring gradients of two runs bitwise equal: {equal}")


if __name__ == "__main__":
    main()
