"""rpgcore: Recurrent Parameter Generators, one spec for every framework.

A large network's kernels are generated from one small trainable vector, the
*ring*: ``K_i = scale_i * R_i W``, where ``R_i`` is a seeded permutation with
random sign flips, drawn with even sampling (Wang et al., "Compact and
Optimal Deep Learning with Recurrent Parameter Generators", WACV 2023). The
generator is specified bit for bit in ``docs/spec.md`` (version ``rpg-v1``),
so a seed gives the same kernels in numpy, PyTorch, JAX, TensorFlow and CuPy.

This package is the framework-neutral core: it needs numpy (and the
safetensors package to read ring files) and never imports a deep-learning
framework.

Example:
    >>> import rpgcore
    >>> plan = rpgcore.Plan.build({"conv": (16, 3, 3, 3), "fc": (10, 16)}, ring_size=100, seed=1)
    >>> rings = plan.init_ring()
    >>> kernels = plan.expand(rings)
    >>> kernels["conv"].shape, round(plan.compression_ratio, 2)
    ((16, 3, 3, 3), 5.92)

"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

# _checkout comes first: importing it maps backends/ and adapters/ when
# rpgcore runs from a source checkout (see rpgcore/_checkout.py).
from rpgcore import _checkout, backends, errors, layouts, spec  # noqa: F401 (_checkout)
from rpgcore._version import __version__
from rpgcore.errors import RpgError
from rpgcore.plan import Plan, Ring, Slot
from rpgcore.ringfile import load, save
from rpgcore.spec import SPEC_VERSION

__all__ = [
    "SPEC_VERSION",
    "Plan",
    "Ring",
    "RpgError",
    "Slot",
    "__version__",
    "backends",
    "errors",
    "layouts",
    "load",
    "save",
    "spec",
    "threefry2x32",
]


def threefry2x32(
    key: tuple[ArrayLike, ArrayLike], counter: tuple[ArrayLike, ArrayLike]
) -> tuple[NDArray[np.uint32], NDArray[np.uint32]]:
    """Threefry-2x32-20 (spec section 1), the same function as ``jax.random.threefry_2x32``.

    Args:
        key: ``(k0, k1)``, uint32 scalars or arrays.
        counter: ``(c0, c1)``, uint32 scalars or arrays; everything broadcasts.

    Returns:
        ``(y0, y1)`` as uint32 arrays of the broadcast shape.

    Raises:
        ArgumentError: ``key`` or ``counter`` is not a pair of integer words in
            ``[0, 2**32)``, or the words do not broadcast together.

    Example:
        >>> y0, y1 = threefry2x32((0, 0), (0, 0))
        >>> hex(int(y0)), hex(int(y1))
        ('0x6b200159', '0x99ba4efe')

    """
    from rpgcore.backends.numpy import threefry2x32 as implementation

    pairs = {"key": key, "counter": counter}
    words: list[Any] = []
    for what, pair in pairs.items():
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise errors.ArgumentError(f"{what} must be a pair of 32-bit words, got {pair!r}")
        for value in pair:
            array = np.asarray(value)
            if array.dtype.kind not in "ui" and array.size:
                raise errors.ArgumentError(
                    f"{what} words must be unsigned integers, got dtype {array.dtype}; "
                    "pass numpy uint32 arrays or Python ints"
                )
            if array.size and (int(array.min()) < 0 or int(array.max()) > 0xFFFFFFFF):
                raise errors.ArgumentError(
                    f"{what} words must be in [0, 2**32), got values from {int(array.min())} "
                    f"to {int(array.max())}; reduce them modulo 2**32"
                )
            words.append(array.astype(np.uint32))
    try:
        np.broadcast_shapes(*(word.shape for word in words))
    except ValueError:
        shapes = [word.shape for word in words]
        raise errors.ArgumentError(
            f"key and counter words of shapes {shapes} do not broadcast; give them one shape"
        ) from None
    return implementation(*words)
