"""Dataset files on disk: MNIST IDX, CIFAR-10 and CIFAR-100 binary, and ``.npz``.

:func:`read_path` parses a file or folder into a :class:`Raw` dataset (images
still in their stored dtype) that :func:`rpgcore.data.load_dataset` splits
and scales. Every format is checked: magic numbers, sizes against headers,
record lengths, counts and label ranges. Anything wrong raises
:class:`~rpgcore.errors.DatasetError` naming the path and the format expected.

Example:
    >>> import os, struct, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for split, n in (("train", 3), ("t10k", 2)):
    ...     with open(os.path.join(folder, f"{split}-images-idx3-ubyte"), "wb") as f:
    ...         _ = f.write(struct.pack(">4I", 0x803, n, 28, 28) + bytes(n * 784))
    ...     with open(os.path.join(folder, f"{split}-labels-idx1-ubyte"), "wb") as f:
    ...         _ = f.write(struct.pack(">2I", 0x801, n) + bytes(range(n)))
    >>> raw = read_path(folder, names=())
    >>> raw.name, raw.x_train.shape, raw.y_test.tolist()
    ('idx', (3, 28, 28, 1), [0, 1])

"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from rpgcore.errors import DatasetError

__all__ = ["IDX_FILES", "SUBFOLDERS", "Raw", "check_range", "kind_of", "read_file", "read_path"]

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""The MNIST and Fashion-MNIST file names (``.idx`` for ``-idx`` is accepted too)."""

SUBFOLDERS = ("cifar-10-batches-bin", "cifar-100-binary", "MNIST/raw", "FashionMNIST/raw")
"""Where the official archives (and torchvision) put the files, under a parent folder."""


class Raw(NamedTuple):
    """Images (n, H, W, C) of integers in [0, 255] or floats in [0, 1], and int64 labels."""

    name: str
    source: str
    classes: int
    x_train: NDArray[Any]
    y_train: NDArray[np.int64]
    x_test: NDArray[Any] | None = None  # None: split x_train by test_fraction
    y_test: NDArray[np.int64] | None = None


def read_path(source: object, *, names: tuple[str, ...]) -> Raw:
    """Read the dataset at a path: a ``.npz`` file or a folder of IDX or CIFAR files.

    Args:
        source: a ``str`` or ``os.PathLike`` path.
        names: the dataset names the caller also accepts, listed in the error
            for a path that does not exist.

    Returns:
        The dataset as stored, with a channel axis: ``(n, H, W, C)`` images.

    Raises:
        DatasetError: no such path, or a file missing from its folder, or
            one that does not follow its format.

    Example:
        >>> try:
        ...     read_path("no/such/folder", names=("mnist5k",))
        ... except DatasetError as error:
        ...     print(str(error).split(";")[0])
        'no/such/folder' is neither a dataset name nor an existing file or folder

    """
    accepted = (
        f"give a dataset name ({', '.join(names)}), a .npz file, or a folder of MNIST IDX, "
        "CIFAR-10 binary or CIFAR-100 binary files"
    )
    if not isinstance(source, str | os.PathLike):
        raise DatasetError(
            f"source must be a dataset name or a path, got a {type(source).__name__}; {accepted}"
        )
    text = os.fspath(source)
    if not isinstance(text, str) or not text or "\x00" in text:
        raise DatasetError(f"{text!r} is not a usable path; {accepted}")
    path = Path(text)
    if path.is_dir():
        return _read_folder(path, nested=False)
    if not path.is_file():
        raise DatasetError(
            f"{text!r} is neither a dataset name nor an existing file or folder; {accepted}"
        )
    parts = {file for version in _CIFAR for file in (*version.train_files, version.test_file)}
    if path.name.removesuffix(".gz").replace(".idx", "-idx") in {*IDX_FILES, *parts}:
        raise DatasetError(
            f"{text!r} is one file of a dataset; give its folder {str(path.parent)!r}"
        )
    if path.suffix.lower() != ".npz":
        raise DatasetError(f"{text!r} is not a .npz file (extract archives first); {accepted}")
    return _read_npz(path)


def _read_folder(folder: Path, *, nested: bool) -> Raw:
    found = [_idx_file(folder, name) for name in IDX_FILES]
    if any(found):
        return _read_idx(folder, found)
    for version in _CIFAR:
        if any((folder / file).is_file() for file in (*version.train_files, version.test_file)):
            return _read_cifar(folder, version)
    inner = [folder / name for name in SUBFOLDERS if (folder / name).is_dir()]
    if len(inner) == 1 and not nested:
        return _read_folder(inner[0], nested=True)
    if len(inner) > 1:
        names = ", ".join(sub.name for sub in inner)
        raise DatasetError(f"{str(folder)!r} holds several datasets ({names}); give one's path")
    raise DatasetError(
        f"{str(folder)!r} holds no dataset files: expected MNIST IDX ({', '.join(IDX_FILES)}, "
        "each optionally .gz), CIFAR-10 binary (data_batch_1.bin ... data_batch_5.bin, "
        "test_batch.bin), CIFAR-100 binary (train.bin, test.bin), or a folder "
        f"{', '.join(SUBFOLDERS)} holding them"
    )


def read_file(path: Path, expected: str) -> bytes:
    """The file's bytes, decompressed when its name ends in ``.gz``."""
    if not path.is_file():
        raise DatasetError(f"{str(path)!r} does not exist or is not a file; expected {expected}")
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError, zlib.error) as error:
        reason = getattr(error, "strerror", None) or error
        raise DatasetError(f"cannot read {str(path)!r} ({reason}); expected {expected}") from None


def check_range(
    values: NDArray[Any], bound: int, where: object, expected: str, key: str = ""
) -> None:
    """Every value in ``[0, bound)`` (no NaN), else an error naming the first bad one."""
    if values.size and not (values.min() >= 0 and values.max() < bound):
        flat = values.reshape(-1)
        bad = flat[np.argmax(~((flat >= 0) & (flat < bound)))]
        inside = f"{key} in " if key else ""
        raise DatasetError(f"{inside}{str(where)!r} holds {bad}; expected {expected}")


def _idx_file(folder: Path, name: str) -> Path | None:
    """The IDX file under its official name or the ``.idx`` variant, plain before ``.gz``."""
    for base in (name, name.replace("-idx", ".idx")):
        for candidate in (folder / base, folder / f"{base}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _read_idx(folder: Path, found: list[Path | None]) -> Raw:
    missing = [name for name, path in zip(IDX_FILES, found, strict=True) if path is None]
    if missing:
        raise DatasetError(
            f"{str(folder)!r} lacks the MNIST IDX file(s) {', '.join(missing)} (optionally .gz); "
            f"expected all of {', '.join(IDX_FILES)}"
        )
    paths = [path for path in found if path is not None]
    splits = []
    for images_path, labels_path in (paths[:2], paths[2:]):
        images, labels = _idx(images_path, 3), _idx(labels_path, 1)
        if len(images) != len(labels):
            raise DatasetError(
                f"{str(images_path)!r} holds {len(images)} images but {str(labels_path)!r} "
                f"holds {len(labels)} labels; expected one label per image"
            )
        if 0 in images.shape[1:]:
            raise DatasetError(f"{str(images_path)!r} holds images of size {images.shape[1:]}")
        check_range(labels, 10, labels_path, "MNIST IDX labels in [0, 10)")
        splits.append((images[..., None], labels.astype(np.int64)))
    (x_train, y_train), (x_test, y_test) = splits
    return Raw("idx", str(folder), 10, x_train, y_train, x_test, y_test)


def _idx(path: Path, dimensions: int) -> NDArray[np.uint8]:
    """Parse an IDX file of unsigned bytes: magic 0x0000080<d>, d big-endian uint32 sizes."""
    magic = 0x800 + dimensions
    expected = f"an IDX file of unsigned bytes with {dimensions} dimension(s), magic 0x{magic:08x}"
    data = read_file(path, expected)
    header = 4 + 4 * dimensions
    if len(data) < header:
        raise DatasetError(f"{str(path)!r} is truncated: {len(data)} bytes; expected {expected}")
    found, *sizes = struct.unpack(f">{1 + dimensions}I", data[:header])
    if found != magic:
        raise DatasetError(f"{str(path)!r} has magic number 0x{found:08x}; expected {expected}")
    payload = math.prod(sizes)
    if len(data) - header != payload:
        raise DatasetError(
            f"{str(path)!r} holds {len(data) - header} data bytes but its header {tuple(sizes)} "
            f"announces {payload}: the file is truncated or corrupt"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(sizes)


class _Cifar(NamedTuple):
    """A CIFAR binary version: each record is its label bytes, then 3072 pixel bytes (CHW)."""

    name: str
    title: str
    labels: tuple[tuple[int, str], ...]  # (classes, what) per label byte; the last is the class
    train_files: tuple[str, ...]
    test_file: str


_CIFAR = (
    _Cifar(
        "cifar10",
        "CIFAR-10",
        ((10, "label"),),
        tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        "test_batch.bin",
    ),
    _Cifar(
        "cifar100",
        "CIFAR-100",
        ((20, "coarse label"), (100, "fine label")),
        ("train.bin",),
        "test.bin",
    ),
)


def _read_cifar(folder: Path, version: _Cifar) -> Raw:
    name, title, labels, train_files, test_file = version
    length = len(labels) + 3072
    expected = f"{title} binary records of {len(labels)} label byte(s) + 3072 pixel bytes (CHW)"
    parts = []
    for file in (*train_files, test_file):
        path = folder / file
        data = read_file(path, expected)
        if not data or len(data) % length:
            raise DatasetError(
                f"{str(path)!r} holds {len(data)} bytes, not a whole number of {length}-byte "
                f"records: it is truncated or not {expected}"
            )
        records = np.frombuffer(data, np.uint8).reshape(-1, length)
        for column, (bound, what) in enumerate(labels):
            check_range(records[:, column], bound, path, f"{title} {what}s in [0, {bound})")
        images = records[:, len(labels) :].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        parts.append((images, records[:, len(labels) - 1].astype(np.int64)))
    train = parts[:-1]
    x_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([targets for _, targets in train])
    return Raw(name, str(folder), labels[-1][0], x_train, y_train, *parts[-1])


NPZ_LAYOUTS = (("x_train", "y_train", "x_test", "y_test"), ("x", "y"))


def _read_npz(path: Path) -> Raw:
    expected = "a .npz file with arrays x_train, y_train, x_test, y_test or x, y"
    with open(path, "rb") as stream:
        if stream.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise DatasetError(f"{str(path)!r} is not a zip archive; expected {expected}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = sorted(archive.files)
            layouts = [layout for layout in NPZ_LAYOUTS if set(layout) <= set(keys)]
            if len(layouts) != 1:
                raise DatasetError(f"{str(path)!r} holds arrays {keys}; expected {expected}")
            arrays = {key: archive[key] for key in layouts[0]}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(
            f"cannot read {str(path)!r} ({error}); expected {expected}, without pickled objects"
        ) from None
    splits = ("_train", "_test") if "x_train" in arrays else ("",)
    images = [_npz_images(arrays[f"x{split}"], f"x{split}", path) for split in splits]
    labels = [
        _npz_labels(arrays[f"y{split}"], len(x), f"y{split}", path)
        for split, x in zip(splits, images, strict=True)
    ]
    classes = max(int(y.max()) for y in labels) + 1
    if len(splits) == 1:
        return Raw("npz", str(path), classes, images[0], labels[0])
    return Raw("npz", str(path), classes, images[0], labels[0], images[1], labels[1])


def _npz_images(x: NDArray[Any], key: str, path: Path) -> NDArray[Any]:
    x = x[..., None] if x.ndim == 3 else x
    if x.ndim != 4 or not 1 <= x.shape[3] <= 4 or 0 in x.shape:
        hint = "reshape flat images" if x.ndim < 3 else "transpose to (n, H, W, C)"
        hint = "give at least one nonempty image" if 0 in x.shape else hint
        raise DatasetError(
            f"{key} in {str(path)!r} has shape {x.shape}; expected nonempty images "
            f"(n, H, W) or channels-last (n, H, W, C) with C <= 4: {hint}"
        )
    if x.dtype.kind in "ui":
        check_range(x, 256, path, "integer pixels in [0, 255]", key)
    elif x.dtype.kind == "f":
        if not (x.min() >= 0 and x.max() <= 1):  # also catches NaN
            raise DatasetError(
                f"{key} in {str(path)!r} holds floats from {x.min()} to {x.max()}; "
                "expected pixels in [0, 1] (or uint8 in [0, 255])"
            )
    else:
        raise DatasetError(f"{key} in {str(path)!r} has dtype {x.dtype}; expected uint8 or float")
    return x


def _npz_labels(y: NDArray[Any], count: int, key: str, path: Path) -> NDArray[np.int64]:
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    if y.dtype.kind not in "ui" or y.shape != (count,):
        raise DatasetError(
            f"{key} in {str(path)!r} is {kind_of(y)}; expected {count} integer class indices "
            "(one-hot labels: take y.argmax(1))"
        )
    if y.min() < 0:
        raise DatasetError(f"{key} in {str(path)!r} holds {y.min()}; expected labels >= 0")
    return y.astype(np.int64)


def kind_of(value: object) -> str:
    """``a <dtype> array of shape <shape>`` for an array, else ``a <type>``, for messages."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"
