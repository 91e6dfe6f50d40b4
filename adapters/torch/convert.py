"""Turn any ``nn.Module`` into an RPG model, and back: ``rpgify``, ``plan_of``, ``materialize``.

:func:`rpgify` replaces the ``weight`` of chosen ``Conv*``, ``ConvTranspose*``
and ``Linear`` layers by kernels generated from one or more rings (spec
``rpg-v1``): each ring is a parameter ``rpg_ring_<name>`` of the model itself
(so containers such as ``nn.Sequential`` keep exactly their layers), the
plan is the model's extra state, and a
:class:`~rpgcore.adapters.torch.bank.RingBank` generates the kernels.
Biases, normalisation layers and excluded layers
stay ordinary parameters, so each generated layer keeps its own BatchNorm.
``layer.weight`` still reads as the layer's kernel.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    >>> _ = model(torch.zeros(1, 3, 8, 8))  # materialise the lazy layer
    >>> model = rpgify(model, ring_size=200, seed=1)
    >>> plan_of(model).slot_names
    ('0.weight',)
    >>> model[0].weight.shape
    torch.Size([8, 3, 3, 3])

"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rpgcore.adapters.torch.bank import (
    BACKWARDS,
    INVERSE_PREFIX,
    PACKED_PREFIX,
    RING_PREFIX,
    RingBank,
)
from rpgcore.adapters.torch.describe import describe, kind_of, ordered_modules
from rpgcore.adapters.torch.order import forward_order
from rpgcore.conversion import Candidate, Options, convert, rpgify_verb
from rpgcore.errors import ArgumentError, PlanMismatchError
from rpgcore.plan import Plan

__all__ = ["GENERATED_TYPES", "candidates", "materialize", "plan_of", "rpgify"]

GENERATED_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
"""Layer types whose ``weight`` rpgify can generate."""

BANK = "_rpg_bank"
"""Where the converted model and its generated layers keep their :class:`RingBank`."""
_CLASSES: dict[type[nn.Module], type[nn.Module]] = {}
_ROOTS: dict[type[nn.Module], type[nn.Module]] = {}


def _bank(module: nn.Module) -> RingBank | None:
    bank = module.__dict__.get(BANK)  # a plain attribute: never a second module path
    return bank if isinstance(bank, RingBank) else None


def _generated_weight(module: nn.Module) -> torch.Tensor:
    kernel: torch.Tensor = module.__dict__[BANK].kernel(module.__dict__["_rpg_slot"])
    return kernel


def _weight(module: nn.Module) -> torch.Tensor:
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise ArgumentError(f"{type(module).__name__} has no weight tensor to generate")
    return weight


def _base_of(module: nn.Module) -> type[nn.Module]:
    """The class a converted module had before rpgify."""
    base: type[nn.Module] = type(module).__dict__["_rpg_base"]
    return base


def _get_extra_state(model: nn.Module) -> dict[str, str]:
    return {"rpg_plan": model.__dict__[BANK].plan.to_json()}


def _set_extra_state(model: nn.Module, state: Any) -> None:
    bank: RingBank = model.__dict__[BANK]
    saved = Plan.from_json(state["rpg_plan"])
    if saved != bank.plan:
        plan = bank.plan
        raise PlanMismatchError(
            "the state_dict was saved from a model with another plan "
            f"(rings {saved.ring_sizes}, seed {saved.seed}, mode {saved.mode}; this model: "
            f"rings {plan.ring_sizes}, seed {plan.seed}, mode {plan.mode}); "
            "convert the model with the same rpgify arguments"
        )
    bank.forget()


def _apply(model: nn.Module, fn: Any, recurse: bool = True) -> nn.Module:
    model.__dict__[BANK].forget()  # moved or cast rings: cached kernels are stale
    result: nn.Module = _base_of(model)._apply(model, fn, recurse)  # type: ignore[no-untyped-call]
    return result


def _root_class(base: type[nn.Module]) -> type[nn.Module]:
    """A subclass of the model's class that saves the plan and drops the cache on moves."""
    if base.get_extra_state is not nn.Module.get_extra_state:
        raise ArgumentError(
            f"{base.__name__} defines get_extra_state; rpgify keeps the plan there and cannot "
            "share it: convert a wrapper module instead"
        )
    if base not in _ROOTS:
        _ROOTS[base] = type(
            base.__name__,
            (base,),
            {
                "get_extra_state": _get_extra_state,
                "set_extra_state": _set_extra_state,
                "_apply": _apply,
                "__module__": base.__module__,
                "_rpg_base": base,
            },
        )
    return _ROOTS[base]


def _generated_class(base: type[nn.Module]) -> type[nn.Module]:
    """A subclass of ``base`` whose ``weight`` is read from the ring bank."""
    if base not in _CLASSES:
        _CLASSES[base] = type(
            base.__name__,
            (base,),
            {
                "weight": property(_generated_weight, doc="The kernel generated from the ring."),
                "__module__": base.__module__,
                "_rpg_base": base,
            },
        )
    return _CLASSES[base]


def _forget_kernels(model: nn.Module, _: Any) -> None:
    """Forward pre-hook: every forward generates its kernels afresh, once, for all its layers."""
    bank: RingBank = model.__dict__[BANK]
    bank.forget()
    bank.in_forward = True


def _end_forward(model: nn.Module, *_: Any) -> None:
    """Forward hook (also when the forward raises): later reads generate their own kernel."""
    model.__dict__[BANK].in_forward = False


def candidates(model: nn.Module, order: Sequence[str] = ()) -> list[Candidate]:
    """The layers of ``model`` whose ``weight`` rpgify can generate, in layer order.

    Args:
        model: any module (a layer reachable by several paths is listed once).
        order: module paths in the model's layer order
            (:func:`~rpgcore.adapters.torch.order.forward_order`); by default
            registration order.

    Returns:
        One :class:`rpgcore.conversion.Candidate` per ``Conv*``,
        ``ConvTranspose*`` and ``Linear`` layer; a lazy layer carries the
        problem that it has no shape yet.

    Example:
        >>> [c.slot for c in candidates(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(2, 2)))]
        ['0.weight', '1.weight']

    """
    found = []
    for name, module in ordered_modules(model, order):
        if not isinstance(module, GENERATED_TYPES) or not name:
            continue
        weight = _weight(module)
        lazy = isinstance(weight, nn.parameter.UninitializedParameter)
        found.append(
            Candidate(
                name,
                f"{name}.weight",
                kind_of(module),
                () if lazy else tuple(weight.shape),
                module,
                problem="it is lazy and has no shape yet; run one forward pass first"
                if lazy
                else "",
            )
        )
    return found


def _ordinary(model: nn.Module, chosen: Sequence[Candidate]) -> int:
    kernels = {id(c.layer.weight) for c in chosen}
    return sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in kernels)


@rpgify_verb
def rpgify(model: nn.Module, options: Options) -> nn.Module:
    """Convert a model in place so that its kernels are generated from rings.

    The arguments are every adapter's (:class:`rpgcore.conversion.Rpgify`),
    and :func:`rpgcore.conversion.convert` chooses the layers, rings and
    sizes, the same rules in every framework. The candidates are the
    ``Conv*``, ``ConvTranspose*`` and ``Linear`` layers, in module order (a
    layer used at several places is converted once); ``scope="block"`` gives
    one ring per top-level child module.

    ``backward`` (how the ring gradient is computed): ``"add"`` (default) adds
    the kernel gradients into the signed ring in position order (block by
    block into separate rows off the CPU), 4 bytes of index per generated
    parameter; ``"gather"`` is the spec's inverse gather and ordered block
    sum, no scatter at all, bitwise :meth:`rpgcore.Plan.contract`, 8 bytes per
    generated parameter. Both are deterministic.

    Args:
        model: any ``nn.Module``.
        options: the keyword arguments of :class:`rpgcore.conversion.Rpgify`.

    Returns:
        ``model`` itself, converted.

    Raises:
        ArgumentError: a converted model, bad scope, both or neither of
            ``ring_size`` and ``dof``, a ``dof`` that leaves nothing for the
            rings, an ``include`` list naming a module that is not a candidate
            (``nn.LSTM``, ``nn.Embedding``) or that the model lacks, or a lazy layer.
        PlanError: no layer to generate, or bad plan arguments.

    Example:
        >>> model = rpgify(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), ring_size=10)
        >>> sorted(name for name, _ in model.named_parameters())
        ['0.bias', '1.bias', '1.weight', 'rpg_ring_global']

    """
    if _bank(model) is not None:
        raise ArgumentError("the model is converted already (it has a plan); convert a fresh one")
    if options.backward not in BACKWARDS:
        raise ArgumentError(f"backward={options.backward!r}: use one of {', '.join(BACKWARDS)}")
    order, claims = forward_order(model)
    conversion = convert(
        candidates(model, order),
        options,
        ordinary=lambda chosen: _ordinary(model, chosen),
        layers=dict(model.named_modules()),
        unsupported=[(t.name, t.shape) for t in describe(model)[0] if t.kind == "other"],
    )
    plan = conversion.plan
    reference = conversion.chosen[0].layer.weight
    root_class = _root_class(type(model))
    bank = RingBank.attach(model, plan, options.backward)
    bank.order, bank.claims = tuple(order), claims
    for name in plan.ring_sizes:
        parameter = getattr(model, RING_PREFIX + name)
        parameter.data = parameter.data.to(device=reference.device, dtype=reference.dtype)
        for prefix in (PACKED_PREFIX, INVERSE_PREFIX):
            if hasattr(model, prefix + name):
                setattr(model, prefix + name, getattr(model, prefix + name).to(reference.device))
    for candidate in conversion.chosen:
        module = candidate.layer
        del module.weight
        module.__class__ = _generated_class(type(module))
        module.__dict__[BANK] = bank
        module.__dict__["_rpg_slot"] = candidate.slot
    model.__class__ = root_class
    model.__dict__[BANK] = bank
    model.register_forward_pre_hook(_forget_kernels)
    model.register_forward_hook(_end_forward, always_call=True)
    return model


def plan_of(model: nn.Module) -> Plan:
    """The plan of a model converted by :func:`rpgify`.

    Args:
        model: the converted model.

    Returns:
        Its :class:`rpgcore.Plan`.

    Raises:
        ArgumentError: the model was not converted.

    Example:
        >>> plan_of(rpgify(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), ring_size=5)).ring_sizes
        {'global': 5}

    """
    bank = _bank(model)
    if bank is None:
        raise ArgumentError("the model is not an RPG model; convert it with rpgify first")
    return bank.plan


def materialize(model: nn.Module) -> nn.Module:
    """An ordinary copy of an RPG model, with the generated kernels written in.

    Args:
        model: a model converted by :func:`rpgify` (left unchanged).

    Returns:
        A deep copy whose generated layers have plain ``weight`` parameters
        and whose ring bank is gone: for deployment, pruning and export.

    Example:
        >>> rpg = rpgify(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), ring_size=5)
        >>> plain = materialize(rpg)
        >>> type(plain[0]) is nn.Linear, hasattr(plain, "rpg_ring_global")
        (True, False)

    """
    plan = plan_of(model)
    copied = copy.deepcopy(model)
    bank: RingBank = copied.__dict__.pop(BANK)
    with torch.no_grad():
        kernels = {name: kernel.detach().clone() for name, kernel in bank.kernels().items()}
    for module in copied.modules():
        if "_rpg_slot" in module.__dict__:
            slot = module.__dict__.pop("_rpg_slot")
            module.__dict__.pop(BANK)
            module.__class__ = _base_of(module)
            module.weight = nn.Parameter(kernels[slot])
    for ring in plan.rings:
        del copied._parameters[RING_PREFIX + ring.name]
        del copied._buffers[PACKED_PREFIX + ring.name]
        copied._buffers.pop(INVERSE_PREFIX + ring.name, None)
    copied.__class__ = _base_of(copied)
    for hooks in (copied._forward_pre_hooks, copied._forward_hooks):
        for key, hook in list(hooks.items()):
            if hook in (_forget_kernels, _end_forward):
                del hooks[key]
    return copied
