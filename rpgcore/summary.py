"""What an RPG model generates and what it keeps as ordinary tensors: a summary to print.

Every adapter's ``summary(model)`` builds a :class:`Summary` from its view of
the model (:class:`rpgcore.modelfile.ModelView`), so a user can see at once
which kernels come from which ring and which weights stayed ordinary, and
why (the classifier, a layer left out by ``include``, a layer kind rpgcore
cannot generate yet).

Example:
    >>> from rpgcore.plan import Plan
    >>> from rpgcore.porting import Tensor
    >>> plan = Plan.build({"conv.weight": (8, 3, 3, 3)}, ring_size=100)
    >>> tensors = [Tensor("fc.weight", "fc", "linear", "weight", (10, 8)),
    ...            Tensor("fc.bias", "fc", "linear", "bias", (10,))]
    >>> print(summarize(plan, tensors))  # doctest: +NORMALIZE_WHITESPACE
    generated   216 parameters in 1 layer from 100 ring entries (2.16x)
    ordinary    90 parameters in 2 tensors
    <BLANKLINE>
    tensor       shape         params  ring or why ordinary
    -----------  ------------  ------  --------------------------------------------------
    conv.weight  (8, 3, 3, 3)     216  ring global
    fc.weight    (10, 8)           80  dense layer left out (the classifier, or include=)
    fc.bias      (10,)             10  bias

"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rpgcore._text import aligned
from rpgcore.plan import Plan
from rpgcore.porting import Tensor

__all__ = ["Summary", "summarize"]

_WHY = {
    "bias": "bias",
    "scale": "normalisation",
    "offset": "normalisation",
    "mean": "state",
    "var": "state",
    "native": "state",
}


@dataclass(frozen=True)
class Summary:
    """Rows of a model's summary: every generated kernel, then every ordinary tensor.

    Attributes:
        plan: the model's plan.
        rows: ``(name, shape, parameters, ring or why ordinary)``, in the model's order.

    """

    plan: Plan
    rows: tuple[tuple[str, tuple[int, ...], int, str], ...]

    @property
    def ordinary(self) -> int:
        """The parameters (and state values) outside the rings' kernels."""
        return sum(row[2] for row in self.rows if not row[3].startswith("ring "))

    def __str__(self) -> str:
        """The summary as a table."""
        plan = self.plan
        count = sum(1 for row in self.rows if not row[3].startswith("ring "))
        head = [
            f"generated   {plan.generated_size:,} parameters in {len(plan.slots)} "
            f"layer{'s' * (len(plan.slots) != 1)} from {plan.ring_parameters:,} ring entries "
            f"({plan.compression_ratio:.2f}x)",
            f"ordinary    {self.ordinary:,} parameters in {count} tensors",
            "",
        ]
        body = aligned(
            ["tensor", "shape", "params", "ring or why ordinary"],
            [[name, str(shape), f"{size:,}", why] for name, shape, size, why in self.rows],
            right={2},
        )
        return "\n".join(head + body)


def _why(tensor: Tensor) -> str:
    if tensor.role == "weight" and tensor.kind in ("conv", "conv_transpose", "linear"):
        kind = "dense layer" if tensor.kind == "linear" else "convolution"
        return f"{kind} left out (the classifier, or include=)"
    if tensor.kind == "other" and len(tensor.shape) >= 2:
        return "a layer kind rpgcore does not generate"
    return "state" if tensor.buffer else _WHY.get(tensor.role, "ordinary")


def summarize(plan: Plan, tensors: Sequence[Tensor]) -> Summary:
    """A model's summary from its plan and its other tensors.

    Args:
        plan: the model's plan.
        tensors: its non-generated tensors, in the model's order.

    Returns:
        The summary: print it.

    """
    rows = [(s.name, s.shape, s.size, f"ring {s.ring}") for s in plan.slots]
    rows += [(t.name, t.shape, math.prod(t.shape), _why(t)) for t in tensors]
    return Summary(plan, tuple(rows))
