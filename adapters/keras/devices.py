"""Device names for the Keras training loop: ``"cpu"``, ``"gpu"``, ``"cuda:1"``, ...

Keras spells devices ``"cpu"`` and ``"gpu:0"`` on every backend;
:func:`keras_device` translates the command line's PyTorch-style names and
checks that the backend has such a device. The CPU is ``"cpu"``, without an
index: on the torch backend, inside ``keras.device("cpu:0")`` every read of
a variable is a copy (``tensor.to("cpu:0")`` copies a tensor whose device
is ``cpu``), a cost of every step.

Example:
    >>> keras_device("cpu")
    'cpu'

"""

from __future__ import annotations

import re

import keras  # type: ignore[import-untyped]

from rpgcore.errors import ArgumentError

__all__ = ["keras_device"]

_NAME = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")


def _gpus() -> int:
    """How many GPUs the current Keras backend sees."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # type: ignore[import-untyped]

        return len(tf.config.list_logical_devices("GPU"))
    if backend == "jax":
        import jax

        return sum(1 for device in jax.devices() if device.platform == "gpu")
    if backend == "torch":
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    return 0


def keras_device(name: str) -> str:
    """The Keras device for a device name.

    Args:
        name: ``"cpu"``, ``"gpu"`` or ``"cuda"``, optionally with ``:index``.

    Returns:
        ``"cpu"`` or ``"gpu:<index>"``.

    Raises:
        ArgumentError: an unknown name, or a GPU the backend does not have.

    Example:
        >>> keras_device("tpu")
        Traceback (most recent call last):
        ...
        rpgcore.errors.ArgumentError: device 'tpu' is unknown; use cpu, gpu or cuda (with :index)

    """
    match = _NAME.match(str(name).strip().lower())
    if match is None:
        raise ArgumentError(f"device {name!r} is unknown; use cpu, gpu or cuda (with :index)")
    kind, index = match.group(1), int(match.group(2) or 0)
    if kind == "cpu":
        return "cpu"
    count = _gpus()
    if index >= count:
        raise ArgumentError(
            f"device {name!r}: the {keras.backend.backend()} backend sees {count} GPU(s); use cpu"
        )
    return f"gpu:{index}"
