"""What the whole study runs within its time budget (budget.py)."""

from __future__ import annotations

import pytest

from fashion_utils import config
from fashion_utils.tools import budget, runner


def _numbers(plan):
    return [(step.notebook, step.target) for step in plan]


def test_the_study_runs_02_to_04_again_for_the_second_target_then_05_and_06():
    plan = budget.study_plan()
    first, second = config.DEFAULT_TARGET, config.SECOND_TARGET
    assert _numbers(plan) == [("01", first), ("02", first), ("03", first), ("04", first),
                              ("02", second), ("03", second), ("04", second),
                              ("05", first), ("06", first)]
    # every step names a notebook that exists, once
    for step in plan:
        assert len(runner.notebook_paths(config.NOTEBOOKS_DIR, only=[step.notebook])) == 1


@pytest.mark.parametrize("second", [None, config.DEFAULT_TARGET])
def test_no_second_target_means_one_pass(second):
    plan = budget.study_plan(second_target=second)
    assert [s.notebook for s in plan] == ["01", "02", "03", "04", "05", "06"]


def test_only_04_gets_the_budget_and_quick_mode_keeps_the_quick_defaults():
    plan = budget.study_plan(90)
    for step in plan:
        if step.notebook == "04":
            tuning = budget.tuning_parameters(90, finest=step.target == config.SECOND_TARGET)
            assert {k: step.parameters[k] for k in tuning} == tuning
        else:
            assert set(step.parameters) <= {"TARGET"}
    quick = budget.study_plan(90, quick=True)
    assert all(set(s.parameters) <= {"TARGET", "PROBE_IMAGES"} for s in quick)


@pytest.mark.parametrize("low,high", [(30, 60), (60, 120), (120, 240), (240, 600)])
def test_a_larger_budget_never_makes_a_heavy_step_smaller(low, high):
    small, large = budget.tuning_parameters(low), budget.tuning_parameters(high)
    assert set(small) == set(large)
    for key in small:
        assert large[key] >= small[key], key
    assert large["FINE_TUNE_MAX_SECONDS"] > small["FINE_TUNE_MAX_SECONDS"]
    assert large["SCRATCH_MAX_SECONDS"] > small["SCRATCH_MAX_SECONDS"]
    assert large["SEARCH_ROWS"] > small["SEARCH_ROWS"]


def test_the_default_budget_is_what_the_readme_reports():
    assert budget.tuning_parameters() == {"SEARCH_ROWS": 3000, "EPOCHS": 6,
                                          "FINE_TUNE_IMAGE_SIZE": 64, "FINE_TUNE_EPOCHS": 1,
                                          "FINE_TUNE_MAX_SECONDS": 600,
                                          "SCRATCH": False, "SCRATCH_MAX_SECONDS": 320}
    finest = budget.tuning_parameters(finest=True)
    assert finest["SCRATCH"] is True and finest["SCRATCH_MAX_SECONDS"] == 720
    assert budget.tuning_parameters(1)["SEARCH_ROWS"] == 500  # never below 500 rows


@pytest.mark.parametrize("minutes", [0, -5, "an hour", None])
def test_a_budget_must_be_a_positive_number(minutes):
    with pytest.raises(ValueError, match="minutes"):
        budget.tuning_parameters(minutes)


def test_the_timing_table_lists_every_step_and_the_total():
    record = {"budget_minutes": 60, "notebook_seconds": 30.0, "wall_seconds": 31.0,
              "load_average": {"start": [0.5, 0.4, 0.3], "end": [1.0, 0.8, 0.5]},
              "steps": [{"notebook": "01_eda", "target": "masterCategory", "seconds": 10.0},
                        {"notebook": "03_baseline_cnn", "target": "articleType",
                         "seconds": 20.0}]}
    table = budget.timing_table(record)
    assert "| 01_eda | masterCategory | 10.0 | 0.2 |" in table
    assert "| 03_baseline_cnn | articleType | 20.0 | 0.3 |" in table
    assert "| **all notebooks** |  | 30.0 | 0.5 |" in table
    assert "load average before the run 0.50" in table and "Machine" not in table
    # a record that names its CPU says so: timings differ several-fold between CPUs
    record["provenance"] = {"machine": {"cpu_count": 2, "cpu": {"model": "AMD EPYC",
                                                                "vector_isa": "avx2"}}}
    assert "Machine: 2 × AMD EPYC, widest vector instructions avx2." in budget.timing_table(record)


def test_the_finest_target_gets_most_of_the_scratch_cnn_time():
    steps = [s for s in budget.study_plan(60) if s.notebook == "04"]
    assert [s.target for s in steps] == [config.DEFAULT_TARGET, config.SECOND_TARGET]
    first, finest = (s.parameters["SCRATCH_MAX_SECONDS"] for s in steps)
    assert finest > 2 * first
    # at the default budget only the finest target trains it; from twice the budget on, both
    assert [s.parameters["SCRATCH"] for s in steps] == [False, True]
    assert all(s.parameters["SCRATCH"] for s in budget.study_plan(120) if s.notebook == "04")
    assert all("SCRATCH_MAX_SECONDS" not in s.parameters for s in budget.study_plan(quick=True))
