"""The pieces of a plan: :class:`Slot` (one generated kernel) and :class:`Ring`, and init rules.

Example:
    >>> from rpgcore.slots import fan_out, variance
    >>> fan_out((64, 3, 7, 7)), variance((10, 512), "lecun_fan_in")
    (3136, Fraction(1, 512))

"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "DEFAULT_INIT_RULE",
    "DEFAULT_RING",
    "INIT_RULES",
    "Ring",
    "Slot",
    "fan_in",
    "fan_out",
    "variance",
]

DEFAULT_RING = "global"
"""Name of the ring of a plan built with a single integer ``ring_size``."""

INIT_RULES = {"he_fan_out": (2, "fan_out"), "lecun_fan_in": (1, "fan_in")}
"""Initialisation rules (spec section 5): the starting variance of a slot is ``gain / fan``.

``he_fan_out`` (``2 / fan_out``, He et al.) is the paper's, and the default of
:meth:`rpgcore.Plan.build`; ``lecun_fan_in`` (``1 / fan_in``) suits dense
layers, within a factor 2 of the standard deviation PyTorch, Keras and Flax
give a dense kernel of their own."""
DEFAULT_INIT_RULE = "he_fan_out"
"""The rule of a slot whose plan names none."""


@dataclass(frozen=True)
class Slot:
    """One generated kernel.

    Attributes:
        name: the slot's name, unique in the plan (for example ``"layer1.0.conv1.weight"``).
        shape: the canonical shape (spec section 2.2).
        ring: the name of the ring it is generated from.
        scale: the slot's scale (spec section 5).
        offset: its first position in the ring's position space.
        init: the initialisation rule its scale was derived from (:data:`INIT_RULES`).

    """

    name: str
    shape: tuple[int, ...]
    ring: str
    scale: float
    offset: int
    init: str = DEFAULT_INIT_RULE

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


def fan_in(shape: tuple[int, ...]) -> int:
    """Fan-in of a canonical kernel shape: ``product(shape[1:])``, as PyTorch computes it.

    Args:
        shape: a canonical shape; a 1-D shape has fan-in 1.

    Returns:
        The fan-in.

    Example:
        >>> fan_in((64, 3, 7, 7)), fan_in((10, 512)), fan_in((5,))
        (147, 512, 1)

    """
    return math.prod(shape[1:])


def variance(shape: tuple[int, ...], rule: str) -> Fraction:
    """The starting variance of a kernel of canonical ``shape`` under ``rule``, exactly.

    Args:
        shape: the canonical shape.
        rule: a key of :data:`INIT_RULES`.

    Returns:
        ``gain / fan`` as an exact fraction.

    Raises:
        KeyError: an unknown rule.

    Example:
        >>> variance((64, 3, 3, 3), "he_fan_out")
        Fraction(1, 288)

    """
    gain, fan = INIT_RULES[rule]
    return Fraction(gain, fan_out(shape) if fan == "fan_out" else fan_in(shape))
