"""The tensorflow backend of the generator spec (not implemented in this release).

The module imports without tensorflow, but every primitive raises
:class:`rpgcore.errors.BackendUnavailableError`; use
:mod:`rpgcore.backends.numpy` until it exists.
"""

from rpgcore._placeholder import placeholder
from rpgcore.backends import PRIMITIVES

__all__: list[str] = []

__getattr__ = placeholder(__name__, PRIMITIVES, "use rpgcore.backends.numpy")
