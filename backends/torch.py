"""The torch backend of the generator spec (not implemented in this release).

The module imports without torch, but every primitive raises
:class:`rpgcore.errors.BackendUnavailableError`; use
:mod:`rpgcore.backends.numpy` until it exists.
"""

from typing import NoReturn

from rpgcore.errors import BackendUnavailableError

__all__: list[str] = []


def __getattr__(name: str) -> NoReturn:
    raise BackendUnavailableError(
        f"rpgcore.backends.torch.{name} is not implemented in this release; "
        "use rpgcore.backends.numpy"
    )
