"""The Keras 3 adapter: RPG layers, and any Functional or Sequential model turned into an RPG model.

Works on every Keras backend (TensorFlow, JAX, PyTorch). The verbs every
adapter offers:

- :func:`rpgify`: a new model whose kernels are generated from rings;
- :func:`save` and :func:`load`: portable ring files;
- :func:`plan_of`: the model's :class:`rpgcore.Plan`;

and :func:`materialize` (an ordinary copy with the generated kernels written
in). :class:`Ring` and the RPG layers (:class:`RPGConv2D`, :class:`RPGDense`,
...) build RPG models by hand; :mod:`rpgcore.adapters.keras.models` holds
the reference networks and :mod:`rpgcore.adapters.keras.train` the training
loop of ``rpgcore train --framework keras``.

Example:
    >>> import numpy as np
    >>> from rpgcore.adapters import keras as rpg
    >>> model = rpg.rpgify(rpg.models.small_resnet(), ring_size=2_000, seed=0)
    >>> tuple(model(np.zeros((2, 28, 28, 1), "float32")).shape)
    (2, 10)

"""

from rpgcore.adapters.keras import models
from rpgcore.adapters.keras.convert import materialize, plan_of, rings_of, rpgify
from rpgcore.adapters.keras.io import load, save, summary
from rpgcore.adapters.keras.layers import (
    RPGConv1D,
    RPGConv1DTranspose,
    RPGConv2D,
    RPGConv2DTranspose,
    RPGConv3D,
    RPGConv3DTranspose,
    RPGDense,
    RPGDepthwiseConv1D,
    RPGDepthwiseConv2D,
    RPGLayer,
)
from rpgcore.adapters.keras.ring import Ring

__all__ = [
    "RPGConv1D",
    "RPGConv1DTranspose",
    "RPGConv2D",
    "RPGConv2DTranspose",
    "RPGConv3D",
    "RPGConv3DTranspose",
    "RPGDense",
    "RPGDepthwiseConv1D",
    "RPGDepthwiseConv2D",
    "RPGLayer",
    "Ring",
    "load",
    "materialize",
    "models",
    "plan_of",
    "rings_of",
    "rpgify",
    "save",
    "summary",
]
