"""The order of a PyTorch model's layers: the forward graph's, where ``torch.fx`` can trace it.

A plan lists its slots, and a ring file its tensors, in the model's layer
order, and a file is matched to a model by that order. PyTorch registers
modules in the order ``__init__`` creates them, which need not be the order
``forward`` uses them; Keras lists layers in forward order from its graph.
So this adapter orders layers as Keras does, from the graph ``torch.fx``
traces: a depth-first walk from the output that visits every node's inputs
first, left to right, so a layer comes after everything it reads and, of two
branches that meet (``out + shortcut``), the whole first branch first. A
model ``fx`` cannot trace (data-dependent control flow) keeps its
registration order.

The order's *claims* say which orders the listing satisfies: ``"graph"``
(forward order, as above) and ``"modules"`` (registration, which Flax NNX
uses). A ring file records them, and loading a file into a model whose order
claims none of the file's warns (:class:`~rpgcore.errors.LayerOrderWarning`).

Example:
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.first, self.third = nn.Linear(2, 2), nn.Linear(2, 2)
    ...         self.second = nn.Linear(2, 2)
    ...     def forward(self, x):
    ...         return self.third(self.second(self.first(x)))
    >>> order, claims = forward_order(Net())
    >>> order, claims
    (['', 'first', 'second', 'third'], ('graph',))

"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["forward_order"]


def _graph_order(model: nn.Module) -> list[str] | None:
    """Module paths of the ``call_module`` nodes in depth-first post-order from the output."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        return None
    found: list[str] = []
    done: set[Any] = set()
    outputs = [node for node in graph.nodes if node.op == "output"]
    stack: list[tuple[Any, bool]] = [(node, False) for node in reversed(outputs)]
    while stack:  # an explicit stack: deep networks would overflow recursion
        node, expanded = stack.pop()
        if node in done:
            continue
        if not expanded:
            stack.append((node, True))
            stack.extend((parent, False) for parent in reversed(node.all_input_nodes))
            continue
        done.add(node)
        if node.op == "call_module" and node.target not in found:
            found.append(str(node.target))
    return found


def forward_order(model: nn.Module) -> tuple[list[str], tuple[str, ...]]:
    """Every module path of ``model``, each once, parents first, in forward order where known.

    Args:
        model: any module.

    Returns:
        ``(paths, claims)``: the paths (``""`` is the model); the claims, of
        ``"graph"`` and ``"modules"``, that this order satisfies.

    """
    registered = [name for name, _ in model.named_modules()]
    leaves = _graph_order(model)
    if leaves is None:
        return registered, ("modules",)
    order: list[str] = []
    placed: set[str] = set()
    known = set(registered)
    for leaf in leaves:
        parts = leaf.split(".")
        for depth in range(len(parts) + 1):  # the model, then each ancestor, then the leaf
            path = ".".join(parts[:depth])
            if path not in placed and path in known:
                placed.add(path)
                order.append(path)
    order += [name for name in registered if name not in placed]  # modules forward never uses
    claims = ("graph", "modules") if order == registered else ("graph",)
    return order, claims
