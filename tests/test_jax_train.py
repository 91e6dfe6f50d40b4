"""JAX training: determinism, learning, checkpoints, agreement with PyTorch, the train command."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import REQUIRED, need, require

jax = require("jax")
flax = importlib.import_module("flax") if "jax" in REQUIRED else require("flax")
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore import safetensors_io  # noqa: E402
from rpgcore.adapters import jax as rpg  # noqa: E402
from rpgcore.adapters.jax import train  # noqa: E402
from rpgcore.data import Dataset  # noqa: E402
from rpgcore.errors import ArgumentError  # noqa: E402
from rpgcore.training import TrainConfig  # noqa: E402


def _blobs(count: int = 240, seed: int = 0) -> Dataset:
    """Three separable classes of 8x8 one-channel images (class c: a bright row band)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    images = rng.random((count, 8, 8, 1), dtype=np.float32) * 0.3
    for c in range(3):
        images[labels == c, 2 * c : 2 * c + 2, :, 0] += 0.7
    split = count * 3 // 4
    return Dataset(
        "blobs", images[:split], labels[:split], images[split:], labels[split:], 3, "memory"
    )


def _ring(model: nnx.Module) -> np.ndarray:
    return np.asarray(model.rpg_bank.ring("global")[...])


def _prepared(data: Dataset) -> nnx.Module:
    # one model configuration (the plan is static in NNX's graph): compiled once per session
    return train.prepare("small_resnet", data, width=4, ring_size=500, seed=3)


def _trained(epochs: int = 2) -> tuple[nnx.Module, rpgcore.training.TrainResult]:
    data = _blobs()
    model = _prepared(data)
    config = TrainConfig(epochs=epochs, batch_size=45, seed=3, schedule="cosine")
    return model, train.fit(model, data, config)


@nnx.jit
def _forward(model: nnx.Module, x: jax.Array) -> jax.Array:
    return model(x)


def test_training_is_deterministic_and_learns() -> None:
    first, result = _trained(epochs=3)
    second, again = _trained(epochs=3)
    assert np.array_equal(_ring(first), _ring(second))
    assert [r.train_loss for r in result.history] == [r.train_loss for r in again.history]
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.test_accuracy > 0.9  # chance is 1/3; the classes differ by a bright band
    ordinary = result.dof - 500
    assert result.dense == ordinary + rpg.plan_of(first).generated_size
    # running statistics were updated in training mode, and evaluation left eval mode on
    assert not np.array_equal(np.asarray(first.bn1.var[...]), np.ones(4, np.float32))
    assert first.bn1.use_running_average


def test_checkpoint_is_a_ring_file_that_reloads_to_the_same_outputs(tmp_path: Path) -> None:
    data = _blobs()
    model = _prepared(data)
    path = tmp_path / "ckpt.rpg.safetensors"
    train.fit(model, data, TrainConfig(epochs=1, batch_size=45), checkpoint=path)
    fresh = _prepared(data)
    rpg.load(fresh, path)
    x = jnp.asarray(data.x_test)
    fresh.eval()
    assert model.bn1.use_running_average  # fit leaves the model in eval mode
    assert np.array_equal(np.asarray(_forward(model, x)), np.asarray(_forward(fresh, x)))
    plan, rings, _ = rpgcore.load(path)
    assert plan == rpg.plan_of(model)
    assert rings["global"].size == plan.ring_parameters


def test_vanilla_checkpoint_is_plain_safetensors(tmp_path: Path) -> None:
    data = _blobs()
    model = train.prepare("small_resnet", data, width=2, seed=0)
    assert train.count_parameters(model) == (1321, 1321)  # the PyTorch count at width 2
    path = tmp_path / "plain.safetensors"
    train.fit(model, data, TrainConfig(epochs=1, batch_size=90), checkpoint=path)
    tensors, metadata = safetensors_io.decode(path.read_bytes())
    assert metadata["format"] == "flax"
    if "training" in metadata:  # fit's checkpoints record what the model was trained on
        assert json.loads(metadata["training"])["classes"] == data.classes
    assert tensors["conv1.kernel"].shape == (2, 1, 3, 3)  # canonical layout
    np.testing.assert_array_equal(tensors["fc.kernel"], np.asarray(model.fc.kernel[...]).T)


def test_ten_sgd_steps_agree_with_torch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from rpgcore.adapters import torch as rpg_torch
    from rpgcore.adapters.torch import train as train_torch

    data = _blobs(count=107)  # 80 training images: 10 steps of 8
    config = TrainConfig(epochs=1, batch_size=8, lr=0.05, schedule="constant", seed=2)
    theirs = train_torch.prepare("small_resnet", data, width=4, ring_size=300, seed=5)
    ours = train.prepare("small_resnet", data, width=4, ring_size=300, seed=5)
    path = tmp_path / "start.rpg.safetensors"
    rpg_torch.save(theirs, path)
    rpg.load(ours, path)  # the same start: the ring by seed, the head from torch's init
    assert np.array_equal(_ring(ours), theirs.rpg_ring_global.detach().numpy())
    train_torch.fit(theirs, data, config)
    train.fit(ours, data, config)
    want = theirs.rpg_ring_global.detach().numpy()
    moved = np.abs(want - rpg.plan_of(ours).init_ring("global")).max()
    assert moved > 1e-3  # the steps did move the ring
    # The same function and updates (SGD with momentum 0.9 and weight decay on
    # the ring too); only float32 summation orders differ (convolutions, batch
    # norm means, the ring gradient's scatter-add), ~1e-7 relative per step,
    # grown over 10 momentum steps through batch norm: well inside 1e-4.
    np.testing.assert_allclose(_ring(ours), want, rtol=0, atol=1e-4 * np.abs(want).max())
    np.testing.assert_allclose(
        np.asarray(ours.fc.kernel[...]).T, theirs.fc.weight.detach().numpy(), rtol=0, atol=1e-4
    )
    np.testing.assert_allclose(
        np.asarray(ours.layer2[0].bn1.var[...]),
        theirs.layer2[0].bn1.running_var.numpy(),
        rtol=1e-4,
        atol=1e-6,
    )


def test_bad_settings_are_clear_errors() -> None:
    data = _blobs()
    model = train.prepare("small_resnet", data, width=2, seed=0)
    model.fc.kernel[...] = jnp.full(model.fc.kernel[...].shape, jnp.nan)
    with pytest.raises(ArgumentError, match="lower the learning rate"):
        train.fit(model, data, TrainConfig(epochs=1, batch_size=90))
    with pytest.raises(ArgumentError, match="not a JAX device"):
        train.fit(model, data, TrainConfig(device="tpu7"))
    with pytest.raises(ArgumentError, match="unknown"):
        train.build_model("vgg", data)


def test_logits_are_the_eval_mode_outputs_in_batches() -> None:
    data = _blobs()
    model, _ = _trained(epochs=1)
    out = train.logits(model, data.x_test, batch_size=45)  # a full batch and a partial one
    assert out.shape == (60, 3)
    assert out.dtype == np.float32
    want = np.asarray(_forward(model, jnp.asarray(data.x_test)))
    # the same eval-mode function, compiled for batches of 45 and 15 instead of 60:
    # XLA may block the convolutions differently, so allow float32 rounding
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-5)


def test_evaluate_counts_correct_predictions() -> None:
    model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    model.kernel[...] = jnp.eye(2)
    model.bias[...] = jnp.zeros(2)
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
    loss, accuracy = train.evaluate(model, x, np.array([0, 1, 1]), batch_size=2)
    assert accuracy == pytest.approx(2 / 3)
    # cross-entropy of logits (1, 0): log(1 + e^-1) for the right class, log(1 + e) for the wrong
    want = (2 * np.log1p(np.exp(-1.0)) + np.log1p(np.exp(1.0))) / 3
    assert loss == pytest.approx(want, rel=1e-6)


def _npz(tmp_path: Path, data: Dataset) -> Path:
    path = tmp_path / "blobs.npz"
    np.savez(
        path,
        x_train=(data.x_train[..., 0] * 255).astype(np.uint8),
        y_train=data.y_train,
        x_test=(data.x_test[..., 0] * 255).astype(np.uint8),
        y_test=data.y_test,
    )
    return path


def _command_line(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], int]:
    from rpgcore import cli_train
    from rpgcore.cli import main

    # until the command line lists jax itself (then this changes nothing)
    frameworks = tuple(dict.fromkeys((*cli_train.FRAMEWORKS, "jax")))
    monkeypatch.setattr(cli_train, "FRAMEWORKS", frameworks)
    return main


def test_train_command_with_the_jax_framework(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main = _command_line(monkeypatch)
    data = _blobs()
    npz = _npz(tmp_path, data)
    out = tmp_path / "m.rpg.safetensors"
    argv = ["train", "--framework", "jax", "--data", str(npz), "--width", "4", "--dof", "2500"]
    assert main([*argv, "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert "DoF 2,500" in capsys.readouterr().out
    plan, _, _ = rpgcore.load(out)
    assert plan == rpg.plan_of(train.prepare("small_resnet", data, width=4, dof=2500, seed=0))


def test_evaluate_command_reads_a_torch_file_into_jax(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main = _command_line(monkeypatch)
    pytest.importorskip("torch")
    npz = _npz(tmp_path, _blobs())
    out = tmp_path / "torch.rpg.safetensors"
    argv = ["train", "--data", str(npz), "--width", "4", "--dof", "2500", "--epochs", "1"]
    assert main([*argv, "--out", str(out), "--quiet", "--scope", "block"]) == 0
    trained = capsys.readouterr().out.splitlines()[-1]
    assert main(["evaluate", str(out), "--framework", "jax", "--data", str(npz)]) == 0
    report = capsys.readouterr().out
    assert "jax small_resnet" in report
    accuracy = trained.split("test accuracy ")[1].split("%")[0]
    assert f"test accuracy {accuracy}%" in report  # same function, same images


def test_demo_runs_on_jax(tmp_path: Path) -> None:
    need("matplotlib")
    from rpgcore import demo

    data = _npz(tmp_path, _blobs(count=171))  # 128 training images: one batch shape
    output = demo.run(
        tmp_path / "out", epochs=1, widths=(2,), data=str(data), framework="jax", stream=None
    )
    assert [r.network for r in output.rows] == ["vanilla", "RPG", "vanilla (full)"]
    assert output.rows[1].dof == output.rows[0].dof  # matched DoF
    assert output.rows[1].dense == output.rows[2].dof  # the full width-16 network
    plan, _, _ = rpgcore.load(output.ring_file)
    assert plan.ring_parameters < output.rows[1].dof
