"""Porting ring files between frameworks: matching by order and shape, never by name."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import rpgcore
from rpgcore import porting, ringfile, safetensors_io
from rpgcore.errors import (
    ArgumentError,
    ChecksumError,
    PlanMismatchError,
    RingFileFormatError,
    SettingsWarning,
)
from rpgcore.porting import Layer, Tensor


def torch_like() -> tuple[rpgcore.Plan, list[Tensor], list[Layer]]:
    plan = rpgcore.Plan.build(
        {"conv1.weight": (8, 3, 3, 3), "conv2.weight": (8, 8, 3, 3)}, ring_size=40, seed=5
    )
    tensors = [
        Tensor("bn1.weight", "bn1", "norm", "scale", (8,)),
        Tensor("bn1.bias", "bn1", "norm", "offset", (8,)),
        Tensor("bn1.running_mean", "bn1", "norm", "mean", (8,), buffer=True),
        Tensor("bn1.running_var", "bn1", "norm", "var", (8,), buffer=True),
        Tensor("bn1.num_batches_tracked", "bn1", "norm", "native", (), buffer=True),
        Tensor("fc.weight", "fc", "linear", "weight", (10, 8)),
        Tensor("fc.bias", "fc", "linear", "bias", (10,)),
    ]
    layers = [
        Layer("conv1", "conv", {"stride": [1, 1], "padding": [[1, 1], [1, 1]]}),
        Layer("bn1", "norm", {"eps": 1e-5, "momentum": 0.1}),
    ]
    return plan, tensors, layers


def keras_like(eps: float = 1e-5) -> tuple[rpgcore.Plan, list[Tensor], list[Layer]]:
    """The same architecture under another framework's names (no num_batches_tracked)."""
    plan = rpgcore.Plan.build(
        {"conv2d/kernel": (8, 3, 3, 3), "conv2d_1/kernel": (8, 8, 3, 3)}, ring_size=40, seed=5
    )
    tensors = [
        Tensor("bn/gamma", "bn", "norm", "scale", (8,)),
        Tensor("bn/beta", "bn", "norm", "offset", (8,)),
        Tensor("bn/moving_mean", "bn", "norm", "mean", (8,), buffer=True),
        Tensor("bn/moving_variance", "bn", "norm", "var", (8,), buffer=True),
        Tensor("dense/kernel", "dense", "linear", "weight", (10, 8)),
        Tensor("dense/bias", "dense", "linear", "bias", (10,)),
    ]
    layers = [
        Layer("conv2d", "conv", {"stride": [1, 1], "padding": [[1, 1], [1, 1]]}),
        Layer("bn", "norm", {"eps": eps, "momentum": 0.1}),
    ]
    return plan, tensors, layers


def values_for(tensors: list[Tensor], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        t.name: (
            np.array(7, np.int64)
            if t.role == "native"
            else rng.standard_normal(t.shape).astype(np.float32)
        )
        for t in tensors
    }


@pytest.fixture
def torch_file(tmp_path):
    plan, tensors, layers = torch_like()
    values = values_for(tensors)
    ring = plan.init_ring("global") * 3
    path = tmp_path / "t.rpg.safetensors"
    porting.save(path, plan, ring, tensors, values, layers)
    return path, ring, values


def test_loads_across_names_by_order(torch_file):
    path, ring, values = torch_file
    plan, tensors, layers = keras_like()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # identical settings: no warning at all
        rings, loaded, _ = porting.read(path, plan, tensors, layers)
    assert np.array_equal(rings["global"], ring)
    pairs = {
        "bn/gamma": "bn1.weight",
        "bn/beta": "bn1.bias",
        "bn/moving_mean": "bn1.running_mean",
        "bn/moving_variance": "bn1.running_var",
        "dense/kernel": "fc.weight",
        "dense/bias": "fc.bias",
    }
    assert set(loaded) == set(pairs)
    for ours, theirs in pairs.items():
        assert np.array_equal(loaded[ours], values[theirs])


def test_native_tensor_comes_back_in_its_own_framework(torch_file):
    path, _, values = torch_file
    plan, tensors, layers = torch_like()
    _, loaded, _ = porting.read(path, plan, tensors, layers)
    assert set(loaded) == {t.name for t in tensors}
    for name, value in values.items():
        assert np.array_equal(loaded[name], value)


def test_ring_names_follow_the_model():
    plan_a = rpgcore.Plan.build(
        {"a": (4, 4), "b": (4, 2)},
        ring_size={"layer1": 5, "layer2": 3},
        groups={"a": "layer1", "b": "layer2"},
    )
    plan_b = rpgcore.Plan.build(
        {"x": (4, 4), "y": (4, 2)},
        ring_size={"stage_0": 5, "stage_1": 3},
        groups={"x": "stage_0", "y": "stage_1"},
    )
    assert porting.match_plans(plan_a, plan_b) == {"layer1": "stage_0", "layer2": "stage_1"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": 6}, "seed 5.*seed 6"),
        ({"ring_size": 41}, "size 40 generating .* size 41"),
        (
            {"shape": (8, 8, 1, 1)},
            r"generated layer 1 differs.*'conv2.weight' has shape \(8, 8, 3, 3\)"
            r".*'conv2d_1/kernel' has shape \(8, 8, 1, 1\)",
        ),
    ],
)
def test_plan_mismatch_names_the_first_difference(torch_file, change, message):
    path, _, _ = torch_file
    _, tensors, layers = keras_like()
    plan = rpgcore.Plan.build(
        {"conv2d/kernel": (8, 3, 3, 3), "conv2d_1/kernel": change.get("shape", (8, 8, 3, 3))},
        ring_size=change.get("ring_size", 40),
        seed=change.get("seed", 5),
    )
    with pytest.raises(PlanMismatchError, match=message):
        porting.read(path, plan, tensors, layers)


def test_extra_slot_is_named(torch_file):
    path, _, _ = torch_file
    _, tensors, layers = keras_like()
    plan = rpgcore.Plan.build(
        {"c": (8, 3, 3, 3), "d": (8, 8, 3, 3), "e": (2, 2)}, ring_size=40, seed=5
    )
    with pytest.raises(PlanMismatchError, match=r"2 generated layers, the model 3.*'e' \(2, 2\)"):
        porting.read(path, plan, tensors, layers)


def test_tensor_shape_mismatch_names_both(torch_file):
    path, _, _ = torch_file
    plan, tensors, layers = keras_like()
    tensors[4] = Tensor("dense/kernel", "dense", "linear", "weight", (10, 9))
    with pytest.raises(
        PlanMismatchError,
        match=r"tensor 4 differs: the file's 'fc.weight' .* shape \(10, 8\), "
        r"the model's 'dense/kernel' .* shape \(10, 9\)",
    ):
        porting.read(path, plan, tensors, layers)


def test_tensor_role_mismatch(torch_file):
    path, _, _ = torch_file
    plan, tensors, layers = keras_like()
    tensors[0], tensors[1] = tensors[1], tensors[0]  # offset before scale: wrong order
    with pytest.raises(PlanMismatchError, match="tensor 0 differs"):
        porting.read(path, plan, tensors, layers)


def test_tensor_count_mismatch(torch_file):
    path, _, _ = torch_file
    plan, tensors, layers = keras_like()
    with pytest.raises(PlanMismatchError, match=r"'fc.bias' \(linear bias\) \(10,\) has no"):
        porting.read(path, plan, tensors[:-1], layers)
    extra = [*tensors, Tensor("head/bias", "head", "linear", "bias", (3,))]
    with pytest.raises(PlanMismatchError, match=r"model's 'head/bias'"):
        porting.read(path, plan, extra, layers)


def test_settings_warning_names_the_layer(torch_file):
    path, _, _ = torch_file
    plan, tensors, layers = keras_like(eps=1e-3)
    with pytest.warns(SettingsWarning, match=r"norm layer 'bn' \(the file's 'bn1'\).*eps 1e-05"):
        porting.read(path, plan, tensors, layers)


def test_settings_warning_when_counts_differ(torch_file):
    path, _, _ = torch_file
    plan, tensors, layers = keras_like()
    with pytest.warns(SettingsWarning, match="describes 1 conv layers, the model has 0"):
        porting.read(path, plan, tensors, layers[1:])


def test_model_description_is_checksummed(torch_file):
    path, _, _ = torch_file
    tensors, metadata = safetensors_io.decode(bytearray(path.read_bytes()))
    record = json.loads(metadata["model"])
    record["tensors"][0][3] = "offset"
    metadata["model"] = json.dumps(record)
    path.write_bytes(safetensors_io.encode(tensors, metadata))
    with pytest.raises(ChecksumError):
        rpgcore.load(path)


def test_malformed_description_is_a_format_error(tmp_path):
    plan = rpgcore.Plan.build({"w": (2, 2)}, ring_size=3)
    path = tmp_path / "bad.safetensors"
    ringfile.save(path, plan, plan.init_ring(), {"b": np.zeros(2)}, model='{"format": 3}')
    with pytest.raises(RingFileFormatError, match="model description is malformed"):
        porting.read(path, plan, [Tensor("b", "fc", "linear", "bias", (2,))], [])
    listed = porting.describe([Tensor("c", "fc", "linear", "bias", (2,))], [])
    ringfile.save(path, plan, plan.init_ring(), {"b": np.zeros(2)}, model=listed)
    with pytest.raises(RingFileFormatError, match="does not list exactly its tensors"):
        porting.read(path, plan, [Tensor("b", "fc", "linear", "bias", (2,))], [])


def test_file_without_description_matches_by_name(tmp_path):
    plan = rpgcore.Plan.build({"w": (2, 2)}, ring_size=3)
    path = tmp_path / "plain.safetensors"
    rpgcore.save(path, plan, plan.init_ring(), {"b": np.arange(2.0)})
    _, values, _ = porting.read(path, plan, [Tensor("b", "fc", "linear", "bias", (2,))], [])
    assert values["b"].tolist() == [0.0, 1.0]
    with pytest.raises(PlanMismatchError, match=r"missing \['c'\], unknown \['b'\]"):
        porting.read(path, plan, [Tensor("c", "fc", "linear", "bias", (2,))], [])
    with pytest.raises(PlanMismatchError, match=r"'b' has shape \(2,\) in the file, \(3,\)"):
        porting.read(path, plan, [Tensor("b", "fc", "linear", "bias", (3,))], [])


def test_save_checks_values(tmp_path):
    plan = rpgcore.Plan.build({"w": (2, 2)}, ring_size=3)
    described = [Tensor("b", "fc", "linear", "bias", (2,))]
    with pytest.raises(ArgumentError, match="have no value"):
        porting.save(tmp_path / "x", plan, plan.init_ring(), described, {}, [])
    with pytest.raises(ArgumentError, match=r"shape \(2,\) but its value has shape \(3,\)"):
        porting.save(tmp_path / "x", plan, plan.init_ring(), described, {"b": np.zeros(3)}, [])
    twice = described * 2
    with pytest.raises(ArgumentError, match="more than once"):
        porting.save(tmp_path / "x", plan, plan.init_ring(), twice, {"b": np.zeros(2)}, [])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "pool"}, "kind 'pool'"),
        ({"role": "gamma"}, "role 'gamma'"),
        ({"shape": (2, -1)}, "is not a shape"),
        ({"name": ""}, "non-empty string"),
    ],
)
def test_bad_descriptions(kwargs, message):
    fields = {"name": "b", "layer": "fc", "kind": "linear", "role": "bias", "shape": (2,)}
    with pytest.raises(ArgumentError, match=message):
        Tensor(**{**fields, **kwargs})


def test_layer_settings_must_be_json():
    with pytest.raises(ArgumentError, match="not JSON"):
        Layer("bn", "norm", {"eps": float("nan")})
    assert Layer("c", "conv", {"stride": (2, 2)}).settings == {"stride": [2, 2]}


@pytest.mark.parametrize(
    ("padding", "kernel", "stride", "dilation", "expected"),
    [
        ("same", (3, 3), (1, 1), None, [[1, 1], [1, 1]]),
        ("same", (4,), (1,), None, [[1, 2]]),  # even kernel: the extra pad at the end
        ("same", (3,), (1,), (2,), [[2, 2]]),
        ("SAME", (3, 3), (2, 2), None, "same"),  # depends on the input size
        ("valid", (3, 3), (2, 2), None, [[0, 0], [0, 0]]),
        ((1, 2), (3, 5), (2, 2), None, [[1, 1], [2, 2]]),
        (((0, 1), (1, 0)), (3, 3), (2, 2), None, [[0, 1], [1, 0]]),
    ],
)
def test_padding_pairs(padding, kernel, stride, dilation, expected):
    assert porting.padding_pairs(padding, kernel, stride, dilation) == expected


@pytest.mark.parametrize("padding", ["full", (1,), ((1, 2, 3),)])
def test_padding_pairs_rejects(padding):
    with pytest.raises(ArgumentError):
        porting.padding_pairs(padding, (3,) if padding != (1,) else (3, 3), (1,) * 1)
