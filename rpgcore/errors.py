"""Exceptions raised by rpgcore.

Every error that bad input can cause is a subclass of :class:`RpgError`, and
its message names the offending value and what to do about it. Errors that
also belong to a built-in category inherit from it too (a bad argument is a
``ValueError``, a missing file a ``FileNotFoundError``), so callers can catch
either.

Example:
    >>> import rpgcore
    >>> try:
    ...     rpgcore.Plan.build({"w": (4, 4)}, ring_size=0)
    ... except rpgcore.errors.PlanError as error:
    ...     print(type(error).__name__)
    PlanError

"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "BackendUnavailableError",
    "ChecksumError",
    "ConversionWarning",
    "DatasetError",
    "DivergedError",
    "PlanCheckWarning",
    "PlanError",
    "PlanMismatchError",
    "LayerOrderWarning",
    "LayoutWarning",
    "ResumeError",
    "RingDtypeError",
    "RingFileError",
    "RingFileFormatError",
    "RingFileNotFoundError",
    "RingFileTruncatedError",
    "RingFileWriteError",
    "RingSizeWarning",
    "RpgError",
    "RpgWarning",
    "SettingsWarning",
    "SpecVersionError",
    "UsageError",
]


class RpgError(Exception):
    """Base class of every rpgcore error."""


class ArgumentError(RpgError, ValueError):
    """An argument has a value rpgcore cannot use."""


class PlanError(ArgumentError):
    """A plan cannot be built or used with the given arguments."""


class DatasetError(ArgumentError):
    """A dataset cannot be loaded: unknown name, missing package, or a missing or malformed file.

    The message names the dataset or path and the format that was expected.
    """


class DivergedError(ArgumentError):
    """Training stopped on a loss that is not finite; the last good checkpoint is kept."""


class ResumeError(ArgumentError):
    """A training state file belongs to another run (other settings, data or model)."""


class BackendUnavailableError(RpgError, ImportError):
    """A backend or adapter was requested that this installation lacks."""


class RingFileError(RpgError):
    """Base class of the errors raised while reading or writing a ring file."""


class RingFileNotFoundError(RingFileError, FileNotFoundError):
    """The ring file does not exist."""


class RingFileWriteError(RingFileError, OSError):
    """Writing a ring file failed (disk full, permissions); the previous file is kept."""


class RingFileTruncatedError(RingFileError):
    """The ring file ends before the data its header announces."""


class RingFileFormatError(RingFileError):
    """The file is not a safetensors file, or not an rpgcore ring file."""


class ChecksumError(RingFileError):
    """The tensors or the plan do not match the checksum stored in the file."""


class SpecVersionError(RingFileError, PlanError):
    """The file or plan names a generator spec version this rpgcore lacks."""


class PlanMismatchError(RingFileError, PlanError):
    """Rings or tensors do not fit the plan (wrong ring size, wrong shapes)."""


class RingDtypeError(RingFileError, PlanError):
    """A ring or tensor has a dtype that rpgcore cannot use there."""


class RpgWarning(UserWarning):
    """Base class of every rpgcore warning."""


class SettingsWarning(RpgWarning):
    """A ring file's layer settings (normalisation epsilon, padding) differ from the model's."""


class RingSizeWarning(RpgWarning):
    """A ring holds more entries than the parameters it generates (the paper has |W| <= sum |K|)."""


class ConversionWarning(RpgWarning):
    """rpgify left a large weight of the model ordinary (a layer kind it cannot generate)."""


class PlanCheckWarning(RpgWarning):
    """A file cannot be checked against the model's plan (it records none)."""


class LayoutWarning(RpgWarning):
    """A dense layer may read a flattened map in another order than the ring file's."""


class LayerOrderWarning(RpgWarning):
    """A ring file and a model may list their layers in different orders (module or forward)."""


class UsageError(ArgumentError):
    """A command-line mistake: an unknown command or option, or a value the command refuses.

    The ``rpgcore`` command prints its message in one line and exits with status 2.
    """
