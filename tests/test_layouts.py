"""Canonical and channels-last layouts (spec section 2.2)."""

from __future__ import annotations

import numpy as np
import pytest

from rpgcore import layouts
from rpgcore.errors import PlanError


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3), (6, 2, 3, 5), (3, 2, 2, 3, 4)])
def test_round_trip_and_logical_weights(shape: tuple[int, ...]) -> None:
    kernel = np.arange(np.prod(shape)).reshape(shape)
    last = layouts.to_channels_last(kernel)
    assert last.shape == layouts.channels_last_shape(shape)
    assert layouts.canonical_shape(last.shape) == shape
    assert np.array_equal(layouts.from_channels_last(last), kernel)
    # The same logical weight (out o, in i, spatial s...) has the same value.
    index = tuple(d - 1 for d in shape)
    o, i, *spatial = index
    assert last[(*spatial, i, o)] == kernel[index]


def test_dense_is_a_transpose_and_1d_is_rejected() -> None:
    kernel = np.arange(6).reshape(2, 3)
    assert np.array_equal(layouts.to_channels_last(kernel), kernel.T)
    with pytest.raises(PlanError, match="at least 2"):
        layouts.channels_last_axes(1)


@pytest.mark.parametrize("shape", [(4, 2, 3), (6, 3, 2, 5)])
def test_spatial_first_keeps_the_channel_order(shape: tuple[int, ...]) -> None:
    kernel = np.arange(np.prod(shape)).reshape(shape)
    first = layouts.to_spatial_first(kernel)
    a, b, *spatial = (d - 1 for d in shape)
    assert first[(*spatial, a, b)] == kernel[(a, b, *spatial)]
    assert np.array_equal(layouts.from_spatial_first(first), kernel)


def test_depthwise_output_channel_is_input_times_multiplier_plus_m() -> None:
    channels, multiplier = 3, 2
    kernel = np.arange(channels * multiplier * 9).reshape(channels * multiplier, 1, 3, 3)
    keras = layouts.to_depthwise(kernel, multiplier)
    assert keras.shape == (3, 3, channels, multiplier)
    for i in range(channels):
        for m in range(multiplier):
            assert np.array_equal(keras[:, :, i, m], kernel[i * multiplier + m, 0])
    assert np.array_equal(layouts.from_depthwise(keras), kernel)
    with pytest.raises(PlanError, match="depthwise"):
        layouts.to_depthwise(np.zeros((5, 1, 3, 3)), 2)
