"""PyTorch generator: the backend's fused expand_slots against a naive per-layer generator.

For the ResNet-18 backbone plan (M = 11,166,912) with a 45K and a 5.6M ring,
times one generation forward plus backward (down to the ring gradient) on
the CPU, best of several runs:

- fused: :func:`rpgcore.backends.torch.expand_slots`, one gather from the
  signed ring ``[W, -W]`` per layer in one operation, and its own backward;
- naive (the baseline, as in the paper's released code): per layer
  ``ring[index] * sign`` with int64 indices and float32 signs, and autograd's
  default backward (an accumulating index-put).

It also prints the index memory per generated parameter of both, and checks
that two fused backward passes give bitwise equal ring gradients. Run it with
``nox -s benchmarks_torch``.
"""

from __future__ import annotations

import argparse
import platform

import torch
from timing import best_of

import rpgcore
from rpgcore import packing
from rpgcore.architectures import resnet
from rpgcore.backends import torch as backend


def measure(ring_size: int, repeats: int) -> tuple[float, float, bool, int]:
    """Seconds of the fused and naive generators, determinism, and bytes per parameter."""
    generated, _ = resnet(18)
    plan = rpgcore.Plan.build(generated, ring_size=ring_size, seed=0)
    geometry = plan.geometry("global")
    size = plan.generated_size
    indices = backend.ring_indices(geometry, 0, size)
    signs = backend.ring_signs(geometry, 0, size)
    packed = torch.from_numpy(packing.ring_index(plan, "global"))
    slices = [packed[s.offset : s.offset + s.size].view(s.shape) for s in plan.slots]
    scales = [s.scale for s in plan.slots]
    ring = torch.from_numpy(plan.init_ring("global")).requires_grad_()
    upstream = torch.randn(size, generator=torch.Generator().manual_seed(0))
    pieces = [
        (
            indices[s.offset : s.offset + s.size].long(),
            signs[s.offset : s.offset + s.size].float(),
            s,
        )
        for s in plan.slots
    ]

    def fused() -> torch.Tensor:
        ring.grad = None
        kernels = backend.expand_slots(ring, slices, scales)
        flat = torch.cat([kernel.reshape(-1) for kernel in kernels])
        (flat * upstream).sum().backward()
        assert ring.grad is not None
        return ring.grad.clone()

    def naive() -> torch.Tensor:
        ring.grad = None
        total = torch.zeros(())
        for index, sign, slot in pieces:
            kernel = (ring[index] * sign).view(slot.shape).flatten()
            total = total + (kernel * upstream[slot.offset : slot.offset + slot.size]).sum()
        total.backward()
        assert ring.grad is not None
        return ring.grad.clone()

    deterministic = torch.equal(fused(), fused())
    return best_of(repeats, fused), best_of(repeats, naive), deterministic, packed.element_size()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"{'ring':>10} {'fused s':>9} {'naive s':>9} {'naive/fused':>12} {'bitwise':>8}")
    for ring_size in (45_000, 5_600_000):
        fused, naive, deterministic, width = measure(ring_size, args.repeats)
        ratio = naive / fused
        print(f"{ring_size:>10,} {fused:>9.3f} {naive:>9.3f} {ratio:>12.2f} {deterministic!s:>8}")
    print(
        f"index memory per generated parameter: fused {width} bytes (int32 into [W, -W]), "
        "naive 12 bytes (int64 index + float32 sign)"
    )


if __name__ == "__main__":
    main()
