"""What a run found, as sentences: claims only where a test on the same items supports them."""

from __future__ import annotations

import pytest

from fashion_utils import evaluation, findings


def _m04(*, versus=None, baseline_runs=(0.80, 0.81, 0.82), tuned_runs=(0.90, 0.91, 0.92)):
    kept = {"accuracy": 0.9239, "n_test": 10_000, "n_correct": 9_239,
            "card": {"label": "scratch CNN @ 28px"},
            "choice": {"scores": {"fine-tune @ 64px": 0.91, "scratch CNN @ 28px": 0.93}},
            "skipped": {}}
    return {"target": "articleType", "best_search": "hyperband", "kept_model": kept,
            "seed_study": {"baseline (03's head)": {"accuracy": list(baseline_runs)},
                           "hyperband": {"accuracy": list(tuned_runs)}},
            **({"kept_vs_baseline": versus} if versus else {})}


def _versus(a_only, b_only, n=10_000):
    a = [True] * (n - b_only) + [False] * b_only
    b = [True] * (n - a_only - b_only) + [False] * a_only + [True] * b_only
    return {**evaluation.mcnemar_test(a, b), "baseline": "03 baseline",
            "baseline_accuracy": sum(a) / n}


def test_the_kept_model_beats_the_baseline_only_when_mcnemar_says_so():
    strong = findings.tuning_findings(_m04(versus=_versus(a_only=100, b_only=600)))
    assert "McNemar's exact test, p < 0.001): the scratch CNN @ 28px model beats it." in strong[1]
    assert "it alone is right on 600, the baseline alone on 100" in strong[1]
    weak = findings.tuning_findings(_m04(versus=_versus(a_only=10, b_only=14)))
    assert weak[1].endswith(f": {evaluation.NO_DIFFERENCE}.") and "beats" not in weak[1]
    small = findings.tuning_findings(_m04(versus=_versus(a_only=15, b_only=33)))  # p = 0.013
    assert small[1].endswith("smaller than the 0.002 we state: no claim.")
    assert "beats" not in small[1] and evaluation.NO_DIFFERENCE not in small[1]
    assert "0.9239 (95% CI 0.9185–0.9289)" in weak[1]  # Wilson, from the counts
    worse = findings.tuning_findings(_m04(versus=_versus(a_only=600, b_only=100)))
    assert worse[1].endswith("the scratch CNN @ 28px model falls behind it.")


def test_the_seed_study_claims_by_welch_and_never_from_seeds_that_do_not_vary():
    helped = findings.tuning_findings(_m04())[0]
    assert "Welch's t-test, p < 0.001): the search helped." in helped and "+0.1000" in helped
    noise = findings.tuning_findings(_m04(tuned_runs=(0.80, 0.83, 0.815)))[0]
    assert noise.endswith(f": {evaluation.NO_DIFFERENCE}.")
    flat = findings.tuning_findings(_m04(baseline_runs=(233 / 236,) * 3,
                                         tuned_runs=(234 / 236,) * 3))[0]
    assert "no p-value: no seed varied" in flat and flat.endswith(f"{evaluation.NO_DIFFERENCE}.")
    unpaired = findings.tuning_findings(_m04())[1]
    assert "no paired test against 03's baseline: no claim" in unpaired


def test_multi_output_is_better_or_worse_per_attribute_only_where_mcnemar_says_so():
    rows = [{"attribute": "masterCategory", "multi-output acc": 0.9964,
             "single-target acc": 0.9965, "mcnemar_p": 0.9},
            {"attribute": "articleType", "multi-output acc": 0.8886,
             "single-target acc": 0.8980, "mcnemar_p": 1e-5}]
    m06 = {"per_attribute": rows, "multi_output_seconds": 12.6, "single_target_seconds": 36.3}
    text = findings.multioutput_findings(m06)[0]
    assert "articleType 0.8886 vs 0.8980 (p < 0.001: the shared network is worse)" in text
    assert f"masterCategory 0.9964 vs 0.9965 (p = 0.900: {evaluation.NO_DIFFERENCE})" in text
    rows[1]["mcnemar_p"] = 0.2
    assert "worse" not in findings.multioutput_findings(m06)[0]
    rows[0]["multi-output acc"], rows[0]["mcnemar_p"] = 0.9975, 0.01  # detected, below 0.002
    assert "smaller than the 0.002 we state: no claim" in findings.multioutput_findings(m06)[0]
    for row in rows:
        del row["mcnemar_p"]
    assert "no test recorded: no claim" in findings.multioutput_findings(m06)[0]


def test_retrieval_claims_by_a_paired_test_and_names_the_kept_models_recipe():
    m05 = {"k": 5, "kept_recipe": "scratch CNN @ 28px",
           "paired_test": {"a": "pretrained", "b": "kept model", "level": "articleType",
                           "mean_a": 0.797, "mean_b": 0.902, "difference": 0.105,
                           "p_value": 1e-40, "n": 10_000},
           "embedding_choice": {"chosen": "finetuned", "n_queries": 6000,
                                "scores": {"pretrained": 0.79, "finetuned": 0.90}}}
    text = findings.retrieval_findings(m05)
    assert "0.902 with the kept model's embeddings (scratch CNN @ 28px) vs 0.797" in text[0]
    assert text[0].endswith("the kept model embeddings find more of the same articleType.")
    assert "uses the kept model embeddings" in text[1] and "finetuned" not in text[1]


def test_sampling_findings_say_what_the_class_weights_would_do():
    m02 = {"n_kept": 70_000, "n_catalog": 70_000, "augmented": 600, "train": 54_600,
           "val": 6_000, "test": 10_000, "dropped_classes": [],
           "class_weights": {"original": {"a": 3.33, "b": 0.55},
                             "after_augmentation": {"a": 3.03, "b": 0.56}}}
    text = findings.sampling_findings(m02)
    assert "3.33" in text[1] and "augmentation narrowed the imbalance" in text[1]
    m02["class_weights"]["after_augmentation"] = {"a": 4.0, "b": 0.5}
    assert "did not narrow" in findings.sampling_findings(m02)[1]


def test_the_study_findings_are_five_to_eight_sentences():
    m03 = {"backbone": "lite0", "image_size": 96, "n_train": 54_600, "accuracy": 0.9957,
           "n_test": 10_000, "target": "masterCategory", "macro_f1": 0.99,
           "per_class": {"Bag": {"recall": 0.98, "support": 1000}}}
    m06 = {"per_attribute": [], "multi_output_seconds": 1.0, "single_target_seconds": 2.0}
    metrics = {"03_baseline_cnn": m03, "04_tuning": _m04(versus=_versus(10, 14)),
               "04_tuning-articleType": _m04(), "06_multi_output": m06,
               "05_recommendation": {"k": 5}}
    out = findings.study_findings(metrics, second_target="articleType")
    assert 5 <= len(out) <= 8 and out[0].startswith("The original recipe")
    assert findings.as_markdown(out).count("\n- ") == len(out) - 1


@pytest.mark.parametrize("m, expected", [
    ({"accuracy": 0.5, "n_test": 10}, (5, 10)),
    ({"accuracy": 0.123, "n_test": 1000, "n_correct": 123}, (123, 1000)),
])
def test_intervals_are_wilsons_from_the_counts(m, expected):
    assert findings.wilson(m) == evaluation.wilson_interval(*expected)


def test_the_seed_test_04_recorded_is_read_not_recomputed():
    """04 records its Welch test (``seed_test``); the sentence reads it. A run made before
    that recorded one gets it from its seed study's runs (the same test, from the same runs)."""
    m04 = _m04()
    recomputed = findings.tuning_findings(m04)[0]
    m04["seed_test"] = {"best": "hyperband", "baseline": "baseline (03's head)",
                        "difference": 0.0123, "p_value": 0.2, "n_seeds": 5}
    recorded = findings.tuning_findings(m04)[0]
    assert "5 seeds each, +0.0123" in recorded and "p = 0.200" in recorded
    assert recorded != recomputed and "3 seeds each, +0.1000" in recomputed
