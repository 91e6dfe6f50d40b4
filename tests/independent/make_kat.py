"""Write the rpg-v1 known-answer vectors from the scalar reference.

Run from anywhere::

    python tests/independent/make_kat.py

It builds a fixed list of small plans, checks the scalar reference against
the spec's own claims (Random123 vectors, bijectivity, use counts, inverse
permutation, exact float32 rounding, contraction = transpose of the
generator), writes ``tests/kat/rpg_v1.json`` and prints a markdown block for
section 9 of ``docs/spec.md``.  Standard library only.

Besides indices, signs and initial rings, every case stores the generated
float32 kernels of its own initial ring (section 5) and, unless truncated, the
float64 ring gradient (section 7) of the deterministic gradient
:func:`contract_gradient` (no RNG; formula in ``CONTRACT_GRADIENT``).
"""

import json
import math
import random
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scalar_reference as ref

ROOT = Path(__file__).resolve().parents[2]
KAT_PATH = ROOT / "tests" / "kat" / "rpg_v1.json"

RANDOM123_VECTORS = (
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
)

PREVIEW_INDICES = 16
PREVIEW_INIT = 4

CONTRACT_GRADIENT = (
    "G[slot][j] = ((j * 7919 + i * 104729) % 2001 - 1000) / 1000.0, where i is the "
    "slot's index in plan['slots'] (plan order, counted across all rings, from 0), "
    "j the element's row-major position inside the slot's canonical shape (from 0), "
    "the integer expression is evaluated exactly (% is the non-negative remainder) "
    "and / is one IEEE double division (correctly rounded); G[slot] has the slot's "
    "canonical shape"
)


def gradient_value(slot_index: int, j: int) -> float:
    """One element of the deterministic kernel gradient (``CONTRACT_GRADIENT``)."""
    return ((j * 7919 + slot_index * 104729) % 2001 - 1000) / 1000.0


def contract_gradient(plan: dict[str, Any]) -> dict[str, list[float]]:
    """The deterministic kernel gradients of a plan, flat in row-major order."""
    return {
        slot["name"]: [gradient_value(i, j) for j in range(math.prod(slot["shape"]))]
        for i, slot in enumerate(plan["slots"])
    }


def kat_plans() -> list[dict[str, Any]]:
    """Return the fixed list of KAT cases: name, description, plan and truncation."""
    cases: list[dict[str, Any]] = []
    small = {"conv": (3, 2, 2, 2), "fc": (5, 3)}
    for tag, mode in zip("1234", ref.MODES, strict=True):
        cases.append(
            {
                "name": f"a{tag}",
                "description": (
                    "one ring `global` N=7; slots conv (3,2,2,2) + fc (5,3) "
                    f"(M=39); seed 0; mode {mode}"
                ),
                "plan": ref.build_plan(small, 7, seed=0, mode=mode),
            }
        )
    cases.append(
        {
            "name": "b",
            "description": (
                "two rings r0 N=13 (slots a (4,3,3) + c (2,2,3,3), M=72) and "
                "r1 N=5 (slot b (6,4), M=24); seed 2^64-1; mode perm_sign"
            ),
            "plan": ref.build_plan(
                {"a": (4, 3, 3), "b": (6, 4), "c": (2, 2, 3, 3)},
                {"r0": 13, "r1": 5},
                seed=(1 << 64) - 1,
                mode="perm_sign",
                groups={"a": "r0", "b": "r1", "c": "r0"},
            ),
        }
    )
    for tag, n in (("c1", 1), ("c2", 2)):
        cases.append(
            {
                "name": tag,
                "description": (
                    f"one ring `global` N={n}; slot k (3,3) (M=9); seed 42; mode perm_sign"
                ),
                "plan": ref.build_plan({"k": (3, 3)}, n, seed=42),
            }
        )
    cases.append(
        {
            "name": "d",
            "description": (
                "one ring `global` N=1000 (w=10); slot w (64,50) (M=3200, "
                "partial last block of 200); seed 123456789; mode perm_sign"
            ),
            "plan": ref.build_plan({"w": (64, 50)}, 1000, seed=123456789),
        }
    )
    cases.append(
        {
            "name": "e",
            "description": (
                "one ring `global` N=70000 (w=17, odd width); slot w (100,1000) "
                "(M=100000); seed 7; mode perm_sign; stored: first 256 "
                "positions, first 64 ring values"
            ),
            "plan": ref.build_plan({"w": (100, 1000)}, 70000, seed=7),
            "max_positions": 256,
            "max_init": 64,
        }
    )
    return cases


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def round_f32_exact(x: Fraction) -> Fraction:
    """Round a rational to binary32 (normal range, ties to even) with integers."""
    if x == 0:
        return Fraction(0)
    neg = x < 0
    a = -x if neg else x
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while a >= Fraction(2) ** (e + 1):
        e += 1
    while a < Fraction(2) ** e:
        e -= 1
    if not -126 <= e <= 127:
        raise ValueError("outside the normal float32 range")
    scaled = a / Fraction(2) ** (e - 23)  # in [2^23, 2^24)
    m, rem = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * rem
    if twice > scaled.denominator or (twice == scaled.denominator and m % 2 == 1):
        m += 1
    result = Fraction(m) * Fraction(2) ** (e - 23)
    return -result if neg else result


def check_threefry() -> None:
    """Check the three Random123 known-answer vectors of section 1."""
    for key, counter, expected in RANDOM123_VECTORS:
        got = ref.threefry2x32(key, counter)
        if got != expected:
            raise AssertionError(f"threefry{key}{counter} = {got}, want {expected}")


def check_blocks(plan: dict[str, Any], ring_name: str) -> None:
    """Bijectivity, use counts and inverse permutation of one ring."""
    ring = next(r for r in plan["rings"] if r["name"] == ring_name)
    n = ring["size"]
    keys = ref.stream_keys(plan["seed"], ring["id"])
    slots = [s for s in plan["slots"] if s["ring"] == ring_name]
    gen = ref.generate(plan)
    flat: list[int] = []
    for s in slots:
        flat += gen["slots"][s["name"]]["indices"]
    m = len(flat)
    full, rest = divmod(m, n)
    for q in range(full):
        if sorted(flat[q * n : (q + 1) * n]) != list(range(n)):
            raise AssertionError(f"{ring_name}: block {q} is not a permutation")
    tail = flat[full * n :]
    if len(set(tail)) != len(tail) or len(tail) != rest:
        raise AssertionError(f"{ring_name}: partial block repeats an entry")
    counts = Counter(flat)
    per_entry = [counts.get(e, 0) for e in range(n)]
    lo, hi = m // n, -(-m // n)
    if any(c not in (lo, hi) for c in per_entry):
        raise AssertionError(f"{ring_name}: use counts outside [{lo}, {hi}]")
    if sum(1 for c in per_entry if c == hi) != (rest if rest else n):
        raise AssertionError(f"{ring_name}: wrong number of ceil-used entries")
    if plan["mode"] in ("perm_sign", "perm"):
        for q in range(-(-m // n)):
            for r in range(n):
                u = ref.permute(keys["perm"], q, r, n)
                if ref.permute_inverse(keys["perm"], q, u, n) != r:
                    raise AssertionError(f"{ring_name}: inverse fails at q={q} r={r}")
                if q * n + r < m and flat[q * n + r] != u:
                    raise AssertionError("generate() disagrees with permute()")


def check_single_block(plan: dict[str, Any], q: int) -> None:
    """pi_q is a bijection of [0, N) and permute_inverse inverts it."""
    ring = plan["rings"][0]
    n = ring["size"]
    key = ref.stream_keys(plan["seed"], ring["id"])["perm"]
    image = [ref.permute(key, q, r, n) for r in range(n)]
    if sorted(image) != list(range(n)):
        raise AssertionError(f"block {q} of N={n} is not a permutation")
    for r in range(0, n, 97):
        if ref.permute_inverse(key, q, image[r], n) != r:
            raise AssertionError(f"inverse fails at q={q} r={r}")


def check_init_rounding(plan: dict[str, Any], gen: dict[str, Any]) -> None:
    """Every initial value equals an integer-only float32 rounding."""
    for ring in plan["rings"]:
        keys = ref.stream_keys(plan["seed"], ring["id"])
        std32 = round_f32_exact(Fraction(ring["init_std"]))
        if Fraction(ref.fl32(ring["init_std"])) != std32:
            raise AssertionError("fl32(init_std) disagrees with exact rounding")
        for e, value in enumerate(gen["rings"][ring["name"]]["init"]):
            z = Fraction(ref.init_z(keys["init"], e))
            if Fraction(value) != round_f32_exact(std32 * z):
                raise AssertionError(f"init entry {e} is not correctly rounded")
            if not abs(z) < 6:
                raise AssertionError("z outside (-6, 6)")


def check_contract(plan: dict[str, Any], seed: int) -> None:
    """contract() equals the transpose of the generator, on a random gradient."""
    rng = random.Random(seed)
    grads = {
        s["name"]: [rng.uniform(-1, 1) for _ in range(math.prod(s["shape"]))] for s in plan["slots"]
    }
    check_contract_on(plan, grads)


def check_contract_on(plan: dict[str, Any], grads: dict[str, list[float]]) -> None:
    """contract() equals the transpose of the generator, summed by increasing k.

    For one ring entry, increasing k is increasing block q, the order of
    section 7, so the two sums are the same float64 operations.
    """
    gen = ref.generate(plan)
    expected = {r["name"]: [0.0] * r["size"] for r in plan["rings"]}
    for s in plan["slots"]:  # slots of a ring are in increasing-k order
        data = gen["slots"][s["name"]]
        acc = expected[s["ring"]]
        for u, sg, g in zip(data["indices"], data["signs"], grads[s["name"]], strict=True):
            acc[u] += sg * s["scale"] * g
    got = ref.contract(plan, grads)
    for name, values in expected.items():
        if got[name] != values:
            raise AssertionError(f"contract() disagrees with the transpose on {name}")


def check_kernels(
    plan: dict[str, Any], gen: dict[str, Any], kernels: dict[str, list[float]]
) -> None:
    """Every kernel value is the exact float32 rounding of scale32 * s * W[u] (section 5)."""
    values: dict[str, dict[int, Fraction]] = {}
    for ring in plan["rings"]:
        keys = ref.stream_keys(plan["seed"], ring["id"])
        std32 = round_f32_exact(Fraction(ring["init_std"]))
        known = values[ring["name"]] = {}
        used = {
            u
            for s in plan["slots"]
            if s["ring"] == ring["name"]
            for u in gen["slots"][s["name"]]["indices"]
        }
        for u in used:
            known[u] = round_f32_exact(std32 * Fraction(ref.init_z(keys["init"], u)))
    for slot in plan["slots"]:
        data = gen["slots"][slot["name"]]
        got = kernels[slot["name"]]
        if len(got) != len(data["indices"]):
            raise AssertionError(f"kernel {slot['name']}: wrong length")
        scale32 = round_f32_exact(Fraction(slot["scale"]))
        w = values[slot["ring"]]
        for p, (u, sg, value) in enumerate(zip(data["indices"], data["signs"], got, strict=True)):
            if Fraction(value) != round_f32_exact(scale32 * sg * w[u]):
                raise AssertionError(f"kernel {slot['name']}[{p}] is not correctly rounded")
            if ref.fl32(value) != value:
                raise AssertionError(f"kernel {slot['name']}[{p}] is not a float32")


def check_sqrt_readings(plan: dict[str, Any]) -> list[str]:
    """Compare the two readings of 'sqrt(a / b), correctly rounded'."""
    notes = []
    for ring in plan["rings"]:
        slots = [s for s in plan["slots"] if s["ring"] == ring["name"]]
        fan_ref = max(ref.fan_out(s["shape"]) for s in slots)
        pairs = [("init_std", 2, fan_ref, ring["init_std"])]
        pairs += [
            (f"scale[{s['name']}]", fan_ref, ref.fan_out(s["shape"]), s["scale"]) for s in slots
        ]
        for label, num, den, value in pairs:
            exact = ref.correctly_rounded_sqrt(num, den)
            if exact != value:
                notes.append(
                    f"{label}: sqrt({num}/{den}) two-step {value!r}, correctly rounded {exact!r}"
                )
    return notes


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _dump(obj: Any, indent: int = 0) -> str:
    """JSON with nested objects indented and lists of scalars on one line."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {_dump(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list) and any(isinstance(v, dict | list) for v in obj):
        items = [pad + _dump(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _signs_text(signs: list[int]) -> str:
    return " ".join("+" if s > 0 else "-" for s in signs)


def main() -> int:
    """Check, generate, write the JSON and print the markdown block."""
    check_threefry()
    cases = kat_plans()
    by_name = {c["name"]: c for c in cases}

    # Section 4 properties on plans (a) and (d), plus the small others.
    for name in ("a1", "a2", "a3", "a4", "b", "c1", "c2", "d"):
        plan = by_name[name]["plan"]
        for ring in plan["rings"]:
            check_blocks(plan, ring["name"])
    for name in ("a1", "a2", "a3", "a4", "b", "c1", "c2", "d"):
        check_contract(by_name[name]["plan"], seed=len(name) * 31 + ord(name[0]))
        check_contract_on(by_name[name]["plan"], contract_gradient(by_name[name]["plan"]))
    check_single_block(by_name["e"]["plan"], q=0)

    sqrt_notes: list[str] = []
    out_cases = []
    markdown = []
    for case in cases:
        plan = case["plan"]
        max_pos = case.get("max_positions")
        max_init = case.get("max_init")
        gen = ref.generate(plan, max_positions=max_pos, max_init=max_init)
        check_init_rounding(plan, gen)
        sqrt_notes += [f"{case['name']}: {n}" for n in check_sqrt_readings(plan)]
        entry: dict[str, Any] = {
            "name": case["name"],
            "description": case["description"],
            "plan": plan,
            "plan_json": ref.plan_to_json(plan),
            "truncated": max_pos is not None,
        }
        if max_pos is not None:
            entry["stored_positions"] = max_pos
            entry["stored_init"] = max_init
        entry["slots"] = {
            name: {"indices": data["indices"], "signs": data["signs"]}
            for name, data in gen["slots"].items()
        }
        entry["rings"] = {
            name: {"init_bits": [f"0x{b:08x}" for b in data["init_bits"]]}
            for name, data in gen["rings"].items()
        }
        kernels = ref.kernels(plan, max_positions=max_pos)
        check_kernels(plan, gen, kernels)
        if max_pos is None:
            # The kernels of the explicitly passed initial ring must be the same.
            given = {name: data["init"] for name, data in gen["rings"].items()}
            if ref.kernels(plan, given) != kernels:
                raise AssertionError(f"{case['name']}: kernels(plan, init) != kernels(plan)")
        entry["kernels"] = {
            name: [f"0x{ref.f32_bits(v):08x}" for v in values] for name, values in kernels.items()
        }
        if max_pos is None:
            dw = ref.contract(plan, contract_gradient(plan), scale_dtype="float64")
            entry["contract"] = {name: [v.hex() for v in values] for name, values in dw.items()}
        else:
            entry["contract"] = None
            entry["contract_skipped"] = (
                "truncated case: the ring gradient needs the gradient over the whole position space"
            )
        out_cases.append(entry)

        markdown.append(f"**{case['name']}**: {case['description']}.")
        markdown.append("")
        markdown.append(f"- plan: `{ref.plan_to_json(plan)}`")
        for ring in plan["rings"]:
            first = next(s for s in plan["slots"] if s["ring"] == ring["name"])
            data = gen["slots"][first["name"]]
            idx = data["indices"][:PREVIEW_INDICES]
            sg = data["signs"][:PREVIEW_INDICES]
            span = f"[0:{len(idx)}]"
            markdown.append(f"- `{first['name']}` indices{span}: `{' '.join(map(str, idx))}`")
            markdown.append(f"- `{first['name']}` signs{span}: `{_signs_text(sg)}`")
            init = gen["rings"][ring["name"]]
            shown = [
                f"`0x{b:08x}` ({v:.9g})"
                for b, v in zip(
                    init["init_bits"][:PREVIEW_INIT],
                    init["init"][:PREVIEW_INIT],
                    strict=True,
                )
            ]
            markdown.append(f"- ring `{ring['name']}` init[0:{len(shown)}]: " + ", ".join(shown))
        markdown.append("")

    document = {
        "spec": ref.SPEC_VERSION,
        "generator": "tests/independent/scalar_reference.py",
        "notes": (
            "indices and signs per slot in canonical row-major order; init_bits "
            "are the float32 bit patterns of the initial ring (section 6); a "
            "truncated case stores only the first stored_positions positions of "
            "each slot and the first stored_init values of each ring"
            "; kernels: per slot, the float32 bit patterns of the generated kernel "
            "K[k] = fl32(fl32(scale) * (s(k) * W[u(k)])) (section 5) with W the "
            "case's own float32 initial ring, canonical row-major order (a "
            "truncated case: only its stored positions); contract: per ring, the "
            "float64 ring gradient dW (section 7: scale used as a float64, terms "
            "s(k) * scale * G[k] summed in increasing block order q starting from "
            "+0.0) of the deterministic gradient of contract_gradient, written with "
            "float.hex(); contract is null for a truncated case (contract_skipped "
            "says why). contract_gradient: " + CONTRACT_GRADIENT
        ),
        "contract_gradient": CONTRACT_GRADIENT,
        "cases": out_cases,
    }
    KAT_PATH.parent.mkdir(parents=True, exist_ok=True)
    KAT_PATH.write_text(_dump(document) + "\n", encoding="utf-8")

    print(f"wrote {KAT_PATH.relative_to(ROOT)} ({KAT_PATH.stat().st_size} bytes)")
    print("checks passed: Random123 vectors, block bijectivity, use counts,")
    print("permute_inverse, float32 rounding, kernel rounding, contract = transpose")
    if sqrt_notes:
        print("sqrt readings differ:")
        for note in sqrt_notes:
            print("  " + note)
    else:
        print("sqrt readings agree (two-step IEEE == correctly rounded) on all plans")
    print()
    print("\n".join(markdown).rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
