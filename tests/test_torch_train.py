"""PyTorch training: determinism, learning, checkpoints, the train and demo commands."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need, require

torch = require("torch")
from torch import nn  # noqa: E402

import rpgcore  # noqa: E402
from rpgcore import safetensors_io  # noqa: E402
from rpgcore.adapters import torch as rpg  # noqa: E402
from rpgcore.adapters.torch import train  # noqa: E402
from rpgcore.cli import main  # noqa: E402
from rpgcore.data import Dataset  # noqa: E402
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


def _ordinary(width: int) -> int:
    """Parameters an RPG small ResNet (3 classes) keeps ordinary: norms, biases, classifier."""
    model = rpg.rpgify(rpg.models.small_resnet(width=width, num_classes=3), ring_size=1)
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("rpg_ring"))


def _trained(seed: int, epochs: int = 2) -> tuple[nn.Module, rpgcore.training.TrainResult]:
    data = _blobs()
    model = train.prepare("small_resnet", data, width=4, ring_size=500, seed=seed)
    config = TrainConfig(epochs=epochs, batch_size=32, seed=seed, schedule="cosine")
    return model, train.fit(model, data, config)


def test_training_is_bitwise_deterministic_with_a_seed() -> None:
    first, result = _trained(seed=3)
    second, again = _trained(seed=3)
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name
    assert [r.train_loss for r in result.history] == [r.train_loss for r in again.history]
    other, _ = _trained(seed=4)
    assert not torch.equal(other.rpg_ring_global, first.rpg_ring_global)


def test_an_rpg_model_learns_a_separable_task() -> None:
    _, result = _trained(seed=0, epochs=4)
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.test_accuracy > 0.9  # chance is 1/3; the classes differ by a bright band
    assert result.dof == 500 + _ordinary(width=4)


def test_checkpoint_is_a_ring_file_that_reloads_to_the_same_outputs(tmp_path: Path) -> None:
    data = _blobs()
    model = train.prepare("small_resnet", data, width=4, dof=2000, seed=1)
    path = tmp_path / "ckpt.rpg.safetensors"
    train.fit(model, data, TrainConfig(epochs=1, batch_size=64), checkpoint=path)
    fresh = train.prepare("small_resnet", data, width=4, dof=2000, seed=1)
    rpg.load(fresh, path)
    x = torch.from_numpy(data.channels_first().x_test)
    assert torch.equal(model.eval()(x), fresh.eval()(x))
    plan, rings, _ = rpgcore.load(path)
    assert plan == rpg.plan_of(model)
    assert rings["global"].size == plan.ring_parameters


def test_vanilla_checkpoint_is_plain_safetensors(tmp_path: Path) -> None:
    need("safetensors", required=True)  # part of the test extra
    import safetensors.numpy as safetensors

    data = _blobs()
    model = train.prepare("small_resnet", data, width=2, seed=0)
    path = tmp_path / "plain.safetensors"
    train.fit(model, data, TrainConfig(epochs=1, batch_size=64), checkpoint=path)
    loaded = safetensors.load_file(str(path))
    state = model.state_dict()
    assert set(loaded) == set(state)
    for name, value in loaded.items():
        np.testing.assert_array_equal(value, state[name].numpy())
    tensors, metadata = safetensors_io.decode(path.read_bytes())
    assert metadata["format"] == "pt"
    if "training" in metadata:  # fit's checkpoints record what the model was trained on
        assert json.loads(metadata["training"])["classes"] == data.classes
    assert set(tensors) == set(state)


def test_diverging_loss_stops_with_a_clear_error() -> None:
    data = _blobs()
    model = train.prepare("small_resnet", data, width=2, seed=0)
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    with pytest.raises(rpgcore.errors.ArgumentError, match="lower the learning rate"):
        train.fit(model, data, TrainConfig(epochs=1))


def test_unavailable_device_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error case cannot arise")
    with pytest.raises(rpgcore.errors.ArgumentError, match="no CUDA device"):
        train.fit(nn.Linear(1, 1), _blobs(), TrainConfig(device="cuda"))
    with pytest.raises(rpgcore.errors.ArgumentError, match="not a torch device"):
        train.fit(nn.Linear(1, 1), _blobs(), TrainConfig(device="gpu9"))


def _npz(tmp_path: Path) -> Path:
    data = _blobs()
    path = tmp_path / "blobs.npz"
    np.savez(
        path,
        x_train=(data.x_train[..., 0] * 255).astype(np.uint8),
        y_train=data.y_train,
        x_test=(data.x_test[..., 0] * 255).astype(np.uint8),
        y_test=data.y_test,
    )
    return path


def test_train_command_writes_a_ring_file_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.rpg.safetensors"
    argv = ["train", "--data", str(_npz(tmp_path)), "--width", "4", "--dof", "2500"]
    assert main([*argv, "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith("test accuracy ")
    assert "DoF 2,500" in printed[-1]
    assert f"wrote {out}" in printed[-1]
    plan, _, _ = rpgcore.load(out)
    assert plan.ring_parameters == 2500 - _ordinary(width=4)


@pytest.mark.parametrize("scope", ["global", "block"])
def test_evaluate_command_reports_what_train_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scope: str
) -> None:
    out = tmp_path / "m.rpg.safetensors"
    data = str(_npz(tmp_path))
    argv = ["train", "--data", data, "--width", "4", "--dof", "3000", "--scope", scope]
    assert main([*argv, "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    trained = capsys.readouterr().out.splitlines()[-1].split(",")[0]
    assert main(["evaluate", str(out), "--data", data]) == 0  # the width comes from the file
    printed = capsys.readouterr().out
    assert trained in printed  # "test accuracy NN.NN%"
    assert "DoF 3,000" in printed
    assert main(["evaluate", str(out)]) == 0  # the dataset and split come from the file too
    assert capsys.readouterr().out == printed


def test_evaluate_refuses_to_guess_the_dataset_and_train_checks_its_output_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare.rpg.safetensors"  # written by rpgcore.save: no training record
    plan = rpgcore.Plan.build({"w": (4, 1, 3, 3)}, ring_size=9)
    rpgcore.save(bare, plan, plan.init_ring())
    assert main(["evaluate", str(bare)]) == 2
    assert "does not record what it was trained on" in capsys.readouterr().err
    missing = tmp_path / "no" / "such" / "folder" / "m.rpg.safetensors"
    data = str(_npz(tmp_path))
    assert main(["train", "--data", data, "--dof", "3000", "--out", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line, before any data is loaded or epoch run
    assert "does not exist" in err
    # A ring larger than what it generates: one line of warning, and training goes on.
    big = tmp_path / "big.rpg.safetensors"
    argv = ["train", "--data", data, "--width", "4", "--ring-size", "20000", "--epochs", "1"]
    assert main([*argv, "--out", str(big), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "rpgcore: warning: ring 'global' has 20,000 entries but generates only" in err


def test_evaluate_command_names_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.rpg.safetensors"
    data = str(_npz(tmp_path))
    argv = ["train", "--data", data, "--width", "4", "--ring-size", "300", "--epochs", "1"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", data, "--width", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "generated layer 0 differs" in err
    assert "(4, 1, 3, 3)" in err
    assert "(8, 1, 3, 3)" in err


def test_train_command_progress_bar_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", str(_npz(tmp_path)), "--width", "2", "--vanilla", "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "v.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "epoch 1/1 [" in err
    assert "ex/s" in err
    assert "test acc" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dof", "10"], "ask for more"),
        (["--ring-size", "100", "--device", "tpu"], "not a torch device"),
        (["--ring-size", "100", "--epochs", "0"], "epochs=0"),
        (["--ring-size", "100", "--model", "resnet99"], "invalid choice"),
    ],
)
def test_train_command_user_errors_are_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["train", "--data", str(_npz(tmp_path)), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("rpgcore: error: ")
    assert message in err


def test_train_command_missing_data_file_names_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.npz"
    assert main(["train", "--data", str(missing), "--ring-size", "100"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_demo_writes_table_plot_and_ring_file(tmp_path: Path) -> None:
    need("matplotlib")
    from rpgcore import demo

    output = demo.run(
        tmp_path / "out", epochs=1, widths=(2, 3), data=str(_npz(tmp_path)), stream=None
    )
    assert [r.network for r in output.rows] == [
        "vanilla",
        "RPG",
        "vanilla",
        "RPG",
        "vanilla (full)",
    ]
    for vanilla, rpg_row in zip(output.rows[0:4:2], output.rows[1:4:2], strict=True):
        assert rpg_row.dof == vanilla.dof  # matched DoF
        assert rpg_row.dense == output.rows[-1].dof  # the full width-16 network
    with open(output.csv, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["dof"]) for r in table] == [r.dof for r in output.rows]
    assert output.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plan, _, _ = rpgcore.load(output.ring_file)  # the smallest RPG model: width 2's DoF
    assert plan.ring_parameters == output.rows[0].dof - _ordinary(width=16)


def test_train_command_is_repeatable_across_processes(tmp_path: Path) -> None:
    # Two separate processes with the same seed write byte-identical ring files.
    data = _npz(tmp_path)
    files = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.rpg.safetensors"
        argv = ["train", "--data", str(data), "--width", "4", "--ring-size", "700", "--quiet"]
        argv += ["--epochs", "2", "--out", str(out)]
        code = f"import sys, rpgcore.cli; sys.exit(rpgcore.cli.main({argv!r}))"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, capture_output=True)
        files.append(out.read_bytes())
    assert files[0] == files[1]
