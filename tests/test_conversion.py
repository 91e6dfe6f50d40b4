"""The one conversion algorithm (rpgcore.conversion): include, classifier, scopes, sizes, init."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import rpgcore
from rpgcore.conversion import Candidate, Options, classifier, convert
from rpgcore.errors import ArgumentError, ConversionWarning, PlanError, RingSizeWarning


def _conv(name: str, shape: tuple[int, ...] = (8, 8, 3, 3), **kw: object) -> Candidate:
    return Candidate(name, f"{name}.weight", "conv", shape, **kw)  # type: ignore[arg-type]


def _linear(name: str, shape: tuple[int, ...] = (10, 8)) -> Candidate:
    return Candidate(name, f"{name}.weight", "linear", shape)


NONE = lambda chosen: 0  # noqa: E731 - the ordinary-parameter hook of a model without any


def test_the_classifier_is_the_last_dense_layer_else_the_last_candidate() -> None:
    layers = [_conv("a"), _linear("fc1"), _conv("b"), _linear("fc2")]
    assert classifier(layers) is layers[3]
    fully_convolutional = [_conv("a"), _conv("conv_preds", (10, 8, 1, 1))]
    assert classifier(fully_convolutional) is fully_convolutional[1]
    assert classifier([]) is None
    result = convert(layers, Options(ring_size=20), ordinary=NONE)
    assert result.plan.slot_names == ("a.weight", "fc1.weight", "b.weight")
    assert result.left == (layers[3],)


def test_include_callable_and_list_choose_among_candidates() -> None:
    layers = [_conv("a"), _conv("b"), _linear("fc")]
    chosen = convert(
        layers, Options(ring_size=20, include=lambda name, layer: name != "a"), ordinary=NONE
    )
    assert chosen.plan.slot_names == ("b.weight", "fc.weight")
    listed = convert(layers, Options(ring_size=20, include=["fc"]), ordinary=NONE)
    assert listed.plan.slot_names == ("fc.weight",)
    with pytest.raises(ArgumentError, match="include names 'x', which is not a layer"):
        convert(layers, Options(ring_size=20, include=["x"]), ordinary=NONE)
    with pytest.raises(ArgumentError, match="is one string"):
        convert(layers, Options(ring_size=20, include="fc"), ordinary=NONE)


def test_nothing_to_generate_says_why() -> None:
    with pytest.raises(PlanError, match="has no convolution"):
        convert([], Options(ring_size=5), ordinary=NONE)
    with pytest.raises(PlanError, match=r"only candidate, 'fc', is the model's classifier"):
        convert([_linear("fc")], Options(ring_size=5), ordinary=NONE)
    with pytest.raises(PlanError, match="include chose none"):
        convert(
            [_conv("a"), _linear("fc")],
            Options(ring_size=5, include=lambda *_: False),
            ordinary=NONE,
        )


def test_a_chosen_candidate_with_a_problem_is_refused_and_an_unchosen_one_is_not() -> None:
    lazy = _conv("lazy", (), problem="it is lazy; run one forward pass first")
    layers = [_conv("a"), lazy, _linear("fc")]
    with pytest.raises(ArgumentError, match="layer 'lazy' cannot be generated: it is lazy"):
        convert(layers, Options(ring_size=5), ordinary=NONE)
    plan = convert(layers, Options(ring_size=5, include=["a"]), ordinary=NONE).plan
    assert plan.slot_names == ("a.weight",)


def test_block_scope_takes_the_first_component_of_the_path() -> None:
    layers = [
        _conv("conv1"),
        Candidate(
            "layer1_0_conv1", "layer1_0_conv1/kernel", "conv", (8, 8, 3, 3), path="layer1.0.conv1"
        ),
        _conv("layer1.1.conv1"),
        _conv("layer2.0.conv1"),
        _linear("fc"),
    ]
    plan = convert(layers, Options(dof=600, scope="block"), ordinary=lambda chosen: 90).plan
    assert list(plan.ring_sizes) == ["conv1", "layer1", "layer2"]
    # dof: the 510 left are shared in proportion to 576, 1152 and 576 generated
    assert plan.ring_sizes == {"conv1": 127, "layer1": 256, "layer2": 127}
    named = convert(
        layers, Options(ring_size=9, scope=lambda name, layer: "r" + name[-1]), ordinary=NONE
    )
    assert set(named.plan.ring_sizes) == {"r1"}
    with pytest.raises(PlanError, match="ring name 'layer-1'"):
        convert(layers, Options(ring_size=9, scope=lambda name, layer: "layer-1"), ordinary=NONE)
    with pytest.raises(ArgumentError, match="scope must be"):
        convert(layers, Options(ring_size=9, scope="layer"), ordinary=NONE)


def test_dof_counts_the_ordinary_parameters_of_what_is_left() -> None:
    layers = [_conv("a"), _linear("fc")]
    seen = []

    def ordinary(chosen: object) -> int:
        seen.append([c.name for c in chosen])  # type: ignore[attr-defined]
        return 80 + 10

    plan = convert(layers, Options(dof=500), ordinary=ordinary).plan
    assert seen == [["a"]]
    assert plan.ring_sizes == {"global": 410}


def test_a_ring_larger_than_what_it_generates_is_warned_about() -> None:
    with pytest.warns(RingSizeWarning, match="ring 'global' has 1,000 entries but generates only"):
        convert([_conv("a"), _linear("fc")], Options(ring_size=1000), ordinary=NONE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert([_conv("a"), _linear("fc")], Options(ring_size=576), ordinary=NONE)


def test_dense_layers_start_with_lecun_variance_and_convolutions_with_he() -> None:
    """The initialisation rule per kind: a 1568->64 dense kernel starts near the frameworks' std."""
    layers = [_conv("conv", (32, 16, 3, 3)), _linear("fc1", (64, 1568)), _linear("fc", (10, 64))]
    plan = convert(layers, Options(ring_size=20_000), ordinary=NONE).plan
    assert [s.init for s in plan.slots] == ["he_fan_out", "lecun_fan_in"]
    kernels = plan.expand(plan.init_ring())
    dense = float(kernels["fc1.weight"].std())
    # PyTorch's Linear: 1/sqrt(3 fan_in) = 0.0146; Keras' Glorot uniform: 0.0350;
    # Flax's LeCun normal: 0.0253. Every one within a factor 2 of the generated std.
    for usual in (1 / math.sqrt(3 * 1568), math.sqrt(2 / (1568 + 64)), 1 / math.sqrt(1568)):
        assert 0.5 < dense / usual < 2, (dense, usual)
    conv = float(kernels["conv.weight"].std())
    assert conv == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.05)  # He fan-out, as in the paper
    # The old rule, asked for explicitly, gives the paper's He fan-out to dense layers too.
    he = convert(
        layers, Options(ring_size=20_000, init={"linear": "he_fan_out"}), ordinary=NONE
    ).plan
    assert float(he.expand(he.init_ring())["fc1.weight"].std()) > 0.15
    with pytest.raises(ArgumentError, match="init="):
        convert(layers, Options(ring_size=9, init={"linear": "xavier"}), ordinary=NONE)


def test_he_only_plans_are_bitwise_the_spec_formulas() -> None:
    """Rules written as exact fractions give the spec's two-rounding scale and init_std."""
    shapes = {"a": (64, 3, 7, 7), "b": (128, 64, 3, 3), "c": (7, 5)}
    plan = rpgcore.Plan.build(shapes, ring_size=100)
    fan_ref = max(s[0] * math.prod(s[2:]) for s in shapes.values())
    assert plan.rings[0].init_std == math.sqrt(2.0 / fan_ref)
    for slot in plan.slots:
        fan = slot.shape[0] * math.prod(slot.shape[2:])
        assert slot.scale == math.sqrt(fan_ref / fan)
        assert slot.init == "he_fan_out"
    assert '"init"' not in plan.to_json()  # the default rule is not written


def test_init_rules_round_trip_through_the_plan_json() -> None:
    plan = rpgcore.Plan.build(
        {"c": (8, 3, 3, 3), "f": (10, 8)}, ring_size=30, init={"f": "lecun_fan_in"}
    )
    text = plan.to_json()
    assert '"init":"lecun_fan_in"' in text
    again = rpgcore.Plan.from_json(text)
    assert again == plan
    assert np.array_equal(again.expand(again.init_ring())["f"], plan.expand(plan.init_ring())["f"])
    with pytest.raises(PlanError, match="init rule 'x' of slot 'f' is unknown"):
        rpgcore.Plan.build({"f": (2, 2)}, ring_size=3, init={"f": "x"})
    with pytest.raises(PlanError, match="init names slots"):
        rpgcore.Plan.build({"f": (2, 2)}, ring_size=3, init={"g": "he_fan_out"})
    with pytest.raises(PlanError, match="init rule"):
        rpgcore.Plan.from_json(text.replace("lecun_fan_in", "xavier"))


def test_large_weights_that_cannot_be_generated_are_named_in_a_warning() -> None:
    layers = [_conv("a"), _linear("fc")]
    unsupported = [("emb.weight", (1000, 64)), ("attn.in_proj_weight", (192, 64)), ("t", (3, 3))]
    with pytest.warns(ConversionWarning, match=r"'emb.weight' \(1000, 64\), 'attn.in_proj_weight'"):
        convert(layers, Options(ring_size=500), ordinary=NONE, unsupported=unsupported)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # small ones are not worth a warning
        convert(layers, Options(ring_size=500), ordinary=NONE, unsupported=[("t", (3, 3))])
