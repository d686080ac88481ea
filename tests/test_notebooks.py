"""Smoke test: every notebook runs end to end under papermill in quick mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fashion_utils import config, evaluation
from fashion_utils.tools import budget, published, runner

pytestmark = pytest.mark.notebooks

#: Passed to every notebook, as `make notebooks QUICK=1 PARAMS="EPOCHS=2"` does: quick mode must
#: keep it (03's quick default is 3, 06's is 5) and fill only what was not passed.
PASSED = {"EPOCHS": 2}


def _metrics_dir(root):
    """Where the quick run of the default catalog writes its metrics."""
    return root / "reports" / "quick" / config.DEFAULT_CATALOG_NAME / "metrics"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Execute the whole study once in quick mode (``make QUICK=1``: every notebook, 02-04 again
    for the second target), with outputs in a throw-away root; returns (root, executed, record)."""
    from fashion_utils.catalog.fashion_mnist import prepare_fashion_mnist

    prepare_fashion_mnist(config.default_data_dir())  # idempotent: a no-op once prepared
    root = tmp_path_factory.mktemp("quick-study")
    mp = pytest.MonkeyPatch()
    mp.setenv("FASHION_OUTPUT_ROOT", str(root))  # the kernels inherit it
    try:
        record = runner.run_study(quick=True, parameters=PASSED, output_dir=root / "executed",
                                  html=False)
    finally:
        mp.undo()
    return root, [root / "executed" / s["executed"] for s in record["steps"]], record


def test_the_study_runs_every_notebook_and_the_second_target_and_times_each(quick_run):
    root, executed, record = quick_run
    names = [p.name for p in runner.notebook_paths(config.NOTEBOOKS_DIR)]
    again = [runner.executed_name(Path(n), target=config.SECOND_TARGET) for n in names[1:4]]
    assert [p.name for p in executed] == [*names[:4], *again, *names[4:]]
    written = json.loads((_metrics_dir(root) / "study.json").read_text())
    assert written["steps"] == record["steps"] and written["quick"] is True
    assert all(s["seconds"] > 0 for s in record["steps"])
    assert record["notebook_seconds"] == pytest.approx(sum(s["seconds"] for s in record["steps"]),
                                                       abs=0.2)
    assert record["wall_seconds"] >= record["notebook_seconds"] - 0.2
    assert len(record["load_average"]["start"]) == 3
    assert all(f"| {s['notebook']} | {s['target']} |" in budget.timing_table(record)
               for s in record["steps"])
    rec = json.loads((_metrics_dir(root) / "05_recommendation.json").read_text())
    assert Path(rec["kept_model"]).name == f"kept_{config.SECOND_TARGET}.keras"
    # each image went through each model at each side once, whichever notebook asked first
    stores = record["feature_stores"]
    assert len(stores) >= 1 and all(s["forward_passes"] == s["distinct_images"] > 0
                                    for s in stores), stores


def test_every_notebook_executes_in_quick_mode(quick_run):
    _, executed, _ = quick_run
    for path in executed:
        nb = json.loads(path.read_text())
        errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{path.name}: {errors[:1]}"
        images = sum("image/png" in o.get("data", {}) for c in nb["cells"]
                     for o in c.get("outputs", []))
        assert images >= 1, f"{path.name} shows no figure"


def test_every_executed_notebook_is_clean_for_a_reader(quick_run):
    """No stderr, warning, progress bar, machine path, widget state or empty table printed as
    such, in any notebook of the quick run (the rule the published run is held to)."""
    _, executed, _ = quick_run
    found = {path.name: published.notebook_problems(path) for path in executed}
    assert not any(found.values()), {name: p for name, p in found.items() if p}


def test_each_notebook_writes_its_metrics(quick_run):
    root, executed, _ = quick_run
    metrics_dir = _metrics_dir(root)
    for path in executed:
        metrics = json.loads((metrics_dir / f"{path.stem}.json").read_text())
        assert metrics, f"{path.stem}.json is empty"
        record = metrics["provenance"]  # where the numbers came from
        assert record["parameters"]["QUICK"] is True, path.stem
        assert record["git"]["commit"] is None or len(record["git"]["commit"]) == 40
        assert record["seconds"] > 0 and record["machine"]["cpu_count"] >= 1


def test_quick_mode_keeps_passed_parameters_and_fills_the_rest(quick_run):
    root, _, _ = quick_run
    metrics_dir = _metrics_dir(root)
    baseline = json.loads((metrics_dir / "03_baseline_cnn.json").read_text())
    assert baseline["epochs_run"] == PASSED["EPOCHS"]  # no early stopping in 03's recipe
    assert baseline["image_size"] == config.QUICK_IMAGE_SIZE  # not passed: the quick default
    assert baseline["batch_size"] == config.ORIGINAL_BATCH_SIZE
    tuning = json.loads((metrics_dir / "04_tuning.json").read_text())
    assert tuning["epochs_per_trial"] == PASSED["EPOCHS"]
    multi = json.loads((metrics_dir / "06_multi_output.json").read_text())
    assert multi["recipe"]["epochs"] == PASSED["EPOCHS"]
    assert multi["image_size"] == config.QUICK_IMAGE_SIZE


def test_the_test_side_is_read_once_per_reported_model(quick_run):
    """04 decides on validation: the seed study runs there, the compared candidate is the search
    chosen on validation, and the test side is scored once per model in its table."""
    root, _, _ = quick_run
    tuning = json.loads((_metrics_dir(root) / "04_tuning.json").read_text())
    reads = tuning["test_reads"]
    assert reads["count"] == len(reads["models"]) == len(tuning["test"])
    assert set(reads["models"]) == set(tuning["test"])
    assert tuning["seed_study_on"] == "validation"
    assert tuning["best_search"] in tuning["verdict"]
    # the claims: Welch over seeds (on validation), McNemar of the kept model against 03's
    # baseline on the same test items, each verdict by the one rule
    seed_test = tuning["seed_test"]
    assert seed_test["test"] == "Welch's t-test" and seed_test["best"] == tuning["best_search"]
    assert seed_test["outcome"] == evaluation.verdict(seed_test["difference"],
                                                      seed_test["p_value"])
    versus = tuning["kept_vs_baseline"]
    assert versus["n"] == next(iter(tuning["test"].values()))["n_test"]
    assert 0 <= versus["p_value"] <= 1 and versus["a_only"] + versus["b_only"] <= versus["n"]
    assert versus["baseline_accuracy"] == pytest.approx(baseline_accuracy := json.loads(
        (_metrics_dir(root) / "03_baseline_cnn.json").read_text())["accuracy"], abs=1e-9)
    assert versus["difference"] == pytest.approx(
        tuning["test"][versus["kept"]]["accuracy"] - baseline_accuracy, abs=1e-9)
    seeds = list(tuning["tuner_seeds"].values())
    assert len(set(seeds)) == len(seeds)  # independent searches
    split = root / "data" / "processed" / "fashion-mnist-quick" / "splits.csv"
    assert split.is_file() and not list(split.parent.glob("splits_*.csv"))  # one split
    metrics_dir = _metrics_dir(root)
    baseline = json.loads((metrics_dir / "03_baseline_cnn.json").read_text())
    assert baseline["test_reads"] == {"count": 1, "models": [baseline["model"]]}
    multi = json.loads((metrics_dir / "06_multi_output.json").read_text())
    heads = [f"single {t}" for t in multi["targets"]]
    assert multi["test_reads"] == {"count": 1 + len(heads), "models": ["multi-output", *heads]}
    rec = json.loads((metrics_dir / "05_recommendation.json").read_text())
    assert rec["test_reads"]["count"] == 2 * len(rec["test_reads"]["models"])  # both galleries
    assert set(rec["test_reads"]["models"]) == {*rec["sources"], "random"}


def test_04_trains_both_recipes_chooses_on_validation_and_checks_the_saved_file(quick_run):
    """Each target's 04 trains the fine-tune and the scratch CNN, weighs them against the best
    head on the frozen backbone, draws the accuracy-vs-minutes curve, keeps the candidate with
    the best validation accuracy as kept_<TARGET>.keras with its card, and the file read back
    by predict_images gives the notebook's count on the test side."""
    root, _, _ = quick_run
    metrics_dir = _metrics_dir(root)
    for target in (config.DEFAULT_TARGET, config.SECOND_TARGET):
        name = config.named_for_target("04_tuning", target=target)
        ft = json.loads((metrics_dir / f"{name}.json").read_text())["kept_model"]
        scores = ft["choice"]["scores"]
        assert len(scores) == 3 and set(scores) == set(ft["recipes"])
        assert any(n.startswith("scratch CNN @ 28px") for n in scores), scores
        assert ft["chosen_recipe"] == max(scores, key=scores.get)
        assert all(0 <= v <= 1 for v in scores.values())
        frozen = [n for n, r in ft["recipes"].items() if r["recipe"] == "frozen backbone"]
        assert len(frozen) == 1 and ft["recipes"][frozen[0]]["epochs_run"] == 0
        # from the files it predicts what its head predicted on the cached features
        assert scores[frozen[0]] == pytest.approx(ft["recipes"][frozen[0]]["best_val_accuracy"],
                                                  abs=1 / ft["choice"]["val_images"])
        for recipe_name, recipe in ft["recipes"].items():
            curve = recipe["curve"]
            epochs = 1 if recipe_name in frozen else recipe["epochs_run"]  # the frozen: a point
            assert len(curve["minutes"]) == len(curve["val_accuracy"]) == epochs >= 1
        check = ft["user_check"]
        assert check["correct_from_file"] == check["correct_in_notebook"] <= check["images"]
        assert check["images"] == ft["n_test"]
        assert Path(ft["saved_model"]).name == f"kept_{target}.keras"
        assert Path(ft["saved_model"]).is_file() and ft["skipped"] == {}
        card = json.loads(Path(ft["saved_model"]).with_suffix(".json").read_text())
        assert card["recipe"] == ft["recipe"] and card["label"] == ft["chosen_recipe"]
        figure = metrics_dir.parent / "figures" / f"04_tuning-{target}_minutes.png"
        assert figure.is_file() and figure.stat().st_size > 10_000


def test_recommendation_reports_whole_catalog_and_held_out(quick_run):
    """05 scores every source and the random baseline in both galleries, at every relevance
    level the catalog has, with four metrics in [0, 1]; Fashion-MNIST has no colours, so the
    strict level is skipped and says why."""
    root, _, _ = quick_run
    path = _metrics_dir(root) / "05_recommendation.json"
    rec = json.loads(path.read_text())
    assert rec["metrics"] == ["precision@5", "mAP@10", "MRR@10", "recall@10"]
    assert rec["skipped_levels"] == {"strict": ["baseColour"]}
    assert "articleType" in rec["relevance_levels"]
    assert set(rec["evaluations"]) == {"whole_catalog", "held_out"}
    for evaluation in rec["evaluations"]:
        assert set(rec[evaluation]) == {*rec["sources"], "random"}, evaluation
        for source, by_level in rec[evaluation].items():
            assert set(by_level) == set(rec["relevance_levels"]), (evaluation, source)
            for level, values in by_level.items():
                for metric in rec["metrics"]:
                    value = values[metric]
                    assert isinstance(value, float) and 0 <= value <= 1, (evaluation, source,
                                                                          level, metric, value)
    assert rec["retrieval"] == rec["whole_catalog"]  # the key earlier runs wrote
    choice = rec["embedding_choice"]  # chosen on validation, not by which model file exists
    assert choice["n_queries"] > 10 and set(choice["scores"]) == set(rec["sources"])
    assert choice["chosen"] == max(choice["scores"], key=choice["scores"].get)
    assert rec["embedding_source"] == choice["chosen"]  # EMBEDDING_SOURCE="auto"


def _scores_in_range(m: dict, n_classes: int, what: str) -> None:
    """A test score: accuracy inside its 95% interval, all in [0, 1], better than chance."""
    assert 0 <= m["ci_low"] <= m["accuracy"] <= m["ci_high"] <= 1, (what, m)
    assert 0 <= m["macro_f1"] <= 1 and m["n_test"] > 0, (what, m)
    assert m["accuracy"] > 1 / n_classes, (what, m["accuracy"], n_classes)


def test_each_notebook_writes_what_it_must_with_values_in_range(quick_run):
    """Issue 15: not just "a non-empty JSON" — each notebook's keys, their ranges, its figures
    and its model files, for both targets; 05 embeds with the file 04 saved."""
    root, _, _ = quick_run
    metrics_dir = _metrics_dir(root)
    figures = metrics_dir.parent / "figures"
    models = root / "models" / "fashion-mnist-quick"

    def read(name):
        return json.loads((metrics_dir / f"{name}.json").read_text())

    eda = read("01_eda")
    assert eda["n_products"] == eda["n_kept"] == eda["n_rows_read"] - eda["n_excluded"] > 0
    assert sum(eda["target_classes"].values()) == eda["n_products"]
    assert eda["imbalance_ratio"] >= 1 and eda["target"] == config.DEFAULT_TARGET
    profile = json.loads((root / "data" / "processed" / "fashion-mnist-quick"
                          / "catalog_profile.json").read_text())  # 01's hand-over to 02-06
    assert (profile["n_products"], profile["image_size"]) == (eda["n_products"], eda["image_size"])
    for name in ("class_distribution", "image_properties", "samples_per_class"):
        assert (figures / f"01_{name}.png").stat().st_size > 5_000, name
    for target in (config.DEFAULT_TARGET, config.SECOND_TARGET):  # notebook.Run.figure_name
        for name in ("augmentation_examples", "class_balance"):
            assert (figures / f"02_sampling_augmentation-{target}_{name}.png").is_file(), name
        named = lambda stem: config.named_for_target(stem, target=target)  # noqa: E731
        sample = read(named("02_sampling_augmentation"))
        assert sample["target"] == target and sample["n_kept"] <= sample["n_catalog"]
        assert sample["train"] + sample["val"] + sample["test"] == sample["n_study"]
        assert 0 <= sample["augmented"] <= sample["train"] and min(
            sample["train"], sample["val"], sample["test"]) > 0
        baseline = read(named("03_baseline_cnn"))
        _scores_in_range(baseline, baseline["n_classes"], named("03"))
        assert 0 <= baseline["val_accuracy"] <= 1 and baseline["target"] == target
        assert (models / baseline["model"]).is_file()
        for suffix in ("confusion_matrix", "misclassified", "training_curves"):
            assert (figures / f"03_baseline_cnn-{target}_{suffix}.png").is_file(), suffix
        tuning = read(named("04_tuning"))
        assert tuning["target"] == target and tuning["best_search"] in tuning["test"]
        for model_name, scores in tuning["test"].items():
            _scores_in_range(scores, tuning["n_classes"], model_name)
        for suffix in ("trials", "minutes", "kept_confusion_matrix"):
            assert (figures / f"04_tuning-{target}_{suffix}.png").is_file(), suffix
        assert (models / f"kept_{target}.keras").is_file()
        assert sorted(p.name for p in (models / "recipes").glob(f"*_{target}.keras")) == [
            f"finetune_{target}.keras", f"frozen_{target}.keras", f"scratch_{target}.keras"]
    rec = read("05_recommendation")
    saved = read(config.named_for_target("04_tuning", target=config.SECOND_TARGET))
    assert "kept model" in rec["sources"]  # 04 saved a model: 05 must have embedded with it
    assert Path(rec["kept_model"]) == Path(saved["kept_model"]["saved_model"])
    assert rec["kept_recipe"] == saved["kept_model"]["card"]["label"]  # named for its recipe
    paired = rec["paired_test"]  # kept vs pretrained, query by query, held out
    assert (paired["a"], paired["b"], paired["evaluation"]) == ("pretrained", "kept model",
                                                                "held out")
    assert paired["mean_b"] == pytest.approx(
        rec["held_out"]["kept model"][paired["level"]]["precision@5"], abs=1e-4)
    # quick mode: 05 (like 06) studies the balanced quick subset of the catalog 01 counted
    assert 0 < rec["n_products"] <= eda["n_products"] and rec["k"] == 5
    for name in ("recommendation_grid", "retrieval_metrics"):
        assert (figures / f"05_recommendation-articleType_{name}.png").is_file(), name  # 05's level
    for name in ("training_curves", "predictions"):  # 06: every attribute, no one target
        assert (figures / f"06_multi_output_{name}.png").is_file(), name
    near = rec["near_duplicates"]  # groups counted, precision@5 with and without the collapse
    assert near["items"] == rec["n_products"] >= near["items_in_such_groups"] >= 0
    assert near["largest_group"] >= 1 and near["collapse"]["source"] == rec["embedding_source"]
    for side, plain_key in (("whole catalog", "whole_catalog"), ("held out", "held_out")):
        both = near["collapse"][side]
        assert both["plain"] == rec[plain_key][rec["embedding_source"]]  # the same evaluation
        assert all(0 <= level[m] <= 1 for level in both["collapsed"].values()
                   for m in rec["metrics"])
    div = rec["diversify"]  # MMR: precision@5 and the results' likeness, plain and diversified
    similar, mmr = f"pairwise similarity@{rec['k']}", f"MMR {div['trade_off']:g}"
    assert div["source"] == rec["embedding_source"] and 0 <= div["trade_off"] <= 1
    for side, plain_key in (("whole catalog", "whole_catalog"), ("held out", "held_out")):
        runs = div[side]
        assert set(runs) == {"plain", mmr}
        for level, scores in runs["plain"].items():  # trade-off 1 is the plain ranking
            assert scores[rec["metrics"][0]] == rec[plain_key][rec["embedding_source"]][level][
                rec["metrics"][0]]
        assert all(-1 <= level[similar] <= 1 for run in runs.values() for level in run.values())
    multi = read("06_multi_output")
    assert [row["attribute"] for row in multi["per_attribute"]] == multi["targets"]
    for row in multi["per_attribute"]:
        low, high = (float(v) for v in row["95% CI"].split("–"))  # written to 3 decimals
        assert 0 <= low - 5e-4 <= row["multi-output acc"] <= high + 5e-4 <= 1 + 5e-4, row
        assert 0 <= row["mcnemar_p"] <= 1, row  # the two networks on the same items
        assert 0 <= row["single-target acc"] <= 1 and row["classes"] >= 2, row
    assert multi["multi_output_seconds"] > 0 and multi["single_target_seconds"] > 0
