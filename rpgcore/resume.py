"""The training state file: everything a run needs to continue bit for bit.

A ring file holds a trained model; a run that stops (a crash, a kill, a
full disk) also needs its optimizer state, where it was in the data and its
random generator. :func:`write` stores all of it in one safetensors file,
replaced atomically, so there is always one complete state on disk; :func:`read`
checks it (format, checksum, the run's settings and data) before anything is
restored. Tensors come from the framework (model state, momentum, generator
state) under names the framework chooses; this module never imports one.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "run.state.safetensors")
    >>> config = TrainConfig(epochs=2)
    >>> where = Position(epoch=1, step=3, loss_sum=2.5, correct=7, seen=12, seconds=0.5)
    >>> write(path, {"w": np.ones(2, np.float32)}, where, [], config=config, data="d")
    >>> tensors, position, history = read(path, config=config, data="d")
    >>> position.step, tensors["w"].tolist()
    (3, [1.0, 1.0])

"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rpgcore import safetensors_io
from rpgcore._atomic import read_regular_file, write_atomically
from rpgcore.data import Dataset
from rpgcore.errors import ChecksumError, ResumeError, RingFileFormatError
from rpgcore.training import EpochRecord, TrainConfig

__all__ = ["FORMAT", "Position", "fingerprint", "read", "state_path", "write"]

FORMAT = "rpgcore-train-state-1"
SETTINGS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "schedule", "seed")
"""The settings a run must keep to resume (the device may change)."""


@dataclass(frozen=True)
class Position:
    """Where a run stands: the next step to take and the running sums of its epoch.

    Args:
        epoch: the epoch under way, 0-based.
        step: steps of that epoch already taken.
        loss_sum: the epoch's summed training loss so far (loss times batch size).
        correct: correctly classified training examples so far in the epoch.
        seen: training examples seen so far in the epoch.
        seconds: training time spent in the epoch so far.

    """

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0


def state_path(checkpoint: str | os.PathLike[str]) -> str:
    """The state file that goes with a checkpoint: ``x.safetensors`` → ``x.state.safetensors``.

    Args:
        checkpoint: the ring file (or plain checkpoint) of the run.

    Returns:
        The state file's path, in the same folder.

    Example:
        >>> state_path("out/model.rpg.safetensors")
        'out/model.rpg.state.safetensors'
        >>> state_path("model.bin")
        'model.bin.state.safetensors'

    """
    text = os.fspath(checkpoint)
    stem = text[: -len(".safetensors")] if text.endswith(".safetensors") else text
    return stem + ".state.safetensors"


def fingerprint(data: Dataset) -> str:
    """A SHA-256 naming the training split, so a run resumes only on the data it began with.

    The same in every framework: images are hashed channels-last, labels as int64.

    Args:
        data: the dataset.

    Returns:
        ``"sha256:<hex>"``.

    Example:
        >>> x, y = np.zeros((2, 1, 1, 1), np.float32), np.array([0, 1])
        >>> data = Dataset("d", x, y, x, y, classes=2, source="memory")
        >>> fingerprint(data) == fingerprint(data.channels_first())
        True

    """
    last = data.channels_last()
    digest = hashlib.sha256()
    for array in (last.x_train, last.y_train):
        contiguous = np.asarray(array, order="C")
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}\0".encode())
        digest.update(contiguous.tobytes())
    return "sha256:" + digest.hexdigest()


def _settings(config: TrainConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in SETTINGS}


def _checksum(metadata: Mapping[str, str], tensors: Mapping[str, NDArray[Any]]) -> str:
    digest = hashlib.sha256(json.dumps(dict(sorted(metadata.items()))).encode() + b"\0")
    for name in sorted(tensors):
        array = np.asarray(tensors[name], order="C")
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return "sha256:" + digest.hexdigest()


def write(
    path: str | os.PathLike[str],
    tensors: Mapping[str, NDArray[Any]],
    position: Position,
    history: Sequence[EpochRecord],
    *,
    config: TrainConfig,
    data: str,
) -> None:
    """Write a run's state atomically (the previous state stays until the new one is on disk).

    Args:
        path: the state file.
        tensors: the framework's state (model, optimizer, generator), name to array.
        position: where the run stands.
        history: the records of the epochs already finished.
        config: the run's settings (all but the device must match on resume).
        data: the training data's :func:`fingerprint`.

    Raises:
        RingFileWriteError: writing failed; the previous file is kept.

    """
    arrays = {name: np.asarray(array, order="C") for name, array in tensors.items()}
    metadata = {
        "format": FORMAT,
        "settings": json.dumps(_settings(config)),
        "data": data,
        "position": json.dumps(dataclasses.asdict(position)),
        "history": json.dumps([dataclasses.asdict(record) for record in history]),
    }
    metadata["checksum"] = _checksum(metadata, arrays)
    head, chunks = safetensors_io.encode_header(arrays, metadata)
    write_atomically(path, [head, *(chunk.data for chunk in chunks)])


def _json(path: str, metadata: Mapping[str, str], key: str) -> Any:
    try:
        return json.loads(metadata[key])
    except (KeyError, ValueError, RecursionError):
        raise RingFileFormatError(
            f"{path!r} has no readable {key!r} entry: it is not an rpgcore training state "
            "file; delete it to start the run afresh"
        ) from None


def read(
    path: str | os.PathLike[str], *, config: TrainConfig, data: str
) -> tuple[dict[str, NDArray[Any]], Position, list[EpochRecord]]:
    """Read and check a state file written by :func:`write`.

    Args:
        path: the state file.
        config: the settings of the run that wants to resume.
        data: the :func:`fingerprint` of its training data.

    Returns:
        ``(tensors, position, history)``.

    Raises:
        RingFileNotFoundError: no such file.
        RingFileFormatError: not a training state file, or a damaged one.
        ChecksumError: the contents do not match the stored checksum.
        ResumeError: the file belongs to a run with other settings or other data.

    """
    name = os.fspath(path)
    tensors, metadata = safetensors_io.decode(read_regular_file(path))
    if metadata.get("format") != FORMAT:
        raise RingFileFormatError(
            f"{name!r} is not an rpgcore training state file (format "
            f"{metadata.get('format')!r}, expected {FORMAT!r}); give the .state.safetensors "
            "file a run wrote, or delete it to start afresh"
        )
    stored = metadata.pop("checksum", "")
    if stored != _checksum(metadata, tensors):
        raise ChecksumError(
            f"{name!r} does not match its checksum: the file is damaged; delete it to start "
            "the run afresh (the ring file of the last checkpoint is separate)"
        )
    settings = _json(name, metadata, "settings")
    for key, value in _settings(config).items():
        if settings.get(key) != value:
            raise ResumeError(
                f"{name!r} belongs to a run with {key}={settings.get(key)!r}, not {value!r}: "
                "resume with the same settings, or delete the file to start afresh"
            )
    if metadata.get("data") != data:
        raise ResumeError(
            f"{name!r} belongs to a run on other training data: resume with the same "
            "--data, --limit and --seed, or delete the file to start afresh"
        )
    try:
        position = Position(**_json(name, metadata, "position"))
        history = [EpochRecord(**record) for record in _json(name, metadata, "history")]
    except TypeError:
        raise RingFileFormatError(
            f"{name!r} has a malformed position or history; delete it to start afresh"
        ) from None
    return dict(tensors), position, history
