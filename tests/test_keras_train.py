"""The Keras training loop: PyTorch's SGD and batches, checkpoints, and what the CLI calls."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REQUIRED, need, require

keras = require("keras")

from keras_support import BACKEND, SGD_CONFIG, sgd_data, to_numpy, torch_reference  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore import porting, safetensors_io  # noqa: E402
from rpgcore.adapters import keras as rpg  # noqa: E402
from rpgcore.adapters.keras import train  # noqa: E402
from rpgcore.adapters.keras.describe import describe, read  # noqa: E402
from rpgcore.adapters.keras.optimizer import TorchSGD  # noqa: E402
from rpgcore.data import Dataset  # noqa: E402
from rpgcore.errors import ArgumentError  # noqa: E402
from rpgcore.training import Progress, TrainConfig, learning_rate  # noqa: E402


def _data() -> Dataset:
    arrays = sgd_data()
    return Dataset(
        "toy",
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        classes=10,
        source="memory",
    )


def test_torch_sgd_is_pytorchs_update() -> None:
    w0 = np.array([0.5, -1.0, 2.0], np.float32)
    grads = [np.array(g, np.float32) for g in ([0.1, 0.2, -0.3], [0.0, -0.5, 0.25], [1, 1, 1])]
    variable = keras.Variable(w0.copy())
    optimizer = TorchSGD(learning_rate=0.1, momentum=0.9, weight_decay=0.2)
    w, buffer = w0.astype(np.float64), np.zeros(3)
    for grad in grads:
        optimizer.apply([keras.ops.convert_to_tensor(grad)], [variable])
        step = grad + 0.2 * w  # torch.optim.SGD: weight decay into the gradient,
        buffer = 0.9 * buffer + step  # then momentum (the first buffer is the gradient),
        w = w - 0.1 * buffer  # then the step
    # float32 against float64 arithmetic, three steps of O(1) values.
    np.testing.assert_allclose(to_numpy(variable), w, rtol=1e-6, atol=1e-6)
    decoupled = w0 - 0.1 * sum(grads)  # what ignoring the weight decay would give
    assert np.abs(to_numpy(variable) - decoupled).max() > 0.05


@pytest.mark.skipif(BACKEND != "tensorflow", reason="sparse gradients are TensorFlow's")
def test_torch_sgd_sums_a_sparse_gradient_with_repeated_entries() -> None:
    import tensorflow as tf

    # A gather's TensorFlow gradient: one entry per position read, repeated indices.
    grad = tf.IndexedSlices(tf.constant([1.0, 2.0, 4.0]), tf.constant([0, 0, 2]), (4,))
    for momentum, decay in ((0.9, 0.5), (0.0, 0.0)):
        variable = keras.Variable(np.ones(4, np.float32))
        TorchSGD(learning_rate=1.0, momentum=momentum, weight_decay=decay).apply([grad], [variable])
        expected = 1.0 - (np.array([3.0, 0.0, 4.0, 0.0]) + decay)  # exact in float32
        assert np.array_equal(to_numpy(variable), expected.astype(np.float32))


def test_ten_steps_agree_with_the_pytorch_loop() -> None:
    need("torch", required="torch" in REQUIRED)
    reference = torch_reference()
    data = _data()
    model = train.prepare("small_resnet", data, width=4, ring_size=300, seed=7)
    rpg.load(model, reference / "sgd_initial.rpg.safetensors")
    plan = rpg.plan_of(model)
    tensors, layers, entries = describe(model)
    start = {name: read(entry) for name, entry in entries.items()}
    ring_start = to_numpy(rpg.rings_of(model)["global"].variable)
    train.fit(model, data, TrainConfig(**SGD_CONFIG))
    rings, final, _ = porting.read(reference / "sgd_final.rpg.safetensors", plan, tensors, layers)
    moved = {"ring": (to_numpy(rpg.rings_of(model)["global"].variable), rings["global"])}
    for tensor in tensors:
        if tensor.role != "var":  # moving variance: Keras adds the biased batch variance
            moved[tensor.name] = (read(entries[tensor.name]), final[tensor.name])
    starts = {"ring": ring_start, **start}
    for name, (ours, theirs) in moved.items():
        update = theirs - starts[name]
        assert np.abs(update).max() > 0, name  # every compared tensor moved
        # Ten float32 steps whose forward and backward sum in another order in
        # each framework: the updates agree to rounding (measured: 2.4e-6 of the
        # largest update on every backend); a wrong batch, learning rate or
        # weight decay moves them by whole percents.
        np.testing.assert_allclose(
            ours - starts[name], update, rtol=0, atol=1e-4 * np.abs(update).max(), err_msg=name
        )


def test_fit_trains_evaluates_and_writes_checkpoints(tmp_path: Path) -> None:
    data = _data()
    model = train.prepare("small_resnet", data, width=4, dof=1_500, seed=1)
    assert train.count_parameters(model)[0] == 1_500
    records: list[Any] = []
    stream = io.StringIO()
    checkpoint = tmp_path / "toy.rpg.safetensors"
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, schedule="step")
    result = train.fit(
        model,
        data,
        config,
        progress=Progress(stream),
        checkpoint=checkpoint,
        on_epoch=records.append,
    )
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert records == result.history
    assert [r.lr for r in result.history] == [learning_rate(config, e) for e in range(3)]
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert all(0 <= r.test_accuracy <= 1 and r.seconds > 0 for r in result.history)
    assert (result.dof, result.dense) == train.count_parameters(model)
    assert "epoch 3/3" in stream.getvalue()
    assert "test acc" in stream.getvalue()
    plan, rings, _ = rpgcore.load(checkpoint)
    assert plan == rpg.plan_of(model)
    assert np.array_equal(rings["global"], to_numpy(rpg.rings_of(model)["global"].variable))
    loss, accuracy = train.evaluate(model, data.x_test, data.y_test)
    assert loss == pytest.approx(result.history[-1].test_loss)
    assert accuracy == result.history[-1].test_accuracy
    assert train.logits(model, data.x_test).shape == (32, 10)


def test_vanilla_models_train_and_save_plain_safetensors(tmp_path: Path) -> None:
    data = _data()
    model = train.prepare("small_resnet", data, width=2, seed=0)
    dof, dense = train.count_parameters(model)
    assert dof == dense
    train.fit(model, data, TrainConfig(epochs=1, batch_size=64))
    train.save(model, tmp_path / "plain.safetensors")
    tensors, metadata = safetensors_io.decode((tmp_path / "plain.safetensors").read_bytes())
    assert metadata["format"] == "keras"
    if "training" in metadata:  # fit's checkpoints record what the model was trained on
        assert json.loads(metadata["training"])["classes"] == data.classes
    # plain checkpoints hold the canonical (PyTorch) layout in every framework: (out, in)
    assert np.array_equal(tensors["fc/kernel"], to_numpy(model.get_layer("fc").kernel).T)


def test_bad_settings_name_the_fix() -> None:
    data = _data()
    with pytest.raises(ArgumentError, match="model 'vgg' is unknown"):
        train.build_model("vgg", data)
    model = train.prepare("small_resnet", data, width=2, seed=0)
    with pytest.raises(ArgumentError, match="device 'tpu' is unknown"):
        train.fit(model, data, TrainConfig(epochs=1, device="tpu"))
    with pytest.raises(ArgumentError, match="GPU"):
        train.logits(model, data.x_test, device="cuda:7")
    with pytest.raises(ArgumentError, match="lower the learning rate"):
        train.fit(model, data, TrainConfig(epochs=1, lr=1e12, batch_size=16))


def test_cifar_sized_data_gets_the_cifar_stem() -> None:
    x = np.zeros((2, 32, 32, 3), np.float32)
    data = Dataset("c", x, np.arange(2), x, np.arange(2), classes=5, source="memory")
    model = train.build_model("resnet18", data)
    assert model.get_layer("conv1").kernel.shape == (3, 3, 3, 64)
    assert model.get_layer("fc").units == 5
    channels_first = Dataset(
        "c",
        x.transpose(0, 3, 1, 2),
        np.arange(2),
        x.transpose(0, 3, 1, 2),
        np.arange(2),
        classes=5,
        source="memory",
        layout="NCHW",
    )
    assert train.build_model("small_resnet", channels_first).input_shape == (None, None, None, 3)
    assert json.dumps(TrainConfig().__dict__)  # the configs the CLI builds are plain values
