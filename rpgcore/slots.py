"""The pieces of a plan: :class:`Slot` (one generated kernel) and :class:`Ring`.

Example:
    >>> from rpgcore.slots import fan_out
    >>> fan_out((64, 3, 7, 7))
    3136

"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_RING", "Ring", "Slot", "fan_out"]

DEFAULT_RING = "global"
"""Name of the ring of a plan built with a single integer ``ring_size``."""


@dataclass(frozen=True)
class Slot:
    """One generated kernel.

    Attributes:
        name: the slot's name, unique in the plan (for example ``"layer1.0.conv1.weight"``).
        shape: the canonical shape (spec section 2.2).
        ring: the name of the ring it is generated from.
        scale: the slot's scale (spec section 5).
        offset: its first position in the ring's position space.

    """

    name: str
    shape: tuple[int, ...]
    ring: str
    scale: float
    offset: int

    @property
    def size(self) -> int:
        """The number of generated parameters of the slot."""
        return math.prod(self.shape)

    @property
    def fan_out(self) -> int:
        """``shape[0] * product(shape[2:])`` (spec section 5)."""
        return fan_out(self.shape)


@dataclass(frozen=True)
class Ring:
    """One ring.

    Attributes:
        name: the ring's name.
        id: its 32-bit id, which enters the key derivation.
        size: ``N``, the number of trainable entries.
        init_std: the standard deviation of its initial values.
        generated: ``M``, the number of parameters generated from it.

    """

    name: str
    id: int
    size: int
    init_std: float
    generated: int


def fan_out(shape: tuple[int, ...]) -> int:
    """He fan-out of a canonical kernel shape: ``shape[0] * product(shape[2:])``.

    Args:
        shape: a canonical shape.

    Returns:
        The fan-out.

    Example:
        >>> fan_out((64, 3, 7, 7)), fan_out((10, 512))
        (3136, 10)

    """
    return shape[0] * math.prod(shape[2:])
