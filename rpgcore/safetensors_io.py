"""The safetensors container, through the ``safetensors`` package, with rpgcore's checks.

The format (https://github.com/huggingface/safetensors): an 8-byte
little-endian unsigned header length ``n``, ``n`` bytes of UTF-8 JSON (padded
with spaces), then the raw little-endian, row-major tensor bytes. The header
maps each tensor name to ``{"dtype", "shape", "data_offsets"}`` (offsets
relative to the start of the data) and may hold ``"__metadata__"``, a
string-to-string mapping.

The ``safetensors`` package reads the tensors (imported on first use, so
``import rpgcore`` stays light). rpgcore writes the container itself: the
package (0.8) writes ``__metadata__`` in a random order on every save
(huggingface/safetensors issue 584), and a ring file must be the same bytes
every time its content is the same (resumed runs end with byte-identical
files; checksums of files can be recorded). Before the package reads
anything, rpgcore checks the header itself: as strict JSON (no repeated
keys, ``NaN`` or numbers beyond a double: :mod:`rpgcore._json`, where JSON
readers disagree on the meaning), with every dtype, shape and offset
validated, so a damaged file raises a specific :mod:`rpgcore.errors`
exception naming what is wrong instead of returning wrong data. Reading
never executes code (no pickle).

Example:
    >>> import io
    >>> import numpy as np
    >>> data = encode({"x": np.arange(3, dtype=np.float32)}, {"note": "hi"})
    >>> tensors, metadata = decode(data)
    >>> tensors["x"].tolist(), metadata
    ([0.0, 1.0, 2.0], {'note': 'hi'})

"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rpgcore import _json as strict_json
from rpgcore._json import reason, shown
from rpgcore.errors import RingDtypeError, RingFileFormatError, RingFileTruncatedError

__all__ = ["DTYPES", "MAX_DIMENSIONS", "MAX_HEADER", "decode", "encode", "encode_header"]

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"),
    "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
"""safetensors dtype names that numpy can hold, with their little-endian dtype."""

_NAMES = {(dtype.kind, dtype.itemsize): name for name, dtype in DTYPES.items()}
MAX_HEADER = 100_000_000
"""Largest header accepted, as the safetensors package does."""


def dtype_name(dtype: np.dtype[Any]) -> str:
    """The safetensors name of a numpy dtype.

    Args:
        dtype: a numpy dtype.

    Returns:
        For example ``"F32"``.

    Raises:
        RingDtypeError: safetensors has no such dtype.

    Example:
        >>> dtype_name(np.dtype(np.int8))
        'I8'

    """
    try:
        return _NAMES[(dtype.kind, dtype.itemsize)]
    except KeyError:
        raise RingDtypeError(
            f"dtype {dtype} cannot be stored in a ring file; convert it to one of "
            f"{', '.join(str(d) for d in DTYPES.values())}"
        ) from None


def encode_header(
    tensors: Mapping[str, NDArray[Any]], metadata: Mapping[str, str]
) -> tuple[bytes, list[NDArray[Any]]]:
    """Build the length prefix plus header, and the tensors in data order.

    Args:
        tensors: name to array.
        metadata: string to string.

    Returns:
        ``(prefix_and_header, arrays)``: write the bytes, then each array's bytes.

    Raises:
        RingDtypeError: an array has a dtype safetensors cannot hold.

    Example:
        >>> head, arrays = encode_header({"a": np.zeros(2, np.int8)}, {})
        >>> len(head) % 8, len(arrays)
        (0, 1)

    """
    if "__metadata__" in tensors:
        raise RingFileFormatError("a tensor cannot be named '__metadata__'; rename it")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise RingFileFormatError("safetensors metadata must map strings to strings")
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    arrays = []
    offset = 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name], order="C")  # keeps 0-d arrays 0-d
        kind = dtype_name(array.dtype)
        array = array.astype(DTYPES[kind], copy=False)  # little-endian on every host
        header[name] = {
            "dtype": kind,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
        arrays.append(array)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(len(text) + 8) % 8)
    return struct.pack("<Q", len(text)) + text, arrays


def encode(tensors: Mapping[str, NDArray[Any]], metadata: Mapping[str, str]) -> bytes:
    """Encode tensors and metadata as safetensors bytes.

    Args:
        tensors: name to array.
        metadata: string to string.

    Returns:
        The whole file's bytes.

    Example:
        >>> len(encode({}, {})) >= 8
        True

    """
    head, arrays = encode_header(tensors, metadata)
    return head + b"".join(array.tobytes() for array in arrays)


MAX_DIMENSIONS = 32
"""Most dimensions a tensor may have (numpy's own limit is 64)."""


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _header(data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], int]:
    if len(data) < 8:
        raise RingFileTruncatedError(
            f"the file has {len(data)} bytes, fewer than the 8-byte header length"
        )
    (length,) = struct.unpack("<Q", bytes(data[:8]))
    if length > MAX_HEADER:
        raise RingFileFormatError(
            f"header length {length} is implausible: this is not a safetensors file"
        )
    if 8 + length > len(data):
        raise RingFileTruncatedError(
            f"the header announces {length} bytes but the file has {len(data) - 8}"
        )
    try:
        header = strict_json.parse(bytes(data[8 : 8 + length]))
    except ValueError as error:  # UnicodeDecodeError too
        raise RingFileFormatError(
            f"the header is not UTF-8 JSON ({reason(error)}): this is not a safetensors file"
        ) from None
    except RecursionError:
        raise RingFileFormatError(
            "the header is not UTF-8 JSON (nested too deeply): this is not a safetensors file"
        ) from None
    if not isinstance(header, dict):
        raise RingFileFormatError("the header is not a JSON object: this is not a safetensors file")
    return header, 8 + length


def decode(data: bytes | bytearray | memoryview) -> tuple[dict[str, NDArray[Any]], dict[str, str]]:
    """Decode safetensors bytes, validating every entry.

    Args:
        data: the file's bytes.

    Returns:
        ``(tensors, metadata)``; the arrays are the package's (writable, in
        the host's byte order).

    Raises:
        RingFileTruncatedError: the data ends before what the header announces.
        RingFileFormatError: not a safetensors file, or inconsistent offsets.
        RingDtypeError: a dtype numpy cannot hold (for example ``BF16``).

    Example:
        >>> decode(encode({"t": np.ones((2, 2), np.float64)}, {}))[0]["t"].shape
        (2, 2)

    """
    header, start = _header(data)
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise RingFileFormatError("__metadata__ must map strings to strings")
    size = len(data) - start
    entries = []
    for name, entry in header.items():
        try:
            kind, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            if not (
                isinstance(kind, str)
                and isinstance(shape, list)
                and len(shape) <= MAX_DIMENSIONS
                and all(_is_count(d) for d in shape)
                and _is_count(begin)
                and _is_count(end)
            ):
                raise TypeError
        except (KeyError, TypeError, ValueError):
            raise RingFileFormatError(
                f"tensor {shown(name)} has a malformed header entry {shown(entry)}: give it "
                "a dtype name, a shape of at most 32 counts and two data offsets"
            ) from None
        if kind not in DTYPES:
            raise RingDtypeError(
                f"tensor {shown(name)} has dtype {shown(kind)}, which rpgcore cannot read with "
                "numpy; save it as F16, F32 or F64"
            )
        if math.prod(max(dim, 1) for dim in shape) * DTYPES[kind].itemsize >= 2**62:
            raise RingFileFormatError(f"tensor {shown(name)} has an impossible shape {shape}")
        if end - begin != math.prod(shape) * DTYPES[kind].itemsize or begin > end:
            raise RingFileFormatError(
                f"tensor {shown(name)}: offsets [{begin}, {end}) do not match its shape {shape}"
            )
        entries.append((begin, end, name, kind, shape))
    entries.sort()
    cursor = 0
    for begin, end, name, _, _ in entries:
        if begin != cursor:
            raise RingFileFormatError(
                f"tensor {shown(name)} starts at {begin}, expected {cursor}: holes or overlaps"
            )
        cursor = end
    if cursor > size:
        raise RingFileTruncatedError(
            f"the tensors need {cursor} bytes of data but the file has {size}"
        )
    if cursor < size:
        raise RingFileFormatError(f"{size - cursor} unexpected bytes after the last tensor")
    return _arrays(data, entries), dict(metadata)


def _arrays(
    data: bytes | bytearray | memoryview, entries: list[tuple[int, int, str, str, list[int]]]
) -> dict[str, NDArray[Any]]:
    """The tensors, read by the ``safetensors`` package from a header rpgcore has checked."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        loaded = load(bytes(data))
    except SafetensorError as error:  # what the checks above let through, the package refuses
        raise RingFileFormatError(
            f"the safetensors package cannot read the file ({error})"
        ) from None
    tensors = {}
    for _, _, name, kind, shape in entries:
        array = loaded[name]
        if array.dtype != DTYPES[kind] or list(array.shape) != shape:  # pragma: no cover - a bug
            raise RingFileFormatError(
                f"tensor {shown(name)} reads back as {array.dtype}{array.shape}"
            )
        tensors[name] = array.astype(DTYPES[kind].newbyteorder("="), copy=False)
    return tensors
