"""Tests of the ``rpgcore`` command line, in-process and as real subprocesses."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rpgcore
from rpgcore.architectures import resnet
from rpgcore.cli import main

RESNET18_GENERATED = 11_166_912
GENERATED, EXTRAS = resnet(18)
# Batch-norm statistics and counters are state, not degrees of freedom.
STATE = {
    n
    for n in EXTRAS
    if n.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked")
}
TRAINABLE_COUNT = sum(math.prod(shape) for name, shape in EXTRAS.items() if name not in STATE)
STATE_COUNT = sum(math.prod(shape) for name, shape in EXTRAS.items() if name in STATE)
SCRIPT = Path(sys.executable).parent / ("rpgcore.exe" if os.name == "nt" else "rpgcore")


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpgcore", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.skip(f"no installed rpgcore script next to {sys.executable}")
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def run_in_process(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "resnet18.rpg.safetensors"
    assert main(["init", "resnet18", str(path)]) == 0
    return path


def check_inspect_output(text: str, path: Path, ring_size: int, seed: int = 0) -> None:
    assert "rpg-v1" in text
    assert f"{RESNET18_GENERATED:,}" in text
    assert "11,166,912 parameters (M)" in text
    assert f"{ring_size:,} parameters (N, trainable)" in text
    assert f"{RESNET18_GENERATED / ring_size:.2f}x" in text
    assert f"seed {seed}" in text
    assert f"{len(GENERATED)} slots" in text
    assert "checksum ok" in text
    assert str(path) in text
    slot_lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    for name, shape in GENERATED.items():
        assert name in slot_lines, name
        assert "x".join(map(str, shape)) in slot_lines[name]
        assert f"{math.prod(shape):,}" in slot_lines[name]


def check_resnet_file(path: Path, ring_size: int, seed: int = 0) -> None:
    plan, rings, extras = rpgcore.load(path)
    assert plan == rpgcore.Plan.build(GENERATED, ring_size=ring_size, seed=seed)
    assert plan.generated_size == RESNET18_GENERATED
    assert plan.slot_names == tuple(GENERATED)
    assert rings["global"].shape == (ring_size,)
    assert rings["global"].dtype == np.float32
    np.testing.assert_array_equal(rings["global"], plan.init_ring()["global"])
    assert sorted(extras) == sorted(EXTRAS)
    for name, shape in EXTRAS.items():
        assert extras[name].size == math.prod(shape), name
        assert extras[name].shape == shape, name
    assert extras["bn1.running_var"].tolist() == [1.0] * 64
    assert extras["bn1.weight"].tolist() == [1.0] * 64
    assert not extras["bn1.running_mean"].any()
    assert not extras["fc.weight"].any()
    assert extras["bn1.num_batches_tracked"].dtype == np.int64


# --------------------------------------------------------------------------- in process


def test_init_writes_a_loadable_file(resnet_file):
    check_resnet_file(resnet_file, ring_size=45_000)
    assert os.listdir(resnet_file.parent) == [resnet_file.name]


def test_init_reports_what_it_wrote(tmp_path, capsys):
    path = tmp_path / "r.safetensors"
    status, out, err = run_in_process(capsys, "init", "resnet18", str(path), "--seed", "7")
    assert status == 0
    assert err == ""
    assert str(path) in out
    assert "45,000" in out
    assert "11,166,912" in out
    check_resnet_file(path, ring_size=45_000, seed=7)


def test_inspect(resnet_file, capsys):
    status, out, err = run_in_process(capsys, "inspect", str(resnet_file))
    assert status == 0
    assert err == ""
    check_inspect_output(out, resnet_file, ring_size=45_000)
    assert (
        f"{TRAINABLE_COUNT:,} parameters and {STATE_COUNT:,} buffer values in {len(EXTRAS)} tensors"
        in out
    )
    dof = 45_000 + TRAINABLE_COUNT
    assert f"DoF          {dof:,} of {RESNET18_GENERATED + TRAINABLE_COUNT:,}" in out
    assert "248.15x" in out


def test_inspect_multi_ring_file(tmp_path, capsys):
    plan = rpgcore.Plan.build(
        {"a": (8, 4), "b": (6, 2, 3)},
        ring_size={"left": 9, "right": 5},
        groups={"a": "left", "b": "right"},
        seed=3,
        mode="perm",
    )
    path = tmp_path / "multi.safetensors"
    rpgcore.save(path, plan, plan.init_ring(), extras={"bias": np.ones(4, np.float32)})
    status, out, _ = run_in_process(capsys, "inspect", str(path))
    assert status == 0
    lines = out.splitlines()
    assert any(line.startswith("left ") and " 9 " in line for line in lines)
    assert any(line.startswith("right ") and " 5 " in line for line in lines)
    assert "2 ring(s)" in out
    assert "mode perm, seed 3" in out
    assert "68 parameters (M)" in out
    assert "14 parameters (N, trainable)" in out
    assert f"{68 / 14:.2f}x" in out
    assert "4 parameters and 0 buffer values in 1 tensors" in out


@pytest.mark.parametrize("dof", [600_000, TRAINABLE_COUNT + 1, 2_000_000])
def test_init_dof(tmp_path, capsys, dof):
    path = tmp_path / "dof.safetensors"
    status, out, err = run_in_process(capsys, "init", "resnet18", str(path), "--dof", str(dof))
    assert status == 0, err
    ring_size = dof - TRAINABLE_COUNT
    plan, _, extras = rpgcore.load(path)
    assert plan.ring_sizes == {"global": ring_size}
    assert plan.ring_parameters + sum(a.size for n, a in extras.items() if n not in STATE) == dof
    assert set(rpgcore.ringfile.buffer_names(rpgcore.ringfile.read_metadata(path))) == STATE
    assert f"ring {ring_size:,}" in out
    status, out, _ = run_in_process(capsys, "inspect", str(path))
    assert status == 0
    assert f"DoF          {dof:,} of" in out
    check_inspect_output(out, path, ring_size=ring_size)


def test_init_ring_size_and_mode(tmp_path, capsys):
    path = tmp_path / "r.safetensors"
    status, _, err = run_in_process(
        capsys, "init", "resnet18", str(path), "--ring-size", "1000", "--mode", "sign"
    )
    assert status == 0, err
    plan, rings, _ = rpgcore.load(path)
    assert plan.ring_sizes == {"global": 1000}
    assert plan.mode == "sign"
    assert rings["global"].shape == (1000,)


def test_init_largest_seed(tmp_path, capsys):
    path = tmp_path / "r.safetensors"
    status, _, err = run_in_process(
        capsys, "init", "resnet18", str(path), "--seed", str(2**64 - 1), "--ring-size", "500"
    )
    assert status == 0, err
    assert rpgcore.load(path)[0].seed == 2**64 - 1


def test_version_in_process(capsys):
    status, out, err = run_in_process(capsys, "--version")
    assert status == 0
    assert err == ""
    assert out.strip() == f"rpgcore {rpgcore.__version__} (spec {rpgcore.SPEC_VERSION})"
    assert "rpg-v1" in out


def test_help_in_process(capsys):
    status, out, _ = run_in_process(capsys, "--help")
    assert status == 0
    assert "inspect" in out
    assert "init" in out


# --------------------------------------------------------------------------- user errors


def damaged_file(folder: Path) -> Path:
    plan = rpgcore.Plan.build({"w": (4, 4)}, ring_size=5)
    path = folder / "damaged.safetensors"
    rpgcore.save(path, plan, plan.init_ring())
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x10
    path.write_bytes(bytes(data))
    return path


def truncated_file(folder: Path) -> Path:
    plan = rpgcore.Plan.build({"w": (4, 4)}, ring_size=5)
    path = folder / "truncated.safetensors"
    rpgcore.save(path, plan, plan.init_ring())
    path.write_bytes(path.read_bytes()[:-3])
    return path


def text_file(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("these are not the tensors you are looking for\n" * 3)
    return path


# Each case: arguments (with {dir} for the test folder), setup, words the message must name.
ERROR_CASES = {
    "missing file": (
        ["inspect", "{dir}/absent.safetensors"],
        None,
        ["absent.safetensors", "not exist"],
    ),
    "damaged file": (["inspect", "{dir}/damaged.safetensors"], damaged_file, ["checksum"]),
    "truncated file": (["inspect", "{dir}/truncated.safetensors"], truncated_file, ["bytes"]),
    "text file": (["inspect", "{dir}/notes.txt"], text_file, ["not a safetensors file"]),
    "folder": (["inspect", "{dir}"], None, ["folder"]),
    "bad arch": (["init", "resnet99", "{dir}/out.safetensors"], None, ["resnet99"]),
    "dof too small": (
        ["init", "resnet18", "{dir}/out.safetensors", "--dof", "10"],
        None,
        ["--dof"],
    ),
    "dof equal to extras": (
        ["init", "resnet18", "{dir}/out.safetensors", "--dof", str(TRAINABLE_COUNT)],
        None,
        ["--dof"],
    ),
    "negative seed": (["init", "resnet18", "{dir}/out.safetensors", "--seed", "-1"], None, ["-1"]),
    "seed 2**64": (
        ["init", "resnet18", "{dir}/out.safetensors", "--seed", str(2**64)],
        None,
        [str(2**64)],
    ),
    "seed not a number": (
        ["init", "resnet18", "{dir}/out.safetensors", "--seed", "abc"],
        None,
        ["abc"],
    ),
    "ring size 0": (
        ["init", "resnet18", "{dir}/out.safetensors", "--ring-size", "0"],
        None,
        ["ring_size must be in [1, 2147483648], got 0"],
    ),
    "ring size and dof": (
        ["init", "resnet18", "{dir}/out.safetensors", "--ring-size", "5", "--dof", "600000"],
        None,
        ["not allowed"],
    ),
    "bad mode": (
        ["init", "resnet18", "{dir}/out.safetensors", "--mode", "shuffle"],
        None,
        ["shuffle"],
    ),
    "missing output folder": (["init", "resnet18", "{dir}/nope/out.safetensors"], None, ["nope"]),
    "no command": ([], None, ["command"]),
    "unknown command": (["frobnicate"], None, ["frobnicate"]),
    "inspect without file": (["inspect"], None, ["file"]),
}


def prepare(case: str, folder: Path) -> list[str]:
    arguments, setup, _ = ERROR_CASES[case]
    if setup is not None:
        setup(folder)
    return [argument.replace("{dir}", str(folder)) for argument in arguments]


def check_error(status: int, out: str, err: str, case: str) -> None:
    assert status == 2, (case, status, err)
    assert "Traceback" not in err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rpgcore: error: ")
    assert err.endswith("\n")
    for word in ERROR_CASES[case][2]:
        assert word in lines[0], (case, lines[0])


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_user_error_in_process(tmp_path, capsys, case):
    before = sorted(os.listdir(tmp_path))
    args = prepare(case, tmp_path)
    created = sorted(set(os.listdir(tmp_path)) - set(before))
    status, out, err = run_in_process(capsys, *args)
    check_error(status, out, err, case)
    # A failed command writes nothing.
    assert sorted(set(os.listdir(tmp_path)) - set(before)) == created


SUBPROCESS_CASES = [
    "missing file",
    "damaged file",
    "text file",
    "bad arch",
    "dof too small",
    "negative seed",
    "seed 2**64",
    "no command",
]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
@pytest.mark.parametrize("runner", [run_module, run_script], ids=["module", "script"])
def test_user_error_subprocess(tmp_path, case, runner):
    args = prepare(case, tmp_path)
    result = runner(*args, cwd=tmp_path)
    check_error(result.returncode, result.stdout, result.stderr, case)
    assert not (tmp_path / "out.safetensors").exists()


def test_init_onto_existing_folder(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    status, out, err = run_in_process(capsys, "init", "resnet18", str(tmp_path / "model"))
    check_error(status, out, err, "folder")  # one line, status 2, no traceback
    assert sorted(os.listdir(tmp_path)) == ["model"]


# --------------------------------------------------------------------------- subprocesses


@pytest.mark.parametrize("runner", [run_module, run_script], ids=["module", "script"])
def test_init_then_inspect_subprocess(tmp_path, runner):
    path = tmp_path / "resnet18.rpg.safetensors"
    result = runner("init", "resnet18", path.name, "--seed", "11", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "11,166,912" in result.stdout
    check_resnet_file(path, ring_size=45_000, seed=11)
    result = runner("inspect", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    check_inspect_output(result.stdout, Path(path.name), ring_size=45_000, seed=11)


@pytest.mark.parametrize("runner", [run_module, run_script], ids=["module", "script"])
def test_dof_subprocess(tmp_path, runner):
    result = runner("init", "resnet18", "d.safetensors", "--dof", "600000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plan, _, extras = rpgcore.load(tmp_path / "d.safetensors")
    assert (
        plan.ring_parameters + sum(a.size for n, a in extras.items() if n not in STATE) == 600_000
    )


@pytest.mark.parametrize("runner", [run_module, run_script], ids=["module", "script"])
def test_version_subprocess(tmp_path, runner):
    result = runner("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"rpgcore {rpgcore.__version__} (spec {rpgcore.SPEC_VERSION})"
    assert result.stderr == ""


def test_script_and_module_agree(tmp_path):
    first = run_module("init", "resnet18", "a.safetensors", "--ring-size", "777", cwd=tmp_path)
    second = run_script("init", "resnet18", "b.safetensors", "--ring-size", "777", cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_inspect_of_a_damaged_file_names_the_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "cut.rpg.safetensors"
    plan = rpgcore.Plan.build({"w": (4, 4)}, ring_size=5)
    rpgcore.save(path, plan, plan.init_ring())
    path.write_bytes(path.read_bytes()[:-7])  # cut short
    status, _, err = run_in_process(capsys, "inspect", str(path))
    assert status == 2
    assert str(path) in err
    assert err.count("\n") == 1
