"""Array backends of the generator spec, one module per framework.

Every backend module offers the same primitives, with the same names and
meanings as the numpy reference (:mod:`rpgcore.backends.numpy`):
``threefry2x32``, ``ring_indices``, ``ring_signs``, ``ring_inverse``,
``init_ring``, ``expand`` and ``contract``, and the generation an adapter
runs every step: ``gather`` (one kernel from packed indices,
:mod:`rpgcore.packing`) and ``expand_slots`` (every kernel of a ring, with a
deterministic ring gradient: the ordered add, or the spec's inverse gather).
A backend must match the numpy reference bit for bit on indices, signs,
initial rings and generated kernels.

A backend module imports its framework, so import a backend only when that
framework is wanted; :func:`get` does it by name.

Example:
    >>> from rpgcore import backends
    >>> backends.get("numpy").__name__
    'rpgcore.backends.numpy'

"""

from __future__ import annotations

import importlib
from types import ModuleType

from rpgcore.errors import BackendUnavailableError

__all__ = ["AVAILABLE", "BACKENDS", "PRIMITIVES", "get"]

BACKENDS = ("numpy", "torch", "jax", "tensorflow", "cupy")
"""Every backend name rpgcore knows."""

AVAILABLE = ("numpy", "torch", "jax", "tensorflow")
"""Backends implemented in this release (whether their framework is installed or not).

Listing a backend here imports nothing: :func:`get` imports it on demand and
raises :class:`~rpgcore.errors.BackendUnavailableError`, with an install hint,
when its framework is missing.
"""

PRIMITIVES = (
    "from_numpy",
    "to_numpy",
    "threefry2x32",
    "ring_indices",
    "ring_signs",
    "ring_inverse",
    "init_ring",
    "expand",
    "contract",
    "gather",
    "expand_slots",
)
"""The functions every backend module defines."""


def get(name: str) -> ModuleType:
    """Import and return a backend module by name.

    Args:
        name: one of :data:`BACKENDS`.

    Returns:
        The backend module.

    Raises:
        BackendUnavailableError: unknown name, a backend this release does
            not implement yet, or its framework is not installed.

    Example:
        >>> get("numpy").CHUNK > 0
        True

    """
    if name not in BACKENDS:
        raise BackendUnavailableError(
            f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}"
        )
    if name not in AVAILABLE:
        raise BackendUnavailableError(
            f"the {name} backend is not implemented in this release; "
            f"available: {', '.join(AVAILABLE)}"
        )
    try:
        return importlib.import_module(f"rpgcore.backends.{name}")
    except ImportError as error:
        if isinstance(error, BackendUnavailableError):
            raise
        raise BackendUnavailableError(
            f"the {name} backend needs {name}, which cannot be imported ({error}); "
            f"install it, for example with pip install 'rpgcore[{name}]'"
        ) from error
