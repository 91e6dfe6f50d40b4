"""The portable ring file: plan, ring(s) and extra tensors in one safetensors file.

Layout (see ``docs/ringfile.md``):

- tensors ``rings/<ring name>``: the trained rings, 1-D, F16, F32 or F64;
- tensors ``extras/<name>``: any other tensor a model needs (biases,
  normalisation parameters and statistics, an excluded classifier head);
- metadata ``format`` = ``"rpgcore-ring"``, ``spec`` = the generator spec
  version, ``plan`` = the plan JSON (spec section 8), ``rpgcore`` = the
  writer's version, and ``checksum`` = ``"sha256:<hex>"`` over the plan and
  every tensor (name, dtype, shape and bytes).

Saving is atomic: the file is written under a temporary name in the same
folder, flushed, fsynced and renamed over the target, so a crash never leaves
a half-written file in place of a good one.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> import rpgcore
    >>> plan = rpgcore.Plan.build({"w": (4, 4)}, ring_size=5)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.rpg.safetensors")
    >>> rpgcore.save(path, plan, plan.init_ring(), extras={"bias": np.zeros(4)})
    >>> plan2, rings, extras = rpgcore.load(path)
    >>> plan2 == plan, rings["global"].shape, sorted(extras)
    (True, (5,), ['bias'])

"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rpgcore import _json as strict_json
from rpgcore import safetensors_io, spec
from rpgcore._atomic import checked_path, read_regular_file, write_atomically
from rpgcore._checks import as_array
from rpgcore._json import shown
from rpgcore._version import __version__
from rpgcore.errors import (
    ArgumentError,
    ChecksumError,
    PlanError,
    PlanMismatchError,
    RingDtypeError,
    RingFileError,
    RingFileFormatError,
    SpecVersionError,
)
from rpgcore.plan import Plan

__all__ = [
    "FORMAT",
    "RingFile",
    "buffer_names",
    "checksum",
    "load",
    "load_file",
    "read_metadata",
    "save",
    "training_record",
]

FORMAT = "rpgcore-ring"
RING_PREFIX = "rings/"
EXTRA_PREFIX = "extras/"
RING_DTYPES = frozenset({"F16", "F32", "F64"})
METADATA_KEYS = frozenset(
    {"format", "spec", "plan", "buffers", "model", "training", "rpgcore", "checksum"}
)
"""Every metadata key a ring file may hold; any other key is an error."""


def checksum(
    plan_json: str,
    tensors: Mapping[str, NDArray[Any]],
    buffers: Iterable[str] = (),
    model: str | None = None,
    training: str | None = None,
) -> str:
    """The ring file checksum: SHA-256 over the plan, the buffer names and every tensor.

    The digest covers, in order (strings in UTF-8, NUL the zero byte, names
    sorted by Unicode code point):

    - the plan JSON, then NUL;
    - the number of buffer names in decimal, then NUL, then each buffer name
      followed by NUL;
    - only when the file has one, the model description JSON, then NUL;
    - only when the file has one, the training record JSON, then NUL;
    - for each tensor: its name, NUL, its safetensors dtype, NUL, its shape
      as decimal integers joined by ``,`` (empty for a 0-d tensor), NUL, then
      its little-endian row-major bytes.

    Args:
        plan_json: the plan JSON text.
        tensors: the file's tensors under their full names.
        buffers: names of the extras that are not trainable.
        model: the model description JSON (see :mod:`rpgcore.porting`), if any.
        training: the training record JSON, if any.

    Returns:
        ``"sha256:<64 hex digits>"``.

    Example:
        >>> checksum("{}", {})[:7]
        'sha256:'

    """
    names = sorted(set(buffers))
    digest = hashlib.sha256(plan_json.encode("utf-8") + b"\0")
    digest.update(f"{len(names)}\0".encode())
    for name in names:
        digest.update(name.encode("utf-8") + b"\0")
    if model is not None:
        digest.update(model.encode("utf-8") + b"\0")
    if training is not None:
        digest.update(training.encode("utf-8") + b"\0")
    for name in sorted(tensors):
        array = np.asarray(tensors[name], order="C")  # keeps 0-d arrays 0-d
        kind = safetensors_io.dtype_name(array.dtype)
        shape = ",".join(str(dim) for dim in array.shape)
        digest.update(f"{name}\0{kind}\0{shape}\0".encode())
        # Hashed in place: a copy would double the memory a large ring needs.
        digest.update(array.astype(safetensors_io.DTYPES[kind], copy=False).data)
    return "sha256:" + digest.hexdigest()


def _collect(
    plan: Plan, rings: ArrayLike | Mapping[str, ArrayLike], extras: Mapping[str, ArrayLike] | None
) -> dict[str, NDArray[Any]]:
    if not isinstance(plan, Plan):
        raise ArgumentError(f"plan must be an rpgcore.Plan, got {type(plan).__name__}")
    if extras is not None and not isinstance(extras, Mapping):
        raise ArgumentError(
            f"extras must be a mapping of name to array, got {type(extras).__name__}"
        )
    tensors = {RING_PREFIX + name: array for name, array in plan.check_rings(rings).items()}
    for name, array in tensors.items():
        if safetensors_io.dtype_name(array.dtype) not in RING_DTYPES:
            raise RingDtypeError(
                f"{name} has dtype {array.dtype}; rings must be float16, float32 or float64"
            )
    for name, value in (extras or {}).items():
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"extra tensor names must be non-empty strings, got {name!r}")
        array = as_array(value, f"extra tensor {name!r}")
        try:  # fail before anything is written
            safetensors_io.dtype_name(array.dtype)
        except RingDtypeError as error:
            raise RingDtypeError(f"extra tensor {name!r}: {error}") from None
        tensors[EXTRA_PREFIX + name] = array
    return tensors


def _check_buffers(buffers: Iterable[str], extras: Mapping[str, Any]) -> list[str]:
    if isinstance(buffers, str) or not isinstance(buffers, Iterable):
        raise ArgumentError(
            f"buffers must be a list of extra names, got {type(buffers).__name__} {buffers!r}"
        )
    names = list(buffers)
    if not all(isinstance(name, str) for name in names):
        raise ArgumentError(f"buffers must hold extra names (strings), got {names!r}")
    unknown = sorted(name for name in set(names) if name not in extras)
    if unknown:
        raise ArgumentError(f"buffers {unknown} are not extras; list only names given in extras")
    return sorted(set(names))


def buffer_names(metadata: Mapping[str, str]) -> list[str]:
    """The names of the non-trainable extras recorded in a ring file's metadata.

    Args:
        metadata: the metadata, as :func:`read_metadata` returns it.

    Returns:
        Sorted extra names; empty for files that record none.

    Raises:
        RingFileFormatError: the ``buffers`` entry is not a JSON list of strings.

    Example:
        >>> buffer_names({"buffers": '["bn.running_mean"]'})
        ['bn.running_mean']

    """
    try:
        names = strict_json.parse(metadata.get("buffers", "[]"))
    except (ValueError, RecursionError):
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise RingFileFormatError(
            "the ring file's buffers entry is not a JSON list of names; rewrite it with "
            "rpgcore.save"
        )
    if len(set(names)) != len(names):
        raise RingFileFormatError(
            f"the ring file's buffers entry repeats names: {shown(names)}; rewrite it with "
            "rpgcore.save"
        )
    return sorted(names)


def save(
    path: str | os.PathLike[str],
    plan: Plan,
    rings: ArrayLike | Mapping[str, ArrayLike],
    extras: Mapping[str, ArrayLike] | None = None,
    *,
    buffers: Iterable[str] = (),
    model: str | None = None,
    training: Mapping[str, Any] | None = None,
) -> None:
    """Write a ring file atomically.

    Args:
        path: destination; an existing file is replaced only once the new one
            is safely on disk.
        plan: the plan the rings belong to.
        rings: one array for a single-ring plan, or ring name to array.
        extras: other tensors (name to array), stored under ``extras/``.
        buffers: names of the extras that are state, not trainable parameters
            (normalisation statistics, counters); ``rpgcore inspect`` leaves
            them out of the degrees of freedom.
        model: the model description (JSON text) that lets another framework
            match the extras to its own tensors; adapters write it with
            :func:`rpgcore.porting.save`.
        training: what the rings were trained on (JSON values: the dataset,
            its split seed, the model, ...); ``rpgcore evaluate`` reads it
            back as its defaults (:func:`training_record`).

    Raises:
        PlanMismatchError: rings missing, unknown or of the wrong size.
        RingDtypeError: a ring is not float16/32/64, or an extra has a dtype
            safetensors cannot hold.
        ArgumentError: ``plan`` is not a Plan, ``extras`` not a mapping, or
            ``buffers`` names something that is not an extra.
        RingFileError: the folder does not exist or the target is a folder.
        RingFileWriteError: writing failed (disk full, permissions); it is
            also an ``OSError``, and the previous file is kept.

    Example:
        >>> import tempfile, os
        >>> plan = Plan.build({"w": (2, 2)}, ring_size=3)
        >>> save(os.path.join(tempfile.mkdtemp(), "r.safetensors"), plan, plan.init_ring())

    """
    checked_path(path)  # fail on an unusable path before any work
    tensors = _collect(plan, rings, extras)
    state = _check_buffers(buffers, extras or {})
    if model is not None and not isinstance(model, str):
        raise ArgumentError(f"model must be JSON text or None, got {type(model).__name__}")
    record = None if training is None else _record_json(training)
    plan_json = plan.to_json()
    metadata = {
        "format": FORMAT,
        "spec": plan.spec,
        "plan": plan_json,
        "buffers": json.dumps(state),
        **({} if model is None else {"model": model}),
        **({} if record is None else {"training": record}),
        "rpgcore": __version__,
        "checksum": checksum(plan_json, tensors, state, model, record),
    }
    head, arrays = safetensors_io.encode_header(tensors, metadata)
    write_atomically(path, [head, *(array.data for array in arrays)])


def _read(path: str | os.PathLike[str]) -> tuple[dict[str, NDArray[Any]], dict[str, str]]:
    data = read_regular_file(path)
    try:
        return safetensors_io.decode(data)
    except RingFileError as error:  # the same error, naming the file it is about
        raise type(error)(f"{str(path)!r}: {error}") from None


def _record_json(training: Mapping[str, Any]) -> str:
    if not isinstance(training, Mapping):
        raise ArgumentError(f"training must be a mapping, got {type(training).__name__}")
    try:
        return json.dumps(dict(training), sort_keys=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ArgumentError(f"training {dict(training)!r} is not JSON ({error})") from None


def training_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a ring file says its rings were trained on (written by ``rpgcore train``).

    Args:
        path: the ring file.

    Returns:
        The record (``{"data": "digits", "seed": 0, ...}``), or ``None`` for a
        file without one.

    Raises:
        RingFileError: the file cannot be read, or its record is not a JSON object.

    Example:
        >>> import tempfile, os
        >>> plan = Plan.build({"w": (2, 2)}, ring_size=3)
        >>> p = os.path.join(tempfile.mkdtemp(), "r.safetensors")
        >>> save(p, plan, plan.init_ring(), training={"data": "digits", "seed": 1})
        >>> training_record(p)
        {'data': 'digits', 'seed': 1}

    """
    text = read_metadata(path).get("training")
    if text is None:
        return None
    try:
        record = strict_json.parse(text)
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict):
        raise RingFileFormatError(
            f"{str(path)!r} has a training record that is not a JSON object; rewrite the file"
        )
    return record


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read and check a ring file's metadata without validating its tensors.

    Args:
        path: the ring file.

    Returns:
        The metadata mapping (``format``, ``spec``, ``plan``, ``checksum``...).

    Raises:
        RingFileNotFoundError: no such file.
        RingFileTruncatedError: the file is cut short.
        RingFileFormatError: not a safetensors file, or not a ring file.
        SpecVersionError: written with an unknown generator spec.

    Example:
        >>> import tempfile, os
        >>> plan = Plan.build({"w": (2, 2)}, ring_size=3)
        >>> p = os.path.join(tempfile.mkdtemp(), "r.safetensors")
        >>> save(p, plan, plan.init_ring())
        >>> read_metadata(p)["spec"]
        'rpg-v1'

    """
    return _check_metadata(path, _read(path)[1])


def _check_metadata(path: str | os.PathLike[str], metadata: Mapping[str, str]) -> dict[str, str]:
    if metadata.get("format") != FORMAT or "plan" not in metadata:
        raise RingFileFormatError(
            f"{str(path)!r} is a safetensors file but not an rpgcore ring file "
            f"(format {shown(metadata.get('format'))}); write it with rpgcore.save"
        )
    unknown = sorted(set(metadata) - METADATA_KEYS)
    if unknown:
        raise RingFileFormatError(
            f"{str(path)!r} has unknown metadata {shown(unknown)}: the file was altered or written "
            "by a newer rpgcore; upgrade rpgcore or rewrite it with rpgcore.save"
        )
    version = metadata.get("spec")
    if version not in spec.SUPPORTED_SPECS:
        raise SpecVersionError(
            f"{str(path)!r} was written with generator spec {shown(version)}; this rpgcore reads "
            f"{sorted(spec.SUPPORTED_SPECS)}: upgrade rpgcore"
        )
    return dict(metadata)


@dataclass(frozen=True)
class RingFile:
    """Everything a ring file holds, as :func:`load_file` reads it.

    Attributes:
        plan: the plan.
        rings: ring name to writable array.
        extras: extra name to writable array.
        buffers: the extras that are state, not trainable (sorted).
        model: the model description JSON (:mod:`rpgcore.porting`), or ``None``.

    """

    plan: Plan
    rings: dict[str, NDArray[Any]]
    extras: dict[str, NDArray[Any]]
    buffers: tuple[str, ...]
    model: str | None


def load(
    path: str | os.PathLike[str],
) -> tuple[Plan, dict[str, NDArray[Any]], dict[str, NDArray[Any]]]:
    """Read and fully validate a ring file.

    Args:
        path: the ring file.

    Returns:
        ``(plan, rings, extras)``: rings and extras map names to writable
        arrays (a ring can be updated in place and saved again).

    Raises:
        RingFileNotFoundError: no such file.
        RingFileTruncatedError: the file is cut short.
        RingFileFormatError: not a safetensors file, not a ring file, an
            invalid plan, or tensors outside the ``rings/`` and ``extras/``
            namespaces.
        ChecksumError: the plan or a tensor changed since it was written.
        SpecVersionError: written with an unknown generator spec.
        PlanMismatchError: rings missing, unknown, or of the wrong size.
        RingDtypeError: a ring is not float16/32/64.

    Example:
        >>> import tempfile, os
        >>> plan = Plan.build({"w": (2, 2)}, ring_size=3)
        >>> p = os.path.join(tempfile.mkdtemp(), "r.safetensors")
        >>> save(p, plan, plan.init_ring())
        >>> load(p)[1]["global"].dtype
        dtype('float32')

    """
    content = load_file(path)
    return content.plan, content.rings, content.extras


def load_file(path: str | os.PathLike[str]) -> RingFile:
    """Read and fully validate a ring file, with its buffer names and model description.

    Args:
        path: the ring file.

    Returns:
        The file's contents.

    Raises:
        RingFileError: as :func:`load` raises them.

    Example:
        >>> import tempfile, os
        >>> plan = Plan.build({"w": (2, 2)}, ring_size=3)
        >>> p = os.path.join(tempfile.mkdtemp(), "r.safetensors")
        >>> save(p, plan, plan.init_ring(), {"b": np.zeros(2)}, buffers=["b"])
        >>> content = load_file(p)
        >>> content.buffers, content.model
        (('b',), None)

    """
    tensors, raw_metadata = _read(path)
    metadata = _check_metadata(path, raw_metadata)
    state = buffer_names(metadata)
    model = metadata.get("model")
    expected = checksum(metadata["plan"], tensors, state, model, metadata.get("training"))
    if metadata.get("checksum") != expected:
        raise ChecksumError(
            f"{str(path)!r} is damaged: its checksum {shown(metadata.get('checksum'))} does not "
            "match its contents; restore it from a backup"
        )
    try:
        plan = Plan.from_json(metadata["plan"])
    except SpecVersionError:
        raise
    except PlanError as error:
        raise RingFileFormatError(f"{str(path)!r} holds an invalid plan: {error}") from None
    if metadata["spec"] != plan.spec:
        raise SpecVersionError(
            f"{str(path)!r}: metadata spec {metadata['spec']!r} differs from the plan's "
            f"{plan.spec!r}; the file was altered, rewrite it with rpgcore.save"
        )
    rings: dict[str, NDArray[Any]] = {}
    extras: dict[str, NDArray[Any]] = {}
    for name, array in tensors.items():
        if name.startswith(RING_PREFIX):
            if safetensors_io.dtype_name(array.dtype) not in RING_DTYPES:
                raise RingDtypeError(
                    f"{name} has dtype {array.dtype}; rings must be float16, float32 or float64"
                )
            rings[name[len(RING_PREFIX) :]] = array
        elif name.startswith(EXTRA_PREFIX):
            extras[name[len(EXTRA_PREFIX) :]] = array
        else:
            raise RingFileFormatError(
                f"unexpected tensor {shown(name)}: ring files hold only rings/ and extras/"
            )
    strays = [name for name in state if name not in extras]
    if strays:
        raise RingFileFormatError(
            f"{str(path)!r} lists buffers {shown(strays)} that are not among its extras; "
            "rewrite it with rpgcore.save"
        )
    try:
        rings = plan.check_rings(rings)
    except PlanMismatchError as error:
        raise PlanMismatchError(f"{str(path)!r}: {error}") from None
    return RingFile(plan, rings, extras, tuple(state), model)
