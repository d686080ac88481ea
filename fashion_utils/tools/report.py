"""The README's findings and each catalog's results, generated from the metrics files a run
wrote: never typed.

``README.md``'s findings sit between ``<!-- BEGIN generated:findings -->`` and
``<!-- END generated:findings -->``: a few sentences per catalog of :data:`BLOCKS`
(:func:`fashion_utils.findings.study_findings`, by the claim rules of ``docs/METHODS.md``).
:func:`update_readme` rewrites them from ``reports/<catalog>/metrics/*.json`` and writes each
catalog's full results, ``reports/<catalog>/README.md`` (:func:`catalog_readme`).

    python -m fashion_utils.tools.report            # rewrite the findings and the catalog pages
    python -m fashion_utils.tools.report --check    # exit 1 if one differs from the metrics
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from fashion_utils import config, findings
from fashion_utils.tools import budget
from fashion_utils.atomic import write_text_atomic
from fashion_utils.config import Paths
from fashion_utils import evaluation
from fashion_utils.evaluation import ORIGINAL_STUDY, read_metrics
from fashion_utils.tools.markdown import markdown_table, replace_block

__all__ = ["BLOCKS", "catalog_readme", "catalogs_with_metrics", "findings_block", "render_blocks",
           "study_block", "update_readme", "update_text"]

README = config.PROJ_ROOT / "README.md"
RETRIEVAL_LEVELS = ("articleType", "strict")  # the two relevance levels the README shows


def _ci(m: Mapping[str, Any]) -> str:
    """The Wilson 95% interval, recomputed from the counts (runs before Wilson recorded a
    bootstrap interval: the page shows one kind)."""
    low, high = findings.wilson(m)
    return f"{low:.4f}–{high:.4f}"


def _has(paths: Paths, name: str) -> bool:
    return (paths.metrics / f"{name}.json").is_file()


def _accuracy_rows(baseline: Mapping[str, Any], tuning: Mapping[str, Any] | None,
                   *, original: bool) -> list[list[Any]]:
    rows = ([["the original study (its own Kaggle sample, VGG16; augmented before splitting)",
              ORIGINAL_STUDY["accuracy"], "—", ORIGINAL_STUDY["macro_f1"], "—", "—"]]
            if original else [])
    whole = (f"{baseline['n_train']:,} feature rows (the whole training side)"
             if "n_train" in baseline else "the whole training side")
    rows.append([f"03 baseline: the original recipe on frozen {baseline['backbone']} features @ "
                 f"{baseline['image_size']} px", baseline["accuracy"], _ci(baseline),
                 baseline["macro_f1"], baseline["n_test"], whole])
    trained_on = {r.get("configuration"): r.get("trained_on")
                  for r in (tuning or {}).get("comparison", [])}
    for name, m in (tuning or {}).get("test", {}).items():
        rows.append([f"04 {name}", m["accuracy"], _ci(m), m["macro_f1"], m["n_test"],
                     trained_on.get(name) or _rows(tuning)])
    return rows


def _per_class_rows(baseline: Mapping[str, Any], sampling: Mapping[str, Any]) -> list[list[Any]]:
    rows = [[name, r["precision"], r["recall"], r["f1-score"], int(r["support"])]
            for name, r in baseline["per_class"].items() if not name.endswith(" avg")]
    for dropped in sampling.get("dropped_classes", []):
        rows.append([f"{dropped['class']} (left the study: {dropped['items']} items, "
                     f"{dropped['reason']})", None, None, None, 0])
    return rows


def _retrieval_rows(recommendation: Mapping[str, Any]) -> list[list[Any]]:
    metrics = recommendation["metrics"]
    rows = []
    for source, levels in recommendation["whole_catalog"].items():
        for level in RETRIEVAL_LEVELS:
            if level not in levels:
                continue
            held = recommendation["held_out"][source][level]
            rows.append([findings.source_name(source), level, *(levels[level][m] for m in metrics),
                         *(held[m] for m in metrics)])
    return rows


def _attribute_rows(multi: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for r in multi["per_attribute"]:
        low, high = findings.wilson({"accuracy": r["multi-output acc"], "n_test": r["test items"]})
        p = r.get("mcnemar_p")
        rows.append([r["attribute"], r["classes"], r["test items"], r["multi-output acc"],
                     f"{low:.3f}–{high:.3f}", r["single-target acc"],
                     "—" if p is None else evaluation.p_text(p)])
    return rows


def _rows(tuning: Mapping[str, Any]) -> str:
    """The rows 04's searches, retraining and seed study used."""
    rows = (f"{tuning['n_train']:,} training + {tuning['n_val']:,} validation rows"
            if "n_train" in tuning else "training + validation")
    return rows + (" (the search subsample)" if tuning.get("search_rows") else "")


def _tuning_text(tuning: Mapping[str, Any]) -> str:
    text = (f"04 searched on {_rows(tuning)}, at most {tuning['epochs_per_trial']} epochs per "
            f"trial. " + " ".join(findings.tuning_findings(tuning)[:2]))
    ft = tuning.get("kept_model") or tuning.get("fine_tune")  # the latter: runs before the card
    if ft and "recipes" in ft:
        text += " " + _recipes_text(ft)
    elif ft:
        text += (f" The fine-tune ({ft['backbone']} @ {ft['image_size']} px, "
                 f"{ft['epochs_run']} of {ft['epochs']} planned epochs on {ft['train_images']:,}"
                 f" training images) took {ft['seconds']:,.0f} s"
                 f"{', stopped by its time cap' if ft.get('stopped_for_time') else ''}.")
    probes = tuning.get("probes") or {}
    if probes:
        images = next(iter(probes.values()))["images"]
        text += (f" Fine-tuning probes (the second epoch's seconds on {images:,} images): "
                 + "; ".join(f"{name} {p['second_epoch_s']:.1f} s" for name, p in probes.items())
                 + ".")
    skipped = (ft or {}).get("skipped") or {}
    if skipped:
        text += " Left out: " + "; ".join(f"{n} ({why})" for n, why in skipped.items()) + "."
    return text


def _epochs_text(recipe: Mapping[str, Any]) -> str:
    """How a recipe trained: its epochs on images, or none (the head on the frozen backbone)."""
    if recipe.get("epochs") == 0:
        rows = f" on {recipe['train_images']:,} feature rows" if "train_images" in recipe else ""
        return f"none on images: the cached features' extraction and the head's training{rows}"
    cut = ", cut by its time cap" if recipe.get("stopped_for_time") else ""
    return f"{recipe['epochs_run']} epochs{cut}"


def _refit_text(ft: Mapping[str, Any]) -> str:
    """The frozen head, once chosen, retrained on train + validation before it was saved."""
    rows = ft.get("refit_images")
    return (f", its head then retrained on {rows:,} train + validation feature rows and saved"
            if rows else "")


def _recipes_text(ft: Mapping[str, Any]) -> str:
    """The end-to-end recipes 04 trained, their validation accuracy and minutes, the choice and
    the check of the saved file."""
    scores = ft["choice"]["scores"]
    each = "; ".join(f"{name} {scores[name]:.4f} after {r['seconds'] / 60:.1f} training minutes "
                     f"({_epochs_text(r)})" for name, r in ft["recipes"].items())
    on_images = [r["train_images"] for r in ft["recipes"].values()
                 if r.get("epochs") != 0 and "train_images" in r]
    check = ft["user_check"]
    agree = "the same" if check["correct_from_file"] == check["correct_in_notebook"] else "NOT the same"
    return (f"End-to-end recipes on {(on_images or [ft['train_images']])[0]:,} training images, "
            f"validation accuracy of each saved model on {ft['choice']['val_images']:,} "
            f"validation images: {each}. "
            f"Chosen on validation: {ft['chosen_recipe']}{_refit_text(ft)}. Its saved `.keras` "
            f"file, read back by "
            f"`predict_images`, classifies {check['correct_from_file']:,} of {check['images']:,} "
            f"test images correctly, {agree} count as in the notebook.")


def _target_section(paths: Paths, target: str, sampling: Mapping[str, Any]) -> list[str]:
    baseline = read_metrics(config.named_for_target("03_baseline_cnn", target=target),
                            paths=paths)
    name = config.named_for_target("04_tuning", target=target)
    tuning = read_metrics(name, paths=paths) if _has(paths, name) else None
    reads = (f"04 read it {tuning['test_reads']['count']} times, once per reported model, each "
             f"retrained on {_rows(tuning)}; " if tuning else "")
    parts = [f"**{target} on the test side** ({baseline['n_test']:,} products, "
             f"{baseline['n_classes']} classes; {reads}every choice was made on validation):\n",
             markdown_table(["model", "test accuracy", "95% CI (Wilson)", "macro-F1", "test items",
                             "trained on"],
                            _accuracy_rows(baseline, tuning,
                                           original=target == config.DEFAULT_TARGET))]
    if tuning:
        parts.append(_tuning_text(tuning) + "\n")
    if target == config.DEFAULT_TARGET and baseline.get("per_class"):
        parts += ["**Per class** (03 baseline, test side):\n",
                  markdown_table(["class", "precision", "recall", "F1", "test items"],
                                 _per_class_rows(baseline, sampling), digits=3)]
    return parts


def _retrieval_text(rec: Mapping[str, Any]) -> str:
    levels, skipped = rec["relevance_levels"], rec.get("skipped_levels", {})
    strict = (f"strict = same {' + '.join(levels['strict'])}" if "strict" in levels
              else f"no strict level: the catalog has no {', '.join(skipped.get('strict', []))}")
    model = Path(rec.get("kept_model") or rec.get("finetuned_model") or "").name or "none"
    recipe = f", {rec['kept_recipe']}" if rec.get("kept_recipe") else ""
    return (f"**Retrieval** (05; the kept model: `{model}`{recipe}; {rec['n_queries']:,} test-side "
            f"queries; whole catalog = every other product, held out = the other test-side "
            f"products; {strict}). {_choice(rec)}{_duplicates_text(rec)}"
            f"{_diversify_text(rec)}\n")


def _duplicates_text(rec: Mapping[str, Any]) -> str:
    """05's near-duplicate groups and what collapsing them does to precision@k (when run)."""
    nd = rec.get("near_duplicates")
    if not nd:
        return ""
    level, metric = next(iter(rec["relevance_levels"])), rec["metrics"][0]
    scores = "; ".join(
        f"{side}: {nd['collapse'][side]['plain'][level][metric]:.3f} plain, "
        f"{nd['collapse'][side]['collapsed'][level][metric]:.3f} collapsed"
        for side in ("whole catalog", "held out"))
    confirmed = (f", thumbnails within {nd['collapse']['max_difference']:g} grey levels"
                 if "max_difference" in nd["collapse"] else "")
    return (f" Near-duplicates (hashes at most {nd['collapse']['max_distance']} of 64 bits "
            f"apart{confirmed}): "
            f"{nd['groups_of_two_or_more']:,} groups holding {nd['items_in_such_groups']:,} of "
            f"{nd['items']:,} images, the largest {nd['largest_group']:,}; {metric} at {level} "
            f"with the `{findings.source_name(nd['collapse']['source'])}` embeddings, one product "
            f"per group: {scores}.")


def _diversify_text(rec: Mapping[str, Any]) -> str:
    """What 05's "diversify" (MMR) costs in precision@k and buys in variety (when run)."""
    div = rec.get("diversify")
    if not div:
        return ""
    level, metric = next(iter(rec["relevance_levels"])), rec["metrics"][0]
    similar = f"pairwise similarity@{rec['k']}"
    mmr = f"MMR {div['trade_off']:g}"
    scores = "; ".join(
        f"{side}: {metric} {div[side]['plain'][level][metric]:.3f} → "
        f"{div[side][mmr][level][metric]:.3f}, {similar} {div[side]['plain'][level][similar]:.3f}"
        f" → {div[side][mmr][level][similar]:.3f}" for side in ("whole catalog", "held out"))
    return (f" Diversify (maximal marginal relevance, trade-off {div['trade_off']:g}, "
            f"`{findings.source_name(div['source'])}` embeddings), plain → diversified at "
            f"{level}: "
            f"{scores}.")


def _time_text(paths: Paths, clocks: Mapping[str, float]) -> str:
    if _has(paths, "study"):
        study = read_metrics("study", paths=paths)
        return ("**Time** (`make`, each notebook's own clock, 2 CPU cores):\n\n"
                + budget.timing_table(study))
    return ("**Time** (each notebook's own clock, 2 CPU cores): "
            + " · ".join(f"{k} {v:,.0f} s" for k, v in clocks.items())
            + f"; {sum(clocks.values()) / 60:.1f} minutes in all.")


def study_block(paths: Paths) -> str:
    """One catalog's results, from its metrics files: load report, each target's test accuracy
    with its CI (03 and 04), the tuning verdict and fine-tune, per-class report, retrieval at
    two relevance levels, every attribute at once, and the run's timing table."""
    eda, sampling = read_metrics("01_eda", paths=paths), read_metrics(
        "02_sampling_augmentation", paths=paths)
    baseline = read_metrics("03_baseline_cnn", paths=paths)
    rec = read_metrics("05_recommendation", paths=paths)
    multi = read_metrics("06_multi_output", paths=paths)
    excluded = ", ".join(f"{n} {why}" for why, n in eda["excluded_counts"].items()) or "none"
    metrics = rec["metrics"]
    targets = [t for t in (config.DEFAULT_TARGET, config.SECOND_TARGET)
               if _has(paths, config.named_for_target("03_baseline_cnn", target=t))]
    parts = [
        f"_Generated by `python -m fashion_utils.tools.report` from `{_shown(paths.metrics)}/`, "
        f"written by a full run of the study on `{paths.catalog}` ({eda['n_kept']:,} products; "
        f"test side {baseline['n_test']:,})._\n",
        f"**Loading:** {eda['n_rows_read']:,} rows read, {eda['n_kept']:,} kept, "
        f"{eda['n_repaired']} repaired (unquoted commas), excluded: {excluded}. "
        f"Study sample (02): {sampling['n_study']:,} images, {sampling['augmented']:,} of them "
        f"augmented training copies (at most {sampling['max_copies']} per photo); "
        f"{sampling['train']:,} train / {sampling['val']:,} validation / "
        f"{sampling['test']:,} test.\n"]
    for target in targets:
        parts += _target_section(paths, target, sampling)
    parts += [
        _retrieval_text(rec),
        markdown_table(["source", "level", *(f"whole: {m}" for m in metrics),
                        *(f"held out: {m}" for m in metrics)], _retrieval_rows(rec), digits=3),
        f"\n**Every attribute at once** (06: one shared trunk, one head per attribute, "
        f"{multi['multi_output_seconds']:.0f} s of training; single-target heads alone "
        f"{multi['single_target_seconds']:.0f} s):\n",
        markdown_table(["attribute", "classes", "test items", "multi-output acc",
                        "95% CI (Wilson)", "single-target acc", "McNemar"],
                       _attribute_rows(multi), digits=3),
    ]
    clocks = {"01": eda["seconds"], "02": sampling["seconds"], "03": baseline["seconds"]}
    if _has(paths, "04_tuning"):
        clocks["04"] = read_metrics("04_tuning", paths=paths)["seconds"]
    clocks.update({"05": rec["run_seconds"], "06": multi["seconds"]})
    parts.append("\n" + _time_text(paths, clocks))
    return "\n".join(part.strip("\n") + "\n" for part in parts)


def _choice(rec: Mapping[str, Any]) -> str:
    choice = rec.get("embedding_choice")
    if not choice:
        return (f"The recommender uses the `{findings.source_name(rec['embedding_source'])}` "
                f"embeddings.")
    scores = ", ".join(f"{findings.source_name(s)} {v:.3f}"
                       for s, v in choice["scores"].items()) or "too few to judge"
    judged = choice.get("kept_judged_with") or choice.get("finetuned_judged_with")
    kept = rec.get("kept_model") or rec.get("finetuned_model") or ""
    stand_in = (f"; the kept model judged with `{Path(judged).name}`, the train-only "
                f"model 04 chose before refitting its head on train + validation"
                if judged and Path(judged).name != Path(kept).name else "")
    return (f"The recommender uses the `{findings.source_name(rec['embedding_source'])}` "
            f"embeddings, chosen on {choice['on']} ({choice['n_queries']:,} validation queries: "
            f"{scores}{stand_in}).")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(config.output_root()))
    except ValueError:
        return str(path)


def _catalog_paths(name: str) -> Paths:
    return Paths(data_dir=Path(name), root=config.output_root())


#: The catalogs whose findings the README shows: folder under ``reports/`` -> its title.
BLOCKS: Mapping[str, str] = {
    config.DEFAULT_CATALOG_NAME: "Fashion-MNIST, the default data (plain `make`)",
    "real_kaggle_sample": "Real photos: a sample of the Kaggle catalog",
}
#: The README block :func:`findings_block` fills.
FINDINGS_BLOCK = "findings"


def _all_metrics(paths: Paths) -> dict[str, dict[str, Any]]:
    return {p.stem: read_metrics(p.stem, paths=paths) for p in sorted(paths.metrics.glob("*.json"))}


def _run_line(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """Which run the numbers come from: its commit, minutes and machine."""
    record = metrics.get("study") or metrics["06_multi_output"]
    prov = record.get("provenance") or {}
    cpu = (prov.get("machine") or {}).get("cpu") or {}
    minutes = (f"{record['wall_seconds'] / 60:.0f} minutes, " if "wall_seconds" in record else "")
    commit = ((prov.get("git") or {}).get("commit") or "unknown")[:7]
    return (f"run at commit `{commit}`, {minutes}"
            f"{(prov.get('machine') or {}).get('cpu_count', '?')} × {cpu.get('model', '?')} "
            f"({cpu.get('vector_isa', '?')})")


def findings_block() -> str:
    """The README's findings: for each catalog of :data:`BLOCKS` whose study wrote its metrics,
    the run it comes from and :func:`fashion_utils.findings.study_findings`' sentences."""
    parts = []
    for folder, title in BLOCKS.items():
        paths = _catalog_paths(folder)
        if not _has(paths, "06_multi_output"):
            continue
        metrics = _all_metrics(paths)
        parts.append(f"**{title}** ({_run_line(metrics)}; [full results]"
                     f"(reports/{folder}/README.md)):\n")
        parts += [f"- {sentence}" for sentence in
                  findings.study_findings(metrics, second_target=config.SECOND_TARGET)]
        parts.append("")
    return "\n".join(parts).strip("\n") + "\n"


def render_blocks() -> dict[str, str]:
    """The README's generated blocks, from the metrics on disk."""
    return {FINDINGS_BLOCK: findings_block()}


def update_text(text: str, blocks: Mapping[str, str]) -> str:
    """Replace each block's text between its BEGIN and END markers; every marker must exist."""
    for name, body in blocks.items():
        text = replace_block(text, f"<!-- BEGIN generated:{name} -->",
                             f"<!-- END generated:{name} -->", body)
    return text


#: A catalog's own description, committed beside its report (how the data was drawn).
ABOUT_FILE = "ABOUT.md"


def _class_counts_text(paths: Paths) -> str:
    """Why the number of classes differs between notebooks: 02's and 06's rules."""
    if not (_has(paths, "02_sampling_augmentation") and _has(paths, "06_multi_output")):
        return ""
    sampling = read_metrics("02_sampling_augmentation", paths=paths)
    multi = read_metrics("06_multi_output", paths=paths)
    per_min = sampling.get("min_per_class") or next(  # earlier runs: the reason says it
        (m.group(1) for d in sampling.get("dropped_classes", [])
         if (m := re.search(r"fewer than (\d+)", d.get("reason", "")))), None)
    min_count = (multi.get("provenance") or {}).get("parameters", {}).get("MIN_COUNT")
    counts = []
    for target in (config.DEFAULT_TARGET, config.SECOND_TARGET):
        name = config.named_for_target("03_baseline_cnn", target=target)
        six = next((r["classes"] for r in multi["per_attribute"] if r["attribute"] == target), None)
        if _has(paths, name) and six is not None:
            counts.append((target, read_metrics(name, paths=paths)["n_classes"], six))
    if all(three == six for _, three, six in counts):  # nothing to explain
        return ""
    counts = [f"{target} {three} in 03–04, {six} in 06" for target, three, six in counts]
    return (f"**Why the class counts differ** ({'; '.join(counts)}): 02 keeps a class with at "
            f"least {per_min or 'the minimum of'} products in the whole catalog, split across "
            f"train, validation and test; 06 learns, per attribute, the classes with at least "
            f"{min_count or 'its minimum of'} training products (the others are masked, not "
            f"dropped), so a class that 02 keeps with a handful of training products leaves 06.\n")


def catalog_readme(paths: Paths) -> str:
    """``reports/<catalog>/README.md``: the catalog's description (its committed
    :data:`ABOUT_FILE`), why class counts differ, the results (:func:`study_block`), and links to
    what is committed beside it (the default catalog's figures and executed notebooks; another
    catalog's stay local: they show its product photos)."""
    about = paths.reports / ABOUT_FILE
    published = paths.catalog == config.DEFAULT_CATALOG_NAME
    where = ("Figures are in [`figures/`](figures/), every number's source in "
             "[`metrics/`](metrics/), the executed notebooks in [`executed/`](executed/) (one "
             "per notebook and target)" if published else
             "Every number's source is in [`metrics/`](metrics/); this catalog's figures and "
             "executed notebooks show its product photos and stay on the machine that ran it")
    return (f"# The study on `{paths.catalog}`\n\n"
            f"Generated from this folder's metrics by `make report`; do not edit. {where}. "
            f"Accuracy intervals are Wilson 95% intervals; a claim follows the rules of "
            f"[docs/METHODS.md](../../docs/METHODS.md).\n\n"
            + (about.read_text(encoding="utf-8").strip() + "\n\n" if about.is_file() else "")
            + (_class_counts_text(paths) + "\n" if _class_counts_text(paths) else "")
            + study_block(paths))


def catalogs_with_metrics() -> list[Paths]:
    """Every catalog under ``reports/`` (quick runs aside) whose study wrote 01-06's metrics."""
    reports = config.output_root() / "reports"
    names = sorted(p.parent.parent.name for p in reports.glob("*/metrics/06_multi_output.json")
                   if p.parent.parent.name != "quick")
    return [_catalog_paths(name) for name in names]


def update_readme(readme: Path = README, *, check: bool = False) -> bool:
    """Rewrite the findings of ``readme`` and every catalog's ``README.md``; returns
    whether anything changed (or, with ``check``, would change: nothing is written then)."""
    text = readme.read_text(encoding="utf-8")
    new = update_text(text, render_blocks())
    changed = new != text
    if changed and not check:
        write_text_atomic(readme, new)
    for paths in catalogs_with_metrics():
        target, body = paths.reports / "README.md", catalog_readme(paths)
        if not target.is_file() or target.read_text(encoding="utf-8") != body:
            changed = True
            if not check:
                write_text_atomic(target, body)
    return changed


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a README differs from what the metrics give")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(list(argv) if argv is not None else None)
    changed = update_readme(args.readme, check=args.check)
    if args.check and changed:
        print(f"{args.readme} is out of date: run python -m fashion_utils.tools.report",
              file=sys.stderr)
        return 1
    print(f"{args.readme}: {'updated' if changed else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
