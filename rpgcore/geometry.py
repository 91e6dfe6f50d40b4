"""What a backend needs to know about one ring: :class:`RingGeometry`.

A plan (``rpgcore.Plan``) describes slots and rings; a backend only ever
works on one ring's position space at a time. ``RingGeometry`` carries that
ring's size, generated size, mode and its three stream keys (spec section 3),
so backends never repeat the key derivation.

Example:
    >>> from rpgcore.geometry import RingGeometry
    >>> geometry = RingGeometry.derive(seed=0, ring_id=0, size=7, generated=39,
    ...                                mode="perm_sign", init_std=0.5)
    >>> geometry.blocks, geometry.width
    (6, 3)

"""

from __future__ import annotations

from dataclasses import dataclass

from rpgcore import spec
from rpgcore.errors import ArgumentError

__all__ = ["RingGeometry", "check_range", "stream_keys"]

_WORD = 0xFFFFFFFF


def check_range(start: int, stop: int, limit: int) -> None:
    """Check a range of positions (or ``(q, e)`` pairs) asked of a backend.

    Args:
        start: first position.
        stop: one past the last position.
        limit: the size of the space, ``M`` or ``blocks * N``.

    Raises:
        ArgumentError: unless ``0 <= start <= stop <= limit``.

    Example:
        >>> check_range(0, 5, 5)

    """
    if not 0 <= start <= stop <= limit:
        raise ArgumentError(
            f"position range [{start}, {stop}) is outside [0, {limit}); ask for "
            "0 <= start <= stop within the ring (slot.offset to slot.offset + slot.size)"
        )


def stream_keys(seed: int, ring_id: int) -> dict[str, tuple[int, int]]:
    """Derive the three stream keys of a ring (spec section 3).

    Args:
        seed: the plan's seed, ``0 <= seed < 2**64``.
        ring_id: the ring's 32-bit id.

    Returns:
        ``{"perm": (k0, k1), "sign": (k0, k1), "init": (k0, k1)}``.

    Example:
        >>> sorted(stream_keys(0, 0))
        ['init', 'perm', 'sign']

    """
    from rpgcore.backends.numpy import threefry2x32

    keys = {}
    for name, tag in spec.STREAM_TAGS.items():
        y0, y1 = threefry2x32(seed & _WORD, seed >> 32, ring_id, tag)
        keys[name] = (int(y0), int(y1))
    return keys


@dataclass(frozen=True)
class RingGeometry:
    """One ring's position space and keys, as the backends see it.

    Attributes:
        size: ``N``, the number of ring entries.
        generated: ``M``, the number of generated parameters of this ring.
        mode: one of :data:`rpgcore.spec.MODES`.
        key_perm: the Threefry key of the permutation stream.
        key_sign: the Threefry key of the sign stream.
        key_init: the Threefry key of the initialisation stream.
        init_std: the standard deviation of the initial ring.

    """

    size: int
    generated: int
    mode: str
    key_perm: tuple[int, int]
    key_sign: tuple[int, int]
    key_init: tuple[int, int]
    init_std: float

    @classmethod
    def derive(
        cls, *, seed: int, ring_id: int, size: int, generated: int, mode: str, init_std: float
    ) -> RingGeometry:
        """Build a geometry, deriving its keys from ``seed`` and ``ring_id``.

        Args:
            seed: the plan's seed.
            ring_id: the ring's id.
            size: the ring size ``N``.
            generated: the ring's generated size ``M``.
            mode: the plan's mode.
            init_std: the ring's initial standard deviation.

        Returns:
            The geometry.

        Example:
            >>> RingGeometry.derive(seed=1, ring_id=0, size=4, generated=8,
            ...                     mode="none", init_std=1.0).blocks
            2

        """
        keys = stream_keys(seed, ring_id)
        return cls(size, generated, mode, keys["perm"], keys["sign"], keys["init"], init_std)

    @property
    def blocks(self) -> int:
        """``ceil(M / N)``: the number of blocks of the position space."""
        return -(-self.generated // self.size)

    @property
    def width(self) -> int:
        """The Feistel width ``w`` (spec section 4)."""
        return spec.feistel_width(self.size)

    def block_chunks(self, chunk: int) -> list[tuple[int, int]]:
        """Cut the ``(q, e)`` grid ``[0, blocks * N)`` into ranges for chunked work.

        A range holds whole blocks (as many as fit in ``chunk`` pairs, at
        least one) when a block fits in ``chunk``; otherwise it is a piece of
        one block. Either way, ranges never straddle a block boundary in the
        middle of a block.

        Args:
            chunk: the largest number of pairs a range should hold.

        Returns:
            ``(start, stop)`` ranges, in increasing order, covering the grid.

        Example:
            >>> g = RingGeometry.derive(seed=0, ring_id=0, size=4, generated=10,
            ...                         mode="perm", init_std=1.0)
            >>> g.block_chunks(8), g.block_chunks(3)[:2]
            ([(0, 8), (8, 12)], [(0, 3), (3, 4)])

        """
        size, grid = self.size, self.blocks * self.size
        if size <= chunk:
            step = (chunk // size) * size
            return [(lo, min(lo + step, grid)) for lo in range(0, grid, step)]
        return [
            (q * size + lo, q * size + min(lo + chunk, size))
            for q in range(self.blocks)
            for lo in range(0, size, chunk)
        ]

    @property
    def permuted(self) -> bool:
        """Whether indices go through the block permutations."""
        return self.mode in spec.PERMUTED_MODES

    @property
    def signed(self) -> bool:
        """Whether positions carry random signs."""
        return self.mode in spec.SIGNED_MODES
