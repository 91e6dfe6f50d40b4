"""Known-answer vectors: Random123's Threefry vectors and the rpg-v1 generator vectors.

The generator vectors in ``tests/kat/rpg_v1.json`` (and printed in
``docs/spec.md``) were produced by ``tests/independent/scalar_reference.py``,
a scalar pure-Python implementation written from the spec alone. Every
backend must reproduce them exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import rpgcore

KAT_FILE = Path(__file__).parent / "kat" / "rpg_v1.json"
CASES: list[dict[str, Any]] = json.loads(KAT_FILE.read_text())["cases"]

# Random123 kat_vectors, threefry2x32_20: (key, counter, result).
RANDOM123 = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize(("key", "counter", "expected"), RANDOM123)
def test_public_threefry_matches_random123(key: Any, counter: Any, expected: Any) -> None:
    y0, y1 = rpgcore.threefry2x32(key, counter)
    assert (int(y0), int(y1)) == expected


def test_threefry_vectorised_equals_scalar_calls(backend: ModuleType) -> None:
    keys = np.array([k for k, _, _ in RANDOM123], dtype=np.uint32)
    counters = np.array([c for _, c, _ in RANDOM123], dtype=np.uint32)
    words = [
        backend.from_numpy(w) for w in (keys[:, 0], keys[:, 1], counters[:, 0], counters[:, 1])
    ]
    y0, y1 = (backend.to_numpy(y) for y in backend.threefry2x32(*words))
    assert [(int(a), int(b)) for a, b in zip(y0, y1, strict=True)] == [e for _, _, e in RANDOM123]


def test_threefry_rejects_words_outside_32_bits() -> None:
    with pytest.raises(rpgcore.errors.ArgumentError, match="2\\*\\*32"):
        rpgcore.threefry2x32((2**32, 0), (0, 0))
    with pytest.raises(rpgcore.errors.ArgumentError, match="integer"):
        rpgcore.threefry2x32((0.5, 0), (0, 0))


def _build_args(document: dict[str, Any]) -> dict[str, Any]:
    slots = {slot["name"]: tuple(slot["shape"]) for slot in document["slots"]}
    sizes = {ring["name"]: ring["size"] for ring in document["rings"]}
    groups = {slot["name"]: slot["ring"] for slot in document["slots"]}
    return {
        "slots": slots,
        "ring_size": sizes,
        "groups": groups,
        "seed": document["seed"],
        "mode": document["mode"],
    }


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_plan_json_matches_independent_reference(case: dict[str, Any]) -> None:
    built = rpgcore.Plan.build(**_build_args(case["plan"]))
    assert built.to_json() == case["plan_json"]
    assert rpgcore.Plan.from_json(case["plan_json"]) == built


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_generator_matches_known_answers(case: dict[str, Any], backend: ModuleType) -> None:
    plan = rpgcore.Plan.from_json(case["plan_json"])
    for name, expected in case["slots"].items():
        slot = plan.slot(name)
        geometry = plan.geometry(slot.ring)
        stop = slot.offset + len(expected["indices"])
        indices = backend.to_numpy(backend.ring_indices(geometry, slot.offset, stop))
        signs = backend.to_numpy(backend.ring_signs(geometry, slot.offset, stop))
        assert indices.tolist() == expected["indices"]
        assert signs.tolist() == expected["signs"]
    for name, expected in case["rings"].items():
        bits = [int(word, 16) for word in expected["init_bits"]]
        ring = backend.to_numpy(backend.init_ring(plan.geometry(name)))
        assert ring.dtype == np.float32
        assert ring[: len(bits)].view(np.uint32).tolist() == bits


@pytest.mark.parametrize("case", [c for c in CASES if not c["truncated"]], ids=lambda c: c["name"])
def test_plan_methods_match_known_answers(case: dict[str, Any]) -> None:
    plan = rpgcore.Plan.from_json(case["plan_json"])
    for name, expected in case["slots"].items():
        assert plan.indices(name).dtype == np.int32
        assert plan.signs(name).dtype == np.int8
        assert plan.indices(name).tolist() == expected["indices"]
        assert plan.signs(name).tolist() == expected["signs"]
    rings = plan.init_ring()
    for name, expected in case["rings"].items():
        assert rings[name].view(np.uint32).tolist() == [int(w, 16) for w in expected["init_bits"]]
