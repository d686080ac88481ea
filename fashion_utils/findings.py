"""What a run found, in sentences printed from its metrics: each notebook's conclusion and the
README's findings (``tools.report``) come from here, so both follow one set of rules.

A sentence says a model or a setting "helped", "hurt", "beats" or "falls behind" only when a
test on the same items supports it (:func:`fashion_utils.evaluation.verdict`: p below
``ALPHA`` and a difference of at least ``MIN_EFFECT``); otherwise it says
:data:`~fashion_utils.evaluation.NO_DIFFERENCE`, with the numbers. Accuracy intervals are
Wilson's, recomputed from the counts (:func:`accuracy_text`).

- :func:`eda_findings` (01), :func:`sampling_findings` (02), :func:`baseline_findings` (03),
  :func:`tuning_findings` (04),
  :func:`retrieval_findings` (05), :func:`multioutput_findings` (06);
- :func:`study_findings`: the few sentences the README opens with, from every notebook's metrics.
"""

from __future__ import annotations

from typing import Any, Mapping

from fashion_utils import evaluation
from fashion_utils.evaluation import NO_DIFFERENCE, p_text, verdict

__all__ = ["accuracy_text", "as_markdown", "baseline_findings", "eda_findings", "kept_label",
           "multioutput_findings", "retrieval_findings", "sampling_findings", "source_name",
           "study_findings", "tuning_findings", "wilson"]

#: The source name notebook 05 gives the kept model's embeddings (earlier runs: "finetuned").
KEPT_SOURCE = "kept model"
_OLD_SOURCE_NAMES = {"finetuned": KEPT_SOURCE}


def wilson(m: Mapping[str, Any]) -> tuple[float, float]:
    """The Wilson 95% interval of a metrics entry's accuracy, from its counts."""
    n = int(m["n_test"])
    correct = int(m["n_correct"]) if "n_correct" in m else round(float(m["accuracy"]) * n)
    return evaluation.wilson_interval(correct, n)


def accuracy_text(m: Mapping[str, Any], *, digits: int = 4) -> str:
    """``0.9957 (95% CI 0.9943–0.9968)``: an accuracy with its Wilson interval."""
    low, high = wilson(m)
    return f"{m['accuracy']:.{digits}f} (95% CI {low:.{digits}f}–{high:.{digits}f})"


def source_name(name: str) -> str:
    """An embedding source's name as this study now calls it."""
    return _OLD_SOURCE_NAMES.get(name, name)


def kept_label(m04: Mapping[str, Any]) -> str:
    """What notebook 04 kept, named by its recipe: ``scratch CNN @ 28px``."""
    kept = m04.get("kept_model") or m04.get("fine_tune") or {}
    return (kept.get("card") or {}).get("label") or kept.get("chosen_recipe") or "?"


def eda_findings(m01: Mapping[str, Any]) -> list[str]:
    """Notebook 01: what loaded, how unbalanced the target is, and the image side it sets."""
    excluded = ", ".join(f"{n:,} {why}" for why, n in (m01.get("excluded_counts") or {}).items())
    classes = m01.get("target_classes") or {}
    out = [f"{m01['n_kept']:,} of {m01['n_rows_read']:,} catalog rows are usable products "
           f"({m01.get('n_repaired', 0):,} repaired; excluded: {excluded or 'none'})."]
    if classes:
        big, small = max(classes, key=classes.get), min(classes, key=classes.get)
        out.append(f"{m01['target']} has {len(classes)} classes, from {classes[big]:,} "
                   f"({big}) to {classes[small]:,} ({small}): an imbalance ratio of "
                   f"{m01['imbalance_ratio']:g}.")
    out.append(f"The images' median shorter side is {m01['median_short_side']:g} px, so the "
               f"backbone sees them at {m01['image_size']} px from notebook 02 on.")
    return out


def sampling_findings(m02: Mapping[str, Any]) -> list[str]:
    """Notebook 02: what the split kept, grew and checked; what class weights would do."""
    dropped = m02.get("dropped_classes") or []
    out = [f"{m02['n_kept']:,} of {m02['n_catalog']:,} products stay in the study"
           + (f"; {len(dropped)} class(es) left it, too small to split: "
              + ", ".join(f"{d['class']} ({d['items']})" for d in dropped) if dropped else "")
           + f". {m02.get('augmented', 0):,} augmented copies were added to the training side "
           f"only ({m02['train']:,} train / {m02['val']:,} validation / {m02['test']:,} test); "
           f"the provenance check found no copy of a validation or test product."]
    weights = m02.get("class_weights")
    if weights:
        spread = {side: (min(w.values()), max(w.values())) for side, w in weights.items()}
        before, after = spread["original"], spread["after_augmentation"]
        closer = (after[1] - after[0]) < (before[1] - before[0])
        effect = ("the training side was balanced already" if before[1] - before[0] < 0.005
                  else f"augmentation {'narrowed' if closer else 'did not narrow'} the "
                  f"imbalance the weights would correct")
        out.append(f"Balanced class weights would range {before[0]:.2f}–{before[1]:.2f} on the "
                   f"original training side and {after[0]:.2f}–{after[1]:.2f} after "
                   f"augmentation: {effect}.")
    return out


def baseline_findings(m03: Mapping[str, Any]) -> list[str]:
    """Notebook 03: the original recipe's test score, and its weakest class."""
    per_class = {k: v for k, v in (m03.get("per_class") or {}).items()
                 if not k.endswith(" avg") and k != "accuracy" and v.get("support")}
    out = [f"The original recipe (Dense 50-20 on frozen {m03['backbone']} features at "
           f"{m03['image_size']} px, trained on {m03['n_train']:,} training images) scores "
           f"{accuracy_text(m03)} on {m03['n_test']:,} test items for {m03['target']}, "
           f"macro-F1 {m03['macro_f1']:.3f}."]
    if per_class:
        name, worst = min(per_class.items(), key=lambda kv: kv[1]["recall"])
        out.append(f"Its weakest class is {name}: recall {worst['recall']:.3f} on "
                   f"{int(worst['support']):,} test items.")
    if m03["target"] == evaluation.ORIGINAL_TARGET:
        out.append(f"The original study reported {evaluation.ORIGINAL_STUDY['accuracy']:.3f} on "
                   f"its own sample of the Kaggle catalog (VGG16, augmented before splitting): "
                   f"other test items, so no test compares the two.")
    return out


def _seed_test(m04: Mapping[str, Any]) -> dict[str, Any] | None:
    """Welch's test of the chosen search against the baseline: the one 04 recorded
    (``seed_test``), or, for a run made before it recorded one, from its seed study's runs."""
    if m04.get("seed_test"):
        return m04["seed_test"]
    study, best = m04.get("seed_study") or {}, m04.get("best_search")
    baseline = next((name for name in study if name.startswith("baseline")), None)
    if best not in study or baseline is None:
        return None
    test = evaluation.welch_test(study[baseline]["accuracy"], study[best]["accuracy"])
    return {**test, "best": best, "baseline": baseline, "n_seeds": test["n_b"]}


def tuning_findings(m04: Mapping[str, Any]) -> list[str]:
    """Notebook 04: did the head search help (Welch over seeds), what validation kept, and
    does the kept model beat 03's baseline on the same test items (McNemar)."""
    target, out = m04["target"], []
    seed = _seed_test(m04)
    if seed is not None:
        claim = verdict(seed["difference"], seed["p_value"], better="the search helped",
                       worse="the search hurt")
        out.append(f"Tuning the head ({target}): the search chosen on validation ({seed['best']}) "
                   f"vs the baseline head, {seed['n_seeds']} seeds each, {seed['difference']:+.4f} "
                   f"validation accuracy (Welch's t-test, {p_text(seed['p_value'])}): {claim}.")
    label, kept = kept_label(m04), m04.get("kept_model") or m04.get("fine_tune") or {}
    versus = m04.get("kept_vs_baseline")
    if versus and "accuracy" in kept:
        claim = verdict(versus["difference"], versus["p_value"],
                       better=f"the {label} model beats it",
                       worse=f"the {label} model falls behind it")
        out.append(f"The model validation kept for {target}, {label}, scores "
                   f"{accuracy_text(kept)} on the test side against "
                   f"{versus['baseline_accuracy']:.4f} for 03's baseline on the same "
                   f"{versus['n']:,} items ({versus['difference']:+.4f}; it alone is right on "
                   f"{versus['b_only']}, the baseline alone on "
                   f"{versus['a_only']}; McNemar's exact test, {p_text(versus['p_value'])}): "
                   f"{claim}.")
    elif "accuracy" in kept:
        out.append(f"The model validation kept for {target}, {label}, scores "
                   f"{accuracy_text(kept)} on the test side (this run recorded no paired test "
                   f"against 03's baseline: no claim).")
    scores = (kept.get("choice") or {}).get("scores") or {}
    if len(scores) > 1:
        out.append(f"Validation accuracy of each end-to-end candidate ({target}): "
                   + "; ".join(f"{n} {v:.4f}" for n, v in scores.items())
                   + (f"; skipped: {', '.join(kept['skipped'])}" if kept.get("skipped") else "")
                   + ".")
    return out


def retrieval_findings(m05: Mapping[str, Any]) -> list[str]:
    """Notebook 05: which embeddings the recommender uses and what they find, held out."""
    out, level = [], (m05.get("paired_test") or {}).get("level")
    test = m05.get("paired_test")
    if test:
        a, b = source_name(test["a"]), source_name(test["b"])
        claim = verdict(test["difference"], test["p_value"],
                       better=f"the {b} embeddings find more of the same {level}",
                       worse=f"the {b} embeddings find fewer of the same {level}")
        out.append(f"Similar products, held out ({test['n']:,} test queries among the test "
                   f"side): precision@{m05['k']} at {level} {test['mean_b']:.3f} with the "
                   f"{b}'s embeddings ({m05.get('kept_recipe') or 'no kept model'}) vs "
                   f"{test['mean_a']:.3f} with the {a} ImageNet features (paired t-test over "
                   f"queries, {p_text(test['p_value'])}): {claim}.")
    choice = m05.get("embedding_choice") or {}
    if choice.get("scores"):
        out.append(f"The recommender uses the {source_name(choice['chosen'])} embeddings, "
                   f"chosen on validation precision@{m05['k']} ("
                   + ", ".join(f"{source_name(s)} {v:.3f}" for s, v in choice["scores"].items())
                   + f"; {choice['n_queries']:,} validation queries).")
    div = m05.get("diversify") or {}
    runs = list((div.get("held out") or {}).values())
    if len(runs) == 2 and level is not None:
        (plain, mmr), k = (run[level] for run in runs), m05["k"]
        out.append(f"Diversifying the five (MMR, trade-off {div['trade_off']:g}) changes "
                   f"held-out precision@{k} at {level} from {plain[f'precision@{k}']:.3f} to "
                   f"{mmr[f'precision@{k}']:.3f} and the five's mutual similarity from "
                   f"{plain[f'pairwise similarity@{k}']:.3f} to "
                   f"{mmr[f'pairwise similarity@{k}']:.3f} (a trade-off, measured, not "
                   f"tested).")
    return out


def multioutput_findings(m06: Mapping[str, Any]) -> list[str]:
    """Notebook 06: one network for every attribute vs one network per attribute (McNemar)."""
    parts, tested = [], False
    for r in m06["per_attribute"]:
        diff, p = r["multi-output acc"] - r["single-target acc"], r.get("mcnemar_p")
        tested |= p is not None
        claim = (f" ({p_text(p)}: "
                 + verdict(diff, p, better="the shared network is better",
                           worse="the shared network is worse") + ")" if p is not None else "")
        parts.append(f"{r['attribute']} {r['multi-output acc']:.4f} vs "
                     f"{r['single-target acc']:.4f}{claim}")
    how = "McNemar's exact test each" if tested else "no test recorded: no claim"
    return [f"One network for every attribute vs one network per attribute, test accuracy on "
            f"the same items ({how}): " + "; ".join(parts) + "; "
            f"it trained in {m06['multi_output_seconds']:.0f} s against "
            f"{m06['single_target_seconds']:.0f} s for the single-attribute networks together."]


def study_findings(metrics: Mapping[str, Mapping[str, Any]], *,
                   second_target: str | None = None) -> list[str]:
    """The README's findings: a few sentences from the run's metrics files.

    Args:
        metrics: metrics file stem (``03_baseline_cnn``, ``04_tuning-articleType``...) →
            its contents; absent notebooks are left out.
        second_target: the run's second target (its files carry ``-<target>``).
    """
    out: list[str] = []
    suffixes = ["", f"-{second_target}"] if second_target else [""]
    if "03_baseline_cnn" in metrics:
        out.append(baseline_findings(metrics["03_baseline_cnn"])[0])
    for suffix in suffixes:
        m04 = metrics.get(f"04_tuning{suffix}")
        if m04:
            out.extend(tuning_findings(m04)[:2])
    if "05_recommendation" in metrics:
        out.extend(retrieval_findings(metrics["05_recommendation"])[:2])
    if "06_multi_output" in metrics:
        out.extend(multioutput_findings(metrics["06_multi_output"]))
    return out


def as_markdown(sentences: list[str]) -> str:
    """Findings as a Markdown list (what a notebook's conclusion displays)."""
    return "\n".join(f"- {s}" for s in sentences) or "- (no findings: the metrics hold none)"
