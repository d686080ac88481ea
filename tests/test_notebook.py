"""The notebooks' one setup call: quick defaults fill only what was not passed, run names, timer."""

from __future__ import annotations

import ast
import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from fashion_utils import config, evaluation, notebook, provenance
from fashion_utils.tools import runner

NOTEBOOK_NAMES = sorted(notebook.NOTEBOOKS)
MODES = [False, True]


def _namespace(name: str, *, quick: bool, **passed) -> dict:
    """What a notebook's globals hold after its parameters cell: every defaulted name None."""
    ns = {"DATA_DIR": None, "QUICK": quick}
    ns.update({key: None for key in notebook.NOTEBOOKS[name].defaults})
    ns.update({key: choices[-1] for key, choices in notebook.NOTEBOOKS[name].choices.items()})
    ns.update(passed)
    return ns


def _setup(name: str, ns: dict, **kwargs) -> notebook.Run:
    return notebook.setup(name, ns, **kwargs)


# --------------------------------------------------------------------------- filling defaults


@pytest.mark.parametrize("quick", MODES)
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_setup_fills_every_unset_parameter_with_the_mode_default(name, quick, output_root):
    ns = _namespace(name, quick=quick)
    run = _setup(name, ns)
    for key, default in notebook.NOTEBOOKS[name].defaults.items():
        assert ns[key] == default.value(quick=quick), key
        assert run.parameters[key] == ns[key]
    assert set(run.filled) == set(notebook.NOTEBOOKS[name].defaults)
    assert run.quick is quick and run.paths.quick is quick


@pytest.mark.parametrize("quick", MODES)
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_a_passed_value_is_never_touched(name, quick, output_root):
    """Every parameter, passed alone: it survives either mode; the others are filled."""
    for key in notebook.NOTEBOOKS[name].defaults:
        passed = object()  # a value no default can equal
        ns = _namespace(name, quick=quick, **{key: passed})
        if key == "SEED":
            passed = ns[key] = 7  # set_seed needs an integer
        run = _setup(name, ns)
        assert ns[key] is passed, key
        assert key not in run.filled
        assert set(run.filled) == set(notebook.NOTEBOOKS[name].defaults) - {key}


@pytest.mark.parametrize("name, key, value", [
    ("04_tuning", "EPOCHS", 5),  # make notebooks QUICK=1 PARAMS="EPOCHS=5" runs 5 epochs
    ("04_tuning", "IMAGE_SIZE", 64),
    ("04_tuning", "MAX_TRIALS", 0),
    ("03_baseline_cnn", "EPOCHS", 7),
    ("02_sampling_augmentation", "CAP_PER_CLASS", 0),
    ("02_sampling_augmentation", "AUGMENT_TO", 1000),
    ("06_multi_output", "BATCH_SIZE", 64),
    ("01_eda", "SAMPLE_IMAGES", 10),
])
def test_quick_mode_keeps_what_the_user_passed(name, key, value, output_root):
    ns = _namespace(name, quick=True, **{key: value})
    run = _setup(name, ns)
    assert ns[key] == value and run.parameters[key] == value
    assert notebook.NOTEBOOKS[name].defaults[key].quick != value  # the default would differ


def _catalog_with_01_profile(tmp_path, **profile):
    """A catalog folder whose notebook 01 wrote this catalog profile (full mode)."""
    from fashion_utils.catalog import eda

    data_dir = tmp_path / "catalog"
    data_dir.mkdir()
    if profile:
        eda.write_catalog_profile(config.get_paths(data_dir), {"n_products": 3, **profile})
    return data_dir


@pytest.mark.parametrize("name", ["02_sampling_augmentation", "03_baseline_cnn", "04_tuning",
                                  "05_recommendation", "06_multi_output"])
def test_full_mode_image_size_is_the_one_notebook_01_chose_for_the_catalog(name, tmp_path,
                                                                           output_root):
    data_dir = _catalog_with_01_profile(tmp_path, image_size=224, median_short_side=225.0)
    # another run's report says otherwise: reports are never inputs
    evaluation.write_metrics("01_eda", {"image_size": 160}, paths=config.get_paths(data_dir))
    ns = _namespace(name, quick=False, DATA_DIR=data_dir)
    run = _setup(name, ns)
    assert ns["IMAGE_SIZE"] == 224 and run.parameters["IMAGE_SIZE"] == 224
    assert "IMAGE_SIZE" in run.filled
    passed = _namespace(name, quick=False, DATA_DIR=data_dir, IMAGE_SIZE=64)
    _setup(name, passed)
    assert passed["IMAGE_SIZE"] == 64  # what the user passes wins
    quick = _namespace(name, quick=True, DATA_DIR=data_dir)
    _setup(name, quick)
    assert quick["IMAGE_SIZE"] == config.QUICK_IMAGE_SIZE  # quick runs keep their small side


def test_without_notebook_01s_profile_image_size_is_the_default(tmp_path, output_root):
    data_dir = _catalog_with_01_profile(tmp_path)
    evaluation.write_metrics("01_eda", {"image_size": 224}, paths=config.get_paths(data_dir))
    ns = _namespace("03_baseline_cnn", quick=False, DATA_DIR=data_dir)
    _setup("03_baseline_cnn", ns)
    assert ns["IMAGE_SIZE"] == config.DEFAULT_IMAGE_SIZE == 96


def test_the_quick_table_holds_the_former_overrides():
    """The values the setup cells used to force in quick mode are now the quick defaults."""
    quick = {name: {k: d.quick for k, d in spec.defaults.items()}
             for name, spec in notebook.NOTEBOOKS.items()}
    assert quick["04_tuning"]["IMAGE_SIZE"] == config.QUICK_IMAGE_SIZE
    assert (quick["04_tuning"]["EPOCHS"], quick["04_tuning"]["MAX_TRIALS"]) == (2, 2)
    assert quick["04_tuning"]["RECIPES"]["fine-tune"]["image_size"] == config.QUICK_IMAGE_SIZE
    assert quick["02_sampling_augmentation"]["CAP_PER_CLASS"] == config.QUICK_PER_CLASS
    full = notebook.NOTEBOOKS["03_baseline_cnn"].defaults
    assert full["UNITS"].full == config.ORIGINAL_UNITS
    assert full["EPOCHS"].full == config.ORIGINAL_EPOCHS
    assert full["BATCH_SIZE"].full == config.ORIGINAL_BATCH_SIZE
    assert full["LEARNING_RATE"].full == config.ORIGINAL_LEARNING_RATE


def test_setup_seeds_sets_the_style_and_finds_the_paths(tmp_path, output_root):
    data_dir = tmp_path / "catalog"
    data_dir.mkdir()
    plt.rcParams["axes.titleweight"] = "normal"
    run = _setup("03_baseline_cnn", _namespace("03_baseline_cnn", quick=True, DATA_DIR=data_dir,
                                                SEED=5))
    drawn = np.random.rand()
    config.set_seed(5)
    assert drawn == np.random.rand() and run.seed == 5
    assert plt.rcParams["axes.titleweight"] == "bold"
    assert run.paths == config.get_paths(data_dir, quick=True)
    assert run.paths.figures.is_dir() and str(run.paths.root) == str(output_root.resolve())


def test_write_metrics_records_where_the_numbers_came_from(tmp_path, output_root):
    data_dir = tmp_path / "catalog"
    data_dir.mkdir()
    run = _setup("03_baseline_cnn", _namespace("03_baseline_cnn", quick=True, DATA_DIR=data_dir,
                                                EPOCHS=7))
    path = run.write_metrics({"accuracy": 0.5})
    assert path == run.paths.metrics / "03_baseline_cnn.json"
    written = evaluation.read_metrics(run.name, paths=run.paths)
    assert written["accuracy"] == 0.5
    record = written["provenance"]
    assert record["parameters"]["EPOCHS"] == 7 and record["parameters"]["QUICK"] is True
    assert record["parameters"]["DATA_DIR"] == str(run.paths.data_dir)
    assert record["git"] == provenance.git_state() and record["seconds"] >= 0
    assert record["versions"]["numpy"] == np.__version__


def test_str_names_the_run_and_marks_passed_values(output_root):
    run = _setup("04_tuning", _namespace("04_tuning", quick=True, EPOCHS=5))
    text = str(run)
    assert text.startswith("04_tuning: quick mode, seed 42")
    assert "EPOCHS=5 (passed)" in text and f"IMAGE_SIZE={config.QUICK_IMAGE_SIZE}," in text
    parameters = text[text.index("parameters:"):].splitlines()
    assert all(len(line) <= 100 for line in parameters) and len(parameters) > 1
    for key in notebook.NOTEBOOKS["04_tuning"].defaults:  # each one whole, on one line
        assert sum(f" {key}=" in line for line in parameters) == 1, key


# --------------------------------------------------------------------------- run names


@pytest.mark.parametrize("name, target, expected", [
    ("04_tuning", config.DEFAULT_TARGET, "04_tuning"),
    ("04_tuning", "articleType", "04_tuning-articleType"),
    ("03_baseline_cnn", "articleType", "03_baseline_cnn-articleType"),
    ("02_sampling_augmentation", "subCategory", "02_sampling_augmentation-subCategory"),
    ("01_eda", "articleType", "01_eda"),  # its metrics file is always 01_eda.json
    ("05_recommendation", "articleType", "05_recommendation"),
    ("06_multi_output", None, "06_multi_output"),
])
def test_run_names(name, target, expected, output_root):
    passed = {} if target is None else {"TARGET": target}
    assert _setup(name, _namespace(name, quick=True, **passed)).name == expected
    assert _setup(name, _namespace(name, quick=False, **passed)).name == expected


@pytest.mark.parametrize("target, expected", [
    (None, "x"), (config.DEFAULT_TARGET, "x"), ("articleType", "x-articleType")])
def test_run_names_follow_the_target(target, expected):
    assert config.named_for_target("x", target=target) == expected


# --------------------------------------------------------------------------- the timer


def test_elapsed_counts_from_setup_in_tenths_of_a_second(output_root):
    ticks = iter([100.0, 101.26, 130.0])
    run = _setup("01_eda", _namespace("01_eda", quick=True), clock=lambda: next(ticks))
    assert run.elapsed() == 1.3
    assert run.elapsed() == 30.0


def test_elapsed_with_the_real_clock_is_small_and_grows(output_root):
    run = _setup("01_eda", _namespace("01_eda", quick=True))
    first = run.elapsed()
    assert 0.0 <= first <= run.elapsed() < 60


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("quick", ["yes", "True", 2, -1, 1.0, None, [True]])
def test_an_unknown_mode_raises_and_echoes_it(quick, output_root):
    with pytest.raises(ValueError, match=r"QUICK must be True or False\. Received: QUICK="):
        _setup("01_eda", _namespace("01_eda", quick=quick))
    with pytest.raises(ValueError, match=re.escape(f"QUICK={quick!r}")):
        notebook.check_quick(quick)


@pytest.mark.parametrize("quick, expected", [(True, True), (False, False), (1, True), (0, False)])
def test_check_quick_accepts_bools_and_0_1(quick, expected):
    assert notebook.check_quick(quick) is expected


def test_an_unknown_notebook_raises(output_root):
    with pytest.raises(ValueError, match=r"Received: notebook='07_nope'"):
        notebook.setup("07_nope", {"QUICK": True})


def test_a_value_outside_its_choices_raises(output_root):
    ns = _namespace("05_recommendation", quick=True, EMBEDDING_SOURCE="clip")
    with pytest.raises(ValueError, match=r"EMBEDDING_SOURCE must be one of .*"
                                         r"Received: EMBEDDING_SOURCE='clip'"):
        _setup("05_recommendation", ns)


@pytest.mark.parametrize("seed", [-1, 1.5, "42"])
def test_a_bad_seed_raises(seed, output_root):
    with pytest.raises(ValueError, match="seed"):
        _setup("01_eda", _namespace("01_eda", quick=True, SEED=seed))


# --------------------------------------------------------------------- the table and the cells


def _parameters_cell(path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return next("".join(c["source"]) for c in cells
                if "parameters" in c.get("metadata", {}).get("tags", []))


@pytest.mark.parametrize("path", runner.notebook_paths(config.NOTEBOOKS_DIR), ids=lambda p: p.stem)
def test_the_table_and_the_parameters_cell_agree(path):
    """Every defaulted parameter is None in the cell, and its comment says what None means."""
    assert path.stem in notebook.NOTEBOOKS, f"register {path.stem}'s defaults in notebook.NOTEBOOKS"
    source = _parameters_cell(path)
    assigned = {node.targets[0].id: node.value for node in ast.parse(source).body
                if isinstance(node, ast.Assign)}
    lines, key = {}, None  # each parameter's line, with its comment's continuation lines
    for line in source.splitlines():
        if line.lstrip().startswith("#") and key:
            lines[key] += line
        elif "=" in line:
            key = line.split("=")[0].strip()
            lines[key] = line
    for key in notebook.NOTEBOOKS[path.stem].defaults:
        assert key in assigned, f"{path.stem}: {key} is not a parameter"
        value = assigned[key]
        assert isinstance(value, ast.Constant) and value.value is None, f"{path.stem}: {key}"
        assert "None:" in lines[key], f"{path.stem}: say what {key} = None means"
    for key, allowed in notebook.NOTEBOOKS[path.stem].choices.items():
        assert ast.literal_eval(assigned[key]) in allowed


# --------------------------------------------------------------------------- the quick subset


def _catalog(n_per_class: dict[str, int], *, column: str = "articleType") -> pd.DataFrame:
    labels = [label for label, n in n_per_class.items() for _ in range(n)]
    return pd.DataFrame({"id": [str(i) for i in range(len(labels))], column: labels,
                         "masterCategory": ["m"] * len(labels)})


@pytest.mark.parametrize("per_class", [1, 3, 10])
@pytest.mark.parametrize("seed", [0, 42])
def test_quick_subset_is_balanced_seeded_and_in_catalog_order(per_class, seed):
    catalog = _catalog({"a": 12, "b": 5, "c": 2})
    subset = notebook.quick_subset(catalog, seed=seed, per_class=per_class)
    counts = subset["articleType"].value_counts()
    for label, n in {"a": 12, "b": 5, "c": 2}.items():
        assert counts[label] == min(n, per_class)
    assert subset.index.is_monotonic_increasing and subset.index.isin(catalog.index).all()
    pd.testing.assert_frame_equal(subset, notebook.quick_subset(catalog, seed=seed,
                                                                per_class=per_class))


def test_quick_subset_groups_by_the_finest_label():
    catalog = _catalog({"x": 6, "y": 6}, column="subCategory")
    assert notebook.label_columns(catalog)[0] == "subCategory"
    subset = notebook.quick_subset(catalog, per_class=2)
    assert subset["subCategory"].value_counts().to_dict() == {"x": 2, "y": 2}


def test_quick_subset_defaults_to_the_configured_size():
    catalog = _catalog({"a": config.QUICK_PER_CLASS + 5})
    assert len(notebook.quick_subset(catalog)) == config.QUICK_PER_CLASS


@pytest.mark.parametrize("per_class", [0, -1, 1.5, True])
def test_quick_subset_rejects_bad_sizes(per_class):
    with pytest.raises(ValueError, match=f"Received: per_class={per_class!r}"):
        notebook.quick_subset(_catalog({"a": 3}), per_class=per_class)


def test_quick_subset_needs_a_label_column():
    with pytest.raises(ValueError, match="none of the label columns"):
        notebook.quick_subset(pd.DataFrame({"id": ["1"], "colour": ["red"]}))


def test_in_voila(monkeypatch):
    monkeypatch.setenv("SERVER_SOFTWARE", "voila/0.5")
    assert notebook.in_voila()
    monkeypatch.delenv("SERVER_SOFTWARE")
    assert not notebook.in_voila()


def test_notebook_04_has_at_most_twelve_parameters():
    """The recipes' own settings live in training.recipes; the plan passes the few that scale."""
    from fashion_utils.tools import runner

    [path] = runner.notebook_paths(only=["04"])
    assert len(runner.notebook_parameters(path)) <= 12


# --------------------------------------------------------------------------- what a reader sees


def test_show_table_shows_paths_for_a_reader_or_a_sentence_when_empty(capsys):
    frame = pd.DataFrame({"id": ["1", "2"], "label": ["Bag", "Coat"],
                          "image_path": [str(config.PROJ_ROOT / "data" / "1.png"), "rel/2.png"]})
    shown = notebook.show_table(frame)
    assert shown["image_path"].tolist() == ["data/1.png", "rel/2.png"]
    assert frame["image_path"].iloc[0].startswith(str(config.PROJ_ROOT))  # the table is kept
    assert notebook.show_table(frame.iloc[:0], empty="No row was excluded.") is None
    assert capsys.readouterr().out == "No row was excluded.\n"
    with pytest.raises(ValueError, match="Received: empty=''"):
        notebook.show_table(frame, empty="")
    with pytest.raises(ValueError, match="Received: frame="):
        notebook.show_table([1, 2])


@pytest.mark.parametrize("name, target, what, expected", [
    ("02_sampling_augmentation", None, "class_balance",
     f"02_sampling_augmentation-{config.DEFAULT_TARGET}_class_balance"),
    ("03_baseline_cnn", "articleType", "confusion_matrix",
     "03_baseline_cnn-articleType_confusion_matrix"),
    ("06_multi_output", None, "predictions", "06_multi_output_predictions"),
])
def test_every_figure_of_a_run_per_target_carries_its_target(name, target, what, expected):
    """Issue 30: 02's masterCategory figure was overwritten by the articleType run's."""
    passed = {} if target is None else {"TARGET": target}
    run = _setup(name, _namespace(name, quick=True, **passed))
    assert run.figure_name(what) == expected
    assert run.figure_name("retrieval_metrics", target="articleType").endswith(
        "-articleType_retrieval_metrics")
    with pytest.raises(ValueError, match="Received: what=''"):
        run.figure_name("")


def test_a_run_prints_no_path_of_this_machine():
    run = _setup("03_baseline_cnn", _namespace("03_baseline_cnn", quick=True))
    assert str(config.PROJ_ROOT) not in str(run) and "catalog: " in str(run)
