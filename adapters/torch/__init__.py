"""The PyTorch adapter.

:mod:`rpgcore.adapters.torch.models` holds the reference networks (ResNets
with CIFAR and ImageNet stems, a small ResNet for 28x28 inputs). The verbs
``rpgify``, ``save``, ``load`` and ``plan_of`` are not implemented in this
release: asking for them raises :class:`rpgcore.errors.BackendUnavailableError`.
"""

from rpgcore._placeholder import placeholder
from rpgcore.adapters import VERBS

__all__: list[str] = []

__getattr__ = placeholder(__name__, VERBS, "use rpgcore.save and rpgcore.load meanwhile")
