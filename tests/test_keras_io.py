"""Ring files: save and load on this backend, and to and from the PyTorch adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REQUIRED, need, require

keras = require("keras")

from keras_support import inputs, keras_small_model, to_numpy, torch_reference  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore.adapters import keras as rpg  # noqa: E402
from rpgcore.errors import ArgumentError, PlanMismatchError, SettingsWarning  # noqa: E402


def _fresh(**kwargs: Any) -> Any:
    return rpg.rpgify(rpg.models.small_resnet(width=4), **{"ring_size": 500, "seed": 3, **kwargs})


def _weights(model: Any) -> dict[str, np.ndarray]:
    return {w.path: to_numpy(w) for w in model.weights}


def test_round_trip_restores_every_weight(tmp_path: Path) -> None:
    model = keras_small_model()
    path = tmp_path / "small.rpg.safetensors"
    rpg.save(model, path)
    other = _fresh()
    assert not np.array_equal(_weights(other)["bn1/gamma"], _weights(model)["bn1/gamma"])
    rpg.load(other, path)
    ours, theirs = _weights(model), _weights(other)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name
    x = inputs()
    assert np.array_equal(to_numpy(model(x, training=False)), to_numpy(other(x, training=False)))


def test_the_file_is_a_ring_file_in_the_canonical_layout(tmp_path: Path) -> None:
    model = keras_small_model()
    path = tmp_path / "small.rpg.safetensors"
    rpg.save(model, path)
    content = rpgcore.ringfile.load_file(path)
    assert content.plan == rpg.plan_of(model)
    assert np.array_equal(content.rings["global"], to_numpy(rpg.rings_of(model)["global"].variable))
    fc = to_numpy(model.get_layer("fc").kernel)
    assert np.array_equal(content.extras["fc/kernel"], fc.T)  # (out, in), as PyTorch's
    assert "bn1/moving_variance" in content.buffers
    assert "bn1/gamma" not in content.buffers
    assert not any(name.endswith("/ring") or "index" in name for name in content.extras)


@pytest.fixture(scope="module")
def reference() -> Path:
    need("torch", required="torch" in REQUIRED)
    return torch_reference()


def test_a_file_trained_in_pytorch_gives_the_same_function(reference: Path) -> None:
    model = _fresh()
    rpg.load(model, reference / "torch_small.rpg.safetensors")
    ours = to_numpy(model(inputs(), training=False))
    theirs = np.load(reference / "torch_logits.npy", allow_pickle=False)
    assert np.abs(theirs).max() > 0.1
    # Two frameworks' float32 convolutions and batch norms sum in different
    # orders: a few ulps per operation through eight layers on O(1) values.
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_a_file_written_here_gives_the_same_function_in_pytorch(reference: Path) -> None:
    ours = np.load(reference / "keras_logits.npy", allow_pickle=False)
    theirs = np.load(reference / "keras_in_torch_logits.npy", allow_pickle=False)
    assert np.abs(ours).max() > 0.1
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)  # as above


def test_a_model_loaded_from_a_keras_file_saves_the_same_ring_file(tmp_path: Path) -> None:
    model = keras_small_model()
    model.save(tmp_path / "small.keras")
    loaded = keras.models.load_model(tmp_path / "small.keras")
    rpg.save(model, tmp_path / "a.rpg.safetensors")
    rpg.save(loaded, tmp_path / "b.rpg.safetensors")
    a = rpgcore.ringfile.load_file(tmp_path / "a.rpg.safetensors")
    b = rpgcore.ringfile.load_file(tmp_path / "b.rpg.safetensors")
    assert a.plan == b.plan
    assert a.model == b.model
    assert all(np.array_equal(a.extras[name], b.extras[name]) for name in a.extras)


def test_mismatches_name_the_difference(tmp_path: Path) -> None:
    path = tmp_path / "small.rpg.safetensors"
    rpg.save(keras_small_model(), path)
    with pytest.raises(PlanMismatchError, match=r"size 500 .* size 400"):
        rpg.load(_fresh(ring_size=400), path)
    with pytest.raises(PlanMismatchError, match=r"seed 3, .*seed 4"):
        rpg.load(_fresh(seed=4), path)
    wider = rpg.rpgify(rpg.models.small_resnet(width=5), ring_size=500, seed=3)
    with pytest.raises(PlanMismatchError, match=r"\(4, 1, 3, 3\).*\(5, 1, 3, 3\)"):
        rpg.load(wider, path)
    with pytest.raises(ArgumentError, match="rpgify first"):
        rpg.load(rpg.models.small_resnet(width=4), path)


def test_different_settings_warn_naming_the_layer(tmp_path: Path) -> None:
    path = tmp_path / "small.rpg.safetensors"
    rpg.save(keras_small_model(), path)
    model = _fresh()
    model.get_layer("layer2_0_bn1").epsilon = 1e-3
    with pytest.warns(SettingsWarning, match="layer2_0_bn1.*eps 1e-05 in the file, 0.001 here"):
        rpg.load(model, path)
