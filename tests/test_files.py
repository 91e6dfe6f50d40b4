"""Paths and files: links, folders, FIFOs, odd names, and refusing to overwrite."""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest

import rpgcore
from rpgcore import ringfile, safetensors_io
from rpgcore.cli import main
from rpgcore.errors import ArgumentError, PlanError, RingFileError, RingFileFormatError

SLOTS = {"conv": (4, 2, 3, 3), "fc": (3, 4)}


@pytest.fixture
def plan() -> rpgcore.Plan:
    return rpgcore.Plan.build(SLOTS, ring_size=7, seed=3)


def test_saving_through_a_symlink_replaces_its_target(tmp_path: Path, plan: rpgcore.Plan) -> None:
    real = tmp_path / "runs" / "model.safetensors"
    real.parent.mkdir()
    rpgcore.save(real, plan, plan.init_ring())
    real.chmod(0o640)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(real)
    rpgcore.save(link, plan, {"global": plan.init_ring("global") * 2})
    assert link.is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert np.array_equal(rpgcore.load(real)[1]["global"], plan.init_ring("global") * 2)
    assert sorted(p.name for p in real.parent.iterdir()) == ["model.safetensors"]


def test_a_path_ending_in_a_slash_is_refused(tmp_path: Path, plan: rpgcore.Plan) -> None:
    with pytest.raises(RingFileError, match="names a folder"):
        rpgcore.save(f"{tmp_path}/newdir/", plan, plan.init_ring())
    assert list(tmp_path.iterdir()) == []


def test_long_file_names_can_be_saved(tmp_path: Path, plan: rpgcore.Plan) -> None:
    path = tmp_path / ("m" * 240 + ".safetensors")
    rpgcore.save(path, plan, plan.init_ring())
    assert rpgcore.load(path)[0] == plan


@pytest.mark.parametrize("path", ["a\x00b.safetensors", b"bytes.safetensors", 42, ""])
def test_unusable_paths_are_argument_errors(path: object, plan: rpgcore.Plan) -> None:
    with pytest.raises(ArgumentError):
        rpgcore.save(path, plan, plan.init_ring())  # type: ignore[arg-type]
    with pytest.raises(ArgumentError):
        rpgcore.load(path)  # type: ignore[arg-type]


def test_fifos_and_devices_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # Opening a FIFO for reading would block until a writer comes: load must not open it.
    with pytest.raises(RingFileFormatError, match="not a regular file"):
        rpgcore.load(fifo)
    with pytest.raises(RingFileFormatError, match="not a regular file"):
        rpgcore.load("/dev/null")


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, plan: rpgcore.Plan, capsys: pytest.CaptureFixture[str]
) -> None:
    trained = tmp_path / "trained.safetensors"
    rpgcore.save(trained, plan, plan.init_ring())
    before = trained.read_bytes()
    assert main(["init", "resnet18", str(trained)]) == 2
    err = capsys.readouterr().err
    assert "--force" in err
    assert len(err.splitlines()) == 1
    assert trained.read_bytes() == before
    assert main(["init", "resnet18", str(trained), "--force"]) == 0
    assert rpgcore.load(trained)[0].generated_size == 11_166_912


def test_empty_plans_are_refused(tmp_path: Path) -> None:
    empty = '{"spec":"rpg-v1","seed":0,"mode":"none","rings":[],"slots":[]}'
    with pytest.raises(PlanError, match="at least one slot"):
        rpgcore.Plan.from_json(empty)
    tensors: dict[str, np.ndarray] = {}
    metadata = {
        "format": ringfile.FORMAT,
        "spec": "rpg-v1",
        "plan": empty,
        "checksum": ringfile.checksum(empty, tensors),
    }
    path = tmp_path / "empty.safetensors"
    path.write_bytes(safetensors_io.encode(tensors, metadata))
    with pytest.raises(RingFileFormatError, match="at least one slot"):
        rpgcore.load(path)


@pytest.mark.parametrize("shape", [[0, 2**61], [1] * 40, [0, 10**30], [True]])
def test_impossible_tensor_shapes_are_format_errors(shape: list[int]) -> None:
    header = json.dumps({"t": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}).encode()
    with pytest.raises(RingFileFormatError):
        safetensors_io.decode(struct.pack("<Q", len(header)) + header)


def test_plans_limit_the_number_of_dimensions() -> None:
    with pytest.raises(PlanError, match="1 to 32 dimensions"):
        rpgcore.Plan.build({"w": (1,) * 40}, ring_size=1)
    assert rpgcore.Plan.build({"w": np.array(3)}, ring_size=2).slot("w").shape == (3,)
    assert rpgcore.Plan.build({"w": np.array([2, 3])}, ring_size=np.int64(4)).ring_sizes == {
        "global": 4
    }


def test_buffers_in_a_file_must_be_extras_listed_once(tmp_path: Path, plan: rpgcore.Plan) -> None:
    tensors = {"rings/global": plan.init_ring("global"), "extras/bn.running_mean": np.zeros(4)}
    for names, message in (
        (["missing"], "not among its extras"),
        (["bn.running_mean"] * 2, "repeats"),
    ):
        metadata = {
            "format": ringfile.FORMAT,
            "spec": "rpg-v1",
            "plan": plan.to_json(),
            "buffers": json.dumps(names),
            "checksum": ringfile.checksum(plan.to_json(), tensors, names),
        }
        path = tmp_path / "b.safetensors"
        path.write_bytes(safetensors_io.encode(tensors, metadata))
        with pytest.raises(RingFileFormatError, match=message):
            rpgcore.load(path)


@pytest.mark.parametrize("buffers", [5, None, [["a"]], [1, "a"]])
def test_save_rejects_malformed_buffer_lists(
    buffers: object, tmp_path: Path, plan: rpgcore.Plan
) -> None:
    with pytest.raises(ArgumentError, match="buffers"):
        rpgcore.save(
            tmp_path / "r.safetensors",
            plan,
            plan.init_ring(),
            extras={"a": np.zeros(1)},
            buffers=buffers,
        )  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_odd_rings_gradients_and_dtypes(plan: rpgcore.Plan) -> None:
    with pytest.raises(rpgcore.errors.PlanMismatchError, match="unknown"):
        plan.expand({"global": np.zeros(7), 1: np.zeros(2), "x": np.zeros(1)})  # type: ignore[dict-item]
    with pytest.raises(ArgumentError, match="not an array"):
        plan.expand([[1.0, 2.0], [3.0]])  # type: ignore[list-item]
    with pytest.raises(ArgumentError, match="mapping"):
        plan.contract(None)  # type: ignore[arg-type]
    with pytest.raises(rpgcore.errors.RingDtypeError, match="None"):
        plan.init_ring(dtype=None)
    with pytest.raises(rpgcore.errors.RingDtypeError):
        plan.init_ring(dtype=(np.float32, 2))


def test_huge_numbers_make_short_messages() -> None:
    with pytest.raises(PlanError, match="an integer of 16610 bits") as error:
        rpgcore.Plan.build(SLOTS, ring_size=7, seed=10**5000)
    assert len(str(error.value)) < 300


def test_depthwise_multiplier_must_be_positive() -> None:
    for multiplier in (0, -1, True, 1.5):
        with pytest.raises(PlanError, match="multiplier"):
            rpgcore.layouts.to_native(np.zeros((4, 1, 3, 3)), "depthwise", multiplier)  # type: ignore[arg-type]
