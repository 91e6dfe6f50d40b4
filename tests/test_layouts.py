"""Kernel layouts (spec section 2.2): every framework's order of the same logical weights."""

from __future__ import annotations

import numpy as np
import pytest

from rpgcore import layouts
from rpgcore.errors import ArgumentError, PlanError

SHAPES = [(5, 3), (4, 2, 3), (6, 2, 3, 5), (3, 2, 2, 3, 4)]


@pytest.mark.parametrize("layout", ["canonical", "channels_last", "spatial_first"])
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trips_and_shapes_agree(layout: str, shape: tuple[int, ...]) -> None:
    kernel = np.arange(np.prod(shape)).reshape(shape)
    native = layouts.to_native(kernel, layout)
    assert native.shape == layouts.native_shape(shape, layout)
    assert layouts.canonical_shape(native.shape, layout) == shape
    assert np.array_equal(layouts.from_native(native, layout), kernel)


@pytest.mark.parametrize("shape", SHAPES)
def test_channels_last_keeps_each_logical_weight(shape: tuple[int, ...]) -> None:
    kernel = np.arange(np.prod(shape)).reshape(shape)
    last = layouts.to_channels_last(kernel)
    o, i, *spatial = (d - 1 for d in shape)
    assert last[(*spatial, i, o)] == kernel[(o, i, *spatial)]
    assert np.array_equal(layouts.from_channels_last(last), kernel)


def test_dense_is_a_transpose_and_a_vector_stays_as_it_is() -> None:
    kernel = np.arange(6).reshape(2, 3)
    assert np.array_equal(layouts.to_channels_last(kernel), kernel.T)
    vector = np.arange(4)
    assert np.array_equal(layouts.to_native(vector, "channels_last"), vector)


@pytest.mark.parametrize("shape", [(4, 2, 3), (6, 3, 2, 5)])
def test_spatial_first_keeps_the_channel_order(shape: tuple[int, ...]) -> None:
    kernel = np.arange(np.prod(shape)).reshape(shape)
    first = layouts.to_native(kernel, "spatial_first")
    a, b, *spatial = (d - 1 for d in shape)
    assert first[(*spatial, a, b)] == kernel[(a, b, *spatial)]


def test_depthwise_output_channel_is_input_times_multiplier_plus_m() -> None:
    channels, multiplier = 3, 2
    kernel = np.arange(channels * multiplier * 9).reshape(channels * multiplier, 1, 3, 3)
    keras = layouts.to_native(kernel, "depthwise", multiplier)
    assert keras.shape == (3, 3, channels, multiplier)
    assert layouts.native_shape(kernel.shape, "depthwise", multiplier) == keras.shape
    assert layouts.canonical_shape(keras.shape, "depthwise") == kernel.shape
    for i in range(channels):
        for m in range(multiplier):
            assert np.array_equal(keras[:, :, i, m], kernel[i * multiplier + m, 0])
    assert np.array_equal(layouts.from_native(keras, "depthwise"), kernel)
    with pytest.raises(PlanError, match="depthwise"):
        layouts.to_native(np.zeros((5, 1, 3, 3)), "depthwise", 2)
    with pytest.raises(PlanError, match="depthwise"):
        layouts.canonical_shape((3, 2), "depthwise")


def test_an_unknown_layout_names_the_known_ones() -> None:
    with pytest.raises(ArgumentError, match="layout 'nhwc' is unknown; use one of canonical"):
        layouts.to_native(np.zeros((2, 2)), "nhwc")
