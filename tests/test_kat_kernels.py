"""Known-answer vectors for the generated kernels (section 5) and the ring gradient (section 7).

``tests/kat/rpg_v1.json`` stores, for every case, the float32 bit patterns of
the kernels generated from the case's own initial ring and (unless the case is
truncated) the float64 ring gradient of a deterministic kernel gradient, all
computed by ``tests/independent/scalar_reference.py`` (see
``tests/independent/make_kat.py``). Both must be reproduced bit for bit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import rpgcore

KAT_FILE = Path(__file__).parent / "kat" / "rpg_v1.json"
DOCUMENT: dict[str, Any] = json.loads(KAT_FILE.read_text())
CASES: list[dict[str, Any]] = DOCUMENT["cases"]
FULL_CASES = [c for c in CASES if not c["truncated"]]

# The gradient of make_kat.py, stated in the JSON's ``contract_gradient``.
GRADIENT_FORMULA = "G[slot][j] = ((j * 7919 + i * 104729) % 2001 - 1000) / 1000.0"


def _gradient(slot_index: int, shape: tuple[int, ...]) -> np.ndarray:
    """``((j * 7919 + i * 104729) % 2001 - 1000) / 1000.0`` in float64, canonical shape.

    The integer part is exact in int64 and at most 1000 in magnitude, so it
    converts to float64 exactly and the one IEEE division gives the same
    correctly rounded double as Python's ``int / float`` in make_kat.py.
    """
    j = np.arange(math.prod(shape), dtype=np.int64)
    values = ((j * 7919 + slot_index * 104729) % 2001 - 1000) / 1000.0
    assert values.dtype == np.float64
    return values.reshape(shape)


def _kernel_bits(case: dict[str, Any], name: str) -> list[int]:
    return [int(word, 16) for word in case["kernels"][name]]


def test_gradient_formula_is_the_documented_one() -> None:
    assert DOCUMENT["contract_gradient"].startswith(GRADIENT_FORMULA)
    assert "contract_gradient" in DOCUMENT["notes"]


def test_every_case_stores_kernels_and_contract_or_says_why_not() -> None:
    for case in CASES:
        plan = rpgcore.Plan.from_json(case["plan_json"])
        assert list(case["kernels"]) == list(plan.slot_names)
        for name, words in case["kernels"].items():
            expected = plan.slot(name).size
            if case["truncated"]:
                expected = min(expected, case["stored_positions"])
            assert len(words) == expected
        if case["truncated"]:
            assert case["contract"] is None
            assert case["contract_skipped"]
        else:
            assert list(case["contract"]) == list(plan.ring_sizes)
            for ring, values in case["contract"].items():
                assert len(values) == plan.ring_sizes[ring]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_expand_matches_known_kernels(case: dict[str, Any]) -> None:
    # Section 5 is one correctly rounded float32 multiplication of an exact
    # sign flip of a ring value by the float32-rounded scale; the scalar
    # reference rounds the exact double product of two float32 values once, so
    # the bits must agree exactly.
    plan = rpgcore.Plan.from_json(case["plan_json"])
    kernels = plan.expand(plan.init_ring())
    for name in case["kernels"]:
        expected = _kernel_bits(case, name)
        kernel = kernels[name]
        assert kernel.dtype == np.float32
        assert kernel.shape == plan.slot(name).shape
        got = kernel.reshape(-1)[: len(expected)].view(np.uint32).tolist()
        assert got == expected, f"slot {name}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_backend_expand_matches_known_kernels(case: dict[str, Any], backend: ModuleType) -> None:
    plan = rpgcore.Plan.from_json(case["plan_json"])
    rings = {name: backend.init_ring(plan.geometry(name)) for name in plan.ring_sizes}
    for name in case["kernels"]:
        expected = _kernel_bits(case, name)
        slot = plan.slot(name)
        geometry = plan.geometry(slot.ring)
        stop = slot.offset + len(expected)
        kernel = backend.expand(
            rings[slot.ring],
            backend.ring_indices(geometry, slot.offset, stop),
            backend.ring_signs(geometry, slot.offset, stop),
            slot.scale,
        )
        kernel = backend.to_numpy(kernel)
        assert kernel.dtype == np.float32
        assert kernel.view(np.uint32).tolist() == expected, f"slot {name}"


@pytest.mark.parametrize("case", FULL_CASES, ids=[c["name"] for c in FULL_CASES])
def test_contract_matches_known_ring_gradient(case: dict[str, Any]) -> None:
    # Exact, not approximate: for one ring entry e, each block q contributes at
    # most one term (the position k = q*N + pi_q^-1(e), if k < M). The scalar
    # reference and Plan.contract both form that term in float64 as the same
    # correctly rounded product scale * G[k] followed by an exact sign flip
    # (reference: (s * scale) * G, s = +-1; Plan.contract: G * scale, then
    # negate), and both add the terms one at a time in increasing q, starting
    # from +0.0 (positions past M add nothing or +0.0, which changes no value
    # and, as the accumulator starts at +0.0, no sign of zero). The same
    # float64 operations in the same order give the same bits.
    plan = rpgcore.Plan.from_json(case["plan_json"])
    grads = {slot.name: _gradient(index, slot.shape) for index, slot in enumerate(plan.slots)}
    result = plan.contract(grads)
    for ring, hexes in case["contract"].items():
        expected = np.array([float.fromhex(h) for h in hexes], dtype=np.float64)
        got = result[ring]
        assert got.dtype == np.float64
        assert got.shape == expected.shape
        assert got.view(np.uint64).tolist() == expected.view(np.uint64).tolist(), f"ring {ring}"
