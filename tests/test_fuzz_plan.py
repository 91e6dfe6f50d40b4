"""Fuzzing the plan JSON parser and the model description parser (see tests/fuzz_support.py).

``Plan.from_json`` must return a plan that means exactly what the text says
(read again by Python's json module) or raise a PlanError with a short
message; plans that claim more generated parameters than any machine holds
are refused before anything is allocated. ``porting.read`` must match a file's
tensors to the model exactly as its (changed) model description says, or
raise a RingFileError.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
from fuzz_support import (
    RAW_TOKENS,
    assert_same_array,
    bounded,
    check_error,
    dump,
    fuzz,
    header_of,
    load_checked,
    mutate,
    originals,
    plan_checked,
    reseal,
    ring_file_bytes,
    tree,
    warm_up,
    with_header,
    write,
)
from hypothesis import strategies as st

import rpgcore
from rpgcore import porting, spec
from rpgcore.errors import PlanError, RingFileError, SettingsWarning

warm_up()


@st.composite
def plan_documents(draw):
    """A valid plan's JSON document: 1-3 rings, 1-5 slots, any seed and mode."""
    rings = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3, unique=True))
    slots = draw(
        st.lists(st.text(min_size=1, max_size=6), min_size=len(rings), max_size=5, unique=True)
    )
    slots = [s.replace("\x00", "_") or "_" for s in slots]
    rings = [r.replace("\x00", "_") or "_" for r in rings]
    if len(set(slots)) != len(slots) or len(set(rings)) != len(rings):
        slots, rings = [f"s{i}" for i in range(len(slots))], [f"r{i}" for i in range(len(rings))]
    groups = {
        s: rings[i] if i < len(rings) else draw(st.sampled_from(rings)) for i, s in enumerate(slots)
    }
    plan = rpgcore.Plan.build(
        {s: tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))) for s in slots},
        ring_size={r: draw(st.integers(1, 2**31)) for r in rings},
        groups=groups,
        seed=draw(st.integers(0, 2**64 - 1)),
        mode=draw(st.sampled_from(spec.MODES)),
    )
    return json.loads(plan.to_json())


@fuzz(document=plan_documents(), data=st.data())
def test_plan_structure(document, data):
    """Values, keys and entries of a plan edited: unknown keys and modes, repeated names
    and ids, missing rings, shapes of floats, bools, nulls and negatives, huge numbers,
    seeds out of [0, 2**64), NaN, 1e999, deep nesting, repeated keys."""
    text = dump(mutate(data.draw, tree(document), steps=4))
    plan_checked(text)


@fuzz(document=plan_documents(), data=st.data())
def test_plan_text(document, data):
    """The plan's text damaged: cut, characters changed, tokens spliced in, other encodings."""
    text = json.dumps(document, separators=(",", ":"))
    operation = data.draw(st.sampled_from(["cut", "change", "splice", "bytes", "encoding"]))
    position = data.draw(st.integers(0, len(text) - 1))
    candidate: str | bytes
    if operation == "cut":
        candidate = text[:position]
    elif operation == "change":
        candidate = text[:position] + data.draw(st.characters()) + text[position + 1 :]
    elif operation == "splice":
        token = data.draw(st.sampled_from(RAW_TOKENS))
        candidate = text[:position] + token + text[position:]
    elif operation == "bytes":
        raw = text.encode()
        garbage = data.draw(st.binary(min_size=1, max_size=4))
        candidate = raw[:position] + garbage + raw[position:]
    else:
        encoding = data.draw(
            st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-8-sig", "latin-1"])
        )
        candidate = text.encode(encoding)
    plan_checked(candidate)


HUGE_SHAPES = st.sampled_from(
    [
        [2**31, 2**31],
        [2**62],
        [10**15],
        [10**6, 10**6, 10**3],
        [2**20, 2**20, 2],
        [2**32, 2**32, 2**32],
        [2**62] * 32,
    ]
) | st.lists(st.integers(2**21, 2**62), min_size=2, max_size=5)


@fuzz(
    shapes=st.lists(HUGE_SHAPES, min_size=1, max_size=4),
    copies=st.integers(1, 100),
    size=st.sampled_from([1, 7, 2**20, 2**31]) | st.integers(1, 2**31),
    through_file=st.booleans(),
)
def test_plans_claiming_enormous_slots(shapes, copies, size, through_file):
    """Plans whose slots add up to more than any machine holds are refused, allocating nothing.

    One slot of [2**31, 2**31], 2,000 slots of 10**12 (10**15 in all), 32
    dimensions of 2**62: each is refused by Plan.from_json, and by rpgcore.load
    when a file holds it, before any kernel or index array exists.
    """
    slots = [
        {"name": f"s{i}", "shape": shape, "ring": "g", "scale": 1.0}
        for i, shape in enumerate(shapes * copies)
    ]
    document = {
        "spec": "rpg-v1",
        "seed": 0,
        "mode": "perm_sign",
        "rings": [{"name": "g", "id": 0, "size": size, "init_std": 0.1}],
        "slots": slots,
    }
    text = json.dumps(document, separators=(",", ":"))
    if not through_file:
        outcome = bounded(lambda: rpgcore.Plan.from_json(text), len(text))
        check_error(outcome, PlanError)
        assert (
            "RPG_MAX_GENERATED" in str(outcome)
            or "2**32 blocks" in str(outcome)
            or "dimension" in str(outcome)
        )
        return
    small = rpgcore.Plan.build({"w": (2,)}, ring_size=1)
    data = ring_file_bytes(small, {"global": np.zeros(1, np.float32)}, {})
    header, body = header_of(data)
    header["__metadata__"]["plan"] = text
    candidate = reseal(with_header(json.dumps(header).encode(), body))
    path = write(candidate)
    outcome = bounded(lambda: rpgcore.load(path), len(candidate))
    check_error(outcome, RingFileError)


@fuzz(original=originals(described=True), data=st.data())
def test_model_description(original, data):
    """A file's model description edited (recomputed checksum) and loaded with porting.load.

    Unknown kinds and roles, entries of the wrong length or type, repeated or
    missing tensors, settings of any JSON: a load must match each model tensor
    to the file tensor the description puts in its place, warning only with
    SettingsWarning; anything else is a RingFileError.
    """
    header, body = header_of(original.data)
    model = json.loads(header["__metadata__"]["model"])
    text = dump(mutate(data.draw, tree(model), steps=3))
    header["__metadata__"]["model"] = text
    candidate = reseal(with_header(json.dumps(header, ensure_ascii=False).encode(), body))
    path = write(candidate)

    def load():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = porting.read(
                path, original.plan, list(original.described), list(original.layers)
            )
        return result, caught

    outcome = bounded(load, len(candidate))
    if isinstance(outcome, BaseException):
        check_error(outcome, RingFileError)
        return
    (rings, values, _), caught = outcome
    assert all(issubclass(w.category, SettingsWarning) for w in caught), caught
    for name, ring in original.rings.items():
        assert_same_array(rings[name], ring)
    record = json.loads(text)
    theirs = [entry for entry in record["tensors"] if entry[3] != "native"]
    ours = [t for t in original.described if t.role != "native"]
    assert len(theirs) == len(ours)
    expected = set()
    for tensor, (name, _layer, kind, role) in zip(ours, theirs, strict=True):
        assert (kind, role) == (tensor.kind, tensor.role)
        assert_same_array(values[tensor.name], original.extras[name])
        expected.add(tensor.name)
    for tensor in original.described:
        if tensor.role == "native" and tensor.name in original.extras:
            expected.add(tensor.name)
            assert_same_array(values[tensor.name], original.extras[tensor.name])
    assert set(values) == expected


@fuzz(original=originals(), data=st.data())
def test_plan_in_file_and_alone_agree(original, data):
    """A plan edited inside a ring file: the file loads iff the plan parses and fits the rings."""
    document = json.loads(original.plan.to_json())
    text = dump(mutate(data.draw, tree(document), steps=2))
    header, body = header_of(original.data)
    header["__metadata__"]["plan"] = text
    candidate = reseal(with_header(json.dumps(header, ensure_ascii=False).encode(), body))
    content = load_checked(candidate, None)
    alone = plan_checked(text)
    if content is not None:
        assert alone == content.plan
    elif alone is not None:
        assert alone.ring_sizes != original.plan.ring_sizes or alone.spec != original.plan.spec
