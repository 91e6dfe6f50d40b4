"""The frozen bit stream: golden ring files regenerate bit for bit on every backend.

``tests/golden/<spec version>/*.rpg.safetensors`` were written once by
``tests/golden/make_golden.py`` and ``tests/golden/manifest.json`` records,
for each file, SHA-256 digests of (byte encodings, also in the manifest's
``encoding``):

- the file itself, byte for byte;
- per slot, in plan order: the indices ``u(k)`` as little-endian int32, the
  signs ``s(k)`` as int8 (``0x01`` for +1, ``0xff`` for -1), the kernel
  expanded from the file's ring as little-endian float32 in the canonical
  shape (row-major), and the same kernel moved to a framework's layout with
  :mod:`rpgcore.layouts`;
- per ring: the stored ring and the plan's initial ring (spec section 6), as
  little-endian float32.

The digests were produced by the code of the time and frozen; these tests
detect any later change. A change of the generator is a new spec version
(``docs/spec.md``, "Frozen bit stream"), and files of older versions must keep
loading and generating exactly as recorded. The values are also confirmed by
the independent scalar reference (``tests/independent/scalar_reference.py``),
which shares no code with rpgcore.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import REQUIRED
from independent import scalar_reference as scalar

import rpgcore
from rpgcore import layouts, ringfile, safetensors_io, spec
from rpgcore.errors import SpecVersionError

GOLDEN = Path(__file__).parent / "golden"
MANIFEST: dict[str, Any] = json.loads((GOLDEN / "manifest.json").read_text())
FILES: dict[str, dict[str, Any]] = MANIFEST["files"]
MAX_TOTAL_BYTES = 100_000
UNKNOWN_SPEC = "rpg-v999"


def _id(key: str) -> str:
    """``rpg-v1/name.rpg.safetensors`` -> ``rpg-v1/name``: the test id names the spec version."""
    return key.removesuffix(".rpg.safetensors")


KEYS = pytest.mark.parametrize("key", sorted(FILES), ids=[_id(key) for key in sorted(FILES)])


def _sha256(array: Any, dtype: str) -> str:
    data = np.ascontiguousarray(np.asarray(array).astype(np.dtype(dtype).newbyteorder("<")))
    return hashlib.sha256(data.tobytes()).hexdigest()


def _frozen(entry: dict[str, Any], key: str, what: str) -> str:
    return (
        f"spec {entry['spec']}: {key}: {what} differs from the frozen golden value. A change "
        "of the generator's bit stream needs a new spec version (docs/spec.md, 'Frozen bit "
        "stream'); never rewrite the golden files of a released version"
    )


def _to_layout(kernel: np.ndarray, slot: dict[str, Any]) -> np.ndarray:
    return layouts.to_native(kernel, slot["layout"], **slot["layout_args"])


def _check_kernel(entry: dict[str, Any], key: str, slot: dict[str, Any], kernel: Any) -> None:
    kernel = np.asarray(kernel)
    assert kernel.dtype == np.float32, _frozen(entry, key, f"dtype of {slot['name']}")
    kernel = kernel.reshape(slot["shape"])
    assert _sha256(kernel, "float32") == slot["kernel_sha256"], _frozen(
        entry, key, f"kernel of slot {slot['name']!r}"
    )
    moved = _to_layout(kernel, slot)
    assert list(moved.shape) == slot["layout_shape"]
    assert _sha256(moved, "float32") == slot["layout_sha256"], _frozen(
        entry, key, f"{slot['layout']} kernel of slot {slot['name']!r}"
    )


def _load(key: str) -> ringfile.RingFile:
    return ringfile.load_file(GOLDEN / key)


def _known_layouts() -> set[str]:
    """Every layout rpgcore.layouts can move a canonical kernel to, the canonical one included."""
    return set(layouts.LAYOUTS)


# --------------------------------------------------------------------------- the files


def test_manifest_lists_exactly_the_golden_files() -> None:
    on_disk = {path.relative_to(GOLDEN).as_posix() for path in GOLDEN.glob("*/*.safetensors")}
    assert on_disk == set(FILES)
    total = sum((GOLDEN / key).stat().st_size for key in FILES)
    assert total < MAX_TOTAL_BYTES, f"golden files take {total} bytes; keep them small"
    for key, entry in FILES.items():
        assert key.startswith(f"{entry['spec']}/"), f"{key} must live in its spec's folder"


@KEYS
def test_golden_file_is_unchanged(key: str) -> None:
    entry = FILES[key]
    data = (GOLDEN / key).read_bytes()
    assert len(data) == entry["bytes"], _frozen(entry, key, "the file size")
    assert hashlib.sha256(data).hexdigest() == entry["file_sha256"], _frozen(
        entry, key, "the file's SHA-256"
    )


@KEYS
def test_golden_file_loads_as_recorded(key: str) -> None:
    entry = FILES[key]
    content = _load(key)
    plan = content.plan
    assert plan.spec == entry["spec"], _frozen(entry, key, "the spec version")
    assert (plan.mode, plan.seed) == (entry["mode"], entry["seed"])
    assert [slot.name for slot in plan.slots] == [slot["name"] for slot in entry["slots"]]
    for slot, recorded in zip(plan.slots, entry["slots"], strict=True):
        assert (slot.ring, list(slot.shape)) == (recorded["ring"], recorded["shape"])
    assert list(content.rings) == list(entry["rings"])
    for name, ring in content.rings.items():
        assert ring.dtype == np.float32
        assert _sha256(ring, "float32") == entry["rings"][name]["ring_sha256"], _frozen(
            entry, key, f"stored ring {name!r}"
        )
    extras = entry.get("extras", {})
    assert sorted(content.extras) == sorted(extras)
    for name, recorded in extras.items():
        array = content.extras[name]
        assert (str(array.dtype), list(array.shape)) == (recorded["dtype"], recorded["shape"])
        assert _sha256(array, array.dtype.str) == recorded["sha256"], _frozen(
            entry, key, f"extra {name!r}"
        )
    assert list(content.buffers) == entry.get("buffers", [])
    model = None if content.model is None else hashlib.sha256(content.model.encode()).hexdigest()
    assert model == entry.get("model_sha256")
    if entry["spec"] == spec.SPEC_VERSION:
        # The current code still builds the same plan (scales and init_std included).
        build = entry["build"]
        rebuilt = rpgcore.Plan.build(
            {name: tuple(shape) for name, shape in build["slots"].items()},
            ring_size=build["ring_size"],
            groups=build["groups"],
            seed=build["seed"],
            mode=build["mode"],
            scaling=build["scaling"],
        )
        assert rebuilt == plan, _frozen(entry, key, "Plan.build of the recorded arguments")


# --------------------------------------------------------------------------- regeneration


def _usable(backend: ModuleType) -> ModuleType:
    """The backend, when its device is there too (CuPy needs a CUDA device)."""
    name = backend.__name__.rsplit(".", 1)[-1]
    if name == "cupy":
        cupy = pytest.importorskip("cupy")
        if not cupy.cuda.is_available():
            if name in REQUIRED:
                pytest.fail("RPG_REQUIRE_BACKENDS requires cupy, but no CUDA device is available")
            pytest.skip("cupy has no CUDA device")
    return backend


@KEYS
def test_backend_regenerates_golden_bits(key: str, backend: ModuleType) -> None:
    backend = _usable(backend)
    entry = FILES[key]
    content = _load(key)
    plan = content.plan
    for ring in plan.rings:
        initial = backend.to_numpy(backend.init_ring(plan.geometry(ring.name)))
        assert _sha256(initial, "float32") == entry["rings"][ring.name]["init_sha256"], _frozen(
            entry, key, f"initial ring {ring.name!r} from {backend.__name__}"
        )
    rings = {name: backend.from_numpy(array) for name, array in content.rings.items()}
    for slot, recorded in zip(plan.slots, entry["slots"], strict=True):
        geometry = plan.geometry(slot.ring)
        stop = slot.offset + slot.size
        indices = backend.ring_indices(geometry, slot.offset, stop)
        signs = backend.ring_signs(geometry, slot.offset, stop)
        where = f"slot {slot.name!r} from {backend.__name__}"
        assert _sha256(backend.to_numpy(indices), "int32") == recorded["indices_sha256"], _frozen(
            entry, key, f"indices of {where}"
        )
        assert _sha256(backend.to_numpy(signs), "int8") == recorded["signs_sha256"], _frozen(
            entry, key, f"signs of {where}"
        )
        kernel = backend.expand(rings[slot.ring], indices, signs, slot.scale)
        _check_kernel(entry, key, recorded, backend.to_numpy(kernel))


@KEYS
def test_plan_regenerates_golden_bits(key: str) -> None:
    # The public API (Plan.indices, signs, init_ring, expand) on top of the backends.
    entry = FILES[key]
    content = _load(key)
    plan = content.plan
    initial = plan.init_ring()
    for name, recorded in entry["rings"].items():
        assert _sha256(initial[name], "float32") == recorded["init_sha256"]
    kernels = plan.expand(content.rings)
    for recorded in entry["slots"]:
        name = recorded["name"]
        assert _sha256(plan.indices(name), "int32") == recorded["indices_sha256"]
        assert _sha256(plan.signs(name), "int8") == recorded["signs_sha256"]
        _check_kernel(entry, key, recorded, kernels[name])


@KEYS
def test_independent_reference_confirms_golden_bits(key: str) -> None:
    # The scalar reference follows docs/spec.md one position at a time and
    # shares no code with rpgcore: the frozen values are the spec's, not an
    # accident of the vectorised code that wrote them.
    entry = FILES[key]
    if entry["spec"] != scalar.SPEC_VERSION:
        pytest.skip(f"the scalar reference implements {scalar.SPEC_VERSION}, not {entry['spec']}")
    content = _load(key)
    document = json.loads(content.plan.to_json())
    build = entry["build"]
    built = scalar.build_plan(
        build["slots"],
        build["ring_size"],
        seed=build["seed"],
        mode=build["mode"],
        groups=build["groups"],
        scaling=build["scaling"],
    )
    assert scalar.plan_to_json(built) == content.plan.to_json()
    generated = scalar.generate(document)
    for name, recorded in entry["rings"].items():
        bits = np.array(generated["rings"][name]["init_bits"], dtype=np.uint32)
        assert _sha256(bits, "uint32") == recorded["init_sha256"], _frozen(
            entry, key, f"independent initial ring {name!r}"
        )
    stored = {name: ring.tolist() for name, ring in content.rings.items()}
    kernels = scalar.kernels(document, rings=stored)
    for recorded in entry["slots"]:
        name = recorded["name"]
        indices = np.array(generated["slots"][name]["indices"], dtype=np.int32)
        signs = np.array(generated["slots"][name]["signs"], dtype=np.int8)
        assert _sha256(indices, "int32") == recorded["indices_sha256"], _frozen(
            entry, key, f"independent indices of {name!r}"
        )
        assert _sha256(signs, "int8") == recorded["signs_sha256"], _frozen(
            entry, key, f"independent signs of {name!r}"
        )
        _check_kernel(entry, key, recorded, np.array(kernels[name], dtype=np.float32))


# --------------------------------------------------------------------------- spec versions


def _rewrite(source: Path, target: Path, *, metadata_spec: str, plan_spec: str) -> None:
    """Copy a golden file with other spec versions and a checksum that matches them.

    The checksum is recomputed, so the version is the only thing wrong.
    """
    tensors, metadata = safetensors_io.decode(source.read_bytes())
    written = f'{{"spec":"{metadata["spec"]}",'
    assert metadata["plan"].startswith(written)  # spec section 8: the plan JSON starts so
    plan_json = f'{{"spec":"{plan_spec}",' + metadata["plan"].removeprefix(written)
    buffers = ringfile.buffer_names(metadata)
    metadata = {
        **metadata,
        "spec": metadata_spec,
        "plan": plan_json,
        "checksum": ringfile.checksum(plan_json, tensors, buffers, metadata.get("model")),
    }
    target.write_bytes(safetensors_io.encode(tensors, metadata))


CURRENT_KEYS = sorted(key for key, entry in FILES.items() if entry["spec"] == spec.SPEC_VERSION)


@pytest.mark.parametrize("where", ["metadata", "plan", "both"])
def test_unknown_spec_version_is_rejected(where: str, tmp_path: Path) -> None:
    assert UNKNOWN_SPEC not in spec.SUPPORTED_SPECS
    for key in CURRENT_KEYS:
        source = GOLDEN / key
        control = tmp_path / "control.rpg.safetensors"
        same = spec.SPEC_VERSION
        _rewrite(source, control, metadata_spec=same, plan_spec=same)
        assert ringfile.load_file(control).plan == _load(key).plan  # the rewrite itself is sound
        altered = tmp_path / "altered.rpg.safetensors"
        _rewrite(
            source,
            altered,
            metadata_spec=UNKNOWN_SPEC if where in ("metadata", "both") else same,
            plan_spec=UNKNOWN_SPEC if where in ("plan", "both") else same,
        )
        with pytest.raises(SpecVersionError, match=UNKNOWN_SPEC):
            rpgcore.load(altered)
        with pytest.raises(SpecVersionError, match=UNKNOWN_SPEC):
            ringfile.load_file(altered)


def test_every_supported_spec_has_golden_files() -> None:
    # A new spec version comes with its golden files; an old one keeps loading.
    versions = {entry["spec"] for entry in FILES.values()}
    assert versions == set(spec.SUPPORTED_SPECS), (
        f"golden files exist for {sorted(versions)} but rpgcore reads "
        f"{sorted(spec.SUPPORTED_SPECS)}: add golden files for a new version with "
        "python tests/golden/make_golden.py, and never drop an old version's"
    )


def test_golden_files_cover_every_mode_and_layout() -> None:
    current = [FILES[key] for key in CURRENT_KEYS]
    modes = {entry["mode"] for entry in current}
    assert modes == set(spec.MODES), (
        f"spec {spec.SPEC_VERSION}: golden files cover modes {sorted(modes)}, the code knows "
        f"{sorted(spec.MODES)}; add a plan to tests/golden/make_golden.py"
    )
    used = {slot["layout"] for entry in current for slot in entry["slots"]}
    assert used == _known_layouts(), (
        f"spec {spec.SPEC_VERSION}: golden files cover layouts {sorted(used)}, rpgcore.layouts "
        f"knows {sorted(_known_layouts())}; add a slot to tests/golden/make_golden.py"
    )
    assert any(len(entry["rings"]) >= 2 for entry in current), "no golden plan with two rings"
    assert any(entry["seed"] == 2**64 - 1 for entry in current), "no golden plan with seed 2**64-1"
    assert any("model_sha256" in entry and entry.get("buffers") for entry in current), (
        "no golden file with a model description and buffers"
    )


def test_make_golden_refuses_to_overwrite(capsys: pytest.CaptureFixture[str]) -> None:
    location = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    assert location is not None
    assert location.loader is not None
    module = importlib.util.module_from_spec(location)
    location.loader.exec_module(module)
    before = {path: path.read_bytes() for path in GOLDEN.rglob("*") if path.is_file()}
    assert module.main([]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    after = {path: path.read_bytes() for path in GOLDEN.rglob("*") if path.is_file()}
    assert after == before
