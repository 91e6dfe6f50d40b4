"""Every rejected input of docs/errors.md, run: the table and these cases cannot drift.

``CASES`` lists each rejected input once: an id, where it is rejected (the
core, the command line, or one adapter), a description, a callable that
triggers it, the exact exception class and a fragment of its message.
``test_case_raises`` runs each one; ``test_table_matches_cases`` parses the
table of ``docs/errors.md`` and asserts that its rows are exactly these
cases, so a row without a test, or a test without a row, fails. Cases of a
framework skip without it (``conftest.require``), but the table check
covers all of them everywhere.

The same file checks the command line's one-line errors and ``--debug``,
and that a failed load leaves the model as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

import numpy as np
import pytest
from conftest import require

import rpgcore
from rpgcore import conversion, ringfile, safetensors_io, sizing
from rpgcore.cli import main
from rpgcore.data import load_dataset
from rpgcore.errors import (
    ArgumentError,
    DatasetError,
    PlanError,
    PlanMismatchError,
    RingDtypeError,
    RingFileNotFoundError,
    RpgError,
    UsageError,
)

ROOT = Path(__file__).parent.parent
TABLE = ROOT / "docs" / "errors.md"
SLOTS = {"conv": (4, 2, 3, 3), "fc": (3, 4)}


class Case(NamedTuple):
    id: str
    where: str
    what: str
    trigger: Callable[[Path], Any]
    exception: type[RpgError]
    fragment: str


# --------------------------------------------------------------------------- helpers


def build(**options: Any) -> rpgcore.Plan:
    return rpgcore.Plan.build(SLOTS, **{"ring_size": 7, **options})


def ring_file_of(path: Path, plan: rpgcore.Plan, dtype: Any) -> Path:
    """A ring file for ``plan`` with a valid checksum whose rings have ``dtype``."""
    tensors = {"rings/" + ring.name: np.zeros(ring.size, dtype) for ring in plan.rings}
    text = plan.to_json()
    metadata = {
        "format": ringfile.FORMAT,
        "spec": plan.spec,
        "plan": text,
        "checksum": ringfile.checksum(text, tensors),
    }
    path.write_bytes(safetensors_io.encode(tensors, metadata))
    return path


DEBUG = True
"""Whether :func:`cli` passes ``--debug``; the one-line test turns it off."""


def cli(*args: object) -> int:
    """The command line, with ``--debug``: a user error propagates, as the table says."""
    return main(["--debug", *map(str, args)] if DEBUG else list(map(str, args)))


def torch_cli(*args: object) -> int:
    require("torch")
    return cli(*args)


def tiny_dataset(folder: Path) -> Path:
    """A 40-image, 8x8, two-class ``.npz`` dataset with its own test split."""
    rng = np.random.default_rng(0)
    path = folder / "tiny.npz"
    x = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    y = np.arange(40) % 2
    np.savez(path, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    return path


def train_args(folder: Path, *extra: object) -> list[object]:
    return [
        "train",
        "--data",
        tiny_dataset(folder),
        "--width",
        2,
        "--epochs",
        1,
        "--quiet",
        "--out",
        folder / "model.rpg.safetensors",
        *extra,
    ]


def write_idx(folder: Path, truncate: bool) -> Path:
    """An MNIST IDX folder of two 2x2 images per split; ``truncate`` cuts one file short."""
    folder.mkdir(exist_ok=True)
    for prefix in ("train", "t10k"):
        images = bytes.fromhex("00000803") + (2).to_bytes(4, "big") * 1
        images += (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes(8)
        labels = bytes.fromhex("00000801") + (2).to_bytes(4, "big") + bytes([0, 1])
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(images)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)
    if truncate:
        name = folder / "train-images-idx3-ubyte"
        name.write_bytes(name.read_bytes()[:-3])
    return folder


def write_npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# torch ------------------------------------------------------------------------------


def torch_mlp(width: int = 4) -> Any:
    torch = require("torch")
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Linear(4, width), nn.Linear(width, 3), nn.Linear(3, 2))


def torch_mixed() -> Any:
    """A model with layers rpgify cannot generate: an LSTM and an Embedding."""
    torch = require("torch")
    nn = torch.nn

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(5, 4)
            self.lstm = nn.LSTM(4, 4)
            self.fc = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

    return Mixed()


def torch_adapter() -> Any:
    require("torch")
    return require("rpgcore.adapters.torch")


def torch_rpgify(model: Any = None, **options: Any) -> Any:
    model = torch_mlp() if model is None else model  # skips, or fails in CI, without torch
    from rpgcore.adapters.torch import rpgify

    return rpgify(model, **{"ring_size": 5, **options})


def torch_file(folder: Path) -> Path:
    model = torch_rpgify()
    from rpgcore.adapters.torch import save

    path = folder / "torch.rpg.safetensors"
    save(model, path)
    return path


def torch_load(model: Any, path: Path) -> None:
    from rpgcore.adapters.torch import load

    load(model, path)


def torch_load_int_ring(folder: Path) -> None:
    model = torch_rpgify()
    from rpgcore.adapters.torch import plan_of

    torch_load(model, ring_file_of(folder / "int.safetensors", plan_of(model), np.int32))


# jax --------------------------------------------------------------------------------


def flax_nnx() -> Any:
    require("jax")
    require("flax")
    return require("flax.nnx")


def jax_mlp(width: int = 4) -> Any:
    nnx = flax_nnx()
    rngs = nnx.Rngs(0)
    return nnx.Sequential(
        nnx.Linear(4, width, rngs=rngs),
        nnx.Linear(width, 3, rngs=rngs),
        nnx.Linear(3, 2, rngs=rngs),
    )


def jax_mixed() -> Any:
    nnx = flax_nnx()

    class Mixed(nnx.Module):
        def __init__(self) -> None:
            rngs = nnx.Rngs(0)
            self.embed = nnx.Embed(5, 4, rngs=rngs)
            self.fc = nnx.Linear(4, 4, rngs=rngs)
            self.head = nnx.Linear(4, 2, rngs=rngs)

    return Mixed()


def jax_rpgify(model: Any = None, **options: Any) -> Any:
    model = jax_mlp() if model is None else model  # skips, or fails in CI, without jax
    from rpgcore.adapters.jax import rpgify

    return rpgify(model, **{"ring_size": 5, **options})


def jax_file(folder: Path) -> Path:
    model = jax_rpgify()
    from rpgcore.adapters.jax import save

    path = folder / "jax.rpg.safetensors"
    save(model, path)
    return path


# keras ------------------------------------------------------------------------------


def keras_mlp(width: int = 4) -> Any:
    keras = require("keras")
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(width, name="hidden"),
            layers.Dense(3, name="middle"),
            layers.Dense(2, name="head"),
        ]
    )


def keras_mixed() -> Any:
    keras = require("keras")
    layers = keras.layers
    inputs = keras.Input((3,))
    x = layers.Embedding(5, 4, name="embed")(inputs)
    x = layers.LSTM(4, name="lstm")(x)
    x = layers.Dense(4, name="fc")(x)
    return keras.Model(inputs, layers.Dense(2, name="head")(x))


def keras_rpgify(model: Any = None, **options: Any) -> Any:
    model = keras_mlp() if model is None else model  # skips, or fails in CI, without keras
    from rpgcore.adapters.keras import rpgify

    return rpgify(model, **{"ring_size": 5, **options})


def keras_materialize_subclassed() -> Any:
    keras = require("keras")
    import rpgcore
    from rpgcore.adapters.keras import Ring, RPGDense, materialize

    ring = Ring(rpgcore.Plan.build({"fc": (2, 4)}, ring_size=5))

    class Subclassed(keras.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="subclassed")
            self.fc = RPGDense(2, ring=ring, slot="fc")

        def call(self, x: Any) -> Any:
            return self.fc(x)

    model = Subclassed()
    model(np.zeros((1, 4), np.float32))
    return materialize(model)


def keras_file(folder: Path) -> Path:
    model = keras_rpgify()
    from rpgcore.adapters.keras import save

    path = folder / "keras.rpg.safetensors"
    save(model, path)
    return path


def adapter_load(framework: str) -> Callable[[Any, Path], None]:
    require(framework)
    module = require(f"rpgcore.adapters.{framework}")
    load: Callable[[Any, Path], None] = module.load
    return load


def with_limit(limit: str, trigger: Callable[[], Any]) -> Any:
    with mock.patch.dict(os.environ, {"RPG_MAX_GENERATED": limit}):
        return trigger()


MISMATCH = "generated layer 0 differs: the file's '{a}' has shape (4, 4) (ring 'global', scale 1), "
RING_SIZE = "ring 0 ('global' in the file, 'global' in the model): size 5 generating 28 in the file"
INT_RING = "rings/global has dtype int32; rings must be float16, float32 or float64"
NO_LAYER = "the model has no convolution, transposed convolution or dense layer to generate"
FC = conversion.Candidate("fc", "fc.weight", "linear", (2, 2))

# --------------------------------------------------------------------------- the cases

CASES = [
    # ring size
    Case(
        "ring-size-zero",
        "core",
        "`Plan.build(..., ring_size=0)`",
        lambda tmp: build(ring_size=0),
        PlanError,
        "ring_size must be in [1, 2147483648], got 0",
    ),
    Case(
        "ring-size-negative",
        "core",
        "`ring_size=-3`",
        lambda tmp: build(ring_size=-3),
        PlanError,
        "ring_size must be in [1, 2147483648], got -3",
    ),
    Case(
        "ring-size-float",
        "core",
        "`ring_size=2.5` (not an integer)",
        lambda tmp: build(ring_size=2.5),
        PlanError,
        "ring_size must be an integer, got 2.5 (float)",
    ),
    Case(
        "ring-size-bool",
        "core",
        "`ring_size=True`",
        lambda tmp: build(ring_size=True),
        PlanError,
        "ring_size must be an integer, got True (bool)",
    ),
    Case(
        "ring-size-above-spec",
        "core",
        "`ring_size=2**31 + 1`, above the spec's fixed limit `spec.MAX_RING_SIZE`",
        lambda tmp: build(ring_size=2**31 + 1),
        PlanError,
        "ring_size must be in [1, 2147483648], got 2147483649",
    ),
    Case(
        "ring-size-per-ring",
        "core",
        "one ring's size bad in a mapping `ring_size={'a': 0}`",
        lambda tmp: build(ring_size={"a": 0, "b": 3}, groups={"conv": "a", "fc": "b"}),
        PlanError,
        "ring_size['a'] must be in [1, 2147483648], got 0",
    ),
    Case(
        "generated-above-limit",
        "core",
        "a plan generating more than `RPG_MAX_GENERATED` parameters (here 10)",
        lambda tmp: with_limit("10", build),
        PlanError,
        "the plan generates 84 parameters, more than the limit of 10 (RPG_MAX_GENERATED)",
    ),
    Case(
        "ring-above-limit",
        "core",
        "rings holding more entries than `RPG_MAX_GENERATED` (here 100)",
        lambda tmp: with_limit("100", lambda: build(ring_size=101)),
        PlanError,
        "the plan's rings hold 101 entries, more than the limit of 100 (RPG_MAX_GENERATED)",
    ),
    Case(
        "generated-limit-invalid",
        "core",
        "`RPG_MAX_GENERATED` set to something that is not a positive integer",
        lambda tmp: with_limit("lots", build),
        ArgumentError,
        "RPG_MAX_GENERATED='lots' is not a positive integer",
    ),
    Case(
        "ring-size-and-dof",
        "core",
        "both or neither of `ring_size=` and `dof=`",
        lambda tmp: sizing.ring_sizes({"global": 50}, 5, 10, ordinary=0),
        ArgumentError,
        "give exactly one of ring_size and dof",
    ),
    Case(
        "dof-too-small",
        "core",
        "`dof=` not above the ordinary parameters, so no ring is left",
        lambda tmp: sizing.ring_sizes({"global": 50}, None, 10, ordinary=20),
        ArgumentError,
        "dof 10 leaves -10 parameters for 1 ring(s): the model's ordinary parameters alone take 20",
    ),
    Case(
        "dof-not-integer",
        "core",
        "`dof=1e4`",
        lambda tmp: sizing.ring_sizes({"global": 50}, None, 1e4, ordinary=20),  # type: ignore[arg-type]
        ArgumentError,
        "dof must be an integer, got 10000.0",
    ),
    # seeds
    Case(
        "seed-negative",
        "core",
        "`seed=-1`",
        lambda tmp: build(seed=-1),
        PlanError,
        "seed must be in [0, 18446744073709551615], got -1",
    ),
    Case(
        "seed-too-large",
        "core",
        "`seed=2**64`",
        lambda tmp: build(seed=2**64),
        PlanError,
        "seed must be in [0, 18446744073709551615], got 18446744073709551616",
    ),
    Case(
        "seed-bool",
        "core",
        "`seed=True`",
        lambda tmp: build(seed=True),
        PlanError,
        "seed must be an integer, got True (bool)",
    ),
    Case(
        "seed-float",
        "core",
        "`seed=1.0`",
        lambda tmp: build(seed=1.0),
        PlanError,
        "seed must be an integer, got 1.0 (float)",
    ),
    Case(
        "seed-str",
        "core",
        "`seed='1'`",
        lambda tmp: build(seed="1"),
        PlanError,
        "seed must be an integer, got '1' (str)",
    ),
    # mode and scope
    Case(
        "mode-unknown",
        "core",
        "`mode='shuffle'`",
        lambda tmp: build(mode="shuffle"),
        PlanError,
        "mode must be one of perm_sign, perm, sign, none; got 'shuffle'",
    ),
    Case(
        "scope-unknown",
        "core",
        "`scope='layer'`",
        lambda tmp: conversion.ring_name("layer", FC),
        ArgumentError,
        "scope must be 'global', 'block' or a callable, got 'layer'",
    ),
    Case(
        "scope-not-a-name",
        "core",
        "a `scope` callable that returns no string",
        lambda tmp: conversion.ring_name(lambda path, layer: 3, FC),
        ArgumentError,
        "scope returned 3 for 'fc'; return a ring name (str)",
    ),
    # ring dtypes and ring files
    Case(
        "ring-dtype-expand",
        "core",
        "an integer ring passed to `Plan.expand`",
        lambda tmp: build().expand(np.zeros(7, np.int32)),
        RingDtypeError,
        "ring 'global' has dtype int32; rings must be floating",
    ),
    Case(
        "ring-dtype-save",
        "core",
        "an integer ring passed to `rpgcore.save`",
        lambda tmp: rpgcore.save(tmp / "r.safetensors", build(), np.zeros(7, np.int32)),
        RingDtypeError,
        "ring 'global' has dtype int32; rings must be floating",
    ),
    Case(
        "ring-dtype-file",
        "core",
        "a ring file whose ring is int32 (`rpgcore.load`)",
        lambda tmp: rpgcore.load(ring_file_of(tmp / "r.safetensors", build(), np.int32)),
        RingDtypeError,
        INT_RING,
    ),
    Case(
        "ring-file-missing",
        "core",
        "`rpgcore.load` of a path that does not exist",
        lambda tmp: rpgcore.load(tmp / "absent.safetensors"),
        RingFileNotFoundError,
        "absent.safetensors' does not exist; check the path",
    ),
    # datasets
    Case(
        "data-missing",
        "core",
        "`load_dataset` of a path that does not exist",
        lambda tmp: load_dataset(tmp / "absent.npz"),
        DatasetError,
        "is neither a dataset name nor an existing file or folder",
    ),
    Case(
        "data-unknown-name",
        "core",
        "`load_dataset('mnist3k')`: neither a name nor a path",
        lambda tmp: load_dataset("mnist3k"),
        DatasetError,
        "'mnist3k' is neither a dataset name nor an existing file or folder",
    ),
    Case(
        "data-folder-not-dataset",
        "core",
        "a folder that holds no dataset files",
        lambda tmp: load_dataset(tmp),
        DatasetError,
        "holds no dataset files: expected MNIST IDX",
    ),
    Case(
        "data-wrong-extension",
        "core",
        "a file that is not `.npz` (`data.csv`)",
        lambda tmp: load_dataset(write_bytes(tmp / "data.csv", b"1,2\n")),
        DatasetError,
        "is not a .npz file (extract archives first)",
    ),
    Case(
        "data-npz-not-zip",
        "core",
        "a `.npz` file that is not a zip archive",
        lambda tmp: load_dataset(write_bytes(tmp / "bad.npz", b"hello")),
        DatasetError,
        "is not a zip archive; expected a .npz file with arrays",
    ),
    Case(
        "data-npz-keys",
        "core",
        "a `.npz` without `x, y` or `x_train, ...`",
        lambda tmp: load_dataset(write_npz(tmp / "keys.npz", a=np.zeros(3))),
        DatasetError,
        "holds arrays ['a']; expected a .npz file with arrays",
    ),
    Case(
        "data-npz-labels",
        "core",
        "a `.npz` with a negative label",
        lambda tmp: load_dataset(
            write_npz(tmp / "neg.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, -1, 0]))
        ),
        DatasetError,
        "holds -1; expected labels >= 0",
    ),
    Case(
        "data-npz-shape",
        "core",
        "a `.npz` whose images are flat",
        lambda tmp: load_dataset(
            write_npz(tmp / "flat.npz", x=np.zeros((4, 8), np.uint8), y=np.array([0, 1, 1, 0]))
        ),
        DatasetError,
        "has shape (4, 8); expected nonempty images",
    ),
    Case(
        "data-idx-truncated",
        "core",
        "an MNIST IDX folder with a truncated file",
        lambda tmp: load_dataset(write_idx(tmp / "mnist", truncate=True)),
        DatasetError,
        "holds 5 data bytes but its header (2, 2, 2) announces 8: the file is truncated",
    ),
    Case(
        "data-limit",
        "core",
        "`load_dataset(..., limit=0)`",
        lambda tmp: load_dataset("mnist5k", limit=0),
        DatasetError,
        "limit must be None or an integer >= 1, got 0",
    ),
    # command line
    Case(
        "cli-unknown-command",
        "cli",
        "`rpgcore frobnicate`",
        lambda tmp: cli("frobnicate"),
        UsageError,
        "argument command: invalid choice: 'frobnicate'",
    ),
    Case(
        "cli-not-an-int",
        "cli",
        "`rpgcore train --epochs x`",
        lambda tmp: cli("train", "--dof", 5000, "--epochs", "x"),
        UsageError,
        "argument --epochs: invalid int value: 'x' (see rpgcore train --help)",
    ),
    Case(
        "cli-unknown-option",
        "cli",
        "`rpgcore inspect F --verbose`",
        lambda tmp: cli("inspect", tmp / "r.safetensors", "--verbose"),
        UsageError,
        "unrecognized arguments: --verbose",
    ),
    Case(
        "cli-negative-epochs",
        "cli",
        "`rpgcore train --epochs -1`",
        lambda tmp: cli("train", "--dof", 5000, "--epochs", -1),
        ArgumentError,
        "epochs=-1: train for at least 1 epoch",
    ),
    Case(
        "cli-checkpoint-every",
        "cli",
        "`rpgcore train --checkpoint-every -1`",
        lambda tmp: cli("train", "--dof", 5000, "--checkpoint-every", -1),
        ArgumentError,
        "--checkpoint-every -1: give a number of steps, or 0",
    ),
    Case(
        "cli-bad-widths",
        "cli",
        "`rpgcore demo --widths 2,x`",
        lambda tmp: cli("demo", "--widths", "2,x"),
        ArgumentError,
        "--widths '2,x': give integers separated by commas",
    ),
    Case(
        "cli-inspect-missing",
        "cli",
        "`rpgcore inspect` of a missing ring file",
        lambda tmp: cli("inspect", tmp / "absent.safetensors"),
        RingFileNotFoundError,
        "absent.safetensors' does not exist; check the path",
    ),
    Case(
        "cli-evaluate-missing",
        "cli",
        "`rpgcore evaluate` of a missing ring file",
        lambda tmp: cli("evaluate", tmp / "absent.safetensors"),
        RingFileNotFoundError,
        "absent.safetensors' does not exist; check the path",
    ),
    Case(
        "cli-init-dof",
        "cli",
        "`rpgcore init resnet18 F --dof 10`",
        lambda tmp: cli("init", "resnet18", tmp / "r.safetensors", "--dof", 10),
        UsageError,
        "--dof 10 leaves no ring: the resnet18 extras alone have",
    ),
    Case(
        "cli-init-exists",
        "cli",
        "`rpgcore init` onto an existing file without `--force`",
        lambda tmp: cli("init", "resnet18", write_bytes(tmp / "r.safetensors", b"keep")),
        UsageError,
        "already exists; pass --force to replace it",
    ),
    Case(
        "cli-data-missing",
        "cli",
        "`rpgcore train --data` of a missing path",
        lambda tmp: cli("train", "--dof", 5000, "--data", tmp / "absent.npz"),
        DatasetError,
        "is neither a dataset name nor an existing file or folder",
    ),
    Case(
        "cli-bad-device",
        "cli (torch)",
        "`rpgcore train --device nope`",
        lambda tmp: torch_cli(*train_args(tmp, "--ring-size", 50, "--device", "nope")),
        ArgumentError,
        "device 'nope' is not a torch device",
    ),
    Case(
        "cli-train-dof",
        "cli (torch)",
        "`rpgcore train --dof 10`, below the ordinary parameters",
        lambda tmp: torch_cli(*train_args(tmp, "--dof", 10)),
        ArgumentError,
        "dof 10 leaves",
    ),
    Case(
        "cli-widths-range",
        "cli (torch)",
        "`rpgcore demo --widths 0,16`",
        lambda tmp: torch_cli("demo", "--widths", "0,16", "--out", tmp / "demo"),
        ArgumentError,
        "widths [0, 16]: use 1 to 15, at least one",
    ),
    # PyTorch
    Case(
        "torch-ring-size-zero",
        "torch",
        "`rpgify(model, ring_size=0)`",
        lambda tmp: torch_rpgify(ring_size=0),
        PlanError,
        "ring_size must be in [1, 2147483648], got 0",
    ),
    Case(
        "torch-dof-too-small",
        "torch",
        "`rpgify(model, dof=10)` with 15 ordinary parameters",
        lambda tmp: torch_rpgify(ring_size=None, dof=10),
        ArgumentError,
        "dof 10 leaves -5 parameters for 1 ring(s): the model's ordinary parameters alone take 15",
    ),
    Case(
        "torch-seed",
        "torch",
        "`rpgify(model, seed=2**64)`",
        lambda tmp: torch_rpgify(seed=2**64),
        PlanError,
        "seed must be in [0, 18446744073709551615]",
    ),
    Case(
        "torch-mode",
        "torch",
        "`rpgify(model, mode='shuffle')`",
        lambda tmp: torch_rpgify(mode="shuffle"),
        PlanError,
        "mode must be one of perm_sign, perm, sign, none; got 'shuffle'",
    ),
    Case(
        "torch-scope",
        "torch",
        "`rpgify(model, scope='layer')`",
        lambda tmp: torch_rpgify(scope="layer"),
        ArgumentError,
        "scope must be 'global', 'block' or a callable, got 'layer'",
    ),
    Case(
        "torch-nothing",
        "torch",
        "a model without Conv/Linear layers to generate",
        lambda tmp: torch_rpgify(require("torch").nn.Sequential(require("torch").nn.ReLU())),
        PlanError,
        NO_LAYER,
    ),
    Case(
        "torch-include-lstm",
        "torch",
        "`include=['lstm']` naming an `nn.LSTM`",
        lambda tmp: torch_rpgify(torch_mixed(), include=["lstm"]),
        ArgumentError,
        "include names layer 'lstm' (LSTM), which cannot be generated",
    ),
    Case(
        "torch-include-embedding",
        "torch",
        "`include=['fc', 'embed']` naming an `nn.Embedding`",
        lambda tmp: torch_rpgify(torch_mixed(), include=["fc", "embed"]),
        ArgumentError,
        "include names layer 'embed' (Embedding), which cannot be generated",
    ),
    Case(
        "torch-include-unknown",
        "torch",
        "`include=['nope']`, a name the model lacks",
        lambda tmp: torch_rpgify(torch_mixed(), include=["nope"]),
        ArgumentError,
        "include names 'nope', which is not a layer of the model",
    ),
    Case(
        "torch-include-string",
        "torch",
        "`include='fc'`, one string instead of a list",
        lambda tmp: torch_rpgify(torch_mixed(), include="fc"),
        ArgumentError,
        "include='fc' is one string; give a list of layer names",
    ),
    Case(
        "torch-converted-twice",
        "torch",
        "`rpgify` of a model converted already",
        lambda tmp: torch_rpgify(torch_rpgify()),
        ArgumentError,
        "the model is converted already",
    ),
    Case(
        "torch-plan-mismatch",
        "torch",
        "`load` of a file whose first layer is 4x4 into a model whose first layer is 5x4",
        lambda tmp: torch_load(torch_rpgify(torch_mlp(5)), torch_file(tmp)),
        PlanMismatchError,
        MISMATCH.format(a="0.weight") + "the model's '0.weight' has shape (5, 4)",
    ),
    Case(
        "torch-ring-size-mismatch",
        "torch",
        "`load` of a file with ring size 5 into a model with ring size 6",
        lambda tmp: torch_load(torch_rpgify(ring_size=6), torch_file(tmp)),
        PlanMismatchError,
        RING_SIZE,
    ),
    Case(
        "torch-ring-dtype",
        "torch",
        "`load` of a file whose ring is int32 into a float32 model",
        lambda tmp: torch_load_int_ring(tmp),
        RingDtypeError,
        INT_RING,
    ),
    Case(
        "torch-not-converted",
        "torch",
        "`save`/`plan_of` of a model that `rpgify` did not convert",
        lambda tmp: torch_adapter().save(torch_mlp(), tmp / "m.safetensors"),
        ArgumentError,
        "the model is not an RPG model; convert it with rpgify first",
    ),
    # JAX
    Case(
        "jax-nothing",
        "jax",
        "a model without `nnx.Conv`/`nnx.Linear` layers to generate",
        lambda tmp: jax_rpgify(flax_nnx().Sequential(flax_nnx().Embed(5, 4, rngs=nnx_rngs()))),
        PlanError,
        NO_LAYER,
    ),
    Case(
        "jax-include-embed",
        "jax",
        "`include=['embed']` naming an `nnx.Embed`",
        lambda tmp: jax_rpgify(jax_mixed(), include=["embed"]),
        ArgumentError,
        "include names layer 'embed' (Embed), which cannot be generated",
    ),
    Case(
        "jax-scope",
        "jax",
        "`rpgify(model, scope='layer')`",
        lambda tmp: jax_rpgify(scope="layer"),
        ArgumentError,
        "scope must be 'global', 'block' or a callable, got 'layer'",
    ),
    Case(
        "jax-dof-too-small",
        "jax",
        "`rpgify(model, dof=10)` with 15 ordinary parameters",
        lambda tmp: jax_rpgify(ring_size=None, dof=10),
        ArgumentError,
        "dof 10 leaves -5 parameters for 1 ring(s)",
    ),
    Case(
        "jax-plan-mismatch",
        "jax",
        "`load` of a file whose first layer is 4x4 into a model whose first layer is 5x4",
        lambda tmp: adapter_load("jax")(jax_rpgify(jax_mlp(5)), jax_file(tmp)),
        PlanMismatchError,
        MISMATCH.format(a="layers.0.kernel") + "the model's 'layers.0.kernel' has shape (5, 4)",
    ),
    # Keras
    Case(
        "keras-nothing",
        "keras",
        "a model without Conv/Dense layers to generate",
        lambda tmp: keras_rpgify(
            require("keras").Sequential(
                [require("keras").Input((3,)), require("keras").layers.Embedding(5, 4)]
            )
        ),
        PlanError,
        NO_LAYER,
    ),
    Case(
        "keras-include-lstm",
        "keras",
        "`include=['lstm']` naming a `keras.layers.LSTM`",
        lambda tmp: keras_rpgify(keras_mixed(), include=["lstm"]),
        ArgumentError,
        "include names layer 'lstm' (LSTM), which cannot be generated",
    ),
    Case(
        "keras-scope",
        "keras",
        "`rpgify(model, scope='layer')`",
        lambda tmp: keras_rpgify(scope="layer"),
        ArgumentError,
        "scope must be 'global', 'block' or a callable, got 'layer'",
    ),
    Case(
        "keras-materialize-subclassed",
        "keras",
        "`materialize` of a subclassed model built with RPG layers",
        lambda tmp: keras_materialize_subclassed(),
        ArgumentError,
        "materialize copies Functional and Sequential models; 'subclassed' is a subclassed",
    ),
    Case(
        "keras-plan-mismatch",
        "keras",
        "`load` of a file whose first layer is 4x4 into a model whose first layer is 5x4",
        lambda tmp: adapter_load("keras")(keras_rpgify(keras_mlp(5)), keras_file(tmp)),
        PlanMismatchError,
        MISMATCH.format(a="hidden/kernel") + "the model's 'hidden/kernel' has shape (5, 4)",
    ),
]


def nnx_rngs() -> Any:
    return flax_nnx().Rngs(0)


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case_raises(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RpgError) as info:
        case.trigger(tmp_path)
    assert type(info.value) is case.exception, (case.id, repr(info.value))
    assert case.fragment in str(info.value), (case.id, str(info.value))


def table_rows() -> list[tuple[str, ...]]:
    """The rows of the table in docs/errors.md: (id, where, input, exception, fragment)."""
    rows = []
    for line in TABLE.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 5, line
        identity, where, what, exception, fragment = cells
        rows.append(
            (identity.strip("`"), where, what, exception.strip("`"), fragment[1:-1].strip())
        )
    return rows


def test_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def test_table_matches_cases() -> None:
    rows = table_rows()
    expected = [
        (case.id, case.where, case.what, case.exception.__name__, case.fragment) for case in CASES
    ]
    assert sorted(set(rows) - set(expected)) == [], "rows of docs/errors.md without a case"
    assert sorted(set(expected) - set(rows)) == [], "cases missing from docs/errors.md"
    assert len(rows) == len(expected)


def test_table_states_its_size() -> None:
    text = TABLE.read_text()
    assert f"{len(CASES)} rows" in text
    reliability = (ROOT / "docs" / "reliability.md").read_text()
    assert f"{len(CASES)} rejected inputs" in reliability


# --------------------------------------------------------------------------- command line

CLI_CASES = [case for case in CASES if case.where.startswith("cli")]


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.id for case in CLI_CASES])
def test_cli_error_is_one_line(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--debug``: ``rpgcore: error: ...`` in one line, status 2, no traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "DEBUG", False)
    status = case.trigger(tmp_path)
    err = capsys.readouterr().err
    assert status == 2, (case.id, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rpgcore: error: ")
    assert case.fragment in lines[0]


def test_debug_flag_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--debug" in capsys.readouterr().out


def test_debug_after_the_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "x.safetensors", "--debug"]) == 2
    assert "unrecognized arguments: --debug" in capsys.readouterr().err


def test_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception that is not an RpgError is a bug: it is never reduced to one line."""

    def broken(path: str) -> str:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("rpgcore.cli.describe", broken)
    with pytest.raises(ZeroDivisionError):
        main(["inspect", "x.safetensors"])


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpgcore", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_debug_shows_the_traceback_subprocess(tmp_path: Path) -> None:
    plain = run_module("inspect", "absent.safetensors", cwd=tmp_path)
    assert plain.returncode == 2
    assert plain.stderr.count("\n") == 1
    assert "Traceback" not in plain.stderr
    debug = run_module("--debug", "inspect", "absent.safetensors", cwd=tmp_path)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "rpgcore.errors.RingFileNotFoundError" in debug.stderr
    usage = run_module("--debug", "frobnicate", cwd=tmp_path)
    assert usage.returncode == 1
    assert "rpgcore.errors.UsageError" in usage.stderr


# --------------------------------------------------------------------------- loses nothing


def torch_state(model: Any) -> dict[str, np.ndarray]:
    return {
        name: t.detach().cpu().numpy().copy()
        for name, t in model.state_dict().items()
        if hasattr(t, "detach")
    }


@pytest.mark.parametrize("bad", ["shape", "ring-size", "dtype"])
def test_failed_torch_load_changes_nothing(bad: str, tmp_path: Path) -> None:
    """A load that fails (plan or dtype mismatch) leaves every parameter and buffer as it was."""
    torch = require("torch")
    from rpgcore.adapters.torch import load, plan_of, rpgify, save

    source = rpgify(torch_mlp(), ring_size=5, seed=3)
    with torch.no_grad():
        source.rpg_ring_global.add_(1.0)  # the file differs from the model everywhere
        for parameter in source.parameters():
            parameter.add_(0.5)
    path = tmp_path / "source.safetensors"
    save(source, path)
    torch.manual_seed(1)
    width, ring_size = (5, 5) if bad == "shape" else (4, 6) if bad == "ring-size" else (4, 5)
    model = rpgify(torch_mlp(width), ring_size=ring_size, seed=3)
    if bad == "dtype":
        path = ring_file_of(tmp_path / "int.safetensors", plan_of(model), np.int32)
    before = torch_state(model)
    with pytest.raises((PlanMismatchError, RingDtypeError)):
        load(model, path)
    after = torch_state(model)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_failed_jax_load_changes_nothing(tmp_path: Path) -> None:
    jax = require("jax")
    nnx = flax_nnx()
    from rpgcore.adapters.jax import load, rpgify, save

    path = tmp_path / "source.safetensors"
    save(rpgify(jax_mlp(), ring_size=5), path)
    model = rpgify(jax_mlp(5), ring_size=5)
    before = [np.array(leaf) for leaf in jax.tree.leaves(nnx.state(model))]
    with pytest.raises(PlanMismatchError):
        load(model, path)
    after = [np.array(leaf) for leaf in jax.tree.leaves(nnx.state(model))]
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_torch_load_converts_float_rings(dtype: Any, tmp_path: Path) -> None:
    """The documented conversion: a float16/float64 ring loads into a float32 model, rounded."""
    require("torch")
    from rpgcore.adapters.torch import load, plan_of, rpgify, save

    model = rpgify(torch_mlp(), ring_size=5)
    path = tmp_path / "m.safetensors"
    save(model, path)
    plan, rings, extras = rpgcore.load(path)
    ring = (rings["global"].astype(np.float64) + 1 / 3).astype(dtype)
    content = ringfile.load_file(path)
    ringfile.save(path, plan, {"global": ring}, extras, buffers=[], model=content.model)
    load(model, path)
    assert plan_of(model) == plan
    assert model.rpg_ring_global.dtype == require("torch").float32
    np.testing.assert_array_equal(model.rpg_ring_global.detach().numpy(), ring.astype(np.float32))
