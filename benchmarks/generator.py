"""Generator speed and memory: the numpy reference against numpy's permutation.

Builds the plan of a ResNet-18 backbone (11,166,912 generated parameters,
ring 45,000) and reports, in one run and on one core:

- the time to generate every index and sign with the numpy reference, as a
  ratio to ``numpy.random.default_rng().permutation`` of the same length;
- the peak memory of the generator's temporaries (tracemalloc), to show it
  is chunked and bounded;
- bytes per generated parameter of the materialised index and sign arrays;
- expand (ring to kernels) and contract (kernel gradients to ring gradient)
  against a plain gather ``ring[indices]`` of the same size;
- ``ring_indices`` and ``ring_signs`` of the whole plan in every other backend
  whose framework is installed (torch; jax eagerly and under ``jax.jit``;
  tensorflow eagerly and in ``tf.function``), against the numpy reference.
  Compiled forms are timed after one warm-up call, so compilation is excluded.

Run it with ``nox -s benchmarks`` or ``python benchmarks/generator.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from timing import best_of

import rpgcore
from rpgcore.architectures import resnet
from rpgcore.backends import numpy as reference
from rpgcore.geometry import RingGeometry

BACKENDS = ("torch", "jax", "tensorflow")


def peak_bytes(function: Callable[[], Any]) -> tuple[int, int]:
    """Peak traced bytes during ``function`` and the size of what it returns."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    kept = sum(a.nbytes for a in result) if isinstance(result, tuple) else result.nbytes
    return peak, kept


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def backend_rows(
    names: list[str], geometry: RingGeometry, size: int, repeats: int
) -> list[tuple[str, float | str]]:
    """Seconds for ``ring_indices`` and ``ring_signs`` of ``[0, size)`` in other backends."""
    rows: list[tuple[str, float | str]] = []
    for name in names:
        try:
            backend = rpgcore.backends.get(name)
        except rpgcore.errors.BackendUnavailableError as error:
            rows.append((name, f"skipped: {str(error).split(';')[0]}"))
            continue
        calls: dict[str, Callable[[], Any]] = {
            "indices": lambda b=backend: b.ring_indices(geometry, 0, size),
            "signs": lambda b=backend: b.ring_signs(geometry, 0, size),
        }
        for what, call in calls.items():
            variants: list[tuple[str, Callable[[], Any]]] = [(f"{name} {what}", call)]
            if name == "jax":
                import jax

                jitted = jax.jit(call)
                variants = [
                    (f"jax {what} (eager)", lambda c=call: c().block_until_ready()),
                    (f"jax {what} (jax.jit)", lambda j=jitted: j().block_until_ready()),
                ]
            elif name == "tensorflow":
                import tensorflow as tf

                variants = [
                    (f"tensorflow {what} (eager)", call),
                    (f"tensorflow {what} (tf.function)", tf.function(call)),
                ]
            for label, function in variants:
                function()  # warm-up: compile, trace, allocate
                rows.append((label, best_of(repeats, function)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ring-size", type=int, default=45_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="other backends to time against the numpy reference (empty: none)",
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    generated, _ = resnet(18)
    plan = rpgcore.Plan.build(generated, ring_size=args.ring_size, seed=0)
    geometry = plan.geometry("global")
    size = plan.generated_size
    print(
        f"machine: {cpu_name()}, 1 core, Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(
        f"plan: ResNet-18 backbone, M = {size:,} generated parameters, ring N = {args.ring_size:,}"
    )

    permutation = best_of(args.repeats, lambda: np.random.default_rng().permutation(size))

    def indices_and_signs() -> tuple[np.ndarray, np.ndarray]:
        return reference.ring_indices(geometry, 0, size), reference.ring_signs(geometry, 0, size)

    indices_time = best_of(args.repeats, lambda: reference.ring_indices(geometry, 0, size))
    signs_time = best_of(args.repeats, lambda: reference.ring_signs(geometry, 0, size))
    both = best_of(args.repeats, indices_and_signs)
    rows = [
        ("numpy default_rng().permutation(M) [baseline]", permutation),
        ("rpgcore indices (numpy reference)", indices_time),
        ("rpgcore signs (numpy reference)", signs_time),
        ("rpgcore indices + signs", both),
    ]
    ring = plan.init_ring("global")
    indices, signs = indices_and_signs()
    gather = best_of(args.repeats, lambda: ring[indices])
    expand = best_of(args.repeats, lambda: reference.expand(ring, indices, signs, 1.5))
    gradient = np.random.default_rng(0).standard_normal(size, dtype=np.float32)
    contract = best_of(args.repeats, lambda: reference.contract(geometry, gradient))
    init = best_of(args.repeats, lambda: reference.init_ring(geometry))
    width = max(len(name) for name, _ in rows) + 2
    print()
    print(f"{'generation':<{width}}{'seconds':>10}{'x baseline':>12}")
    for name, seconds in rows:
        print(f"{name:<{width}}{seconds:>10.3f}{seconds / permutation:>12.2f}")
    print()
    print(f"{'ring <-> kernels':<{width}}{'seconds':>10}{'x gather':>12}")
    for name, seconds in [
        ("ring[indices] gather [baseline]", gather),
        ("expand (gather, sign, scale)", expand),
        ("contract (inverse gather + block sum)", contract),
        ("init_ring", init),
    ]:
        print(f"{name:<{width}}{seconds:>10.3f}{seconds / gather:>12.2f}")

    others = [name for name in args.backends.split(",") if name]
    if others:
        print()
        print(f"{'backends (whole plan)':<{width}}{'seconds':>10}{'x numpy':>12}")
        print(f"{'numpy reference indices':<{width}}{indices_time:>10.3f}{1:>12.2f}")
        print(f"{'numpy reference signs':<{width}}{signs_time:>10.3f}{1:>12.2f}")
        for name, seconds in backend_rows(others, geometry, size, args.repeats):
            if isinstance(seconds, str):
                print(f"{name:<{width}}{seconds}")
                continue
            base = indices_time if " indices" in name else signs_time
            print(f"{name:<{width}}{seconds:>10.3f}{seconds / base:>12.2f}")

    peak, kept = peak_bytes(indices_and_signs)
    print()
    print(
        f"materialised index + sign arrays: {kept:,} bytes = "
        f"{kept / size:.2f} bytes per generated parameter"
    )
    print("  (int32 index + int8 sign; an int64 index + float32 sign pair takes 12)")
    print(
        f"generator temporaries at peak: {peak - kept:,} bytes ({(peak - kept) / 2**20:.1f} MiB), "
        f"independent of M (chunks of {reference.CHUNK:,} positions)"
    )
    print(f"dense float32 kernels for comparison: {4 * size:,} bytes")


if __name__ == "__main__":
    main()
