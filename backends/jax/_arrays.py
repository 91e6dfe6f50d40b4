"""JAX arrays in and out of the backend, and where its results are placed.

Example:
    >>> import numpy as np
    >>> to_numpy(from_numpy(np.arange(3, dtype=np.int32))).tolist()
    [0, 1, 2]

"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeAlias

import jax
import numpy as np
from numpy.typing import NDArray

from rpgcore.errors import ArgumentError

__all__ = ["Device", "check_dtype", "from_numpy", "placed", "put", "to_numpy"]

Device: TypeAlias = "jax.Device | jax.sharding.Sharding | None"
"""Where a result goes: a device, a sharding, or ``None`` for JAX's default device."""


def check_dtype(dtype: np.dtype[Any], where: str) -> None:
    """Refuse a 64-bit dtype that JAX would silently round to 32 bits.

    Args:
        dtype: the dtype asked for.
        where: the function asking, for the error message.

    Raises:
        ArgumentError: ``dtype`` is 64-bit while ``jax_enable_x64`` is off.

    Example:
        >>> check_dtype(np.dtype(np.float32), "init_ring")

    """
    if (
        dtype.itemsize == 8
        and dtype.kind in "fiuc"
        and jax.dtypes.canonicalize_dtype(dtype) != dtype
    ):
        raise ArgumentError(
            f"{where} got dtype {dtype}, which JAX holds only in 64-bit mode "
            "(jax_enable_x64 is off); convert to a 32-bit dtype first, or enable "
            "jax_enable_x64 before using 64-bit rings and gradients"
        )


@contextlib.contextmanager
def placed(device: Device) -> Iterator[None]:
    """Compute on ``device`` when it is a single device (a sharding is applied by :func:`put`)."""
    if isinstance(device, jax.Device):
        with jax.default_device(device):
            yield
    else:
        yield


def put(array: jax.Array, device: Device) -> jax.Array:
    """``array`` on ``device`` (a device or sharding), or where it is for ``None``."""
    return array if device is None else jax.device_put(array, device)


def from_numpy(array: Any, *, device: Device = None) -> jax.Array:
    """A numpy array as a JAX array (on ``device``), keeping its dtype.

    Args:
        array: a numpy array (or anything ``numpy.asarray`` takes).
        device: a :class:`jax.Device` or sharding; ``None`` for JAX's default.

    Returns:
        The JAX array.

    Raises:
        ArgumentError: a 64-bit array while JAX's 64-bit mode is off (JAX
            would silently round it to 32 bits).

    Example:
        >>> import numpy as np
        >>> from_numpy(np.arange(3, dtype=np.int32)).dtype
        dtype('int32')

    """
    host = np.asarray(array)
    check_dtype(host.dtype, "from_numpy")
    placed_array: jax.Array = jax.device_put(host, device)
    return placed_array


def to_numpy(array: Any) -> NDArray[Any]:
    """A JAX array as a numpy array (copied to the host).

    Args:
        array: the JAX array.

    Returns:
        The numpy array.

    Example:
        >>> import jax.numpy as jnp
        >>> to_numpy(jnp.ones(2)).tolist()
        [1.0, 1.0]

    """
    return np.asarray(jax.device_get(array))
