"""The plan's JSON form (spec section 8): writing and checking documents.

Example:
    >>> import json
    >>> from rpgcore.slots import DEFAULT_INIT_RULE, INIT_RULES, Ring, Slot
    >>> text = to_json("rpg-v1", 0, "perm_sign", (Ring("global", 0, 3, 0.5, 4),),
    ...                (Slot("w", (2, 2), "global", 1.0, 0),))
    >>> parse_document(json.loads(text))[0]
    0

"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

from rpgcore import spec
from rpgcore._checks import check_int, check_name, check_positive_float, check_shape
from rpgcore._json import shown
from rpgcore.errors import PlanError
from rpgcore.slots import DEFAULT_INIT_RULE, INIT_RULES, Ring, Slot

__all__ = [
    "DOCUMENT_KEYS",
    "OPTIONAL_SLOT_KEYS",
    "RING_KEYS",
    "SLOT_KEYS",
    "parse_document",
    "to_json",
]


def to_json(
    version: str, seed: int, mode: str, rings: tuple[Ring, ...], slots: tuple[Slot, ...]
) -> str:
    """Write a plan's JSON text: one line, keys in spec order.

    Args:
        version: the spec version.
        seed: the seed.
        mode: the mode.
        rings: the rings, in id order.
        slots: the slots, in plan order.

    Returns:
        The JSON text.

    Example:
        >>> to_json("rpg-v1", 1, "none", (), ())
        '{"spec":"rpg-v1","seed":1,"mode":"none","rings":[],"slots":[]}'

    """
    document = {
        "spec": version,
        "seed": seed,
        "mode": mode,
        "rings": [
            {"name": r.name, "id": r.id, "size": r.size, "init_std": r.init_std} for r in rings
        ],
        "slots": [_slot(s) for s in slots],
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


def _slot(slot: Slot) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": slot.name,
        "shape": list(slot.shape),
        "ring": slot.ring,
        "scale": slot.scale,
    }
    if slot.init != DEFAULT_INIT_RULE:  # written only when not the spec's default rule
        entry["init"] = slot.init
    return entry


DOCUMENT_KEYS = ("spec", "seed", "mode", "rings", "slots")
RING_KEYS = ("name", "id", "size", "init_std")
SLOT_KEYS = ("name", "shape", "ring", "scale")
OPTIONAL_SLOT_KEYS = ("init",)
_REWRITE = "rewrite the plan with Plan.to_json"


def _fields(
    value: object, keys: tuple[str, ...], what: str, optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``value`` as an object with exactly ``keys`` (and perhaps ``optional`` ones)."""
    if not isinstance(value, dict):
        raise PlanError(
            f"{what} is malformed: it must be a JSON object, got {shown(value)}; {_REWRITE}"
        )
    missing = [key for key in keys if key not in value]
    if missing:
        raise PlanError(
            f"{what} is malformed: it lacks {missing} (it needs {list(keys)}); {_REWRITE}"
        )
    unknown = sorted(set(value) - set(keys) - set(optional))
    if unknown:
        raise PlanError(
            f"{what} is malformed: unknown keys {shown(unknown)}, so it was altered or "
            f"written by a newer rpgcore; upgrade rpgcore, or {_REWRITE}"
        )
    return value


def _listed(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise PlanError(f"{what} must be a JSON list, got {shown(value)}; {_REWRITE}")
    return value


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise PlanError(f"{what} must be a string, got {shown(value)}; {_REWRITE}")
    return check_name(value, what)


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(f"{what} must be a number, got {shown(value)}; {_REWRITE}")
    if isinstance(value, int) and value.bit_length() > 1024:  # beyond the doubles
        raise PlanError(f"{what} must be a positive finite number, got {shown(value)}")
    return check_positive_float(value, what)


def parse_document(
    document: dict[str, Any],
) -> tuple[int, str, tuple[Ring, ...], tuple[Slot, ...]]:
    """Check a plan JSON document and return ``(seed, mode, rings, slots)``.

    Args:
        document: the parsed JSON (spec section 8); its ``spec`` is checked by the caller.

    Returns:
        The seed, the mode, the rings (with the parameters each generates)
        and the slots (with their offsets).

    Raises:
        PlanError: a missing or unknown key, a value of the wrong type or out
            of range, a ring or slot name used twice, a ring id used twice, or
            a slot that names a ring the plan lacks.

    Example:
        >>> document = json.loads(to_json("rpg-v1", 3, "sign", (Ring("g", 0, 2, 1.0, 4),),
        ...                               (Slot("w", (2, 2), "g", 1.0, 0),)))
        >>> seed, mode, rings, slots = parse_document(document)
        >>> seed, mode, rings[0].generated, slots[0].shape
        (3, 'sign', 4, (2, 2))

    """
    document = _fields(document, DOCUMENT_KEYS, "the plan JSON")
    seed = check_int(document["seed"], "seed", 0, 2**64 - 1, "the plan JSON is corrupt")
    mode = document["mode"]
    if not isinstance(mode, str) or mode not in spec.MODES:
        raise PlanError(f"plan mode {shown(mode)} is not one of {', '.join(spec.MODES)}")
    sizes: dict[str, tuple[int, int, float]] = {}
    for i, value in enumerate(_listed(document["rings"], "the plan's rings")):
        entry = _fields(value, RING_KEYS, f"ring {i} of the plan")
        name = _name(entry["name"], "ring name")
        label = f"ring {shown(name)}"
        if name in sizes:
            raise PlanError(f"{label} appears twice in the plan")
        sizes[name] = (
            check_int(entry["id"], f"{label} id", 0, 2**32 - 1, "ids are 32-bit"),
            check_int(entry["size"], f"{label} size", 1, spec.MAX_RING_SIZE, "use 1 <= N <= 2**31"),
            _positive(entry["init_std"], f"{label} init_std"),
        )
    shared = sorted(i for i, n in Counter(i for i, _, _ in sizes.values()).items() if n > 1)
    if shared:
        raise PlanError(f"ring ids {shown(shared)} are used by several rings; ids must be distinct")
    offsets = dict.fromkeys(sizes, 0)
    slots = []
    for i, value in enumerate(_listed(document["slots"], "the plan's slots")):
        entry = _fields(value, SLOT_KEYS, f"slot {i} of the plan", OPTIONAL_SLOT_KEYS)
        name = _name(entry["name"], "slot name")
        label = f"slot {shown(name)}"
        ring = entry["ring"]
        if not isinstance(ring, str) or ring not in sizes:
            raise PlanError(f"{label} names ring {shown(ring)}, which the plan lacks")
        shape = check_shape(name, _listed(entry["shape"], f"{label} shape"))
        scale = _positive(entry["scale"], f"{label} scale")
        rule = entry.get("init", DEFAULT_INIT_RULE)
        if not isinstance(rule, str) or rule not in INIT_RULES:
            raise PlanError(
                f"{label} init rule {shown(rule)} is unknown; rules are {list(INIT_RULES)}"
            )
        slots.append(Slot(name, shape, ring, scale, offsets[ring], rule))
        offsets[ring] += math.prod(shape)
    repeated = sorted(n for n, count in Counter(s.name for s in slots).items() if count > 1)
    if repeated:
        raise PlanError(
            f"slot names {shown(repeated)} appear several times; slot names must be unique"
        )
    rings = tuple(Ring(name, i, n, std, offsets[name]) for name, (i, n, std) in sizes.items())
    return seed, mode, rings, tuple(slots)
