"""Crash safety of saves with real processes: SIGKILL mid-save, readers and writers racing.

A saver process is killed at random moments spread over the duration of a
save; after every kill the destination must load and be exactly one complete
save (the last finished or the one under way), never a mix. Temporary files
that the kills leave behind must never pass for a ring file, and the next
save must remove them once they are stale. Readers running beside writers
must only ever read complete versions. The children are in crash_support.py.

POSIX only (SIGKILL, fork, flock, fsync on folders).
"""

from __future__ import annotations

import glob
import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from crash_support import CHILD_ENVIRONMENT, Versions, child_command

import rpgcore
from rpgcore import _atomic, cli
from rpgcore.errors import RingFileError, RingFileFormatError

pytestmark = pytest.mark.skipif(
    os.name != "posix" or not hasattr(os, "fork"),
    reason="SIGKILL, fork and flock are POSIX; CI runs these on Linux",
)

KILL_TRIALS = int(os.environ.get("RPG_CRASH_TRIALS", "200"))
"""Kills per run; raise it (RPG_CRASH_TRIALS=2000) for a longer local campaign."""
KILL_SEED = 20240607
READ_SECONDS = 3.0
STARTUP_SECONDS = 2.5
"""Time for the children to import numpy and rpgcore before the race starts."""


@pytest.fixture(scope="module")
def versions() -> Versions:
    return Versions()


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder / name for name in os.listdir(folder) if name.endswith(".tmp"))


def age(path: Path, reference: Path) -> None:
    """Make ``path`` look as if written well before ``reference`` (the folder's clock)."""
    old = reference.stat().st_mtime - 2 * _atomic.STALE_AFTER_SECONDS
    os.utime(path, (old, old))


def child_environment() -> dict[str, str]:
    return {**os.environ, **CHILD_ENVIRONMENT}


class Harness:
    """The process that forks savers and kills them (crash_support.harness)."""

    def __init__(self, destination: Path, log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            child_command("harness", destination),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=child_environment(),
        )
        self.duration = self._answer()["duration"]

    def _answer(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.close()
            pytest.fail(f"the crash harness stopped: {Path(self.log.name).read_text()}")
        return json.loads(line)

    def trial(self, fraction: float) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(f"trial {fraction!r}\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:  # pragma: no cover - a stuck harness
                self.process.kill()
                self.process.wait()
            self.log.close()


# --------------------------------------------------------------------------- kills


def test_kill_during_save_keeps_a_complete_version(tmp_path, versions):
    folder = tmp_path / "models"
    folder.mkdir()
    destination = folder / "model.rpg.safetensors"
    rng = random.Random(KILL_SEED)
    counts = {"before write": 0, "mid-write": 0, "after rename": 0, "complete leftover": 0}
    harness = Harness(destination, tmp_path / "harness.log")
    try:
        for trial in range(KILL_TRIALS):
            # Spread over one save, a little past its end: the kill may also
            # land after the rename, or in the next save's checksum.
            report = harness.trial(rng.uniform(0.0, 1.25))
            started, done = report["started"], report["done"]
            context = f"trial {trial}: {report}"
            assert report["killed"], context
            assert done in (started - 1, started), context
            # The destination is the last complete save or the one under way: never a mix.
            found = versions.version(destination)
            assert found in (done, started), f"{context}: destination holds version {found}"
            leftovers = temporaries(folder)
            # Older leftovers were aged below, so the saver's first save removed them.
            assert len(leftovers) <= 1, f"{context}: temporary files pile up: {leftovers}"
            for leftover in leftovers:
                assert _atomic.TEMPORARY_NAME.fullmatch(leftover.name), context
                try:  # given by name, a leftover is the save under way or an rpgcore error
                    assert versions.version(leftover) == started, context
                    counts["complete leftover"] += 1
                except RingFileError:
                    pass
                age(leftover, destination)
            if leftovers:
                counts["mid-write"] += 1
            elif found == started and started != done:
                counts["after rename"] += 1
            else:
                counts["before write"] += 1
            # Leftovers are hidden files (a shell's * skips them) and do not end in .safetensors.
            assert glob.glob(str(folder / "*")) == [str(destination)], context
            assert sorted(folder.glob("*.safetensors")) == [destination], context
    finally:
        harness.close()
    with pytest.raises(RingFileFormatError, match="folder"):
        rpgcore.load(folder)
    assert cli.main(["inspect", str(folder)]) == 2
    versions.save(destination, 10**9)  # a good save clears the last, aged, leftover
    assert temporaries(folder) == []
    print(
        f"\n{KILL_TRIALS} kills in saves of {harness.duration * 1e3:.1f} ms: "
        + ", ".join(f"{name} {count}" for name, count in counts.items())
        + ", files lost 0"
    )
    # Enough kills must land between the temporary file's creation and the rename
    # for this test to prove anything.
    assert counts["mid-write"] >= max(1, KILL_TRIALS // 10), counts


# --------------------------------------------------------------------------- concurrent access


def test_readers_only_see_complete_versions(tmp_path, versions):
    destination = tmp_path / "model.rpg.safetensors"
    versions.save(destination, 0)
    start = time.time() + STARTUP_SECONDS
    end = start + READ_SECONDS
    # Two writers (versions from 0 and from 10**9, each alternating A and B) and two readers.
    commands = [
        child_command("writer", destination, 0, start, end),
        child_command("writer", destination, 10**9, start, end),
        child_command("reader", destination, start, end),
        child_command("reader", destination, start, end),
    ]
    processes = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_environment(),
        )
        for command in commands
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=STARTUP_SECONDS + READ_SECONDS + 60)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    writers, readers = results[:2], results[2:]
    for result in writers:
        assert result["failed"] == 0, result
        assert result["saves"] >= 2, result
    reads = sum(result["A"] + result["B"] for result in readers)
    for result in readers:
        assert result["failed"] == 0, result
        assert result["mixed"] == 0, result
    assert sum(result["A"] for result in readers) > 0
    assert sum(result["B"] for result in readers) > 0
    assert versions.version(destination) >= 0
    assert temporaries(tmp_path) == []  # every save finished, so none is left
    print(
        f"\n{reads} reads ({', '.join(str(r['A'] + r['B']) for r in readers)} per reader) "
        f"during {sum(w['saves'] for w in writers)} saves "
        f"({', '.join(str(w['saves']) for w in writers)} per writer), mixed 0, failed 0"
    )


# --------------------------------------------------------------------------- stale temporary files


def test_stale_temporary_files_are_removed_by_the_next_save(tmp_path, plan):
    destination = tmp_path / "model.safetensors"
    rpgcore.save(destination, plan, plan.init_ring())
    stale = tmp_path / ".rpgcore-k1ll3d_0.tmp"
    young = tmp_path / ".rpgcore-young123.tmp"
    notes = tmp_path / ".rpgcore-notes.tmp"  # not a name mkstemp gives: never removed
    other = tmp_path / "model.safetensors.tmp"
    for path in (stale, young, notes, other):
        path.write_bytes(b"half a ring file")
    for path in (stale, notes, other):
        age(path, destination)
    folder_like = tmp_path / ".rpgcore-folder00.tmp"
    folder_like.mkdir()
    link = tmp_path / ".rpgcore-link0000.tmp"
    link.symlink_to(destination)
    os.utime(link, (0, 0), follow_symlinks=False)
    rpgcore.save(destination, plan, plan.init_ring())
    assert not stale.exists()
    for kept in (young, notes, other, folder_like, link):
        assert os.path.lexists(kept), kept
    assert destination.exists()


def test_locked_temporary_file_is_kept(tmp_path, plan):
    """An old temporary file whose writer still holds its lock belongs to a live save."""
    import fcntl

    destination = tmp_path / "model.safetensors"
    rpgcore.save(destination, plan, plan.init_ring())
    slow = tmp_path / ".rpgcore-slowsave.tmp"
    slow.write_bytes(b"a save still being written")
    age(slow, destination)
    # The lock is the writer's open file's: another descriptor, even in this process, conflicts.
    descriptor = os.open(slow, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        rpgcore.save(destination, plan, plan.init_ring())
        assert slow.exists()
    finally:
        os.close(descriptor)  # the writer finishes or dies: the lock goes with it
    rpgcore.save(destination, plan, plan.init_ring())
    assert not slow.exists()


def test_save_takes_the_lock_while_writing(tmp_path, plan, monkeypatch):
    """A save in progress holds the lock on its temporary file, so no sweep removes it."""
    import fcntl

    destination = tmp_path / "model.safetensors"
    locked = []
    real_fsync = os.fsync

    def checking_fsync(descriptor):
        if os.path.isfile(f"/proc/self/fd/{descriptor}"):  # the temporary file, not the folder
            name = os.readlink(f"/proc/self/fd/{descriptor}")
            probe = os.open(name, os.O_RDWR)
            try:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked.append(Path(name).name)
            finally:
                os.close(probe)
        real_fsync(descriptor)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to find the temporary file")
    monkeypatch.setattr(os, "fsync", checking_fsync)
    rpgcore.save(destination, plan, plan.init_ring())
    assert len(locked) == 1
    assert _atomic.TEMPORARY_NAME.fullmatch(locked[0])
