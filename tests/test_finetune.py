"""Fine-tuning helpers that need no training: the plan that fits a fine-tune to its time cap."""

from __future__ import annotations

import pytest

from fashion_utils import finetune


def test_the_plan_fills_the_time_cap_with_pixels_then_epochs():
    plan = finetune.plan_fine_tune
    # Fashion-MNIST at make's budget: one 64 px epoch fits 600 s, two do not
    assert plan(n_train=54_000, n_val=6_000, seconds_per_image=0.00686, probe_size=64,
                max_seconds=600) == (64, 1)
    # the real sample: 10 epochs fit at 96 px, not at 128
    assert plan(n_train=2_118, n_val=236, seconds_per_image=0.0073, probe_size=64,
                max_seconds=600) == (96, 10)
    # a tiny catalog gets the largest side; a huge one still gets one epoch
    assert plan(n_train=100, n_val=10, seconds_per_image=0.01, probe_size=64,
                max_seconds=600) == (128, 10)
    assert plan(n_train=10**6, n_val=0, seconds_per_image=0.01, probe_size=64,
                max_seconds=60) == (64, 1)
    # property: whatever it picks fits the cap (or is the one epoch that always runs)
    for n in (50, 500, 5_000, 50_000):
        for cap in (30, 300, 3_000):
            side, epochs = plan(n_train=n, n_val=n // 9, seconds_per_image=0.005, probe_size=64,
                                max_seconds=cap)
            cost = 0.005 * (n + n // 9 / 3) * (side / 64) ** 2 * epochs
            assert side in finetune.PLAN_SIZES and 1 <= epochs <= finetune.PLAN_MAX_EPOCHS
            assert cost <= cap or (side, epochs) == (64, 1)


@pytest.mark.parametrize("bad, match", [({"n_train": 0}, "n_train=0"),
                                        ({"seconds_per_image": -1.0}, "seconds_per_image=-1.0"),
                                        ({"sizes": ()}, "sizes")])
def test_a_bad_plan_input_is_named(bad, match):
    options = dict(n_train=10, n_val=1, seconds_per_image=0.01, probe_size=64, max_seconds=60)
    with pytest.raises(ValueError, match=match):
        finetune.plan_fine_tune(**{**options, **bad})
