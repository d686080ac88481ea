"""Every third-party import is declared in pyproject.toml, where the code that imports it runs.

The package's imports (at any depth: inside functions too) must be main dependencies, or the
deep-learning runtime of the ``cpu``/``gpu`` extras, since `make` runs the study with them; the
tests' imports may also come from the ``dev`` extra. Names map to distributions through the
installed metadata (``PIL`` -> ``pillow``, ``sklearn`` -> ``scikit-learn``).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCAL = {"fashion_utils", "conftest", "browser_support"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normal(re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0])


def declared(*groups: str) -> set[str]:
    """Distribution names of the main dependencies and of the optional ``groups``."""
    names = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    for group in groups:
        names |= {_requirement_name(r) for r in extras[group]}
    return names


def top_level_imports(folder: Path) -> dict[str, list[str]]:
    """Top-level module name -> files (relative) that import it, at any depth of the code."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], []).append(str(path.relative_to(ROOT)))
    return found


def undeclared(folder: Path, allowed: set[str]) -> dict[str, str]:
    """Third-party imports of ``folder`` whose distribution is not in ``allowed``."""
    distributions = packages_distributions()
    missing = {}
    for module, files in top_level_imports(folder).items():
        if module in sys.stdlib_module_names or module in LOCAL or module == "__future__":
            continue
        dists = {_normal(d) for d in distributions.get(module, [])}
        if not dists:
            missing[module] = f"not installed (imported by {files[0]})"
        elif not dists & allowed:
            missing[module] = f"distribution {sorted(dists)} undeclared (imported by {files[0]})"
    return missing


def test_the_package_imports_only_main_dependencies_and_the_runtime():
    allowed = declared("cpu", "gpu")
    assert not undeclared(ROOT / "fashion_utils", allowed)


def test_the_tests_import_only_declared_dependencies():
    allowed = declared("cpu", "gpu", "dev")
    assert not undeclared(ROOT / "tests", allowed)


def test_what_make_needs_to_run_the_study_is_a_main_dependency():
    main = declared()
    assert {"papermill", "nbformat", "nbclient", "ipykernel", "nbconvert"} <= main


def test_an_undeclared_import_is_caught(tmp_path, monkeypatch):
    fake = tmp_path / "pkg"
    fake.mkdir()
    (fake / "mod.py").write_text("def f():\n    import psutil\n    from yaml import safe_load\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = undeclared(fake, declared())
    assert set(found) == {"psutil", "yaml"}
    assert "undeclared" in found["psutil"] or "not installed" in found["psutil"]


@pytest.mark.parametrize("requirement, name", [
    ("tensorflow-cpu>=2.16; platform_machine == 'x86_64'", "tensorflow-cpu"),
    ("tensorflow[and-cuda]>=2.16", "tensorflow"), ("keras_tuner", "keras-tuner")])
def test_requirement_names_are_normalised(requirement, name):
    assert _requirement_name(requirement) == name
