"""The keras adapter (not implemented in this release).

The module imports without keras, but every verb raises
:class:`rpgcore.errors.BackendUnavailableError`.
"""

from typing import NoReturn

from rpgcore.errors import BackendUnavailableError

__all__: list[str] = []


def __getattr__(name: str) -> NoReturn:
    raise BackendUnavailableError(
        f"rpgcore.adapters.keras.{name} is not implemented in this release"
    )
