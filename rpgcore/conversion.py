"""Conversion: which layers an adapter generates, from which ring, how big. Written once.

Every adapter's ``rpgify`` lists its model's *candidates* (the layers whose
kernel it can generate) as :class:`Candidate` records in forward order and
hands them to :func:`convert`, with a hook that counts the model's ordinary
trainable parameters. :func:`convert` applies the rules below and returns the
:class:`Conversion`: the plan and the chosen layers, in plan order. The
adapter then only attaches the rings. So the same architecture with the same
arguments gives the same plan in every framework.

The rules:

- **include**: by default every candidate but the model's *classifier*: the
  last ``linear`` candidate in forward order, or, in a model without a dense
  layer (a fully convolutional classifier such as MobileNet's ``conv_preds``),
  the last candidate. A callable ``(name, layer) -> bool`` chooses among the
  candidates; a list of names must name candidates only
  (:func:`rpgcore.sizing.selected`).
- **scope**: ``"global"`` is one ring, ``"global"``; ``"block"`` is one ring
  per first component of the candidate's dotted ``path`` (``layer1.0.conv1``
  is in ring ``layer1``); a callable ``(name, layer) -> ring name`` decides
  itself. The adapter's hook writes the path: module paths in PyTorch and
  Flax, the layer name with ``_`` read as ``.`` in Keras (``layer1_0_conv1``).
- **sizes**: ``ring_size=`` as given, or ``dof=``, shared by the rings in
  proportion to what each generates (:func:`rpgcore.sizing.ring_sizes`).
- **initialisation**: each slot starts with the variance of its kind's rule
  (:data:`rpgcore.slots.INIT_RULES`): He fan-out for convolutions, as in the
  paper; LeCun fan-in for dense layers, close to every framework's own dense
  initialisation. The rule of every slot is recorded in the plan.

Example:
    >>> layers = [Candidate("conv", "conv", "conv", (8, 3, 3, 3)),
    ...           Candidate("fc", "fc", "linear", (10, 8))]
    >>> result = convert(layers, Options(ring_size=50), ordinary=lambda chosen: 18)
    >>> result.plan.slot_names, [c.name for c in result.left]
    (('conv',), ['fc'])

"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from rpgcore.errors import ArgumentError, ConversionWarning, PlanError, RingSizeWarning
from rpgcore.plan import Plan
from rpgcore.sizing import ring_sizes, selected
from rpgcore.slots import INIT_RULES

__all__ = [
    "DEFAULT_INIT",
    "GENERATED_KINDS",
    "LARGE",
    "Candidate",
    "Conversion",
    "Options",
    "Rpgify",
    "classifier",
    "convert",
    "ring_name",
    "rpgify_verb",
]

GENERATED_KINDS = ("conv", "conv_transpose", "linear")
"""The layer kinds whose kernels an adapter can generate."""

DEFAULT_INIT = {"conv": "he_fan_out", "conv_transpose": "he_fan_out", "linear": "lecun_fan_in"}
"""The default initialisation rule of each kind (:data:`rpgcore.slots.INIT_RULES`)."""

Scope = str | Callable[[str, Any], str]
Include = Callable[[str, Any], bool] | Collection[str] | None
Model = TypeVar("Model")


@dataclass(frozen=True)
class Options:
    """The arguments of every adapter's ``rpgify`` (see :class:`Rpgify` for their meaning)."""

    ring_size: int | Mapping[str, int] | None = None
    dof: int | None = None
    seed: int = 0
    mode: str = "perm_sign"
    scope: Scope = "global"
    include: Include = None
    init: Mapping[str, str] | None = None
    backward: str = "add"


class Rpgify(Protocol[Model]):
    """The signature of every adapter's ``rpgify``, written once."""

    def __call__(
        self,
        model: Model,
        *,
        ring_size: int | Mapping[str, int] | None = None,
        dof: int | None = None,
        seed: int = 0,
        mode: str = "perm_sign",
        scope: Scope = "global",
        include: Include = None,
        init: Mapping[str, str] | None = None,
        backward: str = "add",
    ) -> Model:
        """Convert ``model`` so that its chosen kernels are generated from rings.

        Args:
            model: the framework's model.
            ring_size: ring entries: one int for every ring, or ring name to size.
            dof: instead of ``ring_size``: trainable parameters wanted in total; the
                rings share what the ordinary parameters leave, in proportion to
                the parameters each generates.
            seed: the plan's seed, ``0 <= seed < 2**64``.
            mode: ``perm_sign``, ``perm``, ``sign`` or ``none``.
            scope: ``"global"`` (one ring), ``"block"`` (one ring per first
                component of the layer's path: the paper's block-level RPG), or a
                callable ``(name, layer) -> ring name``.
            include: ``(name, layer) -> bool`` choosing among the candidates, a list
                of layer names (each must be a candidate), or ``None``: all but the
                classifier (:func:`classifier`).
            init: layer kind to initialisation rule, over :data:`DEFAULT_INIT`.
            backward: how the ring gradient is computed (``"add"``; ``"gather"``
                where the adapter offers the spec's inverse gather).

        Returns:
            The converted model.

        """


_SIGNATURE = inspect.signature(Rpgify.__call__).replace(
    parameters=list(inspect.signature(Rpgify.__call__).parameters.values())[1:]
)


def rpgify_verb(implementation: Callable[[Model, Options], Model]) -> Rpgify[Model]:
    """An adapter's ``rpgify`` from its implementation, with the one signature of :class:`Rpgify`.

    Args:
        implementation: ``(model, options) -> converted model``; its name and
            docstring become the verb's.

    Returns:
        The verb.

    Example:
        >>> @rpgify_verb
        ... def rpgify(model, options):
        ...     "Convert a list."
        ...     return [options.seed, *model]
        >>> rpgify([1], seed=7), rpgify.__doc__
        ([7, 1], 'Convert a list.')

    """

    def rpgify(model: Model, /, **arguments: Any) -> Model:
        _SIGNATURE.bind(model, **arguments)  # a TypeError for an unknown or positional argument
        return implementation(model, Options(**arguments))

    rpgify.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(rpgify, attribute, getattr(implementation, attribute))
    return cast(Rpgify[Model], rpgify)  # its signature is _SIGNATURE, checked by bind


@dataclass(frozen=True)
class Candidate:
    """A layer whose kernel an adapter can generate.

    Args:
        name: the layer's name as the framework's user knows it (a module
            path, a Keras layer name); ``include`` and a ``scope`` callable
            receive it.
        slot: the slot's name in the plan (``"layer1.0.conv1.weight"``).
        kind: one of :data:`GENERATED_KINDS`.
        shape: the kernel's canonical (PyTorch-layout) shape.
        layer: the framework's layer object (handed back to the adapter).
        layout: how the framework stores the kernel (the adapter's own name for it).
        path: the dotted path for ``scope="block"``; by default ``name``.
        problem: why the layer cannot be generated as it is (a lazy layer
            without a shape, a kernel regularizer), or ``""``: choosing it is
            an error with this message.

    Raises:
        ArgumentError: an unknown kind.

    Example:
        >>> Candidate("conv2_block1_1_conv", "conv2_block1_1_conv/kernel", "conv", (64, 64, 1, 1),
        ...           path="conv2.block1.1.conv").block
        'conv2'

    """

    name: str
    slot: str
    kind: str
    shape: tuple[int, ...]
    layer: Any = field(default=None, compare=False)
    layout: str = "canonical"
    path: str = ""
    problem: str = ""

    def __post_init__(self) -> None:
        if self.kind not in GENERATED_KINDS:
            raise ArgumentError(
                f"layer {self.name!r}: kind {self.kind!r} cannot be generated; "
                f"use one of {GENERATED_KINDS}"
            )
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if not self.path:
            object.__setattr__(self, "path", self.name)

    @property
    def block(self) -> str:
        """The ring of this layer under ``scope="block"``: the first part of its path."""
        return self.path.split(".")[0] or self.path

    @property
    def size(self) -> int:
        """The number of parameters of the kernel."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert` decided.

    Attributes:
        plan: the plan; its slots are the chosen candidates' slots, in forward order.
        chosen: the chosen candidates, in plan order.
        left: the candidates left ordinary, in forward order.

    """

    plan: Plan
    chosen: tuple[Candidate, ...]
    left: tuple[Candidate, ...]


def ring_name(scope: Scope, candidate: Candidate) -> str:
    """The ring a candidate's kernel is generated from.

    Args:
        scope: ``"global"``, ``"block"`` or a callable ``(name, layer) -> ring name``.
        candidate: the layer.

    Returns:
        The ring's name.

    Raises:
        ArgumentError: an unknown scope, or a callable that returns no string.

    Example:
        >>> layer = Candidate("layer1.0.conv1", "layer1.0.conv1.weight", "conv", (4, 4, 3, 3))
        >>> ring_name("block", layer), ring_name("global", layer)
        ('layer1', 'global')

    """
    if callable(scope):
        ring = scope(candidate.name, candidate.layer)
        if not isinstance(ring, str):
            raise ArgumentError(
                f"scope returned {ring!r} for {candidate.name!r}; return a ring name (str)"
            )
        return ring
    if scope == "global":
        return "global"
    if scope == "block":
        return candidate.block
    raise ArgumentError(f"scope must be 'global', 'block' or a callable, got {scope!r}")


def classifier(candidates: Sequence[Candidate]) -> Candidate | None:
    """The model's classifier, which stays ordinary by default.

    Args:
        candidates: every candidate, in forward order.

    Returns:
        The last ``linear`` candidate; without one, the last candidate; ``None`` if there is none.

    Example:
        >>> conv = Candidate("conv_preds", "conv_preds/kernel", "conv", (10, 8, 1, 1))
        >>> classifier([conv]).name
        'conv_preds'

    """
    linear = [c for c in candidates if c.kind == "linear"]
    last = linear[-1:] or list(candidates[-1:])
    return last[0] if last else None


def _chosen(
    candidates: Sequence[Candidate], include: Include, layers: Mapping[str, Any]
) -> list[Candidate]:
    if include is None:
        head = classifier(candidates)
        return [c for c in candidates if c is not head]
    if callable(include):
        return [c for c in candidates if include(c.name, c.layer)]
    names = selected(
        include,
        {c.name for c in candidates},
        layers or {c.name: c.layer for c in candidates},
        "convolution, transposed convolution and dense",
    )
    return [c for c in candidates if c.name in names]


def _nothing(candidates: Sequence[Candidate], include: Include) -> PlanError:
    if not candidates:
        return PlanError(
            "the model has no convolution, transposed convolution or dense layer to generate"
        )
    head = classifier(candidates)
    if include is None and head is not None and len(candidates) == 1:
        return PlanError(
            f"no layer to generate: the only candidate, {head.name!r}, is the model's "
            f"classifier, which stays ordinary by default; pass include=[{head.name!r}] to "
            "generate it"
        )
    return PlanError(
        f"include chose none of the {len(candidates)} candidate layers "
        f"({', '.join(repr(c.name) for c in candidates[:4])}, ...); check include"
    )


def _check_ring_sizes(plan: Plan) -> None:
    """Warn where a ring holds more entries than it generates (the paper has |W| <= sum |K_i|)."""
    for ring in plan.rings:
        if ring.size > ring.generated:
            warnings.warn(
                f"ring {ring.name!r} has {ring.size:,} entries but generates only "
                f"{ring.generated:,} parameters: it trains more parameters than the layers it "
                f"replaces; use a ring of at most {ring.generated:,} entries",
                RingSizeWarning,
                stacklevel=5,  # the caller of an adapter's rpgify
            )


LARGE = 4096
"""A weight of at least this many parameters that rpgify cannot generate is warned about."""


def _warn_unsupported(unsupported: Sequence[tuple[str, tuple[int, ...]]]) -> None:
    """Warn, naming them, about large weights of layers no adapter generates (yet)."""
    large = [
        (name, shape)
        for name, shape in unsupported
        if len(shape) >= 2 and math.prod(shape) >= LARGE
    ]
    if not large:
        return
    named = ", ".join(f"{name!r} {shape}" for name, shape in large[:5])
    more = f" and {len(large) - 5} more" if len(large) > 5 else ""
    total = sum(math.prod(shape) for _, shape in large)
    warnings.warn(
        f"rpgify leaves {total:,} parameters of layers it cannot generate as ordinary "
        f"parameters: {named}{more}; rpgcore does not generate attention, embedding or "
        "recurrent weights yet (dof= counts them with the other ordinary parameters)",
        ConversionWarning,
        stacklevel=5,  # the caller of an adapter's rpgify
    )


def convert(
    candidates: Sequence[Candidate],
    options: Options,
    *,
    ordinary: Callable[[Sequence[Candidate]], int],
    layers: Mapping[str, Any] | None = None,
    unsupported: Sequence[tuple[str, tuple[int, ...]]] = (),
) -> Conversion:
    """Choose the layers to generate and build their plan.

    Args:
        candidates: the model's candidate layers, in forward order, each layer once.
        options: ``rpgify``'s arguments (:class:`Rpgify`); ``backward`` is the adapter's.
        ordinary: the adapter's hook: the model's trainable parameters outside
            the chosen kernels (a tied tensor counted once).
        layers: every layer of the model by name, for the messages of a bad ``include`` list.
        unsupported: ``(name, shape)`` of the weights of layers the adapter cannot
            generate; large ones are warned about (:data:`LARGE`).

    Returns:
        The :class:`Conversion`.

    Raises:
        ArgumentError: a bad scope, include, init rule, ``ring_size`` or ``dof``,
            or a chosen layer with a :attr:`Candidate.problem`.
        PlanError: no layer to generate, a ring name that is not an
            identifier, or bad plan arguments.

    Warns:
        RingSizeWarning: a ring with more entries than the parameters it generates.
        ConversionWarning: large weights of layers that cannot be generated stay ordinary.

    Example:
        >>> layers = [Candidate(f"layer{i}.conv", f"layer{i}.conv.weight", "conv", (8, 8, 3, 3))
        ...           for i in (1, 2)] + [Candidate("fc", "fc.weight", "linear", (10, 8))]
        >>> options = Options(dof=300, scope="block")
        >>> plan = convert(layers, options, ordinary=lambda chosen: 90).plan
        >>> plan.ring_sizes
        {'layer1': 105, 'layer2': 105}

    """
    rules = {**DEFAULT_INIT, **(options.init or {})}
    for kind, rule in rules.items():
        if kind not in GENERATED_KINDS or rule not in INIT_RULES:
            raise ArgumentError(
                f"init={{{kind!r}: {rule!r}}}: map a kind of {GENERATED_KINDS} to a rule of "
                f"{tuple(INIT_RULES)}"
            )
    chosen = _chosen(candidates, options.include, layers or {})
    if not chosen:
        raise _nothing(candidates, options.include)
    for c in chosen:
        if c.problem:
            raise ArgumentError(f"layer {c.name!r} cannot be generated: {c.problem}")
    groups = {c.slot: ring_name(options.scope, c) for c in chosen}
    for ring in dict.fromkeys(groups.values()):
        if not ring.isidentifier():
            raise PlanError(
                f"ring name {ring!r} cannot name a parameter in every framework; "
                "use letters, digits and _ (a scope callable decides the names)"
            )
    generated: dict[str, int] = {}
    for c in chosen:
        generated[groups[c.slot]] = generated.get(groups[c.slot], 0) + c.size
    sizes = ring_sizes(generated, options.ring_size, options.dof, ordinary=ordinary(chosen))
    plan = Plan.build(
        {c.slot: c.shape for c in chosen},
        ring_size=sizes,
        seed=options.seed,
        mode=options.mode,
        groups=groups,
        init={c.slot: rules[c.kind] for c in chosen},
    )
    _check_ring_sizes(plan)
    _warn_unsupported(unsupported)
    left = tuple(c for c in candidates if all(c is not k for k in chosen))
    return Conversion(plan, tuple(chosen), left)
