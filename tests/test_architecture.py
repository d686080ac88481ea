"""The package's layout holds: one folder per stage, one-way imports, no private KerasTuner.

The rooms are those of docs/ARCHITECTURE.md: a shared module or a folder. A module imports only
rooms of lower layers, or modules of its own folder without a cycle; no notebook imports the
tooling. The checks read the source with ``ast``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fashion_utils"

#: docs/ARCHITECTURE.md's rooms, bottom to top: the shared modules, then one folder per stage
#: of the study, then the notebooks' setup, then the tooling that runs, times and reports it.
LAYERS: list[set[str]] = [
    {"config", "atomic", "checks", "progress"},
    {"provenance", "evaluation"},
    {"catalog"},
    {"vision"},
    {"training", "recommend"},
    {"views"},
    {"notebook", "findings"},
    {"tools"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
FOLDERS = {"catalog", "vision", "training", "recommend", "views", "tools"}
DRAWING = {"views"}  # the only room that may import matplotlib or seaborn
NOTEBOOKS = sorted((PACKAGE.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue
        out[".".join(p for p in parts if p != "__init__")] = path
    return out


def _internal_imports(tree: ast.AST, module: str) -> list[tuple[str, ast.stmt]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "fashion_utils":
                found += [(a.name, node) for a in node.names]
            elif node.module.startswith("fashion_utils."):
                found.append((node.module.removeprefix("fashion_utils."), node))
            elif node.level:  # relative import inside a sub-package
                base = module.rsplit(".", 1)[0] if "." in module else module
                found.append((f"{base}.{node.module}", node))
        elif isinstance(node, ast.Import):
            found += [(a.name.removeprefix("fashion_utils."), node) for a in node.names
                      if a.name.startswith("fashion_utils.")]
    return found


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def test_every_module_has_a_room():
    rooms = {name.split(".")[0] for name in MODULES}
    assert rooms <= set(LAYER), f"modules without a layer: {sorted(rooms - set(LAYER))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_only(module):
    room = module.split(".")[0]
    for target, node in _internal_imports(TREES[module], module):
        target_room = target.split(".")[0]
        if target_room == room:
            continue  # inside one folder: checked for cycles below
        assert LAYER[target_room] < LAYER[room], (
            f"{module} (layer {LAYER[room]}) imports {target} (layer {LAYER[target_room]}) "
            f"at line {node.lineno}")


def test_no_import_cycle():
    graph = {m: {t for t, _ in _internal_imports(TREES[m], m)} & set(MODULES) for m in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(trail + [node, nxt])}"
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_package_imports_sit_at_the_top_of_the_module(module):
    top = {id(n) for n in TREES[module].body}
    late = [node.lineno for _, node in _internal_imports(TREES[module], module)
            if id(node) not in top]
    assert not late, f"{module} imports the package inside functions at lines {late}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_one_room_one_job_size_and_rules(module):
    text = MODULES[module].read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 600, f"{module} has {len(text.splitlines())} lines"
    assert "keras_tuner.src" not in text and "import grpc" not in text
    if module != "atomic":
        assert not re.search(r"\bos\.(replace|rename)\(|\.rename\(tmp|\.replace\(out\)", text), (
            f"{module} renames files itself: use fashion_utils.atomic")
    if module.split(".")[0] not in DRAWING:
        assert not re.search(r"^\s*(import|from) (matplotlib|seaborn)", text, re.M), (
            f"{module} draws: figures belong to views")


def test_folders_are_the_stages_and_nothing_else_lies_loose():
    loose = {name for name in MODULES if "." not in name} - FOLDERS
    folders = {name.split(".")[0] for name in MODULES if "." in name}
    assert folders == FOLDERS, f"folders: {sorted(folders)}"
    assert loose == set(LAYER) - FOLDERS, f"loose modules: {sorted(loose)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_imports_the_tooling(path):
    import json

    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "fashion_utils.tools" not in code and "from fashion_utils import tools" not in code


def _notebook_calls() -> dict[str, set[str]]:
    """Every package name the notebooks use: module (``vision.features``) -> its names."""
    import json

    calls: dict[str, set[str]] = {}
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        tree = ast.parse("\n".join("".join(c["source"]) for c in cells
                                   if c["cell_type"] == "code"))
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fashion_utils"):
                folder = node.module.removeprefix("fashion_utils").lstrip(".")
                for alias in node.names:
                    name = f"{folder}.{alias.name}" if folder else alias.name
                    modules[alias.asname or alias.name] = name
                    calls.setdefault(name, set())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules):
                calls[modules[node.value.id]].add(node.attr)
    return calls


def test_the_architecture_page_names_every_module_and_every_name_a_notebook_calls():
    page = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for module in MODULES:
        name = module.split(".")[-1]
        if name != "__main__":
            assert f"`{name}`" in page or f"`{name}/`" in page, f"docs/ARCHITECTURE.md lacks {module}"
    unnamed = sorted(f"{module}.{name}" for module, names in _notebook_calls().items()
                     for name in names if not re.search(rf"\b{re.escape(name)}\b", page))
    assert not unnamed, f"docs/ARCHITECTURE.md does not name what the notebooks call: {unnamed}"


def test_no_docstring_carries_a_run_result():
    """Results of runs live in reports/, never in docstrings (they go stale)."""
    dated = re.compile(r"\b20\d\d-\d\d-\d\d\b")
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node) or ""
                assert not dated.search(doc), f"{module}: a dated result in a docstring"
