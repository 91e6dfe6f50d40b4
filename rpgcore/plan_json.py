"""The plan's JSON form (spec section 8): writing and checking documents.

Example:
    >>> import json
    >>> from rpgcore.slots import Ring, Slot
    >>> text = to_json("rpg-v1", 0, "perm_sign", (Ring("global", 0, 3, 0.5, 4),),
    ...                (Slot("w", (2, 2), "global", 1.0, 0),))
    >>> parse_document(json.loads(text))[0]
    0

"""

from __future__ import annotations

import json
import math
from typing import Any

from rpgcore import spec
from rpgcore._checks import check_int, check_name, check_positive_float, check_shape
from rpgcore.errors import PlanError
from rpgcore.slots import Ring, Slot

__all__ = ["parse_document", "to_json"]


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
        "slots": [
            {"name": s.name, "shape": list(s.shape), "ring": s.ring, "scale": s.scale}
            for s in slots
        ],
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


def parse_document(
    document: dict[str, Any],
) -> tuple[int, str, tuple[Ring, ...], tuple[Slot, ...]]:
    """Check a plan JSON document and return ``(seed, mode, rings, slots)``."""
    seed = check_int(document["seed"], "seed", 0, 2**64 - 1, "the plan JSON is corrupt")
    mode = document["mode"]
    if mode not in spec.MODES:
        raise PlanError(f"plan mode {mode!r} is not one of {', '.join(spec.MODES)}")
    sizes: dict[str, tuple[int, int, float]] = {}
    for entry in document["rings"]:
        name = check_name(entry["name"], "ring name")
        if name in sizes:
            raise PlanError(f"ring {name!r} appears twice in the plan")
        sizes[name] = (
            check_int(entry["id"], f"ring {name!r} id", 0, 2**32 - 1, "ids are 32-bit"),
            check_int(
                entry["size"], f"ring {name!r} size", 1, spec.MAX_RING_SIZE, "use 1 <= N <= 2**31"
            ),
            check_positive_float(entry["init_std"], f"ring {name!r} init_std"),
        )
    ids = [ring_id for ring_id, _, _ in sizes.values()]
    shared = sorted({ring_id for ring_id in ids if ids.count(ring_id) > 1})
    if shared:
        raise PlanError(f"ring ids {shared} are used by several rings; ids must be distinct")
    offsets = dict.fromkeys(sizes, 0)
    slots = []
    for entry in document["slots"]:
        name = check_name(entry["name"], "slot name")
        ring = entry["ring"]
        if ring not in sizes:
            raise PlanError(f"slot {name!r} names ring {ring!r}, which the plan lacks")
        shape = check_shape(name, entry["shape"])
        slots.append(
            Slot(
                name,
                shape,
                ring,
                check_positive_float(entry["scale"], f"slot {name!r} scale"),
                offsets[ring],
            )
        )
        offsets[ring] += math.prod(shape)
    names = [slot.name for slot in slots]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PlanError(f"slot names {repeated} appear several times; slot names must be unique")
    rings = tuple(Ring(name, i, n, std, offsets[name]) for name, (i, n, std) in sizes.items())
    return seed, mode, rings, tuple(slots)
