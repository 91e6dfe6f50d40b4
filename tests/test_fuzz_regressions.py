"""What the fuzz tests found in the loaders, one plain test per finding (docs/reliability.md).

Each test feeds the smallest input that showed the problem and checks the
specific rpgcore exception and its message.
"""

from __future__ import annotations

import json
import struct
import time
import tracemalloc

import numpy as np
import pytest
from fuzz_support import ring_file_bytes, with_header

import rpgcore
from rpgcore import porting, ringfile, safetensors_io
from rpgcore.errors import (
    ArgumentError,
    PlanError,
    RingFileFormatError,
)
from rpgcore.plan import DEFAULT_MAX_GENERATED, MAX_GENERATED_VARIABLE, max_generated

PLAN = rpgcore.Plan.build({"conv": (4, 2, 3, 3), "fc": (3, 4)}, ring_size=7, seed=12345)
RING = np.linspace(-1, 1, 7, dtype=np.float32)


def document(**changes: object) -> dict:
    """PLAN's JSON document with top-level keys replaced."""
    return {**json.loads(PLAN.to_json()), **changes}


def file_with_plan(tmp_path, plan_json: str):
    """A ring file holding ``plan_json`` with a valid checksum, whatever the plan says."""
    data = ring_file_bytes(PLAN, {"global": RING}, {})
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"]["plan"] = plan_json
    tensors = {"rings/global": RING}
    header["__metadata__"]["checksum"] = ringfile.checksum(plan_json, tensors)
    path = tmp_path / "plan.safetensors"
    path.write_bytes(with_header(json.dumps(header).encode(), data[8 + length :]))
    return path


def test_fuzz_writer_matches_save(tmp_path):
    """The fuzz tests build files in memory; they must be the bytes rpgcore.save writes."""
    extras = {"bias": np.arange(3, dtype=np.float32), "count": np.array(7, dtype=np.int64)}
    model = porting.describe([porting.Tensor("bias", "fc", "linear", "bias", (3,))], [])
    path = tmp_path / "saved.safetensors"
    rpgcore.save(path, PLAN, RING, extras, buffers=["count"], model=model)
    assert path.read_bytes() == ring_file_bytes(PLAN, {"global": RING}, extras, ("count",), model)


# --------------------------------------------------------------------------- header JSON


@pytest.mark.parametrize("where", ["name", "metadata"])
def test_half_surrogate_in_header(tmp_path, where):
    """``"\\ud800"`` is valid JSON text but no Unicode: in a tensor name it escaped as
    UnicodeEncodeError; in the writer's version it loaded, though safetensors refuses the file."""
    data = ring_file_bytes(PLAN, {"global": RING}, {})
    (length,) = struct.unpack("<Q", data[:8])
    text = data[8 : 8 + length].rstrip()
    if where == "name":
        text = text.replace(b'"rings/global"', b'"rings/global\\ud800"')
    else:
        version = f'"rpgcore":"{rpgcore.__version__}"'.encode()
        text = text.replace(version, version[:-1] + b'\\udc00"')  # outside the checksum
    path = tmp_path / "surrogate.safetensors"
    path.write_bytes(with_header(text, data[8 + length :]))
    with pytest.raises(RingFileFormatError, match="surrogate"):
        rpgcore.load(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace(b'{"__metadata__"', b'{"__metadata__":null,"__metadata__"'), "twice"),
        (lambda t: t.replace(b'"spec":"rpg-v1"', b'"spec":"rpg-v1","spec":"rpg-v1"'), "twice"),
        (lambda t: t.replace(b'"dtype":"F32"', b'"dtype":"F32","dtype":"F32"'), "twice"),
        (lambda t: t.replace(b'"data_offsets":[0,28]', b'"data_offsets":[0,28e0]'), "malformed"),
        (lambda t: t.replace(b'"data_offsets":[0,28]', b'"data_offsets":[0,NaN]'), "NaN"),
        (lambda t: t.replace(b'"data_offsets":[0,28]', b'"data_offsets":[0,1e999]'), "double"),
        (lambda t: t.replace(b"[0,28]", b"[0," + b"9" * 5000 + b"]"), "digits"),
        # An unknown key is ignored, but its value must still be a double: safetensors
        # refused this file ("number out of range") while rpgcore loaded it.
        (
            lambda t: t.replace(b'"dtype":"F32"', b'"seed":1' + b"0" * 400 + b',"dtype":"F32"'),
            "double",
        ),
        (lambda t: t.replace(b'{"__metadata__":', b'{"__metadata__":[],"x":'), "strings to"),
    ],
)
def test_ambiguous_header_json(tmp_path, edit, message):
    """JSON that readers disagree on (repeated keys, NaN, 1e999, 5000 digits) is refused."""
    data = ring_file_bytes(PLAN, {"global": RING}, {})
    (length,) = struct.unpack("<Q", data[:8])
    text = data[8 : 8 + length].rstrip()
    changed = edit(text)
    assert changed != text
    path = tmp_path / "ambiguous.safetensors"
    path.write_bytes(with_header(changed, data[8 + length :]))
    with pytest.raises(RingFileFormatError, match=message) as info:
        rpgcore.load(path)
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize("value", [[], 0, False, ""])
def test_metadata_that_is_not_an_object(value):
    """``"__metadata__": []`` (or 0, false, "") used to read as no metadata at all."""
    text = json.dumps(
        {"__metadata__": value, "t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    )
    with pytest.raises(RingFileFormatError, match="strings to strings"):
        safetensors_io.decode(with_header(text.encode(), b"\x01"))
    text = json.dumps(
        {"__metadata__": None, "t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    )
    assert safetensors_io.decode(with_header(text.encode(), b"\x01"))[1] == {}


def test_long_values_are_shortened_in_messages():
    """A tensor name or entry of a megabyte is not copied into the message."""
    name = "x" * 2**20
    text = json.dumps({name: {"dtype": "F32", "shape": ["y" * 2**20], "data_offsets": [0, 4]}})
    with pytest.raises(RingFileFormatError, match="malformed") as info:
        safetensors_io.decode(with_header(text.encode(), bytes(4)))
    assert len(str(info.value)) < 1000


def test_checksum_hashes_tensors_in_place():
    """Hashing a 32 MiB ring must not copy it (the loader's peak memory was twice the file)."""
    ring = np.zeros(2**23, np.float32)
    tracemalloc.start()
    try:
        ringfile.checksum("{}", {"rings/global": ring})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


# --------------------------------------------------------------------------- plan JSON


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PLAN.to_json().replace('"seed":12345', '"seed":1,"seed":12345'), "twice"),
        (PLAN.to_json().replace('"name":"conv"', '"name":"conv\\ud800"'), "surrogate"),
        (PLAN.to_json().replace('"init_std":', '"init_std":NaN,"x":'), "NaN"),
        (PLAN.to_json().replace('"scale":1.0', '"scale":1e999'), "double"),
        (PLAN.to_json().replace('"seed":12345', '"seed":' + "1" * 5000), "digits"),
        (json.dumps(document(layout="channels_last")), "unknown keys"),
        (PLAN.to_json().replace('"ring":"global",', '"ring":"global","offset":3,', 1), "unknown"),
        (PLAN.to_json().replace('"init_std":', '"generated":4,"init_std":'), "unknown keys"),
        (PLAN.to_json().replace('"shape":[3,4]', '"shape":12'), "must be a JSON list"),
        (PLAN.to_json().replace('"name":"fc"', '"name":["fc"]'), "must be a string"),
        (json.dumps(document(rings={"global": 7})), "must be a JSON list"),
        (json.dumps(document(mode=["perm"])), "mode"),
        (PLAN.to_json().encode("utf-16"), "not valid JSON"),
    ],
)
def test_plan_json_is_strict(text, message):
    """Repeated keys, half surrogates, NaN, 1e999, unknown keys and bare shapes are refused."""
    with pytest.raises(PlanError, match=message) as info:
        rpgcore.Plan.from_json(text)
    assert len(str(info.value)) < 1000


def test_plans_with_many_slots_parse_in_linear_time():
    """Repeated ring ids and slot names were found with list.count: 10,000 rings took 14 s."""
    count = 20_000
    big = document(
        rings=[{"name": f"r{i}", "id": i, "size": 7, "init_std": 0.1} for i in range(count)],
        slots=[
            {"name": f"s{i}", "shape": [2], "ring": f"r{i}", "scale": 1.0} for i in range(count)
        ],
    )
    text = json.dumps(big)
    start = time.perf_counter()
    plan = rpgcore.Plan.from_json(text)
    assert time.perf_counter() - start < 10  # about 1 s; quadratic checks took minutes
    assert len(plan.slots) == count


# --------------------------------------------------------------------------- enormous plans


@pytest.mark.parametrize(
    "slots",
    [
        [{"name": "w", "shape": [2**31, 2**31], "ring": "g", "scale": 1.0}],
        [
            {"name": f"w{i}", "shape": [10**6, 10**6], "ring": "g", "scale": 1.0}
            for i in range(1000)
        ],
        [{"name": "w", "shape": [2**62] * 32, "ring": "g", "scale": 1.0}],
    ],
)
def test_plans_claiming_enormous_slots_are_refused(tmp_path, slots):
    """A plan of 2**62 or 10**15 generated parameters used to parse; expanding it cannot work."""
    text = json.dumps(
        document(rings=[{"name": "g", "id": 0, "size": 2**31, "init_std": 0.1}], slots=slots)
    )
    with pytest.raises(PlanError, match=MAX_GENERATED_VARIABLE) as info:
        rpgcore.Plan.from_json(text)
    assert "at least" in str(info.value)
    assert len(str(info.value)) < 1000
    with pytest.raises(RingFileFormatError, match=r"invalid plan.*RPG_MAX_GENERATED"):
        rpgcore.load(file_with_plan(tmp_path, text))


def test_the_generated_limit_is_exact_and_configurable(monkeypatch):
    assert max_generated() == DEFAULT_MAX_GENERATED == 2**40
    exact = rpgcore.Plan.build({"w": (2**20, 2**20)}, ring_size=2**8)
    assert exact.generated_size == 2**40
    with pytest.raises(PlanError, match=MAX_GENERATED_VARIABLE):
        rpgcore.Plan.build({"w": (2**20, 2**20), "b": (1,)}, ring_size=2**8)
    monkeypatch.setenv(MAX_GENERATED_VARIABLE, str(2**44))
    bigger = rpgcore.Plan.build({"w": (2**22, 2**22)}, ring_size=2**12)
    assert rpgcore.Plan.from_json(bigger.to_json()) == bigger
    monkeypatch.setenv(MAX_GENERATED_VARIABLE, "1000")
    with pytest.raises(PlanError, match="more than the limit of 1000"):
        rpgcore.Plan.build({"w": (40, 30)}, ring_size=10)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e9", "2**40", "9" * 200])
def test_a_bad_generated_limit_is_named(monkeypatch, value):
    monkeypatch.setenv(MAX_GENERATED_VARIABLE, value)
    with pytest.raises(ArgumentError, match=f"{MAX_GENERATED_VARIABLE}=.*positive integer"):
        rpgcore.Plan.build({"w": (2, 2)}, ring_size=3)


# --------------------------------------------------------------------------- model description


@pytest.mark.parametrize(
    "tensors",
    [
        [[5, "fc", "linear", "bias"]],
        [["bias", "fc", "linear", "gain"]],
        [["bias", "fc", "dense", "bias"]],
        [["bias", "fc", "linear", "bias", "extra"]],
        ["bias"],
        {"bias": ["fc", "linear", "bias"]},
    ],
)
def test_model_description_is_strict(tmp_path, tensors):
    """Entries were turned into strings with str() and unknown kinds and roles passed."""
    extras = {"bias": np.arange(3, dtype=np.float32)}
    model = json.dumps({"format": "rpgcore-model-1", "layers": [], "tensors": tensors})
    path = tmp_path / "model.safetensors"
    path.write_bytes(ring_file_bytes(PLAN, {"global": RING}, extras, (), model))
    ours = [porting.Tensor("fc.bias", "fc", "linear", "bias", (3,))]
    with pytest.raises(RingFileFormatError, match="model description is malformed") as info:
        porting.read(path, PLAN, ours, [])
    assert not str(info.value).startswith("\"'")  # the path is quoted once
