"""The package's import structure: no module imports, by any path, a module that imports it back.

Imports inside functions count (they tie modules as surely, only later); imports under ``if TYPE_CHECKING:`` do
not (they never run). A new cycle fails here with the modules that make it and what each imports of the others.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "reviewlens").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports (``from a.b import c`` is ``a.b.c`` where that is a module)."""

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    tree = ast.parse(path.read_text(encoding="utf-8"))
    unrun = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in
             ast.unparse(block.test) for node in ast.walk(block)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in unrun:
            continue
        if isinstance(node, ast.Import):
            found |= {known(alias.name) for alias in node.names if alias.name.startswith("reviewlens")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reviewlens"):
            found |= {known(f"{node.module}.{alias.name}") for alias in node.names}
    return found - {""}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_no_module_of_the_package_imports_one_that_imports_it_back() -> None:
    modules = _modules()
    edges = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert len(edges) > 60 and "reviewlens.text.words" in edges["reviewlens.text"]  # the walk sees the package
    cycles = _cycles(edges)
    described = [{module: sorted(edges[module] & set(group)) for module in group} for group in cycles]
    assert not cycles, f"import cycles: {described}"


def test_the_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


#: The package's layers, top to bottom: a module imports only from its own layer or the ones below it. One
#: name in a layer stands for that module and every module under it.
LAYERS = [
    ["reviewlens.__main__"],
    ["reviewlens.cli"],
    ["reviewlens.compare", "reviewlens.tuning"],
    ["reviewlens.serving", "reviewlens.scoring", "reviewlens.library", "reviewlens"],
    ["reviewlens.training"],
    ["reviewlens.families"],
    ["reviewlens.pretraining"],
    ["reviewlens.recipes", "reviewlens.tracking", "reviewlens.export", "reviewlens.embeddings", "reviewlens.pool",
     "reviewlens.tokenization_layer", "reviewlens.keras_text"],
    ["reviewlens.runs"],
    ["reviewlens.predictors"],
    ["reviewlens.models"],
    ["reviewlens.data"],
    ["reviewlens.text"],
    ["reviewlens.checkpoints", "reviewlens.imbalance"],
    ["reviewlens.evaluation", "reviewlens.calibration", "reviewlens.explain", "reviewlens.processes",
     "reviewlens.files", "reviewlens.registry", "reviewlens.errors", "reviewlens.version", "reviewlens.logs"],
]  # fmt: skip


def _layer(module: str) -> tuple[int, str]:
    """The layer of ``module`` and the name that places it (the longest that covers it)."""
    places = [(len(name), index, name) for index, names in enumerate(LAYERS) for name in names
              if module == name or module.startswith(name + ".")]  # fmt: skip
    assert places, f"{module} is in no layer: add it to LAYERS"
    _, index, name = max(places)
    return index, name


def test_every_import_points_down_the_layers_or_within_one() -> None:
    modules = _modules()
    upward = []
    for module, path in sorted(modules.items()):
        where, placed = _layer(module)
        for imported in sorted(_imports(path, modules) - {module}):
            to, to_placed = _layer(imported)
            if to < where and to_placed != placed:
                upward.append(f"{module} -> {imported}")
    assert not upward, f"imports from a lower layer to a higher one: {upward}"
