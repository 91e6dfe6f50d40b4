"""The jax backend of the generator spec (not implemented in this release).

The module imports without jax, but every primitive raises
:class:`rpgcore.errors.BackendUnavailableError`; use
:mod:`rpgcore.backends.numpy` until it exists.
"""

from typing import NoReturn

from rpgcore.errors import BackendUnavailableError

__all__: list[str] = []


def __getattr__(name: str) -> NoReturn:
    raise BackendUnavailableError(
        f"rpgcore.backends.jax.{name} is not implemented in this release; "
        "use rpgcore.backends.numpy"
    )
