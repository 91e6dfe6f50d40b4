"""Ring file reading failures: every damaged, foreign or mismatched file is a RingFileError."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import safetensors
from ringfile_support import assert_same_array, craft, raw_file, ring_metadata, small_file

import rpgcore
from rpgcore import ringfile, safetensors_io
from rpgcore.errors import (
    ChecksumError,
    PlanMismatchError,
    RingDtypeError,
    RingFileError,
    RingFileFormatError,
    RingFileNotFoundError,
    RingFileTruncatedError,
    RpgError,
    SpecVersionError,
)

# --------------------------------------------------------------------------- reading failures


def test_missing_file(tmp_path):
    path = tmp_path / "absent.safetensors"
    with pytest.raises(RingFileNotFoundError, match="does not exist") as info:
        rpgcore.load(path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, RingFileError)
    assert "absent.safetensors" in str(info.value)
    with pytest.raises(FileNotFoundError):
        ringfile.read_metadata(path)


def test_folder_path(tmp_path):
    with pytest.raises(RingFileFormatError, match="folder"):
        rpgcore.load(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(RingFileTruncatedError, match="0 bytes"):
        rpgcore.load(path)


def load_outcome(path) -> tuple | Exception:
    """What rpgcore.load does with a file: its result, or the exception it raised."""
    try:
        return rpgcore.load(path)
    except Exception as error:  # every exception type is reported to the caller
        return error


def test_truncated_at_every_cut_point(tmp_path, plan):
    data = small_file(tmp_path / "good.safetensors", plan)
    (header_length,) = struct.unpack("<Q", data[:8])
    data_start = 8 + header_length
    assert data_start < len(data)
    cut_path = tmp_path / "cut.safetensors"
    seen = set()
    for cut in range(len(data)):
        cut_path.write_bytes(data[:cut])
        outcome = load_outcome(cut_path)
        assert isinstance(outcome, Exception), f"a file cut at {cut} bytes loaded silently"
        assert isinstance(outcome, RingFileTruncatedError | RingFileFormatError), (cut, outcome)
        if cut < 8:
            expected = "header length"
        elif cut < data_start:
            expected = "header announces"
        else:
            expected = "bytes of data"
        assert expected in str(outcome), (cut, outcome)
        seen.add(expected)
    assert seen == {"header length", "header announces", "bytes of data"}


def test_every_bit_flip_is_detected_or_harmless(tmp_path, plan):
    data = small_file(tmp_path / "good.safetensors", plan)
    good_plan, good_rings, good_extras = rpgcore.load(tmp_path / "good.safetensors")
    # Only the writer-version field is outside the checksum.
    version_field = b'"rpgcore":"%s"' % rpgcore.__version__.encode()
    unchecked = range(data.index(version_field), data.index(version_field) + len(version_field))
    flipped = tmp_path / "flipped.safetensors"
    kinds = set()
    for position in range(len(data)):
        for bit in (0, 3, 7):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            flipped.write_bytes(bytes(damaged))
            outcome = load_outcome(flipped)
            if isinstance(outcome, Exception):
                assert isinstance(outcome, RingFileError), (position, bit, outcome)
                kinds.add(type(outcome))
                continue
            loaded_plan, rings, extras = outcome
            assert position in unchecked, f"bit {bit} of byte {position} flipped silently"
            assert loaded_plan == good_plan
            for name, ring in good_rings.items():
                assert_same_array(rings[name], ring)
            for name, value in good_extras.items():
                assert_same_array(extras[name], value)
    assert {RingFileFormatError, ChecksumError, RingFileTruncatedError} <= kinds


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_random_bytes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "noise.bin"
    path.write_bytes(rng.integers(0, 256, size=64 + 500 * seed, dtype=np.uint8).tobytes())
    with pytest.raises(RingFileFormatError, match="not a safetensors file"):
        rpgcore.load(path)


def test_random_bytes_after_plausible_length(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "noise.bin"
    path.write_bytes(struct.pack("<Q", 64) + rng.integers(128, 256, 80, dtype=np.uint8).tobytes())
    with pytest.raises(RingFileFormatError, match="not UTF-8 JSON"):
        rpgcore.load(path)


@pytest.mark.parametrize(
    "text",
    ["hello, this is not a ring file\n" * 20, '{"plan": "not really"}\n', "#!/bin/sh\necho hi\n"],
)
def test_text_file(tmp_path, text):
    path = tmp_path / "notes.safetensors"
    path.write_text(text)
    with pytest.raises(RingFileFormatError, match="not a safetensors file"):
        rpgcore.load(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ([1, 2, 3], "not a JSON object"),
        ({"__metadata__": {"format": 1}}, "strings to strings"),
        ({"__metadata__": "x"}, "strings to strings"),
        ({"t": "x"}, "malformed"),
        ({"t": {"dtype": "F32", "shape": [1]}}, "malformed"),
        ({"t": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, "malformed"),
        ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "malformed"),
        ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, "malformed"),
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, "do not match its shape"),
    ],
)
def test_malformed_headers(header, message):
    with pytest.raises(RingFileFormatError, match=message):
        safetensors_io.decode(raw_file(header, b"\0" * 4))


@pytest.mark.parametrize(
    "entry",
    [
        {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]},
    ],
)
def test_malformed_entry_types(entry):
    with pytest.raises(RingFileFormatError):
        safetensors_io.decode(raw_file({"t": entry}, b"\0" * 4))


def test_deeply_nested_header(tmp_path):
    text = b"[" * 200_000
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(RingFileFormatError):
        rpgcore.load(path)


def test_implausible_header_length():
    with pytest.raises(RingFileFormatError, match="implausible"):
        safetensors_io.decode(struct.pack("<Q", safetensors_io.MAX_HEADER + 1) + b"{}")


def test_flipped_bit_in_tensor_data(tmp_path, plan):
    data = bytearray(small_file(tmp_path / "m.safetensors", plan))
    data[-1] ^= 0x01
    path = tmp_path / "bad.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="damaged"):
        rpgcore.load(path)


def test_flipped_digit_in_plan_seed(tmp_path, plan):
    data = small_file(tmp_path / "m.safetensors", plan)
    needle = b'seed\\":12345,'
    assert data.count(needle) == 1
    changed = data.replace(needle, b'seed\\":12344,')
    assert len(changed) == len(data)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(changed)
    # The file is still valid safetensors with a valid plan JSON ...
    with safetensors.safe_open(str(path), framework="np") as handle:
        assert json.loads(handle.metadata()["plan"])["seed"] == 12344
    # ... but the checksum catches the change.
    with pytest.raises(ChecksumError, match="checksum"):
        rpgcore.load(path)


def test_missing_checksum(tmp_path, plan):
    path = tmp_path / "nochecksum.safetensors"
    craft(path, plan.to_json(), {"rings/global": plan.init_ring()["global"]}, checksum=None)
    with pytest.raises(ChecksumError, match="None"):
        rpgcore.load(path)


def test_unknown_spec_in_metadata(tmp_path, plan):
    path = tmp_path / "future.safetensors"
    craft(path, plan.to_json(), {"rings/global": plan.init_ring()["global"]}, spec="rpg-v99")
    with pytest.raises(SpecVersionError, match="rpg-v99"):
        rpgcore.load(path)
    with pytest.raises(SpecVersionError, match="upgrade rpgcore"):
        ringfile.read_metadata(path)


def test_unknown_spec_in_plan(tmp_path, plan):
    plan_json = plan.to_json().replace('"spec":"rpg-v1"', '"spec":"rpg-v2"')
    assert "rpg-v2" in plan_json
    path = tmp_path / "future.safetensors"
    craft(path, plan_json, {"rings/global": plan.init_ring()["global"]})
    with pytest.raises(SpecVersionError, match="rpg-v2"):
        rpgcore.load(path)


@pytest.mark.parametrize("size", [6, 8, 1])
def test_ring_size_mismatch(tmp_path, plan, size):
    path = tmp_path / "mismatch.safetensors"
    craft(path, plan.to_json(), {"rings/global": np.zeros(size, np.float32)})
    with pytest.raises(PlanMismatchError, match=rf"\({size},\).*\(7,\)"):
        rpgcore.load(path)


def test_ring_missing_from_file(tmp_path, multi_plan):
    path = tmp_path / "missing.safetensors"
    craft(path, multi_plan.to_json(), {"rings/body": np.zeros(6, np.float32)})
    with pytest.raises(PlanMismatchError, match="missing \\['head'\\]"):
        rpgcore.load(path)


def test_unknown_ring_in_file(tmp_path, plan):
    tensors = {"rings/global": np.zeros(7, np.float32), "rings/spare": np.zeros(7, np.float32)}
    path = tmp_path / "spare.safetensors"
    craft(path, plan.to_json(), tensors)
    with pytest.raises(PlanMismatchError, match="unknown \\['spare'\\]"):
        rpgcore.load(path)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int64, np.bool_])
def test_wrong_ring_dtype(tmp_path, plan, dtype):
    path = tmp_path / "intring.safetensors"
    craft(path, plan.to_json(), {"rings/global": np.zeros(7, dtype)})
    with pytest.raises(RingDtypeError, match=np.dtype(dtype).name):
        rpgcore.load(path)


def test_bf16_ring(tmp_path, plan):
    header = {
        "__metadata__": {
            "format": ringfile.FORMAT,
            "spec": plan.spec,
            "plan": plan.to_json(),
            "checksum": "sha256:" + "0" * 64,
        },
        "rings/global": {"dtype": "BF16", "shape": [7], "data_offsets": [0, 14]},
    }
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(raw_file(header, b"\x80\x3f" * 7))
    with pytest.raises(RingDtypeError, match="BF16"):
        rpgcore.load(path)


def test_trailing_garbage(tmp_path, plan):
    data = small_file(tmp_path / "m.safetensors", plan)
    path = tmp_path / "trailing.safetensors"
    path.write_bytes(data + b"garbage!")
    with pytest.raises(RingFileFormatError, match="8 unexpected bytes"):
        rpgcore.load(path)


def test_overlapping_offsets(tmp_path, plan):
    tensors = {"rings/global": np.zeros(7, np.float32), "extras/b": np.zeros(2, np.float32)}
    metadata = ring_metadata(plan, tensors)
    header = {
        "__metadata__": metadata,
        "extras/b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "rings/global": {"dtype": "F32", "shape": [7], "data_offsets": [4, 32]},
    }
    path = tmp_path / "overlap.safetensors"
    path.write_bytes(raw_file(header, bytes(32)))
    with pytest.raises(RingFileFormatError, match="holes or overlaps"):
        rpgcore.load(path)


def test_hole_between_tensors(tmp_path, plan):
    tensors = {"rings/global": np.zeros(7, np.float32), "extras/b": np.zeros(2, np.float32)}
    header = {
        "__metadata__": ring_metadata(plan, tensors),
        "extras/b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "rings/global": {"dtype": "F32", "shape": [7], "data_offsets": [12, 40]},
    }
    with pytest.raises(RingFileFormatError, match="holes or overlaps"):
        safetensors_io.decode(raw_file(header, bytes(40)))


def test_data_shorter_than_offsets(plan):
    header = {"t": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]}}
    with pytest.raises(RingFileTruncatedError, match="need 32 bytes"):
        safetensors_io.decode(raw_file(header, bytes(31)))


def test_all_ring_file_errors_are_rpg_errors():
    for error in (
        RingFileNotFoundError,
        RingFileTruncatedError,
        RingFileFormatError,
        ChecksumError,
        SpecVersionError,
        PlanMismatchError,
        RingDtypeError,
    ):
        assert issubclass(error, RingFileError)
        assert issubclass(error, RpgError)
