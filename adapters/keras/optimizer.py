"""PyTorch's SGD as a Keras optimizer.

``keras.optimizers.SGD`` differs from ``torch.optim.SGD`` twice: its
``weight_decay`` is *decoupled* (the variable shrinks after the update,
outside the momentum), and its momentum buffer holds ``-lr * g`` terms, so
a changing learning rate acts differently. :class:`TorchSGD` is
``torch.optim.SGD`` (no dampening, no Nesterov), step for step::

    g = grad + weight_decay * w      # L2 added to the gradient, before momentum
    m = momentum * m + g             # m starts at 0, so the first m is g, as in torch
    w = w - lr * m

for every trainable variable, the rings included, as ``torch.optim.SGD``
applies ``weight_decay`` to every parameter it is given. The L2 term is in
the update rather than in the loss: the gradient of ``wd / 2 * |w|^2`` is
the same ``wd * w``, but adding it here needs no second pass over the
variables, and the reported loss stays the data loss, as in PyTorch.

Example:
    >>> import numpy as np
    >>> import keras
    >>> from rpgcore.adapters.keras.arrays import to_numpy
    >>> w = keras.Variable(np.array([1.0, -2.0], "float32"))
    >>> sgd = TorchSGD(learning_rate=0.1, momentum=0.9, weight_decay=0.5)
    >>> sgd.apply([keras.ops.convert_to_tensor(np.array([1.0, 1.0], "float32"))], [w])
    >>> [round(float(v), 6) for v in to_numpy(w)]  # w - 0.1 * (g + 0.5 * w)
    [0.85, -2.0]

"""

from __future__ import annotations

from typing import Any

import keras  # type: ignore[import-untyped]
import numpy as np

from rpgcore.errors import ArgumentError

__all__ = ["TorchSGD"]


@keras.saving.register_keras_serializable(package="rpgcore")
class TorchSGD(keras.optimizers.Optimizer):  # type: ignore[misc]
    """``torch.optim.SGD(lr, momentum, weight_decay)`` for Keras, on every backend.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        momentum: the momentum, ``0 <= momentum < 1``.
        weight_decay: the L2 coefficient added to the gradient (PyTorch's
            coupled weight decay, not Keras' decoupled one).
        name: the optimizer's name.
        **kwargs: other ``keras.optimizers.Optimizer`` arguments (not
            ``weight_decay``'s decoupled form, which is refused).

    Raises:
        ArgumentError: a momentum or weight decay out of range.

    Example:
        >>> TorchSGD(learning_rate=0.1, momentum=0.9, weight_decay=5e-4).get_config()["momentum"]
        0.9

    """

    def __init__(
        self,
        learning_rate: Any = 0.1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        name: str = "torch_sgd",
        **kwargs: Any,
    ) -> None:
        if not 0 <= momentum < 1:
            raise ArgumentError(f"momentum={momentum!r}: use a value in [0, 1), e.g. 0.9")
        if not np.isfinite(weight_decay) or weight_decay < 0:
            raise ArgumentError(f"weight_decay={weight_decay!r}: use 0 or a small positive value")
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = float(momentum)
        self.coupled_decay = float(weight_decay)

    def build(self, variables: Any) -> None:
        """Create one momentum buffer per variable (zeros)."""
        if self.built:
            return
        super().build(variables)
        self.momentums = (
            self.add_optimizer_variables(variables, "momentum") if self.momentum else []
        )

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """One PyTorch SGD step of one variable."""
        ops = keras.ops
        learning_rate = ops.cast(learning_rate, variable.dtype)
        # A gradient may arrive sparse (TensorFlow's IndexedSlices, from a gather
        # with TensorFlow's own derivative): one segment sum makes it dense.
        step = ops.cast(ops.convert_to_tensor(gradient), variable.dtype)
        if self.coupled_decay:
            step = ops.add(step, ops.multiply(variable, self.coupled_decay))
        if self.momentum:
            buffer = self.momentums[self._get_variable_index(variable)]
            self.assign(buffer, ops.add(ops.multiply(buffer, self.momentum), step))
            step = buffer
        self.assign_sub(variable, ops.multiply(step, learning_rate))

    def get_config(self) -> dict[str, Any]:
        """The optimizer's config."""
        config: dict[str, Any] = super().get_config()
        config.update(momentum=self.momentum, weight_decay=self.coupled_decay)
        return config
