"""The ring gradient's block sum, as a graph function (spec section 7).

Example:
    >>> import tensorflow as tf
    >>> add_blocks(tf.zeros(3), tf.reshape(tf.range(6.0), [2, 3])).numpy().tolist()
    [3.0, 5.0, 7.0]

"""

from __future__ import annotations

import tensorflow as tf  # type: ignore[import-untyped]

from rpgcore.backends.tensorflow._arrays import GRAPH

__all__ = ["add_blocks"]


def _add_blocks_ops(total: tf.Tensor, blocks: tf.Tensor) -> tf.Tensor:
    """``total + blocks[0] + blocks[1] + ...``, one block after the other (spec section 7)."""
    return tf.foldl(lambda acc, row: acc + row, blocks, initializer=total)


add_blocks = tf.function(_add_blocks_ops, **GRAPH)
