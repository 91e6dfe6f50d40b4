"""Constants and scalar rules of the generator spec ``rpg-v1`` (``docs/spec.md``).

This module holds what every backend shares: the spec version, the modes,
the Threefry constants, the stream tags of the key derivation (section 3)
and the Feistel widths (section 4). Array code lives in the backends.

Example:
    >>> from rpgcore import spec
    >>> spec.feistel_width(45_000)
    16
    >>> spec.feistel_halves(16)
    (8, 8)

"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "FEISTEL_ROUNDS",
    "MAX_RING_SIZE",
    "MODES",
    "PERMUTED_MODES",
    "SIGNED_MODES",
    "SPEC_VERSION",
    "STREAM_TAGS",
    "SUPPORTED_SPECS",
    "THREEFRY_PARITY",
    "THREEFRY_ROTATIONS",
    "Mode",
    "feistel_halves",
    "feistel_width",
    "round_widths",
]

SPEC_VERSION: Final = "rpg-v1"
"""The generator spec that this rpgcore writes."""

SUPPORTED_SPECS: Final = frozenset({SPEC_VERSION})
"""Every spec version this rpgcore can read and generate."""

Mode = Literal["perm_sign", "perm", "sign", "none"]
MODES: Final[tuple[str, ...]] = ("perm_sign", "perm", "sign", "none")
"""The modes of the paper's ablation (Fig. 5), default first."""
PERMUTED_MODES: Final = frozenset({"perm_sign", "perm"})
SIGNED_MODES: Final = frozenset({"perm_sign", "sign"})

THREEFRY_ROTATIONS: Final = (13, 15, 26, 6, 17, 29, 16, 24)
THREEFRY_PARITY: Final = 0x1BD11BDA
THREEFRY_ROUNDS: Final = 20

STREAM_TAGS: Final = {"perm": 0x7065726D, "sign": 0x7369676E, "init": 0x696E6974}
"""Counter word ``c1`` of the key derivation, ASCII of the stream's name."""

FEISTEL_ROUNDS: Final = 8
MAX_RING_SIZE: Final = 2**31
"""Largest ring size: indices must fit a signed 32-bit integer."""
MAX_BLOCKS: Final = 2**32
"""Blocks per ring position space: the block number is one 32-bit word."""
SIGN_BITS_PER_CALL: Final = 64
INIT_CALLS: Final = 6
INIT_UNIFORM_SHIFT: Final = 12
"""Each init uniform is the top 20 bits of a Threefry word."""


def feistel_width(ring_size: int) -> int:
    """Return ``w``, the bit width of the Feistel domain for a ring.

    Args:
        ring_size: the number of ring entries ``N`` (at least 1).

    Returns:
        ``max(2, bit_length(N - 1))``, so that ``2**w >= N``.

    Example:
        >>> feistel_width(1), feistel_width(5), feistel_width(2**31)
        (2, 3, 31)

    """
    return max(2, (ring_size - 1).bit_length())


def feistel_halves(width: int) -> tuple[int, int]:
    """Split a Feistel width into its high and low halves ``(a, b)``, ``a >= b``.

    Args:
        width: the Feistel width ``w``.

    Returns:
        ``(ceil(w / 2), floor(w / 2))``.

    Example:
        >>> feistel_halves(17)
        (9, 8)

    """
    return (width + 1) // 2, width // 2


def round_widths(width: int, round_index: int) -> tuple[int, int]:
    """Return ``(hi, lo)``: how round ``round_index`` splits its input.

    Even rounds split ``(a, b)`` and odd rounds ``(b, a)``, because each round
    moves the old low part to the top.

    Args:
        width: the Feistel width ``w``.
        round_index: the round, ``0 <= round_index < FEISTEL_ROUNDS``.

    Returns:
        The widths of the high and low parts of the round's input.

    Example:
        >>> round_widths(17, 0), round_widths(17, 1)
        ((9, 8), (8, 9))

    """
    a, b = feistel_halves(width)
    return (a, b) if round_index % 2 == 0 else (b, a)
