"""Settings, strategies, bounds and oracles shared by the fuzz tests (tests/test_fuzz_*.py).

Every fuzz example hands damaged or hostile input to a reader (``rpgcore.load``,
``ringfile.load_file``, ``Plan.from_json``, ``porting.read``) and must end in one
of two ways: a load whose data is exactly right, or an rpgcore exception with a
short, non-empty message. :func:`bounded` enforces the rest around each call:

- time: the hypothesis deadline fails any example slower than 2 s (the inputs are
  a few kilobytes and load in milliseconds), and an alarm after 20 s turns a
  Python-level hang into a failure with a traceback;
- memory: tracemalloc's peak (numpy's arrays included) must stay below
  ``16 MiB + 64 * input bytes``. The loader holds the file once and hands out
  views of it; parsing JSON makes Python objects, at most a few dozen bytes per
  byte of text (``[{},{},...]`` costs 72 bytes of dict and pointer per 3 bytes).
  A file that claims a tensor or a plan of gigabytes must fail long before it.

How many examples each test runs comes from ``RPG_FUZZ_EXAMPLES`` (examples per
fuzz test). Unset, the suite runs ``CI_EXAMPLES`` per test with a fixed example
sequence (derandomized, no database), about 2,000 in all; set, it is a campaign
with fresh random examples (``nox -s fuzz``). The number tried is printed at
the end of the pytest run (tests/conftest.py).
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import os
import shutil
import signal
import struct
import tempfile
import threading
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rpgcore
from rpgcore import porting, ringfile, safetensors_io
from rpgcore.errors import PlanError, RingFileError, RpgError

EXAMPLES_VARIABLE = "RPG_FUZZ_EXAMPLES"
CI_EXAMPLES = 170
"""Examples per fuzz test in the normal run: 12 fuzz tests, about 2,000 examples."""
EXAMPLES = int(os.environ.get(EXAMPLES_VARIABLE) or CI_EXAMPLES)
CAMPAIGN = bool(os.environ.get(EXAMPLES_VARIABLE))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=2),
    database=None,
    derandomize=not CAMPAIGN,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

MEMORY_FLOOR = 16 * 2**20
MEMORY_PER_BYTE = 64
HANG_SECONDS = 20
MAX_MESSAGE = 2000
"""Longest error message accepted: values in messages are shortened, the path is short."""

TRIED: Counter[str] = Counter()
"""Examples run, by test name; tests/conftest.py prints the total."""

_FOLDER = Path(
    tempfile.mkdtemp(prefix="rpg-fuzz-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
)
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)


# --------------------------------------------------------------------------- bounds


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so no ``except Exception`` can swallow it."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"the call ran for more than {HANG_SECONDS} s")


def fuzz(*strategies: Any, **named: Any) -> Callable[[Callable[..., None]], Any]:
    """``@settings(FUZZ) @given(...)``, counting every example run in :data:`TRIED`."""

    def decorate(test: Callable[..., None]) -> Any:
        @functools.wraps(test)
        def counted(*args: Any, **kwargs: Any) -> None:
            TRIED[test.__name__] += 1
            test(*args, **kwargs)

        return FUZZ(given(*strategies, **named)(counted))

    return decorate


def bounded(call: Callable[[], Any], size: int) -> Any:
    """Run ``call`` under the time and memory bounds; return its result or its exception.

    ``size`` is the input's size in bytes.
    """
    limit = MEMORY_FLOOR + MEMORY_PER_BYTE * size
    alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    tracing = tracemalloc.is_tracing()
    if tracing:
        tracemalloc.reset_peak()
    else:
        tracemalloc.start()
    if alarm:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        try:
            outcome = call()
        except Exception as error:  # every exception type is judged by the caller
            outcome = error
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1]
        if not tracing:
            tracemalloc.stop()
    assert peak <= limit, f"the call allocated {peak:,} bytes for {size:,} bytes of input"
    return outcome


def check_error(outcome: object, kind: type[RpgError] = RpgError) -> None:
    """``outcome`` must be an rpgcore exception of ``kind`` with a short, non-empty message."""
    if not isinstance(outcome, kind):
        if isinstance(outcome, BaseException):
            raise AssertionError(
                f"{type(outcome).__name__} escaped instead of {kind.__name__}: {outcome}"
            ) from outcome
        raise AssertionError(f"expected {kind.__name__}, got {outcome!r}")
    message = str(outcome)
    assert message.strip(), f"{type(outcome).__name__} without a message"
    assert len(message) <= MAX_MESSAGE, f"a message of {len(message)} characters: {message[:300]}"


def write(data: bytes, name: str = "case.safetensors") -> Path:
    path = _FOLDER / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- valid files


@dataclass(frozen=True)
class Original:
    """A valid ring file and what loading it must give."""

    plan: rpgcore.Plan
    rings: dict[str, np.ndarray]
    extras: dict[str, np.ndarray]
    buffers: tuple[str, ...]
    model: str | None
    data: bytes
    described: tuple[porting.Tensor, ...] = ()
    layers: tuple[porting.Layer, ...] = ()


def ring_file_bytes(
    plan: rpgcore.Plan,
    rings: dict[str, np.ndarray],
    extras: dict[str, np.ndarray],
    buffers: tuple[str, ...] = (),
    model: str | None = None,
) -> bytes:
    """The bytes ``rpgcore.save`` writes, without the disk (test_fuzz_regressions checks it)."""
    tensors = ringfile._collect(plan, rings, extras)
    state = ringfile._check_buffers(buffers, extras)
    plan_json = plan.to_json()
    metadata = {
        "format": ringfile.FORMAT,
        "spec": plan.spec,
        "plan": plan_json,
        "buffers": json.dumps(state),
        **({} if model is None else {"model": model}),
        "rpgcore": rpgcore.__version__,
        "checksum": ringfile.checksum(plan_json, tensors, state, model),
    }
    return safetensors_io.encode(tensors, metadata)


names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=8,
)
FLOAT_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}


@st.composite
def arrays(draw: st.DrawFn, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Any bit pattern (NaN payloads, infinities, subnormals, -0.0, any bool byte but 0/1)."""
    count = int(np.prod(shape, dtype=np.int64))
    raw = draw(st.binary(min_size=count * dtype.itemsize, max_size=count * dtype.itemsize))
    array = np.frombuffer(raw, dtype=dtype).copy().reshape(shape)
    if dtype.kind == "b":
        array = array.view(np.uint8).astype(bool)  # numpy bools are 0 or 1
    return array


@st.composite
def originals(draw: st.DrawFn, *, described: bool | None = None) -> Original:
    """A small valid ring file: 1-3 rings, 1-5 slots, extras of every dtype, buffers, a model."""
    ring_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    slot_names = draw(st.lists(names, min_size=len(ring_names), max_size=5, unique=True))
    groups = {
        slot: ring_names[i] if i < len(ring_names) else draw(st.sampled_from(ring_names))
        for i, slot in enumerate(slot_names)
    }
    shapes = {
        slot: tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
        for slot in slot_names
    }
    sizes = {ring: draw(st.integers(1, 12)) for ring in ring_names}
    plan = rpgcore.Plan.build(
        shapes,
        ring_size=sizes,
        groups=groups,
        seed=draw(st.integers(0, 2**64 - 1)),
        mode=draw(st.sampled_from(rpgcore.spec.MODES)),
        scaling=draw(st.sampled_from(("fan_out", "none"))),
    )
    rings = {
        ring: draw(arrays(np.dtype(draw(st.sampled_from(list(FLOAT_DTYPES.values())))), (size,)))
        for ring, size in sizes.items()
    }
    extras = {}
    for name in draw(st.lists(names, max_size=3, unique=True)):
        dtype = safetensors_io.DTYPES[draw(st.sampled_from(sorted(safetensors_io.DTYPES)))]
        shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
        extras[name] = draw(arrays(dtype.newbyteorder("="), shape))
    buffers = tuple(sorted(draw(st.sets(st.sampled_from(sorted(extras)))) if extras else ()))
    tensors: tuple[porting.Tensor, ...] = ()
    layers: tuple[porting.Layer, ...] = ()
    model = None
    if described is None:
        described = draw(st.booleans())
    if described:
        tensors = tuple(
            porting.Tensor(
                name,
                draw(names),
                draw(st.sampled_from(porting.KINDS)),
                draw(st.sampled_from(porting.ROLES)),
                extras[name].shape,
                name in buffers,
            )
            for name in extras
        )
        layers = tuple(
            porting.Layer(draw(names), draw(st.sampled_from(porting.KINDS)), draw(settings_values))
            for _ in range(draw(st.integers(0, 2)))
        )
        model = porting.describe(tensors, layers)
    data = ring_file_bytes(plan, rings, extras, buffers, model)
    return Original(plan, rings, extras, buffers, model, data, tensors, layers)


settings_values = st.dictionaries(
    st.sampled_from(["eps", "momentum", "stride", "groups", "padding"]),
    st.one_of(
        st.none(),
        st.integers(0, 4),
        st.floats(1e-6, 1.0),
        st.lists(st.integers(0, 3), max_size=2),
        st.just("same"),
    ),
    max_size=3,
)


# --------------------------------------------------------------------------- JSON trees
# A mutable JSON tree in which objects are lists of [key, value] pairs (so that a key
# can appear twice) and Raw holds text written as it is (NaN, 1e999, deep nesting).


class Obj(list):  # type: ignore[type-arg]
    """A JSON object as a list of [key, value] pairs, in order, duplicates allowed."""


@dataclass(frozen=True)
class Raw:
    text: str


def tree(value: Any) -> Any:
    """A parsed JSON value as a mutable tree (objects as :class:`Obj`)."""
    if isinstance(value, Obj | Raw):
        return value
    if isinstance(value, dict):
        return Obj([[key, tree(item)] for key, item in value.items()])
    if isinstance(value, list):
        return [tree(item) for item in value]
    return value


def dump_key(key: str | Raw) -> str:
    return key.text if isinstance(key, Raw) else json.dumps(key)


def dump(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        return "{" + ",".join(dump_key(k) + ":" + dump(v) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(item) for item in value) + "]"
    return json.dumps(value)


DEEP = 100_000
HALF_SURROGATE = Raw('"\\ud800"')
RAW_TOKENS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1e-999",
    "1" * 5000,
    "9" * 4300,
    "-" + "9" * 4301,
    "1" + "0" * 400 + ".5",
    "[" * DEEP + "]" * DEEP,
    '{"a":' * 2000 + "0" + "}" * 2000,
    "[" * 980 + "]" * 980,
    '"\\ud800"',
    '"x\\udfff"',
    '"\\ud83d\\ude00"',
    '{"a":1,"a":1}',
    '{"name":"a","name":"b"}',
    "01",
    "-0",
    "1.0e+2",
    "2E-1",
    '"\\u0000"',
]
"""JSON text (and near-JSON) that readers disagree on or that stresses them."""

EDGES: dict[str, list[Any]] = {
    "seed": [-1, 0, 2**63, 2**64 - 1, 2**64, 10**30, 1.0, 1e19, True, None, "7"],
    "id": [-1, 0, 2**32 - 1, 2**32, 1.5, True, None],
    "size": [0, 1, 2**31, 2**31 + 1, 10**12, -5, 7.0, True, None],
    "init_std": [0, -1.0, 5e-324, 1e308, 1, 2**1100, "1.0", True, None],
    "scale": [0, -1.0, 5e-324, 1e308, 1, 2**1100, "1.0", True, None],
    "shape": [
        [2**31, 2**31],
        [10**15],
        [10**5, 10**5, 10**5],
        [2**20, 2**20],
        [2**62],
        [2**62 + 1],
        [2**64],
        [0],
        [-1],
        [1.5],
        [True],
        [None],
        [],
        [1] * 33,
        [[2]],
        3,
        "3",
        {"0": 3},
    ],
    "mode": [*rpgcore.spec.MODES, "PERM", "perm sign", "", None, ["perm"]],
    "spec": ["rpg-v1", "rpg-v2", "rpg-v0", "RPG-V1", "", None, 1, ["rpg-v1"]],
    "name": ["", "\x00", "a\x00b", "global", "rings/x", 5, None, "x" * 3000],
    "ring": ["", "global", "nope", 0, None],
    "dtype": [*safetensors_io.DTYPES, "BF16", "F8_E4M3", "C64", "f32", "", None, 3],
    "data_offsets": [
        [0, 0],
        [0, 2**64],
        [-1, 3],
        [5, 3],
        [0, 10**12],
        [2**62, 2**62 + 4],
        [0],
        [0, 1, 2],
        [0.0, 4.0],
        "0,4",
        None,
    ],
    "format": ["rpgcore-ring", "rpgcore-model-1", "", "pt", None, 1, HALF_SURROGATE],
    "checksum": ["", "sha256:", "sha256:" + "0" * 64, "md5:00", None, 1, HALF_SURROGATE],
    "plan": ["{}", "", "null", "[]", HALF_SURROGATE, Raw('"{\\"spec\\":\\"\\ud800\\"}"')],
    "rpgcore": ["0.1.0", "", "9.9.9", HALF_SURROGATE, Raw('"\\u0000"')],
    "model": ["", "{}", "null", HALF_SURROGATE],
    "buffers": ["[]", "[1]", '["a","a"]', "{}", "", "null", '["' + "b" * 3000 + '"]'],
    "tensors": [[], [[]], [["a", "b", "conv", "weight", "extra"]], {}, None],
    "layers": [[], [["a", "norm"]], [["a", "norm", []]], [["a", "bogus", {}]], None],
}
"""Values that sit on or just past a boundary, by the key they are stored under."""

KEYS: list[str | Raw] = [
    *EDGES,
    Raw('"rings/global\\ud800"'),
    Raw('"extras/\\udfff"'),
    Raw('"\\u0000"'),
    Raw('"__metadata\\u005f_"'),
    "layout",
    "scope",
    "offset",
    "generated",
    "__metadata__",
    "rings/global",
    "extras/x",
    "rpgcore",
    "model",
    "plan",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
wild = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6), children, max_size=4).map(tree)
    ),
    max_leaves=12,
)
"""Any JSON value."""


def _slots(root: Any) -> list[tuple[Any, int]]:
    """Every (container, index) in the tree: pairs of objects and items of lists."""
    found: list[tuple[Any, int]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, Obj):
            for i, pair in enumerate(node):
                found.append((node, i))
                stack.append(pair[1])
        elif isinstance(node, list):
            for i, item in enumerate(node):
                found.append((node, i))
                stack.append(item)
    return found


def _key_of(container: Any, index: int) -> str | None:
    return container[index][0] if isinstance(container, Obj) else None


def _value(draw: st.DrawFn, key: str | None) -> Any:
    choice = draw(st.integers(0, 9))
    if key in EDGES and choice < 5:
        return tree(copy.deepcopy(draw(st.sampled_from(EDGES[key]))))
    if choice < 7:
        return draw(wild)
    return Raw(draw(st.sampled_from(RAW_TOKENS)))


def mutate(draw: st.DrawFn, root: Any, steps: int = 3) -> Any:
    """Apply 1 to ``steps`` random edits to a copy of a JSON tree and return it."""
    root = copy.deepcopy(root)
    for _ in range(draw(st.integers(1, steps))):
        slots = _slots(root)
        containers = [root, *[c[i] if not isinstance(c, Obj) else c[i][1] for c, i in slots]]
        containers = [c for c in containers if isinstance(c, list)]
        operation = draw(st.sampled_from(["set", "set", "set", "delete", "add", "copy", "swap"]))
        if operation in ("set", "delete", "copy") and slots:
            container, index = draw(st.sampled_from(slots))
            key = _key_of(container, index)
            if operation == "set":
                if isinstance(container, Obj):
                    container[index][1] = _value(draw, key)
                else:
                    container[index] = _value(draw, None)
            elif operation == "delete":
                del container[index]
            else:  # a second copy: a repeated key, ring, slot or name
                container.insert(
                    draw(st.integers(0, len(container))), copy.deepcopy(container[index])
                )
        elif operation == "add" and containers:
            container = draw(st.sampled_from(containers))
            if isinstance(container, Obj):
                key = draw(st.sampled_from(KEYS) | st.text(max_size=6))
                if isinstance(key, Raw):  # a key written as escaped text
                    container.insert(
                        draw(st.integers(0, len(container))), [key, _value(draw, None)]
                    )
                    continue
                container.insert(draw(st.integers(0, len(container))), [key, _value(draw, key)])
            else:
                container.insert(draw(st.integers(0, len(container))), _value(draw, None))
        elif operation == "swap" and containers:
            container = draw(st.sampled_from(containers))
            if len(container) >= 2:
                i, j = draw(st.lists(st.integers(0, len(container) - 1), min_size=2, max_size=2))
                container[i], container[j] = container[j], container[i]
    return root


# --------------------------------------------------------------------------- files


def header_of(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A valid file's header (as Python's json reads it) and its tensor bytes."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def with_header(text: bytes, body: bytes, *, pad: bool = True) -> bytes:
    """Header text and tensor bytes as a file, with the right header length."""
    if pad:
        text += b" " * (-(len(text) + 8) % 8)
    return struct.pack("<Q", len(text)) + text + body


def reseal(data: bytes) -> bytes:
    """Recompute the checksum of a file whose header decodes, so a change reaches deep checks.

    Files the decoder rejects, or whose metadata cannot hold a checksum, come back as they are.
    """
    try:
        tensors, metadata = safetensors_io.decode(data)
    except RpgError:
        return data
    plan_json = metadata.get("plan")
    if not isinstance(plan_json, str) or "checksum" not in metadata:
        return data
    try:
        state = ringfile.buffer_names(metadata)
        digest = ringfile.checksum(plan_json, tensors, state, metadata.get("model"))
    except RpgError:
        return data
    (length,) = struct.unpack("<Q", data[:8])
    text = data[8 : 8 + length]
    old = json.dumps(metadata["checksum"]).encode()
    if text.count(old) != 1:
        return data
    return with_header(
        text.rstrip(b" ").replace(old, json.dumps(digest).encode()), data[8 + length :]
    )


# --------------------------------------------------------------------------- oracles


def assert_same_array(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same shape, same dtype (native order) and the same bits, NaN payloads included."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype.newbyteorder("="), (actual.dtype, expected.dtype)
    assert actual.tobytes() == expected.astype(expected.dtype.newbyteorder("=")).tobytes()


def assert_original(content: ringfile.RingFile, original: Original) -> None:
    """A damaged copy of ``original`` loaded: it must load exactly as the original."""
    assert content.plan == original.plan
    assert sorted(content.rings) == sorted(original.rings)
    for name, ring in original.rings.items():
        assert_same_array(content.rings[name], ring)
    assert sorted(content.extras) == sorted(original.extras)
    for name, value in original.extras.items():
        assert_same_array(content.extras[name], value)
    assert content.buffers == original.buffers
    assert content.model == original.model


def assert_faithful(content: ringfile.RingFile, path: Path) -> None:
    """A changed file loaded: its contents must be what the file says, read independently.

    The tensors and metadata are read again by the safetensors package (Rust,
    serde_json), the plan JSON by Python's json module; rpgcore must agree with
    both, and must not accept what the safetensors package refuses.
    """
    try:
        with safetensors.safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as error:
        raise AssertionError(f"rpgcore loaded a file that safetensors rejects: {error}") from error
    assert metadata.get("format") == ringfile.FORMAT
    assert set(metadata) <= ringfile.METADATA_KEYS
    assert metadata["spec"] == content.plan.spec
    assert json.loads(metadata["plan"]) == json.loads(content.plan.to_json())
    assert rpgcore.Plan.from_json(content.plan.to_json()) == content.plan
    assert content.plan.generated_size <= rpgcore.plan.max_generated()
    assert set(tensors) == {ringfile.RING_PREFIX + name for name in content.rings} | {
        ringfile.EXTRA_PREFIX + name for name in content.extras
    }
    for name, ring in content.rings.items():
        assert ring.dtype.kind == "f"
        assert ring.shape == (content.plan.ring(name).size,)
        assert_same_array(ring, tensors[ringfile.RING_PREFIX + name])
    for name, value in content.extras.items():
        assert_same_array(value, tensors[ringfile.EXTRA_PREFIX + name])
    buffers = json.loads(metadata.get("buffers", "[]"))
    assert content.buffers == tuple(sorted(buffers))
    assert len(set(buffers)) == len(buffers)
    assert set(content.buffers) <= set(content.extras)
    assert content.model == metadata.get("model")
    expected = ringfile.checksum(metadata["plan"], tensors, buffers, metadata.get("model"))
    assert metadata["checksum"] == expected


def load_checked(data: bytes, original: Original | None) -> ringfile.RingFile | None:
    """Load ``data`` under the bounds: an exact load, or a RingFileError with a good message.

    A load must give what an independent reading of the file gives and, with
    ``original`` (the bytes are a damaged copy of it, never resealed), exactly
    the original.
    """
    path = write(data)
    outcome = bounded(lambda: ringfile.load_file(path), len(data))
    if isinstance(outcome, ringfile.RingFile):
        if original is not None:
            assert_original(outcome, original)
        assert_faithful(outcome, path)
        return outcome
    check_error(outcome, RingFileError)
    return None


def plan_checked(text: str | bytes) -> rpgcore.Plan | None:
    """``Plan.from_json`` under the bounds: a plan that means what the text says, or a PlanError."""
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    outcome = bounded(lambda: rpgcore.Plan.from_json(text), size)
    if isinstance(outcome, rpgcore.Plan):
        assert json.loads(text) == json.loads(outcome.to_json())
        assert rpgcore.Plan.from_json(outcome.to_json()) == outcome
        assert outcome.generated_size <= rpgcore.plan.max_generated()
        return outcome
    check_error(outcome, PlanError)
    return None


def warm_up() -> None:
    """One load before the examples, so that the first example pays no import or cache costs."""
    plan = rpgcore.Plan.build({"w": (2, 2)}, ring_size=3)
    data = ring_file_bytes(plan, {"global": np.zeros(3, np.float32)}, {})
    assert load_checked(data, None) is not None
