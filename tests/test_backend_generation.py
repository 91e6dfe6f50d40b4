"""The generation every adapter runs, one test body for every backend: gather and expand_slots.

Kernels from packed indices in any layout are bitwise ``Plan.expand``; the
ring gradient of the ordered add is ``Plan.contract`` to rounding and
repeats bitwise; with the inverse gather it is ``Plan.contract`` bitwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import rpgcore
from rpgcore import layouts, packing

SLOTS = {"conv": (6, 4, 3, 3), "dw": (8, 1, 3, 3), "up": (4, 3, 2, 2), "fc": (5, 6), "bias": (7,)}
LAYOUT = {
    "conv": ("channels_last", 1),
    "dw": ("depthwise", 2),
    "up": ("spatial_first", 1),
    "fc": ("channels_last", 1),
    "bias": ("canonical", 1),
}
GROUPS = {"conv": "a", "dw": "b", "up": "a", "fc": "b", "bias": "a"}
CASES = [
    ("perm_sign", 97, None),
    ("perm_sign", 7, None),  # many blocks, partial last one, odd N
    ("perm", 13, None),
    ("sign", 11, None),
    ("none", 10, None),
    ("perm_sign", {"a": 50, "b": 31}, GROUPS),
]


def _plan(mode: str, ring_size: Any, groups: Any) -> rpgcore.Plan:
    init = {"fc": "lecun_fan_in", "bias": "lecun_fan_in"}
    return rpgcore.Plan.build(
        SLOTS, ring_size=ring_size, groups=groups, seed=5, mode=mode, init=init
    )


def _indices(plan: rpgcore.Plan, ring: str) -> list[np.ndarray]:
    return [
        packing.native_index(plan, s.name, *LAYOUT[s.name]) for s in plan.slots if s.ring == ring
    ]


def _upstream(plan: rpgcore.Plan) -> dict[str, np.ndarray]:
    """A kernel gradient per slot, canonical, float32."""
    rng = np.random.default_rng(3)
    return {s.name: rng.standard_normal(s.shape).astype(np.float32) for s in plan.slots}


def _ring_gradient(
    backend: ModuleType,
    ring: np.ndarray,
    generate: Callable[[Any], Sequence[Any]],
    upstream: Sequence[np.ndarray],
) -> np.ndarray:
    """d/dW of sum_i <K_i(W), U_i> with the backend's framework (upstream native-shaped)."""
    name = backend.__name__.rsplit(".", 1)[-1]
    if name == "torch":
        import torch

        tensor = torch.from_numpy(ring.copy()).requires_grad_()
        kernels = generate(tensor)
        sum(
            (k * torch.from_numpy(u)).sum() for k, u in zip(kernels, upstream, strict=True)
        ).backward()
        return tensor.grad.numpy()  # type: ignore[union-attr]
    if name == "jax":
        import jax
        import jax.numpy as jnp

        def loss(w: Any) -> Any:
            kernels = generate(w)
            return sum(jnp.sum(k * u) for k, u in zip(kernels, upstream, strict=True))

        return np.asarray(jax.grad(loss)(jnp.asarray(ring)))
    import tensorflow as tf

    variable = tf.Variable(ring)
    with tf.GradientTape() as tape:
        kernels = generate(variable)
        loss = tf.add_n([tf.reduce_sum(k * u) for k, u in zip(kernels, upstream, strict=True)])
    return tape.gradient(loss, variable).numpy()


def _native_upstream(plan: rpgcore.Plan, ring: str, upstream: dict[str, np.ndarray]) -> list:
    return [
        np.ascontiguousarray(layouts.to_native(upstream[s.name], *LAYOUT[s.name]))
        for s in plan.slots
        if s.ring == ring
    ]


@pytest.mark.parametrize(("mode", "ring_size", "groups"), CASES)
def test_kernels_in_every_layout_are_plan_expand_bitwise(
    backend: ModuleType, mode: str, ring_size: Any, groups: Any
) -> None:
    plan = _plan(mode, ring_size, groups)
    rings = plan.init_ring()
    expected = plan.expand(rings)
    for ring in plan.rings:
        slots = [s for s in plan.slots if s.ring == ring.name]
        indices = [backend.from_numpy(index) for index in _indices(plan, ring.name)]
        kernels = backend.expand_slots(
            backend.from_numpy(rings[ring.name]), indices, [s.scale for s in slots]
        )
        for slot, kernel in zip(slots, kernels, strict=True):
            canonical = layouts.from_native(backend.to_numpy(kernel), LAYOUT[slot.name][0])
            assert canonical.dtype == np.float32
            assert np.array_equal(canonical.view(np.uint32), expected[slot.name].view(np.uint32))
            one = backend.gather(backend.from_numpy(rings[ring.name]), indices[0], slots[0].scale)
            assert np.array_equal(backend.to_numpy(one), backend.to_numpy(kernels[0]))


@pytest.mark.parametrize(("mode", "ring_size", "groups"), CASES)
def test_ring_gradients_are_plan_contract(
    backend: ModuleType, mode: str, ring_size: Any, groups: Any
) -> None:
    plan = _plan(mode, ring_size, groups)
    rings, upstream = plan.init_ring(), _upstream(plan)
    want = plan.contract(upstream)
    for ring in plan.rings:
        slots = [s for s in plan.slots if s.ring == ring.name]
        indices = [backend.from_numpy(index) for index in _indices(plan, ring.name)]
        scales = [s.scale for s in slots]
        native = _native_upstream(plan, ring.name, upstream)
        inverse = backend.from_numpy(
            packing.inverse_index(plan, ring.name, [LAYOUT[s.name] for s in slots])
        )

        def ordered(w: Any, indices: Any = indices, scales: Any = scales) -> Any:
            return backend.expand_slots(w, indices, scales)

        def spec(
            w: Any, indices: Any = indices, scales: Any = scales, inverse: Any = inverse
        ) -> Any:
            return backend.expand_slots(w, indices, scales, inverse=inverse)

        if backend.__name__.endswith("numpy"):  # no derivative: eq. 2 is Plan.contract itself
            for a, b in zip(ordered(rings[ring.name]), spec(rings[ring.name]), strict=True):
                assert np.array_equal(a, b)  # the backward's choice changes no kernel
            continue
        added = _ring_gradient(backend, rings[ring.name], ordered, native)
        again = _ring_gradient(backend, rings[ring.name], ordered, native)
        # float32 sums of the same terms as the spec, associated in another order:
        # a few ulps of the largest partial sum (at most 7 blocks of terms of O(1)).
        np.testing.assert_allclose(added, want[ring.name], rtol=1e-5, atol=2e-5)
        assert np.array_equal(added.view(np.uint32), again.view(np.uint32))  # deterministic
        gathered = _ring_gradient(backend, rings[ring.name], spec, native)
        assert np.array_equal(gathered.view(np.uint32), want[ring.name].view(np.uint32))
