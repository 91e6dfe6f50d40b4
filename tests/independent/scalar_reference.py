"""Scalar, pure-Python reference of the ``rpg-v1`` generator.

This module is written from ``docs/spec.md`` alone, as an independent
cross-check of the vectorised backends: it shares no code with ``rpgcore``,
uses only the standard library and computes every value one position at a
time, following the spec's pseudo-code literally.  It is slow on purpose;
keep the plans you feed it small.

Section numbers in the docstrings refer to ``docs/spec.md``.
"""

import bisect
import json
import math
import struct
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

__all__ = [
    "MODES",
    "SPEC_VERSION",
    "build_plan",
    "contract",
    "contract_entry",
    "correctly_rounded_sqrt",
    "f32_bits",
    "fan_out",
    "feistel",
    "feistel_inverse",
    "feistel_width",
    "fl32",
    "generate",
    "init_entry",
    "init_z",
    "kernels",
    "permute",
    "permute_inverse",
    "plan_to_json",
    "position_index",
    "position_sign",
    "sign",
    "stream_keys",
    "threefry2x32",
]

SPEC_VERSION = "rpg-v1"
MODES = ("perm_sign", "perm", "sign", "none")
PERM_MODES = frozenset({"perm_sign", "perm"})
SIGN_MODES = frozenset({"perm_sign", "sign"})

MASK32 = 0xFFFFFFFF
SKEIN_KS_PARITY = 0x1BD11BDA
ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
ROUNDS = 20
FEISTEL_ROUNDS = 8

TAG_PERM = 0x7065726D  # ASCII "perm"
TAG_SIGN = 0x7369676E  # ASCII "sign"
TAG_INIT = 0x696E6974  # ASCII "init"

Key = tuple[int, int]
Plan = dict[str, Any]


# ---------------------------------------------------------------------------
# Section 1: Threefry-2x32-20
# ---------------------------------------------------------------------------


def rotl32(x: int, r: int) -> int:
    """Rotate the 32-bit word ``x`` left by ``r`` bits (``0 < r < 32``)."""
    return ((x << r) | (x >> (32 - r))) & MASK32


def threefry2x32(key: Key, counter: Key) -> Key:
    """Threefry-2x32 with 20 rounds (section 1).

    ``key = (k0, k1)`` and ``counter = (c0, c1)`` are pairs of 32-bit words;
    the result is the pair ``(y0, y1)``.
    """
    k0, k1 = key
    c0, c1 = counter
    for word in (k0, k1, c0, c1):
        if not 0 <= word <= MASK32:
            raise ValueError(f"not a 32-bit word: {word!r}")
    ks = (k0, k1, k0 ^ k1 ^ SKEIN_KS_PARITY)
    x0 = (c0 + ks[0]) & MASK32
    x1 = (c1 + ks[1]) & MASK32
    for i in range(ROUNDS):
        x0 = (x0 + x1) & MASK32
        x1 = rotl32(x1, ROTATIONS[i % 8])
        x1 ^= x0
        if i % 4 == 3:
            s = (i + 1) // 4
            x0 = (x0 + ks[s % 3]) & MASK32
            x1 = (x1 + ks[(s + 1) % 3] + s) & MASK32
    return (x0, x1)


# ---------------------------------------------------------------------------
# Section 3: key derivation
# ---------------------------------------------------------------------------


def stream_keys(seed: int, ring_id: int) -> dict[str, Key]:
    """Return the three stream keys ``perm``, ``sign`` and ``init`` of a ring (section 3)."""
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in [0, 2^64): {seed!r}")
    if not 0 <= ring_id <= MASK32:
        raise ValueError(f"ring id must be a 32-bit integer: {ring_id!r}")
    seed_key = (seed & MASK32, seed >> 32)
    return {
        "perm": threefry2x32(seed_key, (ring_id, TAG_PERM)),
        "sign": threefry2x32(seed_key, (ring_id, TAG_SIGN)),
        "init": threefry2x32(seed_key, (ring_id, TAG_INIT)),
    }


# ---------------------------------------------------------------------------
# Section 4: indices (keyed Feistel network with cycle walking)
# ---------------------------------------------------------------------------


def feistel_width(n: int) -> int:
    """Return the Feistel width ``w = max(2, bit_length(N - 1))`` of a ring of size ``n``."""
    if not 1 <= n <= 1 << 31:
        raise ValueError(f"ring size must be in [1, 2^31]: {n!r}")
    return max(2, (n - 1).bit_length())


def _half_widths(w: int) -> tuple[int, int]:
    """Return ``(a, b) = (ceil(w / 2), floor(w / 2))``."""
    if not 2 <= w <= 31:
        raise ValueError(f"Feistel width must be in [2, 31]: {w!r}")
    return ((w + 1) // 2, w // 2)


def _hi(i: int, a: int, b: int) -> int:
    """Width of the high part split off by round ``i``."""
    return a if i % 2 == 0 else b


def _lo(i: int, a: int, b: int) -> int:
    """Width of the low part split off by round ``i``."""
    return b if i % 2 == 0 else a


def _round_function(key_perm: Key, q: int, i: int, r: int) -> int:
    """``F(q, i, R) = threefry(key_perm, (R + (i << 16), q)).y0`` with ``R < 2^16``."""
    if not 0 <= r < 1 << 16:
        raise ValueError(f"Feistel half must be below 2^16: {r!r}")
    return threefry2x32(key_perm, (r + (i << 16), q))[0]


def feistel(key_perm: Key, q: int, x: int, w: int) -> int:
    """Apply the keyed 8-round Feistel permutation of ``[0, 2^w)`` for block ``q``."""
    a, b = _half_widths(w)
    if not 0 <= x < 1 << w:
        raise ValueError(f"x must be in [0, 2^{w}): {x!r}")
    for i in range(FEISTEL_ROUNDS):
        hi = _hi(i, a, b)
        lo = _lo(i, a, b)
        left = x >> lo
        right = x & ((1 << lo) - 1)
        f = _round_function(key_perm, q, i, right) & ((1 << hi) - 1)
        x = (right << hi) | (left ^ f)
    return x


def feistel_inverse(key_perm: Key, q: int, y: int, w: int) -> int:
    """Invert :func:`feistel`, undoing the rounds in reverse order."""
    a, b = _half_widths(w)
    if not 0 <= y < 1 << w:
        raise ValueError(f"y must be in [0, 2^{w}): {y!r}")
    for i in reversed(range(FEISTEL_ROUNDS)):
        hi = _hi(i, a, b)
        lo = _lo(i, a, b)
        right = y >> hi
        f = _round_function(key_perm, q, i, right) & ((1 << hi) - 1)
        left = (y & ((1 << hi) - 1)) ^ f
        y = (left << lo) | right
    return y


def permute(key_perm: Key, q: int, r: int, n: int) -> int:
    """``pi_q(r)``: the block-``q`` permutation of ``[0, n)`` (cycle walking)."""
    if not 0 <= r < n:
        raise ValueError(f"offset must be in [0, {n}): {r!r}")
    w = feistel_width(n)
    x = feistel(key_perm, q, r, w)
    while x >= n:
        x = feistel(key_perm, q, x, w)
    return x


def permute_inverse(key_perm: Key, q: int, e: int, n: int) -> int:
    """``pi_q_inverse(e)``: the inverse of :func:`permute` for block ``q``."""
    if not 0 <= e < n:
        raise ValueError(f"entry must be in [0, {n}): {e!r}")
    w = feistel_width(n)
    y = feistel_inverse(key_perm, q, e, w)
    while y >= n:
        y = feistel_inverse(key_perm, q, y, w)
    return y


# ---------------------------------------------------------------------------
# Section 5: signs and scales
# ---------------------------------------------------------------------------


def sign(key_sign: Key, q: int, r: int) -> int:
    """Return the sign (+1 or -1) of position ``k = q*N + r`` in modes with signs."""
    y0, y1 = threefry2x32(key_sign, (r >> 6, q))
    t = r & 63
    bit = (y0 >> t) & 1 if t < 32 else (y1 >> (t - 32)) & 1
    return 1 if bit == 0 else -1


def fan_out(shape: Sequence[int]) -> int:
    """``fan_out(shape) = shape[0] * product(shape[2:])`` (section 5)."""
    return shape[0] * math.prod(shape[2:])


def correctly_rounded_sqrt(num: int, den: int) -> float:
    """Return the double nearest to the real ``sqrt(num / den)`` (ties to even).

    Not used by :func:`build_plan` (which evaluates ``sqrt(num / den)`` as two
    IEEE double operations, see the module notes); provided so that tests can
    check that the two readings of section 5 agree on a given plan.
    """
    if num <= 0 or den <= 0:
        raise ValueError("num and den must be positive")
    target = Fraction(num, den)
    c = math.sqrt(num / den)
    # The two-rounding result is within an ulp or two of the true root:
    # search the neighbourhood for the double whose rounding interval holds it.
    candidates = [c]
    lo = hi = c
    for _ in range(4):
        lo = math.nextafter(lo, 0.0)
        hi = math.nextafter(hi, math.inf)
        candidates += [lo, hi]
    for cand in sorted(candidates):
        below = (Fraction(math.nextafter(cand, 0.0)) + Fraction(cand)) / 2
        above = (Fraction(cand) + Fraction(math.nextafter(cand, math.inf))) / 2
        if below * below < target < above * above:
            return cand
        if target in (below * below, above * above):  # exact tie: pick even
            raise NotImplementedError("exact tie in correctly_rounded_sqrt")
    raise AssertionError("correctly rounded square root not found")


# ---------------------------------------------------------------------------
# Section 6: ring initialisation
# ---------------------------------------------------------------------------


def fl32(x: float) -> float:
    """Round the double ``x`` to the nearest float32 (ties to even)."""
    value: float = struct.unpack("<f", struct.pack("<f", x))[0]
    return value


def f32_bits(x: float) -> int:
    """Return the IEEE 754 binary32 bit pattern of ``fl32(x)`` as an unsigned integer."""
    bits: int = struct.unpack("<I", struct.pack("<f", x))[0]
    return bits


def init_z(key_init: Key, e: int) -> float:
    """Return the centred Irwin-Hall variate ``z = v * 2^-21`` of ring entry ``e``."""
    u: list[int] = []
    for t in range(6):
        y0, y1 = threefry2x32(key_init, (e, t))
        u.append(y0 >> 12)
        u.append(y1 >> 12)
    v = sum(2 * ui + 1 for ui in u) - 12 * (1 << 20)
    if v % 2 != 0 or abs(v) >= 1 << 24:
        raise AssertionError(f"v out of its documented range: {v}")
    return math.ldexp(v, -21)


def init_entry(key_init: Key, e: int, init_std: float) -> float:
    """Return the initial value ``W[e] = fl32(fl32(init_std) * z)`` of a ring (section 6).

    The product of two float32 values is exact in double precision (24 + 24
    significant bits < 53), so rounding the double product to float32 once is
    the correctly rounded float32 multiplication.
    """
    z = init_z(key_init, e)
    if fl32(z) != z:
        raise AssertionError("z is not exact in float32")
    return fl32(fl32(init_std) * z)


# ---------------------------------------------------------------------------
# Section 2 and 8: the plan
# ---------------------------------------------------------------------------


def build_plan(
    slots: Mapping[str, Sequence[int]],
    ring_size: int | Mapping[str, int],
    seed: int = 0,
    mode: str = "perm_sign",
    groups: Mapping[str, str] | None = None,
    scaling: str = "fan_out",
) -> Plan:
    """Build a plan as the JSON-shaped dict of section 8.

    ``slots`` maps slot names to canonical shapes, in plan order.  Rings:

    * ``ring_size`` an int and no ``groups``: one ring named ``"global"``
      holding every slot;
    * ``ring_size`` a mapping: the rings, in that order, with ids 0, 1, ...;
      ``groups`` maps every slot to its ring (it may be omitted when the
      mapping has a single ring);
    * ``ring_size`` an int with ``groups``: every ring has that size, rings
      ordered by their first slot.

    Scales and ``init_std`` follow sections 5 and 6 (``scaling`` is
    ``"fan_out"`` or ``"none"``).  The double expressions
    ``sqrt(a / b)`` are evaluated as IEEE double division then IEEE double
    square root.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    if scaling not in ("fan_out", "none"):
        raise ValueError(f"unknown scaling {scaling!r}")
    if not isinstance(seed, int) or not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be an integer in [0, 2^64): {seed!r}")
    if not slots:
        raise ValueError("a plan needs at least one slot")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, shape in slots.items():
        dims = tuple(int(d) for d in shape)
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"slot {name!r}: shape must be positive dims: {shape}")
        shapes[name] = dims

    sizes: dict[str, int]
    if isinstance(ring_size, Mapping):
        sizes = {str(k): int(v) for k, v in ring_size.items()}
        if groups is None:
            if len(sizes) != 1:
                raise ValueError("several rings need a groups mapping")
            only = next(iter(sizes))
            slot_ring = {name: only for name in shapes}
        else:
            slot_ring = {name: groups[name] for name in shapes}
    else:
        if groups is None:
            slot_ring = {name: "global" for name in shapes}
        else:
            slot_ring = {name: groups[name] for name in shapes}
        sizes = {}
        for ring in slot_ring.values():
            sizes.setdefault(ring, int(ring_size))

    for name, ring in slot_ring.items():
        if ring not in sizes:
            raise ValueError(f"slot {name!r} names unknown ring {ring!r}")
    rings_out: list[dict[str, Any]] = []
    fan_refs: dict[str, int] = {}
    for j, (ring, n) in enumerate(sizes.items()):
        if not ring:
            raise ValueError("ring names must be non-empty")
        if not 1 <= n <= 1 << 31:
            raise ValueError(f"ring {ring!r}: size must be in [1, 2^31]: {n}")
        members = [s for s in shapes if slot_ring[s] == ring]
        if not members:
            raise ValueError(f"ring {ring!r} has no slot")
        m_total = sum(math.prod(shapes[s]) for s in members)
        if m_total > (1 << 32) * n:
            raise ValueError(f"ring {ring!r}: M = {m_total} > 2^32 * N")
        fan_ref = max(fan_out(shapes[s]) for s in members)
        fan_refs[ring] = fan_ref
        rings_out.append({"name": ring, "id": j, "size": n, "init_std": math.sqrt(2 / fan_ref)})

    slots_out: list[dict[str, Any]] = []
    for name, dims in shapes.items():
        ring = slot_ring[name]
        scale = math.sqrt(fan_refs[ring] / fan_out(dims)) if scaling == "fan_out" else 1.0
        slots_out.append({"name": name, "shape": list(dims), "ring": ring, "scale": scale})
    return {
        "spec": SPEC_VERSION,
        "seed": seed,
        "mode": mode,
        "rings": rings_out,
        "slots": slots_out,
    }


def plan_to_json(plan: Plan) -> str:
    """Serialise a plan exactly as section 8 writes it (no whitespace)."""
    ordered = {
        "spec": plan["spec"],
        "seed": plan["seed"],
        "mode": plan["mode"],
        "rings": [
            {
                "name": r["name"],
                "id": r["id"],
                "size": r["size"],
                "init_std": float(r["init_std"]),
            }
            for r in plan["rings"]
        ],
        "slots": [
            {
                "name": s["name"],
                "shape": list(s["shape"]),
                "ring": s["ring"],
                "scale": float(s["scale"]),
            }
            for s in plan["slots"]
        ],
    }
    return json.dumps(ordered, separators=(",", ":"), allow_nan=False)


class _RingView:
    """One ring of a plan: its keys and the layout of its position space."""

    def __init__(self, plan: Plan, ring: Mapping[str, Any]) -> None:
        self.name: str = ring["name"]
        self.id: int = int(ring["id"])
        self.size: int = int(ring["size"])
        self.init_std: float = float(ring["init_std"])
        self.mode: str = plan["mode"]
        self.keys = stream_keys(int(plan["seed"]), self.id)
        self.slots: list[str] = []
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        self.scales: list[float] = []
        offset = 0
        for slot in plan["slots"]:
            if slot["ring"] != self.name:
                continue
            n = math.prod(slot["shape"])
            self.slots.append(slot["name"])
            self.offsets.append(offset)
            self.lengths.append(n)
            self.scales.append(float(slot["scale"]))
            offset += n
        self.total = offset  # M

    def slot_at(self, k: int) -> int:
        """Index (into ``self.slots``) of the slot holding position ``k``."""
        return bisect.bisect_right(self.offsets, k) - 1


def _ring_views(plan: Plan) -> list[_RingView]:
    if plan.get("spec") != SPEC_VERSION:
        raise ValueError(f"not an {SPEC_VERSION} plan: {plan.get('spec')!r}")
    if plan["mode"] not in MODES:
        raise ValueError(f"unknown mode {plan['mode']!r}")
    views = [_RingView(plan, ring) for ring in plan["rings"]]
    known = {v.name for v in views}
    for slot in plan["slots"]:
        if slot["ring"] not in known:
            raise ValueError(f"slot {slot['name']!r}: unknown ring {slot['ring']!r}")
    return views


# ---------------------------------------------------------------------------
# Sections 4 to 6 put together: one position at a time
# ---------------------------------------------------------------------------


def position_index(keys: Mapping[str, Key], mode: str, n: int, k: int) -> int:
    """Ring entry ``u(k)`` used by ring position ``k`` (section 4)."""
    q, r = divmod(k, n)
    if q > MASK32:
        raise ValueError("block index does not fit 32 bits")
    if mode in PERM_MODES:
        return permute(keys["perm"], q, r, n)
    return r


def position_sign(keys: Mapping[str, Key], mode: str, n: int, k: int) -> int:
    """Sign ``s(k)`` of ring position ``k`` (section 5)."""
    if mode in SIGN_MODES:
        q, r = divmod(k, n)
        return sign(keys["sign"], q, r)
    return 1


def generate(
    plan: Plan,
    max_positions: int | None = None,
    max_init: int | None = None,
) -> dict[str, dict[str, dict[str, list[Any]]]]:
    """Generate indices, signs and initial rings of a plan, position by position.

    Returns ``{"slots": {slot: {"indices": [...], "signs": [...]}},
    "rings": {ring: {"init": [...], "init_bits": [...]}}}``.  Slot lists are
    in canonical row-major order; ``init`` holds float32 values as Python
    floats and ``init_bits`` their binary32 bit patterns.  ``max_positions``
    and ``max_init`` truncate each slot's and each ring's lists (to keep
    large plans affordable); by default everything is computed.
    """
    out_slots: dict[str, dict[str, list[Any]]] = {}
    out_rings: dict[str, dict[str, list[Any]]] = {}
    for view in _ring_views(plan):
        for slot, offset, length in zip(view.slots, view.offsets, view.lengths, strict=True):
            count = length if max_positions is None else min(length, max_positions)
            indices = []
            signs = []
            for p in range(count):
                k = offset + p
                indices.append(position_index(view.keys, view.mode, view.size, k))
                signs.append(position_sign(view.keys, view.mode, view.size, k))
            out_slots[slot] = {"indices": indices, "signs": signs}
        count = view.size if max_init is None else min(view.size, max_init)
        init = [init_entry(view.keys["init"], e, view.init_std) for e in range(count)]
        out_rings[view.name] = {"init": init, "init_bits": [f32_bits(x) for x in init]}
    ordered = {s["name"]: out_slots[s["name"]] for s in plan["slots"]}
    return {"slots": ordered, "rings": out_rings}


def kernels(
    plan: Plan,
    rings: Mapping[str, Sequence[float]] | None = None,
    max_positions: int | None = None,
) -> dict[str, list[float]]:
    """Float32 kernels ``K[k] = fl32(fl32(scale) * (s(k) * W[u(k)]))`` (section 5).

    ``rings`` gives each ring's values (float32 values as Python floats); by
    default the initial rings of section 6, of which only the entries the
    kernels use are computed.  Returns flat, row-major lists;
    ``max_positions`` truncates each slot's list, as in :func:`generate`.

    ``scale32 * (s * w)`` is a product of two float32 values, exact in double
    precision (24 + 24 significant bits < 53), so rounding it to float32 once
    is the correctly rounded float32 multiplication.
    """
    gen = generate(plan, max_positions=max_positions, max_init=0)
    views = {view.name: view for view in _ring_views(plan)}
    values: dict[str, dict[int, float]] = (
        {name: {} for name in views}
        if rings is None
        else {name: {e: fl32(x) for e, x in enumerate(r)} for name, r in rings.items()}
    )

    def ring_value(ring: str, u: int) -> float:
        known = values[ring]
        if u not in known:
            if rings is not None:
                raise ValueError(f"ring {ring!r} has no entry {u}")
            view = views[ring]
            known[u] = init_entry(view.keys["init"], u, view.init_std)
        return known[u]

    out: dict[str, list[float]] = {}
    for slot in plan["slots"]:
        name = slot["name"]
        scale32 = fl32(float(slot["scale"]))
        data = gen["slots"][name]
        out[name] = [
            fl32(scale32 * (s * ring_value(slot["ring"], u)))
            for u, s in zip(data["indices"], data["signs"], strict=True)
        ]
    return out


# ---------------------------------------------------------------------------
# Section 7: the ring gradient
# ---------------------------------------------------------------------------


def _block_count(m: int, n: int) -> int:
    """``Q = ceil(M / N)``."""
    return -(-m // n)


def contract_entry(
    view: _RingView,
    grads: Mapping[str, Sequence[float]],
    e: int,
    scale_dtype: str = "float64",
) -> float:
    """``dW[e]`` of one ring, literally as section 7 writes it.

    The terms are summed in increasing block order in Python (double)
    floats.  ``scale_dtype`` is ``"float64"`` (use the plan's scale as is) or
    ``"float32"`` (round it to float32 first, as for a float32 ring).
    """
    n = view.size
    m = view.total
    acc = 0.0
    for q in range(_block_count(m, n)):
        r = permute_inverse(view.keys["perm"], q, e, n) if view.mode in PERM_MODES else e
        k = q * n + r
        if k >= m:
            continue
        t = view.slot_at(k)
        scale = view.scales[t]
        if scale_dtype == "float32":
            scale = fl32(scale)
        elif scale_dtype != "float64":
            raise ValueError(f"unknown scale_dtype {scale_dtype!r}")
        s = position_sign(view.keys, view.mode, n, k)
        g = float(grads[view.slots[t]][k - view.offsets[t]])
        acc += s * scale * g
    return acc


def contract(
    plan: Plan,
    grads: Mapping[str, Sequence[float]],
    scale_dtype: str = "float64",
) -> dict[str, list[float]]:
    """Ring gradients ``dW`` of every ring (section 7).

    ``grads`` maps each slot name to its kernel gradient, flattened in
    canonical row-major order.  Returns ``{ring name: [dW[0], ..., dW[N-1]]}``.
    """
    out: dict[str, list[float]] = {}
    for view in _ring_views(plan):
        for slot, length in zip(view.slots, view.lengths, strict=True):
            if len(grads[slot]) != length:
                raise ValueError(f"gradient of {slot!r} must have {length} values")
        out[view.name] = [contract_entry(view, grads, e, scale_dtype) for e in range(view.size)]
    return out
