"""The compiled programs of the JAX training loop: one SGD step, and a forward pass.

Both take a model split by ``nnx.split`` (the graph definition is static, so
each is compiled once per model structure and batch shape) and are pure
functions of arrays, so :func:`rpgcore.adapters.jax.train.fit` and the
benchmark run exactly the same step.

Example:
    >>> import numpy as np
    >>> from flax import nnx
    >>> model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    >>> graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    >>> velocity = jax.tree.map(jnp.zeros_like, params)
    >>> hyper = np.array([0.1, 0.9, 5e-4], np.float32)
    >>> images, labels = jnp.ones((4, 3)), jnp.array([0, 1, 1, 0])
    >>> params, rest, velocity, loss, correct = sgd_step(
    ...     graphdef, params, rest, velocity, images, labels, hyper)
    >>> forward(graphdef, nnx.merge_state(params, rest), images).shape, int(correct) in range(5)
    ((4, 2), True)

"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax  # type: ignore[import-untyped]
from flax import nnx

__all__ = ["forward", "sgd_step"]


@partial(jax.jit, static_argnames="graphdef")
def forward(graphdef: Any, state: Any, images: jax.Array) -> jax.Array:
    """The model's outputs for ``images``.

    Args:
        graphdef: the model's graph definition (``nnx.split``), in the mode wanted.
        state: all of its state.
        images: a batch.

    Returns:
        The outputs; the state is not updated (use it in eval mode).

    """
    logits: jax.Array = nnx.merge(graphdef, state)(images)
    return logits


@partial(jax.jit, static_argnames="graphdef", donate_argnums=(1, 2, 3))
def sgd_step(
    graphdef: Any,
    params: Any,
    rest: Any,
    velocity: Any,
    images: jax.Array,
    labels: jax.Array,
    hyper: jax.Array,
) -> tuple[Any, Any, Any, jax.Array, jax.Array]:
    """One SGD step on the mean cross-entropy, as ``torch.optim.SGD`` takes it.

    The weight decay is added to the gradient of every trainable parameter
    (rings included), then the momentum buffer is updated (``v = m*v + g``,
    which is ``g`` on the first step as in PyTorch), then ``p -= lr * v``.

    Args:
        graphdef: the model's graph definition, in training mode.
        params: its ``nnx.Param`` state (donated).
        rest: its other state: batch statistics, ring indices (donated).
        velocity: the momentum buffers, like ``params`` (donated).
        images: the batch.
        labels: integer labels.
        hyper: ``(learning rate, momentum, weight decay)``, float32.

    Returns:
        ``(params, rest, velocity, loss, correct)``: the new state, the
        batch's mean loss and its number of correct predictions.

    """
    lr, momentum, decay = hyper[0], hyper[1], hyper[2]
    model = nnx.merge(graphdef, params, rest)

    def loss_of(model: nnx.Module) -> tuple[jax.Array, jax.Array]:
        logits = model(images)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, logits

    (loss, logits), grads = nnx.value_and_grad(loss_of, has_aux=True)(model)
    _, _, *others = nnx.split(model, nnx.Param, ...)
    rest = others[0]  # with the updated batch statistics
    grads = jax.tree.map(lambda g, p: g + decay * p, grads, params)
    velocity = jax.tree.map(lambda v, g: momentum * v + g, velocity, grads)
    params = jax.tree.map(lambda p, v: p - lr * v, params, velocity)
    correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels)
    return params, rest, velocity, loss, correct
