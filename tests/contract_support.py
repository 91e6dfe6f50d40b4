"""One small network in every adapter configuration, for tests/test_adapter_contract.py.

Each configuration builds the same architecture (the same layers, in the same
order, with the same names) and answers the same few questions about it:
its kernels in the canonical layout, its ring gradient for given kernel
gradients, its outputs, and its file and materialize round trips. The
assertions are written once, in the test module.

The network: an 8x8 image with 3 channels; ``conv1`` (3->4, 3x3, padding 1),
``bn1``, ReLU, ``conv2`` (4->6, 3x3, padding 1), ReLU, global average
pooling, ``fc1`` (6->5), ReLU, and the classifier ``head`` (5->3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from conftest import require

import rpgcore
from rpgcore import layouts

CONFIGURATIONS = ("torch", "jax-nnx", "jax-pytree", "keras")
CANDIDATES = ("conv1", "conv2", "fc1", "head")
"""The layers every configuration can generate, in forward order; ``head`` is the classifier."""
ORDINARY = 4 + 4 + 4 + 6 + 5 + 3  # conv1 bias, bn1 scale and offset, conv2, fc1 and fc biases
SIZES = {"conv1": 4 * 3 * 9, "conv2": 6 * 4 * 9, "fc1": 5 * 6, "head": 3 * 5}


def images(seed: int = 0, n: int = 4) -> np.ndarray:
    """Channels-last float32 images."""
    return np.random.default_rng(seed).standard_normal((n, 8, 8, 3)).astype(np.float32)


class Harness:
    """What the contract asks of one configuration."""

    files = True
    """Whether the configuration has ring files and ``materialize``."""

    def name(self, layer: str) -> str:
        """What ``include`` calls a layer of the network."""
        return layer

    def convert(self, *, seed: int = 0, init_seed: int = 0, **options: Any) -> Any:
        """The network, initialised with ``init_seed``, converted with ``rpgify(**options)``."""
        raise NotImplementedError

    def plan(self, model: Any) -> rpgcore.Plan:
        raise NotImplementedError

    def rings(self, model: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def kernels(self, model: Any) -> dict[str, np.ndarray]:
        """Every generated kernel, canonical layout, by slot name."""
        raise NotImplementedError

    def ring_gradient(
        self, model: Any, upstream: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """d/dW of sum over slots of <K_slot, upstream[slot]> (canonical upstream)."""
        raise NotImplementedError

    def trainable(self, model: Any) -> int:
        raise NotImplementedError

    def outputs(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Inference-mode logits for channels-last images."""
        raise NotImplementedError

    def save(self, model: Any, path: Path) -> None:
        raise NotImplementedError

    def load(self, model: Any, path: Path) -> None:
        raise NotImplementedError

    def materialize(self, model: Any) -> Any:
        raise NotImplementedError

    def summary(self, model: Any) -> Any:
        return self.rpg.summary(model)  # type: ignore[attr-defined]


class Torch(Harness):
    def __init__(self) -> None:
        self.torch = require("torch")
        from rpgcore.adapters import torch as rpg

        self.rpg = rpg

    def convert(self, *, seed: int = 0, init_seed: int = 0, **options: Any) -> Any:
        torch, nn = self.torch, self.torch.nn

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
                self.bn1 = nn.BatchNorm2d(4)
                self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
                self.fc1 = nn.Linear(6, 5)
                self.head = nn.Linear(5, 3)

            def forward(self, x: Any) -> Any:
                x = torch.relu(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
                return self.head(torch.relu(self.fc1(x.mean(dim=(2, 3)))))

        torch.manual_seed(init_seed)
        return self.rpg.rpgify(Net(), seed=seed, **options)

    def plan(self, model: Any) -> rpgcore.Plan:
        return self.rpg.plan_of(model)

    def rings(self, model: Any) -> dict[str, np.ndarray]:
        return {
            name: getattr(model, f"rpg_ring_{name}").detach().numpy().copy()
            for name in self.plan(model).ring_sizes
        }

    def kernels(self, model: Any) -> dict[str, np.ndarray]:
        return {
            slot: model.get_submodule(slot.removesuffix(".weight")).weight.detach().numpy()
            for slot in self.plan(model).slot_names
        }

    def ring_gradient(
        self, model: Any, upstream: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        torch = self.torch
        rings = {n: getattr(model, f"rpg_ring_{n}") for n in self.plan(model).ring_sizes}
        for ring in rings.values():
            ring.grad = None
        loss = sum(
            (model.get_submodule(s.removesuffix(".weight")).weight * torch.from_numpy(u)).sum()
            for s, u in upstream.items()
        )
        loss.backward()
        return {n: r.grad.numpy().copy() for n, r in rings.items()}

    def trainable(self, model: Any) -> int:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def outputs(self, model: Any, x: np.ndarray) -> np.ndarray:
        from rpgcore.adapters.torch import train

        return train.logits(model, x)

    def save(self, model: Any, path: Path) -> None:
        self.rpg.save(model, path)

    def load(self, model: Any, path: Path) -> None:
        self.rpg.load(model, path)

    def materialize(self, model: Any) -> Any:
        return self.rpg.materialize(model)


class Nnx(Harness):
    def __init__(self) -> None:
        require("flax")
        import jax
        import jax.numpy as jnp
        from flax import nnx

        from rpgcore.adapters import jax as rpg

        self.jax, self.jnp, self.nnx, self.rpg = jax, jnp, nnx, rpg

    def convert(self, *, seed: int = 0, init_seed: int = 0, **options: Any) -> Any:
        jax, nnx = self.jax, self.nnx
        from rpgcore.adapters.jax.norm import BatchNorm

        class Net(nnx.Module):
            def __init__(self, rngs: Any) -> None:
                self.conv1 = nnx.Conv(3, 4, (3, 3), padding=1, rngs=rngs)
                self.bn1 = BatchNorm(4, rngs=rngs)
                self.conv2 = nnx.Conv(4, 6, (3, 3), padding=1, rngs=rngs)
                self.fc1 = nnx.Linear(6, 5, rngs=rngs)
                self.head = nnx.Linear(5, 3, rngs=rngs)

            def __call__(self, x: Any) -> Any:
                x = jax.nn.relu(self.conv2(jax.nn.relu(self.bn1(self.conv1(x)))))
                return self.head(jax.nn.relu(self.fc1(x.mean(axis=(1, 2)))))

        return self.rpg.rpgify(Net(nnx.Rngs(init_seed)), seed=seed, **options)

    def plan(self, model: Any) -> rpgcore.Plan:
        return self.rpg.plan_of(model)

    def rings(self, model: Any) -> dict[str, np.ndarray]:
        bank = model.rpg_bank
        return {n: np.asarray(bank.ring(n)[...]) for n in self.plan(model).ring_sizes}

    def _layers(self, model: Any) -> dict[str, Any]:
        from rpgcore.adapters.jax.convert import generated_layers

        return {f"{path}.kernel": layer for path, layer in generated_layers(model)}

    def kernels(self, model: Any) -> dict[str, np.ndarray]:
        from rpgcore.adapters.jax.layers import layout_of

        return {
            slot: layouts.from_native(np.asarray(layer.kernel), layout_of(layer))
            for slot, layer in self._layers(model).items()
        }

    def ring_gradient(
        self, model: Any, upstream: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        from rpgcore.adapters.jax.layers import layout_of

        jnp, nnx = self.jnp, self.nnx
        native = {
            slot: layouts.to_native(upstream[slot], layout_of(layer))
            for slot, layer in self._layers(model).items()
        }

        def loss(net: Any) -> Any:
            layers = self._layers(net)
            return sum(jnp.sum(layers[s].kernel * u) for s, u in native.items())

        grads = nnx.grad(loss)(model)  # every Param's; the shared bank's rings once
        found = {
            str(path[-1]).removeprefix("ring_"): np.asarray(value[...])
            for path, value in nnx.to_flat_state(grads)
            if str(path[-1]).startswith("ring_")
        }
        return {n: found[n] for n in self.plan(model).ring_sizes}

    def trainable(self, model: Any) -> int:
        params = self.jax.tree.leaves(self.nnx.state(model, self.nnx.Param))
        return sum(int(np.prod(p.shape)) for p in params)

    def outputs(self, model: Any, x: np.ndarray) -> np.ndarray:
        from rpgcore.adapters.jax import train

        return train.logits(model, x)

    def save(self, model: Any, path: Path) -> None:
        self.rpg.save(model, path)

    def load(self, model: Any, path: Path) -> None:
        self.rpg.load(model, path)

    def materialize(self, model: Any) -> Any:
        return self.rpg.materialize(model)


class Pytree(Harness):
    """A Flax-Linen-style parameter dictionary and a hand-written forward."""

    files = False

    def name(self, layer: str) -> str:
        return f"{layer}.kernel"  # a pytree's candidates are its leaves

    def __init__(self) -> None:
        require("jax")
        import jax
        import jax.numpy as jnp

        from rpgcore.adapters.jax import Generator

        self.jax, self.jnp, self.Generator = jax, jnp, Generator

    def convert(self, *, seed: int = 0, init_seed: int = 0, **options: Any) -> Any:
        rng = np.random.default_rng(init_seed)

        def kernel(*shape: int) -> np.ndarray:
            return (rng.standard_normal(shape) * 0.3).astype(np.float32)

        params = {
            "conv1": {"kernel": kernel(3, 3, 3, 4), "bias": np.zeros(4, np.float32)},
            "bn1": {"scale": np.ones(4, np.float32), "bias": np.zeros(4, np.float32)},
            "conv2": {"kernel": kernel(3, 3, 4, 6), "bias": np.zeros(6, np.float32)},
            "fc1": {"kernel": kernel(6, 5), "bias": np.zeros(5, np.float32)},
            "head": {"kernel": kernel(5, 3), "bias": np.zeros(3, np.float32)},
        }
        order = ["bn1", "conv1", "conv2", "fc1", "head"]  # jax.tree order: sorted keys
        params = {name: params[name] for name in order}
        generator = self.Generator.from_params(params, seed=seed, **options)
        return {"generator": generator, "params": params, "rings": generator.init()}

    def plan(self, model: Any) -> rpgcore.Plan:
        plan: rpgcore.Plan = model["generator"].plan
        return plan

    def rings(self, model: Any) -> dict[str, np.ndarray]:
        return {n: np.asarray(r) for n, r in model["rings"].items()}

    def kernels(self, model: Any) -> dict[str, np.ndarray]:
        generator = model["generator"]
        native = generator.kernels(model["rings"])
        return {
            slot: layouts.from_native(np.asarray(native[slot]), layout)
            for slot, layout in zip(generator.plan.slot_names, generator.layouts, strict=True)
        }

    def ring_gradient(
        self, model: Any, upstream: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        jnp, generator = self.jnp, model["generator"]
        native = {
            slot: layouts.to_native(upstream[slot], layout)
            for slot, layout in zip(generator.plan.slot_names, generator.layouts, strict=True)
        }

        def loss(rings: Any) -> Any:
            kernels = generator.kernels(rings)
            return sum(jnp.sum(kernels[s] * u) for s, u in native.items())

        grads = self.jax.grad(loss)(model["rings"])
        return {n: np.asarray(g) for n, g in grads.items()}

    def trainable(self, model: Any) -> int:
        ordinary = model["generator"].ordinary(model["params"])
        leaves = self.jax.tree.leaves(ordinary)
        return self.plan(model).ring_parameters + sum(int(np.prod(leaf.shape)) for leaf in leaves)


class Keras(Harness):
    def __init__(self) -> None:
        self.keras = require("keras")
        from rpgcore.adapters import keras as rpg

        self.rpg = rpg

    def convert(self, *, seed: int = 0, init_seed: int = 0, **options: Any) -> Any:
        keras = self.keras
        layers = keras.layers
        keras.utils.set_random_seed(init_seed)
        inputs = keras.Input((8, 8, 3))
        x = layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn1")(x)
        x = layers.ReLU()(x)
        x = layers.ReLU()(layers.Conv2D(6, 3, padding="same", name="conv2")(x))
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(5, activation="relu", name="fc1")(x)
        model = keras.Model(inputs, layers.Dense(3, name="head")(x))
        return self.rpg.rpgify(model, seed=seed, **options)

    def plan(self, model: Any) -> rpgcore.Plan:
        return self.rpg.plan_of(model)

    def rings(self, model: Any) -> dict[str, np.ndarray]:
        from rpgcore.adapters.keras.arrays import to_numpy

        return {n: to_numpy(r.variable) for n, r in self.rpg.rings_of(model).items()}

    def _layers(self, model: Any) -> dict[str, Any]:
        return {layer.slot: layer for layer in model.layers if isinstance(layer, self.rpg.RPGLayer)}

    def kernels(self, model: Any) -> dict[str, np.ndarray]:
        from rpgcore.adapters.keras.arrays import to_numpy

        return {
            slot: layouts.from_native(to_numpy(layer.kernel), layer.layout)
            for slot, layer in self._layers(model).items()
        }

    def ring_gradient(
        self, model: Any, upstream: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        from rpgcore.adapters.keras.arrays import to_numpy

        keras = self.keras
        layers = self._layers(model)
        native = {
            s: keras.ops.convert_to_tensor(
                np.ascontiguousarray(layouts.to_native(u, layers[s].layout))
            )
            for s, u in upstream.items()
        }
        rings = self.rpg.rings_of(model)
        variables = [ring.variable for ring in rings.values()]

        def loss() -> Any:
            return sum(keras.ops.sum(layers[s].kernel * u) for s, u in native.items())

        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                value = loss()
            grads = tape.gradient(value, [v.value for v in variables])
        elif backend == "jax":
            import jax

            def stateless(values: list[Any]) -> Any:
                with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                    return loss()

            grads = jax.grad(stateless)([v.value for v in variables])
        else:
            for v in variables:
                v.value.grad = None
            loss().backward()
            grads = [v.value.grad for v in variables]
        return {n: to_numpy(g) for n, g in zip(rings, grads, strict=True)}

    def trainable(self, model: Any) -> int:
        return sum(int(np.prod(v.shape)) for v in model.trainable_variables)

    def outputs(self, model: Any, x: np.ndarray) -> np.ndarray:
        from rpgcore.adapters.keras import train

        return train.logits(model, x)

    def save(self, model: Any, path: Path) -> None:
        self.rpg.save(model, path)

    def load(self, model: Any, path: Path) -> None:
        self.rpg.load(model, path)

    def materialize(self, model: Any) -> Any:
        return self.rpg.materialize(model)


HARNESSES: dict[str, Callable[[], Harness]] = {
    "torch": Torch,
    "jax-nnx": Nnx,
    "jax-pytree": Pytree,
    "keras": Keras,
}
