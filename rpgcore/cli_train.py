"""The ``rpgcore train``, ``rpgcore evaluate`` and ``rpgcore demo`` commands.

They run a framework's training loop or forward pass; the framework is
imported only when the command runs (``--framework torch``), so the rest of
the command line, and ``import rpgcore``, never import one. ``evaluate``
rebuilds the network a ring file describes in any framework and loads the
file into it, whichever framework trained it.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> commands = parser.add_subparsers(dest="command")
    >>> add_parsers(commands)
    >>> parser.parse_args(["train", "--dof", "5000"]).data
    'mnist5k'

"""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType
from typing import Any

from rpgcore import adapters, spec
from rpgcore.data import DATASETS
from rpgcore.errors import ArgumentError, PlanMismatchError
from rpgcore.plan import Plan
from rpgcore.training import MODELS, SCHEDULES, Progress, TrainConfig

__all__ = ["FRAMEWORKS", "add_parsers", "run"]

FRAMEWORKS = adapters.TRAINABLE
"""Frameworks with a training loop (the adapter registry's)."""


def add_parsers(commands: Any) -> None:
    """Add ``train`` and ``demo`` to the command line's sub-parsers.

    Args:
        commands: what ``ArgumentParser.add_subparsers`` returned.

    """
    train = commands.add_parser(
        "train", help="train a network (RPG or vanilla) and save it as a ring file"
    )
    train.add_argument("--framework", choices=FRAMEWORKS, default="torch")
    train.add_argument("--model", choices=MODELS, default="small_resnet")
    train.add_argument("--width", type=int, default=16, help="small_resnet width (default 16)")
    train.add_argument(
        "--data",
        default="mnist5k",
        help=f"{' or '.join(DATASETS)} (embedded), or a path: an .npz file, "
        "an MNIST/Fashion-MNIST IDX folder or a CIFAR-10/100 binary folder (default mnist5k)",
    )
    size = train.add_mutually_exclusive_group(required=True)
    size.add_argument("--ring-size", type=int, help="ring entries N")
    size.add_argument("--dof", type=int, help="trainable parameters wanted (ring + ordinary)")
    size.add_argument("--vanilla", action="store_true", help="train the plain network")
    train.add_argument("--mode", choices=spec.MODES, default="perm_sign")
    train.add_argument("--scope", choices=("global", "block"), default="global")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=0.1)
    train.add_argument("--momentum", type=float, default=0.9)
    train.add_argument("--weight-decay", type=float, default=5e-4)
    train.add_argument("--schedule", choices=SCHEDULES, default="step")
    train.add_argument(
        "--device", default="cpu", help="cpu, cuda, cuda:1, gpu (jax), ... (default cpu)"
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--limit", type=int, help="use only this many training examples")
    train.add_argument(
        "--out", default="model.rpg.safetensors", help="checkpoint, rewritten every epoch"
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="STEPS",
        help="also checkpoint every STEPS steps within an epoch (default 0: end of epoch only)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the state file beside --out (X.state.safetensors) if there is one",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a ring file, trained in any framework, in any framework"
    )
    evaluate.add_argument("ringfile", help="the ring file (rpgcore train writes one)")
    evaluate.add_argument("--framework", choices=FRAMEWORKS, default="torch")
    evaluate.add_argument(
        "--model", choices=MODELS, help="the network (default: the one the file was trained as)"
    )
    evaluate.add_argument(
        "--width", type=int, help="small_resnet width (default: read from the ring file)"
    )
    evaluate.add_argument(
        "--data", help="dataset, as for train (default: the one the file was trained on)"
    )
    evaluate.add_argument(
        "--seed", type=int, help="the split seed used in training (default: the file's)"
    )
    evaluate.add_argument("--limit", type=int, help="as given to train (default: the file's)")

    demo = commands.add_parser(
        "demo", help="RPG against narrower vanilla networks of the same DoF, on embedded MNIST"
    )
    demo.add_argument("--framework", choices=FRAMEWORKS, default="torch")
    demo.add_argument("--out", default="rpgcore-demo", help="output folder (default rpgcore-demo)")
    demo.add_argument("--epochs", type=int, default=8, help="epochs per network (default 8)")
    demo.add_argument(
        "--widths", default="2,3,4,6,8", help="narrow vanilla widths, below 16 (default 2,3,4,6,8)"
    )
    demo.add_argument("--data", default="mnist5k", help="dataset (default mnist5k)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--progress", action="store_true", help="show a progress bar per network")


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ArgumentError(
            f"--widths {text!r}: give integers separated by commas, e.g. 2,4,8"
        ) from None


def _train(args: argparse.Namespace) -> None:
    from rpgcore.data import load_dataset

    if args.checkpoint_every < 0:  # refused before the data is loaded and the model built
        raise ArgumentError(
            f"--checkpoint-every {args.checkpoint_every}: give a number of steps, or 0 to "
            "checkpoint only at the end of each epoch"
        )
    _check_output(args.out)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        seed=args.seed,
        device=args.device,
    )
    data = load_dataset(args.data, seed=args.seed, limit=args.limit)
    train = adapters.get(args.framework, "train")
    model = train.prepare(
        args.model,
        data,
        width=args.width,
        ring_size=args.ring_size,
        dof=args.dof,
        mode=args.mode,
        scope=args.scope,
        seed=args.seed,
    )
    dof, dense = train.count_parameters(model)
    kind = "vanilla" if args.vanilla else "RPG"
    print(f"{kind} {args.model} on {data.describe()}; DoF {dof:,} of {dense:,}", flush=True)
    progress = None if args.quiet else Progress(sys.stderr)
    result = train.fit(
        model,
        data,
        config,
        progress=progress,
        checkpoint=args.out,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        record={
            "data": args.data,
            "seed": args.seed,
            "limit": args.limit,
            "model": args.model,
            "width": args.width,
        },
    )
    print(
        f"test accuracy {100 * result.test_accuracy:.2f}%, DoF {result.dof:,}, "
        f"compression {result.compression:.2f}x, {result.seconds:.1f} s; wrote {args.out}"
    )


def _sizes(
    plan: Plan, adapter: ModuleType, train: ModuleType, name: str, data: Any, width: int
) -> tuple[Any, str]:
    """The file's ring sizes under the adapter's own ring names, and the scope."""
    if len(plan.rings) == 1:
        return plan.rings[0].size, "global"
    probe = train.prepare(name, data, width=width, ring_size=1, scope="block", seed=plan.seed)
    names = list(adapter.plan_of(probe).ring_sizes)
    if len(names) != len(plan.rings):
        raise PlanMismatchError(
            f"the ring file has {len(plan.rings)} rings; {name} with one ring per block has "
            f"{len(names)}: evaluate it with the model it was trained as"
        )
    return {ours: ring.size for ours, ring in zip(names, plan.rings, strict=True)}, "block"


def _check_output(out: str) -> None:
    """Refuse an output path that cannot be written, before any training."""
    from rpgcore._atomic import checked_path

    checked_path(out)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ArgumentError(f"--out {out!r}: the folder {folder!r} does not exist; create it first")
    if os.path.isdir(out):
        raise ArgumentError(f"--out {out!r} is a folder; give a file name")


def _recorded(args: argparse.Namespace, record: dict[str, Any] | None) -> argparse.Namespace:
    """The evaluation's settings: those given, else those the ring file recorded in training."""
    given = {key: getattr(args, key) for key in ("data", "seed", "limit", "model", "width")}
    if given["data"] is None and record is None:
        raise ArgumentError(
            f"{args.ringfile!r} does not record what it was trained on (it was not written by "
            "rpgcore train); give --data (and --model, --seed, --limit as in training)"
        )
    settings = {
        key: record.get(key) if value is None and record else value for key, value in given.items()
    }
    defaults = {"seed": 0, "model": "small_resnet"}
    merged = {key: defaults.get(key) if value is None else value for key, value in settings.items()}
    return argparse.Namespace(**{**vars(args), **merged})


def _evaluate(args: argparse.Namespace) -> None:
    from rpgcore.data import load_dataset
    from rpgcore.ringfile import load_file, training_record
    from rpgcore.training import score

    plan = load_file(args.ringfile).plan
    record = training_record(args.ringfile)
    args = _recorded(args, record)
    data = load_dataset(args.data, seed=args.seed, limit=args.limit)
    if record is not None and record.get("classes") not in (None, data.classes):
        raise ArgumentError(
            f"{args.ringfile!r} was trained on {record['classes']} classes ({record.get('data')}); "
            f"{data.describe()} has {data.classes}: evaluate it on its own dataset"
        )
    adapter = adapters.get(args.framework)
    train = adapters.get(args.framework, "train")
    width = args.width if args.width is not None else plan.slots[0].shape[0]
    sizes, scope = _sizes(plan, adapter, train, args.model, data, width)
    model = train.prepare(
        args.model,
        data,
        width=width,
        ring_size=sizes,
        mode=plan.mode,
        scope=scope,
        seed=plan.seed,
    )
    adapter.load(model, args.ringfile)
    loss, accuracy = score(train.logits(model, data.x_test), data.y_test)
    dof, dense = train.count_parameters(model)
    print(
        f"{args.framework} {args.model} from {args.ringfile}: test accuracy "
        f"{100 * accuracy:.2f}%, loss {loss:.4f} on {len(data.y_test):,} images; "
        f"DoF {dof:,} of {dense:,}"
    )


def _demo(args: argparse.Namespace) -> None:
    from rpgcore import demo

    widths = _widths(args.widths)  # a typing mistake is refused before a framework loads
    adapters.get(args.framework, "train")  # a missing framework: one line and status 2
    demo.run(
        args.out,
        epochs=args.epochs,
        widths=widths,
        seed=args.seed,
        data=args.data,
        framework=args.framework,
        progress=Progress(sys.stderr) if args.progress else None,
    )


def run(args: argparse.Namespace) -> None:
    """Run ``train`` or ``demo`` with parsed arguments.

    Args:
        args: the parsed command line.

    Raises:
        RpgError: a user error (reported in one line by the command line).

    """
    if args.command == "train":
        _train(args)
    elif args.command == "evaluate":
        _evaluate(args)
    else:
        _demo(args)
