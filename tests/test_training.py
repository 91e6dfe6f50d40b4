"""The framework-neutral training pieces: settings, schedules, batch order, scores."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from rpgcore.errors import ArgumentError
from rpgcore.training import Progress, TrainConfig, batch_order, learning_rate, score


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "at least 1 epoch"),
        ("batch_size", -1, "positive integer"),
        ("lr", float("nan"), "positive learning rate"),
        ("lr", 0.0, "positive learning rate"),
        ("momentum", 1.0, r"\[0, 1\)"),
        ("weight_decay", -1e-4, "0 or a small positive"),
        ("schedule", "linear", "step, cosine, constant"),
        ("seed", -3, r"\[0, 2\*\*63\)"),
    ],
)
def test_config_rejects_with_the_value_and_the_fix(field, value, message):
    with pytest.raises(ArgumentError, match=message) as info:
        TrainConfig(**{field: value})
    assert f"{field}=" in str(info.value)


def test_step_schedule_is_the_cifar_recipe():
    config = TrainConfig(epochs=8, lr=0.1, schedule="step")
    rates = [learning_rate(config, e) for e in range(8)]
    assert rates[:4] == [0.1] * 4  # milestones at epochs 4 and 6
    assert rates[4:6] == [pytest.approx(0.01)] * 2
    assert rates[6:] == [pytest.approx(0.001)] * 2
    assert learning_rate(config, 3.99) == 0.1  # within-epoch fractions stay before the step


def test_cosine_and_constant():
    cosine = TrainConfig(epochs=4, lr=0.2, schedule="cosine")
    for epoch in (0, 0.5, 1, 2.25, 3.9):
        assert learning_rate(cosine, epoch) == pytest.approx(
            0.1 * (1 + math.cos(math.pi * epoch / 4))
        )
    constant = TrainConfig(epochs=3, lr=0.05, schedule="constant")
    assert {learning_rate(constant, e) for e in range(3)} == {0.05}


def test_batch_order_covers_every_example_once_and_depends_on_seed_and_epoch():
    batches = batch_order(103, 10, seed=4, epoch=2)
    assert [len(b) for b in batches] == [10] * 10 + [3]
    joined = np.concatenate(batches)
    assert joined.dtype == np.int64
    assert sorted(joined.tolist()) == list(range(103))
    again = np.concatenate(batch_order(103, 10, seed=4, epoch=2))
    assert np.array_equal(joined, again)
    assert not np.array_equal(joined, np.concatenate(batch_order(103, 10, seed=5, epoch=2)))
    assert not np.array_equal(joined, np.concatenate(batch_order(103, 10, seed=4, epoch=3)))


def test_score_against_a_direct_computation():
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((50, 7)) * 5).astype(np.float32)
    labels = rng.integers(0, 7, 50)
    rows = logits.astype(np.float64).tolist()  # the same float32 values, exactly widened
    losses = [
        math.log(math.fsum(math.exp(v) for v in row)) - row[label]
        for row, label in zip(rows, labels.tolist(), strict=True)
    ]
    hits = [row.index(max(row)) == label for row, label in zip(rows, labels, strict=True)]
    loss, accuracy = score(logits, labels)
    # Both sides work in float64 from the same inputs; they differ only in the order
    # and method of the sums (fsum vs numpy), far below 1e-12 relative.
    assert loss == pytest.approx(math.fsum(losses) / 50, rel=1e-12)
    assert accuracy == sum(hits) / 50


def test_score_is_stable_for_large_logits():
    loss, accuracy = score(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([0, 0]))
    assert math.isfinite(loss)
    assert loss == pytest.approx(500.0)
    assert accuracy == 0.5


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (np.zeros((3, 2)), np.zeros(4, int), "do not pair up"),
        (np.zeros(3), np.zeros(3, int), "do not pair up"),
        (np.zeros((3, 2)), np.array([0, 1, 2]), "2 classes"),
    ],
)
def test_score_rejects(logits, labels, message):
    with pytest.raises(ArgumentError, match=message):
        score(logits, labels)


def test_progress_prints_one_line_per_epoch_off_a_terminal():
    out = io.StringIO()
    bar = Progress(out)
    for epoch in (1, 2):
        bar.start(epoch, 2, 4, lr=0.1)
        for step in range(1, 5):
            bar.step(step, loss=1.0 / step, correct=step, seen=2 * step)
        bar.finish(test_loss=0.5, test_accuracy=0.625)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2/2 [")
    assert "4/4" in lines[1]
    assert "acc 50.00%" in lines[1]
    assert "test acc 62.50%" in lines[1]
    assert "\r" not in out.getvalue()
