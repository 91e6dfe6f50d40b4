"""The :class:`Ring` layer: it owns one trainable ring of a plan.

Keras lets a variable belong to exactly one layer, so the ring is a layer of
its own and the generated layers (:mod:`rpgcore.adapters.keras.layers`)
share the ``Ring`` *layer*: each of them tracks it, ``model.weights`` lists
its variable once, and a ``.keras`` file stores it once and restores one
``Ring`` shared by the same layers (Keras' object sharing at save and load).

A ``Ring`` is never called in the model's graph. It generates the kernels
of its layers: each layer registers its slot when it is built
(:meth:`Ring.register`) and asks for its kernel on every call
(:meth:`Ring.kernel`; :mod:`rpgcore.adapters.keras.kernels`). Its config
holds the whole plan as JSON (spec section 8) and the ring's name, so
loading rebuilds the ring's shape and every index from the seed; the file
holds only the ring's values.

Example:
    >>> import rpgcore
    >>> plan = rpgcore.Plan.build({"w": (8, 4)}, ring_size=10, seed=3)
    >>> ring = Ring(plan)
    >>> ring.name, tuple(ring.variable.shape), ring.variable.path
    ('rpg_ring_global', (10,), 'rpg_ring_global/ring')

"""

from __future__ import annotations

import uuid
import warnings
import weakref
from typing import Any

import keras  # type: ignore[import-untyped]
import numpy as np

from rpgcore.adapters.keras.kernels import KernelTable, SlotKey
from rpgcore.errors import ArgumentError, PlanCheckWarning, PlanError, PlanMismatchError
from rpgcore.matching import match_plans
from rpgcore.plan import Plan
from rpgcore.slots import DEFAULT_RING

__all__ = ["RING_PREFIX", "Ring", "shared_ring"]

RING_PREFIX = "rpg_ring_"
"""A ring layer's default name is the prefix and the ring's name: ``rpg_ring_global``."""


def _parse(plan: object) -> Plan:
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, str | bytes):
        return Plan.from_json(plan)
    raise ArgumentError(
        f"plan must be an rpgcore.Plan or its JSON text, got {type(plan).__name__}; "
        "build one with rpgcore.Plan.build"
    )


@keras.saving.register_keras_serializable(package="rpgcore")
class Ring(keras.layers.Layer):  # type: ignore[misc]
    """One ring ``W`` of a plan, as a Keras layer owning one trainable variable.

    The variable starts at the plan's initial ring (spec section 6, the same
    values in every framework), in the layer's variable dtype (float32 by
    default: the float32 ring rounded to it). It is not cast to a mixed
    precision compute dtype: kernels are generated in the ring's dtype, as
    the spec defines them, and the generated layers cast the kernel.

    Args:
        plan: the plan (an :class:`rpgcore.Plan` or its JSON text).
        ring: the ring's name in the plan.
        token: what the configs of this ring and of its copies share, so that
            the layers of a model rebuilt from configs share one ring again
            (:func:`shared_ring`); a new one by default.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``,
            ``trainable``); the name defaults to ``rpg_ring_<ring>``.

    Raises:
        ArgumentError: ``plan`` is neither a plan nor JSON text.
        PlanError: no such ring, or a ring name that is not an identifier.

    Example:
        >>> import rpgcore
        >>> plan = rpgcore.Plan.build({"a": (4, 4), "b": (2, 4)}, ring_size={"x": 5, "y": 3},
        ...                           groups={"a": "x", "b": "y"})
        >>> Ring(plan, "y").ring_size
        3

    """

    def __init__(
        self, plan: Plan | str, ring: str = DEFAULT_RING, token: str | None = None, **kwargs: Any
    ) -> None:
        parsed = _parse(plan)
        entry = parsed.ring(ring)
        if not entry.name.isidentifier():
            raise PlanError(
                f"ring name {entry.name!r} cannot name a layer in every framework; "
                "use letters, digits and _"
            )
        kwargs.setdefault("name", RING_PREFIX + entry.name)
        super().__init__(**kwargs)
        self._plan = parsed
        self._plan_json = parsed.to_json()
        self.ring_name = entry.name
        initial = parsed.init_ring(entry.name)

        def initializer(shape: Any, dtype: Any = None) -> Any:
            return keras.ops.cast(keras.ops.convert_to_tensor(initial), dtype)

        # autocast=False: under a mixed precision policy the ring stays in its
        # own dtype, so kernels are generated exactly as the spec defines them.
        self.variable = self.add_weight(
            name="ring", shape=(entry.size,), initializer=initializer, autocast=False
        )
        self._kernels = KernelTable()
        self.token = token if isinstance(token, str) and token else uuid.uuid4().hex
        self.claimed: set[str] = set()
        """The slots that layers generate from this ring (each layer claims its own)."""
        _RINGS[self.token] = self
        self.built = True

    @property
    def plan(self) -> Plan:
        """The whole plan this ring belongs to."""
        return self._plan

    @property
    def ring_size(self) -> int:
        """``N``, the number of ring entries."""
        return self._plan.ring(self.ring_name).size

    def register(
        self,
        slot: str,
        layout: str,
        multiplier: int = 1,
        source: tuple[int, ...] | None = None,
    ) -> SlotKey:
        """Make ``slot`` one of the kernels this ring generates, in a native layout.

        Builds the slot's packed index (once per slot and layout), as a
        backend constant, not a weight.

        Args:
            slot: a slot of the plan generated from this ring.
            layout: ``"channels_last"`` or ``"depthwise"``
                (:mod:`rpgcore.layouts`).
            multiplier: the depth multiplier of a depthwise kernel.
            source: the channels-last shape of the map a dense kernel reads flattened.

        Returns:
            The key to pass to :meth:`kernel`.

        Raises:
            PlanError: no such slot, or the slot belongs to another ring.

        Example:
            >>> import rpgcore
            >>> ring = Ring(rpgcore.Plan.build({"w": (4, 3)}, ring_size=5))
            >>> key = ring.register("w", "channels_last")
            >>> tuple(ring.kernel(key).shape)
            (3, 4)

        """
        self.check_slot(slot)
        return self._kernels.register(self._plan, slot, layout, multiplier, source)

    def kernel(self, key: SlotKey) -> Any:
        """The generated kernel ``scale * s(k) * W[u(k)]`` of a registered slot.

        In the ring's dtype and the layout the slot was registered in,
        differentiable with respect to the ring. On PyTorch, the layers of
        one model call share one generation of all the ring's kernels
        (:mod:`rpgcore.adapters.keras.shared`).

        Args:
            key: what :meth:`register` returned.

        Returns:
            A backend tensor of the native kernel shape.

        Raises:
            KeyError: the slot was not registered.

        Example:
            >>> import rpgcore
            >>> ring = Ring(rpgcore.Plan.build({"w": (2, 2)}, ring_size=3, mode="none",
            ...                                scaling="none"))
            >>> _ = ring.variable.assign([1.0, 2.0, 3.0])
            >>> kernel = ring.kernel(ring.register("w", "channels_last"))
            >>> keras.ops.convert_to_numpy(kernel).tolist()
            [[1.0, 3.0], [2.0, 1.0]]

        """
        return self._kernels.kernel(self.variable, key)

    def adopt(self, plan: Plan) -> None:
        """Take ``plan``, which differs from this ring's only in its initialisation (scales).

        :func:`~rpgcore.adapters.keras.io.load` does this when a file records
        other initialisation rules than the model was converted with: the
        registered slots then generate with the file's scales.

        Args:
            plan: the plan, with this ring's name and slots.

        Raises:
            PlanError: the plan lacks this ring.

        Example:
            >>> import rpgcore
            >>> plan = rpgcore.Plan.build({"w": (4, 3)}, ring_size=5)
            >>> ring = Ring(plan)
            >>> ring.adopt(rpgcore.Plan.build({"w": (4, 3)}, ring_size=5,
            ...                               init={"w": "lecun_fan_in"}))
            >>> ring.plan.slot("w").init
            'lecun_fan_in'

        """
        plan.ring(self.ring_name)
        keys = self._kernels.keys()
        self._plan, self._plan_json = plan, plan.to_json()
        self._kernels = KernelTable()
        for key in keys:
            self._kernels.register(plan, key.slot, key.layout, key.multiplier, key.source)

    def check_slot(self, slot: str) -> None:
        """Check that ``slot`` is a slot of the plan generated from this ring.

        Args:
            slot: a slot name.

        Raises:
            PlanError: no such slot, or the slot belongs to another ring.

        Example:
            >>> import rpgcore
            >>> Ring(rpgcore.Plan.build({"w": (4, 3)}, ring_size=5)).check_slot("v")
            Traceback (most recent call last):
            ...
            rpgcore.errors.PlanError: no slot 'v' in the plan; slots are ['w']

        """
        owner = self._plan.slot(slot).ring
        if owner != self.ring_name:
            raise PlanError(
                f"slot {slot!r} is generated from ring {owner!r}, not {self.ring_name!r}; "
                f"give the layer the Ring layer of {owner!r}"
            )

    def get_config(self) -> dict[str, Any]:
        """The layer's config: the plan's JSON, the ring's name and its token (never indices)."""
        config: dict[str, Any] = super().get_config()
        config.update(plan=self._plan_json, ring=self.ring_name, token=self.token)
        return config

    def save_own_variables(self, store: Any) -> None:
        """Save the ring, and the plan (a ``.weights.h5`` file then knows what it fits).

        Args:
            store: Keras' variable store of this layer.

        """
        store["0"] = (
            self.variable.numpy()
            if hasattr(self.variable, "numpy")
            else np.asarray(keras.ops.convert_to_numpy(self.variable))
        )
        store["plan"] = np.frombuffer(self._plan_json.encode(), np.uint8)

    def load_own_variables(self, store: Any) -> None:
        """Load the ring after checking that the file's plan is this ring's.

        Args:
            store: Keras' variable store of this layer.

        Raises:
            PlanMismatchError: the file was saved from a model with another plan
                (another seed, mode, ring size or architecture).

        Warns:
            PlanCheckWarning: the file records no plan (written by an older rpgcore).

        """
        if "plan" in store:
            saved = Plan.from_json(bytes(np.asarray(store["plan"], np.uint8)).decode())
            if saved != self._plan:
                match_plans(saved, self._plan, f"the weights of ring layer {self.name!r}")
                raise PlanMismatchError(
                    f"the weights of ring layer {self.name!r} were saved from a model with "
                    "another plan (other names or initialisation); rpgify the model with the "
                    "arguments the weights were trained with"
                )
        else:
            warnings.warn(
                f"the weights of ring layer {self.name!r} record no plan (an older rpgcore "
                "wrote them): they could not be checked against this model's plan; save them "
                "again to record it",
                PlanCheckWarning,
                stacklevel=2,
            )
        self.variable.assign(np.asarray(store["0"]))


_RINGS: weakref.WeakValueDictionary[str, Ring] = weakref.WeakValueDictionary()
"""Every live ring layer by token, and the ring last rebuilt from a config with that token."""


def shared_ring(config: Any, slot: str) -> Ring:
    """The ring layer a layer rebuilt from its config generates ``slot`` from.

    A config holds its ring as a serialized :class:`Ring` with the ring's
    token. Layers of one model rebuilt from their configs (``model_from_json``,
    ``Sequential.from_config``, ``clone_model``, a ``.keras`` file) must share
    one ring, as the model did: the first layer rebuilds the ring, the others
    take it. A layer whose slot the ring already generates belongs to another
    model, so it gets a new ring; two models rebuilt from one config never share.

    Args:
        config: the ring as a config dict, or a :class:`Ring` (returned as it is).
        slot: the slot of the layer being rebuilt.

    Returns:
        The ring layer.

    Example:
        >>> import rpgcore
        >>> plan = rpgcore.Plan.build({"a": (2, 2), "b": (3, 2)}, ring_size=4)
        >>> ring = Ring(plan)
        >>> ring.claimed.update({"a", "b"})  # as the original model's two layers do
        >>> saved = keras.saving.serialize_keras_object(ring)
        >>> first, second = shared_ring(saved, "a"), shared_ring(saved, "b")
        >>> first is second, first is ring
        (True, False)

    """
    if isinstance(config, Ring):
        return config
    token = config.get("config", {}).get("token") if isinstance(config, dict) else None
    ring = _RINGS.get(token) if isinstance(token, str) else None
    if ring is None or slot in ring.claimed:
        ring = keras.saving.deserialize_keras_object(config)
        if not isinstance(ring, Ring):
            raise ArgumentError(f"the layer's ring is a {type(ring).__name__}, not a Ring layer")
        if isinstance(token, str):
            _RINGS[token] = ring
    return ring
