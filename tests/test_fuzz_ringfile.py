"""Fuzzing the ring file loader: damaged, altered and hostile files (see tests/fuzz_support.py).

Each test draws a small valid ring file (1-3 rings of any float bits, extras of
every dtype, buffers, sometimes a model description), changes it, and loads
the result under the time and memory bounds. A load must give exactly the
original (byte damage) or exactly what the changed file says, read again by
the safetensors package (changes whose checksum was recomputed, so that they
reach the checks behind it); anything else must be a RingFileError with a
short message.
"""

from __future__ import annotations

import json
import struct

from fuzz_support import (
    DEEP,
    EDGES,
    RAW_TOKENS,
    Obj,
    Raw,
    arrays,
    bounded,
    check_error,
    dump,
    fuzz,
    header_of,
    load_checked,
    mutate,
    originals,
    reseal,
    tree,
    warm_up,
    with_header,
    write,
)
from hypothesis import strategies as st

import rpgcore
from rpgcore import ringfile, safetensors_io
from rpgcore.errors import RingFileError

warm_up()

LENGTHS = [0, 1, 7, 8, 2**31, safetensors_io.MAX_HEADER, safetensors_io.MAX_HEADER + 1, 2**63]
LENGTHS += [2**64 - 1]


@fuzz(original=originals(), data=st.data())
def test_byte_damage(original, data):
    """Bit flips, overwritten, inserted and deleted bytes, cuts, appended bytes, wrong lengths."""
    damaged = bytearray(original.data)
    (length,) = struct.unpack("<Q", damaged[:8])
    for _ in range(data.draw(st.integers(1, 4))):
        operation = data.draw(
            st.sampled_from(["flip", "set", "insert", "delete", "cut", "append", "length"])
        )
        position = data.draw(st.integers(0, max(len(damaged) - 1, 0)))
        if operation == "flip" and damaged:
            damaged[position] ^= 1 << data.draw(st.integers(0, 7))
        elif operation == "set" and damaged:
            damaged[position] = data.draw(st.integers(0, 255))
        elif operation == "insert":
            damaged[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del damaged[position : position + data.draw(st.integers(1, 8))]
        elif operation == "cut":
            del damaged[position:]
        elif operation == "append":
            damaged += data.draw(st.binary(min_size=1, max_size=16))
        elif operation == "length" and len(damaged) >= 8:
            claimed = data.draw(
                st.sampled_from([*LENGTHS, length - 1, length + 1, length - 8, length + 8])
                | st.integers(0, 2**64 - 1)
            )
            damaged[:8] = struct.pack("<Q", max(claimed, 0))
    load_checked(bytes(damaged), original)


@fuzz(
    noise=st.binary(max_size=4096),
    start=st.sampled_from([b"", b"{", b'{"__metadata__":', b'{"rings/global":{"dtype":"F32",']),
    claim=st.none() | st.integers(0, 5000) | st.sampled_from(LENGTHS),
)
def test_random_bytes(noise, start, claim):
    """Arbitrary bytes, behind a plausible header length and header start or not."""
    body = start + noise
    data = body if claim is None else struct.pack("<Q", claim) + body
    path = write(data)
    outcome = bounded(lambda: ringfile.load_file(path), len(data))
    check_error(outcome, RingFileError)


@fuzz(original=originals(), data=st.data())
def test_header_structure(original, data):
    """The header as a JSON tree: edit values, keys and entries, then recompute the checksum.

    Tensor entries get impossible dtypes, shapes and offsets, metadata values
    become other JSON, keys appear twice or vanish; the checksum is recomputed
    wherever the changed header still decodes, so the change meets the checks
    behind it (namespaces, ring sizes, dtypes, buffers, the plan).
    """
    header, body = header_of(original.data)
    changed = mutate(data.draw, tree(header), steps=4)
    text = dump(changed).encode("utf-8")
    candidate = with_header(text, body, pad=data.draw(st.booleans()))
    if data.draw(st.integers(0, 4)) > 0:
        candidate = reseal(candidate)
    load_checked(candidate, None)


HEADER_EDITS = [
    "prefix",
    "padding",
    "no-padding",
    "bad-utf8",
    "raw-token",
    "duplicate-key",
    "deep-metadata",
]


@fuzz(original=originals(), edit=st.sampled_from(HEADER_EDITS), data=st.data())
def test_header_text(original, edit, data):
    """The header text itself: whitespace, byte order marks, bad UTF-8, NaN, 1e999, ...

    Nothing here changes what a strict reader sees, so a load must give exactly
    the original (and the safetensors package must read the file too).
    """
    (length,) = struct.unpack("<Q", original.data[:8])
    text = original.data[8 : 8 + length].rstrip(b" ")
    body = original.data[8 + length :]
    if edit == "prefix":
        text = data.draw(st.sampled_from([b" ", b"\n", b"\xef\xbb\xbf", b"\x00", b"\t "])) + text
    elif edit == "padding":
        filler = data.draw(st.sampled_from([b"\t", b"\n", b"\r", b"\x00", b"x", b"\x80", b" }"]))
        text += filler * data.draw(st.integers(1, 9))
    elif edit == "no-padding":
        text += b" " * data.draw(st.integers(0, 6))
    elif edit == "bad-utf8":
        position = data.draw(st.integers(1, len(text) - 2))
        garbage = data.draw(
            st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"])
        )
        text = text[:position] + garbage + text[position:]
    elif edit in ("raw-token", "duplicate-key", "deep-metadata"):
        header = tree(json.loads(text))
        if edit == "raw-token":  # a value in the tensor entries or the metadata
            entry = data.draw(st.sampled_from([pair[1] for pair in header]))
            slot = data.draw(st.integers(0, len(entry) - 1))
            entry[slot][1] = Raw(data.draw(st.sampled_from(RAW_TOKENS)))
        elif edit == "duplicate-key":  # the same entry twice, or a second checksum
            container = data.draw(st.sampled_from([header, header[0][1]]))
            index = data.draw(st.integers(0, len(container) - 1))
            container.insert(data.draw(st.integers(0, len(container))), list(container[index]))
        else:
            depth = data.draw(st.sampled_from([10, 500, 990, 5000, DEEP]))
            header.append(["__metadata__", Raw("[" * depth + "]" * depth)])
        text = dump(header).encode("utf-8")
    candidate = with_header(text, body, pad=False)
    load_checked(candidate, original)


@fuzz(original=originals(), data=st.data())
def test_metadata_documents(original, data):
    """The JSON inside the metadata (plan, buffers, model): edited as trees or as text.

    The checksum is recomputed, so every change reaches the plan parser, the
    buffer check and the loader's consistency checks.
    """
    header, body = header_of(original.data)
    metadata = header["__metadata__"]
    field = data.draw(st.sampled_from(sorted(k for k in metadata if k != "checksum")))
    value = metadata[field]
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if document is not None and data.draw(st.integers(0, 3)) > 0:
        value = dump(mutate(data.draw, tree(document), steps=3))
    elif value:
        position = data.draw(st.integers(0, len(value) - 1))
        value = value[:position] + data.draw(st.text(max_size=3)) + value[position + 1 :]
    metadata[field] = value
    text = json.dumps(header, ensure_ascii=False).encode("utf-8")
    load_checked(reseal(with_header(text, body)), None)


@fuzz(original=originals(described=False), data=st.data())
def test_tensor_replacement(original, data):
    """Rings and extras replaced by tensors of any dtype, shape and value, or renamed.

    Rings of the wrong size or an integer dtype, NaN and infinite rings, a
    missing or unknown ring, tensors outside ``rings/`` and ``extras/``, buffer
    names without an extra; the checksum always matches.
    """
    tensors = {ringfile.RING_PREFIX + k: v for k, v in original.rings.items()}
    tensors |= {ringfile.EXTRA_PREFIX + k: v for k, v in original.extras.items()}
    for _ in range(data.draw(st.integers(1, 3))):
        operation = data.draw(st.sampled_from(["replace", "remove", "add", "rename"]))
        name = data.draw(st.sampled_from(sorted(tensors))) if tensors else None
        if operation in ("replace", "add"):
            kind = data.draw(st.sampled_from(sorted(safetensors_io.DTYPES)))
            shape = tuple(data.draw(st.lists(st.integers(0, 13), max_size=2)))
            array = data.draw(arrays(safetensors_io.DTYPES[kind].newbyteorder("="), shape))
            if operation == "add" or name is None:
                prefix = data.draw(st.sampled_from(["rings/", "extras/", "", "other/", "rings"]))
                name = prefix + data.draw(st.text(max_size=6))
            tensors[name] = array
        elif operation == "remove" and name is not None:
            del tensors[name]
        elif operation == "rename" and name is not None:
            new = data.draw(st.sampled_from(["rings/", "extras/", ""])) + name.split("/", 1)[-1]
            tensors[new] = tensors.pop(name)
    if "__metadata__" in tensors:
        return
    buffers = list(original.buffers)
    if data.draw(st.booleans()):
        buffers.append(data.draw(st.text(max_size=4)))
    plan_json = original.plan.to_json()
    metadata = {
        "format": ringfile.FORMAT,
        "spec": original.plan.spec,
        "plan": plan_json,
        "buffers": json.dumps(buffers),
        "checksum": ringfile.checksum(plan_json, tensors, buffers),
    }
    load_checked(safetensors_io.encode(tensors, metadata), None)


huge_dims = st.sampled_from([2**31, 2**32, 2**40, 2**61, 2**62 - 1, 2**62, 2**63, 10**12]) | (
    st.integers(0, 2**64)
)


@fuzz(
    shape=st.lists(huge_dims | st.integers(0, 8), min_size=1, max_size=4),
    dtype=st.sampled_from([*safetensors_io.DTYPES, *EDGES["dtype"][-5:-3]]),
    begin=st.sampled_from([0, 8]) | st.integers(0, 2**64),
    span=st.none() | st.integers(0, 2**64),
    body=st.integers(0, 64),
    ring=st.booleans(),
)
def test_size_claims(shape, dtype, begin, span, body, ring):
    """A tensor that claims gigabytes to exabytes behind a short file: no allocation, an error."""
    plan = rpgcore.Plan.build({"w": (2, 2)}, ring_size=3)
    itemsize = safetensors_io.DTYPES[dtype].itemsize if dtype in safetensors_io.DTYPES else 2
    count = 1
    for dim in shape:
        count *= dim
    end = begin + (count * itemsize if span is None else span)
    name = "rings/global" if ring else "extras/bomb"
    header = {
        "__metadata__": {"format": ringfile.FORMAT, "spec": plan.spec, "plan": plan.to_json()}
    }
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
    text = json.dumps(header).encode()
    data = with_header(text, bytes(body))
    path = write(data)
    outcome = bounded(lambda: ringfile.load_file(path), len(data))
    check_error(outcome, RingFileError)


def test_edits_keep_objects_apart():
    """The tree helpers write what they read, and Obj keeps a repeated key."""
    document = {"a": [1, {"b": None}], "c": "x"}
    assert json.loads(dump(tree(document))) == document
    assert dump(Obj([["k", 1], ["k", 2]])) == '{"k":1,"k":2}'
