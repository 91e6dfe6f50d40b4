"""Deterministic resume: a run stopped at any checkpoint continues to bitwise the same result.

The training loops of PyTorch, JAX (Flax NNX) and Keras (on this process's
``KERAS_BACKEND``) run through
:func:`rpgcore.loop.run`; with a checkpoint they also write a state file
(momentum, position, random state). Here a run is stopped in the middle of
an epoch, in-process and with SIGKILL from outside, resumed, and its final
ring file compared byte for byte with an uninterrupted run's. A run whose
loss diverges stops with :class:`~rpgcore.errors.DivergedError` and leaves
its last good checkpoint in place; a state file of another run is refused.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require

from rpgcore import resume
from rpgcore.data import Dataset
from rpgcore.errors import ChecksumError, DivergedError, ResumeError, RingFileFormatError
from rpgcore.ringfile import load_file
from rpgcore.training import Progress, TrainConfig

FRAMEWORKS = ("torch", "jax", "keras")
CONFIG = TrainConfig(epochs=2, batch_size=32, seed=5, schedule="cosine", lr=0.05)


def trainer(framework: str) -> Any:
    require({"jax": "flax"}.get(framework, framework))
    return importlib.import_module(f"rpgcore.adapters.{framework}.train")


def blobs(count: int = 240, seed: int = 0) -> Dataset:
    """Three classes of 8x8 one-channel images (class c: a bright row band), 180 for training."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    images = rng.random((count, 8, 8, 1), dtype=np.float32) * 0.3
    for c in range(3):
        images[labels == c, 2 * c : 2 * c + 2, :, 0] += 0.7
    split = count * 3 // 4
    return Dataset(
        "blobs", images[:split], labels[:split], images[split:], labels[split:], 3, "memory"
    )


class StopError(Exception):
    """Raised by :class:`StopAfter` to interrupt a run between two steps."""


class StopAfter(Progress):
    """A silent progress bar that interrupts the run after ``steps`` steps in all."""

    def __init__(self, steps: int) -> None:
        super().__init__(None)
        self.left = steps

    def step(self, done: int, *, loss: float, correct: int, seen: int) -> None:
        self.left -= 1
        if self.left == 0:
            raise StopError


def model(framework: str, data: Dataset, *, width: int = 4) -> Any:
    return trainer(framework).prepare("small_resnet", data, width=width, ring_size=500, seed=1)


def fit(framework: str, path: Path, **options: Any) -> Any:
    data = blobs()
    config = options.pop("config", CONFIG)
    return trainer(framework).fit(model(framework, data), data, config, checkpoint=path, **options)


def tensors(path: Path) -> dict[str, np.ndarray]:
    loaded = load_file(path)
    return {**{f"ring/{k}": v for k, v in loaded.rings.items()}, **loaded.extras}


def assert_same_file(ours: Path, theirs: Path) -> None:
    a, b = tensors(ours), tensors(theirs)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert np.array_equal(a[name], b[name]), name
    assert ours.read_bytes() == theirs.read_bytes()


@pytest.fixture(scope="module", params=FRAMEWORKS)
def uninterrupted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, Any]:
    framework = request.param
    path = tmp_path_factory.mktemp(framework) / "whole.rpg.safetensors"
    return framework, path, fit(framework, path, checkpoint_every=2)


# 180 examples in batches of 32: 6 steps an epoch; checkpoints after steps 2 and 4
# of each epoch and at its end. Stop after 3 steps (resume from step 2), after 6
# (from the end of epoch 1), after 11 (epoch 2, from its step 4).
@pytest.mark.parametrize("stop", [1, 3, 6, 11])
def test_a_stopped_run_resumes_to_bitwise_the_same_ring_file(
    uninterrupted: tuple[str, Path, Any], tmp_path: Path, stop: int
) -> None:
    framework, whole, expected = uninterrupted
    path = tmp_path / "run.rpg.safetensors"
    with pytest.raises(StopError):
        fit(framework, path, checkpoint_every=2, progress=StopAfter(stop))
    result = fit(framework, path, checkpoint_every=2, resume=True)
    assert_same_file(path, whole)
    ours = [(r.train_loss, r.train_accuracy, r.test_loss) for r in result.history]
    assert ours == [(r.train_loss, r.train_accuracy, r.test_loss) for r in expected.history]


def test_without_resume_a_state_file_is_ignored(
    uninterrupted: tuple[str, Path, Any], tmp_path: Path
) -> None:
    framework, whole, _ = uninterrupted
    path = tmp_path / "run.rpg.safetensors"
    with pytest.raises(StopError):
        fit(framework, path, checkpoint_every=2, progress=StopAfter(9))
    fit(framework, path, checkpoint_every=2)  # starts afresh: same outcome, from step 0
    assert_same_file(path, whole)


def test_a_finished_run_resumes_to_itself(
    uninterrupted: tuple[str, Path, Any], tmp_path: Path
) -> None:
    framework, whole, expected = uninterrupted
    path = tmp_path / "run.rpg.safetensors"
    for name in (whole.name, resume.state_path(whole.name)):
        (tmp_path / name.replace("whole", "run")).write_bytes((whole.parent / name).read_bytes())
    result = fit(framework, path, checkpoint_every=2, resume=True)
    assert [r.train_loss for r in result.history] == [r.train_loss for r in expected.history]
    assert_same_file(path, whole)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_diverging_run_stops_and_keeps_its_last_good_checkpoint(
    framework: str, tmp_path: Path
) -> None:
    path = tmp_path / "run.rpg.safetensors"
    config = TrainConfig(epochs=2, batch_size=32, lr=1e4, momentum=0.9, schedule="constant")
    with pytest.raises(DivergedError, match="lower the learning rate") as raised:
        fit(framework, path, config=config, checkpoint_every=1)
    message = str(raised.value)
    assert path.exists(), message  # the first step's loss is finite, so step 1 was saved
    assert f"{path} holds epoch 1 up to step" in message
    kept = tensors(path)
    assert all(np.isfinite(v).all() for v in kept.values() if v.dtype.kind == "f")
    data = blobs()
    _, position, _ = resume.read(
        resume.state_path(path), config=config, data=resume.fingerprint(data)
    )
    assert f"up to step {position.step}" in message
    assert position.epoch == 0


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_state_file_of_other_settings_is_refused(framework: str, tmp_path: Path) -> None:
    path = tmp_path / "run.rpg.safetensors"
    with pytest.raises(StopError):
        fit(framework, path, checkpoint_every=2, progress=StopAfter(3))
    other = TrainConfig(epochs=2, batch_size=32, seed=5, schedule="cosine", lr=0.01)
    with pytest.raises(ResumeError, match=r"lr=0\.05"):
        fit(framework, path, config=other, resume=True)
    data = blobs(seed=1)
    with pytest.raises(ResumeError, match="other training data"):
        trainer(framework).fit(model(framework, data), data, CONFIG, checkpoint=path, resume=True)
    with pytest.raises(ResumeError, match=r"another model"):
        trainer(framework).fit(
            model(framework, blobs(), width=8), blobs(), CONFIG, checkpoint=path, resume=True
        )


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_damaged_state_file_is_refused(framework: str, tmp_path: Path) -> None:
    path = tmp_path / "run.rpg.safetensors"
    with pytest.raises(StopError):
        fit(framework, path, checkpoint_every=2, progress=StopAfter(3))
    state = Path(resume.state_path(path))
    data = bytearray(state.read_bytes())
    data[-5] ^= 0x10  # a bit of the last tensor
    state.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="damaged"):
        fit(framework, path, resume=True)


def test_a_ring_file_is_not_a_state_file(tmp_path: Path) -> None:
    require("torch")
    path = tmp_path / "run.rpg.safetensors"
    fit("torch", path, config=TrainConfig(epochs=1, batch_size=64))
    with pytest.raises(RingFileFormatError, match="not an rpgcore training state file"):
        resume.read(path, config=CONFIG, data="")


def test_state_paths_sit_beside_the_checkpoint() -> None:
    assert resume.state_path("a/b.rpg.safetensors") == "a/b.rpg.state.safetensors"
    assert resume.state_path(Path("model")) == "model.state.safetensors"


# --- SIGKILL from outside, through the command line ------------------------------

KILL_DATA_SIZE = 1200


def _command(framework: str, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rpgcore",
        "train",
        "--framework",
        framework,
        "--data",
        str(data),
        "--ring-size",
        "700",
        "--width",
        "4",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--schedule",
        "cosine",
        "--seed",
        "3",
        "--checkpoint-every",
        "3",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def _position(state: Path) -> tuple[int, int] | None:
    try:
        return read_metadata_position(state)
    except Exception:  # not written yet, or being replaced: poll again
        return None


def read_metadata_position(state: Path) -> tuple[int, int]:
    import json

    from rpgcore import safetensors_io
    from rpgcore._atomic import read_regular_file

    _, metadata = safetensors_io.decode(read_regular_file(state))
    where = json.loads(metadata["position"])
    return where["epoch"], where["step"]


def _kill_when(command: list[str], state: Path, reached: tuple[int, int]) -> tuple[int, int]:
    """Start ``command``, SIGKILL it once its state file is at ``reached`` or later, mid-epoch."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 1200  # generous: a loaded machine runs Keras on JAX slowly
    where = None
    try:
        while time.monotonic() < deadline:
            where = _position(state)
            if where is not None and where >= reached and where[1] > 0:
                process.send_signal(signal.SIGKILL)
                process.wait()
                return where
            if process.poll() is not None:
                raise AssertionError(
                    f"training ended (status {process.returncode}) before it could be "
                    f"killed: {process.stderr.read().decode() if process.stderr else ''}"
                )
            time.sleep(0.005)
        raise AssertionError(f"training reached only {where} of {reached} in time")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sigkill_mid_epoch_then_resume_gives_bitwise_the_uninterrupted_ring_file(
    framework: str, tmp_path: Path
) -> None:
    trainer(framework)
    data = blobs(KILL_DATA_SIZE)
    archive = tmp_path / "blobs.npz"
    np.savez(
        archive, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test
    )
    whole = tmp_path / "whole.rpg.safetensors"
    subprocess.run(_command(framework, archive, whole), check=True, capture_output=True)
    killed = tmp_path / "killed.rpg.safetensors"
    state = Path(resume.state_path(killed))
    kills = [
        _kill_when(_command(framework, archive, killed), state, (0, 6)),
        _kill_when(_command(framework, archive, killed, "--resume"), state, (1, 9)),
    ]
    assert kills[0][0] == 0
    assert kills[1][0] >= 1  # the second kill came after a resume
    subprocess.run(
        _command(framework, archive, killed, "--resume"), check=True, capture_output=True
    )
    assert_same_file(killed, whole)
    assert read_metadata_position(state) == (3, 0)
