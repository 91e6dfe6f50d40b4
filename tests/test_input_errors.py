"""Bad input anywhere in the public API raises a specific rpgcore exception."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rpgcore
from rpgcore import ringfile, safetensors_io
from rpgcore.cli import main
from rpgcore.errors import (
    ArgumentError,
    PlanError,
    RingDtypeError,
    RingFileFormatError,
    SpecVersionError,
)

SLOTS = {"conv": (4, 2, 3, 3), "fc": (3, 4)}


def plan_file(path: Path, plan_json: str) -> Path:
    """A ring file whose checksum is valid for ``plan_json``, whatever that holds."""
    tensors = {"rings/global": np.zeros(7, np.float32)}
    metadata = {
        "format": ringfile.FORMAT,
        "spec": "rpg-v1",
        "plan": plan_json,
        "checksum": ringfile.checksum(plan_json, tensors),
    }
    path.write_bytes(safetensors_io.encode(tensors, metadata))
    return path


GOOD = rpgcore.Plan.build(SLOTS, ring_size=7).to_json()
MALFORMED_PLANS = {
    "spec is a list": GOOD.replace('"spec":"rpg-v1"', '"spec":["rpg-v1"]'),
    "huge init_std": GOOD.replace('"init_std":', '"init_std":1' + "0" * 400 + ',"x":'),
    "deep nesting": '{"spec":"rpg-v1","seed":' + "[" * 100_000 + "]" * 100_000 + "}",
    "no seed": '{"spec":"rpg-v1"}',
    "ring name is a list": GOOD.replace('"ring":"global"', '"ring":["global"]', 1),
    "duplicate slot": GOOD.replace('"name":"fc"', '"name":"conv"'),
}


@pytest.mark.parametrize("text", MALFORMED_PLANS.values(), ids=MALFORMED_PLANS.keys())
def test_malformed_plan_json_is_a_plan_error(text: str) -> None:
    with pytest.raises(PlanError):
        rpgcore.Plan.from_json(text)


@pytest.mark.parametrize("text", MALFORMED_PLANS.values(), ids=MALFORMED_PLANS.keys())
def test_ring_file_with_malformed_plan_is_a_format_error(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = plan_file(tmp_path / "bad.safetensors", text)
    with pytest.raises((RingFileFormatError, SpecVersionError)):
        rpgcore.load(path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rpgcore: error: ")
    assert len(err.splitlines()) == 1


def test_duplicate_names_and_ids_are_named() -> None:
    with pytest.raises(PlanError, match="\\['conv'\\]"):
        rpgcore.Plan.from_json(MALFORMED_PLANS["duplicate slot"])
    two = rpgcore.Plan.build(SLOTS, ring_size={"a": 5, "b": 5}, groups={"conv": "a", "fc": "b"})
    with pytest.raises(PlanError, match="ring ids \\[0\\]"):
        rpgcore.Plan.from_json(two.to_json().replace('"id":1', '"id":0'))


@pytest.mark.parametrize("value", [None, 3, ["{}"]])
def test_from_json_needs_text(value: object) -> None:
    with pytest.raises(PlanError, match="JSON text"):
        rpgcore.Plan.from_json(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "counter", "message"),
    [
        ((0,), (0, 0), "key must be a pair"),
        ((0, 0), (0, 0, 0), "counter must be a pair"),
        (5, (0, 0), "key must be a pair"),
        ((0, 0), ([1, 2], [1, 2, 3]), "do not broadcast"),
        ((-1, 0), (0, 0), "from -1 to -1"),
        ((0.5, 0), (0, 0), "unsigned integers"),
    ],
)
def test_threefry_arguments(key: object, counter: object, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        rpgcore.threefry2x32(key, counter)  # type: ignore[arg-type]


def test_plan_lookups_with_unhashable_names() -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=7)
    with pytest.raises(PlanError, match="no slot"):
        plan.indices(["conv"])  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="no ring"):
        plan.init_ring(["global"])  # type: ignore[arg-type]


def test_bad_dtypes_are_ring_dtype_errors() -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=7)
    with pytest.raises(RingDtypeError, match="'foo' is not a dtype"):
        plan.init_ring(dtype="foo")
    grads = {name: np.zeros(shape) for name, shape in SLOTS.items()}
    for bad in (
        np.zeros(SLOTS["fc"], complex),
        np.full(SLOTS["fc"], "x"),
        np.empty(SLOTS["fc"], object),
    ):
        with pytest.raises(RingDtypeError, match="'fc'"):
            plan.contract({**grads, "fc": bad})
    # float16 gradients give a float32 ring gradient, as documented.
    half = {name: g.astype(np.float16) for name, g in grads.items()}
    assert plan.contract(half)["global"].dtype == np.float32


def test_save_checks_its_arguments(tmp_path: Path) -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=7)
    path = tmp_path / "r.safetensors"
    with pytest.raises(ArgumentError, match=r"rpgcore\.Plan"):
        rpgcore.save(path, "not a plan", np.zeros(7, np.float32))  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="mapping"):
        rpgcore.save(path, plan, plan.init_ring(), extras=[np.zeros(3)])  # type: ignore[arg-type]
    with pytest.raises(RingDtypeError, match="'phase'"):
        rpgcore.save(path, plan, plan.init_ring(), extras={"phase": np.zeros(2, complex)})
    with pytest.raises(ArgumentError, match="not extras"):
        rpgcore.save(path, plan, plan.init_ring(), extras={"a": np.zeros(2)}, buffers=["b"])
    with pytest.raises(ArgumentError, match="list of extra names"):
        rpgcore.save(path, plan, plan.init_ring(), extras={"a": np.zeros(2)}, buffers="a")
    assert list(tmp_path.iterdir()) == []


def test_buffers_are_recorded_and_checksummed(tmp_path: Path) -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=7)
    path = tmp_path / "r.safetensors"
    extras = {"bn.weight": np.ones(4), "bn.running_mean": np.zeros(4)}
    rpgcore.save(path, plan, plan.init_ring(), extras=extras, buffers=["bn.running_mean"])
    metadata = ringfile.read_metadata(path)
    assert ringfile.buffer_names(metadata) == ["bn.running_mean"]
    # Changing the buffer list without the checksum is detected.
    data = path.read_bytes()
    old = b'[\\"bn.running_mean\\"]'
    new = b'[\\"bn.weight\\"]'.ljust(len(old))  # same length: the header stays valid
    altered = data.replace(old, new)
    assert altered != data
    path.write_bytes(altered)
    with pytest.raises(rpgcore.errors.ChecksumError):
        rpgcore.load(path)


def test_unknown_metadata_keys_are_rejected(tmp_path: Path) -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=7)
    tensors = {"rings/global": plan.init_ring("global")}
    metadata = {
        "format": ringfile.FORMAT,
        "spec": "rpg-v1",
        "plan": plan.to_json(),
        "checksum": ringfile.checksum(plan.to_json(), tensors),
        "bufgers": json.dumps([]),
    }
    path = tmp_path / "r.safetensors"
    path.write_bytes(safetensors_io.encode(tensors, metadata))
    with pytest.raises(RingFileFormatError, match="bufgers"):
        rpgcore.load(path)


def test_loaded_rings_can_be_updated_in_place_and_saved_again(tmp_path: Path) -> None:
    plan = rpgcore.Plan.build(SLOTS, ring_size=7)
    path = tmp_path / "r.safetensors"
    rpgcore.save(path, plan, plan.init_ring())
    _, rings, _ = rpgcore.load(path)
    rings["global"] -= 0.5
    rpgcore.save(path, plan, rings)
    assert np.array_equal(rpgcore.load(path)[1]["global"], plan.init_ring("global") - 0.5)
