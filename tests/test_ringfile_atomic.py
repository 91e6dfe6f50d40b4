"""Ring file saving: a failed save changes nothing, a good one replaces the file atomically
and keeps its permission bits.
"""

from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest
from ringfile_support import assert_same_array, listing, small_file

import rpgcore
from rpgcore.errors import (
    ArgumentError,
    PlanError,
    PlanMismatchError,
    RingDtypeError,
    RingFileError,
    RingFileWriteError,
)

# --------------------------------------------------------------------------- saving failures


def bad_save_cases(plan: rpgcore.Plan, multi_plan: rpgcore.Plan):
    ring = plan.init_ring()["global"]
    return {
        "wrong shape": (plan, ring.reshape(7, 1), None, PlanMismatchError, r"\(7, 1\)"),
        "wrong length": (plan, np.zeros(8, np.float32), None, PlanMismatchError, r"\(8,\)"),
        "missing ring": (plan, {}, None, PlanMismatchError, r"missing \['global'\]"),
        "extra ring": (plan, {"global": ring, "x": ring}, None, PlanMismatchError, "unknown"),
        "multi missing": (
            multi_plan,
            {"body": np.zeros(6, np.float32)},
            None,
            PlanMismatchError,
            "head",
        ),
        "bare array, two rings": (multi_plan, np.zeros(6), None, PlanError, "2 rings"),
        "int32 ring": (plan, np.zeros(7, np.int32), None, RingDtypeError, "int32"),
        "int64 ring": (plan, np.arange(7), None, RingDtypeError, "int64"),
        "bool ring": (plan, np.ones(7, bool), None, RingDtypeError, "bool"),
        "complex extra": (plan, ring, {"z": np.ones(2, complex)}, RingDtypeError, "complex128"),
        "string extra": (plan, ring, {"s": np.array(["a"])}, RingDtypeError, "cannot be stored"),
        "object extra": (plan, ring, {"o": np.array([None])}, RingDtypeError, "object"),
        "empty extra name": (plan, ring, {"": np.ones(1)}, ArgumentError, "non-empty"),
    }


CASES = [
    "wrong shape",
    "wrong length",
    "missing ring",
    "extra ring",
    "multi missing",
    "bare array, two rings",
    "int32 ring",
    "int64 ring",
    "bool ring",
    "complex extra",
    "string extra",
    "object extra",
    "empty extra name",
]


@pytest.mark.parametrize("case", CASES)
def test_failed_save_leaves_destination_untouched(tmp_path, plan, multi_plan, case):
    target_plan, rings, extras, error, message = bad_save_cases(plan, multi_plan)[case]
    path = tmp_path / "model.safetensors"
    good = small_file(path, target_plan if target_plan is plan else plan)
    before = listing(tmp_path)
    with pytest.raises(error, match=message):
        rpgcore.save(path, target_plan, rings, extras=extras)
    assert path.read_bytes() == good
    assert listing(tmp_path) == before


@pytest.mark.parametrize("case", CASES)
def test_failed_save_creates_nothing(tmp_path, plan, multi_plan, case):
    target_plan, rings, extras, error, _ = bad_save_cases(plan, multi_plan)[case]
    with pytest.raises(error):
        rpgcore.save(tmp_path / "new.safetensors", target_plan, rings, extras=extras)
    assert listing(tmp_path) == []


def test_save_into_missing_folder(tmp_path, plan):
    path = tmp_path / "no" / "such" / "model.safetensors"
    with pytest.raises(RingFileError, match="does not exist"):
        rpgcore.save(path, plan, plan.init_ring())
    assert listing(tmp_path) == []


def test_save_onto_folder_is_a_ring_file_error(tmp_path, plan):
    folder = tmp_path / "model.safetensors"
    folder.mkdir()
    try:
        with pytest.raises(RingFileError, match="folder"):
            rpgcore.save(folder, plan, plan.init_ring())
    finally:
        assert listing(tmp_path) == ["model.safetensors"]
        assert folder.is_dir()


# --------------------------------------------------------------------------- atomicity


def two_versions(plan):
    first = plan.init_ring()["global"]
    return first, (first * 2 + 1).astype(np.float32)


def assert_intact(tmp_path, path, plan, ring, good: bytes) -> None:
    assert path.read_bytes() == good
    loaded_plan, rings, _ = rpgcore.load(path)
    assert loaded_plan == plan
    assert_same_array(rings["global"], ring)
    assert listing(tmp_path) == [path.name]
    assert not [name for name in listing(tmp_path) if name.endswith(".tmp")]


@pytest.mark.parametrize("exception", [OSError(errno.ENOSPC, "No space left"), KeyboardInterrupt()])
def test_fsync_failure_keeps_old_file(tmp_path, plan, monkeypatch, exception):
    first, second = two_versions(plan)
    path = tmp_path / "model.safetensors"
    rpgcore.save(path, plan, first)
    good = path.read_bytes()

    def failing_fsync(descriptor):
        raise exception

    monkeypatch.setattr(os, "fsync", failing_fsync)
    # An OSError becomes a RingFileWriteError (still an OSError); an interrupt stays one.
    expected = RingFileWriteError if isinstance(exception, OSError) else type(exception)
    with pytest.raises(expected):
        rpgcore.save(path, plan, second)
    monkeypatch.undo()
    assert_intact(tmp_path, path, plan, first, good)


def test_replace_failure_keeps_old_file(tmp_path, plan, monkeypatch):
    first, second = two_versions(plan)
    path = tmp_path / "model.safetensors"
    rpgcore.save(path, plan, first)
    good = path.read_bytes()
    calls = []

    def failing_replace(source, destination):
        calls.append(os.path.basename(source))
        assert os.path.exists(source)  # the new file is fully written by now
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(RingFileWriteError, match="cross-device"):
        rpgcore.save(path, plan, second)
    monkeypatch.undo()
    assert len(calls) == 1
    assert calls[0].endswith(".tmp")
    assert_intact(tmp_path, path, plan, first, good)


def test_write_failure_mid_file_keeps_old_file(tmp_path, plan, monkeypatch):
    first, second = two_versions(plan)
    path = tmp_path / "model.safetensors"
    rpgcore.save(path, plan, first, extras={"b": np.ones(3)})
    good = path.read_bytes()
    real_fdopen = os.fdopen
    written = []

    class FailingStream:
        def __init__(self, stream):
            self._stream = stream

        def write(self, data):
            if written:  # the header went through; fail on the tensor data
                raise OSError(errno.EIO, "Input/output error")
            written.append(len(data))
            return self._stream.write(data)

        def __getattr__(self, name):
            return getattr(self._stream, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return self._stream.__exit__(*exc_info)

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: FailingStream(real_fdopen(*a, **k)))
    with pytest.raises(RingFileWriteError, match="Input/output"):
        rpgcore.save(path, plan, second, extras={"b": np.zeros(3)})
    monkeypatch.undo()
    assert written  # the failure really came mid-file
    assert path.read_bytes() == good
    _, rings, extras = rpgcore.load(path)
    assert_same_array(rings["global"], first)
    assert_same_array(extras["b"], np.ones(3))
    assert listing(tmp_path) == [path.name]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604, 0o755])
def test_save_keeps_permission_bits(tmp_path, plan, mode):
    first, second = two_versions(plan)
    path = tmp_path / "model.safetensors"
    rpgcore.save(path, plan, first)
    os.chmod(path, mode)
    rpgcore.save(path, plan, second)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert_same_array(rpgcore.load(path)[1]["global"], second)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_file_follows_umask(tmp_path, plan, umask):
    old = os.umask(umask)
    try:
        rpgcore.save(tmp_path / "new.safetensors", plan, plan.init_ring())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.safetensors").stat().st_mode) == 0o666 & ~umask


def test_successful_save_leaves_one_file(tmp_path, plan):
    first, second = two_versions(plan)
    path = tmp_path / "model.safetensors"
    rpgcore.save(path, plan, first)
    assert listing(tmp_path) == ["model.safetensors"]
    rpgcore.save(path, plan, second)
    assert listing(tmp_path) == ["model.safetensors"]
    assert_same_array(rpgcore.load(path)[1]["global"], second)


def test_save_relative_path_in_current_folder(tmp_path, plan, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rpgcore.save("model.safetensors", plan, plan.init_ring())
    assert listing(tmp_path) == ["model.safetensors"]
    assert rpgcore.load("model.safetensors")[0] == plan
