"""Tensors in and out of the backend, where they are computed, and how functions are traced.

Example:
    >>> import numpy as np
    >>> to_numpy(from_numpy(np.arange(3, dtype=np.int32))).tolist()
    [0, 1, 2]

"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias, TypeVar

import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]
from numpy.typing import NDArray

__all__ = ["GRAPH", "Device", "as_written", "beside", "from_numpy", "placed", "to_numpy"]

Device: TypeAlias = "str | None"
"""Where to compute: a device string such as ``"/GPU:0"``, or ``None`` for TensorFlow's choice."""

GRAPH = {"autograph": False, "reduce_retracing": True}
"""Options of the graph functions that compute one range: plain TensorFlow ops, traced once."""

_Function = TypeVar("_Function", bound=Callable[..., Any])


def as_written(function: _Function) -> _Function:
    """Keep autograph from rewriting a primitive traced in the caller's ``tf.function``.

    The primitives are TensorFlow ops already; their Python loops run over
    Python values (chunks, rounds) and must stay Python.

    Args:
        function: a primitive.

    Returns:
        The same function, marked for autograph to leave alone.

    Example:
        >>> as_written(len)([1, 2])
        2

    """
    kept: _Function = tf.autograph.experimental.do_not_convert(function)
    return kept


def placed(device: Device) -> contextlib.AbstractContextManager[Any]:
    """Compute on ``device``, or where TensorFlow chooses for ``None``."""
    return contextlib.nullcontext() if device is None else tf.device(device)


@contextlib.contextmanager
def beside(tensor: tf.Tensor) -> Iterator[None]:
    """Run on the device of ``tensor`` (known for eager tensors)."""
    where = getattr(tensor, "device", "") if tf.executing_eagerly() else ""
    with placed(where or None):
        yield


@as_written
def from_numpy(array: Any, *, device: Device = None) -> tf.Tensor:
    """A numpy array as a tensor (on ``device``), keeping its dtype.

    Args:
        array: a numpy array (or anything ``numpy.asarray`` takes).
        device: a device string such as ``"/CPU:0"``; ``None`` for TensorFlow's choice.

    Returns:
        The tensor.

    Example:
        >>> import numpy as np
        >>> from_numpy(np.arange(3, dtype=np.int32)).dtype
        tf.int32

    """
    host = np.asarray(array)
    with placed(device):
        return tf.identity(tf.convert_to_tensor(host))


def to_numpy(tensor: Any) -> NDArray[Any]:
    """An eager tensor as a numpy array (copied to the host).

    Args:
        tensor: the tensor.

    Returns:
        The array.

    Example:
        >>> to_numpy(tf.ones(2)).tolist()
        [1.0, 1.0]

    """
    return np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)
