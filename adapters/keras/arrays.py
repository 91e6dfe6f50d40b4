"""Backend tensors and Keras variables to numpy, on every backend.

Example:
    >>> import keras
    >>> to_numpy(keras.Variable([1.0, 2.0])).tolist()
    [1.0, 2.0]

"""

from __future__ import annotations

from typing import Any

import keras  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray

__all__ = ["to_numpy"]


def to_numpy(value: Any) -> NDArray[Any]:
    """A numpy copy of a backend tensor or a Keras variable (its current value).

    Args:
        value: a tensor, a ``keras.Variable`` or an array.

    Returns:
        The numpy array.

    Example:
        >>> to_numpy(keras.ops.ones((2,))).dtype
        dtype('float32')

    """
    if isinstance(value, keras.Variable):
        value = value.value  # numpy's copy= protocol is not implemented by variables
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        if isinstance(value, torch.Tensor) and value.dtype != torch.bfloat16:
            return np.array(value.detach().cpu().numpy())  # a copy, not a view of the tensor
    if backend == "tensorflow" and hasattr(value, "numpy"):
        return np.asarray(value.numpy())  # eager tensors and variables give a copy
    return np.asarray(keras.ops.convert_to_numpy(value))
