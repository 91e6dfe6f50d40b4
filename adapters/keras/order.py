"""The forward order of a Functional model's layers: the order of its slots and tensors.

Keras lists ``model.layers`` by depth from the output, which puts a
residual block's shortcut convolution before the block's last batch norm.
PyTorch registers modules in the order a ``forward`` usually uses them. So
that the same network gets the same order in both, the adapter lists layers
in *forward order*: a depth-first walk from the outputs that visits every
layer's inputs first, left to right (a post-order of the graph). A layer
comes after everything it reads, and of two branches that meet (an
``Add()([main, shortcut])``), the whole first branch comes before the second.

The order depends only on the graph, which a ``.keras`` file stores, so a
model and its saved and loaded copy list their layers alike.

Example:
    >>> import keras
    >>> x = keras.Input((4,))
    >>> main = keras.layers.Dense(4, name="main_2")(keras.layers.Dense(4, name="main_1")(x))
    >>> shortcut = keras.layers.Dense(4, name="shortcut")(x)
    >>> model = keras.Model(x, keras.layers.Add(name="add")([main, shortcut]))
    >>> [layer.name for layer in forward_order(model)]
    ['main_1', 'main_2', 'shortcut', 'add']

"""

from __future__ import annotations

from typing import Any

import keras  # type: ignore[import-untyped]

__all__ = ["flatten_source", "forward_order", "layers_of"]


def forward_order(model: Any) -> list[Any]:
    """The layers of ``model`` in forward order (input layers left out).

    Args:
        model: a Functional or Sequential model (any other model: its ``layers``).

    Returns:
        Each layer once, at its first use; layers the outputs do not depend
        on come last, in ``model.layers`` order.

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="a"),
        ...                           keras.layers.Dense(1, name="b")])
        >>> [layer.name for layer in forward_order(model)]
        ['a', 'b']

    """
    try:
        outputs = keras.tree.flatten(model.outputs)
        inputs = {id(t) for t in keras.tree.flatten(model.inputs)}
    except (AttributeError, ValueError):  # a subclassed or unbuilt model
        return list(model.layers)
    order: list[Any] = []
    placed: set[int] = set()
    done: set[int] = set()
    # An explicit stack: (tensor, whether its node's inputs were pushed already).
    stack: list[tuple[Any, bool]] = [(tensor, False) for tensor in reversed(outputs)]
    while stack:
        tensor, expanded = stack.pop()
        history = getattr(tensor, "_keras_history", None)
        if history is None or history.operation is None or id(tensor) in inputs:
            continue  # the model's inputs: input layers, or tensors from outside the model
        node = history.operation._inbound_nodes[history.node_index]
        if id(node) in done:
            continue
        if not expanded and not node.is_input:
            stack.append((tensor, True))
            stack.extend((parent, False) for parent in reversed(node.input_tensors))
            continue
        done.add(id(node))
        layer = node.operation
        if id(layer) not in placed and not isinstance(layer, keras.layers.InputLayer):
            placed.add(id(layer))
            order.append(layer)
    order.extend(layer for layer in model.layers if id(layer) not in placed)
    return [layer for layer in order if not isinstance(layer, keras.layers.InputLayer)]


def layers_of(model: Any) -> list[Any]:
    """Every layer of ``model``, nested models' layers included, in forward order.

    Args:
        model: a Keras model.

    Returns:
        Its layers, each nested model replaced by its own layers.

    Example:
        >>> inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="a")])
        >>> outer = keras.Sequential([keras.Input((2,)), inner, keras.layers.Dense(1, name="b")])
        >>> [layer.name for layer in layers_of(outer)]
        ['a', 'b']

    """
    found: list[Any] = []
    for layer in forward_order(model):
        found.extend(layers_of(layer) if isinstance(layer, keras.Model) else [layer])
    return found


def flatten_source(layer: Any) -> tuple[int, ...] | None:
    """The map a ``Dense`` layer reads through a ``Flatten``, as its channels-last shape.

    Keras flattens a map channels-last, ``(*spatial, C)`` (a ``Flatten`` with
    ``data_format="channels_first"`` moves the channels last first), while the
    canonical (PyTorch) layout flattens ``(C, *spatial)``: the same weight of
    the dense kernel sits at another input position
    (:func:`rpgcore.layouts.to_native`).

    Args:
        layer: any layer of a built Functional or Sequential model.

    Returns:
        ``(*spatial, C)`` when ``layer`` is a ``Dense`` fed by a ``Flatten`` of
        a map with more than one spatial position; else ``None``.

    Example:
        >>> model = keras.Sequential([keras.Input((3, 2, 4)), keras.layers.Flatten(),
        ...                           keras.layers.Dense(5, name="fc")])
        >>> flatten_source(model.get_layer("fc"))
        (3, 2, 4)

    """
    if not isinstance(layer, keras.layers.Dense):
        return None
    try:
        source = layer.input._keras_history[0]
        shape = tuple(source.input.shape[1:])
    except (AttributeError, ValueError, IndexError):  # several inputs or uses, or no graph
        return None
    if not isinstance(source, keras.layers.Flatten) or len(shape) < 2 or None in shape:
        return None
    if source.data_format == "channels_first":
        shape = (*shape[1:], shape[0])
    spatial = 1
    for size in shape[:-1]:
        spatial *= int(size)
    return tuple(int(n) for n in shape) if spatial > 1 else None
