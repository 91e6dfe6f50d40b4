"""Module ``__getattr__`` for backends and adapters that are not implemented yet.

Such a module imports cleanly (so tools that scan packages keep working), but
asking it for one of its public functions raises
:class:`rpgcore.errors.BackendUnavailableError` with a clear message; any other
name is a plain ``AttributeError``, as for any module.

Example:
    >>> getattr_ = placeholder("rpgcore.backends.example", ("expand",), "use numpy")
    >>> try:
    ...     getattr_("expand")
    ... except BackendUnavailableError as error:
    ...     print(error)
    rpgcore.backends.example.expand is not implemented in this release; use numpy

"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NoReturn

from rpgcore.errors import BackendUnavailableError

__all__ = ["placeholder"]


def placeholder(module: str, names: Iterable[str], advice: str) -> Callable[[str], NoReturn]:
    """Build the ``__getattr__`` of a module whose functions do not exist yet.

    Args:
        module: the module's full name.
        names: the public functions the module will offer.
        advice: what to use meanwhile, appended to the message.

    Returns:
        A function suitable as a module-level ``__getattr__``.

    Example:
        >>> placeholder("m", ("f",), "wait")("g")
        Traceback (most recent call last):
        ...
        AttributeError: module 'm' has no attribute 'g'

    """
    known = frozenset(names)

    def module_getattr(name: str) -> NoReturn:
        if name in known:
            raise BackendUnavailableError(
                f"{module}.{name} is not implemented in this release; {advice}"
            )
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return module_getattr
