"""The JAX adapter: RPG models in Flax NNX, and RPG parameters for any JAX pytree.

The verbs every adapter offers:

- :func:`rpgify`: convert an ``nnx.Module`` in place (its kernels generated from rings);
- :func:`save` and :func:`load`: portable ring files;
- :func:`plan_of`: the model's :class:`rpgcore.Plan`;

and :func:`materialize` (an ordinary copy with the generated kernels written
in). :class:`Generator` does the same for a plain parameter pytree (Equinox,
Flax Linen, hand-written JAX): a pure function from rings to parameters.
:mod:`rpgcore.adapters.jax.models` holds the reference networks and
:mod:`rpgcore.adapters.jax.parallel` the data-parallel helpers.

Example:
    >>> import jax.numpy as jnp
    >>> from rpgcore.adapters import jax as rpg
    >>> model = rpg.rpgify(rpg.models.small_resnet(), ring_size=2_000, seed=0)
    >>> model(jnp.zeros((2, 28, 28, 1))).shape
    (2, 10)

"""

from rpgcore.adapters.jax import models, parallel
from rpgcore.adapters.jax.bank import RingBank, RingIndex
from rpgcore.adapters.jax.convert import materialize, plan_of, rpgify
from rpgcore.adapters.jax.io import load, save, summary
from rpgcore.adapters.jax.pytree import Generator

__all__ = [
    "Generator",
    "RingBank",
    "RingIndex",
    "load",
    "materialize",
    "models",
    "parallel",
    "plan_of",
    "rpgify",
    "save",
    "summary",
]
