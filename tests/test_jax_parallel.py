"""Data parallelism with JAX's sharding on 2 CPU devices equals one device over the same batch.

XLA's host device count must be set before jax is imported, so the training
runs in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from conftest import REQUIRED, require

require("jax")
importlib.import_module("flax") if "jax" in REQUIRED else require("flax")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    from flax import nnx
    from rpgcore.adapters.jax import models, parallel, rpgify

    folder = sys.argv[1]
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((16, 12, 12, 1)).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, 10, 16).astype(np.int32))

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
        optimizer.update(model, nnx.grad(loss)(model))

    def train(mesh):
        model = rpgify(models.small_resnet(width=4, rngs=nnx.Rngs(0)), ring_size=300, seed=4)
        optimizer = nnx.Optimizer(model, optax.sgd(0.1, momentum=0.9), wrt=nnx.Param)
        np.save(f"{folder}/initial.npy", np.asarray(model.rpg_bank.ring("global")[...]))
        x, y = images, labels
        if mesh is not None:
            nnx.update(model, parallel.replicate(nnx.state(model), mesh))
            nnx.update(optimizer, parallel.replicate(nnx.state(optimizer), mesh))
            x, y = parallel.shard_batch((x, y), mesh)
        for _ in range(3):
            step(model, optimizer, x, y)
        return model

    one = train(None)
    two = train(parallel.data_mesh())
    ring = two.rpg_bank.ring("global")[...]
    for name, model in (("one", one), ("two", two)):
        np.save(f"{folder}/{name}_ring.npy", np.asarray(model.rpg_bank.ring("global")[...]))
        np.save(f"{folder}/{name}_mean.npy", np.asarray(model.bn1.mean[...]))
    print(json.dumps({
        "devices": len(jax.devices()),
        "replicated": bool(ring.sharding.is_fully_replicated),
        "ring_devices": len(ring.sharding.device_set),
    }))
    """
)


def test_two_devices_equal_one_device_over_the_global_batch(tmp_path: Path) -> None:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"devices": 2, "replicated": True, "ring_devices": 2}
    one, two = (
        np.load(tmp_path / "one_ring.npy", allow_pickle=False),
        np.load(tmp_path / "two_ring.npy", allow_pickle=False),
    )
    initial = np.load(tmp_path / "initial.npy", allow_pickle=False)
    assert np.abs(one - initial).max() > 1e-3  # it trained
    # The sharded step sums each gradient as two half-batch partial sums and
    # one all-reduce, one device as one sum: float32 reassociation, a few ulps
    # per step (observed ~7e-8 on entries up to ~0.4 after 3 momentum steps).
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-6)
    # batch norm statistics over the global batch, not per device
    np.testing.assert_allclose(
        np.load(tmp_path / "two_mean.npy", allow_pickle=False),
        np.load(tmp_path / "one_mean.npy", allow_pickle=False),
        rtol=0,
        atol=1e-7,
    )
