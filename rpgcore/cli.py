"""The ``rpgcore`` command line.

Commands:

- ``rpgcore inspect FILE``: print a ring file's plan, degrees of freedom,
  compression ratio and ring statistics as readable tables.
- ``rpgcore init ARCH FILE``: build the plan of a known architecture
  (``resnet18``, ``resnet34``) and save its initial ring file; an existing
  FILE is replaced only with ``--force``.
- ``rpgcore train``: train a network, RPG or vanilla, on an embedded or
  local dataset; checkpoints are ring files (:mod:`rpgcore.cli_train`).
- ``rpgcore evaluate FILE``: evaluate a ring file, trained in any
  framework, with the same network in any framework.
- ``rpgcore demo``: RPG against narrower vanilla networks of the same DoF.

User errors (:class:`~rpgcore.errors.RpgError`, an unknown option, a bad
value) print one line, ``rpgcore: error: ...``, on standard error and exit
with status 2. ``rpgcore --debug COMMAND ...`` raises them instead, with the
full traceback. Anything else is a bug and always shows its traceback.

Example:
    >>> from rpgcore.cli import main
    >>> main(["--version"])  # doctest: +ELLIPSIS
    rpgcore ...
    0

"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from rpgcore import cli_train, ringfile, spec
from rpgcore._text import aligned
from rpgcore._version import __version__
from rpgcore.architectures import ARCHITECTURES, buffers
from rpgcore.errors import RpgError, RpgWarning, UsageError
from rpgcore.plan import Plan

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _count(value: int) -> str:
    return f"{value:,}"


def _stats(array: np.ndarray[Any, Any]) -> list[str]:
    values = array.astype(np.float64)
    finite = bool(np.isfinite(values).all())
    stats = [values.mean(), values.std(), values.min(), values.max()]
    return [f"{v:.4g}" for v in stats] + (["yes"] if finite else ["NO"])


def describe(path: str) -> str:
    """Describe a ring file as text (what ``rpgcore inspect`` prints).

    Args:
        path: the ring file.

    Returns:
        The report, several lines.

    Raises:
        RingFileError: the file is missing, damaged or not a ring file.

    Example:
        >>> import os, tempfile
        >>> plan = Plan.build({"w": (4, 4)}, ring_size=5)
        >>> p = os.path.join(tempfile.mkdtemp(), "r.safetensors")
        >>> ringfile.save(p, plan, plan.init_ring())
        >>> "compression" in describe(p)
        True

    """
    plan, rings, extras = ringfile.load(path)
    metadata = ringfile.read_metadata(path)
    state = set(ringfile.buffer_names(metadata))
    extra_count = sum(int(a.size) for name, a in extras.items() if name not in state)
    state_count = sum(int(a.size) for name, a in extras.items() if name in state)
    dof = plan.ring_parameters + extra_count
    dense = plan.generated_size + extra_count
    lines = [
        f"ring file    {path} ({_count(os.path.getsize(path))} bytes, checksum ok)",
        f"spec         {plan.spec} (written by rpgcore {metadata.get('rpgcore', '?')})",
        f"plan         mode {plan.mode}, seed {plan.seed}, "
        f"{len(plan.slots)} slots, {len(plan.rings)} ring(s)",
        f"generated    {_count(plan.generated_size)} parameters (M)",
        f"ring         {_count(plan.ring_parameters)} parameters (N, trainable)",
        f"extras       {_count(extra_count)} parameters and {_count(state_count)} buffer values "
        f"in {len(extras)} tensors",
        f"DoF          {_count(dof)} of {_count(dense)} "
        f"for the dense model ({100 * dof / dense:.2f}%)",
        f"compression  {plan.compression_ratio:.2f}x (M / ring parameters)",
        "",
    ]
    ring_rows = []
    for ring in plan.rings:
        low, high = ring.generated // ring.size, -(-ring.generated // ring.size)
        uses = f"{low}" if low == high else f"{low}-{high}"
        array = rings[ring.name]
        ring_rows.append(
            [
                ring.name,
                ring.id,
                _count(ring.size),
                _count(ring.generated),
                uses,
                str(array.dtype),
                f"{ring.init_std:.4g}",
                *_stats(array),
            ]
        )
    lines += aligned(
        [
            "ring",
            "id",
            "size",
            "generated",
            "uses/entry",
            "dtype",
            "init_std",
            "mean",
            "std",
            "min",
            "max",
            "finite",
        ],
        ring_rows,
        right={1, 2, 3, 6, 7, 8, 9, 10},
    )
    lines.append("")
    slot_rows = [
        [s.name, "x".join(map(str, s.shape)), s.ring, _count(s.size), f"{s.scale:.4g}"]
        for s in plan.slots
    ]
    lines += aligned(["slot", "shape", "ring", "parameters", "scale"], slot_rows, right={3, 4})
    return "\n".join(lines)


def _init(args: argparse.Namespace) -> None:
    if os.path.lexists(args.file) and not os.path.isdir(args.file) and not args.force:
        raise UsageError(
            f"{args.file} already exists; pass --force to replace it (its ring would be lost)"
        )
    generated, extras = ARCHITECTURES[args.arch]()
    state = buffers(extras)
    extra_count = sum(math.prod(shape) for name, shape in extras.items() if name not in state)
    if args.dof is not None:
        ring_size = args.dof - extra_count
        if ring_size < 1:
            raise UsageError(
                f"--dof {args.dof} leaves no ring: the {args.arch} extras alone have {extra_count} "
                "parameters; ask for more"
            )
    else:
        ring_size = args.ring_size
    plan = Plan.build(generated, ring_size=ring_size, seed=args.seed, mode=args.mode)
    tensors = {name: _initial_extra(name, shape) for name, shape in extras.items()}
    ringfile.save(args.file, plan, plan.init_ring(), extras=tensors, buffers=state)
    print(
        f"wrote {args.file}: {args.arch}, ring {ring_size:,}, "
        f"{plan.generated_size:,} generated parameters"
    )


def _initial_extra(name: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Standard initial values: batch norm scale 1 and variance 1, everything else 0."""
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    if name.endswith((".running_var", "bn1.weight", "bn2.weight", "downsample.1.weight")):
        return np.ones(shape, dtype=np.float32)
    return np.zeros(shape, dtype=np.float32)


def _parser() -> _Parser:
    parser = _Parser(
        prog="rpgcore",
        description="Recurrent Parameter Generators: create, inspect and train ring files.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on a user error, raise it with its traceback instead of printing one line",
    )
    parser.add_argument(
        "--version", action="version", version=f"rpgcore {__version__} (spec {spec.SPEC_VERSION})"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    inspect = commands.add_parser("inspect", help="describe a ring file")
    inspect.add_argument("file", help="a ring file (.safetensors)")
    init = commands.add_parser("init", help="save the initial ring file of a known architecture")
    init.add_argument("arch", choices=sorted(ARCHITECTURES), help="architecture")
    init.add_argument("file", help="where to write the ring file")
    init.add_argument("--force", action="store_true", help="replace FILE if it exists")
    size = init.add_mutually_exclusive_group()
    size.add_argument(
        "--ring-size", type=int, default=45_000, help="ring entries N (default 45000)"
    )
    size.add_argument(
        "--dof", type=int, help="trainable parameters wanted (ring + trainable extras)"
    )
    init.add_argument("--seed", type=int, default=0, help="seed in [0, 2**64) (default 0)")
    init.add_argument("--mode", choices=spec.MODES, default="perm_sign", help="generator mode")
    cli_train.add_parsers(commands)
    return parser


def _command_index(arguments: list[str]) -> int:
    """Where the command is among ``arguments``: global options come before it."""
    for index, argument in enumerate(arguments):
        if not argument.startswith("-"):
            return index
    return len(arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    A user error (any :class:`~rpgcore.errors.RpgError`, including
    :class:`~rpgcore.errors.UsageError` for what argparse refuses) prints
    one line, ``rpgcore: error: <first line of the message>``, and returns 2.
    Other exceptions are bugs: they propagate with their traceback.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.
            ``--debug`` before the command makes user errors propagate too.

    Returns:
        The exit status: 0 on success, 2 for a user error.

    Raises:
        RpgError: a user error, only with ``--debug``.

    Example:
        >>> main(["inspect", "/no/such/file.safetensors"])
        2

    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that a usage error can be raised too.
    debug = "--debug" in arguments[: _command_index(arguments)]
    with warnings.catch_warnings():
        warnings.simplefilter("default", RpgWarning)  # each shown once, whatever the filters
        warnings.showwarning = _one_line
        return _run(arguments, debug)


def _one_line(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """Rpgcore's warnings as one line each, as its errors are (others as Python prints them)."""
    if issubclass(category, RpgWarning):
        print(f"rpgcore: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, *args, **kwargs), end="", file=sys.stderr)


def _run(arguments: list[str], debug: bool) -> int:
    """The command line after its warnings are set up (see :func:`main`)."""
    try:
        args = _parser().parse_args(arguments)
        if args.command == "inspect":
            print(describe(args.file))
        elif args.command == "init":
            _init(args)
        else:
            cli_train.run(args)
    except SystemExit as exit_request:  # --help and --version
        return int(exit_request.code or 0)
    except BrokenPipeError:  # the reader went away (``rpgcore inspect F | head``)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except RpgError as error:
        if debug:
            raise
        print(
            f"rpgcore: error: {str(error).splitlines()[0] if str(error) else type(error).__name__}",
            file=sys.stderr,
        )
        return 2
    return 0
