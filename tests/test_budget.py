"""The study's plan: measured once per machine, every heavy step sized to the budget."""

from __future__ import annotations

import json

import pytest

from fashion_utils import config
from fashion_utils.tools import budget

FASHION_MNIST = {"n_products": 70_000, "image_size": 96, "native_side": 28}
REAL_PHOTOS = {"n_products": 8_936, "image_size": 224, "native_side": 2400}
WHOLE_KAGGLE = {"n_products": 44_000, "image_size": 224, "native_side": 2400}


def _speed(slowdown: float = 1.0) -> budget.MachineSpeed:
    """A machine ``slowdown`` times slower than this study's reference machine."""
    return budget.MachineSpeed(infer_s_per_image=0.0012 * slowdown,
                               train_s_per_image=0.006 * slowdown,
                               head_s_per_row_epoch=budget.REFERENCE_HEAD_S * slowdown,
                               machine={"cpu": {"model": "test CPU"}})


def _plan(minutes=60, profile=FASHION_MNIST, slowdown=1.0, **options):
    return budget.plan_study(minutes, profile=profile, speed=_speed(slowdown),
                             first_seconds=15.0, **options)


def _planned_minutes(steps) -> float:
    return sum(s.planned_seconds for s in steps) / 60


def test_the_plan_runs_02_to_04_for_each_target_then_05_and_06():
    steps, _ = _plan()
    assert [s.notebook for s in steps] == ["02", "03", "04", "02", "03", "04", "05", "06"]
    assert [s.target for s in steps[:6]] == [config.DEFAULT_TARGET] * 3 + [
        config.SECOND_TARGET] * 3
    assert all(s.planned_seconds > 0 for s in steps)
    one, _ = _plan(second_target=None)
    assert [s.notebook for s in one] == ["02", "03", "04", "05", "06"]
    same, _ = _plan(second_target=config.DEFAULT_TARGET)
    assert [s.notebook for s in same] == ["02", "03", "04", "05", "06"]


@pytest.mark.parametrize("profile", [FASHION_MNIST, REAL_PHOTOS, WHOLE_KAGGLE,
                                     {"n_products": 2_946, "image_size": 224,
                                      "native_side": 300}])
@pytest.mark.parametrize("slowdown", [0.5, 1.0, 2.0, 3.5])
def test_the_planned_minutes_fit_the_budget_on_any_machine(profile, slowdown):
    """What the plan foresees stays within the budget (01's 15 s and the margin included),
    from a machine twice as fast to one 3.5 times as slow (the AVX2-only kind)."""
    for minutes in (60, 120):
        steps, _ = _plan(minutes, profile, slowdown)
        assert _planned_minutes(steps) + 0.25 <= minutes


def _heavy(steps) -> list[tuple]:
    """The sizes of 04's heavy steps, per target: rows, epochs, trials, recipe seconds."""
    out = []
    for s in steps:
        if s.notebook == "04":
            p = s.parameters
            rows = p["SEARCH_ROWS"] or 10**9
            out.append((rows, p["EPOCHS"], p["MAX_TRIALS"],
                        sum(r.get("max_seconds", 0) for r in p["RECIPES"].values())))
    return out


@pytest.mark.parametrize("low, high", [(30, 60), (60, 120), (120, 240)])
def test_more_minutes_never_plan_a_heavy_step_smaller(low, high):
    small, large = _heavy(_plan(low)[0]), _heavy(_plan(high)[0])
    for a, b in zip(small, large):
        assert b[0] >= a[0] and b[3] >= a[3]
    assert _planned_minutes(_plan(high)[0]) > _planned_minutes(_plan(low)[0])


def test_a_slower_machine_gets_a_plan_no_larger():
    fast, slow = _heavy(_plan(slowdown=1.0)[0]), _heavy(_plan(slowdown=3.5)[0])
    for a, b in zip(fast, slow):
        assert b[0] <= a[0] and b[3] <= a[3]


def test_recipes_that_cannot_win_are_left_out_with_the_reason():
    steps, notes = _plan(profile=REAL_PHOTOS)
    recipes = [s.parameters["RECIPES"] for s in steps if s.notebook == "04"]
    assert all("scratch CNN" not in r for r in recipes)  # 2400-px photos: thumbnails
    assert any("scratch CNN: the images are 2400-px photos" in n for n in notes)
    # Fashion-MNIST's 28-px images: the finest target trains the scratch CNN
    steps, _ = _plan()
    finest = [s for s in steps if s.notebook == "04"][-1]
    assert "scratch CNN" in finest.parameters["RECIPES"]
    assert finest.parameters["RECIPES"]["fine-tune"]["image_size"] >= 64


def test_a_machine_too_slow_for_the_catalogs_side_extracts_smaller_and_says_so():
    steps, notes = _plan(profile=WHOLE_KAGGLE, slowdown=3.5)
    sides = {s.parameters.get("IMAGE_SIZE") for s in steps}
    assert len(sides) == 1 and sides.pop() < 224
    assert any("does not fit the budget" in n for n in notes)
    steps, notes = _plan(profile=REAL_PHOTOS)  # a fast one keeps the catalog's side
    assert all("IMAGE_SIZE" not in s.parameters for s in steps)


def test_every_parameter_the_plan_passes_is_declared_by_its_notebook():
    from fashion_utils.tools import runner

    for profile in (FASHION_MNIST, REAL_PHOTOS):
        for slowdown in (1.0, 3.5):
            for step in _plan(240, profile, slowdown)[0] + budget.quick_steps():
                [nb] = runner.notebook_paths(only=[step.notebook])
                runner.check_parameters([nb], step.parameters)  # raises on a stale name


def test_the_quick_study_plans_nothing():
    steps = budget.quick_steps()
    assert [s.notebook for s in steps] == ["02", "03", "04", "02", "03", "04", "05", "06"]
    assert all(set(s.parameters) <= {"TARGET"} and s.planned_seconds is None for s in steps)
    assert [s.notebook for s in budget.quick_steps(None)] == ["02", "03", "04", "05", "06"]


@pytest.mark.parametrize("minutes", [0, -5, "an hour", None])
def test_a_budget_must_be_a_positive_number(minutes):
    with pytest.raises(ValueError, match="minutes"):
        _plan(minutes)


def test_the_fine_tune_plan_fills_its_cap_with_pixels_then_epochs():
    fast = _speed(0.5)
    plan = budget.plan_fine_tune
    # a big catalog keeps the smallest side and the one epoch that always runs
    assert plan(n_train=54_000, n_val=6_000, speed=_speed(), max_seconds=300) == (64, 1)
    # a small one gets more pixels, and more still on a faster machine
    small = plan(n_train=2_118, n_val=236, speed=_speed(), max_seconds=600)
    faster = plan(n_train=2_118, n_val=236, speed=fast, max_seconds=600)
    assert small[1] == budget.PLAN_MAX_EPOCHS and faster[0] > small[0]
    assert plan(n_train=100, n_val=10, speed=_speed(), max_seconds=600) == (
        budget.PLAN_SIZES[-1], budget.PLAN_MAX_EPOCHS)
    # property: whatever it picks fits the cap (or is the one epoch that always runs)
    for n in (50, 500, 5_000, 50_000):
        for cap in (30, 300, 3_000):
            side, epochs = plan(n_train=n, n_val=n // 9, speed=_speed(), max_seconds=cap)
            cost = epochs * budget.fine_tune_epoch_seconds(n, n // 9, side, _speed())
            assert side in budget.PLAN_SIZES and 1 <= epochs <= budget.PLAN_MAX_EPOCHS
            assert cost <= cap or (side, epochs) == (64, 1)


@pytest.mark.parametrize("bad, match", [({"n_train": 0}, "n_train=0"),
                                        ({"max_seconds": -1.0}, "max_seconds=-1.0"),
                                        ({"sizes": ()}, "sizes")])
def test_a_bad_fine_tune_plan_input_is_named(bad, match):
    options = dict(n_train=10, n_val=1, speed=_speed(), max_seconds=60)
    with pytest.raises(ValueError, match=match):
        budget.plan_fine_tune(**{**options, **bad})


def test_the_machine_is_measured_once_and_again_when_it_changes(tmp_path, monkeypatch):
    calls = []

    def measure(backbone):
        calls.append(backbone)
        return {"infer_s_per_image": 0.001, "train_s_per_image": 0.005,
                "head_s_per_row_epoch": 1e-4, "seconds": 9.0}

    cache = tmp_path / "machine_probe.json"
    first = budget.probe_machine(cache, measure=measure)
    again = budget.probe_machine(cache, measure=measure)
    assert calls == [config.DEFAULT_BACKBONE] and first == again
    assert first.slowdown == pytest.approx(1e-4 / budget.REFERENCE_HEAD_S)
    budget.probe_machine(cache, backbone="other", measure=measure)  # another backbone
    assert len(calls) == 2
    monkeypatch.setattr(budget.provenance, "cpu", lambda: {"model": "another CPU"})
    budget.probe_machine(cache, backbone="other", measure=measure)  # another CPU
    assert len(calls) == 3
    cache.write_text("{not json")
    budget.probe_machine(cache, backbone="other", measure=measure)  # a damaged cache
    assert len(calls) == 4 and json.loads(cache.read_text())["head_s_per_row_epoch"] == 1e-4


def test_the_timing_table_sets_planned_beside_actual_seconds():
    record = {"budget_minutes": 60, "notebook_seconds": 30.0, "wall_seconds": 31.0,
              "load_average": {"start": [0.5, 0.4, 0.3], "end": [1.0, 0.8, 0.5]},
              "steps": [{"notebook": "01_eda", "target": "masterCategory", "seconds": 10.0,
                         "planned_seconds": None},
                        {"notebook": "03_baseline_cnn", "target": "articleType",
                         "seconds": 20.0, "planned_seconds": 25.0}]}
    table = budget.timing_table(record)
    assert "| 01_eda | masterCategory | — | 10.0 | 0.2 |" in table
    assert "| 03_baseline_cnn | articleType | 25.0 | 20.0 | 0.3 |" in table
    assert "| **all notebooks** |  | 25.0 | 30.0 | 0.5 |" in table  # what was planned
    assert "load average before the run 0.50" in table and "Machine" not in table
    # a record that names its CPU says so: timings differ several-fold between CPUs
    record["provenance"] = {"machine": {"cpu_count": 2, "cpu": {"model": "AMD EPYC",
                                                                "vector_isa": "avx2"}}}
    assert "Machine: 2 × AMD EPYC, widest vector instructions avx2." in budget.timing_table(record)
