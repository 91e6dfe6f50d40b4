"""RPG for any JAX parameter pytree (Equinox, Flax Linen, Haiku, hand-written JAX).

A :class:`Generator` is a pure function from rings to parameters: it takes
a parameter pytree once (to learn its structure and kernel shapes) and then
maps ``rings -> params`` inside ``jax.jit``, the chosen leaves replaced by
kernels generated from the rings, each in the leaf's own layout. So
``jax.grad`` with respect to the rings works with any JAX library.

Choosing the leaves (``include=``, default: every floating leaf of two or
more dimensions named ``weight``, ``kernel`` or ``w``, but the last
two-dimensional one, the classifier) and their layout (``layout=``,
default by name: ``weight`` is ``(out, in, *spatial)`` as in Equinox and
PyTorch, ``kernel`` and ``w`` are ``(*spatial, in, out)`` as in Flax Linen
and Haiku). The plan lists the leaves in pytree order (``jax.tree`` order:
dictionary keys sorted, dataclass and Equinox fields in declaration order).

The generator is itself a pytree whose leaves are its integer index arrays:
pass it **as an argument** to a jitted function (a closed-over generator
would embed its indices in the compiled program as constants).

Example:
    >>> import jax, jax.numpy as jnp
    >>> params = {"conv": {"kernel": jnp.zeros((3, 3, 1, 4))},
    ...           "head": {"kernel": jnp.zeros((4, 2))}}
    >>> generator = Generator.from_params(params, ring_size=10, seed=0)
    >>> generator.plan.slot_names, generator.plan.slot("conv.kernel").shape
    (('conv.kernel',), (4, 1, 3, 3))
    >>> full = jax.jit(generator)(generator.init(), params)
    >>> full["conv"]["kernel"].shape, bool((full["head"]["kernel"] == 0).all())
    ((3, 3, 1, 4), True)

"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rpgcore.backends import jax as backend
from rpgcore.conversion import Candidate, Options, convert
from rpgcore.errors import ArgumentError, PlanMismatchError
from rpgcore.layouts import LAYOUTS, canonical_shape
from rpgcore.packing import inverse_index, native_index
from rpgcore.plan import Plan

__all__ = ["BACKWARDS", "KERNEL_NAMES", "Generator"]

KERNEL_NAMES = {"weight": "canonical", "kernel": "channels_last", "w": "channels_last"}
"""Leaf names chosen by default, and the layout each implies."""
BACKWARDS = ("add", "gather")
"""Ring-gradient methods: JAX's scatter-add, or the spec's inverse gather (bitwise ``contract``)."""


def _is_none(value: Any) -> bool:
    return value is None


def _leaves(params: Any) -> tuple[list[tuple[str, Any]], Any]:
    flat, treedef = jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_none)
    named = [(jax.tree_util.keystr(path, simple=True, separator="."), leaf) for path, leaf in flat]
    return named, treedef


def _floating(leaf: Any) -> bool:
    return (
        hasattr(leaf, "dtype")
        and hasattr(leaf, "shape")
        and jnp.issubdtype(leaf.dtype, jnp.floating)
    )


def _last_name(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _kernel_named(path: str, leaf: Any) -> bool:
    return _floating(leaf) and leaf.ndim >= 2 and _last_name(path) in KERNEL_NAMES


def _layout(layout: str | Callable[[str, Any], str] | None, path: str, leaf: Any) -> str:
    if callable(layout):
        chosen = layout(path, leaf)
    elif layout is not None:
        chosen = layout
    else:
        chosen = KERNEL_NAMES.get(_last_name(path), "")
        if not chosen:
            raise ArgumentError(
                f"leaf {path!r} is not named weight, kernel or w, so its layout is unknown; "
                f"pass layout= (one of {', '.join(LAYOUTS)}) or a callable (path, leaf) -> layout"
            )
    if chosen not in LAYOUTS:
        raise ArgumentError(
            f"layout {chosen!r} for leaf {path!r} is unknown; use one of {', '.join(LAYOUTS)}"
        )
    return chosen


def _candidate(path: str, leaf: Any, layout: str | Callable[[str, Any], str] | None) -> Candidate:
    """A leaf as a candidate; what stops it from being generated is its problem."""
    shape = tuple(int(n) for n in leaf.shape) if hasattr(leaf, "shape") else ()
    kind = "linear" if len(shape) <= 2 else "conv"
    if not _floating(leaf):
        return Candidate(path, path, kind, shape, leaf, problem="it is not a floating array")
    try:
        native = _layout(layout, path, leaf)
    except ArgumentError as error:
        return Candidate(path, path, kind, shape, leaf, problem=str(error))
    return Candidate(path, path, kind, canonical_shape(shape, native), leaf, native)


@jax.tree_util.register_pytree_node_class
class Generator:
    """Rings to parameters for a fixed parameter pytree (build it with :meth:`from_params`).

    Attributes:
        plan: the plan (slot names are the leaves' paths, shapes canonical).
        layouts: the native layout of every slot, in plan order.

    """

    def __init__(
        self,
        plan: Plan,
        treedef: Any,
        positions: tuple[int, ...],
        layouts: tuple[str, ...],
        indices: tuple[jax.Array, ...],
        inverse: tuple[jax.Array, ...] | None,
    ) -> None:
        self.plan = plan
        self.treedef = treedef
        self.positions = positions
        self.layouts = layouts
        self.indices = indices
        self.inverse = inverse

    # ------------------------------------------------------------ pytree protocol
    def tree_flatten(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The index arrays are the leaves; everything else is static."""
        children = (self.indices, self.inverse)
        return children, (self.plan, self.treedef, self.positions, self.layouts)

    @classmethod
    def tree_unflatten(cls, aux: tuple[Any, ...], children: tuple[Any, ...]) -> Generator:
        """Rebuild from :meth:`tree_flatten`'s parts."""
        plan, treedef, positions, layouts = aux
        indices, inverse = children
        return cls(plan, treedef, positions, layouts, indices, inverse)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_params(
        cls,
        params: Any,
        *,
        ring_size: int | Mapping[str, int] | None = None,
        dof: int | None = None,
        seed: int = 0,
        mode: str = "perm_sign",
        scope: str | Callable[[str, Any], str] = "global",
        include: Callable[[str, Any], bool] | Collection[str] | None = None,
        layout: str | Callable[[str, Any], str] | None = None,
        init: Mapping[str, str] | None = None,
        backward: str = "add",
    ) -> Generator:
        """Plan the generation of ``params``' kernels.

        Args:
            params: a pytree of arrays (``None`` leaves allowed, e.g. from
                ``eqx.partition``); only shapes and dtypes are read.
            ring_size: ring entries: one int for every ring, or ring name to size.
            dof: instead of ``ring_size``: trainable parameters wanted in total
                (rings plus the floating leaves that are not generated).
            seed: the plan's seed, ``0 <= seed < 2**64``.
            mode: ``perm_sign``, ``perm``, ``sign`` or ``none``.
            scope: ``"global"``, ``"block"`` (one ring per first path
                component) or a callable ``(path, leaf) -> ring name``.
            include: ``(path, leaf) -> bool`` choosing the leaves to generate,
                or a list of leaf paths; by default every floating leaf of two
                or more dimensions named ``weight``, ``kernel`` or ``w``, but
                the classifier (the last 2-D one: :func:`rpgcore.conversion.classifier`).
            layout: the leaves' layout, one of
                :data:`rpgcore.layouts.LAYOUTS`, or a callable
                ``(path, leaf) -> layout``; by default from the leaf's name
                (:data:`KERNEL_NAMES`).
            init: layer kind to initialisation rule, over
                :data:`rpgcore.conversion.DEFAULT_INIT` (a 2-D leaf is ``linear``,
                a larger one ``conv``).
            backward: ``"add"`` (JAX's derivative of the gather) or
                ``"gather"`` (the spec's inverse gather and ordered block
                sum: the ring gradient is bitwise :meth:`rpgcore.Plan.contract`,
                at 4 more bytes of index per generated parameter).

        Returns:
            The generator.

        Raises:
            ArgumentError: a chosen leaf that is not floating, an unknown
                layout or backward, or bad ``ring_size``/``dof``.
            PlanError: nothing to generate, or bad plan arguments.

        Example:
            >>> import jax.numpy as jnp
            >>> params = {"w1": jnp.zeros((8, 4)), "w2": jnp.zeros((2, 8)), "b": jnp.zeros(2)}
            >>> generator = Generator.from_params(
            ...     params, dof=40, include=lambda path, leaf: path != "b", layout="canonical")
            >>> generator.plan.ring_sizes, generator.plan.slot_names
            ({'global': 38}, ('w1', 'w2'))

        """
        if backward not in BACKWARDS:
            raise ArgumentError(f"backward={backward!r}: use one of {', '.join(BACKWARDS)}")
        if isinstance(layout, str) and layout not in LAYOUTS:
            raise ArgumentError(f"layout {layout!r} is unknown; use one of {', '.join(LAYOUTS)}")
        named, treedef = _leaves(params)
        found = [
            _candidate(path, leaf, layout)
            for path, leaf in named
            if leaf is not None and (include is not None or _kernel_named(path, leaf))
        ]
        floating = sum(math.prod(leaf.shape) for _, leaf in named if _floating(leaf))
        options = Options(ring_size, dof, seed, mode, scope, include, init, backward)
        listed = {c.name for c in found}
        conversion = convert(
            found,
            options,
            ordinary=lambda chosen: floating - sum(c.size for c in chosen),
            unsupported=[
                (path, tuple(leaf.shape))
                for path, leaf in named
                if _floating(leaf) and path not in listed and _last_name(path) not in ("bias", "b")
            ],
        )
        plan = conversion.plan
        positions = {path: i for i, (path, _) in enumerate(named)}
        layouts = [c.layout for c in conversion.chosen]
        indices = tuple(
            jnp.asarray(native_index(plan, c.slot, c.layout, unsigned=True))
            for c in conversion.chosen
        )
        inverse = None
        if backward == "gather":
            inverse = tuple(
                jnp.asarray(
                    inverse_index(
                        plan, ring.name, cls._ring_layouts(plan, layouts, ring.name), unsigned=True
                    )
                )
                for ring in plan.rings
            )
        positions_chosen = tuple(positions[c.slot] for c in conversion.chosen)
        return cls(plan, treedef, positions_chosen, tuple(layouts), indices, inverse)

    @staticmethod
    def _ring_layouts(plan: Plan, layouts: list[str] | tuple[str, ...], ring: str) -> list[str]:
        return [
            native for slot, native in zip(plan.slots, layouts, strict=True) if slot.ring == ring
        ]

    # ------------------------------------------------------------------- use
    def init(self, dtype: Any = jnp.float32) -> dict[str, jax.Array]:
        """The initial rings (spec section 6), the same in every framework.

        Args:
            dtype: a floating dtype.

        Returns:
            Ring name to ring.

        Example:
            >>> import jax.numpy as jnp
            >>> generator = Generator.from_params({"w": jnp.zeros((3, 3))}, ring_size=4,
            ...                                   include=lambda p, l: True)
            >>> generator.init()["global"].shape
            (4,)

        """
        rings = self.plan.init_ring(dtype=np.dtype(dtype))
        return {name: jnp.asarray(ring) for name, ring in rings.items()}

    def _check_rings(self, rings: Mapping[str, Any]) -> None:
        if not isinstance(rings, Mapping) or set(rings) != set(self.plan.ring_sizes):
            given = sorted(rings) if isinstance(rings, Mapping) else type(rings).__name__
            raise PlanMismatchError(
                f"rings {given} do not match the plan's {list(self.plan.ring_sizes)}; "
                "pass a dict of ring name to ring, as init() returns"
            )
        for name, size in self.plan.ring_sizes.items():
            if tuple(jnp.shape(rings[name])) != (size,):
                raise PlanMismatchError(
                    f"ring {name!r} has shape {tuple(jnp.shape(rings[name]))}, "
                    f"the plan expects ({size},)"
                )

    def kernels(self, rings: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Every generated kernel, in its leaf's native layout.

        Args:
            rings: ring name to ring.

        Returns:
            Slot name (the leaf's path) to kernel, in the rings' dtype.

        Raises:
            PlanMismatchError: missing, unknown or wrongly sized rings.

        Example:
            >>> import jax.numpy as jnp
            >>> generator = Generator.from_params({"w": jnp.zeros((2, 3))}, ring_size=4,
            ...                                   include=lambda p, l: True)
            >>> generator.kernels(generator.init())["w"].shape
            (2, 3)

        """
        self._check_rings(rings)
        kernels: dict[str, jax.Array] = {}
        for number, ring in enumerate(self.plan.rings):
            members = [i for i, slot in enumerate(self.plan.slots) if slot.ring == ring.name]
            generated = backend.expand_slots(
                jnp.asarray(rings[ring.name]),
                [self.indices[i] for i in members],
                [self.plan.slots[i].scale for i in members],
                inverse=None if self.inverse is None else self.inverse[number],
            )
            for i, kernel in zip(members, generated, strict=True):
                kernels[self.plan.slots[i].name] = kernel
        return kernels

    def _flatten(self, params: Any) -> list[Any]:
        leaves, treedef = jax.tree_util.tree_flatten(params, is_leaf=_is_none)
        if treedef != self.treedef:
            raise PlanMismatchError(
                f"the parameters' structure {treedef} is not the one this generator was "
                f"built for ({self.treedef}); build it from these parameters"
            )
        return leaves

    def __call__(self, rings: Mapping[str, jax.Array], params: Any) -> Any:
        """``params`` with every generated leaf replaced by its kernel from ``rings``.

        Args:
            rings: ring name to ring (the trainable state of the generated leaves).
            params: parameters of the structure the generator was built for;
                the generated leaves may hold anything (e.g. ``None``, see
                :meth:`ordinary`), they are replaced.

        Returns:
            The full parameter pytree.

        Raises:
            PlanMismatchError: wrong rings or another pytree structure.

        Example:
            >>> import jax.numpy as jnp
            >>> params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(2)}
            >>> generator = Generator.from_params(params, ring_size=4, layout="canonical",
            ...                                   include=lambda path, leaf: path == "w")
            >>> full = generator(generator.init(), generator.ordinary(params))
            >>> full["w"].shape, bool((full["w"] != 0).any()), full["b"].tolist()
            ((2, 3), True, [0.0, 0.0])

        """
        leaves = self._flatten(params)
        kernels = self.kernels(rings)
        for position, slot in zip(self.positions, self.plan.slot_names, strict=True):
            leaves[position] = kernels[slot]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def ordinary(self, params: Any) -> Any:
        """``params`` with the generated leaves set to ``None``: what stays trainable besides rings.

        Args:
            params: parameters of the structure the generator was built for.

        Returns:
            The same pytree with ``None`` at every generated leaf.

        Raises:
            PlanMismatchError: another pytree structure.

        Example:
            >>> import jax.numpy as jnp
            >>> params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(2)}
            >>> generator = Generator.from_params(params, ring_size=4, layout="canonical",
            ...                                   include=lambda path, leaf: path == "w")
            >>> generator.ordinary(params)["w"] is None
            True

        """
        leaves = self._flatten(params)
        for position in self.positions:
            leaves[position] = None
        return jax.tree_util.tree_unflatten(self.treedef, leaves)
