"""Processes for the crash-safety tests (test_crash_safety.py): savers to kill, readers, writers.

Run as a script, this module is one of three child processes:

- ``harness DEST``: saves version 0 at ``DEST``, times a few saves, then runs
  one *trial* per ``trial FRACTION`` line on its standard input: it forks a
  saver that writes versions ``k, k+1, ...`` to ``DEST`` back to back,
  announcing each save's start and end on a pipe, waits until the saver has
  finished one save and started the next, sleeps ``FRACTION`` times the
  measured save duration and sends the saver SIGKILL. It answers each trial
  with a JSON line ``{"started": s, "done": d, "killed": true}``: the last
  save the saver began, the last it finished, and whether SIGKILL ended it.
  Forking from an interpreter that has already imported rpgcore makes a
  trial cost milliseconds, not a new interpreter.
- ``writer DEST BASE START END``: saves versions ``BASE, BASE+1, ...`` from
  time ``START`` to ``END`` (``time.time()``), then prints a JSON summary.
- ``reader DEST START END``: loads ``DEST`` over and over in that window, then
  prints how many reads gave version A, version B, a mix, or an error.

Version ``k`` holds ring A when ``k`` is even and ring B when it is odd, and
the extra tensor ``index`` = ``k``: a file that is not exactly one complete
save is caught by its checksum or by :func:`version`.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import rpgcore
from rpgcore import errors

RING_SIZE = 1 << 20
"""4 MiB of float32: a save takes tens of milliseconds, long enough to be killed mid-write."""
CHILD_ENVIRONMENT = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WrongContentError(AssertionError):
    """A file loaded without error but is not exactly one of the saved versions."""


def make_plan() -> rpgcore.Plan:
    return rpgcore.Plan.build({"w": (1024, 1024)}, ring_size=RING_SIZE, seed=7)


def make_rings() -> tuple[np.ndarray, np.ndarray]:
    """Rings A and B: random, so that no byte range of one equals the other's."""
    rng = np.random.default_rng(20240607)
    a = rng.standard_normal(RING_SIZE, dtype=np.float32)
    b = rng.standard_normal(RING_SIZE, dtype=np.float32)
    return a, b


class Versions:
    """Writes and recognises the numbered versions of the ring file."""

    def __init__(self) -> None:
        self.plan = make_plan()
        self.rings = make_rings()
        self._bytes = tuple(ring.tobytes() for ring in self.rings)

    def save(self, path: str | os.PathLike[str], index: int) -> None:
        extras = {"index": np.array([index], np.int64)}
        rpgcore.save(path, self.plan, self.rings[index % 2], extras=extras)

    def version(self, path: str | os.PathLike[str]) -> int:
        """The version a file holds.

        Raises:
            RingFileError: the file does not load (rpgcore's own error).
            WrongContentError: it loads, but is not exactly a saved version.

        """
        plan, rings, extras = rpgcore.load(path)
        index = extras.get("index")
        if plan != self.plan or sorted(rings) != ["global"] or sorted(extras) != ["index"]:
            raise WrongContentError(f"{path}: unexpected plan, rings or extras")
        if index is None or index.shape != (1,) or index.dtype != np.int64:
            raise WrongContentError(f"{path}: bad index tensor {index!r}")
        number = int(index[0])
        ring = rings["global"]
        if ring.dtype != np.float32 or ring.tobytes() != self._bytes[number % 2]:
            other = ring.tobytes() == self._bytes[1 - number % 2]
            raise WrongContentError(
                f"{path}: version {number} does not hold ring {'AB'[number % 2]}"
                + (" (it holds the other ring)" if other else " (its ring is neither A nor B)")
            )
        return number


# --------------------------------------------------------------------------- harness


class _Announcements:
    """Lines ``s<k>`` (save k started) and ``d<k>`` (save k done) from a forked saver."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor
        self.pending = b""
        self.started = -1
        self.done = -1

    def _take(self, data: bytes) -> None:
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            kind, number = line[:1], int(line[1:])
            if kind == b"s":
                self.started = number
            else:
                self.done = number

    def wait_for_start(self, number: int) -> bool:
        while self.started < number:
            data = os.read(self.descriptor, 4096)
            if not data:
                return False
            self._take(data)
        return True

    def drain(self) -> None:
        while data := os.read(self.descriptor, 4096):
            self._take(data)


def _saver(versions: Versions, destination: str, first: int, pipe: int) -> None:
    index = first
    while True:
        os.write(pipe, b"s%d\n" % index)
        versions.save(destination, index)
        os.write(pipe, b"d%d\n" % index)
        index += 1


def harness(destination: str) -> None:
    versions = Versions()
    versions.save(destination, 0)
    durations = []
    for index in range(1, 6):
        began = time.perf_counter()
        versions.save(destination, index)
        durations.append(time.perf_counter() - began)
    duration = statistics.median(durations)
    next_index = 6
    print(json.dumps({"duration": duration, "version": 5}), flush=True)
    for line in sys.stdin:
        command, fraction = line.split()
        if command != "trial":
            raise SystemExit(f"unknown command {command!r}")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the saver: never returns into this loop
            try:
                os.close(read_end)
                _saver(versions, destination, next_index, write_end)
            finally:
                os._exit(1)
        os.close(write_end)
        announcements = _Announcements(read_end)
        # One complete save first (it also removes stale temporary files), then
        # time the kill from the start of the next one.
        if announcements.wait_for_start(next_index + 1):
            time.sleep(float(fraction) * duration)
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        announcements.drain()
        os.close(read_end)
        report = {
            "started": announcements.started,
            "done": announcements.done,
            "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
        }
        next_index = max(next_index, announcements.started) + 1
        print(json.dumps(report), flush=True)


# --------------------------------------------------------------------------- writer and reader


def _wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def writer(destination: str, base: int, start: float, end: float) -> None:
    versions = Versions()
    _wait_until(start)
    saves, failures = 0, []
    while time.time() < end:
        try:
            versions.save(destination, base + saves)
        except errors.RpgError as error:  # pragma: no cover - reported to the test
            failures.append(f"{type(error).__name__}: {error}")
        saves += 1
    print(json.dumps({"saves": saves, "failures": failures[:5], "failed": len(failures)}))


def reader(destination: str, start: float, end: float) -> None:
    versions = Versions()
    _wait_until(start)
    counts = {"A": 0, "B": 0, "mixed": 0, "failed": 0}
    messages = []
    while time.time() < end:
        try:
            counts["AB"[versions.version(destination) % 2]] += 1
        except WrongContentError as error:  # pragma: no cover - reported to the test
            counts["mixed"] += 1
            messages.append(str(error))
        except errors.RpgError as error:  # pragma: no cover - reported to the test
            counts["failed"] += 1
            messages.append(f"{type(error).__name__}: {error}")
    print(json.dumps({**counts, "messages": messages[:5]}))


def child_command(role: str, *arguments: object) -> list[str]:
    """The command line that runs this module as ``role``."""
    return [sys.executable, str(Path(__file__)), role, *map(str, arguments)]


if __name__ == "__main__":
    role, *arguments = sys.argv[1:]
    if role == "harness":
        harness(arguments[0])
    elif role == "writer":
        writer(arguments[0], int(arguments[1]), float(arguments[2]), float(arguments[3]))
    elif role == "reader":
        reader(arguments[0], float(arguments[1]), float(arguments[2]))
    else:
        raise SystemExit(f"unknown role {role!r}")
