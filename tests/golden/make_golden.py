"""Write the golden ring files of the current generator spec and their manifest.

Run from anywhere::

    python tests/golden/make_golden.py              # writes missing files, never replaces one
    python tests/golden/make_golden.py --overwrite  # rewrites the current version's files

The golden files freeze the generator's bit stream (``docs/spec.md``,
"Frozen bit stream"): for each plan below this script writes
``tests/golden/<spec version>/<name>.rpg.safetensors`` with the current code
and records in ``tests/golden/manifest.json`` the SHA-256 of the file, of
every slot's indices, signs and expanded kernel, of each slot's kernel in the
layout a framework stores it in, and of each ring's stored and initial
values. ``tests/test_golden.py`` regenerates everything from the files with
every backend and compares the hashes.

Only files of the current spec version that do not exist yet are written,
with their manifest entries; every existing file and entry (other spec
versions, and this version's files already frozen) is kept as it is, and the
script fails when it has nothing to write. Files of a released version are
never regenerated: a change of the bit stream is a new spec version with its
own folder. ``--overwrite`` rewrites all of the current version's files and
entries, for a version still under development only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

import rpgcore
from rpgcore import layouts, porting
from rpgcore.porting import Layer, Tensor

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"

ENCODING = {
    "file_sha256": "SHA-256 of the whole ring file, byte for byte",
    "indices_sha256": (
        "SHA-256 of the slot's ring indices u(k) as little-endian int32 (4 bytes each), "
        "in canonical row-major order"
    ),
    "signs_sha256": (
        "SHA-256 of the slot's signs s(k) as int8 (1 byte each: 0x01 for +1, 0xff for -1), "
        "in canonical row-major order"
    ),
    "kernel_sha256": (
        "SHA-256 of the slot's kernel expanded from the file's ring, as little-endian "
        "float32 (IEEE binary32, 4 bytes each), canonical shape, row-major"
    ),
    "layout_sha256": (
        "SHA-256 of the same kernel moved to the slot's layout with rpgcore.layouts "
        "(to_<layout>(kernel, **layout_args); 'canonical' is the kernel itself), as "
        "little-endian float32 in row-major order of layout_shape"
    ),
    "ring_sha256": "SHA-256 of the ring stored in the file, as little-endian float32",
    "init_sha256": (
        "SHA-256 of the plan's initial ring (spec section 6), as little-endian float32"
    ),
    "extras": "per extra tensor: its dtype, shape and the SHA-256 of its little-endian bytes",
    "model_sha256": "SHA-256 of the file's model description JSON text in UTF-8",
    "rings_from_init": (
        "every stored ring is ring[e] = fl32(init[e] + (e + 1) * 2**-10), one float32 "
        "addition of an exact value, so that entries are distinct and no stored ring "
        "equals the initial one"
    ),
}

SEEDS = {
    "max": 2**64 - 1,
    "max_minus_one": 2**64 - 2,
    "high_word_only": 2**64 - 2**32,
    "low_word_only": 2**32 - 1,
}


def _conv(padding: list[list[int]], groups: int = 1, stride: int = 1) -> dict[str, Any]:
    return {"stride": [stride, stride], "dilation": [1, 1], "groups": groups, "padding": padding}


# Each plan: build arguments for rpgcore.Plan.build, the layout each slot is
# stored in by a framework, and what the file covers. Slots are
# name: (canonical shape, ring, layout, layout arguments).
PLANS: list[dict[str, Any]] = [
    {
        "name": "perm_sign_blocks",
        "covers": (
            "mode perm_sign, seed 2**64-1, three rings as per-block scopes (stem, stage, "
            "head); 3x3 conv, 1x1 conv, depthwise conv (multiplier 2), transposed conv, "
            "linear; model description with biases and batch-norm buffers"
        ),
        "seed": SEEDS["max"],
        "mode": "perm_sign",
        "scaling": "fan_out",
        "ring_size": {"stem": 37, "stage1": 131, "head": 23},
        "slots": {
            "stem.conv.weight": ((8, 3, 3, 3), "stem", "channels_last", {}),
            "stage1.0.conv1.weight": ((16, 8, 1, 1), "stage1", "channels_last", {}),
            "stage1.0.dw.weight": ((32, 1, 3, 3), "stage1", "depthwise", {"multiplier": 2}),
            "stage1.0.up.weight": ((32, 4, 2, 2), "stage1", "spatial_first", {}),
            "head.fc.weight": ((10, 4), "head", "channels_last", {}),
        },
        "model": "stem_bn_head",
    },
    {
        "name": "perm_near_max_seed",
        "covers": (
            "mode perm, seed 2**64-2, scaling none, one ring N=1000 (w=10) with a partial "
            "last block; conv1d, transposed conv3d, linear"
        ),
        "seed": SEEDS["max_minus_one"],
        "mode": "perm",
        "scaling": "none",
        "ring_size": 1000,
        "slots": {
            "conv1d.weight": ((12, 6, 5), "global", "channels_last", {}),
            "up3d.weight": ((4, 2, 3, 3, 3), "global", "spatial_first", {}),
            "fc.weight": ((30, 17), "global", "canonical", {}),
        },
    },
    {
        "name": "sign_odd_width",
        "covers": (
            "mode sign, seed 2**64-2**32 (low seed word 0), one ring N=300 (w=9, odd) over "
            "three blocks, so sign counters r >> 6 from 0 to 4; a 1-D slot, linear, 1x1 "
            "depthwise (multiplier 3), 1x1 conv"
        ),
        "seed": SEEDS["high_word_only"],
        "mode": "sign",
        "scaling": "fan_out",
        "ring_size": 300,
        "slots": {
            "gain": ((5,), "global", "canonical", {}),
            "fc.weight": ((3, 7), "global", "channels_last", {}),
            "dw.weight": ((9, 1, 1, 1), "global", "depthwise", {"multiplier": 3}),
            "pw.weight": ((40, 20, 1, 1), "global", "channels_last", {}),
        },
    },
    {
        "name": "none_two_rings",
        "covers": (
            "mode none, seed 1, two rings (encoder N=64, a power of two; decoder N=2, the "
            "smallest Feistel domain) with interleaved slots; conv, transposed conv, linear"
        ),
        "seed": 1,
        "mode": "none",
        "scaling": "fan_out",
        "ring_size": {"encoder": 64, "decoder": 2},
        "slots": {
            "encoder.conv.weight": ((6, 3, 3, 3), "encoder", "channels_last", {}),
            "decoder.up.weight": ((6, 3, 2, 2), "decoder", "spatial_first", {}),
            "encoder.fc.weight": ((5, 6), "encoder", "canonical", {}),
            "decoder.fc.weight": ((3, 12), "decoder", "channels_last", {}),
        },
    },
    {
        "name": "perm_sign_tiny_rings",
        "covers": (
            "mode perm_sign, seed 2**32-1 (high seed word 0), rings of size 1, 2, 3 and 257 "
            "(w=9, long cycle walks); 1x1 conv, linear, depthwise (multiplier 1), conv"
        ),
        "seed": SEEDS["low_word_only"],
        "mode": "perm_sign",
        "scaling": "fan_out",
        "ring_size": {"one": 1, "two": 2, "three": 3, "wide": 257},
        "slots": {
            "one.weight": ((4, 3, 1, 1), "one", "channels_last", {}),
            "two.weight": ((5, 5), "two", "channels_last", {}),
            "three.weight": ((6, 1, 3, 3), "three", "depthwise", {"multiplier": 1}),
            "wide.weight": ((7, 9, 3, 3), "wide", "canonical", {}),
            "wide.fc.weight": ((11, 7), "wide", "channels_last", {}),
        },
    },
]


def sha256(array: np.ndarray, dtype: str) -> str:
    """SHA-256 of an array's row-major bytes in the given little-endian dtype."""
    data = np.ascontiguousarray(np.asarray(array).astype(np.dtype(dtype).newbyteorder("<")))
    return hashlib.sha256(data.tobytes()).hexdigest()


def to_layout(kernel: np.ndarray, layout: str, arguments: dict[str, Any]) -> np.ndarray:
    """The kernel in a framework's layout, through ``rpgcore.layouts.to_native``."""
    return layouts.to_native(kernel, layout, **arguments)


def build(entry: dict[str, Any]) -> rpgcore.Plan:
    shapes = {name: slot[0] for name, slot in entry["slots"].items()}
    groups = {name: slot[1] for name, slot in entry["slots"].items()}
    return rpgcore.Plan.build(
        shapes,
        ring_size=entry["ring_size"],
        seed=entry["seed"],
        mode=entry["mode"],
        groups=groups,
        scaling=entry["scaling"],
    )


def golden_ring(initial: np.ndarray) -> np.ndarray:
    """``fl32(init[e] + (e + 1) * 2**-10)``: deterministic, distinct, not the initial ring."""
    offsets = (np.arange(initial.size, dtype=np.float32) + np.float32(1)) * np.float32(2.0**-10)
    ring = (initial + offsets).astype(np.float32)
    magnitudes = np.abs(ring)
    if np.unique(magnitudes).size != ring.size or not magnitudes.all():
        raise SystemExit("a golden ring has repeated or zero magnitudes; change its plan")
    return ring


def model_of(plan: rpgcore.Plan) -> tuple[list[Tensor], dict[str, np.ndarray], list[Layer]]:
    """A stem conv with bias and batch norm (running statistics as buffers) and a head bias."""
    tensors = [
        Tensor("stem.conv.bias", "stem.conv", "conv", "bias", (8,)),
        Tensor("stem.bn.weight", "stem.bn", "norm", "scale", (8,)),
        Tensor("stem.bn.bias", "stem.bn", "norm", "offset", (8,)),
        Tensor("stem.bn.running_mean", "stem.bn", "norm", "mean", (8,), True),
        Tensor("stem.bn.running_var", "stem.bn", "norm", "var", (8,), True),
        Tensor("stem.bn.num_batches_tracked", "stem.bn", "norm", "native", (), True),
        Tensor("head.fc.bias", "head.fc", "linear", "bias", (10,)),
    ]
    steps = np.arange(8, dtype=np.float32)
    values = {
        "stem.conv.bias": steps * np.float32(0.125) - np.float32(0.5),
        "stem.bn.weight": np.float32(1) + steps * np.float32(0.0625),
        "stem.bn.bias": steps * np.float32(-0.03125),
        "stem.bn.running_mean": steps * np.float32(0.25) - np.float32(1),
        "stem.bn.running_var": np.float32(0.5) + steps * np.float32(0.5),
        "stem.bn.num_batches_tracked": np.array(1234, dtype=np.int64),
        "head.fc.bias": np.arange(10, dtype=np.float32) * np.float32(-0.1),
    }
    same = porting.padding_pairs("same", (3, 3), (1, 1))
    layers = [
        Layer("stem.conv", "conv", _conv(same)),
        Layer("stem.bn", "norm", {"eps": 1e-5, "momentum": 0.1}),
        Layer("stage1.0.conv1", "conv", _conv(porting.padding_pairs("valid", (1, 1), (1, 1)))),
        Layer("stage1.0.dw", "conv", _conv(same, groups=16)),
        Layer("stage1.0.up", "conv_transpose", _conv([[0, 0], [0, 0]], stride=2)),
        Layer("head.fc", "linear", {}),
    ]
    return tensors, values, layers


def describe_file(entry: dict[str, Any], path: Path) -> dict[str, Any]:
    """The manifest record of one golden file, computed from the file as loaded."""
    content = rpgcore.ringfile.load_file(path)
    plan = content.plan
    initial = plan.init_ring()
    kernels = plan.expand(content.rings)
    slots = []
    for slot in plan.slots:
        _, _, layout, arguments = entry["slots"][slot.name]
        moved = to_layout(kernels[slot.name], layout, arguments)
        slots.append(
            {
                "name": slot.name,
                "ring": slot.ring,
                "shape": list(slot.shape),
                "indices_sha256": sha256(plan.indices(slot.name), "int32"),
                "signs_sha256": sha256(plan.signs(slot.name), "int8"),
                "kernel_sha256": sha256(kernels[slot.name], "float32"),
                "layout": layout,
                "layout_args": arguments,
                "layout_shape": list(moved.shape),
                "layout_sha256": sha256(moved, "float32"),
            }
        )
    record: dict[str, Any] = {
        "spec": plan.spec,
        "covers": entry["covers"],
        "bytes": path.stat().st_size,
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "mode": plan.mode,
        "seed": plan.seed,
        "build": {
            "slots": {name: list(slot[0]) for name, slot in entry["slots"].items()},
            "ring_size": entry["ring_size"],
            "groups": {name: slot[1] for name, slot in entry["slots"].items()},
            "seed": entry["seed"],
            "mode": entry["mode"],
            "scaling": entry["scaling"],
        },
        "rings": {
            ring.name: {
                "size": ring.size,
                "ring_sha256": sha256(content.rings[ring.name], "float32"),
                "init_sha256": sha256(initial[ring.name], "float32"),
            }
            for ring in plan.rings
        },
        "slots": slots,
    }
    if content.extras:
        record["extras"] = {
            name: {
                "dtype": str(array.dtype),
                "shape": list(array.shape),
                "sha256": sha256(array, array.dtype.str),
            }
            for name, array in sorted(content.extras.items())
        }
        record["buffers"] = list(content.buffers)
    if content.model is not None:
        record["model_sha256"] = hashlib.sha256(content.model.encode("utf-8")).hexdigest()
    return record


def write(entry: dict[str, Any], path: Path) -> None:
    plan = build(entry)
    rings = {name: golden_ring(ring) for name, ring in plan.init_ring().items()}
    if entry.get("model"):
        tensors, values, layers = model_of(plan)
        porting.save(path, plan, rings, tensors, values, layers)
    else:
        rpgcore.save(path, plan, rings)


NUMBER_LIST = re.compile(r"\[[-\d,\s]*\]")


def dumps(document: dict[str, Any]) -> str:
    """Indented JSON with lists of numbers (shapes) kept on one line."""
    text = json.dumps(document, indent=1)
    return NUMBER_LIST.sub(lambda match: json.dumps(json.loads(match.group())), text) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing golden files of the current spec version (never older ones)",
    )
    options = parser.parse_args(argv)
    version = rpgcore.SPEC_VERSION
    folder = HERE / version
    targets = {entry["name"]: folder / f"{entry['name']}.rpg.safetensors" for entry in PLANS}
    existing = sorted(str(path.relative_to(HERE)) for path in targets.values() if path.exists())
    chosen = [e for e in PLANS if options.overwrite or not targets[e["name"]].exists()]
    if not chosen:
        print(
            f"refusing to overwrite golden files {existing}: they freeze spec {version}. "
            "A change of the generator needs a new spec version; pass --overwrite only "
            "while that version is unreleased.",
            file=sys.stderr,
        )
        return 1
    if existing and not options.overwrite:
        print(f"keeping the frozen golden files {existing}", file=sys.stderr)
    manifest: dict[str, Any] = (
        json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"files": {}}
    )
    files = {
        key: value
        for key, value in manifest["files"].items()
        if not (options.overwrite and value["spec"] == version)
    }
    folder.mkdir(exist_ok=True)
    for entry in chosen:
        path = targets[entry["name"]]
        write(entry, path)
        files[path.relative_to(HERE).as_posix()] = describe_file(entry, path)
        print(f"wrote {path.relative_to(HERE)} ({path.stat().st_size} bytes)")
    document = {
        "about": (
            "Golden ring files: the frozen generator bit stream of each spec version "
            "(docs/spec.md, 'Frozen bit stream'). Written by tests/golden/make_golden.py, "
            "checked by tests/test_golden.py."
        ),
        "encoding": ENCODING,
        "files": dict(sorted(files.items())),
    }
    MANIFEST.write_text(dumps(document))
    print(f"wrote {MANIFEST.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
