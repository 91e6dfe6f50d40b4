"""Files on disk: checked paths, atomic replacement and whole-file reads.

:func:`write_atomically` writes a temporary file in the destination's folder,
flushes and fsyncs it, renames it over the destination and fsyncs the folder,
so a crash never leaves a half-written file in place of a good one. A
destination that is a symbolic link keeps being a link: its target is
replaced. A process killed mid-save leaves its temporary file behind; a later
save in the same folder removes it once it is stale (see
:data:`STALE_AFTER_SECONDS`). :func:`read_regular_file` refuses anything but
a regular file (folders, FIFOs, devices), so a read never blocks or loops
forever.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "f.bin")
    >>> write_atomically(path, [b"abc", b"def"])
    >>> bytes(read_regular_file(path))
    b'abcdef'

"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rpgcore.errors import (
    ArgumentError,
    RingFileError,
    RingFileFormatError,
    RingFileNotFoundError,
    RingFileWriteError,
)

if sys.platform != "win32":
    import fcntl

__all__ = ["checked_path", "read_regular_file", "write_atomically"]

TEMPORARY_PREFIX = ".rpgcore-"
TEMPORARY_SUFFIX = ".tmp"
TEMPORARY_NAME = re.compile(
    re.escape(TEMPORARY_PREFIX) + "[a-z0-9_]{8}" + re.escape(TEMPORARY_SUFFIX)
)
"""The names :func:`tempfile.mkstemp` gives our temporary files; nothing else is ever removed."""
STALE_AFTER_SECONDS = 600.0
"""A temporary file last written this long before a new save, and whose lock no
live writer holds, was left by a killed save: that save removes it. Both times
come from the folder's own file system, so clock skew between machines does
not matter."""


def checked_path(path: object) -> Path:
    """Turn a user's path into a :class:`~pathlib.Path`, refusing what cannot be one.

    Args:
        path: a ``str`` or ``os.PathLike`` of ``str``.

    Returns:
        The path.

    Raises:
        ArgumentError: not a text path, empty, or containing a NUL character.

    Example:
        >>> checked_path("a/b.safetensors").name
        'b.safetensors'

    """
    return Path(_path_text(path))


def _path_text(path: object) -> str:
    if not isinstance(path, str | os.PathLike):
        raise ArgumentError(f"a file path must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise ArgumentError(f"a file path must be text, got {text!r}; decode it first")
    if not text or "\x00" in text:
        raise ArgumentError(f"{text!r} is not a usable file path")
    return text


def write_atomically(path: object, chunks: Iterable[bytes | memoryview]) -> None:
    """Replace ``path`` with the concatenated ``chunks``, atomically.

    Args:
        path: the destination file (or a symbolic link to it).
        chunks: the bytes to write, in order.

    Raises:
        ArgumentError: an unusable path.
        RingFileError: the folder does not exist, or the destination is a folder.
        RingFileWriteError: writing failed (disk full, permissions, name too
            long); also an ``OSError``. The previous file is unchanged and
            the temporary file is removed.

    While it is written, the temporary file holds an exclusive ``flock``
    (POSIX), released when the writer closes it or dies. After a good save,
    the folder's stale temporary files (unlocked and older than
    :data:`STALE_AFTER_SECONDS`) are removed, so killed saves cannot pile up.

    Example:
        >>> import tempfile, os
        >>> write_atomically(os.path.join(tempfile.mkdtemp(), "x"), [b"1"])

    """
    text = _path_text(path)  # as given: a Path would drop a final "/"
    if text.endswith(("/", os.sep)):
        raise RingFileError(f"cannot save to {text!r}: it names a folder; give a file name")
    link = Path(text)
    target = link.resolve() if link.is_symlink() else link
    folder = target.parent
    if not folder.is_dir():
        raise RingFileError(
            f"cannot save {text!r}: folder {str(folder)!r} does not exist; create it"
        )
    if target.is_dir():
        raise RingFileError(f"cannot save to {text!r}: it is a folder; give a file name")
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=TEMPORARY_PREFIX, suffix=TEMPORARY_SUFFIX, dir=folder
        )
    except OSError as error:
        raise RingFileWriteError(f"cannot write in {str(folder)!r}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            _lock(stream.fileno())
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        # Closed, so unlocked, from here on; but just written, so too young for any sweep.
        os.chmod(temporary, _file_mode(target))
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise RingFileWriteError(
                f"cannot save {text!r}: {error.strerror or error}; the previous file, if any, "
                "is unchanged"
            ) from error
        raise
    _sync_folder(folder)
    _remove_stale_temporaries(folder, target)


def _lock(descriptor: int) -> None:
    """Tell other savers that this temporary file is being written (POSIX ``flock``).

    A file system without locks leaves the file unlocked, and then no saver
    ever removes it either (:func:`_remove_if_stale` cannot lock it).
    """
    if sys.platform != "win32":
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _remove_stale_temporaries(folder: Path, saved: Path) -> None:
    """Remove the temporary files that killed saves left in ``folder``; never raises."""
    if sys.platform == "win32":  # no flock: a live writer's file cannot be told apart
        return
    try:
        now = saved.stat().st_mtime  # the folder's clock, not this machine's
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries if TEMPORARY_NAME.fullmatch(entry.name)]
    except OSError:
        return
    for name in names:
        with contextlib.suppress(OSError):
            _remove_if_stale(folder / name, now)


def _remove_if_stale(path: Path, now: float) -> None:
    """Unlink ``path`` if it is a regular file, old, and no live writer holds its lock.

    Raises:
        OSError: it is locked (``BlockingIOError``), gone, or cannot be opened:
            all mean "leave it".

    """
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < STALE_AFTER_SECONDS:
        return  # young files are skipped unopened: a writer may not have locked it yet
    if sys.platform != "win32":
        descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Still the file we looked at and locked, not a new one under that name.
            same = {(i.st_dev, i.st_ino) for i in (info, os.fstat(descriptor), os.lstat(path))}
            if len(same) == 1:
                os.unlink(path)
        finally:
            os.close(descriptor)


def _file_mode(target: Path) -> int:
    """Keep an existing file's permissions; a new file gets ``0o666 & ~umask``."""
    with contextlib.suppress(OSError):
        return target.stat().st_mode & 0o7777
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere, the only portable way is to set it back at once
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_regular_file(path: object) -> bytearray:
    """Read a whole regular file into a ``bytearray`` (writable, one copy).

    Args:
        path: the file.

    Returns:
        Its bytes.

    Raises:
        ArgumentError: an unusable path.
        RingFileNotFoundError: no such file.
        RingFileFormatError: a folder, FIFO, device or other non-regular file.
        RingFileError: the file cannot be read (permissions).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "f.bin")
        >>> write_atomically(path, [b"xyz"])
        >>> read_regular_file(path)
        bytearray(b'xyz')

    """
    target = checked_path(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        raise RingFileNotFoundError(
            f"ring file {str(target)!r} does not exist; check the path"
        ) from None
    except OSError as error:
        raise RingFileError(f"cannot read {str(target)!r}: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise RingFileFormatError(f"{str(target)!r} is a folder, not a ring file")
    if not stat.S_ISREG(info.st_mode):
        raise RingFileFormatError(f"{str(target)!r} is not a regular file, so not a ring file")
    try:
        with open(target, "rb") as stream:
            data = bytearray(os.fstat(stream.fileno()).st_size)
            del data[stream.readinto(data) :]
    except OSError as error:
        raise RingFileError(f"cannot read {str(target)!r}: {error.strerror}") from None
    return data
