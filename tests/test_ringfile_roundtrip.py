"""Ring file round trips, interoperability with safetensors, and the codec property test."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from ringfile_support import assert_same_array, craft, listing

import rpgcore
from rpgcore import ringfile, safetensors_io
from rpgcore.errors import RingFileFormatError

# --------------------------------------------------------------------------- helpers

ALL_DTYPES = [
    np.bool_,
    np.int8,
    np.uint8,
    np.int16,
    np.uint16,
    np.int32,
    np.uint32,
    np.int64,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_round_trip_ring_bits(tmp_path, plan, dtype):
    ring = plan.init_ring(dtype=dtype)["global"]
    ring[0] = -0.0
    ring[1] = np.inf
    ring[2] = np.nan
    path = tmp_path / "model.rpg.safetensors"
    rpgcore.save(path, plan, ring)
    loaded_plan, rings, extras = rpgcore.load(path)
    assert loaded_plan == plan
    assert loaded_plan.to_json() == plan.to_json()
    assert list(rings) == ["global"]
    assert_same_array(rings["global"], ring)
    assert extras == {}


def test_round_trip_accepts_str_path_and_mapping(tmp_path, plan):
    ring = plan.init_ring()["global"]
    path = str(tmp_path / "m.safetensors")
    rpgcore.save(path, plan, {"global": ring})
    _, rings, _ = rpgcore.load(path)
    assert_same_array(rings["global"], ring)


def extremes(dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.array([[True, False], [False, True]])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.array([info.min, info.max, 0, 1, info.max // 3], dtype=dtype)
    info = np.finfo(dtype)
    return np.array(
        [[info.min, info.max, info.tiny, -0.0], [np.inf, -np.inf, np.nan, 1.5]], dtype=dtype
    )


def test_round_trip_extras_of_every_dtype(tmp_path, plan):
    extras = {f"x_{np.dtype(d).name}": extremes(d) for d in ALL_DTYPES}
    extras["empty_f32"] = np.zeros((0,), np.float32)
    extras["layer1.0.bn1.running_var"] = np.linspace(0.5, 2.0, 8, dtype=np.float32)
    extras["nested/name with spaces, é"] = np.arange(6, dtype=np.int16).reshape(2, 3)
    path = tmp_path / "m.safetensors"
    rpgcore.save(path, plan, plan.init_ring(), extras=extras)
    loaded_plan, _, loaded = rpgcore.load(path)
    assert loaded_plan == plan
    assert sorted(loaded) == sorted(extras)
    for name, value in extras.items():
        assert_same_array(loaded[name], value)


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.bool_])
def test_round_trip_zero_dim_extra(tmp_path, plan, dtype):
    # A BatchNorm num_batches_tracked is a 0-d int64 tensor.
    value = np.array(3, dtype=dtype)
    path = tmp_path / "m.safetensors"
    rpgcore.save(path, plan, plan.init_ring(), extras={"bn.num_batches_tracked": value})
    assert safetensors.numpy.load_file(path)["extras/bn.num_batches_tracked"].shape == ()
    _, _, extras = rpgcore.load(path)
    assert_same_array(extras["bn.num_batches_tracked"], value)


# Regression: save once wrote memoryview(array).cast("B"), which refuses
# multi-dimensional arrays with a zero in the shape (TypeError).
@pytest.mark.parametrize("shape", [(3, 0), (0, 4), (2, 0, 2)])
def test_round_trip_empty_multidimensional_extra(tmp_path, plan, shape):
    value = np.zeros(shape, np.int64)
    path = tmp_path / "m.safetensors"
    try:
        rpgcore.save(path, plan, plan.init_ring(), extras={"empty": value})
    finally:
        assert listing(tmp_path) in ([], [path.name])  # never a stray temporary file
    _, _, extras = rpgcore.load(path)
    assert_same_array(extras["empty"], value)


def test_empty_multidimensional_extra_through_codec():
    # The in-memory codec (tobytes) has no such problem.
    value = np.zeros((3, 0), np.int64)
    decoded, _ = safetensors_io.decode(safetensors_io.encode({"e": value}, {}))
    assert_same_array(decoded["e"], value)


def test_zero_dim_extra_keeps_its_value(tmp_path, plan):
    # What works today even with the 0-d shape bug: the value and dtype survive.
    path = tmp_path / "m.safetensors"
    rpgcore.save(path, plan, plan.init_ring(), extras={"n": np.array(41, dtype=np.int64)})
    _, _, extras = rpgcore.load(path)
    assert extras["n"].dtype == np.int64
    assert extras["n"].size == 1
    assert int(extras["n"].reshape(())) == 41


def test_zero_dim_written_by_safetensors_loads_as_zero_dim(tmp_path, plan):
    ring = plan.init_ring()["global"]
    tensors = {"rings/global": ring, "extras/n": np.array(5, dtype=np.int64)}
    path = tmp_path / "st.safetensors"
    craft(path, plan.to_json(), tensors)
    _, _, extras = rpgcore.load(path)
    assert_same_array(extras["n"], np.array(5, dtype=np.int64))


def test_round_trip_multi_ring(tmp_path, multi_plan):
    rings = {
        "body": multi_plan.init_ring("body", dtype=np.float16),
        "head": multi_plan.init_ring("head", dtype=np.float64),
    }
    path = tmp_path / "multi.safetensors"
    rpgcore.save(path, multi_plan, rings, extras={"b": np.ones(2)})
    loaded_plan, loaded, extras = rpgcore.load(path)
    assert loaded_plan == multi_plan
    assert loaded_plan.ring_sizes == {"body": 6, "head": 3}
    assert loaded_plan.seed == 2**64 - 1
    assert list(loaded) == ["body", "head"]
    for name, ring in rings.items():
        assert_same_array(loaded[name], ring)
    assert_same_array(extras["b"], np.ones(2))
    # The loaded rings generate the same kernels.
    for name, kernel in multi_plan.expand(rings).items():
        np.testing.assert_array_equal(loaded_plan.expand(loaded)[name], kernel)


def test_big_endian_input_is_saved_little_endian(tmp_path, plan):
    ring = plan.init_ring()["global"]
    extras = {
        "f8": np.array([1.5, -2.25, np.pi]),
        "i8": np.array([-(2**40), 3, 2**62]),
        "u2": np.array([1, 258, 65535], dtype=np.uint16),
    }
    native_path = tmp_path / "native.safetensors"
    big_path = tmp_path / "big.safetensors"
    rpgcore.save(native_path, plan, ring, extras=extras)
    rpgcore.save(
        big_path,
        plan,
        ring.astype(np.dtype(">f4")),
        extras={
            name: value.astype(value.dtype.newbyteorder(">")) for name, value in extras.items()
        },
    )
    # Same bytes on disk, whatever the input byte order.
    assert big_path.read_bytes() == native_path.read_bytes()
    _, rings, loaded = rpgcore.load(big_path)
    assert_same_array(rings["global"], ring)
    for name, value in extras.items():
        assert_same_array(loaded[name], value)
    # And the real safetensors package reads the right values.
    from_st = safetensors.numpy.load_file(big_path)
    np.testing.assert_array_equal(from_st["rings/global"], ring)
    np.testing.assert_array_equal(from_st["extras/i8"], extras["i8"])


def test_read_metadata(tmp_path, plan):
    path = tmp_path / "m.safetensors"
    rpgcore.save(path, plan, plan.init_ring())
    metadata = ringfile.read_metadata(path)
    assert metadata["format"] == "rpgcore-ring"
    assert metadata["spec"] == rpgcore.SPEC_VERSION
    assert metadata["rpgcore"] == rpgcore.__version__
    assert rpgcore.Plan.from_json(metadata["plan"]) == plan
    assert metadata["checksum"].startswith("sha256:")
    assert len(metadata["checksum"]) == len("sha256:") + 64


def test_checksum_depends_on_every_part():
    base = {"rings/global": np.zeros(3, np.float32)}
    reference = ringfile.checksum("{}", base)
    assert reference.startswith("sha256:")
    variants = [
        ringfile.checksum("{ }", base),
        ringfile.checksum("{}", {"rings/other": np.zeros(3, np.float32)}),
        ringfile.checksum("{}", {"rings/global": np.zeros(3, np.float64)}),
        ringfile.checksum("{}", {"rings/global": np.zeros((3, 1), np.float32)}),
        ringfile.checksum("{}", {"rings/global": np.array([0, 0, 1], np.float32)}),
    ]
    assert len({reference, *variants}) == 1 + len(variants)
    # Byte order does not matter, only the values.
    assert ringfile.checksum("{}", {"rings/global": np.zeros(3, ">f4")}) == reference


# --------------------------------------------------------------------------- interoperability


def test_rpgcore_file_reads_with_safetensors(tmp_path, plan):
    ring = plan.init_ring(dtype=np.float64)["global"]
    extras = {d: extremes(d) for d in ("int8", "uint64", "float16", "bool")}
    path = tmp_path / "m.safetensors"
    rpgcore.save(path, plan, ring, extras=extras)
    tensors = safetensors.numpy.load_file(path)
    assert sorted(tensors) == sorted(["rings/global", *(f"extras/{n}" for n in extras)])
    assert_same_array(tensors["rings/global"], ring)
    for name, value in extras.items():
        assert_same_array(tensors[f"extras/{name}"], value)
    with safetensors.safe_open(str(path), framework="np") as handle:
        metadata = handle.metadata()
    assert metadata == ringfile.read_metadata(path)
    assert metadata["format"] == "rpgcore-ring"
    assert metadata["spec"] == "rpg-v1"
    assert metadata["rpgcore"] == rpgcore.__version__
    assert rpgcore.Plan.from_json(metadata["plan"]) == plan
    assert metadata["checksum"] == ringfile.checksum(plan.to_json(), tensors)


def test_safetensors_file_reads_with_rpgcore(tmp_path, multi_plan):
    tensors = {
        "rings/body": multi_plan.init_ring("body", dtype=np.float64),
        "rings/head": multi_plan.init_ring("head", dtype=np.float16),
        "extras/bias": np.arange(5, dtype=np.float32),
        "extras/mask": np.array([True, False, True]),
        "extras/steps": np.array(9, dtype=np.int64),
    }
    path = tmp_path / "st.safetensors"
    craft(path, multi_plan.to_json(), tensors)
    loaded_plan, rings, extras = rpgcore.load(path)
    assert loaded_plan == multi_plan
    assert_same_array(rings["body"], tensors["rings/body"])
    assert_same_array(rings["head"], tensors["rings/head"])
    assert sorted(extras) == ["bias", "mask", "steps"]
    for name, value in extras.items():
        assert_same_array(value, tensors[f"extras/{name}"])


def test_safetensors_in_memory_bytes_decode(plan):
    tensors = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.ones(4, np.float16)}
    data = safetensors.numpy.save(tensors, metadata={"k": "v"})
    decoded, metadata = safetensors_io.decode(data)
    assert metadata == {"k": "v"}
    for name, value in tensors.items():
        assert_same_array(decoded[name], value)


def test_plain_safetensors_file_is_not_a_ring_file(tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file({"weight": np.ones((2, 2), np.float32)}, str(path))
    with pytest.raises(RingFileFormatError, match="not an rpgcore ring file"):
        rpgcore.load(path)
    with pytest.raises(RingFileFormatError, match="not an rpgcore ring file"):
        ringfile.read_metadata(path)


def test_other_format_metadata_is_not_a_ring_file(tmp_path, plan):
    tensors = {"rings/global": plan.init_ring()["global"]}
    path = tmp_path / "other.safetensors"
    craft(path, plan.to_json(), tensors, format="pt")
    with pytest.raises(RingFileFormatError, match="'pt'"):
        rpgcore.load(path)


def test_ring_format_without_plan_is_rejected(tmp_path, plan):
    path = tmp_path / "noplan.safetensors"
    craft(path, plan.to_json(), {"rings/global": plan.init_ring()["global"]}, plan=None)
    with pytest.raises(RingFileFormatError, match="not an rpgcore ring file"):
        rpgcore.load(path)


def test_tensor_outside_namespaces_is_rejected(tmp_path, plan):
    tensors = {"rings/global": plan.init_ring()["global"], "weight": np.ones(2, np.float32)}
    path = tmp_path / "stray.safetensors"
    craft(path, plan.to_json(), tensors)
    with pytest.raises(RingFileFormatError, match="'weight'"):
        rpgcore.load(path)


# --------------------------------------------------------------------------- codec property test

NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12
).filter(lambda name: name != "__metadata__")  # a reserved name, see the report
DTYPES = st.sampled_from(
    [np.dtype(d) for d in ALL_DTYPES] + [np.dtype(">i4"), np.dtype(">f8"), np.dtype(">u2")]
)
# min_dims=1: 0-d arrays hit the ascontiguousarray bug (test_round_trip_zero_dim_extra).
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)
ARRAYS = DTYPES.flatmap(lambda dtype: hnp.arrays(dtype, SHAPES))
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    tensors=st.dictionaries(NAMES, ARRAYS, max_size=5),
    metadata=st.dictionaries(TEXT, TEXT, max_size=3),
)
def test_codec_round_trip(tensors, metadata):
    data = safetensors_io.encode(tensors, metadata)
    (header_length,) = struct.unpack("<Q", data[:8])
    assert (8 + header_length) % 8 == 0
    assert len(data) == 8 + header_length + sum(a.nbytes for a in tensors.values())
    decoded, decoded_metadata = safetensors_io.decode(data)
    assert decoded_metadata == metadata
    assert sorted(decoded) == sorted(tensors)
    for name, value in tensors.items():
        assert_same_array(decoded[name], value)
    # The real safetensors package reads the same tensors.
    theirs = safetensors.numpy.load(data)
    assert sorted(theirs) == sorted(tensors)
    for name, value in tensors.items():
        assert_same_array(np.asarray(theirs[name]), value)
