"""Ring names and ring sizes for rpgify: scopes, and ``ring_size=`` or ``dof=``.

Every adapter uses these rules, so the same model and arguments give the
same plan in every framework:

- ``scope="global"``: one ring, ``"global"``; ``"block"``: one ring per
  top-level child (the first part of the layer's path); a callable
  ``(path, layer) -> ring name``.
- ``dof=``: the rings share what the ordinary (non-generated) trainable
  parameters leave, in proportion to the parameters each ring generates;
  the rounding remainder goes to the ring that generates most.

Example:
    >>> ring_sizes({"global": 1000}, None, 300, ordinary=100)
    {'global': 200}
    >>> ring_sizes({"a": 300, "b": 100}, None, 500, ordinary=100)
    {'a': 300, 'b': 100}

"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rpgcore.errors import ArgumentError

__all__ = ["ring_name", "ring_sizes"]


def ring_name(scope: str | Callable[[str, Any], str], path: str, layer: Any) -> str:
    """The ring a layer's kernel is generated from.

    Args:
        scope: ``"global"``, ``"block"`` or a callable ``(path, layer) -> ring name``.
        path: the layer's path (``"layer1.0.conv1"``).
        layer: the layer.

    Returns:
        The ring name.

    Raises:
        ArgumentError: an unknown scope, or a callable that returns no string.

    Example:
        >>> ring_name("block", "layer1.0.conv1", None), ring_name("global", "fc", None)
        ('layer1', 'global')

    """
    if callable(scope):
        ring = scope(path, layer)
        if not isinstance(ring, str):
            raise ArgumentError(f"scope returned {ring!r} for {path!r}; return a ring name (str)")
        return ring
    if scope == "global":
        return "global"
    if scope == "block":
        return path.split(".")[0]
    raise ArgumentError(f"scope must be 'global', 'block' or a callable, got {scope!r}")


def ring_sizes(
    generated: Mapping[str, int],
    ring_size: int | Mapping[str, int] | None,
    dof: int | None,
    *,
    ordinary: int,
) -> int | dict[str, int]:
    """The ring size(s) for :meth:`rpgcore.Plan.build`, from ``ring_size`` or ``dof``.

    Args:
        generated: ring name to the number of parameters it generates.
        ring_size: one size for every ring, or ring name to size.
        dof: instead: the trainable parameters wanted in total.
        ordinary: the model's trainable parameters that stay ordinary.

    Returns:
        ``ring_size`` as given, or the sizes ``dof`` leaves, by ring name.

    Raises:
        ArgumentError: both or neither of ``ring_size`` and ``dof``, a ``dof``
            that is not an integer, or one that leaves less than one entry per ring.

    Example:
        >>> ring_sizes({"global": 50}, None, 10, ordinary=20)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rpgcore.errors.ArgumentError: dof 10 leaves -10 parameters for 1 ring(s): ...; ask for more

    """
    if (ring_size is None) == (dof is None):
        raise ArgumentError("give exactly one of ring_size and dof")
    if ring_size is not None:
        return ring_size if isinstance(ring_size, int) else dict(ring_size)
    if isinstance(dof, bool) or not isinstance(dof, int):
        raise ArgumentError(f"dof must be an integer, got {dof!r}")
    left = dof - ordinary
    if left < len(generated):
        raise ArgumentError(
            f"dof {dof} leaves {left} parameters for {len(generated)} ring(s): the model's "
            f"ordinary parameters alone take {ordinary}; ask for more"
        )
    total = sum(generated.values())
    sizes = {ring: max(1, left * count // total) for ring, count in generated.items()}
    largest = max(sizes, key=lambda ring: generated[ring])
    sizes[largest] += left - sum(sizes.values())  # the rounding remainder
    return sizes
