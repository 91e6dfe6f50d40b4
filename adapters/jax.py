"""The jax adapter (not implemented in this release).

The module imports without jax, but every verb raises
:class:`rpgcore.errors.BackendUnavailableError`.
"""

from typing import NoReturn

from rpgcore.errors import BackendUnavailableError

__all__: list[str] = []


def __getattr__(name: str) -> NoReturn:
    raise BackendUnavailableError(f"rpgcore.adapters.jax.{name} is not implemented in this release")
