"""Data-parallel training with JAX's own sharding: a batch axis over devices, the rest replicated.

An RPG model needs nothing special to train on several devices: place the
model's state replicated (:func:`replicate`) and each batch split along its
first axis (:func:`shard_batch`), then run the usual jitted step. XLA's SPMD
partitioner computes each device's share of the batch, batch norm statistics
over the **global** batch, and all-reduces the gradients of the trainable
parameters only: the rings and the ordinary parameters, never the generated
kernels, which every device regenerates from its copy of the ring.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from rpgcore.adapters.jax import models, rpgify
    >>> mesh = data_mesh()
    >>> model = rpgify(models.small_resnet(width=4), ring_size=300)
    >>> nnx.update(model, replicate(nnx.state(model), mesh))
    >>> images = shard_batch(jnp.zeros((len(mesh.devices.flat) * 2, 28, 28, 1)), mesh)
    >>> nnx.jit(lambda m, x: m(x))(model, images).shape[1]
    10

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rpgcore.errors import ArgumentError

__all__ = ["AXIS", "data_mesh", "replicate", "shard_batch"]

AXIS = "data"
"""The default name of the batch axis of the mesh."""

Tree = TypeVar("Tree")


def data_mesh(devices: Sequence[jax.Device] | None = None, axis: str = AXIS) -> Mesh:
    """A one-dimensional mesh over ``devices`` for data parallelism.

    Args:
        devices: the devices (default: all of ``jax.devices()``).
        axis: the mesh axis name.

    Returns:
        The mesh.

    Raises:
        ArgumentError: no devices.

    Example:
        >>> data_mesh().axis_names
        ('data',)

    """
    chosen = list(jax.devices() if devices is None else devices)
    if not chosen:
        raise ArgumentError("data_mesh needs at least one device; pass jax.devices()")
    return Mesh(np.array(chosen), (axis,))


def replicate(tree: Tree, mesh: Mesh) -> Tree:
    """Every array of ``tree`` copied to every device of ``mesh``.

    Args:
        tree: a pytree of arrays (e.g. ``nnx.state(model)``).
        mesh: the mesh.

    Returns:
        The same pytree, each array replicated.

    Example:
        >>> import jax.numpy as jnp
        >>> replicate({"w": jnp.ones(3)}, data_mesh())["w"].sharding.is_fully_replicated
        True

    """
    replicated = PartitionSpec()  # type: ignore[no-untyped-call]
    placed: Tree = jax.device_put(tree, NamedSharding(mesh, replicated))
    return placed


def shard_batch(batch: Tree, mesh: Mesh, axis: str = AXIS) -> Tree:
    """Every array of ``batch`` split along its first axis over the mesh's ``axis``.

    Args:
        batch: a pytree of arrays with the batch first.
        mesh: the mesh.
        axis: the mesh axis to split over.

    Returns:
        The same pytree, each array sharded by its first axis.

    Raises:
        ArgumentError: a batch that does not divide evenly over the devices.

    Example:
        >>> import jax.numpy as jnp
        >>> mesh = data_mesh()
        >>> batch = shard_batch(jnp.zeros((2 * mesh.shape["data"], 3)), mesh)
        >>> len(batch.sharding.device_set) == mesh.shape["data"]
        True

    """
    count = mesh.shape[axis]
    split = PartitionSpec(axis)  # type: ignore[no-untyped-call]

    def place(array: Any) -> Any:
        if np.shape(array)[0] % count:
            raise ArgumentError(
                f"a batch of {np.shape(array)[0]} does not split over {count} devices; "
                f"use a multiple of {count}"
            )
        return jax.device_put(array, NamedSharding(mesh, split))

    placed: Tree = jax.tree.map(place, batch)
    return placed
