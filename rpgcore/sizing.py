"""Ring sizes for rpgify, from ``ring_size=`` or ``dof=``, and explicit layer lists.

:func:`rpgcore.conversion.convert` applies these rules for every adapter, so
the same model and arguments give the same plan in every framework:

- ``dof=``: the rings share what the ordinary (non-generated) trainable
  parameters leave, in proportion to the parameters each ring generates;
  the rounding remainder goes to the ring that generates most.
- ``include=[names]``: an explicit list of layers; every name must be a
  layer the adapter can generate (:func:`selected`).

Example:
    >>> ring_sizes({"global": 1000}, None, 300, ordinary=100)
    {'global': 200}
    >>> ring_sizes({"a": 300, "b": 100}, None, 500, ordinary=100)
    {'a': 300, 'b': 100}

"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from rpgcore.errors import ArgumentError

__all__ = ["ring_sizes", "selected"]


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


def selected(
    include: Iterable[str],
    candidates: Collection[str],
    layers: Mapping[str, Any],
    kinds: str,
) -> set[str]:
    """The layers an explicit ``include=[names]`` asks for, each one checked.

    A layer named explicitly that cannot be generated (an ``nn.LSTM``, an
    ``Embedding``, a normalisation layer) is an error rather than silently
    left ordinary, and so is a name the model lacks.

    Args:
        include: the layer names (paths) asked for.
        candidates: the names of the layers the adapter can generate.
        layers: every layer of the model by name, for messages.
        kinds: the layer kinds the adapter generates, for messages.

    Returns:
        The names, as a set.

    Raises:
        ArgumentError: ``include`` is one string, not a list of them; a name
            the model lacks; or a layer the adapter cannot generate.

    Example:
        >>> selected(["fc1"], {"fc1", "fc2"}, {"fc1": None, "fc2": None, "lstm": None}, "Linear")
        {'fc1'}
        >>> selected(["lstm"], {"fc1"}, {"fc1": None, "lstm": 0}, "Linear")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rpgcore.errors.ArgumentError: include names layer 'lstm' (int), which cannot be ...

    """
    if isinstance(include, str | bytes):
        raise ArgumentError(
            f"include={include!r} is one string; give a list of layer names, e.g. [{include!r}]"
        )
    names = list(include)
    for name in names:
        if name in candidates:
            continue
        if name not in layers:
            known = [key for key in layers if key][:8]
            raise ArgumentError(
                f"include names {name!r}, which is not a layer of the model; its layers "
                f"include {known}: give layer paths as the model names them"
            )
        raise ArgumentError(
            f"include names layer {name!r} ({type(layers[name]).__name__}), which cannot be "
            f"generated: only {kinds} kernels are; leave it out of include (it stays ordinary)"
        )
    return set(names)
