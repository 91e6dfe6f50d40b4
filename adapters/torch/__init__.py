"""The PyTorch adapter: turn any model into an RPG model, and save or load its ring file.

The verbs every adapter offers:

- :func:`rpgify`: convert a model in place (its kernels generated from rings);
- :func:`save` and :func:`load`: portable ring files;
- :func:`plan_of`: the model's :class:`rpgcore.Plan`;

and :func:`materialize` (an ordinary copy with the generated weights written
in). :mod:`rpgcore.adapters.torch.models` holds the reference networks.

Example:
    >>> import torch
    >>> from rpgcore.adapters import torch as rpg
    >>> model = rpg.rpgify(rpg.models.small_resnet(), ring_size=2_000, seed=0)
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])

"""

from rpgcore.adapters.torch import models
from rpgcore.adapters.torch.convert import materialize, plan_of, rpgify
from rpgcore.adapters.torch.io import load, save, summary

__all__ = ["load", "materialize", "models", "plan_of", "rpgify", "save", "summary"]
