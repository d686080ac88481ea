"""The README's findings and each catalog's results: rendered from metrics files, by the claim
rules, and in sync with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fashion_utils import config, evaluation
from fashion_utils.tools import report


def test_update_text_rewrites_only_between_the_markers():
    text = ("intro 0.5\n<!-- BEGIN generated:x -->\nold 1\nold 2\n<!-- END generated:x -->\n"
            "outro\n")
    new = report.update_text(text, {"x": "new table\n"})
    assert new == ("intro 0.5\n<!-- BEGIN generated:x -->\nnew table\n"
                   "<!-- END generated:x -->\noutro\n")
    assert report.update_text(new, {"x": "new table"}) == new  # idempotent
    with pytest.raises(ValueError, match="BEGIN generated:y"):
        report.update_text(text, {"y": "z"})


def _metrics(paths):
    """The smallest metrics files the six notebooks write, as a real run would."""
    per_class = {"Apparel": {"precision": 0.9, "recall": 0.8, "f1-score": 0.85, "support": 40},
                 "Free Items": {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1},
                 "macro avg": {"precision": 0.45, "recall": 0.4, "f1-score": 0.425,
                               "support": 41}}
    scores = {"accuracy": 0.8123, "ci_low": 0.7011, "ci_high": 0.9012, "macro_f1": 0.4321,
              "n_test": 41}
    level = {"precision@5": 0.611, "mAP@10": 0.522, "MRR@10": 0.733, "recall@10": 0.144}
    files = {
        "01_eda": {"n_rows_read": 50, "n_kept": 45, "n_repaired": 2, "seconds": 1.0,
                   "excluded_counts": {"missing image file": 5}},
        "02_sampling_augmentation": {"n_study": 60, "augmented": 15, "max_copies": 2,
                                     "train": 40, "val": 5, "test": 15,
                                     "seconds": 2.0, "dropped_classes": [
                                         {"class": "Home", "items": 1, "reason": "fewer than 10"}]},
        "03_baseline_cnn": {**scores, "backbone": "lite", "image_size": 96, "n_classes": 2,
                            "per_class": per_class, "seconds": 3.0, "target": "masterCategory",
                            "n_train": 40},
        "04_tuning": {"test": {"hyperband": {**scores, "accuracy": 0.7777}},
                      "target": "masterCategory", "best_search": "hyperband",
                      "seed_study": {"baseline (03's head)": {"accuracy": [0.80, 0.81, 0.82]},
                                     "hyperband": {"accuracy": [0.90, 0.91, 0.92]}},
                      "test_reads": {"count": 1, "models": ["hyperband"]}, "seconds": 4.0,
                      "search_rows": 3000, "epochs_per_trial": 6, "fine_tune": None,
                      "n_train": 3000, "n_val": 600,
                      "probes": {"all blocks, float32": {"second_epoch_s": 12.34, "images": 500},
                                 "all blocks, mixed_bfloat16": {"second_epoch_s": 25.0,
                                                                "images": 500}},
                      "verdict": "tuning did not help beyond seed noise."},
        "05_recommendation": {
            "metrics": list(level), "embedding_source": "pretrained", "kept_model": None, "k": 5,
            "n_queries": 41, "relevance_levels": {"strict": ["articleType", "baseColour"]},
            "embedding_choice": {"on": "validation precision@5 at articleType", "n_queries": 12,
                                 "scores": {"pretrained": 0.6, "kept model": 0.25},
                                 "chosen": "pretrained"},
            "whole_catalog": {"pretrained": {"articleType": level, "strict": level}},
            "held_out": {"pretrained": {"articleType": {**level, "precision@5": 0.409},
                                        "strict": level}}, "run_seconds": 5.0},
        "06_multi_output": {"multi_output_seconds": 6.0, "single_target_seconds": 7.0,
                            "seconds": 8.0, "per_attribute": [
                                {"attribute": "usage", "classes": 3, "test items": 40,
                                 "multi-output acc": 0.875, "95% CI": "0.8–0.9",
                                 "single-target acc": 0.85}]},
    }
    for name, metrics in files.items():
        evaluation.write_metrics(name, metrics, paths=paths)


def test_the_study_block_shows_what_the_metrics_hold(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "real_kaggle_sample", root=tmp_path).ensure()
    _metrics(paths)
    block = report.study_block(paths)
    assert "| 03 baseline: the original recipe on frozen lite features @ 96 px" in block
    low, high = evaluation.wilson_interval(round(0.8123 * 41), 41)  # Wilson, from the counts
    assert f"| 0.8123 | {low:.4f}–{high:.4f} | 0.4321 | 41 | 40 feature rows (the whole" in block
    assert "| 04 hyperband | 0.7777 |" in block and "read it 1 times" in block
    assert f"| {evaluation.ORIGINAL_STUDY['accuracy']:.4f} |" in block
    assert "| Free Items | 0.000 | 0.000 | 0.000 | 1 |" in block
    assert "Home (left the study: 1 items" in block and "macro avg" not in block
    assert "| pretrained | articleType | 0.611 | 0.522 | 0.733 | 0.144 | 0.409 |" in block
    assert "strict = same articleType + baseColour" in block
    assert ("uses the `pretrained` embeddings, chosen on validation precision@5 at articleType "
            "(12 validation queries: pretrained 0.600, kept model 0.250)") in block
    # 04 refit the kept head: 05 judged the train-only model in its place, and says so
    rec = evaluation.read_metrics("05_recommendation", paths=paths)
    rec["kept_model"] = "models/shop/kept_articleType.keras"
    rec["embedding_choice"]["kept_judged_with"] = "models/shop/recipes/frozen_articleType.keras"
    evaluation.write_metrics("05_recommendation", rec, paths=paths)
    assert ("(12 validation queries: pretrained 0.600, kept model 0.250; the kept model "
            "judged with `frozen_articleType.keras`, the train-only model 04 chose before "
            "refitting its head on train + validation)") in report.study_block(paths)
    rec["embedding_choice"]["kept_judged_with"] = rec["kept_model"]  # not refit
    evaluation.write_metrics("05_recommendation", rec, paths=paths)
    assert "kept model 0.250)" in report.study_block(paths)
    # an earlier run's name for the kept model's embeddings reads as what it is
    rec["embedding_choice"]["scores"] = {"pretrained": 0.6, "finetuned": 0.25}
    evaluation.write_metrics("05_recommendation", rec, paths=paths)
    assert "kept model 0.250)" in report.study_block(paths)
    low, high = evaluation.wilson_interval(35, 40)
    assert f"| usage | 3 | 40 | 0.875 | {low:.3f}–{high:.3f} | 0.850 | — |" in block
    assert "50 rows read, 45 kept, 2 repaired" in block and "5 missing image file" in block
    assert "40 train / 5 validation / 15 test" in block
    assert "0.4 minutes in all" in block  # 1 + 2 + 3 + 4 + 5 + 8 = 23 s
    assert "retrained on 3,000 training + 600 validation rows (the search subsample)" in block
    welch = evaluation.welch_test([0.80, 0.81, 0.82], [0.90, 0.91, 0.92])
    assert ("(the search subsample), at most 6 epochs per trial. Tuning the head (masterCategory):"
            " the search chosen on validation (hyperband) vs the baseline head, 3 seeds each, "
            f"+0.1000 validation accuracy (Welch's t-test, {evaluation.p_text(welch['p_value'])}):"
            " the search helped.") in block
    assert "tuning did not help" not in block  # the stored verdict of the old rule is not read
    assert ("probes (the second epoch's seconds on 500 images): all blocks, float32 12.3 s; "
            "all blocks, mixed_bfloat16 25.0 s.") in block
    assert f"{config.SECOND_TARGET} on the test side" not in block  # its metrics are absent


def test_the_second_target_and_the_study_timing_appear_when_written(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "shop", root=tmp_path).ensure()
    _metrics(paths)
    second = config.SECOND_TARGET
    evaluation.write_metrics(f"03_baseline_cnn-{second}", {
        "accuracy": 0.6543, "ci_low": 0.6, "ci_high": 0.7, "macro_f1": 0.61, "n_test": 41,
        "n_correct": 27, "backbone": "lite", "image_size": 96, "n_classes": 7}, paths=paths)
    evaluation.write_metrics("study", {
        "budget_minutes": 60, "quick": False, "notebook_seconds": 12.0, "wall_seconds": 13.0,
        "load_average": {"start": [0.25, 0.5, 0.5], "end": [2.0, 2.0, 1.0]},
        "steps": [{"notebook": "03_baseline_cnn", "target": second, "seconds": 12.0}]},
        paths=paths)
    block = report.study_block(paths)
    section = block[block.index(f"**{second} on the test side**"):]
    low, high = evaluation.wilson_interval(27, 41)
    assert "7 classes" in section
    assert f"| 0.6543 | {low:.4f}–{high:.4f} | 0.6100 | 41 |" in section
    assert "the original study" not in section.split("**Retrieval**")[0]
    assert f"| 03_baseline_cnn | {second} | — | 12.0 | 0.2 |" in block  # planned: none recorded
    assert "Budget 60 minutes; wall 0.2 minutes; load average before the run 0.25" in block
    assert "minutes in all" not in block


def test_the_end_to_end_recipes_their_minutes_choice_and_file_check_are_reported(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "shop", root=tmp_path).ensure()
    _metrics(paths)
    tuning = evaluation.read_metrics("04_tuning", paths=paths)
    tuning["fine_tune"] = {
        "train_images": 3000, "chosen_recipe": "scratch CNN @ 28px",
        "choice": {"scores": {"fine-tuned lite @ 64px": 0.9087, "scratch CNN @ 28px": 0.9312,
                              "frozen lite @ 96px + best head": 0.9001},
                   "chosen": "scratch CNN @ 28px", "val_images": 3000},
        "recipes": {"fine-tuned lite @ 64px": {"seconds": 251.0, "epochs_run": 1, "epochs": 2,
                                               "train_images": 5400},
                    "scratch CNN @ 28px": {"seconds": 723.0, "epochs_run": 6, "epochs": 40,
                                           "stopped_for_time": True, "train_images": 5400},
                    "frozen lite @ 96px + best head": {"seconds": 150.0, "epochs_run": 0,
                                                       "epochs": 0, "train_images": 3000}},
        "user_check": {"images": 41, "correct_from_file": 39, "correct_in_notebook": 38}}
    evaluation.write_metrics("04_tuning", tuning, paths=paths)
    block = report.study_block(paths)
    assert ("End-to-end recipes on 5,400 training images, validation accuracy of each saved "
            "model on 3,000 validation images: fine-tuned lite @ 64px 0.9087 after 4.2 training "
            "minutes (1 epochs); scratch CNN @ 28px 0.9312 after 12.1 training minutes "
            "(6 epochs, cut by its time cap); frozen lite @ 96px + best head 0.9001 after 2.5 "
            "training minutes (none on images: the cached features' extraction and the head's "
            "training on 3,000 feature rows). Chosen on validation: scratch CNN @ 28px.") in block
    assert "classifies 39 of 41 test images correctly, NOT the same count as in the" in block
    # the frozen head chosen and refit on train + validation before it was saved
    tuning["fine_tune"].update(chosen_recipe="frozen lite @ 96px + best head", refit_images=6000)
    evaluation.write_metrics("04_tuning", tuning, paths=paths)
    assert ("Chosen on validation: frozen lite @ 96px + best head, its head then retrained on "
            "6,000 train + validation feature rows and saved. Its saved `.keras` file"
            ) in report.study_block(paths)


def test_update_readme_writes_the_findings_and_each_catalogs_page_and_check_writes_nothing(
        tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_OUTPUT_ROOT", str(tmp_path))
    for name in report.BLOCKS:
        _metrics(config.Paths(data_dir=tmp_path / name, root=tmp_path).ensure())
    about = tmp_path / "reports" / "real_kaggle_sample" / report.ABOUT_FILE
    about.write_text("## The sample\n\nDrawn by hand.\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- BEGIN generated:findings -->\n<!-- END generated:findings -->\n")
    assert report.update_readme(readme, check=True) is True
    assert not list((tmp_path / "reports").glob("*/README.md"))  # check writes nothing
    assert report.update_readme(readme) is True
    for name, title in report.BLOCKS.items():
        written = (tmp_path / "reports" / name / "README.md").read_text()
        assert written.startswith(f"# The study on `{name}`") and "| 04 hyperband |" in written
        text = readme.read_text()
        assert f"**{title}**" in text and f"(reports/{name}/README.md)" in text
        # only the default catalog's figures and executed notebooks are committed and linked
        assert ("[`executed/`](executed/)" in written) == (name == config.DEFAULT_CATALOG_NAME)
    sample = (tmp_path / "reports" / "real_kaggle_sample" / "README.md").read_text()
    assert "## The sample\n\nDrawn by hand." in sample
    text = readme.read_text()
    assert "- The original recipe (Dense 50-20 on frozen lite features at 96 px" in text
    assert "the search helped." in text and "| 04 hyperband |" not in text  # findings only
    assert report.update_readme(readme, check=True) is False  # in sync now


def test_the_class_counts_of_02_and_06_are_explained_from_their_metrics(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "shop", root=tmp_path).ensure()
    _metrics(paths)
    assert report._class_counts_text(paths) == ""  # 06 has no row for the target
    multi = evaluation.read_metrics("06_multi_output", paths=paths)
    multi["per_attribute"].append({"attribute": "masterCategory", "classes": 1,
                                   "test items": 40, "multi-output acc": 1.0,
                                   "single-target acc": 1.0})
    multi["provenance"] = {"parameters": {"MIN_COUNT": 10}}  # what run.write_metrics records
    evaluation.write_metrics("06_multi_output", multi, paths=paths)
    text = report._class_counts_text(paths)
    assert "(masterCategory 2 in 03–04, 1 in 06)" in text
    assert "Why the class counts differ" in text
    assert "at least 10 products in the whole catalog" in text  # from 02's dropped-class reason
    assert "at least 10 training products" in text
    multi["per_attribute"][-1]["classes"] = 2  # the same count in 03–04 and 06: no sentence
    evaluation.write_metrics("06_multi_output", multi, paths=paths)
    assert report._class_counts_text(paths) == ""


def test_a_missing_metrics_file_is_named(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "real_kaggle_sample", root=tmp_path).ensure()
    with pytest.raises(FileNotFoundError, match="01_eda"):
        report.study_block(paths)


def test_the_readme_is_in_sync_with_the_committed_metrics(monkeypatch):
    """Every generated number in README.md is what the committed metrics files give: a typed
    or stale number fails here (fix: python -m fashion_utils.tools.report)."""
    monkeypatch.setenv("FASHION_OUTPUT_ROOT", str(config.PROJ_ROOT))
    assert report.update_readme(check=True) is False


PUBLISHED = config.PROJ_ROOT / "reports" / config.DEFAULT_CATALOG_NAME
MAX_PUBLISHED_BYTES = 15 * 2**20  # the committed executed study stays light to clone


def _published_study():
    return json.loads((PUBLISHED / "metrics" / "study.json").read_text(encoding="utf-8"))


def test_the_published_study_is_one_clean_run_of_make():
    """The default catalog's committed metrics all come from the reference `make`: one commit,
    full mode, every step of the plan (and, where recorded so, no uncommitted source change)."""
    study = _published_study()
    assert study["quick"] is False
    git = study["provenance"]["git"]
    commit = git["commit"]
    assert commit and len(commit) == 40
    if "dirty_excludes" in git:  # since the flag judges the source only (a run rewrites reports/)
        assert git["dirty"] is False
    for step in study["steps"]:
        name = Path(step["executed"]).stem
        written = json.loads((PUBLISHED / "metrics" / f"{name}.json").read_text())
        assert written["provenance"]["git"]["commit"] == commit, name
        assert written["provenance"]["parameters"]["QUICK"] is False, name


def test_the_published_executed_notebooks_are_every_step_with_outputs_and_no_error():
    study = _published_study()
    files = sorted((PUBLISHED / "executed").glob("*.ipynb"))
    assert sorted(p.name for p in files) == sorted(s["executed"] for s in study["steps"])
    assert sum(p.stat().st_size for p in files) <= MAX_PUBLISHED_BYTES
    for path in files:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert outputs, f"{path.name} has no outputs"
        assert not [o for o in outputs if o.get("output_type") == "error"], path.name


def test_the_near_duplicate_and_diversify_sentences_read_05s_metrics():
    from fashion_utils.tools import report

    level = {"articleType": {"precision@5": 0.92, "pairwise similarity@5": 0.95}}
    rec = {"relevance_levels": {"articleType": ["articleType"]}, "metrics": ["precision@5"],
           "k": 5,
           "near_duplicates": {"items": 70_000, "groups_of_two_or_more": 440,
                               "items_in_such_groups": 1_344, "largest_group": 58,
                               "collapse": {"source": "kept model", "max_distance": 4,
                                            "max_difference": 4.0,
                                            "whole catalog": {"plain": level, "collapsed": level},
                                            "held out": {"plain": level, "collapsed": level}}},
           "diversify": {"source": "finetuned", "trade_off": 0.7,  # an earlier run's name
                         "whole catalog": {"plain": level, "MMR 0.7": level},
                         "held out": {"plain": level, "MMR 0.7": level}}}
    text = report._duplicates_text(rec)
    assert "at most 4 of 64 bits apart, thumbnails within 4 grey levels" in text
    assert "440 groups holding 1,344 of 70,000 images, the largest 58" in text
    diversify = report._diversify_text(rec)
    assert "trade-off 0.7" in diversify and "precision@5 0.920 → 0.920" in diversify
    assert "`kept model` embeddings" in text and "`kept model` embeddings" in diversify
    assert report._duplicates_text({}) == report._diversify_text({}) == ""
