"""Helpers shared by the ring file tests (test_ringfile_*.py).

The fixtures ``plan`` and ``multi_plan`` live in conftest.py.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import safetensors
import safetensors.numpy

import rpgcore
from rpgcore import ringfile


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def assert_same_array(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same shape, same dtype (in native order) and the same bits (NaN included)."""
    expected = np.asarray(expected)
    native = expected.dtype.newbyteorder("=")
    assert actual.shape == expected.shape
    assert actual.dtype == native
    assert actual.tobytes() == expected.astype(native).tobytes()


def small_file(path, plan: rpgcore.Plan) -> bytes:
    """Save a small ring file with a few extras and return its bytes."""
    extras = {"bias": np.arange(3, dtype=np.float32), "count": np.array([7], dtype=np.int64)}
    rpgcore.save(path, plan, plan.init_ring(), extras=extras)
    return path.read_bytes()


def craft(path, plan_json: str, tensors: dict, **metadata_changes) -> None:
    """Write a ring file with the real safetensors package and a recomputed checksum.

    ``metadata_changes`` overrides the metadata (after the checksum is computed);
    a value of None removes the key.
    """
    metadata = {
        "format": ringfile.FORMAT,
        "spec": rpgcore.SPEC_VERSION,
        "plan": plan_json,
        "checksum": ringfile.checksum(plan_json, tensors),
    }
    for key, value in metadata_changes.items():
        if value is None:
            metadata.pop(key)
        else:
            metadata[key] = value
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)


def raw_file(header: dict, data: bytes) -> bytes:
    """Hand-built safetensors bytes (for what no writer would produce)."""
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def ring_metadata(plan: rpgcore.Plan, tensors: dict) -> dict:
    plan_json = plan.to_json()
    return {
        "format": ringfile.FORMAT,
        "spec": plan.spec,
        "plan": plan_json,
        "checksum": ringfile.checksum(plan_json, tensors),
    }
