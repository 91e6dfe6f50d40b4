"""Which Flax NNX layers rpgify can generate, how they store their kernels, and model order.

NNX itself lists a module's attributes sorted by name (``nnx.iter_graph``,
``nnx.state``). The plan instead follows the **order in which the model
created its layers** (Python keeps attribute insertion order on a freshly
built model), which is the order a PyTorch user's modules are registered in:
the same architecture then gives the same plan in every framework
(:func:`walk`).

Example:
    >>> from flax import nnx
    >>> rngs = nnx.Rngs(0)
    >>> model = nnx.Sequential(nnx.Linear(2, 3, rngs=rngs), nnx.Linear(3, 1, rngs=rngs))
    >>> [(path, type(m).__name__) for path, m in walk(model)]
    [('', 'Sequential'), ('layers', 'List'), ('layers.0', 'Linear'), ('layers.1', 'Linear')]
    >>> layout_of(model.layers[0]), kind_of(model.layers[0])
    ('channels_last', 'linear')

"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from flax import nnx

__all__ = ["GENERATED_TYPES", "kind_of", "layout_of", "modules_by_path", "own_variables", "walk"]

GENERATED_TYPES: tuple[type[nnx.Module], ...] = (nnx.Conv, nnx.ConvTranspose, nnx.Linear)
"""Layer types whose ``kernel`` rpgify can generate."""

_INTERNAL = "_pytree__"


def _children(node: Any) -> Iterator[tuple[str, Any]]:
    """A node's attributes (or items) in insertion order, without NNX's bookkeeping."""
    if isinstance(node, nnx.Pytree):
        items: Any = vars(node).items()
    elif isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list | tuple):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        if not (isinstance(key, str) and key.startswith(_INTERNAL)):
            yield str(key), value


def _all_paths(model: nnx.Module) -> list[tuple[str, nnx.Module]]:
    """Every ``(path, module)`` pair, depth first in attribute order (a shared module repeats)."""
    found: list[tuple[str, nnx.Module]] = []
    open_nodes: set[int] = set()

    def visit(path: str, node: Any) -> None:
        if isinstance(node, nnx.Variable) or id(node) in open_nodes:
            return
        if isinstance(node, nnx.Module):
            found.append((path, node))
        elif not isinstance(node, dict | list | tuple):
            return
        open_nodes.add(id(node))
        for key, value in _children(node):
            visit(f"{path}.{key}" if path else key, value)
        open_nodes.discard(id(node))

    visit("", model)
    return found


def walk(model: nnx.Module, order: Sequence[str] = ()) -> list[tuple[str, nnx.Module]]:
    """Every module of ``model`` once, parents first, in creation order.

    NNX keeps a module's attributes in the order the model created them
    until a transform (``nnx.jit``, ``nnx.grad``, ``nnx.clone``, ...)
    rebuilds the module, which then holds them sorted by name. A converted
    model therefore records its creation order at conversion time, and
    passes it here as ``order``.

    Args:
        model: the root module.
        order: module paths in their recorded order; modules at these paths
            come first, in this order, the others after, in attribute order.

    Returns:
        ``(path, module)`` pairs; paths join attribute names (and list
        indices) with ``"."``, the root's path is ``""``. A module reachable
        by several paths is listed once, at its first path.

    Example:
        >>> from flax import nnx
        >>> [path for path, _ in walk(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))]
        ['']

    """
    pairs = _all_paths(model)
    by_path = dict(pairs)
    ranked = [(path, by_path[path]) for path in order if path in by_path] + pairs
    seen: set[int] = set()
    unique: list[tuple[str, nnx.Module]] = []
    for path, module in ranked:
        if id(module) not in seen:
            seen.add(id(module))
            unique.append((path, module))
    return unique


def modules_by_path(model: nnx.Module) -> dict[str, nnx.Module]:
    """Every module of ``model`` under every path that reaches it (as :func:`walk` writes paths).

    Args:
        model: the root module.

    Returns:
        Path to module; a shared module appears under each of its paths.

    Example:
        >>> from flax import nnx
        >>> model = nnx.Sequential(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
        >>> type(modules_by_path(model)["layers.0"]).__name__
        'Linear'

    """
    return dict(_all_paths(model))


def own_variables(module: nnx.Module) -> list[tuple[str, nnx.Variable[Any]]]:
    """The variables held directly by ``module`` (not by its sub-modules), in creation order.

    Args:
        module: a module.

    Returns:
        ``(attribute name, variable)`` pairs.

    Example:
        >>> from flax import nnx
        >>> [name for name, _ in own_variables(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))]
        ['kernel', 'bias']

    """
    return [(key, value) for key, value in _children(module) if isinstance(value, nnx.Variable)]


def kind_of(layer: nnx.Module) -> str:
    """The layer's kind in the ring file's terms: ``conv``, ``conv_transpose`` or ``linear``.

    Args:
        layer: an instance of one of :data:`GENERATED_TYPES`.

    Returns:
        The kind, or ``"other"`` for any other module.

    Example:
        >>> from flax import nnx
        >>> kind_of(nnx.Conv(1, 2, (3, 3), rngs=nnx.Rngs(0)))
        'conv'

    """
    if isinstance(layer, nnx.ConvTranspose):
        return "conv_transpose"
    if isinstance(layer, nnx.Conv):
        return "conv"
    if isinstance(layer, nnx.Linear):
        return "linear"
    return "other"


def layout_of(layer: nnx.Module) -> str:
    """How ``layer`` stores its kernel, relative to the canonical (PyTorch) layout.

    Args:
        layer: an instance of one of :data:`GENERATED_TYPES`.

    Returns:
        ``"channels_last"`` for ``Conv`` (``(*spatial, in, out)``), ``Linear``
        (``(in, out)``) and ``ConvTranspose(transpose_kernel=True)``
        (``(*spatial, out, in)``); ``"spatial_first"`` for a plain
        ``ConvTranspose`` (``(*spatial, in, out)`` for PyTorch's
        ``(in, out, *spatial)``).

    Example:
        >>> from flax import nnx
        >>> layout_of(nnx.ConvTranspose(2, 4, (3,), rngs=nnx.Rngs(0)))
        'spatial_first'

    """
    if isinstance(layer, nnx.ConvTranspose) and not layer.transpose_kernel:
        return "spatial_first"
    return "channels_last"
