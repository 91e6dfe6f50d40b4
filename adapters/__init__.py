"""Framework adapters: one registry, the same module names, the same verbs.

Every adapter is a package ``rpgcore.adapters.<name>`` with the modules of
:data:`MODULES` and the verbs of :data:`VERBS` (conversion and ring files)
and :data:`TRAIN_VERBS` (its ``train`` module), each with the same signature
in every adapter (``tests/test_adapter_contract.py`` compares them). The few
justified differences are listed in ``docs/adapters.md``. An adapter imports
its framework; :func:`get` imports one by name only when it is wanted, and
this registry itself imports nothing.

Example:
    >>> from rpgcore import adapters
    >>> adapters.ADAPTERS, adapters.TRAINABLE
    (('torch', 'jax', 'keras', 'cupy'), ('torch', 'jax', 'keras'))
    >>> adapters.REGISTRY["jax"].requires
    ('jax', 'flax')

"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from rpgcore.errors import BackendUnavailableError

__all__ = ["ADAPTERS", "MODULES", "REGISTRY", "TRAINABLE", "TRAIN_VERBS", "VERBS", "Adapter", "get"]


@dataclass(frozen=True)
class Adapter:
    """One adapter of the registry.

    Attributes:
        name: its package name under ``rpgcore.adapters``.
        requires: the packages it imports.
        extra: the ``pip install 'rpgcore[extra]'`` that installs them.
        implemented: whether this release implements it (else its verbs raise
            :class:`~rpgcore.errors.BackendUnavailableError`).

    """

    name: str
    requires: tuple[str, ...]
    extra: str
    implemented: bool = True


REGISTRY = {
    adapter.name: adapter
    for adapter in (
        Adapter("torch", ("torch",), "torch"),
        Adapter("jax", ("jax", "flax"), "jax"),
        Adapter("keras", ("keras",), "keras"),
        Adapter("cupy", ("cupy",), "cupy", implemented=False),
    )
}
"""Every adapter rpgcore knows, by name."""

ADAPTERS = tuple(REGISTRY)
"""Every adapter name rpgcore knows."""

TRAINABLE = tuple(name for name, adapter in REGISTRY.items() if adapter.implemented)
"""The adapters with a training loop (``rpgcore train --framework``)."""

VERBS = ("rpgify", "save", "load", "plan_of", "materialize", "summary")
"""The functions every adapter package defines."""

TRAIN_VERBS = ("build_model", "prepare", "count_parameters", "save", "logits", "evaluate", "fit")
"""The functions every adapter's ``train`` module defines."""

MODULES = ("convert", "describe", "io", "models", "train")
"""The modules every implemented adapter package has."""


def get(name: str, module: str = "") -> ModuleType:
    """Import an adapter (or one of its modules) by name.

    Args:
        name: one of :data:`ADAPTERS`.
        module: one of :data:`MODULES`, or ``""`` for the package.

    Returns:
        The module.

    Raises:
        BackendUnavailableError: an unknown adapter, or its framework is not
            installed (the message names the ``pip install`` that fixes it).

    Example:
        >>> get("tensorflow")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rpgcore.errors.BackendUnavailableError: unknown adapter 'tensorflow'; choose one of ...

    """
    adapter = REGISTRY.get(name)
    if adapter is None:
        raise BackendUnavailableError(
            f"unknown adapter {name!r}; choose one of {', '.join(ADAPTERS)} "
            "(Keras 3 runs on TensorFlow)"
        )
    target = ".".join(filter(None, ("rpgcore.adapters", name, module)))
    try:
        return importlib.import_module(target)
    except ImportError as error:
        if isinstance(error, BackendUnavailableError):
            raise
        raise BackendUnavailableError(
            f"the {name} adapter needs {' and '.join(adapter.requires)} ({error}); "
            f'pip install "rpgcore[{adapter.extra},data]"'
        ) from None
